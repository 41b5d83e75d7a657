//! The signed-in user's own security events.

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use uuid::Uuid;

use super::bearer::Authenticated;
use super::resource::{get, resource};
use super::schema::{Common, ErrorEnvelope, NeedsBearer};
use super::wire::{Event, EventPage};
use crate::app_state::AppState;
use crate::envelope::{self, Envelope};
use crate::error::{ApiError, Result};
use crate::store::users::EventCursor;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/auth/events", "GET, HEAD").route(get().to(list)));
}

/// Events on one page unless `limit` says otherwise.
const DEFAULT_LIMIT: u32 = 20;

#[derive(Deserialize)]
struct Page {
    limit: Option<String>,
    after: Option<String>,
}

/// My security activity
///
/// What happened to the caller's account, newest first: sign-ins and failed attempts, sessions
/// ended, password and address changes, each with the client's address and browser family.
/// Pages are keyset-paged: pass the answer's `next` as `after` for older events.
#[utoipa::path(get, path = "/auth/events", tag = "account", operation_id = "events", security(("bearer" = [])),
    params(
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Events per page (default 20)"),
        ("after" = Option<String>, Query, description = "The `next` of the previous page"),
    ),
    responses(
        (status = 200, body = Envelope<EventPage>),
        (status = 400, description = "`VALIDATION_ERROR`: `limit` outside 1..=100, or an `after` this service did not give", body = ErrorEnvelope),
        NeedsBearer, Common))]
pub(super) async fn list(
    state: web::Data<AppState>,
    req: actix_web::HttpRequest,
    Authenticated(caller): Authenticated,
) -> Result<HttpResponse> {
    let page = web::Query::<Page>::from_query(req.query_string())
        .map_err(|_| ApiError::validation("query", "query must be `limit` and `after`"))?
        .into_inner();
    let limit = match page.limit.as_deref() {
        None => DEFAULT_LIMIT,
        Some(text) => text
            .parse()
            .ok()
            .filter(|n| (1..=crate::accounts::MAX_EVENTS_PAGE).contains(n))
            .ok_or_else(|| ApiError::validation("limit", "limit must be a number from 1 to 100"))?,
    };
    let after = match page.after.as_deref() {
        None => None,
        Some(text) => {
            Some(parse_cursor(text).ok_or_else(|| ApiError::validation("after", "after must be a page's `next`"))?)
        }
    };
    let events = state.accounts.events(&caller, after, limit).await?;
    let next = (events.len() == limit as usize)
        .then(|| events.last().map(|e| cursor(e.at, e.id)))
        .flatten();
    let events = events.into_iter().map(Event::from).collect();
    Ok(envelope::ok(EventPage { events, next }))
}

/// `<ms since the epoch>.<event id>`: where the next page starts.
fn cursor(at: time::OffsetDateTime, id: Uuid) -> String {
    format!("{}.{}", at.unix_timestamp_nanos() / 1_000_000, id.simple())
}

fn parse_cursor(text: &str) -> Option<EventCursor> {
    let (at, id) = text.split_once('.')?;
    Some(EventCursor {
        at_ms: at.parse().ok()?,
        id: Uuid::try_parse(id).ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_reads_back_and_nothing_else_does() {
        let id = Uuid::now_v7();
        let at = time::OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        let parsed = parse_cursor(&cursor(at, id)).unwrap();
        assert_eq!((parsed.at_ms, parsed.id), (1_700_000_000_000, id));
        for bad in ["", ".", "1.", "x.y", "1", &id.to_string()] {
            assert!(parse_cursor(bad).is_none(), "{bad}");
        }
    }
}
