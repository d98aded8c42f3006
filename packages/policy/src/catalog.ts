/**
 * The catalog of known services, actions and condition keys. Validation warns
 * (never errors) about an action of a known service that is not listed here,
 * such as the seed's misspelt `amqp:CreatExchange`; evaluation treats such an
 * action like any other string, so it grants nothing real.
 */

/** Actions per known service, in their canonical spelling. */
export const KNOWN_ACTIONS: Readonly<Record<string, readonly string[]>> = {
  // SPEC §4.1 plus the management actions of the MQTT admin plane (SPEC §4.3).
  mq: [
    "MqttInstanceAccess",
    "PUB",
    "SUB",
    "MqttMetaData",
    "ListMqttInstance",
    "GetMqttInstance",
    "CreateTopic",
    "DeleteTopic",
    "ListTopic",
    "GetTopic",
    "CreateGroupId",
    "DeleteGroupId",
    "ListGroupId",
    "GetGroupId",
    "AddConsoleGrant",
    "RemoveConsoleGrant",
    "ListConsoleGrant",
  ],
  // Seed 001, the normative AMQP table.
  amqp: [
    "ListVhost",
    "CreateVhost",
    "DeleteVhost",
    "GetVhost",
    "ListExchange",
    "CreateExchange",
    "DeleteExchange",
    "GetExchange",
    "ListQueue",
    "CreateQueue",
    "DeleteQueue",
    "GetQueue",
    "BasicRecover",
    "BasicCancel",
    "BasicPublish",
    "BasicConsume",
    "BasicAck",
    "BasicNack",
    "BasicReject",
    "QueuePurge",
    "BasicGet",
  ],
  // SPEC §4.3: RAM management actions.
  ram: [
    "CreateUser",
    "GetUser",
    "UpdateUser",
    "DeleteUser",
    "ListUsers",
    "CreateAccessKey",
    "UpdateAccessKey",
    "DeleteAccessKey",
    "ListAccessKeys",
    "CreateGroup",
    "GetGroup",
    "UpdateGroup",
    "DeleteGroup",
    "ListGroups",
    "AddUserToGroup",
    "RemoveUserFromGroup",
    "ListGroupsForUser",
    "ListUsersForGroup",
    "CreatePolicy",
    "GetPolicy",
    "ListPolicies",
    "CreatePolicyVersion",
    "GetPolicyVersion",
    "ListPolicyVersions",
    "SetDefaultPolicyVersion",
    "DeletePolicyVersion",
    "DeletePolicy",
    "AttachPolicyToUser",
    "DetachPolicyFromUser",
    "AttachPolicyToGroup",
    "DetachPolicyFromGroup",
    "ListPoliciesForUser",
    "ListPoliciesForGroup",
    "ListEntitiesForPolicy",
    "SimulatePolicy",
    "GetAuditLog",
  ],
};

const knownActionSet = new Set(
  Object.entries(KNOWN_ACTIONS).flatMap(([svc, names]) => names.map((n) => `${svc}:${n}`.toLowerCase())),
);

/** True when `service` is one whose actions we know. */
export function isKnownService(service: string): boolean {
  return Object.hasOwn(KNOWN_ACTIONS, service.toLowerCase());
}

/** True when `action` (`svc:Name`, no wildcards) is in the catalog; case-insensitive. */
export function isKnownAction(action: string): boolean {
  return knownActionSet.has(action.toLowerCase());
}

/** Condition keys with their canonical spelling; keys are matched case-insensitively. */
export const KNOWN_CONDITION_KEYS: readonly string[] = [
  "acs:CurrentTime",
  "acs:SourceIp",
  "acs:SecureTransport",
  "acs:MFAPresent",
  "mq:ClientId",
  "mq:GroupId",
  "mq:Qos",
  "mq:Retain",
  "amqp:RoutingKey",
  "amqp:Vhost",
];

const canonicalKeys = new Map(KNOWN_CONDITION_KEYS.map((k) => [k.toLowerCase(), k]));

/** The canonical spelling of a known condition key, or undefined for an unknown one. */
export function canonicalConditionKey(key: string): string | undefined {
  return canonicalKeys.get(key.toLowerCase());
}
