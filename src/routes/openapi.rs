//! `GET /api/openapi.json`: the OpenAPI 3.1 document generated from the handlers' annotations,
//! extended at request time with a record schema for every table of the live schema.

use actix_web::{web, HttpResponse};
use serde_json::json;
use tabula_actors::permissions;
use tabula_storage::{FieldDef, FieldType, TableSchema};
use utoipa::OpenApi;

use crate::auth::Caller;
use crate::error::ApiResult;
use crate::routes;
use crate::state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(title = "Tabula", description = "A declared schema of tables as a complete REST backend."),
    paths(
        routes::health::get_health,
        routes::tables::list_tables,
        routes::tables::get_table,
        routes::tables::get_table_permissions,
        routes::views::list_views,
        routes::views::get_view,
        routes::views::list_view_records,
        routes::records::list_records,
        routes::records::create_record,
        routes::records::get_record,
        routes::records::update_record,
        routes::records::delete_record,
        routes::batch::create_records,
        routes::batch::update_records,
        routes::batch::delete_records,
        routes::batch::restore_records,
        routes::batch::upsert_records,
        routes::trash::list_trash,
        routes::trash::restore_record,
        routes::history::get_record_history,
        routes::comments::list_record_comments,
        routes::comments::create_comment,
        routes::comments::get_record_comment,
        routes::comments::update_comment,
        routes::comments::delete_comment,
        routes::activity::list_activities,
        routes::activity::get_activity,
        routes::analytics::collect_page_view,
        routes::analytics::get_tracker_script,
        routes::analytics::get_overview,
        routes::analytics::get_pages,
        routes::analytics::get_referrers,
        routes::analytics::get_devices,
        routes::analytics::get_campaigns,
        routes::auth::sign_up,
        routes::auth::sign_in,
        routes::auth::sign_out,
        routes::auth::get_session,
        routes::auth::change_password,
        routes::auth::list_users,
        routes::auth::create_user,
        routes::auth::set_role,
        routes::auth::ban_user,
        routes::auth::remove_user,
        routes::auth::create_api_key,
        routes::auth::list_api_keys,
        routes::auth::delete_api_key,
        routes::bootstrap::claim_bootstrap,
        routes::transfer::export_records,
        routes::transfer::import_records,
        routes::query::run_query,
        routes::collections::list_collection,
        routes::collections::create_collection_record,
        routes::collections::get_collection_record,
        routes::collections::update_collection_record,
        routes::collections::delete_collection_record,
        routes::collections::batch_collection,
        routes::collections::get_schema,
        routes::sonic::list_sonic_records,
        routes::sonic::create_sonic_record,
        routes::sonic::get_sonic_record,
        routes::sonic::update_sonic_record,
        routes::sonic::delete_sonic_record,
        routes::realtime::stream_changes,
        routes::webhooks::list_deliveries,
        routes::scalar::get_explorer,
        routes::schema::get_schema_status,
        routes::schema::get_schema_diff,
        routes::schema::export_schema,
        routes::schema::get_draft,
        routes::schema::replace_draft,
        routes::schema::discard_draft,
        routes::schema::validate_draft,
        routes::schema::publish_draft,
        routes::schema::rebase_draft,
        routes::schema::add_draft_table,
        routes::schema::patch_draft_table,
        routes::schema::remove_draft_table,
        routes::schema::list_versions,
        routes::schema::get_version,
        routes::schema::restore_version,
        routes::schema::prune_versions,
        routes::admin_tables::create_table,
        routes::admin_tables::delete_table,
        routes::admin_tables::add_field,
        routes::admin_tables::clone_table,
        get_openapi,
    ),
    tags(
        (name = "health", description = "Liveness"),
        (name = "tables", description = "Table definitions"),
        (name = "records", description = "Records of a table"),
        (name = "views", description = "Saved views"),
        (name = "batch", description = "Atomic batch writes and upsert"),
        (name = "trash", description = "Trashed records and restore"),
        (name = "history", description = "Revision history of a record"),
        (name = "comments", description = "Comments on a record"),
        (name = "activity", description = "The activity log"),
        (name = "analytics", description = "Cookie-free page-view analytics"),
        (name = "auth", description = "Accounts, sessions, API keys and the first admin"),
        (name = "transfer", description = "Export and import of records"),
        (name = "query", description = "Read-only SQL for admins"),
        (name = "dialects", description = "Compatibility dialects: AYB `/api/collections`, SonicJs `/v1`"),
        (name = "realtime", description = "Server-Sent Events of committed changes, and webhooks"),
        (name = "meta", description = "This document and the explorer"),
        (name = "schema", description = "Live schema management: draft, validate, publish, versions (only with schema.edit_api)"),
        (name = "admin", description = "Runtime table operations, each publishing a schema version"),
    )
)]
pub struct ApiDoc;

