/**
 * `portcullis serve`: the all-in-one gateway (SPEC §9, embedded default).
 *
 *   data dir D  ──  events.db (SQLite store, WAL)  master.key (0600)  root-credentials.json (0600)
 *                   portcullis.log (JSON logs)      serve.json (endpoints of the running process)
 *   one LiveProjection over the store, shared by the admin API and the edges;
 *   an InProcessPositionBoard the edges are attached to ("revocation confirmed").
 *
 * On first start with an empty store it creates the root account and its
 * AccessKey and writes them to `D/root-credentials.json`. Default ports that
 * are taken (another broker on 1883, RabbitMQ next door on 5673) are replaced by the next free one;
 * an explicitly given port that is taken is an error.
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { createServer, Socket } from "node:net";
import { join, resolve } from "node:path";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import {
  bootstrapAccount,
  JetStreamNonceStore,
  type NonceStore,
  SqliteNonceStore,
  startAdminApi,
} from "@portcullis/admin-api";
import { parseUpstreamUrl, startAmqpEdge, upstreamUrlList } from "@portcullis/amqp-edge";
import {
  type AllowLogging,
  DATA_DIR_FILES,
  DecisionLog,
  JetStreamDecisionStore,
  SqliteDecisionStore,
  SqliteSnapshotStore,
  WorkerSqliteDecisionWriter,
} from "@portcullis/audit";
import { type EventStore, JetStreamEventStore, SqliteEventStore } from "@portcullis/event-store";
import { parseMasterKey, SecretBox } from "@portcullis/events";
import {
  CredentialResolver,
  type DecisionSink,
  InProcessPositionBoard,
  type LiveProjection,
  NatsPositionBoard,
  type PositionBoard,
  publishPositions,
} from "@portcullis/feed";
import { startMqttEdge } from "@portcullis/mqtt-edge";
import pino, { type Logger } from "pino";
import { Registry } from "prom-client";
import { takeStartLock } from "./data-lock.ts";
import { logDenials } from "./decision-sinks.ts";
import { seedDemo } from "./demo.ts";
import { startFeedFromSnapshots } from "./feed-start.ts";
import { type CliIO, CliUsageError } from "./io.ts";

/** Options of `portcullis serve`. */
export interface ServeOptions {
  dataDir: string;
  host?: string;
  adminPort?: number;
  /** Serve the admin API over HTTPS with these PEM files. */
  adminTls?: { keyFile: string; certFile: string };
  mqttPort?: number;
  amqpPort?: number;
  amqpUpstream?: string;
  /** A PEM CA file the `amqps://` upstream's certificate is checked against (default: the system's CAs). */
  amqpUpstreamCa?: string;
  demo?: boolean;
  region?: string;
  mqttInstanceId?: string;
  amqpInstanceId?: string;
  /** `-` for stderr; default `<dataDir>/portcullis.log`. */
  logFile?: string;
  logLevel?: string;
  /**
   * `sqlite` (default: `D/events.db`, in-process propagation) or `jetstream`
   * (the distributed store on `nats`; edges elsewhere report over NATS).
   */
  store?: "sqlite" | "jetstream";
  /** NATS URL(s), comma-separated, for `store: "jetstream"`. */
  nats?: string;
  /** Run the MQTT edge in this process (default true). */
  mqtt?: boolean;
  /** Run the AMQP edge in this process (default true, when the upstream is reachable). */
  amqp?: boolean;
  /** Allows kept in the decision log besides every denial (default `none`). */
  logAllows?: AllowLogging;
  /** Snapshot interval in events (default 25 000). */
  snapshotEvery?: number;
}

/** The root credentials file (`D/root-credentials.json`). */
export interface RootCredentials {
  accountId: string;
  accessKeyId: string;
  accessKeySecret: string;
  endpoint: string;
}

