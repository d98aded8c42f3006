/** Types shared by every stage of the policy pipeline (parse → validate → compile → evaluate → explain). */

/** `Allow` or `Deny`. */
export type Effect = "Allow" | "Deny";

/** Condition block: `{ Operator: { Key: value | [values] } }`. */
export type ConditionBlock = Record<string, Record<string, ConditionValue | ConditionValue[]>>;

/** A single literal condition value as written in a policy. */
export type ConditionValue = string | number | boolean;

/** A validated statement in normal form: every list is an array. */
export interface Statement {
  Sid?: string;
  Effect: Effect;
  Action?: string[];
  NotAction?: string[];
  Resource?: string[];
  NotResource?: string[];
  Condition?: ConditionBlock;
}

/** A validated policy document in normal form (Statement always an array). */
export interface PolicyDocument {
  Version: "1";
  Statement: Statement[];
}

/** Where a policy comes from; reported in the decision object. */
export type PolicyType = "System" | "Custom" | "ConsoleGrant";

/** Identity of one policy version. */
export interface PolicyRef {
  /** Policy name, e.g. `AliyunMQPubOnlyAccess` or `orders-publisher`. */
  name: string;
  type: PolicyType;
  /** Version id, e.g. `v1`. */
  version: string;
}

/** A value in a request context. Arrays are multi-valued keys (any element may match). */
export type ContextValue = string | number | boolean | readonly (string | number | boolean)[];

/** Request context: condition key → value (e.g. `acs:SourceIp`, `mq:Qos`). */
export type RequestContext = Readonly<Record<string, ContextValue | undefined>>;

/** Who is asking. The root account is always allowed on its own resources. */
export interface Principal {
  /** The 16-digit account id the principal belongs to. */
  accountId: string;
  kind: "root" | "user";
  /** RAM user name (for messages and audit); absent for root. */
  name?: string;
}

/** One authorization question. */
export interface AuthzRequest {
  /** `<service>:<Name>`, matched case-insensitively. */
  action: string;
  /** Full ARN `acs:<service>:<region>:<account>:<relative-id>`, matched case-sensitively. */
  resource: string;
  context?: RequestContext;
}
