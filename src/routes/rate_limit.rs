//! Per-client-IP rate limits (governor's GCRA): a general one on every API route, a strict one
//! on the credential routes. Over the limit: 429 `RATE_LIMITED` in the envelope, `Retry-After`
//! and the `RateLimit-*` headers.
//!
//! The limiters read time from [`Steady`], not from governor's default clock: that one reads the
//! CPU's time-stamp counter, which on some machines (virtual ones among them) differs between
//! cores, so a request served on a core whose counter lags looks as if it came from the past and
//! is refused however far below its limit the client is.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::middleware::{Next, from_fn};
use actix_web::{HttpResponse, ResponseError};
use governor::clock::Clock;
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};

use crate::client_ip;
use crate::config::RateLimitSettings;
use crate::error::ApiError;
use crate::metrics::Metrics;

/// Time since the process started, from the OS monotonic clock (`CLOCK_MONOTONIC`, which the
/// kernel keeps consistent across CPUs).
fn os_elapsed() -> Duration {
    static ORIGIN: LazyLock<Instant> = LazyLock::new(Instant::now);
    ORIGIN.elapsed()
}

/// A clock that never goes back, whichever thread reads it: each reading is at least the latest
/// one any thread got. The GCRA refuses a request whose time lies before its key's theoretical
/// arrival time minus the burst, so a reading from the past is a false 429.
#[derive(Clone)]
pub struct Steady {
    source: fn() -> Duration,
    latest: Arc<AtomicU64>,
}

impl Steady {
    fn new(source: fn() -> Duration) -> Self {
        Self {
            source,
            latest: Arc::new(AtomicU64::new(0)),
        }
    }
}

impl Clock for Steady {
    type Instant = Duration;

    fn now(&self) -> Duration {
        let read = u64::try_from((self.source)().as_nanos()).unwrap_or(u64::MAX);
        let before = self.latest.fetch_max(read, Ordering::AcqRel);
        Duration::from_nanos(before.max(read))
    }
}

type KeyedLimiter = RateLimiter<IpAddr, DefaultKeyedStateStore<IpAddr>, Steady, NoOpMiddleware<Duration>>;

/// Checks between two sweeps of the keys whose quota is whole again (their state is the
/// default one, so dropping them changes no answer and bounds the map by the active clients).
const SWEEP_EVERY: u64 = 4096;

/// One limiter, keyed by the resolved client address; shared by every worker and route it wraps.
#[derive(Clone)]
pub struct Limiter {
    inner: Arc<LimiterInner>,
}

struct LimiterInner {
    name: &'static str,
    /// Requests allowed per window, for `RateLimit-Limit`.
    limit: u32,
    limiter: KeyedLimiter,
    clock: Steady,
    checks: AtomicU64,
    /// IPv6 clients are keyed by their network of this many bits.
    ipv6_prefix: u8,
    metrics: Arc<Metrics>,
}

/// Marks a response as refused by a limiter, so the login metrics can tell it apart.
#[derive(Clone, Copy)]
pub struct RateLimited;

impl Limiter {
    fn new(
        name: &'static str,
        quota: Quota,
        limit: u32,
        clock: Steady,
        ipv6_prefix: u8,
        metrics: Arc<Metrics>,
    ) -> Self {
        let limiter = RateLimiter::new(quota, DefaultKeyedStateStore::default(), clock.clone());
        Self {
            inner: Arc::new(LimiterInner {
                name,
                limit,
                limiter,
                clock,
                checks: AtomicU64::new(0),
                ipv6_prefix,
                metrics,
            }),
        }
    }

    /// `Err(seconds to wait)` when `key` is over the limit.
    fn check(&self, key: IpAddr) -> Result<(), u64> {
        let inner = &*self.inner;
        if inner.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            inner.limiter.retain_recent();
        }
        inner.limiter.check_key(&key).map_err(|refused| {
            let wait = refused.wait_time_from(inner.clock.now());
            wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
        })
    }

    fn refusal(&self, retry_after_secs: u64) -> HttpResponse {
        self.inner
            .metrics
            .rate_limited
            .with_label_values(&[self.inner.name])
            .inc();
        let mut response = ApiError::RateLimited { retry_after_secs }.error_response();
        let headers = response.headers_mut();
        for (name, value) in [
            ("ratelimit-limit", self.inner.limit.to_string()),
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

    async fn enforce<B: MessageBody>(
        self,
        req: ServiceRequest,
        next: Next<B>,
    ) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
        // The address the first middleware resolved; none without a peer (test requests).
        let Some(client) = client_ip::of(req.request()) else {
            return Ok(next.call(req).await?.map_into_left_body());
        };
        let key = client_ip::rate_key(client, self.inner.ipv6_prefix);
        match self.check(key) {
            Ok(()) => Ok(next.call(req).await?.map_into_left_body()),
            Err(wait) => Ok(req.into_response(self.refusal(wait)).map_into_right_body()),
        }
    }

    /// The middleware that applies this limiter to what it wraps.
    pub fn layer<S, B>(
        &self,
    ) -> impl Transform<
        S,
        ServiceRequest,
        Response = ServiceResponse<EitherBody<B>>,
        Error = actix_web::Error,
        InitError = (),
    > + 'static
    where
        S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
        B: MessageBody + 'static,
    {
        let limiter = self.clone();
        from_fn(move |req: ServiceRequest, next: Next<B>| limiter.clone().enforce(req, next))
    }
}

