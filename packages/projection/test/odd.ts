/**
 * Arbitrary *incoherent* logs for property tests: every event is valid on its
 * own (it passes the event schemas), but nothing makes the sequence sensible —
 * events of accounts never created, users added to groups that do not exist,
 * ids created twice, keys of one account touched from another's stream,
 * versions reusing ids, policies attached before (or without) being created,
 * topics holding `*`. A decider never writes such a log; the projection must
 * still never serve a stale cached decision from one.
 *
 * Ids come from tiny pools so that events collide often. Documents come from
 * `docArb` (normal or shorthand spelling).
 */
import type { EventData, EventEnvelope, EventType, RecordedEvent } from "@portcullis/events";
import fc from "fast-check";
import { describeHistory, docArb, instantiate, shorthand, UNIVERSE } from "./history.ts";
import { ev, FAKE_SECRET, Recorder, T0 } from "./log.ts";

const ACCOUNTS = UNIVERSE.accounts;
const users = fc.constantFrom("u0", "u1", "u2");
const groups = fc.constantFrom("g0", "g1");
const policies = fc.constantFrom("p0", "p1");
const versions = fc.constantFrom("v1", "v2", "v3");
const keys = fc.constantFrom("K0", "K1", "K2");
const topics = fc.constantFrom("a", "a*", "a/x", "b");
const instances = fc.constantFrom("i1", "i2");
const perms = fc.constantFrom<("PUB" | "SUB")[]>(["PUB"], ["SUB"], ["PUB", "SUB"]);
const owner = fc.oneof(
  fc.constant({ kind: "root" as const }),
  users.map((userId) => ({ kind: "user" as const, userId })),
);
const target = fc.oneof(
  users.map((userId) => ({ kind: "user" as const, userId })),
  groups.map((groupId) => ({ kind: "group" as const, groupId })),
);

/** One arbitrary event's data for `account` (documents instantiated for it). */
function dataArb(type: EventType, account: string): fc.Arbitrary<unknown> {
  const document = fc
    .tuple(docArb, fc.boolean())
    .map(([d, short]) => (short ? shorthand(instantiate(d, account)) : instantiate(d, account)));
  const ref = fc.record({
    policyName: fc.oneof(policies, fc.constantFrom(...UNIVERSE.systemPolicies)),
    policyType: fc.constantFrom("System" as const, "Custom" as const),
    target,
  });
  switch (type) {
    case "AccountCreated":
      return fc.constant({ accountId: account, alias: `acme-${account.slice(0, 2)}` });
    case "UserCreated":
      return fc.record({ userId: users, userName: fc.constantFrom("alice", "bob") });
    case "UserUpdated":
      return fc.record({ userId: users, newUserName: fc.constantFrom("alice", "bob", "carol") });
    case "UserDisabled":
    case "UserEnabled":
    case "UserDeleted":
      return fc.record({ userId: users });
    case "AccessKeyCreated":
      return fc.record({ accessKeyId: keys, owner, secret: fc.constant({ ...FAKE_SECRET }) });
    case "AccessKeyStatusChanged":
      return fc.record({
        accessKeyId: keys,
        status: fc.constantFrom("Active" as const, "Inactive" as const),
      });
    case "AccessKeyDeleted":
      return fc.record({ accessKeyId: keys });
    case "GroupCreated":
      return fc.record({ groupId: groups, groupName: fc.constantFrom("ops", "dev") });
    case "GroupDeleted":
      return fc.record({ groupId: groups });
    case "UserAddedToGroup":
    case "UserRemovedFromGroup":
      return fc.record({ userId: users, groupId: groups });
    case "PolicyCreated":
      return fc.record({ policyName: policies, versionId: versions, document });
    case "PolicyVersionCreated":
      return fc.record(
        {
          policyName: policies,
          versionId: versions,
          document,
          setAsDefault: fc.boolean(),
          removedVersionId: versions,
        },
        { requiredKeys: ["policyName", "versionId", "document", "setAsDefault"] },
      );
    case "PolicyDefaultVersionSet":
    case "PolicyVersionDeleted":
      return fc.record({ policyName: policies, versionId: versions });
    case "PolicyDeleted":
      return fc.record({ policyName: policies });
    case "PolicyAttached":
    case "PolicyDetached":
      return ref;
    case "ConsoleGrantAdded":
    case "ConsoleGrantRemoved":
      return fc.record({ userId: users, instanceId: instances, topic: topics, perms });
    case "TopicCreated":
    case "TopicDeleted":
      return fc.record({ instanceId: instances, topic: topics });
    case "GroupIdCreated":
      return fc.record({ instanceId: instances, groupId: fc.constantFrom("GID_a", "GID_b"), owner });
    case "GroupIdDeleted":
      return fc.record({ instanceId: instances, groupId: fc.constantFrom("GID_a", "GID_b") });
  }
}

