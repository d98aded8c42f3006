/**
 * Revocation (SPEC §7, issue 5 §4): a subscriber is receiving; an event takes
 * its permission away; once the feed has applied the event, it receives
 * nothing published afterwards, and its subscription is gone server-side (a
 * re-grant does not bring deliveries back). Credentials, user and instance
 * access gone → the session is disconnected. Only affected sessions are
 * re-checked.
 *
 * "Receives nothing" uses a barrier, not a sleep: after the message that must
 * not arrive, the same publisher sends a sentinel on a topic the subscriber
 * still reads; when the sentinel is in, anything earlier would be too.
 */
import type { MqttClient } from "mqtt";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import type { MqttEdge, RevocationRecord } from "../src/mod.ts";
import { ACCT, Inbox, type Key, unique, World } from "./world.ts";

const T = (t: string) => `acs:mq:*:*:topic/mqtt-local/${t}`;
const doc = (...Statement: Record<string, unknown>[]) => ({ Version: "1", Statement });
const BASE = doc(
  { Effect: "Allow", Action: "mq:MqttInstanceAccess", Resource: "acs:mq:*:*:instance/mqtt-local" },
  { Effect: "Allow", Action: "mq:SUB", Resource: T("sentinel") },
);
const FEED = doc({ Effect: "Allow", Action: "mq:SUB", Resource: T("a") });

let w: World;
let edge: MqttEdge;
let url: string;
let root: Key;
let publisher: MqttClient;
const revocations: RevocationRecord[] = [];

beforeAll(async () => {
  w = await World.create();
  root = await w.key("root");
  await w.topic("a");
  await w.topic("sentinel");
  await w.groupId("GID_shared");
  edge = await w.edge({ onRevocation: (r) => revocations.push(r) });
  url = `mqtt://127.0.0.1:${edge.port}`;
  publisher = await w.connect(url, root, "GID_shared@@@publisher");
});
afterAll(async () => w?.close());

/** A subscriber user with the base policy attached and one key. */
async function subscriber(): Promise<Key & { userId: string; base: string; feed: string }> {
  const k = await w.userWithKey(unique("sub-"));
  const base = unique("base-");
  const feed = unique("feed-");
  await w.policy(base, BASE);
  await w.policy(feed, FEED);
  await w.attach(base, { user: k.userId });
  return { ...k, base, feed };
}

/** Publish on `a/x` then a sentinel on `sentinel/x`; wait until `inbox` has the sentinel. */
async function publishThenBarrier(inbox: Inbox, payload: string): Promise<void> {
  const sentinel = unique("barrier-");
  await publisher.publishAsync("a/x", payload, { qos: 1 });
  await publisher.publishAsync("sentinel/x", sentinel, { qos: 1 });
  await inbox.waitFor(sentinel);
}

const metric = async (re: RegExp): Promise<number> => {
  const m = (await edge.registry.metrics()).match(re);
  return m ? Number(m[1]) : 0;
};
const unsubscribes = () => metric(/portcullis_mqtt_revocation_actions_total\{action="unsubscribe"\} (\d+)/);
const disconnects = () => metric(/portcullis_mqtt_revocation_actions_total\{action="disconnect"\} (\d+)/);
const checks = () => metric(/portcullis_mqtt_revocation_checks_total (\d+)/);

const filtersOf = (clientId: string) =>
  edge
    .sessions()
    .find((s) => s.clientId === clientId)
    ?.subscriptions.map((x) => x.filter)
    .sort();

interface Revocation {
  /** Take the permission away (returns the position of the event). */
  revoke(): Promise<number>;
  /** Give it back (to prove the subscription is gone, not just filtered). */
  regrant(): Promise<unknown>;
}

