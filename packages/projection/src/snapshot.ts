/**
 * Snapshots: the state at a position as plain JSON, so an edge starts from a
 * snapshot plus the events after it (SPEC §6). Restoring is on an edge's start-up
 * path, so the encoding is built to parse fast (bench/RESULTS.md, store benchmark):
 *
 * - Format 3 (this one): users, groups and AccessKeys are flat arrays (one per
 *   account, one for all keys) rather than an array per entity and per Set; ids
 *   that repeat (policy refs, group and user ids, account ids, grant keys, key
 *   ids of the sealing key) are indexes into one string table, so JSON.parse makes
 *   far fewer arrays and strings, and the restored state shares those strings;
 *   indexes that follow from the rest (name → id, an account's and a user's
 *   AccessKey ids) are written only when they do not (`null` otherwise). About
 *   half the size of a generic `{ $map, $set }` encoding; JSON.parse takes about
 *   half the CPU time of format 2 (positional arrays per entity).
 * - Absent optional fields are `null`. The codec lists every field of the state:
 *   an object with a field it does not know makes `snapshotState` throw rather
 *   than drop data.
 */
import type { SealedSecret } from "@portcullis/events";
import type {
  AccessKey,
  Account,
  CustomPolicy,
  Group,
  GroupIdEntry,
  PolicyVersion,
  PrincipalRef,
  State,
  User,
} from "./state.ts";

/** Snapshot format version; bump when the state's shape or its encoding changes. */
export const SNAPSHOT_FORMAT = 3;

/** A serialised state. */
export interface Snapshot {
  format: number;
  position: number;
  /** The latest `occurredAt` of the events in it (State.maxOccurredAt); absent when none or unknown. */
  maxOccurredAt?: string;
  state: unknown;
}

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

/** Throw when `o` has a field the codec does not know (the state grew; the codec must too). */
function known(o: object, what: string, fields: ReadonlySet<string>): void {
  for (const k of Object.keys(o))
    if (!fields.has(k))
      throw new Error(`snapshot: ${what} has a field \`${k}\` the snapshot codec does not know`);
}
const fieldsOf = (...f: string[]) => new Set(f);
const STATE_FIELDS = fieldsOf("accounts", "accessKeys", "position", "maxOccurredAt");
const ACCOUNT_FIELDS = fieldsOf(
  "accountId",
  "alias",
  "users",
  "userIdsByName",
  "groups",
  "groupIdsByName",
  "policies",
  "accessKeys",
  "topics",
  "groupIds",
);
/** The fields of a `User` object; codecs of users check against it (they must grow with the state). */
export const USER_FIELDS: ReadonlySet<string> = fieldsOf(
  "userId",
  "userName",
  "displayName",
  "disabled",
  "groups",
  "policies",
  "accessKeys",
  "consoleGrants",
);
const GROUP_FIELDS = fieldsOf("groupId", "groupName", "comments", "members", "policies");
const POLICY_FIELDS = fieldsOf("policyName", "description", "versions", "defaultVersion");
const VERSION_FIELDS = fieldsOf("versionId", "document", "createdAt");
const KEY_FIELDS = fieldsOf("accessKeyId", "owner", "status", "secret", "createdAt");
const SECRET_FIELDS = fieldsOf("alg", "keyId", "iv", "tag", "ciphertext");
const GID_FIELDS = fieldsOf("groupId", "owner");

const opt = (v: string | undefined): Json => (v === undefined ? null : v);

/** Interns the strings that repeat; they are written once, as the snapshot's string table. */
class StringTable {
  readonly strings: string[] = [];
  readonly #index = new Map<string, number>();
  id(s: string): number {
    let i = this.#index.get(s);
    if (i === undefined) {
      i = this.strings.length;
      this.strings.push(s);
      this.#index.set(s, i);
    }
    return i;
  }
}

/** A console grant's permissions as one code, keeping their order: PUB 1, SUB 2, PUB+SUB 3, SUB+PUB 4. */
function permsCode(perms: Set<"PUB" | "SUB">): number {
  const key = [...perms].join("+");
  const code = { PUB: 1, SUB: 2, "PUB+SUB": 3, "SUB+PUB": 4 }[key];
  if (code === undefined) throw new Error(`snapshot: console grant permissions \`${key}\` are not PUB/SUB`);
  return code;
}
const PERMS: readonly (readonly ("PUB" | "SUB")[])[] = [[], ["PUB"], ["SUB"], ["PUB", "SUB"], ["SUB", "PUB"]];

/** Do two ordered collections hold the same items in the same order? */
function sameOrder<T>(a: Iterable<T>, b: readonly T[]): boolean {
  let i = 0;
  for (const x of a) if (i >= b.length || b[i++] !== x) return false;
  return i === b.length;
}

