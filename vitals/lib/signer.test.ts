import { describe, expect, it } from "vitest";
import { refreshDelay, SignedSource, swapToken, tokenOf, type Clock } from "./signer";
import type { Signed } from "./api";

class FakeClock implements Clock {
  t = 1_000_000;
  timers: { at: number; fn: () => void; id: number }[] = [];
  private id = 0;
  now() {
    return this.t;
  }
  setTimeout(fn: () => void, ms: number) {
    this.timers.push({ at: this.t + ms, fn, id: ++this.id });
    return this.id;
  }
  clearTimeout(h: unknown) {
    this.timers = this.timers.filter((x) => x.id !== h);
  }
  async advance(ms: number) {
    const end = this.t + ms;
    for (;;) {
      this.timers.sort((a, b) => a.at - b.at);
      const next = this.timers[0];
      if (!next || next.at > end) break;
      this.timers.shift();
      this.t = next.at;
      next.fn();
      await new Promise((r) => setTimeout(r, 0)); // let the sign promise settle
    }
    this.t = end;
  }
}

const url = (tok: string) => `/media/${tok}/videos/v1/hls/master.m3u8`;

describe("signed URL refresh", () => {
  it("finds and swaps the path token", () => {
    expect(tokenOf(url("AAA"))).toBe("AAA");
    expect(tokenOf("/api/videos")).toBeNull();
    const seg = "http://h/media/OLD/videos/v1/hls/360p/seg_3.m4s";
    expect(swapToken(seg, url("NEW"))).toBe("http://h/media/NEW/videos/v1/hls/360p/seg_3.m4s");
    expect(swapToken("http://h/other/x", url("NEW"))).toBe("http://h/other/x");
  });

  it("refreshes a third of the remaining life early, at most 60 s, never in a spin", () => {
    expect(refreshDelay(300_000, 0)).toBe(240_000);
    expect(refreshDelay(6_000, 0)).toBe(4_000);
    expect(refreshDelay(0, 10_000)).toBe(250);
  });

  it("re-signs before each expiry and rewrites to the newest token", async () => {
    const clock = new FakeClock();
    let n = 0;
    const sign = async (): Promise<Signed> => {
      n++;
      return { url: url(`T${n}`), expires_at: new Date(clock.now() + 6_000).toISOString() };
    };
    const src = new SignedSource(sign, clock);
    const seen: string[] = [];
    src.onChange((s) => seen.push(tokenOf(s.url)!));
    await src.start();
    expect(src.rewrite(url("OLD"))).toBe(url("T1"));
    await clock.advance(3_999);
    expect(n).toBe(1);
    await clock.advance(1);
    expect(n).toBe(2); // before the first URL expired (6 s)
    expect(src.rewrite("http://h/media/T1/videos/v1/hls/a.m4s")).toBe("http://h/media/T2/videos/v1/hls/a.m4s");
    await clock.advance(20_000);
    expect(n).toBeGreaterThanOrEqual(6);
    expect(seen.slice(0, 3)).toEqual(["T1", "T2", "T3"]);
    src.stop();
    const after = n;
    await clock.advance(60_000);
    expect(n).toBe(after);
  });

  it("retries a failed refresh and keeps the last good URL meanwhile", async () => {
    const clock = new FakeClock();
    let n = 0;
    const sign = async (): Promise<Signed> => {
      n++;
      if (n === 2) throw new Error("offline");
      return { url: url(`T${n}`), expires_at: new Date(clock.now() + 6_000).toISOString() };
    };
    const src = new SignedSource(sign, clock, 500);
    await src.start();
    await clock.advance(4_000);
    expect(n).toBe(2);
    expect(tokenOf(src.current()!.url)).toBe("T1");
    await clock.advance(500);
    expect(n).toBe(3);
    expect(tokenOf(src.current()!.url)).toBe("T3");
    src.stop();
  });
});