/// The general and the credential limiter.
#[derive(Clone)]
pub struct Limiters {
    pub general: Limiter,
    pub auth: Limiter,
}

impl Limiters {
    pub fn new(settings: &RateLimitSettings, metrics: Arc<Metrics>) -> Self {
        Self::with_clock(settings, metrics, Steady::new(os_elapsed))
    }

    fn with_clock(settings: &RateLimitSettings, metrics: Arc<Metrics>, clock: Steady) -> Self {
        let build = |name: &'static str, period: Duration, burst: u32, limit: u32| {
            let quota = Quota::with_period(period)
                .expect("positive period (validated in config)")
                .allow_burst(std::num::NonZeroU32::new(burst).expect("positive burst (validated in config)"));
            Limiter::new(name, quota, limit, clock.clone(), settings.ipv6_prefix, metrics.clone())
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
        state.accounts.metrics.logins.with_label_values(&["rate_limited"]).inc();
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    thread_local! {
        /// How far this thread's reading of the skewed source is ahead: what a thread sees on
        /// a core whose time-stamp counter runs ahead of the others'.
        static LEAD: Cell<Duration> = const { Cell::new(Duration::ZERO) };
    }

    /// The OS clock as a thread would read it through the TSC on such a machine.
    fn skewed() -> Duration {
        os_elapsed() + LEAD.with(Cell::get)
    }

    /// Governor's clock interface over the skewed source, without the clamp.
    #[derive(Clone)]
    struct Raw;
    impl Clock for Raw {
        type Instant = Duration;
        fn now(&self) -> Duration {
            skewed()
        }
    }

    /// Limits far above the load: what the benchmarks configure.
    fn huge() -> RateLimitSettings {
        RateLimitSettings {
            ipv6_prefix: 64,
            per_second: 100_000_000,
            burst: 100_000_000,
            auth_per_minute: 100_000_000,
        }
    }

    /// Requests from one client on two threads, one after the other: the first on a core 1.6 s
    /// ahead (the offset between CPUs in kernel bug 202525), the second on a normal one; the
    /// number refused.
    fn refused_across_cores(check: impl Fn() -> bool + Sync) -> usize {
        std::thread::scope(|scope| {
            let ahead = scope
                .spawn(|| {
                    LEAD.with(|lead| lead.set(Duration::from_millis(1600)));
                    (0..2_000).filter(|_| !check()).count()
                })
                .join()
                .unwrap();
            let normal = scope.spawn(|| (0..2_000).filter(|_| !check()).count()).join().unwrap();
            ahead + normal
        })
    }

    #[test]
    fn a_core_whose_clock_runs_ahead_causes_no_false_429() {
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let settings = huge();

        // The failure, reproduced: a limiter that trusts each thread's reading refuses.
        let quota = Quota::with_period(Duration::from_secs(1) / settings.per_second)
            .unwrap()
            .allow_burst(std::num::NonZeroU32::new(settings.burst).unwrap());
        let raw: RateLimiter<IpAddr, DefaultKeyedStateStore<IpAddr>, Raw, NoOpMiddleware<Duration>> =
            RateLimiter::new(quota, DefaultKeyedStateStore::default(), Raw);
        let refused = refused_across_cores(|| raw.check_key(&ip).is_ok());
        assert!(refused > 0, "the skewed clock must reproduce the false 429s");

        // The service's limiters on the same source refuse nothing.
        let limiters = Limiters::with_clock(&settings, Arc::new(Metrics::new()), Steady::new(skewed));
        assert_eq!(refused_across_cores(|| limiters.general.check(ip).is_ok()), 0);
        assert_eq!(refused_across_cores(|| limiters.auth.check(ip).is_ok()), 0);
    }

    #[test]
    fn steady_time_never_goes_back() {
        let clock = Steady::new(skewed);
        LEAD.with(|lead| lead.set(Duration::from_secs(2)));
        let ahead = clock.now();
        LEAD.with(|lead| lead.set(Duration::ZERO));
        assert!(clock.now() >= ahead);
    }

    #[test]
    fn refuses_over_the_limit_and_says_how_long_to_wait() {
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let settings = RateLimitSettings {
            ipv6_prefix: 64,
            per_second: 1,
            burst: 2,
            auth_per_minute: 1,
        };
        let limiters = Limiters::new(&settings, Arc::new(Metrics::new()));
        assert!(limiters.general.check(ip).is_ok());
        assert!(limiters.general.check(ip).is_ok());
        assert_eq!(limiters.general.check(ip), Err(1));
        assert!(limiters.auth.check(ip).is_ok());
        let wait = limiters.auth.check(ip).unwrap_err();
        assert!((59..=60).contains(&wait), "{wait}");
        // Another client is not affected.
        assert!(limiters.general.check("192.0.2.8".parse().unwrap()).is_ok());
    }
}