/** `name → id` as rebuilt from the entities in order; `null` when that gives the same map, else it flat. */
function nameIndex(index: Map<string, string>, entities: Iterable<[string, string]>, t: StringTable): Json {
  const derived = new Map<string, string>();
  for (const [name, id] of entities) derived.set(name, id);
  if (derived.size === index.size) {
    const it = derived.entries();
    let same = true;
    for (const [name, id] of index) {
      const d = it.next().value;
      if (d === undefined || d[0] !== name || d[1] !== id) {
        same = false;
        break;
      }
    }
    if (same) return null;
  }
  const flat: Json[] = [];
  for (const [name, id] of index) flat.push(name, t.id(id));
  return flat;
}

/** AccessKey ids of each account and of each of its users, in the order of `state.accessKeys`. */
interface KeyLists {
  account: Map<string, string[]>;
  user: Map<string, Map<string, string[]>>;
}
function keyLists(accessKeys: Map<string, AccessKey>): KeyLists {
  const out: KeyLists = { account: new Map(), user: new Map() };
  for (const k of accessKeys.values()) {
    const acct = k.owner.accountId;
    const l = out.account.get(acct);
    if (l) l.push(k.accessKeyId);
    else out.account.set(acct, [k.accessKeyId]);
    if (k.owner.kind !== "user") continue;
    let users = out.user.get(acct);
    if (!users) {
      users = new Map();
      out.user.set(acct, users);
    }
    const ul = users.get(k.owner.userId);
    if (ul) ul.push(k.accessKeyId);
    else users.set(k.owner.userId, [k.accessKeyId]);
  }
  return out;
}
const NONE: readonly string[] = [];

function encodeUsers(a: Account, t: StringTable, keys: KeyLists): Json[] {
  const f: Json[] = [];
  const userKeys = keys.user.get(a.accountId);
  for (const u of a.users.values()) {
    known(u, "a user", USER_FIELDS);
    f.push(t.id(u.userId), u.userName, opt(u.displayName), u.disabled ? 1 : 0);
    f.push(u.groups.size);
    for (const g of u.groups) f.push(t.id(g));
    f.push(u.policies.size);
    for (const r of u.policies) f.push(t.id(r));
    if (sameOrder(u.accessKeys, userKeys?.get(u.userId) ?? NONE)) f.push(-1);
    else {
      f.push(u.accessKeys.size);
      for (const k of u.accessKeys) f.push(k);
    }
    f.push(u.consoleGrants.size);
    for (const [k, perms] of u.consoleGrants) f.push(t.id(k), permsCode(perms));
  }
  return f;
}

function encodeGroups(a: Account, t: StringTable): Json[] {
  const f: Json[] = [];
  for (const g of a.groups.values()) {
    known(g, "a group", GROUP_FIELDS);
    f.push(t.id(g.groupId), g.groupName, opt(g.comments), g.members.size);
    for (const m of g.members) f.push(t.id(m));
    f.push(g.policies.size);
    for (const r of g.policies) f.push(t.id(r));
  }
  return f;
}

function encodePolicy(p: CustomPolicy): Json {
  known(p, "a policy", POLICY_FIELDS);
  const versions = [...p.versions.values()].map((v) => {
    known(v, "a policy version", VERSION_FIELDS);
    // The only nested value the state shares with its events: copied, so the snapshot is independent.
    return [v.versionId, structuredClone(v.document) as unknown as Json, v.createdAt];
  });
  return [p.policyName, opt(p.description), p.defaultVersion, versions];
}

function encodeAccount(a: Account, t: StringTable, keys: KeyLists): Json {
  known(a, "an account", ACCOUNT_FIELDS);
  const users = [...a.users.values()];
  const groups = [...a.groups.values()];
  return [
    a.accountId,
    a.alias,
    encodeUsers(a, t, keys),
    nameIndex(
      a.userIdsByName,
      users.map((u) => [u.userName, u.userId]),
      t,
    ),
    encodeGroups(a, t),
    nameIndex(
      a.groupIdsByName,
      groups.map((g) => [g.groupName, g.groupId]),
      t,
    ),
    [...a.policies.values()].map(encodePolicy),
    sameOrder(a.accessKeys, keys.account.get(a.accountId) ?? NONE) ? null : [...a.accessKeys],
    [...a.topics].map(([inst, topics]) => [inst, [...topics]]),
    [...a.groupIds].map(([inst, m]) => [
      inst,
      [...m.values()].map((e) => {
        known(e, "a Group ID", GID_FIELDS);
        return [e.groupId, e.owner.kind === "root" ? null : t.id(e.owner.userId)];
      }),
    ]),
  ];
}

