// Sign-in of Vitals in a real Chromium against `pulsevault dev` with its
// embedded OpenID provider (tests/vitals_signin_test.go runs this): the
// redirect to the login page, the feed, playback across two silent token
// refreshes, sign-out with end-session. Prints one JSON result line.
//
// Env: BASE_URL, ISSUER (default BASE_URL/oidc), USERNAME, PASSWORD,
// REFRESH_WAIT_S (how long to watch refreshes), ARTIFACTS, CHROMIUM.
import { chromium } from "playwright-core";
import { mkdtempSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";

const env = (k, d) => process.env[k] ?? d;
const BASE = env("BASE_URL");
const ISSUER = env("ISSUER", BASE + "/oidc");
const USER = env("USERNAME");
const PASS = env("PASSWORD");
const REFRESH_WAIT = Number(env("REFRESH_WAIT_S", "50")) * 1000;
const ART = env("ARTIFACTS", "test-results");
const WAIT = 60_000;
mkdirSync(ART, { recursive: true });

const result = { steps: [], apiStatuses: {}, pageErrors: [] };
const step = (s) => {
  result.steps.push(s);
  console.error(`signin: ${s}`);
};
const ctx = await chromium.launchPersistentContext(mkdtempSync(path.join(tmpdir(), "vitals-signin-")), {
  executablePath: env("CHROMIUM", "/usr/bin/chromium"),
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--autoplay-policy=no-user-gesture-required"],
  viewport: { width: 412, height: 860 },
});
let failed = null;
try {
  const page = ctx.pages()[0] ?? (await ctx.newPage());
  page.on("pageerror", (e) => result.pageErrors.push(String(e.message).slice(0, 200)));
  const tokens = new Set();
  page.on("request", (r) => {
    if (!r.url().startsWith(BASE + "/api/")) return;
    const a = r.headers()["authorization"];
    if (a) tokens.add(a);
  });
  page.on("response", (r) => {
    if (!r.url().startsWith(BASE + "/api/")) return;
    result.apiStatuses[r.status()] = (result.apiStatuses[r.status()] ?? 0) + 1;
  });

  step("open Vitals");
  const t0 = Date.now();
  await page.goto(BASE + "/");
  await page.locator("[data-signin]").click({ timeout: WAIT });
  step("login page");
  await page.locator("#username").waitFor({ timeout: WAIT });
  if (!page.url().startsWith(ISSUER + "/login")) throw new Error(`not on the login page: ${page.url()}`);
  result.loginPageHasLabels = (await page.locator('label[for="username"]').count()) === 1 && (await page.locator('label[for="password"]').count()) === 1;
  // A wrong password first: the page says so, in words.
  await page.fill("#username", USER);
  await page.fill("#password", PASS + "-wrong");
  await page.click("button[type=submit]");
  result.wrongPasswordMessage = (await page.locator('[role="alert"]').textContent({ timeout: WAIT })).trim();
  await page.fill("#username", USER);
  await page.fill("#password", PASS);
  await page.click("button[type=submit]");
  step("feed");
  await page.locator("[data-who]").waitFor({ timeout: WAIT });
  result.who = (await page.locator("[data-who]").textContent()).trim();
  await page.waitForFunction(
    () => {
      const v = document.querySelector('section[aria-current="true"] video');
      return v && v.currentTime > 0.3 && !v.error;
    },
    null,
    { timeout: WAIT },
  );
  result.signInMs = Date.now() - t0; // page open → feed playing, including the wrong try
  result.addressBarAfterSignIn = page.url();

  step("watch the token refresh");
  const before = tokens.size;
  const playedAt = await page.evaluate(() => document.querySelector('section[aria-current="true"] video').currentTime);
  await page.waitForTimeout(REFRESH_WAIT);
  // The feed lists again with the refreshed token (a reload of the page too).
  await page.reload();
  await page.locator("[data-who]").waitFor({ timeout: WAIT });
  await page.waitForFunction(
    () => {
      const v = document.querySelector('section[aria-current="true"] video');
      return v && v.currentTime > 0.3 && !v.error;
    },
    null,
    { timeout: WAIT },
  );
  result.tokensBeforeWait = before;
  result.tokensSeen = tokens.size;
  result.playedBeforeWaitS = playedAt;
  const key = await page.evaluate(() => Object.keys(sessionStorage).find((k) => k.startsWith("oidc.user:")));
  const stored = JSON.parse(await page.evaluate((k) => sessionStorage.getItem(k), key));
  result.localStorageKeys = await page.evaluate(() => Object.keys(localStorage));
  const refreshToken = stored.refresh_token;
  const accessToken = stored.access_token;

  step("sign out");
  const ended = page.waitForResponse((r) => r.url().startsWith(ISSUER + "/end_session"), { timeout: WAIT });
  await page.getByRole("button", { name: "Sign out" }).click();
  result.endSessionStatus = (await ended).status();
  await page.waitForURL(BASE + "/", { timeout: WAIT });
  await page.locator("[data-signin]").waitFor({ timeout: WAIT });
  result.afterSignOut = page.url();
  result.sessionKeysAfterSignOut = await page.evaluate(() => Object.keys(sessionStorage).filter((k) => k.startsWith("oidc.user:")));
  // The refresh token of the ended session is refused by the issuer.
  const r = await fetch(ISSUER + "/oauth/token", {
    method: "POST",
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ grant_type: "refresh_token", refresh_token: refreshToken, client_id: "pulsevault-vitals" }),
  });
  result.refreshAfterSignOut = { status: r.status, error: (await r.json()).error };
  result.lastAccessToken = accessToken;
} catch (e) {
  failed = e;
  result.error = String(e?.message ?? e);
  try {
    await ctx.pages()[0]?.screenshot({ path: path.join(ART, "signin-failure.png") });
  } catch {}
} finally {
  await ctx.close();
}
console.log(JSON.stringify(result));
process.exit(failed ? 1 : 0);
