//! The outcome labels of the flows' counters, decided from their results in one place.

use crate::error::{ApiError, Result};
use crate::metrics::Metrics;

pub(super) fn registration<T>(metrics: &Metrics, result: &Result<T>) {
    let outcome = match result {
        Ok(_) => "success",
        Err(ApiError::EmailTaken) => "email_taken",
        Err(e) if not_a_request(e) => "invalid",
        Err(_) => "error",
    };
    metrics.registrations.with_label_values(&[outcome]).inc();
}

pub(super) fn login<T>(metrics: &Metrics, result: &Result<T>) {
    let outcome = match result {
        Ok(_) => "success",
        Err(ApiError::UserNotFound) => "invalid_credentials",
        Err(ApiError::AccountLocked { .. }) => "locked",
        Err(ApiError::EmailNotVerified) => "unverified",
        Err(ApiError::AccountDisabled) => "disabled",
        Err(ApiError::MfaRequired { .. }) => "mfa_required",
        // No credential was checked: a body that is not a login at all.
        Err(e) if not_a_request(e) => "invalid_request",
        Err(_) => "error",
    };
    metrics.logins.with_label_values(&[outcome]).inc();
}

/// A refresh's outcome: `success`, `grace_replay`, `reused`, `expired`, `invalid` or `error`.
pub(super) fn refresh(metrics: &Metrics, outcome: &'static str) {
    metrics.refreshes.with_label_values(&[outcome]).inc();
}

pub(super) fn refresh_of<T>(result: &Result<T>) -> &'static str {
    match result {
        Ok(_) => "success",
        Err(ApiError::RefreshTokenReused) => "reused",
        Err(ApiError::ExpiredRefreshToken) => "expired",
        Err(
            ApiError::CsrfRejected
            | ApiError::NoRefreshCookie
            | ApiError::NoRefreshToken
            | ApiError::InvalidRefreshToken,
        ) => "invalid",
        Err(_) => "error",
    }
}

/// A completed reset and the refusals of its token; other failures are not reset outcomes.
pub(super) fn reset<T>(metrics: &Metrics, result: &Result<T>) {
    let outcome = match result {
        Ok(_) => "completed",
        Err(ApiError::InvalidResetToken) => "invalid_token",
        Err(ApiError::ExpiredResetToken) => "expired_token",
        Err(_) => return,
    };
    metrics.password_resets.with_label_values(&[outcome]).inc();
}

/// A body that could not be read or broke a rule: nothing was checked.
fn not_a_request(e: &ApiError) -> bool {
    matches!(
        e,
        ApiError::Validation { .. } | ApiError::UnsupportedMediaType | ApiError::PayloadTooLarge
    )
}
