/**
 * `evolve(state, event)`: apply one recorded event to the state, in place, and
 * report what it affected. Events were validated when written (and are again
 * when read); evolve is total: an event about something that no longer exists
 * changes nothing rather than throwing, so replay never stops half-way.
 *
 * INVARIANT: evolve is deterministic — the same events in the same order give
 * the same state, whether applied live, from a snapshot, or in a replay.
 */
import type { DomainEvent, RecordedEvent } from "@portcullis/events";
import { type Account, type PrincipalRef, principalKey, type State, type User } from "./state.ts";

/** What one event touched; the edges re-check live sessions of these principals. */
export interface Affected {
  /** Keys of principals whose effective permissions (or existence/status) may have changed. */
  principals: Set<string>;
  /** AccessKeyIds created, deleted, activated or deactivated. */
  accessKeys: Set<string>;
  /** Custom policies (`<acct>\u0000<name>`) whose compiled form is stale. */
  policies: Set<string>;
  /** MQTT metadata changed: `topic:<acct>/<inst>/<topic>`, `gid:<acct>/<inst>/<gid>`. */
  resources: Set<string>;
}

/** Options of {@link evolve}. */
export interface EvolveOptions {
  /**
   * Collect the users a policy change reaches (directly and through groups) into
   * `principals` (default true). Off, `principals` lacks them: for a replay whose
   * affected sets nobody reads (a feed's catch-up before any listener), where
   * collecting them is a fifth of the work.
   */
  policyUsers?: boolean;
}

/** An empty Affected record. */
export function noneAffected(): Affected {
  return { principals: new Set(), accessKeys: new Set(), policies: new Set(), resources: new Set() };
}

const policyRef = (type: "System" | "Custom", name: string) => `${type}:${name}`;
const userKey = (acct: string, userId: string) => principalKey({ accountId: acct, kind: "user", userId });

function account(state: State, accountId: string): Account {
  let a = state.accounts.get(accountId);
  if (!a) {
    a = {
      accountId,
      alias: accountId,
      users: new Map(),
      userIdsByName: new Map(),
      groups: new Map(),
      groupIdsByName: new Map(),
      policies: new Map(),
      accessKeys: new Set(),
      topics: new Map(),
      groupIds: new Map(),
    };
    state.accounts.set(accountId, a);
  }
  return a;
}

/**
 * Who holds each policy ref in an account: users it is attached to directly, and
 * groups. Derived from the state, so kept out of it (and out of snapshots): built on
 * first use per account object, then maintained by `evolve`.
 * INVARIANT: the state is mutated only by `evolve` (else this index goes stale).
 */
interface Holders {
  users: Map<string, Set<string>>;
  groups: Map<string, Set<string>>;
  /** userId → principal key, so touching hundreds of users allocates and hashes no new strings. */
  keys: Map<string, string>;
}
const holdersOf = new WeakMap<Account, Holders>();

function link(m: Map<string, Set<string>>, ref: string, id: string): void {
  const s = m.get(ref);
  if (s) s.add(id);
  else m.set(ref, new Set([id]));
}
function unlink(m: Map<string, Set<string>>, ref: string, id: string): void {
  const s = m.get(ref);
  if (s?.delete(id) && s.size === 0) m.delete(ref);
}

function holders(a: Account): Holders {
  let h = holdersOf.get(a);
  if (!h) {
    h = { users: new Map(), groups: new Map(), keys: new Map() };
    for (const u of a.users.values()) for (const r of u.policies) link(h.users, r, u.userId);
    for (const g of a.groups.values()) for (const r of g.policies) link(h.groups, r, g.groupId);
    holdersOf.set(a, h);
  }
  return h;
}

/** Users a policy reaches in an account: attached directly or through a group. */
export function usersWithPolicy(a: Account, ref: string): Set<string> {
  const h = holders(a);
  const out = new Set(h.users.get(ref));
  for (const gid of h.groups.get(ref) ?? []) for (const m of a.groups.get(gid)?.members ?? []) out.add(m);
  return out;
}

/** Forget `name` → `id`, unless the name now belongs to another entity. */
function unindexName(index: Map<string, string>, name: string, id: string): void {
  if (index.get(name) === id) index.delete(name);
}

function touchUsers(aff: Affected, acct: string, userIds: Iterable<string>): void {
  for (const id of userIds) aff.principals.add(userKey(acct, id));
}

