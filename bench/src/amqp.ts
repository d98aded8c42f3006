/**
 * AMQP edge benchmark (issue 6, "Benchmark"), in one run on one machine,
 * against the shared RabbitMQ at 127.0.0.1:5672:
 *
 * (a) publish+consume throughput of small (64 B) messages, one publisher and
 *     one consumer connection (prefetch 1000, an ack per message), without and
 *     with publisher confirms (window 1000), through the edge (a RAM user with
 *     the seed's publish+subscribe policy: every method checked) vs directly
 *     against the same RabbitMQ. Median of 3 alternating rounds. Target ≥ 0.7×.
 * (b) added latency: publish→deliver at a steady 2 000 msg/s, p50/p99, edge vs
 *     direct.
 * (c) revocation latency over ≥ 200 revocations of a live consumer (receiving
 *     a 1 kHz stream): from an event appended straight to the store, and from
 *     the admin API's response (detachPolicy, waitEnforced), to the basic.cancel
 *     the client receives (target p99 ≤ 20 ms); the admin call → cancel time
 *     (which includes the admin API's own work) is shown too. Deliveries after
 *     the cancel are counted (must be 0).
 *
 * The edge, admin API and revocation client run in this process; the load of
 * (a) and (b) runs in a child process (amqp-load.ts), amqplib on both paths,
 * so the client's cost is the same on both sides of the ratio.
 *
 * Run alone: `pnpm --filter @portcullis/bench exec tsx src/amqp.ts`.
 */
import { execFile, fork } from "node:child_process";
import { randomBytes } from "node:crypto";
import { cpus, loadavg } from "node:os";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { AdminClient, bootstrapAccount, startAdminApi } from "@portcullis/admin-api";
import { amqpPassword, amqpUsername, startAmqpEdge } from "@portcullis/amqp-edge";
import { MemoryEventStore } from "@portcullis/event-store";
import { accountStream, CURRENT_SCHEMA_VERSION, newEvent, SecretBox } from "@portcullis/events";
import { CredentialResolver, InProcessPositionBoard, LiveProjection } from "@portcullis/feed";
import * as amqplib from "amqplib";
import pino from "pino";
import { CONFIRM_WINDOW, LATENCY_RATE, type LoadJob, type LoadResult, PAYLOAD_BYTES } from "./amqp-load.ts";
import { type Benchmark, fmtInt, fmtRatio, isMain, quantile, table, target } from "./harness.ts";

const LOAD = fileURLToPath(new URL("./amqp-load.ts", import.meta.url));
const RABBIT = process.env.RABBITMQ_URL ?? "amqp://guest:guest@127.0.0.1:5672";
const MESSAGES = { plain: 40_000, confirms: 30_000 } as const;
const ROUNDS = 3;
const LATENCY_MESSAGES = 10_000;
const REVOCATIONS = 200;
const hr = process.hrtime.bigint;

// ---------------------------------------------------------------------------------------------
// The load runs in a child process (amqp-load.ts)

