/**
 * Random but coherent event histories over a small universe, for property
 * tests of the projection — and later for the audit (`who-can`, `diff`,
 * `verify`) and the bench.
 *
 * How it works. fast-check generates a list of *steps* (an operation and a few
 * small numbers); `materialize` walks them with a `HistoryModel` of the state
 * so far and turns each step into an event that makes sense at that point (a
 * user is added to a group only when both exist, the 6th version of a policy
 * names the version it removes, AccessKey ids are never reused, …), or skips
 * it when it cannot. Shrinking works on the steps, so a failing history shrinks
 * to a handful of events. Events are built with `newEvent` at their current
 * schema version and recorded as a store would: positions 1..n, one stream per
 * account, per-stream revisions; `occurredAt` advances by 0–2 s per event
 * (ties included, for `untilTime`).
 *
 * The default universe (`UNIVERSE`; pass another as `universe`): 1–2 accounts,
 * ≤ 5 user slots (`u0`…), ≤ 3 groups (`g0`…), ≤ 3 custom policies (`p0`…,
 * sometimes attached before they exist) with small random documents over
 * `mq:PUB`/`mq:SUB`/`mq:MqttInstanceAccess` and a few topics (Allow and Deny,
 * NotAction/NotResource, conditions on `acs:SecureTransport`, `acs:SourceIp`
 * and `mq:ClientId`, resources of the other account), three MQ system
 * policies, console grants, disable/enable, renames, deletes (and re-creation
 * under the same id), AccessKey events (≤ 2 per owner), topics and Group IDs.
 * Documents are in normal form unless `shorthandDocuments` is set (then about
 * half of them are written in shorthand, SPEC §3).
 *
 * `HistoryModel` (model.ts, re-exported here) is also a reference: it applies
 * events with its own plain bookkeeping (written from SPEC §2, not from
 * `evolve`), and `referenceAuthorize` decides a request from it with the
 * policy engine's public one-shot `evaluatePolicies`.
 *
 * Also here: `requestSetArb`/`requestArb` (requests over the universe: every
 * principal, including absent users and an unknown account's root; topics and
 * instances of both accounts; contexts that satisfy all, none or no
 * conditions) and `describeHistory` (one line per event, used for
 * counterexamples).
 *
 * @example
 *   fc.assert(fc.property(historyArb(), (h) => {
 *     const p = new Projection();
 *     for (const e of h.events) p.apply(e);
 *   }));
 *   // audit/bench: one deterministic history (seed 42: 187 events)
 *   const h = fc.sample(historyArb({ minSteps: 300, maxSteps: 300 }), { seed: 42, numRuns: 1 })[0]!;
 *   // a bigger one: more slots per account (2,000 steps: ~1,700 events, ~40 users)
 *   const big = historyArb({ universe: { ...UNIVERSE, users: 50, groups: 10, policies: 20 }, minSteps: 2000, maxSteps: 2000 });
 */
import type { EventData, EventType, RecordedEvent } from "@portcullis/events";
import { mqInstanceArn, mqTopicArn, type RequestContext } from "@portcullis/policy";
import fc from "fast-check";
import type { PrincipalRef } from "../src/mod.ts";
import { ev, FAKE_SECRET, NOWHERE, Recorder, T0 } from "./log.ts";
import { HistoryModel } from "./model.ts";

export { type GrantMode, HistoryModel, referenceAuthorize } from "./model.ts";

// ---------------------------------------------------------------------------
// Universe

/** The names a history may use. */
export interface Universe {
  /** Account ids (16 digits); a history uses the first 1..all of them. */
  accounts: readonly string[];
  /** User slots per account: `u0` … `u<users-1>`. */
  users: number;
  /** Group slots per account: `g0` … */
  groups: number;
  /** Custom policy slots per account: `p0` … */
  policies: number;
  /** System policies that may be attached. */
  systemPolicies: readonly string[];
  /** MQTT instances. */
  instances: readonly string[];
  /** Topics (parent topics and sub-topics) for grants, documents and requests. */
  topics: readonly string[];
}

/** The default universe: 2 accounts, 5 users, 3 groups, 3 custom policies. */
export const UNIVERSE: Universe = Object.freeze({
  accounts: ["1111111111111111", "2222222222222222"],
  users: 5,
  groups: 3,
  policies: 3,
  systemPolicies: ["AliyunMQPubOnlyAccess", "AliyunMQSubOnlyAccess", "AliyunMQFullAccess"],
  instances: ["i1", "i2"],
  topics: ["a", "a/x", "b", "bz/q"],
});