function encodeKeys(state: State, t: StringTable): Json[] {
  const f: Json[] = [];
  for (const k of state.accessKeys.values()) {
    known(k, "an AccessKey", KEY_FIELDS);
    known(k.secret, "a sealed secret", SECRET_FIELDS);
    const s = k.secret;
    f.push(
      k.accessKeyId,
      t.id(k.owner.accountId),
      k.owner.kind === "root" ? null : t.id(k.owner.userId),
      k.status === "Active" ? 1 : 0,
      t.id(s.alg),
      t.id(s.keyId),
      s.iv,
      s.tag,
      s.ciphertext,
      k.createdAt,
    );
  }
  return f;
}
/** Values per AccessKey in the flat key list. */
const KEY_WIDTH = 10;

/** Serialise a state (a deep copy: later changes to the state do not reach it). */
export function snapshotState(state: State): Snapshot {
  known(state, "the state", STATE_FIELDS);
  const t = new StringTable();
  const lists = keyLists(state.accessKeys);
  const keys = encodeKeys(state, t);
  const accounts = [...state.accounts.values()].map((a) => encodeAccount(a, t, lists));
  const body: Json = {
    position: state.position,
    maxOccurredAt: opt(state.maxOccurredAt),
    strings: t.strings,
    keys,
    accounts,
  };
  return {
    format: SNAPSHOT_FORMAT,
    position: state.position,
    ...(state.maxOccurredAt !== undefined ? { maxOccurredAt: state.maxOccurredAt } : {}),
    state: body,
  };
}

// ---------------------------------------------------------------------------
// Decoding: reads exactly what the encoder wrote (positional, loosely typed).

type Row = unknown[];

/** Reads a flat array front to back. */
class Cursor {
  i = 0;
  constructor(
    readonly f: Row,
    readonly strings: readonly string[],
  ) {}
  get done(): boolean {
    return this.i >= this.f.length;
  }
  raw(): unknown {
    return this.f[this.i++];
  }
  num(): number {
    return this.f[this.i++] as number;
  }
  str(): string {
    return this.f[this.i++] as string;
  }
  /** A string given by its index in the string table. */
  ref(): string {
    return this.strings[this.f[this.i++] as number]!;
  }
  /** `count` table strings into a new Set. */
  refSet(): Set<string> {
    const n = this.num();
    const out = new Set<string>();
    for (let k = 0; k < n; k++) out.add(this.ref());
    return out;
  }
}

function decodeUsers(f: Row, strings: readonly string[], userKeys: Map<string, string[]> | undefined) {
  const users = new Map<string, User>();
  let i = 0;
  const refSet = () => {
    const n = f[i++] as number;
    const out = new Set<string>();
    for (let k = 0; k < n; k++) out.add(strings[f[i++] as number]!);
    return out;
  };
  while (i < f.length) {
    const userId = strings[f[i++] as number]!;
    const userName = f[i++] as string;
    const displayName = f[i++] as string | null;
    const disabled = f[i++] === 1;
    const groups = refSet();
    const policies = refSet();
    const nKeys = f[i++] as number;
    let accessKeys: Set<string>;
    if (nKeys === -1) accessKeys = new Set(userKeys?.get(userId) ?? NONE);
    else {
      accessKeys = new Set();
      for (let k = 0; k < nKeys; k++) accessKeys.add(f[i++] as string);
    }
    const consoleGrants = new Map<string, Set<"PUB" | "SUB">>();
    const nGrants = f[i++] as number;
    for (let k = 0; k < nGrants; k++) {
      const key = strings[f[i++] as number]!;
      consoleGrants.set(key, new Set(PERMS[f[i++] as number]));
    }
    const u: User = { userId, userName, disabled, groups, policies, accessKeys, consoleGrants };
    if (displayName !== null) u.displayName = displayName;
    users.set(userId, u);
  }
  return users;
}

function decodeGroups(f: Row, strings: readonly string[]) {
  const groups = new Map<string, Group>();
  const c = new Cursor(f, strings);
  while (!c.done) {
    const groupId = c.ref();
    const groupName = c.str();
    const comments = c.raw() as string | null;
    const members = c.refSet();
    const policies = c.refSet();
    const g: Group = { groupId, groupName, members, policies };
    if (comments !== null) g.comments = comments;
    groups.set(groupId, g);
  }
  return groups;
}

