/**
 * `state --at`: the projected state as plain, sorted JSON for people and
 * machines — accounts with users, groups, AccessKeys (WITHOUT secrets),
 * custom policies with their versions and default version, attachments,
 * console grants, MQTT topics and Group IDs. Deterministic: the same state
 * gives the same view, whatever order events touched it in.
 */
import type { Account, PrincipalRef, State } from "@portcullis/projection";

/** A policy attached to a user or group: `{ type, name }`. */
export interface PolicyRefView {
  policyType: "System" | "Custom";
  policyName: string;
}

/** An AccessKey without its secret. */
export interface AccessKeyView {
  accessKeyId: string;
  status: "Active" | "Inactive";
  createdAt: string;
}

/** A console grant (seed 003). */
export interface ConsoleGrantView {
  instanceId: string;
  topic: string;
  perms: ("PUB" | "SUB")[];
}

/** A RAM user. */
export interface UserView {
  userId: string;
  userName: string;
  displayName?: string;
  disabled: boolean;
  /** Group names. */
  groups: string[];
  policies: PolicyRefView[];
  accessKeys: AccessKeyView[];
  consoleGrants: ConsoleGrantView[];
}

/** A RAM group. */
export interface GroupView {
  groupId: string;
  groupName: string;
  comments?: string;
  /** Member user names. */
  members: string[];
  policies: PolicyRefView[];
}

/** A custom policy and its versions. */
export interface PolicyView {
  policyName: string;
  description?: string;
  defaultVersion: string;
  versions: { versionId: string; createdAt: string; isDefault: boolean; document: unknown }[];
}

/** One attachment: a policy on a user or group. */
export interface AttachmentView extends PolicyRefView {
  target:
    | { kind: "user"; userId: string; userName: string }
    | { kind: "group"; groupId: string; groupName: string };
  /** False when the named custom policy does not exist (an attachment made before the policy). */
  policyExists: boolean;
}

/** One account. */
export interface AccountView {
  accountId: string;
  alias: string;
  users: UserView[];
  groups: GroupView[];
  policies: PolicyView[];
  attachments: AttachmentView[];
  /** AccessKeys of the account itself (root). */
  rootAccessKeys: AccessKeyView[];
  /** MQTT parent topics per instance. */
  topics: { instanceId: string; topics: string[] }[];
  /** MQTT Group IDs with their owner (`root` or a user name). */
  groupIds: { instanceId: string; groupId: string; owner: string }[];
}

/** The whole view at a position. */
export interface StateView {
  position: number;
  /** `occurredAt` of the event at `position` (absent at 0). */
  time?: string;
  accounts: AccountView[];
}

const byStr =
  <T>(f: (x: T) => string) =>
  (a: T, b: T): number =>
    f(a) < f(b) ? -1 : f(a) > f(b) ? 1 : 0;

function refView(ref: string): PolicyRefView {
  const i = ref.indexOf(":");
  return { policyType: ref.slice(0, i) as "System" | "Custom", policyName: ref.slice(i + 1) };
}

const refSort = byStr<PolicyRefView>((r) => `${r.policyType}\u0000${r.policyName}`);

function keyViews(state: State, ids: Iterable<string>): AccessKeyView[] {
  const out: AccessKeyView[] = [];
  for (const id of ids) {
    const k = state.accessKeys.get(id);
    // INVARIANT: the sealed secret is never copied into a view.
    if (k) out.push({ accessKeyId: k.accessKeyId, status: k.status, createdAt: k.createdAt });
  }
  return out.sort(byStr((k) => k.accessKeyId));
}

/** The display name of a principal of an account: `root` or the user name (id when unknown). */
export function ownerName(a: Account, p: PrincipalRef): string {
  if (p.kind === "root") return "root";
  return a.users.get(p.userId)?.userName ?? `id:${p.userId}`;
}

