/**
 * Request and response schemas of the admin API (zod 4). They validate every
 * request (a bad one is a 400 with the JSON path of the first problem) and
 * generate `/openapi.json` through `z.toJSONSchema`, so the document and the
 * checks cannot drift apart.
 */
import { z } from "zod";

// ---- names (RAM's and ApsaraMQ's rules) ----

/** RAM user login name: 1–64 of letters, digits, `.`, `_`, `-`, `@`. */
export const userName = z
  .string()
  .regex(/^[A-Za-z0-9._@-]{1,64}$/, "must be 1–64 characters of letters, digits, `.`, `_`, `-`, `@`")
  .describe("RAM user name (login name before `@<AccountAlias>`)");
/** RAM group name. */
export const groupName = z
  .string()
  .regex(/^[A-Za-z0-9._-]{1,64}$/, "must be 1–64 characters of letters, digits, `.`, `_`, `-`")
  .describe("RAM group name");
/** Policy name (custom: letters, digits, `-`; system policies are named `Aliyun…`). */
export const policyName = z
  .string()
  .regex(/^[A-Za-z0-9-]{1,128}$/, "must be 1–128 characters of letters, digits and `-`")
  .describe("policy name (custom or system)");
export const versionId = z
  .string()
  .regex(/^v\d{1,9}$/, "must look like `v3`")
  .describe("policy version id");
export const accessKeyId = z
  .string()
  .regex(/^[A-Za-z0-9]{8,64}$/, "must be 8–64 letters and digits")
  .describe("AccessKey id");
export const instanceId = z
  .string()
  .regex(/^[A-Za-z0-9_-]{1,64}$/, "must be 1–64 characters of letters, digits, `_`, `-`")
  .describe("MQTT instance id (default `mqtt-local`)");
/** A parent topic: the first topic level, created by an admin. */
export const parentTopic = z
  .string()
  .regex(/^[A-Za-z0-9_-]{1,64}$/, "a parent topic is 1–64 characters of letters, digits, `_`, `-` (no `/`)")
  .describe("parent topic (first topic level)");
