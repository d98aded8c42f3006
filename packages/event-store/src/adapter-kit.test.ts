import { newEvent, type RecordedEvent, validateEvent } from "@portcullis/events";
import { describe, expect, it } from "vitest";
import {
  canonicalJson,
  EventIdConflictError,
  PagedSubscription,
  replayOf,
  untilMs,
  validateAppend,
} from "./adapter-kit.ts";
import { ExpectedRevisionConflictError, InvalidEventError, isExpectedRevisionConflict } from "./errors.ts";
import { NO_STREAM } from "./expected-revision.ts";

const acct = "1234567890123456";
const root = { kind: "root", accountId: acct } as const;
const user = (n: number) =>
  validateEvent(newEvent("UserCreated", 1, acct, root, { userId: `u-${n}`, userName: `n-${n}` }));
const recordedAs = (
  e: ReturnType<typeof user>,
  stream: string,
  revision: number,
  position: number,
): RecordedEvent => ({
  ...e,
  stream,
  revision,
  position,
});

describe("validateAppend", () => {
  it("returns the events validated and upcast", () => {
    const v1 = newEvent("ConsoleGrantRemoved", 1, acct, root, {
      userId: "u",
      instanceId: "i",
      topic: "t",
      perm: "SUB",
    });
    expect(validateAppend("s", [v1])[0]).toMatchObject({ schemaVersion: 2, data: { perms: ["SUB"] } });
  });

  it("names the bad event and keeps the validation error as the cause", () => {
    const bad = newEvent("UserDeleted", 1, acct, root, {});
    try {
      validateAppend("s", [user(1), bad]);
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(InvalidEventError);
      expect((err as Error).message).toMatch(
        /^append to `s`: events\[1\]: invalid UserDeleted event: data.userId/,
      );
      expect((err as Error).cause).toMatchObject({ name: "EventValidationError" });
    }
  });

  it("refuses an id twice in one append and an empty stream name", () => {
    const e = user(1);
    expect(() => validateAppend("s", [e, { ...e }])).toThrow(/event id `.*` appears twice/);
    expect(() => validateAppend("", [e])).toThrow(InvalidEventError);
  });
});

describe("canonicalJson", () => {
  it("ignores key order, keeps array order", () => {
    expect(canonicalJson({ b: 1, a: { d: [2, 1], c: null } })).toBe(
      canonicalJson({ a: { c: null, d: [2, 1] }, b: 1 }),
    );
    expect(canonicalJson([1, 2])).not.toBe(canonicalJson([2, 1]));
  });
});

describe("replayOf (event-id idempotency)", () => {
  const [a, b] = [user(1), user(2)];

  it("is undefined when no id is recorded", () => {
    expect(replayOf("s", NO_STREAM, -1, [a, b], [undefined, undefined])).toBeUndefined();
  });

  it("returns the original result for an identical, contiguous retry", () => {
    expect(
      replayOf("s", NO_STREAM, 5, [a, b], [recordedAs(a, "s", 3, 10), recordedAs(b, "s", 4, 11)]),
    ).toEqual({
      firstPosition: 10,
      position: 11,
      revision: 4,
    });
  });

  it("refuses partial, reordered, moved or changed retries with a conflict naming the id", () => {
    const cases: [string, (RecordedEvent | undefined)[]][] = [
      ["partial", [recordedAs(a, "s", 0, 1), undefined]],
      ["reordered", [recordedAs(a, "s", 1, 2), recordedAs(b, "s", 0, 1)]],
      ["other stream", [recordedAs(a, "t", 0, 1), recordedAs(b, "t", 1, 2)]],
      ["not contiguous", [recordedAs(a, "s", 0, 1), recordedAs(b, "s", 1, 3)]],
      ["changed", [recordedAs({ ...a, reason: "other" }, "s", 0, 1), recordedAs(b, "s", 1, 2)]],
    ];
    for (const [what, recorded] of cases) {
      let err: unknown;
      try {
        replayOf("s", 1, 1, [a, b], recorded);
      } catch (e) {
        err = e;
      }
      expect(err, what).toBeInstanceOf(EventIdConflictError);
      expect(err, what).toBeInstanceOf(ExpectedRevisionConflictError);
      expect(isExpectedRevisionConflict(err), what).toBe(true);
      expect(err, what).toMatchObject({ stream: "s", expected: 1, actual: 1, eventId: a.id });
    }
  });
});

describe("untilMs", () => {
  it("accepts a Date or an ISO string and refuses garbage", () => {
    expect(untilMs(undefined)).toBeUndefined();
    expect(untilMs("2030-01-01T00:00:00+01:00")).toBe(Date.parse("2029-12-31T23:00:00Z"));
    expect(untilMs(new Date(5))).toBe(5);
    expect(() => untilMs("soon")).toThrow(TypeError);
  });
});

describe("PagedSubscription", () => {
  const event = (position: number): RecordedEvent => ({
    ...user(position),
    stream: "s",
    revision: 0,
    position,
  });

  it("reads pages from its position, waits for wake(), and ends on close()", async () => {
    const log: RecordedEvent[] = [event(1), event(2)];
    let closed = 0;
    const sub = new PagedSubscription({
      adapter: "test",
      from: 2,
      readPage: (from, limit) => log.slice(from - 1, from - 1 + limit),
      onClose: () => closed++,
    });
    const iter = sub[Symbol.asyncIterator]();
    expect((await iter.next()).value?.position).toBe(2);
    const pending = iter.next();
    log.push(event(3));
    sub.wake();
    expect((await pending).value?.position).toBe(3);
    const waiting = iter.next();
    await sub.close();
    expect(await waiting).toEqual({ done: true, value: undefined });
    expect(closed).toBe(1);
  });

  it("fails loudly on a gap instead of skipping it", async () => {
    const sub = new PagedSubscription({ adapter: "test", from: 1, readPage: () => [event(2)] });
    await expect(sub[Symbol.asyncIterator]().next()).rejects.toThrow(/expected position 1, read 2/);
  });

  it("polls when it has a poll interval", async () => {
    const log: RecordedEvent[] = [];
    const sub = new PagedSubscription({
      adapter: "test",
      from: 1,
      pollIntervalMs: 5,
      readPage: (from) => log.slice(from - 1),
    });
    const next = sub[Symbol.asyncIterator]().next();
    setTimeout(() => log.push(event(1)), 20);
    expect((await next).value?.position).toBe(1);
    await sub.close();
  });
});
