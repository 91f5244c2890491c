// The public API of PulseVault (same origin): videos, sign-url.

export type VideoStatus = "processing" | "ready" | "complete" | "rejected" | "failed" | string;

export interface VideoItem {
  id: string;
  status: VideoStatus;
  created: string;
  duration?: number;
  width?: number;
  height?: number;
  poster?: string;
}

export interface VideoPage {
  videos: VideoItem[];
  next?: string;
}

export interface Signed {
  url: string;
  dash?: string;
  poster?: string;
  expires_at: string;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** Videos that have at least one playable rendition. */
export function playable(status: VideoStatus): boolean {
  return status === "ready" || status === "complete";
}

// navigator.onLine can say "online" on a dead network, so a failed fetch
// counts as offline too, until the next one succeeds.
let networkDown = false;
const NETWORK_EVENT = "vitals:network";

function setNetworkDown(down: boolean) {
  if (down === networkDown) return;
  networkDown = down;
  if (typeof window !== "undefined") window.dispatchEvent(new Event(NETWORK_EVENT));
}

/** Whether the app should say it is offline. */
export function isOffline(): boolean {
  return networkDown || (typeof navigator !== "undefined" && !navigator.onLine);
}

/** Calls cb when isOffline() may have changed. */
export function subscribeNetwork(cb: () => void): () => void {
  for (const e of ["online", "offline", NETWORK_EVENT]) window.addEventListener(e, cb);
  return () => {
    for (const e of ["online", "offline", NETWORK_EVENT]) window.removeEventListener(e, cb);
  };
}

async function call<T>(path: string, token: string, init: RequestInit = {}): Promise<T> {
  let res: Response;
  try {
    res = await fetch(path, {
      ...init,
      headers: { ...(init.headers ?? {}), Authorization: `Bearer ${token}` },
      cache: "no-store",
    });
  } catch {
    setNetworkDown(true);
    throw new ApiError(0, "You appear to be offline.");
  }
  setNetworkDown(false);
  if (!res.ok) {
    const msg =
      res.status === 401 ? "Your sign-in has expired." : res.status === 404 ? "Not found." : `The server answered ${res.status}.`;
    throw new ApiError(res.status, msg);
  }
  return (await res.json()) as T;
}

export function listVideos(token: string, cursor?: string, limit = 10): Promise<VideoPage> {
  const q = new URLSearchParams({ limit: String(limit) });
  if (cursor) q.set("cursor", cursor);
  return call<VideoPage>(`/api/videos?${q}`, token);
}

export function getVideo(token: string, id: string): Promise<VideoItem> {
  return call<VideoItem>(`/api/videos/${encodeURIComponent(id)}`, token);
}

export function signUrl(token: string, id: string): Promise<Signed> {
  return call<Signed>("/api/sign-url", token, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ video: id }),
  });
}
