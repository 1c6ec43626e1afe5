//! Accounts over HTTP (SPEC §8): sign-up, sign-in, sign-out, get-session, change-password, the
//! admin's user management under `/api/auth/admin/*`, and API keys. Handlers parse the body,
//! make one call to the accounts (`tabula_actors::accounts`) and render the reply; a new session
//! comes back as `{token, user}` and as the `tabula_session` cookie.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Map, Value as Json};
use tabula_actors::accounts::{ApiKeyRecord, KeyScope, NewAccount, NewApiKey, SignedIn, User};
use tabula_actors::clock;
use tabula_actors::permissions;

use crate::auth::{
    expired_session_cookie, request_credential, session_cookie, AdminCaller, Caller,
};
use crate::error::{ApiError, ApiResult};
use crate::routes::records::body_object;
use crate::state::AppState;

pub fn configure(config: &mut web::ServiceConfig) {
    config
        .service(super::resource("/api/auth/sign-up/email").post(sign_up))
        .service(super::resource("/api/auth/sign-in/email").post(sign_in))
        .service(super::resource("/api/auth/sign-out").post(sign_out))
        .service(super::resource("/api/auth/get-session").get(get_session))
        .service(super::resource("/api/auth/change-password").post(change_password))
        .service(super::resource("/api/auth/admin/list-users").get(list_users))
        .service(super::resource("/api/auth/admin/create-user").post(create_user))
        .service(super::resource("/api/auth/admin/set-role").post(set_role))
        .service(super::resource("/api/auth/admin/ban-user").post(ban_user))
        .service(super::resource("/api/auth/admin/remove-user").post(remove_user))
        .service(
            super::resource("/api/auth/api-keys")
                .post(create_api_key)
                .get(list_api_keys),
        )
        .service(super::resource("/api/auth/api-keys/{id}").delete(delete_api_key));
}

/// An account as the API shows it.
pub fn user_json(user: &User) -> Json {
    json!({
        "id": user.id,
        "email": user.email,
        "name": user.name,
        "role": user.role,
        "banned": user.banned,
        "createdAt": clock::format_ms(user.created_at),
        "updatedAt": clock::format_ms(user.updated_at),
    })
}

/// A string member: missing (when `required`) or not a string → 400 naming it.
pub fn string_member(
    object: &Map<String, Json>,
    name: &str,
    required: bool,
) -> ApiResult<Option<String>> {
    match object.get(name) {
        None | Some(Json::Null) if !required => Ok(None),
        None | Some(Json::Null) => Err(ApiError::validation(name, format!("'{name}' is required"))),
        Some(Json::String(text)) => Ok(Some(text.clone())),
        Some(_) => Err(ApiError::validation(
            name,
            format!("'{name}' must be a string"),
        )),
    }
}

fn required(object: &Map<String, Json>, name: &str) -> ApiResult<String> {
    Ok(string_member(object, name, true)?.unwrap_or_default())
}

/// `{email, password, name, role?}` of a new account.
pub fn new_account(object: &Map<String, Json>, with_role: bool) -> ApiResult<NewAccount> {
    Ok(NewAccount {
        email: required(object, "email")?,
        password: required(object, "password")?,
        name: string_member(object, "name", false)?.unwrap_or_default(),
        role: if with_role {
            string_member(object, "role", false)?
        } else {
            None
        },
    })
}

/// `{token, user}` with the session cookie.
pub fn signed_in_response(
    state: &AppState,
    status: StatusCode,
    signed_in: &SignedIn,
) -> HttpResponse {
    HttpResponse::build(status)
        .cookie(session_cookie(state, &signed_in.session.token))
        .json(json!({
            "token": signed_in.session.token,
            "user": user_json(&signed_in.user),
        }))
}

/// Creates an account with the default role and signs it in → `{token, user}` + cookie.
#[utoipa::path(post, path = "/api/auth/sign-up/email", tag = "auth",
    request_body(content = inline(super::request_docs::SignUp), description = "`{email, password, name?}`"),
    responses((status = 200, description = "`{token, user}` and the `tabula_session` cookie"),
              (status = 400, description = "Invalid email, password under 8 characters"),
              (status = 403, description = "Sign-up is disabled"),
              (status = 409, description = "The email cannot be used"),
              (status = 429, description = "Too many attempts")))]
