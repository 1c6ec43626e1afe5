//! Export and import formats and their runs, shared by the HTTP routes
//! (`GET /api/tables/{t}/export`, `POST /api/tables/{t}/import`) and the `tabula export` /
//! `tabula import` commands: CSV (RFC 4180, a header row of `id` and field names) and JSON (an
//! array of records in the API shape), cell ⇄ value conversion by field type, the escaping of
//! cells a spreadsheet would run as a formula ([`CsvFormulas`]), the page-by-page export writer
//! and the chunked import. See docs/export-import.md.

use std::io::Write;

use serde_json::{json, Value as Json};
use tabula_actors::permissions::TableAccess;
use tabula_actors::query::export::{ExportPages, EXPORT_PAGE_SIZE};
use tabula_actors::query::ListRequest;
use tabula_actors::registry::Registry;
use tabula_actors::table::CreateRecords;
use tabula_actors::validate::{WriteMode, SYSTEM_ATTRIBUTES};
use tabula_actors::{DomainError, FieldError};
use tabula_storage::{FieldDef, FieldType, StoredRecord, TableSchema, Value};

use crate::error::{ApiError, ApiResult};
use crate::json::{from_value, to_value, RecordView};

/// Rows per atomic commit of an import; an import of at most this many rows is all or nothing.
pub const IMPORT_CHUNK_ROWS: usize = 1000;

/// An export or import format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Json,
}

impl Format {
    /// `csv` or `json` (case-insensitive); anything else is a 400 naming `format`.
    pub fn parse(text: &str) -> ApiResult<Format> {
        match text.trim().to_ascii_lowercase().as_str() {
            "csv" => Ok(Format::Csv),
            "json" => Ok(Format::Json),
            other => Err(ApiError::validation(
                "format",
                format!("Unknown format '{other}' (expected csv or json)"),
            )),
        }
    }

    /// The import format: `?format=` when given, else the `Content-Type` (`text/csv`,
    /// `application/csv` → CSV; `application/json` → JSON), else a guess from the body (a JSON
    /// array starts with `[`).
    pub fn for_import(
        parameter: Option<&str>,
        content_type: Option<&str>,
        body: &[u8],
    ) -> ApiResult<Format> {
        if let Some(text) = parameter {
            return Format::parse(text);
        }
        let media_type = content_type
            .and_then(|value| value.split(';').next())
            .map(|value| value.trim().to_ascii_lowercase());
        match media_type.as_deref() {
            Some("text/csv" | "application/csv") => Ok(Format::Csv),
            Some("application/json") => Ok(Format::Json),
            _ => {
                let first = strip_bom(body)
                    .iter()
                    .find(|byte| !byte.is_ascii_whitespace());
                Ok(if first == Some(&b'[') {
                    Format::Json
                } else {
                    Format::Csv
                })
            }
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Csv => "text/csv; charset=utf-8",
            Format::Json => "application/json",
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Json => "json",
        }
    }
}

/// How CSV cells that a spreadsheet would run as a formula are written, and read back.
///
/// `Escape` (the default) follows OWASP's rule for CSV injection: a text cell that starts with
/// `=`, `+`, `-`, `@`, a tab or a carriage return — or with `'` itself, so that the escape can be
/// undone — is written with a `'` in front (`=1+1` → `'=1+1`, `'abc` → `''abc`), which
/// spreadsheets show as text. An escaping import strips one leading `'` when the character after
/// it is one of those or another `'`, so an export reads back to the same values; a `'` before
/// anything else is kept (`'hello` stays `'hello`). Numbers of numeric fields and the JSON text of
/// json fields are written as they are: a cell such as `-5` is a number to every spreadsheet,
/// never a formula. `Raw` writes and reads every cell as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CsvFormulas {
    #[default]
    Escape,
    Raw,
}

/// The query parameter (and, as `--csv-formulas`, the command-line flag) that chooses it.
pub const CSV_FORMULAS_PARAMETER: &str = "csvFormulas";

/// The characters a spreadsheet reads as the start of a formula (OWASP's list).
const FORMULA_STARTS: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

impl CsvFormulas {
    /// `escape` or `raw` (case-insensitive); anything else is a 400 naming `csvFormulas`.
    pub fn parse(text: &str) -> ApiResult<CsvFormulas> {
        match text.trim().to_ascii_lowercase().as_str() {
            "escape" => Ok(CsvFormulas::Escape),
            "raw" => Ok(CsvFormulas::Raw),
            _ => Err(ApiError::validation(
                CSV_FORMULAS_PARAMETER,
                format!("Unknown {CSV_FORMULAS_PARAMETER} '{text}' (expected escape or raw)"),
            )),
        }
    }

