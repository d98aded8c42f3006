/**
 * Replay (SPEC §8): the projection as of a position or a time, from the start
 * or from a snapshot, over an in-memory EventSource with the store port's
 * `readAll` semantics.
 */
import { describe, expect, it } from "vitest";
import {
  accountCreated,
  allow,
  attached,
  detached,
  doc,
  policyCreated,
  topic,
  toUser,
  user,
  userCreated,
} from "../test/given.ts";
import { ACCT, ev, MemorySource, recorded, T0 } from "../test/log.ts";
import { Projection, replay } from "./mod.ts";

const at = (s: number) => new Date(T0 + s * 1000);
// Positions 1..6 at seconds 1, 2, 3, 3, 4, 5: the grant exists at positions 5 (second 4) only.
const log = recorded([
  { ...accountCreated(), occurredAt: at(1).toISOString() },
  { ...userCreated("u1", "alice"), occurredAt: at(2).toISOString() },
  { ...policyCreated("p", doc(allow("mq:PUB"))), occurredAt: at(3).toISOString() },
  { ...userCreated("u2", "bob"), occurredAt: at(3).toISOString() },
  { ...attached("p", toUser("u1")), occurredAt: at(4).toISOString() },
  { ...detached("p", toUser("u1")), occurredAt: at(5).toISOString() },
]);
const alice = user("u1");
const pub = (p: Projection) => p.authorize(alice, "mq:PUB", topic("a")).decision;
const upTo = (n: number) => {
  const p = new Projection();
  for (const e of log.slice(0, n)) p.apply(e);
  return p;
};
const json = (p: Projection) => JSON.stringify(p.snapshot());

describe("replay", () => {
  it("to the head equals the live projection", async () => {
    expect(json(await replay(new MemorySource(log)))).toBe(json(upTo(6)));
  });

  it("to a position includes that position", async () => {
    const p = await replay(new MemorySource(log), { position: 5 });
    expect(p.position).toBe(5);
    expect(pub(p)).toBe("Allow");
    expect(pub(await replay(new MemorySource(log), { position: 6 }))).toBe("ImplicitDeny");
  });

  it("to a time includes every event that occurred at or before it (ties included)", async () => {
    const src = new MemorySource(log);
    expect((await replay(src, { time: at(3) })).position).toBe(4);
    expect((await replay(src, { time: at(3.5).toISOString() })).position).toBe(4);
    expect(pub(await replay(src, { time: at(4) }))).toBe("Allow");
    expect((await replay(src, { time: at(0) })).position).toBe(0);
  });

  it("to both a position and a time stops at whichever comes first", async () => {
    const src = new MemorySource(log);
    expect((await replay(src, { position: 2, time: at(5) })).position).toBe(2);
    expect((await replay(src, { position: 6, time: at(2) })).position).toBe(2);
  });

  it("from a snapshot reads only the events after it", async () => {
    const snap = upTo(4).snapshot();
    const src = new MemorySource(log);
    const p = await replay(src, { position: 5 }, { snapshot: snap });
    expect(src.delivered).toBe(1);
    expect(json(p)).toBe(json(upTo(5)));
  });

  it("ignores a snapshot taken after the target position", async () => {
    const snap = upTo(6).snapshot();
    const src = new MemorySource(log);
    const p = await replay(src, { position: 5 }, { snapshot: snap });
    expect(p.position).toBe(5);
    expect(pub(p)).toBe("Allow");
  });

  it("ignores a snapshot taken after the target time", async () => {
    // A snapshot records the latest time of its events (`maxOccurredAt`); one reaching past the target
    // time is not used (it used to be whenever no target position was given, returning position 6 here).
    const snap = upTo(6).snapshot();
    const p = await replay(new MemorySource(log), { time: at(4) }, { snapshot: snap });
    expect(p.position).toBe(5);
    expect(pub(p)).toBe("Allow");
  });

  it("uses a snapshot whose events all occurred at or before the target time", async () => {
    const snap = upTo(4).snapshot();
    expect(snap.maxOccurredAt).toBe(at(3).toISOString());
    const src = new MemorySource(log);
    const p = await replay(src, { time: at(4) }, { snapshot: snap });
    expect(src.delivered).toBe(1);
    expect(json(p)).toBe(json(upTo(5)));
  });

  it("does not use a snapshot that does not say when its events occurred, for a time", async () => {
    const { maxOccurredAt: _, ...snap } = upTo(4).snapshot();
    const src = new MemorySource(log);
    const p = await replay(src, { time: at(4) }, { snapshot: snap });
    expect(src.delivered).toBe(5);
    expect(json(p)).toBe(json(upTo(5)));
  });

  it("a snapshot's time is its latest event's, even when clocks went backwards", async () => {
    // Position 2 occurred before position 1 (another writer's clock): the snapshot at 2 reaches second 5.
    const skewed = recorded([
      { ...accountCreated(), occurredAt: at(5).toISOString() },
      { ...userCreated("u1", "alice"), occurredAt: at(2).toISOString() },
    ]);
    const p = new Projection();
    for (const e of skewed) p.apply(e);
    expect(p.snapshot().maxOccurredAt).toBe(at(5).toISOString());
    const src = new MemorySource(skewed);
    // The store stops at position 1 (second 5 > second 3): the snapshot at 2 must not be used.
    const r = await replay(src, { time: at(3) }, { snapshot: p.snapshot() });
    expect(r.position).toBe(0);
  });

  it("passes options on (validation, console grant mode)", async () => {
    const bad = recorded([accountCreated(), ev("UserCreated", { userId: "", userName: "x" })]);
    await expect(replay(new MemorySource(bad))).rejects.toThrow(/UserCreated/);
    const p = await replay(new MemorySource(bad), {}, { validate: false });
    expect(p.position).toBe(2);
  });

  it("never touches the projection it was given a snapshot of", async () => {
    const live = upTo(4);
    const before = json(live);
    await replay(new MemorySource(log), {}, { snapshot: live.snapshot() });
    expect(json(live)).toBe(before);
    expect(live.account(ACCT)!.users.get("u1")!.policies.size).toBe(0);
  });
});
