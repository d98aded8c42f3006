/**
 * The event-log workload of the store benchmark: a deterministic, coherent
 * history of a multi-tenant gateway (seeded PRNG; the same events in every run,
 * except the random IVs of the sealed AccessKey secrets).
 *
 * Shape (defaults: 100 accounts × 1,000 users = 100,000 users, 1,000,000 events):
 * - Set-up, account by account: AccountCreated; 20 custom policies (3 statements
 *   each: PUB/SUB on a parent topic, instance access, a conditioned Deny); 10
 *   groups, each with one of the first 10 policies attached; then per user:
 *   UserCreated, AccessKeyCreated (secret sealed with AES-256-GCM), added to one
 *   group, 3 custom policies (of the other 10) and 1 MQ system policy attached. So
 *   every user has 5 policies (4 direct, 1 through its group): 7 events per user.
 * - Churn until the event count: admin sessions of 1–100 events on one random
 *   account (console grants added and removed, keys deactivated and reactivated,
 *   key rotations, users disabled and enabled, renamed display names, new default
 *   policy versions — the 6th removing the oldest —, default versions switched
 *   back, a policy swapped for another on a user, topics, Group IDs).
 *
 * Events come as appends: `{ stream, events }`, one admin session or a slice of
 * an account's set-up (≤ `maxBatch` events), in log order.
 */
import {
  accessKeyAad,
  accountStream,
  CURRENT_SCHEMA_VERSION,
  type EventData,
  type EventEnvelope,
  type EventType,
  type SealedSecret,
  SecretBox,
} from "@portcullis/events";
import { Rng } from "./prng.ts";

/** Parameters of the workload. */
export interface StoreWorkloadOptions {
  accounts: number;
  usersPerAccount: number;
  /** Total events (set-up first, then churn up to this count). */
  events: number;
  /** Largest append (set-up slices; sessions are 1–100). */
  maxBatch: number;
  seed: number;
}

/** The benchmark's default: 100 × 1,000 users, 1,000,000 events. */
export const DEFAULT_WORKLOAD: StoreWorkloadOptions = {
  accounts: 100,
  usersPerAccount: 1_000,
  events: 1_000_000,
  maxBatch: 500,
  seed: 7,
};

/** One append of the workload. */
export interface WorkloadAppend {
  stream: string;
  events: EventEnvelope[];
}

const POLICIES = 20;
const GROUPS = 10;
const SYSTEM = ["AliyunMQPubOnlyAccess", "AliyunMQSubOnlyAccess", "AliyunMQFullAccess"] as const;
const INSTANCE = "mqtt-local";
const T0 = Date.UTC(2025, 0, 1);
/** A fixed master key: the bench seals real secrets, deterministically keyed. */
const BOX = new SecretBox(Buffer.alloc(32, 7));

/** The 16-digit id of account `i`. */
export const accountIdOf = (i: number): string => String(1_000_000_000_000_000 + i);

/** A policy document of the workload (about 450 characters). */
function policyDocument(acct: string, k: number, version: number) {
  return {
    Version: "1" as const,
    Statement: [
      {
        Effect: "Allow" as const,
        Action: ["mq:PUB", "mq:SUB"],
        Resource: [
          `acs:mq:*:${acct}:topic/${INSTANCE}/t${k}`,
          `acs:mq:*:${acct}:topic/${INSTANCE}/v${version}`,
        ],
      },
      {
        Effect: "Allow" as const,
        Action: ["mq:MqttInstanceAccess"],
        Resource: [`acs:mq:*:${acct}:instance/${INSTANCE}`],
      },
      {
        Effect: "Deny" as const,
        Action: ["mq:PUB"],
        Resource: [`acs:mq:*:${acct}:topic/${INSTANCE}/t${k}/admin/*`],
        Condition: { NotIpAddress: { "acs:SourceIp": ["10.0.0.0/8"] } },
      },
    ],
  };
}

interface WUser {
  direct: number[];
  grants: string[];
  keys: string[];
  keyInactive: Set<string>;
  disabled: boolean;
}
interface WPolicy {
  versions: number[];
  defaultVersion: number;
  next: number;
}
interface WAccount {
  id: string;
  users: WUser[];
  policies: WPolicy[];
  topics: number;
  gids: number;
}

