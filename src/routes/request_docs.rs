//! The requests as the OpenAPI document describes them: the bodies (their members, which are
//! required, their types and bounds) and the values a parameter takes. Nothing constructs
//! these types — the handlers read a body
//! member by member, so that each problem is reported with its field — and none carries more
//! than the description: a record's fields depend on the table named in the path, so a record
//! is an object of any members here (the live tables' own schemas are `<table>_fields` in the
//! document's components).
#![allow(dead_code)]

use serde_json::Value as Json;
use utoipa::ToSchema;

/// Accounts: `POST /api/auth/sign-up/email`, `POST /api/admin/bootstrap/claim`.
#[derive(ToSchema)]
pub struct SignUp {
    #[schema(format = Email)]
    pub email: String,
    #[schema(min_length = 8, max_length = 1024)]
    pub password: String,
    #[schema(max_length = 200)]
    pub name: Option<String>,
}

#[derive(ToSchema)]
pub struct SignIn {
    pub email: String,
    pub password: String,
}

#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChangePassword {
    pub current_password: String,
    #[schema(min_length = 8, max_length = 1024)]
    pub new_password: String,
}

#[derive(ToSchema)]
pub struct CreateUser {
    #[schema(format = Email)]
    pub email: String,
    #[schema(min_length = 8, max_length = 1024)]
    pub password: String,
    #[schema(max_length = 200)]
    pub name: Option<String>,
    /// A role name; the default role when absent.
    #[schema(pattern = "^[a-z][a-z0-9_-]{0,31}$")]
    pub role: Option<String>,
}

#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SetRole {
    pub user_id: String,
    #[schema(pattern = "^[a-z][a-z0-9_-]{0,31}$")]
    pub role: String,
}

#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserReference {
    pub user_id: String,
}

#[derive(ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    Read,
    Write,
    All,
}

/// A table's name or id.
#[derive(ToSchema)]
#[serde(untagged)]
pub enum TableKey {
    Name(String),
    Id(u32),
}

#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NewApiKey {
    #[schema(min_length = 1, max_length = 200, pattern = "\\S")]
    pub name: String,
    #[schema(inline)]
    pub scope: Scope,
    /// Tables the key is limited to (each one the creator may read).
    #[schema(inline)]
    pub tables: Option<Vec<TableKey>>,
    /// RFC 3339, in the future.
    #[schema(format = DateTime)]
    pub expires_at: Option<String>,
}

/// The schema: `PUT /api/admin/schema/draft`.
#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplaceDraft {
    /// `{tables:[…]}`: every table of SPEC §3 in its camelCase JSON form.
    #[schema(value_type = Object)]
    pub snapshot: Json,
    /// The active version the draft starts from (a stale one is a 409).
    #[schema(minimum = 0, maximum = 9_223_372_036_854_775_807_u64)]
    pub base_version: Option<u64>,
}

#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Publish {
    /// The active version the draft is based on (a stale one is a 409).
    #[schema(minimum = 0, maximum = 9_223_372_036_854_775_807_u64)]
    pub base_version: u64,
    pub message: Option<String>,
    /// Erase the data of removed fields and tables.
    pub allow_destructive: Option<bool>,
}

#[derive(ToSchema)]
pub struct AddTable {
    /// A table of SPEC §3: `{name, fields:[…], permissions?, views?, search?}`.
    #[schema(value_type = Object)]
    pub table: Json,
}

#[derive(ToSchema)]
pub struct PatchTable {
    /// Objects merge, arrays replace, `null` removes.
    #[schema(value_type = Object)]
    pub patch: Json,
}

#[derive(ToSchema)]
pub struct Prune {
    /// How many of the newest versions to keep (the active one always stays).
    #[schema(minimum = 0, maximum = 9_223_372_036_854_775_807_u64)]
    pub keep: u64,
}

/// Runtime table operations: `POST /api/admin/tables/{t}/fields`.
#[derive(ToSchema)]
pub struct AddField {
    /// A field of SPEC §3: `{name, type, required?, unique?, indexed?, default?, …}`.
    #[schema(value_type = Object)]
    pub field: Json,
}

#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CloneTable {
    /// The clone's name: a lowercase letter, then up to 62 lowercase letters, digits or `_`.
    #[schema(pattern = "^[a-z][a-z0-9_]{0,62}$")]
    pub name: String,
    /// Copy the records too.
    pub copy_data: Option<bool>,
}

/// A record's id, as a string of digits or a positive number.
fn record_id() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    json_schema(serde_json::json!({"oneOf": [
        {"type": "string", "pattern": "^[1-9][0-9]{0,18}$"},
        {"type": "integer", "minimum": 1, "maximum": 9_223_372_036_854_775_807_u64},
    ]}))
}

/// A list of record ids (1 to 1000).
fn record_ids() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    json_schema(
        serde_json::json!({"type": "array", "minItems": 1, "maxItems": 1000, "items": {"oneOf": [
            {"type": "string", "pattern": "^[1-9][0-9]{0,18}$"},
            {"type": "integer", "minimum": 1, "maximum": 9_223_372_036_854_775_807_u64},
        ]}}),
    )
}

