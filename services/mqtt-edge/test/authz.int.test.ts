/**
 * Authorization through the projection (SPEC §4.1): CONNECT, PUBLISH (will and
 * retained included), SUBSCRIBE per filter and every delivery, with real mqtt.js
 * clients. "Receives nothing" is proven with a barrier, never a sleep: after the
 * refused message the publisher sends an allowed sentinel on the same
 * connection; once the subscriber has the sentinel, an earlier message would
 * have arrived before it (one TCP stream, in-order delivery).
 */

import type { DecisionRecord } from "@portcullis/feed";
import type { MqttClient } from "mqtt";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import type { MqttEdge } from "../src/mod.ts";
import { ACCT, Inbox, type Key, OTHER_ACCT, selfSignedCert, unique, World } from "./world.ts";

type Stmt = Record<string, unknown>;
const doc = (...Statement: Stmt[]) => ({ Version: "1", Statement });
const allow = (Action: string | string[], Resource: string | string[], Condition?: unknown): Stmt => ({
  Effect: "Allow",
  Action,
  Resource,
  ...(Condition ? { Condition } : {}),
});
const deny = (Action: string | string[], Resource: string | string[], Condition?: unknown): Stmt => ({
  Effect: "Deny",
  Action,
  Resource,
  ...(Condition ? { Condition } : {}),
});
const INSTANCE = allow("mq:MqttInstanceAccess", "acs:mq:*:*:instance/mqtt-local");
const T = (t: string) => `acs:mq:*:*:topic/mqtt-local/${t}`;

let w: World;
let edge: MqttEdge;
let url: string;
let root: Key;
const records: DecisionRecord[] = [];
let cert: { key: string; cert: string };

/** A user with one key and a custom policy made of these statements. */
async function principal(name: string, ...statements: Stmt[]): Promise<Key & { userId: string }> {
  const k = await w.userWithKey(name);
  const pol = unique(`${name}-`);
  await w.policy(pol, doc(INSTANCE, ...statements));
  await w.attach(pol, { user: k.userId });
  return k;
}

/** Subscribe and return the granted QoS per filter (128 = refused). */
async function subscribe(c: MqttClient, filters: string[], qos: 0 | 1 | 2 = 0): Promise<number[]> {
  try {
    const granted = await c.subscribeAsync(filters, { qos });
    return filters.map((f) => granted.find((g) => g.topic === f)?.qos ?? -1);
  } catch (e) {
    // mqtt.js rejects when any filter is refused; the SUBACK is on the error, in request order.
    const granted = (e as { packet?: { granted?: number[] } }).packet?.granted;
    if (!granted) throw e;
    return [...granted];
  }
}

/** A root subscriber on `filter` with its inbox. */
async function watcher(filter: string, clientId = unique("GID_shared@@@w")): Promise<Inbox> {
  const c = await w.connect(url, root, clientId);
  const inbox = new Inbox(c);
  expect(await subscribe(c, [filter], 1)).toEqual([1]);
  return inbox;
}

beforeAll(async () => {
  w = await World.create();
  root = await w.key("root");
  for (const t of ["a", "TopicA", "TopicB", "ip", "qos", "ret", "cid", "will", "sentinel"]) await w.topic(t);
  await w.groupId("GID_shared");
  cert = selfSignedCert();
  edge = await w.edge({ onDecision: (r) => records.push(r), tls: { port: 0, ...cert } });
  url = `mqtt://127.0.0.1:${edge.port}`;
});
afterAll(async () => w?.close());

