// End-to-end check of Vitals in a real Chromium against a running PulseVault
// (tests/vitals_test.go starts `pulsevault dev` and runs this). Prints one
// JSON line of results on stdout; exits non-zero with a reason on failure.
//
// Env: BASE_URL (public origin), TOKEN (login JWT), UPLOAD_URL (tus endpoint,
// optional), CLIP_A and CLIP_B (video files), ARTIFACTS (screenshot dir),
// CHROMIUM (default /usr/bin/chromium).
import { chromium } from "playwright-core";
import { mkdtempSync, mkdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";

const env = (k, d) => process.env[k] ?? d;
const BASE = env("BASE_URL");
const TOKEN = env("TOKEN");
const UPLOAD_URL = env("UPLOAD_URL", "");
const CLIP_A = env("CLIP_A");
const CLIP_B = env("CLIP_B");
const ART = env("ARTIFACTS", "test-results");
const WAIT = 90_000;
if (!BASE || !TOKEN || !CLIP_A || !CLIP_B) {
  console.error("BASE_URL, TOKEN, CLIP_A and CLIP_B are required");
  process.exit(2);
}
mkdirSync(ART, { recursive: true });
rmSync(path.join(ART, "failure.png"), { force: true });

const result = { steps: [], ttff: {}, mediaForbidden: [], pageErrors: [] };
const step = (s) => {
  result.steps.push(s);
  console.error(`e2e: ${s}`);
};
const profile = mkdtempSync(path.join(tmpdir(), "vitals-chromium-"));

const ctx = await chromium.launchPersistentContext(profile, {
  executablePath: env("CHROMIUM", "/usr/bin/chromium"),
  headless: true,
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
  ],
  viewport: { width: 412, height: 860 },
});

