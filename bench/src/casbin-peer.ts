/**
 * The casbin peer of the policy benchmark: the same policies as an equivalent
 * casbin model, judged by casbin's own matcher evaluation (`enforceSync`).
 *
 * Model: request `(sub, obj, act, ctx)`, policy lines `(sub, obj, act, eft, cond)`,
 * casbin's deny-override effect and the matcher
 * `r.sub == p.sub && keyMatch(r.act, p.act) && regexMatch(r.obj, p.obj) && eval(p.cond)`.
 *
 * Translation of one RAM statement: one policy line per (action, resource) pair
 * (RAM ORs them). Actions are lower-cased on both sides (RAM actions are
 * case-insensitive); `keyMatch` is exact for the patterns allowed here (no `?`,
 * at most one `*`, at the end). Resources are the canonical patterns after the
 * SPEC §4 normalisation (the engine's `normalizeResourcePattern`), each turned
 * into an anchored regular expression once at load time (`*` → `.*`, `?` → `.`,
 * everything else escaped), because no casbin built-in has RAM's whole-string
 * glob (keyMatch only handles a trailing `*`, globMatch stops `*` at `/`).
 * Conditions become a casbin ABAC expression (`eval(p.cond)`, values ORed,
 * operators and keys ANDed) over `r.ctx`, a plain object built from the request
 * context once per request before the timed loop:
 *   IpAddress / NotIpAddress on `acs:SourceIp` → `ipMatch` (guarded: a missing
 *   address is `""`; a negated operator with a missing key is true);
 *   StringLike / StringEquals on `mq:ClientId` → `keyMatch` / `==`;
 *   Numeric(LessThan|LessThanEquals|GreaterThan|GreaterThanEquals|Equals) on `mq:Qos` → the JS comparison;
 *   Bool on `acs:SecureTransport` → `== true|false`.
 * Anything else (NotAction, NotResource, other keys or operators, `?` or inner
 * `*` in an action, multi-valued context keys) is refused with an error, so the
 * comparison only runs on workloads casbin can express exactly. casbin answers
 * allow/deny only: the benchmark checks that it agrees with the engine's
 * Allow vs not-Allow on every request it evaluated.
 *
 * `CASBIN_MODEL_NO_CONDITIONS` is the same model without `eval(p.cond)` (lines
 * without conditions). It is NOT equivalent (conditions are dropped); the
 * benchmark times it only as a lower bound of casbin's cost, since casbin's
 * `eval()` rewrites and looks up the matcher for every policy line.
 */
import {
  type AuthzRequest,
  type ConditionValue,
  normalizeResourcePattern,
  type PolicyDocument,
} from "@portcullis/policy";
import { type Enforcer, newEnforcer, newModelFromString } from "casbin";

/** The casbin model text used by the benchmark. */
export const CASBIN_MODEL = `
[request_definition]
r = sub, obj, act, ctx

[policy_definition]
p = sub, obj, act, eft, cond

[policy_effect]
e = some(where (p.eft == allow)) && !some(where (p.eft == deny))

[matchers]
m = r.sub == p.sub && keyMatch(r.act, p.act) && regexMatch(r.obj, p.obj) && eval(p.cond)
`;

/** The same model without conditions: a lower bound of casbin's cost, not an equivalent model. */
export const CASBIN_MODEL_NO_CONDITIONS = `
[request_definition]
r = sub, obj, act, ctx

[policy_definition]
p = sub, obj, act, eft

[policy_effect]
e = some(where (p.eft == allow)) && !some(where (p.eft == deny))

[matchers]
m = r.sub == p.sub && keyMatch(r.act, p.act) && regexMatch(r.obj, p.obj)
`;

/** The request context as casbin sees it (`r.ctx`). */
export interface CasbinContext {
  SourceIp: string;
  ClientId?: string;
  Qos?: number;
  SecureTransport?: boolean;
}

/** One prepared casbin request: the arguments of `enforceSync`. */
export type CasbinRequest = readonly [sub: string, obj: string, act: string, ctx: CasbinContext];

const FIELDS: Readonly<Record<string, keyof CasbinContext>> = {
  "acs:sourceip": "SourceIp",
  "mq:clientid": "ClientId",
  "mq:qos": "Qos",
  "acs:securetransport": "SecureTransport",
};

const NUMERIC_OPS: Readonly<Record<string, string>> = {
  NumericEquals: "==",
  NumericLessThan: "<",
  NumericLessThanEquals: "<=",
  NumericGreaterThan: ">",
  NumericGreaterThanEquals: ">=",
};

/** An anchored regular expression for a RAM whole-string glob. */
export function globToRegex(glob: string): string {
  let out = "^";
  for (const c of glob) {
    if (c === "*") out += ".*";
    else if (c === "?") out += ".";
    else out += /[.+^${}()|[\]\\/-]/.test(c) ? `\\${c}` : c;
  }
  return `${out}$`;
}

