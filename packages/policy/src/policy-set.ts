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
import { evalCondition, lookupContextLower } from "./conditions.ts";
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
/** Stands for an absent context key in cached values (no context value is a symbol). */
const MISSING = Symbol("missing");
/** A bucket's list longer than this is split by the values of one context key. */
const LIST_LIMIT = 8;
/** Distinct actions cached per resource (beyond it, further actions are decided uncached). */
const MAX_ACTIONS_PER_RESOURCE = 32;

/*
 * The decision cache. A decision depends only on the action, the resource and
 * the context values of the condition keys of the statements that match action
 * and resource; those keys are fixed for the pair. The cache maps a resource to
 * a slot for its action:
 * - a pair whose statements reference no key has one decision: the slot is the
 *   Decision itself (it carries its action), so a hit is one Map lookup;
 * - otherwise the slot is a CacheNode holding the keys and the decisions by
 *   their values: the first one inline, later ones in a short list that is
 *   split by the values of one key once it grows;
 * - a resource asked about under several actions has an ActionSlots.
 */

/** A cached decision and the context values (of its node's keys, in order) it was decided with. */
class CacheEntry {
  constructor(
    readonly v0: unknown,
    readonly v1: unknown,
    readonly v2: unknown,
    readonly v3: unknown,
    readonly more: readonly unknown[] | undefined,
    readonly decision: Decision,
    public next: CacheEntry | undefined,
  ) {}
}

/** Entries compared one by one (newest first) while few; then split by the value of key `index`. */
class Bucket {
  head: CacheEntry | undefined = undefined;
  size = 0;
  index = -1;
  byValue: Map<unknown, Bucket> | undefined = undefined;
}

/** The cached decisions of one (action, resource) whose statements reference context keys. */
class CacheNode extends Bucket {
  v0: unknown;
  v1: unknown;
  v2: unknown;
  v3: unknown;
  more: readonly unknown[] | undefined;
  /** The first decision, inline (most nodes have one); undefined once it moved into a split. */
  decision: Decision | undefined;

  constructor(
    readonly action: string,
    readonly keys: readonly string[],
    /** Lower-cased `keys`, for the case-insensitive context lookup. */
    readonly lowerKeys: readonly string[],
    values: readonly unknown[],
    decision: Decision,
  ) {
    super();
    const n = keys.length;
    this.v0 = values[0];
    this.v1 = n > 1 ? values[1] : undefined;
    this.v2 = n > 2 ? values[2] : undefined;
    this.v3 = n > 3 ? values[3] : undefined;
    this.more = n > 4 ? values.slice(4, n) : undefined;
    this.decision = decision;
    this.size = 1;
  }
}

/** What the cache holds for one (action, resource). */
type Slot = Decision | CacheNode;

/** The slots of one resource asked about under several actions (the first two inline). */
class ActionSlots {
  /** Never equal to a request's action, so `decide` checks a single slot with one comparison. */
  readonly action: undefined = undefined;
  readonly actions: string[] = [];
  readonly slots: Slot[] = [];

  constructor(
    readonly a0: string,
    readonly s0: Slot,
    readonly a1: string,
    readonly s1: Slot,
  ) {}

  find(action: string): Slot | undefined {
    if (action === this.a0) return this.s0;
    if (action === this.a1) return this.s1;
    const actions = this.actions;
    for (let i = 0; i < actions.length; i++) if (actions[i] === action) return this.slots[i];
    return undefined;
  }

  /** Number of actions held. */
  get size(): number {
    return 2 + this.actions.length;
  }
}

/** SameValueZero, as Map keys compare: NaN equals NaN (conditions treat 0 and -0 alike). */
function same(a: unknown, b: unknown): boolean {
  // biome-ignore lint/suspicious/noSelfCompare: NaN test
  return a === b || (a !== a && b !== b);
}

function entryValue(e: CacheEntry | CacheNode, i: number): unknown {
  return i === 0 ? e.v0 : i === 1 ? e.v1 : i === 2 ? e.v2 : i === 3 ? e.v3 : e.more![i - 4];
}

