//! The one error type at the HTTP edge and the canonical envelope of SPEC §2.1.
//!
//! Every 4xx/5xx leaves through [`ApiError`]: one table maps each code to its status, 500 bodies
//! carry only the request id (the cause goes to the log), and a middleware turns actix's own
//! plain-text errors (payload limits, bad paths) into the same envelope.

use actix_web::body::{BoxBody, EitherBody, MessageBody};
use actix_web::dev::ServiceResponse;
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use serde_json::json;
use tabula_actors::{DomainError, FieldError};

use crate::telemetry::current_request_id;

/// The stable error codes of the envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    Unauthorized,
    Forbidden,
    NotFound,
    ValidationError,
    Conflict,
    PayloadTooLarge,
    RateLimited,
    InternalError,
    ServiceUnavailable,
}

impl ErrorCode {
    /// The one table from code to HTTP status.
    pub fn status(self) -> StatusCode {
        match self {
            ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorCode::Forbidden => StatusCode::FORBIDDEN,
            ErrorCode::NotFound => StatusCode::NOT_FOUND,
            ErrorCode::ValidationError => StatusCode::BAD_REQUEST,
            ErrorCode::Conflict => StatusCode::CONFLICT,
            ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::InternalError => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::ServiceUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The code for a status produced outside our handlers (actix's own errors).
    fn for_status(status: StatusCode) -> ErrorCode {
        match status.as_u16() {
            401 => ErrorCode::Unauthorized,
            403 => ErrorCode::Forbidden,
            404 => ErrorCode::NotFound,
            409 => ErrorCode::Conflict,
            413 => ErrorCode::PayloadTooLarge,
            429 => ErrorCode::RateLimited,
            503 => ErrorCode::ServiceUnavailable,
            500..=599 => ErrorCode::InternalError,
            _ => ErrorCode::ValidationError,
        }
    }
}

/// An error on its way to becoming an envelope.
#[derive(Debug)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    pub errors: Vec<FieldError>,
    /// Boxed: rare, and it keeps `ApiError` (every handler's `Err`) small.
    pub details: Option<Box<serde_json::Value>>,
    /// Extra response headers (`Allow`, `Retry-After`).
    pub headers: Vec<(header::HeaderName, String)>,
    /// The internal cause, logged and never sent.
    pub cause: Option<String>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
            errors: Vec::new(),
            details: None,
            headers: Vec::new(),
            cause: None,
        }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError::new(ErrorCode::NotFound, message)
    }

    /// A 400 naming one offending input.
    pub fn validation(field: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        ApiError {
            errors: vec![FieldError::new(field, message.clone())],
            ..ApiError::new(ErrorCode::ValidationError, message)
        }
    }

    /// A 400 with one `errors[]` item per offending field.
    pub fn fields(errors: Vec<FieldError>) -> Self {
        ApiError {
            errors,
            ..ApiError::new(
                ErrorCode::ValidationError,
                "One or more fields failed validation",
            )
        }
    }

    /// A 500 whose cause is logged, never sent.
    pub fn internal(cause: impl Into<String>) -> Self {
        ApiError {
            cause: Some(cause.into()),
            ..ApiError::new(ErrorCode::InternalError, "Internal server error")
        }
    }

    /// The 400 of a query that used up its time budget (`limits.query_timeout_ms`,
    /// `limits.sql_timeout_ms`): `errors[{field}]` names what to narrow, `details.timeoutMs` the
    /// limit. A 400 rather than a 503: the same query takes as long the next time, so retrying
    /// it would only spend the time again.
    pub fn query_timed_out(field: &str, limit_ms: u64, advice: &str) -> Self {
        ApiError::validation(
            field,
            format!("The query did not finish within {limit_ms} ms; {advice}"),
        )
        .with_details(json!({ "timeoutMs": limit_ms }))
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        ApiError::new(ErrorCode::ServiceUnavailable, message)
    }

    pub fn with_header(mut self, name: header::HeaderName, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.details = Some(Box::new(details));
        self
    }