pub async fn sign_up(state: web::Data<AppState>, body: web::Bytes) -> ApiResult<HttpResponse> {
    let account = new_account(&body_object(&body)?, false)?;
    let signed_in = state.accounts.sign_up(account).await?;
    Ok(signed_in_response(&state, StatusCode::OK, &signed_in))
}

/// Signs in with email and password → `{token, user}` + cookie; wrong → 401.
#[utoipa::path(post, path = "/api/auth/sign-in/email", tag = "auth",
    request_body(content = inline(super::request_docs::SignIn), description = "`{email, password}`"),
    responses((status = 200, description = "`{token, user}` and the `tabula_session` cookie"),
              (status = 401, description = "Invalid email or password"),
              (status = 403, description = "The account is banned"),
              (status = 429, description = "Too many attempts")))]
pub async fn sign_in(state: web::Data<AppState>, body: web::Bytes) -> ApiResult<HttpResponse> {
    let object = body_object(&body)?;
    let email = required(&object, "email")?;
    let password = required(&object, "password")?;
    let signed_in = state.accounts.sign_in(&email, &password).await?;
    Ok(signed_in_response(&state, StatusCode::OK, &signed_in))
}

/// Ends the request's session → `{success:true}` and removes the cookie.
#[utoipa::path(post, path = "/api/auth/sign-out", tag = "auth",
    responses((status = 200, description = "`{success:true}`")))]
pub async fn sign_out(state: web::Data<AppState>, request: HttpRequest) -> ApiResult<HttpResponse> {
    if let Some(token) = request_credential(&request) {
        state.accounts.sign_out(&token).await?;
    }
    Ok(HttpResponse::Ok()
        .cookie(expired_session_cookie(&state))
        .json(json!({ "success": true })))
}

/// The request's session and user → `{session:{id, expiresAt}, user}`; none → 401.
#[utoipa::path(get, path = "/api/auth/get-session", tag = "auth",
    responses((status = 200, description = "`{session:{id, expiresAt}, user}`"),
              (status = 401, description = "No valid session")))]
pub async fn get_session(
    state: web::Data<AppState>,
    request: HttpRequest,
) -> ApiResult<HttpResponse> {
    let session = match request_credential(&request) {
        Some(token) => state.accounts.session(&token)?,
        None => None,
    };
    let (session, user) = session
        .ok_or_else(|| ApiError::from(tabula_actors::permissions::authentication_required()))?;
    Ok(HttpResponse::Ok().json(json!({
        "session": {
            "id": session.id,
            "expiresAt": clock::format_ms(session.expires_at),
        },
        "user": user_json(&user),
    })))
}

/// Changes the password (`{currentPassword, newPassword}`) and ends every other session.
#[utoipa::path(post, path = "/api/auth/change-password", tag = "auth",
    request_body(content = inline(super::request_docs::ChangePassword), description = "`{currentPassword, newPassword}`"),
    responses((status = 200, description = "`{success:true, user}`"),
              (status = 400, description = "Wrong current password or a new one under 8 characters"),
              (status = 401, description = "Not signed in"),
              (status = 429, description = "Too many attempts")))]
pub async fn change_password(
    state: web::Data<AppState>,
    caller: Caller,
    request: HttpRequest,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let user = caller.require_account_access()?;
    let object = body_object(&body)?;
    let current = required(&object, "currentPassword")?;
    let new = required(&object, "newPassword")?;
    let current_token = request_credential(&request).filter(|_| caller.key.is_none());
    let user = state
        .accounts
        .change_password(&user.id, current_token.as_deref(), &current, &new)
        .await?;
    Ok(HttpResponse::Ok().json(json!({ "success": true, "user": user_json(&user) })))
}

/// Every account (admin) → `{users, total}`.
#[utoipa::path(get, path = "/api/auth/admin/list-users", tag = "auth",
    responses((status = 200, description = "`{users, total}`"),
              (status = 401, description = "Not signed in"),
              (status = 403, description = "Not an admin")))]
