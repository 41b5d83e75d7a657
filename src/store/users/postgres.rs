//! The SQL of the PostgreSQL user store.

use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

use super::UserRow;

pub(super) async fn find_by_email(pool: &PgPool, email: &str) -> sqlx::Result<Option<UserRow>> {
    // lower($1) so the expression index users_email_key serves the lookup.
    sqlx::query_as("select id, username, email, password_hash, email_verified_at, created_at from users where lower(email) = lower($1)")
        .bind(email)
        .fetch_optional(pool)
        .await
}

pub(super) async fn find_by_id(pool: &PgPool, id: Uuid) -> sqlx::Result<Option<UserRow>> {
    sqlx::query_as("select id, username, email, password_hash, email_verified_at, created_at from users where id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await
}

pub(super) async fn set_password_hash(pool: &PgPool, id: Uuid, hash: &str, now: OffsetDateTime) -> sqlx::Result<bool> {
    sqlx::query("update users set password_hash = $2, updated_at = $3 where id = $1")
        .bind(id)
        .bind(hash)
        .bind(now)
        .execute(pool)
        .await
        .map(|done| done.rows_affected() > 0)
}
