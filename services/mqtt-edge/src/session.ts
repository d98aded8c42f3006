/**
 * A live, authenticated MQTT session and the indexes revocation uses to find
 * the sessions an event affects (by principal, by AccessKey, by account).
 */
import { clockContext } from "@portcullis/feed";
import type { ArnScope, RequestContext } from "@portcullis/policy";
import { mqTopicArn } from "@portcullis/policy";
import type { PrincipalRef } from "@portcullis/projection";
import type { Client } from "aedes";
import type { ConnectionInfo } from "./listeners.ts";

/** Property of an aedes Client under which its session hangs. */
export const SESSION: unique symbol = Symbol("portcullis.mqtt.session");

/**
 * A topic (or filter) as the client names it and as the broker routes it.
 *
 * INVARIANT (account isolation): inside aedes every topic and filter of a
 * session is prefixed with `\u0000<accountId>/` (the `internal` form), so the
 * routing table, retained messages and offline queues of two accounts never
 * meet, whatever their policies say (SPEC §2: no cross-account access). Clients
 * never see the prefix and cannot forge it (U+0000 is refused in topics,
 * [MQTT-4.7.3-2]).
 */
export interface TopicEntry {
  /** The topic as the client sees it. */
  plain: string;
  /** The topic inside the broker. */
  internal: string;
  /** `acs:mq:<region>:<acct>:topic/<instanceId>/<plain>`. */
  arn: string;
  /** First level of `plain` (the ApsaraMQ parent topic). */
  parent: string;
}

/** The account prefix of internal topics. */
export const accountPrefix = (accountId: string): string => `\u0000${accountId}/`;

/** Topics seen more than this per account are forgotten all at once (bounds memory). */
const TOPIC_CACHE_LIMIT = 20_000;

/**
 * Caches, per account, each topic string's internal form, ARN and parent topic,
 * under both its plain and its internal spelling, so neither a publish nor a
 * delivery builds a string (the decision cache is keyed by ARN).
 */
export class TopicCache {
  readonly prefix: string;
  readonly #map = new Map<string, TopicEntry>();
  readonly #scope: ArnScope;
  readonly #instanceId: string;

  constructor(scope: ArnScope, instanceId: string) {
    this.#scope = scope;
    this.#instanceId = instanceId;
    this.prefix = accountPrefix(scope.accountId);
  }

