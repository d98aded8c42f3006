/**
 * The event catalog (SPEC §5). Each event type has a schema per version; the
 * current version is what producers write. Older versions stay readable through
 * upcasters (see upcast.ts). "Grant" and "revoke" are these events.
 */
import { validatePolicy } from "@portcullis/policy";
import { z } from "zod";

const name = z.string().min(1).max(128);
const id = z.string().min(1).max(128);
const accountId = z.string().regex(/^\d{16}$/, "account id must be 16 digits");
const versionId = z.string().regex(/^v\d+$/, "version id must look like `v1`");
const sealed = z.object({
  alg: z.literal("AES-256-GCM"),
  keyId: z.string().min(1),
  iv: z.string().min(1),
  tag: z.string().min(1),
  ciphertext: z.string().min(1),
});
const principalRef = z.discriminatedUnion("kind", [
  z.object({ kind: z.literal("root") }),
  z.object({ kind: z.literal("user"), userId: id }),
]);
const attachTarget = z.discriminatedUnion("kind", [
  z.object({ kind: z.literal("user"), userId: id }),
  z.object({ kind: z.literal("group"), groupId: id }),
]);
/** A policy document that passes the policy engine's validation (stored in normal form). */
const policyDocument = z.unknown().superRefine((doc, ctx) => {
  const r = validatePolicy(doc);
  if (!r.ok) for (const e of r.errors) ctx.addIssue({ code: "custom", message: `${e.path}: ${e.message}` });
});
const perm = z.enum(["PUB", "SUB"]);

/** Current-version data schemas, by event type. */
export const EVENT_SCHEMAS = {
  AccountCreated: z.object({ accountId, alias: name }),
  UserCreated: z.object({ userId: id, userName: name, displayName: z.string().max(128).optional() }),
  UserUpdated: z.object({
    userId: id,
    newUserName: name.optional(),
    displayName: z.string().max(128).optional(),
  }),
  UserDisabled: z.object({ userId: id }),
  UserEnabled: z.object({ userId: id }),
  UserDeleted: z.object({ userId: id }),
  AccessKeyCreated: z.object({ accessKeyId: id, owner: principalRef, secret: sealed }),
  AccessKeyStatusChanged: z.object({ accessKeyId: id, status: z.enum(["Active", "Inactive"]) }),
  AccessKeyDeleted: z.object({ accessKeyId: id }),
  GroupCreated: z.object({ groupId: id, groupName: name, comments: z.string().max(256).optional() }),
  GroupDeleted: z.object({ groupId: id }),
  UserAddedToGroup: z.object({ userId: id, groupId: id }),
  UserRemovedFromGroup: z.object({ userId: id, groupId: id }),
  PolicyCreated: z.object({
    policyName: name,
    description: z.string().max(1024).optional(),
    versionId,
    document: policyDocument,
  }),
  PolicyVersionCreated: z.object({
    policyName: name,
    versionId,
    document: policyDocument,
    setAsDefault: z.boolean(),
    /** The oldest non-default version removed to stay within 5 versions (SPEC §2), if any. */
    removedVersionId: versionId.optional(),
  }),
  PolicyDefaultVersionSet: z.object({ policyName: name, versionId }),
  PolicyVersionDeleted: z.object({ policyName: name, versionId }),
  PolicyDeleted: z.object({ policyName: name }),
  PolicyAttached: z.object({
    policyName: name,
    policyType: z.enum(["System", "Custom"]),
    target: attachTarget,
  }),
  PolicyDetached: z.object({
    policyName: name,
    policyType: z.enum(["System", "Custom"]),
    target: attachTarget,
  }),
  ConsoleGrantAdded: z.object({ userId: id, instanceId: name, topic: name, perms: z.array(perm).min(1) }),
  ConsoleGrantRemoved: z.object({ userId: id, instanceId: name, topic: name, perms: z.array(perm).min(1) }),
  TopicCreated: z.object({ instanceId: name, topic: name }),
  TopicDeleted: z.object({ instanceId: name, topic: name }),
  GroupIdCreated: z.object({ instanceId: name, groupId: name, owner: principalRef }),
  GroupIdDeleted: z.object({ instanceId: name, groupId: name }),
} as const;

/** Every event type name. */
export type EventType = keyof typeof EVENT_SCHEMAS;

/** The data of an event type at its current schema version. */
export type EventData<T extends EventType> = z.infer<(typeof EVENT_SCHEMAS)[T]>;

/** Every event type, in catalog order. */
export const EVENT_TYPES = Object.keys(EVENT_SCHEMAS) as EventType[];

/** Current schema version per type (bumped when a type's data changes; older ones upcast). */
export const CURRENT_SCHEMA_VERSION: Readonly<Record<EventType, number>> = Object.fromEntries(
  EVENT_TYPES.map((t) => [t, t === "ConsoleGrantAdded" || t === "ConsoleGrantRemoved" ? 2 : 1]),
) as Record<EventType, number>;

/** True when `t` names an event type of the catalog. */
export function isEventType(t: string): t is EventType {
  return Object.hasOwn(EVENT_SCHEMAS, t);
}
