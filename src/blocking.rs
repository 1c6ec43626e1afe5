//! Work that reads many records — list queries, searches, expansions, SQL — runs on the
//! blocking thread pool, never on the HTTP workers, so that however long one query reads (up to
//! its time budget), the workers go on answering every other request (`/api/health` included).

use actix_web::http::header::ContentType;
use actix_web::{web, HttpResponse};

use crate::error::{ApiError, ApiResult};

/// Runs `work` on the blocking pool and waits for its answer without holding a worker.
pub async fn off_the_workers<T, F>(work: F) -> ApiResult<T>
where
    F: FnOnce() -> ApiResult<T> + Send + 'static,
    T: Send + 'static,
{
    // Logged inside the request's span, like the rest of the request.
    let span = tracing::Span::current();
    web::block(move || {
        let _entered = span.enter();
        work()
    })
    .await
    .map_err(|error| ApiError::internal(error.to_string()))?
}

/// A JSON body serialised where it was built (on the blocking pool: a page of large records is
/// megabytes of JSON).
pub fn json_bytes(body: &serde_json::Value) -> ApiResult<Vec<u8>> {
    serde_json::to_vec(body).map_err(|error| ApiError::internal(error.to_string()))
}

/// A 200 with a JSON body already serialised by [`json_bytes`].
pub fn json_response(bytes: Vec<u8>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(ContentType::json())
        .body(bytes)
}
