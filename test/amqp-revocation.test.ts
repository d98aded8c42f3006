/**
 * Revocation through the AMQP edge (issue 6, Build 4), driven through the
 * admin API as an administrator would: the admin API and the edge share one
 * event store and live projection, as in `portcullis serve`; clients are
 * amqplib (and a raw client without consumer_cancel_notify); the broker is the
 * real RabbitMQ.
 *
 * - a live consumer whose amqp:BasicConsume is revoked gets basic.cancel; the
 *   messages it did not get stay in the queue (counted, none lost or duplicated);
 * - a new basic.consume is refused with 403;
 * - a revoked publisher's next publish closes its channel with 403;
 * - revoked credentials, a disabled user, revoked vhost access → 320.
 */
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { promisify } from "node:util";
import { type AdminApi, AdminClient, bootstrapAccount, startAdminApi } from "@portcullis/admin-api";
import { type AmqpEdge, amqpPassword, amqpUsername, startAmqpEdge } from "@portcullis/amqp-edge";
import { MemoryEventStore } from "@portcullis/event-store";
import { SecretBox } from "@portcullis/events";
import { CredentialResolver, InProcessPositionBoard, LiveProjection } from "@portcullis/feed";
import * as amqplib from "amqplib";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const RABBIT = "amqp://guest:guest@127.0.0.1:5672";
const run = promisify(execFile);
const rabbitmqctl = (...a: string[]) => run("/usr/sbin/rabbitmqctl", a, { timeout: 30_000 });

let store: MemoryEventStore;
let feed: LiveProjection;
let api: AdminApi;
let edge: AmqpEdge;
let admin: AdminClient;
let V: string;
let direct: amqplib.ChannelModel;
const conns: amqplib.ChannelModel[] = [];

const res = (rel = "") => `acs:amqp:*:*:/vhosts/${V}${rel}`;
const doc = (...Statement: object[]) => ({ Version: "1", Statement });
const allow = (Action: string[], Resource: string) => ({ Effect: "Allow", Action, Resource });

let n = 0;
/** A user with these custom policies attached (each `[name, doc]`); returns its AccessKey. */
async function user(policies: [string, object][]): Promise<{ name: string; id: string; secret: string }> {
  const name = `rv${++n}`;
  await admin.createUser(name);
  for (const [p, d] of policies) {
    await admin.createPolicy(`${name}-${p}`, d);
    await admin.attachPolicy(`${name}-${p}`, { user: name });
  }
  const k = await admin.createAccessKey(name);
  return { name, id: k.accessKeyId, secret: k.accessKeySecret };
}

async function connect(k: { id: string; secret: string }): Promise<amqplib.ChannelModel> {
  const u = encodeURIComponent(amqpUsername("amqp-local", k.id));
  const p = encodeURIComponent(amqpPassword(k.secret));
  const c = await amqplib.connect(`amqp://${u}:${p}@127.0.0.1:${edge.port}/${encodeURIComponent(V)}`);
  c.on("error", () => {});
  conns.push(c);
  return c;
}

async function queueState(q: string): Promise<{ messageCount: number; consumerCount: number }> {
  const ch = await direct.createChannel();
  const r = await ch.checkQueue(q);
  await ch.close();
  return r;
}

/** Every message body still in `q` (taken out with acks, directly). */
async function drain(q: string): Promise<string[]> {
  const ch = await direct.createChannel();
  const out: string[] = [];
  for (;;) {
    const m = await ch.get(q, { noAck: true });
    if (!m) break;
    out.push(m.content.toString());
  }
  await ch.close();
  return out;
}

async function fill(q: string, count: number): Promise<string[]> {
  const ch = await direct.createConfirmChannel();
  await ch.assertQueue(q, { durable: false });
  const bodies = [...Array(count)].map((_, i) => `${q}-${i}`);
  for (const b of bodies) ch.sendToQueue(q, Buffer.from(b));
  await ch.waitForConfirms();
  await ch.close();
  return bodies;
}

