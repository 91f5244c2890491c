// Opens PAGE (a Pulse artifact URL with ?token=, the view link a phone browser opens) in headless
// Chromium and reports, as JSON, whether its <video> reached `playing` with currentTime advancing,
// and every console error / page error / failed request seen. Chromium shows a bare video URL in its
// own media document (a <video> element), as a phone browser does. Used by
// TestPulseArtifactPlaysInChromium; playwright-core comes from VITALS_DIR's node_modules.
import { createRequire } from "node:module";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";

const require = createRequire(path.join(process.env.VITALS_DIR, "package.json"));
const { chromium } = require("playwright-core");

const profile = mkdtempSync(path.join(tmpdir(), "pulse-artifact-"));
const ctx = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--autoplay-policy=no-user-gesture-required"],
});
const out = { errors: [], console: [], requests: [] };
try {
  const page = ctx.pages()[0] ?? (await ctx.newPage());
  page.on("pageerror", (e) => out.errors.push(String(e.message).slice(0, 200)));
  page.on("console", (m) => { if (m.type() === "error") out.console.push(m.text().slice(0, 200)); });
  page.on("requestfailed", (r) => out.errors.push("request failed: " + (r.failure()?.errorText ?? "")));
  page.on("response", (r) => out.requests.push(r.status() + " " + (r.request().headers()["range"] ?? "")));
  const resp = await page.goto(process.env.PAGE, { waitUntil: "commit" });
  out.page = resp ? resp.status() : 0;
  out.contentType = resp ? (resp.headers()["content-type"] ?? "") : "";
  await page.waitForSelector("video", { state: "attached", timeout: 10000 }).catch(() => {
    out.errors.push("no <video> in the page");
  });
  if (!out.errors.length) {
    await page.evaluate(() => {
      const v = document.querySelector("video");
      window.seen = { playing: false, events: [] };
      for (const e of ["loadedmetadata", "canplay", "playing", "error", "stalled"]) {
        v.addEventListener(e, () => { window.seen.events.push(e); if (e === "playing") window.seen.playing = true; });
      }
      if (!v.paused && v.readyState >= 3) window.seen.playing = true; // it started before we listened
      v.muted = true;
      v.play().catch((e) => window.seen.events.push("play() refused: " + e.message));
    });
    const deadline = Date.now() + 20000;
    let first = null;
    for (;;) {
      const r = await page.evaluate(() => {
        const v = document.querySelector("video");
        return { ...window.seen, time: v.currentTime, duration: v.duration, paused: v.paused, ended: v.ended,
          readyState: v.readyState, width: v.videoWidth, height: v.videoHeight,
          mediaError: v.error ? `${v.error.code} ${v.error.message}` : "" };
      });
      Object.assign(out, r);
      if (r.mediaError) break;
      if (r.playing && r.time > 0) {
        if (first === null) first = r.time;
        else if (r.time > first + 0.2 || r.ended) { out.advanced = r.time - first; break; }
      }
      if (Date.now() > deadline) break;
      await new Promise((res) => setTimeout(res, 100));
    }
  }
} finally {
  await ctx.close();
}
process.stdout.write(JSON.stringify(out) + "\n");
