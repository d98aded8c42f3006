/**
 * `/openapi.json`: an OpenAPI 3.1 document generated from the route table and
 * its zod schemas (`z.toJSONSchema`, JSON Schema 2020-12 — the dialect of
 * OpenAPI 3.1), so every route, parameter, body and response is described by
 * the same schemas that validate it.
 */
import { z } from "zod";
import type { RouteDef } from "./routes.ts";
import { errorBody } from "./schemas.ts";

const json = (s: z.ZodType) => {
  const { $schema: _, ...rest } = z.toJSONSchema(s, { io: "input", unrepresentable: "any" }) as Record<
    string,
    unknown
  >;
  return rest;
};

const ERRORS: Record<string, string> = {
  "400": "bad input: `{ code, message, path }` (path: `body.…`, `query.…`, `params.…`)",
  "401": "authentication failed; `code` says why (SignatureDoesNotMatch, RequestExpired, ReplayedRequest, …)",
  "403":
    "AccessDenied: `accessDeniedDetail` (AuthAction, AuthResource, NoPermissionType) and the decision object",
  "404": "an entity does not exist (`EntityNotExist.User` …)",
  "409":
    "name conflict, limit exceeded or delete conflict (`EntityAlreadyExists.*`, `LimitExceeded.*`, `DeleteConflict.*`)",
  "413": "the request body is too large",
  "503":
    "the event feed is fail-closed or the store unavailable (`ServiceUnavailable`), or the shared nonce store cannot be reached (`NonceStoreUnavailable`)",
};

/** Build the OpenAPI document of these routes. */
export function buildOpenApi(
  table: readonly RouteDef[],
  opts: { maxClockSkewMs: number },
): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const r of table) {
    const p = r.path.replace(/:([A-Za-z]+)/g, "{$1}");
    const parameters: unknown[] = [];
    for (const [where, schema] of [
      ["path", r.params],
      ["query", r.query],
    ] as const) {
      if (!schema) continue;
      for (const [name, field] of Object.entries(schema.shape)) {
        const f = field as z.ZodType;
        const js = json(f);
        parameters.push({
          name,
          in: where,
          required: where === "path" || !f.safeParse(undefined).success,
          schema: js,
          ...(typeof js.description === "string" ? { description: js.description } : {}),
        });
      }
    }
    const writes = r.plan !== undefined;
    if (writes)
      parameters.push({
        name: "x-pc-wait-enforced",
        in: "header",
        required: false,
        schema: { type: "string" },
        description: "`true` (or a timeout in ms): wait until every live edge has applied this write",
      });
    const responses: Record<string, unknown> = {
      [String(r.status ?? 200)]: {
        description: writes ? "done; `position` is the write's log position" : "ok",
        content: { "application/json": { schema: json(r.response) } },
      },
    };
    if (writes && (r.status ?? 200) !== 200)
      responses["200"] = { description: "nothing changed (`changed: false`, no event appended)" };
    for (const [code, description] of Object.entries(ERRORS))
      responses[code] = {
        description,
        content: { "application/json": { schema: { $ref: "#/components/schemas/Error" } } },
      };
    paths[p] ??= {};
    paths[p][r.method.toLowerCase()] = {
      operationId: r.operationId,
      summary: r.summary,
      tags: [r.tag],
      ...(r.actions.length > 0 ? { "x-ram-actions": r.actions } : {}),
      description:
        r.actions.length > 0
          ? `Authorized by RAM action(s) ${r.actions.map((a) => `\`${a}\``).join(", ")}.`
          : "",
      parameters,
      ...(r.body
        ? { requestBody: { required: true, content: { "application/json": { schema: json(r.body) } } } }
        : {}),
      responses,
      security: [{ PC1: [] }],
    };
  }
  const plain = (description: string, schema: Record<string, unknown> = { type: "object" }) => ({
    get: {
      summary: description,
      security: [],
      responses: { "200": { description: "ok", content: { "application/json": { schema } } } },
    },
  });
  paths["/healthz"] = plain("liveness: the process answers");
  paths["/readyz"] = {
    get: {
      summary: "readiness: the event feed is caught up and not stale (503 otherwise)",
      security: [],
      responses: { "200": { description: "ready" }, "503": { description: "stale or fail-closed" } },
    },
  };
  paths["/metrics"] = {
    get: {
      summary: "Prometheus metrics (`portcullis_admin_*`)",
      security: [],
      responses: {
        "200": {
          description: "text exposition format",
          content: { "text/plain": { schema: { type: "string" } } },
        },
      },
    },
  };
  paths["/openapi.json"] = plain("this document");
  return {
    openapi: "3.1.0",
    info: {
      title: "Portcullis admin API",
      version: "1",
      description:
        "The admin plane of Portcullis (SPEC §2, §4.3). Every /v1 call is signed with an AccessKey and authorized by the caller's RAM policies; every write is an event and returns its log position.",
    },
    servers: [{ url: "/" }],
    paths,
    components: {
      schemas: { Error: json(errorBody) },
      securitySchemes: {
        PC1: {
          type: "apiKey",
          in: "header",
          name: "Authorization",
          description: [
            "PC1-HMAC-SHA256 request signing (like Alibaba Cloud ACS3 / AWS SigV4).",
            "Headers: `x-pc-date` (ISO 8601 UTC), `x-pc-nonce` (16–128 of [A-Za-z0-9_-], single use), `x-pc-content-sha256` (hex SHA-256 of the body),",
            "`Authorization: PC1-HMAC-SHA256 Credential=<AccessKeyId>,SignedHeaders=<sorted;lower-case;names>,Signature=<hex>`.",
            'Signature = hex(HMAC-SHA256(AccessKeySecret, "PC1-HMAC-SHA256\\n" + hex(SHA-256(CanonicalRequest)))),',
            "CanonicalRequest = METHOD\\nPATH\\nCANONICAL_QUERY\\nCANONICAL_HEADERS\\nSIGNED_HEADERS\\nBODY_SHA256.",
            `Requests more than ${Math.round(opts.maxClockSkewMs / 1000)} s away from the server clock, or reusing a nonce, are refused (401).`,
          ].join(" "),
        },
      },
    },
  };
}
