//! Passkeys: register one (the password again, and a code when the user has a second factor),
//! list, rename and remove them (never the account's last way in), sign in with one alone
//! (the browser offers its accounts: nothing is typed), or answer a login's second step with
//! one. Each ceremony's state waits server-side for two minutes under an opaque id and is
//! taken once; a registration's is bound to its user, a second step's to its challenge.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use webauthn_rs::prelude::{
    CreationChallengeResponse, Credential, DiscoverableAuthentication, Passkey, PasskeyAuthentication,
    PasskeyRegistration, RequestChallengeResponse,
};

use super::{Accounts, Caller, Registered, SignedIn};
use crate::auth::passkey::{
    AuthenticationResult, PublicKeyCredential, RegisterPublicKeyCredential, RelyingParty, WebauthnError,
};
use crate::auth::refresh_token::{TokenHash, random_token};
use crate::domain::{Assurance, Client, Email, EventName, KeyKind, MailKind, Proof, UserId, Username};
use crate::error::{ApiError, Result};
use crate::store::users::{MailRequest, NewPasskey, NewUser, PasskeyRemoval, PasskeyUse, StoredPasskey, Trail};

/// How long a started ceremony may wait for its finish (and the browser's prompt with it).
pub const CEREMONY_TTL: Duration = Duration::from_secs(120);
/// Longest passkey name, in characters.
const MAX_NAME_CHARS: usize = 64;

/// A passkey as its owner sees it.
pub struct PasskeyView {
    pub id: Uuid,
    pub name: String,
    pub created_at_ms: i64,
    pub last_used_at_ms: Option<i64>,
    /// May be synced to the owner's other devices.
    pub backup_eligible: bool,
    pub backed_up: bool,
}

/// Options for the browser, and the id that finishes the ceremony.
pub struct Started<T> {
    pub options: T,
    pub ceremony: String,
}

/// What waits between a ceremony's start and its finish.
#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Ceremony {
    Registration {
        user: Uuid,
        state: PasskeyRegistration,
    },
    /// A new account whose first way in is this passkey: no password.
    SignUp {
        user: Uuid,
        email: String,
        username: String,
        state: PasskeyRegistration,
    },
    SignIn {
        state: DiscoverableAuthentication,
    },
    /// Bound to a login's challenge by its hash: the finish presents the challenge itself.
    SecondFactor {
        user: Uuid,
        challenge: String,
        state: PasskeyAuthentication,
    },
}

/// A registration answer that verified: the credential as it will be stored.
struct NewCredential {
    credential_id: String,
    /// webauthn-rs' serialised passkey.
    stored: String,
    counter: u32,
    backup_eligible: bool,
    backed_up: bool,
}

impl NewCredential {
    fn passkey<'a>(&'a self, id: Uuid, name: &'a str) -> NewPasskey<'a> {
        NewPasskey {
            id,
            credential_id: &self.credential_id,
            name,
            credential: &self.stored,
            sign_count: self.counter,
            backup_eligible: self.backup_eligible,
            backed_up: self.backed_up,
        }
    }
}

impl Ceremony {
    fn label(&self) -> &'static str {
        match self {
            Self::Registration { .. } => "registration",
            Self::SignUp { .. } => "sign_up",
            Self::SignIn { .. } => "sign_in",
            Self::SecondFactor { .. } => "second_factor",
        }
    }
}

impl Accounts {
    fn relying_party(&self) -> Result<&Arc<RelyingParty>> {
        self.passkeys.as_ref().ok_or(ApiError::PasskeysUnavailable)
    }

    fn count_ceremony(&self, ceremony: &'static str, outcome: &'static str) {
        self.metrics
            .passkey_ceremonies
            .with_label_values(&[ceremony, outcome])
            .inc();
    }

    async fn keep_ceremony(&self, ceremony: &Ceremony) -> Result<String> {
        let id = random_token();
        let state = serde_json::to_string(ceremony).map_err(anyhow::Error::from)?;
        let challenges = &self.factors.challenges;
        challenges
            .put_ceremony(&id, state, challenges.expiry(CEREMONY_TTL))
            .await?;
        self.count_ceremony(ceremony.label(), "started");
        Ok(id)
    }

