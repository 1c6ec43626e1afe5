//! The SonicJs dialect (SPEC §10): `/v1/{table}[/{id}]` with `{data:{…}}` bodies, bracket
//! filters (`filters[f][$eq]=v`), `sort[0]=title:desc`, `limit` and `offset`. A thin adapter
//! over the same permissions, query engine and table actor messages as the main API; records
//! are flat (docs/api.md "SonicJs dialect").

use std::time::Instant;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value as Json};
use tabula_actors::permissions::{Action, TableAccess};
use tabula_actors::query;
use tabula_storage::StoredRecord;

use crate::auth::Caller;
use crate::blocking::{json_bytes, json_response, off_the_workers};
use crate::error::{ApiError, ApiResult};
use crate::json::parse_value;
use crate::routes::records::{
    self as records, parse_record_id, query_pairs, readable_record, record_input, render_record,
    rendered_page, RecordInput, RecordShape,
};
use crate::state::AppState;

pub fn configure(config: &mut web::ServiceConfig) {
    config
        .service(
            super::resource("/v1/{table}")
                .get(list_sonic_records)
                .post(create_sonic_record),
        )
        .service(
            super::resource("/v1/{table}/{id}")
                .get(get_sonic_record)
                .put(update_sonic_record)
                .delete(delete_sonic_record),
        );
}

fn flat(access: &TableAccess, record: &StoredRecord) -> Json {
    render_record(
        RecordShape::Flat,
        &access.handle.shared.store,
        &access.schema,
        record,
        None,
    )
}

/// Milliseconds since `started`, with sub-millisecond precision.
fn execution_time(started: Instant) -> f64 {
    started.elapsed().as_secs_f64() * 1000.0
}

/// The record fields of a `{data:{…}}` body (a flat object is accepted too).
fn data_input(body: &[u8], take_token: bool) -> ApiResult<RecordInput> {
    let mut object = records::body_object(body)?;
    match object.remove("data") {
        Some(data @ Json::Object(_)) => record_input(data, take_token),
        Some(_) => Err(ApiError::validation("data", "'data' must be a JSON object")),
        None => record_input(Json::Object(object), take_token),
    }
}

/// Lists records → `{data:[flat records], total, executionTime}` (`total` −1 with `skipTotal`).
#[utoipa::path(get, path = "/v1/{table}", tag = "dialects",
    params(("table" = String, Path, description = "Table id or name"),
           ("filters[field][$op]" = Option<String>, Query, description = "Bracket filter: `$eq $ne $gt $gte $lt $lte $contains $in`"),
           ("sort[0]" = Option<String>, Query, description = "`title:desc`"),
           ("limit" = Option<u64>, Query, description = "Page size"),
           ("offset" = Option<u64>, Query, description = "Records to skip")),
    responses((status = 200, description = "`{data:[flat records], total, executionTime}`"),
              (status = 400, description = "Bad query parameter, or the query did not finish within `limits.query_timeout_ms` (`errors[{field:\"query\"}]`, `details.timeoutMs`)"),
              (status = 401, description = "Authentication required"),
              (status = 404, description = "No such table")))]
pub async fn list_sonic_records(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    request: HttpRequest,
) -> ApiResult<HttpResponse> {
    let started = Instant::now();
    let access = caller.table(&state, &path, Action::Read)?;
    let pairs = query_pairs(&request)?;
    let bytes = off_the_workers(move || {
        let mut list_request = access.list_request(&pairs, state.page_limits(), parse_value)?;
        list_request.budget = state.query_budget();
        let page = query::list(&access.handle.shared, &list_request)?;
        let data = rendered_page(
            &state.registry,
            access.principal(),
            &access.handle.shared.store,
            &access.schema,
            &list_request,
            &page.records,
            RecordShape::Flat,
        )?;
        let total = page
            .total
            .map_or(-1, |total| i64::try_from(total).unwrap_or(i64::MAX));
        json_bytes(&json!({
            "data": data,
            "total": total,
            "executionTime": execution_time(started),
        }))
    })
    .await?;
    Ok(json_response(bytes))
}

