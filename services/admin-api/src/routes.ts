/**
 * The admin API's routes as data: method, path, schemas, the RAM actions it
 * checks, and either a `read` (answers from the projection) or a `plan` (the
 * authorization checks and the command of a write; the server runs
 * authorize → decide → append with optimistic concurrency → wait). The same
 * table drives fastify and `/openapi.json`.
 *
 * Admin actions and resources (SPEC §4.3; the admin plane eats its own cooking):
 * - RAM (`ram:*`) on `acs:ram:*:<acct>:user/<name>`, `group/<name>`, `policy/<name>`;
 *   lists on `user/*`, `group/*`, `policy/*`; the account's own AccessKeys on
 *   `acs:ram:*:<acct>:root` — and those only the account itself may manage.
 * - MQTT (`mq:*`, names documented by this project) on the ARNs of SPEC §4.1:
 *   `mq:CreateTopic`/`mq:DeleteTopic`/`mq:ListTopic` on `topic/<inst>/<topic>` (list: `topic/<inst>/*`),
 *   `mq:CreateGroupId`/`mq:DeleteGroupId`/`mq:ListGroupId` on `group/<inst>/<GID>` (list: `group/<inst>/*`),
 *   `mq:AddConsoleGrant`/`mq:RemoveConsoleGrant` on the granted `topic/<inst>/<topic>`,
 *   `mq:ListConsoleGrant` on `topic/*`.
 * - AMQP: vhosts, exchanges and queues live in the upstream RabbitMQ; the admin
 *   plane manages no AMQP resource, so it checks no `amqp:` action.
 */
import type { CredentialResolver } from "@portcullis/feed";
import {
  getSystemPolicy,
  mqGroupIdArn,
  mqTopicArn,
  type RequestContext,
  ramArn,
  SYSTEM_POLICIES,
  validatePolicy,
} from "@portcullis/policy";
import type { Account, PrincipalRef, State, User } from "@portcullis/projection";
import { z } from "zod";
import type { Command } from "./decide/commands.ts";
import { CommandRejected, notFound } from "./decide/errors.ts";
import { newAccessKeyId, newAccessKeySecret, newGroupId, newUserId } from "./ids.ts";
import * as S from "./schemas.ts";

/** An authorization question of a route. */
export interface Check {
  action: string;
  resource: string;
}

/** The authenticated caller. */
export interface Caller {
  principal: PrincipalRef;
  accessKeyId: string;
  userName?: string;
}

/** What a route handler sees. */
export interface Call<P = unknown, Q = unknown, B = unknown> {
  params: P;
  query: Q;
  body: B;
  caller: Caller;
  accountId: string;
  account: Account;
  state: State;
  region: string;
  mqttInstanceId: string;
  amqpInstanceId: string;
  context: RequestContext;
  /** Throws AccessDenied unless the caller is allowed `action` on `resource`. */
  authorize(action: string, resource: string): void;
  /** Throws AccessDenied unless the caller is the account itself. */
  requireRoot(action: string, resource: string, why: string): void;
  credentials: CredentialResolver;
  /** Decide at a past position or time (simulate). */
  replayState(target: {
    position?: number;
    time?: string;
  }): Promise<import("@portcullis/projection").Projection>;
  /** The live projection (simulate at head). */
  projection: import("@portcullis/projection").Projection;
}

/** A call of any route (handlers narrow it with their own parameter types). */
// biome-ignore lint/suspicious/noExplicitAny: the route table holds handlers of many input types
export type AnyCall = Call<any, any, any>;

/** The write half of a route: checks, the command, and how to describe the result. */
export interface Plan {
  checks: Check[];
  command: Command;
  /** The response fields (besides position/changed), read from the state after the write. */
  result?: (state: State, account: Account) => Record<string, unknown>;
}

/** One route. */
export interface RouteDef {
  method: "GET" | "POST" | "PUT" | "PATCH" | "DELETE";
  path: string;
  operationId: string;
  summary: string;
  tag: string;
  /** RAM actions checked (documentation). */
  actions: string[];
  params?: z.ZodObject;
  query?: z.ZodObject;
  body?: z.ZodType;
  response: z.ZodType;
  /** Success status (default 200). */
  status?: number;
  read?: (call: AnyCall) => unknown | Promise<unknown>;
  plan?: (call: AnyCall) => Plan;
}

// ---- ARNs and views ----

const userArn = (c: Call, name: string) => ramArn(c.accountId, "user", name);
const groupArn = (c: Call, name: string) => ramArn(c.accountId, "group", name);
const policyArn = (c: Call, name: string) => ramArn(c.accountId, "policy", name);
const rootArn = (c: Call) => `acs:ram:*:${c.accountId}:root`;
const scope = (c: Call) => ({ region: c.region, accountId: c.accountId });

function userByName(a: Account, name: string): User | undefined {
  const id = a.userIdsByName.get(name);
  return id === undefined ? undefined : a.users.get(id);
}
function mustUser(a: Account, name: string): User {
  const u = userByName(a, name);
  if (!u) throw notFound("User", name);
  return u;
}
function mustGroup(a: Account, name: string) {
  const id = a.groupIdsByName.get(name);
  const g = id === undefined ? undefined : a.groups.get(id);
  if (!g) throw notFound("Group", name);
  return g;
}

const attachedView = (refs: Iterable<string>) =>
  [...refs]
    .map((r) => {
      const i = r.indexOf(":");
      return { policyName: r.slice(i + 1), policyType: r.slice(0, i) as "System" | "Custom" };
    })
    .sort((x, y) => (x.policyName < y.policyName ? -1 : 1));

function keyView(state: State, id: string) {
  const k = state.accessKeys.get(id)!;
  const owner =
    k.owner.kind === "user" ? state.accounts.get(k.owner.accountId)?.users.get(k.owner.userId) : undefined;
  return {
    accessKeyId: k.accessKeyId,
    status: k.status,
    createdAt: k.createdAt,
    ...(owner ? { userName: owner.userName } : {}),
  };
}

