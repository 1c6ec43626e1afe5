//! Analytics over HTTP (SPEC §7): `POST /api/analytics/collect` (CORS, no cookie, 204), the five
//! reports, and the tracker script. Handlers parse, hand one unit of work to the aggregator
//! (the collect queue, or a `ReadReport` message) and render the reply.

use std::borrow::Cow;
use std::future::{ready, Future, Ready};
use std::net::IpAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use actix_cors::Cors;
use actix_web::dev::{
    always_ready, AppService, Extensions, HttpServiceFactory, ResourceDef, Service, ServiceFactory,
    ServiceRequest, ServiceResponse,
};
use actix_web::http::header::{self, HeaderMap, HeaderValue};
use actix_web::http::Method;
use actix_web::middleware::{from_fn, Condition};
use actix_web::{guard, web, FromRequest, HttpRequest, HttpResponse};
use pin_project_lite::pin_project;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::json;
use tabula_actors::analytics::report::{self, Report, ReportKind};
use tabula_actors::analytics::{
    Analytics, AnalyticsSettings, CollectInput, CollectOutcome, PathField, ReadReport,
};
use tabula_actors::clock;

use crate::auth::Caller;
use crate::config::Config;
use crate::error::{envelope_response, ApiError, ApiResult};
use crate::rate_limit;
use crate::state::AppState;
use crate::telemetry::{
    in_span, request_id_of, request_span, with_request_id, RequestContext, REQUEST_ID_HEADER,
};

/// The collect endpoint (mounted by [`configure_collect`], outside the shared middleware).
pub const COLLECT_PATH: &str = "/api/analytics/collect";

/// Collect bodies are a few hundred bytes; anything over this is refused with 413.
const COLLECT_BODY_LIMIT: usize = 16 * 1024;

/// The tracker served at `/api/analytics/script.js` (≤ 2048 bytes, checked by a test).
pub const TRACKER_SCRIPT: &str = include_str!("analytics_tracker.js");

/// The collect endpoint with its own middleware, mounted in front of the shared stack (see
/// `create_app`): the request context (id, span, `x-request-id`) with the error envelope for
/// framework errors, the `analytics_collect` rate limit when `rate_limited`, and CORS — any
/// origin, no credentials (`*`). Nothing else: the path takes no credentials, so the caller is
/// never resolved. Every method but `OPTIONS` is served by [`CollectEndpoint`], which does all
/// of that in one service; `OPTIONS` (the CORS preflight) goes through `actix-cors`.
pub fn configure_collect(config: &mut web::ServiceConfig, rate_limited: bool) {
    config.service(CollectEndpoint::new(rate_limited));
    let cors = Cors::default()
        .allow_any_origin()
        .send_wildcard()
        .allowed_methods(["POST"])
        .allow_any_header()
        .max_age(86_400);
    // A scope that claims only the collect path, so its middleware wraps nothing else.
    config.service(
        web::scope("")
            .guard(guard::fn_guard(|context| {
                context.head().uri.path() == COLLECT_PATH
            }))
            .app_data(web::PayloadConfig::new(COLLECT_BODY_LIMIT))
            .wrap(cors)
            .wrap(Condition::new(rate_limited, from_fn(rate_limit::enforce)))
            .wrap(RequestContext)
            .service(super::resource(COLLECT_PATH).post(collect_page_view)),
    );
}

/// `POST /api/analytics/collect` (every method but `OPTIONS`) as one hand-written service —
/// the hottest route, at the HTTP ceiling. It does what the route's middleware stack and
/// resource did, in the same order, in one future: the request id, span and task-local id;
/// the `analytics_collect` rate limit (when set); 405 with `Allow: POST` for another method;
/// the body (16 KiB limit, as `web::Bytes` reads it); [`collect_response`]; the CORS headers
/// of an actual request (not on a 429, which the limiter answers before CORS); the envelope
/// for a framework error; `x-request-id`.
struct CollectEndpoint {
    rate_limited: bool,
    /// The body limit, where `web::Bytes` looks for it (as a scope's `app_data` would be).
    data: Rc<Extensions>,
}

