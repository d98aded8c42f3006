/**
 * `portcullis audit <state|explain|who-can|diff|history|verify>` — the audit
 * queries of SPEC §8 from the shell.
 *
 * Where: `--data-dir DIR` reads the gateway's data dir directly (events.db,
 * decisions.db; snapshots kept in audit-snapshots.db); otherwise the admin API,
 * with the same endpoint and credentials as `portcullis admin`
 * (`resolveCredentials` of admin-commands.ts: `--credentials FILE`, the
 * environment PORTCULLIS_ENDPOINT / PORTCULLIS_ACCESS_KEY_ID /
 * PORTCULLIS_ACCESS_KEY_SECRET, or ./.data/root-credentials.json), authorized
 * by the RAM actions `audit:*` (services/audit/src/http.ts).
 *
 * `--at`/`--from`/`--to`: a position (as returned by writes) or an ISO 8601
 * time; default now (`--from`: the beginning). `--principal`: a RAM user name of
 * the account, `root`, or `id:<userId>`. `--account` (data dir only) picks the
 * account when the store holds several. Output: tables; `--json` for machines
 * (`explain --json` prints the decision object).
 *
 * Exit codes: 0 done; 1 `verify` found mismatches, or something asked about
 * does not exist, or the server refused; 2 usage errors.
 */
import { AdminApiError, AdminClient } from "@portcullis/admin-api";
import {
  type Auditor,
  AuditQueryError,
  type DiffResult,
  type ExplainResult,
  type HistoryResult,
  openAuditDataDir,
  type PrincipalView,
  type Probe,
  type StateView,
  timeOfAt,
  type VerifyResult,
  type WhoCanResult,
} from "@portcullis/audit";
import { type DecidingStatement, explainDecision, type RequestContext } from "@portcullis/policy";
import { type Command, Option } from "commander";
import { resolveCredentials } from "./admin-commands.ts";
import { type CliIO, CliUsageError } from "./io.ts";
import { parseContext } from "./policy-commands.ts";

const collect = (v: string, prev: string[] = []) => [...prev, v];

/** Options every audit command takes. */
interface CommonOptions {
  dataDir?: string;
  account?: string;
  credentials?: string;
  endpoint?: string;
  json?: boolean;
  region?: string;
  amqpInstance?: string;
  consoleGrants?: "deny-wins" | "union";
}

/** The queries, over a data dir or the admin API. */
interface Backend {
  state(at: string | undefined): Promise<StateView>;
  explain(q: {
    principal: string;
    action: string;
    resource: string;
    context: RequestContext;
    at?: string;
  }): Promise<ExplainResult>;
  whoCan(q: {
    action: string;
    resource: string;
    context: RequestContext;
    at?: string;
  }): Promise<WhoCanResult>;
  diff(q: { from?: string; to?: string; principal?: string; probes?: Probe[] }): Promise<DiffResult>;
  history(q: { principal: string; from?: string; to?: string }): Promise<HistoryResult>;
  verify(q: { from?: string; to?: string }): Promise<VerifyResult>;
  close(): Promise<void>;
}

/** A clean failure (exit 1) with a message. */
class AuditFailure extends Error {}

function withCurrentTime(ctx: RequestContext, time: string): RequestContext {
  if (Object.keys(ctx).some((k) => k.toLowerCase() === "acs:currenttime")) return ctx;
  return { ...ctx, "acs:CurrentTime": time };
}

