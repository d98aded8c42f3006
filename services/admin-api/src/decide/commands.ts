/**
 * The admin plane's commands (SPEC §2, §4.3): what an administrator asks for.
 * Commands name entities by their login names (users, groups, policies); the
 * decider resolves them against the projection and emits events that carry
 * ids. Anything random (new ids, generated secrets) is made before deciding and
 * travels in the command, so `decide` stays pure and a retried command
 * re-decides with the same ids.
 */
import type { EventData, EventType, SealedSecret } from "@portcullis/events";
import type { PrincipalRef } from "@portcullis/projection";

/** A target a policy is attached to, by name. */
export type AttachTargetName = { kind: "user"; userName: string } | { kind: "group"; groupName: string };

/** Every command the decider understands. */
export type Command =
  | { type: "CreateAccount"; alias: string; rootAccessKey?: { accessKeyId: string; secret: SealedSecret } }
  | { type: "CreateUser"; userId: string; userName: string; displayName?: string }
  | { type: "UpdateUser"; userName: string; newUserName?: string; displayName?: string }
  | { type: "DisableUser"; userName: string }
  | { type: "EnableUser"; userName: string }
  | { type: "DeleteUser"; userName: string }
  | {
      type: "CreateAccessKey";
      accessKeyId: string;
      /** `undefined` userName = the account's own (root) key. */
      userName?: string;
      secret: SealedSecret;
    }
  | { type: "SetAccessKeyStatus"; accessKeyId: string; status: "Active" | "Inactive" }
  | { type: "DeleteAccessKey"; accessKeyId: string }
  | { type: "CreateGroup"; groupId: string; groupName: string; comments?: string }
  | { type: "DeleteGroup"; groupName: string }
  | { type: "AddUserToGroup"; userName: string; groupName: string }
  | { type: "RemoveUserFromGroup"; userName: string; groupName: string }
  | { type: "CreatePolicy"; policyName: string; description?: string; document: unknown }
  | { type: "CreatePolicyVersion"; policyName: string; document: unknown; setAsDefault: boolean }
  | { type: "SetDefaultPolicyVersion"; policyName: string; versionId: string }
  | { type: "DeletePolicyVersion"; policyName: string; versionId: string }
  | { type: "DeletePolicy"; policyName: string }
  | {
      type: "AttachPolicy";
      policyName: string;
      /** Inferred from the name when absent (system policy names are reserved). */
      policyType?: "System" | "Custom";
      target: AttachTargetName;
    }
  | { type: "DetachPolicy"; policyName: string; policyType?: "System" | "Custom"; target: AttachTargetName }
  | { type: "CreateTopic"; instanceId: string; topic: string }
  | { type: "DeleteTopic"; instanceId: string; topic: string }
  | { type: "CreateGroupId"; instanceId: string; groupId: string }
  | { type: "DeleteGroupId"; instanceId: string; groupId: string }
  | { type: "AddConsoleGrant"; userName: string; instanceId: string; topic: string; perms: ("PUB" | "SUB")[] }
  | {
      type: "RemoveConsoleGrant";
      userName: string;
      instanceId: string;
      topic: string;
      perms: ("PUB" | "SUB")[];
    };

/** The type name of a command. */
export type CommandType = Command["type"];

/** An event the decider emits: type and data; the caller wraps it in an envelope (`newEvent`). */
export type NewEvent = { [T in EventType]: { type: T; data: EventData<T> } }[EventType];

/** Configurable limits of SPEC §2. */
export interface Limits {
  maxAccessKeysPerPrincipal: number;
  maxGroupsPerUser: number;
  maxPolicyVersions: number;
  maxCustomPolicies: number;
  maxSystemPoliciesPerTarget: number;
  maxCustomPoliciesPerTarget: number;
  maxDocumentChars: number;
}

/** The defaults of SPEC §2 (and RAM). */
export const DEFAULT_LIMITS: Readonly<Limits> = Object.freeze({
  maxAccessKeysPerPrincipal: 2,
  maxGroupsPerUser: 10,
  maxPolicyVersions: 5,
  maxCustomPolicies: 1500,
  maxSystemPoliciesPerTarget: 20,
  maxCustomPoliciesPerTarget: 10,
  maxDocumentChars: 6144,
});

/** Who decides and for which account. */
export interface DecideContext {
  /** The account whose stream the events go to. */
  accountId: string;
  /** The caller (Group ID ownership: a RAM user's Group IDs are its own). */
  caller: PrincipalRef;
  limits?: Partial<Limits>;
}
