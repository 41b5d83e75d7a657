//! The TOTP second factor: enrol (the password again), confirm (a first code; ten recovery
//! codes shown once; every other session ends), sign in with a code or a recovery code after
//! the password, renew the recovery codes, remove the factor. Changes that could lock the
//! owner out or let an intruder in (password change, signing out everywhere, every change of
//! the factor) take a code in the same request when the user has a factor: a step-up by
//! proof in hand, not by how recently the session was verified.

use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use super::{Accounts, Caller, SignedIn};
use crate::auth::keys::SealingKey;
use crate::auth::second_factor::{self, Provisioning, RecoveryKey, TotpSecret};
use crate::domain::{Assurance, Client, Email, EventName, MailKind, Proof, SecurityEvent, User, UserId};
use crate::error::{ApiError, Result};
use crate::store::challenges::{Challenge, ChallengeStore};
use crate::store::users::{TotpFactor, Trail};

/// How long the second step of a login may wait.
const CHALLENGE_TTL: Duration = Duration::from_secs(300);
/// Wrong codes one challenge takes before it is dead.
const CHALLENGE_ATTEMPTS: u32 = 5;

/// What second factors need beside the stores.
#[derive(Clone)]
pub struct SecondFactors {
    /// Seals TOTP secrets at rest (`KEYS_ENCRYPTION_KEY`); without it there are no factors.
    pub sealing: Option<Arc<SealingKey>>,
    pub issuer: String,
    pub challenges: ChallengeStore,
}

/// The second step of a login.
pub struct Verification {
    pub challenge: String,
    pub proof: Proof,
}

/// Recovery codes, shown once.
pub struct RecoveryCodes(pub Vec<SecretString>);

/// What checking a proof found.
enum Checked {
    Accepted,
    Wrong,
    /// A right code whose step was already used, or a recovery code used meanwhile.
    Replayed,
}

impl Accounts {
    fn sealing(&self) -> Result<&SealingKey> {
        self.factors.sealing.as_deref().ok_or(ApiError::MfaUnavailable)
    }

    fn recovery_key(&self) -> Result<RecoveryKey> {
        Ok(RecoveryKey::new(self.sealing()?.derive("recovery-codes")))
    }

    fn open_secret(&self, user: UserId, factor: &TotpFactor) -> Result<TotpSecret> {
        let bytes = self
            .sealing()?
            .open(&aad(user), &factor.sealed_secret)
            .ok_or_else(|| anyhow::anyhow!("the TOTP secret of {user} does not open under KEYS_ENCRYPTION_KEY"))?;
        Ok(TotpSecret::from_bytes(bytes))
    }

    /// Starts (or restarts) enrolment: a new secret, pending until a code confirms it.
    pub async fn enrol_totp(&self, caller: &Caller, password: SecretString, client: &Client) -> Result<Provisioning> {
        let sealing = self.sealing()?;
        self.confirm_password(caller, password, "password", client).await?;
        let user = caller.user.id;
        let secret = TotpSecret::generate()?;
        let sealed = sealing.seal(&aad(user), secret.bytes())?;
        if self.users.start_totp(user, &sealed).await? == crate::store::users::PendingTotp::AlreadyActive {
            return Err(ApiError::MfaAlreadyEnabled);
        }
        Ok(secret.provisioning(&self.factors.issuer, &caller.user.email)?)
    }

    /// Confirms the pending factor with its first code: the recovery codes, once. Every other
    /// session ends; the caller's now counts as second-factor verified.
    pub async fn confirm_totp(&self, caller: &Caller, code: String, client: &Client) -> Result<RecoveryCodes> {
        let user = caller.user.id;
        let factor = match self.users.totp_factor(user).await? {
            Some(factor) if !factor.confirmed => factor,
            Some(_) => return Err(ApiError::MfaAlreadyEnabled),
            None => return Err(ApiError::MfaNotEnabled),
        };
        let secret = self.open_secret(user, &factor)?;
        let Some(step) = secret.matched_step(&code, self.clock.now_secs()) else {
            self.count_proof("totp", "invalid");
            return Err(ApiError::MfaCodeInvalid);
        };
        let (codes, hashes) = self.new_recovery_codes()?;
        let enabled = [self
            .audit
            .event(EventName::MfaEnabled, client)
            .user(user)
            .session(caller.session_id)
            .reason("totp")];
        let notice = self.notice(MailKind::MfaEnabled, client);
        let trail = Trail {
            events: &enabled,
            notice: notice.as_ref(),
        };
        if !self.users.confirm_totp(user, step, &hashes, trail).await? {
            self.count_proof("totp", "replayed");
            return Err(ApiError::MfaCodeInvalid);
        }
        self.count_proof("totp", "success");
        self.told(&notice);
        self.audit.announce(&enabled);
        self.sessions
            .elevate(user, caller.session_id, Assurance::PasswordAndOtp)
            .await?;
        let revoked = self.sessions.revoke_all(user, Some(caller.session_id)).await?;
        self.revoked("mfa_enabled", revoked, user, None, client).await?;
        Ok(codes)
    }