async function until(pred: () => boolean | Promise<boolean>, ms = 5_000, what = "condition"): Promise<void> {
  const end = Date.now() + ms;
  while (!(await pred())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const consumePolicy = (q: string) => doc(allow(["amqp:BasicConsume"], res(`/queues/${q}/messages/*`)));
const settlePolicy = () =>
  doc(
    allow(["amqp:GetVhost"], res()),
    allow(["amqp:BasicAck", "amqp:BasicNack", "amqp:BasicReject", "amqp:GetQueue"], res("/*")),
  );

beforeAll(async () => {
  V = `pc-amqp-rv-${randomBytes(4).toString("hex")}`;
  await rabbitmqctl("add_vhost", V);
  await rabbitmqctl("set_permissions", "-p", V, "guest", ".*", ".*", ".*");
  store = new MemoryEventStore();
  const box = SecretBox.generate().box;
  const boot = await bootstrapAccount(store, box);
  feed = await LiveProjection.start(store, { probeIntervalMs: 200 });
  const board = new InProcessPositionBoard();
  const logger = pino({ level: "silent" });
  api = await startAdminApi({ store, feed, box, board, logger });
  edge = await startAmqpEdge({
    feed,
    credentials: new CredentialResolver(feed.projection, box),
    upstream: { url: RABBIT },
    port: 0,
    edgeId: "amqp-rv",
    accountId: boot.accountId,
    logger,
  });
  board.attach("amqp-rv", "amqp", feed);
  admin = new AdminClient(
    { endpoint: api.url, accessKeyId: boot.accessKeyId, accessKeySecret: boot.accessKeySecret },
    { waitEnforced: true },
  );
  direct = await amqplib.connect(`${RABBIT}/${encodeURIComponent(V)}`);
});

afterAll(async () => {
  for (const c of conns) await c.close().catch(() => {});
  await direct?.close();
  await edge?.close();
  await api?.close();
  await feed?.close();
  await rabbitmqctl("delete_vhost", V).catch(() => {});
});

describe("revoking a live consumer", () => {
  it("cancels it (basic.cancel), keeps what it did not get in the queue, loses and duplicates nothing", async () => {
    const q = "rv-consumer";
    const bodies = await fill(q, 300);
    const alice = await user([
      ["consume", consumePolicy(q)],
      ["settle", settlePolicy()],
    ]);
    const conn = await connect(alice);
    const ch = await conn.createChannel();
    await ch.prefetch(10);
    const received: string[] = [];
    let cancelled = false;
    let revoked = false;
    const revokedAt = { ms: 0 };
    await ch.consume(q, (m) => {
      if (m === null) {
        cancelled = true; // amqplib: the server cancelled the consumer
        return;
      }
      received.push(m.content.toString());
      // slow consumer: ack after a little while (acks stay allowed: only BasicConsume is revoked)
      setTimeout(() => ch.ack(m), 2);
      if (received.length === 50 && !revoked) {
        revoked = true;
        void admin.detachPolicy(`${alice.name}-consume`, { user: alice.name }).then((r) => {
          expect(r.enforcement?.confirmed).toBe(true);
          revokedAt.ms = Date.now();
        });
      }
    });
    await until(() => cancelled, 10_000, "basic.cancel after the revocation");
    // the upstream consumer is gone too
    await until(async () => (await queueState(q)).consumerCount === 0, 5_000, "upstream consumer cancelled");
    await ch.close(); // flushes the last acks
    const left = await drain(q);
    expect(received.length).toBeGreaterThanOrEqual(50);
    expect(received.length).toBeLessThan(300);
    // nothing lost, nothing twice: what the consumer got and what is left are the 300 messages
    expect(new Set(received).size).toBe(received.length);
    expect(received.filter((b) => left.includes(b))).toEqual([]);
    expect([...received, ...left].sort()).toEqual([...bodies].sort());
    const metrics = await edge.registry.metrics();
    expect(metrics).toMatch(/portcullis_amqp_revocations_total\{kind="consumer_cancel"\} [1-9]/);
  });

  it("refuses a new basic.consume with 403 once BasicConsume is gone", async () => {
    const q = "rv-reconsume";
    await fill(q, 1);
    const bob = await user([
      ["consume", consumePolicy(q)],
      ["settle", settlePolicy()],
    ]);
    const conn = await connect(bob);
    const ch1 = await conn.createChannel();
    await ch1.consume(q, () => {}, { noAck: true });
    await admin.detachPolicy(`${bob.name}-consume`, { user: bob.name });
    const ch2 = await conn.createChannel();
    ch2.on("error", () => {});
    await expect(ch2.consume(q, () => {})).rejects.toThrow(/403 \(ACCESS-REFUSED\).*amqp:BasicConsume/);
  });

  it("cancels consumers when a new default policy version drops BasicConsume", async () => {
    const q = "rv-version";
    await fill(q, 5);
    const carol = await user([
      ["consume", consumePolicy(q)],
      ["settle", settlePolicy()],
    ]);
    const conn = await connect(carol);
    const ch = await conn.createChannel();
    const cancelled = new Promise<void>((resolve) => {
      void ch.consume(q, (m) => (m === null ? resolve() : ch.ack(m)));
    });
    await until(async () => (await queueState(q)).messageCount === 0, 5_000, "all five consumed");
    await admin.createPolicyVersion(`${carol.name}-consume`, doc(allow(["amqp:BasicGet"], res("/*"))), {
      setAsDefault: true,
    });
    await cancelled;
    await until(async () => (await queueState(q)).consumerCount === 0, 5_000, "upstream consumer cancelled");
  });
});

describe("revoking a publisher", () => {
  it("closes its channel with 403 at the next publish; everything confirmed before is in the queue", async () => {
    const q = "rv-publisher";
    await fill(q, 0);
    const pub = await user([
      ["publish", doc(allow(["amqp:BasicPublish"], res("/exchanges/amq.default/messages/*")))],
      ["vhost", doc(allow(["amqp:GetVhost"], res()))],
    ]);
    const conn = await connect(pub);
    const ch = await conn.createConfirmChannel();
    const chErr = new Promise<Error>((r) => ch.on("error", r));
    for (let i = 0; i < 100; i++) ch.sendToQueue(q, Buffer.from(`before-${i}`));
    await ch.waitForConfirms();
    await admin.detachPolicy(`${pub.name}-publish`, { user: pub.name });
    ch.sendToQueue(q, Buffer.from("after"));
    const err = await chErr;
    expect(err.message).toMatch(/403 \(ACCESS-REFUSED\)/);
    expect(err.message).toContain("`amqp:BasicPublish`");
    const left = await drain(q);
    expect(left).toHaveLength(100);
    expect(left).not.toContain("after");
  });
});

describe("revoking credentials, the user or vhost access closes the connection with 320", () => {
  const closedWith = (conn: amqplib.ChannelModel) =>
    new Promise<string>((r) => conn.on("close", (e?: Error) => r(String(e))));

  it("AccessKey set Inactive", async () => {
    const u = await user([["vhost", doc(allow(["amqp:GetVhost"], res()))]]);
    const conn = await connect(u);
    const closed = closedWith(conn);
    await admin.setAccessKeyStatus(u.id, "Inactive");
    expect(await closed).toMatch(/320 \(CONNECTION-FORCED\).*revoked/);
    await expect(connect(u)).rejects.toThrow(/ACCESS[-_]REFUSED|403/);
  });

  it("AccessKey deleted", async () => {
    const u = await user([["vhost", doc(allow(["amqp:GetVhost"], res()))]]);
    const conn = await connect(u);
    const closed = closedWith(conn);
    await admin.deleteAccessKey(u.id);
    expect(await closed).toMatch(/320/);
  });

  it("user disabled", async () => {
    const u = await user([["vhost", doc(allow(["amqp:GetVhost"], res()))]]);
    const conn = await connect(u);
    const closed = closedWith(conn);
    await admin.disableUser(u.name);
    expect(await closed).toMatch(/320/);
  });

  it("vhost access (amqp:GetVhost) revoked", async () => {
    const u = await user([["vhost", doc(allow(["amqp:GetVhost"], res()))]]);
    const conn = await connect(u);
    const closed = closedWith(conn);
    await admin.detachPolicy(`${u.name}-vhost`, { user: u.name });
    expect(await closed).toMatch(/320 \(CONNECTION-FORCED\).*vhost/);
  });

  it("other connections are not affected", async () => {
    const a = await user([["vhost", doc(allow(["amqp:GetVhost", "amqp:GetQueue"], res("*")))]]);
    const b = await user([["vhost", doc(allow(["amqp:GetVhost", "amqp:GetQueue"], res("*")))]]);
    const ca = await connect(a);
    const cb = await connect(b);
    const closed = closedWith(ca);
    await admin.disableUser(a.name);
    await closed;
    const ch = await cb.createChannel();
    await fill("rv-unaffected", 0);
    expect((await ch.checkQueue("rv-unaffected")).queue).toBe("rv-unaffected");
  });
});
