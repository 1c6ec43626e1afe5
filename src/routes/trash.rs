//! The trash (SPEC §4.4): listing trashed records with the full query language, and restoring
//! one record (with what its cascade took). Restoring many is `POST /records/batch/restore`
//! (batch.rs); deleting for good from the trash is `DELETE /records/{id}?permanent=true`.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;
use tabula_actors::lifecycle;
use tabula_actors::permissions::Action;
use tabula_actors::query::TrashMode;

use crate::auth::Caller;
use crate::error::ApiResult;
use crate::json::parse_value;
use crate::routes::records::{answer_list, parse_record_id, query_pairs, CountedRecord};
use crate::state::AppState;

pub fn configure(config: &mut web::ServiceConfig) {
    config
        .service(super::resource("/api/tables/{table}/trash").get(list_trash))
        .service(super::resource("/api/tables/{table}/records/{id}/restore").post(restore_record));
}

/// Lists trashed records: the list envelope and query parameters of `GET /records`.
#[utoipa::path(get, path = "/api/tables/{table}/trash", tag = "trash",
    params(("table" = String, Path, description = "Table id or name"),
           ("limit" = Option<u64>, Query, description = "Page size (default 10, max 1000)"),
           ("offset" = Option<u64>, Query, description = "Records to skip"),
           ("sort" = Option<String>, Query, description = "`priority:desc` or `-priority`"),
           ("filter" = Option<String>, Query, description = "Any filter spelling of GET /records")),
    responses((status = 200, description = "`{records, pagination}` of trashed records"),
              (status = 400, description = "Bad query parameter, or the query did not finish within `limits.query_timeout_ms` (`errors[{field:\"query\"}]`, `details.timeoutMs`)"),
              (status = 404, description = "No such table")))]
pub async fn list_trash(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    request: HttpRequest,
) -> ApiResult<HttpResponse> {
    let access = caller.table(&state, &path, Action::Read)?;
    let pairs = query_pairs(&request)?;
    answer_list(state, access, move |access, state| {
        let mut list_request = access.list_request(&pairs, state.page_limits(), parse_value)?;
        list_request.trash = TrashMode::Trashed;
        Ok(list_request)
    })
    .await
}

/// Restores a trashed record, and the records a cascade took with it → `{success:true, record}`.
#[utoipa::path(post, path = "/api/tables/{table}/records/{id}/restore", tag = "trash",
    params(("table" = String, Path, description = "Table id or name"),
           ("id" = String, Path, description = "Record id")),
    responses((status = 200, description = "`{success:true, record}`"),
              (status = 400, description = "Record is not deleted"),
              (status = 404, description = "No such record"),
              (status = 409, description = "A live record now holds one of its unique values"),
              (status = 503, description = "The table has too many writes in progress (`limits.table_write_queue`): nothing written; retry after `Retry-After` seconds")))]
pub async fn restore_record(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    let (table, id) = path.into_inner();
    let access = caller.table(&state, &table, Action::Restore)?;
    let handle = &access.handle;
    let record_id = parse_record_id(&id)?;
    access.check_rows(&[record_id])?;
    // Held for the whole restore: its shares of other tables are sent by the planner.
    let _queued = handle.shared.admit_write()?;
    let record =
        lifecycle::restore_record(&state.registry, handle, record_id, caller.acting_user()).await?;
    let schema = &access.schema;
    Ok(HttpResponse::Ok().json(RestoredBody {
        success: true,
        record: CountedRecord::read(&handle.shared.store, schema, &record),
    }))
}

#[derive(Serialize)]
struct RestoredBody<'a> {
    success: bool,
    record: CountedRecord<'a>,
}
