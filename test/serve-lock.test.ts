/**
 * One `portcullis serve` per data dir: a second one on the same dir is refused
 * with the holder's pid (it would write the same SQLite files and, on an empty
 * dir, bootstrap a second account); the lock goes with the process, and one
 * left by a process that died is taken over.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { cliBin, type Serve, startServe } from "./helpers/serve.ts";

const dir = mkdtempSync(join(tmpdir(), "portcullis-lock-"));
let gw: Serve | undefined;
afterAll(async () => {
  await gw?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const serveAgain = () =>
  spawnSync(
    process.execPath,
    [cliBin, "serve", "--data-dir", dir, "--admin-port", "0", "--no-mqtt", "--no-amqp"],
    { encoding: "utf8", timeout: 30_000 },
  );

describe("portcullis serve: one gateway per data dir", () => {
  it("refuses a second serve on the same data dir, naming the first one's pid", async () => {
    gw = await startServe({ dataDir: dir, args: ["--no-mqtt", "--no-amqp"] });
    expect(readFileSync(join(dir, "serve.lock"), "utf8").trim()).toBe(String(gw.pid));
    const second = serveAgain();
    expect(second.status).toBe(2);
    expect(second.stderr).toContain(`data dir ${dir} is in use by another portcullis serve (pid ${gw.pid})`);
    // The first one is untouched: still one account, still answering.
    expect((await gw.admin.whoami()).accountId).toBe(gw.root.accountId);
    expect(readFileSync(join(dir, "serve.lock"), "utf8").trim()).toBe(String(gw.pid));
  });

  it("releases the lock on stop, and takes over one left by a process that is gone", async () => {
    const account = gw!.root.accountId;
    await gw!.stop({ keepDataDir: true });
    gw = undefined;
    expect(existsSync(join(dir, "serve.lock"))).toBe(false);
    // A lock as a killed serve leaves it: the pid of a process that has exited.
    const dead = spawnSync(process.execPath, ["-e", "process.stdout.write(String(process.pid))"], {
      encoding: "utf8",
    });
    writeFileSync(join(dir, "serve.lock"), `${dead.stdout}\n`);
    gw = await startServe({ dataDir: dir, args: ["--no-mqtt", "--no-amqp"] });
    expect(gw.root.accountId).toBe(account);
    expect(readFileSync(join(dir, "serve.lock"), "utf8").trim()).toBe(String(gw.pid));
  });
});
