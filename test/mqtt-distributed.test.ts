/**
 * Distributed (issue 5 Tests): a JetStream event store on a private
 * nats-server, the admin API, and two `portcullis mqtt-edge` processes (the
 * real CLI) that follow the store and report their positions over NATS.
 *
 * - One revocation through the API reaches both edges: the call returns once
 *   both applied it (`waitEnforced`), and neither delivers anything after.
 * - An edge restarted while events happened catches up before it accepts
 *   connections: its first CONNECTs already see every change made while it was down.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { type AdminApi, AdminClient, bootstrapAccount, startAdminApi } from "@portcullis/admin-api";
import { JetStreamEventStore } from "@portcullis/event-store";
import { SecretBox } from "@portcullis/events";
import { LiveProjection, NatsPositionBoard } from "@portcullis/feed";
import { mqttPassword, mqttUsername } from "@portcullis/mqtt-edge";
import { type NatsServer, startNatsServer } from "@portcullis/testkit";
import { connectAsync, type MqttClient } from "mqtt";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, test } from "vitest";

const CLI = join(import.meta.dirname, "..", "packages", "cli", "bin", "portcullis.mjs");

interface Key {
  accessKeyId: string;
  accessKeySecret: string;
}

/** A running `portcullis mqtt-edge`. */
class EdgeProcess {
  readonly child: ChildProcess;
  output = "";
  readonly ready: Promise<{ port: number; position: number }>;
  constructor(
    readonly edgeId: string,
    env: NodeJS.ProcessEnv,
  ) {
    this.child = spawn(
      process.execPath,
      [CLI, "mqtt-edge", "--nats", nats.url, "--port", "0", "--edge-id", edgeId, "--log-level", "warn"],
      { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] },
    );
    this.child.stderr!.on("data", (d) => {
      this.output += d;
    });
    this.ready = new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`${edgeId} not ready:\n${this.output}`)), 60_000);
      this.child.stdout!.on("data", (d) => {
        this.output += d;
        // `MQTT edge mqtt://127.0.0.1:<port> (edge id <id>, caught up to position <n>)`, then `portcullis: ready`.
        const m = /mqtt:\/\/[^:]+:(\d+) \(edge id [^,]+, caught up to position (\d+)\)/.exec(this.output);
        if (m && this.output.includes("portcullis: ready")) {
          clearTimeout(t);
          resolve({ port: Number(m[1]), position: Number(m[2]) });
        }
      });
      this.child.once("exit", (code) => {
        clearTimeout(t);
        reject(new Error(`${edgeId} exited with ${code}:\n${this.output}`));
      });
    });
  }
  async stop(): Promise<void> {
    if (this.child.exitCode !== null) return;
    const exited = new Promise((r) => this.child.once("exit", r));
    this.child.kill("SIGTERM");
    await exited;
  }
}

let nats: NatsServer;
let nc: NatsConnection;
let store: JetStreamEventStore;
let feed: LiveProjection;
let board: NatsPositionBoard;
let api: AdminApi;
let admin: AdminClient;
let root: Key;
const masterKey = randomBytes(32);
const edges = new Map<string, EdgeProcess>();
const ports = new Map<string, number>();
const clients: MqttClient[] = [];

async function startEdge(edgeId: string): Promise<{ port: number; position: number }> {
  const e = new EdgeProcess(edgeId, { PORTCULLIS_MASTER_KEY: masterKey.toString("hex") });
  edges.set(edgeId, e);
  const r = await e.ready;
  ports.set(edgeId, r.port);
  return r;
}

async function mqtt(edgeId: string, k: Key, clientId: string): Promise<MqttClient> {
  const c = await connectAsync(`mqtt://127.0.0.1:${ports.get(edgeId)}`, {
    clientId,
    username: mqttUsername(k.accessKeyId, "mqtt-local"),
    password: mqttPassword(k.accessKeySecret, clientId),
    protocolVersion: 4,
    reconnectPeriod: 0,
    connectTimeout: 10_000,
  });
  clients.push(c);
  return c;
}
const refusal = (edgeId: string, k: Key, clientId: string) =>
  mqtt(edgeId, k, clientId).then(
    () => 0,
    (e: { code?: number }) => e.code ?? -1,
  );

/** Messages of a client, with a wait. */
function inbox(c: MqttClient) {
  const got: string[] = [];
  const waiters: (() => void)[] = [];
  c.on("message", (_t, p) => {
    got.push(p.toString());
    for (const w of waiters) w();
  });
  return {
    got,
    waitFor: (payload: string) =>
      new Promise<void>((resolve, reject) => {
        if (got.includes(payload)) return resolve();
        const t = setTimeout(() => reject(new Error(`no ${payload}; got ${got.join(",")}`)), 10_000);
        waiters.push(() => {
          if (got.includes(payload)) {
            clearTimeout(t);
            resolve();
          }
        });
      }),
  };
}

async function user(name: string, statements: unknown[]): Promise<Key> {
  await admin.createUser(name);
  await admin.createPolicy(`${name}-p`, { Version: "1", Statement: statements });
  await admin.attachPolicy(`${name}-p`, { user: name });
  const k = (await admin.createAccessKey(name)) as unknown as Key;
  return { accessKeyId: k.accessKeyId, accessKeySecret: k.accessKeySecret };
}
const T = (t: string) => `acs:mq:*:*:topic/mqtt-local/${t}`;
const INSTANCE = {
  Effect: "Allow",
  Action: "mq:MqttInstanceAccess",
  Resource: "acs:mq:*:*:instance/mqtt-local",
};

