/**
 * @portcullis/policy — the RAM policy engine (SPEC §3–4). Pure: no I/O.
 * Stages: parse → validate → compile → evaluate → explain.
 */

// ARNs and wildcards
export type { AmqpResource, ArnScope, MqResource, NormalizeOptions, ParsedArn } from "./arn.ts";
export {
  AMQP_DEFAULT_EXCHANGE,
  amqpAllQueuesArn,
  amqpExchangeArn,
  amqpExchangeMessagesArn,
  amqpQueueArn,
  amqpQueueMessagesArn,
  amqpVhostArn,
  decodeAmqpName,
  encodeAmqpName,
  mqGroupIdArn,
  mqInstanceArn,
  mqTopicArn,
  normalizeResourcePattern,
  parseAmqpRelative,
  parseArn,
  parseMqRelative,
  ramArn,
} from "./arn.ts";
export { isKnownAction, isKnownService, KNOWN_ACTIONS, KNOWN_CONDITION_KEYS } from "./catalog.ts";
// compile
export type { CompiledPolicy, CompiledStatement, CompileOptions } from "./compile.ts";
export { compilePolicy, compilePolicySource, compileSystemPolicy } from "./compile.ts";
export { OPERATORS } from "./conditions.ts";
// explain
export type { DecidingStatement, Decision, DecisionKind, DecisionReason } from "./decision.ts";
export { denialMessage, explainDecision } from "./decision.ts";
export type { PolicyIssue } from "./errors.ts";
export { isPolicyValidationError, PolicyValidationError } from "./errors.ts";
export { evaluatePolicies } from "./evaluate.ts";
// parse → validate
export type { ParseResult } from "./parse.ts";
export { parsePolicy, parsePolicyText } from "./parse.ts";
// evaluate
export type { PolicySetOptions } from "./policy-set.ts";
export { PolicySet } from "./policy-set.ts";
export type { SystemPolicy } from "./system-policies.ts";
export { getSystemPolicy, SYSTEM_POLICIES } from "./system-policies.ts";
export type {
  AuthzRequest,
  ConditionBlock,
  ConditionValue,
  ContextValue,
  Effect,
  PolicyDocument,
  PolicyRef,
  PolicyType,
  Principal,
  RequestContext,
  Statement,
} from "./types.ts";
export type { PolicyLimits, ValidationResult } from "./validate.ts";
export { DEFAULT_MAX_DOCUMENT_CHARS, validatePolicy } from "./validate.ts";
export type { WildcardMatcher } from "./wildcard.ts";
export { compileWildcard, wildcardMatch } from "./wildcard.ts";
