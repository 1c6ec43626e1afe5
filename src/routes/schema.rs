//! `/api/admin/schema/*` (SPEC §9): status and drift, diff, export, the draft and its per-table
//! edits, validate, publish, rebase, versions, restore and prune. Every path exists only while
//! `schema.edit_api` is on (404 for every method otherwise) and is admin only. Each handler
//! sends one message to the schema publisher actor and renders its answer.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse, ResponseError};
use serde::Deserialize;
use serde_json::{json, Value as Json};
use tabula_actors::clock;
use tabula_actors::schema_diff::RebaseConflict;
use tabula_actors::schema_ledger::{Draft, SchemaVersion};
use tabula_actors::schema_publisher::{
    DiffSchema, DiscardDraft, EditDraft, GetActiveVersion, GetDraft, GetSchemaStatus, GetVersion,
    ListVersions, PruneVersions, PublishDraft, PublishMeta, RebaseDraft, ReplaceDraft,
    RestoreVersion, SchemaError, ValidateDraft,
};
use tabula_actors::schema_rules::SchemaIssue;
use tabula_storage::{Schema, TableSchema};

use crate::auth::AdminCaller;
use crate::error::{ApiError, ErrorCode};
use crate::state::AppState;

pub fn configure(config: &mut web::ServiceConfig) {
    let enabled = || {
        actix_web::guard::fn_guard(|context| {
            context
                .app_data::<web::Data<AppState>>()
                .is_some_and(|state| state.config.schema.edit_api)
        })
    };
    let resource = |path: &str| super::resource(path).guard(enabled());
    config
        .service(resource("/api/admin/schema/status").get(get_schema_status))
        .service(resource("/api/admin/schema/diff").get(get_schema_diff))
        .service(resource("/api/admin/schema/export").get(export_schema))
        .service(
            resource("/api/admin/schema/draft")
                .get(get_draft)
                .put(replace_draft),
        )
        .service(resource("/api/admin/schema/draft/discard").post(discard_draft))
        .service(resource("/api/admin/schema/draft/validate").post(validate_draft))
        .service(resource("/api/admin/schema/draft/publish").post(publish_draft))
        .service(resource("/api/admin/schema/draft/rebase").post(rebase_draft))
        .service(resource("/api/admin/schema/draft/tables").post(add_draft_table))
        .service(
            resource("/api/admin/schema/draft/tables/{table}")
                .patch(patch_draft_table)
                .delete(remove_draft_table),
        )
        .service(resource("/api/admin/schema/versions").get(list_versions))
        .service(resource("/api/admin/schema/versions/{version}").get(get_version))
        .service(resource("/api/admin/schema/versions/{version}/restore").post(restore_version))
        .service(resource("/api/admin/schema/prune").post(prune_versions));
}

/// The errors of this surface: the usual envelope, or a schema's problems as
/// `errors:[{path, field, message}]` (`field` repeats the pointer for envelope readers).
#[derive(Debug)]
pub enum SchemaApiError {
    Api(Box<ApiError>),
    Invalid {
        message: String,
        issues: Vec<SchemaIssue>,
    },
}

impl std::fmt::Display for SchemaApiError {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SchemaApiError::Api(error) => error.fmt(formatter),
            SchemaApiError::Invalid { message, .. } => formatter.write_str(message),
        }
    }
}

impl ResponseError for SchemaApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            SchemaApiError::Api(error) => error.status_code(),
            SchemaApiError::Invalid { .. } => StatusCode::BAD_REQUEST,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            SchemaApiError::Api(error) => error.error_response(),
            SchemaApiError::Invalid { message, issues } => HttpResponse::BadRequest().json(json!({
                "success": false,
                "message": message,
                "code": ErrorCode::ValidationError,
                "errors": issues_json(issues),
            })),
        }
    }
}

impl<E: Into<ApiError>> From<E> for SchemaApiError {
    fn from(error: E) -> Self {
        SchemaApiError::api(error.into())
    }
}

impl SchemaApiError {
    pub fn api(error: ApiError) -> Self {
        SchemaApiError::Api(Box::new(error))
    }
}

