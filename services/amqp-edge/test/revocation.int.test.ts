/**
 * Revocation corner cases, with the events appended directly to the store
 * (the admin-API-driven cases are in test/amqp-revocation.test.ts):
 * a client without consumer_cancel_notify, deliveries that reach the edge
 * after the cancel, a revocation in the middle of the handshake, and a feed
 * that goes fail-closed.
 */
import { LiveProjection } from "@portcullis/feed";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PROTOCOL_HEADER } from "../src/codec/constants.ts";
import { type AmqpEdge, amqpPassword, amqpUsername } from "../src/mod.ts";
import { contentHeaderFrame, RawClient, type RawLogin, rawFrame } from "./raw-client.ts";
import { connect, createVhost, direct, edgeFor, until, World } from "./world.ts";

let world: World;
let edge: AmqpEdge;
let V: string;
let removeVhost: () => Promise<void>;

const res = (rel = "") => `acs:amqp:*:*:/vhosts/${V}${rel}`;
const consumeDoc = (q: string) => ({
  Version: "1",
  Statement: [{ Effect: "Allow", Action: ["amqp:BasicConsume"], Resource: [res(`/queues/${q}/messages/*`)] }],
});
const baseDoc = () => ({
  Version: "1",
  Statement: [
    { Effect: "Allow", Action: ["amqp:GetVhost"], Resource: [res()] },
    { Effect: "Allow", Action: ["amqp:BasicAck", "amqp:GetQueue"], Resource: [res("/*")] },
  ],
});

let n = 0;
async function consumer(q: string): Promise<{ name: string; key: string }> {
  const name = `c${++n}`;
  await world.user(name);
  await world.grant(name, `${name}-base`, baseDoc());
  await world.grant(name, `${name}-consume`, consumeDoc(q));
  return { name, key: await world.key(name) };
}

/** A raw client logged in through the edge with an AccessKey of `world`, on the test vhost. */
const loginAs = (key: string, extra: Partial<RawLogin> = {}) =>
  RawClient.login(edge.port, {
    username: amqpUsername("amqp-local", key),
    password: amqpPassword(world.secrets.get(key)!),
    vhost: V,
    ...extra,
  });

async function fill(q: string, count: number): Promise<string[]> {
  const d = await direct(V);
  const ch = await d.createConfirmChannel();
  await ch.assertQueue(q, { durable: false });
  const bodies = [...Array(count)].map((_, i) => `${q}-${i}`);
  for (const b of bodies) ch.sendToQueue(q, Buffer.from(b));
  await ch.waitForConfirms();
  await d.close();
  return bodies;
}

async function requeuedSoFar(): Promise<number> {
  const m = /^portcullis_amqp_requeued_deliveries_total (\d+)$/m.exec(await edge.registry.metrics());
  return Number(m?.[1] ?? Number.NaN);
}

async function queueState(q: string) {
  const d = await direct(V);
  const ch = await d.createChannel();
  const r = await ch.checkQueue(q);
  await d.close();
  return r;
}

beforeAll(async () => {
  ({ name: V, remove: removeVhost } = await createVhost());
  world = new World();
  await world.start();
  await world.account();
  ({ edge } = await edgeFor(world));
});

afterAll(async () => {
  await edge?.close();
  await world?.close();
  await removeVhost?.();
});

