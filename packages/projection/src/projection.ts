/**
 * The projection the edges and the admin plane authorize against. It applies
 * events (`evolve`), keeps one compiled PolicySet per principal (built on first
 * use), and invalidates exactly the principals an event affects. Everything on
 * the decision path is in memory.
 */
import { type DomainEvent, type RecordedEvent, validateEvent } from "@portcullis/events";
import {
  type CompiledPolicy,
  type CompiledStatement,
  type CompileOptions,
  compilePolicy,
  compileSystemPolicy,
  type Decision,
  denialMessage,
  mqInstanceArn,
  mqTopicArn,
  type PolicyDocument,
  type PolicyRef,
  PolicySet,
  type RequestContext,
  validatePolicy,
  type WildcardMatcher,
} from "@portcullis/policy";
import { type Affected, evolve } from "./evolve.ts";
import { restoreState, type Snapshot, snapshotState } from "./snapshot.ts";
import {
  type AccessKey,
  type Account,
  initialState,
  type PrincipalRef,
  principalKey,
  type State,
  type User,
} from "./state.ts";

/** Options of a projection. */
export interface ProjectionOptions extends CompileOptions {
  /**
   * How console grants (seed 003) combine with RAM policies. `deny-wins`
   * (default, our documented deviation): a grant is one more Allow, so an explicit
   * RAM Deny still wins. `union`: the seed's rule — a permission exists if RAM
   * policies or console grants give it, so a grant allows even over a Deny.
   */
  consoleGrants?: "deny-wins" | "union";
  /** Decision cache size per principal (PolicySet option). */
  cacheSize?: number;
  /** Validate every applied event (default true; replays of trusted stores may turn it off). */
  validate?: boolean;
}

/** The resolved owner of an AccessKey. */
export interface ResolvedKey {
  key: AccessKey;
  principal: PrincipalRef;
  /** RAM user name, for users. */
  userName?: string;
  /** False when the key is inactive or its user is disabled. */
  usable: boolean;
}

interface PrincipalSets {
  ram: PolicySet;
  /** Console grants, kept apart in `union` mode only. */
  grants?: PolicySet;
}

const EMPTY: readonly never[] = Object.freeze([]);
/** Validation in the projection only normalises: limits are the writer's business (the log is the truth). */
const NO_LIMITS = { maxDocumentChars: Number.POSITIVE_INFINITY };

/** Options of {@link Projection.apply}. */
export interface ApplyOptions {
  /**
   * The caller does not read the principals reached through a policy change (a
   * catch-up nobody listens to): they are not collected, and every cached policy
   * set is forgotten instead. Default false.
   */
  quiet?: boolean;
}

/** The in-memory projection of the event log. */
export class Projection {
  readonly state: State;
  private readonly sets = new Map<string, PrincipalSets>();
  /** `<acct>\u0000<policy name>` → the compiled default version. */
  private readonly compiled = new Map<string, CompiledPolicy>();
  private readonly opts: ProjectionOptions;

  constructor(opts: ProjectionOptions = {}, state: State = initialState()) {
    this.opts = opts;
    this.state = state;
  }

  /** A projection restored from a snapshot. */
  static fromSnapshot(s: Snapshot, opts: ProjectionOptions = {}): Projection {
    return new Projection(opts, restoreState(s));
  }

  /** The position of the last applied event (0 = none). */
  get position(): number {
    return this.state.position;
  }

  /**
   * Apply the next event. Returns what it affected.
   * INVARIANT: events arrive in position order; an event at or below the current position is ignored.
   */
  apply(event: RecordedEvent, opts: ApplyOptions = {}): Affected {
    if (event.position <= this.state.position) {
      return { principals: new Set(), accessKeys: new Set(), policies: new Set(), resources: new Set() };
    }
    const e = (
      this.opts.validate === false ? event : { ...event, ...validateEvent(event) }
    ) as RecordedEvent & DomainEvent;
    const quiet = opts.quiet === true;
    const affected = evolve(this.state, e, quiet ? { policyUsers: false } : {});
    for (const k of affected.policies) this.compiled.delete(k);
    // INVARIANT: no cached policy set survives a change to it. Quiet, `principals` may lack
    // the users a policy change reached: forget every cached set instead (during a catch-up
    // there are none).
    if (quiet) {
      if (this.sets.size > 0) this.sets.clear();
    } else for (const p of affected.principals) this.sets.delete(p);
    return affected;
  }

  /** Save the state at the current position. */
  snapshot(): Snapshot {
    return snapshotState(this.state);
  }

  /** The account, if it exists. */
  account(accountId: string): Account | undefined {
    return this.state.accounts.get(accountId);
  }

