/**
 * The `portcullis` command. `main(argv)` returns the exit code; it never calls
 * process.exit, so it can run in-process in tests.
 */

import { readFileSync } from "node:fs";
import { type AllowLogging, parseAllowLogging } from "@portcullis/audit";
import { SYSTEM_POLICIES } from "@portcullis/policy";
import { Command, CommanderError, Option } from "commander";
import { addAdminCommands } from "./admin-commands.ts";
import { registerAuditCommands } from "./audit-commands.ts";
import { type CliIO, CliUsageError, processIO } from "./io.ts";
import { evalCommand, validateCommand } from "./policy-commands.ts";
import type { ServeOptions } from "./serve.ts";

const collect = (v: string, prev: string[] = []) => [...prev, v];
const port = (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new CliUsageError(`not a port number: \`${v}\``);
  return n;
};

/** `--log-allows` as the decision log takes it; a bad value is a usage error. */
function allowLogging(text: string): AllowLogging {
  try {
    return parseAllowLogging(text);
  } catch (e) {
    throw new CliUsageError(`--log-allows: ${(e as Error).message}`);
  }
}

/** `--admin-tls-key` and `--admin-tls-cert` go together. */
function adminTls(keyFile: string | undefined, certFile: string | undefined): Pick<ServeOptions, "adminTls"> {
  if (keyFile === undefined && certFile === undefined) return {};
  if (keyFile === undefined || certFile === undefined)
    throw new CliUsageError("--admin-tls-key and --admin-tls-cert go together (HTTPS needs both)");
  return { adminTls: { keyFile, certFile } };
}

/** Run `serve` until SIGINT/SIGTERM; resolves with the exit code. */
async function serveUntilSignal(o: ServeOptions, io: CliIO): Promise<number> {
  // Loaded on demand: the server side (fastify, aedes, SQLite) is not needed by other commands.
  const { serve } = await import("./serve.ts");
  const served = await serve(o, io);
  const signal = await new Promise<string>((resolve) => {
    process.once("SIGINT", () => resolve("SIGINT"));
    process.once("SIGTERM", () => resolve("SIGTERM"));
  });
  io.out(`portcullis: ${signal}, stopping`);
  await served.close();
  return 0;
}

/** Key id and secret for `signature`: flags, or a demo/root credentials file (`--user` picks a demo user). */
function signatureKey(o: {
  accessKeyId?: string;
  accessKeySecret?: string;
  credentials?: string;
  user?: string;
}) {
  if (o.accessKeyId && o.accessKeySecret) return { id: o.accessKeyId, secret: o.accessKeySecret };
  if (!o.credentials)
    throw new CliUsageError("give --access-key-id and --access-key-secret, or --credentials FILE");
  const f = JSON.parse(readFileSync(o.credentials, "utf8")) as Record<string, unknown>;
  const pick = (k: Record<string, unknown>) => ({
    id: String(k.accessKeyId),
    secret: String(k.accessKeySecret),
  });
  if (o.user) {
    const k = Object.values(f).find((v) => (v as { userName?: string } | null)?.userName === o.user);
    if (!k) throw new CliUsageError(`no key of user \`${o.user}\` in ${o.credentials}`);
    return pick(k as Record<string, unknown>);
  }
  return pick(f);
}

/** Run a distributed edge until SIGINT/SIGTERM; resolves with the exit code. */
async function edgeUntilSignal(
  start: () => Promise<{
    kind: string;
    edgeId: string;
    host: string;
    port: number;
    healthPort?: number | undefined;
    feed: { position: number };
    close(): Promise<void>;
  }>,
  io: CliIO,
): Promise<number> {
  const edge = await start();
  io.out(
    `${edge.kind === "mqtt" ? "MQTT" : "AMQP"} edge ${edge.kind}://${edge.host}:${edge.port} (edge id ${edge.edgeId}, caught up to position ${edge.feed.position})`,
  );
  if (edge.healthPort !== undefined)
    io.out(`health     http://${edge.host}:${edge.healthPort}/healthz (and /readyz, /metrics)`);
  io.out("portcullis: ready (Ctrl-C to stop)");
  const signal = await new Promise<string>((resolve) => {
    process.once("SIGINT", () => resolve("SIGINT"));
    process.once("SIGTERM", () => resolve("SIGTERM"));
  });
  io.out(`portcullis: ${signal}, stopping`);
  await edge.close();
  return 0;
}