/** A running edge, as `serve` sees it. */
export interface RunningEdge {
  kind: "mqtt" | "amqp";
  edgeId: string;
  host: string;
  port: number;
  close(): Promise<void>;
}

/** What `serve` started. */
export interface Served {
  adminUrl: string;
  edges: RunningEdge[];
  /** Lines explaining edges that did not start. */
  notes: string[];
  root: RootCredentials;
  close(): Promise<void>;
}

/** Defaults of the listeners. */
export const DEFAULT_PORTS = Object.freeze({ admin: 8181, mqtt: 1883, amqp: 5673 });
const PORT_TRIES = 20;

/** Is `port` free on `host` right now? */
function portFree(host: string, port: number): Promise<boolean> {
  return new Promise((resolveFree) => {
    const s = createServer();
    s.once("error", () => resolveFree(false));
    s.listen({ host, port, exclusive: true }, () => s.close(() => resolveFree(true)));
  });
}

const isInUse = (e: unknown) => (e as { code?: string } | null)?.code === "EADDRINUSE";

/**
 * Start a listener on `explicit` (exactly, or fail), or on `preferred` or the
 * next free port after it. Returns the started thing and whether it moved.
 */
export async function onFreePort<T>(
  what: string,
  host: string,
  explicit: number | undefined,
  preferred: number,
  start: (port: number) => Promise<T>,
): Promise<{ value: T; port: number; moved: boolean }> {
  if (explicit !== undefined) {
    try {
      return { value: await start(explicit), port: explicit, moved: false };
    } catch (e) {
      if (isInUse(e))
        throw new Error(`${what}: port ${explicit} on ${host} is in use (choose another with the flag)`);
      throw e;
    }
  }
  for (let port = preferred; port < preferred + PORT_TRIES; port++) {
    if (!(await portFree(host, port))) continue;
    try {
      return { value: await start(port), port, moved: port !== preferred };
    } catch (e) {
      if (!isInUse(e)) throw e;
    }
  }
  throw new Error(`${what}: no free port in ${preferred}–${preferred + PORT_TRIES - 1} on ${host}`);
}

/** Whether any of the (comma-separated) upstream URLs accepts a TCP connection. */
async function reachable(urls: string, timeoutMs = 1_000): Promise<boolean> {
  const answers = await Promise.all(upstreamUrlList(urls).map((u) => reachableOne(u, timeoutMs)));
  return answers.includes(true);
}

function reachableOne(url: string, timeoutMs: number): Promise<boolean> {
  let host: string;
  let port: number;
  try {
    ({ host, port } = parseUpstreamUrl(url));
  } catch {
    return Promise.resolve(false);
  }
  return new Promise((done) => {
    const s = new Socket();
    const finish = (ok: boolean) => {
      s.destroy();
      done(ok);
    };
    s.setTimeout(timeoutMs, () => finish(false));
    s.once("error", () => finish(false));
    s.connect(port, host, () => finish(true));
  });
}

/** The admin API's key and certificate; a file that cannot be read is a usage error naming it. */
function readTlsFiles(f: { keyFile: string; certFile: string }): { key: Buffer; cert: Buffer } {
  const read = (path: string, what: string) => {
    try {
      return readFileSync(path);
    } catch (e) {
      throw new CliUsageError(`${what} ${path}: ${(e as Error).message}`);
    }
  };
  return { key: read(f.keyFile, "--admin-tls-key"), cert: read(f.certFile, "--admin-tls-cert") };
}

/** Write a file atomically with mode 0600. */
export function writeSecretFile(path: string, text: string): void {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, text, { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, path);
}