/// The HTTP form of a publisher error.
pub fn schema_error(error: SchemaError) -> SchemaApiError {
    match error {
        SchemaError::Domain(error) => SchemaApiError::api(error.into()),
        SchemaError::Invalid(issues) => SchemaApiError::Invalid {
            message: "The schema is invalid".into(),
            issues,
        },
        SchemaError::Stale { expected, actual } => SchemaApiError::api(
            ApiError::new(
                ErrorCode::Conflict,
                format!(
                    "The draft is based on version {actual}, but the active version is {expected}; rebase it first"
                ),
            )
            .with_details(json!({ "expected": expected, "actual": actual })),
        ),
        SchemaError::Conflicts(conflicts) => SchemaApiError::api(
            ApiError::new(
                ErrorCode::Conflict,
                "The draft's changes clash with changes of the active version",
            )
            .with_details(json!({ "conflicts": conflicts_json(&conflicts) })),
        ),
    }
}

pub type SchemaApiResult<T> = Result<T, SchemaApiError>;

/// Turns a publisher answer into this surface's result.
pub fn schema_outcome<T>(outcome: Result<T, SchemaError>) -> SchemaApiResult<T> {
    outcome.map_err(schema_error)
}

fn issues_json(issues: &[SchemaIssue]) -> Json {
    issues
        .iter()
        .map(|issue| json!({"path": issue.path, "field": issue.path, "message": issue.message}))
        .collect()
}

fn conflicts_json(conflicts: &[RebaseConflict]) -> Json {
    serde_json::to_value(conflicts).unwrap_or(Json::Null)
}

/// A version's JSON form; the snapshot only when asked.
pub fn version_json(version: &SchemaVersion, with_snapshot: bool) -> Json {
    let mut body = json!({
        "versionNumber": version.number,
        "checksum": version.checksum,
        "createdAt": clock::format_ms(version.created_at),
        "createdBy": version.created_by,
        "message": version.message,
    });
    if let Some(restored_from) = version.restored_from {
        body["restoredFromVersion"] = json!(restored_from);
    }
    if with_snapshot {
        body["snapshot"] = serde_json::to_value(&version.snapshot).unwrap_or(Json::Null);
    }
    body
}

fn draft_json(draft: &Draft) -> Json {
    json!({
        "snapshot": draft.snapshot,
        "baseVersion": draft.base_version,
        "dirty": draft.dirty,
        "updatedAt": clock::format_ms(draft.updated_at),
    })
}

/// A JSON document as a schema type, or the 400 naming the JSON pointer of what is wrong
/// (`prefix` is where the document sits in the request body, e.g. `/snapshot`).
pub fn parse_schema_json<T: serde::de::DeserializeOwned>(
    document: Json,
    prefix: &str,
) -> SchemaApiResult<T> {
    // Every schema document (a snapshot, a table, a field) is an object; serde would also read
    // a struct from an array of its members in order, which no client means.
    if !document.is_object() {
        return Err(SchemaApiError::Invalid {
            message: "The schema is malformed".into(),
            issues: vec![SchemaIssue {
                path: if prefix.is_empty() {
                    "/".into()
                } else {
                    prefix.to_owned()
                },
                message: "expected an object".into(),
            }],
        });
    }
    serde_path_to_error::deserialize(document).map_err(|error| {
        let mut pointer = prefix.to_owned();
        for segment in error.path().iter() {
            use serde_path_to_error::Segment;
            match segment {
                Segment::Seq { index } => pointer.push_str(&format!("/{index}")),
                Segment::Map { key } => pointer.push_str(&format!("/{key}")),
                Segment::Enum { variant } => pointer.push_str(&format!("/{variant}")),
                Segment::Unknown => {}
            }
        }
        SchemaApiError::Invalid {
            message: "The schema is malformed".into(),
            issues: vec![SchemaIssue {
                path: if pointer.is_empty() {
                    "/".into()
                } else {
                    pointer
                },
                message: error.into_inner().to_string(),
            }],
        }
    })
}

