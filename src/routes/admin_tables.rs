//! Runtime table operations (SPEC §9, admin only, always on): create a table, delete one, add a
//! column, clone a table with or without its records. Each one is a change of the active schema
//! that the schema publisher validates and publishes as a new version.

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value as Json};
use tabula_actors::clock;
use tabula_actors::registry::TableHandle;
use tabula_actors::schema_ledger::SchemaVersion;
use tabula_actors::schema_publisher::{ChangeSchema, CloneTable, PublishMeta, SchemaError};
use tabula_actors::DomainError;
use tabula_storage::{FieldDef, Schema, TableSchema};

use super::schema::{
    parse_schema_json, schema_outcome, version_json, SchemaApiError, SchemaApiResult,
};
use crate::auth::{AdminCaller, Caller, TableAdminCaller};
use crate::error::ApiError;
use crate::state::AppState;

pub fn configure(config: &mut web::ServiceConfig) {
    config
        .service(super::resource("/api/admin/tables").post(create_table))
        .service(super::resource("/api/admin/tables/{table}").delete(delete_table))
        .service(super::resource("/api/admin/tables/{table}/fields").post(add_field))
        .service(super::resource("/api/admin/tables/{table}/clone").post(clone_table));
}

/// A table in the shape of `GET /api/tables/{t}` (as an admin sees it).
fn table_json(handle: &TableHandle) -> Json {
    let shared = &handle.shared;
    let schema = shared.schema();
    json!({
        "id": shared.id,
        "name": schema.name,
        "fields": schema.fields,
        "views": schema.views,
        "permissions": schema.permissions,
        "search": schema.search,
        "recordCount": shared.live_count(),
        "createdAt": clock::format_ms(shared.created_at()),
        "updatedAt": clock::format_ms(shared.updated_at()),
    })
}

fn served_table(state: &AppState, id: u32) -> SchemaApiResult<TableHandle> {
    state.registry.by_id(id).ok_or_else(|| {
        SchemaApiError::api(ApiError::internal(format!(
            "table {id} is not served after its publish"
        )))
    })
}

fn find_table<'s>(snapshot: &'s mut Schema, key: &str) -> Result<&'s mut TableSchema, SchemaError> {
    let position = match key.parse::<u32>() {
        Ok(id) => snapshot.tables.iter().position(|table| table.id == id),
        Err(_) => snapshot.tables.iter().position(|table| table.name == key),
    };
    match position {
        Some(index) => Ok(&mut snapshot.tables[index]),
        None => Err(SchemaError::Domain(DomainError::NotFound(format!(
            "Table '{key}' not found"
        )))),
    }
}

fn name_taken(what: &str, name: &str) -> SchemaError {
    SchemaError::Domain(DomainError::Conflict {
        message: format!("A {what} named '{name}' already exists"),
        field: Some("name".into()),
    })
}

/// The table `key` names, if the caller's API key reaches it (else the 404 of a missing one).
fn reachable_table(state: &AppState, caller: &Caller, key: &str) -> SchemaApiResult<TableHandle> {
    state
        .registry
        .resolve(key)
        .filter(|handle| caller.key_reaches(&handle.shared.schema()))
        .ok_or_else(|| SchemaApiError::api(ApiError::not_found(format!("Table '{key}' not found"))))
}

async fn change_schema(
    state: &AppState,
    admin: &Caller,
    message: String,
    allow_destructive: bool,
    edit: tabula_actors::schema_publisher::SchemaEdit,
) -> SchemaApiResult<(SchemaVersion, Schema)> {
    let meta = PublishMeta {
        user_id: admin.acting_user(),
        message: Some(message),
        allow_destructive,
        restored_from: None,
    };
    schema_outcome(state.schema.addr.send(ChangeSchema { edit, meta }).await?)
}

