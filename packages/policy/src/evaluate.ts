/** One-shot evaluation for callers that do not keep a PolicySet (CLI, tests, simulations). */
import type { CompiledPolicy } from "./compile.ts";
import type { Decision } from "./decision.ts";
import { PolicySet } from "./policy-set.ts";
import type { AuthzRequest, Principal } from "./types.ts";

/** Evaluate one request against compiled policies for a principal (no cache). */
export function evaluatePolicies(
  principal: Principal,
  policies: readonly CompiledPolicy[],
  request: AuthzRequest,
): Decision {
  return new PolicySet(principal, policies, { cacheSize: 0 }).evaluate(request);
}
