// The upload state machine (tus-js-client does the transfer): what the
// progress bar, the buttons and the messages show.

export type Phase = "idle" | "uploading" | "paused" | "done" | "error";

export interface UploadState {
  phase: Phase;
  bytes: number;
  total: number;
  speed: number; // bytes/s, smoothed
  eta: number | null; // seconds
  error: string | null;
  resumed: boolean; // continued an upload started earlier (tus fingerprint)
  lastAt: number; // ms of the last progress sample
  lastBytes: number;
}

export type UploadEvent =
  | { type: "start"; total: number; now: number; resumed?: boolean }
  | { type: "progress"; bytes: number; total: number; now: number }
  | { type: "pause" }
  | { type: "resume"; now: number }
  | { type: "success" }
  | { type: "fail"; message: string }
  | { type: "reset" };

export const idleUpload: UploadState = {
  phase: "idle",
  bytes: 0,
  total: 0,
  speed: 0,
  eta: null,
  error: null,
  resumed: false,
  lastAt: 0,
  lastBytes: 0,
};

/** Default largest upload; the server's UPLOAD_MAX_BYTES has the last word (413). */
export const MAX_BYTES = 4 * 1024 ** 3;

const VIDEO_EXT = /\.(mp4|m4v|mov|webm|mkv|3gp|3g2|avi|mts)$/i;

/** A clear reason why a file cannot be uploaded, or null. */
export function validateFile(f: { name: string; size: number; type: string }, maxBytes = MAX_BYTES): string | null {
  if (f.size === 0) return "That file is empty.";
  if (f.type ? !f.type.startsWith("video/") : !VIDEO_EXT.test(f.name)) return "That is not a video file.";
  if (f.size > maxBytes) return `That video is too big (the limit is ${formatBytes(maxBytes)}).`;
  return null;
}

/** A user-facing message for a failed transfer. */
export function describeFailure(status: number | null, online: boolean): string {
  if (!online) return "You are offline. The upload will continue when you retry online.";
  if (status === 413) return "That video is too big for the server.";
  if (status === 401 || status === 403) return "Your sign-in has expired; sign in again and retry.";
  if (status === 415) return "The server does not accept this kind of file.";
  if (status && status >= 500) return `The server failed (${status}); retry in a moment.`;
  return "The upload failed; check your connection and retry.";
}

export function uploadReducer(s: UploadState, e: UploadEvent): UploadState {
  switch (e.type) {
    case "start":
      return { ...idleUpload, phase: "uploading", total: e.total, lastAt: e.now, resumed: !!e.resumed };
    case "progress": {
      if (s.phase !== "uploading") return s;
      const dt = (e.now - s.lastAt) / 1000;
      let speed = s.speed;
      if (dt > 0 && e.bytes >= s.lastBytes) {
        const inst = (e.bytes - s.lastBytes) / dt;
        speed = s.speed === 0 ? inst : 0.7 * s.speed + 0.3 * inst;
      }
      const left = e.total - e.bytes;
      const eta = left <= 0 ? 0 : speed > 0 ? left / speed : null;
      return { ...s, bytes: e.bytes, total: e.total, speed, eta, lastAt: e.now, lastBytes: e.bytes };
    }
    case "pause":
      return s.phase === "uploading" ? { ...s, phase: "paused", speed: 0, eta: null } : s;
    case "resume":
      return s.phase === "paused" || s.phase === "error" ? { ...s, phase: "uploading", error: null, lastAt: e.now } : s;
    case "success":
      return { ...s, phase: "done", bytes: s.total, eta: 0, error: null };
    case "fail":
      return { ...s, phase: "error", error: e.message, speed: 0, eta: null };
    case "reset":
      return idleUpload;
  }
}

export function percent(s: UploadState): number {
  return s.total > 0 ? Math.min(100, Math.floor((s.bytes / s.total) * 100)) : 0;
}

export function formatBytes(n: number): string {
  const u = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) {
    n /= 1024;
    i++;
  }
  return `${n >= 10 || i === 0 ? Math.round(n) : n.toFixed(1)} ${u[i]}`;
}

export function formatEta(sec: number | null): string {
  if (sec === null || !Number.isFinite(sec)) return "…";
  const s = Math.ceil(sec);
  return s < 60 ? `${s} s` : `${Math.floor(s / 60)} min ${s % 60} s`;
}

/**
 * The tus fingerprint that lets an upload resume after a reload. It is a
 * hash, so the file's name never lands in storage as a key (lib/tus.ts keeps
 * no metadata either).
 */
export async function fingerprint(f: { name: string; size: number; type: string; lastModified: number }, endpoint: string): Promise<string> {
  const data = new TextEncoder().encode([f.name, f.size, f.type, f.lastModified, endpoint].join("\u0000"));
  const digest = await crypto.subtle.digest("SHA-256", data);
  return "pv-" + Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}
