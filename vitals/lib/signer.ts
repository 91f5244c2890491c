// Signed playback URLs expire (≤ 300 s). The token sits in the path
// (/media/<token>/videos/<id>/...), so every playlist and segment URL the
// player derives carries it; SignedSource re-signs before expiry and the
// player's loader swaps the new token into each request, so playback never
// stops for a 403.
import type { Signed } from "./api";

const TOKEN_IN_PATH = /\/media\/([^/]+)\/videos\//;

/** The token in a media URL, or null. */
export function tokenOf(url: string): string | null {
  return TOKEN_IN_PATH.exec(url)?.[1] ?? null;
}

/** url with its media token replaced by the token of signedUrl. */
export function swapToken(url: string, signedUrl: string): string {
  const t = tokenOf(signedUrl);
  return t && TOKEN_IN_PATH.test(url) ? url.replace(TOKEN_IN_PATH, `/media/${t}/videos/`) : url;
}

/**
 * Milliseconds until a URL expiring at expiresAt should be re-signed: a third
 * of its remaining life before expiry (at most 60 s early), never sooner than
 * 250 ms so a clock skew cannot make it spin.
 */
export function refreshDelay(expiresAtMs: number, nowMs: number): number {
  const left = expiresAtMs - nowMs;
  const margin = Math.min(60_000, Math.max(0, left / 3));
  return Math.max(250, left - margin);
}

export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(h: unknown): void;
}

const realClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
};

/** Keeps one video's signed URLs fresh until stop(). */
export class SignedSource {
  private signed: Signed | null = null;
  private timer: unknown = null;
  private stopped = false;
  private listeners = new Set<(s: Signed) => void>();
  /** Number of signatures obtained (the first included). */
  refreshes = 0;

  constructor(
    private readonly sign: () => Promise<Signed>,
    private readonly clock: Clock = realClock,
    private readonly retryMs = 1000,
  ) {}

  /** Signs once and schedules the refreshes. */
  async start(): Promise<Signed> {
    const s = await this.sign();
    this.accept(s);
    return s;
  }

  current(): Signed | null {
    return this.signed;
  }

  /** url with the freshest token. */
  rewrite(url: string): string {
    return this.signed ? swapToken(url, this.signed.url) : url;
  }

  onChange(fn: (s: Signed) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== null) this.clock.clearTimeout(this.timer);
    this.timer = null;
    this.listeners.clear();
  }

  private accept(s: Signed): void {
    if (this.stopped) return;
    this.signed = s;
    this.refreshes++;
    this.listeners.forEach((fn) => fn(s));
    this.schedule(refreshDelay(Date.parse(s.expires_at), this.clock.now()));
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    this.timer = this.clock.setTimeout(() => {
      this.timer = null;
      this.sign().then(
        (s) => this.accept(s),
        // Keep trying while the old URL still works; the player retries too.
        () => this.schedule(this.retryMs),
      );
    }, ms);
  }
}
