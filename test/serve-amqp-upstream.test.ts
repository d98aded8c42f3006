/**
 * `portcullis serve --amqp-upstream`: a list of nodes (a cluster, one of them
 * down) and an `amqps://` node checked against `--amqp-upstream-ca`, each
 * carrying a real client's messages through the all-in-one's AMQP edge.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { amqpPassword, amqpUsername } from "@portcullis/amqp-edge";
import { freePort, type RabbitMqNode, selfSignedCert, startRabbitMq } from "@portcullis/testkit";
import * as amqplib from "amqplib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Serve, startServe } from "./helpers/serve.ts";

let node: RabbitMqNode;
let gw: Serve | undefined;
const cert = selfSignedCert();
const dir = mkdtempSync(join(tmpdir(), "portcullis-ca-"));
const caFile = join(dir, "ca.pem");
writeFileSync(caFile, cert.cert);

beforeAll(async () => {
  node = await startRabbitMq({ tls: cert });
}, 90_000);
afterAll(async () => {
  await gw?.stop();
  await node?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** A client connection through the gateway's AMQP edge as root. */
function connectRoot(g: Serve): Promise<amqplib.ChannelModel> {
  const user = amqpUsername("amqp-local", g.root.accessKeyId);
  const pass = amqpPassword(g.root.accessKeySecret);
  return amqplib.connect(
    `amqp://${encodeURIComponent(user)}:${encodeURIComponent(pass)}@127.0.0.1:${g.amqp!.port}/`,
  );
}

/** Publish and get one message through the gateway's AMQP edge as root. */
async function roundTrip(g: Serve, text: string): Promise<string | undefined> {
  const c = await connectRoot(g);
  const ch = await c.createChannel();
  const { queue } = await ch.assertQueue("", { exclusive: true });
  ch.sendToQueue(queue, Buffer.from(text));
  let m: amqplib.GetMessage | false = false;
  for (let i = 0; i < 50 && !m; i++) {
    m = await ch.get(queue, { noAck: true });
    if (!m) await new Promise((r) => setTimeout(r, 50));
  }
  await c.close();
  return m ? m.content.toString() : undefined;
}

describe("portcullis serve --amqp-upstream", () => {
  it("takes a list of nodes and starts the AMQP edge when one of them is up", async () => {
    const dead = `amqp://guest:guest@127.0.0.1:${await freePort()}`;
    gw = await startServe({ args: ["--no-mqtt"], amqpUpstream: `${dead},${node.url}` });
    expect(gw.amqp).toBeDefined();
    expect(gw.output()).not.toContain("AMQP edge: off");
    // Two connections: round robin sends one of them to the dead node first.
    expect(await roundTrip(gw, "one")).toBe("one");
    expect(await roundTrip(gw, "two")).toBe("two");
    await gw.stop();
    gw = undefined;
  });

  it("relays to an amqps:// node whose certificate --amqp-upstream-ca vouches for", async () => {
    gw = await startServe({
      args: ["--no-mqtt", "--amqp-upstream-ca", caFile],
      amqpUpstream: node.tlsUrl!,
    });
    expect(gw.amqp).toBeDefined();
    expect(await roundTrip(gw, "over tls")).toBe("over tls");
    // While a client is connected, RabbitMQ lists the edge's connection for it as TLS.
    const c = await connectRoot(gw);
    expect(await node.ctl("list_connections", "ssl")).toMatch(/\btrue\b/);
    await c.close();
  });
});
