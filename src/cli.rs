//! `auth-api users …`: the admin API's actions for break-glass use, straight on the stores the
//! settings name, without the admin listener. Tables on stdout, what happened on stderr; exit
//! 1 when the action failed (no such user included), 2 for a bad argument.

use clap::Subcommand;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use crate::accounts::{Accounts, Operator};
use crate::domain::{Client, Email, User, UserId};
use crate::store::users::UserFilter;

#[derive(Subcommand)]
pub enum UsersAction {
    /// Users in creation order: id, email, verified, second factor, disabled, created.
    List {
        /// The start of the email address.
        #[arg(long)]
        email_prefix: Option<String>,
        #[arg(long)]
        verified: Option<bool>,
        /// With (true) or without (false) a TOTP factor.
        #[arg(long)]
        mfa: Option<bool>,
        #[arg(long)]
        disabled: Option<bool>,
        /// Users per page, 1 to 100.
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=100))]
        limit: u32,
        /// The last id of the previous page.
        #[arg(long)]
        after: Option<Uuid>,
    },
    /// One user (an id or an email): profile, sessions, passkeys, recent security events.
    Show { user: String },
    /// Ends every session and refuses every sign-in until enabled (or until --until).
    Disable {
        user: String,
        /// When it ends by itself (RFC 3339).
        #[arg(long, value_parser = rfc3339)]
        until: Option<OffsetDateTime>,
        /// For operators; never shown to the user.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Lets a disabled user sign in again.
    Enable { user: String },
    /// Ends every session of the user, or one (--session).
    SignOut {
        user: String,
        #[arg(long)]
        session: Option<Uuid>,
    },
    /// Erases the user (GDPR art. 17): needs --yes, there is no undo.
    Erase {
        user: String,
        #[arg(long, required = true)]
        yes: bool,
    },
    /// Removes the user's authenticator and recovery codes, and mails the user.
    ResetMfa { user: String },
    /// Confirms the user's email address.
    VerifyEmail { user: String },
}

fn rfc3339(text: &str) -> Result<OffsetDateTime, String> {
    OffsetDateTime::parse(text, &Rfc3339).map_err(|_| "an RFC 3339 time, e.g. 2027-01-31T12:00:00Z".into())
}