/** Do the `n` (≥ 1) values of `e` equal `values`? */
function matchesEntry(e: CacheEntry | CacheNode, values: readonly unknown[], n: number): boolean {
  if (!same(e.v0, values[0])) return false;
  if (n === 1) return true;
  if (!same(e.v1, values[1])) return false;
  if (n === 2) return true;
  if (!same(e.v2, values[2])) return false;
  if (n === 3) return true;
  if (!same(e.v3, values[3])) return false;
  for (let i = 4; i < n; i++) if (!same(e.more![i - 4], values[i])) return false;
  return true;
}

/** Split a bucket's entries by the key with the most distinct values among them. */
function splitBucket(bucket: Bucket, n: number): void {
  if (bucket instanceof CacheNode && bucket.decision !== undefined) {
    // The node's inline decision joins the others.
    const d = bucket.decision;
    bucket.head = new CacheEntry(bucket.v0, bucket.v1, bucket.v2, bucket.v3, bucket.more, d, bucket.head);
    bucket.decision = undefined;
  }
  let best = 0;
  let bestCount = 0;
  for (let i = 0; i < n; i++) {
    const distinct = new Set<unknown>();
    for (let e = bucket.head; e !== undefined; e = e.next) distinct.add(entryValue(e, i));
    if (distinct.size > bestCount) {
      best = i;
      bestCount = distinct.size;
    }
  }
  const byValue = new Map<unknown, Bucket>();
  for (let e = bucket.head; e !== undefined; ) {
    const next = e.next;
    const v = entryValue(e, best);
    let child = byValue.get(v);
    if (child === undefined) {
      child = new Bucket();
      byValue.set(v, child);
    }
    e.next = child.head;
    child.head = e;
    child.size++;
    e = next;
  }
  bucket.head = undefined;
  bucket.size = 0;
  bucket.index = best;
  bucket.byValue = byValue;
}

