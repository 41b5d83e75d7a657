//! What a flow is told about the request that asked for it.

use actix_web::HttpRequest;
use actix_web::http::header;

use crate::domain::Client;

/// The client's address (through the trusted proxies), its `User-Agent`, and the request's
/// trace.
pub(super) fn client(req: &HttpRequest) -> Client {
    Client {
        ip: crate::client_ip::of(req).map(|ip| ip.to_string()),
        user_agent: req
            .headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        trace_id: crate::telemetry::http::trace_id(req),
    }
}
