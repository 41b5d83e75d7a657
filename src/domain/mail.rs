/// Why a mail is sent, and what the token in its link allows: one value for both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MailKind {
    PasswordReset,
    EmailVerify,
    /// A notice that the password changed (by its owner or through a reset): no link.
    PasswordChanged,
    /// Notices of the second factor: enabled, removed, recovery codes renewed or one used.
    MfaEnabled,
    MfaDisabled,
    /// An operator removed the second factor (its owner lost it): says so, and names no
    /// address or browser, which would be the operator's.
    MfaReset,
    RecoveryCodesChanged,
    /// Notices of passkeys: one added, renamed or removed.
    PasskeyAdded,
    PasskeyRenamed,
    PasskeyRemoved,
}

impl MailKind {
    pub const ALL: [MailKind; 10] = [
        MailKind::PasswordReset,
        MailKind::EmailVerify,
        MailKind::PasswordChanged,
        MailKind::MfaEnabled,
        MailKind::MfaDisabled,
        MailKind::MfaReset,
        MailKind::RecoveryCodesChanged,
        MailKind::PasskeyAdded,
        MailKind::PasskeyRenamed,
        MailKind::PasskeyRemoved,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::PasswordReset => "password_reset",
            Self::EmailVerify => "email_verify",
            Self::PasswordChanged => "password_changed",
            Self::MfaEnabled => "mfa_enabled",
            Self::MfaDisabled => "mfa_disabled",
            Self::MfaReset => "mfa_reset",
            Self::RecoveryCodesChanged => "recovery_codes_changed",
            Self::PasskeyAdded => "passkey_added",
            Self::PasskeyRenamed => "passkey_renamed",
            Self::PasskeyRemoved => "passkey_removed",
        }
    }

    /// Whether the mail tells where the change came from (address, browser): every mail but
    /// one an operator's action sends.
    pub fn names_the_requester(self) -> bool {
        self != Self::MfaReset
    }

    /// Whether the mail carries a single-use link.
    pub fn has_link(self) -> bool {
        matches!(self, Self::PasswordReset | Self::EmailVerify)
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == text)
    }
}