    /// Verifies the browser's answer to a registration ceremony (`label`) against its state.
    fn verify_new(
        &self,
        label: &'static str,
        credential: &RegisterPublicKeyCredential,
        state: &PasskeyRegistration,
    ) -> Result<NewCredential> {
        let passkey = match self.relying_party()?.finish_registration(credential, state) {
            Ok(passkey) => passkey,
            Err(e) => {
                tracing::info!(reason = %e, "passkey registration refused");
                self.count_ceremony(label, "invalid");
                return Err(ApiError::PasskeyInvalid);
            }
        };
        let credential_id = encode_id(passkey.cred_id());
        let stored = serde_json::to_string(&passkey).map_err(anyhow::Error::from)?;
        let inner = Credential::from(passkey);
        Ok(NewCredential {
            credential_id,
            stored,
            counter: inner.counter,
            backup_eligible: inner.backup_eligible,
            backed_up: inner.backup_state,
        })
    }

    /// The ceremony `id` names, taken: a second finish with the same id finds nothing.
    async fn take_ceremony(&self, id: &str, label: &'static str) -> Result<Ceremony> {
        let state = self.factors.challenges.take_ceremony(id).await?;
        let ceremony = state.and_then(|s| serde_json::from_str::<Ceremony>(&s).ok());
        match ceremony {
            Some(ceremony) if ceremony.label() == label => Ok(ceremony),
            _ => {
                self.count_ceremony(label, "ceremony_invalid");
                Err(ApiError::PasskeyCeremonyInvalid)
            }
        }
    }

    /// Starts registering a passkey for the caller: the password again (while the account has
    /// one) and a second factor's code when the user has one.
    pub async fn start_passkey_registration(
        &self,
        caller: &Caller,
        password: Option<SecretString>,
        proof: Option<Proof>,
        client: &Client,
    ) -> Result<Started<CreationChallengeResponse>> {
        let relying_party = self.relying_party()?;
        self.passkey_step_up(caller, password, proof, client).await?;
        let user = &caller.user;
        let exclude = self
            .users
            .passkeys_of(user.id)
            .await?
            .iter()
            .filter_map(|p| decode_id(&p.credential_id))
            .collect();
        let (options, state) = relying_party
            .start_registration(user.id, &user.email, &user.username, exclude)
            .map_err(internal)?;
        let ceremony = self
            .keep_ceremony(&Ceremony::Registration {
                user: user.id.as_uuid(),
                state,
            })
            .await?;
        Ok(Started { options, ceremony })
    }

    /// Verifies the browser's answer to a registration the caller started, and stores it.
    pub async fn finish_passkey_registration(
        &self,
        caller: &Caller,
        ceremony: &str,
        credential: &RegisterPublicKeyCredential,
        name: Option<String>,
        client: &Client,
    ) -> Result<PasskeyView> {
        self.relying_party()?;
        let name = passkey_name(name)?;
        let Ceremony::Registration { user, state } = self.take_ceremony(ceremony, "registration").await? else {
            unreachable!("take_ceremony checks the kind")
        };
        if user != caller.user.id.as_uuid() {
            self.count_ceremony("registration", "ceremony_invalid");
            return Err(ApiError::PasskeyCeremonyInvalid);
        }
        let new = self.verify_new("registration", credential, &state)?;
        let id = Uuid::now_v7();
        let user = caller.user.id;
        let added = [self
            .audit
            .event(EventName::PasskeyAdded, client)
            .user(user)
            .session(caller.session_id)];
        let notice = self.notice(MailKind::PasskeyAdded, client);
        let trail = Trail {
            events: &added,
            notice: notice.as_ref(),
        };
        if !self.users.add_passkey(user, new.passkey(id, &name), trail).await? {
            self.count_ceremony("registration", "taken");
            return Err(ApiError::PasskeyTaken);
        }
        self.count_ceremony("registration", "success");
        self.told(&notice);
        self.audit.announce(&added);
        Ok(PasskeyView {
            id,
            name,
            created_at_ms: self.clock.now_ms(),
            last_used_at_ms: None,
            backup_eligible: new.backup_eligible,
            backed_up: new.backed_up,
        })
    }

