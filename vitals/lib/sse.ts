// Live status over server-sent events. EventSource cannot send Authorization,
// so the stream is read with fetch and parsed here.

export interface SSEEvent {
  event: string;
  data: string;
}

/** Parses complete events out of buf; rest is the unfinished tail. */
export function parseSSE(buf: string): { events: SSEEvent[]; rest: string } {
  const events: SSEEvent[] = [];
  const norm = buf.replace(/\r\n?/g, "\n");
  const blocks = norm.split("\n\n");
  const rest = blocks.pop() ?? "";
  for (const block of blocks) {
    let event = "message";
    const data: string[] = [];
    for (const line of block.split("\n")) {
      if (!line || line.startsWith(":")) continue;
      const i = line.indexOf(":");
      const field = i < 0 ? line : line.slice(0, i);
      const value = i < 0 ? "" : line.slice(i + 1).replace(/^ /, "");
      if (field === "event") event = value;
      else if (field === "data") data.push(value);
    }
    if (data.length) events.push({ event, data: data.join("\n") });
  }
  return { events, rest };
}

export interface StatusEvent {
  video: string;
  status: string;
}

/** A status event's payload, or null when it is not one. */
export function statusOf(e: SSEEvent): StatusEvent | null {
  if (e.event !== "status") return null;
  try {
    const v = JSON.parse(e.data);
    return typeof v?.video === "string" && typeof v?.status === "string" ? { video: v.video, status: v.status } : null;
  } catch {
    return null;
  }
}

/**
 * Follows /api/events until signal aborts, reconnecting after a pause;
 * onOpen runs at every (re)connect so the caller can re-read what it missed.
 */
export async function followEvents(
  token: string,
  onStatus: (s: StatusEvent) => void,
  onOpen: () => void,
  signal: AbortSignal,
): Promise<void> {
  let delay = 1000;
  while (!signal.aborted) {
    try {
      const res = await fetch("/api/events", {
        headers: { Authorization: `Bearer ${token}`, Accept: "text/event-stream" },
        cache: "no-store",
        signal,
      });
      if (res.status === 401) return;
      if (res.ok && res.body) {
        delay = 1000;
        onOpen();
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        let buf = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          const p = parseSSE(buf + value);
          buf = p.rest;
          for (const e of p.events) {
            const s = statusOf(e);
            if (s) onStatus(s);
          }
        }
      }
    } catch {
      if (signal.aborted) return;
    }
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, 15_000);
  }
}
