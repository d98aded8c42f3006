/**
 * Snapshots (SPEC §6: edges start from a snapshot plus the events after it):
 * the state as plain JSON (format 2: compact positional arrays), restored with its
 * Maps and Sets, independent of the state it was taken from.
 */
import { describe, expect, it } from "vitest";
import {
  accountCreated,
  allow,
  attached,
  doc,
  grantAdded,
  groupCreated,
  keyCreated,
  policyCreated,
  policyVersionCreated,
  toGroup,
  topic,
  toUser,
  user,
  userAddedToGroup,
  userCreated,
  userDisabled,
} from "../test/given.ts";
import { ACCT, ev, OTHER, recorded } from "../test/log.ts";
import { Projection, restoreState, SNAPSHOT_FORMAT, snapshotState } from "./mod.ts";

const events = recorded([
  accountCreated(),
  accountCreated(OTHER),
  userCreated("u1", "alice"),
  ev("UserCreated", { userId: "u2", userName: "bob", displayName: "Bob" }),
  groupCreated("g1"),
  userAddedToGroup("u2", "g1"),
  policyCreated("p", doc(allow("mq:PUB"))),
  policyVersionCreated("p", "v2", doc(allow("mq:SUB")), true),
  attached("p", toUser("u1")),
  attached("AliyunMQSubOnlyAccess", toGroup("g1"), "System"),
  grantAdded("u1", "a", ["PUB", "SUB"]),
  keyCreated("AK1", "u1"),
  keyCreated("AKR", "root", OTHER),
  ev("TopicCreated", { instanceId: "i1", topic: "a" }),
  ev("GroupIdCreated", { instanceId: "i1", groupId: "GID_a", owner: { kind: "root" } }),
  userDisabled("u2"),
]);

function build(): Projection {
  const p = new Projection();
  for (const e of events) p.apply(e);
  return p;
}

