/**
 * A second, non-Node client through the edge: Debian's amqp-tools (the
 * librabbitmq-c command-line tools; installed by infra/ensure-rabbitmq.sh).
 * Declare, publish, consume with acks, a refusal, and heartbeats kept alive by
 * the edge while a consumer idles.
 */
import { execFile, spawn } from "node:child_process";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AmqpEdge, amqpPassword, amqpUsername } from "../src/mod.ts";
import { createVhost, direct, edgeFor, until, World } from "./world.ts";

const run = promisify(execFile);

let world: World;
let edge: AmqpEdge;
let V: string;
let removeVhost: () => Promise<void>;
let pubsub: string;
let subOnly: string;

/** Connection flags of amqp-tools for an AccessKey (a fresh signature each time). */
const flags = (key: string, heartbeat = 0) => [
  "--server=127.0.0.1",
  `--port=${edge.port}`,
  `--vhost=${V}`,
  `--username=${amqpUsername("amqp-local", key)}`,
  `--password=${amqpPassword(world.secrets.get(key)!)}`,
  `--heartbeat=${heartbeat}`,
];

async function tool(bin: string, key: string, args: string[]) {
  try {
    const r = await run(`/usr/bin/${bin}`, [...flags(key), ...args], { timeout: 20_000 });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const x = e as { code?: number; stdout?: string; stderr?: string };
    return { code: x.code ?? -1, stdout: x.stdout ?? "", stderr: x.stderr ?? "" };
  }
}

async function messageCount(q: string): Promise<number> {
  const d = await direct(V);
  const ch = await d.createChannel();
  const r = await ch.checkQueue(q);
  await d.close();
  return r.messageCount;
}

beforeAll(async () => {
  ({ name: V, remove: removeVhost } = await createVhost());
  world = new World();
  await world.start();
  await world.account();
  ({ edge } = await edgeFor(world));
  const vh = `acs:amqp:*:*:/vhosts/${V}`;
  await world.user("tools");
  await world.grant("tools", "tools-pubsub", {
    Version: "1",
    Statement: [
      { Effect: "Allow", Action: ["amqp:GetVhost"], Resource: vh },
      {
        Effect: "Allow",
        Action: [
          "amqp:CreateQueue",
          "amqp:GetQueue",
          "amqp:BasicPublish",
          "amqp:BasicConsume",
          "amqp:BasicAck",
          "amqp:BasicGet",
        ],
        Resource: `${vh}/*`,
      },
    ],
  });
  pubsub = await world.key("tools");
  await world.user("toolsub");
  await world.grant("toolsub", "toolsub-sub", {
    Version: "1",
    Statement: [
      { Effect: "Allow", Action: ["amqp:GetVhost"], Resource: vh },
      { Effect: "Allow", Action: ["amqp:BasicConsume", "amqp:BasicAck"], Resource: `${vh}/*` },
    ],
  });
  subOnly = await world.key("toolsub");
});

afterAll(async () => {
  await edge?.close();
  await world?.close();
  await removeVhost?.();
});

describe("amqp-tools (librabbitmq) through the edge", () => {
  it("declares a queue, publishes, consumes and acks", async () => {
    const decl = await tool("amqp-declare-queue", pubsub, ["--queue=tools-q"]);
    expect(decl.code, decl.stderr).toBe(0);
    expect(decl.stdout.trim()).toBe("tools-q");
    for (const body of ["one", "two", "three"]) {
      const p = await tool("amqp-publish", pubsub, ["--routing-key=tools-q", `--body=${body}`]);
      expect(p.code, p.stderr).toBe(0);
    }
    await until(async () => (await messageCount("tools-q")) === 3, 5_000, "three published");
    // amqp-consume acks each message after its command succeeds
    const c = await tool("amqp-consume", pubsub, ["--queue=tools-q", "--count=3", "cat"]);
    expect(c.code, c.stderr).toBe(0);
    expect(c.stdout).toBe("onetwothree");
    await until(async () => (await messageCount("tools-q")) === 0, 5_000, "all acked");
  });

  it("basic.get through amqp-get", async () => {
    expect((await tool("amqp-publish", pubsub, ["--routing-key=tools-q", "--body=got"])).code).toBe(0);
    const g = await tool("amqp-get", pubsub, ["--queue=tools-q"]);
    expect(g.code, g.stderr).toBe(0);
    expect(g.stdout).toBe("got");
  });

  it("a refused publish: the tool fails with ACCESS_REFUSED naming the action", async () => {
    const p = await tool("amqp-publish", subOnly, ["--routing-key=tools-q", "--body=nope"]);
    expect(p.code).not.toBe(0);
    expect(p.stderr).toMatch(/403/);
    expect(p.stderr).toContain("amqp:BasicPublish");
    expect(await messageCount("tools-q")).toBe(0);
  });

  it("keeps an idle consumer alive with heartbeats (1 s) and delivers a late message", async () => {
    expect((await tool("amqp-declare-queue", pubsub, ["--queue=tools-hb"])).code).toBe(0);
    const child = spawn("/usr/bin/amqp-consume", [
      ...flags(pubsub, 1),
      "--queue=tools-hb",
      "--count=1",
      "cat",
    ]);
    let out = "";
    child.stdout.on("data", (d) => {
      out += String(d);
    });
    let err = "";
    child.stderr.on("data", (d) => {
      err += String(d);
    });
    const exited = new Promise<number | null>((r) => child.on("exit", (code) => r(code)));
    await new Promise((r) => setTimeout(r, 3_500)); // > 2 heartbeat intervals of silence from the client's side
    expect(child.exitCode, err).toBeNull();
    expect((await tool("amqp-publish", pubsub, ["--routing-key=tools-hb", "--body=late"])).code).toBe(0);
    expect(await exited).toBe(0);
    expect(out).toBe("late");
  });
});