/// One record → `{data: flat record, executionTime}`.
#[utoipa::path(get, path = "/v1/{table}/{id}", tag = "dialects",
    params(("table" = String, Path, description = "Table id or name"),
           ("id" = String, Path, description = "Record id")),
    responses((status = 200, description = "`{data: flat record, executionTime}`"),
              (status = 404, description = "No such record")))]
pub async fn get_sonic_record(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    let started = Instant::now();
    let (table, id) = path.into_inner();
    let access = caller.table(&state, &table, Action::Read)?;
    let record = readable_record(&access, parse_record_id(&id)?, false)?;
    Ok(HttpResponse::Ok().json(json!({
        "data": flat(&access, &record),
        "executionTime": execution_time(started),
    })))
}

/// Creates a record from `{data:{…}}` → 201 `{data: flat record}`.
#[utoipa::path(post, path = "/v1/{table}", tag = "dialects",
    params(("table" = String, Path, description = "Table id or name")),
    request_body(content = inline(super::request_docs::SonicRecord), description = "`{data:{…}}`"),
    responses((status = 201, description = "`{data: flat record}`"),
              (status = 400, description = "Validation failed"),
              (status = 401, description = "Authentication required"),
              (status = 403, description = "May read but not create"),
              (status = 409, description = "A unique value is taken"),
              (status = 503, description = "The table has too many writes in progress (`limits.table_write_queue`): nothing written; retry after `Retry-After` seconds")))]
pub async fn create_sonic_record(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let (access, record) =
        records::create_one(&state, &caller, &path, || data_input(&body, false)).await?;
    Ok(HttpResponse::build(StatusCode::CREATED).json(json!({ "data": flat(&access, &record) })))
}

/// Updates the fields given in `{data:{…}}` (a partial update, as SonicJs does) → 200
/// `{data: flat record}`.
#[utoipa::path(put, path = "/v1/{table}/{id}", tag = "dialects",
    params(("table" = String, Path, description = "Table id or name"),
           ("id" = String, Path, description = "Record id")),
    request_body(content = inline(super::request_docs::SonicRecord), description = "`{data:{…}}`: the fields to change"),
    responses((status = 200, description = "`{data: flat record}`"),
              (status = 400, description = "Validation failed"),
              (status = 404, description = "No such record"),
              (status = 409, description = "A unique value is taken"),
              (status = 503, description = "The table has too many writes in progress (`limits.table_write_queue`): nothing written; retry after `Retry-After` seconds")))]
pub async fn update_sonic_record(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let (table, id) = path.into_inner();
    // SonicJs has no optimistic concurrency: an `updatedAt` in the body guards nothing here.
    let (access, record) = records::update_one(&state, &caller, &table, &id, || {
        data_input(&body, false).map(|input| RecordInput {
            expected_updated_at: None,
            ..input
        })
    })
    .await?;
    Ok(HttpResponse::Ok().json(json!({ "data": flat(&access, &record) })))
}

/// Moves a record to the trash → 204.
#[utoipa::path(delete, path = "/v1/{table}/{id}", tag = "dialects",
    params(("table" = String, Path, description = "Table id or name"),
           ("id" = String, Path, description = "Record id")),
    responses((status = 204, description = "Moved to the trash"),
              (status = 404, description = "No such record"),
              (status = 409, description = "A `restrict` relationship points at the record"),
              (status = 503, description = "The table has too many writes in progress (`limits.table_write_queue`): nothing written; retry after `Retry-After` seconds")))]
pub async fn delete_sonic_record(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    let (table, id) = path.into_inner();
    records::delete_one(&state, &caller, &table, &id, false).await?;
    Ok(HttpResponse::NoContent().finish())
}
