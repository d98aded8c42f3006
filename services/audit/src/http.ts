/**
 * The audit queries over HTTP: a fastify plugin the admin API mounts behind
 * its own signature authentication and RAM authorization (SPEC §4.3, §8).
 *
 * | route | RAM action | input |
 * |---|---|---|
 * | `GET /v1/audit/state` | `audit:GetState` | query `at` |
 * | `POST /v1/audit/explain` | `audit:Explain` | body `{ principal, action, resource, context?, at? }` |
 * | `POST /v1/audit/who-can` | `audit:WhoCan` | body `{ action, resource, context?, at? }` |
 * | `GET /v1/audit/diff` | `audit:Diff` | query `from`, `to`, `principal` |
 * | `POST /v1/audit/diff` | `audit:Diff` | body `{ from?, to?, principal?, probes?: [{ action, resource, context? }] }` |
 * | `GET /v1/audit/history` | `audit:GetHistory` | query `principal` (required), `from`, `to` |
 * | `POST /v1/audit/verify` | `audit:Verify` | body `{ from?, to? }` (times) |
 *
 * Every action is asked on the resource `acs:audit:<region>:<acct>:log` (the
 * caller's account; a policy grants it with e.g. `acs:audit:*:$acct:*`). The
 * caller only ever sees its own account: `state` shows it alone, `principal`
 * names a RAM user of it (or `root`, or `id:<userId>`), `explain`/`who-can`
 * refuse a resource of another account, `verify` checks the records of its
 * principals. `at`/`from`/`to` are positions or ISO 8601 times (auditor.ts).
 * `explain` and `who-can` set `acs:CurrentTime` to the time asked about unless
 * the context gives it.
 *
 * The caller is authenticated and authorized first, then the input is checked.
 * Errors: bad input → an error with `statusCode` 400 (`code` InvalidParameter)
 * and a message naming the field; something absent at that position → 404
 * (`code` EntityNotExist); the host app's error handler formats them. The
 * body may arrive parsed or raw (the admin API keeps raw bodies for its
 * signatures): both are accepted.
 */
import type { RequestContext } from "@portcullis/policy";
import type { PrincipalRef } from "@portcullis/projection";
import type { FastifyPluginAsync, FastifyRequest } from "fastify";
import { z } from "zod";
import type { Auditor } from "./auditor.ts";
import type { DecisionReader } from "./decision-log.ts";

/** The RAM actions of the audit queries. */
export const AUDIT_ACTIONS = {
  state: "audit:GetState",
  explain: "audit:Explain",
  whoCan: "audit:WhoCan",
  diff: "audit:Diff",
  history: "audit:GetHistory",
  verify: "audit:Verify",
} as const;

/** One of {@link AUDIT_ACTIONS}. */
export type AuditAction = (typeof AUDIT_ACTIONS)[keyof typeof AUDIT_ACTIONS];

/** The resource every audit action is asked on: `acs:audit:<region>:<acct>:log`. */
export function auditResourceArn(region: string, accountId: string): string {
  return `acs:audit:${region}:${accountId}:log`;
}

/** Who is asking (after authentication and authorization). */
export interface AuditCaller {
  principal: PrincipalRef;
}

/**
 * Authenticates the request and authorizes `action` on `resource(caller's
 * account)`; resolves with the caller, or throws (an error with `statusCode`
 * 401/403, formatted by the host app).
 */
export type AuditAuthorize = (
  request: FastifyRequest,
  action: AuditAction,
  resource: (accountId: string) => string,
) => Promise<AuditCaller> | AuditCaller;

/** Options of {@link auditRoutes}. */
export interface AuditRoutesOptions {
  auditor: Auditor;
  /** The decision log for `verify` (without it, verify answers 501). */
  decisions?: DecisionReader;
  authorize: AuditAuthorize;
  /** ARN region (default `local`). */
  region?: string;
}

const at = z.union([z.string().min(1).max(64), z.number().int().nonnegative()]).optional();
const scalar = z.union([z.string(), z.number(), z.boolean()]);
const context = z.record(z.string().min(1), z.union([scalar, z.array(scalar)])).optional();
const request = { action: z.string().min(1).max(128), resource: z.string().min(1).max(2048), context, at };
const explainBody = z.object({ principal: z.string().min(1).max(128), ...request }).strict();
const whoCanBody = z.object(request).strict();
const probe = z.object({ action: request.action, resource: request.resource, context }).strict();
const diffBody = z
  .object({
    from: at,
    to: at,
    principal: z.string().min(1).max(128).optional(),
    probes: z.array(probe).max(10_000).optional(),
  })
  .strict();
const verifyBody = z
  .object({ from: z.string().min(1).max(64).optional(), to: z.string().min(1).max(64).optional() })
  .strict();
const stateQuery = z.object({ at }).strict();
const diffQuery = z.object({ from: at, to: at, principal: z.string().min(1).max(128).optional() }).strict();
const historyQuery = z.object({ principal: z.string().min(1).max(128), from: at, to: at }).strict();

class InvalidParameter extends Error {
  override name = "InvalidParameter";
  readonly statusCode = 400;
  readonly code = "InvalidParameter";
  constructor(
    message: string,
    readonly path: string,
  ) {
    super(message);
  }
}

function parse<T>(schema: z.ZodType<T>, value: unknown, where: "body" | "query"): T {
  const r = schema.safeParse(value ?? (where === "query" ? {} : undefined));
  if (r.success) return r.data;
  const i = r.error.issues[0]!;
  const path = [where, ...i.path.map(String)].join(".");
  if (i.code === "unrecognized_keys")
    throw new InvalidParameter(`${path}: unknown field \`${i.keys[0]}\``, path);
  if (value === undefined && where === "body")
    throw new InvalidParameter("body: a JSON object is required", "body");
  throw new InvalidParameter(`${path}: ${i.message}`, path);
}