/** Gateway region used in request ARNs. */
export const REGION = "local";

// ---------------------------------------------------------------------------
// Policy documents (with `$ACCT` / `$OTHER` placeholders filled in per account)

const ACTIONS = ["mq:PUB", "mq:SUB", "mq:MqttInstanceAccess", "mq:*", "MQ:Pub"] as const;
const RESOURCES = [
  "acs:mq:*:$ACCT:topic/i1/a", // a parent topic: covers a/…
  "acs:mq:*:$ACCT:topic/i1/a/x",
  "acs:mq:*:$ACCT:topic/*/b*",
  "acs:mq:local:$ACCT:instance/i1",
  "acs:mq:*:$ACCT:instance/*",
  "acs:mq:*:$ACCT:a", // legacy form: parent topic `a` in every instance
  "acs:mq:*:*:*",
  "*",
  "acs:mq:*:$OTHER:topic/i1/a", // the other account: never effective
] as const;
const CONDITIONS = [
  { Bool: { "acs:SecureTransport": true } },
  { IpAddress: { "acs:SourceIp": "10.0.0.0/8" } },
  { StringLike: { "mq:ClientId": "GID_a@@@*" } },
] as const;

/** A statement in normal form (every list an array). */
export interface DocStatement {
  Effect: "Allow" | "Deny";
  Action?: string[];
  NotAction?: string[];
  Resource?: string[];
  NotResource?: string[];
  Condition?: Record<string, Record<string, unknown>>;
}
/** A policy document in normal form, with placeholders. */
export interface DocTemplate {
  Version: "1";
  Statement: DocStatement[];
}

const statementArb: fc.Arbitrary<DocStatement> = fc
  .record({
    effect: fc.constantFrom<"Allow" | "Deny">("Allow", "Allow", "Allow", "Deny"),
    not: fc.constantFrom("none", "none", "none", "none", "action", "resource"),
    actions: fc.uniqueArray(fc.constantFrom(...ACTIONS), { minLength: 1, maxLength: 2 }),
    resources: fc.uniqueArray(fc.constantFrom(...RESOURCES), { minLength: 1, maxLength: 2 }),
    condition: fc.option(fc.constantFrom(...CONDITIONS), { freq: 3 }),
  })
  .map(({ effect, not, actions, resources, condition }) => {
    const s: DocStatement = { Effect: effect };
    if (not === "action") s.NotAction = [...actions];
    else s.Action = [...actions];
    if (not === "resource") s.NotResource = [...resources];
    else s.Resource = [...resources];
    if (condition !== null) s.Condition = structuredClone(condition) as DocStatement["Condition"];
    return s;
  });

/** A small random policy document (1–3 statements) with `$ACCT`/`$OTHER` placeholders. */
export const docArb: fc.Arbitrary<DocTemplate> = fc
  .array(statementArb, { minLength: 1, maxLength: 3 })
  .map((Statement) => ({ Version: "1", Statement }));

/** Fill in the placeholders of a template for `account` (`$OTHER` = another account of the universe). */
export function instantiate(doc: DocTemplate, account: string, u: Universe = UNIVERSE): DocTemplate {
  const other = u.accounts.find((a) => a !== account) ?? NOWHERE;
  return JSON.parse(JSON.stringify(doc).replaceAll("$ACCT", account).replaceAll("$OTHER", other));
}

/**
 * The shorthand spelling of a document (SPEC §3: a single string and a
 * one-element array are equivalent; `Statement` may be one object).
 */
export function shorthand(doc: DocTemplate): unknown {
  const one = (l: string[] | undefined) => (l !== undefined && l.length === 1 ? l[0] : l);
  const sts = doc.Statement.map((s) => {
    const o: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(s)) o[k] = Array.isArray(v) ? one(v) : v;
    return o;
  });
  return { Version: "1", Statement: sts.length === 1 ? sts[0] : sts };
}

// ---------------------------------------------------------------------------
// Steps

const OPS = [
  ["createUser", 4],
  ["updateUser", 1],
  ["disableUser", 2],
  ["enableUser", 2],
  ["deleteUser", 1],
  ["createKey", 2],
  ["keyStatus", 2],
  ["deleteKey", 1],
  ["createGroup", 2],
  ["deleteGroup", 1],
  ["addToGroup", 5],
  ["removeFromGroup", 2],
  ["createPolicy", 3],
  ["newVersion", 5],
  ["setDefault", 3],
  ["deleteVersion", 1],
  ["deletePolicy", 2],
  ["attach", 5],
  ["detach", 2],
  ["grantAdd", 3],
  ["grantRemove", 2],
  ["topic", 1],
  ["groupId", 1],
] as const;

