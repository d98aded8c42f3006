/**
 * `startServe()`: run the real `portcullis serve` as a child process (the
 * README's all-in-one) in a temp data dir on free ports, and hand back its
 * endpoints, its root credentials and a signing AdminClient.
 *
 *     await using gw = await startServe({ demo: true });
 *     await gw.admin.createUser("alice");
 *     gw.mqtt   // { host, port } of the MQTT edge (when it started)
 *     const again = await gw.restart();   // same data dir, state kept
 *
 * The child's stdout/stderr are kept (`gw.output()`); its JSON log is
 * `gw.logFile`. A serve that does not come up within `timeoutMs` fails the
 * test with its output.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AdminClient, type AdminClientOptions } from "@portcullis/admin-api";
import { repoRoot } from "./cli.ts";

/** The CLI entry point, run with this node (no pnpm in between: faster). */
export const cliBin = join(repoRoot, "packages/cli/bin/portcullis.mjs");

/** Options of {@link startServe}. */
export interface ServeOptions {
  /** Reuse a data dir (default: a new temp dir, removed by `stop` unless `keepDataDir`). */
  dataDir?: string;
  keepDataDir?: boolean;
  demo?: boolean;
  /** Default 0 (a free port) for each. */
  adminPort?: number;
  /** Pass no port flags at all: serve's defaults (8181, 1883, 5673, or the next free ones). */
  defaultPorts?: boolean;
  mqttPort?: number;
  amqpPort?: number;
  amqpUpstream?: string;
  /** More CLI arguments. */
  args?: string[];
  env?: NodeJS.ProcessEnv;
  /** How long to wait for `ready` (default 60 s). */
  timeoutMs?: number;
}

/** Root credentials as written by serve. */
export interface RootCredentials {
  accountId: string;
  accessKeyId: string;
  accessKeySecret: string;
  endpoint: string;
}

/** A running `portcullis serve`. */
export interface Serve extends AsyncDisposable {
  dataDir: string;
  logFile: string;
  adminUrl: string;
  mqtt?: { host: string; port: number };
  amqp?: { host: string; port: number };
  root: RootCredentials;
  /** A client signing as root. */
  admin: AdminClient;
  /** A client for other credentials. */
  client(creds: { accessKeyId: string; accessKeySecret: string }, opts?: AdminClientOptions): AdminClient;
  /** Environment for the CLI (`PORTCULLIS_*`) as root. */
  cliEnv: NodeJS.ProcessEnv;
  pid: number;
  /** Everything the child printed so far. */
  output(): string;
  /** SIGTERM and wait; resolves with the exit code. Removes a temp data dir unless kept. */
  stop(opts?: { keepDataDir?: boolean }): Promise<number | null>;
  /** Stop and start again on the same data dir (same ports unless they were 0). */
  restart(): Promise<Serve>;
}

function waitExit(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => child.once("exit", (code) => resolve(code)));
}

/** Start `portcullis serve`; resolves once it printed `ready`. */
export async function startServe(opts: ServeOptions = {}): Promise<Serve> {
  const dataDir = opts.dataDir ?? mkdtempSync(join(tmpdir(), "portcullis-serve-"));
  const ownDir = opts.dataDir === undefined && !opts.keepDataDir;
  const args = [
    cliBin,
    "serve",
    "--data-dir",
    dataDir,
    ...(opts.defaultPorts
      ? []
      : [
          "--admin-port",
          String(opts.adminPort ?? 0),
          "--mqtt-port",
          String(opts.mqttPort ?? 0),
          "--amqp-port",
          String(opts.amqpPort ?? 0),
        ]),
    ...(opts.amqpUpstream ? ["--amqp-upstream", opts.amqpUpstream] : []),
    ...(opts.demo ? ["--demo"] : []),
    ...(opts.args ?? []),
  ];
  const child = spawn(process.execPath, args, {
    cwd: repoRoot,
    env: { ...process.env, ...opts.env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout!.on("data", (d) => {
    out += d;
  });
  child.stderr!.on("data", (d) => {
    out += d;
  });
  const timeoutMs = opts.timeoutMs ?? 60_000;
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`portcullis serve did not become ready in ${timeoutMs} ms; output:\n${out}`));
    }, timeoutMs);
    const check = () => {
      if (out.includes("portcullis: ready")) {
        clearTimeout(timer);
        child.stdout!.off("data", check);
        child.off("exit", exited);
        resolve();
      }
    };
    const exited = (code: number | null) => {
      clearTimeout(timer);
      reject(new Error(`portcullis serve exited with ${code} before ready; output:\n${out}`));
    };
    child.stdout!.on("data", check);
    child.once("exit", exited);
  });
  const endpoints = JSON.parse(readFileSync(join(dataDir, "serve.json"), "utf8")) as {
    admin: string;
    edges: { kind: "mqtt" | "amqp"; host: string; port: number }[];
  };
  const root = JSON.parse(readFileSync(join(dataDir, "root-credentials.json"), "utf8")) as RootCredentials;
  const mqtt = endpoints.edges.find((e) => e.kind === "mqtt");
  const amqp = endpoints.edges.find((e) => e.kind === "amqp");
  let stopped: Promise<number | null> | undefined;
  const stop = (o: { keepDataDir?: boolean } = {}) => {
    stopped ??= (async () => {
      child.kill("SIGTERM");
      const t = setTimeout(() => child.kill("SIGKILL"), 15_000);
      const code = await waitExit(child);
      clearTimeout(t);
      if (ownDir && !o.keepDataDir) rmSync(dataDir, { recursive: true, force: true });
      return code;
    })();
    return stopped;
  };
  const gw: Serve = {
    dataDir,
    logFile: join(dataDir, "portcullis.log"),
    adminUrl: endpoints.admin,
    ...(mqtt ? { mqtt: { host: mqtt.host, port: mqtt.port } } : {}),
    ...(amqp ? { amqp: { host: amqp.host, port: amqp.port } } : {}),
    root,
    admin: new AdminClient({ ...root, endpoint: endpoints.admin }),
    client: (creds, o) => new AdminClient({ endpoint: endpoints.admin, ...creds }, o),
    cliEnv: {
      PORTCULLIS_ENDPOINT: endpoints.admin,
      PORTCULLIS_ACCESS_KEY_ID: root.accessKeyId,
      PORTCULLIS_ACCESS_KEY_SECRET: root.accessKeySecret,
    },
    pid: child.pid!,
    output: () => out,
    stop,
    async restart() {
      await stop({ keepDataDir: true });
      const again = await startServe({ ...opts, dataDir, keepDataDir: true });
      // The new one owns the temp dir's cleanup when this one did.
      if (!ownDir) return again;
      const stopAgain = async (o?: { keepDataDir?: boolean }) => {
        const code = await again.stop(o);
        if (!o?.keepDataDir && existsSync(dataDir)) rmSync(dataDir, { recursive: true, force: true });
        return code;
      };
      return {
        ...again,
        stop: stopAgain,
        async [Symbol.asyncDispose]() {
          await stopAgain();
        },
      };
    },
    async [Symbol.asyncDispose]() {
      await stop();
    },
  };
  return gw;
}
