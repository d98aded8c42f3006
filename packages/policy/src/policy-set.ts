/**
 * Evaluate stage: a principal's whole policy set, compiled and indexed.
 *
 * Evaluation (SPEC §3): cross-account → ImplicitDeny; root → Allow; any matching
 * Deny → ExplicitDeny; else any matching Allow → Allow; else ImplicitDeny.
 *
 * Index: statements are grouped per requested action once (memoised), so a
 * decision only looks at statements whose Action/NotAction admits the action.
 * A large group is further indexed by resource: exact relative ids in a map,
 * wildcard patterns bucketed by their literal prefix up to a `/`, so a request
 * looks at O(depth of its path) buckets instead of every statement.
 */
import { ANY_SEGMENT, arnAccountId, parseArn } from "./arn.ts";
import {
  type CompiledPolicy,
  type CompiledStatement,
  statementMatchesAction,
  statementMatchesResource,
} from "./compile.ts";
import { evalCondition, lookupContext } from "./conditions.ts";
import {
  compareDecidingStatements,
  type DecidingStatement,
  type Decision,
  denialMessage,
} from "./decision.ts";
import type { AuthzRequest, Principal, RequestContext } from "./types.ts";
import { literalPrefix } from "./wildcard.ts";

/** Options for a policy set. */
export interface PolicySetOptions {
  /** Maximum cached decisions before the cache is cleared. Default 10,000; 0 disables caching. */
  cacheSize?: number;
}

/** Statements above this count in one action group get a resource index. */
const INDEX_THRESHOLD = 8;
/** Distinct actions memoised before the memo is reset (bounds memory for arbitrary API input). */
const ACTION_MEMO_LIMIT = 1024;

interface IndexEntry {
  st: CompiledStatement;
  pattern: number;
}

class ResourceIndex {
  /** `service\0relative` → entries whose pattern is that exact ARN tail. */
  private exact = new Map<string, IndexEntry[]>();
  /** `service\0prefix-up-to-/` → wildcard entries. */
  private prefixed = new Map<string, IndexEntry[]>();
  /** Statements that cannot be indexed (NotResource, odd patterns): always tested. */
  readonly scan: CompiledStatement[] = [];

  constructor(stmts: readonly CompiledStatement[]) {
    for (const st of stmts) {
      if (st.notResource || !st.resources.every(indexable)) {
        this.scan.push(st);
        continue;
      }
      st.resources.forEach((p, i) => {
        const arn = parseArn(p)!;
        const entry = { st, pattern: i };
        if (!arn.relative.includes("*") && !arn.relative.includes("?")) {
          push(this.exact, `${arn.service}\u0000${arn.relative}`, entry);
        } else {
          const lit = literalPrefix(arn.relative);
          push(this.prefixed, `${arn.service}\u0000${lit.slice(0, lit.lastIndexOf("/") + 1)}`, entry);
        }
      });
    }
  }

  /**
   * Statements whose resource patterns match `resource` (deduplicated).
   * INVARIANT: indexed patterns are `acs:<literal service>:<region>:<account>:<relative without :>`;
   * a request whose relative id has no `:` can then only match them field by field, so
   * looking up its service and relative id finds every match. Other requests scan all.
   */
  lookup(resource: string, all: readonly CompiledStatement[], out: CompiledStatement[]): void {
    const arn = parseArn(resource);
    if (!arn || arn.relative.includes(":")) {
      for (const st of all) if (statementMatchesResource(st, resource)) out.push(st);
      return;
    }
    for (const st of this.scan) if (statementMatchesResource(st, resource)) out.push(st);
    const svc = `${arn.service}\u0000`;
    this.collect(this.exact.get(svc + arn.relative), resource, out);
    const rel = arn.relative;
    this.collect(this.prefixed.get(svc), resource, out);
    for (let i = rel.indexOf("/"); i >= 0; i = rel.indexOf("/", i + 1)) {
      this.collect(this.prefixed.get(svc + rel.slice(0, i + 1)), resource, out);
    }
  }

  private collect(entries: IndexEntry[] | undefined, resource: string, out: CompiledStatement[]): void {
    if (!entries) return;
    for (const e of entries) {
      if (e.st.resourceMatchers[e.pattern]!(resource) && !out.includes(e.st)) out.push(e.st);
    }
  }
}

function indexable(p: string): boolean {
  if (p.includes(ANY_SEGMENT)) return false;
  const arn = parseArn(p);
  return (
    arn !== undefined &&
    !arn.relative.includes(":") &&
    !arn.service.includes("*") &&
    !arn.service.includes("?")
  );
}

function push<K, V>(m: Map<K, V[]>, k: K, v: V): void {
  const l = m.get(k);
  if (l) l.push(v);
  else m.set(k, [v]);
}

