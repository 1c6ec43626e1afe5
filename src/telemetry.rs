//! Structured logging and the per-request context: every request gets an id (kept from a sane
//! incoming `x-request-id` or freshly made), one tracing span, and the id echoed in the response.

use std::future::{ready, Future, Ready};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{forward_ready, Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::http::header::{HeaderName, HeaderValue};
use pin_project_lite::pin_project;
use tokio::task::futures::TaskLocalFuture;
use tracing::instrument::Instrumented;
use tracing::Instrument;
use tracing_subscriber::EnvFilter;

use crate::error::envelope_response;

tokio::task_local! {
    static REQUEST_ID: String;
}

pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// The id of the request being served on this task, if any.
pub fn current_request_id() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

/// `span.in_scope(serve)`, without entering and leaving a span that records nothing (every
/// request's span when the log level is above `info`).
pub(crate) fn in_span<R>(span: &tracing::Span, serve: impl FnOnce() -> R) -> R {
    if span.is_disabled() {
        serve()
    } else {
        span.in_scope(serve)
    }
}

/// Runs `serve` with `request_id` as the task's request id (for code that is not a future).
pub(crate) fn with_request_id<R>(request_id: String, serve: impl FnOnce() -> R) -> R {
    REQUEST_ID.sync_scope(request_id, serve)
}

/// Installs the global subscriber: `level` is an env-filter directive (`info`, `tabula=debug`),
/// `json` selects one JSON object per line. `TABULA_LOG` has already been folded into `level`.
pub fn init_tracing(level: &str, json: bool) {
    let filter = EnvFilter::try_new(level).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    // A second initialisation (tests booting several apps) is harmless, so its error is ignored.
    let _ = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
}

fn acceptable_incoming_id(value: &HeaderValue) -> Option<String> {
    let text = value.to_str().ok()?;
    let acceptable = !text.is_empty()
        && text.len() <= 64
        && text
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_');
    acceptable.then(|| text.to_owned())
}

pub(crate) fn new_request_id() -> String {
    // 16 lower-case hex digits, written without the formatting machinery (every request).
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut value = rand::random::<u64>();
    let mut text = [0u8; 16];
    for slot in text.iter_mut().rev() {
        *slot = DIGITS[(value & 0xf) as usize];
        value >>= 4;
    }
    // Hex digits are ASCII, so the conversion cannot fail.
    std::str::from_utf8(&text)
        .map(str::to_owned)
        .unwrap_or_default()
}

/// The request's id: a sane incoming `x-request-id`, or a fresh one.
pub(crate) fn request_id_of(request: &ServiceRequest) -> String {
    request
        .headers()
        .get(&REQUEST_ID_HEADER)
        .and_then(acceptable_incoming_id)
        .unwrap_or_else(new_request_id)
}

/// The span every request is served in.
pub(crate) fn request_span(request_id: &str, request: &ServiceRequest) -> tracing::Span {
    tracing::info_span!(
        "request",
        request_id = %request_id,
        method = %request.method(),
        path = %request.path(),
    )
}

/// Middleware of every route: the request id (incoming or fresh) as a task-local, the request's
/// tracing span, the error envelope for any 4xx/5xx that is not one already (actix's own
/// payload, path and query errors), and `x-request-id` on every response — in a future of known
/// type, no boxed future per request.
#[derive(Clone, Copy, Debug, Default)]
pub struct RequestContext;

impl<S, B> Transform<S, ServiceRequest> for RequestContext
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Transform = RequestContextService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(RequestContextService { service }))
    }
}

/// The service of [`RequestContext`].
pub struct RequestContextService<S> {
    service: S,
}

impl<S, B> Service<ServiceRequest> for RequestContextService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Future = RequestContextFuture<S::Future>;

    forward_ready!(service);

    fn call(&self, request: ServiceRequest) -> Self::Future {
        let request_id = request_id_of(&request);
        let span = request_span(&request_id, &request);
        let header_value = HeaderValue::from_str(&request_id).ok();
        let served = self.service.call(request).instrument(span.clone());
        RequestContextFuture {
            served: REQUEST_ID.scope(request_id, served),
            span,
            header_value,
        }
    }
}

pin_project! {
    /// The future of [`RequestContextService`].
    pub struct RequestContextFuture<F> {
        #[pin]
        served: TaskLocalFuture<String, Instrumented<F>>,
        span: tracing::Span,
        header_value: Option<HeaderValue>,
    }
}

impl<F, B> Future for RequestContextFuture<F>
where
    F: Future<Output = Result<ServiceResponse<B>, actix_web::Error>>,
    B: MessageBody + 'static,
{
    type Output = Result<ServiceResponse<EitherBody<B>>, actix_web::Error>;

    fn poll(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let response = ready!(this.served.as_mut().poll(context))?;
        let status = response.status();
        let mut response = if status.is_client_error() || status.is_server_error() {
            // Inside the request's span and id: an internal error's envelope carries the
            // request id.
            let request_id = this.served.take_value().unwrap_or_default();
            REQUEST_ID.sync_scope(request_id, || {
                in_span(this.span, || envelope_response(response))
            })
        } else {
            response.map_into_left_body()
        };
        in_span(this.span, || {
            tracing::debug!(status = response.status().as_u16(), "served")
        });
        if let Some(value) = this.header_value.take() {
            response.headers_mut().insert(REQUEST_ID_HEADER, value);
        }
        Poll::Ready(Ok(response))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_request_ids_are_sixteen_hex_digits_and_acceptable_as_incoming() {
        let first = new_request_id();
        assert_eq!(first.len(), 16);
        assert!(first
            .bytes()
            .all(|byte| byte.is_ascii_hexdigit() && !byte.is_ascii_uppercase()));
        let header = HeaderValue::from_str(&first).expect("a header value");
        assert_eq!(
            acceptable_incoming_id(&header).as_deref(),
            Some(first.as_str())
        );
        assert_ne!(first, new_request_id());
    }
}
