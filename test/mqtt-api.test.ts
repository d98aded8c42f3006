/**
 * End to end (issue 5 Tests): the real `portcullis serve`, its admin API, and
 * Debian's `mosquitto_pub`/`mosquitto_sub` against its MQTT edge.
 *
 * - SPEC §4.1 rule by rule: allowed and refused CONNECT, PUBLISH, SUBSCRIBE
 *   (parent topics, narrow patterns, legacy forms, Group ID ownership, IP/TLS/QoS conditions).
 * - Revocation through the API: every write waits until the edges applied it
 *   (`waitEnforced`); after the call returns the subscriber receives nothing
 *   published, and its subscription is gone (a re-grant brings nothing back);
 *   revoked credentials or users are disconnected.
 *
 * "Receives nothing" is proven with a barrier, never a sleep: a sentinel the
 * subscriber may still read is published next; it arrives after anything earlier
 * (see publishThenBarrier).
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { createHmac, randomUUID } from "node:crypto";
import type { AdminClient } from "@portcullis/admin-api";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { type Serve, startServe } from "./helpers/serve.ts";

const username = (accessKeyId: string) => `Signature|${accessKeyId}|mqtt-local`;
const password = (secret: string, clientId: string) =>
  createHmac("sha1", secret).update(clientId).digest("base64");
const uniq = (p: string) => `${p}${randomUUID().slice(0, 8)}`;

interface Key {
  accessKeyId: string;
  accessKeySecret: string;
}

let gw: Serve;
let admin: AdminClient;
let root: Key;

const base = (clientId: string, k: Key) => [
  "-h",
  gw.mqtt!.host,
  "-p",
  String(gw.mqtt!.port),
  "-V",
  "mqttv311",
  "-i",
  clientId,
  "-u",
  username(k.accessKeyId),
  "-P",
  password(k.accessKeySecret, clientId),
];

/** `mosquitto_pub`; resolves its exit code (the CONNACK code on a refused connection) and stderr. */
function pub(
  k: Key,
  topic: string,
  message: string,
  o: { qos?: 0 | 1; clientId?: string; extra?: string[] } = {},
): Promise<{ code: number; stderr: string }> {
  const clientId = o.clientId ?? uniq("GID_e2e@@@pub-");
  const args = [
    ...base(clientId, k),
    "-t",
    topic,
    "-m",
    message,
    "-q",
    String(o.qos ?? 1),
    ...(o.extra ?? []),
  ];
  return new Promise((resolve) => {
    execFile("mosquitto_pub", args, { timeout: 15_000 }, (err, _stdout, stderr) => {
      resolve({ code: err ? Number((err as { code?: number }).code ?? -1) : 0, stderr });
    });
  });
}

/** A running `mosquitto_sub -d -v`. */
class Sub {
  readonly messages: { topic: string; payload: string }[] = [];
  readonly lines: string[] = [];
  granted: number[] = [];
  readonly exited: Promise<number | null>;
  #child: ChildProcess;
  #buf = "";
  #waiters: (() => void)[] = [];