/** The workload as a sequence of appends (a generator: nothing is held but the small model). */
export function* storeWorkload(opts: StoreWorkloadOptions = DEFAULT_WORKLOAD): Generator<WorkloadAppend> {
  const rng = new Rng(opts.seed);
  let count = 0;
  let time = T0;
  let keySeq = 0;
  const ev = <T extends EventType>(acct: string, type: T, data: EventData<T>): EventEnvelope => {
    count++;
    time += 20 + rng.int(20);
    return {
      id: `bench-${count}`,
      type,
      schemaVersion: CURRENT_SCHEMA_VERSION[type],
      accountId: acct,
      occurredAt: new Date(time).toISOString(),
      actor: { kind: "root", accountId: acct },
      data,
    };
  };
  const sealed = (accessKeyId: string): SealedSecret =>
    BOX.seal(`secret-${accessKeyId}`, accessKeyAad(accessKeyId));
  const newKey = (acct: string, userId: string): [string, EventEnvelope] => {
    const accessKeyId = `LTAI5bench${(++keySeq).toString(36).padStart(8, "0")}`;
    return [
      accessKeyId,
      ev(acct, "AccessKeyCreated", {
        accessKeyId,
        owner: { kind: "user", userId },
        secret: sealed(accessKeyId),
      }),
    ];
  };

  const accounts: WAccount[] = [];
  // Set-up, account by account.
  for (let ai = 0; ai < opts.accounts && count < opts.events; ai++) {
    const acct = accountIdOf(ai);
    const a: WAccount = { id: acct, users: [], policies: [], topics: 0, gids: 0 };
    accounts.push(a);
    const out: EventEnvelope[] = [ev(acct, "AccountCreated", { accountId: acct, alias: `tenant${ai}` })];
    for (let k = 0; k < POLICIES; k++) {
      out.push(
        ev(acct, "PolicyCreated", {
          policyName: `pol-${k}`,
          versionId: "v1",
          document: policyDocument(acct, k, 1),
        }),
      );
      a.policies.push({ versions: [1], defaultVersion: 1, next: 2 });
    }
    for (let g = 0; g < GROUPS; g++) {
      out.push(ev(acct, "GroupCreated", { groupId: `g${g}`, groupName: `group${g}` }));
      out.push(
        ev(acct, "PolicyAttached", {
          policyName: `pol-${g}`,
          policyType: "Custom",
          target: { kind: "group", groupId: `g${g}` },
        }),
      );
    }
    for (let ui = 0; ui < opts.usersPerAccount; ui++) {
      const userId = `u${ui}`;
      const direct = rng.sample([10, 11, 12, 13, 14, 15, 16, 17, 18, 19], 3);
      const [key, keyEvent] = newKey(acct, userId);
      a.users.push({ direct, grants: [], keys: [key], keyInactive: new Set(), disabled: false });
      out.push(ev(acct, "UserCreated", { userId, userName: `user${ui}` }), keyEvent);
      out.push(ev(acct, "UserAddedToGroup", { userId, groupId: `g${ui % GROUPS}` }));
      for (const k of direct)
        out.push(
          ev(acct, "PolicyAttached", {
            policyName: `pol-${k}`,
            policyType: "Custom",
            target: { kind: "user", userId },
          }),
        );
      out.push(
        ev(acct, "PolicyAttached", {
          policyName: SYSTEM[ui % SYSTEM.length]!,
          policyType: "System",
          target: { kind: "user", userId },
        }),
      );
      if (out.length >= opts.maxBatch) {
        yield { stream: accountStream(acct), events: out.splice(0, out.length) };
      }
    }
    if (out.length > 0) yield { stream: accountStream(acct), events: out };
  }

  // Churn: admin sessions on random accounts.
  while (count < opts.events) {
    const a = rng.pick(accounts);
    const acct = a.id;
    const size = Math.min(opts.events - count, 1 + rng.int(100));
    const out: EventEnvelope[] = [];
    while (out.length < size) {
      const ui = rng.int(a.users.length);
      const u = a.users[ui]!;
      const userId = `u${ui}`;
      const op = rng.weighted([
        ["grantAdd", 20],
        ["grantRemove", 10],
        ["keyStatus", 15],
        ["keyRotate", 5],
        ["disable", 10],
        ["rename", 5],
        ["newVersion", 10],
        ["defaultBack", 5],
        ["swapPolicy", 10],
        ["topic", 5],
        ["gid", 5],
      ] as const);
      switch (op) {
        case "grantAdd": {
          const topic = `t${rng.int(POLICIES)}`;
          u.grants.push(topic);
          out.push(
            ev(acct, "ConsoleGrantAdded", {
              userId,
              instanceId: INSTANCE,
              topic,
              perms: rng.chance(0.5) ? ["PUB"] : ["PUB", "SUB"],
            }),
          );
          break;
        }
        case "grantRemove": {
          const topic = u.grants.pop();
          if (topic === undefined) break;
          out.push(
            ev(acct, "ConsoleGrantRemoved", { userId, instanceId: INSTANCE, topic, perms: ["PUB", "SUB"] }),
          );
          break;
        }
        case "keyStatus": {
          const key = u.keys[0]!;
          const inactive = u.keyInactive.has(key);
          if (inactive) u.keyInactive.delete(key);
          else u.keyInactive.add(key);
          out.push(
            ev(acct, "AccessKeyStatusChanged", {
              accessKeyId: key,
              status: inactive ? "Active" : "Inactive",
            }),
          );
          break;
        }
        case "keyRotate": {
          if (size - out.length < 2) break;
          const [key, keyEvent] = newKey(acct, userId);
          const old = u.keys.shift()!;
          u.keyInactive.delete(old);
          u.keys.push(key);
          out.push(keyEvent, ev(acct, "AccessKeyDeleted", { accessKeyId: old }));
          break;
        }
        case "disable":
          u.disabled = !u.disabled;
          out.push(ev(acct, u.disabled ? "UserDisabled" : "UserEnabled", { userId }));
          break;
        case "rename":
          out.push(ev(acct, "UserUpdated", { userId, displayName: `User ${ui} (${count})` }));
          break;
        case "newVersion": {
          const k = rng.int(POLICIES);
          const p = a.policies[k]!;
          const v = p.next++;
          let removed: number | undefined;
          if (p.versions.length >= 5) {
            removed = p.versions.find((x) => x !== p.defaultVersion);
            p.versions = p.versions.filter((x) => x !== removed);
          }
          p.versions.push(v);
          p.defaultVersion = v;
          out.push(
            ev(acct, "PolicyVersionCreated", {
              policyName: `pol-${k}`,
              versionId: `v${v}`,
              document: policyDocument(acct, k, v),
              setAsDefault: true,
              ...(removed !== undefined ? { removedVersionId: `v${removed}` } : {}),
            }),
          );
          break;
        }
        case "defaultBack": {
          const k = rng.int(POLICIES);
          const p = a.policies[k]!;
          const older = p.versions.filter((x) => x !== p.defaultVersion);
          if (older.length === 0) break;
          p.defaultVersion = rng.pick(older);
          out.push(
            ev(acct, "PolicyDefaultVersionSet", {
              policyName: `pol-${k}`,
              versionId: `v${p.defaultVersion}`,
            }),
          );
          break;
        }
        case "swapPolicy": {
          if (size - out.length < 2) break;
          const i = rng.int(u.direct.length);
          const from = u.direct[i]!;
          const to = rng.pick([10, 11, 12, 13, 14, 15, 16, 17, 18, 19].filter((x) => !u.direct.includes(x)));
          u.direct[i] = to;
          const target = { kind: "user" as const, userId };
          out.push(
            ev(acct, "PolicyDetached", { policyName: `pol-${from}`, policyType: "Custom", target }),
            ev(acct, "PolicyAttached", { policyName: `pol-${to}`, policyType: "Custom", target }),
          );
          break;
        }
        case "topic":
          out.push(ev(acct, "TopicCreated", { instanceId: INSTANCE, topic: `topic${a.topics++}` }));
          break;
        case "gid":
          out.push(
            ev(acct, "GroupIdCreated", {
              instanceId: INSTANCE,
              groupId: `GID_${a.gids++}`,
              owner: rng.chance(0.5) ? { kind: "root" } : { kind: "user", userId },
            }),
          );
          break;
      }
    }
    yield { stream: accountStream(acct), events: out };
  }
}