function field(key: string): string {
  const f = FIELDS[key.toLowerCase()];
  if (!f) throw new Error(`casbin peer: condition key ${key} is not supported`);
  return `r.ctx.${f}`;
}

function literal(v: ConditionValue): string {
  if (typeof v === "string") {
    if (v.includes('"') || v.includes("\\")) throw new Error(`casbin peer: value ${v} is not supported`);
    return `"${v}"`;
  }
  return String(v);
}

function trailingStarOnly(p: string): boolean {
  const star = p.indexOf("*");
  return !p.includes("?") && (star < 0 || star === p.length - 1);
}

/** The casbin ABAC expression for a RAM `Condition` block (`true` when there is none). */
export function conditionExpression(
  condition: Readonly<Record<string, Readonly<Record<string, ConditionValue | ConditionValue[]>>>> = {},
): string {
  const parts: string[] = [];
  for (const [op, keys] of Object.entries(condition)) {
    for (const [key, raw] of Object.entries(keys)) {
      const values = Array.isArray(raw) ? raw : [raw];
      const f = field(key);
      const any = (fn: (v: ConditionValue) => string) => `(${values.map(fn).join(" || ")})`;
      if (op === "IpAddress" || op === "NotIpAddress") {
        const positive = `(${f} != "" && ${any((v) => `ipMatch(${f}, ${literal(v)})`)})`;
        parts.push(op === "IpAddress" ? positive : `!${positive}`);
      } else if (op === "StringLike") {
        for (const v of values)
          if (typeof v !== "string" || !trailingStarOnly(v))
            throw new Error(`casbin peer: StringLike value ${String(v)} needs keyMatch semantics`);
        parts.push(any((v) => `keyMatch(${f}, ${literal(v)})`));
      } else if (op === "StringEquals") {
        parts.push(any((v) => `${f} == ${literal(String(v))}`));
      } else if (NUMERIC_OPS[op]) {
        parts.push(any((v) => `${f} ${NUMERIC_OPS[op]} ${Number(v)}`));
      } else if (op === "Bool") {
        parts.push(`${f} == ${String(values[0]).toLowerCase() === "true"}`);
      } else throw new Error(`casbin peer: operator ${op} is not supported`);
    }
  }
  return parts.length === 0 ? "true" : parts.join(" && ");
}

/** The casbin policy lines `[sub, obj, act, eft, cond]` for one principal's documents (deduplicated). */
export function policyLines(
  subject: string,
  documents: readonly PolicyDocument[],
  amqpInstanceId = "amqp-local",
): string[][] {
  const seen = new Set<string>();
  const lines: string[][] = [];
  for (const doc of documents) {
    for (const st of doc.Statement) {
      if (st.NotAction || st.NotResource || !st.Action || !st.Resource)
        throw new Error("casbin peer: NotAction/NotResource are not supported");
      const cond = conditionExpression(st.Condition);
      const eft = st.Effect === "Deny" ? "deny" : "allow";
      for (const a of st.Action) {
        const act = a.toLowerCase();
        if (!trailingStarOnly(act)) throw new Error(`casbin peer: action ${a} needs keyMatch semantics`);
        for (const r of st.Resource.flatMap((x) => normalizeResourcePattern(x, { amqpInstanceId }))) {
          const line = [subject, globToRegex(r), act, eft, cond];
          const key = line.join("\u0000");
          if (seen.has(key)) continue;
          seen.add(key);
          lines.push(line);
        }
      }
    }
  }
  return lines;
}

/**
 * A casbin enforcer loaded with the model and the lines (in memory, no adapter).
 * With `conditions: false`, the lower-bound model and the lines without their condition.
 */
export async function buildCasbinEnforcer(
  lines: readonly string[][],
  opts: { conditions: boolean } = { conditions: true },
): Promise<Enforcer> {
  const e = await newEnforcer(
    newModelFromString(opts.conditions ? CASBIN_MODEL : CASBIN_MODEL_NO_CONDITIONS),
  );
  const rules = opts.conditions
    ? lines.map((l) => [...l])
    : [...new Map(lines.map((l) => [l.slice(0, 4).join("\u0000"), l.slice(0, 4)])).values()];
  const ok = await e.addPolicies(rules);
  if (!ok) throw new Error("casbin peer: addPolicies refused the lines");
  return e;
}

/** The `enforceSync` arguments for one request (actions lower-cased, context mapped to `r.ctx`). */
export function casbinRequest(subject: string, req: AuthzRequest): CasbinRequest {
  const ctx: CasbinContext = { SourceIp: "" };
  for (const [k, v] of Object.entries(req.context ?? {})) {
    const f = FIELDS[k.toLowerCase()];
    if (!f || v === undefined) continue;
    if (Array.isArray(v)) throw new Error("casbin peer: multi-valued context keys are not supported");
    (ctx as unknown as Record<string, unknown>)[f] = v;
  }
  return [subject, req.resource, req.action.toLowerCase(), ctx];
}