class Group {
  readonly index: ResourceIndex | undefined;
  constructor(readonly stmts: readonly CompiledStatement[]) {
    this.index = stmts.length > INDEX_THRESHOLD ? new ResourceIndex(stmts) : undefined;
  }
  matching(resource: string, out: CompiledStatement[]): void {
    if (this.index) this.index.lookup(resource, this.stmts, out);
    else for (const st of this.stmts) if (statementMatchesResource(st, resource)) out.push(st);
  }
}

interface ActionCandidates {
  deny: Group;
  allow: Group;
}

const EMPTY: readonly never[] = Object.freeze([]);
const MISSING = Symbol("missing");
/** Distinct contexts cached per (action, resource); older ones are dropped first. */
const MAX_CONTEXTS_PER_RESOURCE = 8;

/**
 * A cached decision and the context values it was decided with. The first four
 * values are inline fields (one object per entry keeps a hit to few memory
 * reads); entries of one resource form a short list.
 */
interface CacheEntry {
  keys: readonly string[];
  v0: unknown;
  v1: unknown;
  v2: unknown;
  v3: unknown;
  more: readonly unknown[] | undefined;
  decision: Decision;
  next: CacheEntry | undefined;
}

function makeEntry(
  keys: readonly string[],
  values: readonly unknown[],
  decision: Decision,
  next: CacheEntry | undefined,
): CacheEntry {
  return {
    keys,
    v0: values[0],
    v1: values[1],
    v2: values[2],
    v3: values[3],
    more: values.length > 4 ? values.slice(4) : undefined,
    decision,
    next,
  };
}

function sameValues(e: CacheEntry, ctx: RequestContext | undefined): boolean {
  const keys = e.keys;
  const n = keys.length;
  for (let i = 0; i < n; i++) {
    const v = lookupContext(ctx, keys[i]!);
    const want = i === 0 ? e.v0 : i === 1 ? e.v1 : i === 2 ? e.v2 : i === 3 ? e.v3 : e.more![i - 4];
    if ((v === undefined ? MISSING : v) !== want) return false;
  }
  return true;
}

/**
 * A principal's compiled policy set. `evaluate` answers one request; `decide`
 * answers it through a bounded cache keyed by action, resource and the values
 * of the context keys the policies reference. Decisions are frozen and shared.
 */
export class PolicySet {
  /** Canonical condition keys referenced by any statement of the set. */
  readonly contextKeys: readonly string[];
  /** False when the set depends on `acs:CurrentTime`: such decisions are never cached. */
  readonly cacheable: boolean;
  /** The policies of the set, without duplicates. */
  readonly policies: readonly CompiledPolicy[];
  private readonly statements: readonly CompiledStatement[];
  private readonly byAction = new Map<string, ActionCandidates>();
  private readonly cache = new Map<string, Map<string, CacheEntry>>();
  private readonly keyLists = new Map<string, readonly string[]>();
  private cached = 0;
  private readonly cacheSize: number;
  private readonly displayName: string;

  constructor(
    readonly principal: Principal,
    policies: readonly CompiledPolicy[],
    opts: PolicySetOptions = {},
  ) {
    // The same policy version attached twice (to the user and to a group) is one policy.
    const seen = new Set<string>();
    this.policies = policies.filter((p) => {
      const k = `${p.ref.type}\u0000${p.ref.name}\u0000${p.ref.version}`;
      if (seen.has(k)) return false;
      seen.add(k);
      return true;
    });
    this.statements = this.policies.flatMap((p) => p.statements);
    const keys = new Set<string>();
    for (const p of this.policies) for (const k of p.contextKeys) keys.add(k);
    this.contextKeys = [...keys];
    this.cacheSize = opts.cacheSize ?? 10_000;
    this.cacheable = this.cacheSize > 0 && !keys.has("acs:CurrentTime");
    this.displayName =
      principal.kind === "root" ? `account \`${principal.accountId}\`` : `user \`${principal.name ?? "?"}\``;
  }

  /** The decision for one request (uncached). */
  evaluate(request: AuthzRequest): Decision {
    return this.evaluateParts(request.action, request.resource, request.context, null);
  }

  /**
   * The decision for one request through the cache (same result as `evaluate`).
   *
   * A decision depends only on the action, the resource and the context values
   * of the keys referenced by the statements that matched action and resource
   * (the ones evaluation examined). Entries are found by action and resource and
   * store those keys and values; a hit compares just them.
   */
  decide(action: string, resource: string, context?: RequestContext): Decision {
    if (!this.cacheable) return this.evaluateParts(action, resource, context, null);
    let byResource = this.cache.get(action);
    if (!byResource) {
      byResource = new Map();
      this.cache.set(action, byResource);
    }
    const head = byResource.get(resource);
    let depth = 0;
    for (let e = head; e !== undefined; e = e.next, depth++) if (sameValues(e, context)) return e.decision;

    const keys: string[] = [];
    const d = this.evaluateParts(action, resource, context, keys);
    const values: unknown[] = [];
    for (const k of keys) {
      const v = lookupContext(context, k);
      // Multi-valued keys are rare: leave them uncached rather than compare arrays.
      if (Array.isArray(v)) return d;
      values.push(v === undefined ? MISSING : v);
    }
    // Newest first; keep at most MAX_CONTEXTS_PER_RESOURCE contexts per resource.
    let next = head;
    if (depth >= MAX_CONTEXTS_PER_RESOURCE) {
      next = undefined;
      this.cached -= depth;
    }
    if (this.cached >= this.cacheSize) {
      this.clearCache();
      byResource = new Map();
      this.cache.set(action, byResource);
      next = undefined;
    }
    const entry = makeEntry(this.internKeys(keys), values, d, next);
    byResource.set(resource, entry);
    this.cached++;
    return d;
  }