async function localBackend(o: CommonOptions, io: CliIO): Promise<Backend> {
  const dir = await openAuditDataDir(o.dataDir!, {
    projection: {
      ...(o.amqpInstance ? { amqpInstanceId: o.amqpInstance } : {}),
      ...(o.consoleGrants ? { consoleGrants: o.consoleGrants } : {}),
    },
    ...(o.region ? { region: o.region } : {}),
  });
  if (dir.snapshotWarning) io.err(`portcullis: ${dir.snapshotWarning}`);
  const auditor: Auditor = dir.auditor;
  /** The account: --account, else the only account at that point of the log. */
  const account = async (at: string | undefined): Promise<string> => {
    if (o.account) {
      if (!/^\d{16}$/.test(o.account))
        throw new CliUsageError(`--account \`${o.account}\` is not a 16-digit account id`);
      return o.account;
    }
    const all = await auditor.accounts(at);
    if (all.length === 1) return all[0]!;
    if (all.length === 0) throw new AuditFailure("the log holds no account yet");
    throw new CliUsageError(`the log holds several accounts (${all.join(", ")}): pass --account`);
  };
  return {
    async state(at) {
      return auditor.state({ at, accountId: await account(at) });
    },
    async explain(q) {
      const ctx = withCurrentTime(q.context, await timeOfAt(auditor, q.at));
      return auditor.explain({ ...q, context: ctx, ...(o.account ? { accountId: o.account } : {}) });
    },
    async whoCan(q) {
      const ctx = withCurrentTime(q.context, await timeOfAt(auditor, q.at));
      return auditor.whoCan({ ...q, context: ctx, ...(o.account ? { accountId: o.account } : {}) });
    },
    async diff(q) {
      return auditor.diff({ ...q, accountId: await account(q.to) });
    },
    async history(q) {
      return auditor.history({ ...q, accountId: await account(q.to) });
    },
    async verify(q) {
      if (!dir.decisions) throw new AuditFailure(`no decision log in \`${o.dataDir}\` (decisions.db)`);
      return auditor.verify(dir.decisions, { ...q, ...(o.account ? { accountId: o.account } : {}) });
    },
    close: () => dir.close(),
  };
}

function remoteBackend(o: CommonOptions): Backend {
  if (o.account)
    throw new CliUsageError("--account is for --data-dir; the admin API answers for your account");
  const client = new AdminClient(resolveCredentials(o));
  const call = async <T>(
    method: string,
    path: string,
    x: { query?: Record<string, string | undefined>; body?: unknown },
  ) => {
    try {
      return await client.request<T>(method, path, x);
    } catch (e) {
      if (e instanceof AdminApiError) {
        if (e.status === 400) throw new CliUsageError(e.message);
        throw new AuditFailure(`${e.status} ${e.code}: ${e.message}`);
      }
      throw new AuditFailure(`cannot reach the admin API at ${client.endpoint}: ${(e as Error).message}`);
    }
  };
  const at = (v: string | undefined) => (v === undefined ? undefined : /^\d+$/.test(v) ? Number(v) : v);
  return {
    state: (a) => call("GET", "/v1/audit/state", { query: { at: a } }),
    explain: (q) => call("POST", "/v1/audit/explain", { body: { ...q, at: at(q.at) } }),
    whoCan: (q) => call("POST", "/v1/audit/who-can", { body: { ...q, at: at(q.at) } }),
    diff: (q) => call("POST", "/v1/audit/diff", { body: { ...q, from: at(q.from), to: at(q.to) } }),
    history: (q) => call("GET", "/v1/audit/history", { query: q }),
    verify: (q) => call("POST", "/v1/audit/verify", { body: q }),
    close: async () => {},
  };
}

// ---------------------------------------------------------------------------
// Output

/** A plain-text table: columns padded to their widest cell. */
function table(head: string[], rows: string[][]): string {
  if (rows.length === 0) return "  (none)";
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (r: string[]) =>
    `  ${r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(w[i]!))).join("  ")}`.trimEnd();
  return [line(head), line(w.map((n) => "-".repeat(n))), ...rows.map(line)].join("\n");
}

const statements = (s: readonly DecidingStatement[]) =>
  s
    .map(
      (x) =>
        `${x.policyType} ${x.policy} ${x.version} Statement[${x.statement}]${x.sid ? ` (${x.sid})` : ""}`,
    )
    .join("; ");
const who = (p: PrincipalView) =>
  p.kind === "root" ? `root (account ${p.accountId})` : `${p.userName ?? "(deleted)"} (id ${p.userId})`;
const point = (p: { position: number; time?: string }) =>
  `position ${p.position}${p.time ? ` (${p.time})` : ""}`;