/** `mqtt-edge` and `amqp-edge`: one edge alone against a JetStream store (SPEC §9, distributed). */
function addEdgeCommands(program: Command, io: CliIO, setCode: (c: number) => void): void {
  const common = (c: Command, defaultPort: number, defaultInstance: string) =>
    c
      .requiredOption("--nats <url>", "NATS server URL(s) of the JetStream event store, comma-separated")
      .option("--stream <name>", "JetStream stream of the event store", "PORTCULLIS_EVENTS")
      .option("--subject-prefix <p>", "NATS subject prefix of the store and position reports", "portcullis")
      .option(
        "--master-key-file <file>",
        "master key of the AccessKey secrets (else env PORTCULLIS_MASTER_KEY)",
      )
      .option("--host <host>", "listen address", "127.0.0.1")
      .addOption(new Option("--port <n>", `listen port (default ${defaultPort})`).argParser(port))
      .option("--instance <id>", "instance id", defaultInstance)
      .option("--region <region>", "region in ARNs", "local")
      .option("--edge-id <id>", "name in logs, metrics and position reports (default <kind>-<pid>)")
      .addOption(
        new Option("--health-port <n>", "serve /healthz, /readyz and /metrics on this port").argParser(port),
      )
      .addOption(
        new Option(
          "--fail-closed-after <ms>",
          "refuse everything after the feed is stale this long",
        ).argParser(Number),
      )
      .option("--log-file <file>", "JSON log file (`-` for stderr)", "-")
      .option("--log-level <level>", "pino level (default info)")
      .option("--log-allows <what>", "allows kept in the decision log besides every denial", "none")
      .option(
        "--snapshot-dir <dir>",
        "keep snapshots here and start from the latest (else replay the whole log)",
      );
  // biome-ignore lint/suspicious/noExplicitAny: commander's parsed options
  const base = (o: any) => ({
    nats: o.nats,
    streamName: o.stream,
    subjectPrefix: o.subjectPrefix,
    ...(o.masterKeyFile ? { masterKeyFile: o.masterKeyFile } : {}),
    host: o.host,
    ...(o.port !== undefined ? { port: o.port } : {}),
    instanceId: o.instance,
    region: o.region,
    ...(o.edgeId ? { edgeId: o.edgeId } : {}),
    ...(o.healthPort !== undefined ? { healthPort: o.healthPort } : {}),
    ...(o.failClosedAfter !== undefined ? { failClosedAfterMs: o.failClosedAfter } : {}),
    logFile: o.logFile,
    ...(o.logLevel ? { logLevel: o.logLevel } : {}),
    logAllows: allowLogging(o.logAllows),
    ...(o.snapshotDir ? { snapshotDir: o.snapshotDir } : {}),
  });

  common(
    program.command("mqtt-edge").description("an MQTT edge alone, following a NATS JetStream event store"),
    1883,
    "mqtt-local",
  )
    .addOption(new Option("--tls-port <n>", "also listen for MQTT over TLS").argParser(port))
    .option("--tls-key <file>", "TLS private key (PEM)")
    .option("--tls-cert <file>", "TLS certificate (PEM)")
    .addOption(new Option("--ws-port <n>", "also listen for MQTT over WebSocket").argParser(port))
    .addOption(
      new Option("--refused-publish <what>", "what a refused PUBLISH does").choices(["drop", "disconnect"]),
    )
    .action(async (o) => {
      const { runMqttEdge } = await import("./edge.ts");
      setCode(
        await edgeUntilSignal(
          () =>
            runMqttEdge({
              ...base(o),
              ...(o.tlsPort !== undefined ? { tlsPort: o.tlsPort } : {}),
              ...(o.tlsKey ? { tlsKeyFile: o.tlsKey } : {}),
              ...(o.tlsCert ? { tlsCertFile: o.tlsCert } : {}),
              ...(o.wsPort !== undefined ? { wsPort: o.wsPort } : {}),
              ...(o.refusedPublish ? { refusedPublish: o.refusedPublish } : {}),
            }),
          io,
        ),
      );
    });

  common(
    program
      .command("amqp-edge")
      .description("an AMQP 0-9-1 edge alone, following a NATS JetStream event store"),
    5673,
    "amqp-local",
  )
    .option(
      "--upstream <url>",
      "the RabbitMQ to relay to (service credentials); a cluster: one URL per node, comma-separated",
      "amqp://guest:guest@127.0.0.1:5672",
    )
    .option("--upstream-ca <file>", "PEM CA file for an amqps:// upstream (default: the system's CAs)")
    .option("--account <id>", "the account owning this AMQP instance (other accounts are refused at login)")
    .addOption(new Option("--max-clock-skew <ms>", "largest password timestamp skew").argParser(Number))
    .action(async (o) => {
      const { runAmqpEdge } = await import("./edge.ts");
      setCode(
        await edgeUntilSignal(
          () =>
            runAmqpEdge({
              ...base(o),
              upstream: o.upstream,
              ...(o.upstreamCa ? { upstreamCa: o.upstreamCa } : {}),
              ...(o.account ? { accountId: o.account } : {}),
              ...(o.maxClockSkew !== undefined ? { maxClockSkewMs: o.maxClockSkew } : {}),
            }),
          io,
        ),
      );
    });
}