    /// The parameter's value, `Escape` when it is absent.
    pub fn from_parameter(text: Option<&str>) -> ApiResult<CsvFormulas> {
        text.map_or(Ok(CsvFormulas::Escape), CsvFormulas::parse)
    }

    /// A text value as its cell: `'` in front when escaping and it starts with a formula
    /// character or a `'`.
    fn write_text(self, text: &str) -> String {
        let needs_escape = text
            .chars()
            .next()
            .is_some_and(|first| first == '\'' || FORMULA_STARTS.contains(&first));
        if self == CsvFormulas::Escape && needs_escape {
            format!("'{text}")
        } else {
            text.to_owned()
        }
    }

    /// A cell as the value's text: one leading `'` removed when escaping and a formula
    /// character or a `'` follows it.
    fn read_cell(self, cell: &str) -> &str {
        if self == CsvFormulas::Raw {
            return cell;
        }
        match cell.strip_prefix('\'') {
            Some(rest)
                if rest
                    .chars()
                    .next()
                    .is_some_and(|next| next == '\'' || FORMULA_STARTS.contains(&next)) =>
            {
                rest
            }
            _ => cell,
        }
    }
}

fn strip_bom(bytes: &[u8]) -> &[u8] {
    bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes)
}

// ------------------------------------------------------------------------------------------
// Export

/// The fields an export writes: the projection (`fields=`) in schema order, else every field.
pub fn exported_fields<'s>(
    schema: &'s TableSchema,
    projection: Option<&[u32]>,
) -> Vec<&'s FieldDef> {
    schema
        .fields
        .iter()
        .filter(|field| projection.is_none_or(|ids| ids.contains(&field.id)))
        .collect()
}

/// One CSV cell: empty for no value, text as is (escaped as `formulas` says), numbers and
/// booleans in their JSON spelling, arrays (multi-select) as JSON text, and every value of a json
/// field as JSON text (a json string `"42"` is the cell `"42"`, quotes included, so it does not
/// read back as a number).
pub fn csv_cell(field_type: &FieldType, value: &Value, formulas: CsvFormulas) -> String {
    match value {
        Value::Null => String::new(),
        // A json field's cell is always JSON text, so a string value that looks like a number,
        // or the empty string, reads back as the same string. JSON text starts with a quote, a
        // bracket, a letter, a digit or the `-` of a negative number: never a formula.
        other if *field_type == FieldType::Json => from_value(other).to_string(),
        Value::Text(text) => formulas.write_text(text),
        Value::Bool(flag) => flag.to_string(),
        Value::Int(number) => number.to_string(),
        other => from_value(other).to_string(),
    }
}

/// Writes an export page by page: `start`, then `page` for each page, then `finish`.
pub struct ExportWriter<'a> {
    format: Format,
    formulas: CsvFormulas,
    schema: &'a TableSchema,
    projection: Option<&'a [u32]>,
    written: u64,
}

impl<'a> ExportWriter<'a> {
    /// A writer of `format`; a CSV export escapes formula cells as `formulas` says.
    pub fn new(
        format: Format,
        formulas: CsvFormulas,
        schema: &'a TableSchema,
        projection: Option<&'a [u32]>,
    ) -> Self {
        ExportWriter {
            format,
            formulas,
            schema,
            projection,
            written: 0,
        }
    }

    /// Records written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// The CSV header row, or the opening bracket of the JSON array.
    pub fn start(&self) -> std::io::Result<Vec<u8>> {
        match self.format {
            Format::Json => Ok(b"[".to_vec()),
            Format::Csv => {
                let mut writer = csv::Writer::from_writer(Vec::new());
                let mut header = vec!["id"];
                header.extend(
                    exported_fields(self.schema, self.projection)
                        .iter()
                        .map(|field| field.name.as_str()),
                );
                writer.write_record(&header)?;
                writer.into_inner().map_err(|error| error.into_error())
            }
        }
    }

