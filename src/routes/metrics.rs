//! `GET /metrics`, served on the metrics listener only (never the API port).

use actix_web::{HttpResponse, web};

use crate::app_state::AppState;

/// `GET /metrics` on the metrics listener: pool gauges are read and the Redis nodes probed
/// now, then everything rendered.
pub async fn endpoint(state: web::Data<AppState>) -> HttpResponse {
    let metrics = &state.accounts.metrics;
    let (idle, in_use) = state.accounts.users.pool_connections();
    metrics.db_pool.with_label_values(&["idle"]).set(i64::from(idle));
    metrics.db_pool.with_label_values(&["in_use"]).set(i64::from(in_use));
    if let Some((idle, in_use)) = state.accounts.sessions.pool_connections() {
        metrics.redis_pool.with_label_values(&["idle"]).set(i64::from(idle));
        metrics.redis_pool.with_label_values(&["in_use"]).set(i64::from(in_use));
    }
    if let Some(redis) = state.accounts.sessions.redis_client() {
        let nodes = redis.probe_nodes().await;
        metrics.record_redis_nodes(nodes.iter().map(|n| (n.node.as_str(), n.role, n.up)));
    }
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(metrics.render())
}