/// Creates a table at run time.
#[utoipa::path(post, path = "/api/admin/tables", tag = "admin",
    request_body(content = Object, description = "A table of SPEC §3: `{name, fields:[…], permissions?, views?, search?}` (ids assigned when absent)"),
    responses((status = 201, description = "`{table:{id, name, fields, views, permissions, search, recordCount, createdAt, updatedAt}, version}`"),
              (status = 400, description = "Invalid table: `errors[{path, message}]`"),
              (status = 409, description = "A table with that name exists")))]
pub async fn create_table(
    state: web::Data<AppState>,
    admin: AdminCaller,
    body: web::Json<Json>,
) -> SchemaApiResult<HttpResponse> {
    let mut table: TableSchema = parse_schema_json(body.into_inner(), "")?;
    let name = table.name.clone();
    let edit = Box::new(
        move |snapshot: &mut Schema, ids: &mut tabula_actors::schema_publisher::IdAllocator| {
            if snapshot.tables.iter().any(|known| known.name == table.name) {
                return Err(name_taken("table", &table.name));
            }
            if table.id != 0 && snapshot.tables.iter().any(|known| known.id == table.id) {
                return Err(SchemaError::Domain(DomainError::Conflict {
                    message: format!("A table with id {} already exists", table.id),
                    field: Some("id".into()),
                }));
            }
            if table.id == 0 {
                table.id = ids.next_table_id();
            }
            snapshot.tables.push(table);
            Ok(())
        },
    );
    let (version, snapshot) = change_schema(
        &state,
        &admin.0,
        format!("Create table {name}"),
        false,
        edit,
    )
    .await?;
    let id = snapshot
        .tables
        .iter()
        .find(|table| table.name == name)
        .map(|table| table.id)
        .unwrap_or(0);
    let handle = served_table(&state, id)?;
    Ok(HttpResponse::Created().json(json!({
        "table": table_json(&handle),
        "version": version_json(&version, false),
    })))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
pub struct DeleteTableQuery {
    /// Erase the table's data too (default: kept on disk, hidden; restoring a version that has
    /// the table brings it back).
    pub allow_destructive: Option<bool>,
}

/// Deletes a table at run time.
#[utoipa::path(delete, path = "/api/admin/tables/{table}", tag = "admin",
    params(("table" = String, Path, description = "Table id or name"), DeleteTableQuery),
    responses((status = 200, description = "`{deleted: true, table:{id, name}, version}`"),
              (status = 400, description = "Another table still refers to it"),
              (status = 404, description = "No such table")))]
pub async fn delete_table(
    state: web::Data<AppState>,
    admin: TableAdminCaller,
    path: web::Path<String>,
    query: web::Query<DeleteTableQuery>,
) -> SchemaApiResult<HttpResponse> {
    let key = path.into_inner();
    let handle = reachable_table(&state, &admin.0, &key)?;
    let removed = (handle.shared.id, handle.shared.schema().name.clone());
    let table_id = removed.0;
    let edit = Box::new(
        move |snapshot: &mut Schema, _: &mut tabula_actors::schema_publisher::IdAllocator| {
            let before = snapshot.tables.len();
            snapshot.tables.retain(|table| table.id != table_id);
            if snapshot.tables.len() == before {
                return Err(SchemaError::Domain(DomainError::NotFound(format!(
                    "Table '{table_id}' not found"
                ))));
            }
            Ok(())
        },
    );
    let allow_destructive = query.allow_destructive.unwrap_or(false);
    let (version, _) = change_schema(
        &state,
        &admin.0,
        format!("Delete table {}", removed.1),
        allow_destructive,
        edit,
    )
    .await?;
    Ok(HttpResponse::Ok().json(json!({
        "deleted": true,
        "table": {"id": removed.0, "name": removed.1},
        "version": version_json(&version, false),
    })))
}

/// Adds a column to a table at run time.
#[utoipa::path(post, path = "/api/admin/tables/{table}/fields", tag = "admin",
    params(("table" = String, Path, description = "Table id or name")),
    request_body(content = inline(super::request_docs::AddField), description = "`{field:{name, type, …}}` (or the field object itself)"),
    responses((status = 201, description = "`{field, table, version}`: existing records get the field's default"),
              (status = 400, description = "Invalid field"),
              (status = 404, description = "No such table"),
              (status = 409, description = "The table has a field with that name")))]
