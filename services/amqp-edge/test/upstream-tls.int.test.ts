/**
 * An `amqps://` upstream: the edge speaks TLS to RabbitMQ and checks the
 * broker's certificate (a private RabbitMQ node with an AMQPS listener and a
 * self-signed certificate, given to the edge as its CA).
 */
import { type RabbitMqNode, selfSignedCert, startRabbitMq, type TestCertificate } from "@portcullis/testkit";
import * as amqplib from "amqplib";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AmqpEdge, startAmqpEdge } from "../src/mod.ts";
import { connect, edgeFor, until, World } from "./world.ts";

let node: RabbitMqNode;
let cert: TestCertificate;
let world: World;
let edge: AmqpEdge | undefined;
let rootKey: string;

beforeAll(async () => {
  cert = selfSignedCert();
  node = await startRabbitMq({ tls: cert });
  world = new World();
  await world.start();
  await world.account();
  rootKey = await world.key("root");
}, 90_000);

afterAll(async () => {
  await edge?.close();
  await world?.close();
  await node?.stop();
});

describe("amqps:// upstream", () => {
  it("relays over TLS to the broker, checking its certificate against the given CA", async () => {
    ({ edge } = await edgeFor(world, { upstream: { url: node.tlsUrl!, tls: { ca: cert.cert } } }));
    const conn = await connect(world, edge, rootKey, "/");
    const ch = await conn.createChannel();
    await ch.assertQueue("tls-q", { durable: false });
    ch.sendToQueue("tls-q", Buffer.from("over tls"));
    const got: string[] = [];
    await ch.consume("tls-q", (m) => m && got.push(m.content.toString()), { noAck: true });
    await until(() => got.length === 1, 5_000, "the message");
    expect(got).toEqual(["over tls"]);
    // RabbitMQ reports the edge's connection as TLS.
    expect(await node.ctl("list_connections", "ssl", "ssl_protocol")).toMatch(/\btrue\s+tlsv1\.[23]/i);
    await conn.close();
    // Directly over TLS too, for comparison: the same broker, the same queue (now empty).
    const direct = await amqplib.connect(node.tlsUrl!, { ca: [cert.cert] });
    expect((await (await direct.createChannel()).checkQueue("tls-q")).messageCount).toBe(0);
    await direct.close();
  });

  it("refuses to start when the broker's certificate is not trusted", async () => {
    await expect(
      startAmqpEdge({
        feed: world.feed,
        credentials: world.credentials,
        upstream: { url: node.tlsUrl! },
        port: 0,
        logger: pino({ level: "silent" }),
      }),
    ).rejects.toThrow(/unreachable: .*(self.signed|certificate)/i);
  });
});
