/** @portcullis/admin-api — the admin plane (SPEC §2, §4.3): HTTP API, its signing client, and the decider. */

export type { BootstrappedAccount } from "./bootstrap.ts";
export { bootstrapAccount } from "./bootstrap.ts";
export type { AdminClientOptions, AdminCredentials, WriteResult } from "./client.ts";
export { AdminApiError, AdminClient } from "./client.ts";
export type {
  AttachTargetName,
  Command,
  CommandType,
  DecideContext,
  Limits,
  NewEvent,
} from "./decide/commands.ts";
export { DEFAULT_LIMITS } from "./decide/commands.ts";
export { decide } from "./decide/decide.ts";
export { CommandRejected, isCommandRejected } from "./decide/errors.ts";
export type { AdminIndex, DecideState } from "./decide/state.ts";
export { evolveIndex, initialIndex } from "./decide/state.ts";
export { JetStreamNonceStore, type JetStreamNonceStoreOptions, SqliteNonceStore } from "./nonce-stores.ts";
export type { AdminApi, AdminApiOptions } from "./server.ts";
export { AccessDenied, startAdminApi } from "./server.ts";
export type {
  NonceStore,
  NonceVerdict,
  ParsedAuthorization,
  SignableRequest,
  SignOptions,
} from "./signing.ts";
export {
  canonicalQuery,
  canonicalRequest,
  computeSignature,
  NonceCache,
  parseAuthorization,
  SIGNING_ALGORITHM,
  SIGNING_HEADERS,
  signRequest,
} from "./signing.ts";