function printState(v: StateView, io: CliIO): void {
  io.out(`state at ${point(v)}`);
  for (const a of v.accounts) {
    io.out(`\naccount ${a.accountId} (${a.alias})`);
    io.out("\nusers");
    io.out(
      table(
        ["name", "id", "status", "groups", "policies", "access keys", "console grants"],
        a.users.map((u) => [
          u.userName,
          u.userId,
          u.disabled ? "disabled" : "enabled",
          u.groups.join(", "),
          u.policies.map((p) => `${p.policyType}:${p.policyName}`).join(", "),
          u.accessKeys.map((k) => `${k.accessKeyId} ${k.status}`).join(", "),
          u.consoleGrants.map((g) => `${g.instanceId}/${g.topic} ${g.perms.join("+")}`).join(", "),
        ]),
      ),
    );
    io.out("\ngroups");
    io.out(
      table(
        ["name", "members", "policies"],
        a.groups.map((g) => [
          g.groupName,
          g.members.join(", "),
          g.policies.map((p) => `${p.policyType}:${p.policyName}`).join(", "),
        ]),
      ),
    );
    io.out("\ncustom policies");
    io.out(
      table(
        ["name", "default", "versions"],
        a.policies.map((p) => [
          p.policyName,
          p.defaultVersion,
          p.versions.map((x) => x.versionId).join(", "),
        ]),
      ),
    );
    io.out("\nattachments");
    io.out(
      table(
        ["policy", "target"],
        a.attachments.map((x) => [
          `${x.policyType}:${x.policyName}${x.policyExists ? "" : " (does not exist)"}`,
          x.target.kind === "user" ? `user ${x.target.userName}` : `group ${x.target.groupName}`,
        ]),
      ),
    );
    io.out("\nroot access keys");
    io.out(
      table(
        ["id", "status", "created"],
        a.rootAccessKeys.map((k) => [k.accessKeyId, k.status, k.createdAt]),
      ),
    );
    io.out("\nMQTT topics");
    io.out(
      table(
        ["instance", "parent topics"],
        a.topics.map((t) => [t.instanceId, t.topics.join(", ")]),
      ),
    );
    io.out("\nMQTT Group IDs");
    io.out(
      table(
        ["instance", "group id", "owner"],
        a.groupIds.map((g) => [g.instanceId, g.groupId, g.owner]),
      ),
    );
  }
}

function printExplain(r: ExplainResult, io: CliIO): void {
  io.out(`${who(r.principal)} at ${point(r)}`);
  io.out(`${r.decision.decision}: ${explainDecision(r.decision)}`);
  if (r.decision.missingContextKeys.length > 0)
    io.out(`missing context keys: ${r.decision.missingContextKeys.join(", ")}`);
}

function printWhoCan(r: WhoCanResult, io: CliIO): void {
  io.out(`who can \`${r.action}\` on \`${r.resource}\` at ${point(r)}`);
  io.out("the root of the resource's account is always allowed on its own resources");
  io.out(
    table(
      ["principal", "allowed by"],
      r.allowed.map((a) => [
        who(a.principal),
        a.reason === "root" ? "(the account itself)" : statements(a.decidingStatements),
      ]),
    ),
  );
  io.out(`${r.allowed.filter((a) => a.principal.kind === "user").length} of ${r.examined} users allowed`);
}

function printDiff(r: DiffResult, io: CliIO): void {
  io.out(`permissions from ${point(r.from)} to ${point(r.to)}, account ${r.accountId}`);
  io.out(
    `${r.probes.length} ${r.probeSource === "given" ? "given" : "named (from the policies, grants and topics)"} requests compared`,
  );
  if (r.principals.length === 0) io.out("no permission gained or lost");
  for (const p of r.principals) {
    io.out(`\n${who(p.principal)}`);
    for (const [sign, list] of [
      ["+", p.gained],
      ["-", p.lost],
    ] as const) {
      for (const c of list) {
        io.out(
          `  ${sign} ${c.action} ${c.resource}  (${c.before} → ${c.after}${c.allowedBy.length ? `; ${statements(c.allowedBy)}` : ""})`,
        );
        for (const e of c.causes)
          io.out(
            `      after #${e.position} ${e.type} by ${e.actor} at ${e.occurredAt}${e.reason ? ` — ${e.reason}` : ""}`,
          );
      }
    }
  }
}

function summary(data: unknown): string {
  const s = JSON.stringify(data);
  return s.length > 100 ? `${s.slice(0, 97)}...` : s;
}

