/**
 * Principal slices: `explain` for one principal without restoring every user.
 *
 * Next to each full snapshot, `Snapshots.update` writes (a) the **skeleton** —
 * the state with no user objects (accounts, groups with empty member sets,
 * custom policies with their versions, the user-name index, topics, Group IDs;
 * no AccessKeys), in the projection's snapshot format — and (b) one **row** per
 * user that changed since the previous snapshot (`null` when the user is gone).
 * A user's state at snapshot s is its latest row at or before s.
 *
 * A decision for user U depends only on the account, U itself, U's groups (their
 * policies) and the custom policies; `evolve` changes U only through events
 * about U, its groups or those policies, and an event about another user (absent
 * from the partial state) changes nothing there. So the skeleton at s plus U's
 * row (with U as the only member of its groups), replayed to p, decides for U
 * exactly as the full state does. The user name is resolved from the skeleton's
 * name index at s; when an event between s and p creates, renames or deletes a
 * user holding or taking that name, the caller falls back to the full replay.
 *
 * INVARIANT: the User fields encoded here are the User type's; a user object with
 * another field makes `encodeUser` throw (the codec must grow with the state).
 */
import type { RecordedEvent } from "@portcullis/events";
import { type Account, type Group, type State, USER_FIELDS, type User } from "@portcullis/projection";

/** The row of a user (JSON text; equal users give equal text). */
export function encodeUser(u: User): string {
  for (const k of Object.keys(u))
    if (!USER_FIELDS.has(k))
      throw new Error(`slices: a user has a field \`${k}\` the slice codec does not know`);
  return JSON.stringify([
    u.userId,
    u.userName,
    u.displayName ?? null,
    u.disabled,
    [...u.groups],
    [...u.policies],
    [...u.accessKeys],
    [...u.consoleGrants].map(([k, perms]) => [k, [...perms]]),
  ]);
}

/** Inverse of {@link encodeUser}. */
export function decodeUser(row: string): User {
  const [userId, userName, displayName, disabled, groups, policies, accessKeys, grants] = JSON.parse(row) as [
    string,
    string,
    string | null,
    boolean,
    string[],
    string[],
    string[],
    [string, ("PUB" | "SUB")[]][],
  ];
  const u: User = {
    userId,
    userName,
    disabled,
    groups: new Set(groups),
    policies: new Set(policies),
    accessKeys: new Set(accessKeys),
    consoleGrants: new Map(grants.map(([k, perms]) => [k, new Set(perms)])),
  };
  if (displayName !== null) u.displayName = displayName;
  return u;
}

/** Row key of a user: `<acct>/<userId>`. */
export const userKey = (accountId: string, userId: string) => `${accountId}/${userId}`;

/** Every user's row, by key. */
export function userRows(state: State): Map<string, string> {
  const out = new Map<string, string>();
  for (const a of state.accounts.values())
    for (const u of a.users.values()) out.set(userKey(a.accountId, u.userId), encodeUser(u));
  return out;
}

/** The state without users, AccessKeys or group members (shares nothing mutable with `state` it changes). */
export function skeletonOf(state: State): State {
  const accounts = new Map<string, Account>();
  for (const [id, a] of state.accounts) {
    const groups = new Map<string, Group>();
    for (const [gid, g] of a.groups) groups.set(gid, { ...g, members: new Set() });
    accounts.set(id, { ...a, users: new Map(), groups, accessKeys: new Set() });
  }
  return { ...state, accounts, accessKeys: new Map() };
}

/** Put user `u` into a skeleton (as the only member of its groups). */
export function withUser(skeleton: State, accountId: string, u: User): void {
  const a = skeleton.accounts.get(accountId);
  if (!a) return;
  a.users.set(u.userId, u);
  for (const g of u.groups) a.groups.get(g)?.members.add(u.userId);
}

/**
 * Watches the events replayed onto a partial state for changes to who holds
 * `name` in `accountId`: any creation with that name, rename to or from it, or
 * deletion of its holder makes {@link NameWatch.ambiguous} true.
 */
export class NameWatch {
  ambiguous = false;
  readonly #names = new Map<string, string>();
  #reverse: Map<string, string> | undefined;

  constructor(
    readonly accountId: string,
    readonly name: string,
    private readonly index: ReadonlyMap<string, string>,
  ) {}

  #nameOf(userId: string): string | undefined {
    const n = this.#names.get(userId);
    if (n !== undefined) return n;
    this.#reverse ??= new Map([...this.index].map(([name, id]) => [id, name]));
    return this.#reverse.get(userId);
  }

  /** Look at one event (in order). */
  see(e: RecordedEvent): void {
    if (this.ambiguous || e.accountId !== this.accountId) return;
    const d = e.data as { userId?: string; userName?: string; newUserName?: string };
    if (e.type === "UserCreated") {
      if (d.userName === this.name || this.#nameOf(d.userId!) === this.name) this.ambiguous = true;
      else this.#names.set(d.userId!, d.userName!);
    } else if (e.type === "UserUpdated" && d.newUserName !== undefined) {
      if (d.newUserName === this.name || this.#nameOf(d.userId!) === this.name) this.ambiguous = true;
      else this.#names.set(d.userId!, d.newUserName);
    } else if (e.type === "UserDeleted") {
      if (this.#nameOf(d.userId!) === this.name) this.ambiguous = true;
    }
  }
}
