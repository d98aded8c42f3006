/**
 * The `portcullis` command. `main(argv)` returns the exit code; it never calls
 * process.exit, so it can run in-process in tests.
 */

import { SYSTEM_POLICIES } from "@portcullis/policy";
import { Command, CommanderError, Option } from "commander";
import { type CliIO, CliUsageError, processIO } from "./io.ts";
import { evalCommand, validateCommand } from "./policy-commands.ts";

const collect = (v: string, prev: string[] = []) => [...prev, v];

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