function printHistory(r: HistoryResult, io: CliIO): void {
  io.out(`history of ${who(r.principal)} from ${point(r.from)} to ${point(r.to)}`);
  io.out(
    table(
      ["position", "time", "event", "actor", "reason", "data"],
      r.events.map((e) => [
        String(e.position),
        e.occurredAt,
        e.type,
        e.actor,
        e.reason ?? "",
        summary(e.data),
      ]),
    ),
  );
}

function printVerify(r: VerifyResult, io: CliIO): void {
  io.out(
    `checked ${r.checked} logged decisions: ${r.mismatchCount} mismatch${r.mismatchCount === 1 ? "" : "es"}`,
  );
  if (r.mismatchCount === 0) return;
  io.out(
    table(
      ["record", "time", "edge", "principal", "action", "resource", "position", "problem"],
      r.mismatches.map((m) => [
        m.id,
        m.record.time,
        m.record.edgeId,
        m.record.principal,
        m.record.action,
        m.record.resource,
        String(m.record.position),
        m.problem,
      ]),
    ),
  );
  if (r.mismatches.length < r.mismatchCount)
    io.out(`(${r.mismatchCount - r.mismatches.length} more not shown)`);
}

// ---------------------------------------------------------------------------
// Commands

function parseProbes(pairs: readonly string[]): Probe[] {
  return pairs.map((p) => {
    const eq = p.indexOf("=");
    if (eq <= 0 || eq === p.length - 1)
      throw new CliUsageError(`bad --probe \`${p}\`: expected ACTION=RESOURCE`);
    return { action: p.slice(0, eq), resource: p.slice(eq + 1) };
  });
}