    /// Ten new recovery codes in place of the old ones (the password and a second factor).
    pub async fn renew_recovery_codes(
        &self,
        caller: &Caller,
        password: SecretString,
        proof: Option<Proof>,
        client: &Client,
    ) -> Result<RecoveryCodes> {
        let email = self.confirm_password(caller, password, "password", client).await?;
        let user = caller.user.id;
        let factor = self.active_factor(user).await?.ok_or(ApiError::MfaNotEnabled)?;
        self.step_up_with(user, &email, &factor, proof, client).await?;
        let (codes, hashes) = self.new_recovery_codes()?;
        let renewed = [self
            .audit
            .event(EventName::RecoveryCodesRenewed, client)
            .user(user)
            .session(caller.session_id)];
        let notice = self.notice(MailKind::RecoveryCodesChanged, client);
        let trail = Trail {
            events: &renewed,
            notice: notice.as_ref(),
        };
        if !self.users.replace_recovery_codes(user, &hashes, trail).await? {
            return Err(ApiError::MfaNotEnabled);
        }
        self.told(&notice);
        self.audit.announce(&renewed);
        Ok(codes)
    }

    /// Removes the factor and its recovery codes (the password and a second factor); every
    /// other session ends. How many did.
    pub async fn remove_totp(
        &self,
        caller: &Caller,
        password: SecretString,
        proof: Option<Proof>,
        client: &Client,
    ) -> Result<u32> {
        let email = self.confirm_password(caller, password, "password", client).await?;
        let user = caller.user.id;
        let factor = self.active_factor(user).await?.ok_or(ApiError::MfaNotEnabled)?;
        self.step_up_with(user, &email, &factor, proof, client).await?;
        let disabled = [self
            .audit
            .event(EventName::MfaDisabled, client)
            .user(user)
            .session(caller.session_id)
            .reason("totp")];
        let notice = self.notice(MailKind::MfaDisabled, client);
        let trail = Trail {
            events: &disabled,
            notice: notice.as_ref(),
        };
        if !self.users.remove_totp(user, trail).await? {
            return Err(ApiError::MfaNotEnabled);
        }
        self.told(&notice);
        self.audit.announce(&disabled);
        let revoked = self.sessions.revoke_all(user, Some(caller.session_id)).await?;
        self.revoked("mfa_disabled", revoked, user, None, client).await?;
        Ok(revoked)
    }

    /// A step-up for a sensitive change by `user`: nothing when the user has no factor,
    /// otherwise `proof` must be a good code (`MFA_CODE_REQUIRED` without one).
    pub(super) async fn step_up(
        &self,
        user: UserId,
        email: &Email,
        proof: Option<Proof>,
        client: &Client,
    ) -> Result<()> {
        match self.active_factor(user).await? {
            Some(factor) => self.step_up_with(user, email, &factor, proof, client).await,
            None => Ok(()),
        }
    }

    async fn step_up_with(
        &self,
        user: UserId,
        email: &Email,
        factor: &TotpFactor,
        proof: Option<Proof>,
        client: &Client,
    ) -> Result<()> {
        let proof = proof.ok_or(ApiError::MfaCodeRequired)?;
        match self.check_proof(user, factor, &proof, client).await? {
            Checked::Accepted => Ok(()),
            checked => {
                // A stolen access token must not become unlimited guesses at the factor.
                let mut events = vec![self.failed_proof(user, &checked, client)];
                events.extend(self.count_failure(email, Some(user), "wrong_code", client).await?);
                self.audit.record(&events).await?;
                Err(ApiError::MfaCodeInvalid)
            }
        }
    }

    /// The challenge a right password leads to when `user` has a factor.
    pub(super) async fn challenge_for(&self, user: &User) -> Result<ApiError> {
        let challenge = crate::auth::refresh_token::random_token();
        self.factors
            .challenges
            .put(
                &challenge,
                Challenge {
                    user: user.id,
                    failures: 0,
                    expires_at_ms: self.factors.challenges.expiry(CHALLENGE_TTL),
                },
            )
            .await?;
        Ok(ApiError::MfaRequired {
            challenge: challenge.into(),
            expires_in_secs: CHALLENGE_TTL.as_secs(),
            passkey: user.second_factor.passkeys > 0 && self.passkeys.is_some(),
        })
    }

