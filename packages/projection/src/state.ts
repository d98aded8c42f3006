/**
 * The projected model of SPEC §2: accounts with their users, groups, access
 * keys, custom policies (with versions), attachments, console grants, MQTT
 * topics and Group IDs. Plain data (Maps and Sets) mutated only by `evolve`.
 */

import type { SealedSecret } from "@portcullis/events";
import type { PolicyDocument } from "@portcullis/policy";

/** A principal of an account: the account itself or one of its RAM users. */
export type PrincipalRef =
  | { accountId: string; kind: "root" }
  | { accountId: string; kind: "user"; userId: string };

/** Stable string key of a principal: `<acct>` for root, `<acct>/<userId>` for a user. */
export function principalKey(p: PrincipalRef): string {
  return p.kind === "root" ? p.accountId : `${p.accountId}/${p.userId}`;
}

/** A RAM user. */
export interface User {
  userId: string;
  userName: string;
  displayName?: string;
  disabled: boolean;
  /** Group ids (≤ 10). */
  groups: Set<string>;
  /** Attached policies as `System:<name>` / `Custom:<name>`. */
  policies: Set<string>;
  accessKeys: Set<string>;
  /** Console grants: `<instanceId>\u0000<topic>` → permissions. */
  consoleGrants: Map<string, Set<"PUB" | "SUB">>;
}

/** A RAM group. */
export interface Group {
  groupId: string;
  groupName: string;
  comments?: string;
  members: Set<string>;
  policies: Set<string>;
}

/** One version of a custom policy. */
export interface PolicyVersion {
  versionId: string;
  document: PolicyDocument;
  createdAt: string;
}

/** A custom policy with up to 5 versions, exactly one default. */
export interface CustomPolicy {
  policyName: string;
  description?: string;
  versions: Map<string, PolicyVersion>;
  defaultVersion: string;
}

/** An AccessKey; the secret stays sealed in the projection. */
export interface AccessKey {
  accessKeyId: string;
  owner: PrincipalRef;
  status: "Active" | "Inactive";
  secret: SealedSecret;
  createdAt: string;
}

/** A Group ID of an MQTT instance and who created it (SPEC §2 ownership rule). */
export interface GroupIdEntry {
  groupId: string;
  owner: PrincipalRef;
}

/** One account and everything in it. */
export interface Account {
  accountId: string;
  alias: string;
  users: Map<string, User>;
  userIdsByName: Map<string, string>;
  groups: Map<string, Group>;
  groupIdsByName: Map<string, string>;
  policies: Map<string, CustomPolicy>;
  /** Policies attached to the account's root are meaningless (root is always allowed); not modelled. */
  accessKeys: Set<string>;
  /** instanceId → parent topics. */
  topics: Map<string, Set<string>>;
  /** instanceId → Group ID → entry. */
  groupIds: Map<string, Map<string, GroupIdEntry>>;
}

/** The whole projected state. */
export interface State {
  accounts: Map<string, Account>;
  /** AccessKeyId → key, across accounts (ids are globally unique). */
  accessKeys: Map<string, AccessKey>;
  /** Position of the last event applied (0 = none). */
  position: number;
  /**
   * The latest `occurredAt` among the events applied (as written in the event), or
   * undefined when none was applied or it is unknown. Replay to a time uses it to tell
   * whether a snapshot lies entirely at or before that time.
   */
  maxOccurredAt?: string;
}

/** The empty state. */
export function initialState(): State {
  return { accounts: new Map(), accessKeys: new Map(), position: 0 };
}
