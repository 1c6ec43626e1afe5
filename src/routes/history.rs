//! A record's revision history (SPEC §4.4): `GET /records/{id}/history`, newest first, each
//! entry's changes rendered by field name with the table's current schema. Also the JSON shape of
//! a change's `{before?, after?}`, which the activity detail shares.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;
use tabula_actors::clock;
use tabula_actors::history::{record_history, NamedChange};
use tabula_actors::permissions::Action;
use tabula_storage::Value;

use crate::auth::Caller;
use crate::error::ApiResult;
use crate::routes::records::{parse_record_id, query_pairs};
use crate::state::AppState;

pub fn configure(config: &mut web::ServiceConfig) {
    config.service(
        super::resource("/api/tables/{table}/records/{id}/history").get(get_record_history),
    );
}

/// `(name, value)` pairs as a JSON object.
pub struct NamedValues<'a>(pub &'a [(String, Value)]);

impl Serialize for NamedValues<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (name, value) in self.0 {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

/// `{before?, after?}` of a change.
#[derive(Serialize)]
pub struct ChangesView<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub before: Option<NamedValues<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<NamedValues<'a>>,
}

impl<'a> ChangesView<'a> {
    pub fn of(change: &'a NamedChange) -> Self {
        ChangesView {
            before: change.before.as_deref().map(NamedValues),
            after: change.after.as_deref().map(NamedValues),
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct HistoryItem<'a> {
    id: String,
    action: &'static str,
    created_at: String,
    user_id: Option<&'a str>,
    changes: ChangesView<'a>,
}

#[derive(Serialize)]
struct HistoryPagination {
    limit: u64,
    offset: u64,
    total: u64,
}

#[derive(Serialize)]
struct HistoryBody<'a> {
    history: Vec<HistoryItem<'a>>,
    pagination: HistoryPagination,
}

/// A count query parameter (a non-negative `int64`, else 400 naming it).
pub fn number_parameter(pairs: &[(String, String)], name: &str) -> ApiResult<Option<u64>> {
    Ok(tabula_actors::query::count_parameter(pairs, name)?)
}

/// The history of a record (live or trashed), newest first: `{history, pagination}`.
#[utoipa::path(get, path = "/api/tables/{table}/records/{id}/history", tag = "history",
    params(("table" = String, Path, description = "Table id or name"),
           ("id" = String, Path, description = "Record id"),
           ("limit" = Option<u64>, Query, description = "Entries per page (default 10, max 1000)"),
           ("offset" = Option<u64>, Query, description = "Entries to skip")),
    responses((status = 200, description = "`{history:[{id, action, createdAt, userId, changes:{before?, after?}}], pagination:{limit, offset, total}}`"),
              (status = 400, description = "Bad limit or offset"),
              (status = 404, description = "No such record")))]
pub async fn get_record_history(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
    request: HttpRequest,
) -> ApiResult<HttpResponse> {
    let (table, id) = path.into_inner();
    let access = caller.table(&state, &table, Action::Read)?;
    let handle = &access.handle;
    let record_id = parse_record_id(&id)?;
    access.check_rows(&[record_id])?;
    let pairs = query_pairs(&request)?;
    let limits = state.page_limits();
    let limit = number_parameter(&pairs, "limit")?
        .unwrap_or(limits.default_page_size)
        .min(limits.max_page_size);
    let offset = number_parameter(&pairs, "offset")?.unwrap_or(0);
    let mut page = record_history(&handle.shared, record_id, limit, offset)?;
    page.changes
        .iter_mut()
        .for_each(|change| access.strip_change(change));
    let body = HistoryBody {
        history: page
            .changes
            .iter()
            .map(|change| HistoryItem {
                id: change.entry.id.to_string(),
                action: change.entry.action.name(),
                created_at: clock::format_ms(change.entry.at),
                user_id: change.entry.user_id.as_deref(),
                changes: ChangesView::of(change),
            })
            .collect(),
        pagination: HistoryPagination {
            limit,
            offset,
            total: page.total,
        },
    };
    Ok(HttpResponse::Ok().json(body))
}
