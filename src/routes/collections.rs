//! The AllYourBase dialect (SPEC §10): `/api/collections/{table}` CRUD with flat records, the
//! mixed atomic batch, and `GET /api/schema`. A thin adapter: the same permissions
//! (`Caller::table`), the same query engine and parameters as `/api/tables/{t}/records`, the
//! same table actor messages; only the shapes differ (docs/api.md "AYB dialect").

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Map, Value as Json};
use tabula_actors::lifecycle;
use tabula_actors::operations::{self, Operation, OperationOutcome};
use tabula_actors::permissions::{self, Action, TableAccess};
use tabula_actors::query;
use tabula_actors::registry::Registry;
use tabula_actors::validate::WriteMode;
use tabula_storage::{FieldType, StoredRecord, TableSchema};

use crate::auth::Caller;
use crate::blocking::{json_bytes, json_response, off_the_workers};
use crate::error::{ApiError, ApiResult};
use crate::json::parse_value;
use crate::routes::records::{
    self as records, one_record, parse_json_body, parse_record_id, query_pairs, record_input,
    render_record, rendered_page, RecordShape,
};
use crate::state::AppState;

pub fn configure(config: &mut web::ServiceConfig) {
    config
        .service(super::resource("/api/schema").get(get_schema))
        // Before `/{id}`: `batch` would otherwise be taken as a record id.
        .service(super::resource("/api/collections/{table}/batch").post(batch_collection))
        .service(
            super::resource("/api/collections/{table}")
                .get(list_collection)
                .post(create_collection_record),
        )
        .service(
            super::resource("/api/collections/{table}/{id}")
                .get(get_collection_record)
                .patch(update_collection_record)
                .delete(delete_collection_record),
        );
}

/// One record in the flat shape, as the caller may see it.
fn flat(access: &TableAccess, record: &StoredRecord) -> Json {
    render_record(
        RecordShape::Flat,
        &access.handle.shared.store,
        &access.schema,
        record,
        None,
    )
}

/// Lists records: `{items, page, perPage, totalItems, totalPages}` (totals −1 with `skipTotal`).
#[utoipa::path(get, path = "/api/collections/{table}", tag = "dialects",
    params(("table" = String, Path, description = "Table id or name"),
           ("filter" = Option<String>, Query, description = "Filter (every spelling of the list endpoint)"),
           ("sort" = Option<String>, Query, description = "`-priority,+title`"),
           ("search" = Option<String>, Query, description = "Full-text search"),
           ("page" = Option<u64>, Query, description = "1-based page"),
           ("perPage" = Option<u64>, Query, description = "Page size"),
           ("fields" = Option<String>, Query, description = "Fields to return"),
           ("expand" = Option<String>, Query, description = "Relationships to expand"),
           ("skipTotal" = Option<bool>, Query, description = "Skip the count")),
    responses((status = 200, description = "`{items:[flat records], page, perPage, totalItems, totalPages}`"),
              (status = 400, description = "Bad query parameter, or the query did not finish within `limits.query_timeout_ms` (`errors[{field:\"query\"}]`, `details.timeoutMs`)"),
              (status = 401, description = "Authentication required"),
              (status = 404, description = "No such table")))]
pub async fn list_collection(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    request: HttpRequest,
) -> ApiResult<HttpResponse> {
    let access = caller.table(&state, &path, Action::Read)?;
    let pairs = query_pairs(&request)?;
    let bytes = off_the_workers(move || {
        let mut list_request = access.list_request(&pairs, state.page_limits(), parse_value)?;
        list_request.budget = state.query_budget();
        let page = query::list(&access.handle.shared, &list_request)?;
        let items = rendered_page(
            &state.registry,
            access.principal(),
            &access.handle.shared.store,
            &access.schema,
            &list_request,
            &page.records,
            RecordShape::Flat,
        )?;
        let limit = list_request.limit;
        let (total_items, total_pages) = match page.total {
            Some(total) => {
                let pages = if limit == 0 { 0 } else { total.div_ceil(limit) };
                (
                    i64::try_from(total).unwrap_or(i64::MAX),
                    i64::try_from(pages).unwrap_or(i64::MAX),
                )
            }
            None => (-1, -1),
        };
        json_bytes(&json!({
            "items": items,
            "page": list_request.offset.checked_div(limit).map_or(1, |page| page + 1),
            "perPage": limit,
            "totalItems": total_items,
            "totalPages": total_pages,
        }))
    })
    .await?;
    Ok(json_response(bytes))
}

