/**
 * Test fixtures for the AMQP edge: an event history in a real (in-memory)
 * event store followed by a LiveProjection, a RabbitMQ vhost of its own per
 * test file (rabbitmqctl on the shared broker at 127.0.0.1:5672), and an
 * edge in front of it. Grants and revocations are appended as events, as the
 * admin plane would append them.
 */
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { promisify } from "node:util";
import { MemoryEventStore } from "@portcullis/event-store";
import {
  type Actor,
  accessKeyAad,
  accountStream,
  CURRENT_SCHEMA_VERSION,
  type EventData,
  type EventType,
  newEvent,
  SecretBox,
} from "@portcullis/events";
import { CredentialResolver, type DecisionRecord, LiveProjection } from "@portcullis/feed";
import * as amqplib from "amqplib";
import { pino } from "pino";
import {
  type AmqpEdge,
  type AmqpEdgeOptions,
  amqpPassword,
  amqpUsername,
  startAmqpEdge,
} from "../src/mod.ts";

const run = promisify(execFile);

/** The broker every test shares (SPEC: one RabbitMQ, unique vhosts). */
export const RABBIT_URL = "amqp://guest:guest@127.0.0.1:5672";

/** The account most tests live in. */
export const ACCT = "1234567890123456";
/** Another account, for cross-account cases. */
export const OTHER_ACCT = "6543210987654321";

async function rabbitmqctl(...args: string[]): Promise<void> {
  const bin = process.env.RABBITMQCTL ?? "/usr/sbin/rabbitmqctl";
  await run(bin, args, { timeout: 30_000 });
}

/** A vhost of the shared RabbitMQ for one test file, with full permissions for guest. */
export async function createVhost(prefix = "pc-amqp"): Promise<{ name: string; remove(): Promise<void> }> {
  const name = `${prefix}-${randomBytes(4).toString("hex")}`;
  await rabbitmqctl("add_vhost", name);
  await rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*");
  return { name, remove: () => rabbitmqctl("delete_vhost", name) };
}

/** An event history being built: append events, then follow it with a LiveProjection. */
export class World {
  readonly store = new MemoryEventStore();
  readonly box = SecretBox.generate().box;
  readonly secrets = new Map<string, string>();
  feed!: LiveProjection;
  credentials!: CredentialResolver;
  #users = new Map<string, string>(); // userName → userId
  #n = 0;

  /** Append one event to an account's stream; resolves once the projection has applied it. */
  async append<T extends EventType>(type: T, data: EventData<T>, account = ACCT): Promise<number> {
    const actor: Actor = { kind: "root", accountId: account };
    const r = await this.store.append(accountStream(account), [
      newEvent(type, CURRENT_SCHEMA_VERSION[type], account, actor, data),
    ]);
    if (this.feed && !(await this.feed.waitForPosition(r.position, 5_000))) {
      throw new Error(`the feed did not apply position ${r.position}`);
    }
    return r.position;
  }

  /** Start following the store (call once, after or before appending). */
  async start(): Promise<void> {
    this.feed = await LiveProjection.start(this.store, { probeIntervalMs: 200 });
    this.credentials = new CredentialResolver(this.feed.projection, this.box);
  }

  async account(account = ACCT, alias = `acme${account.slice(0, 4)}`): Promise<void> {
    await this.append("AccountCreated", { accountId: account, alias }, account);
  }

  /** Create a RAM user; returns its userId. */
  async user(userName: string, account = ACCT): Promise<string> {
    const userId = `u-${userName}-${++this.#n}`;
    this.#users.set(`${account}/${userName}`, userId);
    await this.append("UserCreated", { userId, userName }, account);
    return userId;
  }

  userId(userName: string, account = ACCT): string {
    const id = this.#users.get(`${account}/${userName}`);
    if (!id) throw new Error(`no user ${userName}`);
    return id;
  }

