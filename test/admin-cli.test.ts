/**
 * `portcullis admin …` and `portcullis serve --demo` end to end: the real CLI
 * against a running `portcullis serve` child process, and the demo's printed
 * commands run with the real mosquitto clients.
 */
import { execFile } from "node:child_process";
import { writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { promisify } from "node:util";
import { main } from "@portcullis/cli";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CliRun, runCliAsync } from "./helpers/cli.ts";
import { type Serve, startServe } from "./helpers/serve.ts";

const exec = promisify(execFile);
let gw: Serve;

beforeAll(async () => {
  gw = await startServe();
});
afterAll(async () => {
  await gw?.stop();
});

/**
 * `portcullis admin …` as root through the environment, run in this process
 * through the CLI's `main` (the same code as the binary, without a node start
 * per call); the tests below that need a process use `runCliAsync`.
 */
async function admin(...args: string[]): Promise<CliRun> {
  const saved = { ...process.env };
  Object.assign(process.env, gw.cliEnv);
  let stdout = "";
  let stderr = "";
  try {
    const code = await main(["admin", ...args], {
      out: (s) => {
        stdout += s.endsWith("\n") ? s : `${s}\n`;
      },
      err: (s) => {
        stderr += s.endsWith("\n") ? s : `${s}\n`;
      },
    });
    return { code, stdout, stderr };
  } finally {
    for (const k of Object.keys(gw.cliEnv)) {
      if (saved[k] === undefined) delete process.env[k];
      else process.env[k] = saved[k];
    }
  }
}
const json = async (...args: string[]) => {
  const r = await admin("--json", ...args);
  expect(r.code, `${args.join(" ")}: ${r.stderr}`).toBe(0);
  return JSON.parse(r.stdout) as Record<string, unknown>;
};