/** Build the command tree; `setCode` receives each action's exit code. */
export function buildProgram(io: CliIO, setCode: (c: number) => void): Command {
  const program = new Command("portcullis")
    .description("Portcullis: an event-sourced authorization gateway for MQTT and AMQP")
    .exitOverride()
    .configureOutput({ writeOut: (s) => io.out(s), writeErr: (s) => io.err(s) });

  const policy = program.command("policy").description("validate and evaluate RAM policies");
  policy
    .command("validate")
    .description(
      "check a policy document; exit 0 if valid (warnings on stderr), 1 with each error and its JSON path",
    )
    .argument("<file>", "policy document (JSON)")
    .addOption(new Option("--max-document-chars <n>", "document size limit").argParser(Number))
    .action((file: string, o: { maxDocumentChars?: number }) =>
      setCode(validateCommand(file, io, o.maxDocumentChars ? { maxDocumentChars: o.maxDocumentChars } : {})),
    );
  policy
    .command("eval")
    .description("print the decision object (JSON) for one request; exit 0 for any decision")
    .requiredOption("--policy <p>", "policy file or system policy name (repeatable)", collect)
    .requiredOption("--action <action>", "e.g. mq:PUB")
    .requiredOption("--resource <arn>", "e.g. acs:mq:local:1234567890123456:topic/mqtt-local/a/b")
    .option("--account <id>", "the caller's account id (default: the account in the ARN)")
    .option("--context <key=value>", "context key (repeatable; split on the first `=`)", collect)
    .option("--principal <name>", "RAM user name shown in messages", "cli")
    .option("--root", "evaluate as the account itself (root)")
    .option("--amqp-instance <id>", "AMQP instance for `/instances/<id>` resources", "amqp-local")
    .action((o) => setCode(evalCommand(o, io)));
  policy
    .command("system")
    .description("list the system policies")
    .option("--json", "print documents as JSON")
    .action((o: { json?: boolean }) => {
      if (o.json) io.out(JSON.stringify([...SYSTEM_POLICIES.values()], null, 2));
      else for (const p of SYSTEM_POLICIES.values()) io.out(`${p.name.padEnd(26)} ${p.description}`);
      setCode(0);
    });

  program
    .command("serve")
    .description("the all-in-one gateway: SQLite store, admin API, MQTT and AMQP edges")
    .option("--data-dir <dir>", "data directory", "./.data")
    .addOption(
      new Option("--admin-port <n>", "admin API port (default 8181, or the next free one)").argParser(port),
    )
    .option(
      "--admin-tls-key <file>",
      "serve the admin API over HTTPS with this PEM key (with --admin-tls-cert)",
    )
    .option("--admin-tls-cert <file>", "… and this PEM certificate (chain)")
    .addOption(
      new Option("--mqtt-port <n>", "MQTT port (default 1883, or the next free one)").argParser(port),
    )
    .addOption(
      new Option("--amqp-port <n>", "AMQP port (default 5673, or the next free one)").argParser(port),
    )
    .option(
      "--amqp-upstream <url>",
      "the RabbitMQ the AMQP edge relays to; a cluster: one URL per node, comma-separated",
      "amqp://guest:guest@127.0.0.1:5672",
    )
    .option("--amqp-upstream-ca <file>", "PEM CA file for an amqps:// upstream (default: the system's CAs)")
    .option("--host <host>", "listen address", "127.0.0.1")
    .option("--region <region>", "region in ARNs", "local")
    .option("--mqtt-instance <id>", "MQTT instance id", "mqtt-local")
    .option("--amqp-instance <id>", "AMQP instance id", "amqp-local")
    .option("--log-file <file>", "JSON log file (`-` for stderr; default <data-dir>/portcullis.log)")
    .option("--log-level <level>", "pino level (default info)")
    .option("--demo", "seed a demo account and print ready-to-paste client commands")
    .addOption(
      new Option("--store <kind>", "event store: sqlite in the data dir, or NATS JetStream (distributed)")
        .choices(["sqlite", "jetstream"])
        .default("sqlite"),
    )
    .option("--nats <url>", "NATS URL(s) of the JetStream store, comma-separated (with --store jetstream)")
    .option("--no-mqtt", "do not run the MQTT edge in this process")
    .option("--no-amqp", "do not run the AMQP edge in this process")
    .addOption(
      new Option("--snapshot-every <n>", "snapshot the projection every N events (start-up and audit)")
        .argParser((v: string) => {
          const n = Number(v);
          if (!Number.isSafeInteger(n) || n <= 0)
            throw new CliUsageError(`--snapshot-every: not a positive integer: \`${v}\``);
          return n;
        })
        .default(25_000),
    )
    .option(
      "--log-allows <what>",
      "allows kept in the decision log besides every denial: none, all, or a sample rate (0.01, 1%)",
      "none",
    )
    .action(async (o) => {
      setCode(
        await serveUntilSignal(
          {
            dataDir: o.dataDir,
            host: o.host,
            region: o.region,
            mqttInstanceId: o.mqttInstance,
            amqpInstanceId: o.amqpInstance,
            amqpUpstream: o.amqpUpstream,
            ...(o.amqpUpstreamCa ? { amqpUpstreamCa: o.amqpUpstreamCa } : {}),
            ...(o.adminPort !== undefined ? { adminPort: o.adminPort } : {}),
            ...adminTls(o.adminTlsKey, o.adminTlsCert),
            ...(o.mqttPort !== undefined ? { mqttPort: o.mqttPort } : {}),
            ...(o.amqpPort !== undefined ? { amqpPort: o.amqpPort } : {}),
            ...(o.logFile ? { logFile: o.logFile } : {}),
            ...(o.logLevel ? { logLevel: o.logLevel } : {}),
            demo: o.demo === true,
            store: o.store,
            ...(o.nats ? { nats: o.nats } : {}),
            mqtt: o.mqtt !== false,
            amqp: o.amqp !== false,
            logAllows: allowLogging(o.logAllows),
            snapshotEvery: o.snapshotEvery,
          },
          io,
        ),
      );
    });

  addAdminCommands(program, io, setCode);
  addEdgeCommands(program, io, setCode);
  registerAuditCommands(program, io, setCode);

  const sig = program
    .command("signature")
    .description("compute client credentials for the edges (SPEC §4.1, §4.2)");
  const keyOpts = (c: Command) =>
    c
      .option("--access-key-id <id>")
      .option("--access-key-secret <secret>")
      .option("--credentials <file>", "root-credentials.json or demo-credentials.json")
      .option("--user <name>", "with a demo-credentials.json: the user whose key to use")
      .option("--json");
  keyOpts(sig.command("mqtt").description("username and password for a client id"))
    .requiredOption("--client-id <id>", "`<GroupID>@@@<DeviceID>`")
    .option("--instance <id>", "MQTT instance", "mqtt-local")
    .action(async (o) => {
      const { mqttPassword, mqttUsername } = await import("./signatures.ts");
      const k = signatureKey(o);
      const r = {
        username: mqttUsername(k.id, o.instance),
        password: mqttPassword(k.secret, o.clientId),
        clientId: o.clientId,
      };
      io.out(o.json ? JSON.stringify(r) : `username: ${r.username}\npassword: ${r.password}`);
      setCode(0);
    });
  keyOpts(sig.command("amqp").description("username and (timestamped) password"))
    .option("--instance <id>", "AMQP instance", "amqp-local")
    .action(async (o) => {
      const { amqpClientPassword, amqpClientUsername } = await import("./signatures.ts");
      const k = signatureKey(o);
      const r = { username: amqpClientUsername(o.instance, k.id), password: amqpClientPassword(k.secret) };
      io.out(o.json ? JSON.stringify(r) : `username: ${r.username}\npassword: ${r.password}`);
      setCode(0);
    });
  return program;
}

/** Run the CLI with `argv` (without node and script); returns the exit code. */
export async function main(argv: readonly string[], io: CliIO = processIO): Promise<number> {
  let code = 0;
  const program = buildProgram(io, (c) => {
    code = c;
  });
  try {
    await program.parseAsync([...argv], { from: "user" });
    return code;
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode === 0 ? 0 : 2;
    if (e instanceof CliUsageError) {
      io.err(`portcullis: ${e.message}`);
      return 2;
    }
    io.err(`portcullis: unexpected error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
    return 70;
  }
}