/// Creates a record from a flat object (or `{fields:{…}}`) → 201 the flat record.
#[utoipa::path(post, path = "/api/collections/{table}", tag = "dialects",
    params(("table" = String, Path, description = "Table id or name")),
    request_body(content = Object, description = "The record's fields, flat"),
    responses((status = 201, description = "The created record, flat"),
              (status = 400, description = "Validation failed"),
              (status = 401, description = "Authentication required"),
              (status = 403, description = "May read but not create"),
              (status = 409, description = "A unique value is taken"),
              (status = 503, description = "The table has too many writes in progress (`limits.table_write_queue`): nothing written; retry after `Retry-After` seconds")))]
pub async fn create_collection_record(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let (access, record) = records::create_one(&state, &caller, &path, || {
        record_input(parse_json_body(&body)?, false)
    })
    .await?;
    Ok(HttpResponse::build(StatusCode::CREATED).json(flat(&access, &record)))
}

/// One record, flat; `fields=` and `expand=` apply as in a list.
#[utoipa::path(get, path = "/api/collections/{table}/{id}", tag = "dialects",
    params(("table" = String, Path, description = "Table id or name"),
           ("id" = String, Path, description = "Record id"),
           ("fields" = Option<String>, Query, description = "Fields to return"),
           ("expand" = Option<String>, Query, description = "Relationships to expand")),
    responses((status = 200, description = "The record, flat"),
              (status = 400, description = "Bad `fields` or `expand`, or the expansion did not finish within `limits.query_timeout_ms` (`errors[{field:\"query\"}]`)"),
              (status = 404, description = "No such record")))]
pub async fn get_collection_record(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
    request: HttpRequest,
) -> ApiResult<HttpResponse> {
    let (table, id) = path.into_inner();
    let access = caller.table(&state, &table, Action::Read)?;
    let record_id = parse_record_id(&id)?;
    let pairs = query_pairs(&request)?;
    one_record(
        state.into_inner(),
        access,
        record_id,
        false,
        pairs,
        RecordShape::Flat,
    )
    .await
}

/// Partially updates a record → 200 the flat record.
#[utoipa::path(patch, path = "/api/collections/{table}/{id}", tag = "dialects",
    params(("table" = String, Path, description = "Table id or name"),
           ("id" = String, Path, description = "Record id")),
    request_body(content = Object, description = "The fields to change, flat"),
    responses((status = 200, description = "The updated record, flat"),
              (status = 400, description = "Validation failed"),
              (status = 404, description = "No such record"),
              (status = 409, description = "A unique value is taken"),
              (status = 503, description = "The table has too many writes in progress (`limits.table_write_queue`): nothing written; retry after `Retry-After` seconds")))]
pub async fn update_collection_record(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let (table, id) = path.into_inner();
    let (access, record) = records::update_one(&state, &caller, &table, &id, || {
        record_input(parse_json_body(&body)?, true)
    })
    .await?;
    Ok(HttpResponse::Ok().json(flat(&access, &record)))
}

/// Moves a record to the trash (relationship rules apply as for the main API) → 204.
#[utoipa::path(delete, path = "/api/collections/{table}/{id}", tag = "dialects",
    params(("table" = String, Path, description = "Table id or name"),
           ("id" = String, Path, description = "Record id")),
    responses((status = 204, description = "Moved to the trash"),
              (status = 404, description = "No such record"),
              (status = 409, description = "A `restrict` relationship points at the record"),
              (status = 503, description = "The table has too many writes in progress (`limits.table_write_queue`): nothing written; retry after `Retry-After` seconds")))]