pub async fn add_field(
    state: web::Data<AppState>,
    admin: TableAdminCaller,
    path: web::Path<String>,
    body: web::Json<Json>,
) -> SchemaApiResult<HttpResponse> {
    let key = path.into_inner();
    let handle = reachable_table(&state, &admin.0, &key)?;
    let table_id = handle.shared.id;
    let body = body.into_inner();
    let (field_json, prefix) = match body.get("field") {
        Some(field) if field.is_object() => (field.clone(), "/field"),
        _ => (body, ""),
    };
    let mut field: FieldDef = parse_schema_json(field_json, prefix)?;
    let field_name = field.name.clone();
    let edit = Box::new(
        move |snapshot: &mut Schema, ids: &mut tabula_actors::schema_publisher::IdAllocator| {
            let table = find_table(snapshot, &table_id.to_string())?;
            if table.field_by_name(&field.name).is_some() {
                return Err(name_taken("field", &field.name));
            }
            if field.id != 0 && table.field_by_id(field.id).is_some() {
                return Err(SchemaError::Domain(DomainError::Conflict {
                    message: format!("A field with id {} already exists", field.id),
                    field: Some("id".into()),
                }));
            }
            if field.id == 0 {
                field.id = ids.next_field_id(table_id);
            }
            table.fields.push(field);
            Ok(())
        },
    );
    let table_name = handle.shared.schema().name.clone();
    let (version, _) = change_schema(
        &state,
        &admin.0,
        format!("Add field {field_name} to {table_name}"),
        false,
        edit,
    )
    .await?;
    let handle = served_table(&state, table_id)?;
    let field = handle.shared.schema().field_by_name(&field_name).cloned();
    Ok(HttpResponse::Created().json(json!({
        "field": field,
        "table": table_json(&handle),
        "version": version_json(&version, false),
    })))
}

/// Clones a table (structure, and records when `copyData`).
#[utoipa::path(post, path = "/api/admin/tables/{table}/clone", tag = "admin",
    params(("table" = String, Path, description = "Table id or name")),
    request_body(content = inline(super::request_docs::CloneTable), description = "`{name, copyData?: false}`"),
    responses((status = 201, description = "`{table, version, copiedRecords}`: the clone keeps record ids, values, trash and counters; not history, comments or activity"),
              (status = 400, description = "Invalid name"),
              (status = 404, description = "No such table"),
              (status = 409, description = "A table with that name exists")))]
pub async fn clone_table(
    state: web::Data<AppState>,
    admin: AdminCaller,
    path: web::Path<String>,
    body: web::Json<Json>,
) -> SchemaApiResult<HttpResponse> {
    let key = path.into_inner();
    let body = body.into_inner();
    let name = body
        .get("name")
        .and_then(Json::as_str)
        .map(str::to_owned)
        .ok_or_else(|| {
            SchemaApiError::api(ApiError::validation(
                "name",
                "name is required (the clone's table name)",
            ))
        })?;
    let copy_data = match body.get("copyData") {
        None | Some(Json::Null) => false,
        Some(Json::Bool(flag)) => *flag,
        Some(_) => {
            return Err(SchemaApiError::api(ApiError::validation(
                "copyData",
                "copyData must be true or false",
            )))
        }
    };
    let meta = PublishMeta {
        user_id: admin.0.acting_user(),
        message: Some(format!("Clone table {key} as {name}")),
        allow_destructive: false,
        restored_from: None,
    };
    let (version, clone_id, copied) = schema_outcome(
        state
            .schema
            .addr
            .send(CloneTable {
                source: key,
                name,
                copy_data,
                meta,
            })
            .await?,
    )?;
    let handle = served_table(&state, clone_id)?;
    Ok(HttpResponse::Created().json(json!({
        "table": table_json(&handle),
        "version": version_json(&version, false),
        "copiedRecords": copied,
    })))
}