describe.each<[string, (s: Awaited<ReturnType<typeof subscriber>>) => Promise<Revocation>]>([
  [
    "policy detached from the user",
    async (s) => {
      await w.attach(s.feed, { user: s.userId });
      return {
        revoke: () =>
          w.append(ACCT, w.attachEvent(s.feed, { user: s.userId }, "Custom", ACCT, "PolicyDetached")),
        regrant: () => w.attach(s.feed, { user: s.userId }),
      };
    },
  ],
  [
    "deny statement added",
    async (s) => {
      await w.attach(s.feed, { user: s.userId });
      const d = unique("deny-");
      await w.policy(d, doc({ Effect: "Deny", Action: "mq:SUB", Resource: T("a/*") }));
      return {
        revoke: () => w.attach(d, { user: s.userId }),
        regrant: () => w.append(ACCT, w.attachEvent(d, { user: s.userId }, "Custom", ACCT, "PolicyDetached")),
      };
    },
  ],
  [
    "group membership removed",
    async (s) => {
      const g = unique("g");
      await w.append(ACCT, w.ev("GroupCreated", { groupId: g, groupName: g }));
      await w.attach(s.feed, { group: g });
      await w.append(ACCT, w.ev("UserAddedToGroup", { userId: s.userId, groupId: g }));
      return {
        revoke: () => w.append(ACCT, w.ev("UserRemovedFromGroup", { userId: s.userId, groupId: g })),
        regrant: () => w.append(ACCT, w.ev("UserAddedToGroup", { userId: s.userId, groupId: g })),
      };
    },
  ],
  [
    "policy version changed",
    async (s) => {
      await w.attach(s.feed, { user: s.userId });
      return {
        revoke: () =>
          w.append(
            ACCT,
            w.ev("PolicyVersionCreated", {
              policyName: s.feed,
              versionId: "v2",
              document: doc({ Effect: "Allow", Action: "mq:SUB", Resource: T("elsewhere") }),
              setAsDefault: true,
            }),
          ),
        regrant: () =>
          w.append(ACCT, w.ev("PolicyDefaultVersionSet", { policyName: s.feed, versionId: "v1" })),
      };
    },
  ],
  [
    "parent topic deleted",
    async (s) => {
      await w.attach(s.feed, { user: s.userId });
      const parent = unique("p");
      await w.topic(parent);
      // This scenario subscribes to its own parent topic; see `topicOf`.
      topicOf.set(s.userId, parent);
      return {
        revoke: () => w.append(ACCT, w.ev("TopicDeleted", { instanceId: "mqtt-local", topic: parent })),
        regrant: () => w.topic(parent),
      };
    },
  ],
])("revocation: %s", (_name, setup) => {
  test("no delivery after the event is applied; the subscription is removed server-side", async () => {
    const s = await subscriber();
    const r = await setup(s);
    const topic = topicOf.get(s.userId) ?? "a";
    if (topic !== "a") {
      await w.policy(`${s.feed}-t`, doc({ Effect: "Allow", Action: "mq:SUB", Resource: T(topic) }));
      await w.attach(`${s.feed}-t`, { user: s.userId });
    }
    const clientId = `GID_shared@@@${s.userId}`;
    const c = await w.connect(url, s, clientId);
    const inbox = new Inbox(c);
    await c.subscribeAsync([`${topic}/#`, "sentinel/#"], { qos: 1 });
    // A bystander of the same account, unaffected.
    const other = await subscriber();
    await w.attach(other.feed, { user: other.userId });
    const bystander = await w.connect(url, other, `GID_shared@@@${other.userId}`);
    const byInbox = new Inbox(bystander);
    await bystander.subscribeAsync(["a/#", "sentinel/#"], { qos: 1 });

    const pub = async (payload: string) => {
      const sentinel = unique("barrier-");
      await publisher.publishAsync(`${topic}/x`, payload, { qos: 1 });
      await publisher.publishAsync("sentinel/x", sentinel, { qos: 1 });
      await inbox.waitFor(sentinel);
    };
    await pub("before");
    expect(inbox.payloads()).toContain("before");

    const checksBefore = await checks();
    const unsubBefore = await unsubscribes();
    const position = await r.revoke(); // resolves once the edge's feed has applied it
    expect(edge.health().position).toBeGreaterThanOrEqual(position);
    await pub("after");
    expect(inbox.payloads()).not.toContain("after");
    if (topic === "a") {
      await publishThenBarrier(byInbox, "bystander-after");
      expect(byInbox.payloads()).toContain("bystander-after"); // unaffected
    }
    // Only the affected session was re-checked.
    expect((await checks()) - checksBefore).toBe(1);

    await expect.poll(() => filtersOf(clientId)).toEqual(["sentinel/#"]);
    expect((await unsubscribes()) - unsubBefore).toBe(1);
    const rec = revocations.find((x) => x.clientId === clientId);
    expect(rec).toMatchObject({ kind: "unsubscribe", filter: `${topic}/#`, position });
    expect(rec!.completedAt).toBeGreaterThanOrEqual(rec!.decidedAt);

    await r.regrant();
    await pub("regranted");
    expect(inbox.payloads()).not.toContain("regranted");
    expect(c.connected).toBe(true);
    const line = w.log.messages("revocation: subscription removed").find((l) => l.clientId === clientId);
    expect(line).toMatchObject({ filter: `${topic}/#`, position });
  });
});
const topicOf = new Map<string, string>();

