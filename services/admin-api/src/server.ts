/**
 * The admin API server (fastify). Every `/v1` request is authenticated by its
 * signature (auth.ts), authorized by the caller's RAM policies through the
 * live projection (the admin plane eats its own cooking), and — for writes —
 * decided (`decide`) and appended to the account's stream with optimistic
 * concurrency: expectedRevision is the revision the decision was made on; on a
 * conflict the server waits for its feed to catch up and decides again.
 *
 * A write responds once its own feed has applied it (read-your-writes), with
 * the `position`; with `?waitEnforced=true` (or header `x-pc-wait-enforced`)
 * it also waits until every live edge has applied it ("revocation
 * confirmed", SPEC §6) and says which edges lagged.
 */
import { randomUUID } from "node:crypto";
import { Auditor, auditRoutes, type DecisionReader, type SnapshotStore } from "@portcullis/audit";
import {
  type EventStore,
  isExpectedRevisionConflict,
  NO_STREAM,
  StoreUnavailableError,
} from "@portcullis/event-store";
import {
  type Actor,
  accessKeyAad,
  accountStream,
  CURRENT_SCHEMA_VERSION,
  newEvent,
  type SecretBox,
} from "@portcullis/events";
import {
  CredentialResolver,
  type DecisionSink,
  type LiveProjection,
  type PositionBoard,
} from "@portcullis/feed";
import { type Decision, denialMessage, type RequestContext } from "@portcullis/policy";
import { type PrincipalRef, replay } from "@portcullis/projection";
import Fastify, { type FastifyReply, type FastifyRequest, LogController } from "fastify";
import pino, { type Logger } from "pino";
import { Registry } from "prom-client";
import type { z } from "zod";
import { authenticate } from "./auth.ts";
import type { Limits } from "./decide/commands.ts";
import { decide } from "./decide/decide.ts";
import { CommandRejected, isCommandRejected } from "./decide/errors.ts";
import { IndexFollower } from "./follower.ts";
import { adminMetrics } from "./metrics.ts";
import { buildOpenApi } from "./openapi.ts";
import { type Call, type Caller, type RouteDef, routes } from "./routes.ts";
import { NonceCache, type NonceStore } from "./signing.ts";

/** Options of {@link startAdminApi}. */
export interface AdminApiOptions {
  store: EventStore;
  /** The live projection the admin plane decides on (already started). */
  feed: LiveProjection;
  /** Seals new AccessKey secrets and opens them to verify signatures. */
  box: SecretBox;
  /** Where "revocation confirmed" learns the edges' positions. */
  board: PositionBoard;
  /** Default 127.0.0.1. */
  host?: string;
  /** Default 0 (a free port). */
  port?: number;
  /**
   * Serve HTTPS with this key and certificate (PEM). Needed off loopback: a
   * created AccessKey's secret is in the response. Requests over it see
   * `acs:SecureTransport` true.
   */
  tls?: { key: string | Buffer; cert: string | Buffer };
  /** ARN region (default `local`). */
  region?: string;
  /** Default `mqtt-local`. */
  mqttInstanceId?: string;
  /** Default `amqp-local`. */
  amqpInstanceId?: string;
  /** pino logger (default: a new one at `info`); secrets and signatures are redacted. */
  logger?: Logger;
  /** prom-client registry for `/metrics` (default: a new one). */
  registry?: Registry;
  /** Maximum clock skew of signed requests (default 300 000 ms = 5 min). */
  maxClockSkewMs?: number;
  /** Largest request body in bytes (default 65 536); larger → 413. */
  bodyLimit?: number;
  /** Domain limits (SPEC §2 defaults). */
  limits?: Partial<Limits>;
  /** Default timeout of `waitEnforced` (5 000 ms). */
  enforcementTimeoutMs?: number;
  /**
   * Where nonces of signed requests are remembered (default: in this process).
   * Admin processes sharing one store must share it too (SqliteNonceStore,
   * JetStreamNonceStore), or a request replayed to another one is accepted.
   */
  nonces?: NonceStore;
  /** Receives a record of every authorization decision on an admin call. */
  onDecision?: DecisionSink;
  /** The decision log `POST /v1/audit/verify` re-decides (without it, verify answers 501). */
  auditDecisions?: DecisionReader;
  /** Snapshots for the audit queries (without them, each query replays from position 1). */
  auditSnapshots?: SnapshotStore;
}

