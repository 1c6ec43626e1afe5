//! `POST /api/query {sql}` (SPEC §9): read-only SQL for admins, compiled onto the query engine
//! (`tabula_actors::query::sql`), run off the HTTP workers within `limits.sql_timeout_ms` (the
//! budget is checked as the query reads, so a query over it stops). See docs/sql.md.

use std::sync::Arc;
use std::time::Instant;

use actix_web::{web, HttpResponse};
use serde_json::{json, Value as Json};
use tabula_actors::query::sql::run_sql;
use tabula_actors::DomainError;

use crate::auth::TableAdminCaller;
use crate::blocking::off_the_workers;
use crate::error::{ApiError, ApiResult};
use crate::json::from_value;
use crate::routes::records::parse_json_body;
use crate::state::AppState;

pub fn configure(config: &mut web::ServiceConfig) {
    config.service(super::resource("/api/query").post(run_query));
}

/// Runs one read-only `SELECT` → `{rows:[{column: value}], fields:[{name,type}], rowCount,
/// duration}` (duration in milliseconds).
#[utoipa::path(post, path = "/api/query", tag = "query",
    request_body(content = inline(super::request_docs::Sql), description = "`{sql}`: one SELECT (columns, *, COUNT(*), SUM/AVG/MIN/MAX) FROM one table [WHERE] [GROUP BY one column] [ORDER BY] [LIMIT] [OFFSET]"),
    responses((status = 200, description = "`{rows, fields:[{name,type}], rowCount, duration}`"),
              (status = 400, description = "Syntax error, anything but a supported SELECT (named in the message), unknown table or column, or over `limits.sql_timeout_ms` (`errors[{field:\"sql\"}]`, `details.timeoutMs`)"),
              (status = 401, description = "Authentication required"),
              (status = 403, description = "Not an admin")))]
pub async fn run_query(
    state: web::Data<AppState>,
    caller: TableAdminCaller,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let sql = match parse_json_body(&body)? {
        Json::Object(mut object) => match object.remove("sql") {
            Some(Json::String(sql)) => sql,
            Some(_) => return Err(ApiError::validation("sql", "'sql' must be a string")),
            None => return Err(ApiError::validation("sql", "'sql' is required")),
        },
        _ => {
            return Err(ApiError::validation(
                "body",
                "Request body must be a JSON object",
            ))
        }
    };
    let registry = Arc::clone(&state.registry);
    let principal = Arc::clone(&caller.0 .0);
    let started = Instant::now();
    let result = off_the_workers(move || {
        run_sql(&registry, &principal, &sql, &state.sql_budget()).map_err(|error| match error {
            DomainError::QueryTimedOut { limit_ms } => ApiError::query_timed_out(
                "sql",
                limit_ms,
                "narrow it with WHERE on an indexed field or a smaller LIMIT",
            ),
            other => other.into(),
        })
    })
    .await?;
    let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
    let rows: Vec<Json> = result
        .rows
        .iter()
        .map(|row| {
            let object: serde_json::Map<String, Json> = result
                .columns
                .iter()
                .zip(row)
                .map(|(column, value)| (column.name.clone(), from_value(value)))
                .collect();
            Json::Object(object)
        })
        .collect();
    let fields: Vec<Json> = result
        .columns
        .iter()
        .map(|column| json!({"name": column.name, "type": column.type_name}))
        .collect();
    Ok(HttpResponse::Ok().json(json!({
        "rows": rows,
        "fields": fields,
        "rowCount": result.rows.len(),
        "duration": (duration_ms * 1000.0).round() / 1000.0,
    })))
}
