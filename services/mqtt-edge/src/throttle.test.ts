import { describe, expect, test } from "vitest";
import { AuthThrottle } from "./throttle.ts";

describe("AuthThrottle", () => {
  test("free failures, then a doubling delay, capped", () => {
    const t = new AuthThrottle({ freeFailures: 2, baseDelayMs: 100, maxDelayMs: 450 });
    const at = 1_000_000;
    const delays: number[] = [];
    for (let i = 0; i < 7; i++) {
      delays.push(t.delayFor("1.2.3.4", undefined, at));
      t.failure("1.2.3.4", undefined, at);
    }
    expect(delays).toEqual([0, 0, 100, 200, 400, 450, 450]);
  });

  test("the key's record slows a key tried from many addresses", () => {
    const t = new AuthThrottle({ freeFailures: 2, baseDelayMs: 50 });
    t.failure("10.0.0.1", "LTAI1", 0);
    t.failure("10.0.0.2", "LTAI1", 0);
    expect(t.delayFor("10.0.0.3", "LTAI1", 0)).toBe(50);
    expect(t.delayFor("10.0.0.3", "LTAI2", 0)).toBe(0);
  });

  test("failures are forgotten after the window; a success clears them", () => {
    const t = new AuthThrottle({ freeFailures: 0, baseDelayMs: 10, windowMs: 1_000 });
    t.failure("a", "k", 0);
    expect(t.delayFor("a", "k", 500)).toBe(10);
    expect(t.delayFor("a", "k", 1_501)).toBe(0);
    t.failure("a", "k", 2_000);
    t.success("a", "k");
    expect(t.delayFor("a", "k", 2_000)).toBe(0);
  });

  test("memory is bounded: the least recently failing records go first", () => {
    const t = new AuthThrottle({ freeFailures: 0, maxEntries: 100 });
    for (let i = 0; i < 10_000; i++) t.failure(`10.0.${i >> 8}.${i & 255}`, undefined, i);
    expect(t.size).toBe(100);
    expect(t.delayFor("10.0.0.0", undefined, 10_000)).toBe(0); // evicted
    expect(t.delayFor("10.0.39.15", undefined, 10_000)).toBeGreaterThan(0); // i = 9999 kept
  });

  test("huge failure counts do not overflow the cap", () => {
    const t = new AuthThrottle({ freeFailures: 0, baseDelayMs: 100, maxDelayMs: 2_000 });
    for (let i = 0; i < 5_000; i++) t.failure("x", undefined, 0);
    expect(t.delayFor("x", undefined, 0)).toBe(2_000);
  });
});
