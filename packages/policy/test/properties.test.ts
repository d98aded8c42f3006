/**
 * Property tests (STYLE.md, "Policy correctness like Cedar"): random valid
 * policies over a small alphabet of actions, resources and condition keys (so
 * that statements actually match), decided by the engine and by the plain
 * reference evaluator of `reference.ts`.
 *
 * | property | runs |
 * |---|---|
 * | (a) `evaluatePolicies` and `PolicySet.decide` equal the reference | 1000 |
 * | (b) shuffling and duplicating statements and policies changes nothing | 500 |
 * | (c) `decide` (twice, after `clearCache`, small caches) equals `evaluate` | 300 |
 * | (d) `compileWildcard` equals the reference DP (random, and near-miss) | 2 × 1000 |
 * | (e) `decide` equals `evaluate` with many contexts and actions per resource | 200 |
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  type AuthzRequest,
  amqpAllQueuesArn,
  amqpExchangeArn,
  amqpExchangeMessagesArn,
  amqpQueueArn,
  amqpQueueMessagesArn,
  amqpVhostArn,
  type CompiledPolicy,
  type ContextValue,
  compilePolicy,
  compileWildcard,
  type Decision,
  evaluatePolicies,
  mqGroupIdArn,
  mqInstanceArn,
  mqTopicArn,
  PolicySet,
  type PolicyType,
  type Principal,
  type RequestContext,
  ramArn,
  validatePolicy,
} from "../src/mod.ts";
import { type RefDecision, type RefPolicy, referenceDecide, refGlob } from "./reference.ts";

const ACCT = "1234567890123456";
const OTHER = "6543210987654321";

// ---------------------------------------------------------------------------
// Small building blocks.

/** `s` as written, or with the case of each letter chosen at random. */
function anyCase(s: string): fc.Arbitrary<string> {
  const flipped = fc
    .array(fc.boolean(), { minLength: s.length, maxLength: s.length })
    .map((up) => [...s].map((c, i) => (up[i] ? c.toUpperCase() : c.toLowerCase())).join(""));
  return fc.oneof({ arbitrary: fc.constant(s), weight: 2 }, { arbitrary: flipped, weight: 1 });
}

const pick = <T>(...xs: T[]): fc.Arbitrary<T> => fc.constantFrom(...xs);

// Actions.
const CONCRETE_ACTIONS = [
  "mq:PUB",
  "mq:SUB",
  "mq:MqttInstanceAccess",
  "amqp:BasicPublish",
  "amqp:GetVhost",
  "ram:CreateUser",
];
const actionPattern = fc
  .oneof(
    pick(...CONCRETE_ACTIONS),
    pick("mq:*", "*", "m?:P*", "amqp:Basic*", "*:*Publish", "ram:*", "mq:?UB"),
  )
  .chain(anyCase);
const requestAction = pick(...CONCRETE_ACTIONS, "mq:Unknown", "amqp:CreatExchange").chain(anyCase);

// Request resources, built with the builders.
const INSTANCES = ["mqtt-local", "mqtt-2"];
// `a:b` puts a colon in the relative id (the engine index then scans every statement).
const TOPICS = ["a", "b", "ab", "a/b", "a/b/c", "ab/c", "a/+/c", "a/#", "b/a", "a:b", "A/b"];
const VHOSTS = ["/", "v1", "v2"];
const NAMES = ["q1", "q2", "", "x.y"];
const requestScope = fc.record({
  region: pick("local", "local", "cn-hangzhou"),
  accountId: fc.oneof(
    { arbitrary: fc.constant(ACCT), weight: 9 },
    { arbitrary: fc.constant(OTHER), weight: 1 },
  ),
});
const vhost = pick(...VHOSTS);
const name = pick(...NAMES);
const requestResource: fc.Arbitrary<string> = fc.oneof(
  fc.tuple(requestScope, pick(...INSTANCES)).map(([s, i]) => mqInstanceArn(s, i)),
  {
    arbitrary: fc
      .tuple(requestScope, pick(...INSTANCES), pick(...TOPICS))
      .map(([s, i, t]) => mqTopicArn(s, i, t)),
    weight: 4,
  },
  fc
    .tuple(requestScope, pick(...INSTANCES), pick("GID_a", "GID_b"))
    .map(([s, i, g]) => mqGroupIdArn(s, i, g)),
  fc.tuple(requestScope, vhost).map(([s, v]) => amqpVhostArn(s, v)),
  fc.tuple(requestScope, vhost, name).map(([s, v, e]) => amqpExchangeArn(s, v, e)),
  fc.tuple(requestScope, vhost, name).map(([s, v, q]) => amqpQueueArn(s, v, q)),
  fc
    .tuple(requestScope, vhost, name, pick("", "a.b", "x", "k:1"))
    .map(([s, v, e, rk]) => amqpExchangeMessagesArn(s, v, e, rk)),
  fc.tuple(requestScope, vhost, name).map(([s, v, q]) => amqpQueueMessagesArn(s, v, q)),
  fc.tuple(requestScope, vhost).map(([s, v]) => amqpAllQueuesArn(s, v)),
  fc
    .tuple(pick(ACCT, OTHER), pick("user", "group", "policy") as fc.Arbitrary<"user">, pick("alice", "bob"))
    .map(([a, k, n]) => ramArn(a, k, n)),
  pick("not-an-arn", "acs:mq:local", `acs:mq:local:${ACCT}`, ""),
);

