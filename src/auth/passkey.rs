//! The passkeys' relying party: webauthn-rs configured from `WEBAUTHN_RP_ID` and
//! `WEBAUTHN_RP_ORIGINS`, with the two changes a password-free sign-in needs. Registration
//! asks for a discoverable credential (webauthn-rs' passkey registration discourages one,
//! and without it the browser cannot offer the account when nobody typed it), and the
//! discoverable sign-in is a prompt behind a button unless the page asks for autofill.

pub use webauthn_rs::prelude::{AuthenticationResult, PublicKeyCredential, RegisterPublicKeyCredential, WebauthnError};
use webauthn_rs::prelude::{
    CreationChallengeResponse, CredentialID, DiscoverableAuthentication, Passkey, PasskeyAuthentication,
    PasskeyRegistration, RequestChallengeResponse, Url, Webauthn, WebauthnBuilder,
};
use webauthn_rs_proto::ResidentKeyRequirement;

use crate::config::PasskeySettings;
use crate::domain::UserId;

pub struct RelyingParty {
    webauthn: Webauthn,
}

impl RelyingParty {
    /// `name`: what the browser shows as the site; `timeout`: how long the browser's prompt
    /// may wait, no longer than the server keeps the ceremony.
    pub fn new(settings: &PasskeySettings, name: &str, timeout: std::time::Duration) -> anyhow::Result<Self> {
        let origins = settings
            .origins
            .iter()
            .map(|o| Url::parse(o))
            .collect::<Result<Vec<_>, _>>()?;
        let (first, others) = origins
            .split_first()
            .ok_or_else(|| anyhow::anyhow!("WEBAUTHN_RP_ORIGINS names no origin"))?;
        let mut builder = WebauthnBuilder::new(&settings.rp_id, first)
            .map_err(|e| anyhow::anyhow!("WEBAUTHN_RP_ID does not suit {first}: {e}"))?
            .rp_name(name)
            .timeout(timeout);
        for origin in others {
            builder = builder.append_allowed_origin(origin);
        }
        let webauthn = builder
            .build()
            .map_err(|e| anyhow::anyhow!("passkey relying party: {e}"))?;
        Ok(Self { webauthn })
    }

    /// Options for `navigator.credentials.create`, asking for a discoverable credential with
    /// user verification, none of `exclude` (the user's own, so one authenticator is not
    /// registered twice).
    pub fn start_registration(
        &self,
        user: UserId,
        name: &str,
        display_name: &str,
        exclude: Vec<CredentialID>,
    ) -> Result<(CreationChallengeResponse, PasskeyRegistration), WebauthnError> {
        let (mut options, state) =
            self.webauthn
                .start_passkey_registration(user.as_uuid(), name, display_name, Some(exclude))?;
        if let Some(selection) = options.public_key.authenticator_selection.as_mut() {
            selection.resident_key = Some(ResidentKeyRequirement::Required);
            selection.require_resident_key = true;
        }
        Ok((options, state))
    }

    pub fn finish_registration(
        &self,
        credential: &RegisterPublicKeyCredential,
        state: &PasskeyRegistration,
    ) -> Result<Passkey, WebauthnError> {
        self.webauthn.finish_passkey_registration(credential, state)
    }

    /// Options for `navigator.credentials.get` with no account named: the browser offers the
    /// passkeys it holds for this site, in a prompt, or with `conditional` among the
    /// suggestions of an input marked `autocomplete="username webauthn"`.
    pub fn start_discoverable(
        &self,
        conditional: bool,
    ) -> Result<(RequestChallengeResponse, DiscoverableAuthentication), WebauthnError> {
        let (mut options, state) = self.webauthn.start_discoverable_authentication()?;
        if !conditional {
            options.mediation = None;
        }
        Ok((options, state))
    }

    /// The account and credential a discoverable answer names, as the authenticator claims.
    pub fn identify(credential: &PublicKeyCredential) -> Option<(uuid::Uuid, &[u8])> {
        let user = uuid::Uuid::from_slice(credential.get_user_unique_id()?).ok()?;
        Some((user, credential.get_credential_id()))
    }

    pub fn finish_discoverable(
        &self,
        credential: &PublicKeyCredential,
        state: DiscoverableAuthentication,
        passkey: &Passkey,
    ) -> Result<AuthenticationResult, WebauthnError> {
        self.webauthn
            .finish_discoverable_authentication_v2(credential, state, passkey)
    }

    /// Options for `navigator.credentials.get` limited to `passkeys` (a login's second step).
    pub fn start_for(
        &self,
        passkeys: &[Passkey],
    ) -> Result<(RequestChallengeResponse, PasskeyAuthentication), WebauthnError> {
        self.webauthn.start_passkey_authentication(passkeys)
    }

    pub fn finish_for(
        &self,
        credential: &PublicKeyCredential,
        state: &PasskeyAuthentication,
    ) -> Result<AuthenticationResult, WebauthnError> {
        self.webauthn.finish_passkey_authentication(credential, state)
    }
}
