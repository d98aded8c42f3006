/**
 * Test state for the MQTT edge (`@portcullis/mqtt-edge/testing`): a real event
 * store (memory by default, or any adapter), a live projection following it, and
 * shorthands that append the catalog's events (SPEC §5) and wait until the feed
 * has applied them. Secrets are sealed exactly as the admin plane seals them.
 */
import { randomBytes } from "node:crypto";
import type { EventStore } from "@portcullis/event-store";
import { MemoryEventStore } from "@portcullis/event-store";
import {
  type Actor,
  accessKeyAad,
  accountStream,
  CURRENT_SCHEMA_VERSION,
  type EventData,
  type EventEnvelope,
  type EventType,
  newEvent,
  SecretBox,
} from "@portcullis/events";
import { CredentialResolver, LiveProjection, type LiveProjectionOptions } from "@portcullis/feed";
import type { PrincipalRef } from "@portcullis/projection";
import { connectAsync, type IClientOptions, type MqttClient } from "mqtt";
import pino, { type Logger } from "pino";
import {
  type MqttEdge,
  type MqttEdgeOptions,
  mqttPassword,
  mqttUsername,
  startMqttEdge,
} from "../src/mod.ts";

/** The account most tests live in. */
export const ACCT = "1234567890123456";
/** A second account (cross-account checks). */
export const OTHER_ACCT = "6543210987654321";

/** An AccessKey as the admin sees it once. */
export interface Key {
  accessKeyId: string;
  secret: string;
  principal: PrincipalRef;
}

/** Log lines collected from the edge's pino logger. */
export class LogSink {
  readonly lines: Record<string, unknown>[] = [];
  readonly logger: Logger;
  constructor(level: pino.Level = "debug") {
    this.logger = pino(
      { level },
      {
        write: (s: string) => {
          this.lines.push(JSON.parse(s) as Record<string, unknown>);
        },
      },
    );
  }
  /** Lines whose `msg` is `msg`. */
  messages(msg: string): Record<string, unknown>[] {
    return this.lines.filter((l) => l.msg === msg);
  }
}

let counter = 0;
const uid = (prefix: string) => `${prefix}${Date.now().toString(36)}${(counter++).toString(36)}`;

/** A store, a feed and shorthands for events. */
export class World {
  readonly edges: MqttEdge[] = [];
  readonly clients: MqttClient[] = [];
  readonly log = new LogSink();
  readonly credentials: CredentialResolver;
  #accounts = new Set<string>();

  private constructor(
    readonly store: EventStore,
    readonly box: SecretBox,
    readonly masterKey: Buffer,
    readonly feed: LiveProjection,
  ) {
    this.credentials = new CredentialResolver(feed.projection, box);
  }

  /** A world on `store` (default a fresh MemoryEventStore). */
  static async create(
    opts: { store?: EventStore; masterKey?: Buffer; feed?: LiveProjectionOptions } = {},
  ): Promise<World> {
    const store = opts.store ?? new MemoryEventStore();
    const masterKey = opts.masterKey ?? randomBytes(32);
    const feed = await LiveProjection.start(store, opts.feed ?? {});
    return new World(store, new SecretBox(masterKey), masterKey, feed);
  }

  /** Append events of one account and wait until the feed applied them; returns the last position. */
  async append(account: string, ...events: EventEnvelope[]): Promise<number> {
    const r = await this.store.append(accountStream(account), events);
    if (!(await this.feed.waitForPosition(r.position, 10_000))) {
      throw new Error(`feed did not apply position ${r.position}`);
    }
    return r.position;
  }

  /** Append without waiting for the feed (the revocation benchmark measures that wait). */
  async appendOnly(account: string, ...events: EventEnvelope[]): Promise<number> {
    return (await this.store.append(accountStream(account), events)).position;
  }

  /** An event envelope by the account's root. */
  ev<T extends EventType>(type: T, data: EventData<T>, account = ACCT, actor?: Actor): EventEnvelope {
    return newEvent(
      type,
      CURRENT_SCHEMA_VERSION[type],
      account,
      actor ?? { kind: "root", accountId: account },
      data,
    );
  }

