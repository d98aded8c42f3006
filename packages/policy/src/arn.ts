/**
 * ARNs (SPEC §4): builders for the resources the edges ask about, parsers for
 * audit and explanations, and the compile-time normalisation of the legacy and
 * alternative forms that policies may use.
 *
 * Request ARNs are always in canonical form:
 *   MQTT  acs:mq:<region>:<acct>:instance/<instanceId>
 *         acs:mq:<region>:<acct>:topic/<instanceId>/<topic or filter>
 *         acs:mq:<region>:<acct>:group/<instanceId>/<GroupId>
 *   AMQP  acs:amqp:<region>:<acct>:/vhosts/<v>[/exchanges/<e>[/messages/<rk>]|/queues/<q>[/messages/*]]
 *   RAM   acs:ram:*:<acct>:user/<name> | group/<name> | policy/<name>
 * AMQP names are percent-encoded for `/` and `%` (RabbitMQ's default vhost `/` is `%2F`,
 * as in RabbitMQ's management API); routing keys are not encoded.
 */
import { wildcardResiduals } from "./wildcard.ts";

/** Region and account an ARN is built for. */
export interface ArnScope {
  /** Gateway region, default `local`. */
  region: string;
  /** 16-digit account id. */
  accountId: string;
}

/** The parts of an ARN `acs:<service>:<region>:<account>:<relative>`. */
export interface ParsedArn {
  service: string;
  region: string;
  accountId: string;
  relative: string;
}

/** The default AMQP exchange `""` is named `amq.default` in ARNs (SPEC §4.2). */
export const AMQP_DEFAULT_EXCHANGE = "amq.default";

/** Split an ARN into its five parts; undefined when it is not `acs:` + four colons. */
export function parseArn(arn: string): ParsedArn | undefined {
  if (!arn.startsWith("acs:")) return undefined;
  const c1 = arn.indexOf(":", 4);
  if (c1 < 0) return undefined;
  const c2 = arn.indexOf(":", c1 + 1);
  if (c2 < 0) return undefined;
  const c3 = arn.indexOf(":", c2 + 1);
  if (c3 < 0) return undefined;
  return {
    service: arn.slice(4, c1),
    region: arn.slice(c1 + 1, c2),
    accountId: arn.slice(c2 + 1, c3),
    relative: arn.slice(c3 + 1),
  };
}

/** The account id field of an ARN without allocating the other parts; undefined if malformed. */
export function arnAccountId(arn: string): string | undefined {
  if (!arn.startsWith("acs:")) return undefined;
  const c1 = arn.indexOf(":", 4);
  const c2 = c1 < 0 ? -1 : arn.indexOf(":", c1 + 1);
  const c3 = c2 < 0 ? -1 : arn.indexOf(":", c2 + 1);
  return c3 < 0 ? undefined : arn.slice(c2 + 1, c3);
}

/** Percent-encode `%` and `/` in an AMQP name so it stays one ARN path segment. */
export function encodeAmqpName(name: string): string {
  return name.replaceAll("%", "%25").replaceAll("/", "%2F");
}

/** Inverse of encodeAmqpName. */
export function decodeAmqpName(segment: string): string {
  return segment.replaceAll("%2F", "/").replaceAll("%2f", "/").replaceAll("%25", "%");
}

const base = (svc: string, s: ArnScope) => `acs:${svc}:${s.region}:${s.accountId}:`;

/** `acs:mq:<region>:<acct>:instance/<instanceId>` — resource of `mq:MqttInstanceAccess`. */
export function mqInstanceArn(s: ArnScope, instanceId: string): string {
  return `${base("mq", s)}instance/${instanceId}`;
}

/** `acs:mq:<region>:<acct>:topic/<instanceId>/<topic>` — resource of `mq:PUB`/`mq:SUB` (topic or filter). */
export function mqTopicArn(s: ArnScope, instanceId: string, topic: string): string {
  return `${base("mq", s)}topic/${instanceId}/${topic}`;
}

/** `acs:mq:<region>:<acct>:group/<instanceId>/<groupId>` — a Group ID. */
export function mqGroupIdArn(s: ArnScope, instanceId: string, groupId: string): string {
  return `${base("mq", s)}group/${instanceId}/${groupId}`;
}

