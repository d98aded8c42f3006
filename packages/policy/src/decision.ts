/**
 * The decision object (SPEC §3): one type used by the library, the CLI, the
 * admin API, logs and audit. A decision carries its reasons.
 */
import type { PolicyType } from "./types.ts";

/** `Allow`, `ExplicitDeny` (a Deny statement matched) or `ImplicitDeny` (nothing allowed it). */
export type DecisionKind = "Allow" | "ExplicitDeny" | "ImplicitDeny";

/** A statement that decided: for an Allow the matching Allow statements, for a deny only the Deny ones. */
export interface DecidingStatement {
  policy: string;
  policyType: PolicyType;
  version: string;
  /** Index of the statement in the policy's `Statement` array (0 for a single-object `Statement`). */
  statement: number;
  effect: "Allow" | "Deny";
  sid?: string;
}

/** Why the decision came out as it did. */
export type DecisionReason =
  | "root" // the account itself: always allowed on its own resources
  | "statement" // decided by the listed statements
  | "no-match" // no statement allowed it
  | "cross-account" // resource of another account: never allowed
  | "invalid-resource" // not an ARN: never allowed
  | "principal-inactive"; // unknown, deleted or disabled user: never allowed

/** The answer to one authorization question. Immutable: cached decisions are shared. */
export interface Decision {
  decision: DecisionKind;
  action: string;
  resource: string;
  reason: DecisionReason;
  /** Deciding statements, ordered by policy name, version and statement index. */
  decidingStatements: readonly DecidingStatement[];
  /**
   * Condition keys absent from the context and referenced by the statements
   * that matched action and resource: for an ExplicitDeny the Deny statements
   * (evaluation stops there), otherwise the Deny and Allow statements.
   */
  missingContextKeys: readonly string[];
  /** For a denial: a sentence naming the principal, action and resource, and why. */
  message?: string;
}

function describeStatement(s: DecidingStatement): string {
  const idx = `Statement[${s.statement}]${s.sid ? ` (Sid \`${s.sid}\`)` : ""}`;
  return `${idx} of ${s.policyType} policy \`${s.policy}\` (${s.version})`;
}

/** The human sentence for a denial (undefined for an Allow). */
export function denialMessage(
  d: Pick<Decision, "decision" | "action" | "resource" | "reason" | "decidingStatements">,
  principal: string,
  details?: { principalAccount?: string; resourceAccount?: string },
): string | undefined {
  if (d.decision === "Allow") return undefined;
  const head = `${principal} is not allowed to perform \`${d.action}\` on \`${d.resource}\``;
  switch (d.reason) {
    case "cross-account":
      return `${head}: the resource belongs to account \`${details?.resourceAccount ?? "?"}\`, not to \`${
        details?.principalAccount ?? "?"
      }\`; cross-account access is never allowed`;
    case "invalid-resource":
      return `${head}: the resource is not a valid ARN`;
    case "principal-inactive":
      return `${head}: the principal does not exist or is disabled`;
    default:
      if (d.decision === "ExplicitDeny")
        return `${head}: explicitly denied by ${d.decidingStatements.map(describeStatement).join(", ")}`;
      return `${head}: no policy allows it (implicit deny)`;
  }
}

/** A one-line, human explanation of any decision (for CLI and logs). */
export function explainDecision(d: Decision): string {
  if (d.decision !== "Allow") return d.message ?? `${d.decision}: \`${d.action}\` on \`${d.resource}\``;
  if (d.reason === "root") return `Allow: the account itself may do anything on its own resources`;
  return `Allow: \`${d.action}\` on \`${d.resource}\` by ${d.decidingStatements.map(describeStatement).join(", ")}`;
}

/** Stable ordering of deciding statements, so the order of policies and statements never shows. */
export function compareDecidingStatements(a: DecidingStatement, b: DecidingStatement): number {
  if (a.policy !== b.policy) return a.policy < b.policy ? -1 : 1;
  if (a.policyType !== b.policyType) return a.policyType < b.policyType ? -1 : 1;
  if (a.version !== b.version) return a.version < b.version ? -1 : 1;
  return a.statement - b.statement;
}
