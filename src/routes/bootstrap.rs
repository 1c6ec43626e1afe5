//! `POST /api/admin/bootstrap/claim` (SPEC §1): the first admin, created with the one-time token
//! logged at start while no admin exists; 404 once an admin exists (accounts that signed up
//! before it do not close the claim).

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};

use crate::auth::request_credential;
use crate::error::ApiResult;
use crate::routes::auth::{new_account, signed_in_response};
use crate::routes::records::body_object;
use crate::state::AppState;

pub fn configure(config: &mut web::ServiceConfig) {
    config.service(super::resource("/api/admin/bootstrap/claim").post(claim_bootstrap));
}

/// Creates the first admin (`Authorization: Bearer <bootstrap token>`, `{email, password,
/// name}`) and signs it in → 201 `{token, user}` + cookie.
#[utoipa::path(post, path = "/api/admin/bootstrap/claim", tag = "auth",
    request_body(content = inline(super::request_docs::SignUp), description = "`{email, password, name?}`"),
    responses((status = 201, description = "`{token, user}` of the new admin, and the session cookie"),
              (status = 400, description = "Invalid email or password"),
              (status = 401, description = "Missing, wrong or expired bootstrap token"),
              (status = 404, description = "An admin exists already")))]
pub async fn claim_bootstrap(
    state: web::Data<AppState>,
    request: HttpRequest,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    if state.accounts.has_admin()? {
        return Err(tabula_actors::accounts::bootstrap_closed().into());
    }
    let token = request_credential(&request).unwrap_or_default();
    let account = new_account(&body_object(&body)?, false)?;
    let signed_in = state.accounts.claim_bootstrap(&token, account).await?;
    Ok(signed_in_response(&state, StatusCode::CREATED, &signed_in))
}
