/**
 * The naive baseline the policy benchmark compares the engine with: a direct
 * reading of SPEC §3 with no index, no precompiled matchers and no cache.
 * Every request loops over every statement; actions and resources go through a
 * plain recursive glob (no regular expression is ever built from a policy);
 * conditions are parsed and compared on each evaluation. It answers only the
 * decision kind (no deciding statements, no message), which is less work than
 * the engine's full decision object.
 *
 * The one thing done at construction is the compile-time resource
 * normalisation of SPEC §4 (legacy MQTT forms, parent topics, AMQP instances),
 * using the engine's exported `normalizeResourcePattern`, so that the baseline
 * judges the same canonical patterns. IP conditions support IPv4 (and
 * IPv4-mapped IPv6) only; an IPv6 address never matches here.
 */
import {
  type AuthzRequest,
  type ConditionValue,
  type ContextValue,
  normalizeResourcePattern,
  type PolicyDocument,
  type Principal,
  type RequestContext,
} from "@portcullis/policy";

/** The decision kinds the reference evaluator can return. */
export type ReferenceDecision = "Allow" | "ExplicitDeny" | "ImplicitDeny";

interface RefStatement {
  deny: boolean;
  actions: readonly string[];
  notAction: boolean;
  resources: readonly string[];
  notResource: boolean;
  condition: Readonly<Record<string, Readonly<Record<string, ConditionValue | ConditionValue[]>>>>;
}

/** Negated operator → its positive twin. */
const NEGATED: Readonly<Record<string, string>> = {
  StringNotEquals: "StringEquals",
  StringNotEqualsIgnoreCase: "StringEqualsIgnoreCase",
  StringNotLike: "StringLike",
  NumericNotEquals: "NumericEquals",
  DateNotEquals: "DateEquals",
  NotIpAddress: "IpAddress",
};

/** Whole-string glob: `*` any run of characters (including `:` and `/`), `?` one character. */
export function globMatch(pattern: string, s: string, pi = 0, si = 0): boolean {
  while (pi < pattern.length) {
    const c = pattern[pi];
    if (c === "*") {
      for (let k = si; k <= s.length; k++) if (globMatch(pattern, s, pi + 1, k)) return true;
      return false;
    }
    if (si >= s.length || (c !== "?" && c !== s[si])) return false;
    pi++;
    si++;
  }
  return si === s.length;
}

function lookup(ctx: RequestContext | undefined, key: string): ContextValue | undefined {
  if (!ctx) return undefined;
  if (ctx[key] !== undefined) return ctx[key];
  for (const k of Object.keys(ctx)) if (k.toLowerCase() === key.toLowerCase()) return ctx[k];
  return undefined;
}

function toNumber(v: ConditionValue): number {
  if (typeof v === "number") return v;
  if (typeof v === "string" && /^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$/.test(v)) return Number(v);
  return Number.NaN;
}

function toTime(v: ConditionValue): number {
  if (typeof v === "number") return v;
  if (typeof v === "string") return Date.parse(v);
  return Number.NaN;
}

function toBool(v: ConditionValue): boolean | undefined {
  if (typeof v === "boolean") return v;
  if (typeof v === "string" && v.toLowerCase() === "true") return true;
  if (typeof v === "string" && v.toLowerCase() === "false") return false;
  return undefined;
}

