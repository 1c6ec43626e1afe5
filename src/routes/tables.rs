//! `GET /api/tables` and `GET /api/tables/{t}`: the tables a caller may read and their schema.

use actix_web::{web, HttpResponse};
use serde_json::json;
use tabula_actors::clock;
use tabula_actors::registry::TableHandle;

use crate::error::ApiResult;
use crate::state::AppState;

pub fn configure(config: &mut web::ServiceConfig) {
    config
        .service(super::resource("/api/tables").get(list_tables))
        .service(super::resource("/api/tables/{table}").get(get_table));
}

fn table_summary(handle: &TableHandle) -> serde_json::Value {
    let shared = &handle.shared;
    let schema = shared.schema();
    json!({
        "id": shared.id,
        "name": schema.name,
        "fieldCount": schema.fields.len(),
        "recordCount": shared.live_count(),
        "createdAt": clock::format_ms(shared.created_at()),
        "updatedAt": clock::format_ms(shared.updated_at()),
    })
}

/// Every table with its field and record counts.
#[utoipa::path(get, path = "/api/tables", tag = "tables",
    responses((status = 200, description = "`{tables:[{id,name,fieldCount,recordCount,createdAt,updatedAt}]}`")))]
pub async fn list_tables(state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    let tables: Vec<serde_json::Value> = state.registry.all().iter().map(table_summary).collect();
    Ok(HttpResponse::Ok().json(json!({ "tables": tables })))
}

/// One table's full definition: fields, views, permissions.
#[utoipa::path(get, path = "/api/tables/{table}", tag = "tables",
    params(("table" = String, Path, description = "Table id or name")),
    responses((status = 200, description = "`{table:{id,name,fields,views,permissions,createdAt,updatedAt}}`"),
              (status = 404, description = "No such table")))]
pub async fn get_table(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let handle = state.table(&path)?;
    let shared = &handle.shared;
    let schema = shared.schema();
    Ok(HttpResponse::Ok().json(json!({
        "table": {
            "id": shared.id,
            "name": schema.name,
            "fields": schema.fields,
            "views": schema.views,
            "permissions": schema.permissions,
            "search": schema.search,
            "recordCount": shared.live_count(),
            "createdAt": clock::format_ms(shared.created_at()),
            "updatedAt": clock::format_ms(shared.updated_at()),
        }
    })))
}
