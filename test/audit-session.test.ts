/**
 * A recorded session of real traffic, then every audit query over it (issue 7):
 * the MQTT edge (aedes, mqtt.js clients) and the AMQP edge (in front of the
 * shared RabbitMQ, amqplib clients) follow a SQLite event store in a data dir
 * and log every decision — allows included — to decisions.db through a
 * DecisionLog. Grants and revocations are appended while clients are
 * connected. Then `state`, `explain`, `who-can`, `diff`, `history` (library)
 * and `verify` (library and the real CLI) answer about that session.
 */
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { type AmqpEdge, amqpPassword, amqpUsername, startAmqpEdge } from "@portcullis/amqp-edge";
import { Auditor, DecisionLog, SqliteDecisionStore, SqliteSnapshotStore } from "@portcullis/audit";
import { SqliteEventStore } from "@portcullis/event-store";
import {
  accessKeyAad,
  accountStream,
  CURRENT_SCHEMA_VERSION,
  type EventData,
  type EventType,
  newEvent,
  SecretBox,
} from "@portcullis/events";
import { CredentialResolver, type DecisionRecord, LiveProjection } from "@portcullis/feed";
import { type MqttEdge, mqttPassword, mqttUsername, startMqttEdge } from "@portcullis/mqtt-edge";
import { amqpExchangeMessagesArn, mqTopicArn } from "@portcullis/policy";
import * as amqplib from "amqplib";
import { connectAsync, type MqttClient } from "mqtt";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "./helpers/cli.ts";

const run = promisify(execFile);
const ACCT = "1234567890123456";
const RABBIT = "amqp://guest:guest@127.0.0.1:5672";
const vhost = `pc-audit-${randomBytes(4).toString("hex")}`;
const scope = { region: "local", accountId: ACCT };
const TOPIC = mqTopicArn(scope, "mqtt-local", "orders/1");
const PUBLISH = amqpExchangeMessagesArn(scope, vhost, "audit.x", "orders.created");

let dir: string;
let store: SqliteEventStore;
let feed: LiveProjection;
let mqttEdge: MqttEdge;
let amqpEdge: AmqpEdge;
let log: DecisionLog;
const box = new SecretBox(randomBytes(32));
const secrets = new Map<string, string>();
const pos: Record<string, number> = {};
const clients: MqttClient[] = [];

async function append<T extends EventType>(name: string, type: T, data: EventData<T>, reason?: string) {
  const e = newEvent(
    type,
    CURRENT_SCHEMA_VERSION[type],
    ACCT,
    { kind: "root", accountId: ACCT },
    data,
    reason ? { reason } : {},
  );
  const p = (await store.append(accountStream(ACCT), [e])).position;
  if (!(await feed.waitForPosition(p, 5_000))) throw new Error(`feed did not apply ${p}`);
  pos[name] = p;
}

async function key(name: string, userId: string): Promise<string> {
  const accessKeyId = `LTAI${randomBytes(8).toString("hex")}`;
  const secret = randomBytes(15).toString("base64url");
  secrets.set(accessKeyId, secret);
  await append(name, "AccessKeyCreated", {
    accessKeyId,
    owner: { kind: "user", userId },
    secret: box.seal(secret, accessKeyAad(accessKeyId)),
  });
  return accessKeyId;
}

async function mqttClient(keyId: string, clientId: string): Promise<MqttClient> {
  const c = await connectAsync(`mqtt://127.0.0.1:${mqttEdge.port}`, {
    clientId,
    username: mqttUsername(keyId, "mqtt-local"),
    password: mqttPassword(secrets.get(keyId)!, clientId),
    reconnectPeriod: 0,
  });
  clients.push(c);
  return c;
}

function amqpClient(keyId: string): Promise<amqplib.ChannelModel> {
  const user = encodeURIComponent(amqpUsername("amqp-local", keyId));
  const pass = encodeURIComponent(amqpPassword(secrets.get(keyId)!));
  return amqplib.connect(`amqp://${user}:${pass}@127.0.0.1:${amqpEdge.port}/${encodeURIComponent(vhost)}`);
}

/** Wait until `pred` holds (polling), or fail. */
async function until(pred: () => boolean, what: string, ms = 5_000): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const records: DecisionRecord[] = [];

