/**
 * Time-travel queries over the event log (SPEC §8): `state`, `explain`,
 * `whoCan`, `diff`, `history`, `verify`. Every query builds its own
 * projection — from the nearest snapshot at or before the position asked and
 * the events after it, streamed with `readAll` — and never touches a live one.
 *
 * Positions and times (`At`): a position (an integer, as returned by writes)
 * names the state after that event; a time (ISO 8601) names the state after
 * the longest prefix of the log whose events all occurred at or before it (the
 * store's `untilTime`); nothing means the head. A range `from`/`to` names two
 * such states; `history` lists the events that lead from the first to the
 * second (positions from+1 … to).
 *
 * Principals: `root`, a RAM user name of the account (resolved at the position
 * asked; for a range, at its end, else at its start), or `id:<userId>`.
 */
import type { RecordedEvent } from "@portcullis/events";
import {
  type AuthzRequest,
  type CompiledPolicy,
  compilePolicy,
  compileSystemPolicy,
  type DecidingStatement,
  type Decision,
  PolicySet,
  parseArn,
  type RequestContext,
  validatePolicy,
} from "@portcullis/policy";
import {
  type Account,
  type PrincipalRef,
  Projection,
  type ProjectionOptions,
  principalKey,
} from "@portcullis/projection";
import type { DecisionReader, DecisionReadOptions, LoggedDecision } from "./decision-log.ts";
import { namedProbes, type Probe, probeKey } from "./probes.ts";
import { decodeUser, NameWatch, withUser } from "./slices.ts";
import { type LogSource, type SnapshotStore, Snapshots } from "./snapshots.ts";
import { type StateView, stateView } from "./state-view.ts";

/**
 * A bad query (`invalid`: HTTP 400, code `InvalidParameter`) or something
 * that does not exist at the position asked (`not-found`: 404, `EntityNotExist`).
 */
export class AuditQueryError extends Error {
  override name = "AuditQueryError";
  constructor(
    message: string,
    readonly kind: "invalid" | "not-found" = "invalid",
  ) {
    super(message);
  }
  /** HTTP status for the error handler of the host app. */
  get statusCode(): 400 | 404 {
    return this.kind === "not-found" ? 404 : 400;
  }
  /** Error code for API answers. */
  get code(): "InvalidParameter" | "EntityNotExist" {
    return this.kind === "not-found" ? "EntityNotExist" : "InvalidParameter";
  }
}

/** Where a query looks: a position, a time, or the head. */
export type At = number | string | Date | undefined;

/** A parsed {@link At}. */
export type AtSpec =
  | { kind: "head" }
  | { kind: "position"; position: number }
  | { kind: "time"; timeMs: number };

/** Parse an `--at`/`from`/`to` value: digits are a position, anything else must be an ISO 8601 time. */
export function parseAt(at: At, what = "at"): AtSpec {
  if (at === undefined || at === "" || at === "now" || at === "head") return { kind: "head" };
  if (at instanceof Date) {
    if (Number.isNaN(at.getTime())) throw new AuditQueryError(`\`${what}\` is not a valid time`);
    return { kind: "time", timeMs: at.getTime() };
  }
  if (typeof at === "number") {
    if (!Number.isSafeInteger(at) || at < 0)
      throw new AuditQueryError(`\`${what}\` position must be a non-negative integer, got ${at}`);
    return { kind: "position", position: at };
  }
  const t = at.trim();
  if (/^\d+$/.test(t)) return parseAt(Number(t), what);
  const ms = /^\d{4}-\d{2}-\d{2}/.test(t) ? Date.parse(t) : Number.NaN;
  if (Number.isNaN(ms))
    throw new AuditQueryError(
      `\`${what}\` must be a position (an integer) or an ISO 8601 time (2025-01-31T10:00:00Z), got \`${at}\``,
    );
  return { kind: "time", timeMs: ms };
}

/** A resolved point in the log. */
export interface Point {
  position: number;
  /** `occurredAt` of the event at `position` (absent at 0). */
  time?: string;
}

/** How a principal is shown in query results. */
export interface PrincipalView {
  /** Principal key: `<acct>` (root) or `<acct>/<userId>`. */
  key: string;
  kind: "root" | "user";
  accountId: string;
  userId?: string;
  /** RAM user name at the position of the answer. */
  userName?: string;
}