  /** Share identical key lists between entries (they are few, and stay in cache). */
  private internKeys(keys: string[]): readonly string[] {
    if (keys.length === 0) return EMPTY;
    const id = keys.join("\u0000");
    let k = this.keyLists.get(id);
    if (!k) {
      k = Object.freeze(keys);
      this.keyLists.set(id, k);
    }
    return k;
  }

  /** Forget every cached decision. */
  clearCache(): void {
    this.cache.clear();
    this.keyLists.clear();
    this.cached = 0;
  }

  /** Number of decisions currently cached. */
  get cachedDecisions(): number {
    return this.cached;
  }

  private candidates(lowerAction: string): ActionCandidates {
    let c = this.byAction.get(lowerAction);
    if (c) return c;
    const deny: CompiledStatement[] = [];
    const allow: CompiledStatement[] = [];
    for (const st of this.statements) {
      if (statementMatchesAction(st, lowerAction)) (st.deny ? deny : allow).push(st);
    }
    c = { deny: new Group(deny), allow: new Group(allow) };
    if (this.byAction.size >= ACTION_MEMO_LIMIT) this.byAction.clear();
    this.byAction.set(lowerAction, c);
    return c;
  }

  /** Evaluate; when `keys` is given, collect the condition keys of the statements examined. */
  private evaluateParts(
    action: string,
    resource: string,
    context: RequestContext | undefined,
    keys: string[] | null,
  ): Decision {
    const acct = arnAccountId(resource);
    if (acct === undefined)
      return this.finish("ImplicitDeny", "invalid-resource", action, resource, EMPTY, EMPTY);
    if (acct !== this.principal.accountId) {
      return this.finish("ImplicitDeny", "cross-account", action, resource, EMPTY, EMPTY, acct);
    }
    if (this.principal.kind === "root") return this.finish("Allow", "root", action, resource, EMPTY, EMPTY);

    const cand = this.candidates(action.toLowerCase());
    const missing: string[] = [];
    const matched: CompiledStatement[] = [];
    const denies: DecidingStatement[] = [];
    cand.deny.matching(resource, matched);
    if (keys) collectKeys(matched, keys);
    for (const st of matched) if (conditionsHold(st, context, missing)) denies.push(st.ref);
    if (denies.length > 0) return this.finish("ExplicitDeny", "statement", action, resource, denies, missing);

    matched.length = 0;
    const allows: DecidingStatement[] = [];
    cand.allow.matching(resource, matched);
    if (keys) collectKeys(matched, keys);
    for (const st of matched) if (conditionsHold(st, context, missing)) allows.push(st.ref);
    if (allows.length > 0) return this.finish("Allow", "statement", action, resource, allows, missing);
    return this.finish("ImplicitDeny", "no-match", action, resource, EMPTY, missing);
  }

  private finish(
    decision: Decision["decision"],
    reason: Decision["reason"],
    action: string,
    resource: string,
    statements: readonly DecidingStatement[],
    missing: readonly string[],
    resourceAccount?: string,
  ): Decision {
    const decidingStatements =
      statements.length > 1 ? [...statements].sort(compareDecidingStatements) : statements;
    const d: Decision = {
      decision,
      action,
      resource,
      reason,
      decidingStatements,
      missingContextKeys: missing.length > 1 ? [...missing].sort() : missing,
    };
    if (decision !== "Allow") {
      d.message = denialMessage(d, this.displayName, {
        principalAccount: this.principal.accountId,
        ...(resourceAccount !== undefined ? { resourceAccount } : {}),
      });
    }
    return Object.freeze(d);
  }
}

function collectKeys(stmts: readonly CompiledStatement[], keys: string[]): void {
  for (const st of stmts) for (const c of st.conditions) if (!keys.includes(c.key)) keys.push(c.key);
}

function conditionsHold(st: CompiledStatement, ctx: RequestContext | undefined, missing: string[]): boolean {
  // Evaluate every condition (not short-circuit) so missingContextKeys is complete.
  let ok = true;
  for (const c of st.conditions) if (!evalCondition(c, ctx, missing)) ok = false;
  return ok;
}
