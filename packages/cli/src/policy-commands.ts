/**
 * `portcullis policy validate FILE` and `portcullis policy eval …` — the policy
 * engine from the shell (an external contract: keep names and exit codes).
 */
import { readFileSync } from "node:fs";
import { basename, extname } from "node:path";
import {
  type CompiledPolicy,
  type ContextValue,
  compilePolicy,
  compileSystemPolicy,
  getSystemPolicy,
  type PolicyIssue,
  PolicySet,
  parseArn,
  parsePolicy,
} from "@portcullis/policy";
import { type CliIO, CliUsageError } from "./io.ts";

function readText(file: string): string {
  try {
    return readFileSync(file, "utf8");
  } catch (e) {
    throw new CliUsageError(`cannot read \`${file}\`: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
}

function formatIssue(source: string, kind: "error" | "warning", i: PolicyIssue): string {
  return `${source}: ${kind}: ${i.path}: ${i.message} [${i.code}]`;
}

/** `policy validate FILE`: 0 when valid (warnings on stderr), 1 with every error and its JSON path. */
export function validateCommand(file: string, io: CliIO, opts: { maxDocumentChars?: number } = {}): number {
  const r = parsePolicy(readText(file), opts);
  for (const w of r.warnings) io.err(formatIssue(file, "warning", w));
  if (!r.ok) {
    for (const e of r.errors) io.err(formatIssue(file, "error", e));
    io.err(`${file}: invalid policy (${r.errors.length} error${r.errors.length === 1 ? "" : "s"})`);
    return 1;
  }
  io.out(
    `${file}: valid policy (${r.document.Statement.length} statement${r.document.Statement.length === 1 ? "" : "s"})`,
  );
  return 0;
}

/** Options of `policy eval`. */
export interface EvalOptions {
  policy: string[];
  action: string;
  resource: string;
  account?: string;
  context?: string[];
  principal?: string;
  root?: boolean;
  amqpInstance?: string;
}

/** Parse repeated `KEY=VALUE` options (split on the first `=`); a repeated key becomes multi-valued. */
export function parseContext(pairs: readonly string[]): Record<string, ContextValue> {
  const ctx: Record<string, ContextValue> = {};
  for (const p of pairs) {
    const eq = p.indexOf("=");
    if (eq <= 0) throw new CliUsageError(`bad --context \`${p}\`: expected KEY=VALUE`);
    const k = p.slice(0, eq);
    const v = p.slice(eq + 1);
    const prev = ctx[k];
    ctx[k] = prev === undefined ? v : [...(Array.isArray(prev) ? prev : [prev as string]), v];
  }
  return ctx;
}

function loadPolicy(spec: string, io: CliIO, amqpInstanceId: string): CompiledPolicy {
  const opts = { amqpInstanceId };
  let text: string | undefined;
  try {
    text = readFileSync(spec, "utf8");
  } catch {
    const sys = getSystemPolicy(spec);
    if (sys) return compileSystemPolicy(sys.name, opts)!;
    throw new CliUsageError(`--policy \`${spec}\` is neither a readable file nor a system policy name`);
  }
  const r = parsePolicy(text);
  for (const w of r.warnings) io.err(formatIssue(spec, "warning", w));
  if (!r.ok) {
    for (const e of r.errors) io.err(formatIssue(spec, "error", e));
    throw new PolicyFileError(spec);
  }
  const name = basename(spec, extname(spec));
  return compilePolicy(r.document, { name, type: "Custom", version: "v1" }, opts);
}

class PolicyFileError extends Error {}

/**
 * Request ARNs may use the `/instances/<id>/vhosts/…` AMQP form; the engine's
 * canonical request form is `/vhosts/…` (SPEC §4.2).
 */
function canonicalRequestArn(resource: string): string {
  const arn = parseArn(resource);
  if (arn?.service !== "amqp" || !arn.relative.startsWith("/instances/")) return resource;
  const v = arn.relative.indexOf("/vhosts/", 11);
  return v < 0 ? resource : resource.slice(0, resource.length - arn.relative.length) + arn.relative.slice(v);
}

/** `policy eval`: prints the decision object as JSON; 0 for any decision, 1 for an invalid policy. */
export function evalCommand(o: EvalOptions, io: CliIO): number {
  const resource = canonicalRequestArn(o.resource);
  const arn = parseArn(resource);
  const accountId = o.account ?? arn?.accountId;
  if (!accountId) throw new CliUsageError(`--resource \`${o.resource}\` is not an ARN; pass --account`);
  const amqpInstanceId = o.amqpInstance ?? "amqp-local";
  let policies: CompiledPolicy[];
  try {
    policies = o.policy.map((p) => loadPolicy(p, io, amqpInstanceId));
  } catch (e) {
    if (e instanceof PolicyFileError) {
      io.err(`${e.message}: invalid policy; no decision made`);
      return 1;
    }
    throw e;
  }
  const context = parseContext(o.context ?? []);
  // RAM supplies acs:CurrentTime itself; so do we unless the caller fixes it.
  if (!Object.keys(context).some((k) => k.toLowerCase() === "acs:currenttime")) {
    context["acs:CurrentTime"] = new Date().toISOString();
  }
  const set = new PolicySet(
    o.root ? { accountId, kind: "root" } : { accountId, kind: "user", name: o.principal ?? "cli" },
    policies,
    { cacheSize: 0 },
  );
  const d = set.evaluate({ action: o.action, resource, context });
  io.out(JSON.stringify(d, null, 2));
  return 0;
}
