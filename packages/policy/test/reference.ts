/**
 * A small, deliberately plain reference evaluator for the property tests
 * (STYLE.md, "Policy correctness like Cedar"). It is written from SPEC §3–4 and
 * the API brief, separately from the engine: it imports only types, and it has
 * no index, no cache, no compiled matchers and no normalised copies of the
 * policies. Every request walks every statement of every policy.
 *
 * Where it has to pick a reading the documents leave open, the choice is
 * written next to the code (search for `READING:`).
 */
import { isIP } from "node:net";
import type {
  AuthzRequest,
  ConditionValue,
  ContextValue,
  DecisionKind,
  DecisionReason,
  PolicyDocument,
  PolicyType,
  Principal,
  RequestContext,
  Statement,
} from "../src/mod.ts";

/** A policy version as the reference sees it: its identity and its validated, normal-form document. */
export interface RefPolicy {
  name: string;
  type: PolicyType;
  version: string;
  document: PolicyDocument;
}

/** A statement that decided, as the reference reports it. */
export interface RefStatement {
  policy: string;
  policyType: PolicyType;
  version: string;
  statement: number;
  effect: "Allow" | "Deny";
}

/** The reference's answer. */
export interface RefDecision {
  decision: DecisionKind;
  reason: DecisionReason;
  /** Sorted by policy name, policy type, version, statement index. */
  decidingStatements: RefStatement[];
  /** Sorted; canonical spelling for known keys, as written for the others. */
  missingContextKeys: string[];
}

/** Options of the reference evaluator. */
export interface RefOptions {
  /** The AMQP instance the gateway fronts (default `amqp-local`). */
  amqpInstanceId?: string;
}

// ---------------------------------------------------------------------------
// Wildcards: memoised recursion over (position in pattern, position in subject).

/**
 * Does `subject` match `pattern` as a whole, where `*` matches any run of
 * characters and `?` exactly one? Case-sensitive. Dynamic programming over
 * pattern × subject suffixes, memoised in a table: O(|pattern| · |subject|).
 */
export function refGlob(pattern: string, subject: string): boolean {
  const m = pattern.length;
  const n = subject.length;
  // memo[i * (n + 1) + j]: 0 = unknown, 1 = pattern[i..] matches subject[j..], 2 = it does not.
  const memo = new Uint8Array((m + 1) * (n + 1));
  const match = (i: number, j: number): boolean => {
    const slot = i * (n + 1) + j;
    if (memo[slot] !== 0) return memo[slot] === 1;
    let result: boolean;
    if (i === m) {
      result = j === n;
    } else if (pattern[i] === "*") {
      // The star matches nothing, or swallows one more character.
      result = match(i + 1, j) || (j < n && match(i, j + 1));
    } else if (j < n && (pattern[i] === "?" || pattern[i] === subject[j])) {
      result = match(i + 1, j + 1);
    } else {
      result = false;
    }
    memo[slot] = result ? 1 : 2;
    return result;
  };
  return match(0, 0);
}

// ---------------------------------------------------------------------------
// ARNs and the resource forms of SPEC §4.

interface RefArn {
  head: string; // `acs:<service>:<region>:<account>:`
  service: string;
  account: string;
  relative: string;
}

/** `acs:<service>:<region>:<account>:<relative>`; the relative id may itself contain colons. */
function splitArn(arn: string): RefArn | undefined {
  const parts = arn.split(":");
  if (parts[0] !== "acs" || parts.length < 5) return undefined;
  const relative = parts.slice(4).join(":");
  return {
    head: arn.slice(0, arn.length - relative.length),
    service: parts[1]!,
    account: parts[3]!,
    relative,
  };
}

/** Topic patterns for a topic part: a one-level parent topic also covers its sub-topics (SPEC §4.1). */
function topicPatterns(topic: string): string[] {
  const oneLevel = !topic.includes("/") && !topic.endsWith("*");
  return oneLevel ? [topic, `${topic}/*`] : [topic];
}

