//! Register, log in, and the create-or-login of `POST /auth`.

use secrecy::SecretString;
use uuid::Uuid;

use super::{Accounts, outcomes, session_client};
use crate::auth::access_token::IssuedToken;
use crate::auth::refresh_token::{TokenHash, refresh_token};
use crate::domain::{
    Assurance, Client, Email, EventName, LoginPassword, MailKind, NewPassword, SecurityEvent, User, UserId, Username,
};
use crate::error::{ApiError, Result};
use crate::store::users::{MailRequest, NewUser, Trail};

/// A registration as the client sent it.
pub struct NewAccount {
    pub username: Option<String>,
    pub email: String,
    pub password: SecretString,
}

/// A login as the client sent it.
pub struct Login {
    pub email: String,
    pub password: SecretString,
}

/// `POST /auth`: a login when the email has an account, a registration otherwise.
pub struct CreateOrLogin {
    pub email: String,
    pub password: SecretString,
    pub username: Option<String>,
}

/// A new session: the access token, and the refresh token for the cookie.
pub struct SignedIn {
    pub user: User,
    pub session_id: Uuid,
    pub access: IssuedToken,
    pub refresh_token: String,
}

pub enum Registered {
    SignedIn(SignedIn),
    /// `REQUIRE_VERIFIED_EMAIL=true`: no session until the mailed link is followed.
    Pending(User),
}

impl Accounts {
    /// Registers and signs in (or leaves the account pending verification). `input` is the
    /// body, or why it could not be read: that is counted too.
    pub async fn register(&self, input: Result<NewAccount>, client: &Client) -> Result<Registered> {
        let result = async {
            let input = input?;
            let email = Email::parse(&input.email)?;
            self.register_user(input.username, email, input.password, client).await
        }
        .await;
        outcomes::registration(&self.metrics, &result);
        result
    }

    /// Logs in, unless the account is locked.
    pub async fn login(&self, input: Result<Login>, client: &Client) -> Result<SignedIn> {
        let result = async {
            let input = input?;
            self.log_in(Email::parse(&input.email)?, input.password, client).await
        }
        .await;
        outcomes::login(&self.metrics, &result);
        result
    }

    /// Logs in when the email has an account; registers otherwise. Counted as a registration
    /// or a login, whichever it turned out to be.
    pub async fn create_or_login(&self, input: CreateOrLogin, client: &Client) -> Result<Registered> {
        let CreateOrLogin {
            email,
            password,
            username,
        } = input;
        let email = Email::parse(&email)?;
        // A name that is sent must be valid, even when it turns out not to be needed.
        if let Some(name) = &username {
            Username::parse(name)?;
        }
        if self.users.find_by_email(&email).await?.is_none() {
            let result = self
                .register_user(username, email.clone(), password.clone(), client)
                .await;
            outcomes::registration(&self.metrics, &result);
            // EMAIL_TAKEN: someone registered this email since our lookup, so it is a login now.
            if !matches!(result, Err(ApiError::EmailTaken)) {
                return result;
            }
        }
        let result = self.log_in(email, password, client).await;
        outcomes::login(&self.metrics, &result);
        result.map(Registered::SignedIn)
    }

    async fn register_user(
        &self,
        username: Option<String>,
        email: Email,
        password: SecretString,
        client: &Client,
    ) -> Result<Registered> {
        let username = username.ok_or_else(|| ApiError::validation("username", "username is required"))?;
        let (username, password) = (Username::parse(&username)?, NewPassword::parse(password)?);
        let password_hash = self.hasher.hash(password.secret()).await?;
        let id = UserId::new();
        let verification = self.mail.verification(MailRequest::new(
            MailKind::EmailVerify,
            email.as_str(),
            Some(id),
            client,
        ));
        let registered = [self.audit.event(EventName::UserRegistered, client).user(id)];
        let new = NewUser {
            id,
            username,
            email,
            password_hash,
        };
        let trail = Trail {
            events: &registered,
            notice: None,
        };
        // `From<InsertError>` already maps a taken email to `EMAIL_TAKEN`.
        let user = self.users.insert(new, None, verification.as_ref(), trail).await?;
        self.audit.announce(&registered);
        if let Some(request) = &verification {
            self.mail.count(request.kind, "queued");
            self.mail.wake();
        }
        if self.mail.require_verified_email() {
            return Ok(Registered::Pending(user));
        }
        Ok(Registered::SignedIn(
            self.start_session(user, client, Assurance::Password).await?,
        ))
    }