function decodePolicy(j: Row): CustomPolicy {
  const [policyName, description, defaultVersion, versions] = j as [string, string | null, string, Row[]];
  const p: CustomPolicy = {
    policyName,
    versions: new Map(
      versions.map(([versionId, document, createdAt]) => [
        versionId as string,
        { versionId, document, createdAt } as PolicyVersion,
      ]),
    ),
    defaultVersion,
  };
  if (description !== null) p.description = description;
  return p;
}

/** `name → id` as written, or rebuilt from the entities in order when not written. */
function decodeNameIndex(
  j: unknown,
  entities: Iterable<{ name: string; id: string }>,
  strings: readonly string[],
): Map<string, string> {
  const m = new Map<string, string>();
  if (j === null) {
    for (const e of entities) m.set(e.name, e.id);
    return m;
  }
  const f = j as Row;
  for (let i = 0; i < f.length; i += 2) m.set(f[i] as string, strings[f[i + 1] as number]!);
  return m;
}

function* named<T>(m: Map<string, T>, name: (x: T) => string): Iterable<{ name: string; id: string }> {
  for (const [id, x] of m) yield { name: name(x), id };
}

function decodeAccount(j: Row, strings: readonly string[], keys: KeyLists): Account {
  const [accountId, alias, usersF, byName, groupsF, groupsByName, policies, accountKeys, topics, gids] =
    j as [
      string,
      string,
      Row,
      unknown,
      Row,
      unknown,
      Row[],
      string[] | null,
      [string, string[]][],
      [string, [string, number | null][]][],
    ];
  const users = decodeUsers(usersF, strings, keys.user.get(accountId));
  const groups = decodeGroups(groupsF, strings);
  const policyMap = new Map<string, CustomPolicy>();
  for (const p of policies) policyMap.set(p[0] as string, decodePolicy(p));
  return {
    accountId,
    alias,
    users,
    userIdsByName: decodeNameIndex(
      byName,
      named(users, (u) => u.userName),
      strings,
    ),
    groups,
    groupIdsByName: decodeNameIndex(
      groupsByName,
      named(groups, (g) => g.groupName),
      strings,
    ),
    policies: policyMap,
    accessKeys: new Set(accountKeys ?? keys.account.get(accountId) ?? NONE),
    topics: new Map(topics.map(([inst, t]) => [inst, new Set(t)])),
    groupIds: new Map(
      gids.map(([inst, entries]) => [
        inst,
        new Map(
          entries.map(([groupId, owner]): [string, GroupIdEntry] => [
            groupId,
            {
              groupId,
              owner:
                owner === null
                  ? { accountId, kind: "root" }
                  : { accountId, kind: "user", userId: strings[owner]! },
            },
          ]),
        ),
      ]),
    ),
  };
}

function decodeKeys(f: Row, strings: readonly string[]): Map<string, AccessKey> {
  const out = new Map<string, AccessKey>();
  for (let i = 0; i < f.length; i += KEY_WIDTH) {
    const accessKeyId = f[i] as string;
    const accountId = strings[f[i + 1] as number]!;
    const user = f[i + 2] as number | null;
    const owner: PrincipalRef =
      user === null ? { accountId, kind: "root" } : { accountId, kind: "user", userId: strings[user]! };
    out.set(accessKeyId, {
      accessKeyId,
      owner,
      status: f[i + 3] === 1 ? "Active" : "Inactive",
      secret: {
        alg: strings[f[i + 4] as number],
        keyId: strings[f[i + 5] as number],
        iv: f[i + 6],
        tag: f[i + 7],
        ciphertext: f[i + 8],
      } as SealedSecret,
      createdAt: f[i + 9] as string,
    });
  }
  return out;
}

/**
 * Rebuild a state from a snapshot. Every Map, Set and entity is new (restoring the
 * same snapshot twice gives two independent states); policy documents are taken as
 * they are in the snapshot (documents are never mutated, only replaced).
 */
export function restoreState(s: Snapshot): State {
  if (s.format !== SNAPSHOT_FORMAT) throw new Error(`snapshot format ${s.format} is not ${SNAPSHOT_FORMAT}`);
  const body = s.state as {
    position: number;
    maxOccurredAt: string | null;
    strings: string[];
    keys: Row;
    accounts: Row[];
  };
  if (body?.position !== s.position) throw new Error("snapshot position does not match its state");
  const accessKeys = decodeKeys(body.keys, body.strings);
  const lists = keyLists(accessKeys);
  const accounts = new Map<string, Account>();
  for (const a of body.accounts) accounts.set(a[0] as string, decodeAccount(a, body.strings, lists));
  const state: State = { accounts, accessKeys, position: body.position };
  if (body.maxOccurredAt !== null) state.maxOccurredAt = body.maxOccurredAt;
  return state;
}
