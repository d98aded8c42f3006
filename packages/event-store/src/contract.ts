/**
 * The one contract suite every event-store adapter passes (STYLE.md "One
 * contract suite for every store"). `eventStoreContract({ adapter, create })`
 * declares the vitest tests; their titles come from the adapter name.
 * Differences between adapters are fixture options (`reopen`), never forks.
 */
import { randomUUID } from "node:crypto";
import {
  type Actor,
  accountStream,
  type EventEnvelope,
  newEvent,
  type RecordedEvent,
} from "@portcullis/events";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ExpectedRevisionConflictError, InvalidEventError, isExpectedRevisionConflict } from "./errors.ts";
import { ANY, type ExpectedRevision, NO_STREAM, STREAM_EXISTS } from "./expected-revision.ts";
import type { EventStore } from "./port.ts";

/** A fresh, empty store for one test, and how to reopen and dispose of it. */
export interface EventStoreFixture {
  /** The store under test; empty when handed out. */
  store: EventStore;
  /**
   * Open another store object over the same data (a restart, or another
   * process). Earlier ones stay open; the test closes what it opens. Absent
   * when the data does not outlive the store object (memory).
   */
  reopen?: () => Promise<EventStore>;
  /** Close `store` and remove its data. */
  cleanup(): Promise<void>;
}

/** How the contract suite gets fresh stores of one adapter. */
export interface EventStoreFactory {
  /** Adapter name: the title of the suite, and what `store.adapter` must say. */
  adapter: string;
  /** A fresh fixture (called once per test). */
  create(): Promise<EventStoreFixture>;
}

const ACCOUNT_A = "1000000000000001";
const ACCOUNT_B = "1000000000000002";
const ACCOUNT_C = "1000000000000003";
const ROOT: Actor = { kind: "root", accountId: ACCOUNT_A };
/** How long a test waits for a subscription to deliver before failing. */
const DELIVERY_TIMEOUT_MS = 10_000;

/** A valid UserCreated event of `account`; `n` makes its data distinct. */
function userCreated(
  n: number | string,
  opts: { account?: string; reason?: string; occurredAt?: Date } = {},
): EventEnvelope {
  return newEvent(
    "UserCreated",
    1,
    opts.account ?? ACCOUNT_A,
    ROOT,
    { userId: `u-${n}`, userName: `user-${n}` },
    {
      ...(opts.reason !== undefined ? { reason: opts.reason } : {}),
      ...(opts.occurredAt !== undefined ? { occurredAt: opts.occurredAt } : {}),
    },
  );
}

function many(count: number, prefix: string, account = ACCOUNT_A): EventEnvelope[] {
  return Array.from({ length: count }, (_, i) => userCreated(`${prefix}-${i}`, { account }));
}

async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of items) out.push(x);
  return out;
}

/** Let other tasks run (timers and I/O included), so concurrent callers really interleave. */
const tick = () => new Promise<void>((resolve) => setImmediate(resolve));

/** Reject after `ms` with `what` in the message. */
function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

/** Pull exactly `n` events from a subscription iterator (which stays open). */
async function take(iter: AsyncIterator<RecordedEvent>, n: number): Promise<RecordedEvent[]> {
  const out: RecordedEvent[] = [];
  while (out.length < n) {
    const r = await within(iter.next(), DELIVERY_TIMEOUT_MS, `event ${out.length + 1} of ${n}`);
    if (r.done) throw new Error(`subscription ended after ${out.length} of ${n} events`);
    out.push(r.value);
  }
  return out;
}

/** The producer-written part of an event, to compare what was appended with what is read. */
function envelope(e: EventEnvelope): EventEnvelope {
  const { id, type, schemaVersion, accountId, occurredAt, actor, reason, data } = e;
  return { id, type, schemaVersion, accountId, occurredAt, actor, ...(reason ? { reason } : {}), data };
}

const positions = (es: readonly RecordedEvent[]) => es.map((e) => e.position);
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

