//! Records CRUD and listing (SPEC §4.1, §4.2): handlers parse the request, send one message to
//! the table's actor (or read the store for reads) and render the reply. A list is parsed, run
//! and rendered off the HTTP workers (`crate::blocking`), within `limits.query_timeout_ms`.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;
use serde_json::json;
use std::collections::BTreeMap;
use tabula_actors::clock;

use tabula_actors::lifecycle;
use tabula_actors::permissions::{Action, TableAccess};
use tabula_actors::query::aggregate::Aggregations;
use tabula_actors::query::expand::{Expanded, ExpandedRecord, ReadAccess};
use tabula_actors::query::{self, ListPage, ListRequest};
use tabula_actors::registry::Registry;
use tabula_actors::table::{record_not_found, CreateRecord, UpdateRecord};
use tabula_actors::validate::WriteMode;
use tabula_storage::{StoredRecord, TableSchema, TableStore, Value};

use crate::auth::Caller;
use crate::blocking::{json_bytes, json_response, off_the_workers};
use crate::error::{ApiError, ApiResult};
use crate::json::{from_value, parse_value, to_value, FlatRecordView, RecordView};
use crate::state::AppState;

pub fn configure(config: &mut web::ServiceConfig) {
    config
        .service(
            super::resource("/api/tables/{table}/records")
                .get(list_records)
                .post(create_record),
        )
        .service(
            super::resource("/api/tables/{table}/records/{id}")
                .get(get_record)
                .patch(update_record)
                .delete(delete_record),
        );
}

/// The decoded query string, in order.
pub fn query_pairs(request: &HttpRequest) -> ApiResult<Vec<(String, String)>> {
    web::Query::<Vec<(String, String)>>::from_query(request.query_string())
        .map(web::Query::into_inner)
        .map_err(|error| ApiError::validation("query", format!("Invalid query string: {error}")))
}

/// Whether the query sets `name` to `true` (or `1`); `false`/`0` or absent is `false`, any
/// other value the 400 naming it.
pub fn flag(pairs: &[(String, String)], name: &str) -> ApiResult<bool> {
    Ok(query::flag_parameter(pairs, name)?)
}

/// The body as a JSON object (else 400 naming `body`).
pub fn body_object(body: &[u8]) -> ApiResult<serde_json::Map<String, serde_json::Value>> {
    match parse_json_body(body)? {
        serde_json::Value::Object(object) => Ok(object),
        _ => Err(ApiError::validation(
            "body",
            "Request body must be a JSON object",
        )),
    }
}

/// Parses a JSON request body; malformed JSON is a 400 naming `body`.
pub fn parse_json_body(body: &[u8]) -> ApiResult<serde_json::Value> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::validation(
            "body",
            "Request body must be a JSON object",
        ));
    }
    serde_json::from_slice(body)
        .map_err(|error| ApiError::validation("body", format!("Malformed JSON: {error}")))
}

/// A record write body: `{fields:{…}, updatedAt?}` or the flat object.
pub struct RecordInput {
    pub fields: Vec<(String, Value)>,
    /// The `updatedAt` the client last read (optimistic concurrency on PATCH).
    pub expected_updated_at: Option<serde_json::Value>,
}

/// Splits a write body into field values and the optional concurrency token. In the flat form
/// `updatedAt` is the token only when `take_token` (PATCH); on create it stays a (readonly) field.
pub fn record_input(body: serde_json::Value, take_token: bool) -> ApiResult<RecordInput> {
    let serde_json::Value::Object(mut object) = body else {
        return Err(ApiError::validation(
            "body",
            "Request body must be a JSON object",
        ));
    };
    let wrapped = matches!(object.get("fields"), Some(serde_json::Value::Object(_)));
    let expected_updated_at = if wrapped || take_token {
        object.remove("updatedAt")
    } else {
        None
    };
    let fields_object = if wrapped {
        let mut fields = match object.remove("fields") {
            Some(serde_json::Value::Object(fields)) => fields,
            _ => serde_json::Map::new(),
        };
        // Anything else beside `fields` is checked as a field would be (a system attribute is
        // the readonly error, anything else an unknown field), as in the flat form: nothing in
        // a body is silently dropped.
        for (name, value) in object {
            fields.entry(name).or_insert(value);
        }
        fields
    } else {
        object
    };
    Ok(RecordInput {
        fields: fields_object
            .iter()
            .map(|(name, value)| (name.clone(), to_value(value)))
            .collect(),
        expected_updated_at,
    })
}

