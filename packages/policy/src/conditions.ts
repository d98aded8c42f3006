/**
 * Condition operators (SPEC §3). Semantics, relied on by the evaluator:
 * - values of one key are ORed; keys and operators are ANDed;
 * - a negated operator (`…Not…`, `NotIpAddress`) is the negation of its positive
 *   twin, so with several values it is a NOR;
 * - a missing key makes a positive operator false and a negated one true;
 * - a multi-valued context key matches when any of its values does.
 */
import { canonicalConditionKey } from "./catalog.ts";
import { type IpRange, ipInRange, parseIp, parseIpRange } from "./ip.ts";
import type { ContextValue, RequestContext } from "./types.ts";
import { compileWildcard, type WildcardMatcher } from "./wildcard.ts";

type Family = "string" | "numeric" | "date" | "bool" | "ip";

interface OperatorSpec {
  family: Family;
  negated: boolean;
  /** Positive comparison of one context value with one policy value. */
  kind: "eq" | "eqi" | "like" | "lt" | "le" | "gt" | "ge" | "in";
}

/** Every condition operator, with its family and whether it is negated. */
export const OPERATORS: ReadonlyMap<string, OperatorSpec> = new Map<string, OperatorSpec>([
  ["StringEquals", { family: "string", negated: false, kind: "eq" }],
  ["StringNotEquals", { family: "string", negated: true, kind: "eq" }],
  ["StringEqualsIgnoreCase", { family: "string", negated: false, kind: "eqi" }],
  ["StringNotEqualsIgnoreCase", { family: "string", negated: true, kind: "eqi" }],
  ["StringLike", { family: "string", negated: false, kind: "like" }],
  ["StringNotLike", { family: "string", negated: true, kind: "like" }],
  ["NumericEquals", { family: "numeric", negated: false, kind: "eq" }],
  ["NumericNotEquals", { family: "numeric", negated: true, kind: "eq" }],
  ["NumericLessThan", { family: "numeric", negated: false, kind: "lt" }],
  ["NumericLessThanEquals", { family: "numeric", negated: false, kind: "le" }],
  ["NumericGreaterThan", { family: "numeric", negated: false, kind: "gt" }],
  ["NumericGreaterThanEquals", { family: "numeric", negated: false, kind: "ge" }],
  ["DateEquals", { family: "date", negated: false, kind: "eq" }],
  ["DateNotEquals", { family: "date", negated: true, kind: "eq" }],
  ["DateLessThan", { family: "date", negated: false, kind: "lt" }],
  ["DateLessThanEquals", { family: "date", negated: false, kind: "le" }],
  ["DateGreaterThan", { family: "date", negated: false, kind: "gt" }],
  ["DateGreaterThanEquals", { family: "date", negated: false, kind: "ge" }],
  ["Bool", { family: "bool", negated: false, kind: "eq" }],
  ["IpAddress", { family: "ip", negated: false, kind: "in" }],
  ["NotIpAddress", { family: "ip", negated: true, kind: "in" }],
]);

const operatorsLower = new Map([...OPERATORS.keys()].map((k) => [k.toLowerCase(), k]));

/** The operator whose name differs from `op` only in case, for "did you mean" messages. */
export function suggestOperator(op: string): string | undefined {
  return operatorsLower.get(op.toLowerCase());
}

const ISO_DATE = /^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:?\d{2})?)?$/;

/** Parse an ISO 8601 date to epoch ms; undefined if not ISO 8601 or not a real date. */
export function parseIsoDate(s: string): number | undefined {
  if (!ISO_DATE.test(s)) return undefined;
  const t = Date.parse(s);
  if (Number.isNaN(t)) return undefined;
  // Date.parse rolls impossible days over (2025-02-30 → 2025-03-02): refuse them.
  const y = Number(s.slice(0, 4));
  const m = Number(s.slice(5, 7));
  const d = Number(s.slice(8, 10));
  if (m < 1 || m > 12 || d < 1 || d > new Date(Date.UTC(y, m, 0)).getUTCDate()) return undefined;
  return t;
}

/** Parse a policy numeric value (number or numeric string). */
export function parseNumeric(v: unknown): number | undefined {
  if (typeof v === "number") return Number.isFinite(v) ? v : undefined;
  if (typeof v === "string" && /^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$/.test(v)) return Number(v);
  return undefined;
}

/** Parse a Bool value (`true`, `false`, `"true"`, `"false"`, case-insensitive strings). */
export function parseBool(v: unknown): boolean | undefined {
  if (typeof v === "boolean") return v;
  if (typeof v === "string") {
    const l = v.toLowerCase();
    if (l === "true") return true;
    if (l === "false") return false;
  }
  return undefined;
}

/** Why a policy condition value is invalid for its operator, or undefined when it is fine. */
export function checkConditionValue(op: string, v: unknown): string | undefined {
  const spec = OPERATORS.get(op);
  if (!spec) return `unknown operator \`${op}\``;
  if (typeof v !== "string" && typeof v !== "number" && typeof v !== "boolean")
    return "a condition value must be a string, number or boolean";
  switch (spec.family) {
    case "string":
      return undefined;
    case "numeric":
      return parseNumeric(v) === undefined ? `\`${String(v)}\` is not a number` : undefined;
    case "date":
      return typeof v !== "string" || parseIsoDate(v) === undefined
        ? `\`${String(v)}\` is not an ISO 8601 date`
        : undefined;
    case "bool":
      return parseBool(v) === undefined ? `\`${String(v)}\` is not \`true\` or \`false\`` : undefined;
    case "ip":
      return typeof v !== "string" || parseIpRange(v) === undefined
        ? `\`${String(v)}\` is not an IP address or CIDR range`
        : undefined;
  }
}

