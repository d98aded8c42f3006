/**
 * A private RabbitMQ node for the few tests that must change node-wide state
 * (a memory alarm, to see `connection.blocked`), which would disturb every
 * other test on the shared broker. Started with Debian's `rabbitmq-server`
 * under its own node name, config, data dir and ports; takes a few seconds.
 *
 * Debian's wrappers run the node as the `rabbitmq` user (and keep the
 * environment), so the temp dir is handed to that user when we are root.
 */
import { execFile } from "node:child_process";
import { chownSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { freePort } from "./nats-server.ts";

const run = promisify(execFile);
const SBIN = ["/usr/sbin", "/usr/local/sbin", "/sbin"];

/** A running private RabbitMQ node; `stop()` halts it and removes its files. */
export interface RabbitMqNode extends AsyncDisposable {
  readonly nodeName: string;
  readonly port: number;
  /** `amqp://guest:guest@127.0.0.1:<port>` (guest is allowed from loopback). */
  readonly url: string;
  /** With `tls`: the AMQPS listener's port and `amqps://guest:guest@127.0.0.1:<port>`. */
  readonly tlsPort?: number;
  readonly tlsUrl?: string;
  /** Run `rabbitmqctl -n <node> …args`; resolves with its stdout. */
  ctl(...args: string[]): Promise<string>;
  stop(): Promise<void>;
}

/** Thrown when rabbitmq-server is missing or the node does not come up. */
export class RabbitMqError extends Error {
  override name = "RabbitMqError";
}

async function rabbitUid(): Promise<{ uid: number; gid: number } | undefined> {
  if (process.getuid?.() !== 0) return undefined;
  try {
    const [uid, gid] = await Promise.all([run("id", ["-u", "rabbitmq"]), run("id", ["-g", "rabbitmq"])]);
    return { uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()) };
  } catch {
    return undefined;
  }
}

/** Start a private node on free loopback ports; resolves once it accepts AMQP clients. */
export async function startRabbitMq(
  opts: {
    startTimeoutMs?: number;
    /** Also listen for AMQPS (TLS) with this key and certificate (no client certificates asked). */
    tls?: { key: string; cert: string };
  } = {},
): Promise<RabbitMqNode> {
  const dir = mkdtempSync(join(tmpdir(), "portcullis-rabbit-"));
  const port = await freePort();
  const distPort = await freePort();
  const tlsPort = opts.tls ? await freePort() : undefined;
  const nodeName = `pc${port}@localhost`;
  const files = ["rabbitmq.conf"];
  let conf = `listeners.tcp.local = 127.0.0.1:${port}\n`;
  if (opts.tls) {
    writeFileSync(join(dir, "key.pem"), opts.tls.key, { mode: 0o600 });
    writeFileSync(join(dir, "cert.pem"), opts.tls.cert);
    files.push("key.pem", "cert.pem");
    conf += [
      `listeners.ssl.default = 127.0.0.1:${tlsPort}`,
      `ssl_options.cacertfile = ${join(dir, "cert.pem")}`,
      `ssl_options.certfile = ${join(dir, "cert.pem")}`,
      `ssl_options.keyfile = ${join(dir, "key.pem")}`,
      "ssl_options.verify = verify_none",
      "ssl_options.fail_if_no_peer_cert = false",
      "",
    ].join("\n");
  }
  writeFileSync(join(dir, "rabbitmq.conf"), conf);
  const owner = await rabbitUid();
  if (owner) {
    chownSync(dir, owner.uid, owner.gid);
    for (const f of files) chownSync(join(dir, f), owner.uid, owner.gid);
  }
  const env = {
    ...process.env,
    RABBITMQ_NODENAME: nodeName,
    RABBITMQ_CONFIG_FILE: join(dir, "rabbitmq"),
    RABBITMQ_DIST_PORT: String(distPort),
    RABBITMQ_MNESIA_BASE: join(dir, "mnesia"),
    RABBITMQ_LOG_BASE: join(dir, "log"),
    RABBITMQ_PID_FILE: join(dir, "pid"),
    RABBITMQ_ENABLED_PLUGINS_FILE: join(dir, "enabled_plugins"),
  };
  const bin = (name: string) => SBIN.map((d) => join(d, name));
  const find = async (name: string) => {
    for (const p of [name, ...bin(name)]) {
      try {
        await run("sh", ["-c", `command -v ${p}`]);
        return p;
      } catch {
        // next
      }
    }
    throw new RabbitMqError(`${name} not found: run \`bash infra/setup.sh\` (installs rabbitmq-server)`);
  };
  const server = await find("rabbitmq-server");
  const ctlBin = await find("rabbitmqctl");
  const ctl = async (...args: string[]) =>
    (await run(ctlBin, ["-n", nodeName, ...args], { env, timeout: 30_000 })).stdout;
  const stop = async () => {
    await ctl("stop").catch(() => {});
    rmSync(dir, { recursive: true, force: true });
  };
  await run(server, ["-detached"], { env });
  const deadline = Date.now() + (opts.startTimeoutMs ?? 60_000);
  for (;;) {
    try {
      await run(ctlBin, ["-n", nodeName, "--timeout", "5", "await_startup"], { env, timeout: 10_000 });
      break;
    } catch (err) {
      if (Date.now() > deadline) {
        await stop();
        throw new RabbitMqError(`private RabbitMQ node ${nodeName} did not start: ${(err as Error).message}`);
      }
      await new Promise((r) => setTimeout(r, 250));
    }
  }
  return {
    nodeName,
    port,
    url: `amqp://guest:guest@127.0.0.1:${port}`,
    ...(tlsPort !== undefined ? { tlsPort, tlsUrl: `amqps://guest:guest@127.0.0.1:${tlsPort}` } : {}),
    ctl,
    stop,
    [Symbol.asyncDispose]: stop,
  };
}
