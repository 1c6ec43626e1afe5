//! `GET /api/admin/webhooks/deliveries` (SPEC §11): the webhook delivery log, newest first
//! (admin only).

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use crate::auth::TableAdminCaller;
use crate::error::ApiResult;
use crate::routes::records::query_pairs;
use crate::state::AppState;
use crate::webhooks::DELIVERY_LOG;

pub fn configure(config: &mut web::ServiceConfig) {
    config.service(super::resource("/api/admin/webhooks/deliveries").get(list_deliveries));
}

/// A non-negative integer query parameter, `default` when absent.
fn number(pairs: &[(String, String)], name: &str, default: usize) -> ApiResult<usize> {
    Ok(
        super::history::number_parameter(pairs, name)?.map_or(default, |number| {
            usize::try_from(number).unwrap_or(usize::MAX)
        }),
    )
}

/// The last deliveries (at most 1000 are kept), newest first; `table`, `status` narrow them.
#[utoipa::path(get, path = "/api/admin/webhooks/deliveries", tag = "realtime",
    params(("limit" = Option<u64>, Query, description = "Page size (default 50, max 1000)"),
           ("offset" = Option<u64>, Query, description = "Deliveries to skip"),
           ("table" = Option<String>, Query, description = "Only this table's deliveries"),
           ("status" = Option<String>, Query, description = "`pending`, `delivered` or `failed`")),
    responses((status = 200, description = "`{deliveries:[{id, table, url, action, eventId, recordId, status, attempts, responseStatus, error, createdAt, updatedAt}], pagination:{total, limit, offset}}`; `error` is null or the kind of the last failure: `refused: private address`, `invalid URL`, `connection failed`, `timeout`, `redirect not followed` or `HTTP <status>`"),
              (status = 401, description = "Not signed in"),
              (status = 403, description = "Not an admin")))]
pub async fn list_deliveries(
    state: web::Data<AppState>,
    admin: TableAdminCaller,
    request: HttpRequest,
) -> ApiResult<HttpResponse> {
    let pairs = query_pairs(&request)?;
    let limit = number(&pairs, "limit", 50)?.min(DELIVERY_LOG);
    let offset = number(&pairs, "offset", 0)?;
    let wanted = |name: &str| {
        pairs
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
    };
    let (table, status) = (wanted("table"), wanted("status"));
    let deliveries: Vec<_> = state
        .webhooks
        .deliveries()
        .into_iter()
        .filter(|delivery| table.as_deref().is_none_or(|table| delivery.table == table))
        .filter(|delivery| {
            // A key limited to some tables sees only their deliveries (a table renamed or
            // removed since is out of its reach).
            !admin.0.key_is_table_limited()
                || state
                    .registry
                    .resolve(&delivery.table)
                    .is_some_and(|handle| admin.0.key_reaches(&handle.shared.schema()))
        })
        .filter(|delivery| {
            status
                .as_deref()
                .is_none_or(|status| delivery.status == status)
        })
        .collect();
    let total = deliveries.len();
    let page: Vec<_> = deliveries.into_iter().skip(offset).take(limit).collect();
    Ok(HttpResponse::Ok().json(json!({
        "deliveries": page,
        "pagination": {"total": total, "limit": limit, "offset": offset},
    })))
}
