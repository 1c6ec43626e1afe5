//! Saved views of a table (SPEC §5): list, one view, and the records through a view.

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;
use tabula_actors::permissions::Action;
use tabula_actors::query;

use crate::auth::Caller;
use crate::error::ApiResult;
use crate::json::parse_value;
use crate::routes::records::{answer_list, query_pairs};
use crate::state::AppState;

pub fn configure(config: &mut web::ServiceConfig) {
    config
        .service(super::resource("/api/tables/{table}/views").get(list_views))
        .service(super::resource("/api/tables/{table}/views/{view}").get(get_view))
        .service(
            super::resource("/api/tables/{table}/views/{view}/records").get(list_view_records),
        );
}

/// The table's views.
#[utoipa::path(get, path = "/api/tables/{table}/views", tag = "views",
    params(("table" = String, Path, description = "Table id or name")),
    responses((status = 200, description = "`{views:[…]}`"), (status = 404, description = "No such table")))]
pub async fn list_views(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let access = caller.table(&state, &path, Action::Read)?;
    let schema = &access.schema;
    Ok(HttpResponse::Ok().json(json!({ "views": schema.views })))
}

/// One view by id (or name).
#[utoipa::path(get, path = "/api/tables/{table}/views/{view}", tag = "views",
    params(("table" = String, Path, description = "Table id or name"),
           ("view" = String, Path, description = "View id or name")),
    responses((status = 200, description = "`{view}`"), (status = 404, description = "No such table or view")))]
pub async fn get_view(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    let (table, view) = path.into_inner();
    let access = caller.table(&state, &table, Action::Read)?;
    let schema = &access.schema;
    let view = query::find_view(schema, &view)?;
    Ok(HttpResponse::Ok().json(json!({ "view": view })))
}

/// The records of a view: its filter AND-ed with the request's, its sort unless `sort` is given,
/// its fields unless `fields` is given; the rest of the list query language applies.
#[utoipa::path(get, path = "/api/tables/{table}/views/{view}/records", tag = "views",
    params(("table" = String, Path, description = "Table id or name"),
           ("view" = String, Path, description = "View id or name")),
    responses((status = 200, description = "`{records, pagination}`"),
              (status = 400, description = "Bad query parameter, or the query did not finish within `limits.query_timeout_ms` (`errors[{field:\"query\"}]`, `details.timeoutMs`)"),
              (status = 404, description = "No such table or view")))]
pub async fn list_view_records(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
    request: HttpRequest,
) -> ApiResult<HttpResponse> {
    let (table, view) = path.into_inner();
    let access = caller.table(&state, &table, Action::Read)?;
    let pairs = query_pairs(&request)?;
    answer_list(state, access, move |access, state| {
        Ok(access.view_request(&view, &pairs, state.page_limits(), parse_value)?)
    })
    .await
}
