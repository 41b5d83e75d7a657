// The auth-api client: the access token lives in this module's memory only (never in
// localStorage, where any injected script could read it); the refresh token is the HttpOnly
// `jwt` cookie, which no script can read at all. A reload gets a new access token through the
// cookie.
//
// Refreshing is single-flight: concurrent calls in this tab share one refresh, and tabs share
// one through a Web Lock, the tab that refreshed handing the new token to the others over a
// BroadcastChannel (same origin only).

import { API_URL } from "./config.js";

let accessToken = null;
let inflight = null;
const listeners = { token: [], signedOut: [] };
const channel = "BroadcastChannel" in self ? new BroadcastChannel("auth-api-example") : null;

channel?.addEventListener("message", ({ data }) => {
  if (data?.type === "token") {
    accessToken = data.token;
    listeners.token.forEach((f) => f(data.token));
  } else if (data?.type === "signed-out") {
    accessToken = null;
    listeners.signedOut.forEach((f) => f());
  }
});

export function onSignedOut(f) {
  listeners.signedOut.push(f);
}

export function signedIn() {
  return accessToken !== null;
}

/**
 * An API error: `code` is the envelope's stable `error_code`, `retryAfter` the seconds the
 * server asked to wait (429, 503), `field` the input a validation error names.
 */
export class ApiError extends Error {
  constructor(status, content, retryAfter = null) {
    super(content?.message ?? `HTTP ${status}`);
    this.status = status;
    this.code = content?.error_code ?? "NETWORK";
    this.field = content?.field;
    this.retryAfter = retryAfter;
    // `MFA_REQUIRED`: the password was right; `{challenge, methods, expires_in}` of the second step.
    this.mfa = content?.mfa;
  }
}

/** The codes after which only signing in again helps. */
export const SESSION_OVER = new Set([
  "INVALID_ACCESS_TOKEN",
  "PROTECTED_ROUTE",
  "NO_JWT_REFTOKEN_COOKIE",
  "NO_REFRESH_TOKEN",
  "INVALID_REFRESH_TOKEN",
  "EXPIRED_REFRESH_TOKEN",
  "REFRESH_TOKEN_REUSED",
]);

async function send(method, path, { body, token } = {}) {
  const headers = {};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (token) headers.Authorization = `Bearer ${token}`;
  let response;
  try {
    // `credentials: "include"`: the refresh cookie goes to the API's other origin too.
    response = await fetch(API_URL + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "include",
    });
  } catch {
    throw new ApiError(0, { error_code: "NETWORK", message: "the server cannot be reached" });
  }
  const envelope = await response.json().catch(() => null);
  if (!response.ok) {
    const wait = Number.parseInt(response.headers.get("retry-after") ?? "", 10);
    throw new ApiError(response.status, envelope?.content, Number.isFinite(wait) ? wait : null);
  }
  return envelope?.content;
}

function keep(content) {
  accessToken = content.access_token;
  channel?.postMessage({ type: "token", token: accessToken });
  return content;
}

/** A call without the access token (login, register, forgot, reset, verify). */
export function call(method, path, body) {
  return send(method, path, { body });
}

export async function login(email, password) {
  return keep(await send("POST", "/auth/login", { body: { email, password } }));
}

/** The second step of a login: `{code}` or `{recovery_code}` for the login's challenge. */
export async function verifySecondFactor(challenge, proof) {
  return keep(await send("POST", "/auth/mfa/verify", { body: { challenge, ...proof } }));
}

// Passkeys. The service's options and the browser's credentials travel as JSON with binary
// fields in base64url; WebAuthn itself takes and gives ArrayBuffers.
const fromB64 = (text) => Uint8Array.from(atob(text.replace(/-/g, "+").replace(/_/g, "/")), (c) => c.charCodeAt(0)).buffer;
const toB64 = (buffer) =>
  buffer ? btoa(String.fromCharCode(...new Uint8Array(buffer))).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "") : null;
const withIds = (list) => (list ?? []).map((c) => ({ ...c, id: fromB64(c.id) }));
/** A credential as the service reads it: `response` holds its binary fields, encoded. */
const asJson = (credential, response) => ({
  id: credential.id,
  rawId: toB64(credential.rawId),
  type: credential.type,
  response,
  extensions: credential.getClientExtensionResults(),
});