/** A topic for a console grant: a parent topic, optionally with sub-topic levels (no wildcards). */
export const grantTopic = z
  .string()
  .max(128)
  .regex(
    /^[A-Za-z0-9_-]{1,64}(\/[^/+#\s\u0000]+)*$/,
    "must be a parent topic optionally followed by `/sub/levels` (no `+`, `#` or empty levels)",
  )
  .describe("topic the grant covers (with its sub-topics)");
/** An MQTT Group ID: `GID_` or `GID-` then letters, digits, `_`, `-` (7–64 characters in all). */
export const groupId = z
  .string()
  .regex(
    /^GID[_-][A-Za-z0-9_-]{3,60}$/,
    "must start with `GID_` or `GID-` and be 7–64 characters of letters, digits, `_`, `-`",
  )
  .describe("MQTT Group ID (client ids are `<GroupID>@@@<DeviceID>`)");
const perm = z.enum(["PUB", "SUB"]);
const policyType = z.enum(["System", "Custom"]);

// ---- common query ----

const bool = z.enum(["true", "false", "1", "0"]);
/** Query of every write: "revocation confirmed" (SPEC §6). */
export const writeQuery = z
  .object({
    waitEnforced: bool
      .optional()
      .describe(
        "wait until every live edge has applied this write's position (also header `x-pc-wait-enforced`)",
      ),
    waitTimeoutMs: z
      .string()
      .regex(/^\d{1,6}$/, "must be a number of milliseconds")
      .optional()
      .describe("how long to wait (default 5000, at most 120000)"),
  })
  .strict();

// ---- bodies ----

export const createUserBody = z.object({ userName, displayName: z.string().max(128).optional() }).strict();
export const updateUserBody = z
  .object({ newUserName: userName.optional(), displayName: z.string().max(128).optional() })
  .strict();
export const setAccessKeyStatusBody = z.object({ status: z.enum(["Active", "Inactive"]) }).strict();
export const createGroupBody = z.object({ groupName, comments: z.string().max(256).optional() }).strict();
const document = z
  .unknown()
  .refine((d) => d !== undefined, "is required")
  .describe('RAM policy document (SPEC §3): `{ Version: "1", Statement: [...] }`, at most 6,144 characters');
export const createPolicyBody = z
  .object({ policyName, description: z.string().max(1024).optional(), document })
  .strict();
export const createPolicyVersionBody = z
  .object({ document, setAsDefault: z.boolean().optional().describe("default false") })
  .strict();
export const setDefaultVersionBody = z.object({ versionId }).strict();
export const attachBody = z
  .object({ policyName, policyType: policyType.optional().describe("inferred from the name when absent") })
  .strict();
export const createTopicBody = z.object({ topic: parentTopic }).strict();
export const createGroupIdBody = z.object({ groupId }).strict();
export const consoleGrantBody = z
  .object({
    instanceId: instanceId.optional(),
    topic: grantTopic,
    perms: z.array(perm).min(1).max(2).describe('`["PUB"]`, `["SUB"]` or both'),
  })
  .strict();
export const removeConsoleGrantQuery = writeQuery.extend({
  instanceId: instanceId.optional(),
  topic: grantTopic,
  perms: z
    .string()
    .regex(/^(PUB|SUB)(,(PUB|SUB))?$/, "must be `PUB`, `SUB` or `PUB,SUB`")
    .describe("comma-separated"),
});
export const detachQuery = writeQuery.extend({ policyType: policyType.optional() });
const contextValue = z.union([
  z.string(),
  z.number(),
  z.boolean(),
  z.array(z.union([z.string(), z.number(), z.boolean()])),
]);
export const simulateBody = z
  .object({
    principal: z
      .discriminatedUnion("kind", [
        z.object({ kind: z.literal("root") }).strict(),
        z.object({ kind: z.literal("user"), userName }).strict(),
      ])
      .describe("whose permissions to evaluate (a principal of the caller's account)"),
    action: z.string().min(1).max(256),
    resource: z.string().min(1).max(2048),
    context: z.record(z.string(), contextValue).optional(),
    position: z
      .number()
      .int()
      .min(0)
      .optional()
      .describe("decide at this log position (default: head) — replays the log"),
    time: z.iso.datetime({ offset: true }).optional().describe("decide as of this time — replays the log"),
  })
  .strict();
export const listPoliciesQuery = z.object({ type: policyType.optional() }).strict();

// ---- params ----

export const userParams = z.object({ userName }).strict();
export const groupParams = z.object({ groupName }).strict();
export const policyParams = z.object({ policyName }).strict();
export const policyVersionParams = z.object({ policyName, versionId }).strict();
export const accessKeyParams = z.object({ accessKeyId }).strict();
export const memberParams = z.object({ groupName, userName }).strict();
export const userPolicyParams = z.object({ userName, policyName }).strict();
export const groupPolicyParams = z.object({ groupName, policyName }).strict();
export const instanceParams = z.object({ instanceId }).strict();
export const topicParams = z.object({ instanceId, topic: parentTopic }).strict();
export const groupIdParams = z.object({ instanceId, groupId }).strict();

// ---- responses (documentation) ----

/** A principal in answers. */
export const principalView = z.object({
  kind: z.enum(["root", "user"]),
  accountId: z.string(),
  userName: z.string().optional(),
  userId: z.string().optional(),
});
const enforcement = z
  .object({
    confirmed: z.boolean(),
    position: z.number(),
    waitedMs: z.number(),
    edges: z.array(
      z.object({ edgeId: z.string(), kind: z.string(), position: z.number(), stale: z.boolean() }),
    ),
    lagging: z.array(
      z.object({ edgeId: z.string(), kind: z.string(), position: z.number(), stale: z.boolean() }),
    ),
  })
  .describe("present when the write asked to wait until enforced");
/** A policy validation warning (unknown action of a known service …). */
export const issueView = z.object({ path: z.string(), code: z.string(), message: z.string() });
/** Fields every write response has. */
export const writeResult = z.object({
  position: z.number().int().describe("log position of the write (the current head when nothing changed)"),
  changed: z.boolean().describe("false when the command changed nothing (no event appended)"),
  enforcement: enforcement.optional(),
});
export const accessKeyView = z.object({
  accessKeyId: z.string(),
  status: z.enum(["Active", "Inactive"]),
  createdAt: z.string(),
  userName: z.string().optional().describe("absent for the account's own keys"),
});
export const consoleGrantView = z.object({
  instanceId: z.string(),
  topic: z.string(),
  perms: z.array(perm),
});
export const attachedPolicyView = z.object({ policyName: z.string(), policyType });
export const userView = z.object({
  userId: z.string(),
  userName: z.string(),
  loginName: z.string().describe("`<userName>@<AccountAlias>`"),
  displayName: z.string().optional(),
  disabled: z.boolean(),
  groups: z.array(z.string()),
  policies: z.array(attachedPolicyView),
  accessKeys: z.array(accessKeyView),
  consoleGrants: z.array(consoleGrantView),
});
export const groupView = z.object({
  groupId: z.string(),
  groupName: z.string(),
  comments: z.string().optional(),
  members: z.array(z.string()),
  policies: z.array(attachedPolicyView),
});
export const policyVersionView = z.object({
  versionId: z.string(),
  isDefault: z.boolean(),
  createdAt: z.string().optional(),
  document: z.unknown(),
});
export const policyView = z.object({
  policyName: z.string(),
  policyType,
  description: z.string().optional(),
  defaultVersion: z.string(),
  document: z.unknown().describe("the default version's document"),
  versions: z.array(policyVersionView.omit({ document: true })),
});
export const groupIdView = z.object({
  instanceId: z.string(),
  groupId: z.string(),
  owner: principalView,
});
export const callerView = z.object({
  accountId: z.string(),
  alias: z.string(),
  principal: principalView,
  accessKeyId: z.string(),
  region: z.string(),
  mqttInstanceId: z.string(),
  amqpInstanceId: z.string(),
  position: z.number(),
});
export const decisionView = z.object({
  decision: z.enum(["Allow", "ExplicitDeny", "ImplicitDeny"]),
  action: z.string(),
  resource: z.string(),
  reason: z.string(),
  decidingStatements: z.array(
    z.object({
      policy: z.string(),
      policyType: z.string(),
      version: z.string(),
      statement: z.number(),
      effect: z.enum(["Allow", "Deny"]),
      sid: z.string().optional(),
    }),
  ),
  missingContextKeys: z.array(z.string()),
  message: z.string().optional(),
});
export const errorBody = z.object({
  code: z.string().describe("stable, RAM-style (`EntityNotExist.User`, `SignatureDoesNotMatch`…)"),
  message: z.string(),
  path: z
    .string()
    .optional()
    .describe("JSON path of the offending input (`body.document.Statement[0].Effect`)"),
  requestId: z.string(),
  errors: z.array(z.object({ path: z.string(), message: z.string() })).optional(),
  accessDeniedDetail: z
    .object({
      AuthAction: z.string(),
      AuthResource: z.string(),
      AuthPrincipalType: z.enum(["Account", "SubUser"]),
      AuthPrincipalOwnerId: z.string(),
      AuthPrincipalDisplayName: z.string(),
      NoPermissionType: z.enum(["ExplicitDeny", "ImplicitDeny"]),
      PolicyType: z.string().optional(),
    })
    .optional()
    .describe("403 only"),
  decision: decisionView.optional().describe("403 only: the full decision object"),
});