/** A running admin API. */
export interface AdminApi {
  /** `http://host:port` (`https://` with `tls`). */
  url: string;
  port: number;
  close(): Promise<void>;
}

/** A request refused by RAM authorization: 403 with RAM's AccessDeniedDetail. */
export class AccessDenied extends Error {
  override name = "AccessDenied";
  constructor(
    readonly decision: Decision,
    readonly caller: { principal: PrincipalRef; displayName: string },
  ) {
    super(decision.message ?? `${caller.displayName} may not perform \`${decision.action}\``);
  }
}

const MAX_ATTEMPTS = 25;
const READ_YOUR_WRITES_MS = 10_000;

/** JSON path text of a zod issue path. */
function pathText(prefix: string, path: readonly PropertyKey[]): string {
  let s = prefix;
  for (const p of path)
    s +=
      typeof p === "number"
        ? `[${p}]`
        : /^[A-Za-z_$][\w$]*$/.test(String(p))
          ? `.${String(p)}`
          : `[${JSON.stringify(String(p))}]`;
  return s;
}

/** Issues of a zod error as `{path, message}` with friendlier messages. */
function zodIssues(prefix: string, err: z.ZodError): { path: string; message: string }[] {
  return err.issues.map((i) => {
    if (i.code === "unrecognized_keys")
      return {
        path: pathText(prefix, [...i.path, i.keys[0]!]),
        message: `unknown field${i.keys.length > 1 ? "s" : ""} ${i.keys.map((k) => `\`${k}\``).join(", ")}`,
      };
    if (i.code === "invalid_type" && (i.input === undefined || i.message.includes("received undefined")))
      return { path: pathText(prefix, i.path), message: "is required" };
    return { path: pathText(prefix, i.path), message: i.message };
  });
}

class BadRequest extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly path: string,
    readonly errors?: { path: string; message: string }[],
  ) {
    super(message);
  }
}

const enabled = (v: unknown) => v === "true" || v === "1";

/** Start the admin API; resolves once it listens. */
export async function startAdminApi(opts: AdminApiOptions): Promise<AdminApi> {
  const { store, feed, box, board } = opts;
  const region = opts.region ?? "local";
  const mqttInstanceId = opts.mqttInstanceId ?? "mqtt-local";
  const amqpInstanceId = opts.amqpInstanceId ?? "amqp-local";
  const maxClockSkewMs = opts.maxClockSkewMs ?? 300_000;
  const registry = opts.registry ?? new Registry();
  const metrics = adminMetrics(registry, feed);
  const base = opts.logger ?? pino({ level: process.env.PORTCULLIS_LOG_LEVEL ?? "info" });
  // INVARIANT: no secret reaches a log line — AccessKey secrets, signatures and auth headers are redacted.
  const log = base.child(
    { component: "admin-api" },
    {
      redact: {
        paths: [
          "accessKeySecret",
          "*.accessKeySecret",
          "secret",
          "*.secret",
          "signature",
          "*.signature",
          "authorization",
          "*.authorization",
          "headers.authorization",
          "req.headers.authorization",
        ],
        censor: "[redacted]",
      },
    },
  );
  const follower = await IndexFollower.start(store, feed);
  const credentials = new CredentialResolver(feed.projection, box);
  const offForget = feed.onApplied((_e, affected) => credentials.forget(affected.accessKeys));
  const nonces: NonceStore = opts.nonces ?? new NonceCache();
  const table = routes((accessKeyId, secret) => box.seal(secret, accessKeyAad(accessKeyId)));
  const openapi = buildOpenApi(table, { maxClockSkewMs });

  const app = Fastify({
    ...(opts.tls ? { https: { key: opts.tls.key, cert: opts.tls.cert } } : {}),
    loggerInstance: log,
    // One line per request is logged by the onResponse hook below (without bodies or headers).
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: opts.bodyLimit ?? 65_536,
    genReqId: () => randomUUID(),
    // Paths are matched as sent: the signature covers the raw path.
    routerOptions: { ignoreTrailingSlash: false },
  });
  // Keep the raw body: the signature covers its hash; JSON is parsed after authentication.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser("*", { parseAs: "buffer" }, (_req, body, done) => done(null, body));

  const sendError = (reply: FastifyReply, status: number, body: Record<string, unknown>) =>
    reply.code(status).send({ ...body, requestId: reply.request.id });

  app.setErrorHandler((err: Error & { statusCode?: number; code?: string }, req, reply) => {
    if (err instanceof BadRequest)
      return sendError(reply, 400, {
        code: err.code,
        message: err.message,
        path: err.path,
        ...(err.errors ? { errors: err.errors } : {}),
      });
    if (err instanceof AccessDenied) {
      const d = err.decision;
      const deny = d.decidingStatements.find((s) => s.effect === "Deny");
      return sendError(reply, 403, {
        code: "AccessDenied",
        message: d.message ?? err.message,
        accessDeniedDetail: {
          AuthAction: d.action,
          AuthResource: d.resource,
          AuthPrincipalType: err.caller.principal.kind === "root" ? "Account" : "SubUser",
          AuthPrincipalOwnerId: err.caller.principal.accountId,
          AuthPrincipalDisplayName: err.caller.displayName,
          NoPermissionType: d.decision === "ExplicitDeny" ? "ExplicitDeny" : "ImplicitDeny",
          ...(deny ? { PolicyType: deny.policyType } : {}),
        },
        decision: d,
      });
    }
    if (isCommandRejected(err)) {
      return sendError(reply, err.status, {
        code: err.code,
        message: err.message,
        ...(err.path !== undefined
          ? { path: /^(body|params|query)(\.|\[|$)/.test(err.path) ? err.path : `body.${err.path}` }
          : {}),
        ...(err.detail?.errors
          ? {
              errors: (err.detail.errors as { path: string; message: string }[]).map((e) => ({
                path: `body.${e.path}`,
                message: e.message,
              })),
            }
          : err.detail
            ? { detail: err.detail }
            : {}),
      });
    }
    if (err.statusCode === 413)
      return sendError(reply, 413, {
        code: "PayloadTooLarge",
        message: `request body exceeds ${opts.bodyLimit ?? 65_536} bytes`,
        path: "body",
      });
    if (err.statusCode === 415 || err.code === "FST_ERR_CTP_INVALID_MEDIA_TYPE")
      return sendError(reply, 415, { code: "UnsupportedMediaType", message: err.message });
    if (err instanceof StoreUnavailableError || (err as { code?: string }).code === "STORE_UNAVAILABLE")
      return sendError(reply, 503, {
        code: "ServiceUnavailable",
        message: `event store unavailable: ${err.message}`,
      });
    if (err.statusCode && err.statusCode >= 400 && err.statusCode < 500)
      return sendError(reply, err.statusCode, { code: err.code ?? "BadRequest", message: err.message });
    if ((err as { authFailure?: boolean }).authFailure === true && err.statusCode === 503)
      return sendError(reply, 503, { code: err.code ?? "ServiceUnavailable", message: err.message });
    req.log.error({ err }, "internal error");
    return sendError(reply, 500, { code: "InternalError", message: "internal error (see the server log)" });
  });
  app.setNotFoundHandler((req, reply) =>
    sendError(reply, 404, { code: "NotFound", message: `no route ${req.method} ${req.url.split("?")[0]}` }),
  );

  app.addHook("onResponse", (req, reply, done) => {
    const route = req.routeOptions.url ?? "unmatched";
    metrics.requests.inc({ method: req.method, route, status: String(reply.statusCode) });
    metrics.duration.observe({ method: req.method, route }, reply.elapsedTime / 1000);
    if (route.startsWith("/v1"))
      req.log.info(
        {
          method: req.method,
          route,
          url: req.url,
          status: reply.statusCode,
          ms: Math.round(reply.elapsedTime),
          accessKeyId: (req as { caller?: Caller }).caller?.accessKeyId,
        },
        "admin request",
      );
    done();
  });

  // ---- health, metrics, openapi ----
  app.get("/healthz", async () => ({ ok: true }));
  app.get("/readyz", async (_req, reply) => {
    const s = feed.status();
    const ready = !s.stale && !s.failClosed;
    return reply.code(ready ? 200 : 503).send({ ready, ...s });
  });
  app.get("/metrics", async (_req, reply) =>
    reply.header("content-type", registry.contentType).send(await registry.metrics()),
  );
  app.get("/openapi.json", async () => openapi);

  const displayName = (p: PrincipalRef) => feed.projection.displayName(p);

  // ---- the /v1 routes ----
  for (const route of table) {
    app.route({
      method: route.method,
      url: route.path,
      handler: async (req, reply) => {
        const caller = await authenticateOrFail(req);
        (req as { caller?: Caller }).caller = caller;
        const status = feed.status();
        if (status.failClosed)
          return sendError(reply, 503, {
            code: "ServiceUnavailable",
            message:
              "the event feed has been stale too long; the admin plane refuses requests until it recovers",
          });
        const input = parseInput(route, req);
        const result = route.plan
          ? await runWrite(route, caller, input, req)
          : await runRead(route, caller, input, req);
        return reply.code(route.plan && result.changed === false ? 200 : (route.status ?? 200)).send(result);
      },
    });
  }

  // ---- /v1/audit (SPEC §8): @portcullis/audit's routes, behind the same signatures and RAM authorization ----
  await app.register(auditRoutes, {
    auditor: new Auditor(store, {
      projection: { amqpInstanceId },
      region,
      ...(opts.auditSnapshots ? { snapshots: opts.auditSnapshots } : {}),
    }),
    ...(opts.auditDecisions ? { decisions: opts.auditDecisions } : {}),
    region,
    authorize: async (req, action, resource) => {
      const caller = await authenticateOrFail(req);
      (req as { caller?: Caller }).caller = caller;
      if (feed.status().failClosed)
        throw new StoreUnavailableError(
          "the event feed has been stale too long; the admin plane refuses requests",
        );
      const d = feed.projection.authorize(caller.principal, action, resource(caller.principal.accountId), {
        "acs:CurrentTime": new Date().toISOString(),
        "acs:SourceIp": req.ip,
        "acs:SecureTransport": req.protocol === "https",
        "acs:MFAPresent": false,
      });
      metrics.authz.inc({ action: d.action, decision: d.decision });
      if (d.decision !== "Allow")
        throw new AccessDenied(d, {
          principal: caller.principal,
          displayName: displayName(caller.principal),
        });
      return { principal: caller.principal };
    },
  });

  async function authenticateOrFail(req: FastifyRequest): Promise<Caller> {
    const r = await authenticate(
      {
        method: req.method,
        url: req.raw.url ?? req.url,
        headers: req.headers,
        body: Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0),
      },
      (id) => credentials.resolve(id),
      nonces,
      { maxClockSkewMs },
    );
    if (!r.ok) {
      metrics.authFailures.inc({ code: r.code });
      // A shared nonce store that cannot be reached is the server's trouble, not the caller's.
      const statusCode = r.code === "NonceStoreUnavailable" ? 503 : 401;
      throw Object.assign(new Error(r.message), { statusCode, code: r.code, authFailure: true });
    }
    return {
      principal: r.credential.principal,
      accessKeyId: r.credential.accessKeyId,
      ...(r.credential.userName !== undefined ? { userName: r.credential.userName } : {}),
    };
  }

  function parseInput(route: RouteDef, req: FastifyRequest) {
    const params = route.params ? route.params.safeParse(req.params) : { success: true as const, data: {} };
    if (!params.success) {
      const issues = zodIssues("params", params.error);
      throw new BadRequest(
        "InvalidParameter",
        `${issues[0]!.path}: ${issues[0]!.message}`,
        issues[0]!.path,
        issues,
      );
    }
    const qschema = route.query;
    const query = qschema ? qschema.safeParse(req.query ?? {}) : { success: true as const, data: {} };
    if (!query.success) {
      const issues = zodIssues("query", query.error);
      throw new BadRequest(
        "InvalidParameter",
        `${issues[0]!.path}: ${issues[0]!.message}`,
        issues[0]!.path,
        issues,
      );
    }
    const raw = Buffer.isBuffer(req.body) ? req.body.toString("utf8") : "";
    let json: unknown;
    if (raw.trim() !== "") {
      try {
        json = JSON.parse(raw);
      } catch (e) {
        throw new BadRequest("MalformedJSON", `the body is not valid JSON: ${(e as Error).message}`, "body");
      }
    }
    if (!route.body) {
      if (json !== undefined)
        throw new BadRequest("InvalidParameter", "this operation takes no body", "body");
      return { params: params.data, query: query.data, body: undefined };
    }
    const body = route.body.safeParse(json ?? undefined);
    if (!body.success) {
      const issues = zodIssues("body", body.error);
      const first = issues[0]!;
      throw new BadRequest(
        "InvalidParameter",
        first.path === "body" && json === undefined
          ? "body: a JSON object is required"
          : `${first.path}: ${first.message}`,
        first.path,
        issues,
      );
    }
    return { params: params.data, query: query.data, body: body.data };
  }

  function makeCall(
    caller: Caller,
    input: { params: unknown; query: unknown; body: unknown },
    req: FastifyRequest,
  ): Call {
    const accountId = caller.principal.accountId;
    const state = feed.projection.state;
    const account = state.accounts.get(accountId);
    if (!account)
      throw new CommandRejected(404, "EntityNotExist.Account", `account \`${accountId}\` does not exist`);
    const context: RequestContext = {
      "acs:CurrentTime": new Date().toISOString(),
      "acs:SourceIp": req.ip,
      "acs:SecureTransport": req.protocol === "https",
      "acs:MFAPresent": false,
    };
    const record = (d: Decision) => {
      metrics.authz.inc({ action: d.action, decision: d.decision });
      opts.onDecision?.({
        time: new Date().toISOString(),
        edgeId: "admin",
        protocol: "admin",
        principal: caller.principal.kind === "root" ? accountId : `${accountId}/${caller.principal.userId}`,
        action: d.action,
        resource: d.resource,
        decision: d.decision,
        decidingStatements: d.decidingStatements,
        position: feed.position,
      });
    };
    return {
      ...input,
      caller,
      accountId,
      account,
      state,
      region,
      mqttInstanceId,
      amqpInstanceId,
      context,
      credentials,
      projection: feed.projection,
      authorize(action, resource) {
        const d = feed.projection.authorize(caller.principal, action, resource, context);
        record(d);
        if (d.decision !== "Allow")
          throw new AccessDenied(d, {
            principal: caller.principal,
            displayName: displayName(caller.principal),
          });
      },
      requireRoot(action, resource, why) {
        if (caller.principal.kind === "root") return;
        const d: Decision = {
          decision: "ImplicitDeny",
          action,
          resource,
          reason: "no-match",
          decidingStatements: [],
          missingContextKeys: [],
        };
        d.message = `${denialMessage(d, displayName(caller.principal))?.replace(/: no policy allows it.*$/, "")}: ${why}`;
        record(d);
        throw new AccessDenied(d, {
          principal: caller.principal,
          displayName: displayName(caller.principal),
        });
      },
      replayState: (target) =>
        replay(store, { ...target, ...(target.position === undefined ? { position: feed.position } : {}) }),
    };
  }

  async function runRead(
    route: RouteDef,
    caller: Caller,
    input: { params: unknown; query: unknown; body: unknown },
    req: FastifyRequest,
  ): Promise<Record<string, unknown>> {
    const out = await route.read!(makeCall(caller, input, req));
    return out as Record<string, unknown>;
  }

  async function runWrite(
    route: RouteDef,
    caller: Caller,
    input: { params: unknown; query: unknown; body: unknown },
    req: FastifyRequest,
  ): Promise<Record<string, unknown>> {
    const accountId = caller.principal.accountId;
    const stream = accountStream(accountId);
    const actor: Actor =
      caller.principal.kind === "root"
        ? { kind: "root", accountId, accessKeyId: caller.accessKeyId }
        : {
            kind: "user",
            accountId,
            userId: caller.principal.userId,
            userName: caller.userName ?? caller.principal.userId,
            accessKeyId: caller.accessKeyId,
          };
    // Plan once (ids and secrets are made once), then re-check and re-decide on every attempt.
    let plan = route.plan!(makeCall(caller, input, req));
    for (let attempt = 1; ; attempt++) {
      const call = makeCall(caller, input, req);
      if (attempt > 1) {
        const again = route.plan!(call);
        plan = { ...again, command: plan.command, ...(plan.result ? { result: plan.result } : {}) };
      }
      for (const c of plan.checks) call.authorize(c.action, c.resource);
      // Same tick: the model, the index and the revision describe one position.
      const events = decide(
        plan.command,
        { model: feed.projection.state, index: follower.index },
        {
          accountId,
          caller: caller.principal,
          ...(opts.limits ? { limits: opts.limits } : {}),
        },
      );
      if (events.length === 0) {
        const a = feed.projection.state.accounts.get(accountId)!;
        return {
          ...(plan.result?.(feed.projection.state, a) ?? {}),
          position: feed.position,
          changed: false,
        };
      }
      const revision = follower.index.revisions.get(stream) ?? -1;
      const envelopes = events.map((e) =>
        newEvent(e.type, CURRENT_SCHEMA_VERSION[e.type], accountId, actor, e.data),
      );
      let position: number;
      try {
        ({ position } = await store.append(stream, envelopes, {
          expectedRevision: revision < 0 ? NO_STREAM : revision,
        }));
      } catch (e) {
        if (isExpectedRevisionConflict(e) && attempt < MAX_ATTEMPTS) {
          metrics.conflicts.inc();
          // Someone else appended first: catch up with the store, then decide again.
          await feed.waitForPosition(await store.head(), READ_YOUR_WRITES_MS);
          await new Promise((r) => setTimeout(r, Math.random() * 5 * attempt));
          continue;
        }
        throw e;
      }
      for (const e of events) metrics.appended.inc({ type: e.type });
      await feed.waitForPosition(position, READ_YOUR_WRITES_MS);
      const a = feed.projection.state.accounts.get(accountId)!;
      const out: Record<string, unknown> = {
        ...(plan.result?.(feed.projection.state, a) ?? {}),
        position,
        changed: true,
      };
      const q = input.query as { waitEnforced?: string; waitTimeoutMs?: string };
      const header = req.headers["x-pc-wait-enforced"];
      const headerText = Array.isArray(header) ? header[0] : header;
      const wait =
        enabled(q.waitEnforced) || (headerText !== undefined && headerText !== "false" && headerText !== "0");
      if (wait) {
        const fromHeader =
          headerText && /^\d+$/.test(headerText) && headerText !== "1" ? Number(headerText) : undefined;
        const timeout = Math.min(
          120_000,
          q.waitTimeoutMs !== undefined
            ? Number(q.waitTimeoutMs)
            : (fromHeader ?? opts.enforcementTimeoutMs ?? 5_000),
        );
        const w = await board.waitForAll(position, timeout);
        const strip = (r: { edgeId: string; kind: string; position: number; stale: boolean }) => ({
          edgeId: r.edgeId,
          kind: r.kind,
          position: r.position,
          stale: r.stale,
        });
        metrics.enforcement.inc({ result: w.ok ? "confirmed" : "lagging" });
        out.enforcement = {
          confirmed: w.ok,
          position,
          waitedMs: w.waitedMs,
          edges: w.edges.map(strip),
          lagging: w.lagging.map(strip),
        };
      }
      return out;
    }
  }

  await app.listen({ host: opts.host ?? "127.0.0.1", port: opts.port ?? 0 });
  const addr = app.server.address();
  const port = typeof addr === "object" && addr ? addr.port : (opts.port ?? 0);
  const host = opts.host ?? "127.0.0.1";
  const url = `${opts.tls ? "https" : "http"}://${host.includes(":") ? `[${host}]` : host}:${port}`;
  log.info({ url }, "admin API listening");
  return {
    url,
    port,
    async close() {
      offForget();
      follower.close();
      await app.close();
    },
  };
}