async function created(options) {
  const publicKey = {
    ...options.publicKey,
    challenge: fromB64(options.publicKey.challenge),
    user: { ...options.publicKey.user, id: fromB64(options.publicKey.user.id) },
    excludeCredentials: withIds(options.publicKey.excludeCredentials),
  };
  const credential = await navigator.credentials.create({ publicKey });
  return asJson(credential, {
    attestationObject: toB64(credential.response.attestationObject),
    clientDataJSON: toB64(credential.response.clientDataJSON),
    transports: credential.response.getTransports?.() ?? [],
  });
}

async function asserted(options) {
  const publicKey = {
    ...options.publicKey,
    challenge: fromB64(options.publicKey.challenge),
    allowCredentials: withIds(options.publicKey.allowCredentials),
  };
  const credential = await navigator.credentials.get({ publicKey });
  return asJson(credential, {
    authenticatorData: toB64(credential.response.authenticatorData),
    clientDataJSON: toB64(credential.response.clientDataJSON),
    signature: toB64(credential.response.signature),
    userHandle: toB64(credential.response.userHandle),
  });
}

/**
 * Signs in with a passkey: with no `challenge` the browser offers the passkeys it holds for
 * this site (nothing is typed); with a login's challenge, it answers that login's second step.
 */
export async function passkeySignIn(challenge) {
  const started = await send("POST", "/auth/passkeys/login/start", challenge ? { body: { challenge } } : {});
  const credential = await asserted(started.options);
  const body = { ceremony: started.ceremony, credential, ...(challenge ? { challenge } : {}) };
  return keep(await send("POST", "/auth/passkeys/login/finish", { body }));
}

/** A new account whose only way in is a passkey of this device (no password). */
export async function passkeySignUp(username, email) {
  const started = await send("POST", "/auth/passkeys/signup/start", { body: { username, email } });
  const credential = await created(started.options);
  const content = await send("POST", "/auth/passkeys/signup/finish", { body: { ceremony: started.ceremony, credential } });
  return content.access_token ? keep(content) : content;
}

/** Adds a passkey of this device: `proof` is the password (and a code when two-step is on). */
export async function addPasskey(name, proof) {
  const started = await authed("POST", "/auth/passkeys/register/start", proof);
  const credential = await created(started.options);
  return authed("POST", "/auth/passkeys/register/finish", { ceremony: started.ceremony, credential, name });
}

export async function register(username, email, password) {
  const content = await send("POST", "/auth/register", { body: { username, email, password } });
  // Under REQUIRE_VERIFIED_EMAIL the answer has no token: the user verifies first.
  return content.access_token ? keep(content) : content;
}

export async function logout() {
  try {
    await send("POST", "/auth/logout");
  } finally {
    accessToken = null;
    channel?.postMessage({ type: "signed-out" });
  }
}

/**
 * A call with the access token. On `EXPIRED_ACCESS_TOKEN` it refreshes once (shared with every
 * concurrent call, in this tab and the others) and retries.
 */
export async function authed(method, path, body) {
  if (!accessToken) await refresh();
  const used = accessToken;
  try {
    return await send(method, path, { body, token: used });
  } catch (e) {
    if (!(e instanceof ApiError) || e.code !== "EXPIRED_ACCESS_TOKEN") throw e;
    await refresh(used);
    return send(method, path, { body, token: accessToken });
  }
}

/**
 * A fresh access token, unless `stale` was already replaced (by this tab or another). Throws
 * when the refresh cookie is gone or dead: the user must sign in again.
 */
export function refresh(stale = accessToken) {
  if (accessToken && accessToken !== stale) return Promise.resolve(accessToken);
  if (!inflight) {
    inflight = refreshAcrossTabs(stale).finally(() => {
      inflight = null;
    });
  }
  return inflight;
}

async function refreshAcrossTabs(stale) {
  const refreshNow = async () => {
    try {
      return keep(await send("POST", "/auth/refreshAccessToken")).access_token;
    } catch (e) {
      accessToken = null;
      throw e;
    }
  };
  if (!navigator.locks) return refreshNow();
  return navigator.locks.request("auth-api-example-refresh", async () => {
    // The tab that held the lock before us posted its token just before letting go; the message
    // and the lock reach this tab in either order, so give the message a moment to land.
    if (accessToken === stale) await new Promise((r) => setTimeout(r, 50));
    if (accessToken && accessToken !== stale) return accessToken;
    return refreshNow();
  });
}
