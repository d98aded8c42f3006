/**
 * Listeners and authentication (SPEC §4.1): real mqtt.js clients over TCP, TLS
 * and WebSocket against an edge on a live projection. Every refusal is checked
 * by its CONNACK return code [MQTT-3.2.2-3] and by what the edge logged.
 */
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connectAsync, type MqttClient } from "mqtt";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import type { MqttEdge } from "../src/mod.ts";
import { mqttPassword, mqttUsername } from "../src/mod.ts";
import { ACCT, Inbox, type Key, OTHER_ACCT, selfSignedCert, World } from "./world.ts";

const ALL_MQ = { Version: "1", Statement: [{ Effect: "Allow", Action: "mq:*", Resource: "*" }] };

let w: World;
let edge: MqttEdge;
let tcp: string;
let alice: Key & { userId: string };
let bob: Key & { userId: string };
let root: Key;
let cert: { key: string; cert: string };

beforeAll(async () => {
  w = await World.create();
  alice = await w.userWithKey("alice");
  bob = await w.userWithKey("bob");
  root = await w.key("root");
  await w.policy("all-mq", ALL_MQ);
  await w.attach("all-mq", { user: alice.userId });
  await w.attach("all-mq", { user: bob.userId });
  await w.topic("t");
  await w.groupId("GID_shared"); // created by root: everyone's
  await w.groupId("GID_alice", alice.userId); // alice's own
  cert = selfSignedCert();
  edge = await w.edge({ tls: { port: 0, ...cert }, ws: { port: 0 } });
  tcp = `mqtt://127.0.0.1:${edge.port}`;
});
afterAll(async () => w?.close());

/** Try to connect; resolve the CONNACK return code (0 = accepted). */
async function code(
  username: string | undefined,
  password: string | undefined,
  clientId: string,
  url = tcp,
): Promise<number> {
  try {
    const c = await connectAsync(url, {
      clientId,
      ...(username !== undefined ? { username } : {}),
      ...(password !== undefined ? { password } : {}),
      protocolVersion: 4,
      reconnectPeriod: 0,
      connectTimeout: 5_000,
    });
    await c.endAsync(true);
    return 0;
  } catch (e) {
    return (e as { code?: number }).code ?? -1;
  }
}
const login = (k: Pick<Key, "accessKeyId" | "secret">, clientId: string, url = tcp) =>
  code(mqttUsername(k.accessKeyId, "mqtt-local"), mqttPassword(k.secret, clientId), clientId, url);