// Policy resource patterns.
const patternScope = fc.record({
  region: pick("local", "*", "cn-hangzhou"),
  accountId: pick(ACCT, "*", OTHER),
});
const exactPattern = fc.oneof(
  fc.tuple(patternScope, pick(...INSTANCES, "*")).map(([s, i]) => mqInstanceArn(s, i)),
  fc.tuple(patternScope, pick(...INSTANCES, "*"), pick(...TOPICS)).map(([s, i, t]) => mqTopicArn(s, i, t)),
  fc.tuple(patternScope, vhost).map(([s, v]) => amqpVhostArn(s, v)),
  fc.tuple(patternScope, vhost, name).map(([s, v, e]) => amqpExchangeArn(s, v, e)),
  fc.tuple(patternScope, vhost, name).map(([s, v, q]) => amqpQueueMessagesArn(s, v, q)),
  fc
    .tuple(patternScope, vhost, name, pick("", "a.b", "*"))
    .map(([s, v, e, rk]) => amqpExchangeMessagesArn(s, v, e, rk)),
  fc.tuple(patternScope, vhost).map(([s, v]) => amqpAllQueuesArn(s, v)),
  pick("user", "group").map((k) => `acs:ram:*:${ACCT}:${k}/*`),
);
/** An exact pattern with a slice of its relative id replaced by `*`, or one character by `?`. */
const mutatedPattern = fc
  .tuple(exactPattern, fc.nat(), fc.nat(), pick("*", "?", "*", "**"))
  .map(([p, at, len, w]) => {
    const start = p.split(":", 4).join(":").length + 1; // after the fourth colon
    const rel = p.slice(start);
    const i = at % (rel.length + 1);
    const j = w === "?" ? Math.min(rel.length, i + 1) : Math.min(rel.length, i + (len % 6));
    const out = rel.slice(0, i) + w + rel.slice(j);
    return p.slice(0, start) + out;
  });
/** An exact pattern whose relative id is in another case: resources are case-sensitive (SPEC §3). */
const recasedPattern = exactPattern.chain((p) => {
  const start = p.split(":", 4).join(":").length + 1;
  return anyCase(p.slice(start)).map((rel) => p.slice(0, start) + rel);
});
const legacyMqPattern = fc.oneof(
  fc
    .tuple(patternScope, pick("a", "b", "ab", "a*", "*", "x", "a?"))
    .map(([s, t]) => `acs:mq:${s.region}:${s.accountId}:${t}`),
  fc
    .tuple(patternScope, pick("mqtt-local", "*", "mqtt-?"), pick("a", "a/b", "b", "a/*", "a*"))
    .map(([s, i, t]) => `acs:mq:${s.region}:${s.accountId}:${i}%${t}`),
);
const amqpInstancePattern = fc
  .tuple(
    patternScope,
    pick("amqp-local", "amqp-*", "*", "other", "other-*", "amqp-prod"),
    pick("/vhosts/*", "/vhosts/v1", "/vhosts/v1/*", "/vhosts/%2F/queues/q1", "/vhosts/*/exchanges/*", ""),
  )
  .map(([s, id, rest]) => `acs:amqp:${s.region}:${s.accountId}:/instances/${id}${rest}`);