async function expectConflict(
  p: Promise<unknown>,
  fields: { stream: string; expected: ExpectedRevision; actual: number },
): Promise<void> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, "append should have been refused").toBeInstanceOf(ExpectedRevisionConflictError);
  expect(isExpectedRevisionConflict(err)).toBe(true);
  expect(err).toMatchObject({ code: "EXPECTED_REVISION_CONFLICT", ...fields });
}

/** Declare the contract tests for one adapter. */
export function eventStoreContract(factory: EventStoreFactory): void {
  describe(`event store contract: ${factory.adapter}`, () => {
    let fx: EventStoreFixture;
    let store: EventStore;
    /** Subscriptions and extra stores a test opened; closed after it. */
    let opened: { close(): Promise<void> }[] = [];
    const track = <T extends { close(): Promise<void> }>(x: T): T => {
      opened.push(x);
      return x;
    };
    const sA = accountStream(ACCOUNT_A);
    const sB = accountStream(ACCOUNT_B);
    const sC = accountStream(ACCOUNT_C);

    beforeEach(async () => {
      fx = await factory.create();
      store = fx.store;
      opened = [];
    });

    afterEach(async () => {
      for (const x of opened.reverse()) await x.close();
      await fx.cleanup();
    });

    describe("append and read", () => {
      it(`names itself \`${factory.adapter}\` and starts empty`, async () => {
        expect(store.adapter).toBe(factory.adapter);
        expect(await store.head()).toBe(0);
        expect(await store.streamRevision(sA)).toBe(-1);
        expect(await collect(store.readAll())).toEqual([]);
        expect(await collect(store.readStream(sA))).toEqual([]);
      });

      it("appends events and reads them back with stream, revision and position", async () => {
        const events = [
          userCreated(1, { reason: "onboarding" }),
          userCreated(2),
          newEvent("UserDisabled", 1, ACCOUNT_A, ROOT, { userId: "u-1" }),
        ];
        const r = await store.append(sA, events, { expectedRevision: NO_STREAM });
        expect(r).toEqual({ firstPosition: 1, position: 3, revision: 2 });

        const read = await collect(store.readStream(sA));
        expect(read.map(envelope)).toEqual(events.map(envelope));
        expect(read.map((e) => [e.stream, e.revision, e.position])).toEqual([
          [sA, 0, 1],
          [sA, 1, 2],
          [sA, 2, 3],
        ]);
        expect(read[0]!.reason).toBe("onboarding");
        expect(positions(await collect(store.readStream(sA, { fromRevision: 1 })))).toEqual([2, 3]);
        expect(await collect(store.readStream(sA, { fromRevision: 3 }))).toEqual([]);
        expect(await collect(store.readAll())).toEqual(read);
        expect(await store.head()).toBe(3);
        expect(await store.streamRevision(sA)).toBe(2);
        expect(await store.streamRevision(sB)).toBe(-1);
      });

      it("returns the next expected revision and positions from every append", async () => {
        const r1 = await store.append(sA, many(2, "a"));
        const r2 = await store.append(sB, many(3, "b", ACCOUNT_B), { expectedRevision: NO_STREAM });
        const r3 = await store.append(sA, many(1, "c"), { expectedRevision: r1.revision });
        expect([r1, r2, r3]).toEqual([
          { firstPosition: 1, position: 2, revision: 1 },
          { firstPosition: 3, position: 5, revision: 2 },
          { firstPosition: 6, position: 6, revision: 2 },
        ]);
      });

      it("keeps what was appended even if the caller later mutates its objects", async () => {
        const e = userCreated(1);
        await store.append(sA, [e]);
        (e.data as { userName: string }).userName = "mallory";
        const [read] = await collect(store.readStream(sA));
        expect((read!.data as { userName: string }).userName).toBe("user-1");
        (read!.data as { userName: string }).userName = "eve";
        const [again] = await collect(store.readAll());
        expect((again!.data as { userName: string }).userName).toBe("user-1");
      });

      it("reads events of an older schema version upcast to the current one", async () => {
        const old = newEvent("ConsoleGrantAdded", 1, ACCOUNT_A, ROOT, {
          userId: "u-1",
          instanceId: "mqtt-local",
          topic: "T",
          perm: "PUB+SUB",
        });
        await store.append(sA, [old]);
        const [read] = await collect(store.readAll());
        expect(read).toMatchObject({ id: old.id, schemaVersion: 2, data: { perms: ["PUB", "SUB"] } });
      });
    });

    describe("expected revision", () => {
      it("NO_STREAM: appends to a new stream only", async () => {
        await store.append(sA, [userCreated(1)], { expectedRevision: NO_STREAM });
        await expectConflict(store.append(sA, [userCreated(2)], { expectedRevision: NO_STREAM }), {
          stream: sA,
          expected: NO_STREAM,
          actual: 0,
        });
        expect(await store.streamRevision(sA)).toBe(0);
      });

      it("STREAM_EXISTS: appends to an existing stream only", async () => {
        await expectConflict(store.append(sA, [userCreated(1)], { expectedRevision: STREAM_EXISTS }), {
          stream: sA,
          expected: STREAM_EXISTS,
          actual: -1,
        });
        expect(await store.head()).toBe(0);
        await store.append(sA, [userCreated(1)]);
        const r = await store.append(sA, [userCreated(2)], { expectedRevision: STREAM_EXISTS });
        expect(r.revision).toBe(1);
      });

      it("ANY (the default): appends whatever the revision", async () => {
        await store.append(sA, [userCreated(1)], { expectedRevision: ANY });
        await store.append(sA, [userCreated(2)], { expectedRevision: ANY });
        const r = await store.append(sA, [userCreated(3)]);
        expect(r.revision).toBe(2);
      });

      it("a number: appends only when it is the stream's last revision", async () => {
        await store.append(sA, many(2, "a"));
        await expectConflict(store.append(sA, [userCreated(9)], { expectedRevision: 0 }), {
          stream: sA,
          expected: 0,
          actual: 1,
        });
        await expectConflict(store.append(sA, [userCreated(9)], { expectedRevision: 2 }), {
          stream: sA,
          expected: 2,
          actual: 1,
        });
        await expectConflict(store.append(sB, [userCreated(9)], { expectedRevision: 0 }), {
          stream: sB,
          expected: 0,
          actual: -1,
        });
        const r = await store.append(sA, [userCreated(3)], { expectedRevision: 1 });
        expect(r).toEqual({ firstPosition: 3, position: 3, revision: 2 });
      });

      it("writes nothing when refused", async () => {
        await store.append(sA, many(2, "a"));
        await expect(store.append(sA, many(3, "b"), { expectedRevision: 0 })).rejects.toBeInstanceOf(
          ExpectedRevisionConflictError,
        );
        expect(await store.head()).toBe(2);
        expect(await store.streamRevision(sA)).toBe(1);
        expect(await store.append(sA, [userCreated(3)])).toEqual({
          firstPosition: 3,
          position: 3,
          revision: 2,
        });
      });

      it("an empty append checks the expected revision and writes nothing", async () => {
        await store.append(sA, many(2, "a"));
        expect(await store.append(sA, [], { expectedRevision: 1 })).toEqual({
          firstPosition: 3,
          position: 2,
          revision: 1,
        });
        await expectConflict(store.append(sA, [], { expectedRevision: NO_STREAM }), {
          stream: sA,
          expected: NO_STREAM,
          actual: 1,
        });
        expect(await store.head()).toBe(2);
      });
    });

    describe("atomicity and validation", () => {
      it("an invalid event in the middle of an append writes nothing", async () => {
        await store.append(sA, many(2, "before"));
        const bad = newEvent("PolicyAttached", 1, ACCOUNT_A, ROOT, {
          policyName: "p",
          policyType: "Custom",
          target: { kind: "user" },
        });
        const err = await store.append(sA, [userCreated(3), bad, userCreated(4)]).then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(err).toBeInstanceOf(InvalidEventError);
        expect(err).toMatchObject({ code: "INVALID_EVENT" });
        expect((err as Error).cause).toMatchObject({ name: "EventValidationError" });
        expect(String((err as Error).message)).toContain("data.target.userId");
        expect(await store.head()).toBe(2);
        expect(await store.streamRevision(sA)).toBe(1);
        expect(positions(await collect(store.readAll()))).toEqual([1, 2]);
        // The next append continues without a gap.
        expect(await store.append(sA, [userCreated(5)])).toEqual({
          firstPosition: 3,
          position: 3,
          revision: 2,
        });
      });

      it("refuses unknown types, bad envelopes and schema versions newer than the build", async () => {
        const cases: unknown[] = [
          newEvent("NoSuchEvent", 1, ACCOUNT_A, ROOT, {}),
          newEvent("UserDeleted", 1, "42", ROOT, { userId: "u" }),
          newEvent("UserDeleted", 99, ACCOUNT_A, ROOT, { userId: "u" }),
          { ...userCreated(1), occurredAt: "yesterday" },
        ];
        for (const e of cases) {
          await expect(store.append(sA, [userCreated(0), e as EventEnvelope])).rejects.toBeInstanceOf(
            InvalidEventError,
          );
        }
        expect(await store.head()).toBe(0);
      });

      it("an identical retry of a recorded append returns the original result and writes nothing", async () => {
        await store.append(sB, [userCreated(0, { account: ACCOUNT_B })]);
        const batch = many(3, "retry");
        const first = await store.append(sA, batch, { expectedRevision: NO_STREAM });
        expect(await store.append(sA, batch, { expectedRevision: NO_STREAM })).toEqual(first);
        await store.append(sA, [userCreated("later")]);
        expect(await store.append(sA, batch, { expectedRevision: NO_STREAM })).toEqual(first);
        expect(await store.head()).toBe(5);
        expect(await store.streamRevision(sA)).toBe(3);
      });
    });

    describe("positions", () => {
      it("are gapless and increasing across streams, with gapless revisions per stream", async () => {
        const plan: [string, string, number][] = [
          [sA, ACCOUNT_A, 1],
          [sB, ACCOUNT_B, 3],
          [sA, ACCOUNT_A, 2],
          [sC, ACCOUNT_C, 5],
          [sB, ACCOUNT_B, 1],
          [sA, ACCOUNT_A, 4],
        ];
        const results = [];
        for (const [i, [stream, account, n]] of plan.entries()) {
          results.push(await store.append(stream, many(n, `p${i}`, account)));
        }
        const all = await collect(store.readAll());
        expect(positions(all)).toEqual(range(1, 16));
        for (const s of [sA, sB, sC]) {
          const revs = all.filter((e) => e.stream === s).map((e) => e.revision);
          expect(revs).toEqual(range(0, revs.length - 1));
          expect(await store.streamRevision(s)).toBe(revs.length - 1);
        }
        let expectedFirst = 1;
        for (const [i, r] of results.entries()) {
          const n = plan[i]![2];
          expect(r.firstPosition).toBe(expectedFirst);
          expect(r.position).toBe(expectedFirst + n - 1);
          expect(all[r.position - 1]!.revision).toBe(r.revision);
          expectedFirst += n;
        }
      });

      it("stay gapless when appends to different streams race", async () => {
        const streams = Array.from({ length: 6 }, (_, i) => `race-${i}-${randomUUID()}`);
        const results = await Promise.all(
          streams.flatMap((s, i) =>
            range(1, 4).map(async (k) => {
              await tick();
              return { s, r: await store.append(s, many(1 + ((i + k) % 3), `${s}-${k}`)) };
            }),
          ),
        );
        const all = await collect(store.readAll());
        expect(positions(all)).toEqual(range(1, all.length));
        const covered = results.flatMap(({ r }) => range(r.firstPosition, r.position)).sort((a, b) => a - b);
        expect(covered).toEqual(range(1, all.length));
        for (const { s, r } of results) {
          for (const p of range(r.firstPosition, r.position)) expect(all[p - 1]!.stream).toBe(s);
        }
        for (const s of streams) {
          const revs = all.filter((e) => e.stream === s).map((e) => e.revision);
          expect(revs).toEqual(range(0, revs.length - 1));
        }
      });
    });

    describe("readAll bounds", () => {
      const t0 = Date.parse("2030-01-01T00:00:00.000Z");
      const at = (s: number) => new Date(t0 + s * 1000);

      beforeEach(async () => {
        for (let i = 1; i <= 10; i++) {
          const account = i % 2 ? ACCOUNT_A : ACCOUNT_B;
          await store.append(accountStream(account), [userCreated(i, { account, occurredAt: at(i) })]);
        }
      });

      it("from and to are inclusive and clamp to the head", async () => {
        expect(positions(await collect(store.readAll({ from: 3 })))).toEqual(range(3, 10));
        expect(positions(await collect(store.readAll({ to: 5 })))).toEqual(range(1, 5));
        expect(positions(await collect(store.readAll({ from: 3, to: 5 })))).toEqual([3, 4, 5]);
        expect(positions(await collect(store.readAll({ from: 7, to: 7 })))).toEqual([7]);
        expect(positions(await collect(store.readAll({ from: 8, to: 99 })))).toEqual([8, 9, 10]);
        expect(await collect(store.readAll({ from: 11 }))).toEqual([]);
        expect(await collect(store.readAll({ from: 6, to: 5 }))).toEqual([]);
      });

      it("untilTime stops before the first event that occurred after it", async () => {
        expect(positions(await collect(store.readAll({ untilTime: at(4.5) })))).toEqual(range(1, 4));
        expect(positions(await collect(store.readAll({ untilTime: at(4) })))).toEqual(range(1, 4));
        expect(positions(await collect(store.readAll({ untilTime: at(6).toISOString() })))).toEqual(
          range(1, 6),
        );
        expect(positions(await collect(store.readAll({ from: 3, untilTime: at(5) })))).toEqual([3, 4, 5]);
        expect(await collect(store.readAll({ untilTime: at(0) }))).toEqual([]);
        expect(positions(await collect(store.readAll({ untilTime: at(100) })))).toEqual(range(1, 10));
        // Stops at the first later event even if an earlier-dated one follows it.
        await store.append(sC, [
          userCreated("x", { account: ACCOUNT_C, occurredAt: at(50) }),
          userCreated("y", { account: ACCOUNT_C, occurredAt: at(20) }),
        ]);
        expect(positions(await collect(store.readAll({ untilTime: at(30) })))).toEqual(range(1, 10));
      });
    });

    it("reads and subscribes across page boundaries (2,345 events)", async () => {
      for (let i = 0; i < 23; i++) await store.append(i % 2 ? sA : sB, many(100, `big${i}`));
      await store.append(sC, many(45, "tail", ACCOUNT_C));
      const all = await collect(store.readAll());
      expect(positions(all)).toEqual(range(1, 2345));
      const a = await collect(store.readStream(sA));
      expect(a.map((e) => e.revision)).toEqual(range(0, 1099));
      expect(positions(await collect(store.readAll({ from: 999, to: 1002 })))).toEqual(range(999, 1002));
      const sub = track(store.subscribe({ from: 2 }));
      const iter = sub[Symbol.asyncIterator]();
      expect(positions(await take(iter, 2344))).toEqual(range(2, 2345));
      await store.append(sA, [userCreated("live")]);
      expect(positions(await take(iter, 1))).toEqual([2346]);
    });

    describe("subscribe", () => {
      it("catches up from the middle, then delivers live appends in order", async () => {
        await store.append(sA, many(4, "a"));
        await store.append(sB, many(3, "b", ACCOUNT_B));
        await store.append(sA, many(3, "c"));
        const sub = track(store.subscribe({ from: 4 }));
        const iter = sub[Symbol.asyncIterator]();
        const caught = await take(iter, 7);
        expect(positions(caught)).toEqual(range(4, 10));
        expect(caught).toEqual(await collect(store.readAll({ from: 4 })));

        const appending = (async () => {
          for (let i = 0; i < 10; i++) {
            await store.append(i % 3 === 0 ? sC : sA, [userCreated(`live-${i}`, { account: ACCOUNT_A })]);
            if (i % 2) await tick();
          }
        })();
        const live = await take(iter, 10);
        await appending;
        expect(positions(live)).toEqual(range(11, 20));
        expect(live).toEqual(await collect(store.readAll({ from: 11 })));
      });

      it("delivers every event once while appends race the catch-up", async () => {
        await store.append(sA, many(50, "pre"));
        const sub = track(store.subscribe());
        const appending = (async () => {
          for (let i = 0; i < 40; i++) {
            await store.append(
              i % 2 ? sA : sB,
              many(1 + (i % 3), `race-${i}`, i % 2 ? ACCOUNT_A : ACCOUNT_B),
            );
            await tick();
          }
        })();
        const total = 50 + range(0, 39).reduce((n, i) => n + 1 + (i % 3), 0);
        const got: RecordedEvent[] = [];
        const reading = (async () => {
          for await (const e of sub) {
            got.push(e);
            if (got.length === total) break;
          }
        })();
        await appending;
        await within(reading, DELIVERY_TIMEOUT_MS, `${total} events, got ${got.length}`);
        expect(await store.head()).toBe(total);
        expect(positions(got)).toEqual(range(1, total));
        expect(got).toEqual(await collect(store.readAll()));
      });

      it("defaults to position 1 and waits when the store is empty", async () => {
        const sub = track(store.subscribe());
        const iter = sub[Symbol.asyncIterator]();
        const first = iter.next();
        await tick();
        await store.append(sA, [userCreated(1)]);
        const r = await within(first, DELIVERY_TIMEOUT_MS, "the first event");
        expect(r.done).toBe(false);
        expect((r.value as RecordedEvent).position).toBe(1);
      });

      it("starting past the head delivers only later events", async () => {
        await store.append(sA, many(3, "a"));
        const sub = track(store.subscribe({ from: 5 }));
        const iter = sub[Symbol.asyncIterator]();
        await store.append(sA, many(3, "b"));
        expect(positions(await take(iter, 2))).toEqual([5, 6]);
      });

      it("two subscriptions are independent", async () => {
        await store.append(sA, many(5, "a"));
        const one = track(store.subscribe());
        const two = track(store.subscribe({ from: 3 }));
        const i1 = one[Symbol.asyncIterator]();
        const i2 = two[Symbol.asyncIterator]();
        expect(positions(await take(i1, 5))).toEqual(range(1, 5));
        expect(positions(await take(i2, 1))).toEqual([3]);
        await store.append(sB, many(2, "b", ACCOUNT_B));
        expect(positions(await take(i1, 2))).toEqual([6, 7]);
        await one.close();
        expect((await within(i1.next(), DELIVERY_TIMEOUT_MS, "end of the closed one")).done).toBe(true);
        // The slow one is unaffected by the other's pace and its close.
        expect(positions(await take(i2, 4))).toEqual(range(4, 7));
      });

      it("close() ends the iteration, also while it waits for events", async () => {
        await store.append(sA, many(2, "a"));
        const sub = store.subscribe();
        const got: number[] = [];
        const loop = (async () => {
          for await (const e of sub) got.push(e.position);
        })();
        const deadline = Date.now() + DELIVERY_TIMEOUT_MS;
        while (got.length < 2) {
          if (Date.now() > deadline) throw new Error(`got ${got.length} of 2 events`);
          await new Promise((resolve) => setTimeout(resolve, 5));
        }
        await sub.close();
        await within(loop, DELIVERY_TIMEOUT_MS, "the loop to end after close()");
        expect(got).toEqual([1, 2]);
        await sub.close(); // idempotent

        const never = store.subscribe();
        await never.close();
        expect(await within(collect(never), DELIVERY_TIMEOUT_MS, "a closed subscription")).toEqual([]);
      });

      it("breaking out of the loop ends the subscription", async () => {
        await store.append(sA, many(3, "a"));
        const sub = track(store.subscribe());
        const got: number[] = [];
        for await (const e of sub) {
          got.push(e.position);
          if (got.length === 2) break;
        }
        expect(got).toEqual([1, 2]);
        await sub.close(); // already ended: still fine
        // The store is unaffected: it appends, and a new subscription resumes where that one stopped.
        await store.append(sA, many(1, "b"));
        const next = track(store.subscribe({ from: 3 }));
        expect(positions(await take(next[Symbol.asyncIterator](), 2))).toEqual([3, 4]);
      });
    });

    it("a reopened store sees everything (adapters that persist)", async () => {
      // Memory has no `reopen`: its data lives and dies with the store object.
      if (!fx.reopen) return;
      await store.append(sA, many(3, "a"));
      await store.append(sB, many(2, "b", ACCOUNT_B));
      const before = await collect(store.readAll());
      const again = track(await fx.reopen());
      expect(again.adapter).toBe(factory.adapter);
      expect(await again.head()).toBe(5);
      expect(await again.streamRevision(sA)).toBe(2);
      expect(await collect(again.readAll())).toEqual(before);
      // Both objects write the same log, each seeing the other's appends.
      expect(await again.append(sA, [userCreated(4)], { expectedRevision: 2 })).toEqual({
        firstPosition: 6,
        position: 6,
        revision: 3,
      });
      await expectConflict(store.append(sA, [userCreated(5)], { expectedRevision: 2 }), {
        stream: sA,
        expected: 2,
        actual: 3,
      });
      expect(await store.head()).toBe(6);
      const sub = track(store.subscribe({ from: 6 }));
      const iter = sub[Symbol.asyncIterator]();
      expect(positions(await take(iter, 1))).toEqual([6]);
      await again.append(sC, many(1, "c", ACCOUNT_C));
      expect(positions(await take(iter, 1))).toEqual([7]);
    });

    it("racing writers on one stream: every one wins its appends after conflicts, none is lost", async () => {
      const WRITERS = 8;
      const APPENDS = 5;
      // Each writer gets its own store object when the adapter can open one
      // (another connection to the same data); otherwise they share `store`.
      const handles: EventStore[] = [];
      for (let w = 0; w < WRITERS; w++) handles.push(fx.reopen && w > 0 ? track(await fx.reopen()) : store);
      let conflicts = 0;
      const wins = await Promise.all(
        handles.map(async (h, w) => {
          const won: number[] = [];
          for (let attempt = 0; won.length < APPENDS; attempt++) {
            if (attempt > 10_000) throw new Error(`writer ${w} never won`);
            // Read, decide, then append against what was read: a real read-modify-write.
            const seen = await h.streamRevision(sA);
            await tick();
            const e = userCreated(`w${w}-${won.length}`, { reason: `writer ${w} append ${won.length}` });
            try {
              const r = await h.append(sA, [e], { expectedRevision: seen === -1 ? NO_STREAM : seen });
              expect(r.revision).toBe(seen + 1);
              won.push(r.revision);
            } catch (err) {
              if (!(err instanceof ExpectedRevisionConflictError)) throw err;
              expect(err.stream).toBe(sA);
              expect(err.actual).toBeGreaterThan(seen);
              conflicts++;
            }
          }
          return won;
        }),
      );
      const events = await collect(store.readStream(sA));
      expect(events.map((e) => e.revision)).toEqual(range(0, WRITERS * APPENDS - 1));
      expect(new Set(events.map((e) => e.id)).size).toBe(WRITERS * APPENDS);
      for (let w = 0; w < WRITERS; w++) {
        const mine = events.filter((e) => e.reason?.startsWith(`writer ${w} `));
        expect(mine.map((e) => e.reason)).toEqual(
          range(0, APPENDS - 1).map((k) => `writer ${w} append ${k}`),
        );
        expect(mine.map((e) => e.revision)).toEqual(wins[w]);
      }
      expect(wins.flat().sort((a, b) => a - b)).toEqual(range(0, WRITERS * APPENDS - 1));
      expect(conflicts).toBeGreaterThan(0);
      expect(await store.head()).toBe(WRITERS * APPENDS);
    });
  });
}
