import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { accountStream, type EventEnvelope, newEvent, type RecordedEvent } from "@portcullis/events";
import { freePort, type NatsServer, startNatsServer } from "@portcullis/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { JetStreamEventStore, subjectToken } from "./adapters/jetstream.ts";
import {
  ExpectedRevisionConflictError,
  InvalidEventError,
  isExpectedRevisionConflict,
  StoreUnavailableError,
} from "./errors.ts";
import { ANY, NO_STREAM, STREAM_EXISTS } from "./expected-revision.ts";

const root = (accountId: string) => ({ kind: "root", accountId }) as const;
const acct = (n: number) => String(n).padStart(16, "0");

let counter = 0;
/** A valid UserCreated event of account `n`. */
function userCreated(n = 1, opts: { occurredAt?: Date } = {}): EventEnvelope {
  counter++;
  return newEvent(
    "UserCreated",
    1,
    acct(n),
    root(acct(n)),
    { userId: `u-${counter}`, userName: `user${counter}` },
    opts,
  );
}

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

async function take(it: AsyncIterator<RecordedEvent>, n: number): Promise<RecordedEvent[]> {
  const out: RecordedEvent[] = [];
  while (out.length < n) {
    const r = await it.next();
    if (r.done) break;
    out.push(r.value);
  }
  return out;
}

function expectGapless(events: readonly RecordedEvent[], from = 1): void {
  expect(events.map((e) => e.position)).toEqual(events.map((_, i) => from + i));
}

let server: NatsServer;
let streamNo = 0;
/** A store on its own JetStream stream, so tests do not see each other's events. */
async function freshStore(extra: Parameters<typeof JetStreamEventStore.connect>[0] = {}) {
  streamNo++;
  return JetStreamEventStore.connect({
    servers: server.url,
    streamName: `T${streamNo}`,
    subjectPrefix: `t${streamNo}`,
    ...extra,
  });
}

beforeAll(async () => {
  server = await startNatsServer();
});
afterAll(async () => {
  await server?.stop();
});