const resourcePattern: fc.Arbitrary<string> = fc.oneof(
  { arbitrary: pick("*", "acs:mq:*", "acs:amqp:*", `acs:*:*:${ACCT}:*`), weight: 1 },
  { arbitrary: exactPattern, weight: 3 },
  { arbitrary: mutatedPattern, weight: 4 },
  { arbitrary: recasedPattern, weight: 1 },
  { arbitrary: legacyMqPattern, weight: 2 },
  { arbitrary: amqpInstancePattern, weight: 2 },
);

// Conditions: every operator family, over a few keys. Each family has its usual key
// (and context values of its type), but any operator may meet any key and value.
type Scalar = string | number | boolean;
interface Family {
  operators: string[];
  key: string;
  policyValues: Scalar[];
  contextValues: Scalar[];
}
const FAMILIES: Family[] = [
  {
    operators: ["IpAddress", "NotIpAddress"],
    key: "acs:SourceIp",
    policyValues: [
      "10.0.0.0/8",
      "10.1.2.3",
      "192.168.0.0/16",
      "0.0.0.0/0",
      "2001:db8::/32",
      "::1",
      "::ffff:10.0.0.0/104",
    ],
    contextValues: [
      "10.1.2.3",
      "10.200.0.1",
      "192.168.1.1",
      "8.8.8.8",
      "::1",
      "2001:db8::5",
      "2001:DB8:0:0:0:0:0:1",
      "::ffff:10.1.2.3",
      "::ffff:a01:203",
      "fe80::1",
      "not-an-ip",
      "10.1.2",
    ],
  },
  {
    operators: [
      "NumericEquals",
      "NumericNotEquals",
      "NumericLessThan",
      "NumericLessThanEquals",
      "NumericGreaterThan",
      "NumericGreaterThanEquals",
    ],
    key: "mq:Qos",
    policyValues: [0, 1, 2, "2", 2.5, -1, "1.5", " 3"],
    contextValues: [0, 1, 2, 2.5, -1, "2", "1.5", " 3", "abc", ""],
  },
  {
    operators: [
      "DateEquals",
      "DateNotEquals",
      "DateLessThan",
      "DateLessThanEquals",
      "DateGreaterThan",
      "DateGreaterThanEquals",
    ],
    key: "acs:CurrentTime",
    policyValues: [
      "2024-01-01T00:00:00Z",
      "2024-01-01",
      "2024-06-01T12:00:00+08:00",
      "2023-12-31T23:59:59.999Z",
    ],
    contextValues: [
      "2024-01-01T00:00:00Z",
      "2024-03-01",
      "2023-06-15T08:30:00+08:00",
      "2024-06-01T04:00:00Z",
      "2024-02-30T00:00:00Z", // not a real day
      1704067200000,
      1719835200000,
      "not-a-date",
    ],
  },
  {
    operators: ["Bool"],
    key: "acs:SecureTransport",
    policyValues: [true, false, "true", "false"],
    contextValues: [true, false, "true", "false", "yes", 1],
  },
  {
    operators: [
      "StringEquals",
      "StringNotEquals",
      "StringEqualsIgnoreCase",
      "StringNotEqualsIgnoreCase",
      "StringLike",
      "StringNotLike",
    ],
    key: "mq:ClientId",
    policyValues: ["a", "A", "ab", "a*", "*b", "?", "", "1", "true", "GID_x@@@d1", "GID_*@@@*", 1, true],
    contextValues: ["a", "A", "ab", "b", "GID_x@@@d1", "GID_y@@@d2", "x.y", "", 1, true],
  },
];
/** `app:Tier` is a key of no known service: reported as written, never canonicalised. */
const KEYS = [...FAMILIES.map((f) => f.key), "app:Tier"];
const conditionEntry = fc.oneof(
  ...FAMILIES.map((f) => {
    const value = pick(...f.policyValues);
    const values =
      f.operators[0] === "Bool"
        ? fc.oneof(
            value,
            value.map((v) => [v]),
          )
        : fc.oneof(value, fc.array(value, { minLength: 1, maxLength: 3 }));
    const key = fc.oneof(
      { arbitrary: fc.constant(f.key), weight: 3 },
      { arbitrary: pick(...KEYS), weight: 1 },
    );
    return fc.tuple(pick(...f.operators), key.chain(anyCase), values);
  }),
);
const condition = fc.array(conditionEntry, { minLength: 1, maxLength: 3 }).map((entries) => {
  const block: Record<string, Record<string, unknown>> = {};
  for (const [op, key, v] of entries) {
    block[op] ??= {};
    block[op][key] = v;
  }
  return block;
});