    async fn log_in(&self, email: Email, password: SecretString, client: &Client) -> Result<SignedIn> {
        let failed = |reason| self.audit.event(EventName::LoginFailed, client).reason(reason);
        if let Err(locked) = self.refuse_if_locked(&email).await {
            self.audit.record(&[failed("locked")]).await?;
            return Err(locked);
        }
        let password = LoginPassword::parse(password)?;
        match self.check_password(&email, &password).await? {
            Ok(user) => {
                // Only now, after the password check: without it the answer reveals nothing.
                if user.is_disabled(self.clock.now_ms()) {
                    self.throttle.succeeded(&email).await?;
                    self.audit.record(&[failed("disabled").user(user.id)]).await?;
                    return Err(ApiError::AccountDisabled);
                }
                if self.mail.require_verified_email() && !user.email_verified {
                    self.throttle.succeeded(&email).await?;
                    self.audit.record(&[failed("unverified").user(user.id)]).await?;
                    return Err(ApiError::EmailNotVerified);
                }
                if user.second_factor.totp {
                    // Failures are cleared by the second step only: a known password must not
                    // reset the count of wrong codes.
                    return Err(self.challenge_for(&user).await?);
                }
                self.throttle.succeeded(&email).await?;
                self.start_session(user, client, Assurance::Password).await
            }
            Err(known) => {
                let event = failed("invalid_credentials");
                let mut events = vec![match known {
                    Some(id) => event.user(id),
                    None => event,
                }];
                events.extend(self.count_failure(&email, known, "failed_logins", client).await?);
                self.audit.record(&events).await?;
                Err(ApiError::UserNotFound)
            }
        }
    }

    /// The user whose email and password these are, after the same argon2 work whether or not
    /// the email has an account; on a mismatch, the account's id if there is one.
    async fn check_password(&self, email: &Email, password: &LoginPassword) -> Result<Result<User, Option<UserId>>> {
        let (user, stored_hash) = match self.users.find_by_email(email).await? {
            Some(credentials) => (Some(credentials.user), Some(credentials.password_hash)),
            None => (None, None),
        };
        let verified = self.hasher.verify(password.secret(), stored_hash).await?;
        Ok(match user {
            Some(user) if verified => Ok(user),
            user => Err(user.map(|u| u.id)),
        })
    }

    /// Opens a refresh session for `user`, evicting the oldest beyond `MAX_SESSIONS_PER_USER`;
    /// its access tokens say `assurance`.
    pub(super) async fn start_session(&self, user: User, client: &Client, assurance: Assurance) -> Result<SignedIn> {
        // Every way in ends here (password, second step, passkey): a disabled account gets no
        // session, whichever check before this one it passed.
        if user.is_disabled(self.clock.now_ms()) {
            return Err(ApiError::AccountDisabled);
        }
        let refresh_token = refresh_token(user.id);
        let session = self
            .sessions
            .create(
                user.id,
                TokenHash::of(&refresh_token),
                &session_client(client),
                assurance,
            )
            .await?;
        let access = self.tokens.issue(user.id, session.id, assurance)?;
        let mut events: Vec<SecurityEvent> = vec![
            self.audit
                .event(EventName::LoginSucceeded, client)
                .user(user.id)
                .session(session.id),
        ];
        if session.evicted > 0 {
            tracing::info!(
                evicted = session.evicted,
                "older sessions evicted (MAX_SESSIONS_PER_USER)"
            );
            self.metrics
                .sessions_revoked
                .with_label_values(&["evicted"])
                .inc_by(u64::from(session.evicted));
            events.push(
                self.audit
                    .event(EventName::SessionRevoked, client)
                    .user(user.id)
                    .reason("evicted"),
            );
        }
        self.audit.record(&events).await?;
        Ok(SignedIn {
            user,
            session_id: session.id,
            access,
            refresh_token,
        })
    }
}
