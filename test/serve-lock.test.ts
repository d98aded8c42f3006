/**
 * What a start does to an empty data dir (master key, account, root
 * credentials) happens once, even when two `portcullis serve` start on it at
 * the same moment: a start holds `D/start.lock` until the root credentials are
 * written, another waits for it, and a lock left by a process that died is
 * taken over. (Several serves may then share the dir: test/admin-http.test.ts
 * runs two admin planes on one SQLite store.)
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SqliteEventStore } from "@portcullis/event-store";
import { afterAll, describe, expect, it } from "vitest";
import { type Serve, startServe } from "./helpers/serve.ts";

const dirs: string[] = [];
const running: Serve[] = [];
afterAll(async () => {
  for (const g of running) await g.stop({ keepDataDir: true });
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const newDir = () => {
  const d = mkdtempSync(join(tmpdir(), "portcullis-lock-"));
  dirs.push(d);
  return d;
};
const start = async (dataDir: string) => {
  const g = await startServe({ dataDir, args: ["--no-mqtt", "--no-amqp"] });
  running.push(g);
  return g;
};

/** The AccountCreated events in the data dir's store. */
async function accountsIn(dataDir: string): Promise<string[]> {
  const store = SqliteEventStore.open(join(dataDir, "events.db"));
  const ids: string[] = [];
  for await (const e of store.readAll()) if (e.type === "AccountCreated") ids.push(e.accountId);
  await store.close();
  return ids;
}

describe("portcullis serve: start-up of a data dir happens once", () => {
  it("two serves started at once on an empty data dir make one master key and one account", async () => {
    const dir = newDir();
    const [a, b] = await Promise.all([start(dir), start(dir)]);
    expect(await accountsIn(dir)).toEqual([a!.root.accountId]);
    // Both admin planes decide on that account with the one master key (the root key verifies on both).
    expect((await a!.admin.whoami()).accountId).toBe(a!.root.accountId);
    expect((await b!.client(a!.root).whoami()).accountId).toBe(a!.root.accountId);
    expect(existsSync(join(dir, "start.lock"))).toBe(false);
  });

  it("a start waits while another live process holds the lock, and takes over one left by a dead process", async () => {
    const dir = newDir();
    // Held by a live process (this test's): the serve waits until it is released.
    writeFileSync(join(dir, "start.lock"), `${process.pid}\n`);
    const waiting = start(dir);
    await new Promise((r) => setTimeout(r, 1_000));
    expect(existsSync(join(dir, "events.db"))).toBe(false);
    rmSync(join(dir, "start.lock"));
    const g = await waiting;
    expect(await accountsIn(dir)).toEqual([g.root.accountId]);
    await g.stop({ keepDataDir: true });
    // Left by a process that has exited: taken over at once.
    const dead = spawnSync(process.execPath, ["-e", "process.stdout.write(String(process.pid))"], {
      encoding: "utf8",
    });
    writeFileSync(join(dir, "start.lock"), `${dead.stdout}\n`);
    const again = await start(dir);
    expect(again.root.accountId).toBe(g.root.accountId);
    expect(readFileSync(join(dir, "root-credentials.json"), "utf8")).toContain(g.root.accountId);
    expect(existsSync(join(dir, "start.lock"))).toBe(false);
  });
});