  /** Create the account (once). */
  async account(account = ACCT, alias = "acme"): Promise<void> {
    if (this.#accounts.has(account)) return;
    this.#accounts.add(account);
    await this.append(account, this.ev("AccountCreated", { accountId: account, alias }, account));
  }

  /** A RAM user; returns its id. */
  async user(userName: string, account = ACCT): Promise<string> {
    await this.account(account);
    const userId = uid("u");
    await this.append(account, this.ev("UserCreated", { userId, userName }, account));
    return userId;
  }

  /** An AccessKey of a user (or of the root with `"root"`). */
  async key(owner: string | "root", account = ACCT): Promise<Key> {
    await this.account(account);
    const accessKeyId = `LTAI${randomBytes(8).toString("hex")}`;
    const secret = randomBytes(15).toString("base64url");
    const ownerData = owner === "root" ? { kind: "root" as const } : { kind: "user" as const, userId: owner };
    await this.append(
      account,
      this.ev(
        "AccessKeyCreated",
        { accessKeyId, owner: ownerData, secret: this.box.seal(secret, accessKeyAad(accessKeyId)) },
        account,
      ),
    );
    const principal: PrincipalRef =
      owner === "root"
        ? { accountId: account, kind: "root" }
        : { accountId: account, kind: "user", userId: owner };
    return { accessKeyId, secret, principal };
  }

  /** A user with one AccessKey. */
  async userWithKey(userName: string, account = ACCT): Promise<Key & { userId: string }> {
    const userId = await this.user(userName, account);
    return { userId, ...(await this.key(userId, account)) };
  }

  /** A custom policy (version v1). */
  async policy(policyName: string, document: unknown, account = ACCT): Promise<number> {
    return this.append(account, this.ev("PolicyCreated", { policyName, versionId: "v1", document }, account));
  }

  /** Attach a policy to a user (`{user}`) or group (`{group}`). */
  async attach(
    policyName: string,
    target: { user: string } | { group: string },
    policyType: "System" | "Custom" = "Custom",
    account = ACCT,
  ): Promise<number> {
    return this.append(account, this.attachEvent(policyName, target, policyType, account, "PolicyAttached"));
  }

  /** The PolicyAttached / PolicyDetached event. */
  attachEvent(
    policyName: string,
    target: { user: string } | { group: string },
    policyType: "System" | "Custom",
    account: string,
    type: "PolicyAttached" | "PolicyDetached",
  ): EventEnvelope {
    const t =
      "user" in target
        ? { kind: "user" as const, userId: target.user }
        : { kind: "group" as const, groupId: target.group };
    return this.ev(type, { policyName, policyType, target: t }, account);
  }

  /** A parent topic of an instance. */
  async topic(topic: string, instanceId = "mqtt-local", account = ACCT): Promise<number> {
    await this.account(account);
    return this.append(account, this.ev("TopicCreated", { instanceId, topic }, account));
  }

  /** A Group ID created by `owner` (a userId, or `"root"`). */
  async groupId(
    groupId: string,
    owner: string | "root" = "root",
    instanceId = "mqtt-local",
    account = ACCT,
  ): Promise<number> {
    await this.account(account);
    const o = owner === "root" ? { kind: "root" as const } : { kind: "user" as const, userId: owner };
    return this.append(account, this.ev("GroupIdCreated", { instanceId, groupId, owner: o }, account));
  }

  /** Start an edge on this world's feed (any free ports; closed by `close()`). */
  async edge(opts: Partial<MqttEdgeOptions> = {}): Promise<MqttEdge> {
    const edge = await startMqttEdge({
      feed: this.feed,
      credentials: this.credentials,
      port: 0,
      logger: this.log.logger,
      authThrottle: { freeFailures: 1000 },
      ...opts,
    });
    this.edges.push(edge);
    return edge;
  }

  /** Connect an mqtt.js client with signature credentials (rejects on a refused CONNACK). */
  async connect(
    url: string,
    key: Pick<Key, "accessKeyId" | "secret">,
    clientId: string,
    opts: IClientOptions & { instanceId?: string } = {},
  ): Promise<MqttClient> {
    const { instanceId, ...rest } = opts;
    const c = await connectAsync(url, {
      clientId,
      username: mqttUsername(key.accessKeyId, instanceId ?? "mqtt-local"),
      password: mqttPassword(key.secret, clientId),
      protocolVersion: 4,
      reconnectPeriod: 0,
      connectTimeout: 5_000,
      ...rest,
    });
    this.clients.push(c);
    return c;
  }

  /** Close clients, edges and the feed (and the store). */
  async close(): Promise<void> {
    await Promise.all(this.clients.map((c) => c.endAsync(true).catch(() => {})));
    await Promise.all(this.edges.map((e) => e.close()));
    await this.feed.close();
    await this.store.close();
  }
}

/** Messages received by a client, by topic, with a wait helper. */
export class Inbox {
  readonly messages: { topic: string; payload: string; retain: boolean; qos: number }[] = [];
  #waiters: { pred: () => boolean; resolve: () => void }[] = [];

  constructor(client: MqttClient) {
    client.on("message", (topic, payload, packet) => {
      this.messages.push({ topic, payload: payload.toString(), retain: packet.retain, qos: packet.qos });
      this.#waiters = this.#waiters.filter((w) => {
        if (!w.pred()) return true;
        w.resolve();
        return false;
      });
    });
  }

  /** Payloads received, in order. */
  payloads(): string[] {
    return this.messages.map((m) => m.payload);
  }

  /** Wait until `pred` holds (rejects after `ms`). */
  until(pred: (msgs: Inbox["messages"]) => boolean, ms = 5_000): Promise<void> {
    if (pred(this.messages)) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`inbox: condition not met after ${ms} ms`)), ms);
      this.#waiters.push({
        pred: () => pred(this.messages),
        resolve: () => {
          clearTimeout(t);
          resolve();
        },
      });
    });
  }

  /** Wait until a message with this payload arrived. */
  waitFor(payload: string, ms = 5_000): Promise<void> {
    return this.until((m) => m.some((x) => x.payload === payload), ms);
  }
}

/** A unique name for tests. */
export function unique(prefix: string): string {
  return uid(prefix);
}

/** A throw-away self-signed certificate for 127.0.0.1/localhost. */
export { selfSignedCert } from "@portcullis/testkit";
