//! The test harness: boots the real app (same `create_app` as the binary) on a temporary data
//! directory, and helpers to send requests and read envelopes.
//!
//! Auth is on, as in production. `service!(app)` signs every request that carries no
//! `Authorization` header in as the harness's admin (so tests whose subject is not access
//! control need not care); `anonymous_service!(app)` adds nothing, and [`TestApp::token_for`]
//! makes an account of any role to act as. Rate limits are off unless a test sets them.

#![allow(dead_code)]

use actix_http::Request;
use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::{Method, StatusCode};
use actix_web::{test, web};
use serde_json::Value as Json;
use tabula::config::{Config, ConfigSource, RateLimitSettings};
use tabula::state::AppState;
use tabula_storage::Schema;
use tempfile::TempDir;

/// A running app state on its own data directory.
pub struct TestApp {
    pub state: web::Data<AppState>,
    pub directory: TempDir,
    /// Session tokens of the accounts made by [`TestApp::token_for`], by email.
    tokens: std::sync::Mutex<std::collections::HashMap<String, String>>,
}

/// The password of every account the harness makes.
pub const TEST_PASSWORD: &str = "correct horse battery";
/// The email of the harness's admin.
pub const ADMIN_EMAIL: &str = "admin@harness.test";

/// Every rate limit off (tests whose subject is not rate limiting send many requests).
pub fn without_rate_limits(config: &mut Config) {
    config.rate_limit = RateLimitSettings {
        sign_in: 0,
        sign_up: 0,
        password: 0,
        tables_get: 0,
        tables_post: 0,
        activity_get: 0,
        admin_per_second: 0,
        analytics_collect: 0,
        ..RateLimitSettings::default()
    };
}

/// The configuration of the built-in demo app, pointed at `directory`.
pub fn demo_config(directory: &std::path::Path) -> Config {
    let options = tabula::config::LoadOptions {
        data_dir: Some(directory.to_path_buf()),
        ..Default::default()
    };
    let loaded = tabula::config::load_with_env(&options, &|_| None).expect("the demo config loads");
    assert!(matches!(
        loaded.source,
        ConfigSource::BuiltInDemo | ConfigSource::File(_)
    ));
    let mut config = loaded.config;
    without_rate_limits(&mut config);
    config
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
    let mut config = tabula::config::load_with_env(&options, &|_| None)
        .expect("the test config loads")
        .config;
    without_rate_limits(&mut config);
    config
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
            tokens: Default::default(),
        }
    }

    /// A session token of an account with `email` and `role`, made (and signed in) on first
    /// use, through the accounts themselves rather than HTTP.
    pub async fn token_for(&self, email: &str, role: &str) -> String {
        if let Some(token) = self.tokens.lock().expect("the token map").get(email) {
            return token.clone();
        }
        let accounts = &self.state.accounts;
        let account = tabula_actors::accounts::NewAccount {
            email: email.to_owned(),
            password: TEST_PASSWORD.to_owned(),
            name: email.split('@').next().unwrap_or_default().to_owned(),
            role: Some(role.to_owned()),
        };
        match accounts.create_user(account).await {
            Ok(_) | Err(tabula_actors::DomainError::Conflict { .. }) => {}
            Err(error) => panic!("cannot make the account {email}: {error}"),
        }
        let token = accounts
            .sign_in(email, TEST_PASSWORD)
            .await
            .expect("the harness account signs in")
            .session
            .token;
        self.tokens
            .lock()
            .expect("the token map")
            .insert(email.to_owned(), token.clone());
        token
    }

    /// A session token of the harness's admin.
    pub async fn admin_token(&self) -> String {
        self.token_for(ADMIN_EMAIL, "admin").await
    }

    /// The id of the account with `email` (made by [`TestApp::token_for`]).
    pub fn user_id(&self, email: &str) -> String {
        self.state
            .accounts
            .list_users()
            .expect("users")
            .into_iter()
            .find(|user| user.email == email)
            .map(|user| user.id)
            .expect("the account exists")
    }

    /// Closes the store and starts a new app state on the same directory (a restart). Async
    /// because actors of the old state finish stopping on this thread's executor before sled
    /// releases the directory lock.
    pub async fn restart(self) -> TestApp {
        let config = (*self.state.config).clone();
        self.restart_with(config).await
    }

    /// [`TestApp::restart`] with another configuration (an edited config file).
    pub async fn restart_with(self, config: Config) -> TestApp {
        self.state.shutdown();
        let directory = self.directory;
        drop(self.state);
        let mut attempts = 0;
        loop {
            actix_web::rt::time::sleep(std::time::Duration::from_millis(50)).await;
            let schema = Schema {
                tables: config.tables.clone(),
            };
            match AppState::start(config.clone(), schema) {
                Ok(state) => {
                    return TestApp {
                        state: web::Data::new(state),
                        directory,
                        tokens: Default::default(),
                    }
                }
                Err(error) if attempts < 100 => {
                    attempts += 1;
                    if attempts % 20 == 0 {
                        eprintln!("restart still waiting: {error}");
                    }
                }
                Err(error) => panic!("the app restarts: {error}"),
            }
        }
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
        assert_eq!(
            self.body["code"],
            Json::String(code.into()),
            "{:?}",
            self.body
        );
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

/// `text` percent-encoded for a query string (everything but unreserved ASCII).
pub fn url_encoded(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(byte).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// Adds `Authorization: Bearer <token>` to a request that has no `Authorization` header.
pub fn authorize_by_default(request: &mut actix_web::dev::ServiceRequest, token: &str) {
    use actix_web::http::header::{HeaderValue, AUTHORIZATION};
    if !request.headers().contains_key(AUTHORIZATION) {
        if let Ok(value) = HeaderValue::from_str(&format!("Bearer {token}")) {
            request.headers_mut().insert(AUTHORIZATION, value);
        }
    }
}

/// Sends a request with `Authorization: Bearer <token>`.
pub async fn send_as<S, B>(
    service: &S,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Json>,
) -> Reply
where
    S: Service<Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let mut request = test::TestRequest::default()
        .method(method)
        .uri(path)
        .insert_header(("Authorization", format!("Bearer {token}")));
    if let Some(body) = body {
        request = request.set_json(body);
    }
    send_request(service, request).await
}

/// Boots `create_app` over a test app, every request signed in as the harness's admin unless
/// it says otherwise: `let service = service!(app);`.
#[macro_export]
macro_rules! service {
    ($app:expr) => {{
        let token = $app.admin_token().await;
        actix_web::test::init_service(tabula::create_app($app.state.clone()).wrap_fn(
            move |mut request, service| {
                $crate::common::authorize_by_default(&mut request, &token);
                actix_web::dev::Service::call(service, request)
            },
        ))
        .await
    }};
}

/// Boots `create_app` over a test app with nothing added to the requests.
#[macro_export]
macro_rules! anonymous_service {
    ($app:expr) => {
        actix_web::test::init_service(tabula::create_app($app.state.clone())).await
    };
}
