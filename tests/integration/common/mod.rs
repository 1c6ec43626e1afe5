//! The test harness: boots the real app (same `create_app` as the binary) on a temporary data
//! directory, and helpers to send requests and read envelopes.

#![allow(dead_code)]

use actix_http::Request;
use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::{Method, StatusCode};
use actix_web::{test, web};
use serde_json::Value as Json;
use tabula::config::{Config, ConfigSource};
use tabula::state::AppState;
use tabula_storage::Schema;
use tempfile::TempDir;

/// A running app state on its own data directory.
pub struct TestApp {
    pub state: web::Data<AppState>,
    pub directory: TempDir,
}

/// The configuration of the built-in demo app, pointed at `directory`.
pub fn demo_config(directory: &std::path::Path) -> Config {
    let options = tabula::config::LoadOptions {
        data_dir: Some(directory.to_path_buf()),
        ..Default::default()
    };
    let loaded = tabula::config::load_with_env(&options, &|_| None).expect("the demo config loads");
    assert!(matches!(loaded.source, ConfigSource::BuiltInDemo | ConfigSource::File(_)));
    loaded.config
}

/// A config from TOML text (server sections and `[[tables]]`), pointed at `directory`.
pub fn config_from_toml(directory: &std::path::Path, text: &str) -> Config {
    let file = directory.join("test-config.toml");
    std::fs::write(&file, text).expect("write the test config");
    let options = tabula::config::LoadOptions {
        config_path: Some(file),
        data_dir: Some(directory.join("data")),
        ..Default::default()
    };
    tabula::config::load_with_env(&options, &|_| None)
        .expect("the test config loads")
        .config
}

impl TestApp {
    /// The demo app (tasks, contacts).
    pub fn demo() -> TestApp {
        let directory = tempfile::tempdir().expect("a temporary directory");
        let config = demo_config(&directory.path().join("data"));
        TestApp::with_config(config, directory)
    }

    /// An app serving the tables of `toml`.
    pub fn from_toml(toml: &str) -> TestApp {
        let directory = tempfile::tempdir().expect("a temporary directory");
        let config = config_from_toml(directory.path(), toml);
        TestApp::with_config(config, directory)
    }

    pub fn with_config(config: Config, directory: TempDir) -> TestApp {
        let schema = Schema {
            tables: config.tables.clone(),
        };
        let state = AppState::start(config, schema).expect("the app starts");
        TestApp {
            state: web::Data::new(state),
            directory,
        }
    }

    /// Closes the store and starts a new app state on the same directory (a restart).
    pub fn restart(self) -> TestApp {
        let config = (*self.state.config).clone();
        self.state.shutdown();
        let directory = self.directory;
        drop(self.state);
        TestApp::with_config(config, directory)
    }
}

/// What a test reads of a response.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: actix_web::http::header::HeaderMap,
    pub body: Json,
    pub raw: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
    }

    /// Asserts the canonical error envelope with this status and code.
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(self.status.as_u16(), status, "status of {:?}", self.body);
        assert_eq!(self.body["success"], Json::Bool(false), "{:?}", self.body);
        assert_eq!(self.body["code"], Json::String(code.into()), "{:?}", self.body);
        assert!(self.body["message"].is_string(), "{:?}", self.body);
    }

    /// The `field` names of the envelope's `errors[]`.
    pub fn error_fields(&self) -> Vec<String> {
        self.body["errors"]
            .as_array()
            .map(|errors| {
                errors
                    .iter()
                    .filter_map(|error| error["field"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Sends one request to an initialised service.
pub async fn send<S, B>(service: &S, method: Method, path: &str, body: Option<Json>) -> Reply
where
    S: Service<Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let mut request = test::TestRequest::default().method(method).uri(path);
    if let Some(body) = body {
        request = request.set_json(body);
    }
    send_request(service, request).await
}

/// Sends a prepared request.
pub async fn send_request<S, B>(service: &S, request: test::TestRequest) -> Reply
where
    S: Service<Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let response = test::call_service(service, request.to_request()).await;
    let status = response.status();
    let headers = response.headers().clone();
    let raw = test::read_body(response).await.to_vec();
    let body = serde_json::from_slice(&raw).unwrap_or(Json::Null);
    Reply {
        status,
        headers,
        body,
        raw,
    }
}

pub async fn get<S, B>(service: &S, path: &str) -> Reply
where
    S: Service<Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    send(service, Method::GET, path, None).await
}

pub async fn post<S, B>(service: &S, path: &str, body: Json) -> Reply
where
    S: Service<Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    send(service, Method::POST, path, Some(body)).await
}

pub async fn patch<S, B>(service: &S, path: &str, body: Json) -> Reply
where
    S: Service<Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    send(service, Method::PATCH, path, Some(body)).await
}

pub async fn delete<S, B>(service: &S, path: &str) -> Reply
where
    S: Service<Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    send(service, Method::DELETE, path, None).await
}

/// Boots `create_app` over a test app: `let service = service!(app);`.
#[macro_export]
macro_rules! service {
    ($app:expr) => {
        actix_web::test::init_service(tabula::create_app($app.state.clone())).await
    };
}
