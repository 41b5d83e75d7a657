// The example SPA in a real headless Chromium, on its own origin, against the API on another:
// every flow clicked through, the refresh single-flight across two tabs counted at the API,
// another device's session ended by a password change, a third origin unable to use the cookie,
// two-step sign-in, and passkeys through Chromium's virtual authenticator (DevTools protocol).
//
//   node tests/e2e/spa.mjs   (environment: API_URL, METRICS_URL, MAILS, SPA_PORT, EVIL_PORT,
//                             STRICT_API_URL, STRICT_SPA_PORT, STRICT_AUTH_PER_MINUTE,
//                             ARTIFACTS, PLAYWRIGHT = path to playwright-core, CHROMIUM)
// The strict API has the auth limit lowered: there the SPA meets real 429s.

import { createServer } from "node:http";
import { readFile, mkdir, writeFile } from "node:fs/promises";
import { readFileSync, existsSync, statSync } from "node:fs";
import { join, extname, resolve } from "node:path";
import { createRequire } from "node:module";
import { createHmac } from "node:crypto";
import { execFileSync } from "node:child_process";

const env = process.env;
const require = createRequire(import.meta.url);
const { chromium } = require(env.PLAYWRIGHT);
const SPA_DIR = resolve(new URL("../../extras/spa", import.meta.url).pathname);
const spaOrigin = `http://127.0.0.1:${env.SPA_PORT}`;
const strictOrigin = `http://127.0.0.1:${env.STRICT_SPA_PORT}`;
const evilOrigin = `http://127.0.0.2:${env.EVIL_PORT}`;
const TTL_MS = Number(env.ACCESS_TTL_SECS) * 1000;

function check(ok, what) {
  if (!ok) throw new Error(`FAILED: ${what}`);
  console.log(`ok  ${what}`);
}

// The SPA, as any static server would serve it (a directory's index.html), with config.js
// pointing at the API under test.
const types = { ".html": "text/html", ".js": "text/javascript", ".css": "text/css" };
const serveSpa = (apiUrl) => async (req, res) => {
  const path = new URL(req.url, spaOrigin).pathname;
  if (path === "/config.js") {
    res.writeHead(200, { "content-type": "text/javascript" });
    return res.end(`export const API_URL = ${JSON.stringify(apiUrl)};\n`);
  }
  const file = join(SPA_DIR, path.endsWith("/") ? path + "index.html" : path);
  if (!file.startsWith(SPA_DIR) || !existsSync(file) || !statSync(file).isFile()) {
    // `/verify-email` without the slash: a directory, as static servers redirect.
    if (existsSync(join(SPA_DIR, path, "index.html"))) {
      res.writeHead(301, { location: path + "/" + new URL(req.url, spaOrigin).search });
      return res.end();
    }
    res.writeHead(404);
    return res.end();
  }
  res.writeHead(200, { "content-type": types[extname(file)] ?? "application/octet-stream" });
  res.end(await readFile(file));
};
const spa = createServer(serveSpa(env.API_URL));
const strictSpa = createServer(serveSpa(env.STRICT_API_URL));
// The third origin: a page that tries to use the user's cookie.
const evil = createServer((req, res) => {
  res.writeHead(200, { "content-type": "text/html" });
  res.end(`<!doctype html><body>
<form id="f" method="POST" action="${env.API_URL}/auth/logout"></form>
<script>
window.attempt = async () => {
  const out = {};
  try {
    const r = await fetch("${env.API_URL}/auth/refreshAccessToken", { method: "POST", credentials: "include" });
    out.read = await r.text();
  } catch (e) { out.fetchError = String(e); }
  return out;
};
</script></body>`);
});
await new Promise((r) => spa.listen(Number(env.SPA_PORT), "127.0.0.1", r));
await new Promise((r) => strictSpa.listen(Number(env.STRICT_SPA_PORT), "127.0.0.1", r));
await new Promise((r) => evil.listen(Number(env.EVIL_PORT), "127.0.0.2", r));

