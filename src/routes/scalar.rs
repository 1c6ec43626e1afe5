//! `GET /api/scalar` (SPEC §12): an interactive API explorer served from the binary (no CDN):
//! one self-contained page that reads `/api/openapi.json`, lists every operation and sends
//! requests from a small form.

use actix_web::http::header;
use actix_web::{web, HttpResponse};

/// The explorer page (HTML, CSS and plain JavaScript in one file).
const EXPLORER_HTML: &str = include_str!("scalar.html");

pub fn configure(config: &mut web::ServiceConfig) {
    config.service(super::resource("/api/scalar").get(get_explorer));
}

/// The API explorer page.
#[utoipa::path(get, path = "/api/scalar", tag = "meta",
    responses((status = 200, description = "The explorer page", content_type = "text/html")))]
pub async fn get_explorer() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'",
        ))
        .body(EXPLORER_HTML)
}
