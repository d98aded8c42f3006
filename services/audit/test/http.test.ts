/**
 * The audit routes in a fastify app, with an authorize hook that does real RAM
 * authorization against a projection of the same store (the admin API does
 * the signature part; here the caller's principal key comes in a header).
 */
import { MemoryEventStore } from "@portcullis/event-store";
import type { EventEnvelope } from "@portcullis/events";
import type { DecisionRecord } from "@portcullis/feed";
import { mqTopicArn } from "@portcullis/policy";
import { Projection } from "@portcullis/projection";
import Fastify, { type FastifyInstance } from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  accountCreated,
  allow,
  attached,
  detached,
  doc,
  policyCreated,
  toUser,
  userCreated,
} from "../../../packages/projection/test/given.ts";
import { ACCT, OTHER } from "../../../packages/projection/test/log.ts";
import { Auditor, principalOfKey } from "../src/auditor.ts";
import { DecisionLog } from "../src/decision-log.ts";
import { AUDIT_ACTIONS, type AuditAuthorize, auditRoutes } from "../src/http.ts";
import { SqliteDecisionStore } from "../src/sqlite-decision-store.ts";

const topic = (t: string, acct = ACCT) => mqTopicArn({ region: "local", accountId: acct }, "mqtt-local", t);

let app: FastifyInstance;
let store: MemoryEventStore;
let grantPos = 0;
let revokePos = 0;
const decisions = SqliteDecisionStore.open(":memory:");

async function append(...events: EventEnvelope[]): Promise<number> {
  let pos = 0;
  for (const e of events) pos = (await store.append(`account-${e.accountId}`, [e])).position;
  return pos;
}

beforeAll(async () => {
  store = new MemoryEventStore();
  await append(
    accountCreated(),
    accountCreated(OTHER, "other"),
    userCreated("u1", "alice"),
    userCreated("u2", "auditor"),
    userCreated("u3", "explainer"),
    userCreated("x1", "bob", OTHER),
    policyCreated("pub-a", doc(allow("mq:PUB", `acs:mq:*:${ACCT}:topic/mqtt-local/a`))),
    policyCreated("audit-all", doc(allow("audit:*", `acs:audit:*:${ACCT}:*`))),
    policyCreated("audit-explain", doc(allow("audit:Explain", `acs:audit:*:${ACCT}:*`))),
    attached("audit-all", toUser("u2")),
    attached("audit-explain", toUser("u3")),
  );
  grantPos = await append(attached("pub-a", toUser("u1")));
  revokePos = await append(detached("pub-a", toUser("u1")));

  // A decision log with one honest record per account.
  const log = new DecisionLog({ writer: decisions, allows: "all", closeWriter: false });
  const record = (principal: string, position: number, decision: DecisionRecord["decision"], acct = ACCT) =>
    log.sink({
      time: new Date().toISOString(),
      edgeId: "mqtt-1",
      protocol: "mqtt",
      principal,
      action: "mq:PUB",
      resource: topic("a/1", acct),
      decision,
      decidingStatements:
        decision === "Allow"
          ? [{ policy: "pub-a", policyType: "Custom", version: "v1", statement: 0, effect: "Allow" }]
          : [],
      position,
    });
  record(`${ACCT}/u1`, grantPos, "Allow");
  record(`${ACCT}/u1`, revokePos, "ImplicitDeny");
  record(`${OTHER}/x1`, revokePos, "Allow", OTHER); // wrong, but not ours: another account's record
  await log.flush();

  // The authorize hook: principal key from a header, RAM decision on the live state.
  const live = new Projection();
  for await (const e of store.readAll()) live.apply(e);
  const authorize: AuditAuthorize = (req, action, resource) => {
    const p = principalOfKey(String(req.headers["x-principal"] ?? ""));
    if (!p) throw Object.assign(new Error("no credentials"), { statusCode: 401 });
    const d = live.authorize(p, action, resource(p.accountId));
    if (d.decision !== "Allow")
      throw Object.assign(new Error(d.message ?? "denied"), { statusCode: 403, code: "AccessDenied" });
    return { principal: p };
  };
  app = Fastify();
  await app.register(auditRoutes, { auditor: new Auditor(store), decisions, authorize });
  await app.ready();
});
afterAll(async () => {
  await app?.close();
  decisions.close();
});

