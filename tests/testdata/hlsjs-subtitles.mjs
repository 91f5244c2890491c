// Plays PAGE (a page that runs hls.js on a tokened HLS master) in headless
// Chromium and prints, as JSON, the subtitle tracks hls.js found and the
// cue texts the <video> element's text track got. Used by
// TestPulseCompanionsEndToEnd; playwright-core comes from VITALS_DIR's
// node_modules (the Vitals app's own dependency).
import { createRequire } from "node:module";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";

const require = createRequire(path.join(process.env.VITALS_DIR, "package.json"));
const { chromium } = require("playwright-core");

const profile = mkdtempSync(path.join(tmpdir(), "hlsjs-subs-"));
const ctx = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--autoplay-policy=no-user-gesture-required"],
});
const out = { errors: [] };
try {
  const page = ctx.pages()[0] ?? (await ctx.newPage());
  page.on("pageerror", (e) => out.errors.push(String(e.message).slice(0, 200)));
  out.requests = [];
  page.on("response", (r) => out.requests.push(r.status() + " " + new URL(r.url()).pathname.split("/").slice(-2).join("/")));
  const resp = await page.goto(process.env.PAGE);
  out.page = resp ? resp.status() : 0;
  await page.waitForSelector("video", { state: "attached", timeout: 10000 }).catch(async () => {
    out.errors.push("no <video> in the page: " + (await page.content()).slice(0, 300));
  });
  if (out.errors.length) throw new Error(out.errors.join("; "));
  const deadline = Date.now() + 20000;
  for (;;) {
    const r = await page.evaluate(() => {
      const v = document.querySelector("video");
      const cues = [];
      const modes = [];
      for (const t of v.textTracks) {
        modes.push(`${t.kind}:${t.label}:${t.mode}:${t.cues ? t.cues.length : "null"}`);
        for (const c of t.cues ?? []) cues.push(c.text);
      }
      return { ...window.result, cues, modes, time: v.currentTime };
    });
    Object.assign(out, r);
    if (r.fatal || (r.cues.length > 0 && r.tracks) || Date.now() > deadline) break;
    await new Promise((res) => setTimeout(res, 250));
  }
} finally {
  await ctx.close();
}
process.stdout.write(JSON.stringify(out) + "\n");