/** A raw statement: single strings or arrays, Action or NotAction, Resource or NotResource. */
const rawStatement = fc
  .record({
    effect: pick("Allow", "Allow", "Deny"),
    notAction: fc.nat(9).map((n) => n < 2),
    actions: fc.array(actionPattern, { minLength: 1, maxLength: 3 }),
    notResource: fc.nat(9).map((n) => n < 2),
    resources: fc.array(resourcePattern, { minLength: 1, maxLength: 3 }),
    condition: fc.option(condition, { freq: 2 }),
    sid: fc.option(pick("s1", "DenyAll", "x"), { freq: 3 }),
    bare: fc.boolean(),
  })
  .map((s) => {
    // A single string and a one-element array are equivalent (SPEC §3): write both.
    const one = <T>(xs: T[]): T | T[] => (xs.length === 1 && s.bare ? xs[0]! : xs);
    return {
      ...(s.sid !== null ? { Sid: s.sid } : {}),
      Effect: s.effect,
      [s.notAction ? "NotAction" : "Action"]: one(s.actions),
      [s.notResource ? "NotResource" : "Resource"]: one(s.resources),
      ...(s.condition !== null ? { Condition: s.condition } : {}),
    };
  });

const POLICY_NAMES = ["orders", "Alpha", "beta", "zeta-2", "mq_pub"];

/** Valid documents (the raw form goes through validatePolicy; a rejection is a generator bug). */
const policyDocs = fc.array(
  fc.tuple(fc.array(rawStatement, { minLength: 1, maxLength: 8 }), fc.boolean()).map(([stmts, single]) => {
    const raw = { Version: "1", Statement: single && stmts.length === 1 ? stmts[0] : stmts };
    const r = validatePolicy(raw, { maxDocumentChars: 1_000_000 });
    if (!r.ok) throw new Error(`generator produced an invalid policy: ${JSON.stringify(r.errors)}`);
    return r.document;
  }),
  { minLength: 0, maxLength: 4 },
);
const policies: fc.Arbitrary<RefPolicy[]> = fc
  .tuple(
    policyDocs,
    fc.array(pick<PolicyType>("Custom", "System", "ConsoleGrant"), { minLength: 4, maxLength: 4 }),
    fc.array(pick("v1", "v2", "v3"), { minLength: 4, maxLength: 4 }),
  )
  .map(([docs, types, versions]) =>
    docs.map((document, i) => ({ name: POLICY_NAMES[i]!, type: types[i]!, version: versions[i]!, document })),
  );

// Request contexts, including missing keys, other spellings and multi-valued keys.
const anyScalar = pick(...FAMILIES.flatMap((f) => f.contextValues));
const contextEntry = fc.oneof(
  ...FAMILIES.map((f) => {
    const typed = fc.oneof(
      { arbitrary: pick(...f.contextValues), weight: 4 },
      { arbitrary: anyScalar, weight: 1 },
    );
    const value: fc.Arbitrary<ContextValue> = fc.oneof(
      { arbitrary: typed, weight: 5 },
      { arbitrary: fc.array(typed, { maxLength: 3 }), weight: 1 },
    );
    return fc.tuple(anyCase(f.key), value);
  }),
  fc.tuple(anyCase("app:Tier"), pick<ContextValue>("a", "gold", ["a", "b"])),
);
const context: fc.Arbitrary<RequestContext | undefined> = fc.option(
  fc.array(contextEntry, { maxLength: 6 }).map((entries) => {
    const ctx: Record<string, ContextValue> = {};
    const seen = new Set<string>();
    for (const [k, v] of entries) {
      // One spelling per key, so "exact spelling first" never has to choose.
      if (seen.has(k.toLowerCase())) continue;
      seen.add(k.toLowerCase());
      ctx[k] = v;
    }
    return ctx;
  }),
  { freq: 8, nil: undefined },
);
const request: fc.Arbitrary<AuthzRequest> = fc
  .record({ action: requestAction, resource: requestResource, context })
  .map(({ action, resource, context }) =>
    context === undefined ? { action, resource } : { action, resource, context },
  );