/** Run one load job in a child process. */
function runChild(job: LoadJob): Promise<LoadResult> {
  return new Promise((resolve, reject) => {
    const child = fork(LOAD, ["load"], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
    child.once("message", (m) => {
      const r = m as { ok: true; result: LoadResult } | { ok: false; error: string };
      if (r.ok) resolve(r.result);
      else reject(new Error(r.error));
    });
    child.once("exit", (code) => {
      if (code !== 0) reject(new Error(`load child exited with ${code}`));
    });
    child.send(job);
  });
}

// ---------------------------------------------------------------------------------------------
// The benchmark (parent)

const run = promisify(execFile);
const rabbitmqctl = (...a: string[]) => run("/usr/sbin/rabbitmqctl", a, { timeout: 30_000 });
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
const pct = (xs: number[], q: number) => quantile(Float64Array.from(xs).sort(), q);
const ms = (ns: number) => (ns / 1e6).toFixed(2);

async function main(): Promise<void> {
  const probe = await amqplib.connect(RABBIT).catch((e: Error) => {
    throw new Error(`RabbitMQ at ${RABBIT} is not reachable (${e.message}); run infra/ensure-rabbitmq.sh`);
  });
  const info = probe.connection.serverProperties;
  await probe.close();
  const V = `pc-bench-${randomBytes(3).toString("hex")}`;
  await rabbitmqctl("add_vhost", V);
  await rabbitmqctl("set_permissions", "-p", V, "guest", ".*", ".*", ".*");
  const logger = pino({ level: "silent" });
  const store = new MemoryEventStore();
  const box = SecretBox.generate().box;
  const boot = await bootstrapAccount(store, box);
  const feed = await LiveProjection.start(store);
  const board = new InProcessPositionBoard();
  const api = await startAdminApi({ store, feed, box, board, logger });
  const edge = await startAmqpEdge({
    feed,
    credentials: new CredentialResolver(feed.projection, box),
    upstream: { url: RABBIT },
    port: 0,
    edgeId: "amqp-bench",
    accountId: boot.accountId,
    logger,
  });
  board.attach("amqp-bench", "amqp", feed);
  const admin = new AdminClient(
    { endpoint: api.url, accessKeyId: boot.accessKeyId, accessKeySecret: boot.accessKeySecret },
    { waitEnforced: true },
  );
  const vh = `acs:amqp:*:*:/vhosts/${V}`;
  try {
    // The seed's publish+subscribe policy (example 3) for the load user.
    await admin.createUser("bench-app");
    await admin.createPolicy("bench-pubsub", {
      Version: "1",
      Statement: [
        { Effect: "Allow", Action: ["amqp:GetVhost"], Resource: vh },
        {
          Effect: "Allow",
          Action: [
            "amqp:CreateQueue",
            "amqp:GetQueue",
            "amqp:DeleteQueue",
            "amqp:BasicPublish",
            "amqp:BasicConsume",
            "amqp:BasicAck",
            "amqp:BasicCancel",
          ],
          Resource: `${vh}/*`,
        },
      ],
    });
    await admin.attachPolicy("bench-pubsub", { user: "bench-app" });
    const app = await admin.createAccessKey("bench-app");
    const edgeUrl = () =>
      `amqp://${encodeURIComponent(amqpUsername("amqp-local", app.accessKeyId))}:${encodeURIComponent(
        amqpPassword(app.accessKeySecret),
      )}@127.0.0.1:${edge.port}/${encodeURIComponent(V)}`;
    const directUrl = `${RABBIT}/${encodeURIComponent(V)}`;

    console.log(
      `machine: ${cpus().length}× ${cpus()[0]?.model ?? "?"}, load ${loadavg()
        .map((l) => l.toFixed(2))
        .join(" ")}; node ${process.version}; upstream ${String(info.product)} ${String(info.version)}`,
    );

    // (a) throughput
    const tput: Record<string, { direct: number[]; edge: number[] }> = {
      plain: { direct: [], edge: [] },
      confirms: { direct: [], edge: [] },
    };
    let q = 0;
    for (let round = 0; round < ROUNDS; round++) {
      for (const mode of ["plain", "confirms"] as const) {
        for (const path of round % 2 === 0 ? (["direct", "edge"] as const) : (["edge", "direct"] as const)) {
          const r = await runChild({
            url: path === "direct" ? directUrl : edgeUrl(),
            kind: "throughput",
            confirms: mode === "confirms",
            messages: MESSAGES[mode],
            queue: `bench-tput-${++q}`,
          });
          tput[mode]![path].push(r.msgsPerSec);
        }
      }
    }
    const ratio = (mode: string) => median(tput[mode]!.edge) / median(tput[mode]!.direct);
    console.log(
      `\n(a) publish+consume throughput, ${PAYLOAD_BYTES} B messages, 1 publisher + 1 consumer (prefetch 1000, ack each), median of ${ROUNDS}`,
    );
    console.log(
      table(
        ["mode", "direct msg/s", "edge msg/s", "edge / direct", "rounds (edge)"],
        (["plain", "confirms"] as const).map((m) => [
          m === "plain" ? "no confirms" : `publisher confirms (window ${CONFIRM_WINDOW})`,
          fmtInt(median(tput[m]!.direct)),
          fmtInt(median(tput[m]!.edge)),
          fmtRatio(ratio(m)),
          tput[m]!.edge.map(fmtInt).join(" / "),
        ]),
      ),
    );

    // (b) latency
    const lat: Record<string, number[]> = {};
    for (const path of ["direct", "edge"] as const) {
      const r = await runChild({
        url: path === "direct" ? directUrl : edgeUrl(),
        kind: "latency",
        confirms: false,
        messages: LATENCY_MESSAGES,
        queue: `bench-lat-${++q}`,
      });
      lat[path] = r.latencies;
    }
    const p = (path: string, qq: number) => pct(lat[path]!, qq);
    console.log(
      `\n(b) publish→deliver latency at ${fmtInt(LATENCY_RATE)} msg/s (${fmtInt(LATENCY_MESSAGES)} messages), ms`,
    );
    console.log(
      table(
        ["path", "p50", "p99"],
        [
          ["direct", ms(p("direct", 0.5)), ms(p("direct", 0.99))],
          ["edge", ms(p("edge", 0.5)), ms(p("edge", 0.99))],
          [
            "added by the edge",
            ms(p("edge", 0.5) - p("direct", 0.5)),
            ms(p("edge", 0.99) - p("direct", 0.99)),
          ],
        ],
      ),
    );

    // (c) revocation
    const rv = await revocations({
      admin,
      store,
      feed,
      edgePort: edge.port,
      V,
      vh,
      directUrl,
      acct: boot.accountId,
    });
    console.log(`\n(c) revocation of a live consumer (1 kHz stream), ${REVOCATIONS} revocations each, ms`);
    console.log(
      table(
        ["measured", "p50", "p99", "max"],
        [
          [
            "admin call → basic.cancel at the client",
            ...[0.5, 0.99, 1].map((x) => ms(pct(rv.callToCancel, x))),
          ],
          ["admin call → admin response", ...[0.5, 0.99, 1].map((x) => ms(pct(rv.callToResponse, x)))],
          [
            "admin response → basic.cancel (< 0: before)",
            ...[0.5, 0.99, 1].map((x) => ms(pct(rv.responseToCancel, x))),
          ],
          ["event appended → basic.cancel", ...[0.5, 0.99, 1].map((x) => ms(pct(rv.appendToCancel, x)))],
        ],
      ),
    );
    console.log(`deliveries after the cancel: ${rv.afterCancel} (must be 0)`);

    console.log("");
    console.log(
      target("throughput ≥ 0.7× direct (no confirms)", ratio("plain") >= 0.7, fmtRatio(ratio("plain"))),
    );
    console.log(
      target("throughput ≥ 0.7× direct (confirms)", ratio("confirms") >= 0.7, fmtRatio(ratio("confirms"))),
    );
    const appendP99 = pct(rv.appendToCancel, 0.99) / 1e6;
    const responseP99 = pct(rv.responseToCancel, 0.99) / 1e6;
    console.log(
      target(
        "revocation p99 ≤ 20 ms (event appended → cancel)",
        appendP99 <= 20,
        `${appendP99.toFixed(2)} ms`,
      ),
    );
    console.log(
      target(
        "revocation p99 ≤ 20 ms (admin response → cancel)",
        responseP99 <= 20,
        `${responseP99.toFixed(2)} ms (negative: the cancel is at the client before the response)`,
      ),
    );
    console.log(
      `load average after the run: ${loadavg()
        .map((l) => l.toFixed(2))
        .join(" ")}`,
    );
  } finally {
    await edge.close();
    await api.close();
    await feed.close();
    await rabbitmqctl("delete_vhost", V).catch(() => {});
  }
}

interface RevocationCtx {
  admin: AdminClient;
  store: MemoryEventStore;
  feed: LiveProjection;
  edgePort: number;
  V: string;
  vh: string;
  directUrl: string;
  acct: string;
}

/** ≥ 200 revocations of a live consumer via the admin API, then ≥ 200 via appended events. */
async function revocations(c: RevocationCtx) {
  const queue = "bench-revocation";
  const direct = await amqplib.connect(c.directUrl);
  const pub = await direct.createChannel();
  await pub.assertQueue(queue, { durable: false });
  const stream = setInterval(() => pub.sendToQueue(queue, Buffer.from("tick")), 1);
  await c.admin.createUser("bench-rv");
  await c.admin.createPolicy("bench-rv-base", {
    Version: "1",
    Statement: [
      { Effect: "Allow", Action: ["amqp:GetVhost"], Resource: c.vh },
      { Effect: "Allow", Action: ["amqp:BasicAck"], Resource: `${c.vh}/*` },
    ],
  });
  await c.admin.createPolicy("bench-rv-consume", {
    Version: "1",
    Statement: [
      { Effect: "Allow", Action: ["amqp:BasicConsume"], Resource: `${c.vh}/queues/${queue}/messages/*` },
    ],
  });
  await c.admin.attachPolicy("bench-rv-base", { user: "bench-rv" });
  const key = await c.admin.createAccessKey("bench-rv");
  const conn = await amqplib.connect(
    `amqp://${encodeURIComponent(amqpUsername("amqp-local", key.accessKeyId))}:${encodeURIComponent(
      amqpPassword(key.accessKeySecret),
    )}@127.0.0.1:${c.edgePort}/${encodeURIComponent(c.V)}`,
  );
  const userId = c.feed.projection.userByName(c.acct, "bench-rv")!.userId;
  const out = {
    callToCancel: [] as number[],
    callToResponse: [] as number[],
    responseToCancel: [] as number[],
  };
  const appendToCancel: number[] = [];
  let afterCancel = 0;

  /** A live consumer; resolves its cancel time. */
  async function liveConsumer(): Promise<{ cancelled: Promise<bigint>; close: () => Promise<void> }> {
    const ch = await conn.createChannel();
    let cancelledAt: bigint | undefined;
    let first!: () => void;
    const gotFirst = new Promise<void>((r) => {
      first = r;
    });
    let onCancel!: (t: bigint) => void;
    const cancelled = new Promise<bigint>((r) => {
      onCancel = r;
    });
    await ch.consume(queue, (m) => {
      if (m === null) {
        cancelledAt = hr();
        onCancel(cancelledAt);
        return;
      }
      if (cancelledAt !== undefined) afterCancel++;
      ch.ack(m);
      first();
    });
    await gotFirst; // live: receiving the stream
    return { cancelled, close: () => ch.close() };
  }

  const event = (type: "PolicyAttached" | "PolicyDetached") =>
    newEvent(
      type,
      CURRENT_SCHEMA_VERSION[type],
      c.acct,
      { kind: "root", accountId: c.acct },
      {
        policyName: "bench-rv-consume",
        policyType: "Custom",
        target: { kind: "user", userId },
      },
    );

  try {
    for (let i = 0; i < REVOCATIONS; i++) {
      await c.admin.attachPolicy("bench-rv-consume", { user: "bench-rv" });
      const live = await liveConsumer();
      const t0 = hr();
      await c.admin.detachPolicy("bench-rv-consume", { user: "bench-rv" });
      const t1 = hr();
      const tc = await live.cancelled;
      out.callToCancel.push(Number(tc - t0));
      out.callToResponse.push(Number(t1 - t0));
      out.responseToCancel.push(Number(tc - t1));
      await live.close();
    }
    for (let i = 0; i < REVOCATIONS; i++) {
      const { position } = await c.store.append(accountStream(c.acct), [event("PolicyAttached")]);
      await c.feed.waitForPosition(position, 5_000);
      const live = await liveConsumer();
      const t0 = hr();
      await c.store.append(accountStream(c.acct), [event("PolicyDetached")]);
      appendToCancel.push(Number((await live.cancelled) - t0));
      await live.close();
    }
  } finally {
    clearInterval(stream);
    await conn.close().catch(() => {});
    await direct.close().catch(() => {});
  }
  return { ...out, appendToCancel, afterCancel };
}

/** The AMQP benchmark, registered in run.ts. */
export const amqpBenchmark: Benchmark = {
  name: "amqp",
  description: "AMQP edge vs direct RabbitMQ: throughput, added latency, revocation latency",
  run: main,
};

if (isMain(import.meta.url)) {
  await main();
}
