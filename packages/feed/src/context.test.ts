import { afterEach, describe, expect, it, vi } from "vitest";
import { clockContext, extendContext, nowIso, recordContext } from "./context.ts";

afterEach(() => {
  vi.useRealTimers();
});

describe("recordContext", () => {
  it("copies own and inherited keys with the time as ISO 8601, frozen", () => {
    vi.useFakeTimers({ now: Date.UTC(2026, 11, 1, 12, 0, 0, 5) });
    const base = clockContext({ "acs:SourceIp": "10.0.0.1", "mq:ClientId": "GID_a@@@1" });
    const ctx = extendContext(base, { "mq:Qos": 1 });
    const r = recordContext(ctx);
    expect(r).toEqual({
      "acs:SourceIp": "10.0.0.1",
      "mq:ClientId": "GID_a@@@1",
      "mq:Qos": 1,
      "acs:CurrentTime": "2026-12-01T12:00:00.005Z",
    });
    expect(Object.isFrozen(r)).toBe(true);
    expect(JSON.parse(JSON.stringify(r))).toEqual(r);
  });

  it("is shared by the records of one context within one millisecond, and new after it", () => {
    vi.useFakeTimers({ now: Date.UTC(2026, 11, 1, 12, 0, 0, 0) });
    const a = clockContext({ "mq:ClientId": "GID_a@@@1" });
    const b = clockContext({ "mq:ClientId": "GID_a@@@2" });
    const ra = recordContext(a);
    expect(recordContext(a)).toBe(ra);
    const rb = recordContext(b);
    expect(rb).not.toBe(ra);
    expect(recordContext(a)).toBe(ra); // interleaved sessions each keep theirs
    vi.advanceTimersByTime(1);
    const later = recordContext(a);
    expect(later).not.toBe(ra);
    expect(later["acs:CurrentTime"]).toBe("2026-12-01T12:00:00.001Z");
    expect(ra["acs:CurrentTime"]).toBe("2026-12-01T12:00:00.000Z");
    expect(nowIso()).toBe("2026-12-01T12:00:00.001Z");
  });
});
