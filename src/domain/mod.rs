//! Values that are valid by construction: each has a private field and a `parse` that is the
//! only way in, so a handler holding one never checks it again.

mod assurance;
mod email;
mod event;
mod mail;
mod password;
mod second_factor;
mod user;
pub mod user_agent;
mod username;
mod validation;

pub use assurance::{Assurance, KeyKind};
pub use email::Email;
pub use event::{Client, EventName, SecurityEvent, reason_of};
pub use mail::MailKind;
pub use password::{LoginPassword, NewPassword};
pub use second_factor::{Proof, SecondFactor};
pub use user::{Disabled, User, UserId};
pub use username::Username;
pub use validation::ValidationError;