    /// One page of records.
    pub fn page(&mut self, records: &[StoredRecord]) -> std::io::Result<Vec<u8>> {
        let mut out = Vec::new();
        match self.format {
            Format::Json => {
                for record in records {
                    if self.written > 0 {
                        out.push(b',');
                    }
                    let view = RecordView {
                        schema: self.schema,
                        record,
                        projection: self.projection,
                    };
                    serde_json::to_writer(&mut out, &view)?;
                    self.written += 1;
                }
            }
            Format::Csv => {
                let fields = exported_fields(self.schema, self.projection);
                let mut writer = csv::Writer::from_writer(&mut out);
                for record in records {
                    let mut row = Vec::with_capacity(fields.len() + 1);
                    row.push(record.id.to_string());
                    row.extend(fields.iter().map(|field| {
                        csv_cell(&field.field_type, record.value(field.id), self.formulas)
                    }));
                    writer.write_record(&row)?;
                    self.written += 1;
                }
                writer.flush()?;
            }
        }
        Ok(out)
    }

    /// The closing bracket of the JSON array (nothing for CSV).
    pub fn finish(&self) -> Vec<u8> {
        match self.format {
            Format::Json => b"]".to_vec(),
            Format::Csv => Vec::new(),
        }
    }
}

/// Runs a whole export into `out` (the command line's writer), calling `progress` with the
/// number of records written after each page. The HTTP route streams the same pages instead.
pub fn export_to(
    access: &TableAccess,
    request: &ListRequest,
    format: Format,
    formulas: CsvFormulas,
    out: &mut dyn Write,
    progress: &mut dyn FnMut(u64),
) -> Result<u64, String> {
    let schema = &access.schema;
    let mut writer = ExportWriter::new(format, formulas, schema, request.projection.as_deref());
    let io = |error: std::io::Error| error.to_string();
    out.write_all(&writer.start().map_err(io)?).map_err(io)?;
    for page in ExportPages::new(&access.handle.shared, request, EXPORT_PAGE_SIZE) {
        let page = page.map_err(|error| error.to_string())?;
        out.write_all(&writer.page(&page).map_err(io)?)
            .map_err(io)?;
        progress(writer.written());
    }
    out.write_all(&writer.finish()).map_err(io)?;
    out.flush().map_err(io)?;
    Ok(writer.written())
}

// ------------------------------------------------------------------------------------------
// Import

/// One problem with one imported row (`row` is 1-based among the data rows; 0 is the CSV
/// header row).
#[derive(Debug, Clone, PartialEq)]
pub struct RowError {
    pub row: u64,
    pub field: String,
    pub message: String,
}

impl RowError {
    pub fn new(row: u64, field: impl Into<String>, message: impl Into<String>) -> Self {
        RowError {
            row,
            field: field.into(),
            message: message.into(),
        }
    }

    pub fn to_json(&self) -> Json {
        json!({"row": self.row, "field": self.field, "message": self.message})
    }
}

/// The 400 of an import that wrote nothing: `errors[{row, field, message}]`.
pub fn rows_failed(errors: &[RowError]) -> ApiError {
    ApiError::fields(
        errors
            .iter()
            .map(|error| FieldError::in_row(error.row, &error.field, &error.message))
            .collect(),
    )
}

/// Whether an input column is left out of an import: system attributes (`id`, `createdAt`, …)
/// and read-only fields (autonumber, created/updated at/by) are assigned anew.
fn skipped_column(schema: &TableSchema, name: &str) -> bool {
    SYSTEM_ATTRIBUTES.contains(&name)
        || name == "deletedAt"
        || name == "deletedBy"
        || name == "commentCount"
        || schema
            .field_by_name(name)
            .is_some_and(|field| field.field_type.is_readonly())
}