const principal: fc.Arbitrary<Principal> = fc.oneof(
  { arbitrary: fc.constant<Principal>({ accountId: ACCT, kind: "user", name: "alice" }), weight: 6 },
  { arbitrary: fc.constant<Principal>({ accountId: ACCT, kind: "root" }), weight: 1 },
  { arbitrary: fc.constant<Principal>({ accountId: OTHER, kind: "user", name: "mallory" }), weight: 1 },
);

interface Scenario {
  principal: Principal;
  policies: RefPolicy[];
  request: AuthzRequest;
  amqpInstanceId: string | undefined;
}
const scenario: fc.Arbitrary<Scenario> = fc.record({
  principal,
  policies,
  request,
  amqpInstanceId: pick<string | undefined>(undefined, undefined, "amqp-prod"),
});

function compileAll(s: Pick<Scenario, "policies" | "amqpInstanceId">): CompiledPolicy[] {
  const opts = s.amqpInstanceId === undefined ? {} : { amqpInstanceId: s.amqpInstanceId };
  return s.policies.map((p) =>
    compilePolicy(p.document, { name: p.name, type: p.type, version: p.version }, opts),
  );
}

/** The parts of an engine decision the reference computes. */
function observed(d: Decision): RefDecision {
  return {
    decision: d.decision,
    reason: d.reason,
    decidingStatements: d.decidingStatements.map((s) => ({
      policy: s.policy,
      policyType: s.policyType,
      version: s.version,
      statement: s.statement,
      effect: s.effect,
    })),
    missingContextKeys: [...d.missingContextKeys],
  };
}

// ---------------------------------------------------------------------------

describe("engine vs reference evaluator", () => {
  it("(a) evaluatePolicies and PolicySet.decide equal the reference decision", () => {
    fc.assert(
      fc.property(scenario, (s) => {
        const expected = referenceDecide(s.principal, s.policies, s.request, {
          ...(s.amqpInstanceId !== undefined ? { amqpInstanceId: s.amqpInstanceId } : {}),
        });
        const compiled = compileAll(s);
        expect(observed(evaluatePolicies(s.principal, compiled, s.request))).toEqual(expected);
        const set = new PolicySet(s.principal, compiled);
        const { action, resource, context: ctx } = s.request;
        expect(observed(set.decide(action, resource, ctx))).toEqual(expected);
      }),
      { numRuns: 1000 },
    );
  });

  it("(a') the generators produce every kind of decision", () => {
    // Not a property: a guard that the alphabet is small enough for matches to happen.
    const counts = new Map<string, number>();
    for (const s of fc.sample(scenario, { numRuns: 1000, seed: 42 })) {
      const d = referenceDecide(s.principal, s.policies, s.request);
      const k = `${d.decision}/${d.reason}`;
      counts.set(k, (counts.get(k) ?? 0) + 1);
    }
    for (const k of ["Allow/statement", "ExplicitDeny/statement", "ImplicitDeny/no-match", "Allow/root"]) {
      expect(counts.get(k) ?? 0, k).toBeGreaterThanOrEqual(30);
    }
  });
});