/// Record ids in paths are positive integers; anything else names no record.
pub fn parse_record_id(text: &str) -> ApiResult<u64> {
    text.trim()
        .parse::<u64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| record_not_found_text(text))
}

fn record_not_found_text(text: &str) -> ApiError {
    ApiError::not_found(format!("Record {text} not found"))
}

/// A record in the API shape plus `commentCount`, the number of comments on it (a system
/// attribute every record rendered by the records endpoints carries; see docs/lifecycle.md).
#[derive(Serialize)]
pub struct CountedRecord<'a> {
    #[serde(flatten)]
    pub view: RecordView<'a>,
    #[serde(rename = "commentCount")]
    pub comment_count: u64,
}

impl<'a> CountedRecord<'a> {
    /// Renders `record` with its comment count read from `store`.
    pub fn read(store: &TableStore, schema: &'a TableSchema, record: &'a StoredRecord) -> Self {
        CountedRecord {
            view: RecordView {
                schema,
                record,
                projection: None,
            },
            // A count that cannot be read is shown as 0 rather than failing the whole read.
            comment_count: store.comment_count(record.id).unwrap_or(0),
        }
    }
}

/// One record (with its `commentCount`) as a JSON response.
pub fn record_response(
    status: StatusCode,
    store: &TableStore,
    schema: &TableSchema,
    record: &StoredRecord,
) -> HttpResponse {
    HttpResponse::build(status).json(CountedRecord::read(store, schema, record))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Pagination {
    page: u64,
    limit: u64,
    offset: u64,
    total: i64,
    total_pages: i64,
    has_next_page: bool,
    has_previous_page: bool,
}

impl Pagination {
    fn new(request: &ListRequest, page: &ListPage) -> Pagination {
        let limit = request.limit;
        let offset = request.offset;
        let returned = u64::try_from(page.records.len()).unwrap_or(u64::MAX);
        let (total, total_pages, has_next_page) = match page.total {
            Some(total) => {
                let pages = if limit == 0 { 0 } else { total.div_ceil(limit) };
                (
                    i64::try_from(total).unwrap_or(i64::MAX),
                    i64::try_from(pages).unwrap_or(i64::MAX),
                    page.has_more || offset.saturating_add(returned) < total,
                )
            }
            None => (-1, -1, page.has_more),
        };
        Pagination {
            page: offset.checked_div(limit).map_or(1, |pages| pages + 1),
            limit,
            offset,
            total,
            total_pages,
            has_next_page,
            has_previous_page: offset > 0,
        }
    }
}

/// `{count?, sum?, avg?, min?, max?}`: only what was asked for.
fn aggregations_json(aggregations: &Aggregations) -> serde_json::Value {
    let mut object = serde_json::Map::new();
    if let Some(count) = aggregations.count {
        object.insert("count".into(), json!(count));
    }
    for (name, values) in [
        ("sum", &aggregations.sum),
        ("avg", &aggregations.avg),
        ("min", &aggregations.min),
        ("max", &aggregations.max),
    ] {
        if !values.is_empty() {
            let rendered: serde_json::Map<String, serde_json::Value> = values
                .iter()
                .map(|(field, value)| (field.clone(), from_value(value)))
                .collect();
            object.insert(name.into(), serde_json::Value::Object(rendered));
        }
    }
    serde_json::Value::Object(object)
}

/// How records are rendered: the main API's shape (`{id, fields:{…}, createdAt, …}` with
/// `commentCount`) or the compatibility dialects' flat one (SPEC §10).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordShape {
    Nested,
    Flat,
}

