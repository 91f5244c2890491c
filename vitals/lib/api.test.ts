import { afterEach, describe, expect, it, vi } from "vitest";
import { ApiError, isOffline, listVideos, signUrl } from "./api";

afterEach(() => vi.unstubAllGlobals());

describe("api", () => {
  it("sends the token in the header, never the URL, and reports offline on a network failure", async () => {
    const calls: [string, RequestInit][] = [];
    vi.stubGlobal("fetch", async (url: string, init: RequestInit) => {
      calls.push([url, init]);
      return new Response(JSON.stringify({ videos: [], next: "c" }), { status: 200 });
    });
    const page = await listVideos("TOK", "cur", 5);
    expect(page.next).toBe("c");
    expect(calls[0][0]).toBe("/api/videos?limit=5&cursor=cur");
    expect(calls[0][0]).not.toContain("TOK");
    expect((calls[0][1].headers as Record<string, string>).Authorization).toBe("Bearer TOK");
    expect(isOffline()).toBe(false);

    vi.stubGlobal("fetch", async () => {
      throw new TypeError("Failed to fetch");
    });
    await expect(signUrl("TOK", "v")).rejects.toMatchObject({ status: 0 });
    expect(isOffline()).toBe(true);

    vi.stubGlobal("fetch", async () => new Response("", { status: 401 }));
    const err = await signUrl("TOK", "v").catch((e) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect(err.status).toBe(401);
    expect(isOffline()).toBe(false); // the server answered: the network is back
  });
});
