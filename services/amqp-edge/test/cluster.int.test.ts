/**
 * An upstream of several nodes (SPEC §9: a RabbitMQ cluster upstream): each
 * client connection goes to the next node in turn and skips a node it cannot
 * reach; the edge starts as long as one node answers. The unreachable node is
 * a free loopback port with nothing listening; the reachable one the real
 * RabbitMQ.
 */
import { freePort } from "@portcullis/testkit";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AmqpEdge, startAmqpEdge } from "../src/mod.ts";
import { connect, createVhost, direct, edgeFor, RABBIT_URL, until, World } from "./world.ts";

let world: World;
let edge: AmqpEdge;
let vhost: { name: string; remove(): Promise<void> };
let rootKey: string;
let deadUrl: string;
const lines: Record<string, unknown>[] = [];

beforeAll(async () => {
  vhost = await createVhost();
  world = new World();
  await world.start();
  await world.account();
  rootKey = await world.key("root");
  deadUrl = `amqp://guest:guest@127.0.0.1:${await freePort()}`;
  const logger = pino({ level: "info" }, { write: (s: string) => lines.push(JSON.parse(s)) });
  ({ edge } = await edgeFor(world, { upstream: { url: [deadUrl, RABBIT_URL] }, logger }));
});

afterAll(async () => {
  await edge?.close();
  await world?.close();
  await vhost?.remove();
});

describe("an upstream of several nodes", () => {
  it("starts with one node down, and every connection reaches a node that answers", async () => {
    const q = "cluster-q";
    const conns = [];
    // Round robin: of four connections, two try the unreachable node first and move on.
    for (let i = 0; i < 4; i++) conns.push(await connect(world, edge, rootKey, vhost.name));
    const got: string[] = [];
    for (const [i, c] of conns.entries()) {
      const ch = await c.createChannel();
      await ch.assertQueue(q, { durable: false });
      ch.sendToQueue(q, Buffer.from(`via connection ${i}`));
      await ch.close();
    }
    const ch = await conns[0]!.createChannel();
    await ch.consume(q, (m) => m && got.push(m.content.toString()), { noAck: true });
    await until(() => got.length === 4, 5_000, "4 messages");
    expect(got.sort()).toEqual([0, 1, 2, 3].map((i) => `via connection ${i}`));
    const skipped = lines.filter((l) => l.msg === "upstream node unreachable: trying the next");
    expect(skipped.length).toBe(2);
    expect(skipped[0]!.upstream).toBe(deadUrl.replace("amqp://guest:guest@", ""));
    for (const c of conns) await c.close();
    const d = await direct(vhost.name);
    expect((await (await d.createChannel()).checkQueue(q)).messageCount).toBe(0);
    await d.close();
  });

  it("does not start when no node answers, and says which failed", async () => {
    const other = `amqp://guest:guest@127.0.0.1:${await freePort()}`;
    await expect(
      startAmqpEdge({
        feed: world.feed,
        credentials: world.credentials,
        upstream: { url: `${deadUrl},${other}` },
        port: 0,
        logger: pino({ level: "silent" }),
      }),
    ).rejects.toThrow(
      /no upstream node answered: upstream 127\.0\.0\.1:\d+ unreachable: .*; upstream 127\.0\.0\.1:\d+ unreachable/,
    );
  });
});