pub async fn delete_collection_record(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    let (table, id) = path.into_inner();
    records::delete_one(&state, &caller, &table, &id, false).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// A batch operation's record id (`"42"` or `42`).
fn operation_id(operation: &Map<String, Json>, index: usize) -> ApiResult<u64> {
    let id = match operation.get("id") {
        Some(Json::Number(number)) => number.as_u64(),
        Some(Json::String(text)) => text.trim().parse::<u64>().ok(),
        _ => None,
    };
    id.filter(|id| *id > 0).ok_or_else(|| {
        ApiError::validation(
            &format!("operations[{index}].id"),
            "update and delete operations need the id of a record",
        )
    })
}

/// A batch operation's `body` as field values.
fn operation_body(
    operation: &mut Map<String, Json>,
    index: usize,
) -> ApiResult<Vec<(String, tabula_storage::Value)>> {
    match operation.remove("body") {
        Some(body @ Json::Object(_)) => Ok(record_input(body, false)?.fields),
        _ => Err(ApiError::validation(
            &format!("operations[{index}].body"),
            "create and update operations need a body object",
        )),
    }
}

/// Parses `{operations:[{method, id?, body?}]}` (1..max_batch).
fn parse_operations(body: &[u8], max_batch: u64) -> ApiResult<Vec<Operation>> {
    let Json::Object(mut object) = parse_json_body(body)? else {
        return Err(ApiError::validation(
            "body",
            "Request body must be a JSON object",
        ));
    };
    let items = match object.remove("operations") {
        Some(Json::Array(items)) => items,
        Some(_) => {
            return Err(ApiError::validation(
                "operations",
                "'operations' must be an array",
            ))
        }
        None => {
            return Err(ApiError::validation(
                "operations",
                "'operations' is required",
            ))
        }
    };
    lifecycle::check_batch_size(items.len(), max_batch, "operations")?;
    items
        .into_iter()
        .enumerate()
        .map(|(index, item)| {
            let Json::Object(mut operation) = item else {
                return Err(ApiError::validation(
                    &format!("operations[{index}]"),
                    "Each operation must be a JSON object",
                ));
            };
            let method = operation
                .get("method")
                .and_then(Json::as_str)
                .unwrap_or_default()
                .to_ascii_lowercase();
            match method.as_str() {
                "create" => Ok(Operation::Create {
                    fields: operation_body(&mut operation, index)?,
                }),
                "update" => Ok(Operation::Update {
                    record_id: operation_id(&operation, index)?,
                    fields: operation_body(&mut operation, index)?,
                }),
                "delete" => Ok(Operation::Delete {
                    record_id: operation_id(&operation, index)?,
                }),
                _ => Err(ApiError::validation(
                    &format!("operations[{index}].method"),
                    "method must be \"create\", \"update\" or \"delete\"",
                )),
            }
        })
        .collect()
}

/// The action an operation needs.
fn operation_action(operation: &Operation) -> Action {
    match operation {
        Operation::Create { .. } => Action::Create,
        Operation::Update { .. } => Action::Update,
        Operation::Delete { .. } => Action::Delete,
    }
}

/// Checks every operation against the caller's field and row permissions; validation errors of
/// all operations are reported together, named `operations[i].field`.
fn check_operations(
    registry: &Registry,
    access: &TableAccess,
    operations: &[Operation],
) -> ApiResult<()> {
    let mut errors = Vec::new();
    let mut record_ids = Vec::new();
    for (index, operation) in operations.iter().enumerate() {
        let checked = match operation {
            Operation::Create { fields } => access.check_write(registry, fields, WriteMode::Create),
            Operation::Update { record_id, fields } => {
                record_ids.push(*record_id);
                access.check_write(registry, fields, WriteMode::Update)
            }
            Operation::Delete { record_id } => {
                record_ids.push(*record_id);
                Ok(())
            }
        };
        match checked {
            Ok(()) => {}
            Err(tabula_actors::DomainError::Validation(item_errors)) => {
                errors.extend(item_errors.into_iter().map(|error| {
                    tabula_actors::FieldError::new(
                        format!("operations[{index}].{}", error.field),
                        error.message,
                    )
                }))
            }
            Err(other) => return Err(other.into()),
        }
    }
    if !errors.is_empty() {
        return Err(tabula_actors::DomainError::Validation(errors).into());
    }
    access.check_rows(&record_ids)?;
    Ok(())
}

/// Applies create, update and delete operations atomically (one commit: all or nothing) →
/// 200 `[{index, status, body?}]`.
#[utoipa::path(post, path = "/api/collections/{table}/batch", tag = "dialects",
    params(("table" = String, Path, description = "Table id or name")),
    request_body(content = inline(super::request_docs::Operations), description = "`{operations:[{method:\"create\"|\"update\"|\"delete\", id?, body?}]}`"),
    responses((status = 200, description = "`[{index, status, body?}]`: 201 + record, 200 + record, 204"),
              (status = 400, description = "Empty, or an invalid operation (`errors[].field` = `operations[i].name`); nothing written"),
              (status = 403, description = "An operation the caller may not perform"),
              (status = 404, description = "An id names no live record; nothing written"),
              (status = 409, description = "A unique value or `restrict` relationship clashes; nothing written"),
              (status = 413, description = "More than `limits.max_batch` operations"),
              (status = 503, description = "The table has too many writes in progress (`limits.table_write_queue`): nothing written; retry after `Retry-After` seconds")))]
