//! Batch writes and upsert (SPEC §4.3): create, update, delete and restore 1..`limits.max_batch`
//! records, and upsert on merge fields. Each handler parses the body (sizes checked here: empty →
//! 400, too many → 413), sends one message to the table's actor (or calls one lifecycle
//! function, for deletes and restores that may reach other tables) and renders the reply. Each
//! batch is one atomic, durable commit in its table.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;
use serde_json::{Map, Value as Json};
use tabula_actors::lifecycle;
use tabula_actors::permissions::Action;
use tabula_actors::table::{CreateRecords, RecordPatch, UpdateRecords, UpsertRecords};
use tabula_actors::validate::WriteMode;
use tabula_storage::{StoredRecord, TableSchema, TableStore, Value};

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::routes::records::{body_object, query_pairs, record_input, CountedRecord};
use crate::state::AppState;

pub fn configure(config: &mut web::ServiceConfig) {
    config
        .service(
            super::resource("/api/tables/{table}/records/batch")
                .post(create_records)
                .patch(update_records)
                .delete(delete_records),
        )
        .service(super::resource("/api/tables/{table}/records/batch/restore").post(restore_records))
        .service(super::resource("/api/tables/{table}/records/upsert").post(upsert_records));
}

/// The array under `name` (missing or not an array → 400), its size checked.
fn batch_items(
    object: &mut Map<String, Json>,
    name: &str,
    state: &AppState,
) -> ApiResult<Vec<Json>> {
    let items = match object.remove(name) {
        Some(Json::Array(items)) => items,
        Some(_) => {
            return Err(ApiError::validation(
                name,
                format!("'{name}' must be an array"),
            ))
        }
        None => return Err(ApiError::validation(name, format!("'{name}' is required"))),
    };
    lifecycle::check_batch_size(items.len(), state.config.limits.max_batch, name)?;
    Ok(items)
}

/// An optional boolean member (`returnRecords`, `permanent`).
fn flag_member(object: &Map<String, Json>, name: &str) -> ApiResult<Option<bool>> {
    match object.get(name) {
        None | Some(Json::Null) => Ok(None),
        Some(Json::Bool(flag)) => Ok(Some(*flag)),
        Some(_) => Err(ApiError::validation(
            name,
            format!("'{name}' must be a boolean"),
        )),
    }
}

/// A record id given as a positive integer or a string of digits.
fn record_id(value: &Json) -> Option<u64> {
    match value {
        Json::Number(number) => number.as_u64(),
        Json::String(text) => text.trim().parse::<u64>().ok(),
        _ => None,
    }
    .filter(|id| *id > 0)
}

/// `ids:[…]` as record ids (each invalid one → 400 naming `ids[i]`).
fn batch_ids(object: &mut Map<String, Json>, state: &AppState) -> ApiResult<Vec<u64>> {
    let items = batch_items(object, "ids", state)?;
    items
        .iter()
        .enumerate()
        .map(|(index, item)| {
            record_id(item).ok_or_else(|| {
                ApiError::validation(&format!("ids[{index}]"), "Record ids are positive integers")
            })
        })
        .collect()
}

/// One item's field values (`{fields:{…}}` or flat).
fn item_fields(item: Json, index: usize) -> ApiResult<Vec<(String, Value)>> {
    if !item.is_object() {
        return Err(ApiError::validation(
            &format!("records[{index}]"),
            "Each record must be a JSON object",
        ));
    }
    Ok(record_input(item, false)?.fields)
}

/// Records rendered with their comment counts.
fn rendered<'a>(
    store: &TableStore,
    schema: &'a TableSchema,
    records: &'a [StoredRecord],
) -> Vec<CountedRecord<'a>> {
    records
        .iter()
        .map(|record| CountedRecord::read(store, schema, record))
        .collect()
}

#[derive(Serialize)]
struct CreatedBody<'a> {
    created: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    records: Option<Vec<CountedRecord<'a>>>,
}

/// Creates 1..max_batch records atomically: `{records:[{fields}|flat], returnRecords?}` →
/// 201 `{created, records?}`.
#[utoipa::path(post, path = "/api/tables/{table}/records/batch", tag = "batch",
    params(("table" = String, Path, description = "Table id or name")),
    request_body(content = inline(super::request_docs::CreateRecords), description = "`{records:[{fields:{…}}], returnRecords?}`"),
    responses((status = 201, description = "`{created, records?}`"),
              (status = 400, description = "Empty, or an invalid item (`errors[].field` = `records[i].name`); nothing written"),
              (status = 409, description = "A unique value clashes; nothing written"),
              (status = 413, description = "More than `limits.max_batch` items"),
              (status = 503, description = "The table has too many writes in progress (`limits.table_write_queue`): nothing written; retry after `Retry-After` seconds")))]