describe("PUBLISH and SUBSCRIBE by rule of SPEC §4.1", () => {
  test("a parent topic covers its sub-topics", async () => {
    const k = await principal("parent", allow(["mq:PUB", "mq:SUB"], T("a")));
    const sub = await w.connect(url, k, "GID_shared@@@parent-sub");
    const inbox = new Inbox(sub);
    expect(await subscribe(sub, ["a/#", "a/b/+", "TopicA/#"])).toEqual([0, 0, 128]);
    const pub = await w.connect(url, k, "GID_shared@@@parent-pub");
    await pub.publishAsync("a/b/c", "deep");
    await pub.publishAsync("a", "parent-itself");
    await inbox.until((m) => m.length === 2);
    // a/# and a/b/+ both match a/b/c: aedes delivers it once [MQTT-3.3.5-1 allows either].
    expect(inbox.payloads().sort()).toEqual(["deep", "parent-itself"]);
  });

  test("a narrower pattern restricts to what it names", async () => {
    const k = await principal("narrow", allow(["mq:PUB", "mq:SUB"], T("a/devices/*")));
    const c = await w.connect(url, k, "GID_shared@@@narrow");
    expect(await subscribe(c, ["a/devices/+", "a/#", "a/devices/7"])).toEqual([0, 128, 0]);
    const seen = await watcher("a/#");
    await c.publishAsync("a/other", "refused", { qos: 1 }); // acknowledged (drop mode) …
    await c.publishAsync("a/devices/7", "allowed", { qos: 1 });
    await seen.waitFor("allowed");
    expect(seen.payloads()).toEqual(["allowed"]); // … and never routed
    expect(c.connected).toBe(true);
  });

  test("legacy forms: `acs:mq:*:*:<Topic>` (seed 003 verbatim) and `<instanceId>%<topic>`", async () => {
    const k = await principal(
      "legacy",
      allow("mq:PUB", ["acs:mq:*:*:TopicA", "acs:mq:*:*:TopicB"]),
      allow("mq:SUB", "acs:mq:*:*:mqtt-local%TopicB"),
    );
    const c = await w.connect(url, k, "GID_shared@@@legacy");
    const inbox = new Inbox(c);
    expect(await subscribe(c, ["TopicB/#", "TopicA/#"])).toEqual([0, 128]);
    await c.publishAsync("TopicA/x", "a-x", { qos: 1 });
    await c.publishAsync("TopicB/y", "b-y", { qos: 1 });
    await inbox.waitFor("b-y");
    const seen = await watcher("TopicA/#");
    await c.publishAsync("TopicA/z", "a-z", { qos: 1 });
    await seen.waitFor("a-z");
  });

  test("conditions on the source IP", async () => {
    const k = await principal(
      "ip",
      allow("mq:PUB", T("ip/local"), { IpAddress: { "acs:SourceIp": "127.0.0.0/8" } }),
      allow("mq:PUB", T("ip/remote"), { IpAddress: { "acs:SourceIp": "10.0.0.0/8" } }),
      allow("mq:PUB", T("ip/not-local"), { NotIpAddress: { "acs:SourceIp": "127.0.0.1" } }),
    );
    const c = await w.connect(url, k, "GID_shared@@@ip");
    const seen = await watcher("ip/#");
    await c.publishAsync("ip/remote", "remote", { qos: 1 });
    await c.publishAsync("ip/not-local", "not-local", { qos: 1 });
    await c.publishAsync("ip/local", "local", { qos: 1 });
    await seen.waitFor("local");
    expect(seen.payloads()).toEqual(["local"]);
  });

  test("conditions on TLS (`acs:SecureTransport`)", async () => {
    const k = await w.userWithKey("tls-only");
    await w.policy(
      "tls-only",
      doc(
        allow("mq:MqttInstanceAccess", "*", { Bool: { "acs:SecureTransport": "true" } }),
        allow(["mq:PUB", "mq:SUB"], T("a")),
      ),
    );
    await w.attach("tls-only", { user: k.userId });
    await expect(w.connect(url, k, "GID_shared@@@tls-only")).rejects.toMatchObject({ code: 5 });
    const c = await w.connect(`mqtts://127.0.0.1:${edge.tlsPort}`, k, "GID_shared@@@tls-only", {
      ca: cert.cert,
    });
    expect(c.connected).toBe(true);
    const denial = w.log
      .messages("mqtt denied")
      .find((l) => l.clientId === "GID_shared@@@tls-only" && l.action === "mq:MqttInstanceAccess");
    expect(denial).toMatchObject({ decision: "ImplicitDeny", stage: "connect" });
  });

  test("conditions on QoS (`mq:Qos`) for PUBLISH and SUBSCRIBE", async () => {
    const k = await principal(
      "qos0",
      allow(["mq:PUB", "mq:SUB"], T("qos"), { NumericLessThanEquals: { "mq:Qos": 0 } }),
    );
    const c = await w.connect(url, k, "GID_shared@@@qos0");
    expect(await subscribe(c, ["qos/#"], 1)).toEqual([128]);
    expect(await subscribe(c, ["qos/#"], 0)).toEqual([0]);
    const seen = await watcher("qos/#");
    await c.publishAsync("qos/x", "at-1", { qos: 1 }); // PUBACK, then dropped
    await c.publishAsync("qos/x", "at-0", { qos: 0 });
    await seen.waitFor("at-0");
    expect(seen.payloads()).toEqual(["at-0"]);
  });

  test("conditions on retain (`mq:Retain`): a refused retained PUBLISH is not stored either", async () => {
    const k = await principal(
      "no-retain",
      allow(["mq:PUB", "mq:SUB"], T("ret")),
      deny("mq:PUB", T("ret"), { Bool: { "mq:Retain": "true" } }),
    );
    const c = await w.connect(url, k, "GID_shared@@@no-retain");
    await c.publishAsync("ret/x", "retained", { qos: 1, retain: true });
    await c.publishAsync("ret/y", "kept", { qos: 1, retain: false });
    // A new root subscriber gets retained messages: none from the refused one.
    const root2 = await w.connect(url, root, "GID_shared@@@ret-root");
    const inbox = new Inbox(root2);
    await root2.publishAsync("ret/z", "root-retained", { qos: 1, retain: true });
    expect(await subscribe(root2, ["ret/#"], 1)).toEqual([1]);
    await inbox.waitFor("root-retained");
    expect(inbox.payloads()).toEqual(["root-retained"]);
    const denial = w.log.messages("mqtt denied").find((l) => l.clientId === "GID_shared@@@no-retain");
    expect(denial).toMatchObject({
      action: "mq:PUB",
      decision: "ExplicitDeny",
      resource: `acs:mq:local:${ACCT}:topic/mqtt-local/ret/x`,
      statement: expect.stringMatching(/^Custom:no-retain-.*@v1#2$/),
    });
    const rec = records.find((r) => r.clientId === "GID_shared@@@no-retain");
    expect(rec).toMatchObject({
      protocol: "mqtt",
      edgeId: edge.edgeId,
      action: "mq:PUB",
      decision: "ExplicitDeny",
      context: { "mq:Retain": true, "mq:Qos": 1, "acs:SourceIp": "127.0.0.1", "acs:SecureTransport": false },
    });
    expect(rec!.decidingStatements[0]).toMatchObject({ statement: 2, effect: "Deny" });
    // The record carries the time the decision used, so an audit can re-decide it.
    expect(String(rec!.context?.["acs:CurrentTime"])).toMatch(/^\d{4}-\d\d-\d\dT/);
  });

  test("conditions on the client id and Group ID", async () => {
    const k = await principal(
      "cid",
      allow("mq:PUB", T("cid"), { StringLike: { "mq:ClientId": "GID_shared@@@sensor-*" } }),
      allow("mq:PUB", T("cid/gid"), { StringEquals: { "mq:GroupId": "GID_other" } }),
    );
    const seen = await watcher("cid/#");
    const other = await w.connect(url, k, "GID_shared@@@pump-1");
    await other.publishAsync("cid/x", "pump", { qos: 1 });
    await other.publishAsync("cid/gid", "wrong-gid", { qos: 1 });
    const sensor = await w.connect(url, k, "GID_shared@@@sensor-1");
    await sensor.publishAsync("cid/x", "sensor", { qos: 1 });
    await seen.waitFor("sensor");
    expect(seen.payloads()).toEqual(["sensor"]);
  });

  test("conditions on the time (`acs:CurrentTime`): the edge supplies the clock", async () => {
    // Without the clock in the context a positive Date condition is false: this Deny would never apply.
    const k = await principal(
      "time",
      allow("mq:PUB", T("cid/time/*")),
      deny("mq:PUB", T("cid/time/denied"), {
        DateGreaterThan: { "acs:CurrentTime": "2000-01-01T00:00:00Z" },
      }),
      allow("mq:PUB", T("cid/until"), { DateLessThan: { "acs:CurrentTime": "2999-01-01T00:00:00Z" } }),
      allow("mq:PUB", T("cid/expired"), { DateLessThan: { "acs:CurrentTime": "2001-01-01T00:00:00Z" } }),
    );
    const seen = await watcher("cid/#");
    const c = await w.connect(url, k, "GID_shared@@@time");
    await c.publishAsync("cid/time/denied", "denied", { qos: 1 });
    await c.publishAsync("cid/expired", "expired", { qos: 1 });
    await c.publishAsync("cid/until", "until", { qos: 1 });
    await c.publishAsync("cid/time/ok", "ok", { qos: 1 });
    await seen.waitFor("ok");
    expect(seen.payloads()).toEqual(["until", "ok"]);
  });

  test("a time-dependent allow is decided at each delivery, never remembered", async () => {
    const until = new Date(Date.now() + 1_500).toISOString();
    const k = await principal(
      "expiring",
      allow("mq:SUB", T("sentinel")),
      allow("mq:SUB", T("cid/exp/*"), { DateLessThan: { "acs:CurrentTime": until } }),
    );
    const c = await w.connect(url, k, "GID_shared@@@expiring");
    const inbox = new Inbox(c);
    expect(await subscribe(c, ["cid/exp/#", "sentinel/#"], 1)).toEqual([1, 1]);
    const pub = await w.connect(url, root, "GID_shared@@@expiring-pub");
    await pub.publishAsync("cid/exp/x", "early", { qos: 1 });
    await inbox.waitFor("early");
    // No event happens; only the clock moves past `until`. Publish until one is refused.
    let n = 0;
    await expect
      .poll(
        async () => {
          const tag = `late-${n++}`;
          await pub.publishAsync("cid/exp/x", tag, { qos: 1 });
          await pub.publishAsync("sentinel/x", `s-${tag}`, { qos: 1 });
          await inbox.waitFor(`s-${tag}`);
          return inbox.payloads().includes(tag);
        },
        { timeout: 5_000, interval: 100 },
      )
      .toBe(false);
    expect(Date.now()).toBeGreaterThanOrEqual(Date.parse(until));
  });

  test("no `mq:PUB` at all: refused; with `refusedPublish: disconnect` the connection is closed", async () => {
    const k = await principal("sub-only", allow("mq:SUB", T("a")));
    const strict = await w.edge({ refusedPublish: "disconnect" });
    const c = await w.connect(`mqtt://127.0.0.1:${strict.port}`, k, "GID_shared@@@strict");
    const closed = new Promise<void>((r) => c.once("close", () => r()));
    c.publish("a/x", "nope", { qos: 0 });
    await closed;
    expect(
      w.log
        .messages("mqtt denied")
        .some((l) => l.clientId === "GID_shared@@@strict" && l.action === "mq:PUB"),
    ).toBe(true);
  });
});

describe("UNSUBSCRIBE", () => {
  test("a client's UNSUBSCRIBE removes its subscription (filters are namespaced inside the broker)", async () => {
    const c = await w.connect(url, root, "GID_shared@@@unsub", { clean: false });
    const inbox = new Inbox(c);
    expect(await subscribe(c, ["a/unsub/#", "sentinel/#"], 1)).toEqual([1, 1]);
    const pub = await w.connect(url, root, "GID_shared@@@unsub-pub");
    await pub.publishAsync("a/unsub/x", "subscribed", { qos: 1 });
    await inbox.waitFor("subscribed");
    await c.unsubscribeAsync("a/unsub/#");
    expect(edge.sessions().find((x) => x.clientId === "GID_shared@@@unsub")?.subscriptions).toEqual([
      { filter: "sentinel/#", qos: 1 },
    ]);
    await pub.publishAsync("a/unsub/x", "unsubscribed", { qos: 1 });
    await pub.publishAsync("sentinel/x", "unsub-barrier", { qos: 1 });
    await inbox.waitFor("unsub-barrier");
    expect(inbox.payloads()).not.toContain("unsubscribed");
    // The persistent session forgot it too.
    await c.endAsync();
    const again = await w.connect(url, root, "GID_shared@@@unsub", { clean: false });
    expect(edge.sessions().find((x) => x.clientId === "GID_shared@@@unsub")?.subscriptions).toEqual([
      { filter: "sentinel/#", qos: 1 },
    ]);
    await again.endAsync();
  });
});

describe("every delivery is authorized", () => {
  test("an over-broad subscription never leaks what the receiver may not read (live and retained)", async () => {
    await w.connect(url, root, "GID_shared@@@retainer").then(async (c) => {
      await c.publishAsync("a/secret/r", "secret-retained", { qos: 1, retain: true });
      await c.publishAsync("a/public/r", "public-retained", { qos: 1, retain: true });
    });
    const k = await principal("broad", allow("mq:SUB", T("a")), deny("mq:SUB", T("a/secret/*")));
    const c = await w.connect(url, k, "GID_shared@@@broad");
    const inbox = new Inbox(c);
    expect(await subscribe(c, ["a/#"], 1)).toEqual([1]);
    await inbox.waitFor("public-retained");
    const pub = await w.connect(url, root, "GID_shared@@@broad-pub");
    await pub.publishAsync("a/secret/x", "secret-live", { qos: 1 });
    await pub.publishAsync("a/public/x", "public-live", { qos: 1 });
    await inbox.waitFor("public-live");
    expect(inbox.payloads()).toEqual(["public-retained", "public-live"]);
    expect(inbox.messages[0]!.retain).toBe(true);
    const denial = w.log.messages("mqtt denied").find((l) => l.clientId === "GID_shared@@@broad");
    expect(denial).toMatchObject({ stage: "deliver", action: "mq:SUB", decision: "ExplicitDeny" });
    expect(await edge.registry.metrics()).toMatch(
      /portcullis_mqtt_decisions_total\{action="mq:SUB",stage="deliver",result="ExplicitDeny"\} [1-9]/,
    );
  });

  test("QoS of a delivery is the minimum of the PUBLISH and the subscription [MQTT-3.8.4-6]", async () => {
    const c = await w.connect(url, root, "GID_shared@@@qos-min");
    const inbox = new Inbox(c);
    expect(await subscribe(c, ["qos/exact"], 1)).toEqual([1]);
    await c.publishAsync("qos/exact", "q2", { qos: 2 });
    await inbox.waitFor("q2");
    expect(inbox.messages[0]).toMatchObject({ topic: "qos/exact", qos: 1 });
  });
});

describe("allows sampled for the decision log (logAllows as a draw)", () => {
  test("each allow is drawn once, only the drawn ones are recorded, and the memo answers the rest", async () => {
    const sampled: DecisionRecord[] = [];
    let draws = 0;
    // Every third allow is drawn (a decision log's sampling draw, made deterministic).
    const e = await w.edge({ onDecision: (r) => sampled.push(r), logAllows: () => ++draws % 3 === 0 });
    const at = `mqtt://127.0.0.1:${e.port}`;
    const sub = await w.connect(at, root, unique("GID_shared@@@sampled-sub"));
    const inbox = new Inbox(sub);
    expect(await subscribe(sub, ["a/sampled"], 0)).toEqual([0]);
    const pub = await w.connect(at, root, unique("GID_shared@@@sampled-pub"));
    for (let i = 0; i < 30; i++) pub.publish("a/sampled", `m${i}`, { qos: 0 });
    await inbox.waitFor("m29");
    expect(inbox.payloads()).toHaveLength(30);
    // 2 CONNECTs + 1 SUBSCRIBE + 30 PUBLISHes + 30 deliveries, each drawn exactly once.
    expect(draws).toBe(63);
    const allows = sampled.filter((r) => r.decision === "Allow");
    expect(allows).toHaveLength(21);
    const pubs = allows.filter((r) => r.action === "mq:PUB");
    const dels = allows.filter((r) => r.action === "mq:SUB" && r.resource.endsWith("/a/sampled"));
    // Draws 1–3 are the CONNECTs and the SUBSCRIBE (the third drawn), 4–63 the messages.
    expect(pubs.length + dels.length).toBe(20);
    for (const r of [...pubs, ...dels]) {
      expect(r).toMatchObject({ edgeId: e.edgeId, decision: "Allow", position: w.feed.position });
      expect(r.resource).toBe(`acs:mq:local:${ACCT}:topic/mqtt-local/a/sampled`);
    }
  });
});

describe("wills", () => {
  test("an allowed will is published on an abrupt close; a refused one is not", async () => {
    const k = await principal("will", allow("mq:PUB", T("will/ok")));
    const seen = await watcher("will/#");
    const good = await w.connect(url, k, "GID_shared@@@will-ok", {
      will: { topic: "will/ok", payload: Buffer.from("bye-ok"), qos: 1, retain: false },
    });
    const bad = await w.connect(url, k, "GID_shared@@@will-bad", {
      will: { topic: "will/bad", payload: Buffer.from("bye-bad"), qos: 1, retain: false },
    });
    bad.stream.destroy(); // no DISCONNECT: the will applies [MQTT-3.1.2-8]
    await new Promise<void>((r) => bad.once("close", () => r()));
    // Wait until the edge has processed the refusal, then trigger the allowed will.
    await expect
      .poll(() => w.log.messages("mqtt denied").some((l) => l.clientId === "GID_shared@@@will-bad"))
      .toBe(true);
    good.stream.destroy();
    await seen.waitFor("bye-ok");
    expect(seen.payloads()).toEqual(["bye-ok"]);
    const line = w.log.messages("mqtt denied").find((l) => l.clientId === "GID_shared@@@will-bad");
    expect(line).toMatchObject({ stage: "will", action: "mq:PUB" });
  });
});

describe("edge rules before the policy", () => {
  test("`$SYS/` is refused to everyone, the account root included", async () => {
    const c = await w.connect(url, root, "GID_shared@@@sys");
    expect(await subscribe(c, ["$SYS/#", "$SYS/broker/x", "sentinel/#"])).toEqual([128, 128, 0]);
    const inbox = new Inbox(c);
    await c.publishAsync("$SYS/fake", "forged", { qos: 1 });
    await c.publishAsync("sentinel/x", "after", { qos: 1 });
    await inbox.waitFor("after");
    expect(inbox.payloads()).toEqual(["after"]);
  });

  test("a topic whose parent topic does not exist in the instance is refused (ApsaraMQ)", async () => {
    const c = await w.connect(url, root, "GID_shared@@@noparent");
    expect(await subscribe(c, ["nope/#", "#"])).toEqual([128, 0]);
    const inbox = new Inbox(c);
    await c.publishAsync("nope/x", "no-parent", { qos: 1 });
    await c.publishAsync("sentinel/y", "after", { qos: 1 });
    await inbox.waitFor("after");
    expect(inbox.payloads()).toContain("after");
    expect(inbox.payloads()).not.toContain("no-parent");
    expect(
      w.log
        .messages("mqtt denied")
        .some((l) => String(l.reason).includes("parent topic `nope` does not exist")),
    ).toBe(true);
  });

  test("accounts never see each other's messages, even with the same topics and `*` policies", async () => {
    const otherRoot = await w.key("root", OTHER_ACCT);
    await w.topic("a", "mqtt-local", OTHER_ACCT);
    await w.groupId("GID_shared", "root", "mqtt-local", OTHER_ACCT);
    const mine = await w.connect(url, root, "GID_shared@@@iso-mine");
    const theirs = await w.connect(url, otherRoot, "GID_shared@@@iso-theirs");
    const mineIn = new Inbox(mine);
    const theirsIn = new Inbox(theirs);
    await mine.publishAsync("a/iso/r", "mine-retained", { qos: 1, retain: true });
    expect(await subscribe(mine, ["a/iso/#"], 1)).toEqual([1]);
    expect(await subscribe(theirs, ["a/iso/#", "#"], 1)).toEqual([1, 1]);
    // Barrier: once `theirs` got its own message, the broker has routed it to every subscriber;
    // anything for `mine` would be on mine's socket before mine's own later message.
    await theirs.publishAsync("a/iso/x", "theirs-live", { qos: 1 });
    await theirsIn.waitFor("theirs-live");
    await mine.publishAsync("a/iso/x", "mine-live", { qos: 1 });
    await mineIn.waitFor("mine-live");
    expect(new Set(mineIn.payloads())).toEqual(new Set(["mine-retained", "mine-live"]));
    expect(new Set(theirsIn.payloads())).toEqual(new Set(["theirs-live"]));
    // Topics look the same to each client.
    expect(mineIn.messages.every((m) => m.topic.startsWith("a/iso/"))).toBe(true);
  });
});

describe("fail-closed", () => {
  test("when the feed is lost for too long everything is refused: deliveries, PUBLISH, SUBSCRIBE, CONNECT", async () => {
    // Margins wide enough that a loaded machine does not go stale before the cut.
    const lost = await World.create({
      feed: { probeIntervalMs: 50, staleAfterMs: 600, failClosedAfterMs: 400 },
    });
    try {
      const k = await lost.key("root");
      await lost.topic("a");
      await lost.topic("sentinel");
      await lost.groupId("GID_shared");
      const e = await lost.edge();
      const u = `mqtt://127.0.0.1:${e.port}`;
      const sub = await lost.connect(u, k, "GID_shared@@@fc-sub");
      const inbox = new Inbox(sub);
      expect(await subscribe(sub, ["a/#"], 1)).toEqual([1]);
      const pub = await lost.connect(u, k, "GID_shared@@@fc-pub");
      await pub.publishAsync("a/x", "before", { qos: 1 });
      await inbox.waitFor("before");
      expect(e.health().failClosed).toBe(false);
      // Cut the feed: the store stops answering.
      await lost.store.close();
      await expect.poll(() => e.health().failClosed, { timeout: 5_000 }).toBe(true);
      expect(e.health()).toMatchObject({ ok: false, stale: true });
      await pub.publishAsync("a/x", "during", { qos: 1 }); // acknowledged, dropped
      expect(await subscribe(sub, ["sentinel/#"], 0)).toEqual([128]);
      await expect(lost.connect(u, k, "GID_shared@@@fc-new")).rejects.toMatchObject({ code: 3 });
      expect(await e.registry.metrics()).toMatch(/portcullis_mqtt_feed_fail_closed 1/);
      expect(inbox.payloads()).toEqual(["before"]);
      expect(
        lost.log.messages("event feed lost: refusing everything (fail-closed)").length,
      ).toBeGreaterThanOrEqual(1);
    } finally {
      await Promise.all(lost.clients.map((c) => c.endAsync(true)));
      await Promise.all(lost.edges.map((x) => x.close()));
      await lost.feed.close();
    }
  });
});