beforeAll(async () => {
  await run("/usr/sbin/rabbitmqctl", ["add_vhost", vhost], { timeout: 30_000 });
  await run("/usr/sbin/rabbitmqctl", ["set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"], {
    timeout: 30_000,
  });
  dir = mkdtempSync(join(tmpdir(), "audit-session-"));
  store = SqliteEventStore.open(join(dir, "events.db"));
  feed = await LiveProjection.start(store, { probeIntervalMs: 200 });
  const decisions = SqliteDecisionStore.open(join(dir, "decisions.db"));
  log = new DecisionLog({ writer: decisions, allows: "all", flushIntervalMs: 20 });
  const sink = (r: DecisionRecord) => {
    records.push(r);
    log.sink(r);
  };
  const credentials = new CredentialResolver(feed.projection, box);
  const logger = pino({ level: "silent" });
  mqttEdge = await startMqttEdge({
    feed,
    credentials,
    port: 0,
    logger,
    edgeId: "mqtt-1",
    onDecision: sink,
    logAllows: true,
  });
  amqpEdge = await startAmqpEdge({
    feed,
    credentials,
    upstream: { url: RABBIT },
    port: 0,
    logger,
    edgeId: "amqp-1",
    onDecision: sink,
    logAllows: true,
  });
}, 60_000);

afterAll(async () => {
  for (const c of clients) await c.endAsync(true).catch(() => {});
  await mqttEdge?.close();
  await amqpEdge?.close();
  await log?.close();
  await feed?.close();
  await store?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
  await run("/usr/sbin/rabbitmqctl", ["delete_vhost", vhost], { timeout: 30_000 }).catch(() => {});
});