/** The answer of `explain`. */
export interface ExplainResult extends Point {
  principal: PrincipalView;
  /** The decision object (SPEC §3), as the edges would have decided at that position. */
  decision: Decision;
}

/** One principal `whoCan` found allowed. */
export interface AllowedPrincipal {
  principal: PrincipalView;
  /** `root` (the account itself) or `statement`. */
  reason: "root" | "statement";
  /** The Allow statements that allow it (empty for root). */
  decidingStatements: readonly DecidingStatement[];
}

/** The answer of `whoCan`. */
export interface WhoCanResult extends Point {
  action: string;
  resource: string;
  context?: RequestContext;
  /** The root of the resource's account is always allowed on its own resources (SPEC §2). */
  rootAlwaysAllowed: true;
  /** Root first, then users by name. */
  allowed: AllowedPrincipal[];
  /** Users examined (existing at the position, in the resource's account). */
  examined: number;
}

/** An event as shown in `history` and `diff` (no secrets). */
export interface EventView {
  position: number;
  type: string;
  occurredAt: string;
  actor: string;
  reason?: string;
  data: unknown;
}

/** One permission gained or lost. */
export interface PermissionChange {
  action: string;
  resource: string;
  context?: RequestContext;
  /** The decision at `from` and at `to`. */
  before: Decision["decision"];
  after: Decision["decision"];
  /** The statements that allow it at the side where it is allowed. */
  allowedBy: readonly DecidingStatement[];
  /** The events in the range after which this permission flipped, in order (the last one decided it). */
  causes: EventView[];
}

/** Gains and losses of one principal. */
export interface PrincipalDiff {
  principal: PrincipalView;
  gained: PermissionChange[];
  lost: PermissionChange[];
}

/** The answer of `diff`. */
export interface DiffResult {
  from: Point;
  to: Point;
  accountId: string;
  /** `given` (the caller's probes) or `named` (derived from the policies; see probes.ts). */
  probeSource: "given" | "named";
  probes: Probe[];
  /** Only principals with a change, root first, then by user name. */
  principals: PrincipalDiff[];
}

/** The answer of `history`. */
export interface HistoryResult {
  from: Point;
  to: Point;
  principal: PrincipalView;
  /** Events in (from, to] whose effects reach the principal's permissions, existence or keys. */
  events: EventView[];
}

/** One logged decision that re-deciding contradicts. */
export interface Mismatch {
  id: string;
  record: LoggedDecision["record"];
  /** What the projection at the record's position decides (absent when it cannot be re-decided). */
  expected?: Pick<Decision, "decision" | "decidingStatements" | "reason">;
  problem: string;
}

/** The answer of `verify`. */
export interface VerifyResult {
  checked: number;
  mismatchCount: number;
  /** The first `maxMismatches` mismatches. */
  mismatches: Mismatch[];
}

/** Options of an {@link Auditor}. */
export interface AuditorOptions {
  /** Snapshots to start from (and to keep). Without them every query replays from position 1. */
  snapshots?: SnapshotStore;
  /** Options of the projections built (must match the edges', e.g. `consoleGrants`, `amqpInstanceId`). */
  projection?: ProjectionOptions;
  /** Gateway region for derived ARNs (default `local`). */
  region?: string;
  /** Projections at past positions kept for repeated queries (default 2). */
  cacheSize?: number;
}

/** Principal key → ref (`<acct>` or `<acct>/<userId>`). */
export function principalOfKey(key: string): PrincipalRef | undefined {
  const i = key.indexOf("/");
  if (i < 0) return /^\d{16}$/.test(key) ? { accountId: key, kind: "root" } : undefined;
  const accountId = key.slice(0, i);
  const userId = key.slice(i + 1);
  return /^\d{16}$/.test(accountId) && userId !== "" ? { accountId, kind: "user", userId } : undefined;
}

/** A one-line actor: `root`, `user alice`, `system admin-api`. */
export function actorText(e: RecordedEvent): string {
  const a = e.actor;
  if (a.kind === "root") return "root";
  if (a.kind === "user") return `user ${a.userName}`;
  return `system ${a.name}`;
}

