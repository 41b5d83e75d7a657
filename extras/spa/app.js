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

/**
 * What to tell the user about an API error, by its stable code (the README's table "Errors a
 * frontend must handle"), never the server's own wording.
 */
function explain(e) {
  const wait = e.retryAfter ? ` Try again in ${e.retryAfter} second${e.retryAfter === 1 ? "" : "s"}.` : " Try again in a moment.";
  switch (e.code) {
    case "USER_NOT_FOUND":
      return "Wrong email or password.";
    case "EMAIL_NOT_VERIFIED":
      return "Confirm your email address first: the link is in your mailbox, or ask for a new one below.";
    case "EMAIL_TAKEN":
      return "An account with this email exists: sign in, or reset its password.";
    case "INVALID_CURRENT_PASSWORD":
      return "Your current password is not right.";
    case "INVALID_RESET_TOKEN":
    case "INVALID_VERIFY_TOKEN":
      return "This link has been used already or replaced: ask for a new one.";
    case "EXPIRED_RESET_TOKEN":
    case "EXPIRED_VERIFY_TOKEN":
      return "This link has expired: ask for a new one.";
    case "EMAIL_ALREADY_VERIFIED":
      return "Your email address is confirmed already.";
    case "RATE_LIMITED":
      return "Too many requests from here." + wait;
    case "ACCOUNT_LOCKED":
      return "Too many failed sign-ins for this email." + wait;
    case "SERVICE_UNAVAILABLE":
    case "NETWORK":
      return "The service cannot be reached right now." + wait;
    case "VALIDATION_ERROR":
      return e.message;
    case "CSRF_REJECTED":
    case "CORS_REJECTED":
      return "This page may not use the service (its address is not allowed: a setup error).";
    case "MAIL_DISABLED":
      return "This service sends no mail: ask its operator.";
    case "MFA_CODE_INVALID":
      return "This code is not right, or was used already: wait for the next one in your app.";
    case "MFA_CHALLENGE_INVALID":
      return "This sign-in took too long or too many tries: sign in again.";
    case "MFA_CODE_REQUIRED":
      return "Enter a code from your authenticator app (or a recovery code) as well.";
    case "MFA_ALREADY_ENABLED":
      return "Two-step sign-in is on already.";
    case "MFA_NOT_ENABLED":
      return "Two-step sign-in is not on: start again.";
    case "MFA_UNAVAILABLE":
      return "This service offers no two-step sign-in.";
    case "PASSKEYS_UNAVAILABLE":
      return "This service offers no passkeys.";
    case "PASSKEY_REFUSED":
      return "This passkey cannot sign in here (it may have been removed from your account).";
    case "PASSKEY_CEREMONY_INVALID":
      return "That took too long: try again.";
    case "PASSKEY_INVALID":
      return "Your device's answer was not accepted: try again.";
    case "PASSKEY_TAKEN":
      return "This device's passkey is on an account already.";
    case "PASSKEY_LAST_WAY_IN":
      return "This passkey is your only way in: add another one or set a password first.";
    case "NotAllowedError":
      return "The passkey prompt was closed or timed out.";
    default:
      return api.SESSION_OVER.has(e.code) ? "Your session has ended: sign in again." : `Something went wrong (${e.code}). Try again.`;
  }
}

/** Runs a button's `action`: the button is disabled meanwhile, an error is told beside it. */
function act(button, action) {
  return async () => {
    say("");
    button.disabled = true;
    const note = button.nextElementSibling?.classList.contains("inline-error") ? button.nextElementSibling : null;
    if (note) note.textContent = "";
    try {
      await action();
    } catch (e) {
      if (api.SESSION_OVER.has(e.code)) return signedOut(explain(e));
      const message = explain(e);
      if (note) note.textContent = message;
      else say(message, true);
    } finally {
      button.disabled = false;
    }
  };
}

