import { connect as tcpConnect } from "node:net";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { describe, expect, it } from "vitest";
import { freePort, NatsServerError, startNatsServer } from "./mod.ts";

/** Resolves when 127.0.0.1:port accepts a TCP connection, rejects with the socket error otherwise. */
function probe(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = tcpConnect({ host: "127.0.0.1", port });
    socket.once("connect", () => {
      socket.destroy();
      resolve();
    });
    socket.once("error", reject);
  });
}

/** Resolves on the connection's next "reconnect" status event. */
async function nextReconnect(nc: NatsConnection): Promise<void> {
  for await (const status of nc.status()) {
    if (status.type === "reconnect") return;
  }
  throw new Error("connection closed before reconnecting");
}

describe("startNatsServer", () => {
  it("serves pub/sub and JetStream, survives a restart, and frees its port on stop", async () => {
    const server = await startNatsServer();
    expect(server.url).toBe(`nats://127.0.0.1:${server.port}`);

    const nc = await connect({ servers: server.url, reconnectTimeWait: 50, maxReconnectAttempts: -1 });
    try {
      const sub = nc.subscribe("testkit.hello", { max: 1 });
      nc.publish("testkit.hello", "hi");
      for await (const msg of sub) expect(msg.string()).toBe("hi");

      const jsm = await jetstreamManager(nc);
      const account = await jsm.getAccountInfo();
      expect(account.streams).toBe(0);
      await jsm.streams.add({ name: "TESTKIT", subjects: ["testkit.js.>"] });
      await jetstream(nc).publish("testkit.js.one", "persisted");

      const reconnected = nextReconnect(nc);
      await server.restart();
      await reconnected;

      // Same port, same store: the stream and its message are still there.
      const info = await jsm.streams.info("TESTKIT");
      expect(info.state.messages).toBe(1);
      const reply = await nc.request("$JS.API.INFO", undefined, { timeout: 2_000 });
      expect(reply.json<{ type: string }>().type).toBe("io.nats.jetstream.api.v1.account_info_response");
    } finally {
      await nc.close();
    }

    await probe(server.port);
    await server.stop();
    await expect(probe(server.port)).rejects.toMatchObject({ code: "ECONNREFUSED" });
    await server.stop(); // idempotent
  });

  it("keeps JetStream data across kill9 + restart", async () => {
    await using server = await startNatsServer();
    const nc = await connect({ servers: server.url });
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: "CRASH", subjects: ["crash.>"] });
    await jetstream(nc).publish("crash.a", "1");
    await nc.close();

    await server.kill9();
    await expect(probe(server.port)).rejects.toMatchObject({ code: "ECONNREFUSED" });
    await server.restart();

    const nc2 = await connect({ servers: server.url });
    try {
      const info = await (await jetstreamManager(nc2)).streams.info("CRASH");
      expect(info.state.messages).toBe(1);
    } finally {
      await nc2.close();
    }
  });

  it("can start without JetStream and with a monitoring port", async () => {
    await using server = await startNatsServer({ jetstream: false, monitoring: true });
    const nc = await connect({ servers: server.url });
    try {
      await expect(jetstreamManager(nc)).rejects.toThrow(/jetstream/i);
    } finally {
      await nc.close();
    }
    expect(server.monitorUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const varz = (await (await fetch(`${server.monitorUrl}/varz`)).json()) as { port: number };
    expect(varz.port).toBe(server.port);
  });

  it("fails with a clear error (never skips) when nats-server is missing", async () => {
    const saved = process.env.NATS_SERVER_BIN;
    process.env.NATS_SERVER_BIN = "/nonexistent/nats-server";
    try {
      const attempt = startNatsServer();
      await expect(attempt).rejects.toBeInstanceOf(NatsServerError);
      await expect(attempt).rejects.toThrow(/bash infra\/setup\.sh/);
    } finally {
      if (saved === undefined) delete process.env.NATS_SERVER_BIN;
      else process.env.NATS_SERVER_BIN = saved;
    }
  });
});

describe("freePort", () => {
  it("returns a loopback port nothing listens on", async () => {
    const port = await freePort();
    expect(port).toBeGreaterThan(0);
    await expect(probe(port)).rejects.toMatchObject({ code: "ECONNREFUSED" });
  });
});