/** Event types with weights: creations and attachments often, so that odd sequences reach real decisions. */
const TYPES: readonly (readonly [EventType, number])[] = [
  ["AccountCreated", 1],
  ["UserCreated", 4],
  ["UserUpdated", 1],
  ["UserDisabled", 1],
  ["UserEnabled", 1],
  ["UserDeleted", 2],
  ["AccessKeyCreated", 3],
  ["AccessKeyStatusChanged", 2],
  ["AccessKeyDeleted", 1],
  ["GroupCreated", 4],
  ["GroupDeleted", 2],
  ["UserAddedToGroup", 5],
  ["UserRemovedFromGroup", 2],
  ["PolicyCreated", 4],
  ["PolicyVersionCreated", 4],
  ["PolicyDefaultVersionSet", 2],
  ["PolicyVersionDeleted", 1],
  ["PolicyDeleted", 2],
  ["PolicyAttached", 6],
  ["PolicyDetached", 2],
  ["ConsoleGrantAdded", 3],
  ["ConsoleGrantRemoved", 1],
  ["TopicCreated", 1],
  ["TopicDeleted", 1],
  ["GroupIdCreated", 1],
  ["GroupIdDeleted", 1],
];
const typeArb = fc.oneof(...TYPES.map(([t, weight]) => ({ arbitrary: fc.constant(t), weight })));
/** Mostly the first account (so its users and groups collide), sometimes the other. */
const accountArb = fc.oneof(
  { arbitrary: fc.constant(ACCOUNTS[0]!), weight: 4 },
  { arbitrary: fc.constant(ACCOUNTS[1]!), weight: 1 },
);

/** One arbitrary valid event (an envelope; occurredAt set when recorded). */
export const oddEventArb: fc.Arbitrary<EventEnvelope> = fc
  .tuple(typeArb, accountArb)
  .chain(([type, account]) =>
    dataArb(type, account).map((data) => ev(type, data as EventData<typeof type>, { account })),
  );

/**
 * An arbitrary incoherent log (0–`max` events), recorded at positions 1..n, a second
 * apart; most logs start with the first account's AccountCreated (else little happens).
 */
export function oddLogArb(max = 80): fc.Arbitrary<RecordedEvent[]> {
  const created = ev("AccountCreated", { accountId: ACCOUNTS[0]!, alias: "acme" }, { account: ACCOUNTS[0]! });
  return fc
    .tuple(fc.boolean(), fc.boolean(), fc.array(oddEventArb, { maxLength: max, size: "max" }))
    .map(([a, b, es]) => {
      const rec = new Recorder();
      const all = a || b ? [created, ...es] : es;
      const log = all.map((e, i) => rec.record({ ...e, occurredAt: new Date(T0 + i * 1000).toISOString() }));
      // Counterexamples print one line per event.
      Object.defineProperty(log, fc.toStringMethod, { value: () => describeHistory(log), enumerable: false });
      return log;
    });
}

/** Every AccessKey id the odd logs use. */
export const ODD_KEY_IDS = ["K0", "K1", "K2"] as const;
