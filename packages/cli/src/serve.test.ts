/** Port choice of `serve`: defaults move to the next free port, explicit ports never do. */
import { createServer, type Server } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { onFreePort } from "./serve.ts";

const servers: Server[] = [];
const listen = (port: number) =>
  new Promise<Server>((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(port, "127.0.0.1", () => {
      servers.push(s);
      resolve(s);
    });
  });
const portOf = (s: Server) => (s.address() as { port: number }).port;
afterEach(() => {
  for (const s of servers.splice(0)) s.close();
});

describe("onFreePort", () => {
  it("takes the next free port when the preferred one is held, and says it moved", async () => {
    const held = portOf(await listen(0));
    const r = await onFreePort("test", "127.0.0.1", undefined, held, (p) => listen(p));
    expect(r.port).toBeGreaterThan(held);
    expect(r.moved).toBe(true);
    expect(portOf(r.value)).toBe(r.port);
  });
  it("an explicit port that is held is an error naming it", async () => {
    const held = portOf(await listen(0));
    await expect(onFreePort("MQTT edge", "127.0.0.1", held, 1883, (p) => listen(p))).rejects.toThrow(
      new RegExp(`MQTT edge: port ${held} on 127.0.0.1 is in use`),
    );
  });
  it("retries when the port is taken between the probe and the listen", async () => {
    const held = portOf(await listen(0));
    await new Promise<void>((r) => servers.pop()!.close(() => r()));
    let first = true;
    const r = await onFreePort("test", "127.0.0.1", undefined, held, async (p) => {
      if (first) {
        first = false;
        throw Object.assign(new Error("busy"), { code: "EADDRINUSE" });
      }
      return listen(p);
    });
    expect(r.port).toBeGreaterThan(held);
  });
});