pub fn configure(config: &mut web::ServiceConfig) {
    config.service(super::resource("/api/openapi.json").get(get_openapi));
}

/// The JSON schema of one field's value.
fn field_value_schema(field: &FieldDef) -> serde_json::Value {
    let mut schema = match &field.field_type {
        FieldType::Integer | FieldType::Rating | FieldType::Autonumber => {
            json!({"type": "integer"})
        }
        FieldType::Decimal | FieldType::Currency | FieldType::Percentage => {
            json!({"type": "number"})
        }
        FieldType::Checkbox => json!({"type": "boolean"}),
        FieldType::Date => json!({"type": "string", "format": "date"}),
        FieldType::Datetime | FieldType::CreatedAt | FieldType::UpdatedAt => {
            json!({"type": "string", "format": "date-time"})
        }
        FieldType::Email => json!({"type": "string", "format": "email"}),
        FieldType::Url => json!({"type": "string", "format": "uri"}),
        FieldType::MultiSelect => {
            json!({"type": "array", "items": {"type": "string", "enum": field.options}})
        }
        FieldType::SingleSelect => json!({"type": "string", "enum": field.options}),
        FieldType::Json => json!({}),
        _ => json!({"type": "string"}),
    };
    if field.field_type.is_readonly() {
        schema["readOnly"] = json!(true);
    }
    schema
}

/// `<Table>Fields` and `<Table>Record` component schemas for one table.
fn table_schemas(table: &TableSchema) -> (String, serde_json::Value, String, serde_json::Value) {
    let properties: serde_json::Map<String, serde_json::Value> = table
        .fields
        .iter()
        .map(|field| (field.name.clone(), field_value_schema(field)))
        .collect();
    let required: Vec<&str> = table
        .fields
        .iter()
        .filter(|field| field.required)
        .map(|field| field.name.as_str())
        .collect();
    let fields_name = format!("{}_fields", table.name);
    let record_name = format!("{}_record", table.name);
    let fields = json!({"type": "object", "properties": properties, "required": required});
    let record = json!({
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "fields": {"$ref": format!("#/components/schemas/{fields_name}")},
            "createdAt": {"type": "string", "format": "date-time"},
            "updatedAt": {"type": "string", "format": "date-time"},
            "createdBy": {"type": ["string", "null"]},
            "updatedBy": {"type": ["string", "null"]},
            "deletedAt": {"type": "string", "format": "date-time"},
            "deletedBy": {"type": ["string", "null"]},
        },
        "required": ["id", "fields", "createdAt", "updatedAt"],
    });
    (fields_name, fields, record_name, record)
}

/// The document of the routes, completed with what every operation of its kind answers
/// (`openapi_responses`): the same for every request, so made once.
fn static_document() -> ApiResult<&'static serde_json::Value> {
    static DOCUMENT: std::sync::OnceLock<Result<serde_json::Value, String>> =
        std::sync::OnceLock::new();
    DOCUMENT
        .get_or_init(|| {
            let mut document =
                serde_json::to_value(ApiDoc::openapi()).map_err(|error| error.to_string())?;
            super::openapi_responses::complete_document(&mut document);
            Ok(document)
        })
        .as_ref()
        .map_err(|error| crate::error::ApiError::internal(error.clone()))
}

/// The OpenAPI document, with the live tables' record schemas.
#[utoipa::path(get, path = "/api/openapi.json", tag = "meta",
    responses((status = 200, description = "The OpenAPI 3.1 document; its per-table record schemas cover only the tables and fields the caller may read")))]
pub async fn get_openapi(state: web::Data<AppState>, caller: Caller) -> ApiResult<HttpResponse> {
    let mut document = static_document()?.clone();
    let components = document
        .as_object_mut()
        .map(|object| object.entry("components").or_insert_with(|| json!({})))
        .and_then(|components| components.as_object_mut())
        .map(|components| components.entry("schemas").or_insert_with(|| json!({})));
    if let Some(serde_json::Value::Object(schemas)) = components {
        // Only the tables and fields the caller may read (anonymous: the public tables).
        for handle in state.registry.all() {
            let Some(access) = permissions::table_access(&caller, handle)? else {
                continue;
            };
            let (fields_name, fields, record_name, record) = table_schemas(&access.schema);
            schemas.insert(fields_name, fields);
            schemas.insert(record_name, record);
        }
    }
    Ok(HttpResponse::Ok().json(document))
}
