"use client";
// One video: hls.js (checked with Hls.isSupported() first, since Chromium
// claims native HLS "maybe"), native HLS otherwise. A preloading player
// buffers only the first segment; the active one plays muted and buffers on.
import Hls from "hls.js";
import { useEffect, useRef, useState } from "react";
import { signUrl, type VideoItem } from "@/lib/api";
import { SignedSource } from "@/lib/signer";

const PRELOAD_BUFFER_S = 2; // about one segment
const ACTIVE_BUFFER_S = 30;

interface Props {
  video: VideoItem;
  token: string;
  role: "active" | "preload";
  label: string;
}

declare global {
  interface Window {
    /** Time-to-first-frame samples (ms), for the e2e test and field checks. */
    __vitalsTTFF?: { index: string; ms: number }[];
  }
}

export default function Player({ video, token, role, label }: Props) {
  const ref = useRef<HTMLVideoElement>(null);
  const hlsRef = useRef<Hls | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [muted, setMuted] = useState(true);
  const [paused, setPaused] = useState(true);
  const [ready, setReady] = useState(false);
  const activatedAt = useRef<number | null>(null);

  useEffect(() => {
    const el = ref.current;
    if (!el) return;
    const src = new SignedSource(() => signUrl(token, video.id));
    let hls: Hls | null = null;
    let cancelled = false;
    let recovered = false;
    src.start().then(
      (signed) => {
        if (cancelled) return;
        if (Hls.isSupported()) {
          hls = new Hls({
            maxBufferLength: role === "active" ? ACTIVE_BUFFER_S : PRELOAD_BUFFER_S,
            maxMaxBufferLength: ACTIVE_BUFFER_S,
            backBufferLength: 10,
            capLevelToPlayerSize: true,
            // Every playlist and segment request gets the freshest token.
            xhrSetup: (xhr, url) => {
              xhr.open("GET", src.rewrite(url), true);
            },
          });
          hlsRef.current = hls;
          hls.on(Hls.Events.ERROR, (_e, data) => {
            if (!data.fatal) return;
            if (!recovered && data.type === Hls.ErrorTypes.MEDIA_ERROR) {
              recovered = true;
              hls?.recoverMediaError();
              return;
            }
            if (!recovered && data.type === Hls.ErrorTypes.NETWORK_ERROR) {
              recovered = true;
              hls?.startLoad();
              return;
            }
            setError("This video cannot be played right now.");
          });
          hls.loadSource(signed.url);
          hls.attachMedia(el);
        } else if (el.canPlayType("application/vnd.apple.mpegurl")) {
          // Safari: segments inherit the token of the playlist; re-signing
          // would need a reload, so a refresh only applies to the next load.
          el.src = signed.url;
        } else {
          setError("This browser cannot play HLS video.");
        }
      },
      () => !cancelled && setError("Could not get a playback link."),
    );
    return () => {
      cancelled = true;
      src.stop();
      hls?.destroy();
      hlsRef.current = null;
      el.removeAttribute("src");
      el.load();
    };
    // The player is rebuilt only for another video; role changes are handled below.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [video.id, token]);

  useEffect(() => {
    const el = ref.current;
    if (!el) return;
    const hls = hlsRef.current;
    if (hls) hls.config.maxBufferLength = role === "active" ? ACTIVE_BUFFER_S : PRELOAD_BUFFER_S;
    if (role !== "active") {
      el.pause();
      activatedAt.current = null;
      return;
    }
    activatedAt.current = performance.now();
    const t0 = activatedAt.current;
    const idx = label;
    let done = false;
    const firstFrame = () => {
      if (done || activatedAt.current !== t0) return;
      done = true;
      const ms = performance.now() - t0;
      (window.__vitalsTTFF ??= []).push({ index: idx, ms });
      performance.measure("vitals:ttff", { start: t0, duration: ms });
    };
    const onPlaying = () => {
      if ("requestVideoFrameCallback" in el) el.requestVideoFrameCallback(() => firstFrame());
      else firstFrame();
    };
    el.addEventListener("playing", onPlaying, { once: true });
    el.play().catch(() => {
      // Autoplay refused or not yet loaded: retry once data arrives.
      el.addEventListener("canplay", () => role === "active" && el.play().catch(() => {}), { once: true });
    });
    return () => el.removeEventListener("playing", onPlaying);
  }, [role, label]);

  return (
    <div className="absolute inset-0" data-player-role={role} data-error={error ? "1" : undefined}>
      <video
        ref={ref}
        className="h-full w-full object-contain"
        muted={muted}
        playsInline
        loop
        preload="auto"
        poster={video.poster}
        aria-label={label}
        onPlay={() => setPaused(false)}
        onPause={() => setPaused(true)}
        onLoadedData={() => setReady(true)}
        onError={() => setError("This video cannot be played right now.")}
      >
        {/* Captions slot: a <track kind="captions"> goes here once captions exist. */}
      </video>
      {!ready && !error && (
        <div className="pointer-events-none absolute inset-0 grid place-items-center" aria-hidden>
          <div className="h-10 w-10 animate-spin rounded-full border-4 border-white/30 border-t-white motion-reduce:animate-none" />
        </div>
      )}
      {error && (
        <p role="alert" className="absolute inset-x-4 top-1/2 rounded bg-black/70 p-3 text-center text-sm">
          {error}
        </p>
      )}
      {role === "active" && (
        <div className="absolute bottom-20 right-3 flex flex-col gap-2">
          <button
            type="button"
            className="ctl"
            aria-label={paused ? "Play" : "Pause"}
            onClick={() => (ref.current?.paused ? ref.current.play().catch(() => {}) : ref.current?.pause())}
          >
            {paused ? "▶" : "❚❚"}
          </button>
          <button type="button" className="ctl" aria-label={muted ? "Unmute" : "Mute"} aria-pressed={!muted} onClick={() => setMuted((m) => !m)}>
            {muted ? "🔇" : "🔊"}
          </button>
        </div>
      )}
    </div>
  );
}