pub async fn create_records(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let access = caller.table(&state, &path, Action::Create)?;
    let handle = &access.handle;
    let mut object = body_object(&body)?;
    let return_records = flag_member(&object, "returnRecords")?.unwrap_or(false);
    let items = batch_items(&mut object, "records", &state)?;
    let records = items
        .into_iter()
        .enumerate()
        .map(|(index, item)| item_fields(item, index))
        .collect::<ApiResult<Vec<_>>>()?;
    access.check_writes(&state.registry, &records, WriteMode::Create)?;
    let created = handle
        .send_write(CreateRecords {
            records,
            user_id: caller.acting_user(),
        })
        .await??;
    let schema = &access.schema;
    let body = CreatedBody {
        created: created.len(),
        records: return_records.then(|| rendered(&handle.shared.store, schema, &created)),
    };
    Ok(HttpResponse::build(StatusCode::CREATED).json(body))
}

#[derive(Serialize)]
struct UpdatedBody<'a> {
    updated: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    records: Option<Vec<CountedRecord<'a>>>,
}

/// Partially updates 1..max_batch records atomically: `{records:[{id, fields}], returnRecords?}`
/// → 200 `{updated, records?}`.
#[utoipa::path(patch, path = "/api/tables/{table}/records/batch", tag = "batch",
    params(("table" = String, Path, description = "Table id or name")),
    request_body(content = inline(super::request_docs::UpdateRecords), description = "`{records:[{id, fields:{…}}], returnRecords?}`"),
    responses((status = 200, description = "`{updated, records?}`"),
              (status = 400, description = "Empty, or an invalid item; nothing written"),
              (status = 404, description = "An id names no live record; nothing written"),
              (status = 409, description = "A unique value clashes; nothing written"),
              (status = 413, description = "More than `limits.max_batch` items"),
              (status = 503, description = "The table has too many writes in progress (`limits.table_write_queue`): nothing written; retry after `Retry-After` seconds")))]
pub async fn update_records(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let access = caller.table(&state, &path, Action::Update)?;
    let handle = &access.handle;
    let mut object = body_object(&body)?;
    let return_records = flag_member(&object, "returnRecords")?.unwrap_or(false);
    let items = batch_items(&mut object, "records", &state)?;
    let mut patches = Vec::with_capacity(items.len());
    for (index, item) in items.into_iter().enumerate() {
        let Json::Object(mut item) = item else {
            return Err(ApiError::validation(
                &format!("records[{index}]"),
                "Each record must be a JSON object",
            ));
        };
        let record_id = item
            .remove("id")
            .as_ref()
            .and_then(record_id)
            .ok_or_else(|| {
                ApiError::validation(
                    &format!("records[{index}].id"),
                    "Each record needs the id of the record to update",
                )
            })?;
        patches.push(RecordPatch {
            record_id,
            fields: item_fields(Json::Object(item), index)?,
        });
    }
    let fields: Vec<Vec<(String, Value)>> =
        patches.iter().map(|patch| patch.fields.clone()).collect();
    access.check_writes(&state.registry, &fields, WriteMode::Update)?;
    let ids: Vec<u64> = patches.iter().map(|patch| patch.record_id).collect();
    access.check_rows(&ids)?;
    let updated = handle
        .send_write(UpdateRecords {
            patches,
            user_id: caller.acting_user(),
        })
        .await??;
    let schema = &access.schema;
    let body = UpdatedBody {
        updated: updated.len(),
        records: return_records.then(|| rendered(&handle.shared.store, schema, &updated)),
    };
    Ok(HttpResponse::Ok().json(body))
}

/// Deletes 1..max_batch records: `{ids:[…], permanent?}` (or `?permanent=true`) → 200
/// `{deleted}`; ids already in the trash are not counted by a soft delete.
#[utoipa::path(delete, path = "/api/tables/{table}/records/batch", tag = "batch",
    params(("table" = String, Path, description = "Table id or name"),
           ("permanent" = Option<bool>, Query, description = "Delete for good")),
    request_body(content = inline(super::request_docs::DeleteRecords), description = "`{ids:[…], permanent?}`"),
    responses((status = 200, description = "`{deleted}`"),
              (status = 400, description = "Empty, or an id that is not a record id"),
              (status = 404, description = "An id names no record; nothing written"),
              (status = 409, description = "A `restrict` relationship points at a record; nothing written"),
              (status = 413, description = "More than `limits.max_batch` ids"),
              (status = 503, description = "The table has too many writes in progress (`limits.table_write_queue`): nothing written; retry after `Retry-After` seconds")))]
pub async fn delete_records(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    request: HttpRequest,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let access = caller.table(&state, &path, Action::Delete)?;
    let mut object = body_object(&body)?;
    let in_query = super::records::flag(&query_pairs(&request)?, "permanent")?;
    let permanent = flag_member(&object, "permanent")?.unwrap_or(false) || in_query;
    let ids = batch_ids(&mut object, &state)?;
    if permanent {
        access.require(Action::PermanentDelete)?;
    }
    access.check_rows(&ids)?;
    // Held for the whole deletion: its shares of other tables are sent by the planner.
    let _queued = access.handle.shared.admit_write()?;
    let deleted = lifecycle::delete_records(
        &state.registry,
        &access.handle,
        ids,
        permanent,
        true,
        caller.acting_user(),
    )
    .await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "deleted": deleted })))
}