/** An operation of a step. */
export type Op = (typeof OPS)[number][0];

/** One generated intention; `materialize` turns it into an event, or skips it. */
export interface Step {
  op: Op;
  /** Small choice numbers (account, entity, version, …), taken modulo what exists. */
  a: number;
  b: number;
  c: number;
  flag: boolean;
  flag2: boolean;
  perms: ("PUB" | "SUB")[];
  doc: DocTemplate;
  /** Seconds between the previous event and this one (0–2). */
  dt: number;
}

/**
 * Arbitrary steps (weighted towards attachments, users and policies). Choice
 * numbers go up to 15, or higher when the universe has more slots.
 */
export function stepArb(u: Universe = UNIVERSE): fc.Arbitrary<Step> {
  const n = fc.nat({ max: Math.max(15, 2 * Math.max(u.users, u.groups, u.policies, u.accounts.length)) });
  return fc.record({
    op: fc.oneof(...OPS.map(([op, weight]) => ({ arbitrary: fc.constant(op as Op), weight }))),
    a: n,
    b: n,
    c: n,
    flag: fc.boolean(),
    flag2: fc.boolean(),
    perms: fc.constantFrom<("PUB" | "SUB")[]>(["PUB"], ["SUB"], ["PUB", "SUB"]),
    doc: docArb,
    dt: fc.nat({ max: 2 }),
  });
}

// ---------------------------------------------------------------------------
// Materialize

/** A generated history. */
export interface History {
  universe: Universe;
  /** The accounts this history uses (1 or 2; each starts with its AccountCreated). */
  accounts: readonly string[];
  /** The events, recorded at positions 1..n. */
  events: RecordedEvent[];
  /** The model after the last event. */
  model: HistoryModel;
  /** Every AccessKey id the history created. */
  accessKeyIds: readonly string[];
}

/** Options of `historyArb`/`materialize`. */
export interface HistoryOptions {
  universe?: Universe;
  /** Number of steps (events after the AccountCreated ones, minus skipped steps). Default 0..100. */
  minSteps?: number;
  maxSteps?: number;
  /**
   * Write some policy documents in their shorthand spelling (one string for a
   * one-element list, one object for a one-statement `Statement`). Default false.
   */
  shorthandDocuments?: boolean;
  /** Time of the first event (default T0 of log.ts). */
  start?: number;
  /**
   * Sometimes attach a custom policy that does not exist (yet): `evolve` allows it and
   * PolicyCreated then reaches those users. Default true.
   */
  danglingAttachments?: boolean;
}

const sorted = <T>(it: Iterable<T>): T[] => [...it].sort();
const pick = <T>(xs: readonly T[], n: number): T | undefined =>
  xs.length === 0 ? undefined : xs[n % xs.length];