impl CollectEndpoint {
    fn new(rate_limited: bool) -> Self {
        let mut data = Extensions::new();
        data.insert(web::PayloadConfig::new(COLLECT_BODY_LIMIT));
        CollectEndpoint {
            rate_limited,
            data: Rc::new(data),
        }
    }
}

impl HttpServiceFactory for CollectEndpoint {
    fn register(self, config: &mut AppService) {
        // The path as sent, not only as the router reads it (percent-decoded), as before.
        let not_options: Box<dyn guard::Guard> = Box::new(guard::fn_guard(|context| {
            let head = context.head();
            head.method != Method::OPTIONS && head.uri.path() == COLLECT_PATH
        }));
        config.register_service(
            ResourceDef::new(COLLECT_PATH),
            Some(vec![not_options]),
            self,
            None,
        );
    }
}

impl ServiceFactory<ServiceRequest> for CollectEndpoint {
    type Response = ServiceResponse;
    type Error = actix_web::Error;
    type Config = ();
    type Service = CollectService;
    type InitError = ();
    type Future = Ready<Result<CollectService, ()>>;

    fn new_service(&self, _: ()) -> Self::Future {
        ready(Ok(CollectService {
            rate_limited: self.rate_limited,
            data: Rc::clone(&self.data),
        }))
    }
}

/// The service of [`CollectEndpoint`] (one per worker).
struct CollectService {
    rate_limited: bool,
    data: Rc<Extensions>,
}

impl Service<ServiceRequest> for CollectService {
    type Response = ServiceResponse;
    type Error = actix_web::Error;
    type Future = CollectFuture;

    always_ready!();

    fn call(&self, mut request: ServiceRequest) -> Self::Future {
        request.add_data_container(Rc::clone(&self.data));
        let request_id = request_id_of(&request);
        let span = request_span(&request_id, &request);
        let header_value = HeaderValue::from_str(&request_id).ok();
        let with_origin = request.headers().contains_key(header::ORIGIN);
        let refused = if self.rate_limited {
            in_span(&span, || {
                with_request_id(request_id.clone(), || rate_limit::refusal(&request))
            })
        } else {
            None
        };
        let (http_request, mut payload) = request.into_parts();
        let stage = match refused {
            Some(response) => CollectStage::Answered {
                response: Some(response),
                cors: false,
            },
            None if http_request.method() != Method::POST => CollectStage::Answered {
                response: Some(super::method_not_allowed("POST")),
                cors: true,
            },
            None => CollectStage::Body {
                body: web::Bytes::from_request(&http_request, &mut payload),
            },
        };
        CollectFuture {
            stage,
            request: Some(http_request),
            request_id: Some(request_id),
            span,
            header_value,
            with_origin,
        }
    }
}

pin_project! {
    /// Where a collect request is: reading its body, or answered.
    #[project = CollectStageProjection]
    enum CollectStage {
        Body {
            #[pin]
            body: <web::Bytes as FromRequest>::Future,
        },
        Answered {
            response: Option<HttpResponse>,
            cors: bool,
        },
    }
}

pin_project! {
    /// The future of [`CollectService`].
    struct CollectFuture {
        #[pin]
        stage: CollectStage,
        request: Option<HttpRequest>,
        request_id: Option<String>,
        span: tracing::Span,
        header_value: Option<HeaderValue>,
        with_origin: bool,
    }
}

impl Future for CollectFuture {
    type Output = Result<ServiceResponse, actix_web::Error>;