describe("JetStreamEventStore", () => {
  it("appends atomically with gapless positions and per-stream revisions", async () => {
    await using store = disposable(await freshStore());
    const a = accountStream(acct(1));
    const b = accountStream(acct(2));
    expect(await store.head()).toBe(0);
    expect(await store.streamRevision(a)).toBe(-1);

    const r1 = await store.append(a, [userCreated(1), userCreated(1), userCreated(1)], {
      expectedRevision: NO_STREAM,
    });
    expect(r1).toEqual({ firstPosition: 1, position: 3, revision: 2 });
    const r2 = await store.append(b, [userCreated(2)], { expectedRevision: NO_STREAM });
    expect(r2).toEqual({ firstPosition: 4, position: 4, revision: 0 });
    const r3 = await store.append(a, [userCreated(1), userCreated(1)], { expectedRevision: 2 });
    expect(r3).toEqual({ firstPosition: 5, position: 6, revision: 4 });

    expect(await store.head()).toBe(6);
    expect(await store.streamRevision(a)).toBe(4);
    expect(await store.streamRevision(b)).toBe(0);

    const all = await collect(store.readAll());
    expectGapless(all);
    expect(all.map((e) => e.stream)).toEqual([a, a, a, b, a, a]);
    expect(all.map((e) => e.revision)).toEqual([0, 1, 2, 0, 3, 4]);

    const onlyA = await collect(store.readStream(a));
    expect(onlyA.map((e) => e.revision)).toEqual([0, 1, 2, 3, 4]);
    expect(onlyA.map((e) => e.position)).toEqual([1, 2, 3, 5, 6]);
    expect((await collect(store.readStream(a, { fromRevision: 2 }))).map((e) => e.revision)).toEqual([
      2, 3, 4,
    ]);
    expect(await collect(store.readStream(a, { fromRevision: 5 }))).toEqual([]);
    expect(await collect(store.readStream("nope"))).toEqual([]);
  });

  it("enforces expected revisions and reports the actual one", async () => {
    await using store = disposable(await freshStore());
    const s = accountStream(acct(3));
    await expect(
      store.append(s, [userCreated(3)], { expectedRevision: STREAM_EXISTS }),
    ).rejects.toMatchObject({
      code: "EXPECTED_REVISION_CONFLICT",
      stream: s,
      expected: STREAM_EXISTS,
      actual: -1,
    });
    await expect(store.append(s, [userCreated(3)], { expectedRevision: 0 })).rejects.toBeInstanceOf(
      ExpectedRevisionConflictError,
    );
    await store.append(s, [userCreated(3), userCreated(3)], { expectedRevision: NO_STREAM });
    await expect(store.append(s, [userCreated(3)], { expectedRevision: NO_STREAM })).rejects.toMatchObject({
      expected: NO_STREAM,
      actual: 1,
    });
    await expect(store.append(s, [userCreated(3)], { expectedRevision: 0 })).rejects.toMatchObject({
      expected: 0,
      actual: 1,
    });
    expect((await store.append(s, [userCreated(3)], { expectedRevision: 1 })).revision).toBe(2);
    expect((await store.append(s, [userCreated(3)], { expectedRevision: STREAM_EXISTS })).revision).toBe(3);
    expect((await store.append(s, [userCreated(3)])).revision).toBe(4);
    expect(await store.head()).toBe(5);
  });

  it("detects a conflict made through another connection even with a warm cache", async () => {
    await using one = disposable(await freshStore());
    await using two = disposable(
      await JetStreamEventStore.connect({
        servers: server.url,
        streamName: one.streamName,
        subjectPrefix: one.subjectPrefix,
      }),
    );
    const s = accountStream(acct(4));
    await one.append(s, [userCreated(4)], { expectedRevision: NO_STREAM }); // one caches revision 0
    await two.append(s, [userCreated(4)], { expectedRevision: 0 });
    await expect(one.append(s, [userCreated(4)], { expectedRevision: 0 })).rejects.toMatchObject({
      expected: 0,
      actual: 1,
    });
    // A stale cache is re-read, not trusted, when it disagrees with the expectation.
    await two.append(s, [userCreated(4)], { expectedRevision: 1 });
    expect(await one.append(s, [userCreated(4)], { expectedRevision: 2 })).toEqual({
      firstPosition: 4,
      position: 4,
      revision: 3,
    });
    // Another stream moved the tail: `one` retries internally and keeps positions gapless.
    await two.append(accountStream(acct(5)), [userCreated(5)]);
    expect(await one.append(s, [userCreated(4)], { expectedRevision: 3 })).toEqual({
      firstPosition: 6,
      position: 6,
      revision: 4,
    });
    expectGapless(await collect(two.readAll()));
  });

  it("keeps positions gapless and revisions exact under concurrent appends from many connections", async () => {
    const first = await freshStore();
    const stores = [
      first,
      ...(await Promise.all(
        [1, 2, 3].map(() =>
          JetStreamEventStore.connect({
            servers: server.url,
            streamName: first.streamName,
            subjectPrefix: first.subjectPrefix,
          }),
        ),
      )),
    ];
    try {
      const accounts = [10, 11, 12, 13, 14, 15];
      let conflicts = 0;
      const appended = new Map<string, number>();
      await Promise.all(
        stores.flatMap((store, si) =>
          accounts.map(async (n, ai) => {
            const s = accountStream(acct(n));
            for (let i = 0; i < 15; i++) {
              const size = 1 + ((si + ai + i) % 3);
              const events = Array.from({ length: size }, () => userCreated(n));
              // Half the writers use optimistic concurrency on the same streams.
              if ((si + i) % 2 === 0) {
                await store.append(s, events, { expectedRevision: ANY });
              } else {
                const rev = await store.streamRevision(s);
                try {
                  await store.append(s, events, { expectedRevision: rev });
                } catch (err) {
                  if (!isExpectedRevisionConflict(err)) throw err;
                  conflicts++;
                  continue;
                }
              }
              for (const e of events) appended.set(e.id, n);
            }
          }),
        ),
      );
      const all = await collect(first.readAll());
      expectGapless(all);
      expect(all.length).toBe(appended.size);
      expect(new Set(all.map((e) => e.id))).toEqual(new Set(appended.keys()));
      for (const n of accounts) {
        const revs = all.filter((e) => e.stream === accountStream(acct(n))).map((e) => e.revision);
        expect(revs).toEqual(revs.map((_, i) => i));
      }
      // Under this much contention some optimistic appends must have lost.
      expect(conflicts).toBeGreaterThan(0);
    } finally {
      await Promise.all(stores.map((s) => s.close()));
    }
  });

  it("de-duplicates a retried append (same events) and returns the original result", async () => {
    await using store = disposable(await freshStore());
    const s = accountStream(acct(6));
    const events = [userCreated(6), userCreated(6)];
    const r1 = await store.append(s, events, { expectedRevision: NO_STREAM });
    // Retry with the same expectation: the revision moved, but the probe finds the duplicate.
    expect(await store.append(s, events, { expectedRevision: NO_STREAM })).toEqual(r1);
    expect(await store.append(s, events)).toEqual(r1);
    await store.append(s, [userCreated(6)]);
    expect(await store.append(s, events, { expectedRevision: 5 })).toEqual(r1);
    expect(await store.head()).toBe(3);
    // The same ids with other content are not a retry.
    const altered = events.map((e) => ({ ...e, reason: "changed" }));
    await expect(store.append(s, altered)).rejects.toMatchObject({
      name: "EventIdConflictError",
      code: "EXPECTED_REVISION_CONFLICT",
      eventId: events[0]!.id,
      recorded: { stream: s, revision: 0, position: 1 },
    });
    expect(await store.head()).toBe(3);
    // A genuinely new append with a stale expectation still conflicts.
    await expect(store.append(s, [userCreated(6)], { expectedRevision: NO_STREAM })).rejects.toMatchObject({
      actual: 2,
    });
    expect(await store.head()).toBe(3);
  });

  it("validates events before writing anything", async () => {
    await using store = disposable(await freshStore());
    const s = accountStream(acct(7));
    const bad = { ...userCreated(7), data: { userId: "" } };
    await expect(store.append(s, [userCreated(7), bad])).rejects.toBeInstanceOf(InvalidEventError);
    await expect(store.append(s, [userCreated(7), bad])).rejects.toThrow(
      /events\[1\]: invalid UserCreated event/,
    );
    const twice = userCreated(7);
    await expect(store.append(s, [twice, twice])).rejects.toThrow(/appears twice/);
    await expect(store.append("", [userCreated(7)])).rejects.toBeInstanceOf(InvalidEventError);
    expect(await store.head()).toBe(0);
    expect(await store.streamRevision(s)).toBe(-1);
  });

  it("refuses an append larger than the server's max_payload, writing nothing", async () => {
    await using store = disposable(await freshStore());
    const events = Array.from({ length: 6_000 }, () => userCreated(8));
    await expect(store.append(accountStream(acct(8)), events)).rejects.toThrow(/max_payload/);
    expect(await store.head()).toBe(0);
  });

  it("treats an empty append as a revision check that writes nothing", async () => {
    await using store = disposable(await freshStore());
    const s = accountStream(acct(9));
    await store.append(s, [userCreated(9)]);
    expect(await store.append(s, [], { expectedRevision: 0 })).toEqual({
      firstPosition: 2,
      position: 1,
      revision: 0,
    });
    await expect(store.append(s, [], { expectedRevision: NO_STREAM })).rejects.toBeInstanceOf(
      ExpectedRevisionConflictError,
    );
    expect(await store.head()).toBe(1);
  });

  it("maps any stream name to its own subject-safe token", async () => {
    const names = ["account-1", "a.b", "a_2Eb", "a b", "a>b*", "ünï", "_", "x".repeat(300)];
    const tokens = [...names, ""].map(subjectToken);
    expect(new Set(tokens).size).toBe(names.length + 1);
    for (const t of tokens) expect(t).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(subjectToken("account-1234567890123456")).toBe("account-1234567890123456");

    await using store = disposable(await freshStore());
    for (const n of names) await store.append(n, [userCreated(1)], { expectedRevision: NO_STREAM });
    for (const n of names) {
      const events = await collect(store.readStream(n));
      expect(events.map((e) => [e.stream, e.revision])).toEqual([[n, 0]]);
    }
    expect((await collect(store.readAll())).map((e) => e.stream)).toEqual(names);
  });

  it("reads all events between positions and stops at untilTime", async () => {
    await using store = disposable(await freshStore());
    const t0 = Date.parse("2030-01-01T00:00:00Z");
    const at = (m: number) => new Date(t0 + m * 60_000);
    await store.append("s1", [userCreated(1, { occurredAt: at(1) }), userCreated(1, { occurredAt: at(2) })]);
    await store.append("s2", [userCreated(2, { occurredAt: at(3) })]);
    await store.append("s1", [
      userCreated(1, { occurredAt: at(4) }),
      userCreated(1, { occurredAt: at(5) }),
      userCreated(1, { occurredAt: at(6) }),
    ]);
    const pos = async (o: Parameters<typeof store.readAll>[0]) =>
      (await collect(store.readAll(o))).map((e) => e.position);
    expect(await pos({})).toEqual([1, 2, 3, 4, 5, 6]);
    expect(await pos({ from: 2, to: 5 })).toEqual([2, 3, 4, 5]);
    expect(await pos({ from: 5 })).toEqual([5, 6]);
    expect(await pos({ from: 7 })).toEqual([]);
    expect(await pos({ to: 99 })).toEqual([1, 2, 3, 4, 5, 6]);
    expect(await pos({ untilTime: at(4) })).toEqual([1, 2, 3, 4]);
    expect(await pos({ untilTime: at(4).toISOString(), from: 3 })).toEqual([3, 4]);
    expect(await pos({ untilTime: at(0) })).toEqual([]);
  });

  it("subscribes: catch-up from the middle of a multi-event append, then live, in order, once", async () => {
    await using store = disposable(await freshStore());
    await store.append("s1", [userCreated(), userCreated(), userCreated()]); // 1..3
    await store.append("s2", [userCreated()]); // 4
    const sub = store.subscribe({ from: 2 });
    const it = sub[Symbol.asyncIterator]();
    expect((await take(it, 3)).map((e) => e.position)).toEqual([2, 3, 4]);
    const live = take(it, 4);
    await store.append("s3", [userCreated(), userCreated()]); // 5, 6
    await store.append("s1", [userCreated(), userCreated()]); // 7, 8
    const got = await live;
    expect(got.map((e) => [e.position, e.stream, e.revision])).toEqual([
      [5, "s3", 0],
      [6, "s3", 1],
      [7, "s1", 3],
      [8, "s1", 4],
    ]);
    await sub.close();
    expect(await it.next()).toEqual({ done: true, value: undefined });
  });

  it("subscribes from a future position and from an empty store", async () => {
    await using store = disposable(await freshStore());
    const fromStart = store.subscribe();
    const future = store.subscribe({ from: 3 });
    const a = take(fromStart[Symbol.asyncIterator](), 4);
    const b = take(future[Symbol.asyncIterator](), 2);
    await store.append("s", [userCreated(), userCreated()]);
    await store.append("s", [userCreated(), userCreated()]);
    expect((await a).map((e) => e.position)).toEqual([1, 2, 3, 4]);
    expect((await b).map((e) => e.position)).toEqual([3, 4]);
    await fromStart.close();
    await future.close();
  });

  it("ends a subscription on close while it waits, and on store close", async () => {
    const store = await freshStore();
    const sub = store.subscribe();
    const done = collect(sub);
    await new Promise((r) => setTimeout(r, 200));
    await sub.close();
    expect(await done).toEqual([]);

    const sub2 = store.subscribe();
    const done2 = collect(sub2);
    await store.append("s", [userCreated()]);
    await new Promise((r) => setTimeout(r, 200));
    await store.close();
    expect((await done2).map((e) => e.position)).toEqual([1]);
    await expect(store.head()).rejects.toBeInstanceOf(StoreUnavailableError);
  });

  it("fails a read cut short by closing the store instead of ending it early", async () => {
    const store = await freshStore();
    for (let i = 0; i < 5; i++) await store.append("s", [userCreated(), userCreated()]);
    const it = store.readAll()[Symbol.asyncIterator]();
    expect((await it.next()).value?.position).toBe(1);
    await store.close();
    await expect(collect({ [Symbol.asyncIterator]: () => it })).rejects.toBeInstanceOf(StoreUnavailableError);
  });

  it("creates a stream that refuses deletes and purges, and reuses an existing one", async () => {
    await using store = disposable(await freshStore());
    await store.append("s", [userCreated()]);
    const nc = await connect({ servers: server.url });
    try {
      const jsm = await jetstreamManager(nc);
      const info = await jsm.streams.info(store.streamName);
      expect(info.config).toMatchObject({
        deny_delete: true,
        deny_purge: true,
        subjects: [`${store.subjectPrefix}.events.>`],
      });
      await expect(jsm.streams.deleteMessage(store.streamName, 1)).rejects.toThrow();
      await expect(jsm.streams.purge(store.streamName)).rejects.toThrow();
    } finally {
      await nc.close();
    }
    await using again = disposable(
      await JetStreamEventStore.connect({
        servers: server.url,
        streamName: store.streamName,
        subjectPrefix: store.subjectPrefix,
      }),
    );
    expect(await again.head()).toBe(1);
    await expect(
      JetStreamEventStore.connect({
        servers: server.url,
        streamName: store.streamName,
        subjectPrefix: "other",
      }),
    ).rejects.toThrow(/exists without the subject/);
  });

  it("reports an unreachable server as StoreUnavailableError", async () => {
    const port = await freePort();
    await expect(
      JetStreamEventStore.connect({
        servers: `nats://127.0.0.1:${port}`,
        connectionOptions: { timeout: 500 },
      }),
    ).rejects.toBeInstanceOf(StoreUnavailableError);
    const noJs = await startNatsServer({ jetstream: false });
    try {
      await expect(JetStreamEventStore.connect({ servers: noJs.url })).rejects.toBeInstanceOf(
        StoreUnavailableError,
      );
    } finally {
      await noJs.stop();
    }
  });
});

/** Adapt a store to `await using`. */
function disposable(store: JetStreamEventStore): JetStreamEventStore & AsyncDisposable {
  return Object.assign(store, { [Symbol.asyncDispose]: () => store.close() });
}
