import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { constants, rmSync } from "node:fs";
import { access, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { connect } from "@nats-io/transport-node";

/** Options for {@link startNatsServer}. */
export interface NatsServerOptions {
  /** Enable JetStream with a store in the server's temp dir (default true). */
  jetstream?: boolean;
  /** Also open the HTTP monitoring endpoint on a free port (default false). */
  monitoring?: boolean;
  /** How long to wait for the server to accept a NATS connection, in ms (default 5000). */
  startTimeoutMs?: number;
}

/** A real nats-server started for a test; dispose it (`await using`) or call `stop()`. */
export interface NatsServer extends AsyncDisposable {
  /** Client port, on 127.0.0.1. */
  readonly port: number;
  /** Client URL, `nats://127.0.0.1:<port>`. */
  readonly url: string;
  /** HTTP monitoring URL, when started with `monitoring: true`. */
  readonly monitorUrl: string | undefined;
  /** JetStream store directory; it survives `restart()` and `kill9()`. */
  readonly storeDir: string;
  /** Server log file (removed by `stop()`). */
  readonly logFile: string;
  /** Stop the server (SIGTERM, then SIGKILL after 3 s) and remove its temp dir. Idempotent. */
  stop(): Promise<void>;
  /** Stop the server gracefully if it runs, then start it again on the same port and store dir. */
  restart(): Promise<void>;
  /** Kill the server with SIGKILL (a crash) and wait for it to exit; `restart()` brings it back. */
  kill9(): Promise<void>;
}

/** Thrown when nats-server is missing or does not start. */
export class NatsServerError extends Error {
  override name = "NatsServerError";
}

const STOP_GRACE_MS = 3_000;
const SEARCH_DIRS = ["/usr/local/sbin", "/usr/sbin", "/sbin"];

// Servers not stopped when the test process exits are killed and their temp
// dirs removed, so a crashed test file never leaves an orphan nats-server behind.
// One registry per process: vitest evaluates this module again for every test
// file in a worker.
const LIVE_KEY = Symbol.for("portcullis.testkit.liveNatsServers");
const registry = globalThis as { [LIVE_KEY]?: Set<{ killNow(): void }> };
const live: Set<{ killNow(): void }> = registry[LIVE_KEY] ?? new Set();
if (registry[LIVE_KEY] === undefined) {
  registry[LIVE_KEY] = live;
  process.once("exit", () => {
    for (const server of live) server.killNow();
  });
}

/** A TCP port on 127.0.0.1 that was free a moment ago (bind port 0, read it, close). */
export async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const address = server.address();
  await new Promise((resolve) => server.close(resolve));
  if (address === null || typeof address === "string") {
    throw new NatsServerError("freePort: could not read the bound port");
  }
  return address.port;
}

/** Start a nats-server on a free loopback port from a temp config; resolves once it accepts clients. */
export async function startNatsServer(opts: NatsServerOptions = {}): Promise<NatsServer> {
  const bin = await findNatsServer();
  // Another process may take the free port before nats-server binds it; retry then.
  for (let attempt = 1; ; attempt++) {
    const dir = await mkdtemp(join(tmpdir(), "portcullis-nats-"));
    const server = new ManagedNatsServer(bin, dir, await freePort(), opts);
    try {
      await server.writeConfig(opts.monitoring ? await freePort() : undefined);
      await server.start();
      return server;
    } catch (err) {
      await server.stop();
      if (attempt < 3 && err instanceof NatsServerError && /address already in use/i.test(err.message)) {
        continue;
      }
      throw err;
    }
  }
}

async function findNatsServer(): Promise<string> {
  const fromEnv = process.env.NATS_SERVER_BIN;
  const dirs = [...(process.env.PATH ?? "").split(delimiter).filter(Boolean), ...SEARCH_DIRS];
  const candidates = fromEnv ? [fromEnv] : dirs.map((d) => join(d, "nats-server"));
  for (const candidate of candidates) {
    try {
      await access(candidate, constants.X_OK);
      return candidate;
    } catch {
      // try the next one
    }
  }
  throw new NatsServerError(
    fromEnv
      ? `NATS_SERVER_BIN=\`${fromEnv}\` is not an executable file (unset it, or run \`bash infra/setup.sh\`)`
      : "nats-server not found on PATH (or in /usr/sbin): run `bash infra/setup.sh` to install it",
  );
}

class ManagedNatsServer implements NatsServer {
  readonly url: string;
  readonly storeDir: string;
  readonly logFile: string;
  monitorUrl: string | undefined;
  readonly #bin: string;
  readonly #dir: string;
  readonly #configFile: string;
  readonly #opts: NatsServerOptions;
  #child: ChildProcess | undefined;
  /** Settles with a description once the current child has exited or failed to spawn. */
  #exited: Promise<string> = Promise.resolve("not started");
  #running = false;
  #stderr = "";
  #stopped = false;