async function refreshes() {
  const text = await (await fetch(env.METRICS_URL)).text();
  const line = text.split("\n").find((l) => l.startsWith('auth_refresh_total{outcome="success"}'));
  return Number(line.split(" ")[1]);
}

function mails(to, subject) {
  if (!existsSync(env.MAILS)) return [];
  return readFileSync(env.MAILS, "utf8")
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l))
    .filter((m) => m.to.includes(to) && m.subject === subject);
}

async function link(to, subject, nth) {
  for (let i = 0; i < 200; i++) {
    const found = mails(to, subject);
    if (found.length >= nth) return found[nth - 1].text.match(/https?:\/\/\S+token=[A-Za-z0-9_-]{43}/)[0];
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`no mail ${nth} «${subject}» to ${to}`);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** RFC 6238 (SHA-1, 6 digits, 30 s) from a base32 key: what an authenticator app computes. */
function totp(secret, ms) {
  let bits = "";
  for (const c of secret) bits += "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567".indexOf(c).toString(2).padStart(5, "0");
  const key = Buffer.from(bits.match(/.{8}/g).map((b) => Number.parseInt(b, 2)));
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(ms / 30000)));
  const mac = createHmac("sha1", key).update(counter).digest();
  const offset = mac[mac.length - 1] & 15;
  return String((mac.readUInt32BE(offset) & 0x7fffffff) % 1000000).padStart(6, "0");
}
const consoleErrors = [];

const browser = await chromium.launch({
  executablePath: env.CHROMIUM,
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});

/** A page of the SPA whose console errors fail the test (HTTP error answers aside: the SPA
 * handles those, and Chromium reports every 4xx fetch as "Failed to load resource"). */
async function spaPage(context) {
  const page = await context.newPage();
  page.on("console", (msg) => {
    if (msg.type() !== "error") return;
    if (/^Failed to load resource: the server responded with a status of 4\d\d/.test(msg.text())) return;
    consoleErrors.push(msg.text());
  });
  page.on("pageerror", (e) => consoleErrors.push(String(e)));
  return page;
}

async function signIn(page, email, password) {
  const form = page.getByRole("form", { name: "Sign in" });
  await form.getByLabel("Email").fill(email);
  await form.getByLabel("Password").fill(password);
  await form.getByRole("button", { name: "Sign in" }).click();
}