pub async fn batch_collection(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    // Authenticated before the body is read: anonymous callers learn nothing (SPEC §2.2).
    let access = caller.table(&state, &path, Action::Read)?;
    let operations = parse_operations(&body, state.config.limits.max_batch)?;
    let mut checked_first = false;
    for action in [Action::Create, Action::Update, Action::Delete] {
        if operations.iter().any(|op| operation_action(op) == action) {
            if !checked_first {
                // The full check (anonymous, read-only API keys) for the first action needed.
                caller.table(&state, &path, action)?;
                checked_first = true;
            } else {
                access.require(action)?;
            }
        }
    }
    check_operations(&state.registry, &access, &operations)?;
    // Held for the whole batch: its shares of other tables are sent by the planner.
    let _queued = access.handle.shared.admit_write()?;
    let outcomes = operations::apply_operations(
        &state.registry,
        &access.handle,
        operations,
        caller.acting_user(),
    )
    .await?;
    let results: Vec<Json> = outcomes
        .iter()
        .enumerate()
        .map(|(index, outcome)| match outcome {
            OperationOutcome::Created(record) => {
                json!({"index": index, "status": 201, "body": flat(&access, record)})
            }
            OperationOutcome::Updated(record) => {
                json!({"index": index, "status": 200, "body": flat(&access, record)})
            }
            OperationOutcome::Deleted => json!({"index": index, "status": 204}),
        })
        .collect();
    Ok(HttpResponse::Ok().json(results))
}

/// A field type as the JSON type of its values (what a client parses them as).
fn json_type(field_type: &FieldType) -> &'static str {
    match field_type {
        FieldType::Integer | FieldType::Autonumber | FieldType::Rating => "integer",
        FieldType::Decimal | FieldType::Currency | FieldType::Percentage => "number",
        FieldType::Checkbox => "boolean",
        FieldType::MultiSelect => "array",
        FieldType::Json => "json",
        _ => "string",
    }
}

/// One table as `GET /api/schema` lists it.
fn schema_table(schema: &TableSchema) -> Json {
    let system = |name: &str, kind: &str, json_kind: &str, primary: bool, nullable: bool| {
        json!({"name": name, "type": kind, "jsonType": json_kind, "nullable": nullable,
               "isPrimaryKey": primary, "unique": primary, "system": true})
    };
    let mut columns = vec![system("id", "id", "string", true, false)];
    let mut foreign_keys = Vec::new();
    for field in &schema.fields {
        columns.push(json!({
            "name": field.name,
            "type": field.field_type.name(),
            "jsonType": json_type(&field.field_type),
            "nullable": !field.required,
            "isPrimaryKey": false,
            "unique": field.unique,
            "indexed": field.indexed || field.unique,
            "system": false,
        }));
        if field.field_type == FieldType::Relationship {
            if let Some(related) = &field.related_table {
                foreign_keys.push(json!({
                    "column": field.name,
                    "referencedTable": related,
                    "referencedColumn": "id",
                    "onDelete": field.on_delete.unwrap_or_default(),
                }));
            }
        }
    }
    columns.push(system("createdAt", "date-time", "string", false, false));
    columns.push(system("updatedAt", "date-time", "string", false, false));
    columns.push(system("createdBy", "user", "string", false, true));
    columns.push(system("updatedBy", "user", "string", false, true));
    json!({
        "id": schema.id,
        "name": schema.name,
        "kind": "table",
        "columns": columns,
        "primaryKey": ["id"],
        "foreignKeys": foreign_keys,
    })
}

/// The tables the caller may read, with their fields as columns (those it may read).
#[utoipa::path(get, path = "/api/schema", tag = "dialects",
    responses((status = 200, description = "`{tables:{name:{id,name,kind,columns,primaryKey,foreignKeys}}, builtAt}`")))]
pub async fn get_schema(state: web::Data<AppState>, caller: Caller) -> ApiResult<HttpResponse> {
    let mut tables = Map::new();
    for handle in state.registry.all() {
        if let Some(access) = permissions::table_access(&caller, handle)? {
            tables.insert(access.schema.name.clone(), schema_table(&access.schema));
        }
    }
    Ok(HttpResponse::Ok().json(json!({
        "tables": tables,
        "builtAt": tabula_actors::clock::format_ms(tabula_actors::clock::now_ms()),
    })))
}
