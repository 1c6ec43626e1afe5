//! Rate limits (SPEC §8): sliding windows per route group, keyed by the account or API key when
//! the caller is authenticated and by client IP otherwise (sign-in and sign-up: always the IP). `X-Forwarded-For` is believed only
//! when the peer is one of `server.trusted_proxies`. Every admitted attempt counts, whatever its
//! outcome; over the limit the answer is 429 RATE_LIMITED with `Retry-After` in whole seconds
//! until a request would be admitted. A limit of 0 is off.
//!
//! Each (group, client) keeps the instants of its admitted requests within the window (at most
//! the limit's count of them) in a `DashMap`; idle entries are swept now and then.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{header, Method};
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage, HttpResponse, ResponseError};
use dashmap::DashMap;

use crate::auth::Caller;
use crate::config::{RateLimitSettings, ServerSettings};
use crate::error::{ApiError, ErrorCode};
use crate::state::AppState;

/// The route groups that have a limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Group {
    SignIn,
    SignUp,
    Password,
    ApiKeys,
    TablesGet,
    TablesWrite,
    ActivityGet,
    Admin,
    AnalyticsCollect,
}

/// Which group a request counts against, if any.
pub fn group_of(method: &Method, path: &str) -> Option<Group> {
    let under = |prefix: &str| {
        path == prefix
            || path
                .strip_prefix(prefix)
                .is_some_and(|rest| rest.starts_with('/'))
    };
    // The compatibility dialects serve the same records, so they share the tables' budgets.
    if under("/api/tables") || under("/api/collections") || under("/v1") {
        return Some(if method == Method::GET || method == Method::HEAD {
            Group::TablesGet
        } else {
            Group::TablesWrite
        });
    }
    if under("/api/admin") {
        return Some(Group::Admin);
    }
    if under("/api/activity") && method == Method::GET {
        return Some(Group::ActivityGet);
    }
    if method != Method::POST {
        return None;
    }
    match path {
        "/api/auth/sign-in/email" => Some(Group::SignIn),
        "/api/auth/sign-up/email" => Some(Group::SignUp),
        "/api/auth/change-password" => Some(Group::Password),
        "/api/auth/api-keys" => Some(Group::ApiKeys),
        "/api/analytics/collect" => Some(Group::AnalyticsCollect),
        _ => None,
    }
}

/// How often (in checks) idle windows are swept away.
const SWEEP_EVERY: u64 = 4096;

/// Every client's recent requests, per group.
pub struct RateLimiter {
    settings: RateLimitSettings,
    trusted_proxies: Vec<IpAddr>,
    windows: DashMap<(Group, String), VecDeque<Instant>>,
    checks: AtomicU64,
}

impl RateLimiter {
    pub fn new(settings: &RateLimitSettings, server: &ServerSettings) -> Self {
        RateLimiter {
            settings: settings.clone(),
            trusted_proxies: server.trusted_proxies.clone(),
            windows: DashMap::new(),
            checks: AtomicU64::new(0),
        }
    }

    /// The limit of a group and its window (0: no limit).
    pub fn limit(&self, group: Group) -> (u32, Duration) {
        let window = Duration::from_secs(self.settings.window_seconds.max(1));
        let settings = &self.settings;
        match group {
            Group::SignIn => (settings.sign_in, window),
            Group::SignUp => (settings.sign_up, window),
            Group::Password => (settings.password, window),
            Group::ApiKeys => (settings.api_keys, window),
            Group::TablesGet => (settings.tables_get, window),
            Group::TablesWrite => (settings.tables_post, window),
            Group::ActivityGet => (settings.activity_get, window),
            Group::Admin => (settings.admin_per_second, Duration::from_secs(1)),
            Group::AnalyticsCollect => (settings.analytics_collect, window),
        }
    }

