// Feed state: the list of videos, the paging cursor and the active item, as a
// reducer so that paging, live status events and scrolling compose predictably.
import type { VideoItem, VideoPage, VideoStatus } from "./api";

export interface FeedState {
  items: VideoItem[];
  next: string | null; // cursor of the next page; null when the last page is in
  started: boolean; // the first page was requested at least once
  loading: boolean;
  active: number;
  error: string | null;
}

export type FeedAction =
  | { type: "loadStart" }
  | { type: "page"; page: VideoPage; reset?: boolean }
  | { type: "loadError"; message: string }
  | { type: "status"; id: string; status: VideoStatus }
  | { type: "upsert"; item: VideoItem }
  | { type: "activate"; index: number };

export const initialFeed: FeedState = { items: [], next: null, started: false, loading: false, active: 0, error: null };

/** Whether another page should be requested now. */
export function wantsMore(s: FeedState): boolean {
  return !s.loading && (!s.started || s.next !== null);
}

function clamp(i: number, n: number): number {
  return n === 0 ? 0 : Math.max(0, Math.min(n - 1, i));
}

export function feedReducer(s: FeedState, a: FeedAction): FeedState {
  switch (a.type) {
    case "loadStart":
      return { ...s, loading: true, started: true, error: null };
    case "page": {
      const activeId = s.items[s.active]?.id;
      let items: VideoItem[];
      if (a.reset) {
        // A re-read (after reconnecting) replaces the head but keeps what was
        // paged in beyond it, so the viewer's place is not lost.
        const fresh = new Set(a.page.videos.map((v) => v.id));
        items = [...a.page.videos, ...s.items.filter((v) => !fresh.has(v.id))];
      } else {
        const seen = new Set(s.items.map((v) => v.id));
        items = [...s.items, ...a.page.videos.filter((v) => !seen.has(v.id))];
      }
      const next = a.reset ? (s.started && s.items.length > a.page.videos.length ? s.next : (a.page.next ?? null)) : (a.page.next ?? null);
      const kept = activeId ? items.findIndex((v) => v.id === activeId) : -1;
      return { ...s, items, next, loading: false, started: true, error: null, active: clamp(kept >= 0 ? kept : s.active, items.length) };
    }
    case "loadError":
      return { ...s, loading: false, error: a.message };
    case "status": {
      const i = s.items.findIndex((v) => v.id === a.id);
      if (i < 0 || s.items[i].status === a.status) return s;
      const items = s.items.slice();
      items[i] = { ...items[i], status: a.status };
      return { ...s, items };
    }
    case "upsert": {
      const i = s.items.findIndex((v) => v.id === a.item.id);
      if (i >= 0) {
        const items = s.items.slice();
        items[i] = { ...items[i], ...a.item };
        return { ...s, items };
      }
      // New videos go on top; the active video stays the same one.
      const items = [a.item, ...s.items];
      return { ...s, items, active: s.items.length === 0 ? 0 : s.active + 1 };
    }
    case "activate":
      return s.active === clamp(a.index, s.items.length) ? s : { ...s, active: clamp(a.index, s.items.length) };
  }
}

/** Which items get a player: the active one plays, its neighbours preload. */
export function playerRole(index: number, active: number): "active" | "preload" | "none" {
  if (index === active) return "active";
  if (index === active + 1 || index === active - 1) return "preload";
  return "none";
}

/** "1:05" from seconds. */
export function formatDuration(sec?: number): string {
  if (sec === undefined || !Number.isFinite(sec) || sec < 0) return "";
  const s = Math.round(sec);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}