/// One record in `shape`, projected to `projection` (field ids) when given.
pub fn render_record(
    shape: RecordShape,
    store: &TableStore,
    schema: &TableSchema,
    record: &StoredRecord,
    projection: Option<&[u32]>,
) -> serde_json::Value {
    let view = RecordView {
        schema,
        record,
        projection,
    };
    let rendered = match shape {
        RecordShape::Nested => serde_json::to_value(CountedRecord {
            view,
            comment_count: store.comment_count(record.id).unwrap_or(0),
        }),
        RecordShape::Flat => serde_json::to_value(FlatRecordView(view)),
    };
    rendered.unwrap_or(serde_json::Value::Null)
}

/// An expanded related record: the record shape plus its own nested `expand`.
fn expanded_record_json(expanded: &ExpandedRecord, shape: RecordShape) -> serde_json::Value {
    let view = RecordView {
        schema: &expanded.table,
        record: &expanded.record,
        projection: None,
    };
    let rendered = match shape {
        RecordShape::Nested => serde_json::to_value(&view),
        RecordShape::Flat => serde_json::to_value(FlatRecordView(view)),
    };
    let mut rendered = rendered.unwrap_or(serde_json::Value::Null);
    if !expanded.expand.is_empty() {
        rendered["expand"] = expand_json(&expanded.expand, shape);
    }
    rendered
}

fn expand_json(expand: &BTreeMap<String, Expanded>, shape: RecordShape) -> serde_json::Value {
    let object: serde_json::Map<String, serde_json::Value> = expand
        .iter()
        .map(|(name, expanded)| {
            let rendered = match expanded {
                Expanded::One(record) => expanded_record_json(record, shape),
                Expanded::Many(records) => records
                    .iter()
                    .map(|record| expanded_record_json(record, shape))
                    .collect(),
            };
            (name.clone(), rendered)
        })
        .collect();
    serde_json::Value::Object(object)
}

/// The records of a list page in `shape`: the `fields=` projection applied, and `expand` under
/// each record that has expanded relations (what `reader` may not read left out).
pub fn rendered_page(
    registry: &Registry,
    reader: &dyn ReadAccess,
    store: &TableStore,
    schema: &TableSchema,
    request: &ListRequest,
    records: &[StoredRecord],
    shape: RecordShape,
) -> ApiResult<Vec<serde_json::Value>> {
    let expansions = if request.expand.is_empty() {
        Vec::new()
    } else {
        query::expand::expand_within(
            registry,
            schema,
            records,
            &request.expand,
            reader,
            &request.budget,
        )?
    };
    Ok(records
        .iter()
        .enumerate()
        .map(|(index, record)| {
            let mut rendered =
                render_record(shape, store, schema, record, request.projection.as_deref());
            if let Some(expand) = expansions.get(index).filter(|expand| !expand.is_empty()) {
                rendered["expand"] = expand_json(expand, shape);
            }
            rendered
        })
        .collect())
}

/// Renders a list page: `{records, pagination}` plus `aggregations` / `groups` when asked, the
/// `fields=` projection, and `expand` under each record that has expanded relations (what
/// `reader` may not read left out).
pub fn list_body(
    registry: &Registry,
    reader: &dyn ReadAccess,
    store: &TableStore,
    schema: &TableSchema,
    request: &ListRequest,
    page: &ListPage,
) -> ApiResult<serde_json::Value> {
    let records = rendered_page(
        registry,
        reader,
        store,
        schema,
        request,
        &page.records,
        RecordShape::Nested,
    )?;
    let mut body = json!({
        "records": records,
        "pagination": Pagination::new(request, page),
    });
    if let Some(aggregations) = &page.aggregations {
        body["aggregations"] = aggregations_json(aggregations);
    }
    if let Some(groups) = &page.groups {
        body["groups"] = groups
            .iter()
            .map(|group| {
                let mut rendered = json!({"name": from_value(&group.name), "count": group.count});
                if let Some(aggregations) = &group.aggregations {
                    rendered["aggregations"] = aggregations_json(aggregations);
                }
                rendered
            })
            .collect();
    }
    Ok(body)
}