describe("portcullis admin (CLI contract)", () => {
  it("user create / list / delete, human and --json (a write's JSON has its position)", async () => {
    const human = await admin("user", "create", "cli-alice");
    expect(human.code, human.stderr).toBe(0);
    expect(human.stdout).toMatch(/^created user cli-alice \(id \d{16}\) \(position \d+\)/);
    const j = await json("user", "create", "cli-bob", "--display-name", "Bob");
    expect(j).toMatchObject({ userName: "cli-bob", displayName: "Bob", changed: true });
    expect(typeof j.position).toBe("number");
    const list = await admin("user", "list");
    expect(list.stdout).toMatch(/cli-alice\s+enabled/);
    expect(list.stdout).toMatch(/cli-bob\s+enabled/);
    const del = await json("user", "delete", "cli-bob");
    expect(del.changed).toBe(true);
    expect(
      ((await json("user", "list")).users as { userName: string }[]).map((u) => u.userName),
    ).not.toContain("cli-bob");
  });

  it("accesskey create --user returns accessKeyId and accessKeySecret; disable makes it unusable", async () => {
    const k = await json("accesskey", "create", "--user", "cli-alice");
    expect(k.accessKeyId).toMatch(/^LTAI/);
    expect(k.accessKeySecret).toMatch(/^[A-Za-z0-9]{30}$/);
    expect(typeof k.position).toBe("number");
    const as = (...args: string[]) =>
      runCliAsync(["admin", ...args], {
        env: {
          PORTCULLIS_ENDPOINT: gw.adminUrl,
          PORTCULLIS_ACCESS_KEY_ID: String(k.accessKeyId),
          PORTCULLIS_ACCESS_KEY_SECRET: String(k.accessKeySecret),
        },
      });
    expect((await as("whoami")).stdout).toMatch(/^user cli-alice of \d{16}/);
    const dis = await admin("accesskey", "disable", String(k.accessKeyId));
    expect(dis.stdout).toMatch(/is Inactive/);
    const refused = await as("whoami");
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/401 InvalidAccessKeyId\.Inactive/);
  });

  it("policy create --document, attach (custom and system) to --user / --group, detach", async () => {
    const doc = join(gw.dataDir, "pub-a.json");
    writeFileSync(
      doc,
      JSON.stringify({
        Version: "1",
        Statement: [
          { Effect: "Allow", Action: ["mq:PUB", "amqp:CreatExchange"], Resource: ["acs:mq:*:*:TopicA"] },
        ],
      }),
    );
    const c = await admin("policy", "create", "cli-pub", "--document", doc);
    expect(c.code, c.stderr).toBe(0);
    expect(c.stdout).toMatch(/created policy cli-pub \(v1\)/);
    expect(c.stdout).toMatch(/warning: .*unknown action `amqp:CreatExchange`/);
    expect((await admin("policy", "attach", "cli-pub", "--user", "cli-alice")).stdout).toMatch(
      /attached cli-pub to user cli-alice/,
    );
    expect((await admin("policy", "attach", "AliyunMQSubOnlyAccess", "--user", "cli-alice")).code).toBe(0);
    expect((await admin("group", "create", "cli-ops")).code).toBe(0);
    expect((await admin("policy", "attach", "AliyunMQFullAccess", "--group", "cli-ops")).code).toBe(0);
    const u = await json("user", "get", "cli-alice");
    expect(u.policies).toEqual([
      { policyName: "AliyunMQSubOnlyAccess", policyType: "System" },
      { policyName: "cli-pub", policyType: "Custom" },
    ]);
    const d = await json("policy", "detach", "cli-pub", "--user", "cli-alice");
    expect(d.policies).toEqual([{ policyName: "AliyunMQSubOnlyAccess", policyType: "System" }]);
    const usage = await admin("policy", "attach", "cli-pub");
    expect(usage.code).toBe(2);
    expect(usage.stderr).toMatch(/give --user NAME or --group NAME/);
  });

  it("group-id create, topic create, console-grant add --perm PUB+SUB, with --wait-enforced", async () => {
    expect((await admin("group-id", "create", "GID_cli")).stdout).toMatch(
      /created Group ID GID_cli in mqtt-local/,
    );
    expect((await admin("topic", "create", "cli-topic")).code).toBe(0);
    const g = await admin(
      "--wait-enforced",
      "console-grant",
      "add",
      "--user",
      "cli-alice",
      "--topic",
      "cli-topic",
      "--perm",
      "PUB+SUB",
    );
    expect(g.code, g.stderr).toBe(0);
    expect(g.stdout).toMatch(/granted PUB\+SUB on cli-topic to cli-alice/);
    expect(g.stdout).toMatch(/enforced by 2 edge\(s\) in \d+ ms: (mqtt-1, amqp-1|amqp-1, mqtt-1)/);
    const list = await json("console-grant", "list", "--user", "cli-alice");
    expect(list.consoleGrants).toEqual([
      { instanceId: "mqtt-local", topic: "cli-topic", perms: ["PUB", "SUB"] },
    ]);
    expect((await json("group-id", "list")).groupIds).toEqual([
      expect.objectContaining({ groupId: "GID_cli", owner: expect.objectContaining({ kind: "root" }) }),
    ]);
  });

  it("API errors exit 1 with status, code and message; --credentials FILE works; bad input never reaches the API", async () => {
    const dup = await admin("user", "create", "cli-alice");
    expect(dup.code).toBe(1);
    expect(dup.stderr).toMatch(/409 EntityAlreadyExists\.User: user `cli-alice` already exists/);
    const viaFile = await runCliAsync([
      "admin",
      "--credentials",
      join(gw.dataDir, "root-credentials.json"),
      "whoami",
    ]);
    expect(viaFile.stdout).toMatch(/^account \(root\) of \d{16}/);
    const none = await runCliAsync(["admin", "whoami"], {
      env: { PORTCULLIS_ACCESS_KEY_ID: "", PORTCULLIS_ACCESS_KEY_SECRET: "" },
      cwd: gw.dataDir,
    });
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/no credentials/);
    const perm = await admin(
      "console-grant",
      "add",
      "--user",
      "cli-alice",
      "--topic",
      "cli-topic",
      "--perm",
      "ALL",
    );
    expect(perm.code).toBe(2);
    const wrong = await runCliAsync(["admin", "whoami"], {
      env: { ...gw.cliEnv, PORTCULLIS_ACCESS_KEY_SECRET: "wrong-secret" },
    });
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toMatch(/401 SignatureDoesNotMatch/);
  });

  it("simulate prints the decision object", async () => {
    const r = await json(
      "simulate",
      "--user",
      "cli-alice",
      "--action",
      "mq:SUB",
      "--resource",
      `acs:mq:local:${gw.root.accountId}:topic/mqtt-local/anything`,
    );
    expect(r).toMatchObject({ decision: "Allow", decidingStatements: [{ policy: "AliyunMQSubOnlyAccess" }] });
  });
});