function ipv4(s: string): number | undefined {
  const m = /^(?:::ffff:)?(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/i.exec(s);
  if (!m) return undefined;
  let n = 0;
  for (let i = 1; i <= 4; i++) {
    const octet = Number(m[i]);
    if (octet > 255) return undefined;
    n = n * 256 + octet;
  }
  return n;
}

function inCidr(address: string, range: string): boolean {
  const [base, bitsText] = range.split("/");
  const ip = ipv4(address);
  const net = ipv4(base ?? "");
  if (ip === undefined || net === undefined) return false;
  const bits = bitsText === undefined ? 32 : Number(bitsText);
  const size = 2 ** (32 - bits);
  return Math.floor(ip / size) === Math.floor(net / size);
}

function compare(op: string, actual: ConditionValue, wanted: ConditionValue): boolean {
  switch (op) {
    case "StringEquals":
      return String(actual) === String(wanted);
    case "StringEqualsIgnoreCase":
      return String(actual).toLowerCase() === String(wanted).toLowerCase();
    case "StringLike":
      return globMatch(String(wanted), String(actual));
    case "NumericEquals":
      return toNumber(actual) === toNumber(wanted);
    case "NumericLessThan":
      return toNumber(actual) < toNumber(wanted);
    case "NumericLessThanEquals":
      return toNumber(actual) <= toNumber(wanted);
    case "NumericGreaterThan":
      return toNumber(actual) > toNumber(wanted);
    case "NumericGreaterThanEquals":
      return toNumber(actual) >= toNumber(wanted);
    case "DateEquals":
      return toTime(actual) === toTime(wanted);
    case "DateLessThan":
      return toTime(actual) < toTime(wanted);
    case "DateLessThanEquals":
      return toTime(actual) <= toTime(wanted);
    case "DateGreaterThan":
      return toTime(actual) > toTime(wanted);
    case "DateGreaterThanEquals":
      return toTime(actual) >= toTime(wanted);
    case "Bool": {
      const a = toBool(actual);
      return a !== undefined && a === toBool(wanted);
    }
    case "IpAddress":
      return typeof actual === "string" && inCidr(actual, String(wanted));
    default:
      return false;
  }
}

function conditionHolds(
  op: string,
  key: string,
  wanted: ConditionValue | ConditionValue[],
  ctx: RequestContext | undefined,
): boolean {
  const positive = NEGATED[op] ?? op;
  const negated = positive !== op;
  const value = lookup(ctx, key);
  if (value === undefined) return negated;
  const actuals: readonly ConditionValue[] = Array.isArray(value) ? value : [value as ConditionValue];
  const wants = Array.isArray(wanted) ? wanted : [wanted];
  let any = false;
  for (const a of actuals) for (const w of wants) if (compare(positive, a, w)) any = true;
  return negated ? !any : any;
}

function anyGlob(patterns: readonly string[], subject: string, ignoreCase: boolean): boolean {
  for (const p of patterns) {
    if (ignoreCase ? globMatch(p.toLowerCase(), subject.toLowerCase()) : globMatch(p, subject)) return true;
  }
  return false;
}

/** A principal's policies, evaluated by a plain loop over every statement on every request. */
export class ReferenceEvaluator {
  private readonly statements: RefStatement[] = [];

  constructor(
    private readonly principal: Principal,
    documents: readonly PolicyDocument[],
    amqpInstanceId = "amqp-local",
  ) {
    for (const doc of documents) {
      for (const s of doc.Statement) {
        const rawResources = s.NotResource ?? s.Resource ?? [];
        this.statements.push({
          deny: s.Effect === "Deny",
          actions: s.NotAction ?? s.Action ?? [],
          notAction: s.NotAction !== undefined,
          resources: rawResources.flatMap((r) => normalizeResourcePattern(r, { amqpInstanceId })),
          notResource: s.NotResource !== undefined,
          condition: s.Condition ?? {},
        });
      }
    }
  }

  /** Allow, ExplicitDeny or ImplicitDeny for one request (SPEC §3). */
  evaluate(req: AuthzRequest): ReferenceDecision {
    const parts = req.resource.split(":");
    if (parts.length < 5 || parts[0] !== "acs") return "ImplicitDeny";
    if (parts[3] !== this.principal.accountId) return "ImplicitDeny";
    if (this.principal.kind === "root") return "Allow";
    let allowed = false;
    for (const st of this.statements) {
      if (anyGlob(st.actions, req.action, true) === st.notAction) continue;
      if (anyGlob(st.resources, req.resource, false) === st.notResource) continue;
      let ok = true;
      for (const [op, keys] of Object.entries(st.condition)) {
        for (const [key, wanted] of Object.entries(keys)) {
          if (!conditionHolds(op, key, wanted, req.context)) ok = false;
        }
      }
      if (!ok) continue;
      if (st.deny) return "ExplicitDeny";
      allowed = true;
    }
    return allowed ? "Allow" : "ImplicitDeny";
  }
}
