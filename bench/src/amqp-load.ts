/**
 * The load generator of the AMQP benchmark (amqp.ts), run in a child process so
 * that the client's work is not on the edge's event loop: one publisher and one
 * consumer connection with amqplib, on the path it is given (direct or edge).
 * It imports nothing but amqplib, so it starts fast.
 */
import * as amqplib from "amqplib";

/** Message body size. */
export const PAYLOAD_BYTES = 64;
/** Publisher confirms outstanding at most. */
export const CONFIRM_WINDOW = 1_000;
/** Messages per second of a latency run. */
export const LATENCY_RATE = 2_000;
const hr = process.hrtime.bigint;

/** One job: a throughput run (as fast as flow control allows) or a latency run (steady rate). */
export interface LoadJob {
  url: string;
  kind: "throughput" | "latency";
  confirms: boolean;
  messages: number;
  queue: string;
}

/** What a job measured. */
export interface LoadResult {
  msgsPerSec: number;
  /** publish→deliver latencies in ns (latency jobs). */
  latencies: number[];
}

async function load(job: LoadJob): Promise<LoadResult> {
  const pubConn = await amqplib.connect(job.url);
  const subConn = await amqplib.connect(job.url);
  const sub = await subConn.createChannel();
  await sub.assertQueue(job.queue, { durable: false, autoDelete: true });
  await sub.prefetch(1_000);
  const latencies: number[] = [];
  let received = 0;
  let finish!: () => void;
  const finished = new Promise<void>((r) => {
    finish = r;
  });
  await sub.consume(job.queue, (m) => {
    if (!m) return;
    if (job.kind === "latency") latencies.push(Number(hr() - m.content.readBigUInt64BE(0)));
    sub.ack(m);
    if (++received === job.messages) finish();
  });
  const body = Buffer.alloc(PAYLOAD_BYTES, 0x61);
  const start = hr();
  if (job.kind === "latency") {
    const ch = await pubConn.createChannel();
    const period = 1e9 / LATENCY_RATE;
    for (let i = 0; i < job.messages; i++) {
      const due = start + BigInt(Math.round(i * period));
      while (hr() < due) await new Promise((r) => setImmediate(r));
      const b = Buffer.from(body);
      b.writeBigUInt64BE(hr(), 0);
      ch.sendToQueue(job.queue, b);
    }
  } else if (job.confirms) {
    const ch = await pubConn.createConfirmChannel();
    let outstanding = 0;
    let wake: (() => void) | undefined;
    for (let i = 0; i < job.messages; i++) {
      while (outstanding >= CONFIRM_WINDOW) await new Promise<void>((r) => (wake = r));
      outstanding++;
      ch.sendToQueue(job.queue, body, {}, () => {
        outstanding--;
        const w = wake;
        wake = undefined;
        w?.();
      });
    }
    await ch.waitForConfirms();
  } else {
    const ch = await pubConn.createChannel();
    for (let i = 0; i < job.messages; i++) {
      if (!ch.sendToQueue(job.queue, body)) await new Promise((r) => ch.once("drain", r));
    }
  }
  await finished;
  const elapsed = Number(hr() - start) / 1e9;
  await pubConn.close();
  await subConn.close();
  return { msgsPerSec: job.messages / elapsed, latencies };
}

if (process.argv[2] === "load") {
  process.once("message", (job) => {
    load(job as LoadJob).then(
      (result) => process.send?.({ ok: true, result }, () => process.exit(0)),
      (e: Error) => process.send?.({ ok: false, error: e.stack ?? String(e) }, () => process.exit(1)),
    );
  });
}
