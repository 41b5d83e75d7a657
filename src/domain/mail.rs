/// Why a mail is sent, and what the token in its link allows: one value for both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MailKind {
    PasswordReset,
    EmailVerify,
}

impl MailKind {
    pub const ALL: [MailKind; 2] = [MailKind::PasswordReset, MailKind::EmailVerify];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::PasswordReset => "password_reset",
            Self::EmailVerify => "email_verify",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == text)
    }
}