describe("a recorded MQTT + AMQP session, audited", () => {
  it("records the session: grants, traffic, revocations", async () => {
    await append("account", "AccountCreated", { accountId: ACCT, alias: "acme" });
    await append("alice", "UserCreated", { userId: "u1", userName: "alice" });
    await append("bob", "UserCreated", { userId: "u2", userName: "bob" });
    await append("topic", "TopicCreated", { instanceId: "mqtt-local", topic: "orders" });
    await append("gid", "GroupIdCreated", {
      instanceId: "mqtt-local",
      groupId: "GID_orders",
      owner: { kind: "root" },
    });
    const aliceKey = await key("aliceKey", "u1");
    const bobKey = await key("bobKey", "u2");
    await append("mqttPolicy", "PolicyCreated", {
      policyName: "orders-mqtt",
      versionId: "v1",
      document: {
        Version: "1",
        Statement: [
          {
            Effect: "Allow",
            Action: ["mq:PUB", "mq:SUB"],
            Resource: [`acs:mq:*:${ACCT}:topic/mqtt-local/orders`],
          },
          {
            Effect: "Allow",
            Action: ["mq:MqttInstanceAccess"],
            Resource: [`acs:mq:*:${ACCT}:instance/mqtt-local`],
          },
        ],
      },
    });
    await append("amqpPolicy", "PolicyCreated", {
      policyName: "orders-amqp",
      versionId: "v1",
      document: {
        Version: "1",
        Statement: [
          {
            Effect: "Allow",
            Action: ["amqp:GetVhost", "amqp:CreateExchange", "amqp:GetExchange"],
            Resource: [
              `acs:amqp:*:${ACCT}:/vhosts/${vhost}`,
              `acs:amqp:*:${ACCT}:/vhosts/${vhost}/exchanges/audit.x`,
            ],
          },
          {
            Effect: "Allow",
            Action: ["amqp:BasicPublish"],
            Resource: [`acs:amqp:*:${ACCT}:/vhosts/${vhost}/exchanges/audit.x/messages/orders.*`],
          },
        ],
      },
    });
    await append(
      "mqttGrant",
      "PolicyAttached",
      {
        policyName: "orders-mqtt",
        policyType: "Custom",
        target: { kind: "user", userId: "u1" },
      },
      "OPS-1 alice publishes orders",
    );
    await append(
      "amqpGrant",
      "PolicyAttached",
      {
        policyName: "orders-amqp",
        policyType: "Custom",
        target: { kind: "user", userId: "u2" },
      },
      "OPS-2 bob publishes orders",
    );

    // MQTT: alice subscribes and publishes (allowed), then loses the policy and is disconnected.
    const sub = await mqttClient(aliceKey, "GID_orders@@@sub");
    const got: string[] = [];
    sub.on("message", (_t, m) => got.push(m.toString()));
    await sub.subscribeAsync("orders/#", { qos: 1 });
    const pub = await mqttClient(aliceKey, "GID_orders@@@pub");
    await pub.publishAsync("orders/1", "first", { qos: 1 });
    await until(() => got.includes("first"), "alice's message");

    // AMQP: bob declares the exchange and publishes (allowed); a routing key outside orders.* is refused.
    const conn = await amqpClient(bobKey);
    const ch = await conn.createConfirmChannel();
    await ch.assertExchange("audit.x", "topic", { durable: false, autoDelete: false });
    ch.publish("audit.x", "orders.created", Buffer.from("order 1"));
    await ch.waitForConfirms();
    const refused = new Promise<unknown>((resolve) => ch.once("error", resolve));
    ch.publish("audit.x", "payments.created", Buffer.from("nope"));
    expect(String(await refused)).toContain("403");

    // Revocations.
    const closed = new Promise<void>((r) => pub.once("close", () => r()));
    await append(
      "mqttRevoke",
      "PolicyDetached",
      {
        policyName: "orders-mqtt",
        policyType: "Custom",
        target: { kind: "user", userId: "u1" },
      },
      "OPS-3 incident: alice's device compromised",
    );
    await closed;
    await expect(mqttClient(aliceKey, "GID_orders@@@again")).rejects.toThrow();
    conn.on("error", () => {}); // the edge closes the connection on the revocation
    const amqpClosed = new Promise<void>((r) => conn.once("close", () => r()));
    await append(
      "amqpRevoke",
      "PolicyDetached",
      {
        policyName: "orders-amqp",
        policyType: "Custom",
        target: { kind: "user", userId: "u2" },
      },
      "OPS-4 bob moved to payments",
    );
    // Bob lost amqp:GetVhost: the edge closes his connection, and a new one is refused (530).
    await amqpClosed;
    await expect(amqpClient(bobKey)).rejects.toThrow();
    await until(
      () =>
        records.some(
          (r) => r.action === "amqp:GetVhost" && r.decision !== "Allow" && r.position >= pos.amqpRevoke!,
        ),
      "the refused connection's decision",
    );
    await log.flush();

    // The log holds allows and denials of both protocols.
    const kinds = new Set(records.map((r) => `${r.protocol}:${r.decision === "Allow" ? "allow" : "deny"}`));
    expect([...kinds].sort()).toEqual(["amqp:allow", "amqp:deny", "mqtt:allow", "mqtt:deny"]);
    expect(log.stats()).toMatchObject({ dropped: 0, written: records.length });
    // The denials after each revocation were logged at (or after) the revocation's position.
    expect(
      records.some((r) => r.protocol === "mqtt" && r.decision !== "Allow" && r.position >= pos.mqttRevoke!),
    ).toBe(true);
    expect(
      records.some(
        (r) =>
          r.action === "amqp:BasicPublish" &&
          r.resource === PUBLISH.replace("orders.created", "payments.created") &&
          r.decision === "ImplicitDeny" &&
          r.position < pos.amqpRevoke!,
      ),
    ).toBe(true);
  }, 60_000);

  it("state, explain, who-can, diff and history answer about the session", async () => {
    await log.flush();
    const snapshots = SqliteSnapshotStore.open(join(dir, "audit-snapshots.db"));
    const auditor = new Auditor(store, { snapshots });
    await auditor.snapshots!.update({ every: 5 });

    const atGrant = await auditor.state({ at: pos.amqpGrant, accountId: ACCT });
    const user = (v: typeof atGrant, n: string) => v.accounts[0]!.users.find((u) => u.userName === n)!;
    expect(user(atGrant, "alice").policies).toEqual([{ policyType: "Custom", policyName: "orders-mqtt" }]);
    expect(user(atGrant, "alice").accessKeys[0]).not.toHaveProperty("secret");
    const now = await auditor.state({ accountId: ACCT });
    expect(user(now, "alice").policies).toEqual([]);
    expect(now.accounts[0]!.groupIds).toEqual([
      { instanceId: "mqtt-local", groupId: "GID_orders", owner: "root" },
    ]);

    // Explain each logged MQTT publish decision at its own position: the same answer.
    const mqttPubs = records.filter((r) => r.protocol === "mqtt" && r.action === "mq:PUB");
    expect(mqttPubs.length).toBeGreaterThan(0);
    for (const r of mqttPubs) {
      const ex = await auditor.explain({
        principal: "alice",
        action: r.action,
        resource: r.resource,
        context: r.context!,
        at: r.position,
      });
      expect(ex.decision.decision).toBe(r.decision);
    }
    const before = await auditor.explain({
      principal: "alice",
      action: "mq:PUB",
      resource: TOPIC,
      at: pos.mqttGrant,
    });
    expect(before.decision).toMatchObject({
      decision: "Allow",
      decidingStatements: [{ policy: "orders-mqtt", version: "v1", statement: 0 }],
    });
    const after = await auditor.explain({
      principal: "alice",
      action: "mq:PUB",
      resource: TOPIC,
      at: pos.mqttRevoke,
    });
    expect(after.decision.decision).toBe("ImplicitDeny");

    const who = await auditor.whoCan({ action: "amqp:BasicPublish", resource: PUBLISH, at: pos.amqpGrant });
    expect(who.allowed.map((a) => a.principal.userName ?? "root")).toEqual(["root", "bob"]);
    expect(who.allowed[1]!.decidingStatements).toMatchObject([{ policy: "orders-amqp", statement: 1 }]);
    expect((await auditor.whoCan({ action: "amqp:BasicPublish", resource: PUBLISH })).allowed.length).toBe(1);

    const diff = await auditor.diff({
      accountId: ACCT,
      from: pos.amqpGrant,
      to: pos.amqpRevoke,
      probes: [
        { action: "mq:PUB", resource: TOPIC },
        { action: "amqp:BasicPublish", resource: PUBLISH },
      ],
    });
    expect(
      diff.principals.map((p) => ({
        who: p.principal.userName,
        lost: p.lost.map((c) => [c.action, c.causes.map((e) => e.reason)]),
        gained: p.gained.length,
      })),
    ).toEqual([
      { who: "alice", lost: [["mq:PUB", ["OPS-3 incident: alice's device compromised"]]], gained: 0 },
      { who: "bob", lost: [["amqp:BasicPublish", ["OPS-4 bob moved to payments"]]], gained: 0 },
    ]);
    // Without probes: the requests the policies name (alice's topic and instance, bob's vhost and exchange).
    const named = await auditor.diff({ accountId: ACCT, from: pos.amqpGrant, to: pos.amqpRevoke });
    expect(named.probeSource).toBe("named");
    expect(named.principals.map((p) => p.principal.userName)).toEqual(["alice", "bob"]);

    const hist = await auditor.history({ accountId: ACCT, principal: "bob" });
    expect(hist.events.map((e) => [e.type, e.actor, e.reason])).toEqual([
      ["UserCreated", "root", undefined],
      ["AccessKeyCreated", "root", undefined],
      [
        "PolicyAttached",
        "root",
        "OPS-2 bob moved to payments".replace("moved to payments", "publishes orders"),
      ],
      ["PolicyDetached", "root", "OPS-4 bob moved to payments"],
    ]);
    expect(JSON.stringify(hist.events)).not.toContain("ciphertext");

    // verify: every logged decision re-decided at its position.
    const v = await auditor.verify(SqliteDecisionStore.open(join(dir, "decisions.db"), { readonly: true }));
    expect(v.checked).toBe(records.length);
    expect(v.mismatches).toEqual([]);
    snapshots.close();
  }, 60_000);

  it("the CLI verifies the session's decision log from the data dir", async () => {
    await log.flush();
    const r = runCli(["audit", "verify", "--data-dir", dir]);
    expect(r.stdout).toContain(`checked ${records.length} logged decisions: 0 mismatches`);
    expect(r.code).toBe(0);
  });
});