/** The view of one account. */
export function accountView(state: State, a: Account): AccountView {
  const userName = (id: string) => a.users.get(id)?.userName ?? `id:${id}`;
  const groupName = (id: string) => a.groups.get(id)?.groupName ?? `id:${id}`;
  const users: UserView[] = [...a.users.values()].map((u) => ({
    userId: u.userId,
    userName: u.userName,
    ...(u.displayName !== undefined ? { displayName: u.displayName } : {}),
    disabled: u.disabled,
    groups: [...u.groups].map(groupName).sort(),
    policies: [...u.policies].map(refView).sort(refSort),
    accessKeys: keyViews(state, u.accessKeys),
    consoleGrants: [...u.consoleGrants]
      .map(([k, perms]) => {
        const [instanceId, topic] = k.split("\u0000") as [string, string];
        return { instanceId, topic, perms: [...perms].sort() };
      })
      .sort(byStr((g) => `${g.instanceId}\u0000${g.topic}`)),
  }));
  users.sort(byStr((u) => u.userName));
  const groups: GroupView[] = [...a.groups.values()].map((g) => ({
    groupId: g.groupId,
    groupName: g.groupName,
    ...(g.comments !== undefined ? { comments: g.comments } : {}),
    members: [...g.members].map(userName).sort(),
    policies: [...g.policies].map(refView).sort(refSort),
  }));
  groups.sort(byStr((g) => g.groupName));
  const policies: PolicyView[] = [...a.policies.values()].map((p) => ({
    policyName: p.policyName,
    ...(p.description !== undefined ? { description: p.description } : {}),
    defaultVersion: p.defaultVersion,
    versions: [...p.versions.values()]
      .map((v) => ({
        versionId: v.versionId,
        createdAt: v.createdAt,
        isDefault: v.versionId === p.defaultVersion,
        document: v.document as unknown,
      }))
      .sort((x, y) => Number(x.versionId.slice(1)) - Number(y.versionId.slice(1))),
  }));
  policies.sort(byStr((p) => p.policyName));
  const exists = (r: PolicyRefView) => r.policyType === "System" || a.policies.has(r.policyName);
  const attachments: AttachmentView[] = [
    ...users.flatMap((u) =>
      u.policies.map((r) => ({
        ...r,
        target: { kind: "user" as const, userId: u.userId, userName: u.userName },
        policyExists: exists(r),
      })),
    ),
    ...groups.flatMap((g) =>
      g.policies.map((r) => ({
        ...r,
        target: { kind: "group" as const, groupId: g.groupId, groupName: g.groupName },
        policyExists: exists(r),
      })),
    ),
  ];
  const rootKeys = [...a.accessKeys].filter((id) => state.accessKeys.get(id)?.owner.kind === "root");
  return {
    accountId: a.accountId,
    alias: a.alias,
    users,
    groups,
    policies,
    attachments,
    rootAccessKeys: keyViews(state, rootKeys),
    topics: [...a.topics]
      .filter(([, set]) => set.size > 0)
      .map(([instanceId, set]) => ({ instanceId, topics: [...set].sort() }))
      .sort(byStr((t) => t.instanceId)),
    groupIds: [...a.groupIds]
      .flatMap(([instanceId, m]) =>
        [...m.values()].map((g) => ({ instanceId, groupId: g.groupId, owner: ownerName(a, g.owner) })),
      )
      .sort(byStr((g) => `${g.instanceId}\u0000${g.groupId}`)),
  };
}

/** The view of a state: every account, or only `accountId`. */
export function stateView(state: State, opts: { accountId?: string; time?: string } = {}): StateView {
  const accounts = [...state.accounts.values()]
    .filter((a) => opts.accountId === undefined || a.accountId === opts.accountId)
    .sort(byStr((a) => a.accountId))
    .map((a) => accountView(state, a));
  return { position: state.position, ...(opts.time !== undefined ? { time: opts.time } : {}), accounts };
}
