/**
 * The relay with a principal nothing restricts (the account root): amqplib
 * through the edge to the real RabbitMQ behaves as it does directly —
 * queues, publish/consume/ack, confirms, many channels, large messages split
 * over frames, qos, transactions, update-secret.
 */
import { randomBytes } from "node:crypto";
import net from "node:net";
import { Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AmqpEdge, amqpPassword } from "../src/mod.ts";
import { connect, createVhost, direct, edgeFor, until, World } from "./world.ts";

let world: World;
let edge: AmqpEdge;
let vhost: { name: string; remove(): Promise<void> };
let rootKey: string;

beforeAll(async () => {
  vhost = await createVhost();
  world = new World();
  await world.start();
  await world.account();
  rootKey = await world.key("root");
  ({ edge } = await edgeFor(world));
});

afterAll(async () => {
  await edge?.close();
  await world?.close();
  await vhost?.remove();
});

describe("relay (root principal)", () => {
  it("declares, publishes, consumes and acks through the edge", async () => {
    const conn = await connect(world, edge, rootKey, vhost.name);
    const ch = await conn.createChannel();
    const q = await ch.assertQueue("relay-basic", { durable: false });
    expect(q.queue).toBe("relay-basic");
    for (let i = 0; i < 10; i++) ch.sendToQueue("relay-basic", Buffer.from(`m${i}`));
    const got: string[] = [];
    await ch.consume("relay-basic", (m) => {
      if (!m) return;
      got.push(m.content.toString());
      ch.ack(m);
    });
    await until(() => got.length === 10, 5_000, "10 deliveries");
    expect(got).toEqual([...Array(10)].map((_, i) => `m${i}`));
    // (close the channel first: amqplib may send connection.close ahead of queued channel frames)
    await ch.close();
    await conn.close();
    // every message was acked: nothing left
    const d = await direct(vhost.name);
    const dch = await d.createChannel();
    expect((await dch.checkQueue("relay-basic")).messageCount).toBe(0);
    await d.close();
  });

  it("a no-ack consumer gets no-ack semantics: its deliveries are settled upstream, acking one is 406", async () => {
    const conn = await connect(world, edge, rootKey, vhost.name);
    const ch = await conn.createChannel();
    await ch.assertQueue("relay-noack", { durable: false });
    for (let i = 0; i < 20; i++) ch.sendToQueue("relay-noack", Buffer.from(`n${i}`));
    const got: string[] = [];
    const { consumerTag } = await ch.consume("relay-noack", (m) => m && got.push(m.content.toString()), {
      noAck: true,
    });
    await until(() => got.length === 20, 5_000, "20 deliveries");
    expect(got).toEqual([...Array(20)].map((_, i) => `n${i}`));
    await ch.cancel(consumerTag);
    // The edge consumed with acks upstream and acked each delivery itself: closing the channel
    // requeues nothing (with unsettled deliveries RabbitMQ would requeue all 20).
    await ch.close();
    const d = await direct(vhost.name);
    const dch = await d.createChannel();
    expect((await dch.checkQueue("relay-noack")).messageCount).toBe(0);
    // Acking a no-ack delivery is a client error, as against RabbitMQ directly.
    const c2 = await conn.createChannel();
    c2.sendToQueue("relay-noack", Buffer.from("once more"));
    const closed = new Promise<Error>((r) => c2.once("error", r));
    let tag = -1;
    await c2.consume(
      "relay-noack",
      (m) => {
        if (!m) return;
        tag = m.fields.deliveryTag;
        c2.ack(m);
      },
      { noAck: true },
    );
    expect(String((await closed).message)).toMatch(/406|PRECONDITION_FAILED|unknown delivery tag/i);
    expect(tag).toBeGreaterThan(0);
    expect((await dch.checkQueue("relay-noack")).messageCount).toBe(0);
    await d.close();
    await conn.close().catch(() => {});
  });

  it("relays publisher confirms, server-named queues and get/ack", async () => {
    const conn = await connect(world, edge, rootKey, vhost.name);
    const ch = await conn.createConfirmChannel();
    const { queue } = await ch.assertQueue("", { exclusive: true });
    expect(queue).toMatch(/^amq\.gen-/);
    for (let i = 0; i < 50; i++) ch.sendToQueue(queue, Buffer.from(String(i)));
    await ch.waitForConfirms();
    const m = await ch.get(queue);
    expect(m ? m.content.toString() : m).toBe("0");
    if (m) ch.ack(m);
    expect((await ch.checkQueue(queue)).messageCount).toBe(49);
    await conn.close();
  });

  it("multiplexes many channels and carries messages larger than frame-max", async () => {
    const conn = await connect(world, edge, rootKey, vhost.name);
    const big = randomBytes(1_000_000);
    const chans = await Promise.all([...Array(20)].map(() => conn.createChannel()));
    await Promise.all(chans.map((c, i) => c.assertQueue(`relay-mux-${i}`, { autoDelete: false })));
    chans.forEach((c, i) => {
      c.sendToQueue(`relay-mux-${i}`, i === 7 ? big : Buffer.from(`chan ${i}`));
    });
    const got = await Promise.all(
      chans.map(async (c, i) => {
        await until(
          async () => (await c.checkQueue(`relay-mux-${i}`)).messageCount === 1,
          5_000,
          `queue ${i}`,
        );
        const m = await c.get(`relay-mux-${i}`, { noAck: true });
        return m ? m.content : Buffer.alloc(0);
      }),
    );
    expect(got[7]!.equals(big)).toBe(true);
    expect(got[3]!.toString()).toBe("chan 3");
    await Promise.all(chans.map((c, i) => c.deleteQueue(`relay-mux-${i}`)));
    await conn.close();
  });

  it("relays basic.qos, transactions and nack/requeue", async () => {
    const conn = await connect(world, edge, rootKey, vhost.name);
    const ch = await conn.createChannel();
    await ch.assertQueue("relay-tx", { durable: false });
    await ch.prefetch(1);
    const tx = await conn.createChannel();
    // amqplib has no tx API; its channel's rpc takes method ids (class << 16 | method, AMQP 0-9-1 tx class 90).
    const rpc = (tx as unknown as { rpc(m: number, f: object, e: number): Promise<unknown> }).rpc.bind(tx);
    await rpc((90 << 16) | 10, {}, (90 << 16) | 11); // tx.select
    tx.sendToQueue("relay-tx", Buffer.from("rolled back"));
    await rpc((90 << 16) | 30, {}, (90 << 16) | 31); // tx.rollback
    tx.sendToQueue("relay-tx", Buffer.from("committed"));
    await rpc((90 << 16) | 20, {}, (90 << 16) | 21); // tx.commit
    await until(async () => (await ch.checkQueue("relay-tx")).messageCount === 1, 5_000, "committed message");
    const seen: string[] = [];
    await ch.consume("relay-tx", (m) => {
      if (!m) return;
      seen.push(`${m.content.toString()}${m.fields.redelivered ? " (redelivered)" : ""}`);
      if (!m.fields.redelivered) ch.nack(m, false, true);
      else ch.ack(m);
    });
    await until(() => seen.length === 2, 5_000, "delivery and redelivery");
    expect(seen).toEqual(["committed", "committed (redelivered)"]);
    await conn.close();
  });

  it("relays RabbitMQ's own basic.cancel (consumer_cancel_notify) when a queue is deleted under a consumer", async () => {
    const conn = await connect(world, edge, rootKey, vhost.name);
    const ch = await conn.createChannel();
    await ch.assertQueue("relay-deleted", { durable: false });
    const cancelled = new Promise<void>((resolve) => {
      void ch.consume("relay-deleted", (m) => m === null && resolve());
    });
    const d = await direct(vhost.name);
    await (await d.createChannel()).deleteQueue("relay-deleted");
    await cancelled;
    await d.close();
    // the channel is still usable afterwards
    expect((await ch.assertQueue("relay-after-cancel", { durable: false })).queue).toBe("relay-after-cancel");
    await conn.close();
  });

  it("answers update-secret with a fresh signature and refuses a bad one", async () => {
    const conn = await connect(world, edge, rootKey, vhost.name);
    await conn.updateSecret(Buffer.from(amqpPassword(world.secrets.get(rootKey)!)), "refresh");
    const closed = new Promise<Error | undefined>((r) => conn.on("close", r));
    conn.on("error", () => {});
    // amqplib never settles updateSecret when the server closes instead: wait for the close
    void conn.updateSecret(Buffer.from(amqpPassword("not the secret")), "refresh").catch(() => {});
    const err = await closed;
    expect(String(err)).toMatch(/530|NOT_ALLOWED/);
  });

  it("lists connections and reports health", async () => {
    const conn = await connect(world, edge, rootKey, vhost.name);
    const infos = edge.connections().filter((c) => c.phase === "running");
    expect(infos.some((c) => c.accessKeyId === rootKey && c.vhost === vhost.name)).toBe(true);
    const h = edge.health();
    expect(h.ok).toBe(true);
    expect(h.position).toBe(world.feed.position);
    const metrics = await edge.registry.metrics();
    expect(metrics).toMatch(/portcullis_amqp_connections_total\{outcome="opened"\} \d+/);
    expect(metrics).toMatch(/portcullis_amqp_applied_position \d+/);
    await conn.close();
  });

  it("a start on a busy port fails cleanly, so a retry with the same registry works (as serve does)", async () => {
    const registry = new Registry();
    const first = await edgeFor(world, { registry, edgeId: "amqp-a" });
    const names = (r: Registry) => r.getMetricsAsArray().map((m) => m.name);
    expect(names(registry)).toContain("portcullis_amqp_decisions_total");
    await first.edge.close();
    expect(names(registry).filter((n) => n.startsWith("portcullis_amqp_"))).toEqual([]);
    const squatter = net.createServer();
    await new Promise<void>((r) => squatter.listen(0, "127.0.0.1", () => r()));
    const port = (squatter.address() as net.AddressInfo).port;
    await expect(edgeFor(world, { registry, edgeId: "amqp-c", port })).rejects.toThrow(/EADDRINUSE/);
    await new Promise((r) => squatter.close(r));
    const again = await edgeFor(world, { registry, edgeId: "amqp-e" });
    expect(names(registry)).toContain("portcullis_amqp_connections");
    await again.edge.close();
  });
});
