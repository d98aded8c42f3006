/**
 * Condition keys of SPEC §4.2 as the edge fills them: `acs:SecureTransport`
 * (a TLS listener vs plain TCP), `acs:SourceIp`, `amqp:Vhost`, `amqp:RoutingKey`.
 */
import { selfSignedCert, type TestCertificate } from "@portcullis/testkit";
import * as amqplib from "amqplib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AmqpEdge, amqpPassword, amqpUsername } from "../src/mod.ts";
import { connect, createVhost, edgeFor, World } from "./world.ts";

let world: World;
let plain: AmqpEdge;
let secure: AmqpEdge;
let V: string;
let removeVhost: () => Promise<void>;
let cert: TestCertificate;
let key: string;
let clockKey: string;

const res = (rel = "") => `acs:amqp:*:*:/vhosts/${V}${rel}`;

beforeAll(async () => {
  ({ name: V, remove: removeVhost } = await createVhost());
  cert = selfSignedCert();
  world = new World();
  await world.start();
  await world.account();
  await world.user("ctx");
  await world.grant("ctx", "ctx-policy", {
    Version: "1",
    Statement: [
      {
        Effect: "Allow",
        Action: "amqp:GetVhost",
        Resource: res(),
        Condition: { StringEquals: { "amqp:Vhost": V } },
      },
      {
        Effect: "Allow",
        Action: "amqp:GetQueue",
        Resource: res("/queues/*"),
        Condition: { Bool: { "acs:SecureTransport": "true" } },
      },
      {
        Effect: "Allow",
        Action: "amqp:CreateQueue",
        Resource: res("/queues/*"),
        Condition: { IpAddress: { "acs:SourceIp": "10.0.0.0/8" } },
      },
    ],
  });
  key = await world.key("ctx");
  const past = new Date(Date.now() - 3_600_000).toISOString();
  const future = new Date(Date.now() + 3_600_000).toISOString();
  await world.user("clock");
  await world.grant("clock", "clock-policy", {
    Version: "1",
    Statement: [
      {
        Effect: "Allow",
        Action: "amqp:GetVhost",
        Resource: res(),
        Condition: { DateLessThan: { "acs:CurrentTime": future } },
      },
      {
        Effect: "Allow",
        Action: "amqp:BasicPublish",
        Resource: res("/exchanges/amq.topic/messages/*"),
        Condition: { DateGreaterThan: { "acs:CurrentTime": past } },
      },
      {
        Effect: "Deny",
        Action: "amqp:BasicPublish",
        Resource: res("/exchanges/amq.topic/messages/expired.*"),
        Condition: { DateGreaterThan: { "acs:CurrentTime": past } },
      },
    ],
  });
  clockKey = await world.key("clock");
  ({ edge: plain } = await edgeFor(world, { edgeId: "amqp-plain" }));
  ({ edge: secure } = await edgeFor(world, {
    edgeId: "amqp-tls",
    tls: cert,
  }));
});

afterAll(async () => {
  await plain?.close();
  await secure?.close();
  await world?.close();
  await removeVhost?.();
});

async function tryCheckQueue(conn: amqplib.ChannelModel): Promise<string> {
  conn.on("error", () => {});
  const ch = await conn.createChannel();
  ch.on("error", () => {});
  try {
    await ch.checkQueue("ctx-q");
    return "ok";
  } catch (e) {
    return (e as Error).message;
  } finally {
    await conn.close().catch(() => {});
  }
}

describe("condition keys", () => {
  it("acs:SecureTransport is true on the TLS listener and false on plain TCP", async () => {
    const { direct } = await import("./world.ts");
    const d = await direct(V);
    await (await d.createChannel()).assertQueue("ctx-q", { durable: false });
    await d.close();
    const url = `amqps://${encodeURIComponent(amqpUsername("amqp-local", key))}:${encodeURIComponent(
      amqpPassword(world.secrets.get(key)!),
    )}@127.0.0.1:${secure.port}/${encodeURIComponent(V)}`;
    const overTls = await amqplib.connect(url, { rejectUnauthorized: false });
    expect(await tryCheckQueue(overTls)).toBe("ok");
    const overTcp = await connect(world, plain, key, V);
    expect(await tryCheckQueue(overTcp)).toMatch(/403.*amqp:GetQueue/);
  });

  it("acs:SourceIp is the client's address (127.0.0.1 is not in 10.0.0.0/8)", async () => {
    const conn = await connect(world, plain, key, V);
    conn.on("error", () => {});
    const ch = await conn.createChannel();
    ch.on("error", () => {});
    await expect(ch.assertQueue("ctx-new", { durable: false })).rejects.toThrow(/403.*amqp:CreateQueue/);
    await conn.close().catch(() => {});
  });

  it("amqp:Vhost is the vhost of connection.open", async () => {
    const conn = await connect(world, plain, key, V);
    expect(plain.connections().find((c) => c.accessKeyId === key)?.vhost).toBe(V);
    await conn.close();
  });

  it("acs:CurrentTime is the time of each decision: time-bounded grants and denies apply, with routing keys too", async () => {
    // Without the clock in the context the time-bounded GetVhost grant would not match: no connection.
    const conn = await connect(world, plain, clockKey, V);
    conn.on("error", () => {});
    const ok = await conn.createConfirmChannel();
    ok.on("error", () => {});
    await new Promise<void>((resolve, reject) =>
      ok.publish("amq.topic", "orders.new", Buffer.from("x"), {}, (err) => (err ? reject(err) : resolve())),
    );
    const denied = await conn.createConfirmChannel();
    const refusal = new Promise<string>((resolve) => denied.on("error", (e: Error) => resolve(e.message)));
    denied.publish("amq.topic", "expired.order", Buffer.from("x"));
    expect(await refusal).toMatch(/403.*amqp:BasicPublish.*ExplicitDeny|403.*explicit/i);
    await conn.close().catch(() => {});
  });
});