    /// The envelope body.
    pub(crate) fn body(&self) -> serde_json::Value {
        let mut body = json!({
            "success": false,
            "message": self.message,
            "code": self.code,
        });
        if !self.errors.is_empty() {
            body["errors"] = self
                .errors
                .iter()
                .map(|error| match error.row {
                    None => json!({"field": error.field, "message": error.message}),
                    Some(row) => {
                        json!({"row": row, "field": error.field, "message": error.message})
                    }
                })
                .collect();
        }
        let mut details = self.details.as_deref().cloned();
        if self.code == ErrorCode::InternalError {
            let request_id = current_request_id().unwrap_or_default();
            tracing::error!(
                request_id = %request_id,
                cause = self.cause.as_deref().unwrap_or("unknown"),
                "internal error"
            );
            let mut object = match details.take() {
                Some(serde_json::Value::Object(object)) => object,
                _ => serde_json::Map::new(),
            };
            object.insert("requestId".into(), json!(request_id));
            details = Some(serde_json::Value::Object(object));
        }
        if let Some(details) = details {
            body["details"] = details;
        }
        body
    }
}

impl ApiError {
    /// The envelope with a status other than the code's own (405 for a wrong method).
    pub fn error_response_with_status(&self, status: StatusCode) -> HttpResponse<BoxBody> {
        let mut response = self.error_response();
        *response.status_mut() = status;
        response
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "{:?}: {}", self.code, self.message)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.code.status()
    }

    fn error_response(&self) -> HttpResponse<BoxBody> {
        let mut response = HttpResponse::build(self.status_code());
        for (name, value) in &self.headers {
            response.insert_header((name.clone(), value.clone()));
        }
        response.json(self.body())
    }
}

impl From<DomainError> for ApiError {
    fn from(error: DomainError) -> Self {
        match error {
            DomainError::NotFound(message) => ApiError::not_found(message),
            DomainError::Validation(errors) => ApiError::fields(errors),
            DomainError::BadRequest { message, errors } => ApiError {
                errors,
                ..ApiError::new(ErrorCode::ValidationError, message)
            },
            DomainError::Conflict { message, field } => {
                let error = ApiError::new(ErrorCode::Conflict, message);
                match field {
                    Some(field) => error.with_details(json!({ "field": field })),
                    None => error,
                }
            }
            DomainError::Unauthorized(message) => ApiError::new(ErrorCode::Unauthorized, message),
            DomainError::Forbidden(message) => ApiError::new(ErrorCode::Forbidden, message),
            DomainError::PayloadTooLarge(message) => {
                ApiError::new(ErrorCode::PayloadTooLarge, message)
            }
            DomainError::Storage(cause) => ApiError::internal(cause.to_string()),
            DomainError::Unavailable(message) => {
                ApiError::unavailable(message).with_header(header::RETRY_AFTER, "1")
            }
            DomainError::QueryTimedOut { limit_ms } => ApiError::query_timed_out(
                "query",
                limit_ms,
                "narrow it (filter on an indexed field, use shorter patterns, ask for a smaller \
                 page) and try again",
            ),
        }
    }
}

impl From<actix::MailboxError> for ApiError {
    fn from(error: actix::MailboxError) -> Self {
        tracing::warn!(%error, "actor mailbox unavailable");
        ApiError::unavailable("The service is temporarily unavailable; retry the request")
            .with_header(header::RETRY_AFTER, "1")
    }
}

/// Rewrites an error response that is not already our JSON envelope (actix's own payload,
/// path and query errors) into the envelope, keeping its status and headers
/// ([`crate::telemetry::RequestContext`] applies it to every 4xx and 5xx response).
pub fn envelope_response<B: MessageBody + 'static>(
    response: ServiceResponse<B>,
) -> ServiceResponse<EitherBody<B>> {
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(b"application/json"));
    if is_json {
        return response.map_into_left_body();
    }
    let status = response.status();
    let code = ErrorCode::for_status(status);
    let message = match code {
        ErrorCode::PayloadTooLarge => "Request body is too large".to_owned(),
        ErrorCode::NotFound => "Not found".to_owned(),
        ErrorCode::InternalError => "Internal server error".to_owned(),
        _ => status
            .canonical_reason()
            .unwrap_or("Invalid request")
            .to_owned(),
    };
    let mut error = ApiError::new(code, message);
    if code == ErrorCode::InternalError {
        error.cause = Some(format!("unhandled {status} from the framework"));
    }
    let (request, old_response) = response.into_parts();
    let mut new_response = error.error_response();
    for (name, value) in old_response.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            new_response
                .headers_mut()
                .insert(name.clone(), value.clone());
        }
    }
    new_response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    ServiceResponse::new(request, new_response).map_into_right_body()
}

/// Shorthand for handler results.
pub type ApiResult<T> = Result<T, ApiError>;