/** The JSON body, whether fastify parsed it or left it raw. */
function bodyOf(req: FastifyRequest): unknown {
  const b = req.body as unknown;
  if (b === undefined || b === null) return undefined;
  if (Buffer.isBuffer(b) || typeof b === "string") {
    const text = b.toString();
    if (text.trim() === "") return undefined;
    try {
      return JSON.parse(text);
    } catch (e) {
      throw new InvalidParameter(`body: not valid JSON: ${(e as Error).message}`, "body");
    }
  }
  return b;
}

/** Context with `acs:CurrentTime` set to the time asked about, unless given. */
function withCurrentTime(ctx: RequestContext | undefined, time: string): RequestContext {
  if (ctx && Object.keys(ctx).some((k) => k.toLowerCase() === "acs:currenttime")) return ctx;
  return { ...(ctx ?? {}), "acs:CurrentTime": time };
}

/** The time an `at` names (for `acs:CurrentTime`): that time, the event's time at a position, or now. */
export async function timeOfAt(auditor: Auditor, at: string | number | undefined): Promise<string> {
  if (typeof at === "string" && !/^\d+$/.test(at.trim()) && at !== "now" && at !== "head") {
    const ms = Date.parse(at);
    if (!Number.isNaN(ms)) return new Date(ms).toISOString();
  }
  if (at === undefined || at === "now" || at === "head") return new Date().toISOString();
  const p = await auditor.resolve(at);
  return p.time ?? new Date().toISOString();
}

/** The fastify plugin serving the audit queries (see the module comment). */
export const auditRoutes: FastifyPluginAsync<AuditRoutesOptions> = async (app, opts) => {
  const { auditor, decisions, authorize } = opts;
  const region = opts.region ?? "local";
  const resource = (acct: string) => auditResourceArn(region, acct);
  /** The caller's account must own the resource asked about. */
  const ownResource = (acct: string, arn: string, path: string) => {
    const a = arn.split(":")[3];
    if (!arn.startsWith("acs:") || a === undefined)
      throw new InvalidParameter(`${path}: \`${arn}\` is not an ARN`, path);
    if (a !== acct)
      throw new InvalidParameter(
        `${path}: \`${arn}\` is a resource of account \`${a}\`; audit answers only about your account \`${acct}\``,
        path,
      );
  };

  app.get("/v1/audit/state", async (req) => {
    const caller = await authorize(req, AUDIT_ACTIONS.state, resource);
    const q = parse(stateQuery, req.query, "query");
    return auditor.state({ at: q.at, accountId: caller.principal.accountId });
  });

  app.post("/v1/audit/explain", async (req) => {
    const caller = await authorize(req, AUDIT_ACTIONS.explain, resource);
    const b = parse(explainBody, bodyOf(req), "body");
    const acct = caller.principal.accountId;
    ownResource(acct, b.resource, "body.resource");
    return auditor.explain({
      principal: b.principal,
      action: b.action,
      resource: b.resource,
      context: withCurrentTime(b.context, await timeOfAt(auditor, b.at)),
      at: b.at,
      accountId: acct,
    });
  });

  app.post("/v1/audit/who-can", async (req) => {
    const caller = await authorize(req, AUDIT_ACTIONS.whoCan, resource);
    const b = parse(whoCanBody, bodyOf(req), "body");
    const acct = caller.principal.accountId;
    ownResource(acct, b.resource, "body.resource");
    return auditor.whoCan({
      action: b.action,
      resource: b.resource,
      context: withCurrentTime(b.context, await timeOfAt(auditor, b.at)),
      at: b.at,
      accountId: acct,
    });
  });

  const diff = async (req: FastifyRequest, input: () => z.infer<typeof diffBody>) => {
    const caller = await authorize(req, AUDIT_ACTIONS.diff, resource);
    const d = input();
    const acct = caller.principal.accountId;
    for (const [i, p] of (d.probes ?? []).entries())
      ownResource(acct, p.resource, `body.probes.${i}.resource`);
    return auditor.diff({
      accountId: acct,
      from: d.from,
      to: d.to,
      ...(d.principal !== undefined ? { principal: d.principal } : {}),
      ...(d.probes !== undefined ? { probes: d.probes } : {}),
    });
  };
  app.get("/v1/audit/diff", async (req) => diff(req, () => parse(diffQuery, req.query, "query")));
  app.post("/v1/audit/diff", async (req) => diff(req, () => parse(diffBody, bodyOf(req), "body")));

  app.get("/v1/audit/history", async (req) => {
    const caller = await authorize(req, AUDIT_ACTIONS.history, resource);
    const q = parse(historyQuery, req.query, "query");
    return auditor.history({
      accountId: caller.principal.accountId,
      principal: q.principal,
      from: q.from,
      to: q.to,
    });
  });

  app.post("/v1/audit/verify", async (req, reply) => {
    const caller = await authorize(req, AUDIT_ACTIONS.verify, resource);
    const b = parse(verifyBody, bodyOf(req) ?? {}, "body");
    if (!decisions)
      return reply
        .code(501)
        .send({ code: "NotImplemented", message: "this server has no decision log to verify" });
    return auditor.verify(decisions, {
      accountId: caller.principal.accountId,
      ...(b.from !== undefined ? { from: b.from } : {}),
      ...(b.to !== undefined ? { to: b.to } : {}),
    });
  });
};
