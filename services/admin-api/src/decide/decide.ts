/**
 * `decide(command, state, context) → events` (Emmett style): the domain rules
 * of SPEC §2 over the projected model. Pure and synchronous: it reads the
 * state, never changes it, and either returns the events to append (possibly
 * none, when the command changes nothing) or throws {@link CommandRejected}.
 *
 * Rules enforced here (SPEC §2): names unique per account (users, groups,
 * custom policies — which may not take a system policy's name — topics, Group
 * IDs); at most 2 AccessKeys per principal; a user in at most 10 groups;
 * policy documents valid and within the size limit; at most 1,500 custom
 * policies; at most 5 versions per policy, the oldest non-default one removed
 * when a 6th is created; the default version cannot be deleted; at most 20
 * system and 10 custom policies per user or group; a policy or a group still
 * in use cannot be deleted (RAM's DeleteConflict); a Group ID created by a RAM
 * user belongs to that user (only it and the root account may delete it).
 */
import { accountStream } from "@portcullis/events";
import { getSystemPolicy, validatePolicy } from "@portcullis/policy";
import type { Account, Group, PrincipalRef, User } from "@portcullis/projection";
import {
  type AttachTargetName,
  type Command,
  DEFAULT_LIMITS,
  type DecideContext,
  type Limits,
  type NewEvent,
} from "./commands.ts";
import { alreadyExists, CommandRejected, limitExceeded, notFound } from "./errors.ts";
import { type DecideState, policyKey } from "./state.ts";

const versionNumber = (v: string) => Number.parseInt(v.slice(1), 10) || 0;

function accountOf(state: DecideState, ctx: DecideContext): Account {
  const a = state.model.accounts.get(ctx.accountId);
  // The projection creates an account record for any event; only AccountCreated makes it real.
  if (!a || (state.index.revisions.get(accountStream(ctx.accountId)) ?? -1) < 0)
    throw notFound("Account", ctx.accountId, "account");
  return a;
}

function userOf(a: Account, userName: string): User {
  const id = a.userIdsByName.get(userName);
  const u = id === undefined ? undefined : a.users.get(id);
  if (!u) throw notFound("User", userName);
  return u;
}

function groupOf(a: Account, groupName: string): Group {
  const id = a.groupIdsByName.get(groupName);
  const g = id === undefined ? undefined : a.groups.get(id);
  if (!g) throw notFound("Group", groupName);
  return g;
}

function checkDocument(document: unknown, limits: Limits) {
  const r = validatePolicy(document, { maxDocumentChars: limits.maxDocumentChars });
  if (!r.ok) {
    const first = r.errors[0]!;
    const at = (p: string) => (p === "$" ? "document" : `document.${p}`);
    throw new CommandRejected(
      400,
      "MalformedPolicyDocument",
      `invalid policy document: ${first.message}${r.errors.length > 1 ? ` (and ${r.errors.length - 1} more)` : ""}`,
      at(first.path),
      { errors: r.errors.map((e) => ({ ...e, path: at(e.path) })) },
    );
  }
  return r.document;
}

const sameOwner = (a: PrincipalRef, b: PrincipalRef) =>
  a.kind === b.kind && (a.kind === "root" || (b.kind === "user" && a.userId === b.userId));

/** Resolve the policy reference of an attach/detach: type given or inferred from the name. */
function policyRef(a: Account, name: string, type: "System" | "Custom" | undefined) {
  const t = type ?? (getSystemPolicy(name) ? "System" : "Custom");
  if (t === "System" && !getSystemPolicy(name)) throw notFound("Policy", name, "system policy");
  if (t === "Custom" && !a.policies.has(name)) throw notFound("Policy", name, "policy");
  return { type: t, ref: `${t}:${name}` };
}

function holderOf(a: Account, t: AttachTargetName) {
  if (t.kind === "user") {
    const u = userOf(a, t.userName);
    return {
      holder: u,
      target: { kind: "user" as const, userId: u.userId },
      label: `user \`${u.userName}\``,
    };
  }
  const g = groupOf(a, t.groupName);
  return {
    holder: g,
    target: { kind: "group" as const, groupId: g.groupId },
    label: `group \`${g.groupName}\``,
  };
}

