/**
 * Runs the contract suite for every registered adapter, and fails when an
 * adapter file has no registry entry (STYLE.md: wiring an adapter in is mandatory).
 */
import { readdirSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { eventStoreContract } from "./contract.ts";
import { ADAPTERS } from "./registry.ts";

for (const adapter of ADAPTERS) {
  const missing = adapter.requires !== undefined && !process.env[adapter.requires];
  if (missing) {
    // The only allowed skip: an adapter whose server is configured by the environment.
    describe.skip(`event store contract: ${adapter.name} (skipped: ${adapter.requires} is not set)`, () => {
      it(`needs ${adapter.requires}`, () => {});
    });
  } else {
    eventStoreContract({ adapter: adapter.name, create: () => adapter.create() });
  }
}

describe("event store registry", () => {
  it("has exactly one entry per adapter file under src/adapters/", () => {
    const files = readdirSync(new URL("./adapters/", import.meta.url))
      .filter((f) => f.endsWith(".ts") && !f.endsWith(".test.ts") && !f.endsWith(".d.ts"))
      .map((f) => f.slice(0, -".ts".length))
      .sort();
    const names = ADAPTERS.map((a) => a.name);
    expect(new Set(names).size, "duplicate registry entries").toBe(names.length);
    expect([...names].sort(), "src/adapters/*.ts and ADAPTERS in src/registry.ts must match").toEqual(files);
  });
});