/** Turn steps into a coherent recorded history (deterministic: the same steps give the same events). */
export function materialize(
  accountCount: number,
  steps: readonly Step[],
  opts: HistoryOptions = {},
): History {
  const u = opts.universe ?? UNIVERSE;
  const accounts = u.accounts.slice(0, Math.max(1, Math.min(accountCount, u.accounts.length)));
  const model = new HistoryModel();
  const rec = new Recorder();
  let time = opts.start ?? T0;
  let keyCounter = 0;

  const emit = <T extends EventType>(type: T, account: string, data: EventData<T>) => {
    const id = `h-${rec.nextPosition}`;
    const env = ev(type, data, { account, at: time, id });
    model.apply(env);
    rec.record(env);
  };

  for (const [i, acct] of accounts.entries())
    emit("AccountCreated", acct, { accountId: acct, alias: `acme${i}` });

  for (const s of steps) {
    const acct = accounts[s.a % accounts.length]!;
    const A = model.accounts.get(acct)!;
    const users = sorted(A.users.keys());
    const groups = sorted(A.groups.keys());
    const policies = sorted(A.policies.keys());
    const before = rec.nextPosition;
    time += s.dt * 1000;
    const doc = (): unknown => {
      const d = instantiate(s.doc, acct, u);
      return opts.shorthandDocuments && s.flag2 ? shorthand(d) : d;
    };
    switch (s.op) {
      case "createUser": {
        const slot = s.b % u.users;
        if (A.users.has(`u${slot}`)) break;
        emit("UserCreated", acct, {
          userId: `u${slot}`,
          userName: `user${slot}`,
          ...(s.flag ? { displayName: `User ${slot}` } : {}),
        });
        break;
      }
      case "updateUser": {
        const id = pick(users, s.b);
        if (id === undefined) break;
        emit(
          "UserUpdated",
          acct,
          s.flag
            ? { userId: id, newUserName: `${id}-r${++model.nameCounter}` }
            : { userId: id, displayName: `D${s.c}` },
        );
        break;
      }
      case "disableUser":
      case "enableUser":
      case "deleteUser": {
        const id = pick(users, s.b);
        if (id === undefined) break;
        const type =
          s.op === "disableUser" ? "UserDisabled" : s.op === "enableUser" ? "UserEnabled" : "UserDeleted";
        emit(type, acct, { userId: id });
        break;
      }
      case "createKey": {
        const owner = s.flag ? "root" : pick(users, s.b);
        if (owner === undefined) break;
        const owned = [...model.keys.values()].filter((k) => k.account === acct && k.owner === owner);
        if (owned.length >= 2) break; // at most 2 AccessKeys (SPEC §2)
        emit("AccessKeyCreated", acct, {
          accessKeyId: `LTAI${acct.slice(0, 2)}K${++keyCounter}`,
          owner: owner === "root" ? { kind: "root" } : { kind: "user", userId: owner },
          secret: { ...FAKE_SECRET },
        });
        break;
      }
      case "keyStatus":
      case "deleteKey": {
        const ids = sorted([...model.keys].filter(([, k]) => k.account === acct).map(([id]) => id));
        const id = pick(ids, s.b);
        if (id === undefined) break;
        if (s.op === "deleteKey") emit("AccessKeyDeleted", acct, { accessKeyId: id });
        else
          emit("AccessKeyStatusChanged", acct, { accessKeyId: id, status: s.flag ? "Active" : "Inactive" });
        break;
      }
      case "createGroup": {
        const slot = s.b % u.groups;
        if (A.groups.has(`g${slot}`)) break;
        emit("GroupCreated", acct, { groupId: `g${slot}`, groupName: `group${slot}` });
        break;
      }
      case "deleteGroup": {
        const id = pick(groups, s.b);
        if (id !== undefined) emit("GroupDeleted", acct, { groupId: id });
        break;
      }
      case "addToGroup": {
        const uid = pick(users, s.b);
        const gid = pick(groups, s.c);
        if (uid === undefined || gid === undefined || A.groups.get(gid)!.members.has(uid)) break;
        emit("UserAddedToGroup", acct, { userId: uid, groupId: gid });
        break;
      }
      case "removeFromGroup": {
        const pairs = groups.flatMap((g) => sorted(A.groups.get(g)!.members).map((m) => [m, g] as const));
        const pair = pick(pairs, s.b);
        if (pair) emit("UserRemovedFromGroup", acct, { userId: pair[0], groupId: pair[1] });
        break;
      }
      case "createPolicy": {
        const name = `p${s.b % u.policies}`;
        if (A.policies.has(name)) break;
        emit("PolicyCreated", acct, { policyName: name, versionId: "v1", document: doc() });
        break;
      }
      case "newVersion": {
        const name = pick(policies, s.b);
        if (name === undefined) break;
        const p = A.policies.get(name)!;
        let removed: string | undefined;
        if (p.versions.size >= 5) {
          // The oldest non-default version goes (SPEC §2).
          removed = [...p.versions.keys()]
            .filter((v) => v !== p.defaultVersion)
            .sort((x, y) => Number(x.slice(1)) - Number(y.slice(1)))[0];
        }
        emit("PolicyVersionCreated", acct, {
          policyName: name,
          versionId: `v${p.next}`,
          document: doc(),
          setAsDefault: s.flag,
          ...(removed !== undefined ? { removedVersionId: removed } : {}),
        });
        break;
      }
      case "setDefault":
      case "deleteVersion": {
        const name = pick(policies, s.b);
        if (name === undefined) break;
        const p = A.policies.get(name)!;
        const v = pick(
          sorted(p.versions.keys()).filter((x) => x !== p.defaultVersion),
          s.c,
        );
        if (v === undefined) break;
        if (s.op === "setDefault") emit("PolicyDefaultVersionSet", acct, { policyName: name, versionId: v });
        else emit("PolicyVersionDeleted", acct, { policyName: name, versionId: v });
        break;
      }
      case "deletePolicy": {
        const name = pick(policies, s.b);
        if (name !== undefined) emit("PolicyDeleted", acct, { policyName: name });
        break;
      }
      case "attach": {
        const toGroup = s.flag;
        const holderId = pick(toGroup ? groups : users, s.b);
        if (holderId === undefined) break;
        const holder = toGroup ? A.groups.get(holderId)! : A.users.get(holderId)!;
        // Attachments name policies: with `danglingAttachments`, one step in four names a custom
        // policy slot whether or not it exists yet (it takes effect when the policy is created).
        const dangling = (opts.danglingAttachments ?? true) && !s.flag2 && s.c % 4 === 3;
        const system = !dangling && (s.flag2 || policies.length === 0);
        const name = dangling
          ? `p${s.a % u.policies}`
          : system
            ? pick(u.systemPolicies, s.c)!
            : pick(policies, s.c)!;
        const policyType = system ? "System" : "Custom";
        if (holder.policies.has(`${policyType}:${name}`)) break;
        emit("PolicyAttached", acct, {
          policyName: name,
          policyType,
          target: toGroup ? { kind: "group", groupId: holderId } : { kind: "user", userId: holderId },
        });
        break;
      }
      case "detach": {
        const atts = [
          ...users.flatMap((id) => sorted(A.users.get(id)!.policies).map((r) => ["user", id, r] as const)),
          ...groups.flatMap((id) => sorted(A.groups.get(id)!.policies).map((r) => ["group", id, r] as const)),
        ];
        const att = pick(atts, s.b);
        if (!att) break;
        const [kind, id, ref] = att;
        const [policyType, policyName] = ref.split(":", 2) as ["System" | "Custom", string];
        emit("PolicyDetached", acct, {
          policyName,
          policyType,
          target: kind === "group" ? { kind: "group", groupId: id } : { kind: "user", userId: id },
        });
        break;
      }
      case "grantAdd": {
        const uid = pick(users, s.b);
        if (uid === undefined) break;
        emit("ConsoleGrantAdded", acct, {
          userId: uid,
          instanceId: pick(u.instances, s.c)!,
          topic: pick(u.topics, s.a + s.c)!,
          perms: [...s.perms],
        });
        break;
      }
      case "grantRemove": {
        const gs = users.flatMap((id) => sorted(A.users.get(id)!.grants.keys()).map((k) => [id, k] as const));
        const g = pick(gs, s.b);
        if (!g) break;
        const [instanceId, topic] = g[1].split("\u0000") as [string, string];
        emit("ConsoleGrantRemoved", acct, { userId: g[0], instanceId, topic, perms: [...s.perms] });
        break;
      }
      case "topic": {
        const instanceId = pick(u.instances, s.b)!;
        const topic = pick(u.topics, s.c)!.split("/")[0]!; // parent topics only
        const type = A.topics.has(`${instanceId}/${topic}`) ? "TopicDeleted" : "TopicCreated";
        emit(type, acct, { instanceId, topic });
        break;
      }
      case "groupId": {
        const instanceId = pick(u.instances, s.b)!;
        const groupId = `GID_${s.c % 2 === 0 ? "a" : "b"}`;
        if (A.groupIds.has(`${instanceId}/${groupId}`)) emit("GroupIdDeleted", acct, { instanceId, groupId });
        else {
          const owner = s.flag ? undefined : pick(users, s.b);
          emit("GroupIdCreated", acct, {
            instanceId,
            groupId,
            owner: owner === undefined ? { kind: "root" } : { kind: "user", userId: owner },
          });
        }
        break;
      }
    }
    if (rec.nextPosition === before) time -= s.dt * 1000; // skipped: no time passes
  }
  const h: History = { universe: u, accounts, events: rec.events, model, accessKeyIds: [...model.keyIds] };
  // fast-check prints counterexamples with this: one line per event, not the whole model.
  Object.defineProperty(h, fc.toStringMethod, { value: () => describeHistory(h.events), enumerable: false });
  return h;
}