/** Add every user a policy reaches (directly or through a group) to `aff`. */
function touchPolicyUsers(aff: Affected, a: Account, ref: string): void {
  const h = holders(a);
  const add = (id: string) => {
    let k = h.keys.get(id);
    if (k === undefined) {
      k = userKey(a.accountId, id);
      h.keys.set(id, k);
    }
    aff.principals.add(k);
  };
  for (const id of h.users.get(ref) ?? []) add(id);
  for (const gid of h.groups.get(ref) ?? []) for (const m of a.groups.get(gid)?.members ?? []) add(m);
}

function removeKey(state: State, a: Account, id: string, aff: Affected): void {
  const k = state.accessKeys.get(id);
  if (!k) return;
  state.accessKeys.delete(id);
  a.accessKeys.delete(id);
  if (k.owner.kind === "user") a.users.get(k.owner.userId)?.accessKeys.delete(id);
  aff.accessKeys.add(id);
  aff.principals.add(principalKey(k.owner));
}

/** Record that `event` was applied: its position, and the latest time seen. */
function advance(state: State, event: RecordedEvent): void {
  state.position = event.position;
  const at = event.occurredAt;
  const max = state.maxOccurredAt;
  if (max === undefined) {
    if (!Number.isNaN(Date.parse(at))) state.maxOccurredAt = at;
    return;
  }
  // Fast path: two UTC times as `toISOString` writes them compare as strings.
  if (at.length === 24 && max.length === 24 && at.endsWith("Z") && max.endsWith("Z")) {
    if (at > max) state.maxOccurredAt = at;
    return;
  }
  const t = Date.parse(at);
  if (!Number.isNaN(t) && t > Date.parse(max)) state.maxOccurredAt = at;
}

/**
 * Apply one event in place; returns what it affected. Advances `state.position`.
 *
 * Events a decider never writes but validation accepts change nothing (beyond the
 * position) rather than corrupting the indexes: any event of an account before its
 * AccountCreated (it does not bring the account, and so its root, to life), a
 * UserCreated/GroupCreated for an id that exists, an AccessKeyCreated for an id that
 * exists (in any account: AccessKey ids are global, streams are per account).
 */