    /// Admits one request of `client` to `group` at `now`, or answers how many whole seconds
    /// until one would be admitted.
    pub fn admit(&self, group: Group, client: &str, now: Instant) -> Result<(), u64> {
        let (limit, window) = self.limit(group);
        if limit == 0 {
            return Ok(());
        }
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            self.sweep(now);
        }
        let capacity = usize::try_from(limit).unwrap_or(usize::MAX);
        let mut entry = self.windows.entry((group, client.to_owned())).or_default();
        let admitted = entry.value_mut();
        while admitted
            .front()
            .is_some_and(|at| now.saturating_duration_since(*at) >= window)
        {
            admitted.pop_front();
        }
        if admitted.len() < capacity {
            admitted.push_back(now);
            return Ok(());
        }
        let oldest = admitted.front().copied().unwrap_or(now);
        let wait = window.saturating_sub(now.saturating_duration_since(oldest));
        let mut seconds = wait.as_secs();
        if wait.subsec_nanos() > 0 || seconds == 0 {
            seconds += 1;
        }
        Err(seconds)
    }

    /// Drops the windows with nothing left in them.
    fn sweep(&self, now: Instant) {
        let longest = Duration::from_secs(self.settings.window_seconds.max(1));
        self.windows.retain(|_, admitted| {
            admitted
                .back()
                .is_some_and(|at| now.saturating_duration_since(*at) < longest)
        });
    }

    /// The client's address: the peer, or — only when the peer is a trusted proxy — the last
    /// address of `X-Forwarded-For` that is not itself a trusted proxy.
    pub fn client_ip(&self, peer: Option<IpAddr>, forwarded_for: Option<&str>) -> Option<IpAddr> {
        let peer = peer?;
        if !self.trusted_proxies.contains(&peer) {
            return Some(peer);
        }
        let Some(forwarded_for) = forwarded_for else {
            return Some(peer);
        };
        let mut client = peer;
        for hop in forwarded_for.rsplit(',') {
            let Ok(address) = hop.trim().parse::<IpAddr>() else {
                break;
            };
            client = address;
            if !self.trusted_proxies.contains(&address) {
                break;
            }
        }
        Some(client)
    }
}

/// The key a request is limited under: its account or API key, else its client IP. Sign-in and
/// sign-up are always counted by IP: they are attempts to become someone, and keying them by a
/// credential sent along would let one client multiply its guesses with accounts or keys of its
/// own. Password changes and key creation are counted by account, whichever of its sessions or
/// keys asks: a new key must not buy fresh guesses at the password.
fn client_key(limiter: &RateLimiter, group: Group, request: &ServiceRequest) -> String {
    let by_identity = !matches!(group, Group::SignIn | Group::SignUp);
    let by_account = matches!(group, Group::Password | Group::ApiKeys);
    if let Some(caller) = request.extensions().get::<Caller>().filter(|_| by_identity) {
        if let Some(key) = caller.key.as_deref().filter(|_| !by_account) {
            return format!("key:{}", key.id);
        }
        if let Some(user_id) = caller.user_id() {
            return format!("user:{user_id}");
        }
    }
    let forwarded = request
        .headers()
        .get("x-forwarded-for")
        .and_then(|value| value.to_str().ok());
    let peer = request.peer_addr().map(|address| address.ip());
    match limiter.client_ip(peer, forwarded) {
        Some(address) => format!("ip:{address}"),
        None => "ip:unknown".to_owned(),
    }
}

/// Middleware: counts the request against its group's limit, or answers 429.
pub async fn enforce(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    if let Some(response) = refusal(&request) {
        return Ok(request.into_response(response).map_into_right_body());
    }
    Ok(next.call(request).await?.map_into_left_body())
}