/** `…:/vhosts/<v>` — resource of `amqp:GetVhost`. */
export function amqpVhostArn(s: ArnScope, vhost: string): string {
  return `${base("amqp", s)}/vhosts/${encodeAmqpName(vhost)}`;
}

/** `…:/vhosts/<v>/exchanges/<e>`; `""` becomes `amq.default`. */
export function amqpExchangeArn(s: ArnScope, vhost: string, exchange: string): string {
  return `${amqpVhostArn(s, vhost)}/exchanges/${encodeAmqpName(exchange === "" ? AMQP_DEFAULT_EXCHANGE : exchange)}`;
}

/** `…:/vhosts/<v>/queues/<q>`. */
export function amqpQueueArn(s: ArnScope, vhost: string, queue: string): string {
  return `${amqpVhostArn(s, vhost)}/queues/${encodeAmqpName(queue)}`;
}

/** `…:/vhosts/<v>/exchanges/<e>/messages/<routingKey>` — resource of `amqp:BasicPublish`. */
export function amqpExchangeMessagesArn(
  s: ArnScope,
  vhost: string,
  exchange: string,
  routingKey: string,
): string {
  return `${amqpExchangeArn(s, vhost, exchange)}/messages/${routingKey}`;
}

/** `…:/vhosts/<v>/queues/<q>/messages/*` — resource of consume/get/ack/nack/reject/cancel/purge. */
export function amqpQueueMessagesArn(s: ArnScope, vhost: string, queue: string): string {
  return `${amqpQueueArn(s, vhost, queue)}/messages/*`;
}

/** `…:/vhosts/<v>/queues/*` — resource of `amqp:BasicRecover` and of `amqp:CreateQueue` in the seed table. */
export function amqpAllQueuesArn(s: ArnScope, vhost: string): string {
  return `${amqpVhostArn(s, vhost)}/queues/*`;
}

/** `acs:ram:*:<acct>:<kind>/<name>` — RAM resources are global (region `*`, SPEC §4.3). */
export function ramArn(accountId: string, kind: "user" | "group" | "policy", name: string): string {
  return `acs:ram:*:${accountId}:${kind}/${name}`;
}

/** An MQTT resource relative id, parsed. */
export type MqResource =
  | { kind: "instance"; instanceId: string }
  | { kind: "topic"; instanceId: string; topic: string; parentTopic: string }
  | { kind: "group"; instanceId: string; groupId: string };

/** Parse the relative id of a canonical MQTT ARN. */
export function parseMqRelative(relative: string): MqResource | undefined {
  const slash = relative.indexOf("/");
  if (slash < 0) return undefined;
  const kind = relative.slice(0, slash);
  const rest = relative.slice(slash + 1);
  if (kind === "instance" && rest.length > 0) return { kind, instanceId: rest };
  const s2 = rest.indexOf("/");
  if (s2 <= 0 || s2 === rest.length - 1) return undefined;
  const instanceId = rest.slice(0, s2);
  const tail = rest.slice(s2 + 1);
  if (kind === "topic") return { kind, instanceId, topic: tail, parentTopic: tail.split("/")[0]! };
  if (kind === "group") return { kind, instanceId, groupId: tail };
  return undefined;
}

/** An AMQP resource relative id, parsed (names decoded). */
export interface AmqpResource {
  vhost: string;
  exchange?: string;
  queue?: string;
  /** Present for `…/messages/<x>`: the routing key (exchange) or `*` (queue). */
  messages?: string;
}

