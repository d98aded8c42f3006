/**
 * One gateway per data dir. `portcullis serve` holds `D/serve.lock` (its pid)
 * while it runs: a second serve on the same dir would write the same SQLite
 * files and, on an empty dir, bootstrap a second account beside the first. It
 * is refused with the holder's pid. A lock left by a process that is gone (a
 * crash, `kill -9`) is taken over. Readers of a data dir (`audit --data-dir`)
 * take no lock.
 *
 * The lock file is written whole under a temporary name and then hard-linked
 * into place, so it is never seen empty and two starts cannot both take it.
 */
import { linkSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { CliUsageError } from "./io.ts";

/** The lock's file name in a data dir. */
export const LOCK_FILE = "serve.lock";

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
 * Take the data dir's lock for this process; returns the function that
 * releases it (it removes the file only while it is still this process's).
 * Throws a {@link CliUsageError} naming the holder when another live process has it.
 */
export function lockDataDir(dir: string): () => void {
  const path = join(dir, LOCK_FILE);
  const temp = join(dir, `${LOCK_FILE}.${process.pid}`);
  writeFileSync(temp, `${process.pid}\n`, { mode: 0o600 });
  try {
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        linkSync(temp, path);
        return () => {
          if (holder(path) === process.pid) rmSync(path, { force: true });
        };
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
      }
      const pid = holder(path);
      if (pid !== undefined && pid !== process.pid && alive(pid))
        throw new CliUsageError(
          `data dir ${dir} is in use by another portcullis serve (pid ${pid}); stop it first, or give this one its own --data-dir`,
        );
      // Left by a process that is gone: take it over.
      rmSync(path, { force: true });
    }
    throw new CliUsageError(`data dir ${dir}: could not take ${path} (another start is taking it)`);
  } finally {
    rmSync(temp, { force: true });
  }
}
