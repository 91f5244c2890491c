// Vitals service worker: caches the app shell and Next's static assets so the
// app opens offline. Never API or media responses: those carry PHI and
// short-lived tokens.
const CACHE = "vitals-shell-v1";
const SHELL = ["/", "/watch/", "/manifest.webmanifest", "/icons/icon-192.png", "/icons/icon-512.png"];

self.addEventListener("install", (event) => {
  event.waitUntil(
    (async () => {
      const cache = await caches.open(CACHE);
      await cache.addAll(SHELL);
      // The shell's own scripts and styles, so the first offline open works.
      const html = await (await cache.match("/")).text();
      const assets = [...new Set(html.match(/\/_next\/static\/[^"'\s)]+/g) || [])];
      await cache.addAll(assets);
      await self.skipWaiting();
    })(),
  );
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    (async () => {
      for (const k of await caches.keys()) if (k !== CACHE) await caches.delete(k);
      await self.clients.claim();
    })(),
  );
});

self.addEventListener("fetch", (event) => {
  const req = event.request;
  const url = new URL(req.url);
  if (req.method !== "GET" || url.origin !== self.location.origin) return;
  if (url.pathname.startsWith("/api/") || url.pathname.startsWith("/media/")) return;
  if (url.pathname.startsWith("/_next/static/")) {
    // Content-hashed: cache first.
    event.respondWith(
      caches.match(req).then(
        (hit) =>
          hit ||
          fetch(req).then((res) => {
            if (res.ok) caches.open(CACHE).then((c) => c.put(req, res.clone()));
            return res.clone();
          }),
      ),
    );
    return;
  }
  if (req.mode === "navigate") {
    // Network first so a new build shows at once; the cached shell offline.
    const key = url.pathname.startsWith("/watch") ? "/watch/" : "/";
    event.respondWith(
      fetch(req)
        .then((res) => {
          if (res.ok && url.search === "") caches.open(CACHE).then((c) => c.put(key, res.clone()));
          return res;
        })
        .catch(() => caches.match(key)),
    );
    return;
  }
  if (SHELL.includes(url.pathname)) {
    event.respondWith(fetch(req).catch(() => caches.match(url.pathname)));
  }
});