function attachmentsOf(a: Account, ref: string): string[] {
  const out: string[] = [];
  for (const u of a.users.values()) if (u.policies.has(ref)) out.push(`user/${u.userName}`);
  for (const g of a.groups.values()) if (g.policies.has(ref)) out.push(`group/${g.groupName}`);
  return out.sort();
}

/**
 * The account's own AccessKeys are its only way in (there is no console
 * login): refuse to deactivate or delete the last active one.
 */
function guardLastRootKey(state: DecideState, a: Account, accessKeyId: string): void {
  const k = state.model.accessKeys.get(accessKeyId);
  if (k?.owner.kind !== "root" || k.status !== "Active") return;
  const others = [...a.accessKeys].filter((id) => {
    const o = state.model.accessKeys.get(id);
    return id !== accessKeyId && o?.owner.kind === "root" && o.status === "Active";
  });
  if (others.length === 0)
    throw new CommandRejected(
      409,
      "DeleteConflict.AccessKey.LastRootKey",
      `access key \`${accessKeyId}\` is the account's last active access key; create another one first`,
    );
}

/** Decide one command. Returns the events to append (empty: nothing to change); throws CommandRejected. */
export function decide(command: Command, state: DecideState, ctx: DecideContext): NewEvent[] {
  const limits: Limits = { ...DEFAULT_LIMITS, ...ctx.limits };
  const acct = ctx.accountId;
  if (command.type === "CreateAccount") {
    if ((state.index.revisions.get(accountStream(acct)) ?? -1) >= 0) throw alreadyExists("Account", acct);
    const events: NewEvent[] = [{ type: "AccountCreated", data: { accountId: acct, alias: command.alias } }];
    if (command.rootAccessKey)
      events.push({
        type: "AccessKeyCreated",
        data: {
          accessKeyId: command.rootAccessKey.accessKeyId,
          owner: { kind: "root" },
          secret: command.rootAccessKey.secret,
        },
      });
    return events;
  }
  const a = accountOf(state, ctx);
  switch (command.type) {
    case "CreateUser": {
      if (a.userIdsByName.has(command.userName)) throw alreadyExists("User", command.userName);
      if (a.users.has(command.userId))
        throw new CommandRejected(
          409,
          "EntityAlreadyExists.UserId",
          `user id \`${command.userId}\` is taken`,
        );
      return [
        {
          type: "UserCreated",
          data: {
            userId: command.userId,
            userName: command.userName,
            ...(command.displayName !== undefined ? { displayName: command.displayName } : {}),
          },
        },
      ];
    }
    case "UpdateUser": {
      const u = userOf(a, command.userName);
      const rename = command.newUserName !== undefined && command.newUserName !== u.userName;
      if (rename && a.userIdsByName.has(command.newUserName!))
        throw alreadyExists("User", command.newUserName!);
      const redisplay = command.displayName !== undefined && command.displayName !== u.displayName;
      if (!rename && !redisplay) return [];
      return [
        {
          type: "UserUpdated",
          data: {
            userId: u.userId,
            ...(rename ? { newUserName: command.newUserName! } : {}),
            ...(redisplay ? { displayName: command.displayName! } : {}),
          },
        },
      ];
    }
    case "DisableUser":
    case "EnableUser": {
      const u = userOf(a, command.userName);
      const disable = command.type === "DisableUser";
      if (u.disabled === disable) return [];
      return [{ type: disable ? "UserDisabled" : "UserEnabled", data: { userId: u.userId } }];
    }
    case "DeleteUser": {
      // Deleting a user is the broadest revocation: its keys, memberships,
      // attachments and console grants go with it (one UserDeleted event).
      const u = userOf(a, command.userName);
      return [{ type: "UserDeleted", data: { userId: u.userId } }];
    }
    case "CreateAccessKey": {
      if (state.model.accessKeys.has(command.accessKeyId))
        throw new CommandRejected(
          409,
          "EntityAlreadyExists.AccessKey",
          `access key \`${command.accessKeyId}\` exists`,
        );
      let owner: { kind: "root" } | { kind: "user"; userId: string };
      let count: number;
      let label: string;
      if (command.userName === undefined) {
        owner = { kind: "root" };
        count = [...a.accessKeys].filter((k) => state.model.accessKeys.get(k)?.owner.kind === "root").length;
        label = `account \`${acct}\``;
      } else {
        const u = userOf(a, command.userName);
        owner = { kind: "user", userId: u.userId };
        count = u.accessKeys.size;
        label = `user \`${u.userName}\``;
      }
      if (count >= limits.maxAccessKeysPerPrincipal)
        throw limitExceeded(
          "User.AccessKey",
          `${label} already has ${count} access keys (at most ${limits.maxAccessKeysPerPrincipal}); delete one first`,
        );
      return [
        {
          type: "AccessKeyCreated",
          data: { accessKeyId: command.accessKeyId, owner, secret: command.secret },
        },
      ];
    }
    case "SetAccessKeyStatus": {
      const k = state.model.accessKeys.get(command.accessKeyId);
      if (!k || k.owner.accountId !== acct) throw notFound("AccessKey", command.accessKeyId, "access key");
      if (k.status === command.status) return [];
      if (command.status === "Inactive") guardLastRootKey(state, a, command.accessKeyId);
      return [
        {
          type: "AccessKeyStatusChanged",
          data: { accessKeyId: command.accessKeyId, status: command.status },
        },
      ];
    }
    case "DeleteAccessKey": {
      const k = state.model.accessKeys.get(command.accessKeyId);
      if (!k || k.owner.accountId !== acct) throw notFound("AccessKey", command.accessKeyId, "access key");
      guardLastRootKey(state, a, command.accessKeyId);
      return [{ type: "AccessKeyDeleted", data: { accessKeyId: command.accessKeyId } }];
    }
    case "CreateGroup": {
      if (a.groupIdsByName.has(command.groupName)) throw alreadyExists("Group", command.groupName);
      if (a.groups.has(command.groupId))
        throw new CommandRejected(
          409,
          "EntityAlreadyExists.GroupId",
          `group id \`${command.groupId}\` is taken`,
        );
      return [
        {
          type: "GroupCreated",
          data: {
            groupId: command.groupId,
            groupName: command.groupName,
            ...(command.comments !== undefined ? { comments: command.comments } : {}),
          },
        },
      ];
    }
    case "DeleteGroup": {
      const g = groupOf(a, command.groupName);
      const blockers = [
        ...[...g.members].map((m) => `member user/${a.users.get(m)?.userName ?? m}`),
        ...[...g.policies].map((p) => `policy ${p}`),
      ];
      if (blockers.length > 0)
        throw new CommandRejected(
          409,
          "DeleteConflict.Group",
          `group \`${g.groupName}\` still has ${blockers.join(", ")}; remove them first`,
          undefined,
          { members: [...g.members].map((m) => a.users.get(m)?.userName ?? m), policies: [...g.policies] },
        );
      return [{ type: "GroupDeleted", data: { groupId: g.groupId } }];
    }
    case "AddUserToGroup": {
      const u = userOf(a, command.userName);
      const g = groupOf(a, command.groupName);
      if (u.groups.has(g.groupId))
        throw new CommandRejected(
          409,
          "EntityAlreadyExists.User.Group",
          `user \`${u.userName}\` is already in group \`${g.groupName}\``,
        );
      if (u.groups.size >= limits.maxGroupsPerUser)
        throw limitExceeded(
          "User.Group",
          `user \`${u.userName}\` is already in ${u.groups.size} groups (at most ${limits.maxGroupsPerUser})`,
        );
      return [{ type: "UserAddedToGroup", data: { userId: u.userId, groupId: g.groupId } }];
    }
    case "RemoveUserFromGroup": {
      const u = userOf(a, command.userName);
      const g = groupOf(a, command.groupName);
      if (!u.groups.has(g.groupId))
        throw new CommandRejected(
          404,
          "EntityNotExist.User.Group",
          `user \`${u.userName}\` is not in group \`${g.groupName}\``,
        );
      return [{ type: "UserRemovedFromGroup", data: { userId: u.userId, groupId: g.groupId } }];
    }
    case "CreatePolicy": {
      if (getSystemPolicy(command.policyName))
        throw new CommandRejected(
          409,
          "EntityAlreadyExists.Policy",
          `\`${command.policyName}\` is the name of a system policy`,
        );
      if (a.policies.has(command.policyName)) throw alreadyExists("Policy", command.policyName);
      const document = checkDocument(command.document, limits);
      if (a.policies.size >= limits.maxCustomPolicies)
        throw limitExceeded(
          "Policy",
          `the account already has ${a.policies.size} custom policies (at most ${limits.maxCustomPolicies})`,
        );
      return [
        {
          type: "PolicyCreated",
          data: {
            policyName: command.policyName,
            versionId: "v1",
            document,
            ...(command.description !== undefined ? { description: command.description } : {}),
          },
        },
      ];
    }
    case "CreatePolicyVersion": {
      const p = a.policies.get(command.policyName);
      if (!p) throw notFound("Policy", command.policyName);
      const document = checkDocument(command.document, limits);
      const existing = [...p.versions.keys()].map(versionNumber);
      const next =
        Math.max(state.index.versionHighWater.get(policyKey(acct, p.policyName)) ?? 0, ...existing) + 1;
      let removedVersionId: string | undefined;
      if (p.versions.size >= limits.maxPolicyVersions) {
        // SPEC §2: a 6th version removes the oldest non-default one.
        const oldest = [...p.versions.keys()]
          .filter((v) => v !== p.defaultVersion)
          .sort((x, y) => versionNumber(x) - versionNumber(y))[0];
        if (oldest === undefined)
          throw limitExceeded(
            "Policy.Version",
            `policy \`${p.policyName}\` has no version that can be removed`,
          );
        removedVersionId = oldest;
      }
      return [
        {
          type: "PolicyVersionCreated",
          data: {
            policyName: p.policyName,
            versionId: `v${next}`,
            document,
            setAsDefault: command.setAsDefault,
            ...(removedVersionId !== undefined ? { removedVersionId } : {}),
          },
        },
      ];
    }
    case "SetDefaultPolicyVersion": {
      const p = a.policies.get(command.policyName);
      if (!p) throw notFound("Policy", command.policyName);
      if (!p.versions.has(command.versionId))
        throw notFound("Policy.Version", `${p.policyName}/${command.versionId}`, "policy version");
      if (p.defaultVersion === command.versionId) return [];
      return [
        { type: "PolicyDefaultVersionSet", data: { policyName: p.policyName, versionId: command.versionId } },
      ];
    }
    case "DeletePolicyVersion": {
      const p = a.policies.get(command.policyName);
      if (!p) throw notFound("Policy", command.policyName);
      if (!p.versions.has(command.versionId))
        throw notFound("Policy.Version", `${p.policyName}/${command.versionId}`, "policy version");
      if (p.defaultVersion === command.versionId)
        throw new CommandRejected(
          409,
          "DeleteConflict.Policy.DefaultVersion",
          `\`${command.versionId}\` is the default version of policy \`${p.policyName}\` and cannot be deleted; set another default first`,
        );
      return [
        { type: "PolicyVersionDeleted", data: { policyName: p.policyName, versionId: command.versionId } },
      ];
    }
    case "DeletePolicy": {
      const p = a.policies.get(command.policyName);
      if (!p) throw notFound("Policy", command.policyName);
      const used = attachmentsOf(a, `Custom:${p.policyName}`);
      if (used.length > 0)
        throw new CommandRejected(
          409,
          "DeleteConflict.Policy.Attachment",
          `policy \`${p.policyName}\` is still attached to ${used.join(", ")}; detach it first`,
          undefined,
          { attachedTo: used },
        );
      return [{ type: "PolicyDeleted", data: { policyName: p.policyName } }];
    }
    case "AttachPolicy":
    case "DetachPolicy": {
      const { holder, target, label } = holderOf(a, command.target);
      const { type, ref } = policyRef(a, command.policyName, command.policyType);
      if (command.type === "DetachPolicy") {
        if (!holder.policies.has(ref))
          throw new CommandRejected(
            404,
            `EntityNotExist.${target.kind === "user" ? "User" : "Group"}.Policy`,
            `${type.toLowerCase()} policy \`${command.policyName}\` is not attached to ${label}`,
          );
        return [
          { type: "PolicyDetached", data: { policyName: command.policyName, policyType: type, target } },
        ];
      }
      if (holder.policies.has(ref))
        throw new CommandRejected(
          409,
          `EntityAlreadyExists.${target.kind === "user" ? "User" : "Group"}.Policy`,
          `${type.toLowerCase()} policy \`${command.policyName}\` is already attached to ${label}`,
        );
      const same = [...holder.policies].filter((r) => r.startsWith(`${type}:`)).length;
      const max = type === "System" ? limits.maxSystemPoliciesPerTarget : limits.maxCustomPoliciesPerTarget;
      if (same >= max)
        throw limitExceeded(
          `${target.kind === "user" ? "User" : "Group"}.${type}Policy`,
          `${label} already has ${same} ${type.toLowerCase()} policies attached (at most ${max})`,
        );
      return [{ type: "PolicyAttached", data: { policyName: command.policyName, policyType: type, target } }];
    }
    case "CreateTopic": {
      if (a.topics.get(command.instanceId)?.has(command.topic))
        throw alreadyExists("Topic", `${command.instanceId}/${command.topic}`, "topic");
      return [{ type: "TopicCreated", data: { instanceId: command.instanceId, topic: command.topic } }];
    }
    case "DeleteTopic": {
      if (!a.topics.get(command.instanceId)?.has(command.topic))
        throw notFound("Topic", `${command.instanceId}/${command.topic}`, "topic");
      return [{ type: "TopicDeleted", data: { instanceId: command.instanceId, topic: command.topic } }];
    }
    case "CreateGroupId": {
      if (a.groupIds.get(command.instanceId)?.has(command.groupId))
        throw alreadyExists("GroupId", `${command.instanceId}/${command.groupId}`, "group id");
      const owner =
        ctx.caller.kind === "root"
          ? { kind: "root" as const }
          : { kind: "user" as const, userId: ctx.caller.userId };
      return [
        { type: "GroupIdCreated", data: { instanceId: command.instanceId, groupId: command.groupId, owner } },
      ];
    }
    case "DeleteGroupId": {
      const entry = a.groupIds.get(command.instanceId)?.get(command.groupId);
      if (!entry) throw notFound("GroupId", `${command.instanceId}/${command.groupId}`, "group id");
      // SPEC §2 / seed 003: a RAM user's Group IDs are isolated from every other principal but root.
      if (ctx.caller.kind !== "root" && !sameOwner(entry.owner, ctx.caller))
        throw new CommandRejected(
          403,
          "Forbidden.GroupIdOwner",
          `group id \`${command.groupId}\` was not created by the caller; only its creator and the account itself may delete it`,
        );
      return [{ type: "GroupIdDeleted", data: { instanceId: command.instanceId, groupId: command.groupId } }];
    }
    case "AddConsoleGrant":
    case "RemoveConsoleGrant": {
      const u = userOf(a, command.userName);
      const parent = command.topic.split("/")[0]!;
      const have = u.consoleGrants.get(`${command.instanceId}\u0000${command.topic}`) ?? new Set();
      const wanted = [...new Set(command.perms)].sort() as ("PUB" | "SUB")[];
      const where = `\`${command.instanceId}/${command.topic}\``;
      if (command.type === "AddConsoleGrant") {
        if (!a.topics.get(command.instanceId)?.has(parent))
          throw notFound("Topic", `${command.instanceId}/${parent}`, "topic");
        const perms = wanted.filter((p) => !have.has(p));
        if (perms.length === 0)
          throw new CommandRejected(
            409,
            "EntityAlreadyExists.ConsoleGrant",
            `user \`${u.userName}\` already has ${wanted.join("+")} on ${where}`,
          );
        return [
          {
            type: "ConsoleGrantAdded",
            data: { userId: u.userId, instanceId: command.instanceId, topic: command.topic, perms },
          },
        ];
      }
      const perms = wanted.filter((p) => have.has(p));
      if (perms.length === 0)
        throw new CommandRejected(
          404,
          "EntityNotExist.ConsoleGrant",
          `user \`${u.userName}\` has no ${wanted.join("+")} grant on ${where}`,
        );
      return [
        {
          type: "ConsoleGrantRemoved",
          data: { userId: u.userId, instanceId: command.instanceId, topic: command.topic, perms },
        },
      ];
    }
  }
}