/** Does an MQTT policy pattern (service `mq`) cover the request resource? SPEC §4.1. */
function mqPatternCovers(p: RefArn, resource: string): boolean {
  const rel = p.relative;
  // READING: a relative id that is exactly `*` is a wildcard over every MQ resource
  // (`acs:mq:*:*:*`), not the legacy form of a topic named `*`.
  if (rel === "*") return refGlob(p.head + rel, resource);
  // `topic/<inst>/<topic>`, and `<inst>%<topic>` which means the same.
  // READING: in `<inst>%<topic>` the instance is substituted as text, so `*%a` is `topic/*/a`
  // (whose `*` may span `/`), unlike the legacy `<Topic>` form below.
  let instance: string | undefined;
  let topic: string | undefined;
  if (rel.startsWith("topic/")) {
    const rest = rel.slice("topic/".length);
    if (rest.indexOf("/") > 0) {
      instance = rest.slice(0, rest.indexOf("/"));
      topic = rest.slice(rest.indexOf("/") + 1);
    }
  } else if (!rel.startsWith("instance/") && !rel.startsWith("group/") && rel.indexOf("%") > 0) {
    instance = rel.slice(0, rel.indexOf("%"));
    topic = rel.slice(rel.indexOf("%") + 1);
  }
  if (instance !== undefined && topic !== undefined) {
    const head = `${p.head}topic/${instance}/`;
    return topicPatterns(topic).some((t) => refGlob(head + t, resource));
  }
  const legacy = !rel.includes("/") && !rel.startsWith("instance/") && !rel.startsWith("group/");
  if (!legacy) return refGlob(p.head + rel, resource);
  // Legacy `<Topic>` (seed 003): the parent topic `<Topic>` in every instance. The
  // instance is one path segment of the request, whatever it is; the topic pattern
  // applies to the topic only.
  const r = splitArn(resource);
  if (r === undefined || !refGlob(p.head, r.head) || !r.relative.startsWith("topic/")) return false;
  const rest = r.relative.slice("topic/".length);
  const slash = rest.indexOf("/");
  if (slash <= 0) return false;
  return topicPatterns(rel).some((t) => refGlob(t, rest.slice(slash + 1)));
}

/** Does one policy `Resource` pattern cover the request resource? */
function resourcePatternCovers(pattern: string, resource: string, amqpInstance: string): boolean {
  const p = splitArn(pattern);
  if (p !== undefined && p.service === "mq") return mqPatternCovers(p, resource);
  if (p !== undefined && p.service === "amqp" && p.relative.startsWith("/instances/")) {
    // READING: the `/instances/<id>/vhosts/…` form (SPEC §4.2) covers a request when it
    // matches the request written in that form for our instance,
    // `…:/instances/<our id>/vhosts/…`. So another instance's pattern never matches.
    const r = splitArn(resource);
    return r !== undefined && refGlob(pattern, `${r.head}/instances/${amqpInstance}${r.relative}`);
  }
  return refGlob(pattern, resource);
}

// ---------------------------------------------------------------------------
// Conditions.

const KNOWN_KEYS = [
  "acs:CurrentTime",
  "acs:SourceIp",
  "acs:SecureTransport",
  "acs:MFAPresent",
  "mq:ClientId",
  "mq:GroupId",
  "mq:Qos",
  "mq:Retain",
  "amqp:RoutingKey",
  "amqp:Vhost",
];

/** The canonical spelling of a known key; others as written. */
function canonicalKey(key: string): string {
  return KNOWN_KEYS.find((k) => k.toLowerCase() === key.toLowerCase()) ?? key;
}

/** Exact spelling first, then case-insensitively. */
function lookup(ctx: RequestContext | undefined, key: string): ContextValue | undefined {
  if (ctx === undefined) return undefined;
  if (Object.hasOwn(ctx, key) && ctx[key] !== undefined) return ctx[key];
  for (const k of Object.keys(ctx)) {
    if (k.toLowerCase() === key.toLowerCase()) return ctx[k];
  }
  return undefined;
}

/** The positive twin of each negated operator. */
const NEGATED: Record<string, string> = {
  StringNotEquals: "StringEquals",
  StringNotEqualsIgnoreCase: "StringEqualsIgnoreCase",
  StringNotLike: "StringLike",
  NumericNotEquals: "NumericEquals",
  DateNotEquals: "DateEquals",
  NotIpAddress: "IpAddress",
};

type Scalar = string | number | boolean;

/** READING: numeric strings are plain decimals (optionally signed, surrounding blanks allowed). */
function toNumber(v: Scalar): number | undefined {
  if (typeof v === "number") return v;
  if (typeof v !== "string") return undefined;
  const t = v.trim();
  return /^[-+]?(\d+(\.\d*)?|\.\d+)$/.test(t) ? Number(t) : undefined;
}

/** ISO 8601 strings naming a real calendar day; epoch milliseconds when the context gives a number. */
function toTime(v: Scalar): number | undefined {
  if (typeof v === "number") return v;
  if (typeof v !== "string" || !/^\d{4}-\d{2}-\d{2}/.test(v)) return undefined;
  const [y, m, d] = v.slice(0, 10).split("-").map(Number) as [number, number, number];
  const day = new Date(Date.UTC(y, m - 1, d));
  if (day.getUTCFullYear() !== y || day.getUTCMonth() !== m - 1 || day.getUTCDate() !== d) return undefined;
  const t = Date.parse(v);
  return Number.isNaN(t) ? undefined : t;
}

