//! `GET /api/health`: liveness plus a write probe of the store.

use actix_web::{web, HttpResponse};
use serde_json::json;
use tabula_actors::clock;

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

pub fn configure(config: &mut web::ServiceConfig) {
    config.service(super::resource("/api/health").get(get_health));
}

/// 200 with status, time and version; 503 when the store does not accept writes.
#[utoipa::path(get, path = "/api/health", tag = "health",
    responses((status = 200, description = "The server is up and its store is writable"),
              (status = 503, description = "The store is not writable")))]
pub async fn get_health(state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    let store = state.store.clone();
    let probe = web::block(move || store.check_writable())
        .await
        .map_err(|error| ApiError::internal(error.to_string()))?;
    if let Err(error) = probe {
        tracing::error!(%error, "health probe failed");
        return Err(ApiError::unavailable("The store is not writable"));
    }
    Ok(HttpResponse::Ok().json(json!({
        "status": "ok",
        "timestamp": clock::format_ms(clock::now_ms()),
        "version": env!("CARGO_PKG_VERSION"),
    })))
}