/** An event without secrets. */
export function eventView(e: RecordedEvent): EventView {
  const data = JSON.parse(JSON.stringify(e.data, (k, v) => (k === "secret" ? undefined : v))) as unknown;
  return {
    position: e.position,
    type: e.type,
    occurredAt: e.occurredAt,
    actor: actorText(e),
    ...(e.reason !== undefined ? { reason: e.reason } : {}),
    data,
  };
}

/** The statements identity used to compare decisions: policy, type, version, index. */
function statementsKey(s: readonly DecidingStatement[]): string {
  return s
    .map((x) => `${x.policyType}\u0000${x.policy}\u0000${x.version}\u0000${x.statement}`)
    .sort()
    .join("\u0001");
}

/** The time-travel query engine over one event log. */
export class Auditor {
  readonly #source: LogSource;
  readonly #snapshots: Snapshots | undefined;
  readonly #popts: ProjectionOptions;
  readonly #region: string;
  readonly #cacheSize: number;
  readonly #cache = new Map<number, Projection>();
  /** How queries were answered: projections built by replay, and `explain`s answered from slices. */
  readonly stats = { replays: 0, sliceExplains: 0 };

  constructor(source: LogSource, opts: AuditorOptions = {}) {
    this.#source = source;
    this.#snapshots = opts.snapshots ? new Snapshots(opts.snapshots, source) : undefined;
    // Events read back from a store were validated by it; replay does not validate twice.
    this.#popts = { ...opts.projection, validate: false };
    this.#region = opts.region ?? "local";
    this.#cacheSize = opts.cacheSize ?? 2;
  }

  /** The snapshot manager (to write snapshots: `auditor.snapshots?.update({ every })`). */
  get snapshots(): Snapshots | undefined {
    return this.#snapshots;
  }