    /// Starts an account whose only way in is a passkey: no password is ever typed. The
    /// email and name are checked now, so that nobody makes a passkey for an account that
    /// cannot be.
    pub async fn start_passkey_sign_up(
        &self,
        username: String,
        email: String,
    ) -> Result<Started<CreationChallengeResponse>> {
        let relying_party = self.relying_party()?;
        let (username, email) = (Username::parse(&username)?, Email::parse(&email)?);
        if self.users.find_by_email(&email).await?.is_some() {
            return Err(ApiError::EmailTaken);
        }
        let user = UserId::new();
        let (options, state) = relying_party
            .start_registration(user, email.as_str(), username.as_str(), Vec::new())
            .map_err(internal)?;
        let ceremony = self
            .keep_ceremony(&Ceremony::SignUp {
                user: user.as_uuid(),
                email: email.as_str().to_string(),
                username: username.as_str().to_string(),
                state,
            })
            .await?;
        Ok(Started { options, ceremony })
    }

    /// Creates the account of a sign-up ceremony with its passkey, in one transaction, and
    /// signs it in (or leaves it pending verification, as a registration does).
    pub async fn finish_passkey_sign_up(
        &self,
        ceremony: &str,
        credential: &RegisterPublicKeyCredential,
        name: Option<String>,
        client: &Client,
    ) -> Result<Registered> {
        let result = async {
            self.relying_party()?;
            let name = passkey_name(name)?;
            let Ceremony::SignUp {
                user,
                email,
                username,
                state,
            } = self.take_ceremony(ceremony, "sign_up").await?
            else {
                unreachable!("take_ceremony checks the kind")
            };
            let new_credential = self.verify_new("sign_up", credential, &state)?;
            let id = UserId::from_uuid(user);
            let new_passkey = new_credential.passkey(Uuid::now_v7(), &name);
            let email = Email::parse(&email)?;
            let verification = self.mail.verification(MailRequest::new(
                MailKind::EmailVerify,
                email.as_str(),
                Some(id),
                client,
            ));
            let events = [
                self.audit.event(EventName::UserRegistered, client).user(id),
                self.audit.event(EventName::PasskeyAdded, client).user(id),
            ];
            let new = NewUser {
                id,
                username: Username::parse(&username)?,
                email,
                // No password: a login with one is checked as for an unknown account, and the
                // reset mail sets one.
                password_hash: String::new(),
            };
            let trail = Trail {
                events: &events,
                notice: None,
            };
            let inserted = self
                .users
                .insert(new, Some(&new_passkey), verification.as_ref(), trail)
                .await;
            let user = match inserted {
                Ok(user) => user,
                Err(e) => {
                    let e = ApiError::from(e);
                    if matches!(e, ApiError::PasskeyTaken) {
                        self.count_ceremony("sign_up", "taken");
                    }
                    return Err(e);
                }
            };
            self.count_ceremony("sign_up", "success");
            self.audit.announce(&events);
            self.told(&verification);
            if self.mail.require_verified_email() {
                return Ok(Registered::Pending(user));
            }
            let kind = KeyKind::of(new_credential.backup_eligible);
            Ok(Registered::SignedIn(
                self.start_session(user, client, Assurance::Passkey(kind)).await?,
            ))
        }
        .await;
        super::outcomes::registration(&self.metrics, &result);
        result
    }

    /// The caller's passkeys, oldest first.
    pub async fn passkeys(&self, caller: &Caller) -> Result<Vec<PasskeyView>> {
        self.passkeys_of(caller.user.id).await
    }