function loadMasterKey(dir: string, storeIsEmpty: boolean): { box: SecretBox; source: string } {
  const env = process.env.PORTCULLIS_MASTER_KEY;
  if (env) return { box: new SecretBox(parseMasterKey(env)), source: "PORTCULLIS_MASTER_KEY" };
  const path = join(dir, "master.key");
  if (existsSync(path))
    return { box: new SecretBox(parseMasterKey(readFileSync(path, "utf8"))), source: path };
  if (!storeIsEmpty)
    throw new Error(
      `${path} is missing but the store has events: their AccessKey secrets cannot be opened without it (set PORTCULLIS_MASTER_KEY or restore the file)`,
    );
  const { box, masterKey } = SecretBox.generate();
  writeSecretFile(path, `${masterKey.toString("hex")}\n`);
  return { box, source: `${path} (new)` };
}

/** Shared inputs of every edge. */
export interface EdgeContext {
  feed: LiveProjection;
  credentials: CredentialResolver;
  /** Make "revocation confirmed" wait for this edge; returns the detach function. */
  attach: (edgeId: string, kind: "mqtt" | "amqp") => () => void;
  host: string;
  region: string;
  logger: Logger;
  registry: Registry;
  onDecision: DecisionSink;
  /** Which allows to send to `onDecision` (the decision log's draw, see DecisionLog.edgeOptions). */
  logAllows: false | (() => boolean);
}

interface StartedEdges {
  edges: RunningEdge[];
  notes: string[];
}

/** The options every edge takes, from the shared context. */
const edgeOptions = (
  ctx: EdgeContext,
  kind: "mqtt" | "amqp",
  edgeId: string,
  instanceId: string,
  port: number,
) => ({
  feed: ctx.feed,
  credentials: ctx.credentials,
  host: ctx.host,
  port,
  region: ctx.region,
  instanceId,
  edgeId,
  logger: ctx.logger.child({ component: `${kind}-edge` }),
  registry: ctx.registry,
  onDecision: ctx.onDecision,
  logAllows: ctx.logAllows,
});

/** Attach a started edge to the position board ("revocation confirmed" waits for it). */
function attached(
  ctx: EdgeContext,
  kind: "mqtt" | "amqp",
  edgeId: string,
  edge: { port: number; close(): Promise<void> },
): RunningEdge {
  const detach = ctx.attach(edgeId, kind);
  return {
    kind,
    edgeId,
    host: ctx.host,
    port: edge.port,
    close: async () => {
      detach();
      await edge.close();
    },
  };
}

/** The MQTT edge (services/mqtt-edge `startMqttEdge`), attached to the position board. */
export async function startMqtt(
  ctx: EdgeContext,
  o: { port?: number; instanceId: string },
): Promise<RunningEdge> {
  const edgeId = "mqtt-1";
  const r = await onFreePort("MQTT edge", ctx.host, o.port, DEFAULT_PORTS.mqtt, (port) =>
    startMqttEdge(edgeOptions(ctx, "mqtt", edgeId, o.instanceId, port)),
  );
  return attached(ctx, "mqtt", edgeId, r.value);
}

/** The AMQP edge (services/amqp-edge `startAmqpEdge`) in front of `upstream`, attached to the board. */
export async function startAmqp(
  ctx: EdgeContext,
  o: { port?: number; instanceId: string; upstream: string; upstreamCa?: string; accountId?: string },
): Promise<RunningEdge | string> {
  if (!(await reachable(o.upstream)))
    return `AMQP edge: off (upstream ${o.upstream.replace(/\/\/[^@]*@/, "//")} is not reachable; pass --amqp-upstream URL)`;
  const edgeId = "amqp-1";
  const r = await onFreePort("AMQP edge", ctx.host, o.port, DEFAULT_PORTS.amqp, (port) =>
    startAmqpEdge({
      ...edgeOptions(ctx, "amqp", edgeId, o.instanceId, port),
      upstream: { url: o.upstream, ...(o.upstreamCa ? { tls: { ca: readFileSync(o.upstreamCa) } } : {}) },
      ...(o.accountId !== undefined ? { accountId: o.accountId } : {}),
    }),
  );
  return attached(ctx, "amqp", edgeId, r.value);
}