    fn poll(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let (Some(request), Some(request_id)) = (this.request.take(), this.request_id.take())
        else {
            return Poll::Ready(Err(polled_after_completion()));
        };
        let (outcome, cors) = match this.stage.project() {
            CollectStageProjection::Body { body } => match body.poll(context) {
                Poll::Pending => {
                    *this.request = Some(request);
                    *this.request_id = Some(request_id);
                    return Poll::Pending;
                }
                Poll::Ready(body) => (CollectOutcomeOf::Body(body), true),
            },
            CollectStageProjection::Answered { response, cors } => match response.take() {
                Some(response) => (CollectOutcomeOf::Answered(response), *cors),
                None => return Poll::Ready(Err(polled_after_completion())),
            },
        };
        let span = &*this.span;
        let with_origin = *this.with_origin;
        let mut response = with_request_id(request_id, || {
            in_span(span, || {
                let mut response = match outcome {
                    CollectOutcomeOf::Body(Ok(body)) => {
                        match request.app_data::<web::Data<AppState>>() {
                            Some(state) => collect_response(state, &request, &body)
                                .unwrap_or_else(HttpResponse::from_error),
                            None => HttpResponse::from_error(
                                actix_web::error::ErrorInternalServerError(
                                    "the application state is missing",
                                ),
                            ),
                        }
                    }
                    CollectOutcomeOf::Body(Err(error)) => HttpResponse::from_error(error),
                    CollectOutcomeOf::Answered(response) => response,
                };
                if cors {
                    add_cors_headers(response.headers_mut(), with_origin);
                }
                let status = response.status();
                let served = ServiceResponse::new(request, response);
                let served = if status.is_client_error() || status.is_server_error() {
                    envelope_response(served).map_into_boxed_body()
                } else {
                    served
                };
                tracing::debug!(status = status.as_u16(), "served");
                served
            })
        });
        if let Some(value) = this.header_value.take() {
            response.headers_mut().insert(REQUEST_ID_HEADER, value);
        }
        Poll::Ready(Ok(response))
    }
}

/// What a collect request came to: its body read (or not), or an answer already.
enum CollectOutcomeOf {
    Body(Result<web::Bytes, actix_web::Error>),
    Answered(HttpResponse),
}

/// A future polled again after it was ready: the caller broke the contract.
fn polled_after_completion() -> actix_web::Error {
    actix_web::error::ErrorInternalServerError("collect request polled after completion")
}

/// What `actix-cors` lists in `Vary` (without its private-network draft feature).
const CORS_VARY: &str = "Origin, Access-Control-Request-Method, Access-Control-Request-Headers";

/// The response headers of an actual request (any origin, wildcard, no credentials, no exposed
/// headers), as `actix-cors` writes them.
fn add_cors_headers(headers: &mut HeaderMap, with_origin: bool) {
    if with_origin {
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        );
    }
    let vary = match headers.get(header::VARY) {
        Some(existing) => {
            let mut value = existing.as_bytes().to_vec();
            value.extend_from_slice(b", ");
            value.extend_from_slice(CORS_VARY.as_bytes());
            HeaderValue::from_bytes(&value).unwrap_or(HeaderValue::from_static(CORS_VARY))
        }
        None => HeaderValue::from_static(CORS_VARY),
    };
    headers.insert(header::VARY, vary);
}

/// The reports and the tracker script (the collect endpoint: [`configure_collect`]).
pub fn configure(config: &mut web::ServiceConfig) {
    config.service(super::resource("/api/analytics/script.js").get(get_tracker_script));
    config.service(super::resource("/api/analytics/overview").get(get_overview));
    config.service(super::resource("/api/analytics/pages").get(get_pages));
    config.service(super::resource("/api/analytics/referrers").get(get_referrers));
    config.service(super::resource("/api/analytics/devices").get(get_devices));
    config.service(super::resource("/api/analytics/campaigns").get(get_campaigns));
}

/// The aggregator's settings from the configuration.
pub fn settings_from(config: &Config) -> AnalyticsSettings {
    let analytics = &config.analytics;
    AnalyticsSettings {
        app_name: config.app.name.clone(),
        retention_days: analytics.retention_days,
        excluded_paths: analytics.excluded_paths.clone(),
        respect_dnt: analytics.respect_dnt,
        session_timeout_minutes: u64::from(analytics.session_timeout_minutes),
        flush_interval_ms: analytics.flush_interval_ms,
        queue_capacity: analytics.queue_capacity,
        cache_bytes: analytics.cache_mb.saturating_mul(1024 * 1024),
        ..AnalyticsSettings::default()
    }
}

fn analytics(state: &AppState) -> ApiResult<&Analytics> {
    state
        .analytics
        .as_ref()
        .ok_or_else(|| ApiError::not_found("Analytics are disabled"))
}

/// A JSON value that should be a string: the string, or a note that it was something else.
enum JsonText<'a> {
    Text(Cow<'a, str>),
    NotText,
}