    pub(super) async fn passkeys_of(&self, user: UserId) -> Result<Vec<PasskeyView>> {
        Ok(self.users.passkeys_of(user).await?.into_iter().map(view).collect())
    }

    pub async fn rename_passkey(&self, caller: &Caller, id: Uuid, name: Option<String>, client: &Client) -> Result<()> {
        let name = passkey_name(name)?;
        let user = caller.user.id;
        let renamed = [self
            .audit
            .event(EventName::PasskeyRenamed, client)
            .user(user)
            .session(caller.session_id)];
        let notice = self.notice(MailKind::PasskeyRenamed, client);
        let trail = Trail {
            events: &renamed,
            notice: notice.as_ref(),
        };
        if !self.users.rename_passkey(user, id, &name, trail).await? {
            return Err(ApiError::PasskeyNotFound);
        }
        self.told(&notice);
        self.audit.announce(&renamed);
        Ok(())
    }

    /// Removes one of the caller's passkeys (the password again, and a code when the user has
    /// a second factor), unless it is the account's last way in.
    pub async fn remove_passkey(
        &self,
        caller: &Caller,
        id: Uuid,
        password: Option<SecretString>,
        proof: Option<Proof>,
        client: &Client,
    ) -> Result<()> {
        self.passkey_step_up(caller, password, proof, client).await?;
        let user = caller.user.id;
        let removed = [self
            .audit
            .event(EventName::PasskeyRemoved, client)
            .user(user)
            .session(caller.session_id)];
        let notice = self.notice(MailKind::PasskeyRemoved, client);
        let trail = Trail {
            events: &removed,
            notice: notice.as_ref(),
        };
        match self.users.remove_passkey(user, id, trail).await? {
            PasskeyRemoval::Removed => {
                self.told(&notice);
                self.audit.announce(&removed);
                Ok(())
            }
            PasskeyRemoval::NotFound => Err(ApiError::PasskeyNotFound),
            PasskeyRemoval::LastWayIn => Err(ApiError::PasskeyLastWayIn),
        }
    }

    /// The proof a change of passkeys takes: the password while the account has one, and a
    /// second factor's code when the user has one. An account without a password has nothing
    /// to type: its session must have been signed in with a passkey.
    async fn passkey_step_up(
        &self,
        caller: &Caller,
        password: Option<SecretString>,
        proof: Option<Proof>,
        client: &Client,
    ) -> Result<()> {
        if !caller.user.has_password {
            return if caller.by_passkey {
                Ok(())
            } else {
                Err(ApiError::InvalidCurrentPassword)
            };
        }
        let email = match password {
            Some(password) => self.confirm_password(caller, password, "password", client).await?,
            None => return Err(ApiError::validation("password", "password is required")),
        };
        self.step_up(caller.user.id, &email, proof, client).await
    }

    /// Starts a sign-in with a passkey: with no challenge, the browser offers whichever of its
    /// passkeys for this site the user picks; with a login's challenge (its second step), only
    /// that user's passkeys.
    /// `conditional`: the options ask for autofill (`mediation: "conditional"`).
    pub async fn start_passkey_sign_in(
        &self,
        challenge: Option<String>,
        conditional: bool,
    ) -> Result<Started<RequestChallengeResponse>> {
        let relying_party = self.relying_party()?;
        let (options, ceremony) = match challenge {
            None => {
                let (options, state) = relying_party.start_discoverable(conditional).map_err(internal)?;
                (options, Ceremony::SignIn { state })
            }
            Some(challenge) => {
                let pending = self
                    .factors
                    .challenges
                    .peek(&challenge)
                    .await?
                    .ok_or(ApiError::MfaChallengeInvalid)?;
                let passkeys = self
                    .users
                    .passkeys_of(pending.user)
                    .await?
                    .iter()
                    .filter_map(|p| serde_json::from_str::<Passkey>(&p.credential).ok())
                    .collect::<Vec<_>>();
                if passkeys.is_empty() {
                    return Err(ApiError::PasskeyNotFound);
                }
                let (options, state) = relying_party.start_for(&passkeys).map_err(internal)?;
                let ceremony = Ceremony::SecondFactor {
                    user: pending.user.as_uuid(),
                    challenge: TokenHash::of(&challenge).to_hex(),
                    state,
                };
                (options, ceremony)
            }
        };
        let ceremony = self.keep_ceremony(&ceremony).await?;
        Ok(Started { options, ceremony })
    }