function grantsView(u: User) {
  return [...u.consoleGrants]
    .map(([k, perms]) => {
      const [instanceId, topic] = k.split("\u0000") as [string, string];
      return { instanceId, topic, perms: [...perms].sort() };
    })
    .sort((x, y) => (`${x.instanceId}/${x.topic}` < `${y.instanceId}/${y.topic}` ? -1 : 1));
}

function userView(state: State, a: Account, u: User) {
  return {
    userId: u.userId,
    userName: u.userName,
    loginName: `${u.userName}@${a.alias}`,
    ...(u.displayName !== undefined ? { displayName: u.displayName } : {}),
    disabled: u.disabled,
    groups: [...u.groups].map((g) => a.groups.get(g)?.groupName ?? g).sort(),
    policies: attachedView(u.policies),
    accessKeys: [...u.accessKeys].filter((k) => state.accessKeys.has(k)).map((k) => keyView(state, k)),
    consoleGrants: grantsView(u),
  };
}

function groupView(a: Account, name: string) {
  const g = mustGroup(a, name);
  return {
    groupId: g.groupId,
    groupName: g.groupName,
    ...(g.comments !== undefined ? { comments: g.comments } : {}),
    members: [...g.members].map((m) => a.users.get(m)?.userName ?? m).sort(),
    policies: attachedView(g.policies),
  };
}

function policyView(a: Account, name: string) {
  const sys = getSystemPolicy(name);
  if (sys)
    return {
      policyName: sys.name,
      policyType: "System" as const,
      description: sys.description,
      defaultVersion: sys.version,
      document: sys.document,
      versions: [{ versionId: sys.version, isDefault: true }],
    };
  const p = a.policies.get(name);
  if (!p) throw notFound("Policy", name);
  const v = p.versions.get(p.defaultVersion)!;
  return {
    policyName: p.policyName,
    policyType: "Custom" as const,
    ...(p.description !== undefined ? { description: p.description } : {}),
    defaultVersion: p.defaultVersion,
    document: v.document,
    versions: [...p.versions.values()]
      .sort((x, y) => Number(x.versionId.slice(1)) - Number(y.versionId.slice(1)))
      .map((x) => ({
        versionId: x.versionId,
        isDefault: x.versionId === p.defaultVersion,
        createdAt: x.createdAt,
      })),
  };
}

function principalView(state: State, p: PrincipalRef) {
  if (p.kind === "root") return { kind: "root" as const, accountId: p.accountId };
  const u = state.accounts.get(p.accountId)?.users.get(p.userId);
  return {
    kind: "user" as const,
    accountId: p.accountId,
    userId: p.userId,
    ...(u ? { userName: u.userName } : {}),
  };
}

/** Keys owned by `owner` with their (root or user) ARN for checks. */
function keyOwnerArn(c: Call, accessKeyId: string, action: string): Check {
  const k = c.state.accessKeys.get(accessKeyId);
  if (!k || k.owner.accountId !== c.accountId) throw notFound("AccessKey", accessKeyId, "access key");
  if (k.owner.kind === "root") {
    c.requireRoot(action, rootArn(c), "only the account itself may manage its own access keys");
    return { action, resource: rootArn(c) };
  }
  const u = c.account.users.get(k.owner.userId);
  return { action, resource: userArn(c, u?.userName ?? k.owner.userId) };
}

// ---- the table ----

