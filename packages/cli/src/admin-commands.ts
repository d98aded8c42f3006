/**
 * `portcullis admin …`: a client of the admin API for every operation.
 *
 * Credentials, first found wins: `--credentials FILE` (the root-credentials.json
 * format: `accessKeyId`, `accessKeySecret`, `endpoint`); the environment
 * (`PORTCULLIS_ENDPOINT`, `PORTCULLIS_ACCESS_KEY_ID`, `PORTCULLIS_ACCESS_KEY_SECRET`);
 * `./.data/root-credentials.json`. `--endpoint` / `PORTCULLIS_ENDPOINT` override the file's endpoint.
 *
 * Output: one human line (or table) by default; `--json` prints the API's JSON answer
 * (a write's includes `position`). Exit codes: 0 done, 1 refused by the API (status,
 * code and message on stderr) or unreachable, 2 usage, 3 `--wait-enforced` timed out
 * with edges lagging (the write itself was done).
 */
import { existsSync, readFileSync } from "node:fs";
import { resolve } from "node:path";
import {
  AdminApiError,
  AdminClient,
  type AdminCredentials,
  type WriteResult,
} from "@portcullis/admin-api/client";
import { type Command, Option } from "commander";
import { type CliIO, CliUsageError } from "./io.ts";

interface GlobalOpts {
  credentials?: string;
  endpoint?: string;
  json?: boolean;
  waitEnforced?: boolean;
  waitTimeout?: number;
  instance?: string;
}

/** Resolve credentials from flags, environment or the default file. */
export function resolveCredentials(o: GlobalOpts, env: NodeJS.ProcessEnv = process.env): AdminCredentials {
  let creds: Partial<AdminCredentials> | undefined;
  const fromFile = (path: string) => {
    let parsed: Partial<AdminCredentials>;
    try {
      parsed = JSON.parse(readFileSync(path, "utf8")) as Partial<AdminCredentials>;
    } catch (e) {
      throw new CliUsageError(`cannot read credentials file \`${path}\`: ${(e as Error).message}`);
    }
    return parsed;
  };
  if (o.credentials) creds = fromFile(o.credentials);
  else if (env.PORTCULLIS_ACCESS_KEY_ID || env.PORTCULLIS_ACCESS_KEY_SECRET)
    creds = { accessKeyId: env.PORTCULLIS_ACCESS_KEY_ID, accessKeySecret: env.PORTCULLIS_ACCESS_KEY_SECRET };
  else if (existsSync(resolve(".data/root-credentials.json")))
    creds = fromFile(resolve(".data/root-credentials.json"));
  const endpoint = o.endpoint ?? env.PORTCULLIS_ENDPOINT ?? creds?.endpoint;
  if (!creds?.accessKeyId || !creds.accessKeySecret)
    throw new CliUsageError(
      "no credentials: pass --credentials FILE or set PORTCULLIS_ACCESS_KEY_ID and PORTCULLIS_ACCESS_KEY_SECRET",
    );
  if (!endpoint) throw new CliUsageError("no endpoint: pass --endpoint URL or set PORTCULLIS_ENDPOINT");
  return { endpoint, accessKeyId: creds.accessKeyId, accessKeySecret: creds.accessKeySecret };
}

const collect = (v: string, prev: string[] = []) => [...prev, v];
const perms = (p: string): ("PUB" | "SUB")[] => {
  const up = p.toUpperCase();
  if (up === "PUB" || up === "SUB") return [up];
  if (up === "PUB+SUB" || up === "PUB,SUB" || up === "SUB+PUB") return ["PUB", "SUB"];
  throw new CliUsageError(`--perm must be PUB, SUB or PUB+SUB, not \`${p}\``);
};
const readDoc = (file: string): unknown => {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    throw new CliUsageError(`cannot read \`${file}\`: ${(e as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new CliUsageError(`\`${file}\` is not JSON: ${(e as Error).message}`);
  }
};
const target = (o: { user?: string; group?: string }): { user: string } | { group: string } => {
  if (o.user && o.group) throw new CliUsageError("give --user or --group, not both");
  if (o.user) return { user: o.user };
  if (o.group) return { group: o.group };
  throw new CliUsageError("give --user NAME or --group NAME");
};

type Row = Record<string, unknown>;

