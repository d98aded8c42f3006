import type { DecisionRecord } from "@portcullis/feed";
import { type NatsServer, startNatsServer } from "@portcullis/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DecisionLog, type LoggedDecision } from "./decision-log.ts";
import { JetStreamDecisionStore } from "./jetstream-decision-store.ts";

const ACCT = "1111111111111111";
let server: NatsServer;

beforeAll(async () => {
  server = await startNatsServer({ jetstream: true });
});
afterAll(async () => {
  await server?.stop();
});

const t0 = Date.UTC(2025, 0, 1);
function rec(i: number, edgeId: string, principal = `${ACCT}/u1`): DecisionRecord {
  return {
    time: new Date(t0 + i * 1000).toISOString(),
    edgeId,
    protocol: "amqp",
    principal,
    action: "amqp:BasicPublish",
    resource: `acs:amqp:local:${ACCT}:/vhosts/v/exchanges/x/messages/rk.${i}`,
    context: { "amqp:RoutingKey": `rk.${i}` },
    decision: i % 3 === 0 ? "ExplicitDeny" : "ImplicitDeny",
    decidingStatements: [],
    position: i,
    clientId: `conn-${i}`,
  };
}

async function readAll(store: JetStreamDecisionStore, opts = {}): Promise<LoggedDecision[]> {
  const out: LoggedDecision[] = [];
  for await (const x of store.read(opts)) out.push(x);
  return out;
}

describe("JetStreamDecisionStore (nats-server 2.9)", () => {
  it("two edges log through DecisionLog; a reader streams every record back, filtered by time and account", async () => {
    const streamName = "DECISIONS_A";
    const a = await JetStreamDecisionStore.connect({ servers: server.url, streamName, edgeId: "amqp-1" });
    const b = await JetStreamDecisionStore.connect({ servers: server.url, streamName, edgeId: "mqtt/2" });
    // Small messages: a batch is split into several.
    const logA = new DecisionLog({ writer: a, batchSize: 50 });
    const logB = new DecisionLog({ writer: b, batchSize: 50 });
    for (let i = 0; i < 300; i++) {
      logA.sink(rec(i, "amqp-1"));
      logB.sink(rec(i, "mqtt/2", i % 2 ? `${ACCT}` : "2222222222222222/u9"));
    }
    await Promise.all([logA.close(), logB.close()]);
    expect(logA.stats()).toMatchObject({ written: 300, dropped: 0, writeErrors: 0 });

    const reader = await JetStreamDecisionStore.connect({ servers: server.url, streamName });
    try {
      const all = await readAll(reader);
      expect(all.length).toBe(600);
      const ofA = all.filter((x) => x.record.edgeId === "amqp-1").map((x) => x.record);
      expect(ofA).toEqual([...Array(300).keys()].map((i) => rec(i, "amqp-1")));
      expect(new Set(all.map((x) => x.id)).size).toBe(600);

      const from = new Date(t0 + 100_000).toISOString();
      const to = new Date(t0 + 199_000).toISOString();
      const some = await readAll(reader, { from: new Date(0).toISOString(), to, accountId: ACCT });
      expect(some.every((x) => x.record.time <= to && !x.record.principal.startsWith("2222"))).toBe(true);
      expect(some.length).toBe(200 + 100);
      // Every message was published after `from` (record times are in 2025): all read, then filtered.
      const mid = await readAll(reader, { from, to });
      expect(mid.length).toBe(200);
      expect(mid.every((x) => x.record.time >= from && x.record.time <= to)).toBe(true);
      // A start after every message: nothing, at once.
      expect(await readAll(reader, { from: new Date(Date.now() + 3_600_000).toISOString() })).toEqual([]);
    } finally {
      await reader.close();
    }
  });

  it("splits a batch larger than maxMessageBytes into several messages and keeps the order", async () => {
    const streamName = "DECISIONS_B";
    const subjectPrefix = "b";
    const w = await JetStreamDecisionStore.connect({
      servers: server.url,
      streamName,
      subjectPrefix,
      edgeId: "e",
      maxMessageBytes: 2_000,
    });
    try {
      const batch = [...Array(40).keys()].map((i) => rec(i, "e"));
      await w.write(batch);
      const got = await readAll(w);
      expect(got.map((x) => x.record)).toEqual(batch);
      expect(new Set(got.map((x) => x.id.split("/")[0])).size).toBeGreaterThan(1);
    } finally {
      await w.close();
    }
  });

  it("an empty stream reads as nothing; an unreachable server is a clear error", async () => {
    const r = await JetStreamDecisionStore.connect({
      servers: server.url,
      streamName: "DECISIONS_EMPTY",
      subjectPrefix: "empty",
    });
    expect(await readAll(r)).toEqual([]);
    await r.close();
    await expect(JetStreamDecisionStore.connect({ servers: "nats://127.0.0.1:1" })).rejects.toThrow();
  });
});
