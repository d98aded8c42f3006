/**
 * `connection.blocked` / `connection.unblocked` (RabbitMQ's extension, AMQP
 * 0-9-1 class 10 methods 60/61) reach a client through the edge as they would
 * from RabbitMQ itself. A memory alarm blocks every publisher of a node, so
 * this file runs its own private RabbitMQ node instead of the shared one.
 */
import { type RabbitMqNode, startRabbitMq } from "@portcullis/testkit";
import type * as amqplib from "amqplib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AmqpEdge } from "../src/mod.ts";
import { connect, edgeFor, until, World } from "./world.ts";

let node: RabbitMqNode;
let world: World;
let edge: AmqpEdge;
let key: string;

beforeAll(async () => {
  node = await startRabbitMq();
  world = new World();
  await world.start();
  await world.account();
  key = await world.key("root");
  ({ edge } = await edgeFor(world, { edgeId: "amqp-blocked", upstream: { url: node.url } }));
}, 90_000);

afterAll(async () => {
  await edge?.close();
  await world?.close();
  await node?.stop();
});

describe("connection.blocked through the edge", () => {
  it("a publisher hears blocked when the node's memory alarm goes off, and unblocked when it clears", async () => {
    const conn: amqplib.ChannelModel = await connect(world, edge, key, "/");
    const heard: string[] = [];
    conn.on("blocked", (reason: string) => heard.push(`blocked: ${reason}`));
    conn.on("unblocked", () => heard.push("unblocked"));
    try {
      const ch = await conn.createChannel();
      await ch.assertQueue("blocked-q", { durable: false });
      await node.ctl("set_vm_memory_high_watermark", "0");
      // RabbitMQ blocks a connection once it publishes while the alarm is on.
      ch.sendToQueue("blocked-q", Buffer.from("while blocked"));
      await until(() => heard.length > 0, 20_000, "connection.blocked");
      expect(heard[0]).toMatch(/^blocked: .*memory/i);
      await node.ctl("set_vm_memory_high_watermark", "0.4");
      await until(() => heard.includes("unblocked"), 20_000, "connection.unblocked");
      // The held publish goes through once unblocked.
      await until(async () => (await ch.checkQueue("blocked-q")).messageCount === 1, 10_000, "the message");
    } finally {
      await node.ctl("set_vm_memory_high_watermark", "0.4").catch(() => {});
      await conn.close().catch(() => {});
    }
  });
});