describe("revocation corner cases", () => {
  it("without consumer_cancel_notify: channel.close 403 instead of basic.cancel; unacked messages are requeued", async () => {
    const q = "rc-nocaps";
    await fill(q, 3);
    const c = await consumer(q);
    const raw = await loginAs(c.key, { capabilities: {} });
    raw.method(1, "channel.open");
    raw.method(1, "basic.consume", { queue: q, consumerTag: "c1" });
    await until(
      () => raw.frames.filter((f) => f.method === "basic.deliver").length === 3,
      5_000,
      "3 deliveries",
    );
    await world.detach(c.name, `${c.name}-consume`);
    const close = await raw.next((f) => f.method === "channel.close" && f.channel === 1);
    expect(close?.args?.replyCode).toBe(403);
    expect(String(close?.args?.replyText)).toContain("`amqp:BasicConsume`");
    expect(raw.frames.some((f) => f.method === "basic.cancel")).toBe(false);
    raw.method(1, "channel.close-ok");
    await until(
      async () => (await queueState(q)).messageCount === 3,
      5_000,
      "the 3 unacked messages requeued",
    );
    raw.destroy();
  });

  /**
   * A consumer of 300 large messages is revoked while RabbitMQ's next deliveries wait on
   * the wire behind the cancel (the client stops reading: the edge's socket to it fills,
   * the edge stops reading from RabbitMQ). Every message the client did not get before the
   * cancel must be back in the queue, none twice, and the connection must stay up.
   */
  async function revokeWithDeliveriesInFlight(q: string, noAck: boolean): Promise<void> {
    const total = 300;
    const d = await direct(V);
    const pch = await d.createConfirmChannel();
    await pch.assertQueue(q, { durable: false });
    for (let i = 0; i < total; i++)
      pch.sendToQueue(q, Buffer.alloc(64 * 1024, i % 256), { messageId: String(i) });
    await pch.waitForConfirms();
    const c = await consumer(q);
    const before = await requeuedSoFar();
    const raw = await loginAs(c.key);
    raw.method(1, "channel.open");
    raw.method(1, "basic.consume", { queue: q, consumerTag: q, noAck });
    await raw.next((f) => f.method === "basic.deliver");
    raw.socket.pause();
    await new Promise((r) => setTimeout(r, 300));
    await world.detach(c.name, `${c.name}-consume`);
    raw.socket.resume();
    const cancel = await raw.next((f) => f.method === "basic.cancel", 10_000);
    expect(cancel?.args?.consumerTag).toBe(q);
    const at = raw.frames.indexOf(cancel!);
    const delivered = raw.frames.slice(0, at).filter((f) => f.method === "basic.deliver");
    expect(raw.frames.slice(at).some((f) => f.method === "basic.deliver")).toBe(false);
    // Settle what the client got (BasicAck is still allowed); a no-ack client acks nothing:
    // the edge acked each delivery as it forwarded it.
    if (!noAck)
      raw.method(1, "basic.ack", { deliveryTag: delivered.at(-1)!.args!.deliveryTag, multiple: true });
    await until(async () => (await queueState(q)).consumerCount === 0, 5_000, "upstream cancel");
    await until(
      async () => (await queueState(q)).messageCount === total - delivered.length,
      10_000,
      "every message the client did not get back in the queue",
    );
    const requeued = (await requeuedSoFar()) - before;
    expect(requeued).toBeGreaterThan(0);
    expect(delivered.length + requeued).toBeLessThanOrEqual(total);
    // none lost, none twice: what is left is exactly what the client never got
    const left = new Set<string>();
    const gch = await d.createChannel();
    for (;;) {
      const m = await gch.get(q, { noAck: true });
      if (!m) break;
      left.add(String(m.properties.messageId));
    }
    expect(left.size).toBe(total - delivered.length);
    expect(raw.frames.some((f) => f.method === "connection.close" || f.method === "channel.close")).toBe(
      false,
    );
    raw.destroy();
    await d.close();
  }

  it("deliveries reaching the edge after the cancel are requeued upstream, never dropped", async () => {
    await revokeWithDeliveriesInFlight("rc-inflight", false);
  });

  it("a no-ack consumer's deliveries reaching the edge after the cancel go back to the queue too", async () => {
    await revokeWithDeliveriesInFlight("rc-inflight-noack", true);
  });

  it("a revocation while the client is sending a content body on the channel: the cancel goes upstream after the body", async () => {
    const q = "rc-mid-content";
    const target = "rc-mid-content-target";
    const d = await direct(V);
    const dch = await d.createChannel();
    await dch.assertQueue(q, { durable: false });
    await dch.assertQueue(target, { durable: false });
    const c = await consumer(q);
    await world.grant(c.name, `${c.name}-publish`, {
      Version: "1",
      Statement: [
        { Effect: "Allow", Action: ["amqp:BasicPublish"], Resource: [res("/exchanges/amq.default/*")] },
      ],
    });
    const raw = await loginAs(c.key);
    raw.method(1, "channel.open");
    raw.method(1, "basic.consume", { queue: q, consumerTag: "mid" });
    expect(await raw.next((f) => f.method === "basic.consume-ok", 5_000)).toBeDefined();
    // basic.publish and its content header now, the body later: the content is under way.
    raw.method(1, "basic.publish", { exchange: "", routingKey: target });
    raw.write(contentHeaderFrame(1, 10));
    await new Promise((r) => setTimeout(r, 200));
    await world.detach(c.name, `${c.name}-consume`);
    expect(await raw.next((f) => f.method === "basic.cancel", 5_000)).toBeDefined();
    // Were the edge's basic.cancel sent upstream now, RabbitMQ would end the content with
    // 505 UNEXPECTED_FRAME and close the whole connection.
    await new Promise((r) => setTimeout(r, 200));
    raw.write(rawFrame(3, 1, Buffer.from("0123456789")));
    await until(async () => (await queueState(target)).messageCount === 1, 5_000, "the message published");
    await until(
      async () => (await queueState(q)).consumerCount === 0,
      5_000,
      "the upstream consumer cancelled",
    );
    const from = raw.frames.length;
    raw.method(1, "basic.publish", { exchange: "", routingKey: target });
    raw.write(contentHeaderFrame(1, 2));
    raw.write(rawFrame(3, 1, Buffer.from("ok")));
    await until(async () => (await queueState(target)).messageCount === 2, 5_000, "the channel still works");
    expect(raw.frames.slice(from).length).toBe(0);
    expect(raw.frames.some((f) => f.method === "connection.close" || f.method === "channel.close")).toBe(
      false,
    );
    raw.destroy();
    await d.close();
  });

  it("a channel closed right after a revocation: late deliveries are left to the channel close (no stray frames upstream)", async () => {
    const q = "rc-close-race";
    const total = 200;
    const d = await direct(V);
    const pch = await d.createConfirmChannel();
    await pch.assertQueue(q, { durable: false });
    for (let i = 0; i < total; i++) pch.sendToQueue(q, Buffer.alloc(64 * 1024, 7));
    await pch.waitForConfirms();
    const c = await consumer(q);
    const raw = await loginAs(c.key);
    raw.method(1, "channel.open");
    raw.method(1, "basic.consume", { queue: q, consumerTag: "race" });
    await raw.next((f) => f.method === "basic.deliver");
    raw.socket.pause(); // RabbitMQ's next deliveries wait on the wire (see above)
    await new Promise((r) => setTimeout(r, 300));
    await world.detach(c.name, `${c.name}-consume`);
    raw.method(1, "channel.close", { replyCode: 200, replyText: "bye" });
    await new Promise((r) => setTimeout(r, 200)); // RabbitMQ closes the channel meanwhile
    raw.socket.resume();
    const closeOk = await raw.next((f) => f.method === "channel.close-ok" && f.channel === 1, 10_000);
    expect(closeOk).toBeDefined();
    const from = raw.frames.length;
    raw.method(1, "channel.open");
    expect(await raw.next((f) => f.method === "channel.open-ok", 5_000, from)).toBeDefined();
    expect(raw.frames.some((f) => f.method === "connection.close")).toBe(false);
    // every message is back in the queue (the client acked nothing)
    await until(async () => (await queueState(q)).messageCount === total, 10_000, "all requeued");
    raw.destroy();
    await d.close();
  });

  it("a key revoked between login and connection.open closes with 320 (nothing opened upstream)", async () => {
    await world.user("midway");
    await world.grant("midway", "midway-base", baseDoc());
    const key = await world.key("midway");
    const raw = await RawClient.open(edge.port);
    raw.write(PROTOCOL_HEADER);
    await raw.next((f) => f.method === "connection.start");
    raw.method(0, "connection.start-ok", {
      clientProperties: { capabilities: { authentication_failure_close: true } },
      mechanism: "PLAIN",
      response: Buffer.from(
        `\u0000${amqpUsername("amqp-local", key)}\u0000${amqpPassword(world.secrets.get(key)!)}`,
      ),
      locale: "en_US",
    });
    const tune = await raw.next((f) => f.method === "connection.tune");
    expect(tune).toBeDefined();
    await world.append("AccessKeyStatusChanged", { accessKeyId: key, status: "Inactive" });
    const close = await raw.connectionClose();
    expect(close?.replyCode).toBe(320);
    raw.closeOk();
    await raw.ended;
  });

  it("a fail-closed feed closes every connection with 320 and refuses new ones", async () => {
    const w = new World();
    await w.account();
    const key = await w.key("root");
    w.feed = await LiveProjection.start(w.store, {
      probeIntervalMs: 50,
      staleAfterMs: 150,
      failClosedAfterMs: 150,
    });
    w.credentials = new (await import("@portcullis/feed")).CredentialResolver(w.feed.projection, w.box);
    const { edge: e2, decisions: records } = await edgeFor(w, { edgeId: "amqp-fc" });
    try {
      const conn = await connect(w, e2, key, V);
      const closed = new Promise<string>((r) => conn.on("close", (err?: Error) => r(String(err))));
      conn.on("error", () => {});
      expect(e2.health().ok).toBe(true);
      await w.store.close(); // the feed cannot see the store any more
      expect(await closed).toMatch(/320.*fail-closed/);
      await until(() => e2.health().failClosed, 5_000, "fail-closed health");
      expect(e2.health().ok).toBe(false);
      const raw = await RawClient.login(e2.port, {
        username: amqpUsername("amqp-local", key),
        password: amqpPassword(w.secrets.get(key)!),
        vhost: V,
      });
      const close = await raw.connectionClose();
      expect(close?.replyCode).toBe(530);
      expect(String(close?.replyText)).toContain("fail-closed");
      raw.closeOk();
      // The edge's own rule, not a policy decision: the audit could not re-decide it, so no record.
      expect(records).toEqual([]);
      expect(await e2.registry.metrics()).toMatch(/portcullis_amqp_feed_fail_closed 1/);
    } finally {
      await e2.close();
      await w.feed.close();
    }
  });
});
