//! The HTTP routes, one file per resource, each with its own `configure`; and the small
//! resource builder that answers a wrong method with 405 + `Allow` in the error envelope.

pub mod activity;
pub mod admin_tables;
pub mod analytics;
pub mod auth;
pub mod batch;
pub mod bootstrap;
pub mod collections;
pub mod comments;
pub mod health;
pub mod history;
pub mod openapi;
pub mod openapi_responses;
pub mod query;
pub mod realtime;
pub mod records;
pub mod request_docs;
pub mod scalar;
pub mod schema;
pub mod sonic;
pub mod tables;
pub mod transfer;
pub mod trash;
pub mod views;
pub mod webhooks;

use actix_web::dev::{AppService, HttpServiceFactory};
use actix_web::http::header;
use actix_web::{web, FromRequest, Handler, HttpResponse, Responder, ResponseError};

use crate::error::{ApiError, ErrorCode};

/// Mounts every route.
pub fn configure(config: &mut web::ServiceConfig) {
    // (The analytics collect path is mounted by `create_app`, outside the shared middleware.)
    analytics::configure(config);
    health::configure(config);
    auth::configure(config);
    bootstrap::configure(config);
    tables::configure(config);
    views::configure(config);
    // Before records: `/records/batch` and `/records/upsert` would otherwise be taken as ids.
    batch::configure(config);
    records::configure(config);
    transfer::configure(config);
    trash::configure(config);
    history::configure(config);
    comments::configure(config);
    activity::configure(config);
    query::configure(config);
    schema::configure(config);
    admin_tables::configure(config);
    openapi::configure(config);
    // The compatibility dialects (SPEC §10), realtime and webhooks (§11), the explorer (§12).
    collections::configure(config);
    sonic::configure(config);
    realtime::configure(config);
    webhooks::configure(config);
    scalar::configure(config);
}

/// The 404 for any path no route serves.
pub async fn unknown_route() -> HttpResponse {
    ApiError::not_found("Route not found").error_response()
}

/// A path with its methods; any other method gets 405 with `Allow`.
pub struct Resource {
    path: String,
    resource: actix_web::Resource,
    methods: Vec<&'static str>,
}

/// Starts a resource at `path`.
pub fn resource(path: &str) -> Resource {
    Resource {
        path: path.to_owned(),
        resource: web::resource(path),
        methods: Vec::new(),
    }
}

thread_local! {
    /// Set only while [`mounted_routes`] runs `configure`: collects every (method, path).
    static ROUTE_COLLECTOR: std::cell::RefCell<Option<Vec<(&'static str, String)>>> =
        const { std::cell::RefCell::new(None) };
}

fn note_route(method: &'static str, path: &str) {
    ROUTE_COLLECTOR.with(|collector| {
        if let Some(routes) = collector.borrow_mut().as_mut() {
            routes.push((method, path.to_owned()));
        }
    });
}

/// Every (method, path) that [`configure`] mounts, for the OpenAPI coverage check.
pub fn mounted_routes() -> Vec<(&'static str, String)> {
    ROUTE_COLLECTOR.with(|collector| *collector.borrow_mut() = Some(Vec::new()));
    // `App::configure` runs the closure at once; the app itself is never started.
    let _app = actix_web::App::new()
        .configure(|config| analytics::configure_collect(config, false))
        .configure(configure);
    ROUTE_COLLECTOR.with(|collector| collector.borrow_mut().take().unwrap_or_default())
}

impl Resource {
    /// Serves the path only when `guard` passes; otherwise the path does not exist (404 for
    /// every method, as a switched-off surface must be).
    pub fn guard(mut self, guard: impl actix_web::guard::Guard + 'static) -> Self {
        self.resource = self.resource.guard(guard);
        self
    }
}

macro_rules! method_builders {
    ($($name:ident => $route:ident, $method:literal;)*) => {
        impl Resource {
            $(
                pub fn $name<F, Args>(mut self, handler: F) -> Self
                where
                    F: Handler<Args>,
                    Args: FromRequest + 'static,
                    F::Output: Responder + 'static,
                {
                    self.resource = self.resource.route(web::$route().to(handler));
                    self.methods.push($method);
                    note_route($method, &self.path);
                    self
                }
            )*
        }
    };
}

method_builders! {
    get => get, "GET";
    post => post, "POST";
    put => put, "PUT";
    patch => patch, "PATCH";
    delete => delete, "DELETE";
}

impl HttpServiceFactory for Resource {
    fn register(self, config: &mut AppService) {
        let allow = self.methods.join(", ");
        self.resource
            .default_service(web::to(move || {
                let allow = allow.clone();
                async move { method_not_allowed(allow) }
            }))
            .register(config)
    }
}

/// The 405 of a resource for a method it does not serve, with `Allow`.
pub fn method_not_allowed(allow: impl Into<String>) -> HttpResponse {
    ApiError::new(ErrorCode::ValidationError, "Method not allowed")
        .with_header(header::ALLOW, allow)
        .error_response_with_status(actix_web::http::StatusCode::METHOD_NOT_ALLOWED)
}