function toBool(v: Scalar): boolean | undefined {
  if (v === true || v === "true") return true;
  if (v === false || v === "false") return false;
  return undefined;
}

/**
 * An IP address as a 128-bit number. IPv4 `a.b.c.d` becomes the IPv4-mapped
 * IPv6 address `::ffff:a.b.c.d`, so mapped and plain IPv4 are the same address.
 */
function ipToBigInt(s: string): bigint | undefined {
  const kind = isIP(s);
  if (kind === 4) {
    const [a, b, c, d] = s.split(".").map(Number) as [number, number, number, number];
    return (0xffffn << 32n) | BigInt(a * 2 ** 24 + b * 2 ** 16 + c * 2 ** 8 + d);
  }
  if (kind !== 6) return undefined;
  let text = s.toLowerCase();
  // A dotted IPv4 tail stands for the last two 16-bit groups.
  const lastColon = text.lastIndexOf(":");
  const tail = text.slice(lastColon + 1);
  if (tail.includes(".")) {
    const [a, b, c, d] = tail.split(".").map(Number) as [number, number, number, number];
    text = `${text.slice(0, lastColon + 1)}${(a * 256 + b).toString(16)}:${(c * 256 + d).toString(16)}`;
  }
  let groups: string[];
  if (text.includes("::")) {
    const [left, right] = text.split("::") as [string, string];
    const l = left === "" ? [] : left.split(":");
    const r = right === "" ? [] : right.split(":");
    groups = [...l, ...Array<string>(8 - l.length - r.length).fill("0"), ...r];
  } else {
    groups = text.split(":");
  }
  let n = 0n;
  for (const g of groups) n = (n << 16n) | BigInt(Number.parseInt(g, 16));
  return n;
}

/** Is the request address `ip` inside the policy value `range` (single address or CIDR)? */
function ipInRange(ip: string, range: string): boolean {
  const addr = ipToBigInt(ip);
  const [base, bitsText] = range.split("/") as [string, string | undefined];
  const net = ipToBigInt(base);
  if (addr === undefined || net === undefined) return false;
  const isV4 = isIP(base) === 4;
  const bits = bitsText === undefined ? 128 : Number(bitsText) + (isV4 ? 96 : 0);
  const drop = BigInt(128 - bits);
  return addr >> drop === net >> drop;
}

/** The positive operator test of one context value against one policy value. */
function positiveTest(op: string, ctx: Scalar, policy: ConditionValue): boolean {
  const num = (a: number | undefined, b: number | undefined, cmp: (x: number, y: number) => boolean) =>
    a !== undefined && b !== undefined && cmp(a, b);
  switch (op) {
    case "StringEquals":
      return String(ctx) === String(policy);
    case "StringEqualsIgnoreCase":
      return String(ctx).toLowerCase() === String(policy).toLowerCase();
    case "StringLike":
      return refGlob(String(policy), String(ctx));
    case "NumericEquals":
      return num(toNumber(ctx), toNumber(policy), (x, y) => x === y);
    case "NumericLessThan":
      return num(toNumber(ctx), toNumber(policy), (x, y) => x < y);
    case "NumericLessThanEquals":
      return num(toNumber(ctx), toNumber(policy), (x, y) => x <= y);
    case "NumericGreaterThan":
      return num(toNumber(ctx), toNumber(policy), (x, y) => x > y);
    case "NumericGreaterThanEquals":
      return num(toNumber(ctx), toNumber(policy), (x, y) => x >= y);
    case "DateEquals":
      return num(toTime(ctx), toTime(policy), (x, y) => x === y);
    case "DateLessThan":
      return num(toTime(ctx), toTime(policy), (x, y) => x < y);
    case "DateLessThanEquals":
      return num(toTime(ctx), toTime(policy), (x, y) => x <= y);
    case "DateGreaterThan":
      return num(toTime(ctx), toTime(policy), (x, y) => x > y);
    case "DateGreaterThanEquals":
      return num(toTime(ctx), toTime(policy), (x, y) => x >= y);
    case "Bool":
      return toBool(ctx) !== undefined && toBool(ctx) === toBool(policy);
    case "IpAddress":
      return typeof ctx === "string" && ipInRange(ctx, String(policy));
    default:
      throw new Error(`reference: unknown operator ${op}`);
  }
}