/// Deep-merges `patch` into `target`: objects merge key by key, `null` removes a key, anything
/// else (arrays included) replaces.
pub fn merge_json(target: &mut Json, patch: Json) {
    match (target, patch) {
        (Json::Object(target), Json::Object(patch)) => {
            for (key, value) in patch {
                if value.is_null() {
                    target.remove(&key);
                } else {
                    merge_json(target.entry(key).or_insert(Json::Null), value);
                }
            }
        }
        (target, patch) => *target = patch,
    }
}

fn body_object(body: &Json) -> SchemaApiResult<&serde_json::Map<String, Json>> {
    body.as_object().ok_or_else(|| {
        SchemaApiError::api(ApiError::validation(
            "body",
            "The request body must be a JSON object",
        ))
    })
}

/// A JSON number that is a whole non-negative count of at most `int64` (`7` or `7.0`, as JSON
/// Schema's `integer` allows), else `None`.
fn json_count(value: &Json) -> Option<u64> {
    let number = value.as_u64().or_else(|| {
        let float = value.as_f64()?;
        // 2^63 is the first float past int64; every whole float below it converts exactly.
        (float.fract() == 0.0 && (0.0..9_223_372_036_854_775_808.0).contains(&float))
            .then(|| format!("{float:.0}").parse().ok())
            .flatten()
    })?;
    (number <= tabula_actors::query::MAX_COUNT_PARAMETER).then_some(number)
}

fn optional_u64(body: &Json, key: &str) -> SchemaApiResult<Option<u64>> {
    match body.get(key) {
        None | Some(Json::Null) => Ok(None),
        Some(value) => json_count(value)
            .or_else(|| value.as_str().and_then(|text| text.parse().ok()))
            .filter(|number| *number <= tabula_actors::query::MAX_COUNT_PARAMETER)
            .map(Some)
            .ok_or_else(|| {
                SchemaApiError::api(ApiError::validation(
                    key,
                    format!("{key} must be a version number"),
                ))
            }),
    }
}

fn find_table_index(schema: &Schema, key: &str) -> Option<usize> {
    match key.parse::<u32>() {
        Ok(id) => schema.tables.iter().position(|table| table.id == id),
        Err(_) => schema.tables.iter().position(|table| table.name == key),
    }
}

fn table_not_in_draft(key: &str) -> SchemaError {
    SchemaError::Domain(tabula_actors::DomainError::NotFound(format!(
        "Table '{key}' not found in the draft"
    )))
}

/// The drift and draft state.
#[utoipa::path(get, path = "/api/admin/schema/status", tag = "schema",
    responses((status = 200, description = "`{activeVersion, activeChecksum, draftDirty, draftBaseVersion, draftStale, driftStatus: in-sync|drifted-from-file|file-ahead, fileChecksum}`"),
              (status = 401, description = "Anonymous"), (status = 403, description = "Not an admin"),
              (status = 404, description = "The schema edit API is off")))]
pub async fn get_schema_status(
    state: web::Data<AppState>,
    _admin: AdminCaller,
) -> SchemaApiResult<HttpResponse> {
    let status = state.schema.addr.send(GetSchemaStatus).await?;
    Ok(HttpResponse::Ok().json(json!({
        "activeVersion": status.active_version,
        "activeChecksum": status.active_checksum,
        "draftDirty": status.draft_dirty,
        "draftBaseVersion": status.draft_base_version,
        "draftStale": status.draft_stale,
        "driftStatus": status.drift.name(),
        "fileChecksum": status.file_checksum,
    })))
}

/// The live schema against the config file's.
#[utoipa::path(get, path = "/api/admin/schema/diff", tag = "schema",
    responses((status = 200, description = "`{from, to, changes:[{kind, path, before, after}]}`: from the side that stayed (`file`, or `live` when the file is ahead) to the side that moved. Kinds: add-table, remove-table, rename-table, add-field, remove-field, rename-field, change-field-type, change-field, change-permissions, add-view, remove-view, change-view, change-search, change-webhooks")))]
