"use client";
// One video by id (/watch/?v=<id>): static export has no dynamic routes.
import { useEffect, useState } from "react";
import { getVideo, playable, type VideoItem } from "@/lib/api";
import { loadToken } from "@/lib/auth";
import { loadOidcConfig, userManager } from "@/lib/oidc";
import Player from "./Player";

export default function Watch() {
  const [token, setToken] = useState<string | null>(null);
  const [video, setVideo] = useState<VideoItem | null>(null);
  const [msg, setMsg] = useState("Loading…");
  useEffect(() => {
    (async () => {
      const cfg = await loadOidcConfig();
      const u = cfg ? await userManager(cfg).getUser() : null;
      const t = cfg ? (u && !u.expired ? u.access_token : null) : loadToken();
      const id = new URLSearchParams(window.location.search).get("v");
      setToken(t);
      if (!t) return setMsg("Sign in first.");
      if (!id) return setMsg("No video chosen.");
      getVideo(t, id).then(
        (v) => (playable(v.status) ? setVideo(v) : setMsg(`This video is ${v.status}.`)),
        (e: Error) => setMsg(e.message),
      );
    })();
  }, []);
  return (
    <main className="relative h-dvh bg-black">
      {video && token ? <Player video={video} token={token} role="active" label="Video" /> : <p className="p-6">{msg}</p>}
      <a href="/" className="btn absolute left-3 top-3">
        Back to the feed
      </a>
    </main>
  );
}