/** Start every edge of the all-in-one; each is started by its own function above. */
export async function startEdges(
  ctx: EdgeContext,
  o: {
    mqttPort?: number;
    amqpPort?: number;
    mqttInstanceId: string;
    amqpInstanceId: string;
    amqpUpstream: string;
    amqpUpstreamCa?: string;
    /** The account owning the AMQP instance (the upstream's vhosts are not per account). */
    amqpAccountId?: string;
    mqtt?: boolean;
    amqp?: boolean;
  },
): Promise<StartedEdges> {
  const out: StartedEdges = { edges: [], notes: [] };
  const take = (r: RunningEdge | string) => {
    if (typeof r === "string") out.notes.push(r);
    else out.edges.push(r);
  };
  try {
    if (o.mqtt !== false)
      take(
        await startMqtt(ctx, {
          ...(o.mqttPort !== undefined ? { port: o.mqttPort } : {}),
          instanceId: o.mqttInstanceId,
        }),
      );
    else out.notes.push("MQTT edge: off (--no-mqtt)");
    if (o.amqp !== false)
      take(
        await startAmqp(ctx, {
          ...(o.amqpPort !== undefined ? { port: o.amqpPort } : {}),
          instanceId: o.amqpInstanceId,
          upstream: o.amqpUpstream,
          ...(o.amqpUpstreamCa !== undefined ? { upstreamCa: o.amqpUpstreamCa } : {}),
          ...(o.amqpAccountId !== undefined ? { accountId: o.amqpAccountId } : {}),
        }),
      );
    else out.notes.push("AMQP edge: off (--no-amqp)");
  } catch (e) {
    for (const edge of out.edges) await edge.close().catch(() => {});
    throw e;
  }
  return out;
}