pub async fn get_schema_diff(
    state: web::Data<AppState>,
    _admin: AdminCaller,
) -> SchemaApiResult<HttpResponse> {
    let diff = state.schema.addr.send(DiffSchema).await?;
    Ok(HttpResponse::Ok().json(json!({
        "from": diff.from,
        "to": diff.to,
        "changes": diff.changes,
    })))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct ExportQuery {
    /// `yaml` (default), `json` or `toml`.
    #[param(inline, value_type = Option<super::request_docs::SchemaFormat>)]
    pub format: Option<String>,
}

/// The live schema as a document.
#[utoipa::path(get, path = "/api/admin/schema/export", tag = "schema", params(ExportQuery),
    responses((status = 200, description = "The live snapshot `{tables:[…]}` as YAML (`application/yaml`), JSON or TOML"),
              (status = 400, description = "Unknown format")))]
pub async fn export_schema(
    state: web::Data<AppState>,
    _admin: AdminCaller,
    query: web::Query<ExportQuery>,
) -> SchemaApiResult<HttpResponse> {
    let version = state.schema.addr.send(GetActiveVersion).await?;
    let snapshot = &version.snapshot;
    let format = query.format.as_deref().unwrap_or("yaml");
    let (content_type, text) = match format {
        "yaml" | "yml" => (
            "application/yaml",
            serde_norway::to_string(snapshot)
                .map_err(|error| ApiError::internal(error.to_string()))?,
        ),
        "json" => (
            "application/json",
            serde_json::to_string_pretty(snapshot)
                .map_err(|error| ApiError::internal(error.to_string()))?,
        ),
        "toml" => (
            "application/toml",
            toml::to_string(snapshot).map_err(|error| ApiError::internal(error.to_string()))?,
        ),
        other => {
            return Err(SchemaApiError::api(ApiError::validation(
                "format",
                format!("Unknown export format '{other}' (use yaml, json or toml)"),
            )))
        }
    };
    Ok(HttpResponse::Ok()
        .content_type(format!("{content_type}; charset=utf-8"))
        .insert_header(("x-schema-version", version.number.to_string()))
        .body(text))
}

/// The working draft.
#[utoipa::path(get, path = "/api/admin/schema/draft", tag = "schema",
    responses((status = 200, description = "`{snapshot, baseVersion, dirty, updatedAt}`")))]
pub async fn get_draft(
    state: web::Data<AppState>,
    _admin: AdminCaller,
) -> SchemaApiResult<HttpResponse> {
    let draft = state.schema.addr.send(GetDraft).await?;
    Ok(HttpResponse::Ok().json(draft_json(&draft)))
}

/// Replaces the draft.
#[utoipa::path(put, path = "/api/admin/schema/draft", tag = "schema",
    request_body(content = inline(super::request_docs::ReplaceDraft), description = "`{snapshot:{tables:[…]}, baseVersion?}`"),
    responses((status = 200, description = "`{snapshot, baseVersion, dirty, updatedAt}`"),
              (status = 400, description = "Malformed snapshot: `errors[{path, message}]`"),
              (status = 409, description = "Stale baseVersion: `details:{expected, actual}`")))]
pub async fn replace_draft(
    state: web::Data<AppState>,
    _admin: AdminCaller,
    body: web::Json<Json>,
) -> SchemaApiResult<HttpResponse> {
    let body = body.into_inner();
    body_object(&body)?;
    let base_version = optional_u64(&body, "baseVersion")?;
    let snapshot_json = body
        .get("snapshot")
        .cloned()
        .ok_or_else(|| SchemaApiError::Invalid {
            message: "The schema is malformed".into(),
            issues: vec![SchemaIssue {
                path: "/snapshot".into(),
                message: "snapshot is required: {\"tables\":[…]}".into(),
            }],
        })?;
    let snapshot: Schema = parse_schema_json(snapshot_json, "/snapshot")?;
    let draft = schema_outcome(
        state
            .schema
            .addr
            .send(ReplaceDraft {
                snapshot,
                base_version,
            })
            .await?,
    )?;
    Ok(HttpResponse::Ok().json(draft_json(&draft)))
}

/// Resets the draft to the active version.
#[utoipa::path(post, path = "/api/admin/schema/draft/discard", tag = "schema",
    responses((status = 200, description = "`{draft}`")))]