  constructor(
    bin: string,
    dir: string,
    readonly port: number,
    opts: NatsServerOptions,
  ) {
    this.#bin = bin;
    this.#dir = dir;
    this.#opts = opts;
    this.url = `nats://127.0.0.1:${port}`;
    this.storeDir = join(dir, "store");
    this.logFile = join(dir, "nats-server.log");
    this.#configFile = join(dir, "nats-server.conf");
    live.add(this);
  }

  /** Synchronous last-resort cleanup for process exit. */
  killNow(): void {
    if (this.#running) this.#child?.kill("SIGKILL");
    rmSync(this.#dir, { recursive: true, force: true });
  }

  async writeConfig(monitorPort: number | undefined): Promise<void> {
    const lines = [`listen: "127.0.0.1:${this.port}"`, `log_file: ${JSON.stringify(this.logFile)}`];
    if (this.#opts.jetstream ?? true) {
      lines.push(`jetstream {`, `  store_dir: ${JSON.stringify(this.storeDir)}`, `}`);
    }
    if (monitorPort !== undefined) {
      lines.push(`http: "127.0.0.1:${monitorPort}"`);
      this.monitorUrl = `http://127.0.0.1:${monitorPort}`;
    }
    await writeFile(this.#configFile, `${lines.join("\n")}\n`);
  }

  async start(): Promise<void> {
    if (this.#stopped) throw new NatsServerError(`nats-server on port ${this.port} was stopped`);
    this.#stderr = "";
    const child = spawn(this.#bin, ["-c", this.#configFile], { stdio: ["ignore", "ignore", "pipe"] });
    this.#child = child;
    child.stderr?.setEncoding("utf8");
    child.stderr?.on("data", (chunk: string) => {
      this.#stderr = (this.#stderr + chunk).slice(-8_192);
    });
    this.#running = true;
    const exited = new Promise<string>((resolve) => {
      const done = (why: string) => {
        if (this.#child === child) this.#running = false;
        resolve(why);
      };
      child.once("error", (err) => done(`could not run ${this.#bin}: ${err.message}`));
      child.once("exit", (code, signal) => done(`exited with ${signal ?? `code ${code}`}`));
    });
    this.#exited = exited;

    const deadline = Date.now() + (this.#opts.startTimeoutMs ?? 5_000);
    let lastError: unknown;
    while (Date.now() < deadline) {
      const outcome = await Promise.race([this.#tryConnect(), exited]);
      if (outcome === true) return;
      if (typeof outcome === "string") {
        throw new NatsServerError(
          `nats-server ${outcome} before accepting clients${await this.#diagnostics()}`,
        );
      }
      lastError = outcome;
      await new Promise((r) => setTimeout(r, 50));
    }
    await this.#terminate();
    throw new NatsServerError(
      `nats-server did not accept connections on ${this.url} within ${this.#opts.startTimeoutMs ?? 5_000} ms` +
        `: ${String(lastError)}${await this.#diagnostics()}`,
      { cause: lastError },
    );
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    await this.#terminate();
    await rm(this.#dir, { recursive: true, force: true });
    live.delete(this);
  }

  async restart(): Promise<void> {
    await this.#terminate();
    await this.start();
  }

  async kill9(): Promise<void> {
    await this.#signalAndWait("SIGKILL", Number.POSITIVE_INFINITY);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }

  /** Resolves true once a client connects, or the connection error otherwise. */
  async #tryConnect(): Promise<true | Error> {
    try {
      const nc = await connect({ servers: this.url, reconnect: false, timeout: 500 });
      await nc.close();
      return true;
    } catch (err) {
      return err instanceof Error ? err : new Error(String(err));
    }
  }

  async #terminate(): Promise<void> {
    if (await this.#signalAndWait("SIGTERM", STOP_GRACE_MS)) return;
    await this.#signalAndWait("SIGKILL", Number.POSITIVE_INFINITY);
  }

  /** Send `signal` and wait up to `ms` for the process to exit; true when it is gone. */
  async #signalAndWait(signal: NodeJS.Signals, ms: number): Promise<boolean> {
    const child = this.#child;
    if (child === undefined || !this.#running) return true;
    const exit = this.#exited.then(() => true);
    child.kill(signal);
    if (ms === Number.POSITIVE_INFINITY) return exit;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), ms);
    });
    try {
      return await Promise.race([exit, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  async #diagnostics(): Promise<string> {
    const log = await readFile(this.logFile, "utf8").catch(() => "");
    const tail = `${this.#stderr}${log}`.trim().split("\n").slice(-15).join("\n");
    return tail ? `\n${tail}` : "";
  }
}