describe("metamorphic properties", () => {
  /** A new statement order for a policy of `n` statements: a shuffle of 0..n-1 plus up to 3 duplicates. */
  const layout = (n: number): fc.Arbitrary<number[]> =>
    fc.array(fc.nat(n - 1), { maxLength: 3 }).chain((dups) => {
      const all = [...Array.from({ length: n }, (_, i) => i), ...dups];
      return fc.shuffledSubarray(all, { minLength: all.length, maxLength: all.length });
    });
  const shuffled = scenario.chain((s) =>
    fc.record({
      s: fc.constant(s),
      layouts: fc.tuple(...s.policies.map((p) => layout(p.document.Statement.length))),
      order: fc.shuffledSubarray(
        s.policies.map((_, i) => i),
        { minLength: s.policies.length, maxLength: s.policies.length },
      ),
      // Policies attached a second time (to the user and to one of its groups).
      again: fc.array(fc.nat(), { maxLength: s.policies.length === 0 ? 0 : 2 }),
    }),
  );

  it("(b) shuffling statements and policies, duplicating statements and attaching a policy twice never changes the decision", () => {
    fc.assert(
      fc.property(shuffled, ({ s, layouts, order, again }) => {
        const before = evaluatePolicies(s.principal, compileAll(s), s.request);
        const moved: RefPolicy[] = order.map((pi) => {
          const p = s.policies[pi]!;
          const stmts = layouts[pi]!.map((i) => p.document.Statement[i]!);
          return { ...p, document: { Version: "1", Statement: stmts } };
        });
        const attached = [...moved, ...again.map((i) => moved[i % moved.length]!)];
        const after = evaluatePolicies(s.principal, compileAll({ ...s, policies: attached }), s.request);
        expect(after.decision).toBe(before.decision);
        expect(after.reason).toBe(before.reason);
        expect(after.missingContextKeys).toEqual(before.missingContextKeys);
        // Same policies decide…
        const pv = (d: Decision) =>
          [...new Set(d.decidingStatements.map((x) => `${x.policy}@${x.version}`))].sort();
        expect(pv(after)).toEqual(pv(before));
        // …and exactly the new positions of the statements that decided before (a duplicate
        // of a deciding statement decides too).
        const deciding = new Set(before.decidingStatements.map((x) => `${x.policy}#${x.statement}`));
        const expected = s.policies
          .flatMap((p, pi) =>
            layouts[pi]!.flatMap((orig, at) =>
              deciding.has(`${p.name}#${orig}`) ? [`${p.name}#${at}`] : [],
            ),
          )
          .sort();
        expect(after.decidingStatements.map((x) => `${x.policy}#${x.statement}`).sort()).toEqual(expected);
      }),
      { numRuns: 500 },
    );
  });

  it("(c) decide, twice and after clearCache, equals evaluate (and evaluatePolicies)", () => {
    const session = fc.record({
      principal,
      policies,
      amqpInstanceId: pick<string | undefined>(undefined, "amqp-prod"),
      requests: fc.array(request, { minLength: 1, maxLength: 4 }),
      // Same action and resource asked again with another context, to catch a cache keyed too coarsely.
      contexts: fc.array(context, { minLength: 1, maxLength: 3 }),
      sequence: fc.array(fc.tuple(fc.nat(), fc.nat()), { minLength: 1, maxLength: 12 }),
      cacheSize: pick<number | undefined>(undefined, 1, 2, 3, 10_000),
    });
    fc.assert(
      fc.property(session, (t) => {
        const compiled = compileAll(t);
        const set = new PolicySet(
          t.principal,
          compiled,
          t.cacheSize === undefined ? {} : { cacheSize: t.cacheSize },
        );
        const asks = t.sequence.map(([r, c]) => {
          const base = t.requests[r % t.requests.length]!;
          const ctx = c % 2 === 0 ? base.context : t.contexts[c % t.contexts.length]!;
          return { action: base.action, resource: base.resource, context: ctx };
        });
        const check = () => {
          for (const q of asks) {
            const e = set.evaluate(q);
            const first = set.decide(q.action, q.resource, q.context);
            const second = set.decide(q.action, q.resource, q.context);
            expect(first).toEqual(e);
            expect(second).toEqual(e);
            expect(evaluatePolicies(t.principal, compiled, q)).toEqual(e);
          }
        };
        check();
        set.clearCache();
        expect(set.cachedDecisions).toBe(0);
        check();
      }),
      { numRuns: 300 },
    );
  });
});