const as = (principal: string) => ({ "x-principal": principal });

describe("audit HTTP routes", () => {
  it("state: the caller's account only, at a past position", async () => {
    const r = await app.inject({ method: "GET", url: `/v1/audit/state?at=${grantPos}`, headers: as(ACCT) });
    expect(r.statusCode).toBe(200);
    const body = r.json();
    expect(body.position).toBe(grantPos);
    expect(body.accounts.map((a: { accountId: string }) => a.accountId)).toEqual([ACCT]);
    const alice = body.accounts[0].users.find((u: { userName: string }) => u.userName === "alice");
    expect(alice.policies).toEqual([{ policyType: "Custom", policyName: "pub-a" }]);
    const now = await app.inject({ method: "GET", url: "/v1/audit/state", headers: as(ACCT) });
    expect(
      now.json().accounts[0].users.find((u: { userName: string }) => u.userName === "alice").policies,
    ).toEqual([]);
  });

  it("explain at the grant and after the revocation (body parsed or raw)", async () => {
    const ask = { principal: "alice", action: "mq:PUB", resource: topic("a/1") };
    const r = await app.inject({
      method: "POST",
      url: "/v1/audit/explain",
      headers: as(`${ACCT}/u2`),
      payload: { ...ask, at: grantPos },
    });
    expect(r.statusCode).toBe(200);
    expect(r.json()).toMatchObject({
      position: grantPos,
      principal: { userName: "alice", userId: "u1" },
      decision: { decision: "Allow", decidingStatements: [{ policy: "pub-a", statement: 0 }] },
    });
    const raw = Fastify();
    raw.removeAllContentTypeParsers();
    raw.addContentTypeParser("*", { parseAs: "buffer" }, (_r, b, done) => done(null, b));
    await raw.register(auditRoutes, {
      auditor: new Auditor(store),
      authorize: () => ({ principal: { accountId: ACCT, kind: "root" } }),
    });
    const after = await raw.inject({
      method: "POST",
      url: "/v1/audit/explain",
      headers: { "content-type": "application/json" },
      payload: JSON.stringify({ ...ask, at: String(revokePos) }),
    });
    expect(after.statusCode).toBe(200);
    expect(after.json().decision.decision).toBe("ImplicitDeny");
    await raw.close();
  });

  it("who-can, diff and history answer with RAM authorization per action", async () => {
    const who = await app.inject({
      method: "POST",
      url: "/v1/audit/who-can",
      headers: as(`${ACCT}/u2`),
      payload: { action: "mq:PUB", resource: topic("a/1"), at: grantPos },
    });
    expect(who.statusCode).toBe(200);
    expect(who.json().rootAlwaysAllowed).toBe(true);
    expect(who.json().allowed.map((a: { principal: { key: string } }) => a.principal.key)).toEqual([
      ACCT,
      `${ACCT}/u1`,
    ]);
    const diff = await app.inject({
      method: "GET",
      url: `/v1/audit/diff?from=${grantPos - 1}&to=${revokePos}&principal=alice`,
      headers: as(`${ACCT}/u2`),
    });
    expect(diff.statusCode).toBe(200);
    // Net: gained at grantPos, lost at revokePos → nothing between grantPos-1 and revokePos.
    expect(diff.json().principals).toEqual([]);
    const gained = await app.inject({
      method: "POST",
      url: "/v1/audit/diff",
      headers: as(`${ACCT}/u2`),
      payload: { from: grantPos - 1, to: grantPos, probes: [{ action: "mq:PUB", resource: topic("a/9") }] },
    });
    expect(gained.json().principals).toMatchObject([
      { principal: { userName: "alice" }, gained: [{ action: "mq:PUB", causes: [{ position: grantPos }] }] },
    ]);
    const hist = await app.inject({
      method: "GET",
      url: "/v1/audit/history?principal=alice",
      headers: as(`${ACCT}/u2`),
    });
    expect(hist.json().events.map((e: { type: string }) => e.type)).toEqual([
      "UserCreated",
      "PolicyAttached",
      "PolicyDetached",
    ]);
    // The explainer may explain, not ask who can.
    const denied = await app.inject({
      method: "POST",
      url: "/v1/audit/who-can",
      headers: as(`${ACCT}/u3`),
      payload: { action: "mq:PUB", resource: topic("a/1") },
    });
    expect(denied.statusCode).toBe(403);
    expect(denied.json().message).toContain(AUDIT_ACTIONS.whoCan);
    const none = await app.inject({ method: "GET", url: "/v1/audit/state", headers: as(`${ACCT}/u1`) });
    expect(none.statusCode).toBe(403);
  });

  it("verify: the caller's records, none mismatching", async () => {
    const r = await app.inject({ method: "POST", url: "/v1/audit/verify", headers: as(ACCT) });
    expect(r.statusCode).toBe(200);
    expect(r.json()).toEqual({ checked: 2, mismatchCount: 0, mismatches: [] });
    // The other account's (wrong) record is only theirs to see.
    const other = await app.inject({ method: "POST", url: "/v1/audit/verify", headers: as(OTHER) });
    expect(other.json()).toMatchObject({ checked: 1, mismatchCount: 1 });
  });

  it("bad input is a 400 naming the field; absent things are 404; nothing about other accounts", async () => {
    const post = (url: string, payload: unknown) =>
      app.inject({ method: "POST", url, headers: as(ACCT), payload: payload as object });
    let r = await post("/v1/audit/explain", { principal: "alice", resource: topic("a") });
    expect(r.statusCode).toBe(400);
    expect(r.json().message).toBe("body.action: Invalid input: expected string, received undefined");
    r = await post("/v1/audit/explain", {
      principal: "alice",
      action: "mq:PUB",
      resource: topic("a"),
      foo: 1,
    });
    expect(r.json().message).toBe("body: unknown field `foo`");
    r = await post("/v1/audit/explain", { principal: "bob", action: "mq:PUB", resource: topic("a", OTHER) });
    expect(r.statusCode).toBe(400);
    expect(r.json().message).toContain(`is a resource of account \`${OTHER}\``);
    r = await post("/v1/audit/explain", { principal: "carol", action: "mq:PUB", resource: topic("a") });
    expect(r.statusCode).toBe(404);
    expect(r.json().message).toContain("no RAM user named `carol`");
    r = await post("/v1/audit/who-can", { action: "mq:PUB", resource: topic("a"), at: 10_000 });
    expect(r.statusCode).toBe(400);
    expect(r.json().message).toContain("position 10000 is after the last event");
    r = await post("/v1/audit/who-can", { action: "mq:PUB", resource: topic("a"), at: "yesterday" });
    expect(r.json().message).toContain("must be a position (an integer) or an ISO 8601 time");
    r = await post("/v1/audit/verify", { from: "12" });
    expect(r.json().message).toContain("verify `from` must be an ISO 8601 time");
    r = await app.inject({ method: "GET", url: "/v1/audit/history", headers: as(ACCT) });
    expect(r.statusCode).toBe(400);
    expect(r.json().message).toContain("query.principal");
    r = await app.inject({
      method: "POST",
      url: "/v1/audit/explain",
      headers: { ...as(ACCT), "content-type": "application/json" },
      payload: "{not json",
    });
    expect(r.statusCode).toBe(400);
  });
});
