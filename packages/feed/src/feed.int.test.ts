/**
 * The feed against a real nats-server: a JetStream store followed by two
 * "edges", their positions reported over NATS, and staleness when the server
 * goes away (SPEC §6: "knows within 2 s").
 */
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { JetStreamEventStore } from "@portcullis/event-store";
import { accountStream, CURRENT_SCHEMA_VERSION, newEvent } from "@portcullis/events";
import { type NatsServer, startNatsServer } from "@portcullis/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type FeedStatus, LiveProjection, NatsPositionBoard, publishPositions } from "./mod.ts";

const ACCT = "1234567890123456";
const actor = { kind: "root" as const, accountId: ACCT };
const userCreated = (n: number) =>
  newEvent("UserCreated", CURRENT_SCHEMA_VERSION.UserCreated, ACCT, actor, {
    userId: `u${n}`,
    userName: `user${n}`,
  });

let server: NatsServer;
beforeAll(async () => {
  server = await startNatsServer({ jetstream: true });
});
afterAll(async () => {
  await server?.stop();
});

describe("feed over JetStream", () => {
  it("two edges follow one store and the board waits for both, naming a stopped one as lagging", async () => {
    const writer = await JetStreamEventStore.connect({ servers: server.url, streamName: "BOARD" });
    const nc: NatsConnection = await connect({ servers: server.url });
    const cleanups: Array<() => Promise<void> | void> = [];
    try {
      await writer.append(accountStream(ACCT), [
        newEvent("AccountCreated", 1, ACCT, actor, { accountId: ACCT, alias: "acme" }),
      ]);
      const board = new NatsPositionBoard(nc, { liveWindowMs: 2_000 });
      cleanups.push(() => board.close());
      const edges: LiveProjection[] = [];
      for (const id of ["mqtt-1", "mqtt-2"]) {
        const store = await JetStreamEventStore.connect({ servers: server.url, streamName: "BOARD" });
        const feed = await LiveProjection.start(store);
        expect(feed.position).toBe(1);
        const edgeNc = await connect({ servers: server.url });
        const stop = publishPositions(edgeNc, feed, { edgeId: id, kind: "mqtt" }, { heartbeatMs: 200 });
        edges.push(feed);
        cleanups.push(async () => {
          stop();
          await feed.close();
          await store.close();
          await edgeNc.close();
        });
      }
      // Both edges announce themselves by heartbeat.
      await expect.poll(() => board.edges().length, { timeout: 3_000 }).toBe(2);

      const r = await writer.append(accountStream(ACCT), [userCreated(1)]);
      const done = await board.waitForAll(r.position, 5_000);
      expect(done.ok).toBe(true);
      expect(done.edges.map((e) => e.position)).toEqual([r.position, r.position]);

      // Edge 2 stops following but keeps reporting its old position: it lags.
      await edges[1]!.close();
      const r2 = await writer.append(accountStream(ACCT), [userCreated(2)]);
      const late = await board.waitForAll(r2.position, 500);
      expect(late.ok).toBe(false);
      expect(late.lagging.map((e) => e.edgeId)).toEqual(["mqtt-2"]);
      expect(edges[0]!.position).toBe(r2.position);
    } finally {
      for (const c of cleanups.reverse()) await c();
      await nc.close();
      await writer.close();
    }
  });

  it("an edge whose nats-server dies reports itself stale within 2 s, and fresh again once it is back", async () => {
    const own = await startNatsServer({ jetstream: true });
    const store = await JetStreamEventStore.connect({ servers: own.url, requestTimeoutMs: 500 });
    const feed = await LiveProjection.start(store, { probeIntervalMs: 100, failClosedAfterMs: 1_000 });
    const changes: FeedStatus[] = [];
    feed.onStatus((s) => changes.push(s));
    try {
      await store.append(accountStream(ACCT), [
        newEvent("AccountCreated", 1, ACCT, actor, { accountId: ACCT, alias: "acme" }),
      ]);
      await expect.poll(() => feed.position, { timeout: 2_000 }).toBe(1);
      expect(feed.status().stale).toBe(false);

      await own.kill9();
      const killedAt = Date.now();
      await expect.poll(() => feed.status().stale, { timeout: 4_000, interval: 50 }).toBe(true);
      // SPEC §6: within 2 s (the default staleAfterMs), plus one probe period and a timeout's slack.
      expect(Date.now() - killedAt).toBeLessThan(3_000);
      await expect.poll(() => feed.status().failClosed, { timeout: 3_000, interval: 50 }).toBe(true);
      // listeners hear both changes: stale first, then fail-closed
      await expect.poll(() => changes.at(-1)?.failClosed, { timeout: 1_000, interval: 20 }).toBe(true);
      expect(changes.some((c) => c.stale && !c.failClosed)).toBe(true);

      await own.restart();
      await expect.poll(() => feed.status().stale, { timeout: 10_000, interval: 100 }).toBe(false);
      expect(feed.status().failClosed).toBe(false);
      // and the feed still follows the store after the restart
      const r = await store.append(accountStream(ACCT), [userCreated(9)]);
      expect(await feed.waitForPosition(r.position, 10_000)).toBe(true);
    } finally {
      await feed.close();
      await store.close();
      await own.stop();
    }
  });
});
