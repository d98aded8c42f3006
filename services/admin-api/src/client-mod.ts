/**
 * @portcullis/admin-api/client — the signing client alone (no server, no fastify):
 * what the CLI and other tools load to call the admin API.
 */

export type { AdminClientOptions, AdminCredentials, WriteResult } from "./client.ts";
export { AdminApiError, AdminClient } from "./client.ts";
export type { SignOptions } from "./signing.ts";
export { SIGNING_ALGORITHM, SIGNING_HEADERS, signRequest } from "./signing.ts";
