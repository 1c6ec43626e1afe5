//! Export and import of a table's records (SPEC §9): `GET /api/tables/{t}/export` streams the
//! filtered, sorted set as CSV or JSON page by page; `POST /api/tables/{t}/import` creates
//! records from a CSV or JSON body through the table actor's atomic batch create. The formats
//! live in `crate::transfer`; docs/export-import.md explains the decisions.

use std::sync::Arc;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use tabula_actors::permissions::Action;
use tabula_actors::query::export::{ExportPages, EXPORT_PAGE_SIZE};

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::json::parse_value;
use crate::routes::records::query_pairs;
use crate::state::AppState;
use crate::transfer::{
    import_rows, parse_rows, rows_failed, CsvFormulas, ExportWriter, Format, CSV_FORMULAS_PARAMETER,
};

/// The values of `csvFormulas`, for the OpenAPI document.
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)] // Only its schema is used; the parameter is read by `CsvFormulas::parse`.
pub enum CsvFormulasParameter {
    Escape,
    Raw,
}

pub fn configure(config: &mut web::ServiceConfig) {
    config
        .service(super::resource("/api/tables/{table}/export").get(export_records))
        .service(super::resource("/api/tables/{table}/import").post(import_records));
}

fn parameter<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
}

/// How many pages may wait between the page producer and the socket.
const PAGES_IN_FLIGHT: usize = 4;

/// Streams every record the caller may read that the filter matches, in the requested order.
#[utoipa::path(get, path = "/api/tables/{table}/export", tag = "transfer",
    params(("table" = String, Path, description = "Table id or name"),
           ("format" = inline(Option<super::request_docs::TransferFormat>), Query, description = "`json` (default) or `csv`"),
           ("filter" = Option<String>, Query, description = "Any filter spelling of the list endpoint"),
           ("sort" = Option<String>, Query, description = "`priority:desc,createdAt:asc` or `-priority`"),
           ("fields" = Option<String>, Query, description = "The fields to export (`id` always is)"),
           ("limit" = Option<u64>, Query, description = "At most this many records (default: all)"),
           ("csvFormulas" = inline(Option<CsvFormulasParameter>), Query, description = "CSV only. `escape` (default): a text cell starting with `=`, `+`, `-`, `@`, tab, carriage return or `'` is written with a `'` in front, so spreadsheets show it as text instead of running it; numbers of numeric fields are written as they are. `raw`: every cell as stored")),
    responses((status = 200, description = "CSV (header `id,<fields…>`, RFC 4180, formula cells escaped unless `csvFormulas=raw`) or a JSON array of records in the API shape, streamed"),
              (status = 400, description = "Unknown format or csvFormulas, bad filter/sort/fields, or the first page did not finish within `limits.query_timeout_ms` (`errors[{field:\"query\"}]`, `details.timeoutMs`; a later page over it cuts the body short)"),
              (status = 401, description = "Authentication required"),
              (status = 404, description = "No such table")))]