/// Answers a list request of the main API off the HTTP workers: parses it as `access` may make
/// it (`parse`: the list or the view request, adjusted by `adjust`), runs it within
/// `limits.query_timeout_ms`, renders `{records, pagination, …}`.
pub async fn answer_list(
    state: web::Data<AppState>,
    access: TableAccess,
    parse: impl FnOnce(&TableAccess, &AppState) -> ApiResult<ListRequest> + Send + 'static,
) -> ApiResult<HttpResponse> {
    let bytes = off_the_workers(move || {
        let mut list_request = parse(&access, &state)?;
        list_request.budget = state.query_budget();
        let page = query::list(&access.handle.shared, &list_request)?;
        let body = list_body(
            &state.registry,
            access.principal(),
            &access.handle.shared.store,
            &access.schema,
            &list_request,
            &page,
        )?;
        json_bytes(&body)
    })
    .await?;
    Ok(json_response(bytes))
}

/// Lists records with paging, sorting and filters.
#[utoipa::path(get, path = "/api/tables/{table}/records", tag = "records",
    params(("table" = String, Path, description = "Table id or name"),
           ("limit" = Option<u64>, Query, description = "Page size (default 10, max 1000)"),
           ("offset" = Option<u64>, Query, description = "Records to skip"),
           ("page" = Option<u64>, Query, description = "1-based page (with perPage)"),
           ("perPage" = Option<u64>, Query, description = "Page size for page"),
           ("sort" = Option<String>, Query, description = "`priority:desc,createdAt:asc` or `-priority`"),
           ("filter" = Option<String>, Query, description = "Filter expression, structured JSON or field:value"),
           ("includeDeleted" = Option<bool>, Query, description = "Include trashed records"),
           ("deleted" = Option<bool>, Query, description = "Only trashed records")),
    responses((status = 200, description = "`{records, pagination}`"),
              (status = 400, description = "Bad query parameter, or the query did not finish within `limits.query_timeout_ms` (`errors[{field:\"query\"}]`, `details.timeoutMs`)"),
              (status = 404, description = "No such table")))]
pub async fn list_records(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    request: HttpRequest,
) -> ApiResult<HttpResponse> {
    let access = caller.table(&state, &path, Action::Read)?;
    let pairs = query_pairs(&request)?;
    answer_list(state, access, move |access, state| {
        Ok(access.list_request(&pairs, state.page_limits(), parse_value)?)
    })
    .await
}

/// Creates a record from `{fields:{…}}` or a flat object.
#[utoipa::path(post, path = "/api/tables/{table}/records", tag = "records",
    params(("table" = String, Path, description = "Table id or name")),
    request_body(content = Object, description = "`{fields:{…}}` or the flat object"),
    responses((status = 201, description = "The created record"),
              (status = 400, description = "Validation failed"),
              (status = 409, description = "A unique value is taken"),
              (status = 503, description = "The table has too many writes in progress (`limits.table_write_queue`): nothing written; retry after `Retry-After` seconds")))]
pub async fn create_record(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let (access, record) = create_one(&state, &caller, &path, || {
        record_input(parse_json_body(&body)?, false)
    })
    .await?;
    Ok(record_response(
        StatusCode::CREATED,
        &access.handle.shared.store,
        &access.schema,
        &record,
    ))
}

/// Creates one record for a caller allowed to: the table check first, then the body (`input`,
/// so a bad body on a table the caller may not write is still 401/403/404), the field write
/// permissions, one `CreateRecord`. Returns the caller's access (to render with) and the record;
/// shared by the main API and the dialects.
pub async fn create_one(
    state: &AppState,
    caller: &Caller,
    table: &str,
    input: impl FnOnce() -> ApiResult<RecordInput>,
) -> ApiResult<(TableAccess, StoredRecord)> {
    let access = caller.table(state, table, Action::Create)?;
    let input = input()?;
    access.check_write(&state.registry, &input.fields, WriteMode::Create)?;
    let record = access
        .handle
        .send_write(CreateRecord {
            fields: input.fields,
            user_id: caller.acting_user(),
        })
        .await??;
    Ok((access, record))
}