/** Parse the relative id of a canonical AMQP ARN (`/vhosts/…`, or the `/instances/<id>/vhosts/…` form). */
export function parseAmqpRelative(relative: string): AmqpResource | undefined {
  let rel = relative;
  if (rel.startsWith("/instances/")) {
    const v = rel.indexOf("/vhosts/", 11);
    if (v < 0) return undefined;
    rel = rel.slice(v);
  }
  if (!rel.startsWith("/vhosts/")) return undefined;
  const parts = rel.slice(8).split("/");
  const vhost = parts[0];
  if (vhost === undefined || vhost === "") return undefined;
  const out: AmqpResource = { vhost: decodeAmqpName(vhost) };
  if (parts.length === 1) return out;
  const kind = parts[1];
  const name = parts[2];
  if ((kind !== "exchanges" && kind !== "queues") || name === undefined || name === "") return undefined;
  if (kind === "exchanges") out.exchange = decodeAmqpName(name);
  else out.queue = decodeAmqpName(name);
  if (parts.length === 3) return out;
  if (parts[3] !== "messages" || parts.length < 5) return undefined;
  out.messages = parts.slice(4).join("/");
  return out;
}

/** Options for normalising policy resources at compile time. */
export interface NormalizeOptions {
  /**
   * The AMQP instance this gateway fronts. A policy resource in the
   * `/instances/<id>/vhosts/…` form applies only when `<id>` (a pattern) matches it.
   * Default `amqp-local`.
   */
  amqpInstanceId?: string;
}

const MQ_KINDS = ["instance/", "topic/", "group/"];

/**
 * In a normalised resource pattern, stands for exactly one non-empty path
 * segment (the instance of the legacy `acs:mq:*:$acct:<Topic>` form: "every
 * instance", not "any path"). Policy text cannot contain it: validation rejects
 * control characters in resources.
 */
export const ANY_SEGMENT = "\u0000";

/**
 * Normalise one policy `Resource` pattern into the canonical patterns it stands
 * for (SPEC §4.1, §4.2). Returns an empty array when the pattern can never match
 * on this gateway (e.g. an AMQP instance other than ours).
 *
 * - MQTT legacy `acs:mq:*:$acct:<Topic>` (no `/`) → parent topic `<Topic>` in every instance;
 * - MQTT `{instanceId}%{topic}` → `topic/<instanceId>/<topic>`;
 * - MQTT `topic/<inst>/<parent>` (one level) also covers `<parent>/*`, its sub-topics;
 * - AMQP `/instances/<id>/vhosts/…` → `/vhosts/…` when `<id>` matches our instance (in
 *   general: what the pattern leaves after consuming `/instances/<our id>`).
 */
export function normalizeResourcePattern(pattern: string, opts: NormalizeOptions = {}): string[] {
  const arn = parseArn(pattern);
  if (!arn) return [pattern];
  const head = pattern.slice(0, pattern.length - arn.relative.length);
  if (arn.service === "mq") return normalizeMq(head, arn.relative);
  if (arn.service === "amqp" && arn.relative.startsWith("/instances/")) {
    // Requests name `/vhosts/…` of our instance: keep what the pattern says about
    // `/instances/<ours>` + that path (exact, whatever wildcards the id holds).
    const ours = `/instances/${opts.amqpInstanceId ?? "amqp-local"}`;
    // A residual that cannot begin a `/vhosts/…` path (or is empty) can never match.
    return wildcardResiduals(arn.relative, ours)
      .filter((r) => r.startsWith("/") || r.startsWith("*") || r.startsWith("?"))
      .map((r) => head + r);
  }
  return [pattern];
}

function normalizeMq(head: string, rel: string): string[] {
  if (rel === "*" || rel === "") return [head + rel];
  if (!MQ_KINDS.some((k) => rel.startsWith(k))) {
    const pct = rel.indexOf("%");
    if (pct > 0) return parentTopicPatterns(head, rel.slice(0, pct), rel.slice(pct + 1));
    if (!rel.includes("/")) return parentTopicPatterns(head, ANY_SEGMENT, rel);
    return [head + rel];
  }
  if (rel.startsWith("topic/")) {
    const rest = rel.slice(6);
    const s = rest.indexOf("/");
    if (s > 0) return parentTopicPatterns(head, rest.slice(0, s), rest.slice(s + 1));
  }
  return [head + rel];
}

/** A topic pattern; when it names a parent topic (one level) it also covers every sub-topic. */
function parentTopicPatterns(head: string, instance: string, topic: string): string[] {
  const p = `${head}topic/${instance}/${topic}`;
  if (topic.includes("/") || topic.endsWith("*")) return [p];
  return [p, `${p}/*`];
}
