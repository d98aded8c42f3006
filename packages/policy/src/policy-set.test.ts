import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  type CompiledPolicy,
  compilePolicySource,
  statementMatchesAction,
  statementMatchesResource,
} from "./compile.ts";
import { evalCondition } from "./conditions.ts";
import { evaluatePolicies } from "./evaluate.ts";
import { PolicySet } from "./policy-set.ts";
import type { AuthzRequest, Principal } from "./types.ts";

const acct = "1234567890123456";
const user: Principal = { accountId: acct, kind: "user", name: "u" };

/** Scan every statement with no index and no cache: what the indexed set must agree with. */
function scan(policies: readonly CompiledPolicy[], r: AuthzRequest): string {
  let allow = false;
  for (const p of policies)
    for (const st of p.statements) {
      if (!statementMatchesAction(st, r.action.toLowerCase()) || !statementMatchesResource(st, r.resource))
        continue;
      if (!st.conditions.every((c) => evalCondition(c, r.context, null))) continue;
      if (st.deny) return "ExplicitDeny";
      allow = true;
    }
  return allow ? "Allow" : "ImplicitDeny";
}

const seg = fc.constantFrom("a", "b", "ab", "a:b", "dev", "x");
const topicPattern = fc
  .array(fc.oneof(seg, fc.constantFrom("*", "?", "a*", "*b", "+", "#")), { minLength: 1, maxLength: 4 })
  .map((s) => s.join("/"));
const resourcePattern = fc.oneof(
  topicPattern.map((t) => `acs:mq:*:${acct}:topic/inst/${t}`),
  topicPattern.map((t) => `acs:mq:local:*:topic/*/${t}`),
  topicPattern.map((t) => `acs:mq:*:*:${t.replaceAll("/", "")}`), // legacy form
  fc.constantFrom("*", "acs:mq:*", `acs:*:*:${acct}:topic/inst/a*`, "acs:mq:*:*:topic/inst/a:b/*"),
);
const statement = fc.record({
  Effect: fc.constantFrom("Allow", "Allow", "Allow", "Deny"),
  Action: fc.constantFrom(["mq:PUB"], ["mq:SUB"], ["mq:*"], ["MQ:pub", "mq:SUB"], ["*"]),
  Resource: fc.array(resourcePattern, { minLength: 1, maxLength: 3 }),
});
const requestTopic = fc.array(seg, { minLength: 1, maxLength: 5 }).map((s) => s.join("/"));