    /// Finishes a sign-in with a passkey: a session, as a login's. `challenge` is the login's
    /// when the ceremony is its second step.
    pub async fn finish_passkey_sign_in(
        &self,
        ceremony: &str,
        challenge: Option<String>,
        credential: &PublicKeyCredential,
        client: &Client,
    ) -> Result<SignedIn> {
        let relying_party = self.relying_party()?;
        let label = if challenge.is_some() {
            "second_factor"
        } else {
            "sign_in"
        };
        let ceremony = self.take_ceremony(ceremony, label).await?;
        let credential_id = encode_id(credential.get_credential_id());
        let stored = self.users.passkey_by_credential(&credential_id).await?;
        let (stored, result, assurance): (_, _, fn(KeyKind) -> Assurance) = match ceremony {
            Ceremony::SignIn { state } => {
                // The account the authenticator names must own the credential it used.
                let claimed = RelyingParty::identify(credential).map(|(user, _)| user);
                let Some(stored) = stored.filter(|s| Some(s.user_id) == claimed) else {
                    return Err(self.refused(label, None, "unknown_passkey", client).await?);
                };
                let passkey = parse_passkey(&stored)?;
                let result = relying_party.finish_discoverable(credential, state, &passkey);
                let result = self.verified(label, &stored, result, client).await?;
                (stored, result, Assurance::Passkey)
            }
            Ceremony::SecondFactor {
                user,
                challenge: bound,
                state,
            } => {
                let challenge = challenge.unwrap_or_default();
                if TokenHash::of(&challenge).to_hex() != bound {
                    self.count_ceremony(label, "ceremony_invalid");
                    return Err(ApiError::PasskeyCeremonyInvalid);
                }
                let pending = self
                    .factors
                    .challenges
                    .take(&challenge)
                    .await?
                    .filter(|c| c.user.as_uuid() == user)
                    .ok_or(ApiError::MfaChallengeInvalid)?;
                let Some(stored) = stored.filter(|s| s.user_id == user) else {
                    let refused = self
                        .refused(label, Some(pending.user), "unknown_passkey", client)
                        .await?;
                    self.challenge_failed(&challenge, pending).await?;
                    return Err(refused);
                };
                let result = relying_party.finish_for(credential, &state);
                let result = match self.verified(label, &stored, result, client).await {
                    Ok(result) => result,
                    Err(e) => {
                        self.challenge_failed(&challenge, pending).await?;
                        return Err(e);
                    }
                };
                (stored, result, Assurance::PasswordAndPasskey)
            }
            Ceremony::Registration { .. } | Ceremony::SignUp { .. } => unreachable!("take_ceremony checks the kind"),
        };
        let user = UserId::from_uuid(stored.user_id);
        let Some(credentials) = self.users.find_credentials_by_id(user).await? else {
            return Err(self.refused(label, None, "unknown_passkey", client).await?);
        };
        if self.mail.require_verified_email() && !credentials.user.email_verified {
            self.audit
                .record(&[self
                    .audit
                    .event(EventName::LoginFailed, client)
                    .user(user)
                    .reason("unverified")])
                .await?;
            return Err(ApiError::EmailNotVerified);
        }
        if label == "second_factor" {
            // The password step counted no success: the second step clears the failures.
            self.throttle.succeeded(&Email::parse(&credentials.user.email)?).await?;
        }
        self.count_ceremony(label, "success");
        let signed_in = self
            .start_session(
                credentials.user,
                client,
                assurance(KeyKind::of(result.backup_eligible())),
            )
            .await?;
        self.audit
            .record(&[self
                .audit
                .event(EventName::MfaVerified, client)
                .user(user)
                .session(signed_in.session_id)
                .reason("passkey")])
            .await?;
        self.metrics.logins.with_label_values(&["success"]).inc();
        Ok(signed_in)
    }