  /** The position (and its time) an {@link At} names. */
  async resolve(at: At, what = "at"): Promise<Point> {
    const spec = parseAt(at, what);
    // A position (or the head) needs one event read; a time needs the replay (kept for the query after).
    if (spec.kind === "time") return (await this.#projection(spec, what, true)).point;
    const head = await this.#source.head();
    if (spec.kind === "head") return this.#point(head);
    if (spec.position > head)
      throw new AuditQueryError(`\`${what}\` position ${spec.position} is after the last event (${head})`);
    return this.#point(spec.position);
  }

  /**
   * A projection of the log as of `at`, private to the caller (never a live
   * one; mutating it affects nothing else).
   */
  async projectionAt(at: At): Promise<{ projection: Projection; point: Point }> {
    return this.#projection(parseAt(at), "at", false);
  }

  /** The ids of the accounts that exist as of `at` (sorted). */
  async accounts(at?: At): Promise<string[]> {
    const { projection } = await this.#projection(parseAt(at), "at", true);
    return [...projection.state.accounts.keys()].sort();
  }

  /** `state --at`: the whole projected state (one account, or all), without secrets. */
  async state(q: { at?: At; accountId?: string } = {}): Promise<StateView> {
    const { projection, point } = await this.#projection(parseAt(q.at), "at", true);
    return stateView(projection.state, {
      ...(q.accountId !== undefined ? { accountId: q.accountId } : {}),
      ...(point.time !== undefined ? { time: point.time } : {}),
    });
  }

  /** `explain`: the decision object for one request as of `at`. */
  async explain(q: {
    principal: string | PrincipalRef;
    action: string;
    resource: string;
    context?: RequestContext;
    at?: At;
    /** The caller's account (default: the resource's). */
    accountId?: string;
  }): Promise<ExplainResult> {
    const accountId = q.accountId ?? this.#resourceAccount(q.resource);
    if (typeof q.principal !== "string" && q.principal.accountId !== accountId)
      throw new AuditQueryError(`the principal is not of account \`${accountId}\``);
    const spec = parseAt(q.at);
    const slim = await this.#slimExplain(spec, accountId, q);
    if (slim) return slim;
    const { projection, point } = await this.#projection(spec, "at", true);
    const p =
      typeof q.principal === "string" ? resolvePrincipal(projection, accountId, q.principal) : q.principal;
    if (p.accountId !== accountId)
      throw new AuditQueryError(`the principal is not of account \`${accountId}\``);
    const decision = projection.authorizeUncached(p, q.action, q.resource, q.context);
    return { ...point, principal: principalView(projection, p), decision };
  }

  /**
   * `who-can`: every principal of the resource's account allowed the request as
   * of `at`, with the statements that allow each. Each policy is evaluated once;
   * only users holding a policy that may allow (or console grants) are decided,
   * exactly, by the projection.
   */
  async whoCan(q: {
    action: string;
    resource: string;
    context?: RequestContext;
    at?: At;
    accountId?: string;
  }): Promise<WhoCanResult> {
    const accountId = q.accountId ?? this.#resourceAccount(q.resource);
    const { projection, point } = await this.#projection(parseAt(q.at), "at", true);
    const allowed: AllowedPrincipal[] = [];
    const root: PrincipalRef = { accountId, kind: "root" };
    const rd = projection.authorizeUncached(root, q.action, q.resource, q.context);
    if (rd.decision === "Allow")
      allowed.push({ principal: principalView(projection, root), reason: "root", decidingStatements: [] });
    const a = projection.account(accountId);
    let examined = 0;
    const users: AllowedPrincipal[] = [];
    if (a) {
      // A user can only be allowed if one of its policies (or its console grants) has a matching
      // Allow: evaluate each policy once, then decide exactly (uncached) only for those users.
      const mayAllow = this.#policyFilter(a, { action: q.action, resource: q.resource, context: q.context });
      for (const u of a.users.values()) {
        examined++;
        if (u.disabled) continue;
        let candidate = u.consoleGrants.size > 0 && grantsMayAllow(u.consoleGrants, q.action, q.resource);
        if (!candidate) for (const r of u.policies) if (mayAllow(r)) candidate = true;
        if (!candidate)
          for (const g of u.groups)
            for (const r of a.groups.get(g)?.policies ?? []) if (mayAllow(r)) candidate = true;
        if (!candidate) continue;
        const p: PrincipalRef = { accountId, kind: "user", userId: u.userId };
        const d = projection.authorizeUncached(p, q.action, q.resource, q.context);
        if (d.decision === "Allow")
          users.push({
            principal: principalView(projection, p),
            reason: "statement",
            decidingStatements: d.decidingStatements,
          });
      }
    }
    users.sort((x, y) => (x.principal.userName! < y.principal.userName! ? -1 : 1));
    allowed.push(...users);
    return {
      ...point,
      action: q.action,
      resource: q.resource,
      ...(q.context !== undefined ? { context: q.context } : {}),
      rootAlwaysAllowed: true,
      allowed,
      examined,
    };
  }

  /**
   * `diff`: permissions gained and lost per principal between two states (see
   * probes.ts for what a permission is), with the events after which each
   * flipped. Principals: root and every user existing at `from` or `to`.
   */
  async diff(q: {
    accountId: string;
    from?: At;
    to?: At;
    principal?: string | PrincipalRef;
    probes?: readonly Probe[];
  }): Promise<DiffResult> {
    const accountId = q.accountId;
    const fromSpec = parseAt(q.from ?? 0, "from");
    const toSpec = parseAt(q.to, "to");
    const { projection: end, point: to } = await this.#projection(toSpec, "to", true);
    // The walking projection starts at `from` and is moved forward to `to` (private: no cache).
    const { projection: walk, point: from } = await this.#projection(fromSpec, "from", false);
    if (from.position > to.position)
      throw new AuditQueryError(
        `\`from\` (position ${from.position}) is after \`to\` (position ${to.position})`,
      );

    const only =
      q.principal === undefined ? undefined : this.#rangePrincipal(walk, end, accountId, q.principal);
    const probeMap = new Map<string, Probe>();
    if (q.probes && q.probes.length > 0) {
      for (const p of q.probes) if (!probeMap.has(probeKey(p))) probeMap.set(probeKey(p), p);
    } else {
      for (const pr of [walk, end]) {
        const a = pr.account(accountId);
        if (a) namedProbes(a, this.#region, probeMap);
      }
    }
    const probes = [...probeMap.values()];

    // Principals in scope: root and every user at `from` or `to`.
    const keys = new Set<string>();
    if (only) keys.add(principalKey(only));
    else {
      keys.add(accountId);
      for (const pr of [walk, end])
        for (const u of pr.account(accountId)?.users.values() ?? []) keys.add(`${accountId}/${u.userId}`);
    }
    const decide = (pr: Projection, key: string, probe: Probe) =>
      pr.authorize(principalOfKey(key)!, probe.action, probe.resource, probe.context);

    // Decisions and names at `from`, then flips while walking to `to`.
    const initial = new Map<string, Decision[]>();
    const current = new Map<string, boolean[]>();
    const startViews = new Map<string, PrincipalView>();
    for (const k of keys) {
      const ds = probes.map((pb) => decide(walk, k, pb));
      initial.set(k, ds);
      current.set(
        k,
        ds.map((d) => d.decision === "Allow"),
      );
      startViews.set(k, principalView(walk, principalOfKey(k)!));
    }
    const flips = new Map<string, EventView[][]>();
    for await (const e of this.#source.readAll({ from: walk.position + 1, to: to.position })) {
      const affected = walk.apply(e);
      let view: EventView | undefined;
      for (const k of affected.principals) {
        const bits = current.get(k);
        if (!bits) continue;
        for (const [i, pb] of probes.entries()) {
          const now = decide(walk, k, pb).decision === "Allow";
          if (now === bits[i]) continue;
          bits[i] = now;
          view ??= eventView(e);
          let f = flips.get(k);
          if (!f) {
            f = probes.map(() => []);
            flips.set(k, f);
          }
          f[i]!.push(view);
        }
      }
    }

    const principals: PrincipalDiff[] = [];
    for (const k of keys) {
      const ref = principalOfKey(k)!;
      const gained: PermissionChange[] = [];
      const lost: PermissionChange[] = [];
      for (const [i, pb] of probes.entries()) {
        // The net change comes from the two states themselves (exact, whatever the walk saw).
        const before = initial.get(k)![i]!;
        const after = end.authorizeUncached(ref, pb.action, pb.resource, pb.context);
        const was = before.decision === "Allow";
        const is = after.decision === "Allow";
        if (was === is) continue;
        const change: PermissionChange = {
          action: pb.action,
          resource: pb.resource,
          ...(pb.context !== undefined ? { context: pb.context } : {}),
          before: before.decision,
          after: after.decision,
          allowedBy: (is ? after : before).decidingStatements,
          causes: flips.get(k)?.[i] ?? [],
        };
        (is ? gained : lost).push(change);
      }
      if (gained.length === 0 && lost.length === 0) continue;
      const atEnd = principalView(end, ref);
      const principal = ref.kind === "user" && atEnd.userName === undefined ? startViews.get(k)! : atEnd;
      principals.push({ principal, gained, lost });
    }
    principals.sort(comparePrincipals);
    return { from, to, accountId, probeSource: q.probes?.length ? "given" : "named", probes, principals };
  }

  /** `history`: the events in (from, to] that touched the principal, in order, with actor and reason. */
  async history(q: {
    accountId: string;
    principal: string | PrincipalRef;
    from?: At;
    to?: At;
  }): Promise<HistoryResult> {
    const { projection: end, point: to } = await this.#projection(parseAt(q.to, "to"), "to", true);
    const { projection: walk, point: from } = await this.#projection(
      parseAt(q.from ?? 0, "from"),
      "from",
      false,
    );
    if (from.position > to.position)
      throw new AuditQueryError(
        `\`from\` (position ${from.position}) is after \`to\` (position ${to.position})`,
      );
    const ref = this.#rangePrincipal(walk, end, q.accountId, q.principal);
    const key = principalKey(ref);
    const shown = principalView(
      ref.kind === "user" && !end.account(q.accountId)?.users.has(ref.userId) ? walk : end,
      ref,
    );
    const events: EventView[] = [];
    for await (const e of this.#source.readAll({ from: walk.position + 1, to: to.position })) {
      const affected = walk.apply(e);
      if (affected.principals.has(key)) events.push(eventView(e));
    }
    return { from, to, principal: shown, events };
  }

  /**
   * `verify`: re-decide every logged decision (in the time range, of the
   * account) at its recorded position; report those that differ in decision or
   * deciding statements. Records are taken in chunks sorted by position, so the
   * replay mostly moves forward and memory stays bounded.
   */
  async verify(
    reader: DecisionReader,
    opts: DecisionReadOptions & { maxMismatches?: number; chunkSize?: number } = {},
  ): Promise<VerifyResult> {
    const { maxMismatches = 1_000, chunkSize = 10_000, ...readOpts } = opts;
    for (const k of ["from", "to"] as const) {
      const v = readOpts[k];
      if (v === undefined || v instanceof Date) continue;
      if (!/^\d{4}-\d{2}-\d{2}/.test(v) || Number.isNaN(Date.parse(v)))
        throw new AuditQueryError(`verify \`${k}\` must be an ISO 8601 time (decision times), got \`${v}\``);
    }
    const head = await this.#source.head();
    const result: VerifyResult = { checked: 0, mismatchCount: 0, mismatches: [] };
    const report = (m: Mismatch) => {
      result.mismatchCount++;
      if (result.mismatches.length < maxMismatches) result.mismatches.push(m);
    };
    let projection: Projection | undefined;
    const check = async (chunk: LoggedDecision[]) => {
      chunk.sort((a, b) => a.record.position - b.record.position);
      for (const ld of chunk) {
        const r = ld.record;
        result.checked++;
        if (!Number.isSafeInteger(r.position) || r.position < 0 || r.position > head) {
          report({ ...ld, problem: `position ${r.position} is not in the log (head ${head})` });
          continue;
        }
        const p = principalOfKey(r.principal);
        if (!p) {
          report({ ...ld, problem: `principal \`${r.principal}\` is not a principal key` });
          continue;
        }
        if (!projection || projection.position > r.position) {
          projection = (await this.#projection({ kind: "position", position: r.position }, "position", false))
            .projection;
        } else if (projection.position < r.position) {
          for await (const e of this.#source.readAll({ from: projection.position + 1, to: r.position }))
            projection.apply(e);
        }
        const d = projection.authorizeUncached(p, r.action, r.resource, r.context);
        const sameKind = d.decision === r.decision;
        const sameStatements =
          statementsKey(d.decidingStatements) === statementsKey(r.decidingStatements ?? []);
        if (!sameKind || !sameStatements) {
          report({
            ...ld,
            expected: { decision: d.decision, decidingStatements: d.decidingStatements, reason: d.reason },
            problem: !sameKind
              ? `logged ${r.decision}, but the policies at position ${r.position} give ${d.decision}`
              : `logged ${r.decision} by other statements than the policies at position ${r.position} give`,
          });
        }
      }
    };
    let chunk: LoggedDecision[] = [];
    for await (const ld of reader.read(readOpts)) {
      chunk.push(ld);
      if (chunk.length >= chunkSize) {
        await check(chunk);
        chunk = [];
      }
    }
    if (chunk.length > 0) await check(chunk);
    return result;
  }

  /**
   * `explain` from the principal slices of the nearest snapshot (slices.ts): the
   * skeleton plus the one user, replayed to the target — no other user is
   * restored. Undefined when it does not apply (no snapshots or slices, a time
   * target, a projection already cached at the target, or a change of who holds
   * the name between the snapshot and the target): the caller replays in full.
   */
  async #slimExplain(
    spec: AtSpec,
    accountId: string,
    q: { principal: string | PrincipalRef; action: string; resource: string; context?: RequestContext },
  ): Promise<ExplainResult | undefined> {
    const snaps = this.#snapshots;
    if (!snaps || spec.kind === "time") return undefined;
    const head = await this.#source.head();
    const target = spec.kind === "head" ? head : spec.position;
    if (target > head || this.#cache.has(target)) return undefined;
    const snap = await snaps.nearest({ position: target });
    if (!snap || !snaps.store.hasSkeleton(snap.position)) return undefined;
    const state = snaps.store.loadSkeleton(snap.position);
    if (!state) return undefined;
    const index = state.accounts.get(accountId)?.userIdsByName ?? new Map<string, string>();
    let userId: string | undefined;
    let watch: NameWatch | undefined;
    const spec2 = q.principal;
    if (typeof spec2 !== "string") userId = spec2.kind === "user" ? spec2.userId : undefined;
    else if (spec2.startsWith("id:")) userId = spec2.slice(3) || undefined;
    else if (spec2 !== "root") {
      userId = index.get(spec2);
      watch = new NameWatch(accountId, spec2, index);
    }
    if (userId !== undefined) {
      const row = snaps.store.userRow(snap.position, `${accountId}/${userId}`);
      if (typeof row === "string") withUser(state, accountId, decodeUser(row));
    }
    const projection = new Projection(this.#popts, state);
    let last: RecordedEvent | undefined;
    for await (const e of this.#source.readAll({ from: snap.position + 1, to: target })) {
      watch?.see(e);
      if (watch?.ambiguous) return undefined;
      projection.apply(e);
      last = e;
    }
    const p = typeof spec2 === "string" ? resolvePrincipal(projection, accountId, spec2) : spec2;
    const decision = projection.authorizeUncached(p, q.action, q.resource, q.context);
    const point: Point = last
      ? { position: last.position, time: last.occurredAt }
      : await this.#point(target);
    this.stats.sliceExplains++;
    return { ...point, principal: principalView(projection, p), decision };
  }

  /**
   * `ref` → may this policy, on its own, allow the request? (Its default version compiled
   * once, evaluated once.) A document that does not validate counts as "may" (the exact
   * decision is then left to the projection). Necessary for a user to be allowed: some
   * matching Allow statement in one of its policies, in a policy without a matching Deny.
   */
  #policyFilter(a: Account, req: AuthzRequest): (ref: string) => boolean {
    const memo = new Map<string, boolean>();
    const probe = { accountId: a.accountId, kind: "user" as const, name: "who-can" };
    const opts = this.#popts;
    return (ref) => {
      let m = memo.get(ref);
      if (m !== undefined) return m;
      const i = ref.indexOf(":");
      const type = ref.slice(0, i);
      const name = ref.slice(i + 1);
      let c: CompiledPolicy | undefined;
      m = false;
      if (type === "System") c = compileSystemPolicy(name, opts);
      else if (type === "Custom") {
        const pol = a.policies.get(name);
        const doc = pol?.versions.get(pol.defaultVersion)?.document;
        if (pol) {
          const r = validatePolicy(doc, { maxDocumentChars: Number.POSITIVE_INFINITY });
          if (r.ok)
            c = compilePolicy(r.document, { name, type: "Custom", version: pol.defaultVersion }, opts);
          else m = true;
        }
      } else m = true; // an unknown kind of reference: let the projection decide
      if (c) m = new PolicySet(probe, [c], { cacheSize: 0 }).evaluate(req).decision === "Allow";
      memo.set(ref, m);
      return m;
    };
  }

  /** The principal of a range query: resolved at `to`, else at `from`. */
  #rangePrincipal(
    fromP: Projection,
    toP: Projection,
    accountId: string,
    spec: string | PrincipalRef,
  ): PrincipalRef {
    if (typeof spec !== "string") return spec;
    try {
      return resolvePrincipal(toP, accountId, spec);
    } catch (err) {
      if (!(err instanceof AuditQueryError)) throw err;
      try {
        return resolvePrincipal(fromP, accountId, spec);
      } catch {
        throw new AuditQueryError(
          `no RAM user named \`${spec}\` in account \`${accountId}\` at position ${fromP.position} or ${toP.position}`,
          "not-found",
        );
      }
    }
  }

  #resourceAccount(resource: string): string {
    const a = parseArn(resource)?.accountId;
    if (!a || !/^\d{16}$/.test(a))
      throw new AuditQueryError(`\`${resource}\` is not an ARN with a 16-digit account id`);
    return a;
  }

  /**
   * Build (or take from the cache when `cached`) the projection for a target.
   * Cached projections are shared: callers that apply events must pass false.
   */
  async #projection(
    spec: AtSpec,
    what: string,
    cached: boolean,
  ): Promise<{ projection: Projection; point: Point }> {
    const head = await this.#source.head();
    let target: { position: number } | { timeMs: number };
    if (spec.kind === "head") target = { position: head };
    else if (spec.kind === "position") {
      if (spec.position > head)
        throw new AuditQueryError(`\`${what}\` position ${spec.position} is after the last event (${head})`);
      target = { position: spec.position };
    } else target = { timeMs: spec.timeMs };

    if (cached && "position" in target) {
      const hit = this.#cache.get(target.position);
      if (hit) {
        // Most recently used last.
        this.#cache.delete(target.position);
        this.#cache.set(target.position, hit);
        return { projection: hit, point: await this.#point(target.position) };
      }
    }
    const snap = await this.#snapshots?.nearest(target);
    const state = snap ? this.#snapshots!.store.load(snap.position) : undefined;
    this.stats.replays++;
    const projection = new Projection(this.#popts, state);
    let last: RecordedEvent | undefined;
    const range =
      "position" in target
        ? { from: projection.position + 1, to: target.position }
        : { from: projection.position + 1, untilTime: new Date(target.timeMs) };
    if ("position" in target && target.position === projection.position) {
      // Already there (snapshot at the target).
    } else {
      for await (const e of this.#source.readAll(range)) {
        projection.apply(e);
        last = e;
      }
    }
    const point: Point =
      last !== undefined
        ? { position: last.position, time: last.occurredAt }
        : await this.#point(projection.position);
    if (cached && this.#cacheSize > 0) {
      if (!this.#cache.has(point.position)) {
        while (this.#cache.size >= this.#cacheSize) this.#cache.delete(this.#cache.keys().next().value!);
        this.#cache.set(point.position, projection);
      }
      return { projection: this.#cache.get(point.position)!, point };
    }
    return { projection, point };
  }

  async #point(position: number): Promise<Point> {
    if (position === 0) return { position };
    for await (const e of this.#source.readAll({ from: position, to: position }))
      return { position, time: e.occurredAt };
    return { position };
  }
}

/**
 * May a user's console grants (seed 003) allow this request? A grant gives `mq:PUB`/`mq:SUB`
 * on its topic (and, for a parent topic, its sub-topics) and `mq:MqttInstanceAccess` on its
 * instance: a request on another action, service or instance cannot be allowed by it. (A
 * necessary condition only; the projection decides.)
 */
function grantsMayAllow(grants: ReadonlyMap<string, unknown>, action: string, resource: string): boolean {
  const a = action.toLowerCase();
  if (a !== "mq:pub" && a !== "mq:sub" && a !== "mq:mqttinstanceaccess") return false;
  const arn = parseArn(resource);
  if (arn?.service !== "mq") return false;
  const rel = arn.relative;
  for (const k of grants.keys()) {
    const cut = k.indexOf("\u0000");
    const inst = k.slice(0, cut);
    const topic = k.slice(cut + 1);
    if (a === "mq:mqttinstanceaccess") {
      if (rel === `instance/${inst}`) return true;
      continue;
    }
    const t = `topic/${inst}/${topic}`;
    if (rel === t || rel.startsWith(`${t}/`)) return true;
  }
  return false;
}

/** Resolve `root`, `id:<userId>` or a user name in an account of a projection. */
export function resolvePrincipal(projection: Projection, accountId: string, spec: string): PrincipalRef {
  if (spec === "root") return { accountId, kind: "root" };
  if (spec.startsWith("id:")) {
    const userId = spec.slice(3);
    if (!userId) throw new AuditQueryError("`id:` needs a user id");
    return { accountId, kind: "user", userId };
  }
  const u = projection.userByName(accountId, spec);
  if (!u)
    throw new AuditQueryError(
      `no RAM user named \`${spec}\` in account \`${accountId}\` at position ${projection.position}`,
      "not-found",
    );
  return { accountId, kind: "user", userId: u.userId };
}

/** How a principal is shown, with its user name at the projection's position. */
export function principalView(projection: Projection, p: PrincipalRef): PrincipalView {
  if (p.kind === "root") return { key: principalKey(p), kind: "root", accountId: p.accountId };
  const u = projection.account(p.accountId)?.users.get(p.userId);
  return {
    key: principalKey(p),
    kind: "user",
    accountId: p.accountId,
    userId: p.userId,
    ...(u ? { userName: u.userName } : {}),
  };
}

function comparePrincipals(a: PrincipalDiff, b: PrincipalDiff): number {
  if (a.principal.kind !== b.principal.kind) return a.principal.kind === "root" ? -1 : 1;
  const x = a.principal.userName ?? a.principal.key;
  const y = b.principal.userName ?? b.principal.key;
  return x < y ? -1 : x > y ? 1 : 0;
}
