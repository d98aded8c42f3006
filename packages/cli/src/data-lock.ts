/**
 * The start-up lock of a data dir. Several `portcullis serve` processes may
 * share one data dir (admin planes appending to one SQLite store, with
 * optimistic concurrency), but what a start does to an empty dir must happen
 * once: create the master key, bootstrap the account, write the root
 * credentials. Two starts at once would otherwise make two master keys and two
 * accounts. So a start holds `D/start.lock` (its pid) from opening the store
 * until the root credentials are written; another start waits for it. A lock
 * left by a process that is gone (a crash, `kill -9`) is taken over.
 *
 * The lock file is written whole under a temporary name and then hard-linked
 * into place, so it is never seen empty and two starts cannot both take it.
 */
import { linkSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { CliUsageError } from "./io.ts";

/** The lock's file name in a data dir. */
export const START_LOCK_FILE = "start.lock";

/** Whether a process with this pid exists (EPERM: it exists, as another user's). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** The pid in a lock file, or undefined (gone, or not a lock this code wrote). */
function holder(path: string): number | undefined {
  try {
    const pid = Number.parseInt(readFileSync(path, "utf8"), 10);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Take the data dir's start-up lock, waiting up to `waitMs` while another live
 * process holds it; resolves with the (idempotent) release function, which
 * removes the file only while it is still this process's.
 */
export async function takeStartLock(dir: string, waitMs = 30_000): Promise<() => void> {
  const path = join(dir, START_LOCK_FILE);
  const temp = join(dir, `${START_LOCK_FILE}.${process.pid}`);
  writeFileSync(temp, `${process.pid}\n`, { mode: 0o600 });
  const deadline = Date.now() + waitMs;
  try {
    for (;;) {
      try {
        linkSync(temp, path);
        let held = true;
        return () => {
          if (held && holder(path) === process.pid) rmSync(path, { force: true });
          held = false;
        };
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
      }
      const pid = holder(path);
      if (pid === undefined || pid === process.pid || !alive(pid)) {
        // Left by a process that is gone (or by this one): take it over, unless another start
        // has just done so (the file changed since it was read).
        if (holder(path) === pid) rmSync(path, { force: true });
        continue;
      }
      if (Date.now() > deadline)
        throw new CliUsageError(
          `data dir ${dir}: another portcullis serve (pid ${pid}) has been starting for ${Math.round(waitMs / 1000)} s and still holds ${path}`,
        );
      await sleep(50);
    }
  } finally {
    rmSync(temp, { force: true });
  }
}