/** Is this context value one the cache can compare (multi-valued keys and objects are left uncached)? */
function comparable(v: unknown): boolean {
  return typeof v !== "object" && typeof v !== "function";
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
  /**
   * resource → the cached decisions for it (see the decision cache above). A
   * prototype-less dictionary rather than a Map: V8 interns its keys, and turns a
   * request's resource string into a reference to the interned one on its first
   * lookup, so repeated lookups compare pointers instead of ARN contents (about
   * twice as fast as `Map.get` in the policy benchmark's workloads).
   */
  private cache: Record<string, Slot | ActionSlots> = Object.create(null);
  /** Interned key lists of cache nodes, and their lower-cased forms. */
  private readonly keyLists = new Map<string, readonly string[]>();
  private readonly lowerKeyLists = new Map<readonly string[], readonly string[]>();
  /** Scratch space for the context values of one `decide` (no allocation per call). */
  private readonly values: unknown[] = [];
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
    return this.evaluateParts(request.action, request.resource, request.context);
  }

  /**
   * The decision for one request through the cache (same result as `evaluate`).
   * A hit costs a Map lookup by resource, and when the statements that match
   * reference context keys, reading those keys and comparing their values.
   */
  decide(action: string, resource: string, context?: RequestContext): Decision {
    if (!this.cacheable) return this.evaluateParts(action, resource, context);
    let slot: Slot | ActionSlots | undefined = this.cache[resource];
    if (slot === undefined) return this.missNewSlot(action, resource, context);
    if (slot.action !== action) {
      slot = slot instanceof ActionSlots ? slot.find(action) : undefined;
      if (slot === undefined) return this.missNewSlot(action, resource, context);
    }
    if (!(slot instanceof CacheNode)) return slot;
    const node = slot;
    const keys = node.keys;
    const n = keys.length;
    const values = this.values;
    for (let i = 0; i < n; i++) {
      const v = lookupContextLower(context, keys[i]!, node.lowerKeys[i]!);
      values[i] = v === undefined ? MISSING : v;
    }
    if (node.decision !== undefined && matchesEntry(node, values, n)) return node.decision;
    let bucket: Bucket = node;
    while (bucket.byValue !== undefined) {
      const child: Bucket | undefined = bucket.byValue.get(values[bucket.index]);
      if (child === undefined) return this.missInNode(node, bucket, action, resource, context);
      bucket = child;
    }
    for (let e = bucket.head; e !== undefined; e = e.next) if (matchesEntry(e, values, n)) return e.decision;
    return this.missInNode(node, bucket, action, resource, context);
  }

  /** A miss for an (action, resource) with nothing cached: find its keys, decide, cache. */
  private missNewSlot(action: string, resource: string, context: RequestContext | undefined): Decision {
    const keys = this.referencedKeys(action, resource);
    const lowerKeys = this.lowerKeyLists.get(keys) ?? EMPTY;
    const d = this.evaluateParts(action, resource, context);
    const values = this.values;
    for (let i = 0; i < keys.length; i++) {
      const v = lookupContextLower(context, keys[i]!, lowerKeys[i]!);
      if (!comparable(v)) return d;
      values[i] = v === undefined ? MISSING : v;
    }
    if (this.cached >= this.cacheSize) this.clearCache();
    const slot: Slot = keys.length === 0 ? d : new CacheNode(action, keys, lowerKeys, values, d);
    const held = this.cache[resource];
    if (held === undefined) this.cache[resource] = slot;
    else if (held instanceof ActionSlots) {
      if (held.size >= MAX_ACTIONS_PER_RESOURCE) return d;
      held.actions.push(action);
      held.slots.push(slot);
    } else this.cache[resource] = new ActionSlots(held.action, held, action, slot);
    this.cached++;
    return d;
  }

  /**
   * A miss on a node: `values` holds the context's values of its keys, which
   * led to `bucket` (a list without them, or a split with no child for them).
   */
  private missInNode(
    node: CacheNode,
    bucket: Bucket,
    action: string,
    resource: string,
    context: RequestContext | undefined,
  ): Decision {
    const d = this.evaluateParts(action, resource, context);
    const values = this.values;
    const n = node.keys.length;
    for (let i = 0; i < n; i++) if (!comparable(values[i])) return d;
    if (this.cached >= this.cacheSize) {
      // Start afresh: the node goes too, and comes back with the next miss.
      this.clearCache();
      return d;
    }
    this.cached++;
    if (bucket.byValue !== undefined) {
      const child = new Bucket();
      bucket.byValue.set(values[bucket.index], child);
      bucket = child;
    }
    bucket.head = new CacheEntry(
      values[0],
      n > 1 ? values[1] : undefined,
      n > 2 ? values[2] : undefined,
      n > 3 ? values[3] : undefined,
      n > 4 ? values.slice(4, n) : undefined,
      d,
      bucket.head,
    );
    if (++bucket.size > LIST_LIMIT) splitBucket(bucket, n);
    return d;
  }

  /** The condition keys of every statement matching action and resource (the keys a decision can depend on). */
  private referencedKeys(action: string, resource: string): readonly string[] {
    const acct = arnAccountId(resource);
    if (acct === undefined || acct !== this.principal.accountId || this.principal.kind === "root")
      return EMPTY;
    const cand = this.candidates(action.toLowerCase());
    const matched: CompiledStatement[] = [];
    cand.deny.matching(resource, matched);
    cand.allow.matching(resource, matched);
    const keys: string[] = [];
    for (const st of matched) for (const c of st.conditions) if (!keys.includes(c.key)) keys.push(c.key);
    if (keys.length === 0) return EMPTY;
    while (this.values.length < keys.length) this.values.push(undefined);
    // Nodes share equal key lists: there are few, and shared ones stay in the CPU caches.
    const id = keys.join("\u0000");
    let shared = this.keyLists.get(id);
    if (shared === undefined) {
      shared = Object.freeze(keys);
      this.keyLists.set(id, shared);
      this.lowerKeyLists.set(shared, Object.freeze(keys.map((k) => k.toLowerCase())));
    }
    return shared;
  }

  /** Forget every cached decision. */
  clearCache(): void {
    this.cache = Object.create(null);
    this.keyLists.clear();
    this.lowerKeyLists.clear();
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

  /** Evaluate one request: the whole of SPEC §3, no cache. */
  private evaluateParts(action: string, resource: string, context: RequestContext | undefined): Decision {
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
    for (const st of matched) if (conditionsHold(st, context, missing)) denies.push(st.ref);
    if (denies.length > 0) return this.finish("ExplicitDeny", "statement", action, resource, denies, missing);

    matched.length = 0;
    const allows: DecidingStatement[] = [];
    cand.allow.matching(resource, matched);
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

function conditionsHold(st: CompiledStatement, ctx: RequestContext | undefined, missing: string[]): boolean {
  // Evaluate every condition (not short-circuit) so missingContextKeys is complete.
  let ok = true;
  for (const c of st.conditions) if (!evalCondition(c, ctx, missing)) ok = false;
  return ok;
}