/// Updates one record for a caller allowed to, in the order of [`create_one`] plus the row
/// rule, with `updatedAt` optimistic concurrency when the input carries it.
pub async fn update_one(
    state: &AppState,
    caller: &Caller,
    table: &str,
    id: &str,
    input: impl FnOnce() -> ApiResult<RecordInput>,
) -> ApiResult<(TableAccess, StoredRecord)> {
    let access = caller.table(state, table, Action::Update)?;
    let record_id = parse_record_id(id)?;
    let input = input()?;
    access.check_write(&state.registry, &input.fields, WriteMode::Update)?;
    access.check_rows(&[record_id])?;
    let record = access
        .handle
        .send_write(UpdateRecord {
            record_id,
            fields: input.fields,
            expected_updated_at: expected_updated_at(input.expected_updated_at)?,
            user_id: caller.acting_user(),
        })
        .await??;
    Ok((access, record))
}

/// One record; `includeDeleted=true` also finds a trashed one; `fields=` and `expand=` as on
/// the list.
#[utoipa::path(get, path = "/api/tables/{table}/records/{id}", tag = "records",
    params(("table" = String, Path, description = "Table id or name"),
           ("id" = String, Path, description = "Record id"),
           ("includeDeleted" = Option<bool>, Query, description = "Find a trashed record too"),
           ("fields" = Option<String>, Query, description = "Fields to return (comma-separated)"),
           ("expand" = Option<String>, Query, description = "Relationships to expand")),
    responses((status = 200, description = "The record"),
              (status = 400, description = "Unknown field in `fields` or `expand`, or a malformed `expand`"),
              (status = 401, description = "Not signed in and the table is not public"),
              (status = 404, description = "No such record")))]
pub async fn get_record(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
    request: HttpRequest,
) -> ApiResult<HttpResponse> {
    let (table, id) = path.into_inner();
    let access = caller.table(&state, &table, Action::Read)?;
    let record_id = parse_record_id(&id)?;
    let pairs = query_pairs(&request)?;
    let include_deleted = flag(&pairs, "includeDeleted")?;
    one_record(
        state.into_inner(),
        access,
        record_id,
        include_deleted,
        pairs,
        RecordShape::Nested,
    )
    .await
}

/// One record as `GET …/{id}` renders it in `shape`: the `fields=` projection and `expand=` of
/// the query (checked as on the list: an unknown name is a 400, before the record is looked
/// up), what the caller may not read left out. An expansion can read many related records, so
/// this runs off the workers, within the query budget.
pub async fn one_record(
    state: std::sync::Arc<AppState>,
    access: TableAccess,
    record_id: u64,
    include_deleted: bool,
    pairs: Vec<(String, String)>,
    shape: RecordShape,
) -> ApiResult<HttpResponse> {
    let bytes = off_the_workers(move || {
        let shaping: Vec<(String, String)> = pairs
            .into_iter()
            .filter(|(key, _)| key == "fields" || key == "expand")
            .collect();
        let mut list_request = access.list_request(&shaping, state.page_limits(), parse_value)?;
        list_request.budget = state.query_budget();
        let record = readable_record(&access, record_id, include_deleted)?;
        let mut rendered = rendered_page(
            &state.registry,
            access.principal(),
            &access.handle.shared.store,
            &access.schema,
            &list_request,
            std::slice::from_ref(&record),
            shape,
        )?;
        json_bytes(&rendered.pop().unwrap_or(serde_json::Value::Null))
    })
    .await?;
    Ok(json_response(bytes))
}

