/**
 * System policies (SPEC §4, seeds 001 and 003) as data. They are read-only and
 * versioned `v1`; attach them by name.
 */
import type { PolicyDocument } from "./types.ts";

/** A built-in policy. */
export interface SystemPolicy {
  name: string;
  description: string;
  version: "v1";
  document: PolicyDocument;
}

const allow = (actions: string[]): PolicyDocument => ({
  Version: "1",
  Statement: [{ Effect: "Allow", Action: actions, Resource: ["*"] }],
});

const list: SystemPolicy[] = [
  {
    name: "AliyunMQFullAccess",
    description: "Full access to MQTT (mq): connect, publish, subscribe and manage topics and Group IDs",
    version: "v1",
    document: allow(["mq:*"]),
  },
  {
    name: "AliyunMQPubOnlyAccess",
    description: "Publish to every topic of the account's MQTT instances (and connect to them)",
    version: "v1",
    document: allow(["mq:MqttInstanceAccess", "mq:PUB"]),
  },
  {
    name: "AliyunMQSubOnlyAccess",
    description: "Subscribe to every topic of the account's MQTT instances (and connect to them)",
    version: "v1",
    document: allow(["mq:MqttInstanceAccess", "mq:SUB"]),
  },
  {
    name: "AliyunMQReadOnlyAccess",
    description: "Read-only access to MQTT metadata (list and get actions only)",
    version: "v1",
    document: allow(["mq:List*", "mq:Get*", "mq:MqttMetaData"]),
  },
  {
    name: "AliyunAMQPFullAccess",
    description: "Full access to AMQP (amqp): the same as the account itself",
    version: "v1",
    document: allow(["amqp:*"]),
  },
  {
    name: "AliyunAMQPReadOnlyAccess",
    description: "Read-only access to AMQP resources (Get* and List* only)",
    version: "v1",
    document: allow(["amqp:Get*", "amqp:List*"]),
  },
  {
    name: "AliyunRAMFullAccess",
    description: "Full access to RAM: users, groups, access keys and policies",
    version: "v1",
    document: allow(["ram:*"]),
  },
];

/** Every system policy by name. */
export const SYSTEM_POLICIES: ReadonlyMap<string, SystemPolicy> = new Map(list.map((p) => [p.name, p]));

/** The system policy with this exact name, if any. */
export function getSystemPolicy(name: string): SystemPolicy | undefined {
  return SYSTEM_POLICIES.get(name);
}