/** Add `portcullis audit …` to the program; `setCode` receives each action's exit code. */
export function registerAuditCommands(program: Command, io: CliIO, setCode: (c: number) => void): void {
  const audit = program
    .command("audit")
    .description("time-travel queries over the event log and the decision log (SPEC §8)");

  const common = (c: Command) =>
    c
      .option("--data-dir <dir>", "read the gateway's data dir instead of calling the admin API")
      .option("--account <id>", "account to answer for (data dir with several accounts)")
      .option("--credentials <file>", "admin API credentials (JSON: endpoint, accessKeyId, accessKeySecret)")
      .option("--endpoint <url>", "admin API endpoint (default $PORTCULLIS_ENDPOINT)")
      .option("--region <region>", "ARN region of the gateway (data dir)", "local")
      .option("--amqp-instance <id>", "AMQP instance of the gateway (data dir)", "amqp-local")
      .addOption(
        new Option("--console-grants <mode>", "console grant mode of the gateway (data dir)").choices([
          "deny-wins",
          "union",
        ]),
      )
      .option("--json", "print JSON");

  const run =
    <O extends CommonOptions>(f: (b: Backend, o: O) => Promise<number>) =>
    async (o: O) => {
      const backend = o.dataDir ? await localBackend(o, io).catch(rethrow) : remoteBackend(o);
      try {
        setCode(await f(backend, o));
      } catch (e) {
        rethrow(e);
      } finally {
        await backend.close();
      }
    };
  const rethrow = (e: unknown): never => {
    if (e instanceof AuditQueryError) {
      if (e.kind === "invalid") throw new CliUsageError(e.message);
      throw new AuditFailure(e.message);
    }
    throw e;
  };
  const print = <T>(o: CommonOptions, v: T, human: (v: T, io: CliIO) => void) => {
    if (o.json) io.out(JSON.stringify(v, null, 2));
    else human(v, io);
  };

  common(audit.command("state"))
    .description("the whole projected state as of a position or time (keys without secrets)")
    .option("--at <position|time>", "position or ISO time (default now)")
    .action(
      wrap(
        setCode,
        io,
        run<CommonOptions & { at?: string }>(async (b, o) => {
          print(o, await b.state(o.at), printState);
          return 0;
        }),
      ),
    );

  common(audit.command("explain"))
    .description("the decision object for one request as of a position or time")
    .requiredOption("--principal <name>", "RAM user name, `root` or `id:<userId>`")
    .requiredOption("--action <action>", "e.g. mq:PUB")
    .requiredOption("--resource <arn>", "e.g. acs:mq:local:<acct>:topic/mqtt-local/a/b")
    .option(
      "--context <key=value>",
      "context key (repeatable; acs:CurrentTime defaults to the time asked about)",
      collect,
    )
    .option("--at <position|time>", "position or ISO time (default now)")
    .action(
      wrap(
        setCode,
        io,
        run<
          CommonOptions & {
            principal: string;
            action: string;
            resource: string;
            context?: string[];
            at?: string;
          }
        >(async (b, o) => {
          const r = await b.explain({
            principal: o.principal,
            action: o.action,
            resource: o.resource,
            context: parseContext(o.context ?? []),
            ...(o.at !== undefined ? { at: o.at } : {}),
          });
          if (o.json) io.out(JSON.stringify(r.decision, null, 2));
          else printExplain(r, io);
          return 0;
        }),
      ),
    );

  common(audit.command("who-can"))
    .description(
      "every principal allowed a request as of a position or time, with the statement that allows it",
    )
    .requiredOption("--action <action>", "e.g. mq:SUB")
    .requiredOption("--resource <arn>", "the resource")
    .option("--context <key=value>", "context key (repeatable)", collect)
    .option("--at <position|time>", "position or ISO time (default now)")
    .action(
      wrap(
        setCode,
        io,
        run<CommonOptions & { action: string; resource: string; context?: string[]; at?: string }>(
          async (b, o) => {
            const r = await b.whoCan({
              action: o.action,
              resource: o.resource,
              context: parseContext(o.context ?? []),
              ...(o.at !== undefined ? { at: o.at } : {}),
            });
            print(o, r, printWhoCan);
            return 0;
          },
        ),
      ),
    );

  common(audit.command("diff"))
    .description(
      "permissions gained and lost per principal between two points, with the events that caused them; a permission is an allowed request among the probes (--probe, or by default the requests the policies, grants and topics name)",
    )
    .option("--from <position|time>", "start (default: the beginning)")
    .option("--to <position|time>", "end (default now)")
    .option("--principal <name>", "only this principal")
    .option("--probe <action=resource>", "a request to compare (repeatable)", collect)
    .action(
      wrap(
        setCode,
        io,
        run<CommonOptions & { from?: string; to?: string; principal?: string; probe?: string[] }>(
          async (b, o) => {
            const probes = parseProbes(o.probe ?? []);
            const r = await b.diff({
              ...(o.from !== undefined ? { from: o.from } : {}),
              ...(o.to !== undefined ? { to: o.to } : {}),
              ...(o.principal !== undefined ? { principal: o.principal } : {}),
              ...(probes.length > 0 ? { probes } : {}),
            });
            print(o, r, printDiff);
            return 0;
          },
        ),
      ),
    );

  common(audit.command("history"))
    .description("the events that touched a principal's permissions, in order, with actor and reason")
    .requiredOption("--principal <name>", "RAM user name, `root` or `id:<userId>`")
    .option("--from <position|time>", "start (default: the beginning)")
    .option("--to <position|time>", "end (default now)")
    .action(
      wrap(
        setCode,
        io,
        run<CommonOptions & { principal: string; from?: string; to?: string }>(async (b, o) => {
          const r = await b.history({
            principal: o.principal,
            ...(o.from !== undefined ? { from: o.from } : {}),
            ...(o.to !== undefined ? { to: o.to } : {}),
          });
          print(o, r, printHistory);
          return 0;
        }),
      ),
    );

  common(audit.command("verify"))
    .description("re-decide every logged decision at its recorded position; exit 1 on any mismatch")
    .option("--from <time>", "decisions at or after this ISO time")
    .option("--to <time>", "decisions at or before this ISO time")
    .action(
      wrap(
        setCode,
        io,
        run<CommonOptions & { from?: string; to?: string }>(async (b, o) => {
          const r = await b.verify({
            ...(o.from !== undefined ? { from: o.from } : {}),
            ...(o.to !== undefined ? { to: o.to } : {}),
          });
          print(o, r, printVerify);
          return r.mismatchCount === 0 ? 0 : 1;
        }),
      ),
    );
}

/** Report AuditFailure as one line with exit code 1; everything else goes to main's handler. */
function wrap<O>(setCode: (c: number) => void, io: CliIO, f: (o: O) => Promise<void>) {
  return async (o: O) => {
    try {
      await f(o);
    } catch (e) {
      if (e instanceof AuditFailure) {
        io.err(`portcullis: ${e.message}`);
        setCode(1);
        return;
      }
      throw e;
    }
  };
}