/** Register `admin` and its sub-commands. `run` wraps each action (exit code, errors). */
export function addAdminCommands(program: Command, io: CliIO, setCode: (c: number) => void): void {
  const admin = program
    .command("admin")
    .description("administer a running gateway through its HTTP API (every call is signed and authorized)")
    .option("--credentials <file>", "credentials file (root-credentials.json format)")
    .option("--endpoint <url>", "admin API URL (default: the credentials' endpoint or PORTCULLIS_ENDPOINT)")
    .option("--json", "print the API's JSON answer")
    .option("--wait-enforced", "writes wait until every live edge has applied them")
    .addOption(
      new Option("--wait-timeout <ms>", "how long --wait-enforced waits (default 5000)").argParser(Number),
    )
    .option("--instance <id>", "MQTT instance for topics, Group IDs and console grants", "mqtt-local");

  /** Define an action: `f(client, args…)` returns the answer and a human line. */
  const act =
    (
      f: (
        c: AdminClient,
        g: GlobalOpts,
        ...args: never[]
      ) => Promise<{ answer: unknown; human: string | string[] }>,
    ) =>
    async (...args: unknown[]) => {
      const cmd = args.at(-1) as Command;
      const g = cmd.optsWithGlobals() as GlobalOpts;
      const client = new AdminClient(resolveCredentials(g), {
        ...(g.waitEnforced ? { waitEnforced: true } : {}),
        ...(g.waitTimeout !== undefined ? { waitTimeoutMs: g.waitTimeout } : {}),
        mqttInstanceId: g.instance ?? "mqtt-local",
      });
      try {
        const { answer, human } = await f(client, g, ...(args.slice(0, -1) as never[]));
        const w = answer as Partial<WriteResult>;
        if (g.json) io.out(JSON.stringify(answer, null, 2));
        else {
          for (const line of Array.isArray(human) ? human : [human]) io.out(line);
          if (w.enforcement) {
            const e = w.enforcement;
            io.out(
              e.confirmed
                ? `enforced by ${e.edges.length} edge(s) in ${e.waitedMs} ms${e.edges.length ? `: ${e.edges.map((x) => x.edgeId).join(", ")}` : ""}`
                : `NOT confirmed after ${e.waitedMs} ms; lagging: ${e.lagging.map((x) => `${x.edgeId} at ${x.position}`).join(", ")}`,
            );
          }
        }
        setCode(w.enforcement && !w.enforcement.confirmed ? 3 : 0);
      } catch (e) {
        if (e instanceof AdminApiError) {
          if (g.json) io.out(JSON.stringify({ status: e.status, ...e.body }, null, 2));
          io.err(`portcullis: ${e.status} ${e.code}: ${e.message}${e.path ? ` (at ${e.path})` : ""}`);
          setCode(1);
          return;
        }
        const cause = (e as { cause?: { code?: string } }).cause;
        if (e instanceof TypeError && cause?.code) {
          io.err(`portcullis: cannot reach ${client.endpoint}: ${cause.code}`);
          setCode(1);
          return;
        }
        throw e;
      }
    };
  const pos = (w: Partial<WriteResult>) =>
    w.changed === false ? " (no change)" : w.position !== undefined ? ` (position ${w.position})` : "";

  admin
    .command("whoami")
    .description("the caller's account and principal")
    .action(
      act(async (c) => {
        const a = (await c.whoami()) as {
          accountId: string;
          alias: string;
          principal: { kind: string; userName?: string };
        };
        return {
          answer: a,
          human: `${a.principal.kind === "root" ? "account (root)" : `user ${a.principal.userName}`} of ${a.accountId} (${a.alias})`,
        };
      }),
    );

  // ---- users ----
  const user = admin.command("user").description("RAM users");
  user
    .command("create <name>")
    .option("--display-name <text>")
    .action(
      act(async (c, _g, name: string, o: { displayName?: string }) => {
        const r = await c.createUser(name, o.displayName ? { displayName: o.displayName } : {});
        return { answer: r, human: `created user ${name} (id ${r.userId})${pos(r)}` };
      }),
    );
  user.command("list").action(
    act(async (c) => {
      const r = await c.listUsers();
      const rows = r.users.map((u: Row) => {
        const keys = (u.accessKeys as Row[]).map(
          (k) => `${k.accessKeyId}${k.status === "Inactive" ? "(inactive)" : ""}`,
        );
        const pols = (u.policies as Row[]).map((p) => p.policyName);
        return `${String(u.userName).padEnd(24)} ${u.disabled ? "disabled" : "enabled "} policies: ${pols.join(",") || "-"}  keys: ${keys.join(",") || "-"}`;
      });
      return { answer: r, human: rows.length ? rows : ["(no users)"] };
    }),
  );
  user.command("get <name>").action(
    act(async (c, _g, name: string) => {
      const r = await c.getUser(name);
      return { answer: r, human: JSON.stringify(r, null, 2) };
    }),
  );
  user
    .command("update <name>")
    .option("--new-name <name>")
    .option("--display-name <text>")
    .action(
      act(async (c, _g, name: string, o: { newName?: string; displayName?: string }) => {
        const r = await c.updateUser(name, {
          ...(o.newName ? { newUserName: o.newName } : {}),
          ...(o.displayName ? { displayName: o.displayName } : {}),
        });
        return { answer: r, human: `updated user ${o.newName ?? name}${pos(r)}` };
      }),
    );
  for (const verb of ["disable", "enable"] as const)
    user.command(`${verb} <name>`).action(
      act(async (c, _g, name: string) => {
        const r = verb === "disable" ? await c.disableUser(name) : await c.enableUser(name);
        return { answer: r, human: `${verb}d user ${name}${pos(r)}` };
      }),
    );
  user.command("delete <name>").action(
    act(async (c, _g, name: string) => {
      const r = await c.deleteUser(name);
      return { answer: r, human: `deleted user ${name}${pos(r)}` };
    }),
  );

  // ---- access keys ----
  const ak = admin.command("accesskey").description("AccessKeys (at most 2 per user)");
  ak.command("create")
    .description("create an AccessKey for --user, or for the account itself; prints the secret once")
    .option("--user <name>")
    .action(
      act(async (c, _g, o: { user?: string }) => {
        const r = await c.createAccessKey(o.user);
        return {
          answer: r,
          human: [
            `created AccessKey for ${o.user ? `user ${o.user}` : "the account"}${pos(r)}`,
            `accessKeyId:     ${r.accessKeyId}`,
            `accessKeySecret: ${r.accessKeySecret}   (shown once: store it now)`,
          ],
        };
      }),
    );
  ak.command("list")
    .option("--user <name>")
    .action(
      act(async (c, _g, o: { user?: string }) => {
        const r = await c.listAccessKeys(o.user);
        return {
          answer: r,
          human: r.accessKeys.length
            ? r.accessKeys.map((k: Row) => `${k.accessKeyId}  ${k.status}  created ${k.createdAt}`)
            : ["(no access keys)"],
        };
      }),
    );
  for (const [verb, status] of [
    ["disable", "Inactive"],
    ["enable", "Active"],
  ] as const)
    ak.command(`${verb} <id>`).action(
      act(async (c, _g, id: string) => {
        const r = await c.setAccessKeyStatus(id, status);
        return { answer: r, human: `AccessKey ${id} is ${status}${pos(r)}` };
      }),
    );
  ak.command("delete <id>").action(
    act(async (c, _g, id: string) => {
      const r = await c.deleteAccessKey(id);
      return { answer: r, human: `deleted AccessKey ${id}${pos(r)}` };
    }),
  );

  // ---- groups ----
  const group = admin.command("group").description("RAM groups (a user is in at most 10)");
  group
    .command("create <name>")
    .option("--comments <text>")
    .action(
      act(async (c, _g, name: string, o: { comments?: string }) => {
        const r = await c.createGroup(name, o.comments ? { comments: o.comments } : {});
        return { answer: r, human: `created group ${name}${pos(r)}` };
      }),
    );
  group.command("list").action(
    act(async (c) => {
      const r = await c.listGroups();
      return {
        answer: r,
        human: r.groups.length
          ? r.groups.map(
              (g: Row) =>
                `${String(g.groupName).padEnd(24)} members: ${(g.members as string[]).join(",") || "-"}`,
            )
          : ["(no groups)"],
      };
    }),
  );
  group.command("get <name>").action(
    act(async (c, _g, name: string) => {
      const r = await c.getGroup(name);
      return { answer: r, human: JSON.stringify(r, null, 2) };
    }),
  );
  group.command("delete <name>").action(
    act(async (c, _g, name: string) => {
      const r = await c.deleteGroup(name);
      return { answer: r, human: `deleted group ${name}${pos(r)}` };
    }),
  );
  group.command("add-user <group> <user>").action(
    act(async (c, _g, g: string, u: string) => {
      const r = await c.addUserToGroup(g, u);
      return { answer: r, human: `added ${u} to group ${g}${pos(r)}` };
    }),
  );
  group.command("remove-user <group> <user>").action(
    act(async (c, _g, g: string, u: string) => {
      const r = await c.removeUserFromGroup(g, u);
      return { answer: r, human: `removed ${u} from group ${g}${pos(r)}` };
    }),
  );

  // ---- policies ----
  const policy = admin.command("policy").description("custom and system policies, versions, attachments");
  policy
    .command("create <name>")
    .requiredOption("--document <file>", "policy document (JSON)")
    .option("--description <text>")
    .action(
      act(async (c, _g, name: string, o: { document: string; description?: string }) => {
        const r = await c.createPolicy(
          name,
          readDoc(o.document),
          o.description ? { description: o.description } : {},
        );
        const warnings = (r.warnings as { path: string; message: string }[] | undefined) ?? [];
        return {
          answer: r,
          human: [
            `created policy ${name} (v1)${pos(r)}`,
            ...warnings.map((w) => `warning: ${w.path}: ${w.message}`),
          ],
        };
      }),
    );
  policy
    .command("list")
    .addOption(new Option("--type <type>").choices(["System", "Custom"]))
    .action(
      act(async (c, _g, o: { type?: "System" | "Custom" }) => {
        const r = await c.listPolicies(o.type);
        return {
          answer: r,
          human: r.policies.map(
            (p: Row) =>
              `${String(p.policyName).padEnd(28)} ${String(p.policyType).padEnd(7)} ${p.defaultVersion}  ${p.description ?? ""}`,
          ),
        };
      }),
    );
  policy.command("get <name>").action(
    act(async (c, _g, name: string) => {
      const r = await c.getPolicy(name);
      return { answer: r, human: JSON.stringify(r, null, 2) };
    }),
  );
  policy.command("attachments <name>").action(
    act(async (c, _g, name: string) => {
      const r = await c.listEntitiesForPolicy(name);
      return {
        answer: r,
        human: [`users: ${r.users.join(", ") || "-"}`, `groups: ${r.groups.join(", ") || "-"}`],
      };
    }),
  );
  for (const verb of ["attach", "detach"] as const)
    policy
      .command(`${verb} <name>`)
      .description(`${verb} a custom or system policy ${verb === "attach" ? "to" : "from"} a user or group`)
      .option("--user <name>")
      .option("--group <name>")
      .addOption(new Option("--type <type>", "default: inferred from the name").choices(["System", "Custom"]))
      .action(
        act(async (c, _g, name: string, o: { user?: string; group?: string; type?: "System" | "Custom" }) => {
          const t = target(o);
          const r =
            verb === "attach" ? await c.attachPolicy(name, t, o.type) : await c.detachPolicy(name, t, o.type);
          const who = "user" in t ? `user ${t.user}` : `group ${t.group}`;
          return {
            answer: r,
            human: `${verb}ed ${name} ${verb === "attach" ? "to" : "from"} ${who}${pos(r)}`,
          };
        }),
      );
  policy
    .command("set-default <name> <version>")
    .description("make a version the default")
    .action(
      act(async (c, _g, name: string, v: string) => {
        const r = await c.setDefaultPolicyVersion(name, v);
        return { answer: r, human: `policy ${name}: default version ${v}${pos(r)}` };
      }),
    );
  policy.command("delete <name>").action(
    act(async (c, _g, name: string) => {
      const r = await c.deletePolicy(name);
      return { answer: r, human: `deleted policy ${name}${pos(r)}` };
    }),
  );
  const version = policy.command("version").description("policy versions (at most 5)");
  version
    .command("create <name>")
    .requiredOption("--document <file>")
    .option("--set-default", "make the new version the default")
    .action(
      act(async (c, _g, name: string, o: { document: string; setDefault?: boolean }) => {
        const r = await c.createPolicyVersion(name, readDoc(o.document), {
          setAsDefault: o.setDefault ?? false,
        });
        return {
          answer: r,
          human: `policy ${name}: created ${r.versionId}${o.setDefault ? " (default)" : ""}${pos(r)}`,
        };
      }),
    );
  version.command("get <name> <version>").action(
    act(async (c, _g, name: string, v: string) => {
      const r = await c.getPolicyVersion(name, v);
      return { answer: r, human: JSON.stringify(r, null, 2) };
    }),
  );
  version.command("delete <name> <version>").action(
    act(async (c, _g, name: string, v: string) => {
      const r = await c.deletePolicyVersion(name, v);
      return { answer: r, human: `policy ${name}: deleted ${v}${pos(r)}` };
    }),
  );

  // ---- MQTT ----
  const topic = admin.command("topic").description("MQTT parent topics (in --instance)");
  topic.command("create <name>").action(
    act(async (c, g, name: string) => {
      const r = await c.createTopic(name);
      return { answer: r, human: `created topic ${name} in ${g.instance}${pos(r)}` };
    }),
  );
  topic.command("list").action(
    act(async (c) => {
      const r = await c.listTopics();
      return { answer: r, human: r.topics.length ? r.topics : ["(no topics)"] };
    }),
  );
  topic.command("delete <name>").action(
    act(async (c, _g, name: string) => {
      const r = await c.deleteTopic(name);
      return { answer: r, human: `deleted topic ${name}${pos(r)}` };
    }),
  );
  const gid = admin.command("group-id").description("MQTT Group IDs (in --instance); owned by their creator");
  gid.command("create <gid>").action(
    act(async (c, g, id: string) => {
      const r = await c.createGroupId(id);
      return { answer: r, human: `created Group ID ${id} in ${g.instance}${pos(r)}` };
    }),
  );
  gid.command("list").action(
    act(async (c) => {
      const r = await c.listGroupIds();
      return {
        answer: r,
        human: r.groupIds.length
          ? r.groupIds.map((x: Row) => {
              const owner = x.owner as { kind: string; userName?: string };
              return `${String(x.groupId).padEnd(28)} owner: ${owner.kind === "root" ? "account" : owner.userName}`;
            })
          : ["(no Group IDs)"],
      };
    }),
  );
  gid.command("delete <gid>").action(
    act(async (c, _g, id: string) => {
      const r = await c.deleteGroupId(id);
      return { answer: r, human: `deleted Group ID ${id}${pos(r)}` };
    }),
  );
  const grant = admin.command("console-grant").description("console grants: PUB/SUB on a topic for a user");
  for (const verb of ["add", "remove"] as const)
    grant
      .command(verb)
      .requiredOption("--user <name>")
      .requiredOption("--topic <topic>")
      .requiredOption("--perm <perm>", "PUB, SUB or PUB+SUB")
      .action(
        act(async (c, g, o: { user: string; topic: string; perm: string }) => {
          const p = perms(o.perm);
          const r =
            verb === "add"
              ? await c.addConsoleGrant(o.user, o.topic, p, g.instance)
              : await c.removeConsoleGrant(o.user, o.topic, p, g.instance);
          return {
            answer: r,
            human: `${verb === "add" ? "granted" : "revoked"} ${p.join("+")} on ${o.topic} ${verb === "add" ? "to" : "from"} ${o.user}${pos(r)}`,
          };
        }),
      );
  grant
    .command("list")
    .requiredOption("--user <name>")
    .action(
      act(async (c, _g, o: { user: string }) => {
        const r = await c.listConsoleGrants(o.user);
        return {
          answer: r,
          human: r.consoleGrants.length
            ? r.consoleGrants.map(
                (x: Row) => `${x.instanceId}/${x.topic}  ${(x.perms as string[]).join("+")}`,
              )
            : ["(no console grants)"],
        };
      }),
    );

  // ---- simulate ----
  admin
    .command("simulate")
    .description("the decision object for a request (at head, or at --position / --time)")
    .option("--user <name>", "a RAM user of the account")
    .option("--root", "the account itself")
    .requiredOption("--action <action>")
    .requiredOption("--resource <arn>")
    .option("--context <key=value>", "context key (repeatable)", collect)
    .addOption(new Option("--position <n>").argParser(Number))
    .option("--time <iso>")
    .action(
      act(
        async (
          c,
          _g,
          o: {
            user?: string;
            root?: boolean;
            action: string;
            resource: string;
            context?: string[];
            position?: number;
            time?: string;
          },
        ) => {
          if (!o.user === !o.root) throw new CliUsageError("give --user NAME or --root");
          const context: Record<string, string | string[]> = {};
          for (const kv of o.context ?? []) {
            const eq = kv.indexOf("=");
            if (eq <= 0) throw new CliUsageError(`--context must be KEY=VALUE, not \`${kv}\``);
            const k = kv.slice(0, eq);
            const v = kv.slice(eq + 1);
            const prev = context[k];
            context[k] = prev === undefined ? v : [...(Array.isArray(prev) ? prev : [prev]), v];
          }
          const r = await c.simulate({
            principal: o.user ? { kind: "user", userName: o.user } : { kind: "root" },
            action: o.action,
            resource: o.resource,
            ...(Object.keys(context).length ? { context } : {}),
            ...(o.position !== undefined ? { position: o.position } : {}),
            ...(o.time ? { time: o.time } : {}),
          });
          return { answer: r, human: JSON.stringify(r, null, 2) };
        },
      ),
    );
}