const email = "ada@example.com";
const first = "analytical engine one";
const second = "difference engine two";
const third = "lovelace notes three";
try {
  await mkdir(env.ARTIFACTS, { recursive: true });
  const laptop = await browser.newContext();
  const tab1 = await spaPage(laptop);
  await tab1.goto(spaOrigin + "/");

  // Register, then follow the verification link from the mail.
  const reg = tab1.getByRole("form", { name: "Create an account" });
  await reg.getByLabel("Name").fill("Ada");
  await reg.getByLabel("Email").fill(email);
  await reg.getByLabel(/Password/).fill(first);
  await reg.getByRole("button", { name: "Create account" }).click();
  await tab1.getByRole("heading", { name: "Signed in as Ada" }).waitFor();
  check(await tab1.getByText("(not confirmed yet)").isVisible(), "registered and signed in, email not confirmed yet");
  await tab1.goto(await link(email, "Confirm your email address", 1));
  await tab1.getByText("Your email address is confirmed.").waitFor();
  check(!tab1.url().includes("token="), "the token left the address bar");

  // Sign out, sign in, /me.
  await tab1.goto(spaOrigin + "/");
  await tab1.getByText("(confirmed)").waitFor();
  await tab1.getByRole("button", { name: "Sign out" }).click();
  await tab1.getByRole("form", { name: "Sign in" }).waitFor();
  await signIn(tab1, email, first);
  await tab1.getByRole("heading", { name: "Signed in as Ada" }).waitFor();
  check(true, "signed in again; the profile comes from /auth/me");
  await tab1.screenshot({ path: join(env.ARTIFACTS, "signed-in.png"), fullPage: true });

  // Two tabs, each firing two calls at once past the access token's expiry: one refresh.
  const tab2 = await spaPage(laptop);
  await tab2.goto(spaOrigin + "/");
  await tab2.getByRole("heading", { name: "Signed in as Ada" }).waitFor();
  await sleep(TTL_MS + 1500);
  const before = await refreshes();
  const burst = (page) =>
    page.evaluate(() => Promise.all([authApi.authed("GET", "/auth/me"), authApi.authed("GET", "/auth/sessions")]));
  const results = await Promise.all([burst(tab1), burst(tab2)]);
  const after = await refreshes();
  check(results.flat().length === 4 && results.every(([me]) => me.email === email), "all four calls succeeded");
  check(after - before === 1, `exactly one refresh reached the API for two tabs (${after - before})`);

  // A reload keeps the session (the cookie brings a new access token).
  await tab1.reload();
  await tab1.getByRole("heading", { name: "Signed in as Ada" }).waitFor();
  check(true, "still signed in after a reload");

  // A third origin cannot use the cookie: no token readable, no logout.
  const evilPage = await laptop.newPage();
  await evilPage.goto(evilOrigin + "/");
  const stolen = await evilPage.evaluate(() => window.attempt());
  check(stolen.read === undefined && /Failed to fetch/.test(stolen.fetchError ?? ""), "a third origin reads nothing");
  await evilPage.evaluate(() => setTimeout(() => document.getElementById("f").submit(), 0));
  await evilPage.waitForURL(/\/auth\/logout$/);
  check(/CSRF_REJECTED/.test(await evilPage.content()), "a cross-site form POST is refused (CSRF_REJECTED)");
  await tab1.reload();
  await tab1.getByRole("heading", { name: "Signed in as Ada" }).waitFor();
  check(true, "the session survived the third origin");

  // Another device; a password change here ends it, and this one stays.
  const phone = await browser.newContext();
  const phoneTab = await spaPage(phone);
  await phoneTab.goto(spaOrigin + "/");
  await signIn(phoneTab, email, first);
  await phoneTab.getByRole("heading", { name: "Signed in as Ada" }).waitFor();
  const change = tab1.getByRole("form", { name: "Change your password" });
  await tab1.reload();
  await change.getByLabel("Current password").fill(first);
  await change.getByLabel("New password").fill(second);
  await change.getByRole("button", { name: "Change password" }).click();
  await tab1.getByText(/Password changed\. [1-9]\d* other session/).waitFor();
  await phoneTab.reload();
  await phoneTab.getByRole("form", { name: "Sign in" }).waitFor();
  check(true, "the other device is signed out");
  await tab1.reload();
  await tab1.getByRole("heading", { name: "Signed in as Ada" }).waitFor();
  check(true, "this device stays signed in");
  const activity = tab1.getByRole("table", { name: "Recent security activity" });
  await activity.getByRole("cell", { name: "Password changed" }).waitFor();
  await activity.getByRole("cell", { name: "Session ended (password change)" }).waitFor();
  check(
    (await activity.getByRole("cell", { name: /Chrom/ }).count()) > 0,
    "recent security activity lists the change and the session it ended, with the browser",
  );

  // Forgot, reset through the mailed link, the old password refused, the new one works.
  await tab1.getByRole("button", { name: "Sign out" }).click();
  const forgot = tab1.getByRole("form", { name: "Forgot your password" });
  await forgot.getByLabel("Email").fill(email);
  await forgot.getByRole("button", { name: "Send me a reset link" }).click();
  await tab1.getByText(/a link to reset its password is on its way/).waitFor();
  await tab1.goto(await link(email, "Reset your password", 1));
  await tab1.getByRole("heading", { name: "Choose a new password" }).waitFor();
  await tab1.screenshot({ path: join(env.ARTIFACTS, "reset-password.png"), fullPage: true });
  await tab1.getByRole("textbox", { name: "New password" }).fill(third);
  await tab1.getByRole("button", { name: "Set password" }).click();
  await tab1.getByText(/Your password is changed/).waitFor();
  await signIn(tab1, email, second);
  await tab1.getByRole("form", { name: "Sign in" }).getByText("Wrong email or password.").waitFor();
  check(true, "the old password is refused");
  await signIn(tab1, email, third);
  await tab1.getByRole("heading", { name: "Signed in as Ada" }).waitFor();
  check(true, "the new password works");

  // Sign out, and stay signed out.
  await tab1.getByRole("button", { name: "Sign out" }).click();
  await tab1.getByRole("form", { name: "Sign in" }).waitFor();
  await tab1.reload();
  await tab1.getByRole("form", { name: "Sign in" }).waitFor();
  check(true, "signed out, also after a reload");

  // Two-step sign-in: the QR code and key shown, the first code confirms, recovery codes shown
  // once (copy, download), a sign-in with a recovery code and one with the app's code, removal.
  const tess = "tess@example.com";
  const tessPassword = "tessellated plane four";
  const mfaContext = await browser.newContext({ acceptDownloads: true });
  await mfaContext.grantPermissions(["clipboard-read", "clipboard-write"], { origin: spaOrigin });
  const m = await spaPage(mfaContext);
  await m.goto(spaOrigin + "/");
  const tessForm = m.getByRole("form", { name: "Create an account" });
  await tessForm.getByLabel("Name").fill("Tess");
  await tessForm.getByLabel("Email").fill(tess);
  await tessForm.getByLabel(/Password/).fill(tessPassword);
  await tessForm.getByRole("button", { name: "Create account" }).click();
  await m.getByRole("heading", { name: "Signed in as Tess" }).waitFor();
  check(/^Off/.test(await m.locator("#mfa-state").textContent()), "two-step sign-in starts off");
  const turnOn = m.getByRole("form", { name: "Turn on two-step sign-in" });
  await turnOn.getByLabel("Password").fill(tessPassword);
  await turnOn.getByRole("button", { name: "Set up an authenticator app" }).click();
  await m.locator("#totp-qr").waitFor();
  await m.waitForFunction(() => document.getElementById("totp-qr").complete);
  check(await m.locator("#totp-qr").evaluate((img) => img.naturalWidth > 0), "the QR code is shown as an image");
  const secret = (await m.locator("#totp-secret").textContent()).trim();
  check(/^[A-Z2-7]{32}$/.test(secret), "the key is shown for typing in by hand");
  // What a phone's camera would read: the QR code as rendered, decoded by zbar.
  const qrShot = join(env.ARTIFACTS, "two-step-qr.png");
  await m.locator("#totp-qr").screenshot({ path: qrShot });
  const scanned = execFileSync("zbarimg", ["--raw", "-q", qrShot], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
  check(
    scanned.startsWith("otpauth://totp/auth-api:tess%40example.com?") && scanned.includes(`secret=${secret}`),
    `the QR code scans as the otpauth URI with the same key (${scanned.replace(secret, "…")})`,
  );
  await m.screenshot({ path: join(env.ARTIFACTS, "two-step-enrol.png"), fullPage: true });
  const confirmedAt = Date.now();
  const confirmForm = m.getByRole("form", { name: "Confirm two-step sign-in" });
  await confirmForm.getByLabel("Code from the app").fill(totp(secret, confirmedAt));
  await confirmForm.getByRole("button", { name: "Turn on" }).click();
  await m.locator("#recovery-codes").waitFor();
  const codes = (await m.locator("#recovery-codes").textContent()).trim().split("\n");
  check(codes.length === 10 && codes.every((c) => /^[A-Z2-7]{4}(-[A-Z2-7]{4}){3}$/.test(c)), "ten recovery codes are shown");
  await m.getByRole("button", { name: "Copy" }).click();
  await m.getByText("Copied.").waitFor();
  check((await m.evaluate(() => navigator.clipboard.readText())).includes(codes[0]), "Copy puts them on the clipboard");
  const [download] = await Promise.all([m.waitForEvent("download"), m.locator("#download-codes").click()]);
  check(readFileSync(await download.path(), "utf8").includes(codes[9]), "Download saves them as a file");
  await m.getByRole("button", { name: "I have saved them" }).click();
  await m.getByText(/^On: your authenticator app/).waitFor();
  check(/10 recovery code/.test(await m.locator("#mfa-state").textContent()), "two-step sign-in is on, 10 recovery codes left");
  check((await m.locator("#recovery-codes").count()) === 0, "the codes are not shown again");

  await m.getByRole("button", { name: "Sign out" }).click();
  await signIn(m, tess, tessPassword);
  const codeForm = m.getByRole("form", { name: "Enter your code" });
  await codeForm.waitFor();
  check(true, "the password alone does not sign in: the second step is asked for");
  const recoveryForm = m.getByRole("form", { name: "Use a recovery code" });
  await recoveryForm.getByLabel("Recovery code").fill(codes[0].toLowerCase());
  await recoveryForm.getByRole("button", { name: "Use recovery code" }).click();
  await m.getByRole("heading", { name: "Signed in as Tess" }).waitFor();
  check(/9 recovery code/.test(await m.locator("#mfa-state").textContent()), "a recovery code signs in, and is used up");

  await m.getByRole("button", { name: "Sign out" }).click();
  await signIn(m, tess, tessPassword);
  await codeForm.waitFor();
  await codeForm.getByLabel("Code").fill("000000");
  await codeForm.getByRole("button", { name: "Verify" }).click();
  await codeForm.getByText("This code is not right").waitFor();
  check(true, "a wrong code is told beside the form");
  // A step's code works once: the app's next code, after the one that confirmed.
  while (Math.floor(Date.now() / 30000) <= Math.floor(confirmedAt / 30000)) await sleep(250);
  await codeForm.getByLabel("Code").fill(totp(secret, Date.now()));
  await codeForm.getByRole("button", { name: "Verify" }).click();
  await m.getByRole("heading", { name: "Signed in as Tess" }).waitFor();
  check(true, "the app's code signs in");
  const tessActivity = m.getByRole("table", { name: "Recent security activity" });
  await tessActivity.getByRole("cell", { name: "Two-step sign-in turned on (totp)" }).waitFor();
  await tessActivity.getByRole("cell", { name: "Wrong two-step sign-in code (wrong code)" }).first().waitFor();
  check(true, "recent security activity lists the second factor's events");

  const turnOff = m.getByRole("form", { name: "Turn off two-step sign-in" });
  await turnOff.getByLabel("Password").fill(tessPassword);
  await turnOff.getByLabel("Code from the app, or a recovery code").fill(codes[1]);
  await turnOff.getByRole("button", { name: "Turn off" }).click();
  await m.getByText(/Two-step sign-in is off/).waitFor();
  check(/^Off/.test(await m.locator("#mfa-state").textContent()), "turned off with a recovery code");
  await m.getByRole("button", { name: "Sign out" }).click();
  await signIn(m, tess, tessPassword);
  await m.getByRole("heading", { name: "Signed in as Tess" }).waitFor();
  check(true, "the password alone signs in again");

  // Passkeys, with Chromium's virtual authenticator (a platform authenticator that keeps
  // discoverable credentials and verifies its user), on http://localhost:A: WebAuthn takes a
  // domain, not an address, as the relying party.
  const passkeyOrigin = `http://localhost:${env.SPA_PORT}`;
  const pat = "pat@example.com";
  const patPassword = "punched cards five";
  const keyContext = await browser.newContext();
  const k = await spaPage(keyContext);
  const cdp = await keyContext.newCDPSession(k);
  await cdp.send("WebAuthn.enable");
  const { authenticatorId } = await cdp.send("WebAuthn.addVirtualAuthenticator", {
    options: {
      protocol: "ctap2",
      transport: "internal",
      hasResidentKey: true,
      hasUserVerification: true,
      isUserVerified: true,
      automaticPresenceSimulation: true,
    },
  });
  await k.goto(passkeyOrigin + "/");
  const patForm = k.getByRole("form", { name: "Create an account" });
  await patForm.getByLabel("Name").fill("Pat");
  await patForm.getByLabel("Email").fill(pat);
  await patForm.getByLabel(/Password/).fill(patPassword);
  await patForm.getByRole("button", { name: "Create account" }).click();
  await k.getByRole("heading", { name: "Signed in as Pat" }).waitFor();
  const addKey = k.getByRole("form", { name: "Add a passkey" });
  await addKey.getByLabel("Name").fill("Laptop");
  await addKey.getByLabel("Password").fill(patPassword);
  await addKey.getByRole("button", { name: "Add a passkey" }).click();
  await k.getByText("Passkey added: you can sign in with it, no password needed.").waitFor();
  await k.getByRole("table", { name: "Passkeys" }).getByRole("cell", { name: "Laptop", exact: true }).waitFor();
  const { credentials } = await cdp.send("WebAuthn.getCredentials", { authenticatorId });
  check(credentials.length === 1 && credentials[0].isResidentCredential, "a discoverable passkey is registered in the browser's authenticator");
  await k.screenshot({ path: join(env.ARTIFACTS, "passkey-added.png"), fullPage: true });

  await k.getByRole("button", { name: "Sign out" }).click();
  await k.getByRole("form", { name: "Sign in" }).waitFor();
  const finished = k.waitForResponse((r) => r.url().endsWith("/auth/passkeys/login/finish"));
  await k.getByRole("button", { name: "Sign in with a passkey" }).click();
  const finish = await finished;
  await k.getByRole("heading", { name: "Signed in as Pat" }).waitFor();
  check(finish.status() === 200, "signed in with the passkey alone: no email, no password typed");
  await writeFile(join(env.ARTIFACTS, "passkey-access-token.txt"), (await finish.json()).content.access_token);
  const { credentials: used } = await cdp.send("WebAuthn.getCredentials", { authenticatorId });
  check(used[0].signCount >= 1, `the authenticator signed (count ${used[0].signCount})`);
  const patActivity = k.getByRole("table", { name: "Recent security activity" });
  await patActivity.getByRole("cell", { name: "Passkey added" }).waitFor();

  const removeKey = k.getByRole("form", { name: "Remove passkey Laptop" });
  await removeKey.getByLabel("Password").fill(patPassword);
  await removeKey.getByRole("button", { name: "Remove" }).click();
  await k.getByText("Passkey removed.").waitFor();
  check((await k.getByRole("table", { name: "Passkeys" }).getByRole("cell", { name: "Laptop", exact: true }).count()) === 0, "the passkey is removed from the account");
  await k.getByRole("button", { name: "Sign out" }).click();
  await k.getByRole("form", { name: "Sign in" }).waitFor();
  // The browser still holds the credential; the service no longer accepts it.
  await k.getByRole("button", { name: "Sign in with a passkey" }).click();
  await k.getByText("This passkey cannot sign in here").waitFor();
  check(await k.getByRole("form", { name: "Sign in" }).isVisible(), "a removed passkey is refused, and the sign-in page stays");
  await k.screenshot({ path: join(env.ARTIFACTS, "passkey-refused.png"), fullPage: true });

  // An account with a passkey and no password at all, on a device of its own.
  const quinnContext = await browser.newContext();
  const q = await spaPage(quinnContext);
  const qcdp = await quinnContext.newCDPSession(q);
  await qcdp.send("WebAuthn.enable");
  await qcdp.send("WebAuthn.addVirtualAuthenticator", {
    options: { protocol: "ctap2", transport: "internal", hasResidentKey: true, hasUserVerification: true, isUserVerified: true, automaticPresenceSimulation: true },
  });
  await q.goto(passkeyOrigin + "/");
  const quinnForm = q.getByRole("form", { name: "Sign up with a passkey" });
  await quinnForm.getByLabel("Name").fill("Quinn");
  await quinnForm.getByLabel("Email").fill("quinn@example.com");
  await quinnForm.getByRole("button", { name: "Sign up with a passkey" }).click();
  await q.getByRole("heading", { name: "Signed in as Quinn" }).waitFor();
  await q.getByRole("button", { name: "Sign out" }).click();
  await q.getByRole("button", { name: "Sign in with a passkey" }).click();
  await q.getByRole("heading", { name: "Signed in as Quinn" }).waitFor();
  check(true, "an account made with a passkey alone signs in with it, no password ever typed");

  // Real 429s, on the strict API: the SPA says what happened and keeps the session.
  const strict = await browser.newContext();
  const page = await spaPage(strict);
  await page.goto(strictOrigin + "/");
  const regStrict = page.getByRole("form", { name: "Create an account" });
  await regStrict.getByLabel("Name").fill("Grace");
  await regStrict.getByLabel("Email").fill("grace@example.com");
  await regStrict.getByLabel(/Password/).fill(first);
  await regStrict.getByRole("button", { name: "Create account" }).click();
  await page.getByRole("heading", { name: "Signed in as Grace" }).waitFor();
  // The registration's mail used the address's one mail of the hour: resend gets a 429.
  await page.getByRole("button", { name: "Send the confirmation link again" }).click();
  await page.getByText(/^Too many requests from here\. Try again in \d+ seconds?\.$/).waitFor();
  check(await page.getByRole("heading", { name: "Signed in as Grace" }).isVisible(), "a resend past the mail limit is told beside its button, the page stays");
  // Reloads spend the per-IP refresh budget; the one past it is told, not a sign-in page.
  const budget = Number(env.STRICT_AUTH_PER_MINUTE);
  let limited = false;
  for (let i = 0; i < budget + 1 && !limited; i++) {
    await page.reload();
    const outcome = await Promise.race([
      page.getByRole("heading", { name: "Signed in as Grace" }).waitFor().then(() => "in"),
      page.getByRole("heading", { name: "Signing you back in…" }).waitFor().then(() => "limited"),
      page.getByRole("form", { name: "Sign in" }).waitFor().then(() => "signed out"),
    ]);
    check(outcome !== "signed out", `reload ${i + 1}: never the sign-in page while the session is valid`);
    limited = outcome === "limited";
  }
  check(limited, "a reload past the refresh limit meets a 429");
  check(/Too many requests from here\. Try again in \d+ seconds?\./.test(await page.locator("#status").textContent()), "the 429 is told with its wait");
  await page.screenshot({ path: join(env.ARTIFACTS, "rate-limited.png"), fullPage: true });
  // It tries again by itself when Retry-After is over, and the session is still there.
  await page.getByRole("heading", { name: "Signed in as Grace" }).waitFor({ timeout: 30000 });
  check(true, "after Retry-After the SPA signs back in by itself");

  check(consoleErrors.length === 0, `no console errors (${consoleErrors.join(" | ")})`);
  console.log(`screenshots in ${env.ARTIFACTS}`);
} catch (e) {
  // What the user would have seen.
  for (const context of browser.contexts()) {
    for (const page of context.pages()) {
      console.error(`--- ${page.url()}\n${await page.content().catch(() => "?")}`);
    }
  }
  throw e;
} finally {
  await browser.close();
  spa.close();
  strictSpa.close();
  evil.close();
}