describe("snapshots", () => {
  it("carry the format and the position", () => {
    const s = build().snapshot();
    expect(s.format).toBe(SNAPSHOT_FORMAT);
    expect(s.position).toBe(events.length);
  });

  it("survive JSON text and restore Maps and Sets", () => {
    const p = build();
    const text = JSON.stringify(p.snapshot());
    const q = Projection.fromSnapshot(JSON.parse(text));
    expect(q.position).toBe(p.position);
    expect(q.state).toEqual(p.state);
    const a = q.account(ACCT)!;
    expect(a.users).toBeInstanceOf(Map);
    expect(a.users.get("u1")!.groups).toBeInstanceOf(Set);
    expect(a.users.get("u1")!.consoleGrants.get("i1\u0000a")).toEqual(new Set(["PUB", "SUB"]));
    expect(q.state.accessKeys.get("AKR")!.owner).toEqual({ accountId: OTHER, kind: "root" });
    expect(JSON.stringify(q.snapshot())).toBe(text);
  });

  it("decide the same after restoring", () => {
    const p = build();
    const q = Projection.fromSnapshot(p.snapshot());
    for (const u of [user("u1"), user("u2"), user("u3")])
      for (const a of ["mq:PUB", "mq:SUB", "mq:MqttInstanceAccess"])
        for (const r of [topic("a"), topic("b/c"), topic("a", "i1", OTHER)])
          expect(q.authorize(u, a, r)).toEqual(p.authorize(u, a, r));
    expect(q.resolveAccessKey("AK1")).toEqual(p.resolveAccessKey("AK1"));
  });

  it("are deep copies: later events do not reach a snapshot, and a restored state is independent", () => {
    const p = build();
    const snap = p.snapshot();
    const text = JSON.stringify(snap);
    const q = Projection.fromSnapshot(snap);
    q.apply({ ...recorded([userCreated("u9")])[0]!, position: events.length + 1 });
    p.apply({ ...recorded([userCreated("u8")])[0]!, position: events.length + 1 });
    expect(JSON.stringify(snap)).toBe(text);
    expect(p.account(ACCT)!.users.has("u9")).toBe(false);
    expect(q.account(ACCT)!.users.has("u8")).toBe(false);
    // Restoring the same snapshot twice gives two independent states.
    const r1 = restoreState(snap);
    const r2 = restoreState(snap);
    r1.accounts.get(ACCT)!.users.get("u1")!.policies.clear();
    expect(r2.accounts.get(ACCT)!.users.get("u1")!.policies.size).toBe(1);
  });

  it("refuse another format, and a position that does not match the state", () => {
    const s = snapshotState(build().state);
    expect(() => restoreState({ ...s, format: SNAPSHOT_FORMAT + 1 })).toThrow(/format/);
    expect(() => restoreState({ ...s, position: s.position - 1 })).toThrow(/position/);
  });

  it("keep every optional field and every index (descriptions, comments, owners, statuses, times)", () => {
    const p = build();
    const more = recorded([
      ...events.map(() => accountCreated()), // positions after `events`
      ev("PolicyCreated", {
        policyName: "d",
        versionId: "v1",
        document: doc(allow("mq:SUB")),
        description: "d.",
      }),
      ev("GroupCreated", { groupId: "g2", groupName: "ops", comments: "on call" }),
      ev("GroupIdCreated", { instanceId: "i2", groupId: "GID_u", owner: { kind: "user", userId: "u1" } }),
      ev("AccessKeyStatusChanged", { accessKeyId: "AK1", status: "Inactive" }),
      ev("UserCreated", { userId: "u3", userName: "alice" }), // takes alice's name in the index
      ev("UserUpdated", { userId: "u2", newUserName: "robert" }), // the name index is no longer in user order
      grantAdded("u2", "b", ["SUB"]),
      grantAdded("u2", "b", ["PUB"]), // permissions keep their order: SUB, PUB
    ]).slice(events.length);
    for (const e of more) p.apply(e);
    const q = Projection.fromSnapshot(JSON.parse(JSON.stringify(p.snapshot())));
    expect(q.state).toEqual(p.state);
    expect(q.state.maxOccurredAt).toBe(p.state.maxOccurredAt);
    expect(q.account(ACCT)!.policies.get("d")!.description).toBe("d.");
    expect(q.account(ACCT)!.groups.get("g2")!.comments).toBe("on call");
    expect(q.userByName(ACCT, "alice")?.userId).toBe("u3");
    expect([...q.account(ACCT)!.userIdsByName.keys()]).toEqual([...p.account(ACCT)!.userIdsByName.keys()]);
    expect([...q.account(ACCT)!.users.get("u2")!.consoleGrants.get("i1\u0000b")!]).toEqual(["SUB", "PUB"]);
    expect(JSON.stringify(q.snapshot())).toBe(JSON.stringify(p.snapshot()));
    expect(q.account(ACCT)!.groupIds.get("i2")!.get("GID_u")!.owner).toEqual(user("u1"));
  });

  it("refuse to drop a field the codec does not know (the state grew without the codec)", () => {
    const p = build();
    (p.account(ACCT)!.users.get("u1") as unknown as Record<string, unknown>).mfa = true;
    expect(() => p.snapshot()).toThrow(/a user has a field `mfa`/);
  });

  it("do not share policy documents with the live state", () => {
    const p = build();
    const snap = p.snapshot();
    const text = JSON.stringify(snap);
    const d = p.account(ACCT)!.policies.get("p")!.versions.get("v2")!.document as { Version: string };
    d.Version = "changed";
    expect(JSON.stringify(snap)).toBe(text);
  });

  it("record the latest time of their events, whatever the offsets", () => {
    const p = new Projection();
    const es = recorded([accountCreated(), userCreated("u1")]);
    // 05:00+02:00 is 03:00Z; 04:00Z is later though it sorts first as text.
    p.apply({ ...es[0]!, occurredAt: "2025-01-01T05:00:00+02:00" });
    p.apply({ ...es[1]!, occurredAt: "2025-01-01T04:00:00.000Z" });
    expect(p.snapshot().maxOccurredAt).toBe("2025-01-01T04:00:00.000Z");
    const q = new Projection();
    q.apply({ ...es[0]!, occurredAt: "2025-01-01T04:00:00.000Z" });
    q.apply({ ...es[1]!, occurredAt: "2025-01-01T05:00:00+02:00" });
    expect(q.snapshot().maxOccurredAt).toBe("2025-01-01T04:00:00.000Z");
  });

  it("of the empty state restore to the empty state", () => {
    const q = Projection.fromSnapshot(new Projection().snapshot());
    expect(q.position).toBe(0);
    expect(q.state.accounts.size).toBe(0);
  });
});