  /**
   * The entry of a plain topic, or of an internal one of this account; undefined
   * for an internal topic of another account.
   */
  get(topic: string): TopicEntry | undefined {
    const e = this.#map.get(topic);
    if (e !== undefined) return e;
    let plain = topic;
    if (topic.charCodeAt(0) === 0) {
      if (!topic.startsWith(this.prefix)) return undefined;
      plain = topic.slice(this.prefix.length);
    }
    if (this.#map.size >= TOPIC_CACHE_LIMIT) this.#map.clear();
    const slash = plain.indexOf("/");
    const entry: TopicEntry = {
      plain,
      internal: this.prefix + plain,
      arn: mqTopicArn(this.#scope, this.#instanceId, plain),
      parent: slash < 0 ? plain : plain.slice(0, slash),
    };
    this.#map.set(entry.plain, entry);
    this.#map.set(entry.internal, entry);
    return entry;
  }
}

/** One authenticated connection. */
export interface Session {
  readonly client: Client;
  readonly clientId: string;
  readonly groupId: string;
  readonly deviceId: string;
  readonly accessKeyId: string;
  readonly principal: PrincipalRef;
  readonly principalKey: string;
  readonly info: ConnectionInfo;
  readonly scope: ArnScope;
  readonly topics: TopicCache;
  /** `acs:SourceIp`, `acs:SecureTransport`, `mq:ClientId`, `mq:GroupId`. */
  readonly connectContext: RequestContext;
  /** The connect context plus `mq:Qos` and `mq:Retain`, at index `qos * 2 + (retain ? 1 : 0)`. */
  readonly messageContexts: readonly RequestContext[];
  /** The connect context plus `mq:Qos`, at index `qos` (SUBSCRIBE). */
  readonly subscribeContexts: readonly RequestContext[];
  readonly connectedAt: number;
  /** Set when a revocation ends the session: nothing more is authorized for it. */
  revoked: boolean;
  /** Filters being removed server-side (so a second event does not remove them twice). */
  readonly removing: Set<string>;
  /** Last log time of a refused delivery per topic (log sampling). */
  readonly forwardLog: Map<string, { at: number; suppressed: number }>;
  /**
   * Allowed deliveries (`mq:SUB`) and publishes (`mq:PUB`) remembered per topic, one bit per
   * message context (see {@link Session.messageContexts}). See {@link AllowMemo}.
   */
  readonly memo: AllowMemo;
}

/** Entries per memo map before it is cleared (bounds memory). */
const MEMO_LIMIT = 4_096;

/**
 * A per-session memo of "allowed" answers on the message path (delivery and
 * PUBLISH), so the common case costs one map lookup instead of a trip through
 * the projection (which builds the principal's key string on every call).
 *
 * INVARIANT: an allow is remembered only for what it depends on, and the memo is
 * cleared whenever that can change — exactly when the projection invalidates the
 * principal (`affected.principals` of an applied event), and when the account's
 * parent topics change (`topic:` resources). It is never used when the principal's
 * policies reference `acs:CurrentTime` (such decisions are not stable) or when
 * allows must be logged. Denials are never remembered: each is decided, counted and
 * logged. Fail-closed and revoked sessions are checked before the memo.
 */
export class AllowMemo {
  readonly sub = new Map<TopicEntry, number>();
  readonly pub = new Map<TopicEntry, number>();
  /** Whether the memo may be used; undefined until computed after a clear. */
  usable: boolean | undefined;

  /** Forget everything (the principal's permissions or the account's topics changed). */
  clear(): void {
    this.sub.clear();
    this.pub.clear();
    this.usable = undefined;
  }

  /** Remember an allow of context `bit` for `t` in `m`. */
  static remember(m: Map<TopicEntry, number>, t: TopicEntry, bit: number): void {
    if (m.size >= MEMO_LIMIT) m.clear();
    m.set(t, (m.get(t) ?? 0) | bit);
  }
}

/**
 * Build the contexts of a session once; every decision reuses them (no
 * allocation per message).
 */
export function sessionContexts(
  info: ConnectionInfo,
  clientId: string,
  groupId: string,
): Pick<Session, "connectContext" | "messageContexts" | "subscribeContexts"> {
  const base = {
    "acs:SourceIp": info.sourceIp,
    "acs:SecureTransport": info.secure,
    "mq:ClientId": clientId,
    "mq:GroupId": groupId,
  };
  const messageContexts: RequestContext[] = [];
  for (let i = 0; i < 6; i++)
    messageContexts.push(clockContext({ ...base, "mq:Qos": i >> 1, "mq:Retain": (i & 1) === 1 }));
  return {
    connectContext: clockContext(base),
    messageContexts,
    subscribeContexts: [0, 1, 2].map((qos) => clockContext({ ...base, "mq:Qos": qos })),
  };
}

const addTo = <K>(m: Map<K, Set<Session>>, k: K, s: Session) => {
  let set = m.get(k);
  if (!set) {
    set = new Set();
    m.set(k, set);
  }
  set.add(s);
};
const removeFrom = <K>(m: Map<K, Set<Session>>, k: K, s: Session) => {
  const set = m.get(k);
  if (!set) return;
  set.delete(s);
  if (set.size === 0) m.delete(k);
};

/** Live sessions with indexes by principal, AccessKey and account. */
export class SessionRegistry {
  readonly all = new Set<Session>();
  readonly #byPrincipal = new Map<string, Set<Session>>();
  readonly #byKey = new Map<string, Set<Session>>();
  readonly #byAccount = new Map<string, Set<Session>>();
  readonly #topicCaches = new Map<string, TopicCache>();

  /** The topic cache of an account (created on first use, dropped with its last session). */
  topicCache(scope: ArnScope, instanceId: string): TopicCache {
    let c = this.#topicCaches.get(scope.accountId);
    if (!c) {
      c = new TopicCache(scope, instanceId);
      this.#topicCaches.set(scope.accountId, c);
    }
    return c;
  }

  add(s: Session): void {
    this.all.add(s);
    addTo(this.#byPrincipal, s.principalKey, s);
    addTo(this.#byKey, s.accessKeyId, s);
    addTo(this.#byAccount, s.principal.accountId, s);
  }

  /** Remove a session (idempotent). */
  remove(s: Session): void {
    if (!this.all.delete(s)) return;
    removeFrom(this.#byPrincipal, s.principalKey, s);
    removeFrom(this.#byKey, s.accessKeyId, s);
    removeFrom(this.#byAccount, s.principal.accountId, s);
    if (!this.#byAccount.has(s.principal.accountId)) this.#topicCaches.delete(s.principal.accountId);
  }

  byPrincipal(key: string): ReadonlySet<Session> | undefined {
    return this.#byPrincipal.get(key);
  }
  byAccessKey(id: string): ReadonlySet<Session> | undefined {
    return this.#byKey.get(id);
  }
  byAccount(accountId: string): ReadonlySet<Session> | undefined {
    return this.#byAccount.get(accountId);
  }
}