pub async fn discard_draft(
    state: web::Data<AppState>,
    _admin: AdminCaller,
) -> SchemaApiResult<HttpResponse> {
    let draft = schema_outcome(state.schema.addr.send(DiscardDraft).await?)?;
    Ok(HttpResponse::Ok().json(json!({ "draft": draft_json(&draft) })))
}

/// Checks the draft against every rule (and the stored data).
#[utoipa::path(post, path = "/api/admin/schema/draft/validate", tag = "schema",
    responses((status = 200, description = "`{valid, errors:[{path:\"/tables/0/fields/2/type\", message}]}`")))]
pub async fn validate_draft(
    state: web::Data<AppState>,
    _admin: AdminCaller,
) -> SchemaApiResult<HttpResponse> {
    let issues = schema_outcome(state.schema.addr.send(ValidateDraft).await?)?;
    let errors: Vec<Json> = issues
        .iter()
        .map(|issue| json!({"path": issue.path, "message": issue.message}))
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "valid": issues.is_empty(), "errors": errors })))
}

/// Publishes the draft: it becomes the next version and goes live.
#[utoipa::path(post, path = "/api/admin/schema/draft/publish", tag = "schema",
    request_body(content = inline(super::request_docs::Publish), description = "`{baseVersion, message?, allowDestructive?}`"),
    responses((status = 200, description = "`{version:{versionNumber, checksum, createdAt, createdBy, message, restoredFromVersion?}, activeVersion}`"),
              (status = 400, description = "Invalid draft: `errors[{path, message}]`"),
              (status = 409, description = "Stale: `details:{expected, actual}`")))]
pub async fn publish_draft(
    state: web::Data<AppState>,
    admin: AdminCaller,
    body: web::Json<Json>,
) -> SchemaApiResult<HttpResponse> {
    let body = body.into_inner();
    body_object(&body)?;
    let base_version = optional_u64(&body, "baseVersion")?.ok_or_else(|| {
        SchemaApiError::api(ApiError::validation(
            "baseVersion",
            "baseVersion is required (the active version the draft is based on)",
        ))
    })?;
    let meta = PublishMeta {
        user_id: admin.0.acting_user(),
        message: match body.get("message") {
            None | Some(Json::Null) => None,
            Some(Json::String(message)) => Some(message.clone()),
            Some(_) => {
                return Err(SchemaApiError::api(ApiError::validation(
                    "message",
                    "message must be a string",
                )))
            }
        },
        allow_destructive: match body.get("allowDestructive") {
            None | Some(Json::Null) => false,
            Some(Json::Bool(flag)) => *flag,
            Some(_) => {
                return Err(SchemaApiError::api(ApiError::validation(
                    "allowDestructive",
                    "allowDestructive must be true or false",
                )))
            }
        },
        restored_from: None,
    };
    let version = schema_outcome(
        state
            .schema
            .addr
            .send(PublishDraft { base_version, meta })
            .await?,
    )?;
    Ok(HttpResponse::Ok().json(json!({
        "version": version_json(&version, false),
        "activeVersion": version.number,
    })))
}

/// Re-applies the draft's changes on the active version.
#[utoipa::path(post, path = "/api/admin/schema/draft/rebase", tag = "schema",
    responses((status = 200, description = "`{draft}`"),
              (status = 409, description = "Both sides changed a table: `details.conflicts[{table, message}]`")))]
pub async fn rebase_draft(
    state: web::Data<AppState>,
    _admin: AdminCaller,
) -> SchemaApiResult<HttpResponse> {
    let draft = schema_outcome(state.schema.addr.send(RebaseDraft).await?)?;
    Ok(HttpResponse::Ok().json(json!({ "draft": draft_json(&draft) })))
}

/// Adds a table to the draft.
#[utoipa::path(post, path = "/api/admin/schema/draft/tables", tag = "schema",
    request_body(content = inline(super::request_docs::AddTable), description = "`{table:{name, fields, …}}`"),
    responses((status = 200, description = "`{draft, changed}`"),
              (status = 400, description = "Malformed table"),
              (status = 409, description = "A table with that name is already in the draft")))]