/// A schema written as JSON Schema (what utoipa's attributes cannot say, such as a pattern in
/// one branch of a `oneOf`).
fn json_schema(schema: Json) -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    // The literals above are valid schemas; an object schema is the fallback.
    serde_json::from_value(schema).unwrap_or_else(|_| {
        utoipa::openapi::RefOr::T(utoipa::openapi::schema::Schema::Object(
            utoipa::openapi::schema::Object::new(),
        ))
    })
}

#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateRecords {
    #[schema(value_type = Vec<Object>, min_items = 1, max_items = 1000)]
    pub records: Vec<Json>,
    pub return_records: Option<bool>,
}

#[derive(ToSchema)]
pub struct RecordPatch {
    #[schema(schema_with = record_id)]
    pub id: String,
    /// The fields to change (or given flat beside `id`).
    #[schema(value_type = Option<Object>)]
    pub fields: Option<Json>,
}

#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdateRecords {
    #[schema(inline, min_items = 1, max_items = 1000)]
    pub records: Vec<RecordPatch>,
    pub return_records: Option<bool>,
}

#[derive(ToSchema)]
pub struct DeleteRecords {
    #[schema(schema_with = record_ids)]
    pub ids: Vec<String>,
    /// Remove for good (needs `permanentDelete`).
    pub permanent: Option<bool>,
}

#[derive(ToSchema)]
pub struct RestoreRecords {
    #[schema(schema_with = record_ids)]
    pub ids: Vec<String>,
}

#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpsertRecords {
    #[schema(value_type = Vec<Object>, min_items = 1, max_items = 1000)]
    pub records: Vec<Json>,
    /// The fields a record is matched on (alias `matchFields`).
    #[schema(min_items = 1)]
    pub fields_to_merge_on: Vec<String>,
    pub return_records: Option<bool>,
}

/// `POST /api/tables/{t}/records/{id}/comments` and its PATCH.
#[derive(ToSchema)]
pub struct Comment {
    /// 1 to 10 000 characters, not only whitespace (alias `body`).
    #[schema(min_length = 1, max_length = 10000, pattern = "\\S")]
    pub content: String,
}

/// `POST /api/query`.
#[derive(ToSchema)]
pub struct Sql {
    /// One read-only SELECT.
    #[schema(min_length = 1)]
    pub sql: String,
}

/// The AYB batch: `POST /api/collections/{t}/batch`.
#[derive(ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum OperationMethod {
    Create,
    Update,
    Delete,
}

#[derive(ToSchema)]
pub struct Operation {
    #[schema(inline)]
    pub method: OperationMethod,
    /// For update and delete.
    #[schema(schema_with = record_id)]
    pub id: Option<String>,
    /// For create and update: the record's fields, flat.
    #[schema(value_type = Option<Object>)]
    pub body: Option<Json>,
}

#[derive(ToSchema)]
pub struct Operations {
    #[schema(inline, min_items = 1, max_items = 1000)]
    pub operations: Vec<Operation>,
}

/// The SonicJs dialect: `{data:{…}}`.
#[derive(ToSchema)]
pub struct SonicRecord {
    #[schema(value_type = Object)]
    pub data: Json,
}

/// `POST /api/analytics/collect`. Only `p` is checked: the other members are read when they
/// are strings (screen sizes: numbers) and ignored otherwise, so that a page view is never
/// refused for an odd title or screen.
#[derive(ToSchema)]
pub struct PageView {
    /// The page's path.
    #[schema(min_length = 1)]
    pub p: String,
    /// Title.
    #[schema(schema_with = any_value)]
    pub t: Option<Json>,
    /// Referrer URL.
    #[schema(schema_with = any_value)]
    pub r: Option<Json>,
    /// Screen width.
    #[schema(schema_with = any_value)]
    pub sw: Option<Json>,
    /// Screen height.
    #[schema(schema_with = any_value)]
    pub sh: Option<Json>,
    /// UTM source.
    #[schema(schema_with = any_value)]
    pub us: Option<Json>,
    /// UTM medium.
    #[schema(schema_with = any_value)]
    pub um: Option<Json>,
    /// UTM campaign.
    #[schema(schema_with = any_value)]
    pub uc: Option<Json>,
    /// UTM content.
    #[schema(schema_with = any_value)]
    pub ux: Option<Json>,
    /// UTM term.
    #[schema(schema_with = any_value)]
    pub ut: Option<Json>,
}

/// Any JSON value (a member read when it has the expected type and ignored otherwise).
fn any_value() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    use utoipa::openapi::schema::{ObjectBuilder, Schema, SchemaType};
    utoipa::openapi::RefOr::T(Schema::Object(
        ObjectBuilder::new()
            .schema_type(SchemaType::AnyValue)
            .build(),
    ))
}

/// `format` of `GET /api/tables/{t}/export` and `POST /api/tables/{t}/import`.
#[derive(ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TransferFormat {
    Csv,
    Json,
}

/// `format` of `GET /api/admin/schema/export`.
#[derive(ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SchemaFormat {
    Yaml,
    Json,
    Toml,
}

/// `action` of `GET /api/activity`.
#[derive(ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ActivityAction {
    Create,
    Update,
    Delete,
    Restore,
    PermanentDelete,
}
