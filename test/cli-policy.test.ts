import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { runCli } from "./helpers/cli.ts";

const dir = mkdtempSync(join(tmpdir(), "portcullis-cli-"));
const file = (name: string, body: unknown) => {
  const p = join(dir, name);
  writeFileSync(p, typeof body === "string" ? body : JSON.stringify(body, null, 2));
  return p;
};
const acct = "1234567890123456";
const topic = (t: string) => `acs:mq:local:${acct}:topic/mqtt-local/${t}`;

// Seed 003, verbatim.
const seed003 = file("seed003.json", {
  Version: "1",
  Statement: [{ Action: "mq:PUB", Resource: ["acs:mq:*:*:TopicA", "acs:mq:*:*:TopicB"], Effect: "Allow" }],
});
const officeOnly = file("office-only.json", {
  Version: "1",
  Statement: [
    {
      Effect: "Deny",
      Action: "mq:*",
      Resource: "*",
      Condition: { NotIpAddress: { "acs:SourceIp": ["10.0.0.0/8", "192.168.0.0/16"] } },
    },
  ],
});

describe("portcullis policy validate (CLI contract)", () => {
  it("exits 0 for a valid policy", () => {
    const r = runCli(["policy", "validate", seed003]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("valid policy");
  });

  it("exits 0 and warns on stderr about an unknown action of a known service", () => {
    const p = file("typo.json", {
      Version: "1",
      Statement: [{ Effect: "Allow", Action: ["amqp:CreatExchange"], Resource: "acs:amqp:*:*:/vhosts/v/*" }],
    });
    const r = runCli(["policy", "validate", p]);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/warning: Statement\[0\]\.Action\[0\]: unknown action `amqp:CreatExchange`/);
  });

  it("exits non-zero with each error and its JSON path", () => {
    const p = file("bad.json", {
      Version: "2",
      Statement: [
        { Effect: "Allow", Action: "mq:PUB", NotAction: "mq:SUB", Resource: "*" },
        {
          Effect: "Allow",
          Action: "mq:PUB",
          Resource: "*",
          Condition: { Bool: { "acs:SecureTransport": [true, false] } },
        },
        {
          Effect: "Allow",
          Action: "mq:PUB",
          Resource: "arn:bad",
          Condition: { IpAddress: { "acs:SourceIp": "300.1.1.1" } },
        },
      ],
    });
    const r = runCli(["policy", "validate", p]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("Version: `Version` must be");
    expect(r.stderr).toContain("Statement[0]: a statement needs exactly one of `Action` and `NotAction`");
    expect(r.stderr).toContain(
      'Statement[1].Condition.Bool["acs:SecureTransport"]: `Bool` takes exactly one value',
    );
    expect(r.stderr).toContain("Statement[2].Resource: malformed ARN `arn:bad`");
    expect(r.stderr).toContain(
      'Statement[2].Condition.IpAddress["acs:SourceIp"]: `300.1.1.1` is not an IP address',
    );
  });

  it("reports malformed JSON with its line and column", () => {
    const r = runCli([
      "policy",
      "validate",
      file("syntax.json", '{\n  "Version": "1",\n  "Statement": [,]\n}'),
    ]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/\$: invalid JSON at line 3, column \d+/);
  });
});

describe("portcullis policy eval (CLI contract)", () => {
  const evalJson = (args: string[]) => {
    const r = runCli(["policy", "eval", ...args]);
    expect(r.code, r.stderr).toBe(0);
    return JSON.parse(r.stdout) as {
      decision: string;
      decidingStatements: { policy: string; statement: number }[];
    };
  };

  it("allows through a custom policy file and names the deciding statement", () => {
    const d = evalJson(["--policy", seed003, "--action", "mq:PUB", "--resource", topic("TopicA/devices/1")]);
    expect(d.decision).toBe("Allow");
    expect(d.decidingStatements).toEqual([expect.objectContaining({ policy: "seed003", statement: 0 })]);
  });

  it("denies implicitly what nothing allows", () => {
    expect(
      evalJson(["--policy", seed003, "--action", "mq:SUB", "--resource", topic("TopicA")]).decision,
    ).toBe("ImplicitDeny");
  });

  it("takes system policy names and context keys; an explicit deny wins", () => {
    const args = ["--policy", "AliyunMQSubOnlyAccess", "--policy", officeOnly, "--action", "mq:SUB"];
    const inside = evalJson([...args, "--resource", topic("x"), "--context", "acs:SourceIp=10.1.2.3"]);
    expect(inside.decision).toBe("Allow");
    const outside = evalJson([...args, "--resource", topic("x"), "--context", "acs:SourceIp=8.8.8.8"]);
    expect(outside.decision).toBe("ExplicitDeny");
    expect(outside.decidingStatements).toEqual([
      expect.objectContaining({ policy: "office-only", statement: 0 }),
    ]);
  });

  it("splits context on the first `=` and honours acs:CurrentTime", () => {
    const p = file("window.json", {
      Version: "1",
      Statement: [
        {
          Effect: "Allow",
          Action: "mq:PUB",
          Resource: "*",
          Condition: {
            DateLessThan: { "acs:CurrentTime": "2026-07-01T00:00:00Z" },
            StringEquals: { "mq:ClientId": "GID_a@@@dev=1" },
          },
        },
      ],
    });
    const base = [
      "--policy",
      p,
      "--action",
      "mq:PUB",
      "--resource",
      topic("t"),
      "--context",
      "mq:ClientId=GID_a@@@dev=1",
    ];
    expect(evalJson([...base, "--context", "acs:CurrentTime=2026-06-01T12:00:00Z"]).decision).toBe("Allow");
    expect(evalJson([...base, "--context", "acs:CurrentTime=2026-08-01T12:00:00Z"]).decision).toBe(
      "ImplicitDeny",
    );
  });

  it("denies cross-account requests whatever the policy says", () => {
    const d = evalJson([
      "--policy",
      "AliyunMQFullAccess",
      "--account",
      "6543210987654321",
      "--action",
      "mq:PUB",
      "--resource",
      topic("x"),
    ]);
    expect(d.decision).toBe("ImplicitDeny");
  });

  it("exits non-zero without a decision when a policy is invalid", () => {
    const bad = file("invalid.json", {
      Version: "1",
      Statement: [{ Effect: "Maybe", Action: "mq:PUB", Resource: "*" }],
    });
    const r = runCli(["policy", "eval", "--policy", bad, "--action", "mq:PUB", "--resource", topic("x")]);
    expect(r.code).not.toBe(0);
    expect(r.stdout).toBe("");
    expect(r.stderr).toContain("Statement[0].Effect");
  });

  it("exits non-zero for a policy that is neither a file nor a system policy", () => {
    const r = runCli([
      "policy",
      "eval",
      "--policy",
      "NoSuchPolicy",
      "--action",
      "mq:PUB",
      "--resource",
      topic("x"),
    ]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("neither a readable file nor a system policy");
  });
});