pub async fn add_draft_table(
    state: web::Data<AppState>,
    _admin: AdminCaller,
    body: web::Json<Json>,
) -> SchemaApiResult<HttpResponse> {
    let body = body.into_inner();
    let object = body_object(&body)?;
    let table_json = object.get("table").cloned().unwrap_or(body.clone());
    let table: TableSchema = parse_schema_json(table_json, "/table")?;
    let edit = Box::new(move |snapshot: &mut Schema| {
        if snapshot.tables.iter().any(|known| known.name == table.name) {
            return Err(SchemaError::Domain(tabula_actors::DomainError::Conflict {
                message: format!("The draft already has a table named '{}'", table.name),
                field: Some("name".into()),
            }));
        }
        snapshot.tables.push(table);
        Ok(true)
    });
    edit_draft(&state, edit).await
}

/// Deep-merges a patch into one table of the draft.
#[utoipa::path(patch, path = "/api/admin/schema/draft/tables/{table}", tag = "schema",
    params(("table" = String, Path, description = "Table id or name (in the draft)")),
    request_body(content = inline(super::request_docs::PatchTable), description = "`{patch:{…}}`: objects merge, arrays replace, null removes"),
    responses((status = 200, description = "`{draft, changed}`"), (status = 404, description = "No such table in the draft")))]
pub async fn patch_draft_table(
    state: web::Data<AppState>,
    _admin: AdminCaller,
    path: web::Path<String>,
    body: web::Json<Json>,
) -> SchemaApiResult<HttpResponse> {
    let body = body.into_inner();
    let object = body_object(&body)?;
    let patch = object.get("patch").cloned().ok_or_else(|| {
        SchemaApiError::api(ApiError::validation(
            "patch",
            "patch is required: {\"patch\":{…}}",
        ))
    })?;
    if !patch.is_object() {
        return Err(SchemaApiError::api(ApiError::validation(
            "patch",
            "patch must be a JSON object",
        )));
    }
    let key = path.into_inner();
    // The merge needs the table's JSON form, which the draft in the publisher holds: the edit
    // runs there (serialised with every other draft change).
    let (sender, receiver) = std::sync::mpsc::channel::<SchemaApiError>();
    let edit = Box::new(move |snapshot: &mut Schema| {
        let index = find_table_index(snapshot, &key).ok_or_else(|| table_not_in_draft(&key))?;
        let mut table_json = serde_json::to_value(&snapshot.tables[index]).map_err(|error| {
            SchemaError::Domain(tabula_actors::DomainError::Unavailable(error.to_string()))
        })?;
        merge_json(&mut table_json, patch);
        match parse_schema_json::<TableSchema>(table_json, &format!("/tables/{index}")) {
            Ok(table) => {
                let changed = snapshot.tables[index] != table;
                snapshot.tables[index] = table;
                Ok(changed)
            }
            Err(error) => {
                let _ = sender.send(error);
                Err(SchemaError::Invalid(Vec::new()))
            }
        }
    });
    match edit_draft(&state, edit).await {
        Err(SchemaApiError::Invalid { issues, .. }) if issues.is_empty() => {
            Err(receiver.try_recv().unwrap_or_else(|_| {
                SchemaApiError::api(ApiError::validation("patch", "The patch is malformed"))
            }))
        }
        other => other,
    }
}

/// Removes a table from the draft.
#[utoipa::path(delete, path = "/api/admin/schema/draft/tables/{table}", tag = "schema",
    params(("table" = String, Path, description = "Table id or name (in the draft)")),
    responses((status = 200, description = "`{draft, changed}`"), (status = 404, description = "No such table in the draft")))]
pub async fn remove_draft_table(
    state: web::Data<AppState>,
    _admin: AdminCaller,
    path: web::Path<String>,
) -> SchemaApiResult<HttpResponse> {
    let key = path.into_inner();
    let edit = Box::new(move |snapshot: &mut Schema| {
        let index = find_table_index(snapshot, &key).ok_or_else(|| table_not_in_draft(&key))?;
        snapshot.tables.remove(index);
        Ok(true)
    });
    edit_draft(&state, edit).await
}