impl<'de: 'a, 'a> Deserialize<'de> for JsonText<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor;
        impl<'de> Visitor<'de> for TextVisitor {
            type Value = JsonText<'de>;
            fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
                formatter.write_str("any JSON value")
            }
            fn visit_borrowed_str<E: de::Error>(self, text: &'de str) -> Result<Self::Value, E> {
                Ok(JsonText::Text(Cow::Borrowed(text)))
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
                Ok(JsonText::Text(Cow::Owned(text.to_owned())))
            }
            fn visit_string<E: de::Error>(self, text: String) -> Result<Self::Value, E> {
                Ok(JsonText::Text(Cow::Owned(text)))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(JsonText::NotText)
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Ok(JsonText::NotText)
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Ok(JsonText::NotText)
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok(JsonText::NotText)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(JsonText::NotText)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(JsonText::NotText)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(JsonText::NotText)
            }
        }
        deserializer.deserialize_any(TextVisitor)
    }
}

impl<'a> JsonText<'a> {
    fn text(field: &'a Option<JsonText<'a>>) -> Option<&'a str> {
        match field {
            Some(JsonText::Text(text)) => Some(text.as_ref()),
            _ => None,
        }
    }
}

/// The collect body: `p` required; the rest optional and ignored when not strings.
/// (`t`, `sw`, `sh`, `ux`, `ut` are accepted but not rolled up: no report shows them.)
#[derive(Deserialize)]
struct CollectBody<'a> {
    #[serde(borrow, default)]
    p: Option<JsonText<'a>>,
    #[serde(borrow, default)]
    r: Option<JsonText<'a>>,
    #[serde(borrow, default)]
    us: Option<JsonText<'a>>,
    #[serde(borrow, default)]
    um: Option<JsonText<'a>>,
    #[serde(borrow, default)]
    uc: Option<JsonText<'a>>,
}

/// The client address: the peer, or — when the peer is a trusted proxy — the nearest address
/// in `X-Forwarded-For` that is not itself a trusted proxy.
fn client_ip(request: &HttpRequest, trusted_proxies: &[IpAddr]) -> IpAddr {
    let peer = request
        .peer_addr()
        .map(|address| address.ip())
        .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
    if !trusted_proxies.contains(&peer) {
        return peer;
    }
    let forwarded = request
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|part| part.trim().parse::<IpAddr>().ok())
        .collect::<Vec<_>>();
    forwarded
        .into_iter()
        .rev()
        .find(|address| !trusted_proxies.contains(address))
        .unwrap_or(peer)
}

/// 204 when accepted, excluded or not tracked; 400 on a bad `p`; 503 + Retry-After when the
/// aggregator's queue is full. Never sets a cookie; credentials are not looked at.
#[utoipa::path(post, path = "/api/analytics/collect", tag = "analytics",
    request_body(content = inline(super::request_docs::PageView), description = "`{p, t?, r?, sw?, sh?, us?, um?, uc?, ux?, ut?}` as JSON (sent with any content type: `navigator.sendBeacon` sends `text/plain`)"),
    responses((status = 204, description = "Accepted (or deliberately not counted)"),
              (status = 400, description = "Missing, empty or non-string `p`, or malformed JSON"),
              (status = 503, description = "The aggregator is saturated; retry after `Retry-After`")))]
pub async fn collect_page_view(
    state: web::Data<AppState>,
    request: HttpRequest,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    collect_response(&state, &request, &body)
}

