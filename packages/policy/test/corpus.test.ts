/**
 * The decision corpus (like Cedar's): hand-reasoned cases in `corpus/*.json`,
 * one file per topic, each an array of cases. Every case is decided three ways —
 * `evaluatePolicies` (one-shot, uncached) and `PolicySet.decide` twice (the
 * second answer comes from the cache when the set is cacheable) — and all three
 * must equal the expectation. `corpus/invalid.json` holds documents that
 * validation must reject (or accept with warnings). The format is described in
 * `corpus/README.md`.
 */
import { readdirSync, readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import {
  type CompiledPolicy,
  compilePolicySource,
  compileSystemPolicy,
  type Decision,
  evaluatePolicies,
  type PolicyIssue,
  type PolicyLimits,
  PolicySet,
  type Principal,
  parsePolicy,
  type RequestContext,
  type ValidationResult,
  validatePolicy,
} from "../src/mod.ts";

/** A custom (or hand-written system-typed) policy version given inline. */
interface InlinePolicy {
  name: string;
  type: "Custom" | "System";
  version: string;
  document: unknown;
}

/** A built-in system policy attached by name. */
interface SystemRef {
  system: string;
}

interface ExpectedStatement {
  policy: string;
  version: string;
  statement: number;
}

/** One decision case (see corpus/README.md). */
interface DecisionCase {
  name: string;
  policies: (InlinePolicy | SystemRef)[];
  principal?: Principal;
  request: { action: string; resource: string; context?: RequestContext };
  expected: {
    decision: Decision["decision"];
    decidingStatements: ExpectedStatement[];
    missingContextKeys?: string[];
    reason?: Decision["reason"];
  };
}

/** One validation case of invalid.json. */
interface InvalidCase {
  name: string;
  /** The document as a JSON value (checked with validatePolicy)… */
  document?: unknown;
  /** …or as JSON text (checked with parsePolicy). */
  text?: string;
  limits?: PolicyLimits;
  errors: { path: string; code: string }[];
  warnings?: { path: string; code: string }[];
}

const CORPUS_DIR = new URL("./corpus/", import.meta.url);
const DEFAULT_PRINCIPAL: Principal = { accountId: "1234567890123456", kind: "user", name: "alice" };
const MIN_CASES = 150;

/**
 * Statements that can never match a corpus request (service `zz` appears in no
 * request), numerous enough that every action group of a set holding them is
 * resource-indexed. Each case is decided again with them added, so the index
 * must give the answers a plain scan gives.
 */
const PADDING: CompiledPolicy = compilePolicySource(
  {
    Version: "1",
    Statement: Array.from({ length: 24 }, (_, i) => ({
      Effect: i % 2 === 0 ? "Allow" : "Deny",
      Action: "*",
      Resource: i % 3 === 0 ? `acs:zz:local:1234567890123456:pad/${i}` : `acs:zz:*:*:pad/${i}/*`,
    })),
  },
  { name: "zz-padding", type: "Custom", version: "v1" },
);

function load<T>(file: string): T[] {
  const value: unknown = JSON.parse(readFileSync(new URL(file, CORPUS_DIR), "utf8"));
  if (!Array.isArray(value)) throw new Error(`${file}: a corpus file must be a JSON array of cases`);
  return value as T[];
}

const decisionFiles = readdirSync(CORPUS_DIR)
  .filter((f) => f.endsWith(".json") && f !== "invalid.json")
  .sort();
const corpus = decisionFiles.map((file) => ({ file, cases: load<DecisionCase>(file) }));

function compileAll(c: DecisionCase): CompiledPolicy[] {
  return c.policies.map((p) => {
    if ("system" in p) {
      const sp = compileSystemPolicy(p.system);
      if (!sp) throw new Error(`unknown system policy \`${p.system}\``);
      return sp;
    }
    return compilePolicySource(p.document, { name: p.name, type: p.type, version: p.version });
  });
}

/** The parts of a decision a case states, in the case's own shape. */
function observed(d: Decision, c: DecisionCase) {
  return {
    decision: d.decision,
    decidingStatements: d.decidingStatements.map((s) => ({
      policy: s.policy,
      version: s.version,
      statement: s.statement,
    })),
    ...(c.expected.missingContextKeys !== undefined ? { missingContextKeys: [...d.missingContextKeys] } : {}),
    ...(c.expected.reason !== undefined ? { reason: d.reason } : {}),
  };
}

function checkDecision(d: Decision, c: DecisionCase): void {
  expect(observed(d, c)).toEqual(c.expected);
  expect(d.action).toBe(c.request.action);
  expect(d.resource).toBe(c.request.resource);
  // SPEC §3: a denial carries a human sentence naming the action and the resource.
  if (d.decision !== "Allow") {
    expect(d.message).toContain(c.request.action);
    expect(d.message).toContain(c.request.resource);
  }
}

describe("decision corpus", () => {
  it(`has at least ${MIN_CASES} cases with unique names`, () => {
    const names = corpus.flatMap((f) => f.cases.map((c) => c.name));
    expect(names.length).toBeGreaterThanOrEqual(MIN_CASES);
    const dups = names.filter((n, i) => names.indexOf(n) !== i);
    expect(dups).toEqual([]);
  });

  for (const { file, cases } of corpus) {
    describe(file, () => {
      for (const c of cases) {
        it(c.name, () => {
          const policies = compileAll(c);
          const principal = c.principal ?? DEFAULT_PRINCIPAL;
          const { action, resource, context } = c.request;

          checkDecision(evaluatePolicies(principal, policies, c.request), c);

          const set = new PolicySet(principal, policies);
          const first = set.decide(action, resource, context);
          checkDecision(first, c);
          const second = set.decide(action, resource, context);
          checkDecision(second, c);
          expect(second).toEqual(first);

          const padded = new PolicySet(principal, [...policies, PADDING]);
          checkDecision(padded.evaluate(c.request), c);
          checkDecision(padded.decide(action, resource, context), c);
        });
      }
    });
  }
});

/** Issues as `{ path, code }`, sorted, so emission order does not matter. */
function issues(list: readonly Pick<PolicyIssue, "path" | "code">[]): { path: string; code: string }[] {
  return list
    .map(({ path, code }) => ({ path, code }))
    .sort((a, b) => (a.path + a.code < b.path + b.code ? -1 : a.path + a.code > b.path + b.code ? 1 : 0));
}

describe("validation corpus (invalid.json)", () => {
  const cases = load<InvalidCase>("invalid.json");

  it("has unique names", () => {
    const names = cases.map((c) => c.name);
    expect(new Set(names).size).toBe(names.length);
  });

  for (const c of cases) {
    it(c.name, () => {
      const r: ValidationResult =
        c.text !== undefined ? parsePolicy(c.text, c.limits) : validatePolicy(c.document, c.limits);
      expect(issues(r.ok ? [] : r.errors)).toEqual(issues(c.errors));
      expect(r.ok).toBe(c.errors.length === 0);
      if (c.warnings !== undefined) expect(issues(r.warnings)).toEqual(issues(c.warnings));
      if (!r.ok) for (const e of r.errors) expect(e.message.length).toBeGreaterThan(0);
    });
  }
});
