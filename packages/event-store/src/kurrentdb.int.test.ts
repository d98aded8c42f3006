/**
 * KurrentDbEventStore. No KurrentDB server runs in this workplace: the tests
 * that need one run only when KURRENTDB_URL is set (e.g.
 * `kurrentdb://127.0.0.1:2113?tls=false`) and are reported as skipped
 * otherwise. The client loading, the id mapping and the failure path always run.
 */
import { randomUUID } from "node:crypto";
import { accountStream, type EventEnvelope, newEvent, type RecordedEvent } from "@portcullis/events";
import { freePort, startNatsServer } from "@portcullis/testkit";
import { describe, expect, it } from "vitest";
import { JetStreamEventStore } from "./adapters/jetstream.ts";
import { KurrentDbEventStore, KurrentNatsRelay, kurrentId } from "./adapters/kurrentdb.ts";
import { ExpectedRevisionConflictError, StoreUnavailableError } from "./errors.ts";
import { NO_STREAM } from "./expected-revision.ts";

const URL = process.env.KURRENTDB_URL;
const acct = "0000000000000007";

function event(n = 0): EventEnvelope {
  return newEvent(
    "UserCreated",
    1,
    acct,
    { kind: "root", accountId: acct },
    { userId: `u${n}`, userName: `n${n}` },
  );
}

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

describe("KurrentDbEventStore without a server", () => {
  it("reports an unreachable server as StoreUnavailableError", async () => {
    const port = await freePort();
    await expect(
      KurrentDbEventStore.connect({
        connectionString: `kurrentdb://127.0.0.1:${port}?tls=false`,
        syncTimeoutMs: 3_000,
      }),
    ).rejects.toBeInstanceOf(StoreUnavailableError);
    await expect(KurrentDbEventStore.connect({ connectionString: "http://nope" })).rejects.toThrow(
      /bad connection string/,
    );
  });

  it("maps envelope ids to KurrentDB UUIDs deterministically", () => {
    const u = randomUUID();
    expect(kurrentId(u)).toBe(u);
    expect(kurrentId(u.toUpperCase())).toBe(u);
    const a = kurrentId("evt-1");
    expect(a).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(kurrentId("evt-1")).toBe(a);
    expect(kurrentId("evt-2")).not.toBe(a);
  });
});

describe.skipIf(URL === undefined)("KurrentDbEventStore on KURRENTDB_URL", () => {
  const open = (prefix: string) =>
    KurrentDbEventStore.connect({ connectionString: URL!, streamPrefix: prefix, syncTimeoutMs: 10_000 });

  it("appends with gapless positions that every instance computes alike", async () => {
    const prefix = `pc-test-${randomUUID()}-`;
    const one = await open(prefix);
    try {
      const a = accountStream(acct);
      expect(await one.append(a, [event(1), event(2)], { expectedRevision: NO_STREAM })).toEqual({
        firstPosition: 1,
        position: 2,
        revision: 1,
      });
      expect(await one.append("other", [event(3)])).toEqual({ firstPosition: 3, position: 3, revision: 0 });
      await expect(one.append(a, [event(4)], { expectedRevision: 0 })).rejects.toBeInstanceOf(
        ExpectedRevisionConflictError,
      );
      expect(await one.append(a, [event(5)], { expectedRevision: 1 })).toMatchObject({
        position: 4,
        revision: 2,
      });
      const two = await open(prefix);
      try {
        expect(await two.head()).toBe(4);
        const all = await collect(two.readAll());
        expect(all.map((e) => [e.position, e.stream, e.revision])).toEqual([
          [1, a, 0],
          [2, a, 1],
          [3, "other", 0],
          [4, a, 2],
        ]);
        expect(await collect(one.readAll())).toEqual(all);
        expect((await collect(two.readStream(a, { fromRevision: 1 }))).map((e) => e.position)).toEqual([
          2, 4,
        ]);
      } finally {
        await two.close();
      }
    } finally {
      await one.close();
    }
  });

  it("subscribes catch-up then live, and a retried append returns its original result", async () => {
    const store = await open(`pc-test-${randomUUID()}-`);
    try {
      const first = [event(1), event(2)];
      const r = await store.append("s", first, { expectedRevision: NO_STREAM });
      expect(await store.append("s", first, { expectedRevision: NO_STREAM })).toEqual(r);
      const sub = store.subscribe({ from: 2 });
      const it = sub[Symbol.asyncIterator]();
      expect((await it.next()).value?.position).toBe(2);
      await store.append("s", [event(3)]);
      expect((await it.next()).value?.position).toBe(3);
      await sub.close();
    } finally {
      await store.close();
    }
  });

  it("relays committed events to NATS at the same positions", async () => {
    await using nats = await startNatsServer();
    const store = await open(`pc-test-${randomUUID()}-`);
    const target = await JetStreamEventStore.connect({
      servers: nats.url,
      streamName: "FEED",
      subjectPrefix: "feed",
    });
    const relay = KurrentNatsRelay.start({ source: store, target });
    try {
      await store.append("s", [event(1), event(2), event(3)]);
      await store.append("t", [event(4)]);
      const deadline = Date.now() + 10_000;
      while (relay.relayedPosition < 4 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      const mirrored: RecordedEvent[] = await collect(target.readAll());
      expect(mirrored).toEqual(await collect(store.readAll()));
    } finally {
      await relay.stop();
      await target.close();
      await store.close();
    }
  });
});