pub async fn list_users(
    state: web::Data<AppState>,
    _admin: AdminCaller,
) -> ApiResult<HttpResponse> {
    let users: Vec<Json> = state.accounts.list_users()?.iter().map(user_json).collect();
    Ok(HttpResponse::Ok().json(json!({ "total": users.len(), "users": users })))
}

/// Creates an account (admin): `{email, password, name, role?}` → 201 `{user}`.
#[utoipa::path(post, path = "/api/auth/admin/create-user", tag = "auth",
    request_body(content = inline(super::request_docs::CreateUser), description = "`{email, password, name?, role?}`"),
    responses((status = 201, description = "`{user}`"),
              (status = 400, description = "Invalid email, password or role"),
              (status = 403, description = "Not an admin"),
              (status = 409, description = "The email is taken")))]
pub async fn create_user(
    state: web::Data<AppState>,
    _admin: AdminCaller,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let account = new_account(&body_object(&body)?, true)?;
    let user = state.accounts.create_user(account).await?;
    Ok(HttpResponse::build(StatusCode::CREATED).json(json!({ "user": user_json(&user) })))
}

/// Sets an account's role (admin): `{userId, role}` → `{user}`.
#[utoipa::path(post, path = "/api/auth/admin/set-role", tag = "auth",
    request_body(content = inline(super::request_docs::SetRole), description = "`{userId, role}`"),
    responses((status = 200, description = "`{user}`"),
              (status = 403, description = "Not an admin"),
              (status = 404, description = "No such user"),
              (status = 409, description = "It would leave no admin")))]
pub async fn set_role(
    state: web::Data<AppState>,
    _admin: AdminCaller,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let object = body_object(&body)?;
    let user_id = required(&object, "userId")?;
    let role = required(&object, "role")?;
    let user = state.accounts.set_role(&user_id, &role).await?;
    Ok(HttpResponse::Ok().json(json!({ "user": user_json(&user) })))
}

/// Bans an account and ends its sessions (admin): `{userId}` → `{user}`.
#[utoipa::path(post, path = "/api/auth/admin/ban-user", tag = "auth",
    request_body(content = inline(super::request_docs::UserReference), description = "`{userId}`"),
    responses((status = 200, description = "`{user}`"),
              (status = 403, description = "Not an admin"),
              (status = 404, description = "No such user"),
              (status = 409, description = "It would leave no admin")))]
pub async fn ban_user(
    state: web::Data<AppState>,
    _admin: AdminCaller,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let user_id = required(&body_object(&body)?, "userId")?;
    let user = state.accounts.ban_user(&user_id).await?;
    Ok(HttpResponse::Ok().json(json!({ "user": user_json(&user) })))
}

/// Removes an account with its sessions and keys (admin): `{userId}` → `{success:true}`.
#[utoipa::path(post, path = "/api/auth/admin/remove-user", tag = "auth",
    request_body(content = inline(super::request_docs::UserReference), description = "`{userId}`"),
    responses((status = 200, description = "`{success:true}`"),
              (status = 403, description = "Not an admin"),
              (status = 404, description = "No such user"),
              (status = 409, description = "It would leave no admin")))]
pub async fn remove_user(
    state: web::Data<AppState>,
    _admin: AdminCaller,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let user_id = required(&body_object(&body)?, "userId")?;
    state.accounts.remove_user(&user_id).await?;
    Ok(HttpResponse::Ok().json(json!({ "success": true })))
}

/// An API key as listed (no secret); the tables it is limited to by their current names (a
/// table removed since by its id).
fn api_key_json(state: &AppState, key: &ApiKeyRecord) -> Json {
    let tables = key.tables.as_ref().map(|tables| {
        tables
            .iter()
            .map(|entry| {
                state.registry.resolve(entry).map_or_else(
                    || entry.clone(),
                    |handle| handle.shared.schema().name.clone(),
                )
            })
            .collect::<Vec<_>>()
    });
    json!({
        "id": key.id,
        "name": key.name,
        "prefix": key.prefix,
        "scope": key.scope.name(),
        "tables": tables,
        "expiresAt": key.expires_at.map(clock::format_ms),
        "createdAt": clock::format_ms(key.created_at),
    })
}