/** One compiled `Operator: { Key: values }` entry. */
export interface CompiledCondition {
  operator: string;
  /** Canonical key when known, else as written. */
  key: string;
  /** True when a missing key makes this condition true. */
  negated: boolean;
  /** Positive test of one context value against the policy values (OR). */
  test: (value: string | number | boolean) => boolean;
}

function toStr(v: string | number | boolean): string {
  return typeof v === "string" ? v : String(v);
}

function toNum(v: string | number | boolean): number | undefined {
  if (typeof v === "number") return v;
  if (typeof v === "boolean") return undefined;
  const n = parseNumeric(v);
  return n;
}

function toTime(v: string | number | boolean): number | undefined {
  if (typeof v === "number") return v;
  if (typeof v !== "string") return undefined;
  return parseIsoDate(v);
}

function compare(kind: OperatorSpec["kind"], a: number, b: number): boolean {
  switch (kind) {
    case "eq":
      return a === b;
    case "lt":
      return a < b;
    case "le":
      return a <= b;
    case "gt":
      return a > b;
    case "ge":
      return a >= b;
    default:
      return false;
  }
}

/** Compile one operator/key/values entry; values must already be validated. */
export function compileCondition(
  operator: string,
  key: string,
  values: readonly (string | number | boolean)[],
): CompiledCondition {
  const spec = OPERATORS.get(operator);
  if (!spec) throw new Error(`unknown operator \`${operator}\``);
  const canonicalKey = canonicalConditionKey(key) ?? key;
  let test: (value: string | number | boolean) => boolean;
  switch (spec.family) {
    case "string": {
      if (spec.kind === "eq") {
        const set = new Set(values.map(toStr));
        test = (v) => set.has(toStr(v));
      } else if (spec.kind === "eqi") {
        const set = new Set(values.map((x) => toStr(x).toLowerCase()));
        test = (v) => set.has(toStr(v).toLowerCase());
      } else {
        const ms: WildcardMatcher[] = values.map((x) => compileWildcard(toStr(x)));
        test = (v) => {
          const s = toStr(v);
          for (const m of ms) if (m(s)) return true;
          return false;
        };
      }
      break;
    }
    case "numeric":
    case "date": {
      const parse = spec.family === "numeric" ? toNum : toTime;
      const nums = values.map((x) => (spec.family === "numeric" ? parseNumeric(x) : toTime(x))!);
      test = (v) => {
        const n = parse(v);
        if (n === undefined) return false;
        for (const b of nums) if (compare(spec.kind, n, b)) return true;
        return false;
      };
      break;
    }
    case "bool": {
      const want = parseBool(values[0]);
      test = (v) => parseBool(v) === want;
      break;
    }
    case "ip": {
      const ranges: IpRange[] = values.map((x) => parseIpRange(toStr(x))!);
      test = (v) => {
        const ip = typeof v === "string" ? parseIp(v) : undefined;
        if (!ip) return false;
        for (const r of ranges) if (ipInRange(ip, r)) return true;
        return false;
      };
      break;
    }
  }
  return { operator, key: canonicalKey, negated: spec.negated, test };
}

/** Look a key up in the context: exact spelling first, then case-insensitively. */
export function lookupContext(ctx: RequestContext | undefined, key: string): ContextValue | undefined {
  if (!ctx) return undefined;
  const direct = ctx[key];
  if (direct !== undefined) return direct;
  return scanContext(ctx, key.length, key.toLowerCase());
}

/**
 * `lookupContext` with `key.toLowerCase()` given by the caller, who computed it
 * once (the decision cache does, per cached key list) instead of per request.
 */
export function lookupContextLower(
  ctx: RequestContext | undefined,
  key: string,
  lower: string,
): ContextValue | undefined {
  if (!ctx) return undefined;
  const direct = ctx[key];
  if (direct !== undefined) return direct;
  return scanContext(ctx, key.length, lower);
}

/** The value of the first context key of `length` characters that lower-cases to `lower`. */
function scanContext(ctx: RequestContext, length: number, lower: string): ContextValue | undefined {
  for (const k in ctx) if (k.length === length && k.toLowerCase() === lower) return ctx[k];
  return undefined;
}

/**
 * Evaluate one compiled condition. `missing` collects the key when absent.
 * INVARIANT: a missing key → positive false, negated true (SPEC §3).
 */
export function evalCondition(
  c: CompiledCondition,
  ctx: RequestContext | undefined,
  missing: string[] | null,
): boolean {
  const v = lookupContext(ctx, c.key);
  if (v === undefined) {
    if (missing && !missing.includes(c.key)) missing.push(c.key);
    return c.negated;
  }
  let any = false;
  if (Array.isArray(v)) {
    for (const x of v as readonly (string | number | boolean)[])
      if (c.test(x)) {
        any = true;
        break;
      }
  } else any = c.test(v as string | number | boolean);
  return c.negated ? !any : any;
}