describe("portcullis serve: default ports", () => {
  it("comes up while other brokers hold 1883, 5672 and 5673, on the next free ports, and says so", async () => {
    // Hold 1883 and 5673 (the AMQP edge's default) ourselves unless something already does;
    // RabbitMQ holds 5672 for the e2e tier.
    const holders = [createServer(), createServer()];
    await Promise.all(
      [1883, 5673].map(
        (p, i) =>
          new Promise<void>((resolve) => {
            holders[i]!.once("error", () => resolve());
            holders[i]!.listen(p, "127.0.0.1", () => resolve());
          }),
      ),
    );
    try {
      await using gw2 = await startServe({ defaultPorts: true });
      expect(gw2.mqtt!.port).not.toBe(1883);
      expect([5672, 5673]).not.toContain(gw2.amqp!.port);
      expect(gw2.output()).toMatch(
        new RegExp(`MQTT edge\\s+mqtt://127\\.0\\.0\\.1:${gw2.mqtt!.port} .*\\(port 1883 was busy\\)`),
      );
      expect(gw2.output()).toMatch(/AMQP edge\s+amqp:\/\/127\.0\.0\.1:\d+ .*\(port 5673 was busy\)/);
      expect((await gw2.admin.whoami()).accountId).toBe(gw2.root.accountId);
    } finally {
      for (const h of holders) h.close();
    }
  });
});

describe("portcullis serve: no upstream RabbitMQ", () => {
  it("comes up without the AMQP edge and says why", async () => {
    await using gw2 = await startServe({ amqpUpstream: "amqp://guest:guest@127.0.0.1:1" });
    expect(gw2.amqp).toBeUndefined();
    expect(gw2.mqtt?.port).toBeGreaterThan(0);
    expect(gw2.output()).toMatch(/AMQP edge: off \(upstream amqp:\/\/127\.0\.0\.1:1 is not reachable/);
    expect(gw2.output()).not.toContain("guest:guest");
  });
});

describe("portcullis serve --demo", () => {
  it("seeds the demo and prints mosquitto commands that work as printed; revocation stops them", async () => {
    await using demo = await startServe({ demo: true });
    const out = demo.output();
    const cmd = (prefix: string) => out.split("\n").find((l) => l.startsWith(prefix));
    const sub = cmd("mosquitto_sub ");
    const pub = cmd("mosquitto_pub ");
    expect(sub).toContain(`-p ${demo.mqtt!.port}`);
    expect(pub).toContain("GID_demo@@@pub-1");
    expect(cmd("amqp-publish ")).toContain(`@127.0.0.1:${demo.amqp!.port}/%2F`);
    // Run the printed commands through a shell, exactly as pasted.
    const received = exec("bash", ["-c", `${sub} -C 1 -W 10`]);
    await new Promise((r) => setTimeout(r, 700));
    await exec("bash", ["-c", pub!]);
    const { stdout } = await received;
    expect(stdout.trim()).toBe("demo/hello hello from portcullis");
    // Revoke the publisher's policy, confirmed by every edge; the printed publish is now refused.
    const det = await runCliAsync([
      "admin",
      "--credentials",
      join(demo.dataDir, "root-credentials.json"),
      "policy",
      "detach",
      "demo-publish",
      "--user",
      "demo-publisher",
      "--wait-enforced",
    ]);
    expect(det.code, det.stderr).toBe(0);
    expect(det.stdout).toMatch(/enforced by \d edge/);
    const denied = await exec("bash", ["-c", `${pub!} ; echo rc=$?`]);
    expect(denied.stdout + denied.stderr).toMatch(/not authori[sz]ed|rc=[1-9]/i);
  });
});
