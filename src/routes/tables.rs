//! `GET /api/tables`, `GET /api/tables/{t}` and `GET /api/tables/{t}/permissions`: the tables a
//! caller may read, their schema as it sees it (fields it may not read left out), and what it
//! may do with one.

use actix_web::{web, HttpResponse};
use serde_json::json;
use tabula_actors::clock;
use tabula_actors::permissions::{self, Action, TableAccess};

use crate::auth::Caller;
use crate::error::ApiResult;
use crate::state::AppState;

pub fn configure(config: &mut web::ServiceConfig) {
    config
        .service(super::resource("/api/tables").get(list_tables))
        .service(super::resource("/api/tables/{table}").get(get_table))
        .service(super::resource("/api/tables/{table}/permissions").get(get_table_permissions));
}

/// `recordCount` and `updatedAt` of a table as the caller may know them: a row rule hides other
/// rows, so the table's own count and last write time (which would tell of them) are left out.
fn table_activity(access: &TableAccess, into: &mut serde_json::Map<String, serde_json::Value>) {
    if access.has_row_rule() {
        return;
    }
    let shared = &access.handle.shared;
    into.insert("recordCount".into(), json!(shared.live_count()));
    into.insert(
        "updatedAt".into(),
        json!(clock::format_ms(shared.updated_at())),
    );
}

fn table_summary(access: &TableAccess) -> serde_json::Value {
    let shared = &access.handle.shared;
    let mut summary = serde_json::Map::new();
    summary.insert("id".into(), json!(shared.id));
    summary.insert("name".into(), json!(access.schema.name));
    summary.insert("fieldCount".into(), json!(access.schema.fields.len()));
    summary.insert(
        "createdAt".into(),
        json!(clock::format_ms(shared.created_at())),
    );
    table_activity(access, &mut summary);
    serde_json::Value::Object(summary)
}

/// Every table the caller may read, with its field and record counts.
#[utoipa::path(get, path = "/api/tables", tag = "tables",
    responses((status = 200, description = "`{tables:[{id,name,fieldCount,recordCount?,createdAt,updatedAt?}]}` (`recordCount` and `updatedAt` left out under a row rule)"),
              (status = 401, description = "Anonymous, and no table is open to everyone")))]
pub async fn list_tables(state: web::Data<AppState>, caller: Caller) -> ApiResult<HttpResponse> {
    let mut tables = Vec::new();
    for handle in state.registry.all() {
        if let Some(access) = permissions::table_access(&caller, handle)? {
            tables.push(table_summary(&access));
        }
    }
    if tables.is_empty() && !caller.is_authenticated() && !caller.open {
        return Err(permissions::authentication_required().into());
    }
    Ok(HttpResponse::Ok().json(json!({ "tables": tables })))
}

/// One table's full definition: fields, views, permissions.
#[utoipa::path(get, path = "/api/tables/{table}", tag = "tables",
    params(("table" = String, Path, description = "Table id or name")),
    responses((status = 200, description = "`{table:{id,name,fields,views,permissions,search,recordCount?,createdAt,updatedAt?}}` (`recordCount` and `updatedAt` left out under a row rule)"),
              (status = 401, description = "Not signed in and the table is not public"),
              (status = 404, description = "No such table")))]
pub async fn get_table(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let access = caller.table(&state, &path, Action::Read)?;
    let shared = &access.handle.shared;
    let schema = &access.schema;
    let mut table = json!({
        "id": shared.id,
        "name": schema.name,
        "fields": schema.fields,
        "views": schema.views,
        "permissions": schema.permissions,
        "search": schema.search,
        "createdAt": clock::format_ms(shared.created_at()),
    });
    if let Some(object) = table.as_object_mut() {
        table_activity(&access, object);
    }
    Ok(HttpResponse::Ok().json(json!({ "table": table })))
}

/// What the caller may do with a table: `{table:{read, comment, create, update, delete, restore,
/// permanentDelete}, fields:{<name>:{read, write}}}` (fields it cannot read left out).
#[utoipa::path(get, path = "/api/tables/{table}/permissions", tag = "tables",
    params(("table" = String, Path, description = "Table id or name")),
    responses((status = 200, description = "`{table:{read, comment, create, update, delete, restore, permanentDelete}, fields:{<name>:{read, write}}}`"),
              (status = 401, description = "Not signed in and the table is not public"),
              (status = 404, description = "No such table (or not readable)")))]
pub async fn get_table_permissions(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let access = caller.table(&state, &path, Action::Read)?;
    let table: serde_json::Map<String, serde_json::Value> = Action::ALL
        .iter()
        .map(|action| (action.name().to_owned(), json!(access.can(*action))))
        .collect();
    let fields: serde_json::Map<String, serde_json::Value> = access
        .field_grants()
        .into_iter()
        .map(|grant| {
            (
                grant.name,
                json!({"read": grant.read, "write": grant.write}),
            )
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "table": table, "fields": fields })))
}