async fn edit_draft(
    state: &AppState,
    edit: tabula_actors::schema_publisher::DraftEdit,
) -> SchemaApiResult<HttpResponse> {
    let (draft, changed) = schema_outcome(state.schema.addr.send(EditDraft { edit }).await?)?;
    Ok(HttpResponse::Ok().json(json!({ "draft": draft_json(&draft), "changed": changed })))
}

/// Every kept version, newest first.
#[utoipa::path(get, path = "/api/admin/schema/versions", tag = "schema",
    responses((status = 200, description = "`{versions:[{versionNumber, checksum, createdAt, createdBy, message, restoredFromVersion?}], activeVersion}`")))]
pub async fn list_versions(
    state: web::Data<AppState>,
    _admin: AdminCaller,
) -> SchemaApiResult<HttpResponse> {
    let (versions, active) = schema_outcome(state.schema.addr.send(ListVersions).await?)?;
    let versions: Vec<Json> = versions
        .iter()
        .map(|version| version_json(version, false))
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "versions": versions, "activeVersion": active })))
}

fn version_number(text: &str) -> SchemaApiResult<u64> {
    text.parse::<u64>().map_err(|_| {
        SchemaApiError::api(ApiError::not_found(format!(
            "Schema version {text} not found"
        )))
    })
}

/// One version with its snapshot.
#[utoipa::path(get, path = "/api/admin/schema/versions/{version}", tag = "schema",
    params(("version" = u64, Path, description = "Version number")),
    responses((status = 200, description = "`{version:{…, snapshot}}`"), (status = 404, description = "No such version")))]
pub async fn get_version(
    state: web::Data<AppState>,
    _admin: AdminCaller,
    path: web::Path<String>,
) -> SchemaApiResult<HttpResponse> {
    let number = version_number(&path)?;
    let version = schema_outcome(state.schema.addr.send(GetVersion { number }).await?)?;
    Ok(HttpResponse::Ok().json(json!({ "version": version_json(&version, true) })))
}

/// Publishes a new version equal to an earlier one.
#[utoipa::path(post, path = "/api/admin/schema/versions/{version}/restore", tag = "schema",
    params(("version" = u64, Path, description = "Version number")),
    responses((status = 200, description = "`{version:{…, restoredFromVersion}, activeVersion}`"),
              (status = 400, description = "The stored data cannot follow that version"),
              (status = 404, description = "No such version")))]
pub async fn restore_version(
    state: web::Data<AppState>,
    admin: AdminCaller,
    path: web::Path<String>,
) -> SchemaApiResult<HttpResponse> {
    let number = version_number(&path)?;
    let version = schema_outcome(
        state
            .schema
            .addr
            .send(RestoreVersion {
                number,
                user_id: admin.0.acting_user(),
            })
            .await?,
    )?;
    Ok(HttpResponse::Ok().json(json!({
        "version": version_json(&version, false),
        "activeVersion": version.number,
    })))
}

/// Drops old versions.
#[utoipa::path(post, path = "/api/admin/schema/prune", tag = "schema",
    request_body(content = inline(super::request_docs::Prune), description = "`{keep: N}`: keep the newest N versions (the active one always stays)"),
    responses((status = 200, description = "`{deleted}`"), (status = 400, description = "keep is not a non-negative integer")))]
pub async fn prune_versions(
    state: web::Data<AppState>,
    _admin: AdminCaller,
    body: web::Json<Json>,
) -> SchemaApiResult<HttpResponse> {
    let body = body.into_inner();
    body_object(&body)?;
    let keep = body
        .get("keep")
        .and_then(json_count)
        .and_then(|keep| usize::try_from(keep).ok())
        .ok_or_else(|| {
            SchemaApiError::api(ApiError::validation(
                "keep",
                "keep must be a non-negative integer (how many of the newest versions to keep)",
            ))
        })?;
    let deleted = schema_outcome(state.schema.addr.send(PruneVersions { keep }).await?)?;
    Ok(HttpResponse::Ok().json(json!({ "deleted": deleted })))
}
