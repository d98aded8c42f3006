/**
 * `portcullis audit … --data-dir` end to end: the real CLI over a data dir
 * holding a SQLite event store and a SQLite decision log, as `serve` lays it
 * out (events.db, decisions.db).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DecisionLog, SqliteDecisionStore } from "@portcullis/audit";
import { SqliteEventStore } from "@portcullis/event-store";
import {
  accountStream,
  CURRENT_SCHEMA_VERSION,
  type EventData,
  type EventType,
  newEvent,
} from "@portcullis/events";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "./helpers/cli.ts";

const ACCT = "1234567890123456";
const TOPIC = `acs:mq:local:${ACCT}:topic/mqtt-local/orders/1`;
const T0 = Date.UTC(2025, 2, 1, 10, 0, 0);
let dir: string;
const pos: Record<string, number> = {};

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "audit-cli-"));
  const store = SqliteEventStore.open(join(dir, "events.db"));
  let minute = 0;
  const append = async <T extends EventType>(name: string, type: T, data: EventData<T>, reason?: string) => {
    const e = newEvent(type, CURRENT_SCHEMA_VERSION[type], ACCT, { kind: "root", accountId: ACCT }, data, {
      occurredAt: new Date(T0 + minute++ * 60_000),
      ...(reason ? { reason } : {}),
    });
    pos[name] = (await store.append(accountStream(ACCT), [e])).position;
  };
  await append("account", "AccountCreated", { accountId: ACCT, alias: "acme" });
  await append("alice", "UserCreated", { userId: "u1", userName: "alice" });
  await append("bob", "UserCreated", { userId: "u2", userName: "bob" });
  await append("topic", "TopicCreated", { instanceId: "mqtt-local", topic: "orders" });
  await append("policy", "PolicyCreated", {
    policyName: "orders-pub",
    versionId: "v1",
    document: {
      Version: "1",
      Statement: [
        { Effect: "Allow", Action: ["mq:PUB"], Resource: [`acs:mq:*:${ACCT}:topic/mqtt-local/orders`] },
      ],
    },
  });
  await append(
    "grant",
    "PolicyAttached",
    { policyName: "orders-pub", policyType: "Custom", target: { kind: "user", userId: "u1" } },
    "ticket OPS-1",
  );
  await append("bobGrant", "ConsoleGrantAdded", {
    userId: "u2",
    instanceId: "mqtt-local",
    topic: "orders",
    perms: ["SUB"],
  });
  await append(
    "revoke",
    "PolicyDetached",
    { policyName: "orders-pub", policyType: "Custom", target: { kind: "user", userId: "u1" } },
    "ticket OPS-2",
  );
  await store.close();

  // The edge's decision log: alice allowed at the grant, denied after the revocation.
  const decisions = SqliteDecisionStore.open(join(dir, "decisions.db"));
  const log = new DecisionLog({ writer: decisions, allows: "all" });
  const record = (position: number, decision: "Allow" | "ImplicitDeny") =>
    log.sink({
      time: new Date(T0 + position * 60_000).toISOString(),
      edgeId: "mqtt-1",
      protocol: "mqtt",
      principal: `${ACCT}/u1`,
      action: "mq:PUB",
      resource: TOPIC,
      decision,
      decidingStatements:
        decision === "Allow"
          ? [{ policy: "orders-pub", policyType: "Custom", version: "v1", statement: 0, effect: "Allow" }]
          : [],
      position,
      clientId: "GID_x@@@1",
    });
  record(pos.grant!, "Allow");
  record(pos.revoke!, "ImplicitDeny");
  await log.close();
});
afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const audit = (...args: string[]) => runCli(["audit", ...args, "--data-dir", dir]);

describe("portcullis audit --data-dir", () => {
  it("state --at a position and at a time, as a table and as JSON", () => {
    const r = audit("state", "--at", String(pos.grant), "--json");
    expect(r.code).toBe(0);
    const s = JSON.parse(r.stdout);
    expect(s.position).toBe(pos.grant);
    const alice = s.accounts[0].users.find((u: { userName: string }) => u.userName === "alice");
    expect(alice.policies).toEqual([{ policyType: "Custom", policyName: "orders-pub" }]);
    // One minute per event: 10:05:30 is after `grant` (position 6, 10:05) and before the console grant.
    const t = audit("state", "--at", "2025-03-01T10:05:30Z");
    expect(t.code).toBe(0);
    expect(t.stdout).toContain(`state at position ${pos.grant} (2025-03-01T10:05:00.000Z)`);
    expect(t.stdout).toMatch(/alice\s+u1\s+enabled\s+Custom:orders-pub/);
    expect(t.stdout).toContain("orders-pub  v1");
  });

  it("explain returns the decision object (--json) and a sentence", () => {
    const before = audit(
      "explain",
      "--principal",
      "alice",
      "--action",
      "mq:PUB",
      "--resource",
      TOPIC,
      "--at",
      String(pos.grant),
      "--json",
    );
    expect(before.code).toBe(0);
    expect(JSON.parse(before.stdout)).toMatchObject({
      decision: "Allow",
      action: "mq:PUB",
      resource: TOPIC,
      decidingStatements: [{ policy: "orders-pub", policyType: "Custom", version: "v1", statement: 0 }],
    });
    const after = audit("explain", "--principal", "alice", "--action", "mq:PUB", "--resource", TOPIC);
    expect(after.code).toBe(0);
    expect(after.stdout).toContain("ImplicitDeny: user `alice` is not allowed to perform `mq:PUB`");
  });

  it("who-can names root (always) and the users allowed, with the statement", () => {
    const r = audit("who-can", "--action", "mq:SUB", "--resource", TOPIC);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("the root of the resource's account is always allowed on its own resources");
    expect(r.stdout).toMatch(/root \(account 1234567890123456\)\s+\(the account itself\)/);
    expect(r.stdout).toMatch(/bob \(id u2\)\s+ConsoleGrant console-grants v1 Statement\[0\]/);
    expect(r.stdout).toContain("1 of 2 users allowed");
  });

  it("diff and history name the events, actors and reasons", () => {
    const d = audit("diff", "--from", String(pos.policy), "--to", String(pos.grant), "--json");
    expect(d.code).toBe(0);
    const diff = JSON.parse(d.stdout);
    expect(diff.probeSource).toBe("named");
    const alice = diff.principals.find(
      (p: { principal: { userName?: string } }) => p.principal.userName === "alice",
    );
    expect(alice.gained).toContainEqual(
      expect.objectContaining({
        action: "mq:PUB",
        resource: TOPIC.replace("/1", ""),
        causes: [expect.objectContaining({ position: pos.grant, reason: "ticket OPS-1" })],
      }),
    );
    const h = audit("history", "--principal", "alice");
    expect(h.code).toBe(0);
    expect(h.stdout).toMatch(new RegExp(`${pos.grant}\\s+\\S+\\s+PolicyAttached\\s+root\\s+ticket OPS-1`));
    expect(h.stdout).toMatch(new RegExp(`${pos.revoke}\\s+\\S+\\s+PolicyDetached\\s+root\\s+ticket OPS-2`));
    expect(h.stdout).not.toContain("ConsoleGrantAdded"); // bob's, not alice's
  });

  it("verify: 0 on a consistent log, 1 with the record after an edit", () => {
    const ok = audit("verify");
    expect(ok.stdout).toContain("checked 2 logged decisions: 0 mismatches");
    expect(ok.code).toBe(0);
    const db = SqliteDecisionStore.open(join(dir, "decisions.db"));
    db.database
      .prepare("UPDATE decisions SET record = json_set(record, '$.decision', 'Allow') WHERE seq = 2")
      .run();
    db.close();
    const bad = audit("verify");
    expect(bad.code).toBe(1);
    expect(bad.stdout).toContain("1 mismatch");
    expect(bad.stdout).toContain(
      `logged Allow, but the policies at position ${pos.revoke} give ImplicitDeny`,
    );
  });

  it("bad input: exit 2 with a clear message; unknown names exit 1", () => {
    const r = audit("state", "--at", "last tuesday");
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("must be a position (an integer) or an ISO 8601 time");
    const u = runCli(["audit", "history", "--principal", "carol", "--data-dir", dir]);
    expect(u.code).toBe(1);
    expect(u.stderr).toContain("no RAM user named `carol`");
  });
});