/** Start the all-in-one gateway. */
export async function serve(o: ServeOptions, io: CliIO): Promise<Served> {
  const dir = resolve(o.dataDir);
  const adminTls = o.adminTls && readTlsFiles(o.adminTls);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  // Until the root credentials are written: another start on this dir waits (see data-lock.ts).
  const releaseStart = await takeStartLock(dir);
  const host = o.host ?? "127.0.0.1";
  const region = o.region ?? "local";
  const mqttInstanceId = o.mqttInstanceId ?? "mqtt-local";
  const amqpInstanceId = o.amqpInstanceId ?? "amqp-local";
  const logFile = o.logFile ?? join(dir, "portcullis.log");
  const logger = pino(
    { level: o.logLevel ?? process.env.PORTCULLIS_LOG_LEVEL ?? "info", base: { pid: process.pid } },
    logFile === "-" ? pino.destination(2) : pino.destination({ dest: logFile, mkdir: true, sync: false }),
  );
  const registry = new Registry();
  const closers: (() => Promise<void>)[] = [];
  const closeAll = async () => {
    for (const c of closers.reverse()) await c().catch((e) => logger.error({ err: e }, "close failed"));
    closers.length = 0;
    logger.flush?.();
    releaseStart();
  };
  try {
    let nc: NatsConnection | undefined;
    let store: EventStore;
    if (o.store === "jetstream") {
      if (!o.nats) throw new Error("--store jetstream needs --nats URL");
      const conn = await connect({
        servers: o.nats.split(","),
        name: "portcullis-serve",
        maxReconnectAttempts: -1,
        reconnectTimeWait: 250,
      });
      nc = conn;
      closers.push(() => conn.drain());
      store = await JetStreamEventStore.connect({ connection: conn });
    } else {
      store = SqliteEventStore.open(join(dir, "events.db"));
    }
    closers.push(() => store.close());
    const empty = (await store.head()) === 0;
    const { box, source } = loadMasterKey(dir, empty);
    logger.info({ source }, "master key loaded");

    const credsPath = join(dir, "root-credentials.json");
    let root: RootCredentials | undefined;
    if (empty) {
      const acct = await bootstrapAccount(store, box);
      root = {
        accountId: acct.accountId,
        accessKeyId: acct.accessKeyId,
        accessKeySecret: acct.accessKeySecret,
        endpoint: "",
      };
      logger.info({ accountId: acct.accountId, accessKeyId: acct.accessKeyId }, "root account created");
      // Written now (the endpoint once the admin API listens), so a start waiting on the lock finds it.
      writeSecretFile(credsPath, `${JSON.stringify(root, null, 2)}\n`);
    } else if (existsSync(credsPath)) {
      root = JSON.parse(readFileSync(credsPath, "utf8")) as RootCredentials;
    }
    releaseStart();

    // Snapshots (the audit's, in the data dir) serve both time travel and start-up:
    // the feed starts from the nearest valid one plus the events after it (SPEC §6).
    const auditSnapshots = SqliteSnapshotStore.open(join(dir, DATA_DIR_FILES.snapshots));
    closers.push(async () => auditSnapshots.close());
    const started = await startFeedFromSnapshots(store, auditSnapshots, logger, {
      ...(o.snapshotEvery !== undefined ? { every: o.snapshotEvery } : {}),
      onError: (err, where) => logger.warn({ err, where }, "feed error"),
    });
    const feed = started.feed;
    closers.push(() => feed.close());
    closers.push(() => started.stop());
    // In one process edges are read straight from the shared feed; distributed,
    // every edge (ours too) reports over NATS and the board listens there.
    const inProcess = nc ? undefined : new InProcessPositionBoard();
    const board: PositionBoard = nc ? new NatsPositionBoard(nc) : inProcess!;
    closers.push(() => board.close());
    const attach = (edgeId: string, kind: "mqtt" | "amqp") =>
      inProcess ? inProcess.attach(edgeId, kind, feed) : publishPositions(nc!, feed, { edgeId, kind });
    // The decision log (SPEC §8): SQLite in the data dir, or a JetStream stream
    // when the store is distributed; batched off the message path, never blocking.
    const decisionWriter = nc
      ? await JetStreamDecisionStore.connect({ connection: nc, edgeId: "serve" })
      : WorkerSqliteDecisionWriter.open(join(dir, DATA_DIR_FILES.decisions));
    const decisionLog = new DecisionLog({
      writer: decisionWriter,
      allows: o.logAllows ?? "none",
      onError: (err) => logger.warn({ err }, "decision log write failed (retrying)"),
    });
    decisionLog.registerMetrics(registry);
    closers.push(() => decisionLog.close());
    const decisionReader = nc
      ? (decisionWriter as JetStreamDecisionStore)
      : SqliteDecisionStore.open(join(dir, DATA_DIR_FILES.decisions));
    if (!nc) closers.push(async () => (decisionReader as SqliteDecisionStore).close());
    const onDecision = logDenials(logger, decisionLog.sink);
    // The edges draw allows before they build a record (sampling costs them nothing
    // for the allows not kept) and hand over only the ones drawn.
    const edgeLog = decisionLog.edgeOptions();
    const onEdgeDecision = logDenials(logger, edgeLog.onDecision);

    // Replay protection shared by every admin process on this store: a signed request is
    // accepted once by all of them (a SQLite file in the data dir; a JetStream stream).
    let nonces: NonceStore;
    if (nc) nonces = await JetStreamNonceStore.open({ connection: nc });
    else {
      const local = SqliteNonceStore.open(join(dir, "nonces.db"));
      closers.push(async () => local.close());
      nonces = local;
    }
    const admin = await onFreePort("admin API", host, o.adminPort, DEFAULT_PORTS.admin, (port) =>
      startAdminApi({
        store,
        feed,
        box,
        board,
        host,
        port,
        region,
        mqttInstanceId,
        amqpInstanceId,
        logger,
        registry,
        onDecision,
        auditDecisions: decisionReader,
        auditSnapshots,
        ...(adminTls ? { tls: adminTls } : {}),
        nonces,
      }),
    );
    closers.push(() => admin.value.close());
    if (root) {
      root.endpoint = admin.value.url;
      writeSecretFile(credsPath, `${JSON.stringify(root, null, 2)}\n`);
    }

    const credentials = new CredentialResolver(feed.projection, box);
    // The AMQP instance belongs to this gateway's account: the upstream's vhosts
    // are shared, so another account's principals must not reach them (SPEC §2).
    const accounts = [...feed.projection.state.accounts.keys()];
    const amqpAccount = root?.accountId ?? (accounts.length === 1 ? accounts[0] : undefined);
    feed.onApplied((_e, affected) => credentials.forget(affected.accessKeys));
    const { edges, notes } = await startEdges(
      {
        feed,
        credentials,
        attach,
        host,
        region,
        logger,
        registry,
        onDecision: onEdgeDecision,
        logAllows: edgeLog.logAllows,
      },
      {
        ...(o.mqttPort !== undefined ? { mqttPort: o.mqttPort } : {}),
        ...(o.amqpPort !== undefined ? { amqpPort: o.amqpPort } : {}),
        mqttInstanceId,
        amqpInstanceId,
        amqpUpstream: o.amqpUpstream ?? "amqp://guest:guest@127.0.0.1:5672",
        ...(o.amqpUpstreamCa !== undefined ? { amqpUpstreamCa: o.amqpUpstreamCa } : {}),
        ...(amqpAccount !== undefined ? { amqpAccountId: amqpAccount } : {}),
        ...(o.mqtt !== undefined ? { mqtt: o.mqtt } : {}),
        ...(o.amqp !== undefined ? { amqp: o.amqp } : {}),
      },
    );
    for (const e of edges) closers.push(() => e.close());

    const endpoints = {
      pid: process.pid,
      admin: admin.value.url,
      edges: edges.map((e) => ({ kind: e.kind, edgeId: e.edgeId, host: e.host, port: e.port })),
      dataDir: dir,
    };
    const endpointsPath = join(dir, "serve.json");
    writeFileSync(endpointsPath, `${JSON.stringify(endpoints, null, 2)}\n`);
    closers.unshift(async () => rmSync(endpointsPath, { force: true }));

    io.out(`portcullis: data dir ${dir} (logs: ${logFile === "-" ? "stderr" : logFile})`);
    if (empty && root)
      io.out(`portcullis: created account ${root.accountId}; root AccessKey in ${credsPath} (mode 0600)`);
    io.out(`admin API  ${admin.value.url}${admin.moved ? ` (port ${DEFAULT_PORTS.admin} was busy)` : ""}`);
    for (const e of edges) {
      const def = e.kind === "mqtt" ? DEFAULT_PORTS.mqtt : DEFAULT_PORTS.amqp;
      const moved = e.port !== def && (e.kind === "mqtt" ? o.mqttPort : o.amqpPort) === undefined;
      io.out(
        `${e.kind === "mqtt" ? "MQTT edge " : "AMQP edge "} ${e.kind}://${host}:${e.port} (instance ${e.kind === "mqtt" ? mqttInstanceId : amqpInstanceId})${moved ? ` (port ${def} was busy)` : ""}`,
      );
    }
    for (const n of notes) io.out(n);

    if (o.demo) {
      if (!root) throw new Error(`--demo needs ${credsPath} (the root AccessKey); it is missing`);
      await seedDemo({ dataDir: dir, root, edges, mqttInstanceId, amqpInstanceId, io });
    }
    io.out("portcullis: ready (Ctrl-C to stop)");
    return {
      adminUrl: admin.value.url,
      edges,
      notes,
      root: root ?? { accountId: "", accessKeyId: "", accessKeySecret: "", endpoint: admin.value.url },
      close: closeAll,
    };
  } catch (e) {
    await closeAll();
    throw e;
  }
}
