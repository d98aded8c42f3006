/**
 * Compile stage: a validated document becomes statements with pre-lowered
 * action patterns, normalised resource patterns (SPEC §4 legacy forms, parent
 * topics, AMQP instances) compiled to matchers, and compiled conditions.
 * Everything per-request-independent happens here, once.
 */
import { ANY_SEGMENT, type NormalizeOptions, normalizeResourcePattern, parseArn } from "./arn.ts";
import { type CompiledCondition, compileCondition } from "./conditions.ts";
import type { DecidingStatement } from "./decision.ts";
import { PolicyValidationError } from "./errors.ts";
import { parsePolicy } from "./parse.ts";
import { getSystemPolicy } from "./system-policies.ts";
import type { PolicyDocument, PolicyRef, Statement } from "./types.ts";
import { type PolicyLimits, validatePolicy } from "./validate.ts";
import { compileWildcard, hasWildcard, type WildcardMatcher } from "./wildcard.ts";

/** Options for compilation. */
export interface CompileOptions extends NormalizeOptions, PolicyLimits {}

/** A statement ready for evaluation. */
export interface CompiledStatement {
  /** What the decision object reports for this statement (shared, immutable). */
  readonly ref: DecidingStatement;
  readonly deny: boolean;
  /** Lower-cased action patterns of `Action`, or of `NotAction` when `notAction`. */
  readonly actions: readonly string[];
  readonly notAction: boolean;
  /** Canonical resource patterns (after normalisation) of `Resource`/`NotResource`. */
  readonly resources: readonly string[];
  readonly resourceMatchers: readonly WildcardMatcher[];
  readonly notResource: boolean;
  readonly conditions: readonly CompiledCondition[];
}

/** One policy version, compiled. */
export interface CompiledPolicy {
  readonly ref: PolicyRef;
  readonly statements: readonly CompiledStatement[];
  /** Canonical condition keys referenced anywhere in the policy. */
  readonly contextKeys: readonly string[];
}

/** Does the lower-cased `action` match this statement's Action/NotAction? */
export function statementMatchesAction(st: CompiledStatement, lowerAction: string): boolean {
  let any = false;
  for (const p of st.actions) {
    if (p === lowerAction || (hasWildcard(p) && compileWildcard(p)(lowerAction))) {
      any = true;
      break;
    }
  }
  return st.notAction ? !any : any;
}

/** Does `resource` match this statement's Resource/NotResource? */
export function statementMatchesResource(st: CompiledStatement, resource: string): boolean {
  let any = false;
  for (const m of st.resourceMatchers) {
    if (m(resource)) {
      any = true;
      break;
    }
  }
  return st.notResource ? !any : any;
}

/**
 * Compile a normalised resource pattern. Plain patterns are globs; one holding
 * ANY_SEGMENT (`…:topic/<one segment>/…`) matches the glob before it against the
 * request up to its instance, and the glob after it against the rest.
 */
export function compileResourcePattern(pattern: string): WildcardMatcher {
  const cut = pattern.indexOf(ANY_SEGMENT);
  if (cut < 0) return compileWildcard(pattern);
  const before = compileWildcard(pattern.slice(0, cut));
  const after = compileWildcard(pattern.slice(cut + 1));
  return (s) => {
    const arn = parseArn(s);
    if (!arn?.relative.startsWith("topic/")) return false;
    const segStart = s.length - arn.relative.length + 6;
    const segEnd = s.indexOf("/", segStart);
    return segEnd > segStart && before(s.slice(0, segStart)) && after(s.slice(segEnd));
  };
}

function compileStatement(
  s: Statement,
  index: number,
  ref: PolicyRef,
  opts: CompileOptions,
): CompiledStatement {
  const notAction = s.NotAction !== undefined;
  const notResource = s.NotResource !== undefined;
  const actions = (notAction ? s.NotAction! : s.Action!).map((a) => a.toLowerCase());
  const resources = [
    ...new Set(
      (notResource ? s.NotResource! : s.Resource!).flatMap((r) => normalizeResourcePattern(r, opts)),
    ),
  ];
  const conditions: CompiledCondition[] = [];
  for (const [op, keys] of Object.entries(s.Condition ?? {})) {
    for (const [key, values] of Object.entries(keys)) {
      conditions.push(compileCondition(op, key, Array.isArray(values) ? values : [values]));
    }
  }
  const deciding: DecidingStatement = {
    policy: ref.name,
    policyType: ref.type,
    version: ref.version,
    statement: index,
    effect: s.Effect,
    ...(s.Sid !== undefined ? { sid: s.Sid } : {}),
  };
  return {
    ref: Object.freeze(deciding),
    deny: s.Effect === "Deny",
    actions,
    notAction,
    resources,
    resourceMatchers: resources.map(compileResourcePattern),
    notResource,
    conditions,
  };
}

/** Compile a validated document (from validatePolicy/parsePolicy). */
export function compilePolicy(
  doc: PolicyDocument,
  ref: PolicyRef,
  opts: CompileOptions = {},
): CompiledPolicy {
  const statements = doc.Statement.map((s, i) => compileStatement(s, i, ref, opts));
  const keys = new Set<string>();
  for (const st of statements) for (const c of st.conditions) keys.add(c.key);
  return { ref, statements, contextKeys: [...keys] };
}

/**
 * Validate then compile a document given as JSON text or a parsed value.
 * Throws PolicyValidationError (with every error and its JSON path) when invalid.
 */
export function compilePolicySource(
  source: string | unknown,
  ref: PolicyRef,
  opts: CompileOptions = {},
): CompiledPolicy {
  const r = typeof source === "string" ? parsePolicy(source, opts) : validatePolicy(source, opts);
  if (!r.ok) throw new PolicyValidationError(r.errors, ref.name);
  return compilePolicy(r.document, ref, opts);
}

const systemCache = new Map<string, CompiledPolicy>();

/** The compiled form of a system policy (compiled once per process and options). */
export function compileSystemPolicy(name: string, opts: CompileOptions = {}): CompiledPolicy | undefined {
  const sp = getSystemPolicy(name);
  if (!sp) return undefined;
  const key = `${name}\u0000${opts.amqpInstanceId ?? ""}`;
  let c = systemCache.get(key);
  if (!c) {
    c = compilePolicy(sp.document, { name: sp.name, type: "System", version: sp.version }, opts);
    systemCache.set(key, c);
  }
  return c;
}