  constructor(k: Key, clientId: string, filters: string[], qos: 0 | 1 = 1) {
    // stdbuf: mosquitto_sub block-buffers stdout into a pipe; line-buffer it so each line arrives at once.
    this.#child = spawn(
      "stdbuf",
      [
        "-oL",
        "-eL",
        "mosquitto_sub",
        ...base(clientId, k),
        ...filters.flatMap((f) => ["-t", f]),
        "-q",
        String(qos),
        "-v",
        "-d",
      ],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    const onData = (d: Buffer) => {
      this.#buf += d.toString();
      let nl = this.#buf.indexOf("\n");
      while (nl >= 0) {
        this.#line(this.#buf.slice(0, nl));
        this.#buf = this.#buf.slice(nl + 1);
        nl = this.#buf.indexOf("\n");
      }
      for (const w of this.#waiters) w();
    };
    this.#child.stdout!.on("data", onData);
    this.#child.stderr!.on("data", onData);
    this.exited = new Promise((r) => this.#child.once("exit", (code) => r(code)));
    void this.exited.then(() => {
      for (const w of this.#waiters) w();
    });
  }

  #line(l: string): void {
    this.lines.push(l);
    const sub = /^Subscribed \(mid: \d+\): (.*)$/.exec(l);
    if (sub) this.granted = sub[1]!.split(",").map((x) => Number(x.trim()));
    else if (!l.startsWith("Client ") && !l.startsWith("Connection error") && !l.startsWith("Error") && l) {
      const sp = l.indexOf(" ");
      this.messages.push({ topic: l.slice(0, sp), payload: l.slice(sp + 1) });
    }
  }

  /** Wait until `pred` holds (rejects with the output after `ms`). */
  until(pred: () => boolean, ms = 10_000): Promise<void> {
    if (pred()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const t = setTimeout(
        () => reject(new Error(`mosquitto_sub: not met; output:\n${this.lines.join("\n")}`)),
        ms,
      );
      const check = () => {
        if (!pred()) return;
        clearTimeout(t);
        this.#waiters = this.#waiters.filter((x) => x !== check);
        resolve();
      };
      this.#waiters.push(check);
    });
  }

  /** Started and subscribed: resolves the granted QoS per filter (128 = refused). */
  async ready(): Promise<number[]> {
    await this.until(() => this.granted.length > 0);
    return this.granted;
  }

  payloads(): string[] {
    return this.messages.map((m) => m.payload);
  }
  waitFor(payload: string): Promise<void> {
    return this.until(() => this.payloads().includes(payload));
  }
  stop(): void {
    this.#child.kill("SIGTERM");
  }
}

const subs: Sub[] = [];
async function subscribe(k: Key, filters: string[], clientId = uniq("GID_e2e@@@sub-")): Promise<Sub> {
  const s = new Sub(k, clientId, filters);
  subs.push(s);
  await s.ready();
  return s;
}

/** A user with one AccessKey and a custom policy of these statements attached. */
async function user(
  statements: Record<string, unknown>[],
  name = uniq("u-"),
): Promise<Key & { name: string }> {
  await admin.createUser(name);
  if (statements.length > 0) {
    await admin.createPolicy(`${name}-p`, { Version: "1", Statement: statements });
    await admin.attachPolicy(`${name}-p`, { user: name });
  }
  const k = (await admin.createAccessKey(name)) as unknown as Key;
  return { name, accessKeyId: k.accessKeyId, accessKeySecret: k.accessKeySecret };
}

const T = (t: string) => `acs:mq:*:*:topic/mqtt-local/${t}`;
const INSTANCE = {
  Effect: "Allow",
  Action: "mq:MqttInstanceAccess",
  Resource: "acs:mq:*:*:instance/mqtt-local",
};
const allow = (Action: string | string[], Resource: string | string[], Condition?: unknown) => ({
  Effect: "Allow",
  Action,
  Resource,
  ...(Condition ? { Condition } : {}),
});

/**
 * Publish `payload` on `topic` as `k`, then a sentinel as root; wait until `s` has the sentinel.
 * Ordering: mosquitto_pub -q 1 exits on PUBACK; the edge routes a PUBLISH in the event-loop
 * iteration that wrote its PUBACK, before it can read the next client's CONNECT, and writes to
 * `s` in routing order — so anything for `s` from the first PUBLISH precedes the sentinel.
 */
async function publishThenBarrier(s: Sub, k: Key, topic: string, payload: string): Promise<void> {
  const sentinel = uniq("barrier-");
  expect((await pub(k, topic, payload)).code).toBe(0);
  expect((await pub(root, "sentinel/x", sentinel)).code).toBe(0);
  await s.waitFor(sentinel);
}

beforeAll(async () => {
  gw = await startServe();
  expect(gw.mqtt, gw.output()).toBeDefined();
  admin = gw.admin.with({ waitEnforced: true });
  root = { accessKeyId: gw.root.accessKeyId, accessKeySecret: gw.root.accessKeySecret };
  for (const t of ["a", "TopicA", "TopicB", "sentinel", "ip", "qos"]) await admin.createTopic(t);
  await admin.createGroupId("GID_e2e");
});
afterAll(async () => {
  for (const s of subs) s.stop();
  await gw?.stop();
});

describe("SPEC §4.1 with mosquitto clients, state made through the admin API", () => {
  test("CONNECT: accepted; refused with the right CONNACK code", async () => {
    const ok = await user([INSTANCE, allow("mq:PUB", T("a"))]);
    expect((await pub(ok, "a/x", "hi")).code).toBe(0);
    const none = await user([]);
    const r5 = await pub(none, "a/x", "hi");
    expect(r5).toMatchObject({ code: 5, stderr: expect.stringContaining("not authorised") });
    const r4 = await pub({ ...ok, accessKeySecret: "wrong" }, "a/x", "hi");
    expect(r4).toMatchObject({ code: 4, stderr: expect.stringContaining("bad user name or password") });
    const r2 = await pub(ok, "a/x", "hi", { clientId: "GID_nope@@@d" });
    expect(r2).toMatchObject({ code: 2, stderr: expect.stringContaining("identifier rejected") });
    const long = await pub(ok, "a/x", "hi", { clientId: `GID_e2e@@@${"d".repeat(60)}` });
    expect(long.code).toBe(2);
  });

  test("Group ID ownership: a user's Group ID is usable by that user and root only", async () => {
    const alice = await user([allow("mq:*", "*")]);
    const bob = await user([allow("mq:*", "*")]);
    const asAlice = gw.client(alice).with({ waitEnforced: true });
    await asAlice.createGroupId("GID_alice_e2e");
    expect((await pub(alice, "a/x", "m", { clientId: "GID_alice_e2e@@@1" })).code).toBe(0);
    expect((await pub(root, "a/x", "m", { clientId: "GID_alice_e2e@@@2" })).code).toBe(0);
    expect((await pub(bob, "a/x", "m", { clientId: "GID_alice_e2e@@@3" })).code).toBe(5);
    expect((await pub(bob, "a/x", "m", { clientId: "GID_e2e@@@3" })).code).toBe(0); // root's: everyone's
  });

  test("parent topic covers sub-topics; a narrow pattern restricts; SUBACK refuses per filter", async () => {
    const wide = await user([INSTANCE, allow(["mq:PUB", "mq:SUB"], [T("a"), T("sentinel")])]);
    const narrow = await user([INSTANCE, allow(["mq:PUB", "mq:SUB"], [T("a/devices/*"), T("sentinel")])]);
    const s = await subscribe(wide, ["a/#", "sentinel/#"]);
    const n = new Sub(narrow, uniq("GID_e2e@@@n-"), ["a/devices/+", "a/#", "sentinel/#"]);
    subs.push(n);
    expect(await n.ready()).toEqual([1, 128, 1]);
    expect((await pub(narrow, "a/other/x", "narrow-refused")).code).toBe(0); // acknowledged, dropped
    expect((await pub(narrow, "a/devices/7", "narrow-ok")).code).toBe(0);
    expect((await pub(wide, "a/b/c/d", "deep")).code).toBe(0);
    await publishThenBarrier(s, wide, "a/devices/9", "wide-to-device");
    expect(s.payloads()).toEqual(expect.arrayContaining(["narrow-ok", "deep", "wide-to-device"]));
    expect(s.payloads()).not.toContain("narrow-refused");
    await n.waitFor("wide-to-device");
    expect(n.payloads()).not.toContain("deep"); // a/b/c/d is outside a/devices/*
  });

  test("legacy forms from seed 003 work verbatim", async () => {
    const legacy = await user([
      INSTANCE,
      allow("mq:PUB", ["acs:mq:*:*:TopicA", "acs:mq:*:*:TopicB"]),
      allow("mq:SUB", ["acs:mq:*:*:mqtt-local%TopicB", T("sentinel")]),
    ]);
    const s = new Sub(legacy, uniq("GID_e2e@@@l-"), ["TopicB/#", "TopicA/#", "sentinel/#"]);
    subs.push(s);
    expect(await s.ready()).toEqual([1, 128, 1]);
    expect((await pub(legacy, "TopicA/x", "a")).code).toBe(0);
    await publishThenBarrier(s, root, "TopicB/y", "b");
    expect(s.payloads()).toContain("b");
  });

  test("conditions on the source IP, on TLS and on QoS", async () => {
    const cond = await user([
      allow("mq:MqttInstanceAccess", "acs:mq:*:*:instance/mqtt-local", {
        IpAddress: { "acs:SourceIp": "127.0.0.0/8" },
      }),
      allow("mq:PUB", T("ip/local"), { IpAddress: { "acs:SourceIp": "127.0.0.0/8" } }),
      allow("mq:PUB", T("ip/remote"), { IpAddress: { "acs:SourceIp": "10.0.0.0/8" } }),
      allow("mq:PUB", T("qos"), { NumericEquals: { "mq:Qos": 0 } }),
    ]);
    const s = await subscribe(root, ["ip/#", "qos/#", "sentinel/#"]);
    expect((await pub(cond, "ip/remote", "remote")).code).toBe(0);
    expect((await pub(cond, "qos/x", "qos1", { qos: 1 })).code).toBe(0);
    expect((await pub(cond, "qos/x", "qos0", { qos: 0 })).code).toBe(0);
    await publishThenBarrier(s, cond, "ip/local", "local");
    expect(s.payloads()).toContain("qos0");
    expect(s.payloads()).not.toContain("remote");
    expect(s.payloads()).not.toContain("qos1");
    // TLS required: a plain TCP connection is not authorised (the TLS listener is tested in services/mqtt-edge).
    const tls = await user([
      allow("mq:MqttInstanceAccess", "*", { Bool: { "acs:SecureTransport": "true" } }),
      allow("mq:PUB", T("a")),
    ]);
    expect((await pub(tls, "a/x", "plain")).code).toBe(5);
  });
});

type Revoke = (u: Key & { name: string }, feedPolicy: string) => Promise<unknown>;

describe("revocation through the API (the call returns once every edge applied it)", () => {
  /** A subscriber with `base` (instance + sentinel) and `feed` (SUB on a) policies. */
  async function receiving(viaGroup = false) {
    const u = await user([INSTANCE, allow("mq:SUB", T("sentinel"))]);
    const feed = `${u.name}-feed`;
    await admin.createPolicy(feed, { Version: "1", Statement: [allow("mq:SUB", T("a"))] });
    let group: string | undefined;
    if (viaGroup) {
      group = `${u.name}-g`;
      await admin.createGroup(group);
      await admin.attachPolicy(feed, { group });
      await admin.addUserToGroup(group, u.name);
    } else await admin.attachPolicy(feed, { user: u.name });
    const s = await subscribe(u, ["a/#", "sentinel/#"]);
    await publishThenBarrier(s, root, "a/x", "before");
    expect(s.payloads()).toContain("before");
    return { u, feed, s, group };
  }
  const revocations = async (action: string): Promise<number> => {
    const text = await (await fetch(`${gw.adminUrl}/metrics`)).text();
    const m = new RegExp(`portcullis_mqtt_revocation_actions_total\\{action="${action}"\\} (\\d+)`).exec(
      text,
    );
    return m ? Number(m[1]) : 0;
  };

  test.each<[string, boolean, Revoke, Revoke]>([
    [
      "policy detached",
      false,
      (u, feed) => admin.detachPolicy(feed, { user: u.name }),
      (u, feed) => admin.attachPolicy(feed, { user: u.name }),
    ],
    [
      "deny statement added",
      false,
      async (u) => {
        await admin.createPolicy(`${u.name}-deny`, {
          Version: "1",
          Statement: [{ Effect: "Deny", Action: "mq:SUB", Resource: T("a/*") }],
        });
        return admin.attachPolicy(`${u.name}-deny`, { user: u.name });
      },
      (u) => admin.detachPolicy(`${u.name}-deny`, { user: u.name }),
    ],
    [
      "group membership removed",
      true,
      (u) => admin.removeUserFromGroup(`${u.name}-g`, u.name),
      (u) => admin.addUserToGroup(`${u.name}-g`, u.name),
    ],
    [
      "policy version changed",
      false,
      (_u, feed) =>
        admin.createPolicyVersion(
          feed,
          { Version: "1", Statement: [allow("mq:SUB", T("elsewhere"))] },
          { setAsDefault: true },
        ),
      (_u, feed) => admin.setDefaultPolicyVersion(feed, "v1"),
    ],
  ])(
    "%s: nothing published after the call arrives; the subscription is gone",
    async (_n, viaGroup, revoke, regrant) => {
      const { u, feed, s } = await receiving(viaGroup);
      const before = await revocations("unsubscribe");
      const r = (await revoke(u, feed)) as { enforcement?: { confirmed: boolean } };
      expect(r.enforcement?.confirmed).toBe(true);
      await publishThenBarrier(s, root, "a/x", "after");
      expect(s.payloads()).not.toContain("after");
      expect((await revocations("unsubscribe")) - before).toBe(1);
      // Gone server-side, not merely filtered: granting again brings nothing back to this session.
      await regrant(u, feed);
      await publishThenBarrier(s, root, "a/x", "regranted");
      expect(s.payloads()).not.toContain("regranted");
    },
  );

  test.each<[string, (u: Key & { name: string }) => Promise<unknown>, string]>([
    ["access key disabled", (u) => admin.setAccessKeyStatus(u.accessKeyId, "Inactive"), "not authorised"],
    ["user deleted", (u) => admin.deleteUser(u.name), "bad user name or password"],
  ])("%s: the session is disconnected and cannot come back", async (_n, revoke, refusal) => {
    const { u, s } = await receiving();
    const seen = [...s.payloads()];
    const before = await revocations("disconnect");
    await revoke(u);
    // mosquitto_sub reconnects by itself; the edge refuses it and it gives up.
    const code = await s.exited;
    expect(code).not.toBe(0);
    expect(s.lines.join("\n")).toContain(refusal);
    expect((await revocations("disconnect")) - before).toBeGreaterThanOrEqual(1);
    expect(s.payloads()).toEqual(seen);
  });
});