/// A CSV cell converted by its field's type, after the escape of a formula cell is undone as
/// `formulas` says (in every column: `'-5` in a number column is -5). An empty cell is no value
/// (the field's default applies). Numbers, booleans (`true/false`, `yes/no`, `1/0`),
/// multi-select (a JSON array, or values separated by `;`) and json fields (JSON text, else the
/// text itself) are converted; what cannot be converted is passed on as text, so validation
/// reports the usual error.
pub fn csv_value(field: Option<&FieldDef>, cell: &str, formulas: CsvFormulas) -> Value {
    if cell.is_empty() {
        return Value::Null;
    }
    let cell = formulas.read_cell(cell);
    let text = || Value::Text(cell.to_owned());
    let Some(field) = field else {
        return text();
    };
    let trimmed = cell.trim();
    match field.field_type {
        FieldType::Integer | FieldType::Rating | FieldType::Autonumber => trimmed
            .parse::<i64>()
            .map(Value::Int)
            .unwrap_or_else(|_| text()),
        FieldType::Decimal | FieldType::Currency | FieldType::Percentage => {
            if let Ok(number) = trimmed.parse::<i64>() {
                Value::Int(number)
            } else {
                match trimmed.parse::<f64>() {
                    Ok(number) if number.is_finite() => Value::Float(number),
                    _ => text(),
                }
            }
        }
        FieldType::Checkbox => match trimmed.to_ascii_lowercase().as_str() {
            "true" | "yes" | "1" => Value::Bool(true),
            "false" | "no" | "0" => Value::Bool(false),
            _ => text(),
        },
        FieldType::MultiSelect => {
            if trimmed.starts_with('[') {
                if let Ok(items @ Json::Array(_)) = serde_json::from_str::<Json>(trimmed) {
                    return to_value(&items);
                }
            }
            Value::List(
                cell.split(';')
                    .map(str::trim)
                    .filter(|item| !item.is_empty())
                    .map(|item| Value::Text(item.to_owned()))
                    .collect(),
            )
        }
        FieldType::Json => serde_json::from_str::<Json>(cell)
            .map(|json| to_value(&json))
            .unwrap_or_else(|_| text()),
        _ => text(),
    }
}

/// The rows of a CSV import (header row first), converted by the types of `schema` (the
/// caller's view of the table). A header naming a field the caller does not know is an error
/// of row 0; a row with the wrong number of cells, an error of that row.
pub fn parse_csv(
    schema: &TableSchema,
    body: &[u8],
    formulas: CsvFormulas,
) -> Result<Vec<Vec<(String, Value)>>, Vec<RowError>> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(strip_bom(body));
    let header: Vec<String> = match reader.headers() {
        Ok(header) => header.iter().map(|name| name.trim().to_owned()).collect(),
        Err(error) => {
            return Err(vec![RowError::new(
                0,
                "body",
                format!("Invalid CSV: {error}"),
            )])
        }
    };
    let mut errors = Vec::new();
    let mut columns: Vec<Option<&FieldDef>> = Vec::with_capacity(header.len());
    let mut seen: Vec<&str> = Vec::new();
    for name in &header {
        if seen.contains(&name.as_str()) {
            errors.push(RowError::new(
                0,
                name,
                format!("Column '{name}' appears twice"),
            ));
        }
        seen.push(name);
        if skipped_column(schema, name) {
            columns.push(None);
            continue;
        }
        match schema.field_by_name(name) {
            Some(field) => columns.push(Some(field)),
            None => {
                errors.push(RowError::new(0, name, format!("Unknown field '{name}'")));
                columns.push(None);
            }
        }
    }
    if header.is_empty() || header.iter().all(String::is_empty) {
        errors.push(RowError::new(
            0,
            "body",
            "The CSV needs a header row of field names",
        ));
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let mut rows = Vec::new();
    for (index, record) in reader.records().enumerate() {
        let row = u64::try_from(index).unwrap_or(u64::MAX).saturating_add(1);
        let record = match record {
            Ok(record) => record,
            Err(error) => {
                errors.push(RowError::new(row, "", format!("Invalid CSV: {error}")));
                continue;
            }
        };
        if record.len() != header.len() {
            errors.push(RowError::new(
                row,
                "",
                format!(
                    "The row has {} values, the header has {} columns",
                    record.len(),
                    header.len()
                ),
            ));
            continue;
        }
        let fields = record
            .iter()
            .zip(&columns)
            .filter_map(|(cell, column)| {
                let field = (*column)?;
                Some((field.name.clone(), csv_value(Some(field), cell, formulas)))
            })
            .collect();
        rows.push(fields);
    }
    if errors.is_empty() {
        Ok(rows)
    } else {
        Err(errors)
    }
}

