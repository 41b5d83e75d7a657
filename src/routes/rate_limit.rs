//! Per-client-IP rate limits (actix-governor): a general one on every API route, a strict one
//! on the credential routes. Over the limit: 429 `RATE_LIMITED` in the envelope, `Retry-After`
//! and the `RateLimit-*` headers.

use std::net::IpAddr;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use actix_governor::governor::NotUntil;
use actix_governor::governor::clock::{Clock, DefaultClock, QuantaInstant};
use actix_governor::governor::middleware::NoOpMiddleware;
use actix_governor::{GovernorConfig, GovernorConfigBuilder, KeyExtractor, SimpleKeyExtractionError};
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{HttpResponse, HttpResponseBuilder, ResponseError};

use crate::client_ip::resolve;
use crate::config::Cidr;
use crate::config::RateLimitSettings;
use crate::error::ApiError;
use crate::metrics::Metrics;

/// Keys a limiter by the resolved client address and renders its 429.
#[derive(Clone)]
pub struct ClientIp {
    limiter: &'static str,
    /// Requests allowed per window, for `RateLimit-Limit`.
    limit: u32,
    trusted: Arc<Vec<Cidr>>,
    metrics: Arc<Metrics>,
}

/// Marks a response as refused by a limiter, so the login metrics can tell it apart.
#[derive(Clone, Copy)]
pub struct RateLimited;

impl KeyExtractor for ClientIp {
    type Key = IpAddr;
    type KeyExtractionError = SimpleKeyExtractionError<&'static str>;

    fn extract(&self, req: &ServiceRequest) -> Result<IpAddr, Self::KeyExtractionError> {
        let peer = req
            .peer_addr()
            .ok_or_else(|| SimpleKeyExtractionError::new("no peer address"))?;
        Ok(resolve(peer.ip(), req.headers(), &self.trusted))
    }

    fn exceed_rate_limit_response(&self, negative: &NotUntil<QuantaInstant>, _: HttpResponseBuilder) -> HttpResponse {
        // One clock for the process: building a quanta clock calibrates it (cpuid and a timing
        // loop), far too slow to repeat for every refused request.
        static CLOCK: LazyLock<DefaultClock> = LazyLock::new(DefaultClock::default);
        let wait = negative.wait_time_from(CLOCK.now());
        let retry_after_secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        self.metrics.rate_limited.with_label_values(&[self.limiter]).inc();
        let mut response = ApiError::RateLimited { retry_after_secs }.error_response();
        let headers = response.headers_mut();
        for (name, value) in [
            ("ratelimit-limit", self.limit.to_string()),
            ("ratelimit-remaining", "0".to_string()),
            ("ratelimit-reset", retry_after_secs.max(1).to_string()),
        ] {
            headers.insert(
                actix_web::http::header::HeaderName::from_static(name),
                value.parse().expect("digits are a valid header value"),
            );
        }
        response.extensions_mut().insert(RateLimited);
        response
    }
}

pub type Limiter = GovernorConfig<ClientIp, NoOpMiddleware<QuantaInstant>>;

/// The general and the credential limiter; each is shared by every worker and route it wraps.
#[derive(Clone)]
pub struct Limiters {
    pub general: Limiter,
    pub auth: Limiter,
}

impl Limiters {
    pub fn new(settings: &RateLimitSettings, trusted: &[Cidr], metrics: Arc<Metrics>) -> Self {
        let trusted = Arc::new(trusted.to_vec());
        let build = |limiter: &'static str, period: Duration, burst: u32, limit: u32| {
            let key = ClientIp {
                limiter,
                limit,
                trusted: trusted.clone(),
                metrics: metrics.clone(),
            };
            GovernorConfigBuilder::default()
                .key_extractor(key)
                .period(period)
                .burst_size(burst)
                .finish()
                .expect("positive period and burst (validated in config)")
        };
        Self {
            general: build(
                "general",
                Duration::from_secs(1) / settings.per_second,
                settings.burst,
                settings.per_second,
            ),
            auth: build(
                "auth",
                Duration::from_secs(60) / settings.auth_per_minute,
                settings.auth_per_minute,
                settings.auth_per_minute,
            ),
        }
    }
}

/// Counts a rate-limited login attempt as `auth_logins_total{outcome="rate_limited"}`.
pub async fn count_limited_logins(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let state = req
        .app_data::<actix_web::web::Data<crate::app_state::AppState>>()
        .cloned();
    let response = next.call(req).await?;
    if response.response().extensions().get::<RateLimited>().is_some()
        && let Some(state) = state
    {
        state.metrics.logins.with_label_values(&["rate_limited"]).inc();
    }
    Ok(response)
}
