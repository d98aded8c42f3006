import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  type CompiledPolicy,
  compilePolicySource,
  statementMatchesAction,
  statementMatchesResource,
} from "./compile.ts";
import { evalCondition } from "./conditions.ts";
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
