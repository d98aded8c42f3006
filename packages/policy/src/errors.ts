/** A problem found in a policy document, located by a JSON path such as `Statement[2].Condition.IpAddress`. */
export interface PolicyIssue {
  /** JSON path of the offending element; `$` is the whole document. */
  path: string;
  /** Lower-case message; user input appears in backticks. */
  message: string;
  /** Stable machine-readable code, e.g. `bad-version`, `unknown-operator`. */
  code: string;
}

/** Thrown by APIs that need a valid policy (compile, the CLI) when validation fails. */
export class PolicyValidationError extends Error {
  override name = "PolicyValidationError";
  readonly code = "POLICY_INVALID";
  constructor(
    readonly errors: readonly PolicyIssue[],
    readonly source?: string,
  ) {
    super(
      `${source ? `${source}: ` : ""}invalid policy: ${errors
        .slice(0, 5)
        .map((e) => `${e.path}: ${e.message}`)
        .join("; ")}${errors.length > 5 ? `; and ${errors.length - 5} more` : ""}`,
    );
  }
}

/** Type guard that checks the code as well as the class (works across package copies). */
export function isPolicyValidationError(e: unknown): e is PolicyValidationError {
  return e instanceof PolicyValidationError || (e as { code?: unknown } | null)?.code === "POLICY_INVALID";
}