/// The rows of a JSON import: an array of flat objects or of `{fields:{…}}` objects (the
/// export's record shape: its `id` and system attributes are ignored).
pub fn parse_json_rows(
    schema: &TableSchema,
    body: &[u8],
) -> Result<Vec<Vec<(String, Value)>>, Vec<RowError>> {
    let document: Json = serde_json::from_slice(strip_bom(body))
        .map_err(|error| vec![RowError::new(0, "body", format!("Malformed JSON: {error}"))])?;
    let Json::Array(items) = document else {
        return Err(vec![RowError::new(
            0,
            "body",
            "A JSON import is an array of objects",
        )]);
    };
    let mut rows = Vec::with_capacity(items.len());
    let mut errors = Vec::new();
    for (index, item) in items.into_iter().enumerate() {
        let row = u64::try_from(index).unwrap_or(u64::MAX).saturating_add(1);
        let Json::Object(mut object) = item else {
            errors.push(RowError::new(row, "", "Each row must be a JSON object"));
            continue;
        };
        let entries = match object.remove("fields") {
            Some(Json::Object(fields)) => fields,
            Some(other) => {
                object.insert("fields".into(), other);
                object
            }
            None => object,
        };
        rows.push(
            entries
                .into_iter()
                .filter(|(name, _)| !skipped_column(schema, name))
                .map(|(name, value)| (name, to_value(&value)))
                .collect(),
        );
    }
    if errors.is_empty() {
        Ok(rows)
    } else {
        Err(errors)
    }
}

/// Parses an import body in `format` (a CSV one undoing formula escapes as `formulas` says).
pub fn parse_rows(
    format: Format,
    formulas: CsvFormulas,
    schema: &TableSchema,
    body: &[u8],
) -> Result<Vec<Vec<(String, Value)>>, Vec<RowError>> {
    match format {
        Format::Csv => parse_csv(schema, body, formulas),
        Format::Json => parse_json_rows(schema, body),
    }
}

/// What an import did: `{imported, failed, errors}`.
#[derive(Debug, Clone, Default)]
pub struct ImportOutcome {
    pub imported: u64,
    pub failed: u64,
    pub errors: Vec<RowError>,
}

impl ImportOutcome {
    pub fn to_json(&self) -> Json {
        json!({
            "imported": self.imported,
            "failed": self.failed,
            "errors": self.errors.iter().map(RowError::to_json).collect::<Vec<_>>(),
        })
    }
}

/// A batch error `records[3].email` as (3, `email`); `records[3]` as (3, ``).
fn batch_item_field(field: &str) -> Option<(usize, String)> {
    let rest = field.strip_prefix("records[")?;
    let (index, rest) = rest.split_once(']')?;
    let index = index.parse::<usize>().ok()?;
    Some((index, rest.strip_prefix('.').unwrap_or(rest).to_owned()))
}

/// A chunk's failure as row errors (`first_row` is the 1-based row of its first item).
fn chunk_errors(
    error: DomainError,
    first_row: u64,
    rows: usize,
) -> Result<Vec<RowError>, DomainError> {
    let to_row = |index: usize| first_row.saturating_add(u64::try_from(index).unwrap_or(u64::MAX));
    let field_errors = |errors: Vec<FieldError>| -> Vec<RowError> {
        errors
            .into_iter()
            .map(|error| match batch_item_field(&error.field) {
                Some((index, field)) => RowError::new(to_row(index), field, error.message),
                None => RowError::new(first_row, error.field, error.message),
            })
            .collect()
    };
    let last_row = to_row(rows.saturating_sub(1));
    match error {
        DomainError::Validation(errors) => Ok(field_errors(errors)),
        DomainError::BadRequest { errors, .. } => Ok(field_errors(errors)),
        DomainError::Conflict { message, field } => Ok(vec![RowError::new(
            first_row,
            field.unwrap_or_default(),
            format!("Rows {first_row}-{last_row} were not imported: {message}"),
        )]),
        other => Err(other),
    }
}