    /// Checks what the library found, and stores the new counter by a compare-and-set on the
    /// one it was checked against: a counter that did not go up (a cloned authenticator) is
    /// refused and recorded, and so is the second of two sign-ins that raced with one count.
    async fn verified(
        &self,
        label: &'static str,
        stored: &StoredPasskey,
        result: std::result::Result<AuthenticationResult, WebauthnError>,
        client: &Client,
    ) -> Result<AuthenticationResult> {
        let user = Some(UserId::from_uuid(stored.user_id));
        let result = match result {
            Ok(result) => result,
            Err(WebauthnError::CredentialPossibleCompromise) => {
                return Err(self.cloned(label, stored, client).await?);
            }
            Err(e) => {
                tracing::info!(reason = %e, "passkey sign-in refused");
                return Err(self.refused(label, user, "passkey_invalid", client).await?);
            }
        };
        let mut passkey = parse_passkey(stored)?;
        passkey.update_credential(&result);
        let updated = serde_json::to_string(&passkey).map_err(anyhow::Error::from)?;
        let used = PasskeyUse {
            id: stored.id,
            checked_count: stored.sign_count,
            sign_count: result.counter(),
            credential: &updated,
            backed_up: result.backup_state(),
        };
        if !self.users.use_passkey(used).await? {
            if result.counter() > 0 {
                return Err(self.cloned(label, stored, client).await?);
            }
            return Err(self.refused(label, user, "passkey_invalid", client).await?);
        }
        Ok(result)
    }

    async fn cloned(&self, label: &'static str, stored: &StoredPasskey, client: &Client) -> Result<ApiError> {
        tracing::warn!(passkey.id = %stored.id, "passkey counter went back: a cloned authenticator?");
        self.count_ceremony(label, "cloned");
        self.audit
            .record(&[self
                .audit
                .event(EventName::PasskeyCloneDetected, client)
                .user(UserId::from_uuid(stored.user_id))
                .reason("counter_regression")])
            .await?;
        Ok(ApiError::PasskeyRefused)
    }

    async fn refused(
        &self,
        label: &'static str,
        user: Option<UserId>,
        reason: &'static str,
        client: &Client,
    ) -> Result<ApiError> {
        self.count_ceremony(label, "invalid");
        let event = self.audit.event(EventName::PasskeyFailed, client).reason(reason);
        self.audit
            .record(&[match user {
                Some(user) => event.user(user),
                None => event,
            }])
            .await?;
        Ok(ApiError::PasskeyRefused)
    }
}

fn view(p: StoredPasskey) -> PasskeyView {
    PasskeyView {
        id: p.id,
        name: p.name,
        created_at_ms: p.created_at,
        last_used_at_ms: p.last_used_at,
        backup_eligible: p.backup_eligible,
        backed_up: p.backed_up,
    }
}

fn parse_passkey(stored: &StoredPasskey) -> Result<Passkey> {
    Ok(serde_json::from_str(&stored.credential)
        .map_err(|e| anyhow::anyhow!("stored passkey {} does not parse: {e}", stored.id))?)
}

/// A name as given, trimmed; "Passkey" when none is.
fn passkey_name(name: Option<String>) -> Result<String> {
    let name = name.map(|n| n.trim().to_string()).filter(|n| !n.is_empty());
    let name = name.unwrap_or_else(|| "Passkey".into());
    if name.chars().count() > MAX_NAME_CHARS || name.chars().any(char::is_control) {
        return Err(ApiError::validation(
            "name",
            "a passkey's name is at most 64 characters, without control characters",
        ));
    }
    Ok(name)
}

fn encode_id(id: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(id)
}

fn decode_id(id: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(id).ok()
}

fn internal(e: WebauthnError) -> ApiError {
    ApiError::Internal(anyhow::anyhow!("passkey ceremony: {e}"))
}