export function evolve(state: State, event: RecordedEvent & DomainEvent, opts: EvolveOptions = {}): Affected {
  const aff = noneAffected();
  const acct = event.accountId;
  const e = event as DomainEvent;
  if (e.type === "AccountCreated") {
    account(state, acct).alias = e.data.alias;
    aff.principals.add(acct);
    advance(state, event);
    return aff;
  }
  const a = state.accounts.get(acct);
  if (!a) {
    advance(state, event);
    return aff;
  }
  switch (e.type) {
    case "UserCreated": {
      if (a.users.has(e.data.userId)) break;
      const user: User = {
        userId: e.data.userId,
        userName: e.data.userName,
        disabled: false,
        groups: new Set(),
        policies: new Set(),
        accessKeys: new Set(),
        consoleGrants: new Map(),
        ...(e.data.displayName !== undefined ? { displayName: e.data.displayName } : {}),
      };
      a.users.set(user.userId, user);
      a.userIdsByName.set(user.userName, user.userId);
      aff.principals.add(userKey(acct, user.userId));
      break;
    }
    case "UserUpdated": {
      const u = a.users.get(e.data.userId);
      if (!u) break;
      if (e.data.newUserName !== undefined && e.data.newUserName !== u.userName) {
        unindexName(a.userIdsByName, u.userName, u.userId);
        u.userName = e.data.newUserName;
        a.userIdsByName.set(u.userName, u.userId);
      }
      if (e.data.displayName !== undefined) u.displayName = e.data.displayName;
      aff.principals.add(userKey(acct, u.userId));
      break;
    }
    case "UserDisabled":
    case "UserEnabled": {
      const u = a.users.get(e.data.userId);
      if (!u) break;
      u.disabled = e.type === "UserDisabled";
      aff.principals.add(userKey(acct, u.userId));
      for (const k of u.accessKeys) aff.accessKeys.add(k);
      break;
    }
    case "UserDeleted": {
      const u = a.users.get(e.data.userId);
      if (!u) break;
      for (const k of [...u.accessKeys]) removeKey(state, a, k, aff);
      for (const g of u.groups) a.groups.get(g)?.members.delete(u.userId);
      const h = holdersOf.get(a);
      if (h) {
        for (const r of u.policies) unlink(h.users, r, u.userId);
        h.keys.delete(u.userId);
      }
      a.users.delete(u.userId);
      unindexName(a.userIdsByName, u.userName, u.userId);
      aff.principals.add(userKey(acct, u.userId));
      break;
    }
    case "AccessKeyCreated": {
      if (state.accessKeys.has(e.data.accessKeyId)) break;
      const owner: PrincipalRef =
        e.data.owner.kind === "root"
          ? { accountId: acct, kind: "root" }
          : { accountId: acct, kind: "user", userId: e.data.owner.userId };
      if (owner.kind === "user" && !a.users.has(owner.userId)) break;
      state.accessKeys.set(e.data.accessKeyId, {
        accessKeyId: e.data.accessKeyId,
        owner,
        status: "Active",
        secret: e.data.secret,
        createdAt: e.occurredAt,
      });
      a.accessKeys.add(e.data.accessKeyId);
      if (owner.kind === "user") a.users.get(owner.userId)!.accessKeys.add(e.data.accessKeyId);
      aff.accessKeys.add(e.data.accessKeyId);
      aff.principals.add(principalKey(owner));
      break;
    }
    case "AccessKeyStatusChanged": {
      const k = state.accessKeys.get(e.data.accessKeyId);
      if (!k || k.owner.accountId !== acct) break;
      k.status = e.data.status;
      aff.accessKeys.add(k.accessKeyId);
      aff.principals.add(principalKey(k.owner));
      break;
    }
    case "AccessKeyDeleted": {
      const k = state.accessKeys.get(e.data.accessKeyId);
      if (!k || k.owner.accountId !== acct) break;
      removeKey(state, a, k.accessKeyId, aff);
      break;
    }
    case "GroupCreated":
      if (a.groups.has(e.data.groupId)) break;
      a.groups.set(e.data.groupId, {
        groupId: e.data.groupId,
        groupName: e.data.groupName,
        members: new Set(),
        policies: new Set(),
        ...(e.data.comments !== undefined ? { comments: e.data.comments } : {}),
      });
      a.groupIdsByName.set(e.data.groupName, e.data.groupId);
      break;
    case "GroupDeleted": {
      const g = a.groups.get(e.data.groupId);
      if (!g) break;
      touchUsers(aff, acct, g.members);
      for (const m of g.members) a.users.get(m)?.groups.delete(g.groupId);
      const h = holdersOf.get(a);
      if (h) for (const r of g.policies) unlink(h.groups, r, g.groupId);
      a.groups.delete(g.groupId);
      unindexName(a.groupIdsByName, g.groupName, g.groupId);
      break;
    }
    case "UserAddedToGroup":
    case "UserRemovedFromGroup": {
      const u = a.users.get(e.data.userId);
      const g = a.groups.get(e.data.groupId);
      if (!u || !g) break;
      if (e.type === "UserAddedToGroup") {
        u.groups.add(g.groupId);
        g.members.add(u.userId);
      } else {
        u.groups.delete(g.groupId);
        g.members.delete(u.userId);
      }
      aff.principals.add(userKey(acct, u.userId));
      break;
    }
    case "PolicyCreated":
      a.policies.set(e.data.policyName, {
        policyName: e.data.policyName,
        versions: new Map([
          [
            e.data.versionId,
            {
              versionId: e.data.versionId,
              document: e.data.document as never,
              createdAt: e.occurredAt,
            },
          ],
        ]),
        defaultVersion: e.data.versionId,
        ...(e.data.description !== undefined ? { description: e.data.description } : {}),
      });
      aff.policies.add(`${acct}\u0000${e.data.policyName}`);
      // A policy may have been attached before it existed (attachments name policies).
      if (opts.policyUsers !== false) touchPolicyUsers(aff, a, policyRef("Custom", e.data.policyName));
      break;
    case "PolicyVersionCreated": {
      const p = a.policies.get(e.data.policyName);
      if (!p) break;
      if (e.data.removedVersionId !== undefined && e.data.removedVersionId !== p.defaultVersion) {
        p.versions.delete(e.data.removedVersionId);
      }
      p.versions.set(e.data.versionId, {
        versionId: e.data.versionId,
        document: e.data.document as never,
        createdAt: e.occurredAt,
      });
      // A version id that reuses the default's replaces the document decisions are made on
      // (RAM never reuses an id; the log is the truth, so the projection follows it).
      if (e.data.setAsDefault || e.data.versionId === p.defaultVersion) {
        p.defaultVersion = e.data.versionId;
        aff.policies.add(`${acct}\u0000${p.policyName}`);
        if (opts.policyUsers !== false) touchPolicyUsers(aff, a, policyRef("Custom", p.policyName));
      }
      break;
    }
    case "PolicyDefaultVersionSet": {
      const p = a.policies.get(e.data.policyName);
      if (!p?.versions.has(e.data.versionId) || p.defaultVersion === e.data.versionId) break;
      p.defaultVersion = e.data.versionId;
      aff.policies.add(`${acct}\u0000${p.policyName}`);
      if (opts.policyUsers !== false) touchPolicyUsers(aff, a, policyRef("Custom", p.policyName));
      break;
    }
    case "PolicyVersionDeleted": {
      const p = a.policies.get(e.data.policyName);
      // INVARIANT: the default version is never deleted (SPEC §2); such an event changes nothing.
      if (p && p.defaultVersion !== e.data.versionId) p.versions.delete(e.data.versionId);
      break;
    }
    case "PolicyDeleted": {
      const p = a.policies.get(e.data.policyName);
      if (!p) break;
      const ref = policyRef("Custom", p.policyName);
      if (opts.policyUsers !== false) touchPolicyUsers(aff, a, ref);
      const h = holders(a);
      for (const id of h.users.get(ref) ?? []) a.users.get(id)?.policies.delete(ref);
      for (const id of h.groups.get(ref) ?? []) a.groups.get(id)?.policies.delete(ref);
      h.users.delete(ref);
      h.groups.delete(ref);
      a.policies.delete(p.policyName);
      aff.policies.add(`${acct}\u0000${p.policyName}`);
      break;
    }
    case "PolicyAttached":
    case "PolicyDetached": {
      const ref = policyRef(e.data.policyType, e.data.policyName);
      const t = e.data.target;
      const holder = t.kind === "user" ? a.users.get(t.userId) : a.groups.get(t.groupId);
      if (!holder) break;
      const h = holdersOf.get(a);
      const byRef = t.kind === "user" ? h?.users : h?.groups;
      const id = t.kind === "user" ? t.userId : t.groupId;
      if (e.type === "PolicyAttached") {
        holder.policies.add(ref);
        if (byRef) link(byRef, ref, id);
      } else {
        holder.policies.delete(ref);
        if (byRef) unlink(byRef, ref, id);
      }
      touchUsers(aff, acct, t.kind === "user" ? [t.userId] : (holder as { members: Set<string> }).members);
      break;
    }
    case "ConsoleGrantAdded":
    case "ConsoleGrantRemoved": {
      const u = a.users.get(e.data.userId);
      if (!u) break;
      const k = `${e.data.instanceId}\u0000${e.data.topic}`;
      const perms = u.consoleGrants.get(k) ?? new Set();
      for (const p of e.data.perms) {
        if (e.type === "ConsoleGrantAdded") perms.add(p);
        else perms.delete(p);
      }
      if (perms.size > 0) u.consoleGrants.set(k, perms);
      else u.consoleGrants.delete(k);
      aff.principals.add(userKey(acct, u.userId));
      break;
    }
    case "TopicCreated":
    case "TopicDeleted": {
      let set = a.topics.get(e.data.instanceId);
      if (!set) {
        set = new Set();
        a.topics.set(e.data.instanceId, set);
      }
      if (e.type === "TopicCreated") set.add(e.data.topic);
      else set.delete(e.data.topic);
      aff.resources.add(`topic:${acct}/${e.data.instanceId}/${e.data.topic}`);
      break;
    }
    case "GroupIdCreated":
    case "GroupIdDeleted": {
      let m = a.groupIds.get(e.data.instanceId);
      if (!m) {
        m = new Map();
        a.groupIds.set(e.data.instanceId, m);
      }
      if (e.type === "GroupIdCreated") {
        const owner: PrincipalRef =
          e.data.owner.kind === "root"
            ? { accountId: acct, kind: "root" }
            : { accountId: acct, kind: "user", userId: e.data.owner.userId };
        m.set(e.data.groupId, { groupId: e.data.groupId, owner });
      } else m.delete(e.data.groupId);
      aff.resources.add(`gid:${acct}/${e.data.instanceId}/${e.data.groupId}`);
      break;
    }
    default: {
      // Every event type of the catalog is handled above: a new one fails to compile here.
      // (An unknown type can only arrive with `validate: false`; like any no-op it moves the position.)
      const unhandled: never = e;
      void unhandled;
    }
  }
  advance(state, event);
  return aff;
}