  /** Create an AccessKey for a user (or the account root with `root`); returns its id. */
  async key(owner: string | "root", account = ACCT): Promise<string> {
    const accessKeyId = `LTAI${randomBytes(8).toString("hex")}`;
    const secret = randomBytes(15).toString("base64url");
    this.secrets.set(accessKeyId, secret);
    await this.append(
      "AccessKeyCreated",
      {
        accessKeyId,
        owner: owner === "root" ? { kind: "root" } : { kind: "user", userId: this.userId(owner, account) },
        secret: this.box.seal(secret, accessKeyAad(accessKeyId)),
      },
      account,
    );
    return accessKeyId;
  }

  /** Create a custom policy and attach it to a user. */
  async grant(userName: string, policyName: string, document: unknown, account = ACCT): Promise<void> {
    await this.append("PolicyCreated", { policyName, versionId: "v1", document }, account);
    await this.attach(userName, policyName, "Custom", account);
  }

  async attach(
    userName: string,
    policyName: string,
    policyType: "System" | "Custom" = "Custom",
    account = ACCT,
  ) {
    await this.append(
      "PolicyAttached",
      { policyName, policyType, target: { kind: "user", userId: this.userId(userName, account) } },
      account,
    );
  }

  async detach(
    userName: string,
    policyName: string,
    policyType: "System" | "Custom" = "Custom",
    account = ACCT,
  ) {
    return this.append(
      "PolicyDetached",
      { policyName, policyType, target: { kind: "user", userId: this.userId(userName, account) } },
      account,
    );
  }

  async close(): Promise<void> {
    await this.feed?.close();
    await this.store.close();
  }
}

/** Denials recorded by an edge's decision sink. */
export type Decisions = DecisionRecord[];

/** Start an edge in front of the shared RabbitMQ for `world` on a free port. */
export async function edgeFor(
  world: World,
  extra: Partial<AmqpEdgeOptions> = {},
): Promise<{ edge: AmqpEdge; decisions: Decisions }> {
  const decisions: Decisions = [];
  const edge = await startAmqpEdge({
    feed: world.feed,
    credentials: world.credentials,
    upstream: { url: RABBIT_URL },
    port: 0,
    logger: pino({ level: process.env.EDGE_LOG ?? "silent" }),
    onDecision: (d) => decisions.push(d),
    ...extra,
  });
  return { edge, decisions };
}

/** The amqp:// URL a client uses for an AccessKey of `world` through `edge`. */
export function clientUrl(
  world: World,
  edge: AmqpEdge,
  accessKeyId: string,
  vhost: string,
  opts: { instanceId?: string; timestampMs?: number; secret?: string; query?: string } = {},
): string {
  const user = amqpUsername(opts.instanceId ?? "amqp-local", accessKeyId);
  const pass = amqpPassword(opts.secret ?? world.secrets.get(accessKeyId) ?? "", opts.timestampMs);
  const q = opts.query ? `?${opts.query}` : "";
  return `amqp://${encodeURIComponent(user)}:${encodeURIComponent(pass)}@127.0.0.1:${edge.port}/${encodeURIComponent(vhost)}${q}`;
}

/** Connect amqplib through the edge. */
export function connect(
  world: World,
  edge: AmqpEdge,
  accessKeyId: string,
  vhost: string,
  opts: Parameters<typeof clientUrl>[4] = {},
): Promise<amqplib.ChannelModel> {
  return amqplib.connect(clientUrl(world, edge, accessKeyId, vhost, opts));
}

/** Connect amqplib directly to RabbitMQ (guest) — to set up and inspect state behind the edge's back. */
export function direct(vhost: string): Promise<amqplib.ChannelModel> {
  return amqplib.connect(`${RABBIT_URL}/${encodeURIComponent(vhost)}`);
}

/** Wait until `pred` holds (polling), or fail after `ms`. */
export async function until(
  pred: () => boolean | Promise<boolean>,
  ms = 5_000,
  what = "condition",
): Promise<void> {
  const end = Date.now() + ms;
  while (!(await pred())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