describe.each<[string, (s: Awaited<ReturnType<typeof subscriber>>, gid: string) => Promise<number>, number]>([
  [
    "AccessKey disabled",
    (s) => w.append(ACCT, w.ev("AccessKeyStatusChanged", { accessKeyId: s.accessKeyId, status: "Inactive" })),
    5,
  ],
  ["AccessKey deleted", (s) => w.append(ACCT, w.ev("AccessKeyDeleted", { accessKeyId: s.accessKeyId })), 4],
  ["user disabled", (s) => w.append(ACCT, w.ev("UserDisabled", { userId: s.userId })), 5],
  ["user deleted", (s) => w.append(ACCT, w.ev("UserDeleted", { userId: s.userId })), 4],
  [
    "instance access removed (base policy detached)",
    (s) => w.append(ACCT, w.attachEvent(s.base, { user: s.userId }, "Custom", ACCT, "PolicyDetached")),
    5,
  ],
  [
    "Group ID deleted",
    (_s, gid) => w.append(ACCT, w.ev("GroupIdDeleted", { instanceId: "mqtt-local", groupId: gid })),
    2,
  ],
])("revocation: %s", (_name, revoke, reconnectCode) => {
  test("the session is disconnected, nothing is delivered after, and it cannot come back", async () => {
    const s = await subscriber();
    await w.attach(s.feed, { user: s.userId });
    const gid = unique("GID_");
    await w.groupId(gid);
    const clientId = `${gid}@@@dev`;
    const c = await w.connect(url, s, clientId, {
      will: { topic: "a/will", payload: Buffer.from("will-of-revoked"), qos: 1, retain: false },
    });
    const inbox = new Inbox(c);
    await c.subscribeAsync(["a/#", "sentinel/#"], { qos: 1 });
    await publishThenBarrier(inbox, "before");
    const watcher = await w.connect(url, root, unique("GID_shared@@@watch-"));
    const watched = new Inbox(watcher);
    await watcher.subscribeAsync(["a/#", "sentinel/#"], { qos: 1 });

    const closed = new Promise<void>((res) => c.once("close", () => res()));
    const before = await disconnects();
    const position = await revoke(s, gid);
    await closed;
    expect((await disconnects()) - before).toBe(1);
    expect(edge.sessions().some((x) => x.clientId === clientId)).toBe(false);
    const rec = revocations.find((x) => x.clientId === clientId);
    expect(rec).toMatchObject({ kind: "disconnect", position });
    // The revoked session's will is not published on its behalf.
    await publishThenBarrier(watched, "after-disconnect");
    expect(watched.payloads()).not.toContain("will-of-revoked");
    expect(inbox.payloads()).not.toContain("after-disconnect");
    await expect(w.connect(url, s, clientId)).rejects.toMatchObject({ code: reconnectCode });
    const line = w.log.messages("revocation: session disconnected").find((l) => l.clientId === clientId);
    expect(line).toMatchObject({ position, principal: `${ACCT}/${s.userId}` });
  });
});

describe("narrowing a live subscription", () => {
  test("a deny on some topics under a still-allowed filter stops those deliveries at once", async () => {
    const s = await subscriber();
    await w.attach(s.feed, { user: s.userId });
    const clientId = `GID_shared@@@${s.userId}-n`;
    const c = await w.connect(url, s, clientId);
    const inbox = new Inbox(c);
    await c.subscribeAsync(["a/#", "sentinel/#"], { qos: 1 });
    await publisher.publishAsync("a/secret/x", "secret-before", { qos: 1 });
    await publishThenBarrier(inbox, "public-before");
    expect(inbox.payloads()).toContain("secret-before");
    const d = unique("deny-");
    await w.policy(d, doc({ Effect: "Deny", Action: "mq:SUB", Resource: T("a/secret/*") }));
    await w.attach(d, { user: s.userId });
    // The filter `a/#` itself is still allowed: the subscription stays, the secret topic does not.
    expect(filtersOf(clientId)).toEqual(["a/#", "sentinel/#"]);
    await publisher.publishAsync("a/secret/x", "secret-after", { qos: 1 });
    await publishThenBarrier(inbox, "public-after");
    expect(inbox.payloads()).toContain("public-after");
    expect(inbox.payloads()).not.toContain("secret-after");
  });
});

