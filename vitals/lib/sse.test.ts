import { describe, expect, it } from "vitest";
import { parseSSE, statusOf } from "./sse";

describe("server-sent events", () => {
  it("parses complete events, skips comments and keeps the tail", () => {
    const p = parseSSE('retry: 2000\n: connected\n\nevent: status\ndata: {"status":"ready","video":"v1"}\n\nevent: sta');
    expect(p.events).toEqual([{ event: "status", data: '{"status":"ready","video":"v1"}' }]);
    expect(p.rest).toBe("event: sta");
    expect(statusOf(p.events[0])).toEqual({ video: "v1", status: "ready" });
  });

  it("ignores events that are not status changes", () => {
    expect(statusOf({ event: "message", data: "{}" })).toBeNull();
    expect(statusOf({ event: "status", data: "not json" })).toBeNull();
  });
});