/// Restores 1..max_batch trashed records (and what their cascades took): `{ids:[…]}` → 200
/// `{success:true, restored}`.
#[utoipa::path(post, path = "/api/tables/{table}/records/batch/restore", tag = "batch",
    params(("table" = String, Path, description = "Table id or name")),
    request_body(content = inline(super::request_docs::RestoreRecords), description = "`{ids:[…]}`"),
    responses((status = 200, description = "`{success:true, restored}`"),
              (status = 400, description = "Empty, or a record that is not deleted"),
              (status = 404, description = "An id names no record"),
              (status = 409, description = "A unique value is now taken"),
              (status = 413, description = "More than `limits.max_batch` ids"),
              (status = 503, description = "The table has too many writes in progress (`limits.table_write_queue`): nothing written; retry after `Retry-After` seconds")))]
pub async fn restore_records(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let access = caller.table(&state, &path, Action::Restore)?;
    let mut object = body_object(&body)?;
    let ids = batch_ids(&mut object, &state)?;
    access.check_rows(&ids)?;
    // Held for the whole restore: its shares of other tables are sent by the planner.
    let _queued = access.handle.shared.admit_write()?;
    let restored =
        lifecycle::restore_records(&state.registry, &access.handle, ids, caller.acting_user())
            .await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "success": true, "restored": restored.len() })))
}

#[derive(Serialize)]
struct UpsertBody<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    records: Option<Vec<CountedRecord<'a>>>,
    created: u64,
    updated: u64,
}

/// The merge field names: `fieldsToMergeOn` (alias `matchFields`), an array of strings.
fn merge_fields(object: &Map<String, Json>) -> ApiResult<Vec<String>> {
    let (name, value) = match (object.get("fieldsToMergeOn"), object.get("matchFields")) {
        (Some(value), _) => ("fieldsToMergeOn", value),
        (None, Some(value)) => ("matchFields", value),
        (None, None) => {
            return Err(ApiError::validation(
                "fieldsToMergeOn",
                "fieldsToMergeOn is required",
            ))
        }
    };
    let Json::Array(items) = value else {
        return Err(ApiError::validation(
            name,
            format!("'{name}' must be an array of field names"),
        ));
    };
    items
        .iter()
        .map(|item| {
            item.as_str().map(str::to_owned).ok_or_else(|| {
                ApiError::validation(name, format!("'{name}' must be an array of field names"))
            })
        })
        .collect()
}

/// Creates or updates 1..max_batch records matched on merge fields: `{records:[{fields}],
/// fieldsToMergeOn|matchFields:[…], returnRecords?}` → 200 `{records, created, updated}`
/// (`records` left out when `returnRecords` is false).
#[utoipa::path(post, path = "/api/tables/{table}/records/upsert", tag = "batch",
    params(("table" = String, Path, description = "Table id or name")),
    request_body(content = inline(super::request_docs::UpsertRecords), description = "`{records:[{fields:{…}}], fieldsToMergeOn:[…], returnRecords?}`"),
    responses((status = 200, description = "`{records, created, updated}`"),
              (status = 400, description = "Empty, `id` in fields, unknown or empty merge fields, or an invalid item; nothing written"),
              (status = 409, description = "A unique value clashes; nothing written"),
              (status = 413, description = "More than `limits.max_batch` items"),
              (status = 503, description = "The table has too many writes in progress (`limits.table_write_queue`): nothing written; retry after `Retry-After` seconds")))]
pub async fn upsert_records(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let access = caller.table(&state, &path, Action::Create)?;
    access.require(Action::Update)?;
    access.check_upsert_allowed()?;
    let handle = &access.handle;
    let mut object = body_object(&body)?;
    let return_records = flag_member(&object, "returnRecords")?.unwrap_or(true);
    let merge_fields = merge_fields(&object)?;
    let items = batch_items(&mut object, "records", &state)?;
    let records = items
        .into_iter()
        .enumerate()
        .map(|(index, item)| item_fields(item, index))
        .collect::<ApiResult<Vec<_>>>()?;
    access.check_merge_fields(&merge_fields)?;
    access.check_writes(&state.registry, &records, WriteMode::Update)?;
    let outcome = handle
        .send_write(UpsertRecords {
            records,
            merge_fields,
            user_id: caller.acting_user(),
            return_records,
        })
        .await??;
    let schema = &access.schema;
    let body = UpsertBody {
        records: return_records.then(|| rendered(&handle.shared.store, schema, &outcome.records)),
        created: outcome.created,
        updated: outcome.updated,
    };
    Ok(HttpResponse::Ok().json(body))
}
