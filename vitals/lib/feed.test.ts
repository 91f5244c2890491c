import { describe, expect, it } from "vitest";
import { feedReducer, formatDuration, initialFeed, playerRole, wantsMore, type FeedState } from "./feed";
import type { VideoItem } from "./api";

const v = (id: string, status = "ready"): VideoItem => ({ id, status, created: "2026-11-27T00:00:00Z" });

function paged(...ids: string[]): FeedState {
  let s = feedReducer(initialFeed, { type: "loadStart" });
  s = feedReducer(s, { type: "page", page: { videos: ids.map((i) => v(i)), next: "c1" } });
  return s;
}

describe("feed state", () => {
  it("pages in with the cursor and stops at the last page", () => {
    let s = paged("a", "b");
    expect(s.items.map((x) => x.id)).toEqual(["a", "b"]);
    expect(s.next).toBe("c1");
    expect(wantsMore(s)).toBe(true);
    s = feedReducer(feedReducer(s, { type: "loadStart" }), { type: "page", page: { videos: [v("b"), v("c")] } });
    expect(s.items.map((x) => x.id)).toEqual(["a", "b", "c"]); // b not duplicated
    expect(s.next).toBeNull();
    expect(wantsMore(s)).toBe(false);
  });

  it("does not request twice while loading", () => {
    const s = feedReducer(initialFeed, { type: "loadStart" });
    expect(wantsMore(initialFeed)).toBe(true);
    expect(wantsMore(s)).toBe(false);
  });

  it("keeps the same video active when a new upload lands on top", () => {
    let s = feedReducer(paged("a", "b"), { type: "activate", index: 1 });
    s = feedReducer(s, { type: "upsert", item: v("new", "processing") });
    expect(s.items[0].id).toBe("new");
    expect(s.items[s.active].id).toBe("b");
  });

  it("updates a status and merges an upsert of a known video", () => {
    let s = feedReducer(paged("a"), { type: "upsert", item: v("n", "processing") });
    s = feedReducer(s, { type: "status", id: "n", status: "processing" });
    expect(s.items[0].status).toBe("processing");
    s = feedReducer(s, { type: "upsert", item: { ...v("n", "ready"), poster: "/media/t/videos/n/poster.jpg" } });
    expect(s.items.length).toBe(2);
    expect(s.items[0]).toMatchObject({ status: "ready", poster: "/media/t/videos/n/poster.jpg" });
    const same = feedReducer(s, { type: "status", id: "unknown", status: "ready" });
    expect(same).toBe(s);
  });

  it("re-reading the head keeps paged-in items and the active video", () => {
    let s = feedReducer(paged("a", "b", "c"), { type: "activate", index: 2 });
    s = feedReducer(s, { type: "page", page: { videos: [v("z"), v("a")], next: "x" }, reset: true });
    expect(s.items.map((x) => x.id)).toEqual(["z", "a", "b", "c"]);
    expect(s.items[s.active].id).toBe("c");
    expect(s.next).toBe("c1");
  });

  it("clamps activation to the list", () => {
    const s = paged("a", "b");
    expect(feedReducer(s, { type: "activate", index: 9 }).active).toBe(1);
    expect(feedReducer(s, { type: "activate", index: -3 }).active).toBe(0);
  });

  it("gives players to the active item and its neighbours only", () => {
    expect([0, 1, 2, 3].map((i) => playerRole(i, 1))).toEqual(["preload", "active", "preload", "none"]);
  });

  it("formats durations", () => {
    expect(formatDuration(65.4)).toBe("1:05");
    expect(formatDuration(undefined)).toBe("");
  });
});