describe("publish permission", () => {
  test("a publisher that was allowed (and remembered) is refused after the revocation", async () => {
    const k = await w.userWithKey(unique("pub-"));
    const p = unique("pubpol-");
    await w.policy(
      p,
      doc(
        { Effect: "Allow", Action: "mq:MqttInstanceAccess", Resource: "acs:mq:*:*:instance/mqtt-local" },
        { Effect: "Allow", Action: "mq:PUB", Resource: [T("a"), T("sentinel")] },
      ),
    );
    await w.attach(p, { user: k.userId });
    const c = await w.connect(url, k, `GID_shared@@@${k.userId}`);
    const watch = await w.connect(url, root, unique("GID_shared@@@pw-"));
    const inbox = new Inbox(watch);
    await watch.subscribeAsync(["a/#", "sentinel/#"], { qos: 1 });
    for (let i = 0; i < 3; i++) await c.publishAsync("a/x", `allowed-${i}`, { qos: 1 });
    await inbox.waitFor("allowed-2");
    const d = unique("deny-");
    await w.policy(d, doc({ Effect: "Deny", Action: "mq:PUB", Resource: T("a/*") }));
    await w.attach(d, { user: k.userId });
    await c.publishAsync("a/x", "after-deny", { qos: 1 }); // acknowledged, dropped
    await c.publishAsync("sentinel/x", "pub-barrier", { qos: 1 });
    await inbox.waitFor("pub-barrier");
    expect(inbox.payloads()).not.toContain("after-deny");
    expect(c.connected).toBe(true);
  });
});

describe("persistent sessions", () => {
  test("queued QoS 1 messages of a revoked subscription are not delivered on reconnect, nor the subscription restored", async () => {
    const s = await subscriber();
    await w.attach(s.feed, { user: s.userId });
    const clientId = `GID_shared@@@${s.userId}-p`;
    const c1 = await w.connect(url, s, clientId, { clean: false });
    await c1.subscribeAsync(["a/#", "sentinel/#"], { qos: 1 });
    await c1.endAsync();
    // Offline: these are queued for the session.
    await publisher.publishAsync("a/q", "queued-1", { qos: 1 });
    await publisher.publishAsync("sentinel/q", "queued-sentinel", { qos: 1 });
    // Revoke while offline (no live session to prune: the delivery check catches the queue).
    await w.append(ACCT, w.attachEvent(s.feed, { user: s.userId }, "Custom", ACCT, "PolicyDetached"));
    const c2 = await w.connect(url, s, clientId, { clean: false });
    const inbox = new Inbox(c2);
    await inbox.waitFor("queued-sentinel");
    expect(inbox.payloads()).not.toContain("queued-1");
    // The restored subscriptions are re-authorized: a/# is not restored.
    await publishThenBarrier(inbox, "live-after");
    expect(inbox.payloads()).not.toContain("live-after");
    expect(filtersOf(clientId)).toEqual(["sentinel/#"]);
  });

  test("a subscription removed by revocation is not restored for a persistent session", async () => {
    const s = await subscriber();
    await w.attach(s.feed, { user: s.userId });
    const clientId = `GID_shared@@@${s.userId}-r`;
    const c1 = await w.connect(url, s, clientId, { clean: false });
    const in1 = new Inbox(c1);
    await c1.subscribeAsync(["a/#", "sentinel/#"], { qos: 1 });
    await publishThenBarrier(in1, "before");
    await w.append(ACCT, w.attachEvent(s.feed, { user: s.userId }, "Custom", ACCT, "PolicyDetached"));
    await expect.poll(() => filtersOf(clientId)).toEqual(["sentinel/#"]);
    await c1.endAsync();
    await w.attach(s.feed, { user: s.userId }); // granted again, but the session no longer has it
    const c2 = await w.connect(url, s, clientId, { clean: false });
    const in2 = new Inbox(c2);
    await publishThenBarrier(in2, "after-reconnect");
    expect(in2.payloads()).not.toContain("after-reconnect");
    expect(filtersOf(clientId)).toEqual(["sentinel/#"]);
  });
});

describe("health", () => {
  test("the applied position and the feed's staleness are reported", async () => {
    const position = await w.topic(unique("h"));
    expect(edge.health()).toMatchObject({ ok: true, stale: false, failClosed: false, lag: 0 });
    expect(edge.health().position).toBeGreaterThanOrEqual(position);
    expect(await metric(/portcullis_mqtt_applied_position (\d+)/)).toBeGreaterThanOrEqual(position);
    expect(await metric(/portcullis_mqtt_feed_lag (\d+)/)).toBe(0);
  });
});
