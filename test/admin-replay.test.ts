/**
 * "No replay" holds across admin processes: a signed request accepted by one
 * admin process is refused by another behind the same store, both for two
 * serves on one data dir (a SQLite nonce file beside the store) and for
 * serves on a JetStream store (a JetStream nonce stream).
 */
import { copyFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { signRequest } from "@portcullis/admin-api";
import { type NatsServer, startNatsServer } from "@portcullis/testkit";
import { afterAll, describe, expect, it } from "vitest";
import { type Serve, startServe } from "./helpers/serve.ts";

const running: Serve[] = [];
const dirs: string[] = [];
let nats: NatsServer | undefined;
afterAll(async () => {
  for (const g of running) await g.stop({ keepDataDir: true });
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  await nats?.stop();
});

const newDir = () => {
  const d = mkdtempSync(join(tmpdir(), "portcullis-replay-"));
  dirs.push(d);
  return d;
};
const start = async (dataDir: string, args: string[] = []) => {
  const g = await startServe({ dataDir, args: ["--no-mqtt", "--no-amqp", ...args] });
  running.push(g);
  return g;
};

/** One signed `POST /v1/users` (no `host` signed, so it is valid at either address), sent to each. */
async function sendTwice(a: Serve, b: Serve, userName: string) {
  const body = JSON.stringify({ userName });
  const headers = signRequest({
    method: "POST",
    url: "/v1/users",
    body,
    accessKeyId: a.root.accessKeyId,
    accessKeySecret: a.root.accessKeySecret,
    extraHeaders: { "content-type": "application/json" },
  });
  const send = async (g: Serve) => {
    const r = await fetch(`${g.adminUrl}/v1/users`, { method: "POST", headers, body });
    return { status: r.status, body: (await r.json()) as Record<string, unknown> };
  };
  return [await send(a), await send(b)];
}

describe("admin API: a signed request is accepted once by all admin processes of a store", () => {
  it("two serves on one data dir (SQLite store)", async () => {
    const dir = newDir();
    const a = await start(dir);
    const b = await start(dir);
    const [first, replay] = await sendTwice(a, b, "replay-sqlite");
    expect(first!.status).toBe(201);
    expect(replay).toMatchObject({ status: 401, body: { code: "ReplayedRequest" } });
    // And the other way round, with a fresh request.
    const [first2, replay2] = await sendTwice(b, a, "replay-sqlite-2");
    expect(first2!.status).toBe(201);
    expect(replay2).toMatchObject({ status: 401, body: { code: "ReplayedRequest" } });
  });

  it("two serves on a JetStream store", async () => {
    nats = await startNatsServer();
    const store = ["--store", "jetstream", "--nats", nats.url];
    const dirA = newDir();
    const a = await start(dirA, store);
    // The second admin process: its own data dir with the account's master key and root credentials.
    const dirB = newDir();
    for (const f of ["master.key", "root-credentials.json"]) copyFileSync(join(dirA, f), join(dirB, f));
    const b = await start(dirB, store);
    const [first, replay] = await sendTwice(a, b, "replay-jetstream");
    expect(first!.status).toBe(201);
    expect(replay).toMatchObject({ status: 401, body: { code: "ReplayedRequest" } });
  });
});