    /// The second step of a login: a code or a recovery code for the challenge the password
    /// step answered. A session, as a login's, on success.
    pub async fn verify_second_factor(&self, input: Result<Verification>, client: &Client) -> Result<SignedIn> {
        let input = input?;
        let challenges = &self.factors.challenges;
        let challenge = challenges
            .take(&input.challenge)
            .await?
            .ok_or(ApiError::MfaChallengeInvalid)?;
        let user = challenge.user;
        let credentials = self
            .users
            .find_credentials_by_id(user)
            .await?
            .ok_or(ApiError::MfaChallengeInvalid)?;
        let email = Email::parse(&credentials.user.email)?;
        // Removed since the password step: that login is over.
        let factor = self.active_factor(user).await?.ok_or(ApiError::MfaChallengeInvalid)?;
        self.refuse_if_locked(&email).await?;
        match self.check_proof(user, &factor, &input.proof, client).await? {
            Checked::Accepted => {
                self.throttle.succeeded(&email).await?;
                let verified = self
                    .audit
                    .event(EventName::MfaVerified, client)
                    .user(user)
                    .reason(input.proof.method());
                let signed_in = self
                    .start_session(credentials.user, client, Assurance::PasswordAndOtp)
                    .await?;
                self.audit.record(&[verified.session(signed_in.session_id)]).await?;
                self.metrics.logins.with_label_values(&["success"]).inc();
                Ok(signed_in)
            }
            checked => {
                let mut events = vec![self.failed_proof(user, &checked, client)];
                self.challenge_failed(&input.challenge, challenge).await?;
                events.extend(self.count_failure(&email, Some(user), "wrong_code", client).await?);
                self.audit.record(&events).await?;
                Err(ApiError::MfaCodeInvalid)
            }
        }
    }

    /// Counts a wrong answer (a code, a recovery code or a passkey) against the challenge
    /// `token`: it lives on with one failure more, or ends at the last allowed one.
    pub(super) async fn challenge_failed(&self, token: &str, challenge: Challenge) -> Result<()> {
        let failures = challenge.failures + 1;
        if failures < CHALLENGE_ATTEMPTS {
            self.factors
                .challenges
                .put(token, Challenge { failures, ..challenge })
                .await?;
        } else {
            tracing::warn!(user_id = %challenge.user, "second-factor challenge ended after too many wrong answers");
        }
        Ok(())
    }

    /// The confirmed factor of `user`, if there is one.
    async fn active_factor(&self, user: UserId) -> Result<Option<TotpFactor>> {
        Ok(self.users.totp_factor(user).await?.filter(|f| f.confirmed))
    }

    /// Checks `proof` against the user's factor and uses it up: a TOTP step is accepted once
    /// (a compare-and-set in the store), a recovery code once.
    async fn check_proof(&self, user: UserId, factor: &TotpFactor, proof: &Proof, client: &Client) -> Result<Checked> {
        let result = async {
            Ok(match proof {
                Proof::Totp(code) => {
                    let secret = self.open_secret(user, factor)?;
                    match secret.matched_step(code, self.clock.now_secs()) {
                        None => Checked::Wrong,
                        Some(step) if self.users.use_totp_step(user, step).await? => Checked::Accepted,
                        Some(_) => Checked::Replayed,
                    }
                }
                Proof::RecoveryCode(code) => {
                    let Some(hash) = self.recovery_key()?.hash(code.expose_secret()) else {
                        return Ok(Checked::Wrong);
                    };
                    let unused = self.users.unused_recovery_codes(user).await?;
                    if second_factor::find_in_constant_time(&hash, &unused).is_none() {
                        return Ok(Checked::Wrong);
                    }
                    let notice = self.notice(MailKind::RecoveryCodesChanged, client);
                    let trail = Trail {
                        events: &[],
                        notice: notice.as_ref(),
                    };
                    if self.users.use_recovery_code(user, &hash, trail).await? {
                        self.told(&notice);
                        Checked::Accepted
                    } else {
                        Checked::Replayed
                    }
                }
            })
        }
        .await;
        self.count_proof(
            proof.method(),
            match &result {
                Ok(Checked::Accepted) => "success",
                Ok(Checked::Wrong) => "invalid",
                Ok(Checked::Replayed) => "replayed",
                Err(_) => "error",
            },
        );
        result
    }

    fn failed_proof(&self, user: UserId, checked: &Checked, client: &Client) -> SecurityEvent {
        let reason = match checked {
            Checked::Replayed => "replayed_code",
            _ => "wrong_code",
        };
        self.audit.event(EventName::MfaFailed, client).user(user).reason(reason)
    }

    fn count_proof(&self, method: &'static str, outcome: &'static str) {
        self.metrics
            .mfa_verifications
            .with_label_values(&[method, outcome])
            .inc();
    }

    fn new_recovery_codes(&self) -> Result<(RecoveryCodes, Vec<[u8; 32]>)> {
        let key = self.recovery_key()?;
        let codes = second_factor::recovery_codes()?;
        let hashes = codes
            .iter()
            .map(|code| key.hash(code.expose_secret()))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| anyhow::anyhow!("a new recovery code does not hash"))?;
        Ok((RecoveryCodes(codes), hashes))
    }
}

/// What a sealed TOTP secret is bound to: its user, so a row cannot be moved to another.
fn aad(user: UserId) -> String {
    format!("totp:{user}")
}
