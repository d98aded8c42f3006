/**
 * `portcullis serve` starts its projection from a snapshot plus the events
 * after it (SPEC §6), with snapshots written in the background as they fall
 * due, and decides exactly as before the restart.
 */
import { readFileSync } from "node:fs";
import { afterAll, describe, expect, it } from "vitest";
import { type Serve, startServe } from "./helpers/serve.ts";

let gw: Serve | undefined;
afterAll(async () => {
  await gw?.stop();
});

const doc = (topic: string) => ({
  Version: "1",
  Statement: [{ Effect: "Allow", Action: ["mq:PUB"], Resource: [`acs:mq:*:*:topic/mqtt-local/${topic}`] }],
});

describe("portcullis serve: start from a snapshot", () => {
  it("restarts from the latest snapshot, replays only the events after it, and keeps every decision", async () => {
    gw = await startServe({ args: ["--snapshot-every", "5"], keepDataDir: true });
    const a = gw.admin;
    for (let i = 0; i < 6; i++) await a.createUser(`snap-${i}`);
    await a.createPolicy("pub-a", doc("a"));
    await a.attachPolicy("pub-a", { user: "snap-1" });
    // Snapshots fall due at multiples of 5; written in the background shortly after.
    await expect
      .poll(() => readFileSync(gw!.logFile, "utf8").includes('"msg":"snapshots written"'), {
        timeout: 10_000,
        interval: 100,
      })
      .toBe(true);
    const head = (await a.whoami()).position as number;
    const resource = `acs:mq:local:${gw.root.accountId}:topic/mqtt-local/a/x`;
    const before = await a.simulate({
      principal: { kind: "user", userName: "snap-1" },
      action: "mq:PUB",
      resource,
    });
    expect(before.decision).toBe("Allow");

    await a.detachPolicy("pub-a", { user: "snap-1" }); // an event after the last snapshot, maybe
    gw = await gw.restart();
    const log = readFileSync(gw.logFile, "utf8");
    const started = log
      .split("\n")
      .filter((l) => l.includes('"msg":"started from a snapshot"'))
      .map((l) => JSON.parse(l) as { snapshot: number; position: number })
      .at(-1);
    expect(started).toBeDefined();
    expect(started!.snapshot % 5).toBe(0);
    expect(started!.snapshot).toBeGreaterThanOrEqual(5);
    expect(started!.position).toBe(head + 1);
    const after = await gw.admin.simulate({
      principal: { kind: "user", userName: "snap-1" },
      action: "mq:PUB",
      resource,
    });
    expect(after.decision).toBe("ImplicitDeny");
    expect((await gw.admin.listUsers()).users.map((u) => String(u.userName))).toEqual(
      expect.arrayContaining(["snap-0", "snap-5"]),
    );
  });
});
