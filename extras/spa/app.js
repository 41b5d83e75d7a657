// The example SPA: plain DOM, no framework, no build step. Pages: `/` (sign in, register, the
// signed-in profile), `/verify-email?token=…` and `/reset-password?token=…` (the mailed links).

import * as api from "./api.js";

// The link pages are bare shells: the header and the main area are made here.
if (!document.getElementById("app")) {
  const header = document.body.appendChild(document.createElement("header"));
  header.appendChild(Object.assign(document.createElement("h1"), { textContent: "auth-api example" }));
  document.body.appendChild(Object.assign(document.createElement("main"), { id: "app", tabIndex: -1 }));
}
const app = document.getElementById("app");
const status = document.getElementById("status") ?? app.insertAdjacentElement("beforebegin", Object.assign(document.createElement("p"), { id: "status" }));
status.setAttribute("role", "status");
status.setAttribute("aria-live", "polite");

/** Element helper: h("button", {type: "submit"}, "Go"). */
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v);
  }
  el.append(...children.flat());
  return el;
}

function say(message, isError = false) {
  // Errors interrupt (assertive); outcomes wait for a pause (polite).
  status.setAttribute("aria-live", isError ? "assertive" : "polite");
  status.textContent = message;
  status.classList.toggle("error", isError);
}

/** A labelled field; `name` is the JSON field it fills. */
function field(label, name, type = "text", autocomplete = "off") {
  const id = `f-${name}-${Math.random().toString(36).slice(2, 7)}`;
  return h("label", { for: id }, label, h("input", { id, name, type, autocomplete, required: "" }));
}

/** A form whose submit calls `action(values)`; errors are announced, the bad field focused. */
function form(title, fields, button, action) {
  const el = h("form", { "aria-label": title }, ...fields, h("button", { type: "submit" }, button));
  el.addEventListener("submit", async (event) => {
    event.preventDefault();
    const values = Object.fromEntries(new FormData(el));
    el.querySelector("button").disabled = true;
    try {
      await action(values, el);
    } catch (e) {
      say(e.message, true);
      const bad = e.field && el.querySelector(`[name="${e.field}"]`);
      (bad || el.querySelector("input"))?.focus();
    } finally {
      el.querySelector("button").disabled = false;
    }
  });
  return el;
}

function show(...sections) {
  app.replaceChildren(...sections);
  app.focus();
}

/** Removes the token from the address bar once read: it must not linger in history. */
function takeToken() {
  const token = new URLSearchParams(location.search).get("token");
  history.replaceState(null, "", location.pathname);
  return token;
}

function signedOutPage() {
  show(
    h("h2", {}, "Sign in"),
    form("Sign in", [field("Email", "email", "email", "username"), field("Password", "password", "password", "current-password")], "Sign in", async ({ email, password }) => {
      await api.login(email, password);
      say("Signed in.");
      await profilePage();
    }),
    h("h2", {}, "Create an account"),
    form(
      "Create an account",
      [field("Name", "username", "text", "name"), field("Email", "email", "email", "email"), field("Password (8 characters or more)", "password", "password", "new-password")],
      "Create account",
      async ({ username, email, password }) => {
        const content = await api.register(username, email, password);
        if (content.access_token) {
          say("Account created. We sent you a link to confirm your email address.");
          await profilePage();
        } else {
          say(content.message);
        }
      },
    ),
    h("h2", {}, "Forgot your password?"),
    form("Forgot your password", [field("Email", "email", "email", "email")], "Send me a reset link", async ({ email }) => {
      const message = await api.call("POST", "/auth/password/forgot", { email });
      say(message);
    }),
  );
}

async function profilePage() {
  const me = await api.authed("GET", "/auth/me");
  const sessions = await api.authed("GET", "/auth/sessions");
  const rows = sessions.map((s) =>
    h(
      "tr",
      {},
      h("td", {}, s.current ? "This device" : s.user_agent ?? "unknown device"),
      h("td", {}, new Date(s.last_used_at).toLocaleString()),
      h(
        "td",
        {},
        h("button", { type: "button", class: "secondary", "aria-label": `End the session of ${s.current ? "this device" : s.user_agent ?? "an unknown device"}`, onclick: async () => {
          await api.authed("DELETE", `/auth/sessions/${s.id}`);
          if (s.current) return signedOut("This session has ended.");
          say("Session ended.");
          await profilePage();
        } }, "End"),
      ),
    ),
  );
  show(
    h("h2", { id: "profile" }, `Signed in as ${me.username}`),
    h("p", {}, `Email: ${me.email} `, me.email_verified ? h("strong", {}, "(confirmed)") : h("strong", {}, "(not confirmed yet)")),
    me.email_verified
      ? ""
      : h("button", { type: "button", class: "secondary", onclick: async () => say(await api.authed("POST", "/auth/email/verify/resend")) }, "Send the confirmation link again"),
    h("h2", {}, "Your sessions"),
    h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "Device"), h("th", {}, "Last used"), h("th", {}, ""))), h("tbody", {}, rows)),
    h("h2", {}, "Change your password"),
    form("Change your password", [field("Current password", "current_password", "password", "current-password"), field("New password", "new_password", "password", "new-password")], "Change password", async (values, el) => {
      const { revoked } = await api.authed("POST", "/auth/password/change", values);
      el.reset();
      say(`Password changed. ${revoked} other session(s) ended.`);
    }),
    h("button", { type: "button", id: "logout", onclick: async () => {
      await api.logout().catch(() => {});
      signedOut("Signed out.");
    } }, "Sign out"),
  );
}

function signedOut(message) {
  say(message);
  signedOutPage();
}

async function verifyPage() {
  const token = takeToken();
  show(h("h2", {}, "Confirming your email address…"));
  try {
    await api.call("POST", "/auth/email/verify", { token });
    say("Your email address is confirmed.");
  } catch (e) {
    say(e.code === "EXPIRED_VERIFY_TOKEN" ? "This link has expired: sign in and ask for a new one." : e.message, true);
  }
  show(h("h2", {}, "Email confirmation"), h("p", {}, h("a", { href: "/" }, "Continue")));
}

function resetPage() {
  const token = takeToken();
  show(
    h("h2", {}, "Choose a new password"),
    form("Choose a new password", [field("New password", "password", "password", "new-password")], "Set password", async ({ password }) => {
      await api.call("POST", "/auth/password/reset", { token, password });
      // The link is spent: a reload should land on the sign-in page, not on this one.
      history.replaceState(null, "", "/");
      say("Your password is changed and every session has ended. Sign in with the new password.");
      signedOutPage();
    }),
  );
}

api.onSignedOut(() => signedOut("Signed out in another tab."));
// For the browser console (and the end-to-end test): the same client the pages use.
globalThis.authApi = api;

async function start() {
  if (location.pathname.startsWith("/verify-email")) return verifyPage();
  if (location.pathname.startsWith("/reset-password")) return resetPage();
  // A reload: the access token is gone with the page, the refresh cookie brings a new one.
  try {
    await api.refresh();
    await profilePage();
  } catch {
    signedOutPage();
  }
}

start();