/**
 * One `Operator: { Key: values }` entry against the context value (undefined when missing).
 * Values are ORed; a multi-valued context matches when any element does; a negated
 * operator is the negation of its positive twin; a missing key: positive false, negated true.
 */
function conditionHolds(op: string, values: ConditionValue[], ctx: ContextValue | undefined): boolean {
  const negated = Object.hasOwn(NEGATED, op);
  const positive = negated ? NEGATED[op]! : op;
  if (ctx === undefined) return negated;
  const ctxValues: readonly Scalar[] = Array.isArray(ctx) ? ctx : [ctx as Scalar];
  let any = false;
  for (const c of ctxValues) {
    for (const p of values) {
      if (positiveTest(positive, c, p)) any = true;
    }
  }
  return negated ? !any : any;
}

// ---------------------------------------------------------------------------
// Statements and the decision.

function statementCoversAction(st: Statement, action: string): boolean {
  const list = st.Action ?? st.NotAction ?? [];
  const any = list.some((p) => refGlob(p.toLowerCase(), action.toLowerCase()));
  return st.Action !== undefined ? any : !any;
}

function statementCoversResource(st: Statement, resource: string, amqpInstance: string): boolean {
  const list = st.Resource ?? st.NotResource ?? [];
  const any = list.some((p) => resourcePatternCovers(p, resource, amqpInstance));
  return st.Resource !== undefined ? any : !any;
}

function compareStatements(a: RefStatement, b: RefStatement): number {
  const key = (s: RefStatement): [string, string, string] => [s.policy, s.policyType, s.version];
  const [ka, kb] = [key(a), key(b)];
  for (let i = 0; i < 3; i++) {
    if (ka[i]! < kb[i]!) return -1;
    if (ka[i]! > kb[i]!) return 1;
  }
  return a.statement - b.statement;
}

/**
 * Decide one request the plain way (SPEC §3): malformed resource → ImplicitDeny,
 * other account → ImplicitDeny, root → Allow, any matching Deny → ExplicitDeny,
 * any matching Allow → Allow, else ImplicitDeny.
 *
 * READING (missingContextKeys): keys absent from the context and referenced by the
 * statements that matched action and resource and were looked at for the decision:
 * for an ExplicitDeny the Deny statements, otherwise every such statement.
 */
export function referenceDecide(
  principal: Principal,
  policies: readonly RefPolicy[],
  request: AuthzRequest,
  opts: RefOptions = {},
): RefDecision {
  const none = (decision: DecisionKind, reason: DecisionReason): RefDecision => ({
    decision,
    reason,
    decidingStatements: [],
    missingContextKeys: [],
  });
  const arn = splitArn(request.resource);
  if (arn === undefined) return none("ImplicitDeny", "invalid-resource");
  if (arn.account !== principal.accountId) return none("ImplicitDeny", "cross-account");
  if (principal.kind === "root") return none("Allow", "root");

  const amqpInstance = opts.amqpInstanceId ?? "amqp-local";
  const denies: RefStatement[] = [];
  const allows: RefStatement[] = [];
  const missingInDenies = new Set<string>();
  const missingInAll = new Set<string>();

  for (const policy of policies) {
    policy.document.Statement.forEach((st, index) => {
      if (!statementCoversAction(st, request.action)) return;
      if (!statementCoversResource(st, request.resource, amqpInstance)) return;
      let holds = true;
      for (const [op, block] of Object.entries(st.Condition ?? {})) {
        for (const [key, raw] of Object.entries(block)) {
          const values = Array.isArray(raw) ? raw : [raw];
          const value = lookup(request.context, key);
          if (value === undefined) {
            missingInAll.add(canonicalKey(key));
            if (st.Effect === "Deny") missingInDenies.add(canonicalKey(key));
          }
          if (!conditionHolds(op, values, value)) holds = false;
        }
      }
      if (!holds) return;
      const ref: RefStatement = {
        policy: policy.name,
        policyType: policy.type,
        version: policy.version,
        statement: index,
        effect: st.Effect,
      };
      (st.Effect === "Deny" ? denies : allows).push(ref);
    });
  }

  if (denies.length > 0) {
    return {
      decision: "ExplicitDeny",
      reason: "statement",
      decidingStatements: denies.sort(compareStatements),
      missingContextKeys: [...missingInDenies].sort(),
    };
  }
  return {
    decision: allows.length > 0 ? "Allow" : "ImplicitDeny",
    reason: allows.length > 0 ? "statement" : "no-match",
    decidingStatements: allows.sort(compareStatements),
    missingContextKeys: [...missingInAll].sort(),
  };
}
