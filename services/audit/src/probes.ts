/**
 * Probes: the requests `diff` asks about. A principal's permission set at a
 * position, over a probe set Q, is { q ∈ Q : explain(principal, q) = Allow };
 * `diff` compares it at two positions. Callers may pass Q; otherwise
 * {@link namedProbes} derives it from the account's state at both positions:
 *
 * - every statement (Allow or Deny) with `Action` and `Resource` (not the Not
 *   forms) of the default version of every custom policy, and every system
 *   policy, attached to a user or group of the account: each literal
 *   resource (region `*` read as the gateway region; any other wildcard, or
 *   another account, skips the resource) × each action (a literal action as
 *   written; a wildcard action expands to the known actions of its service that
 *   make sense on that kind of resource, e.g. `mq:*` on a topic → `mq:PUB`,
 *   `mq:SUB`);
 * - every console grant: `mq:PUB`/`mq:SUB` on its topic, `mq:MqttInstanceAccess`
 *   on its instance;
 * - every MQTT parent topic (`mq:PUB`, `mq:SUB`) and its instance
 *   (`mq:MqttInstanceAccess`);
 *
 * with no context. Permissions named only by wildcard resources are not probed
 * by default: pass probes to ask about them.
 */
import {
  compileWildcard,
  getSystemPolicy,
  KNOWN_ACTIONS,
  mqInstanceArn,
  mqTopicArn,
  type PolicyDocument,
  parseArn,
  type RequestContext,
} from "@portcullis/policy";
import type { Account } from "@portcullis/projection";

/** One request `diff` asks about. */
export interface Probe {
  action: string;
  resource: string;
  context?: RequestContext;
}

/** A stable key of a probe (actions are case-insensitive). */
export function probeKey(p: Probe): string {
  return `${p.action.toLowerCase()}\u0000${p.resource}\u0000${p.context ? JSON.stringify(p.context) : ""}`;
}

/** Actions that make sense on each kind of resource, for expanding wildcard actions. */
const DATA_PLANE: Record<string, Record<string, readonly string[]>> = {
  mq: { instance: ["MqttInstanceAccess"], topic: ["PUB", "SUB"], group: [] },
  amqp: {
    vhost: ["GetVhost"],
    exchange: ["CreateExchange", "GetExchange", "DeleteExchange"],
    queue: ["CreateQueue", "GetQueue", "DeleteQueue"],
    "exchange-messages": ["BasicPublish"],
    "queue-messages": [
      "BasicConsume",
      "BasicGet",
      "QueuePurge",
      "BasicAck",
      "BasicNack",
      "BasicReject",
      "BasicCancel",
    ],
  },
};

function resourceKind(service: string, relative: string): string | undefined {
  if (service === "mq") return relative.split("/", 1)[0];
  if (service === "amqp") {
    const parts = relative.split("/");
    // /vhosts/<v>[/exchanges/<e>[/messages/<rk>]|/queues/<q>[/messages/*]]
    if (parts[1] !== "vhosts") return undefined;
    if (parts.length === 3) return "vhost";
    if (parts[3] === "exchanges") return parts.length === 5 ? "exchange" : "exchange-messages";
    if (parts[3] === "queues") return parts.length === 5 ? "queue" : "queue-messages";
  }
  return undefined;
}

function expandAction(pattern: string, service: string, relative: string): string[] {
  if (!pattern.includes("*") && !pattern.includes("?")) return [pattern];
  const kind = resourceKind(service, relative);
  const names =
    (kind !== undefined ? DATA_PLANE[service]?.[kind] : undefined) ?? KNOWN_ACTIONS[service] ?? [];
  const m = compileWildcard(pattern.toLowerCase());
  return names.map((n) => `${service}:${n}`).filter((a) => m(a.toLowerCase()));
}

/** Literal request resources of a statement resource pattern (see the module comment). */
function literalResource(pattern: string, accountId: string, region: string): string | undefined {
  const arn = parseArn(pattern);
  if (!arn || arn.accountId !== accountId) return undefined;
  const reg = arn.region === "*" ? region : arn.region;
  if (/[*?]/.test(arn.service) || /[*?]/.test(reg)) return undefined;
  // `messages/*` of a queue is the literal request form (SPEC §4.2); any other wildcard is a pattern.
  const rel = arn.relative.endsWith("/messages/*") ? arn.relative.slice(0, -1) : arn.relative;
  if (/[*?]/.test(rel)) return undefined;
  if (resourceKind(arn.service, arn.relative) === undefined && arn.service !== "ram") return undefined;
  return `acs:${arn.service}:${reg}:${accountId}:${arn.relative}`;
}

/** Add the probes one document names. */
function documentProbes(
  doc: PolicyDocument,
  accountId: string,
  region: string,
  out: Map<string, Probe>,
): void {
  for (const st of doc.Statement) {
    if (!st.Action || !st.Resource) continue;
    for (const r of st.Resource) {
      const resource = literalResource(r, accountId, region);
      if (resource === undefined) continue;
      const arn = parseArn(resource)!;
      for (const a of st.Action) {
        for (const action of expandAction(a, arn.service, arn.relative)) {
          const p = { action, resource };
          const k = probeKey(p);
          if (!out.has(k)) out.set(k, p);
        }
      }
    }
  }
}

/** The named probes of an account (see the module comment), added to `out`. */
export function namedProbes(
  a: Account,
  region: string,
  out: Map<string, Probe> = new Map(),
): Map<string, Probe> {
  const add = (action: string, resource: string) => {
    const p = { action, resource };
    const k = probeKey(p);
    if (!out.has(k)) out.set(k, p);
  };
  const refs = new Set<string>();
  for (const u of a.users.values()) for (const r of u.policies) refs.add(r);
  for (const g of a.groups.values()) for (const r of g.policies) refs.add(r);
  const scope = { region, accountId: a.accountId };
  for (const ref of [...refs].sort()) {
    const [type, name] = ref.split(":", 2) as ["System" | "Custom", string];
    if (type === "System") {
      const sys = getSystemPolicy(name);
      if (sys) documentProbes(sys.document as PolicyDocument, a.accountId, region, out);
    } else {
      const p = a.policies.get(name);
      const v = p?.versions.get(p.defaultVersion);
      if (v) documentProbes(v.document, a.accountId, region, out);
    }
  }
  for (const u of a.users.values()) {
    for (const k of u.consoleGrants.keys()) {
      const [instanceId, topic] = k.split("\u0000") as [string, string];
      add("mq:PUB", mqTopicArn(scope, instanceId, topic));
      add("mq:SUB", mqTopicArn(scope, instanceId, topic));
      add("mq:MqttInstanceAccess", mqInstanceArn(scope, instanceId));
    }
  }
  for (const [instanceId, topics] of a.topics) {
    if (topics.size > 0) add("mq:MqttInstanceAccess", mqInstanceArn(scope, instanceId));
    for (const t of topics) {
      add("mq:PUB", mqTopicArn(scope, instanceId, t));
      add("mq:SUB", mqTopicArn(scope, instanceId, t));
    }
  }
  return out;
}