describe("wildcard matcher vs reference DP", () => {
  const ALPHABET = ["a", "b", ":", "/", "*", "?"];
  const str = (max: number) => fc.string({ unit: pick(...ALPHABET), maxLength: max });

  it("(d) compileWildcard(p)(s) equals the DP for random p and s", () => {
    fc.assert(
      fc.property(str(10), str(14), (p, s) => {
        expect(compileWildcard(p)(s)).toBe(refGlob(p, s));
      }),
      { numRuns: 1000 },
    );
  });

  it("(d') compileWildcard(p)(s) equals the DP when p is s with slices replaced by wildcards", () => {
    const nearMiss = fc
      .tuple(
        str(16),
        fc.array(fc.tuple(fc.nat(), fc.nat(3), pick("*", "?", "**", "*?", "a")), { maxLength: 4 }),
      )
      .map(([s, edits]) => {
        let p = s;
        for (const [at, len, w] of edits) {
          const i = at % (p.length + 1);
          p = p.slice(0, i) + w + p.slice(Math.min(p.length, i + len));
        }
        return [p, s] as const;
      });
    fc.assert(
      fc.property(nearMiss, ([p, s]) => {
        expect(compileWildcard(p)(s)).toBe(refGlob(p, s));
      }),
      { numRuns: 1000 },
    );
  });
});

describe("decision cache under many contexts and actions", () => {
  // Statements that match every resource, always with conditions, none on
  // acs:CurrentTime (a set with one is never cached): every cached (action,
  // resource) then depends on context keys, and many contexts make the cache's
  // per-resource lists grow and split.
  const untimed = condition.filter(
    (block) =>
      !Object.values(block).some((keys) =>
        Object.keys(keys).some((k) => k.toLowerCase() === "acs:currenttime"),
      ),
  );
  const conditioned = fc
    .record({
      effect: pick("Allow", "Allow", "Deny"),
      action: pick("mq:PUB", "mq:*", "*", "MQ:sub"),
      condition: untimed,
    })
    .map((s) => ({ Effect: s.effect, Action: s.action, Resource: "*", Condition: s.condition }));
  const conditionedPolicies: fc.Arbitrary<RefPolicy[]> = fc
    .array(fc.array(conditioned, { minLength: 1, maxLength: 5 }), { minLength: 1, maxLength: 3 })
    .map((docs) =>
      docs.map((stmts, i) => {
        const r = validatePolicy({ Version: "1", Statement: stmts }, { maxDocumentChars: 1_000_000 });
        if (!r.ok) throw new Error(`generator produced an invalid policy: ${JSON.stringify(r.errors)}`);
        return { name: POLICY_NAMES[i]!, type: "Custom" as PolicyType, version: "v1", document: r.document };
      }),
    );

  it("(e) decide equals evaluate when one resource is asked about with many contexts and actions", () => {
    const session = fc.record({
      principal,
      policies: fc.oneof({ arbitrary: conditionedPolicies, weight: 3 }, { arbitrary: policies, weight: 1 }),
      amqpInstanceId: pick<string | undefined>(undefined, "amqp-prod"),
      resources: fc.array(requestResource, { minLength: 1, maxLength: 2 }),
      actions: fc.array(requestAction, { minLength: 1, maxLength: 3 }),
      contexts: fc.array(context, { minLength: 10, maxLength: 40 }),
      // A second pass in random order, after the first has filled (and maybe cleared) the cache.
      again: fc.array(fc.tuple(fc.nat(), fc.nat(), fc.nat()), { minLength: 20, maxLength: 80 }),
      cacheSize: pick<number | undefined>(undefined, 7, 25, 10_000),
    });
    fc.assert(
      fc.property(session, (t) => {
        const compiled = compileAll(t);
        const set = new PolicySet(
          t.principal,
          compiled,
          t.cacheSize === undefined ? {} : { cacheSize: t.cacheSize },
        );
        const ask = (action: string, resource: string, context: RequestContext | undefined) => {
          const e = set.evaluate(
            context === undefined ? { action, resource } : { action, resource, context },
          );
          expect(set.decide(action, resource, context)).toEqual(e);
        };
        for (const c of t.contexts) for (const a of t.actions) for (const r of t.resources) ask(a, r, c);
        for (const [a, r, c] of t.again)
          ask(
            t.actions[a % t.actions.length]!,
            t.resources[r % t.resources.length]!,
            t.contexts[c % t.contexts.length],
          );
      }),
      { numRuns: 200 },
    );
  });
});