let failed = null;
try {
  const page = ctx.pages()[0] ?? (await ctx.newPage());
  page.on("pageerror", (e) => result.pageErrors.push(String(e.message).slice(0, 200)));
  // Media requests by video: which token each used, and any 403.
  const media = [];
  page.on("response", (r) => {
    const m = /\/media\/([^/]+)\/videos\/([^/]+)\/(.*)$/.exec(r.url());
    if (!m) return;
    const rec = { token: m[1], video: m[2], rest: m[3], status: r.status(), at: Date.now() };
    media.push(rec);
    if (r.status() === 403 && !rec.rest.startsWith("poster")) result.mediaForbidden.push(rec.rest);
  });
  // Every status a feed item shows, however briefly.
  await page.addInitScript(() => {
    window.__statusSeen = [];
    new MutationObserver((muts) => {
      for (const m of muts) {
        const nodes = m.type === "attributes" ? [m.target] : [...m.addedNodes];
        for (const n of nodes) {
          if (!(n instanceof Element)) continue;
          for (const el of [n, ...n.querySelectorAll("[data-status]")]) {
            const s = el.getAttribute?.("data-status");
            if (s && !window.__statusSeen.includes(s)) window.__statusSeen.push(s);
          }
        }
      }
    }).observe(document, { subtree: true, childList: true, attributes: true, attributeFilter: ["data-status"] });
  });

  step("sign in");
  await page.goto(BASE + "/", { waitUntil: "load" });
  await page.locator("#token").waitFor({ timeout: WAIT });
  await page.screenshot({ path: path.join(ART, "01-signin.png") });
  await page.fill("#token", TOKEN);
  if (UPLOAD_URL) {
    await page.click("summary");
    await page.fill("#endpoint", UPLOAD_URL);
  }
  await page.click("button[type=submit]");
  await page.locator("[data-feed]").waitFor({ timeout: WAIT });
  const url = page.url();
  if (url.includes(TOKEN.slice(0, 20))) throw new Error("the token appears in the URL");

  // Web storage while uploads run and after (no file name may be kept there): each entry as
  // "local:" or "session:" then key=value; the sign-in token is left out of the result.
  const storageSeen = new Set();
  const storageNow = () =>
    page.evaluate(() => {
      const out = [];
      for (const [name, s] of [["local", localStorage], ["session", sessionStorage]]) {
        for (let i = 0; i < s.length; i++) {
          const k = s.key(i);
          if (k !== "pulsevault.token") out.push(`${name}:${k}=${s.getItem(k)}`);
        }
      }
      return out;
    });

  const upload = async (clip, shot) => {
    await page.getByRole("button", { name: "Upload", exact: true }).click();
    const seen = new Set();
    await page.setInputFiles("input[type=file]", clip);
    const bar = page.getByRole("progressbar", { name: "Upload progress" });
    await bar.waitFor({ timeout: WAIT });
    const t0 = Date.now();
    for (;;) {
      const v = Number(await bar.getAttribute("aria-valuenow"));
      seen.add(v);
      for (const e of await storageNow()) storageSeen.add(e);
      const phase = await page.locator("[data-upload-phase]").getAttribute("data-upload-phase");
      if (phase === "error") throw new Error("upload failed: " + (await page.locator("[role=alert]").allTextContents()).join(" "));
      if (v === 100 && phase === "done") break;
      if (Date.now() - t0 > WAIT) throw new Error(`upload did not finish; bar at ${v}, phase ${phase}`);
      await page.waitForTimeout(25);
    }
    await page.waitForTimeout(400); // let the bar's transition finish for the screenshot
    await page.screenshot({ path: path.join(ART, shot) });
    await page.getByRole("button", { name: "Close upload" }).click();
    return [...seen].sort((a, b) => a - b);
  };

  // Active section's video playing: currentTime advances, no error.
  const playing = async (index, label) => {
    await page.waitForFunction(
      (i) => {
        const s = document.querySelector(`section[data-index="${i}"]`);
        if (s?.querySelector("[data-error]")) throw new Error("player error");
        const v = s?.querySelector("video");
        return s?.getAttribute("aria-current") === "true" && v && v.currentTime > 0.5 && !v.error;
      },
      index,
      { timeout: WAIT, polling: 100 },
    );
    const a = await page.evaluate((i) => document.querySelector(`section[data-index="${i}"] video`).currentTime, index);
    await page.waitForTimeout(700);
    const b = await page.evaluate((i) => document.querySelector(`section[data-index="${i}"] video`).currentTime, index);
    if (!(b !== a)) throw new Error(`${label}: currentTime did not advance (${a} → ${b})`);
  };

  step("upload clip A through the UI");
  result.progressA = await upload(CLIP_A, "02-upload.png");
  step("clip A appears and plays once ready");
  await page.locator('section[data-index="0"]').waitFor({ timeout: WAIT });
  await playing(0, "clip A");
  result.statusesSeen = await page.evaluate(() => window.__statusSeen);
  result.ttff.afterUploadMs = await page.evaluate(() => window.__vitalsTTFF?.at(-1)?.ms ?? null);

  step("upload clip B");
  result.progressB = await upload(CLIP_B, "03-upload-b.png");
  result.storageDuringUploads = [...storageSeen];
  result.storageAfterUploads = await storageNow();
  // Clip B lands on top while the screen stays on clip A (now item 2 of 2).
  await page.waitForFunction(() => /of 2/.test(document.querySelector('section[aria-current="true"]')?.getAttribute("aria-label") ?? ""), null, {
    timeout: WAIT,
  });
  for (const t0 = Date.now(); ; await page.waitForTimeout(250)) {
    const r = await fetch(BASE + "/api/videos?limit=2", { headers: { Authorization: `Bearer ${TOKEN}` } });
    const list = (await r.json()).videos ?? [];
    if (list.length >= 2 && list.every((v) => v.status === "ready" || v.status === "complete")) break;
    if (Date.now() - t0 > WAIT) throw new Error("clip B did not become playable");
  }

  step("fresh load: the first feed video plays");
  await page.reload({ waitUntil: "load" });
  await playing(0, "first video");
  result.ttff.firstMs = await page.evaluate(() => window.__vitalsTTFF?.[0]?.ms ?? null);
  await page.screenshot({ path: path.join(ART, "04-feed.png") });
  const nextId = await page.evaluate(() => {
    const s = document.querySelector('section[data-index="1"]');
    return s?.querySelector("[data-player-role]") ? s.getAttribute("data-index") : null;
  });
  if (nextId === null) throw new Error("the next video has no preloading player");

  // Stay on the first video past the playback TTL, so the next one's first
  // signed URL expires while it waits preloaded.
  const ttl = Number(env("TTL_S", "0"));
  if (ttl > 0) await page.waitForTimeout((ttl + 2) * 1000);
  const beforeSwipe = media.length;

  step("swipe: the next video plays");
  await page.keyboard.press("ArrowDown");
  await playing(1, "next video");
  result.ttff.nextMs = await page.evaluate(() => window.__vitalsTTFF?.at(-1)?.ms ?? null);
  await page.screenshot({ path: path.join(ART, "05-next.png") });

  if (ttl > 0) {
    step("playback continues across token expiry");
    // Watch long enough for several more refreshes.
    const played = await page.evaluate(async (ms) => {
      const v = document.querySelector('section[data-index="1"] video');
      let total = 0;
      let last = v.currentTime;
      const end = performance.now() + ms;
      while (performance.now() < end) {
        await new Promise((r) => setTimeout(r, 200));
        const t = v.currentTime;
        total += t >= last ? t - last : t; // a loop wraps to 0
        last = t;
        if (v.error || document.querySelector('section[data-index="1"] [data-error]')) return -1;
      }
      return total;
    }, (ttl * 2 + 1) * 1000);
    if (played < ttl) throw new Error(`next video played ${played.toFixed(1)} s of ${ttl * 2 + 1} s across expiry (or errored)`);
    result.playedAcrossExpiryS = Math.round(played * 10) / 10;
    const nextVideo = media.slice(beforeSwipe).find((r) => !r.rest.startsWith("poster"))?.video;
    const tokens = new Set(media.filter((r) => r.video === nextVideo && !r.rest.startsWith("poster")).map((r) => r.token));
    result.nextVideoTokens = tokens.size;
    if (tokens.size < 2) throw new Error("the next video's media requests never used a refreshed token");
  }
  if (result.mediaForbidden.length) throw new Error(`media answered 403 for ${result.mediaForbidden.length} playlist/segment requests`);

  step("installability");
  await page.evaluate(() => navigator.serviceWorker.ready);
  const cdp = await ctx.newCDPSession(page);
  const inst = await cdp.send("Page.getInstallabilityErrors");
  result.installabilityErrors = inst.installabilityErrors.map((e) => e.errorId);
  const manifest = await cdp.send("Page.getAppManifest");
  result.manifestErrors = (manifest.errors ?? []).map((e) => e.message);

  step("offline reload shows the shell");
  await page.waitForFunction(() => !!navigator.serviceWorker.controller, null, { timeout: WAIT });
  await ctx.setOffline(true);
  await page.reload({ waitUntil: "load" });
  await page.locator("[data-offline]").waitFor({ timeout: WAIT });
  result.offlineShell = await page.locator("h1").first().textContent();
  await page.screenshot({ path: path.join(ART, "06-offline.png") });
  await ctx.setOffline(false);
  result.mediaRequests = media.length;
} catch (e) {
  failed = e;
  try {
    result.dom = await ctx.pages()[0]?.evaluate(() => ({
      sections: [...document.querySelectorAll("section[data-index]")].map((s) => [s.dataset.index, s.dataset.status, s.getAttribute("aria-current")]),
      feed: document.querySelector("[data-feed]")?.getAttribute("data-active"),
      scrollTop: document.querySelector(".feed")?.scrollTop,
    }));
  } catch {}
  try {
    await ctx.pages()[0]?.screenshot({ path: path.join(ART, "failure.png") });
  } catch {}
} finally {
  await ctx.close();
  rmSync(profile, { recursive: true, force: true });
}
if (failed) {
  result.error = String(failed.message ?? failed).split("\n")[0];
}
console.log(JSON.stringify(result));
process.exit(failed ? 1 : 0);