describe("listeners", () => {
  test("TCP, TLS and WebSocket carry MQTT 3.1.1 end to end", async () => {
    const sub = await w.connect(`mqtts://127.0.0.1:${edge.tlsPort}`, alice, "GID_shared@@@tls", {
      ca: cert.cert,
      rejectUnauthorized: true,
    });
    const inbox = new Inbox(sub);
    await sub.subscribeAsync("t/#", { qos: 1 });
    const ws = await w.connect(`ws://127.0.0.1:${edge.wsPort}`, alice, "GID_shared@@@ws");
    const plain = await w.connect(tcp, alice, "GID_shared@@@tcp");
    await ws.publishAsync("t/ws", "over-ws", { qos: 1 });
    await plain.publishAsync("t/tcp", "over-tcp", { qos: 0 });
    await inbox.until((m) => m.length === 2);
    expect(inbox.payloads().sort()).toEqual(["over-tcp", "over-ws"]);
    const transports = edge.sessions().map((s) => s.transport);
    expect(transports).toEqual(expect.arrayContaining(["tls", "ws", "tcp"]));
    await Promise.all([sub.endAsync(), ws.endAsync(), plain.endAsync()]);
  });

  test("mosquitto_pub over TLS meets an `acs:SecureTransport` condition that plain TCP does not", async () => {
    const k = await w.userWithKey("tls-mosquitto");
    await w.policy("tls-mosquitto", {
      Version: "1",
      Statement: [
        {
          Effect: "Allow",
          Action: "mq:MqttInstanceAccess",
          Resource: "*",
          Condition: { Bool: { "acs:SecureTransport": "true" } },
        },
        { Effect: "Allow", Action: "mq:PUB", Resource: "acs:mq:*:*:topic/mqtt-local/t" },
      ],
    });
    await w.attach("tls-mosquitto", { user: k.userId });
    const dir = mkdtempSync(join(tmpdir(), "mqtt-ca-"));
    const ca = join(dir, "ca.pem");
    writeFileSync(ca, cert.cert);
    const sub = await w.connect(tcp, alice, "GID_shared@@@tls-watch");
    const inbox = new Inbox(sub);
    await sub.subscribeAsync("t/#");
    const cid = "GID_shared@@@mosq-tls";
    const run = (port: number, extra: string[]) =>
      new Promise<number>((resolve) =>
        execFile(
          "mosquitto_pub",
          [
            ...["-h", "127.0.0.1", "-p", String(port), "-V", "mqttv311", "-i", cid],
            ...["-u", mqttUsername(k.accessKeyId, "mqtt-local"), "-P", mqttPassword(k.secret, cid)],
            ...["-t", "t/mosquitto", "-m", `via-${port}`, "-q", "1", ...extra],
          ],
          { timeout: 10_000 },
          (err) => resolve(err ? Number((err as { code?: number }).code) : 0),
        ),
      );
    try {
      expect(await run(edge.port, [])).toBe(5);
      expect(await run(edge.tlsPort!, ["--cafile", ca])).toBe(0);
      await inbox.waitFor(`via-${edge.tlsPort}`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("MQTT 3.1 (protocol level 3) with a 64-character client id is accepted", async () => {
    const id = `GID_shared@@@${"d".repeat(51)}`;
    expect(id.length).toBe(64);
    const c = await w.connect(tcp, alice, id, { protocolVersion: 3, protocolId: "MQIsdp" });
    expect(c.connected).toBe(true);
    await c.endAsync();
  });

  test("MQTT 5 is refused with `unacceptable protocol version` (aedes 1.x speaks 3.1/3.1.1 only)", async () => {
    const err = await connectAsync(tcp, {
      clientId: "GID_shared@@@v5",
      username: mqttUsername(alice.accessKeyId, "mqtt-local"),
      password: mqttPassword(alice.secret, "GID_shared@@@v5"),
      protocolVersion: 5,
      reconnectPeriod: 0,
      connectTimeout: 5_000,
    }).then(
      () => undefined,
      (e: unknown) => e as { code?: number; message: string },
    );
    expect(err).toBeDefined();
    expect(err?.code).toBe(1);
  });

  test("a plain HTTP request to the WebSocket port gets 426 and the edge keeps serving", async () => {
    const r = await fetch(`http://127.0.0.1:${edge.wsPort}/`);
    expect(r.status).toBe(426);
    expect(await login(alice, "GID_shared@@@after-http", `ws://127.0.0.1:${edge.wsPort}`)).toBe(0);
  });
});

describe("signature authentication", () => {
  test("a correct signature is accepted for a RAM user and for the root account", async () => {
    expect(await login(alice, "GID_shared@@@a1")).toBe(0);
    expect(await login(root, "GID_shared@@@r1")).toBe(0);
  });

  test("bad credentials → CONNACK 4 (bad user name or password)", async () => {
    const cid = "GID_shared@@@bad";
    const user = mqttUsername(alice.accessKeyId, "mqtt-local");
    expect(await code(user, mqttPassword("wrong-secret", cid), cid)).toBe(4);
    // The signature is bound to the client id.
    expect(await code(user, mqttPassword(alice.secret, "GID_shared@@@other"), cid)).toBe(4);
    expect(await code(user, undefined, cid)).toBe(4);
    expect(await code(undefined, undefined, cid)).toBe(4);
    expect(await code(mqttUsername("LTAInope", "mqtt-local"), mqttPassword(alice.secret, cid), cid)).toBe(4);
    expect(await code(`Token|${alice.accessKeyId}|mqtt-local`, mqttPassword(alice.secret, cid), cid)).toBe(4);
    expect(await code("alice", "secret", cid)).toBe(4);
    // Another instance's username.
    expect(
      await code(mqttUsername(alice.accessKeyId, "mqtt-other"), mqttPassword(alice.secret, cid), cid),
    ).toBe(4);
    const refused = w.log.messages("mqtt connect refused").filter((l) => l.clientId === cid);
    expect(refused.map((l) => l.reason)).toEqual(
      expect.arrayContaining([
        expect.stringContaining("signature does not match"),
        expect.stringContaining("unknown AccessKeyId"),
        expect.stringContaining("not supported"),
        expect.stringContaining("this edge serves `mqtt-local`"),
      ]),
    );
    // Nothing secret in the log.
    expect(JSON.stringify(w.log.lines)).not.toContain(alice.secret);
  });

  test("client id rules → CONNACK 2 (identifier rejected)", async () => {
    expect(await login(alice, "no-separator")).toBe(2);
    expect(await login(alice, `GID_shared@@@${"d".repeat(52)}`)).toBe(2); // 65 characters
    expect(await login(alice, "GID_missing@@@d")).toBe(2); // no such Group ID
    expect(await login(alice, "@@@d")).toBe(2);
    // An empty client id gets a generated one, which is not `<GroupID>@@@<DeviceID>`.
    expect(await code(mqttUsername(alice.accessKeyId, "mqtt-local"), "x", "")).toBe(2);
    const reasons = w.log.messages("mqtt connect refused").map((l) => String(l.reason));
    expect(reasons.some((r) => r.includes("at most 64"))).toBe(true);
    expect(reasons.some((r) => r.includes("`GID_missing` does not exist"))).toBe(true);
  });

  test("Group ID ownership (SPEC §2): a user's Group ID is that user's and root's only", async () => {
    expect(await login(alice, "GID_alice@@@d")).toBe(0);
    expect(await login(root, "GID_alice@@@d")).toBe(0);
    expect(await login(bob, "GID_alice@@@d")).toBe(5);
    expect(await login(bob, "GID_shared@@@d")).toBe(0);
    expect(
      w.log
        .messages("mqtt connect refused")
        .some((l) => String(l.reason).includes("belongs to another RAM user")),
    ).toBe(true);
  });

  test("Group IDs of another account, or of another instance, do not exist for the caller", async () => {
    const other = await w.userWithKey("carol", OTHER_ACCT);
    await w.policy("all-mq", ALL_MQ, OTHER_ACCT);
    await w.attach("all-mq", { user: other.userId }, "Custom", OTHER_ACCT);
    await w.groupId("GID_other_acct", "root", "mqtt-local", OTHER_ACCT);
    await w.groupId("GID_other_inst", "root", "mqtt-2", ACCT);
    expect(await login(alice, "GID_other_acct@@@d")).toBe(2);
    expect(await login(other, "GID_other_acct@@@d")).toBe(0);
    expect(await login(alice, "GID_other_inst@@@d")).toBe(2);
  });

  test("an inactive key or a disabled user → CONNACK 5 (not authorized)", async () => {
    const dave = await w.userWithKey("dave");
    await w.attach("all-mq", { user: dave.userId });
    const second = await w.key(dave.userId);
    expect(await login(dave, "GID_shared@@@d")).toBe(0);
    await w.append(
      ACCT,
      w.ev("AccessKeyStatusChanged", { accessKeyId: dave.accessKeyId, status: "Inactive" }),
    );
    expect(await login(dave, "GID_shared@@@d")).toBe(5);
    expect(await login(second, "GID_shared@@@d")).toBe(0);
    await w.append(ACCT, w.ev("UserDisabled", { userId: dave.userId }));
    expect(await login(second, "GID_shared@@@d")).toBe(5);
    await w.append(ACCT, w.ev("UserDeleted", { userId: dave.userId }));
    expect(await login(second, "GID_shared@@@d")).toBe(4); // the key is gone with its user
  });

  test("no `mq:MqttInstanceAccess` → CONNACK 5 and one denial log line naming the decision", async () => {
    const erin = await w.userWithKey("erin"); // no policy at all
    expect(await login(erin, "GID_shared@@@e")).toBe(5);
    const line = w.log.messages("mqtt denied").find((l) => l.clientId === "GID_shared@@@e");
    expect(line).toMatchObject({
      principal: `${ACCT}/${erin.userId}`,
      principalName: "user `erin`",
      action: "mq:MqttInstanceAccess",
      resource: `acs:mq:local:${ACCT}:instance/mqtt-local`,
      stage: "connect",
      decision: "ImplicitDeny",
    });
  });

  test("a second connection with the same client id takes over [MQTT-3.1.4-2]", async () => {
    const first = await w.connect(tcp, alice, "GID_shared@@@same");
    const closed = new Promise<void>((r) => first.once("close", () => r()));
    const second = await w.connect(tcp, alice, "GID_shared@@@same");
    await closed;
    expect(second.connected).toBe(true);
    expect(edge.sessions().filter((s) => s.clientId === "GID_shared@@@same")).toHaveLength(1);
    await second.endAsync();
  });
});

describe("repeated failures are slowed down", () => {
  test("after the free failures every attempt waits a growing, bounded delay", async () => {
    const slow = await w.edge({ authThrottle: { freeFailures: 2, baseDelayMs: 120, maxDelayMs: 240 } });
    const url = `mqtt://127.0.0.1:${slow.port}`;
    const cid = "GID_shared@@@brute";
    const user = mqttUsername(alice.accessKeyId, "mqtt-local");
    const timed = async () => {
      const t0 = performance.now();
      const c = await code(user, "not-the-signature", cid, url);
      return { c, ms: performance.now() - t0 };
    };
    const attempts = [];
    for (let i = 0; i < 5; i++) attempts.push(await timed());
    expect(attempts.map((a) => a.c)).toEqual([4, 4, 4, 4, 4]);
    // Lower bounds only (never a speed assertion): after 2 failures the 3rd attempt waited ≥ 120 ms,
    // the 4th and 5th ≥ 240 ms (the cap).
    expect(attempts[2]!.ms).toBeGreaterThanOrEqual(110);
    expect(attempts[3]!.ms).toBeGreaterThanOrEqual(230);
    expect(attempts[4]!.ms).toBeGreaterThanOrEqual(230);
    expect(await slow.registry.metrics()).toMatch(/portcullis_mqtt_auth_throttled_total 3/);
    // The right signature still gets in (after its wait), and clears the record.
    expect(await login(alice, cid, url)).toBe(0);
    expect(await login(alice, cid, url)).toBe(0);
    expect(await slow.registry.metrics()).toMatch(/portcullis_mqtt_auth_throttled_total 4/);
  });
});

describe("metrics", () => {
  test("connect outcomes and connections are exported with the portcullis_mqtt_ prefix", async () => {
    const c: MqttClient = await w.connect(tcp, alice, "GID_shared@@@metrics");
    const text = await edge.registry.metrics();
    expect(text).toMatch(/portcullis_mqtt_connects_total\{result="accepted"\} \d+/);
    expect(text).toMatch(/portcullis_mqtt_connects_total\{result="bad_credentials"\} \d+/);
    expect(text).toMatch(/portcullis_mqtt_connects_total\{result="identifier_rejected"\} \d+/);
    expect(text).toMatch(/portcullis_mqtt_connects_total\{result="not_authorized"\} \d+/);
    expect(text).toMatch(/portcullis_mqtt_connections\{transport="tcp"\} [1-9]/);
    expect(text).toMatch(new RegExp(`portcullis_mqtt_applied_position ${w.feed.position}`));
    expect(edge.health()).toMatchObject({
      ok: true,
      position: w.feed.position,
      stale: false,
      failClosed: false,
    });
    await c.endAsync();
  });
});
