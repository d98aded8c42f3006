/** Run the real `portcullis` CLI the way the README does: `pnpm -s portcullis …` from the repo root. */
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";

/** The repository root. */
export const repoRoot = fileURLToPath(new URL("../..", import.meta.url));

/** Result of one CLI run. */
export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** Run `pnpm -s portcullis ...args` in the repo root and collect its output. */
export function runCli(
  args: readonly string[],
  opts: { env?: NodeJS.ProcessEnv; cwd?: string } = {},
): CliRun {
  const r = spawnSync("pnpm", ["-s", "portcullis", ...args], {
    cwd: opts.cwd ?? repoRoot,
    env: { ...process.env, ...opts.env },
    encoding: "utf8",
    timeout: 60_000,
  });
  if (r.error) throw r.error;
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}