/// The work of [`collect_page_view`] once the body is read.
fn collect_response(
    state: &AppState,
    request: &HttpRequest,
    body: &[u8],
) -> ApiResult<HttpResponse> {
    let analytics = analytics(state)?;
    let parsed: CollectBody<'_> = serde_json::from_slice(body)
        .map_err(|error| ApiError::validation("body", format!("Malformed JSON: {error}")))?;
    let headers = request.headers();
    let input = CollectInput {
        path: match &parsed.p {
            None => PathField::Missing,
            Some(JsonText::NotText) => PathField::NotText,
            Some(JsonText::Text(text)) => PathField::Text(text),
        },
        referrer: JsonText::text(&parsed.r),
        utm_source: JsonText::text(&parsed.us),
        utm_medium: JsonText::text(&parsed.um),
        utm_campaign: JsonText::text(&parsed.uc),
        client_ip: client_ip(request, &state.config.server.trusted_proxies),
        // UTF-8 rather than `to_str`'s visible-ASCII check: the same answer for any ASCII
        // User-Agent, several times cheaper on ~120 bytes, and a UTF-8 one is kept, not dropped.
        user_agent: headers
            .get(header::USER_AGENT)
            .and_then(|value| std::str::from_utf8(value.as_bytes()).ok())
            .unwrap_or(""),
        do_not_track: headers
            .get("dnt")
            .is_some_and(|value| value.as_bytes().trim_ascii() == b"1"),
    };
    match analytics.collect(&input)? {
        CollectOutcome::Counted | CollectOutcome::Ignored => Ok(HttpResponse::NoContent().finish()),
        CollectOutcome::QueueFull => Err(ApiError::unavailable(
            "Analytics ingestion is saturated; retry shortly",
        )
        .with_header(header::RETRY_AFTER, "1")),
    }
}

/// The tracker: posts a page view on load and on every history navigation.
#[utoipa::path(get, path = "/api/analytics/script.js", tag = "analytics",
    responses((status = 200, description = "The tracker script", content_type = "application/javascript")))]
pub async fn get_tracker_script(state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    analytics(&state)?;
    Ok(HttpResponse::Ok()
        .insert_header((
            header::CONTENT_TYPE,
            "application/javascript; charset=utf-8",
        ))
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .body(TRACKER_SCRIPT))
}

/// A report's time buckets, as the OpenAPI document describes `granularity` (the handler
/// reads the text itself, so that a wrong value is reported with the others).
#[derive(utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)]
enum Granularity {
    Hour,
    Day,
    Week,
    Month,
}

/// `from`, `to` (required), `granularity`, `limit` of every report. Every member is optional
/// here so that the handler reports every missing or wrong one together.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReportQuery {
    /// Start: RFC 3339 or `YYYY-MM-DD` (the hour holding it is included).
    #[param(required = true, value_type = String)]
    from: Option<String>,
    /// End: RFC 3339 (exclusive, to the hour) or `YYYY-MM-DD` (that whole day included).
    #[param(required = true, value_type = String)]
    to: Option<String>,
    /// `hour`, `day` (default), `week` (ISO, Monday) or `month`.
    #[param(inline, value_type = Option<Granularity>)]
    granularity: Option<String>,
    /// Rows per list, 1–1000, default 10.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    limit: Option<String>,
}

async fn read_report(
    state: &AppState,
    caller: &Caller,
    query: &ReportQuery,
    kind: ReportKind,
) -> ApiResult<Report> {
    caller.require_analytics_reader()?;
    let analytics = analytics(state)?;
    let params = report::parse_params(
        query.from.as_deref(),
        query.to.as_deref(),
        query.granularity.as_deref(),
        query.limit.as_deref(),
    )?;
    Ok(analytics.addr().send(ReadReport { kind, params }).await??)
}

