//! The activity log (SPEC §6): `GET /api/activity` (every table's entries merged newest first,
//! filtered and paged) and `GET /api/activity/{id}` (one entry with its changes).

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Arc;

use tabula_actors::accounts::User;
use tabula_actors::activity::{
    activity_entry, list_visible_activity, parse_activity_query, ActivityItem,
};
use tabula_actors::clock;
use tabula_actors::permissions;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::routes::history::ChangesView;
use crate::routes::records::query_pairs;
use crate::state::AppState;

pub fn configure(config: &mut web::ServiceConfig) {
    config
        .service(super::resource("/api/activity").get(list_activities))
        .service(super::resource("/api/activity/{id}").get(get_activity));
}

/// Who made a change: the account's name and email while it exists (`null` once removed).
#[derive(Serialize)]
struct ActivityUser<'a> {
    id: &'a str,
    name: Option<&'a str>,
    email: Option<&'a str>,
}

/// One entry in the shape of SPEC §6; `changes` only on the detail endpoint.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ActivityView<'a> {
    id: String,
    created_at: String,
    user_id: Option<&'a str>,
    user: Option<ActivityUser<'a>>,
    action: &'static str,
    table_id: u32,
    table_name: &'a str,
    record_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    changes: Option<ChangesView<'a>>,
}

impl<'a> ActivityView<'a> {
    fn of(item: &'a ActivityItem, users: &'a HashMap<String, Arc<User>>) -> Self {
        let entry = &item.entry;
        let account = |id: &str| users.get(id);
        ActivityView {
            id: entry.id.to_string(),
            created_at: clock::format_ms(entry.at),
            user_id: entry.user_id.as_deref(),
            user: entry.user_id.as_deref().map(|id| ActivityUser {
                id,
                name: account(id).map(|user| user.name.as_str()),
                email: account(id).map(|user| user.email.as_str()),
            }),
            action: entry.action.name(),
            table_id: entry.table_id,
            table_name: &item.table_name,
            record_id: entry.record_id.to_string(),
            changes: item.changes.as_ref().map(ChangesView::of),
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ActivityPagination {
    total: u64,
    page: u64,
    page_size: u64,
    total_pages: u64,
}

#[derive(Serialize)]
struct ActivityListBody<'a> {
    activities: Vec<ActivityView<'a>>,
    pagination: ActivityPagination,
}

/// The activity log, newest first: `{activities, pagination:{total, page, pageSize, totalPages}}`.
#[utoipa::path(get, path = "/api/activity", tag = "activity",
    params(("page" = Option<u64>, Query, minimum = 1, description = "1-based page (default 1)"),
           ("pageSize" = Option<u64>, Query, minimum = 1, maximum = 100, description = "1..100 (default 50)"),
           ("tableName" = Option<String>, Query, description = "Only this table (name or id)"),
           ("action" = inline(Option<super::request_docs::ActivityAction>), Query, description = "create, update, delete, restore or permanent_delete"),
           ("userId" = Option<String>, Query, description = "Only changes by this user"),
           ("from" = Option<String>, Query, description = "From this time (RFC 3339 or date), inclusive"),
           ("to" = Option<String>, Query, description = "Up to this time, inclusive")),
    responses((status = 200, description = "`{activities, pagination}`"),
              (status = 400, description = "Bad pageSize, action or date")))]
pub async fn list_activities(
    state: web::Data<AppState>,
    caller: Caller,
    request: HttpRequest,
) -> ApiResult<HttpResponse> {
    caller.require_activity_reader()?;
    let mut query = parse_activity_query(&query_pairs(&request)?)?;
    let mut row_rules = HashMap::new();
    if !caller.unrestricted() {
        let readable = permissions::readable_tables(&caller, &state.registry);
        query.readable_tables = Some(readable.iter().map(|handle| handle.shared.id).collect());
        for handle in readable {
            let table_id = handle.shared.id;
            if let Some(access) = permissions::table_access(&caller, handle)? {
                if let Some(rule) = access.row_rule() {
                    row_rules.insert(table_id, rule.clone());
                }
            }
        }
    }
    let page = list_visible_activity(&state.registry, &query, &row_rules)?;
    let users = acting_users(&state, &page.items)?;
    let body = ActivityListBody {
        activities: page
            .items
            .iter()
            .map(|item| ActivityView::of(item, &users))
            .collect(),
        pagination: ActivityPagination {
            total: page.total,
            page: query.page,
            page_size: query.page_size,
            total_pages: page.total.div_ceil(query.page_size.max(1)),
        },
    };
    Ok(HttpResponse::Ok().json(body))
}

/// One activity entry with its `changes` (the entry itself is the body).
#[utoipa::path(get, path = "/api/activity/{id}", tag = "activity",
    params(("id" = String, Path, description = "Activity entry id")),
    responses((status = 200, description = "The entry with `changes:{before?, after?}`"),
              (status = 400, description = "Malformed id"),
              (status = 404, description = "No such entry")))]
pub async fn get_activity(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    caller.require_activity_reader()?;
    let mut item = activity_entry(&state.registry, &path)?;
    let entry = &item.entry;
    let not_found = || ApiError::not_found(format!("Activity entry {} not found", entry.id));
    let handle = state.registry.by_id(entry.table_id).ok_or_else(not_found)?;
    let access = permissions::table_access(&caller, handle)?.ok_or_else(not_found)?;
    if access.has_row_rule() {
        let record = access
            .handle
            .shared
            .store
            .get_record(entry.record_id)
            .map_err(tabula_actors::DomainError::from)?;
        if !record.is_some_and(|record| access.sees(&record)) {
            return Err(not_found());
        }
    }
    if let Some(changes) = &mut item.changes {
        access.strip_change(changes);
    }
    let users = acting_users(&state, std::slice::from_ref(&item))?;
    Ok(HttpResponse::Ok().json(ActivityView::of(&item, &users)))
}

/// The accounts that made the changes of `items` (from the accounts' cache), by id.
fn acting_users(state: &AppState, items: &[ActivityItem]) -> ApiResult<HashMap<String, Arc<User>>> {
    let mut users = HashMap::new();
    for user_id in items
        .iter()
        .filter_map(|item| item.entry.user_id.as_deref())
    {
        if !users.contains_key(user_id) {
            if let Some(user) = state.accounts.user(user_id)? {
                users.insert(user_id.to_owned(), user);
            }
        }
    }
    Ok(users)
}