/** One line per event: `position type account data` (for counterexamples and bug reports). */
export function describeHistory(events: readonly RecordedEvent[]): string {
  const acct = (a: string) => `…${a.slice(-2)}`;
  return `History[\n${events
    .map((e) => {
      const data = JSON.stringify(e.data, (k, v) => (k === "secret" ? "<sealed>" : v));
      return `  ${e.position} ${e.type} ${acct(e.accountId)} ${data}`;
    })
    .join("\n")}\n]`;
}

/** Arbitrary coherent histories (see the module comment). */
export function historyArb(opts: HistoryOptions = {}): fc.Arbitrary<History> {
  return fc
    .tuple(
      fc.integer({ min: 1, max: (opts.universe ?? UNIVERSE).accounts.length }),
      // size "max": lengths spread over the whole range (fast-check's default size keeps arrays short).
      fc.array(stepArb(opts.universe), {
        minLength: opts.minSteps ?? 0,
        maxLength: opts.maxSteps ?? 100,
        size: "max",
      }),
    )
    .map(([n, steps]) => materialize(n, steps, opts));
}

// ---------------------------------------------------------------------------
// Requests

/** One authorization question for the projection. */
export interface SampleRequest {
  principal: PrincipalRef;
  action: string;
  resource: string;
  context?: RequestContext;
}