  /** A user by account and name. */
  userByName(accountId: string, userName: string): User | undefined {
    const a = this.state.accounts.get(accountId);
    const id = a?.userIdsByName.get(userName);
    return id === undefined ? undefined : a!.users.get(id);
  }

  /** The AccessKey with its owner; undefined when it does not exist. */
  resolveAccessKey(accessKeyId: string): ResolvedKey | undefined {
    const key = this.state.accessKeys.get(accessKeyId);
    if (!key) return undefined;
    if (key.owner.kind === "root") {
      return {
        key,
        principal: key.owner,
        usable: key.status === "Active" && this.state.accounts.has(key.owner.accountId),
      };
    }
    const user = this.state.accounts.get(key.owner.accountId)?.users.get(key.owner.userId);
    if (!user) return undefined;
    return {
      key,
      principal: key.owner,
      userName: user.userName,
      usable: key.status === "Active" && !user.disabled,
    };
  }

  /** Is this principal present and enabled? */
  isActive(p: PrincipalRef): boolean {
    const a = this.state.accounts.get(p.accountId);
    if (!a) return false;
    if (p.kind === "root") return true;
    const u = a.users.get(p.userId);
    return u !== undefined && !u.disabled;
  }

  /** The decision for one request, through the principal's decision cache. */
  authorize(p: PrincipalRef, action: string, resource: string, context?: RequestContext): Decision {
    const sets = this.setsFor(p);
    if (!sets) return this.inactive(p, action, resource);
    const d = sets.ram.decide(action, resource, context);
    // Union (seed 003): whatever RAM does not allow, a console grant may.
    if (sets.grants && d.decision !== "Allow") {
      const g = sets.grants.decide(action, resource, context);
      if (g.decision === "Allow") return g;
    }
    return d;
  }

  /**
   * The same decision without any cache: every policy is compiled afresh from the
   * state (for audit, and for checking the caches).
   */
  authorizeUncached(p: PrincipalRef, action: string, resource: string, context?: RequestContext): Decision {
    const sets = this.buildSets(p, false);
    if (!sets) return this.inactive(p, action, resource);
    const req = { action, resource, ...(context ? { context } : {}) };
    const d = sets.ram.evaluate(req);
    if (sets.grants && d.decision !== "Allow") {
      const g = sets.grants.evaluate(req);
      if (g.decision === "Allow") return g;
    }
    return d;
  }

  /** Display name of a principal for messages: `user \`alice\`` or `account \`…\``. */
  displayName(p: PrincipalRef): string {
    if (p.kind === "root") return `account \`${p.accountId}\``;
    const u = this.state.accounts.get(p.accountId)?.users.get(p.userId);
    return `user \`${u?.userName ?? p.userId}\``;
  }

  private inactive(p: PrincipalRef, action: string, resource: string): Decision {
    const d: Decision = {
      decision: "ImplicitDeny",
      action,
      resource,
      reason: "principal-inactive",
      decidingStatements: EMPTY,
      missingContextKeys: EMPTY,
    };
    d.message = denialMessage(d, this.displayName(p));
    return Object.freeze(d);
  }

  private setsFor(p: PrincipalRef): PrincipalSets | undefined {
    const key = principalKey(p);
    let s = this.sets.get(key);
    if (s) return s;
    s = this.buildSets(p);
    if (s) this.sets.set(key, s);
    return s;
  }

  /** The compiled default version of a custom policy (through the compiled-policy cache when `cached`). */
  private compiledCustom(accountId: string, name: string, cached: boolean): CompiledPolicy | undefined {
    const pol = this.state.accounts.get(accountId)?.policies.get(name);
    if (!pol) return undefined;
    const k = `${accountId}\u0000${name}`;
    let c = cached ? this.compiled.get(k) : undefined;
    if (!c) {
      const v = pol.versions.get(pol.defaultVersion);
      const ref: PolicyRef = { name, type: "Custom", version: pol.defaultVersion };
      c = this.compileDocument(v?.document, ref);
      if (cached) this.compiled.set(k, c);
    }
    return c;
  }

  /**
   * Compile a document as stored in the log. Documents are stored as written (SPEC §3 allows
   * shorthand: one Statement object, single strings), so they are normalised first. A document
   * that does not validate (only possible with `validate: false`) fails closed: it denies
   * everything, naming itself, rather than silently dropping whatever Deny it meant.
   */
  private compileDocument(document: unknown, ref: PolicyRef): CompiledPolicy {
    const r = validatePolicy(document, NO_LIMITS);
    const doc: PolicyDocument = r.ok
      ? r.document
      : { Version: "1", Statement: [{ Effect: "Deny", Action: ["*"], Resource: ["*"] }] };
    return compilePolicy(doc, ref, this.opts);
  }