/** A button whose click runs `action` through `act`, with its own place for an error. */
function actionButton(label, attrs, action) {
  const button = h("button", { type: "button", ...attrs }, label);
  button.addEventListener("click", act(button, action));
  return h("span", { class: "action" }, button, h("span", { class: "inline-error", role: "alert" }));
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

/**
 * A form whose submit calls `action(values)`. An error is told inside the form, under its
 * button (announced), and the field it names is focused.
 */
function form(title, fields, button, action) {
  const error = h("p", { class: "form-error", role: "alert" });
  const el = h("form", { "aria-label": title }, ...fields, h("button", { type: "submit" }, button), error);
  el.addEventListener("submit", async (event) => {
    event.preventDefault();
    const values = Object.fromEntries(new FormData(el));
    el.querySelector("button").disabled = true;
    error.textContent = "";
    say("");
    try {
      await action(values, el);
    } catch (e) {
      if (api.SESSION_OVER.has(e.code)) return signedOut(explain(e));
      error.textContent = explain(e);
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

/** Browser refusals (a closed prompt) become errors `explain` knows. */
async function viaBrowser(action) {
  try {
    return await action();
  } catch (e) {
    if (e instanceof DOMException) throw Object.assign(new Error(e.message), { code: e.name });
    throw e;
  }
}

function signedOutPage() {
  show(
    h("h2", {}, "Sign in"),
    actionButton("Sign in with a passkey", {}, async () => {
      await viaBrowser(() => api.passkeySignIn());
      say("Signed in.");
      await profilePage();
    }),
    form("Sign in", [field("Email", "email", "email", "username"), field("Password", "password", "password", "current-password")], "Sign in", async ({ email, password }) => {
      try {
        await api.login(email, password);
      } catch (e) {
        if (e.code !== "MFA_REQUIRED") throw e;
        return secondFactorPage(e.mfa.challenge, e.mfa.methods);
      }
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
    h("h3", {}, "Or with a passkey, and no password at all"),
    form("Sign up with a passkey", [field("Name", "username", "text", "name"), field("Email", "email", "email", "email")], "Sign up with a passkey", async ({ username, email }) => {
      const content = await viaBrowser(() => api.passkeySignUp(username, email));
      if (content.access_token) {
        say("Account created: sign in with your passkey, no password needed.");
        await profilePage();
      } else {
        say(content.message);
      }
    }),
    h("h2", {}, "Forgot your password?"),
    form("Forgot your password", [field("Email", "email", "email", "email")], "Send me a reset link", async ({ email }) => {
      const message = await api.call("POST", "/auth/password/forgot", { email });
      say(message);
    }),
    h("h2", {}, "No confirmation mail?"),
    form("Send the confirmation link again", [field("Email", "email", "email", "email")], "Send it again", async ({ email }) => {
      const message = await api.call("POST", "/auth/email/verify/resend", { email });
      say(message);
    }),
  );
}

/** A code as typed: six digits are the app's code, anything else a recovery code. */
function proofOf(text) {
  const code = text.replace(/\s/g, "");
  return /^\d{6}$/.test(code) ? { code } : { recovery_code: text.trim() };
}

/** The second step of a login: the app's code, a recovery code, or a passkey. */
function secondFactorPage(challenge, methods = []) {
  const done = async () => {
    say("Signed in.");
    await profilePage();
  };
  show(
    h("h2", {}, "Two-step sign-in"),
    h("p", {}, "Your password is right. Enter the 6-digit code your authenticator app shows now."),
    form("Enter your code", [field("Code", "code", "text", "one-time-code")], "Verify", async ({ code }) => {
      await api.verifySecondFactor(challenge, { code: code.replace(/\s/g, "") });
      await done();
    }),
    methods.includes("passkey")
      ? actionButton("Use a passkey instead", {}, async () => {
          await viaBrowser(() => api.passkeySignIn(challenge));
          await done();
        })
      : "",
    h("h3", {}, "Lost your phone?"),
    form("Use a recovery code", [field("Recovery code", "recovery_code")], "Use recovery code", async ({ recovery_code }) => {
      await api.verifySecondFactor(challenge, { recovery_code });
      await done();
    }),
    h("p", {}, h("a", { href: "/" }, "Start over")),
  );
}

/** Turning the second factor on: the QR code and the secret, then the first code. */
function enrolmentPage(enrolment) {
  const qr = h("img", { id: "totp-qr", alt: "QR code for your authenticator app", width: "200", height: "200" });
  // The server's SVG as an image, never as markup in this page.
  qr.src = "data:image/svg+xml;base64," + btoa(enrolment.qr_svg);
  show(
    h("h2", {}, "Turn on two-step sign-in"),
    h("p", {}, "Scan this code with your authenticator app, or type the key in by hand."),
    qr,
    h("p", {}, "Key: ", h("code", { id: "totp-secret" }, enrolment.secret)),
    form("Confirm two-step sign-in", [field("Code from the app", "code", "text", "one-time-code")], "Turn on", async ({ code }) => {
      const { recovery_codes } = await api.authed("POST", "/auth/mfa/totp/confirm", { code: code.replace(/\s/g, "") });
      recoveryCodesPage(recovery_codes);
    }),
  );
}

/** Recovery codes, shown once: copy or download them now. */
function recoveryCodesPage(codes) {
  const text = codes.join("\n") + "\n";
  const download = h("a", { id: "download-codes", download: "recovery-codes.txt" }, "Download");
  download.href = URL.createObjectURL(new Blob([text], { type: "text/plain" }));
  show(
    h("h2", {}, "Your recovery codes"),
    h("p", {}, "Each works once, if you lose your phone. Keep them somewhere safe: they are shown only now. Your other sessions were signed out."),
    h("pre", { id: "recovery-codes" }, text),
    actionButton("Copy", { class: "secondary" }, async () => {
      await navigator.clipboard.writeText(text);
      say("Copied.");
    }),
    download,
    h("p", {}, h("button", { type: "button", onclick: () => profilePage() }, "I have saved them")),
  );
}

// What each security event reads as on the profile page.
const EVENT_TEXT = {
  "user.registered": "Account created",
  "login.succeeded": "Signed in",
  "login.failed": "Failed sign-in attempt",
  "login.locked": "Sign-in locked after repeated failures",
  "session.revoked": "Session ended",
  "refresh.reuse_detected": "A stolen session token was used; that session was ended",
  "password.changed": "Password changed",
  "password.reset_requested": "Password reset link sent",
  "password.reset": "Password reset through the mailed link",
  "email.verification_sent": "Confirmation link sent",
  "email.verified": "Email address confirmed",
  "mfa.enabled": "Two-step sign-in turned on",
  "mfa.disabled": "Two-step sign-in turned off",
  "mfa.verified": "Second step of a sign-in passed",
  "mfa.failed": "Wrong two-step sign-in code",
  "mfa.recovery_codes_renewed": "New recovery codes",
  "passkey.added": "Passkey added",
  "passkey.renamed": "Passkey renamed",
  "passkey.removed": "Passkey removed",
  "passkey.failed": "Passkey sign-in refused",
  "passkey.clone_detected": "A copied passkey was refused",
};

function activityRow(e) {
  const what = EVENT_TEXT[e.name] ?? e.name;
  const why = e.reason ? ` (${e.reason.replaceAll("_", " ")})` : "";
  return h(
    "tr",
    {},
    h("td", {}, new Date(e.at).toLocaleString()),
    h("td", {}, what + why),
    h("td", {}, [e.browser, e.ip].filter(Boolean).join(", ") || "unknown"),
  );
}

async function profilePage() {
  const me = await api.authed("GET", "/auth/me");
  const sessions = await api.authed("GET", "/auth/sessions");
  const activity = await api.authed("GET", "/auth/events?limit=10");
  const passkeys = await api.authed("GET", "/auth/passkeys");
  // An account made with a passkey alone has no password: its passkey session is the proof.
  const stepUp = () => [
    ...(me.has_password ? [field("Password", "password", "password", "current-password")] : []),
    ...(me.mfa.totp ? [field("Code from the app, or a recovery code", "code", "text", "one-time-code")] : []),
  ];
  const proof = ({ password, code }) => ({ password, ...(code === undefined ? {} : proofOf(code)) });
  const passkeyRows = passkeys.map((p) =>
    h(
      "tr",
      {},
      h("td", {}, p.name),
      h("td", {}, new Date(p.created_at).toLocaleString()),
      h("td", {}, p.last_used_at ? new Date(p.last_used_at).toLocaleString() : "never"),
      h("td", {}, p.backed_up ? "synced" : "this device only"),
      h(
        "td",
        {},
        form(`Remove passkey ${p.name}`, stepUp(), "Remove", async (values) => {
          await api.authed("DELETE", `/auth/passkeys/${p.id}`, proof(values));
          await profilePage();
          say("Passkey removed.");
        }),
      ),
    ),
  );
  const rows = sessions.map((s) =>
    h(
      "tr",
      {},
      h("td", {}, s.current ? "This device" : s.user_agent ?? "unknown device"),
      h("td", {}, new Date(s.last_used_at).toLocaleString()),
      h(
        "td",
        {},
        actionButton("End", { class: "secondary", "aria-label": `End the session of ${s.current ? "this device" : s.user_agent ?? "an unknown device"}` }, async () => {
          await api.authed("DELETE", `/auth/sessions/${s.id}`);
          if (s.current) return signedOut("This session has ended.");
          await profilePage();
          say("Session ended.");
        }),
      ),
    ),
  );
  show(
    h("h2", { id: "profile" }, `Signed in as ${me.username}`),
    h("p", {}, `Email: ${me.email} `, me.email_verified ? h("strong", {}, "(confirmed)") : h("strong", {}, "(not confirmed yet)")),
    me.email_verified
      ? ""
      : actionButton("Send the confirmation link again", { class: "secondary" }, async () => say(await api.authed("POST", "/auth/email/verify/resend"))),
    h("h2", {}, "Your sessions"),
    h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "Device"), h("th", {}, "Last used"), h("th", {}, ""))), h("tbody", {}, rows)),
    h("h2", { id: "activity" }, "Recent security activity"),
    h(
      "table",
      { "aria-labelledby": "activity" },
      h("thead", {}, h("tr", {}, h("th", {}, "When"), h("th", {}, "What"), h("th", {}, "From"))),
      h("tbody", {}, activity.events.map(activityRow)),
    ),
    h("h2", { id: "two-step" }, "Two-step sign-in"),
    h("section", { "aria-labelledby": "two-step" }, me.mfa.totp
      ? [
          h("p", { id: "mfa-state" }, `On: your authenticator app is asked for at sign-in. ${me.mfa.recovery_codes_left} recovery code(s) left.`),
          form("Turn off two-step sign-in", [field("Password", "password", "password", "current-password"), field("Code from the app, or a recovery code", "code", "text", "one-time-code")], "Turn off", async ({ password, code }) => {
            await api.authed("DELETE", "/auth/mfa/totp", { password, ...proofOf(code) });
            await profilePage();
            say("Two-step sign-in is off. Your other sessions were signed out.");
          }),
        ]
      : [
          h("p", { id: "mfa-state" }, "Off: a password alone signs you in."),
          form("Turn on two-step sign-in", [field("Password", "password", "password", "current-password")], "Set up an authenticator app", async ({ password }) => {
            enrolmentPage(await api.authed("POST", "/auth/mfa/totp", { password }));
          }),
        ]),
    h("h2", { id: "passkeys" }, "Passkeys"),
    h(
      "table",
      { "aria-labelledby": "passkeys" },
      h("thead", {}, h("tr", {}, h("th", {}, "Name"), h("th", {}, "Added"), h("th", {}, "Last used"), h("th", {}, "Kept"), h("th", {}, ""))),
      h("tbody", {}, passkeyRows),
    ),
    form("Add a passkey", [field("Name", "name"), ...stepUp()], "Add a passkey", async ({ name, ...values }, el) => {
      await viaBrowser(() => api.addPasskey(name, proof(values)));
      el.reset();
      await profilePage();
      say("Passkey added: you can sign in with it, no password needed.");
    }),
    h("h2", {}, "Change your password"),
    form("Change your password", [field("Current password", "current_password", "password", "current-password"), field("New password", "new_password", "password", "new-password"), ...(me.mfa.totp ? [field("Code from the app, or a recovery code", "code", "text", "one-time-code")] : [])], "Change password", async (values, el) => {
      const { code, ...passwords } = values;
      const { revoked } = await api.authed("POST", "/auth/password/change", code === undefined ? passwords : { ...passwords, ...proofOf(code) });
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
    say(explain(e), true);
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
  } catch (e) {
    if (api.SESSION_OVER.has(e.code)) return signedOutPage();
    // Limited, unavailable or offline: the session may well be fine. Say so, and try again
    // when the server says to (or on the button).
    const again = () => {
      clearTimeout(timer);
      say("");
      start();
    };
    const timer = setTimeout(again, (e.retryAfter ?? 5) * 1000);
    say(explain(e), true);
    show(h("h2", {}, "Signing you back in…"), h("button", { type: "button", onclick: again }, "Try again now"));
  }
}

start();