describe("PolicySet index", () => {
  it("finds exactly the statements a full scan finds, for sets large enough to be indexed", () => {
    fc.assert(
      fc.property(
        fc.array(statement, { minLength: 10, maxLength: 60 }),
        fc.array(fc.tuple(fc.constantFrom("mq:PUB", "mq:sub", "mq:Other"), requestTopic), {
          minLength: 1,
          maxLength: 20,
        }),
        (stmts, reqs) => {
          const policies = [
            compilePolicySource(
              { Version: "1", Statement: stmts },
              { name: "p", type: "Custom", version: "v1" },
            ),
          ];
          const set = new PolicySet(user, policies);
          for (const [action, topic] of reqs) {
            const r = { action, resource: `acs:mq:local:${acct}:topic/inst/${topic}` };
            const want = scan(policies, r);
            expect(set.evaluate(r).decision).toBe(want);
            expect(set.decide(r.action, r.resource).decision).toBe(want);
            expect(set.decide(r.action, r.resource).decision).toBe(want);
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe("PolicySet cache", () => {
  const p = compilePolicySource(
    {
      Version: "1",
      Statement: [
        {
          Effect: "Allow",
          Action: "mq:PUB",
          Resource: "*",
          Condition: { NumericLessThanEquals: { "mq:Qos": 1 } },
        },
        {
          Effect: "Deny",
          Action: "mq:PUB",
          Resource: "*",
          Condition: { StringEquals: { "mq:ClientId": ["bad", "1"] } },
        },
      ],
    },
    { name: "p", type: "Custom", version: "v1" },
  );
  const res = `acs:mq:local:${acct}:topic/inst/t`;

  it("keys decisions by the context values the policies reference", () => {
    const set = new PolicySet(user, [p]);
    expect(set.decide("mq:PUB", res, { "mq:Qos": 0 }).decision).toBe("Allow");
    expect(set.decide("mq:PUB", res, { "mq:Qos": 2 }).decision).toBe("ImplicitDeny");
    expect(set.decide("mq:PUB", res, { "mq:Qos": 0, "mq:ClientId": "bad" }).decision).toBe("ExplicitDeny");
    expect(set.decide("mq:PUB", res, { "mq:Qos": 0, "mq:ClientId": "good" }).decision).toBe("Allow");
    expect(set.decide("mq:PUB", res, { "mq:Qos": 0, "mq:ClientId": 1 }).decision).toBe("ExplicitDeny");
    expect(set.decide("mq:PUB", res, { "mq:Qos": 0, "mq:ClientId": ["x", "bad"] }).decision).toBe(
      "ExplicitDeny",
    );
    expect(set.decide("mq:PUB", res, { "mq:Qos": 0, "mq:ClientId": "\u0000x\u0001bad" }).decision).toBe(
      "Allow",
    );
    expect(set.decide("mq:PUB", res, {}).decision).toBe("ImplicitDeny");
  });

  it("returns the same frozen object on a hit and stays within its size bound", () => {
    const set = new PolicySet(user, [p], { cacheSize: 3 });
    const a = set.decide("mq:PUB", res, { "mq:Qos": 0 });
    expect(set.decide("mq:PUB", res, { "mq:Qos": 0 })).toBe(a);
    expect(Object.isFrozen(a)).toBe(true);
    for (let q = 0; q < 10; q++) set.decide("mq:PUB", res, { "mq:Qos": q });
    expect(set.cachedDecisions).toBeLessThanOrEqual(3);
  });

  it("never caches decisions that depend on acs:CurrentTime", () => {
    const timed = compilePolicySource(
      {
        Version: "1",
        Statement: [
          {
            Effect: "Allow",
            Action: "mq:PUB",
            Resource: "*",
            Condition: { DateLessThan: { "acs:CurrentTime": "2026-01-01T00:00:00Z" } },
          },
        ],
      },
      { name: "t", type: "Custom", version: "v1" },
    );
    const set = new PolicySet(user, [timed]);
    expect(set.cacheable).toBe(false);
    expect(set.decide("mq:PUB", res, { "acs:CurrentTime": "2025-12-31T23:59:59Z" }).decision).toBe("Allow");
    expect(set.decide("mq:PUB", res, { "acs:CurrentTime": "2026-01-01T00:00:01Z" }).decision).toBe(
      "ImplicitDeny",
    );
    expect(set.cachedDecisions).toBe(0);
  });
});

describe("PolicySet cache: many contexts, actions and keys", () => {
  const res = `acs:mq:local:${acct}:topic/inst/t`;
  const compile = (statements: unknown[]) =>
    compilePolicySource(
      { Version: "1", Statement: statements },
      { name: "p", type: "Custom", version: "v1" },
    );
  const ipAndQos = compile([
    {
      Effect: "Allow",
      Action: "mq:*",
      Resource: "*",
      Condition: { IpAddress: { "acs:SourceIp": "10.0.0.0/8" }, NumericLessThanEquals: { "mq:Qos": 1 } },
    },
    {
      Effect: "Deny",
      Action: "mq:PUB",
      Resource: "*",
      Condition: { StringLike: { "mq:ClientId": "bad*" } },
    },
  ]);
  /** Decide every request twice: each equals evaluate, and the second answer is the cached object. */
  const twice = (set: PolicySet, reqs: readonly AuthzRequest[]) => {
    const first = reqs.map((r) => set.decide(r.action, r.resource, r.context));
    reqs.forEach((r, i) => {
      expect(first[i]).toEqual(set.evaluate(r));
      expect(set.decide(r.action, r.resource, r.context)).toBe(first[i]);
    });
  };

  it("keeps every context of one (action, resource), so a repeat is a hit (no list cap)", () => {
    // 60 contexts of one pair: more than a list holds before it splits (and than the old cap of 8).
    const reqs = Array.from({ length: 60 }, (_, i) => ({
      action: "mq:PUB",
      resource: res,
      context: { "acs:SourceIp": `10.0.${i}.1`, "mq:Qos": i % 3, "mq:ClientId": i % 7 === 0 ? "bad" : "ok" },
    }));
    const set = new PolicySet(user, [ipAndQos]);
    twice(set, reqs);
    expect(set.cachedDecisions).toBe(60);
    expect(new Set(reqs.map((r) => set.decide(r.action, r.resource, r.context).decision))).toEqual(
      new Set(["Allow", "ImplicitDeny", "ExplicitDeny"]),
    );
  });

  it("splits again when the entries of one value outgrow a list", () => {
    // First 12 differ in the address (split by address), then 30 share one address and differ in Qos and ClientId.
    const reqs: AuthzRequest[] = [];
    for (let i = 0; i < 12; i++)
      reqs.push({ action: "mq:PUB", resource: res, context: { "acs:SourceIp": `10.9.9.${i}`, "mq:Qos": 0 } });
    for (let i = 0; i < 30; i++)
      reqs.push({
        action: "mq:PUB",
        resource: res,
        context: { "acs:SourceIp": "10.9.9.0", "mq:Qos": i, "mq:ClientId": `c${i % 10}` },
      });
    const set = new PolicySet(user, [ipAndQos]);
    twice(set, reqs);
    // The first 9 split the node by address; the 31 entries under 10.9.9.0 split that bucket again (by ClientId).
    expect(set.cachedDecisions).toBe(42);
  });

  it("keys a node by every key its statements reference, beyond four", () => {
    const six = compile([
      {
        Effect: "Allow",
        Action: "mq:PUB",
        Resource: "*",
        Condition: {
          StringEquals: { "mq:ClientId": "c", "app:A": "a", "app:B": "b", "app:C": "c" },
          Bool: { "acs:SecureTransport": true },
          NumericEquals: { "mq:Qos": 0 },
        },
      },
    ]);
    const base = {
      "mq:ClientId": "c",
      "app:A": "a",
      "app:B": "b",
      "app:C": "c",
      "acs:SecureTransport": true,
    };
    const reqs: AuthzRequest[] = [
      { action: "mq:PUB", resource: res, context: { ...base, "mq:Qos": 0 } },
      { action: "mq:PUB", resource: res, context: { ...base, "mq:Qos": 1 } },
      { action: "mq:PUB", resource: res, context: { ...base, "acs:SecureTransport": false, "mq:Qos": 0 } },
      { action: "mq:PUB", resource: res, context: { ...base } },
      ...Array.from({ length: 12 }, (_, i) => ({
        action: "mq:PUB",
        resource: res,
        context: { ...base, "mq:Qos": i % 2, "app:C": i < 6 ? "c" : `x${i}` },
      })),
    ];
    const set = new PolicySet(user, [six]);
    twice(set, reqs);
    expect(reqs.map((r) => set.decide(r.action, r.resource, r.context).decision).slice(0, 4)).toEqual([
      "Allow",
      "ImplicitDeny",
      "ImplicitDeny",
      "ImplicitDeny",
    ]);
  });

  it("holds one resource under many actions, each with its own decision, and caps them", () => {
    // Actions match case-insensitively, but a decision carries the action as asked: every spelling is its own entry.
    const spellings = Array.from(
      { length: 40 },
      (_, i) =>
        `mq:${[..."mqttinstanceaccess"].map((c, j) => ((i >> j) & 1 ? c.toUpperCase() : c)).join("")}`,
    );
    expect(new Set(spellings).size).toBe(40);
    const reqs = [...spellings, "mq:SUB", "mq:PUB"].map((action) => ({
      action,
      resource: res,
      context: { "acs:SourceIp": "10.1.1.1", "mq:Qos": 0 },
    }));
    const set = new PolicySet(user, [ipAndQos]);
    const first = reqs.map((r) => set.decide(r.action, r.resource, r.context));
    reqs.forEach((r, i) => {
      const d = set.decide(r.action, r.resource, r.context);
      expect(d).toEqual(set.evaluate(r));
      expect(d.action).toBe(r.action);
      // The first 32 actions of the resource are cached; later ones are decided afresh, with the same result.
      if (i < 32) expect(d).toBe(first[i]);
    });
    expect(set.cachedDecisions).toBe(32);
  });

  it("caches a pair whose statements reference no key once, whatever the context", () => {
    const plain = compile([{ Effect: "Allow", Action: "mq:SUB", Resource: "*" }]);
    const set = new PolicySet(user, [plain]);
    const a = set.decide("mq:SUB", res, { "mq:Qos": 0 });
    expect(set.decide("mq:SUB", res, { "acs:SourceIp": "1.2.3.4" })).toBe(a);
    expect(set.decide("mq:SUB", res)).toBe(a);
    expect(set.decide("mq:PUB", res)).toMatchObject({ decision: "ImplicitDeny", action: "mq:PUB" });
    expect(set.cachedDecisions).toBe(2);
  });

  it("compares NaN and -0 as Map keys do, with the decisions evaluate gives", () => {
    const set = new PolicySet(user, [ipAndQos]);
    const reqs = [Number.NaN, -0, 0, 1, Number.NaN, -0].map((q) => ({
      action: "mq:PUB",
      resource: res,
      context: { "acs:SourceIp": "10.1.1.1", "mq:Qos": q },
    }));
    for (const r of reqs) expect(set.decide(r.action, r.resource, r.context)).toEqual(set.evaluate(r));
    // NaN, -0 (one entry with 0) and 1: repeats are hits.
    expect(set.cachedDecisions).toBe(3);
  });

  it("decides multi-valued and object values correctly without caching them", () => {
    const set = new PolicySet(user, [ipAndQos]);
    const multi = { "acs:SourceIp": ["8.8.8.8", "10.1.1.1"], "mq:Qos": 0 };
    expect(set.decide("mq:PUB", res, multi)).toEqual(
      set.evaluate({ action: "mq:PUB", resource: res, context: multi }),
    );
    expect(set.decide("mq:PUB", res, multi).decision).toBe("Allow");
    expect(set.cachedDecisions).toBe(0);
    // Cached first with a plain value, then asked with an array: a miss, decided afresh.
    set.decide("mq:PUB", res, { "acs:SourceIp": "8.8.8.8", "mq:Qos": 0 });
    expect(set.decide("mq:PUB", res, multi).decision).toBe("Allow");
    expect(set.cachedDecisions).toBe(1);
  });

  it("caches any resource string, including ones that look like property names or indexes", () => {
    const any = compile([{ Effect: "Allow", Action: "mq:PUB", Resource: "*" }]);
    const set = new PolicySet(user, [any]);
    const odd = [
      "__proto__",
      "constructor",
      "toString",
      "hasOwnProperty",
      "0",
      "4294967295",
      "-1",
      "",
      "1e3",
    ];
    for (const resource of [...odd, res, ...odd]) {
      const d = set.decide("mq:PUB", resource);
      expect(d).toEqual(set.evaluate({ action: "mq:PUB", resource }));
      expect(set.decide("mq:PUB", resource)).toBe(d);
    }
    expect(set.decide("mq:PUB", res).decision).toBe("Allow");
    expect(set.decide("mq:PUB", "__proto__")).toMatchObject({
      decision: "ImplicitDeny",
      resource: "__proto__",
    });
    expect(set.cachedDecisions).toBe(odd.length + 1);
    expect(({} as Record<string, unknown>).decision).toBeUndefined();
  });

  it("stays within its size bound while lists split", () => {
    const set = new PolicySet(user, [ipAndQos], { cacheSize: 5 });
    for (let i = 0; i < 50; i++) {
      const r = { action: "mq:PUB", resource: res, context: { "acs:SourceIp": `10.2.${i}.1`, "mq:Qos": 0 } };
      expect(set.decide(r.action, r.resource, r.context)).toEqual(set.evaluate(r));
      expect(set.cachedDecisions).toBeLessThanOrEqual(5);
    }
  });
});

describe("context keys are case-insensitive at every entry point (SPEC §3)", () => {
  const res = `acs:mq:local:${acct}:topic/inst/t`;
  const p = compilePolicySource(
    {
      Version: "1",
      Statement: [
        {
          Effect: "Allow",
          Action: "mq:PUB",
          Resource: "*",
          Condition: { NumericLessThanEquals: { "mq:Qos": 1 } },
        },
        {
          Effect: "Deny",
          Action: "mq:PUB",
          Resource: "*",
          Condition: { StringEquals: { "mq:ClientId": "bad" } },
        },
      ],
    },
    { name: "p", type: "Custom", version: "v1" },
  );
  const spellings = ["mq:Qos", "mq:qos", "MQ:QOS", "Mq:QoS"];

  it("evaluate, decide (miss and hit) and evaluatePolicies read any spelling of a key", () => {
    for (const k of spellings) {
      const set = new PolicySet(user, [p]);
      for (const [qos, want] of [
        [0, "Allow"],
        [2, "ImplicitDeny"],
      ] as const) {
        const ctx = { [k]: qos };
        const r = { action: "mq:PUB", resource: res, context: ctx };
        expect(set.evaluate(r).decision).toBe(want);
        expect(evaluatePolicies(user, [p], r).decision).toBe(want);
        expect(set.decide("mq:PUB", res, ctx).decision).toBe(want); // miss
        expect(set.decide("mq:PUB", res, { [k]: qos }).decision).toBe(want); // hit, another object
        expect(set.evaluate(r).missingContextKeys).toEqual(["mq:ClientId"]);
      }
    }
  });

  it("a hit made with one spelling serves the others, and an absent key is not mistaken for a present one", () => {
    const set = new PolicySet(user, [p]);
    const canonical = set.decide("mq:PUB", res, { "mq:Qos": 0, "mq:ClientId": "ok" });
    expect(canonical.decision).toBe("Allow");
    expect(set.decide("mq:PUB", res, { "MQ:QOS": 0, "mq:clientid": "ok" })).toBe(canonical);
    // Absent in canonical spelling but present in another: must not hit the "missing" entry.
    const missing = set.decide("mq:PUB", res, { "mq:Qos": 0 });
    expect(missing.missingContextKeys).toEqual(["mq:ClientId"]);
    expect(set.decide("mq:PUB", res, { "mq:Qos": 0, "MQ:CLIENTID": "bad" }).decision).toBe("ExplicitDeny");
    expect(set.decide("mq:PUB", res, { "mq:Qos": 0, "MQ:CLIENTID": "ok" })).toBe(canonical);
  });
});