  private buildSets(p: PrincipalRef, cached = true): PrincipalSets | undefined {
    if (!this.isActive(p)) return undefined;
    const cacheOpts = this.opts.cacheSize !== undefined ? { cacheSize: this.opts.cacheSize } : {};
    const principal =
      p.kind === "root"
        ? { accountId: p.accountId, kind: "root" as const }
        : {
            accountId: p.accountId,
            kind: "user" as const,
            name: this.state.accounts.get(p.accountId)!.users.get(p.userId)!.userName,
          };
    if (p.kind === "root") return { ram: new PolicySet(principal, [], cacheOpts) };
    const a = this.state.accounts.get(p.accountId)!;
    const u = a.users.get(p.userId)!;
    const refs = new Set(u.policies);
    for (const g of u.groups) for (const r of a.groups.get(g)?.policies ?? []) refs.add(r);
    const policies: CompiledPolicy[] = [];
    for (const r of refs) {
      const [type, name] = r.split(":", 2) as ["System" | "Custom", string];
      const c =
        type === "System"
          ? compileSystemPolicy(name, this.opts)
          : this.compiledCustom(p.accountId, name, cached);
      if (c) policies.push(c);
    }
    const grants = this.consoleGrantPolicy(p.accountId, u);
    if (grants && this.opts.consoleGrants === "union") {
      return {
        ram: new PolicySet(principal, policies, cacheOpts),
        grants: new PolicySet(principal, [grants], cacheOpts),
      };
    }
    if (grants) policies.push(grants);
    return { ram: new PolicySet(principal, policies, cacheOpts) };
  }

  /**
   * Console grants as one synthetic policy: PUB/SUB on the topic (a parent topic with
   * its sub-topics, SPEC §4.1) plus access to the instance. Topic and instance names are
   * literal: a grant on the topic `a*` grants `a*` and its sub-topics, never `ab`.
   */
  private consoleGrantPolicy(accountId: string, u: User): CompiledPolicy | undefined {
    if (u.consoleGrants.size === 0) return undefined;
    const ref: PolicyRef = { name: "console-grants", type: "ConsoleGrant", version: "v1" };
    const scope = { region: "*", accountId };
    const statements: CompiledStatement[] = [];
    const instances = new Set<string>();
    for (const [k, perms] of u.consoleGrants) {
      const cut = k.indexOf("\u0000");
      const instanceId = k.slice(0, cut);
      const topic = k.slice(cut + 1);
      instances.add(instanceId);
      const rel = `topic/${instanceId}/${topic}`;
      const resources = [mqTopicArn(scope, instanceId, topic)];
      const matchers = [literalMq(accountId, rel, false)];
      if (!topic.includes("/")) {
        resources.push(`${resources[0]}/*`);
        matchers.push(literalMq(accountId, rel, true));
      }
      statements.push(
        grantStatement(
          ref,
          statements.length,
          [...perms].sort().map((x) => `mq:${x}`),
          resources,
          matchers,
        ),
      );
    }
    const ids = [...instances];
    statements.push(
      grantStatement(
        ref,
        statements.length,
        ["mq:MqttInstanceAccess"],
        ids.map((i) => mqInstanceArn(scope, i)),
        ids.map((i) => literalMq(accountId, `instance/${i}`, false)),
      ),
    );
    return { ref, statements, contextKeys: EMPTY };
  }
}

/** One Allow statement of the console-grant policy, with literal resource matchers. */
function grantStatement(
  ref: PolicyRef,
  index: number,
  actions: string[],
  resources: string[],
  matchers: WildcardMatcher[],
): CompiledStatement {
  return {
    ref: Object.freeze({
      policy: ref.name,
      policyType: ref.type,
      version: ref.version,
      statement: index,
      effect: "Allow" as const,
    }),
    deny: false,
    actions: actions.map((a) => a.toLowerCase()),
    notAction: false,
    resources,
    resourceMatchers: matchers,
    notResource: false,
    conditions: EMPTY,
  };
}

/**
 * Matches `acs:mq:<any region>:<accountId>:<relative>` literally (no wildcards in
 * `relative`); with `below`, the resources under it instead (`<relative>/…`).
 * `resources` of the statement name the same sets as patterns, so the policy set's
 * resource index (bucketed by literal prefix) still finds the statement.
 */
function literalMq(accountId: string, relative: string, below: boolean): WildcardMatcher {
  const tail = `${accountId}:${relative}`;
  return (s) => {
    if (!s.startsWith("acs:mq:")) return false;
    const c = s.indexOf(":", 7);
    if (c < 0 || !s.startsWith(tail, c + 1)) return false;
    const end = c + 1 + tail.length;
    return below ? s.charCodeAt(end) === 47 /* / */ : s.length === end;
  };
}