/** Every principal a request may name: root and user slots of each account, and an unknown account's root. */
export function principals(u: Universe = UNIVERSE): PrincipalRef[] {
  const out: PrincipalRef[] = [];
  for (const accountId of u.accounts) {
    out.push({ accountId, kind: "root" });
    for (let i = 0; i < u.users; i++) out.push({ accountId, kind: "user", userId: `u${i}` });
  }
  out.push({ accountId: NOWHERE, kind: "root" });
  return out;
}

/** Topics asked about besides the universe's: below a sub-topic, and a sibling sharing a prefix. */
export const EXTRA_REQUEST_TOPICS = ["a/x/y", "ab"] as const;

/** Every resource a request may name: topics and instances of each account (region `local`). */
export function resources(u: Universe = UNIVERSE): string[] {
  const out: string[] = [];
  for (const accountId of u.accounts) {
    const s = { region: REGION, accountId };
    for (const i of u.instances) {
      out.push(mqInstanceArn(s, i));
      for (const t of [...u.topics, ...EXTRA_REQUEST_TOPICS]) out.push(mqTopicArn(s, i, t));
    }
  }
  return out;
}

/** Contexts: none, one that satisfies every generated condition, one that satisfies none. */
export const CONTEXTS: readonly (RequestContext | undefined)[] = [
  undefined,
  { "acs:SecureTransport": true, "acs:SourceIp": "10.1.2.3", "mq:ClientId": "GID_a@@@dev1" },
  { "acs:SecureTransport": false, "acs:SourceIp": "192.168.1.1", "mq:ClientId": "GID_b@@@dev2" },
];

/** Actions asked about (one in odd case: actions match case-insensitively). */
export const REQUEST_ACTIONS = ["mq:PUB", "mq:SUB", "mq:MqttInstanceAccess", "mq:pub"] as const;

/** An arbitrary request over the universe. */
export function requestArb(u: Universe = UNIVERSE): fc.Arbitrary<SampleRequest> {
  return fc.record({
    principal: fc.constantFrom(...principals(u)),
    action: fc.constantFrom(...REQUEST_ACTIONS),
    resource: fc.constantFrom(...resources(u)),
    context: fc.constantFrom(...CONTEXTS),
  });
}

/**
 * A request sample that covers every principal of the universe: a few random
 * (action, resource, context) combinations, each asked for every principal.
 * Decisions are per principal, so covering them all is what finds stale ones.
 */
export function requestSetArb(
  u: Universe = UNIVERSE,
  combos = { min: 4, max: 8 },
): fc.Arbitrary<SampleRequest[]> {
  const combo = fc.record({
    action: fc.constantFrom(...REQUEST_ACTIONS),
    resource: fc.constantFrom(...resources(u)),
    context: fc.constantFrom(...CONTEXTS),
  });
  return fc
    .uniqueArray(combo, {
      minLength: combos.min,
      maxLength: combos.max,
      selector: (c) => `${c.action} ${c.resource} ${JSON.stringify(c.context ?? null)}`,
    })
    .map((cs) => {
      const reqs: SampleRequest[] = principals(u).flatMap((principal) =>
        cs.map((c) => ({ principal, ...c })),
      );
      // Counterexamples print the combinations, not every principal × combination.
      const text = cs.map((c) => `${c.action} ${c.resource} ${JSON.stringify(c.context ?? null)}`);
      Object.defineProperty(reqs, fc.toStringMethod, {
        value: () => `EveryPrincipal×[\n  ${text.join("\n  ")}\n]`,
        enumerable: false,
      });
      return reqs;
    });
}