/** Build the route table; `seal` seals a new AccessKey secret (SecretBox + accessKeyAad). */
export function routes(
  seal: (accessKeyId: string, secret: string) => import("@portcullis/events").SealedSecret,
) {
  const R: RouteDef[] = [];
  const add = (r: RouteDef) => R.push(r);
  const inst = (c: AnyCall, given?: string) => given ?? c.mqttInstanceId;

  // ---- caller ----
  add({
    method: "GET",
    path: "/v1/account",
    operationId: "GetCallerIdentity",
    summary: "Who am I: the caller's account, principal and AccessKey; the gateway's region and instances",
    tag: "account",
    actions: [],
    response: S.callerView,
    read: (c) => ({
      accountId: c.accountId,
      alias: c.account.alias,
      principal: principalView(c.state, c.caller.principal),
      accessKeyId: c.caller.accessKeyId,
      region: c.region,
      mqttInstanceId: c.mqttInstanceId,
      amqpInstanceId: c.amqpInstanceId,
      position: c.state.position,
    }),
  });

  // ---- users ----
  add({
    method: "POST",
    path: "/v1/users",
    operationId: "CreateUser",
    summary: "Create a RAM user",
    tag: "users",
    actions: ["ram:CreateUser"],
    query: S.writeQuery,
    body: S.createUserBody,
    response: S.writeResult.extend(S.userView.shape),
    status: 201,
    plan: (c: Call<unknown, unknown, z.infer<typeof S.createUserBody>>) => ({
      checks: [{ action: "ram:CreateUser", resource: userArn(c, c.body.userName) }],
      command: {
        type: "CreateUser",
        userId: newUserId(),
        userName: c.body.userName,
        ...(c.body.displayName !== undefined ? { displayName: c.body.displayName } : {}),
      },
      result: (s, a) => userView(s, a, mustUser(a, c.body.userName)),
    }),
  });
  add({
    method: "GET",
    path: "/v1/users",
    operationId: "ListUsers",
    summary: "List the account's RAM users",
    tag: "users",
    actions: ["ram:ListUsers"],
    response: z.object({ users: S.userView.array() }),
    read: (c) => {
      c.authorize("ram:ListUsers", userArn(c, "*"));
      return {
        users: [...c.account.users.values()]
          .sort((x, y) => (x.userName < y.userName ? -1 : 1))
          .map((u) => userView(c.state, c.account, u)),
      };
    },
  });
  add({
    method: "GET",
    path: "/v1/users/:userName",
    operationId: "GetUser",
    summary: "A RAM user with its groups, attached policies, AccessKeys (no secrets) and console grants",
    tag: "users",
    actions: ["ram:GetUser"],
    params: S.userParams,
    response: S.userView,
    read: (c: Call<z.infer<typeof S.userParams>>) => {
      c.authorize("ram:GetUser", userArn(c, c.params.userName));
      return userView(c.state, c.account, mustUser(c.account, c.params.userName));
    },
  });
  add({
    method: "PATCH",
    path: "/v1/users/:userName",
    operationId: "UpdateUser",
    summary: "Rename a user or change its display name",
    tag: "users",
    actions: ["ram:UpdateUser"],
    params: S.userParams,
    query: S.writeQuery,
    body: S.updateUserBody,
    response: S.writeResult.extend(S.userView.shape),
    plan: (c: Call<z.infer<typeof S.userParams>, unknown, z.infer<typeof S.updateUserBody>>) => {
      const checks = [{ action: "ram:UpdateUser", resource: userArn(c, c.params.userName) }];
      if (c.body.newUserName !== undefined && c.body.newUserName !== c.params.userName)
        checks.push({ action: "ram:UpdateUser", resource: userArn(c, c.body.newUserName) });
      return {
        checks,
        command: {
          type: "UpdateUser",
          userName: c.params.userName,
          ...(c.body.newUserName !== undefined ? { newUserName: c.body.newUserName } : {}),
          ...(c.body.displayName !== undefined ? { displayName: c.body.displayName } : {}),
        },
        result: (s, a) => userView(s, a, mustUser(a, c.body.newUserName ?? c.params.userName)),
      };
    },
  });
  for (const [verb, type] of [
    ["disable", "DisableUser"],
    ["enable", "EnableUser"],
  ] as const)
    add({
      method: "POST",
      path: `/v1/users/:userName/${verb}`,
      operationId: type,
      summary:
        verb === "disable"
          ? "Disable a user: its AccessKeys stop working at once (edges disconnect its clients)"
          : "Enable a disabled user",
      tag: "users",
      actions: ["ram:UpdateUser"],
      params: S.userParams,
      query: S.writeQuery,
      response: S.writeResult.extend(S.userView.shape),
      plan: (c: Call<z.infer<typeof S.userParams>>) => ({
        checks: [{ action: "ram:UpdateUser", resource: userArn(c, c.params.userName) }],
        command: { type, userName: c.params.userName },
        result: (s, a) => userView(s, a, mustUser(a, c.params.userName)),
      }),
    });
  add({
    method: "DELETE",
    path: "/v1/users/:userName",
    operationId: "DeleteUser",
    summary: "Delete a user with its AccessKeys, memberships, attachments and console grants",
    tag: "users",
    actions: ["ram:DeleteUser"],
    params: S.userParams,
    query: S.writeQuery,
    response: S.writeResult,
    plan: (c: Call<z.infer<typeof S.userParams>>) => ({
      checks: [{ action: "ram:DeleteUser", resource: userArn(c, c.params.userName) }],
      command: { type: "DeleteUser", userName: c.params.userName },
    }),
  });

  // ---- access keys ----
  const createKey = (userName: string | undefined) => (c: Call) => {
    const accessKeyId = newAccessKeyId();
    const secret = newAccessKeySecret();
    const check =
      userName === undefined
        ? { action: "ram:CreateAccessKey", resource: rootArn(c) }
        : { action: "ram:CreateAccessKey", resource: userArn(c, userName) };
    if (userName === undefined)
      c.requireRoot(check.action, check.resource, "only the account itself may create its own access keys");
    return {
      checks: [check],
      command: {
        type: "CreateAccessKey",
        accessKeyId,
        ...(userName !== undefined ? { userName } : {}),
        secret: seal(accessKeyId, secret),
      },
      // The secret is returned once, here, and never again (SPEC §5).
      result: (s: State) => ({ ...keyView(s, accessKeyId), accessKeySecret: secret }),
    } satisfies Plan;
  };
  const keyCreated = S.writeResult.extend(S.accessKeyView.shape).extend({
    accessKeySecret: S.accessKeyView.shape.accessKeyId.describe("the secret, shown once"),
  });
  add({
    method: "POST",
    path: "/v1/users/:userName/access-keys",
    operationId: "CreateAccessKey",
    summary: "Create an AccessKey for a user (at most 2); the secret is in this response only",
    tag: "access keys",
    actions: ["ram:CreateAccessKey"],
    params: S.userParams,
    query: S.writeQuery,
    response: keyCreated,
    status: 201,
    plan: (c: Call<z.infer<typeof S.userParams>>) => createKey(c.params.userName)(c),
  });
  add({
    method: "GET",
    path: "/v1/users/:userName/access-keys",
    operationId: "ListAccessKeys",
    summary: "A user's AccessKeys (ids and status; never secrets)",
    tag: "access keys",
    actions: ["ram:ListAccessKeys"],
    params: S.userParams,
    response: z.object({ accessKeys: S.accessKeyView.array() }),
    read: (c: Call<z.infer<typeof S.userParams>>) => {
      c.authorize("ram:ListAccessKeys", userArn(c, c.params.userName));
      const u = mustUser(c.account, c.params.userName);
      return {
        accessKeys: [...u.accessKeys]
          .filter((k) => c.state.accessKeys.has(k))
          .map((k) => keyView(c.state, k)),
      };
    },
  });
  add({
    method: "POST",
    path: "/v1/access-keys",
    operationId: "CreateRootAccessKey",
    summary: "Create an AccessKey of the account itself (root only; at most 2)",
    tag: "access keys",
    actions: ["ram:CreateAccessKey"],
    query: S.writeQuery,
    response: keyCreated,
    status: 201,
    plan: (c) => createKey(undefined)(c),
  });
  add({
    method: "GET",
    path: "/v1/access-keys",
    operationId: "ListRootAccessKeys",
    summary: "The account's own AccessKeys (root only)",
    tag: "access keys",
    actions: ["ram:ListAccessKeys"],
    response: z.object({ accessKeys: S.accessKeyView.array() }),
    read: (c) => {
      c.requireRoot("ram:ListAccessKeys", rootArn(c), "only the account itself may list its own access keys");
      return {
        accessKeys: [...c.account.accessKeys]
          .filter((k) => c.state.accessKeys.get(k)?.owner.kind === "root")
          .map((k) => keyView(c.state, k)),
      };
    },
  });
  add({
    method: "PATCH",
    path: "/v1/access-keys/:accessKeyId",
    operationId: "UpdateAccessKey",
    summary: "Activate or deactivate an AccessKey (an Inactive key stops working at once)",
    tag: "access keys",
    actions: ["ram:UpdateAccessKey"],
    params: S.accessKeyParams,
    query: S.writeQuery,
    body: S.setAccessKeyStatusBody,
    response: S.writeResult.extend(S.accessKeyView.shape),
    plan: (
      c: Call<z.infer<typeof S.accessKeyParams>, unknown, z.infer<typeof S.setAccessKeyStatusBody>>,
    ) => ({
      checks: [keyOwnerArn(c, c.params.accessKeyId, "ram:UpdateAccessKey")],
      command: { type: "SetAccessKeyStatus", accessKeyId: c.params.accessKeyId, status: c.body.status },
      result: (s) => keyView(s, c.params.accessKeyId),
    }),
  });
  add({
    method: "DELETE",
    path: "/v1/access-keys/:accessKeyId",
    operationId: "DeleteAccessKey",
    summary: "Delete an AccessKey",
    tag: "access keys",
    actions: ["ram:DeleteAccessKey"],
    params: S.accessKeyParams,
    query: S.writeQuery,
    response: S.writeResult,
    plan: (c: Call<z.infer<typeof S.accessKeyParams>>) => ({
      checks: [keyOwnerArn(c, c.params.accessKeyId, "ram:DeleteAccessKey")],
      command: { type: "DeleteAccessKey", accessKeyId: c.params.accessKeyId },
    }),
  });

  // ---- groups ----
  add({
    method: "POST",
    path: "/v1/groups",
    operationId: "CreateGroup",
    summary: "Create a RAM group",
    tag: "groups",
    actions: ["ram:CreateGroup"],
    query: S.writeQuery,
    body: S.createGroupBody,
    response: S.writeResult.extend(S.groupView.shape),
    status: 201,
    plan: (c: Call<unknown, unknown, z.infer<typeof S.createGroupBody>>) => ({
      checks: [{ action: "ram:CreateGroup", resource: groupArn(c, c.body.groupName) }],
      command: {
        type: "CreateGroup",
        groupId: newGroupId(),
        groupName: c.body.groupName,
        ...(c.body.comments !== undefined ? { comments: c.body.comments } : {}),
      },
      result: (_s, a) => groupView(a, c.body.groupName),
    }),
  });
  add({
    method: "GET",
    path: "/v1/groups",
    operationId: "ListGroups",
    summary: "List the account's groups",
    tag: "groups",
    actions: ["ram:ListGroups"],
    response: z.object({ groups: S.groupView.array() }),
    read: (c) => {
      c.authorize("ram:ListGroups", groupArn(c, "*"));
      return {
        groups: [...c.account.groups.values()]
          .map((g) => groupView(c.account, g.groupName))
          .sort((x, y) => (x.groupName < y.groupName ? -1 : 1)),
      };
    },
  });
  add({
    method: "GET",
    path: "/v1/groups/:groupName",
    operationId: "GetGroup",
    summary: "A group with its members and attached policies",
    tag: "groups",
    actions: ["ram:GetGroup"],
    params: S.groupParams,
    response: S.groupView,
    read: (c: Call<z.infer<typeof S.groupParams>>) => {
      c.authorize("ram:GetGroup", groupArn(c, c.params.groupName));
      return groupView(c.account, c.params.groupName);
    },
  });
  add({
    method: "DELETE",
    path: "/v1/groups/:groupName",
    operationId: "DeleteGroup",
    summary: "Delete an empty group with no policies attached (409 DeleteConflict otherwise)",
    tag: "groups",
    actions: ["ram:DeleteGroup"],
    params: S.groupParams,
    query: S.writeQuery,
    response: S.writeResult,
    plan: (c: Call<z.infer<typeof S.groupParams>>) => ({
      checks: [{ action: "ram:DeleteGroup", resource: groupArn(c, c.params.groupName) }],
      command: { type: "DeleteGroup", groupName: c.params.groupName },
    }),
  });
  add({
    method: "PUT",
    path: "/v1/groups/:groupName/members/:userName",
    operationId: "AddUserToGroup",
    summary: "Add a user to a group (a user is in at most 10 groups)",
    tag: "groups",
    actions: ["ram:AddUserToGroup"],
    params: S.memberParams,
    query: S.writeQuery,
    response: S.writeResult.extend(S.groupView.shape),
    plan: (c: Call<z.infer<typeof S.memberParams>>) => ({
      checks: [{ action: "ram:AddUserToGroup", resource: groupArn(c, c.params.groupName) }],
      command: { type: "AddUserToGroup", userName: c.params.userName, groupName: c.params.groupName },
      result: (_s, a) => groupView(a, c.params.groupName),
    }),
  });
  add({
    method: "DELETE",
    path: "/v1/groups/:groupName/members/:userName",
    operationId: "RemoveUserFromGroup",
    summary: "Remove a user from a group",
    tag: "groups",
    actions: ["ram:RemoveUserFromGroup"],
    params: S.memberParams,
    query: S.writeQuery,
    response: S.writeResult.extend(S.groupView.shape),
    plan: (c: Call<z.infer<typeof S.memberParams>>) => ({
      checks: [{ action: "ram:RemoveUserFromGroup", resource: groupArn(c, c.params.groupName) }],
      command: { type: "RemoveUserFromGroup", userName: c.params.userName, groupName: c.params.groupName },
      result: (_s, a) => groupView(a, c.params.groupName),
    }),
  });

  // ---- policies ----
  const withWarnings = (document: unknown) => {
    const r = validatePolicy(document);
    return r.warnings.length > 0 ? { warnings: r.warnings } : {};
  };
  add({
    method: "POST",
    path: "/v1/policies",
    operationId: "CreatePolicy",
    summary: "Create a custom policy (version v1, the default); warnings for unknown actions",
    tag: "policies",
    actions: ["ram:CreatePolicy"],
    query: S.writeQuery,
    body: S.createPolicyBody,
    response: S.writeResult.extend(S.policyView.shape).extend({ warnings: S.issueView.array().optional() }),
    status: 201,
    plan: (c: Call<unknown, unknown, z.infer<typeof S.createPolicyBody>>) => ({
      checks: [{ action: "ram:CreatePolicy", resource: policyArn(c, c.body.policyName) }],
      command: {
        type: "CreatePolicy",
        policyName: c.body.policyName,
        document: c.body.document,
        ...(c.body.description !== undefined ? { description: c.body.description } : {}),
      },
      result: (_s, a) => ({ ...policyView(a, c.body.policyName), ...withWarnings(c.body.document) }),
    }),
  });
  add({
    method: "GET",
    path: "/v1/policies",
    operationId: "ListPolicies",
    summary: "List system and custom policies (`?type=System|Custom`)",
    tag: "policies",
    actions: ["ram:ListPolicies"],
    query: S.listPoliciesQuery,
    response: z.object({ policies: S.policyView.array() }),
    read: (c: Call<unknown, z.infer<typeof S.listPoliciesQuery>>) => {
      c.authorize("ram:ListPolicies", policyArn(c, "*"));
      const names = [
        ...(c.query.type !== "Custom" ? [...SYSTEM_POLICIES.keys()] : []),
        ...(c.query.type !== "System" ? [...c.account.policies.keys()].sort() : []),
      ];
      return { policies: names.map((n) => policyView(c.account, n)) };
    },
  });
  add({
    method: "GET",
    path: "/v1/policies/:policyName",
    operationId: "GetPolicy",
    summary: "A system or custom policy: its default document and versions",
    tag: "policies",
    actions: ["ram:GetPolicy"],
    params: S.policyParams,
    response: S.policyView,
    read: (c: Call<z.infer<typeof S.policyParams>>) => {
      c.authorize("ram:GetPolicy", policyArn(c, c.params.policyName));
      return policyView(c.account, c.params.policyName);
    },
  });
  add({
    method: "GET",
    path: "/v1/policies/:policyName/attachments",
    operationId: "ListEntitiesForPolicy",
    summary: "The users and groups a policy is attached to",
    tag: "policies",
    actions: ["ram:ListEntitiesForPolicy"],
    params: S.policyParams,
    response: z.object({ users: z.array(z.string()), groups: z.array(z.string()) }),
    read: (c: Call<z.infer<typeof S.policyParams>>) => {
      c.authorize("ram:ListEntitiesForPolicy", policyArn(c, c.params.policyName));
      const view = policyView(c.account, c.params.policyName);
      const ref = `${view.policyType}:${view.policyName}`;
      return {
        users: [...c.account.users.values()]
          .filter((u) => u.policies.has(ref))
          .map((u) => u.userName)
          .sort(),
        groups: [...c.account.groups.values()]
          .filter((g) => g.policies.has(ref))
          .map((g) => g.groupName)
          .sort(),
      };
    },
  });
  add({
    method: "POST",
    path: "/v1/policies/:policyName/versions",
    operationId: "CreatePolicyVersion",
    summary: "Edit a policy: a new version (at most 5; a 6th removes the oldest non-default one)",
    tag: "policies",
    actions: ["ram:CreatePolicyVersion"],
    params: S.policyParams,
    query: S.writeQuery,
    body: S.createPolicyVersionBody,
    response: S.writeResult
      .extend(S.policyView.shape)
      .extend({ versionId: S.versionId, warnings: S.issueView.array().optional() }),
    status: 201,
    plan: (c: Call<z.infer<typeof S.policyParams>, unknown, z.infer<typeof S.createPolicyVersionBody>>) => ({
      checks: [{ action: "ram:CreatePolicyVersion", resource: policyArn(c, c.params.policyName) }],
      command: {
        type: "CreatePolicyVersion",
        policyName: c.params.policyName,
        document: c.body.document,
        setAsDefault: c.body.setAsDefault ?? false,
      },
      result: (_s, a) => {
        const v = policyView(a, c.params.policyName);
        return { ...v, versionId: v.versions.at(-1)?.versionId, ...withWarnings(c.body.document) };
      },
    }),
  });
  add({
    method: "GET",
    path: "/v1/policies/:policyName/versions/:versionId",
    operationId: "GetPolicyVersion",
    summary: "One version of a policy with its document",
    tag: "policies",
    actions: ["ram:GetPolicyVersion"],
    params: S.policyVersionParams,
    response: S.policyVersionView,
    read: (c: Call<z.infer<typeof S.policyVersionParams>>) => {
      c.authorize("ram:GetPolicyVersion", policyArn(c, c.params.policyName));
      const sys = getSystemPolicy(c.params.policyName);
      if (sys) {
        if (c.params.versionId !== sys.version)
          throw notFound("Policy.Version", `${sys.name}/${c.params.versionId}`, "policy version");
        return { versionId: sys.version, isDefault: true, document: sys.document };
      }
      const p = c.account.policies.get(c.params.policyName);
      if (!p) throw notFound("Policy", c.params.policyName);
      const v = p.versions.get(c.params.versionId);
      if (!v) throw notFound("Policy.Version", `${p.policyName}/${c.params.versionId}`, "policy version");
      return {
        versionId: v.versionId,
        isDefault: v.versionId === p.defaultVersion,
        createdAt: v.createdAt,
        document: v.document,
      };
    },
  });
  add({
    method: "PUT",
    path: "/v1/policies/:policyName/default-version",
    operationId: "SetDefaultPolicyVersion",
    summary: "Make a version the default (the one that is enforced)",
    tag: "policies",
    actions: ["ram:SetDefaultPolicyVersion"],
    params: S.policyParams,
    query: S.writeQuery,
    body: S.setDefaultVersionBody,
    response: S.writeResult.extend(S.policyView.shape),
    plan: (c: Call<z.infer<typeof S.policyParams>, unknown, z.infer<typeof S.setDefaultVersionBody>>) => ({
      checks: [{ action: "ram:SetDefaultPolicyVersion", resource: policyArn(c, c.params.policyName) }],
      command: {
        type: "SetDefaultPolicyVersion",
        policyName: c.params.policyName,
        versionId: c.body.versionId,
      },
      result: (_s, a) => policyView(a, c.params.policyName),
    }),
  });
  add({
    method: "DELETE",
    path: "/v1/policies/:policyName/versions/:versionId",
    operationId: "DeletePolicyVersion",
    summary: "Delete a non-default version",
    tag: "policies",
    actions: ["ram:DeletePolicyVersion"],
    params: S.policyVersionParams,
    query: S.writeQuery,
    response: S.writeResult,
    plan: (c: Call<z.infer<typeof S.policyVersionParams>>) => ({
      checks: [{ action: "ram:DeletePolicyVersion", resource: policyArn(c, c.params.policyName) }],
      command: {
        type: "DeletePolicyVersion",
        policyName: c.params.policyName,
        versionId: c.params.versionId,
      },
    }),
  });
  add({
    method: "DELETE",
    path: "/v1/policies/:policyName",
    operationId: "DeletePolicy",
    summary: "Delete a custom policy that is attached to nothing (409 DeleteConflict otherwise)",
    tag: "policies",
    actions: ["ram:DeletePolicy"],
    params: S.policyParams,
    query: S.writeQuery,
    response: S.writeResult,
    plan: (c: Call<z.infer<typeof S.policyParams>>) => {
      if (getSystemPolicy(c.params.policyName))
        throw new CommandRejected(
          400,
          "InvalidParameter.PolicyType",
          `\`${c.params.policyName}\` is a system policy (read-only)`,
          "params.policyName",
        );
      return {
        checks: [{ action: "ram:DeletePolicy", resource: policyArn(c, c.params.policyName) }],
        command: { type: "DeletePolicy", policyName: c.params.policyName },
      };
    },
  });

  // ---- attachments ----
  for (const kind of ["user", "group"] as const) {
    const K = kind === "user" ? "User" : "Group";
    const base = kind === "user" ? "/v1/users/:userName" : "/v1/groups/:groupName";
    const nameOf = (c: Call<Record<string, string>>) =>
      (kind === "user" ? c.params.userName : c.params.groupName) as string;
    const targetArn = (c: Call<Record<string, string>>) =>
      kind === "user" ? userArn(c, nameOf(c)) : groupArn(c, nameOf(c));
    const target = (c: Call<Record<string, string>>) =>
      kind === "user"
        ? { kind: "user" as const, userName: nameOf(c) }
        : { kind: "group" as const, groupName: nameOf(c) };
    const view = (_s: State, a: Account, c: Call<Record<string, string>>) => ({
      policies: attachedView(
        kind === "user" ? mustUser(a, nameOf(c)).policies : mustGroup(a, nameOf(c)).policies,
      ),
    });
    add({
      method: "POST",
      path: `${base}/policies`,
      operationId: `AttachPolicyTo${K}`,
      summary: `Attach a system or custom policy to a ${kind} (at most 20 system + 10 custom)`,
      tag: "attachments",
      actions: [`ram:AttachPolicyTo${K}`],
      params: kind === "user" ? S.userParams : S.groupParams,
      query: S.writeQuery,
      body: S.attachBody,
      response: S.writeResult.extend({ policies: S.attachedPolicyView.array() }),
      plan: (c: Call<Record<string, string>, unknown, z.infer<typeof S.attachBody>>) => ({
        checks: [
          { action: `ram:AttachPolicyTo${K}`, resource: targetArn(c) },
          { action: `ram:AttachPolicyTo${K}`, resource: policyArn(c, c.body.policyName) },
        ],
        command: {
          type: "AttachPolicy",
          policyName: c.body.policyName,
          ...(c.body.policyType ? { policyType: c.body.policyType } : {}),
          target: target(c),
        },
        result: (s, a) => view(s, a, c),
      }),
    });
    add({
      method: "DELETE",
      path: `${base}/policies/:policyName`,
      operationId: `DetachPolicyFrom${K}`,
      summary: `Detach a policy from a ${kind}`,
      tag: "attachments",
      actions: [`ram:DetachPolicyFrom${K}`],
      params: kind === "user" ? S.userPolicyParams : S.groupPolicyParams,
      query: S.detachQuery,
      response: S.writeResult.extend({ policies: S.attachedPolicyView.array() }),
      plan: (c: Call<{ policyName: string } & Record<string, string>, z.infer<typeof S.detachQuery>>) => ({
        checks: [
          { action: `ram:DetachPolicyFrom${K}`, resource: targetArn(c) },
          { action: `ram:DetachPolicyFrom${K}`, resource: policyArn(c, c.params.policyName) },
        ],
        command: {
          type: "DetachPolicy",
          policyName: c.params.policyName,
          ...(c.query.policyType ? { policyType: c.query.policyType } : {}),
          target: target(c),
        },
        result: (s, a) => view(s, a, c),
      }),
    });
    add({
      method: "GET",
      path: `${base}/policies`,
      operationId: `ListPoliciesFor${K}`,
      summary:
        kind === "user"
          ? "Policies attached to a user, directly and through its groups"
          : "Policies attached to a group",
      tag: "attachments",
      actions: [`ram:ListPoliciesFor${K}`],
      params: kind === "user" ? S.userParams : S.groupParams,
      response: z.object({
        policies: S.attachedPolicyView.array(),
        viaGroups: z
          .array(z.object({ groupName: z.string(), policies: S.attachedPolicyView.array() }))
          .optional()
          .describe("users only: policies reaching the user through its groups"),
      }),
      read: (c: Call<Record<string, string>>) => {
        c.authorize(`ram:ListPoliciesFor${K}`, targetArn(c));
        if (kind === "group") return { policies: attachedView(mustGroup(c.account, nameOf(c)).policies) };
        const u = mustUser(c.account, nameOf(c));
        return {
          policies: attachedView(u.policies),
          viaGroups: [...u.groups].map((g) => {
            const grp = c.account.groups.get(g)!;
            return { groupName: grp.groupName, policies: attachedView(grp.policies) };
          }),
        };
      },
    });
  }

  // ---- MQTT topics ----
  add({
    method: "POST",
    path: "/v1/mqtt/instances/:instanceId/topics",
    operationId: "CreateTopic",
    summary: "Create a parent topic in an MQTT instance (sub-topics below it are free-form)",
    tag: "mqtt",
    actions: ["mq:CreateTopic"],
    params: S.instanceParams,
    query: S.writeQuery,
    body: S.createTopicBody,
    response: S.writeResult.extend({ instanceId: S.instanceId, topic: S.parentTopic }),
    status: 201,
    plan: (c: Call<z.infer<typeof S.instanceParams>, unknown, z.infer<typeof S.createTopicBody>>) => ({
      checks: [
        { action: "mq:CreateTopic", resource: mqTopicArn(scope(c), c.params.instanceId, c.body.topic) },
      ],
      command: { type: "CreateTopic", instanceId: c.params.instanceId, topic: c.body.topic },
      result: () => ({ instanceId: c.params.instanceId, topic: c.body.topic }),
    }),
  });
  add({
    method: "GET",
    path: "/v1/mqtt/instances/:instanceId/topics",
    operationId: "ListTopic",
    summary: "The parent topics of an MQTT instance",
    tag: "mqtt",
    actions: ["mq:ListTopic"],
    params: S.instanceParams,
    response: z.object({ instanceId: S.instanceId, topics: S.parentTopic.array() }),
    read: (c: Call<z.infer<typeof S.instanceParams>>) => {
      c.authorize("mq:ListTopic", mqTopicArn(scope(c), c.params.instanceId, "*"));
      return {
        instanceId: c.params.instanceId,
        topics: [...(c.account.topics.get(c.params.instanceId) ?? [])].sort(),
      };
    },
  });
  add({
    method: "DELETE",
    path: "/v1/mqtt/instances/:instanceId/topics/:topic",
    operationId: "DeleteTopic",
    summary: "Delete a parent topic",
    tag: "mqtt",
    actions: ["mq:DeleteTopic"],
    params: S.topicParams,
    query: S.writeQuery,
    response: S.writeResult,
    plan: (c: Call<z.infer<typeof S.topicParams>>) => ({
      checks: [
        { action: "mq:DeleteTopic", resource: mqTopicArn(scope(c), c.params.instanceId, c.params.topic) },
      ],
      command: { type: "DeleteTopic", instanceId: c.params.instanceId, topic: c.params.topic },
    }),
  });

  // ---- MQTT Group IDs ----
  const gidView = (s: State, instanceId: string, g: { groupId: string; owner: PrincipalRef }) => ({
    instanceId,
    groupId: g.groupId,
    owner: principalView(s, g.owner),
  });
  add({
    method: "POST",
    path: "/v1/mqtt/instances/:instanceId/group-ids",
    operationId: "CreateGroupId",
    summary: "Create a Group ID; one created by a RAM user is usable only by that user (and the account)",
    tag: "mqtt",
    actions: ["mq:CreateGroupId"],
    params: S.instanceParams,
    query: S.writeQuery,
    body: S.createGroupIdBody,
    response: S.writeResult.extend(S.groupIdView.shape),
    status: 201,
    plan: (c: Call<z.infer<typeof S.instanceParams>, unknown, z.infer<typeof S.createGroupIdBody>>) => ({
      checks: [
        { action: "mq:CreateGroupId", resource: mqGroupIdArn(scope(c), c.params.instanceId, c.body.groupId) },
      ],
      command: { type: "CreateGroupId", instanceId: c.params.instanceId, groupId: c.body.groupId },
      result: (s, a) =>
        gidView(s, c.params.instanceId, a.groupIds.get(c.params.instanceId)!.get(c.body.groupId)!),
    }),
  });
  add({
    method: "GET",
    path: "/v1/mqtt/instances/:instanceId/group-ids",
    operationId: "ListGroupId",
    summary: "Group IDs of an instance the caller may use (root: all, with owners)",
    tag: "mqtt",
    actions: ["mq:ListGroupId"],
    params: S.instanceParams,
    response: z.object({ groupIds: S.groupIdView.array() }),
    read: (c: Call<z.infer<typeof S.instanceParams>>) => {
      c.authorize("mq:ListGroupId", mqGroupIdArn(scope(c), c.params.instanceId, "*"));
      const me = c.caller.principal;
      const all = [...(c.account.groupIds.get(c.params.instanceId)?.values() ?? [])];
      const visible = all.filter(
        (g) =>
          me.kind === "root" ||
          g.owner.kind === "root" ||
          (me.kind === "user" && g.owner.kind === "user" && g.owner.userId === me.userId),
      );
      return {
        groupIds: visible
          .sort((x, y) => (x.groupId < y.groupId ? -1 : 1))
          .map((g) => gidView(c.state, c.params.instanceId, g)),
      };
    },
  });
  add({
    method: "DELETE",
    path: "/v1/mqtt/instances/:instanceId/group-ids/:groupId",
    operationId: "DeleteGroupId",
    summary: "Delete a Group ID (only its creator or the account)",
    tag: "mqtt",
    actions: ["mq:DeleteGroupId"],
    params: S.groupIdParams,
    query: S.writeQuery,
    response: S.writeResult,
    plan: (c: Call<z.infer<typeof S.groupIdParams>>) => ({
      checks: [
        {
          action: "mq:DeleteGroupId",
          resource: mqGroupIdArn(scope(c), c.params.instanceId, c.params.groupId),
        },
      ],
      command: { type: "DeleteGroupId", instanceId: c.params.instanceId, groupId: c.params.groupId },
    }),
  });

  // ---- console grants ----
  add({
    method: "POST",
    path: "/v1/users/:userName/console-grants",
    operationId: "AddConsoleGrant",
    summary:
      "Grant a user PUB and/or SUB on a topic (and its sub-topics) — the seed's MQ console permissions",
    tag: "console grants",
    actions: ["mq:AddConsoleGrant"],
    params: S.userParams,
    query: S.writeQuery,
    body: S.consoleGrantBody,
    response: S.writeResult.extend({ consoleGrants: S.consoleGrantView.array() }),
    status: 201,
    plan: (c: Call<z.infer<typeof S.userParams>, unknown, z.infer<typeof S.consoleGrantBody>>) => {
      const instanceId = inst(c, c.body.instanceId);
      return {
        checks: [{ action: "mq:AddConsoleGrant", resource: mqTopicArn(scope(c), instanceId, c.body.topic) }],
        command: {
          type: "AddConsoleGrant",
          userName: c.params.userName,
          instanceId,
          topic: c.body.topic,
          perms: c.body.perms,
        },
        result: (_s, a) => ({ consoleGrants: grantsView(mustUser(a, c.params.userName)) }),
      };
    },
  });
  add({
    method: "DELETE",
    path: "/v1/users/:userName/console-grants",
    operationId: "RemoveConsoleGrant",
    summary: "Revoke PUB and/or SUB console grants of a user on a topic",
    tag: "console grants",
    actions: ["mq:RemoveConsoleGrant"],
    params: S.userParams,
    query: S.removeConsoleGrantQuery,
    response: S.writeResult.extend({ consoleGrants: S.consoleGrantView.array() }),
    plan: (c: Call<z.infer<typeof S.userParams>, z.infer<typeof S.removeConsoleGrantQuery>>) => {
      const instanceId = inst(c, c.query.instanceId);
      return {
        checks: [
          { action: "mq:RemoveConsoleGrant", resource: mqTopicArn(scope(c), instanceId, c.query.topic) },
        ],
        command: {
          type: "RemoveConsoleGrant",
          userName: c.params.userName,
          instanceId,
          topic: c.query.topic,
          perms: c.query.perms.split(",") as ("PUB" | "SUB")[],
        },
        result: (_s, a) => ({ consoleGrants: grantsView(mustUser(a, c.params.userName)) }),
      };
    },
  });
  add({
    method: "GET",
    path: "/v1/users/:userName/console-grants",
    operationId: "ListConsoleGrant",
    summary: "A user's console grants",
    tag: "console grants",
    actions: ["mq:ListConsoleGrant"],
    params: S.userParams,
    response: z.object({ consoleGrants: S.consoleGrantView.array() }),
    read: (c: Call<z.infer<typeof S.userParams>>) => {
      c.authorize("mq:ListConsoleGrant", `acs:mq:${c.region}:${c.accountId}:topic/*`);
      return { consoleGrants: grantsView(mustUser(c.account, c.params.userName)) };
    },
  });

  // ---- simulate ----
  add({
    method: "POST",
    path: "/v1/simulate",
    operationId: "SimulatePolicy",
    summary:
      "The decision object for (principal, action, resource, context), at head or at a past position/time",
    tag: "simulate",
    actions: ["ram:SimulatePolicy"],
    body: S.simulateBody,
    response: S.decisionView.extend({ position: S.writeResult.shape.position, principal: S.principalView }),
    read: async (c: Call<unknown, unknown, z.infer<typeof S.simulateBody>>) => {
      const b = c.body;
      c.authorize(
        "ram:SimulatePolicy",
        b.principal.kind === "root" ? rootArn(c) : userArn(c, b.principal.userName),
      );
      const past = b.position !== undefined || b.time !== undefined;
      if (b.position !== undefined && b.position > c.state.position)
        throw new CommandRejected(
          400,
          "InvalidParameter.Position",
          `position ${b.position} is beyond the head (${c.state.position})`,
          "body.position",
        );
      const p = past
        ? await c.replayState({
            ...(b.position !== undefined ? { position: b.position } : {}),
            ...(b.time !== undefined ? { time: b.time } : {}),
          })
        : c.projection;
      let principal: PrincipalRef = { accountId: c.accountId, kind: "root" };
      if (b.principal.kind === "user") {
        const u = p.userByName(c.accountId, b.principal.userName);
        if (!u) throw notFound("User", b.principal.userName, past ? "user (at that position)" : "user");
        principal = { accountId: c.accountId, kind: "user", userId: u.userId };
      }
      const d = p.authorizeUncached(principal, b.action, b.resource, {
        "acs:CurrentTime": b.time ?? new Date().toISOString(),
        ...(b.context ?? {}),
      });
      return { ...d, position: p.position, principal: principalView(p.state, principal) };
    },
  });
  return R;
}