/// `{name, scope, tables?, expiresAt?}` of a new API key.
fn new_api_key(object: &Map<String, Json>) -> ApiResult<NewApiKey> {
    let name = required(object, "name")?;
    let scope_text = required(object, "scope")?;
    let scope = KeyScope::parse(&scope_text).ok_or_else(|| {
        ApiError::validation("scope", "scope must be \"read\", \"write\" or \"all\"")
    })?;
    let tables = match object.get("tables") {
        None | Some(Json::Null) => None,
        Some(Json::Array(items)) => Some(
            items
                .iter()
                .map(|item| match item {
                    Json::String(name) if !name.trim().is_empty() => Ok(name.trim().to_owned()),
                    Json::Number(number) => Ok(number.to_string()),
                    _ => Err(ApiError::validation(
                        "tables",
                        "tables must be an array of table names or ids",
                    )),
                })
                .collect::<ApiResult<Vec<String>>>()?,
        ),
        Some(_) => {
            return Err(ApiError::validation(
                "tables",
                "tables must be an array of table names or ids",
            ))
        }
    };
    let expires_at = match string_member(object, "expiresAt", false)? {
        None => None,
        Some(text) => Some(clock::parse_datetime_ms(&text).ok_or_else(|| {
            ApiError::validation("expiresAt", "expiresAt must be an RFC 3339 time")
        })?),
    };
    Ok(NewApiKey {
        name,
        scope,
        tables,
        expires_at,
    })
}

/// Creates an API key of the caller → 201 `{id, key, prefix, …}`; the key is shown only here.
#[utoipa::path(post, path = "/api/auth/api-keys", tag = "auth",
    request_body(content = inline(super::request_docs::NewApiKey), description = "`{name, scope: \"read\"|\"write\"|\"all\", tables?, expiresAt?}`"),
    responses((status = 201, description = "`{id, key, prefix, name, scope, tables, expiresAt, createdAt}`"),
              (status = 409, description = "The account holds `auth.max_api_keys` keys already"),
              (status = 400, description = "Invalid name, scope, tables or expiry"),
              (status = 401, description = "Not signed in")))]
pub async fn create_api_key(
    state: web::Data<AppState>,
    caller: Caller,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let user = caller.require_account_access()?;
    let mut request = new_api_key(&body_object(&body)?)?;
    if let Some(entries) = &request.tables {
        request.tables = Some(permissions::key_tables(&caller, &state.registry, entries)?);
    }
    let created = state.accounts.create_api_key(&user.id, request).await?;
    let mut body = api_key_json(&state, &created.record);
    body["key"] = json!(created.key);
    Ok(HttpResponse::build(StatusCode::CREATED).json(body))
}

/// The caller's API keys (no secrets) → `{apiKeys}`.
#[utoipa::path(get, path = "/api/auth/api-keys", tag = "auth",
    responses((status = 200, description = "`{apiKeys:[{id, name, prefix, scope, tables, expiresAt, createdAt}]}`"),
              (status = 401, description = "Not signed in")))]
pub async fn list_api_keys(state: web::Data<AppState>, caller: Caller) -> ApiResult<HttpResponse> {
    let user = caller.require_account_access()?;
    let keys: Vec<Json> = state
        .accounts
        .list_api_keys(&user.id)?
        .iter()
        .map(|key| api_key_json(&state, key))
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "apiKeys": keys })))
}

/// Revokes one of the caller's API keys, at once → `{success:true}`.
#[utoipa::path(delete, path = "/api/auth/api-keys/{id}", tag = "auth",
    params(("id" = String, Path, description = "API key id")),
    responses((status = 200, description = "`{success:true}`"),
              (status = 401, description = "Not signed in"),
              (status = 404, description = "No such key of the caller")))]
pub async fn delete_api_key(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let user = caller.require_account_access()?;
    state.accounts.delete_api_key(&user.id, &path).await?;
    Ok(HttpResponse::Ok().json(json!({ "success": true })))
}