/// What [`enforce`] decides for `request`: the 429 when its group's budget is spent, else
/// `None` (and the request is counted).
pub fn refusal(request: &ServiceRequest) -> Option<HttpResponse> {
    let state = request.app_data::<web::Data<AppState>>()?;
    let group = group_of(request.method(), request.path())?;
    let limiter = &state.rate_limiter;
    if limiter.limit(group).0 == 0 {
        return None;
    }
    let client = client_key(limiter, group, request);
    let retry_after = limiter.admit(group, &client, Instant::now()).err()?;
    Some(
        ApiError::new(ErrorCode::RateLimited, "Too many requests; retry later")
            .with_header(header::RETRY_AFTER, retry_after.to_string())
            .error_response(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(trusted: &[&str]) -> RateLimiter {
        let server = ServerSettings {
            trusted_proxies: trusted
                .iter()
                .map(|ip| ip.parse().expect("an ip"))
                .collect(),
            ..ServerSettings::default()
        };
        RateLimiter::new(&RateLimitSettings::default(), &server)
    }

    #[test]
    fn routes_fall_into_their_groups() {
        assert_eq!(
            group_of(&Method::GET, "/api/tables"),
            Some(Group::TablesGet)
        );
        assert_eq!(
            group_of(&Method::GET, "/api/tables/1/records/2"),
            Some(Group::TablesGet)
        );
        assert_eq!(
            group_of(&Method::PATCH, "/api/tables/t/records/2"),
            Some(Group::TablesWrite)
        );
        assert_eq!(group_of(&Method::GET, "/api/tablesx"), None);
        assert_eq!(
            group_of(&Method::GET, "/api/collections/tasks"),
            Some(Group::TablesGet)
        );
        assert_eq!(
            group_of(&Method::POST, "/api/collections/tasks/batch"),
            Some(Group::TablesWrite)
        );
        assert_eq!(
            group_of(&Method::PUT, "/v1/tasks/1"),
            Some(Group::TablesWrite)
        );
        assert_eq!(group_of(&Method::GET, "/v1x"), None);
        assert_eq!(
            group_of(&Method::POST, "/api/auth/sign-in/email"),
            Some(Group::SignIn)
        );
        assert_eq!(group_of(&Method::GET, "/api/auth/sign-in/email"), None);
        assert_eq!(
            group_of(&Method::POST, "/api/admin/bootstrap/claim"),
            Some(Group::Admin)
        );
        assert_eq!(
            group_of(&Method::GET, "/api/activity/12"),
            Some(Group::ActivityGet)
        );
        assert_eq!(group_of(&Method::GET, "/api/health"), None);
    }

    #[test]
    fn a_sliding_window_admits_the_limit_then_says_when_to_retry() {
        let limiter = limiter(&[]);
        let start = Instant::now();
        for _ in 0..20 {
            assert_eq!(limiter.admit(Group::SignIn, "ip:1.2.3.4", start), Ok(()));
        }
        assert_eq!(limiter.admit(Group::SignIn, "ip:1.2.3.4", start), Err(60));
        let later = start + Duration::from_millis(59_500);
        assert_eq!(limiter.admit(Group::SignIn, "ip:1.2.3.4", later), Err(1));
        assert_eq!(
            limiter.admit(Group::SignIn, "ip:5.6.7.8", later),
            Ok(()),
            "per client"
        );
        assert_eq!(
            limiter.admit(Group::SignIn, "ip:1.2.3.4", start + Duration::from_secs(60)),
            Ok(())
        );
    }

    #[test]
    fn forwarded_for_counts_only_from_trusted_proxies() {
        let limiter = limiter(&["10.0.0.1"]);
        let proxy: IpAddr = "10.0.0.1".parse().expect("ip");
        let stranger: IpAddr = "203.0.113.9".parse().expect("ip");
        assert_eq!(
            limiter.client_ip(Some(stranger), Some("1.1.1.1")),
            Some(stranger),
            "a spoofed header from an untrusted peer is ignored"
        );
        assert_eq!(
            limiter.client_ip(Some(proxy), Some("1.1.1.1, 198.51.100.7")),
            Some("198.51.100.7".parse().expect("ip"))
        );
        assert_eq!(limiter.client_ip(Some(proxy), None), Some(proxy));
    }
}
