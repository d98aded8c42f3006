/**
 * Why a command was refused. The decider throws these; the HTTP layer maps
 * `status` to the response (400 bad input, 403 ownership, 404 missing entity,
 * 409 name conflict, limit or delete conflict) and `code` to its body.
 * Codes follow RAM's spelling (`EntityAlreadyExists.User`, `LimitExceeded.User.AccessKey`).
 */

/** HTTP-like status of a rejection. */
export type RejectionStatus = 400 | 403 | 404 | 409;

/** A command the domain rules refuse; nothing is appended. */
export class CommandRejected extends Error {
  override name = "CommandRejected";
  constructor(
    readonly status: RejectionStatus,
    /** RAM-style code, e.g. `EntityNotExist.User`. */
    readonly code: string,
    message: string,
    /** JSON path of the offending input field (for 400s), e.g. `document.Statement[0].Effect`. */
    readonly path?: string,
    /** Extra structured detail (all validation errors, the attachments blocking a delete…). */
    readonly detail?: Record<string, unknown>,
  ) {
    super(message);
  }
}

/** True for a CommandRejected from any copy of this module. */
export function isCommandRejected(e: unknown): e is CommandRejected {
  return e instanceof CommandRejected || (e as { name?: unknown } | null)?.name === "CommandRejected";
}

/** 404 for a missing entity of `kind` named `name`. */
export const notFound = (kind: string, name: string, what = kind.toLowerCase()) =>
  new CommandRejected(404, `EntityNotExist.${kind}`, `${what} \`${name}\` does not exist`);

/** 409 for a name already taken. */
export const alreadyExists = (kind: string, name: string, what = kind.toLowerCase()) =>
  new CommandRejected(409, `EntityAlreadyExists.${kind}`, `${what} \`${name}\` already exists`);

/** 409 for a limit of SPEC §2. */
export const limitExceeded = (code: string, message: string) =>
  new CommandRejected(409, `LimitExceeded.${code}`, message);
