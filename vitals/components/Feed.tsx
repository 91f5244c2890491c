"use client";
// The full-screen vertical feed: one video per screen, scroll-snapped, paged
// through the videos API cursor, kept current by live status events.
import { useCallback, useEffect, useReducer, useRef } from "react";
import { Virtuoso, type VirtuosoHandle } from "react-virtuoso";
import { useReducedMotion } from "motion/react";
import { ApiError, getVideo, listVideos, playable } from "@/lib/api";
import { feedReducer, formatDuration, initialFeed, playerRole, wantsMore } from "@/lib/feed";
import { followEvents } from "@/lib/sse";
import Player from "./Player";

interface Props {
  token: string;
  onUnauthorized: () => void;
  /** Bumped after an upload finishes, to look for the new item. */
  uploads: number;
}

const PAGE = 10;

export default function Feed({ token, onUnauthorized, uploads }: Props) {
  const [s, dispatch] = useReducer(feedReducer, initialFeed);
  const list = useRef<VirtuosoHandle>(null);
  const scroller = useRef<HTMLElement | null>(null);
  const state = useRef(s);
  state.current = s;
  const reduced = useReducedMotion();

  const fail = useCallback(
    (e: unknown) => {
      if (e instanceof ApiError && e.status === 401) onUnauthorized();
      dispatch({ type: "loadError", message: e instanceof Error ? e.message : "Could not load videos." });
    },
    [onUnauthorized],
  );

  const loadMore = useCallback(() => {
    const cur = state.current;
    if (!wantsMore(cur)) return;
    dispatch({ type: "loadStart" });
    listVideos(token, cur.next ?? undefined, PAGE).then((page) => dispatch({ type: "page", page }), fail);
  }, [token, fail]);

  const reread = useCallback(() => {
    listVideos(token, undefined, PAGE).then((page) => dispatch({ type: "page", page, reset: true }), fail);
  }, [token, fail]);

  useEffect(() => {
    loadMore();
  }, [loadMore]);

  // Live status: known videos change badge; unknown ones (a fresh upload) are fetched.
  useEffect(() => {
    const ac = new AbortController();
    let opened = 0;
    followEvents(
      token,
      ({ video, status }) => {
        if (state.current.items.some((v) => v.id === video) && !playable(status)) {
          dispatch({ type: "status", id: video, status });
        } else {
          // Fetch it: new to us, or playable now and in need of its poster.
          getVideo(token, video).then((item) => dispatch({ type: "upsert", item }), () => {});
        }
      },
      () => opened++ > 0 && reread(),
      ac.signal,
    );
    return () => ac.abort();
  }, [token, reread]);

  // After an upload, poll the head of the list briefly: a safety net for a missed event.
  useEffect(() => {
    if (uploads === 0) return;
    let n = 0;
    const t = setInterval(() => {
      reread();
      if (++n >= 15) clearInterval(t);
    }, 2000);
    reread();
    return () => clearInterval(t);
  }, [uploads, reread]);

  const go = useCallback(
    (index: number) => {
      const n = state.current.items.length;
      if (n === 0) return;
      const i = Math.max(0, Math.min(n - 1, index));
      list.current?.scrollToIndex({ index: i, align: "start", behavior: reduced ? "auto" : "smooth" });
      dispatch({ type: "activate", index: i });
    },
    [reduced],
  );

  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      const t = e.target as HTMLElement | null;
      if (t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.tagName === "BUTTON" || t.isContentEditable)) return;
      if (e.key === "ArrowDown" || e.key === "PageDown" || (e.key === " " && !e.shiftKey)) {
        e.preventDefault();
        go(state.current.active + 1);
      } else if (e.key === "ArrowUp" || e.key === "PageUp" || (e.key === " " && e.shiftKey)) {
        e.preventDefault();
        go(state.current.active - 1);
      }
    };
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, [go]);

  // Keep the screen on the active video when items are inserted above it.
  useEffect(() => {
    const el = scroller.current;
    if (el && el.clientHeight > 0 && Math.round(el.scrollTop / el.clientHeight) !== s.active) {
      list.current?.scrollToIndex({ index: s.active, align: "start", behavior: "auto" });
    }
  }, [s.active, s.items.length]);

  const onScroll = useCallback(() => {
    const el = scroller.current;
    if (!el || el.clientHeight === 0) return;
    dispatch({ type: "activate", index: Math.round(el.scrollTop / el.clientHeight) });
  }, []);

  if (s.items.length === 0) {
    return (
      <div className="grid h-dvh place-items-center p-6 text-center" data-feed="empty">
        {s.loading || !s.started ? (
          <p>Loading videos…</p>
        ) : s.error ? (
          <p role="alert">{s.error}</p>
        ) : (
          <p>No videos yet. Upload one to get started.</p>
        )}
      </div>
    );
  }

  return (
    <main aria-label="Video feed" data-feed="list" data-active={s.active}>
      <Virtuoso
        ref={list}
        scrollerRef={(el) => {
          if (scroller.current) scroller.current.removeEventListener("scroll", onScroll);
          scroller.current = el as HTMLElement | null;
          scroller.current?.addEventListener("scroll", onScroll, { passive: true });
        }}
        className="feed"
        // Inline: Virtuoso's own inline height (100%) would beat a class.
        style={{ height: "100dvh" }}
        data={s.items}
        computeItemKey={(_, v) => v.id}
        increaseViewportBy={{ top: 0, bottom: 200 }}
        endReached={loadMore}
        itemContent={(i, v) => {
          const role = playerRole(i, s.active);
          return (
            <section
              className="relative h-dvh w-full snap-start overflow-hidden bg-black"
              aria-label={`Video ${i + 1} of ${s.items.length}${s.next ? "+" : ""}`}
              aria-current={i === s.active ? "true" : undefined}
              data-index={i}
              data-status={v.status}
            >
              {playable(v.status) && role !== "none" ? (
                <Player video={v} token={token} role={role} label={`Video ${i + 1}`} />
              ) : v.poster ? (
                // eslint-disable-next-line @next/next/no-img-element
                <img src={v.poster} alt="" className="absolute inset-0 h-full w-full object-contain" />
              ) : null}
              <div className="absolute left-3 top-16 flex gap-2 text-xs">
                <span className={`badge badge-${v.status}`}>{statusText(v.status)}</span>
                {v.duration ? <span className="badge">{formatDuration(v.duration)}</span> : null}
              </div>
            </section>
          );
        }}
      />
      {s.error && (
        <p role="alert" className="fixed inset-x-4 bottom-4 rounded bg-red-900/90 p-2 text-center text-sm">
          {s.error}
        </p>
      )}
    </main>
  );
}

function statusText(s: string): string {
  switch (s) {
    case "processing":
      return "Processing…";
    case "ready":
    case "complete":
      return "Ready";
    case "rejected":
      return "Rejected";
    case "failed":
      return "Failed";
    default:
      return s;
  }
}
