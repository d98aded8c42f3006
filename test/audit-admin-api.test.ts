/**
 * The audit queries through the admin API of a running `portcullis serve`:
 * signed requests, RAM authorization by the `audit:*` actions on
 * `acs:audit:<region>:<acct>:log`, and `portcullis audit` talking to the API
 * with the same credentials as `portcullis admin`.
 */
import { createHmac } from "node:crypto";
import { AdminApiError, type AdminClient } from "@portcullis/admin-api";
import { connectAsync } from "mqtt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "./helpers/cli.ts";
import { type Serve, startServe } from "./helpers/serve.ts";

let gw: Serve;
let auditor: AdminClient;
let auditorKey: { accessKeyId: string; accessKeySecret: string };
let outsider: AdminClient;
let topic: string;
let granted = 0;
let revoked = 0;

beforeAll(async () => {
  gw = await startServe();
  const acct = gw.root.accountId;
  topic = `acs:mq:local:${acct}:topic/mqtt-local/orders/1`;
  const a = gw.admin;
  await a.createUser("auditor");
  await a.createPolicy("audit-all", {
    Version: "1",
    Statement: [{ Effect: "Allow", Action: ["audit:*"], Resource: [`acs:audit:*:${acct}:*`] }],
  });
  await a.attachPolicy("audit-all", { user: "auditor" });
  const k = await a.createAccessKey("auditor");
  auditorKey = { accessKeyId: k.accessKeyId, accessKeySecret: k.accessKeySecret };
  auditor = gw.client(auditorKey);
  await a.createUser("outsider");
  const o = await a.createAccessKey("outsider");
  outsider = gw.client({ accessKeyId: o.accessKeyId, accessKeySecret: o.accessKeySecret });
  await a.createUser("alice");
  await a.createPolicy("orders-pub", {
    Version: "1",
    Statement: [
      { Effect: "Allow", Action: ["mq:PUB"], Resource: [`acs:mq:*:${acct}:topic/mqtt-local/orders`] },
    ],
  });
  granted = (await a.attachPolicy("orders-pub", { user: "alice" })).position;
  revoked = (await a.detachPolicy("orders-pub", { user: "alice" })).position;
}, 120_000);
afterAll(async () => {
  await gw?.stop();
});

describe("/v1/audit through the admin API", () => {
  it("explain and who-can at the grant and after the revocation", async () => {
    const at = await auditor.request<{ decision: { decision: string; decidingStatements: unknown[] } }>(
      "POST",
      "/v1/audit/explain",
      { body: { principal: "alice", action: "mq:PUB", resource: topic, at: granted } },
    );
    expect(at.decision).toMatchObject({
      decision: "Allow",
      decidingStatements: [{ policy: "orders-pub", policyType: "Custom", statement: 0 }],
    });
    const after = await auditor.request<{ decision: { decision: string } }>("POST", "/v1/audit/explain", {
      body: { principal: "alice", action: "mq:PUB", resource: topic, at: revoked },
    });
    expect(after.decision.decision).toBe("ImplicitDeny");
    const who = await auditor.request<{ allowed: { principal: { userName?: string; kind: string } }[] }>(
      "POST",
      "/v1/audit/who-can",
      { body: { action: "mq:PUB", resource: topic, at: granted } },
    );
    expect(who.allowed.map((p) => p.principal.userName ?? p.principal.kind)).toEqual(["root", "alice"]);
    const hist = await auditor.request<{ events: { type: string; position: number }[] }>(
      "GET",
      "/v1/audit/history",
      {
        query: { principal: "alice" },
      },
    );
    expect(hist.events.filter((e) => e.type.startsWith("Policy")).map((e) => e.position)).toEqual([
      granted,
      revoked,
    ]);
  });

  it("refuses callers without the audit action, with RAM's AccessDeniedDetail", async () => {
    const err = await outsider
      .request("POST", "/v1/audit/who-can", { body: { action: "mq:PUB", resource: topic } })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AdminApiError);
    expect((err as AdminApiError).status).toBe(403);
    expect((err as AdminApiError).body.accessDeniedDetail).toMatchObject({
      AuthAction: "audit:WhoCan",
      AuthResource: `acs:audit:local:${gw.root.accountId}:log`,
    });
    // Unsigned: 401 before anything else.
    const res = await fetch(new URL("/v1/audit/state", gw.adminUrl));
    expect(res.status).toBe(401);
  });

  it("portcullis audit talks to the API with the admin credentials", () => {
    const env = {
      PORTCULLIS_ENDPOINT: gw.adminUrl,
      PORTCULLIS_ACCESS_KEY_ID: auditorKey.accessKeyId,
      PORTCULLIS_ACCESS_KEY_SECRET: auditorKey.accessKeySecret,
    };
    const r = runCli(
      ["audit", "who-can", "--action", "mq:PUB", "--resource", topic, "--at", String(granted)],
      {
        env,
      },
    );
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`at position ${granted}`);
    expect(r.stdout).toMatch(/alice \(id \S+\)\s+Custom orders-pub v1 Statement\[0\]/);
    const bad = runCli(["audit", "state", "--at", "tomorrow-ish"], { env });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("`at` must be a position (an integer) or an ISO 8601 time");
  });
});

describe("the decision log of serve", () => {
  it("records the MQTT edge's denials, and verify re-decides them at their positions without a mismatch", async () => {
    const a = gw.admin;
    await a.createGroupId("GID_audit");
    await a.createTopic("orders");
    await a.createUser("mallory");
    const k = await a.createAccessKey("mallory");
    const clientId = "GID_audit@@@dev-1";
    // mallory has no policy: the CONNECT is refused by mq:MqttInstanceAccess (ImplicitDeny).
    const refused = await connectAsync(`mqtt://${gw.mqtt!.host}:${gw.mqtt!.port}`, {
      clientId,
      username: `Signature|${k.accessKeyId}|mqtt-local`,
      password: createHmac("sha1", k.accessKeySecret).update(clientId).digest("base64"),
      reconnectPeriod: 0,
      connectTimeout: 5_000,
    }).then(
      () => "connected",
      (e: Error) => e.message,
    );
    expect(refused).toMatch(/Not authorized/i);

    // The log is batched off the message path: poll until the record is written.
    await expect
      .poll(
        async () =>
          (await auditor.request<{ checked: number }>("POST", "/v1/audit/verify", { body: {} })).checked,
        { timeout: 10_000, interval: 200 },
      )
      .toBeGreaterThan(0);
    const v = await auditor.request<{ checked: number; mismatchCount: number; mismatches: unknown[] }>(
      "POST",
      "/v1/audit/verify",
      { body: {} },
    );
    expect(v.mismatchCount).toBe(0);
    expect(v.mismatches).toEqual([]);
  });
});