/// The record `record_id` if the caller may see it (a trashed one only with
/// `include_deleted`), else the 404 of a missing record.
pub fn readable_record(
    access: &TableAccess,
    record_id: u64,
    include_deleted: bool,
) -> ApiResult<StoredRecord> {
    access
        .handle
        .shared
        .store
        .get_record(record_id)
        .map_err(tabula_actors::DomainError::from)?
        .filter(|record| include_deleted || !record.is_deleted())
        .filter(|record| access.sees(record))
        .ok_or_else(|| ApiError::from(record_not_found(record_id)))
}

/// Parses the optimistic-concurrency token.
pub fn expected_updated_at(token: Option<serde_json::Value>) -> ApiResult<Option<i64>> {
    match token {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(text)) => clock::parse_datetime_ms(&text)
            .map(Some)
            .ok_or_else(|| ApiError::validation("updatedAt", "updatedAt must be an RFC 3339 time")),
        Some(_) => Err(ApiError::validation(
            "updatedAt",
            "updatedAt must be an RFC 3339 time",
        )),
    }
}

/// Deletes one record the caller may delete (`permanent`: for good, else to the trash) with the
/// relationship rules; shared by the main API and the dialects.
pub async fn delete_one(
    state: &AppState,
    caller: &Caller,
    table: &str,
    id: &str,
    permanent: bool,
) -> ApiResult<()> {
    let action = if permanent {
        Action::PermanentDelete
    } else {
        Action::Delete
    };
    let access = caller.table(state, table, action)?;
    let record_id = parse_record_id(id)?;
    access.check_rows(&[record_id])?;
    // Held for the whole deletion: its shares of other tables are sent by the planner.
    let _queued = access.handle.shared.admit_write()?;
    lifecycle::delete_records(
        &state.registry,
        &access.handle,
        vec![record_id],
        permanent,
        false,
        caller.acting_user(),
    )
    .await?;
    Ok(())
}

/// Partially updates a record; `null` clears a field; `updatedAt` guards against lost updates.
#[utoipa::path(patch, path = "/api/tables/{table}/records/{id}", tag = "records",
    params(("table" = String, Path, description = "Table id or name"),
           ("id" = String, Path, description = "Record id")),
    request_body(content = Object, description = "`{fields:{…}, updatedAt?}` or the flat object"),
    responses((status = 200, description = "The updated record"),
              (status = 400, description = "Validation failed"),
              (status = 404, description = "No such record"),
              (status = 409, description = "Modified since `updatedAt`, or a unique value is taken"),
              (status = 503, description = "The table has too many writes in progress (`limits.table_write_queue`): nothing written; retry after `Retry-After` seconds")))]
pub async fn update_record(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let (table, id) = path.into_inner();
    let (access, record) = update_one(&state, &caller, &table, &id, || {
        record_input(parse_json_body(&body)?, true)
    })
    .await?;
    Ok(record_response(
        StatusCode::OK,
        &access.handle.shared.store,
        &access.schema,
        &record,
    ))
}

/// Soft-deletes a record (204), or removes it for good with `permanent=true` (200); the
/// relationship `onDelete` rules of every table pointing at it apply (restrict → 409).
#[utoipa::path(delete, path = "/api/tables/{table}/records/{id}", tag = "records",
    params(("table" = String, Path, description = "Table id or name"),
           ("id" = String, Path, description = "Record id"),
           ("permanent" = Option<bool>, Query, description = "Delete for good")),
    responses((status = 204, description = "Moved to the trash"),
              (status = 200, description = "`{success:true}` after a permanent delete"),
              (status = 404, description = "No such record"),
              (status = 409, description = "A `restrict` relationship points at the record"),
              (status = 503, description = "The table has too many writes in progress (`limits.table_write_queue`): nothing written; retry after `Retry-After` seconds")))]
pub async fn delete_record(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
    request: HttpRequest,
) -> ApiResult<HttpResponse> {
    let (table, id) = path.into_inner();
    let permanent = flag(&query_pairs(&request)?, "permanent")?;
    delete_one(&state, &caller, &table, &id, permanent).await?;
    Ok(if permanent {
        HttpResponse::Ok().json(json!({ "success": true }))
    } else {
        HttpResponse::NoContent().finish()
    })
}