/// Imports `rows` through the table actor, [`IMPORT_CHUNK_ROWS`] per atomic commit, after the
/// caller's write checks. Up to one chunk: all or nothing (a bad row is a 400 with every row's
/// errors, a unique clash the batch's 409). More: each chunk commits or fails alone, and the
/// outcome counts and lists the failures. `progress` is told the rows done after each chunk.
pub async fn import_rows(
    registry: &Registry,
    access: &TableAccess,
    rows: Vec<Vec<(String, Value)>>,
    user_id: Option<String>,
    progress: &mut dyn FnMut(u64),
) -> ApiResult<ImportOutcome> {
    if rows.is_empty() {
        return Err(ApiError::validation("body", "There are no rows to import"));
    }
    // A field the caller may read but not write is a 403 for the whole import, before anything
    // is written (each chunk's own checks then only find per-row problems).
    let mut names: Vec<(String, Value)> = Vec::new();
    for row in &rows {
        for (name, _) in row {
            if !names.iter().any(|(known, _)| known == name) {
                names.push((name.clone(), Value::Null));
            }
        }
    }
    if let Err(DomainError::Forbidden(message)) =
        access.check_fields(&names, WriteMode::Create, None)
    {
        return Err(DomainError::Forbidden(message).into());
    }
    let atomic = rows.len() <= IMPORT_CHUNK_ROWS;
    let mut outcome = ImportOutcome::default();
    let mut first_row = 1u64;
    let mut remaining = rows.into_iter().peekable();
    while remaining.peek().is_some() {
        let chunk: Vec<Vec<(String, Value)>> = remaining.by_ref().take(IMPORT_CHUNK_ROWS).collect();
        let size = chunk.len();
        let size_u64 = u64::try_from(size).unwrap_or(u64::MAX);
        let result = match access.check_writes(registry, &chunk, WriteMode::Create) {
            Ok(()) => access
                .handle
                .send_write(CreateRecords {
                    records: chunk,
                    user_id: user_id.clone(),
                })
                .await
                .map_err(ApiError::from)?,
            Err(error) => Err(error),
        };
        match result {
            Ok(created) => {
                outcome.imported += u64::try_from(created.len()).unwrap_or(u64::MAX);
            }
            Err(error) => {
                if atomic {
                    return Err(match error {
                        DomainError::Validation(_) | DomainError::BadRequest { .. } => {
                            let errors =
                                chunk_errors(error, first_row, size).map_err(ApiError::from)?;
                            rows_failed(&errors)
                        }
                        other => ApiError::from(other),
                    });
                }
                outcome.failed += size_u64;
                outcome
                    .errors
                    .extend(chunk_errors(error, first_row, size).map_err(ApiError::from)?);
            }
        }
        first_row = first_row.saturating_add(size_u64);
        progress(first_row - 1);
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn formula_cells_are_escaped_and_the_escape_is_undone() {
        let escape = CsvFormulas::Escape;
        for (text, cell) in [
            ("=1+1", "'=1+1"),
            ("+1", "'+1"),
            ("-1", "'-1"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\tx", "'\tx"),
            ("\rx", "'\rx"),
            ("'abc", "''abc"),
            ("''", "'''"),
            ("plain", "plain"),
            (" =1", " =1"),
            ("a=1", "a=1"),
        ] {
            assert_eq!(escape.write_text(text), cell, "{text:?}");
            assert_eq!(escape.read_cell(cell), text, "{cell:?}");
            assert_eq!(CsvFormulas::Raw.write_text(text), text);
            assert_eq!(CsvFormulas::Raw.read_cell(cell), cell);
        }
        // A `'` before anything else is the value's own.
        assert_eq!(escape.read_cell("'hello"), "'hello");
        assert_eq!(escape.read_cell("'"), "'");
    }

    #[test]
    fn numbers_and_json_are_never_escaped() {
        let escape = CsvFormulas::Escape;
        assert_eq!(csv_cell(&FieldType::Integer, &Value::Int(-5), escape), "-5");
        assert_eq!(
            csv_cell(&FieldType::Decimal, &Value::Float(-2.5), escape),
            "-2.5"
        );
        assert_eq!(csv_cell(&FieldType::Json, &Value::Int(-3), escape), "-3");
        assert_eq!(
            csv_cell(&FieldType::Json, &Value::Text("=x".into()), escape),
            "\"=x\""
        );
        assert_eq!(
            csv_cell(
                &FieldType::SingleLineText,
                &Value::Text("-5".into()),
                escape
            ),
            "'-5"
        );
    }

    #[test]
    fn the_parameter_is_escape_or_raw() {
        assert_eq!(
            CsvFormulas::from_parameter(None).ok(),
            Some(CsvFormulas::Escape)
        );
        assert_eq!(CsvFormulas::parse("RAW").ok(), Some(CsvFormulas::Raw));
        assert_eq!(
            CsvFormulas::parse(" escape ").ok(),
            Some(CsvFormulas::Escape)
        );
        let error = CsvFormulas::parse("off").expect_err("not a mode");
        assert_eq!(error.errors[0].field, CSV_FORMULAS_PARAMETER);
    }

    proptest! {
        #[test]
        fn an_escaped_cell_reads_back_as_the_text_and_never_starts_a_formula(
            text in "[=+@'\t\r a-z-]{0,6}"
        ) {
            let cell = CsvFormulas::Escape.write_text(&text);
            prop_assert_eq!(CsvFormulas::Escape.read_cell(&cell), text.as_str());
            let first = cell.chars().next();
            prop_assert!(first.is_none_or(|first| !FORMULA_STARTS.contains(&first)));
        }
    }
}