beforeAll(async () => {
  nats = await startNatsServer({ jetstream: true });
  nc = await connect({ servers: nats.url });
  store = await JetStreamEventStore.connect({ connection: nc });
  const box = new SecretBox(masterKey);
  const acct = await bootstrapAccount(store, box, { alias: "dist" });
  root = { accessKeyId: acct.accessKeyId, accessKeySecret: acct.accessKeySecret };
  feed = await LiveProjection.start(store);
  board = new NatsPositionBoard(nc);
  api = await startAdminApi({ store, feed, box, board, logger: pino({ level: "silent" }) });
  admin = new AdminClient({ endpoint: api.url, ...root }, { waitEnforced: true, waitTimeoutMs: 10_000 });
  await admin.createTopic("a");
  await admin.createTopic("sentinel");
  await admin.createGroupId("GID_dist");
  await Promise.all([startEdge("mqtt-d1"), startEdge("mqtt-d2")]);
  await liveEdges(["mqtt-d1", "mqtt-d2"]);
});

/** Wait until exactly these edges report on the board. */
async function liveEdges(want: string[]): Promise<void> {
  const t0 = Date.now();
  for (;;) {
    const have = board
      .edges()
      .map((e) => e.edgeId)
      .sort();
    if (JSON.stringify(have) === JSON.stringify(want)) return;
    if (Date.now() - t0 > 10_000) throw new Error(`live edges ${have.join(",")}; want ${want.join(",")}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

afterAll(async () => {
  await Promise.all(clients.map((c) => c.endAsync(true).catch(() => {})));
  await Promise.all([...edges.values()].map((e) => e.stop()));
  await api?.close();
  await board?.close();
  await feed?.close();
  await store?.close();
  await nc?.close();
  await nats?.stop();
});

describe("two MQTT edge processes on a JetStream store", () => {
  test("one revocation through the API reaches both edges before the call returns", async () => {
    const sub = await user("dist-sub", [
      INSTANCE,
      { Effect: "Allow", Action: "mq:SUB", Resource: T("sentinel") },
    ]);
    await admin.createPolicy("dist-feed", {
      Version: "1",
      Statement: [{ Effect: "Allow", Action: "mq:SUB", Resource: T("a") }],
    });
    await admin.attachPolicy("dist-feed", { user: "dist-sub" });
    const per = new Map<string, { s: ReturnType<typeof inbox>; pub: MqttClient }>();
    for (const edgeId of ["mqtt-d1", "mqtt-d2"]) {
      const c = await mqtt(edgeId, sub, `GID_dist@@@sub-${edgeId}`);
      const s = inbox(c);
      await c.subscribeAsync(["a/#", "sentinel/#"], { qos: 1 });
      const pub = await mqtt(edgeId, root, `GID_dist@@@pub-${edgeId}`);
      await pub.publishAsync("a/x", `before-${edgeId}`, { qos: 1 });
      await s.waitFor(`before-${edgeId}`);
      per.set(edgeId, { s, pub });
    }
    const r = (await admin.detachPolicy("dist-feed", { user: "dist-sub" })) as {
      position: number;
      enforcement: { confirmed: boolean; edges: { edgeId: string; position: number }[] };
    };
    expect(r.enforcement.confirmed).toBe(true);
    expect(r.enforcement.edges.map((e) => e.edgeId).sort()).toEqual(["mqtt-d1", "mqtt-d2"]);
    for (const e of r.enforcement.edges) expect(e.position).toBeGreaterThanOrEqual(r.position);
    for (const [edgeId, { s, pub }] of per) {
      // Barrier: same publisher connection, the sentinel is still readable.
      await pub.publishAsync("a/x", `after-${edgeId}`, { qos: 1 });
      await pub.publishAsync("sentinel/x", `barrier-${edgeId}`, { qos: 1 });
      await s.waitFor(`barrier-${edgeId}`);
      expect(s.got).not.toContain(`after-${edgeId}`);
    }
  });

  test("an edge restarted while events happened catches up before it accepts connections", async () => {
    const keep = await user("dist-keep", [INSTANCE, { Effect: "Allow", Action: "mq:PUB", Resource: T("a") }]);
    expect(await refusal("mqtt-d2", keep, "GID_dist@@@keep-1")).toBe(0);
    await edges.get("mqtt-d2")!.stop();
    await liveEdges(["mqtt-d1"]);
    // While mqtt-d2 is down: revoke one key, create a user, and add noise to catch up on.
    await admin.setAccessKeyStatus(keep.accessKeyId, "Inactive");
    const fresh = await user("dist-fresh", [INSTANCE]);
    for (let i = 0; i < 30; i++) await admin.createTopic(`noise${i}`);
    const head = await store.head();
    const { position } = await startEdge("mqtt-d2");
    expect(position).toBeGreaterThanOrEqual(head);
    // Its very first CONNECTs see what happened while it was down.
    expect(await refusal("mqtt-d2", fresh, "GID_dist@@@fresh-1")).toBe(0);
    expect(await refusal("mqtt-d2", keep, "GID_dist@@@keep-2")).toBe(5);
    expect(await refusal("mqtt-d1", keep, "GID_dist@@@keep-3")).toBe(5);
  });
});