fn render(report: Report) -> serde_json::Value {
    match report {
        Report::Overview(overview) => json!({
            "summary": {
                "pageViews": overview.page_views,
                "uniqueVisitors": overview.unique_visitors,
                "sessions": overview.sessions,
                "bounceRate": overview.bounce_rate,
                "avgSessionSeconds": overview.avg_session_seconds,
            },
            "timeSeries": overview.time_series.iter().map(|period| json!({
                "period": clock::format_ms(period.start_ms),
                "pageViews": period.page_views,
                "uniqueVisitors": period.unique_visitors,
                "sessions": period.sessions,
            })).collect::<Vec<_>>(),
        }),
        Report::Pages(ranking) => json!({
            "pages": ranking.rows.iter().map(|row| json!({
                "path": row.name,
                "pageViews": row.page_views,
                "uniqueVisitors": row.unique_visitors,
            })).collect::<Vec<_>>(),
            "total": ranking.total,
        }),
        Report::Referrers(ranking) => json!({
            "referrers": ranking.rows.iter().map(|row| json!({
                "domain": row.name,
                "pageViews": row.page_views,
                "uniqueVisitors": row.unique_visitors,
            })).collect::<Vec<_>>(),
            "total": ranking.total,
        }),
        Report::Devices(devices) => {
            let shares = |rows: &[report::ShareRow]| {
                rows.iter()
                    .map(|row| json!({"name": row.name, "count": row.count, "percentage": row.percentage}))
                    .collect::<Vec<_>>()
            };
            json!({
                "deviceTypes": shares(&devices.device_types),
                "browsers": shares(&devices.browsers),
                "operatingSystems": shares(&devices.operating_systems),
            })
        }
        Report::Campaigns(ranking) => json!({
            "campaigns": ranking.rows.iter().map(|row| json!({
                "source": row.source,
                "medium": row.medium,
                "campaign": row.campaign,
                "pageViews": row.page_views,
                "uniqueVisitors": row.unique_visitors,
            })).collect::<Vec<_>>(),
            "total": ranking.total,
        }),
    }
}

/// Renders a computed report as its JSON body (also used by the volume bench).
pub fn render_report(report: Report) -> serde_json::Value {
    render(report)
}

/// `{summary:{pageViews,uniqueVisitors,sessions,bounceRate,avgSessionSeconds}, timeSeries:[…]}`.
#[utoipa::path(get, path = "/api/analytics/overview", tag = "analytics", params(ReportQuery),
    responses((status = 200, description = "Totals and a time series (ascending, empty periods as 0)"),
              (status = 400, description = "Missing or invalid parameters, one `errors` item each")))]
pub async fn get_overview(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<ReportQuery>,
) -> ApiResult<HttpResponse> {
    let report = read_report(&state, &caller, &query, ReportKind::Overview).await?;
    Ok(HttpResponse::Ok().json(render(report)))
}

/// `{pages:[{path,pageViews,uniqueVisitors}], total}` by views, descending.
#[utoipa::path(get, path = "/api/analytics/pages", tag = "analytics", params(ReportQuery),
    responses((status = 200, description = "Top pages"),
              (status = 400, description = "Missing or invalid parameters")))]
pub async fn get_pages(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<ReportQuery>,
) -> ApiResult<HttpResponse> {
    let report = read_report(&state, &caller, &query, ReportKind::Pages).await?;
    Ok(HttpResponse::Ok().json(render(report)))
}

/// `{referrers:[{domain|null,pageViews,uniqueVisitors}], total}`; `null` is direct traffic.
#[utoipa::path(get, path = "/api/analytics/referrers", tag = "analytics", params(ReportQuery),
    responses((status = 200, description = "Top referrer domains"),
              (status = 400, description = "Missing or invalid parameters")))]
pub async fn get_referrers(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<ReportQuery>,
) -> ApiResult<HttpResponse> {
    let report = read_report(&state, &caller, &query, ReportKind::Referrers).await?;
    Ok(HttpResponse::Ok().json(render(report)))
}

/// `{deviceTypes,browsers,operatingSystems}`, each `[{name,count,percentage}]`.
#[utoipa::path(get, path = "/api/analytics/devices", tag = "analytics", params(ReportQuery),
    responses((status = 200, description = "Page views by device type, browser and OS"),
              (status = 400, description = "Missing or invalid parameters")))]
pub async fn get_devices(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<ReportQuery>,
) -> ApiResult<HttpResponse> {
    let report = read_report(&state, &caller, &query, ReportKind::Devices).await?;
    Ok(HttpResponse::Ok().json(render(report)))
}

/// `{campaigns:[{source,medium,campaign,pageViews,uniqueVisitors}], total}`.
#[utoipa::path(get, path = "/api/analytics/campaigns", tag = "analytics", params(ReportQuery),
    responses((status = 200, description = "Top UTM campaigns"),
              (status = 400, description = "Missing or invalid parameters")))]
pub async fn get_campaigns(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<ReportQuery>,
) -> ApiResult<HttpResponse> {
    let report = read_report(&state, &caller, &query, ReportKind::Campaigns).await?;
    Ok(HttpResponse::Ok().json(render(report)))
}
