//! Who is calling: the [`identify`] middleware reads the credential of a request once
//! (`Authorization: Bearer <session token | tab_… API key>`, else the `tabula_session` cookie),
//! resolves it through the accounts' caches and leaves a [`Caller`] in the request; handlers take
//! [`Caller`] (or [`AdminCaller`]) as an extractor. Also the session cookie itself.
//!
//! An unknown, expired or revoked credential makes the caller anonymous: public resources stay
//! readable, and everything else answers 401 through the policy (`tabula_actors::permissions`).

use std::future::{ready, Ready};
use std::ops::Deref;
use std::sync::Arc;

use actix_web::body::MessageBody;
use actix_web::cookie::time::Duration as CookieDuration;
use actix_web::cookie::{Cookie, SameSite};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderMap};
use actix_web::middleware::Next;
use actix_web::{web, FromRequest, HttpMessage, HttpRequest};
use tabula_actors::permissions::{self, Action, Principal, TableAccess};

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// The session cookie (SPEC §8).
pub const SESSION_COOKIE: &str = "tabula_session";

/// The caller of the request being served.
#[derive(Clone)]
pub struct Caller(pub Arc<Principal>);

impl Deref for Caller {
    type Target = Principal;

    fn deref(&self) -> &Principal {
        &self.0
    }
}

impl Caller {
    /// What this caller may do with a table (id or name) for `action`: SPEC §2.2's 401, 404 and
    /// 403 otherwise.
    pub fn table(
        &self,
        state: &AppState,
        table_key: &str,
        action: Action,
    ) -> ApiResult<TableAccess> {
        Ok(permissions::authorize(
            &self.0,
            &state.registry,
            table_key,
            action,
        )?)
    }

    /// The user id that writes are attributed to (history, activity, `createdBy`).
    pub fn acting_user(&self) -> Option<String> {
        self.0.user_id().map(str::to_owned)
    }
}

/// The bearer token or session cookie of a request, if any.
pub fn credential(headers: &HeaderMap, cookie: impl FnOnce() -> Option<String>) -> Option<String> {
    if let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
    {
        let mut parts = value.trim().splitn(2, ' ');
        let scheme = parts.next().unwrap_or_default();
        let token = parts.next().unwrap_or_default().trim();
        if scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() {
            return Some(token.to_owned());
        }
    }
    cookie().filter(|token| !token.is_empty())
}

/// The credential of a request as a handler sees it.
pub fn request_credential(request: &HttpRequest) -> Option<String> {
    credential(request.headers(), || {
        request
            .cookie(SESSION_COOKIE)
            .map(|cookie| cookie.value().to_owned())
    })
}

/// Resolves a request's caller (with auth off, everyone may do everything, but a signed-in
/// caller is still known so writes are attributed).
fn resolve(state: &AppState, token: Option<String>) -> ApiResult<Principal> {
    let mut principal = match token {
        Some(token) => state.accounts.authenticate(&token)?.unwrap_or_default(),
        None => Principal::anonymous(),
    };
    principal.open = !state.config.auth.enabled;
    Ok(principal)
}

/// Middleware: resolves the caller once and leaves it in the request's extensions.
pub async fn identify(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    if let Some(state) = request.app_data::<web::Data<AppState>>().cloned() {
        let token = credential(request.headers(), || {
            request
                .cookie(SESSION_COOKIE)
                .map(|cookie| cookie.value().to_owned())
        });
        let principal = resolve(&state, token)?;
        request.extensions_mut().insert(Caller(Arc::new(principal)));
    }
    next.call(request).await
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Ready<Result<Caller, ApiError>>;

    fn from_request(request: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        if let Some(caller) = request.extensions().get::<Caller>() {
            return ready(Ok(caller.clone()));
        }
        // Without the middleware (a bare service in a test): resolve here.
        let outcome = match request.app_data::<web::Data<AppState>>() {
            Some(state) => resolve(state, request_credential(request)).map(|p| Caller(Arc::new(p))),
            None => Err(ApiError::internal("no application state")),
        };
        ready(outcome)
    }
}

/// A caller that must be an admin for what spans every table (`/api/admin/schema/*`, creating or
/// cloning a table, `/api/auth/admin/*`): 401 when anonymous, 403 for anyone else, an API key
/// limited to some tables included.
pub struct AdminCaller(pub Caller);

impl FromRequest for AdminCaller {
    type Error = ApiError;
    type Future = Ready<Result<AdminCaller, ApiError>>;

    fn from_request(request: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let outcome = Caller::from_request(request, payload)
            .into_inner()
            .and_then(|caller| {
                caller.require_admin()?;
                Ok(AdminCaller(caller))
            });
        ready(outcome)
    }
}

/// A caller that must be an admin for a route that works table by table (`DELETE
/// /api/admin/tables/{t}`, adding a field, `/api/query`, the webhook delivery log): an admin
/// API key limited to some tables passes, and the route sees only those
/// ([`Principal::key_reaches`](tabula_actors::permissions::Principal::key_reaches)).
pub struct TableAdminCaller(pub Caller);

impl FromRequest for TableAdminCaller {
    type Error = ApiError;
    type Future = Ready<Result<TableAdminCaller, ApiError>>;

    fn from_request(request: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let outcome = Caller::from_request(request, payload)
            .into_inner()
            .and_then(|caller| {
                caller.require_table_admin()?;
                Ok(TableAdminCaller(caller))
            });
        ready(outcome)
    }
}

/// The `Set-Cookie` of a new session.
pub fn session_cookie(state: &AppState, token: &str) -> Cookie<'static> {
    let seconds = i64::try_from(state.config.auth.session_ttl_hours)
        .unwrap_or(i64::MAX / 3600)
        .saturating_mul(3600);
    Cookie::build(SESSION_COOKIE, token.to_owned())
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(state.config.auth.secure_cookies)
        .max_age(CookieDuration::seconds(seconds))
        .finish()
}

/// The `Set-Cookie` that removes the session cookie.
pub fn expired_session_cookie(state: &AppState) -> Cookie<'static> {
    let mut cookie = session_cookie(state, "");
    cookie.make_removal();
    cookie
}