pub async fn export_records(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    request: HttpRequest,
) -> ApiResult<HttpResponse> {
    let access = caller.table(&state, &path, Action::Read)?;
    let pairs = query_pairs(&request)?;
    let format = match parameter(&pairs, "format") {
        Some(text) => Format::parse(text)?,
        None => Format::Json,
    };
    let formulas = CsvFormulas::from_parameter(parameter(&pairs, CSV_FORMULAS_PARAMETER))?;
    let max_records = super::history::number_parameter(&pairs, "limit")?;
    // The list parser would clamp `limit` to a page; the export reads it itself.
    let list_pairs: Vec<(String, String)> = pairs
        .iter()
        .filter(|(key, _)| !matches!(key.as_str(), "format" | "limit" | CSV_FORMULAS_PARAMETER))
        .cloned()
        .collect();
    let mut list_request = access.list_request(&list_pairs, state.page_limits(), parse_value)?;
    // Each page gets the budget anew (`ExportPages`).
    list_request.budget = state.query_budget();
    let shared = Arc::clone(&access.handle.shared);
    let schema = Arc::clone(&access.schema);
    let table_name = access.full_schema.name.clone();
    let (sender, receiver) =
        tokio::sync::mpsc::channel::<Result<web::Bytes, std::io::Error>>(PAGES_IN_FLIGHT);
    // Whether the first page could be read: until then no status is sent, so a query that
    // fails from the start (over its budget, a storage error) is an envelope, not a cut body.
    let (first_page_sender, first_page) = tokio::sync::oneshot::channel::<ApiResult<()>>();
    actix_web::rt::task::spawn_blocking(move || {
        let mut pages =
            ExportPages::with_limit(&shared, &list_request, EXPORT_PAGE_SIZE, max_records);
        let first = match pages.next().transpose() {
            Ok(first) => first,
            Err(error) => {
                let _ = first_page_sender.send(Err(error.into()));
                return;
            }
        };
        if first_page_sender.send(Ok(())).is_err() {
            return;
        }
        let mut writer = ExportWriter::new(
            format,
            formulas,
            &schema,
            list_request.projection.as_deref(),
        );
        let send = |chunk: std::io::Result<Vec<u8>>| match chunk {
            Ok(bytes) if bytes.is_empty() => true,
            Ok(bytes) => sender.blocking_send(Ok(web::Bytes::from(bytes))).is_ok(),
            Err(error) => {
                let _ = sender.blocking_send(Err(error));
                false
            }
        };
        if !send(writer.start()) {
            return;
        }
        for page in first.map(Ok).into_iter().chain(pages) {
            let chunk = match page {
                Ok(records) => writer.page(&records),
                Err(error) => {
                    // The status line is already sent: the body is cut short and the cause
                    // logged.
                    tracing::error!(table = %schema.name, %error, "export failed part-way");
                    Err(std::io::Error::other("export failed"))
                }
            };
            // A client that went away closes the channel: stop reading the table.
            if !send(chunk) {
                return;
            }
        }
        send(Ok(writer.finish()));
    });
    first_page
        .await
        .map_err(|_| ApiError::internal("the export stopped before its first page"))??;
    let body = futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|item| (item, receiver))
    });
    Ok(HttpResponse::Ok()
        .content_type(format.content_type())
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!(
                "attachment; filename=\"{table_name}.{}\"",
                format.extension()
            ),
        ))
        .streaming(body))
}

/// Creates records from a CSV (header row of field names) or JSON (array of flat or
/// `{fields}` objects) body: up to 1000 rows all or nothing, more in atomic 1000-row chunks.
#[utoipa::path(post, path = "/api/tables/{table}/import", tag = "transfer",
    params(("table" = String, Path, description = "Table id or name"),
           ("format" = inline(Option<super::request_docs::TransferFormat>), Query, description = "`csv` or `json`; default from Content-Type (`text/csv`, `application/json`), else guessed from the body"),
           ("csvFormulas" = inline(Option<CsvFormulasParameter>), Query, description = "CSV only. `escape` (default): one leading `'` is removed from a cell when `=`, `+`, `-`, `@`, tab, carriage return or `'` follows it, undoing an escaped export; `raw`: every cell as it is")),
    request_body(content = String, description = "CSV with a header row, or a JSON array of objects", content_type = "text/csv"),
    responses((status = 200, description = "`{imported, failed, errors:[{row, field, message}]}`"),
              (status = 400, description = "A bad row in an import of at most 1000 rows (`errors[{row, field, message}]`; nothing written), unknown column, bad format or csvFormulas"),
              (status = 401, description = "Authentication required"),
              (status = 403, description = "No create permission, or a field the caller may not write"),
              (status = 404, description = "No such table"),
              (status = 409, description = "A unique value clashes in an import of at most 1000 rows; nothing written"),
              (status = 413, description = "Body over `server.max_body_bytes`"),
              (status = 503, description = "The table has too many writes in progress (`limits.table_write_queue`): nothing written; retry after `Retry-After` seconds")))]
pub async fn import_records(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    request: HttpRequest,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let access = caller.table(&state, &path, Action::Create)?;
    let pairs = query_pairs(&request)?;
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok());
    let format = Format::for_import(parameter(&pairs, "format"), content_type, &body)?;
    let formulas = CsvFormulas::from_parameter(parameter(&pairs, CSV_FORMULAS_PARAMETER))?;
    let schema = Arc::clone(&access.schema);
    let rows = web::block(move || parse_rows(format, formulas, &schema, &body))
        .await
        .map_err(|error| ApiError::internal(error.to_string()))?
        .map_err(|errors| rows_failed(&errors))?;
    let outcome = import_rows(
        &state.registry,
        &access,
        rows,
        caller.acting_user(),
        &mut |_| {},
    )
    .await?;
    Ok(HttpResponse::Ok().json(outcome.to_json()))
}