/// A stored time (ms since the epoch) as the tables print it: RFC 3339, to the second.
pub fn time(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp(ms / 1000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

fn at(t: OffsetDateTime) -> String {
    time((t.unix_timestamp_nanos() / 1_000_000) as i64)
}

/// The operator the trail names: `cli:<login>`.
fn operator() -> Operator {
    let login = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".into());
    Operator {
        name: format!("cli:{login}"),
        client: Client::default(),
    }
}

/// The user an argument names: an id, or an email address.
async fn find(accounts: &Accounts, user: &str) -> anyhow::Result<UserId> {
    if let Ok(id) = Uuid::parse_str(user) {
        return Ok(UserId::from_uuid(id));
    }
    let email = Email::parse(user).map_err(|_| anyhow::anyhow!("{user:?} is neither a user id nor an email"))?;
    let found = accounts.users.find_by_email(&email).await?;
    Ok(found
        .ok_or_else(|| anyhow::anyhow!("no user has the email {user:?}"))?
        .user
        .id)
}

fn user_line(user: &User, now_ms: i64) {
    println!(
        "{:<36}  {:<32}  {:<8}  {:<3}  {:<8}  {}",
        user.id,
        user.email,
        if user.email_verified { "yes" } else { "no" },
        if user.second_factor.totp { "yes" } else { "no" },
        if user.is_disabled(now_ms) { "yes" } else { "no" },
        at(user.created_at)
    );
}

fn user_header() {
    println!(
        "{:<36}  {:<32}  {:<8}  {:<3}  {:<8}  created",
        "id", "email", "verified", "mfa", "disabled"
    );
}

/// Without Redis the sessions live in the server's process, out of this one's reach: the
/// server ends them when their next request finds the user disabled or gone.
fn in_process_note(accounts: &Accounts) {
    if accounts.sessions.redis_client().is_none() {
        eprintln!("sessions live in the server's process (no REDIS_URL): it ends them at their next request");
    }
}

/// Runs one `users` action.
pub async fn users(accounts: &Accounts, action: UsersAction) -> anyhow::Result<()> {
    let failed = |e: crate::error::ApiError| anyhow::anyhow!("{}", e.describe().2);
    let operator = operator();
    let now = accounts.clock.now_ms();
    match action {
        UsersAction::List {
            email_prefix,
            verified,
            mfa,
            disabled,
            limit,
            after,
        } => {
            let filter = UserFilter {
                email_prefix: email_prefix.map(|p| p.trim().to_lowercase()),
                verified,
                mfa,
                disabled,
            };
            let users = accounts
                .find_users(&filter, after.map(UserId::from_uuid), limit)
                .await
                .map_err(failed)?;
            user_header();
            for user in &users {
                user_line(user, now);
            }
            if users.len() == limit as usize
                && let Some(last) = users.last()
            {
                eprintln!("more: --after {}", last.id);
            }
        }
        UsersAction::Show { user } => {
            let id = find(accounts, &user).await?;
            let account = accounts.user_account(id).await.map_err(failed)?;
            user_header();
            user_line(&account.user, now);
            println!("username: {}", account.user.username);
            if let Some(d) = account.user.disabled.as_ref().filter(|_| account.user.is_disabled(now)) {
                println!(
                    "disabled since {} until {} ({})",
                    time(d.since_ms),
                    d.until_ms.map_or("enabled".into(), time),
                    d.reason.as_deref().unwrap_or("no reason given")
                );
            }
            println!(
                "\nsessions:\n{:<36}  {:<20}  {:<20}  {:<39}  device",
                "id", "created", "last used", "address"
            );
            for s in &account.sessions {
                println!(
                    "{:<36}  {:<20}  {:<20}  {:<39}  {}",
                    s.id,
                    at(s.created_at),
                    at(s.last_used_at),
                    s.ip.as_deref().unwrap_or("-"),
                    s.user_agent.as_deref().unwrap_or("-")
                );
            }
            println!(
                "\npasskeys:\n{:<36}  {:<20}  {:<20}  name",
                "id", "created", "last used"
            );
            for p in &account.passkeys {
                println!(
                    "{:<36}  {:<20}  {:<20}  {}",
                    p.id,
                    time(p.created_at_ms),
                    p.last_used_at_ms.map(time).unwrap_or_default(),
                    p.name
                );
            }
            println!("\nevents:\n{:<20}  {:<28}  {:<22}  actor", "at", "name", "reason");
            for e in &account.events {
                println!(
                    "{:<20}  {:<28}  {:<22}  {}",
                    at(e.at),
                    e.name.as_str(),
                    e.reason.unwrap_or("-"),
                    e.actor.as_deref().unwrap_or("-")
                );
            }
        }
        UsersAction::Disable { user, until, reason } => {
            in_process_note(accounts);
            let id = find(accounts, &user).await?;
            let revoked = accounts
                .disable_user(&operator, id, until, reason)
                .await
                .map_err(failed)?;
            eprintln!("user {id} disabled; {revoked} session(s) ended");
        }
        UsersAction::Enable { user } => {
            let id = find(accounts, &user).await?;
            accounts.enable_user(&operator, id).await.map_err(failed)?;
            eprintln!("user {id} enabled");
        }
        UsersAction::SignOut { user, session } => {
            anyhow::ensure!(
                accounts.sessions.redis_client().is_some(),
                "sessions live in the server's process (no REDIS_URL): sign out through the admin API, or disable the user"
            );
            let id = find(accounts, &user).await?;
            let revoked = accounts.sign_out_user(&operator, id, session).await.map_err(failed)?;
            eprintln!("{revoked} session(s) of user {id} ended");
        }
        UsersAction::Erase { user, yes } => {
            anyhow::ensure!(yes, "erasing cannot be undone: run again with --yes");
            in_process_note(accounts);
            let id = find(accounts, &user).await?;
            let (erased, sessions) = accounts.erase_user(&operator, id).await.map_err(failed)?;
            println!("{:<18}  removed", "what");
            for (what, count) in [
                ("user", 1),
                ("sessions", u64::from(sessions)),
                ("passkeys", erased.passkeys),
                ("totp_factors", erased.totp_factors),
                ("recovery_codes", erased.recovery_codes),
                ("mails", erased.mails),
                ("link_tokens", erased.link_tokens),
                ("events_anonymised", erased.events_anonymised),
            ] {
                println!("{what:<18}  {count}");
            }
            eprintln!("user {id} erased");
        }
        UsersAction::ResetMfa { user } => {
            let id = find(accounts, &user).await?;
            let reset = accounts.reset_user_factors(&operator, id).await.map_err(failed)?;
            eprintln!(
                "user {id}: authenticator {}, {} recovery code(s) removed",
                if reset.totp { "removed" } else { "none" },
                reset.recovery_codes
            );
        }
        UsersAction::VerifyEmail { user } => {
            let id = find(accounts, &user).await?;
            accounts.mark_verified(&operator, id).await.map_err(failed)?;
            eprintln!("user {id}: email verified");
        }
    }
    Ok(())
}
