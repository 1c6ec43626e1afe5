//! `tabula export` and `tabula import`: the export and import of the HTTP API run directly on a
//! data directory, with a progress bar on stderr. They open the store themselves, so the server
//! must not be running on that directory (sled holds an exclusive lock; a locked directory is
//! reported as such). They act as the operator: no permission narrows them.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressStyle};
use tabula_actors::permissions::{self, Action, Principal, TableAccess};
use tabula_storage::Schema;

use crate::cli::{ExportArgs, ImportArgs};
use crate::config::{self, LoadOptions};
use crate::json::parse_value;
use crate::state::{AppState, StartError};
use crate::transfer::{export_to, import_rows, parse_rows, CsvFormulas, Format, ImportOutcome};

/// The errors of an import shown on stderr before "… and N more".
const ERRORS_SHOWN: usize = 20;

fn load_options(config: &Option<PathBuf>, data_dir: &Option<PathBuf>) -> LoadOptions {
    LoadOptions {
        config_path: config.clone(),
        data_dir: data_dir.clone(),
        ..LoadOptions::default()
    }
}

/// Opens the data directory and starts the table actors, as the server would.
fn open(options: &LoadOptions) -> Result<AppState, String> {
    let loaded = config::load(options).map_err(|error| error.to_string())?;
    let config = loaded.config;
    let data_dir = config.server.data_dir.clone();
    let schema = Schema {
        tables: config.tables.clone(),
    };
    AppState::start(config, schema).map_err(|error| match error {
        StartError::Store { cause, .. } if is_lock_error(&cause) => format!(
            "the data directory {} is in use by another process (is `tabula serve` running on \
             it?); stop the server first, or use GET /api/tables/{{table}}/export and POST \
             /api/tables/{{table}}/import on the running server",
            data_dir.display()
        ),
        other => other.to_string(),
    })
}

fn is_lock_error(cause: &str) -> bool {
    let cause = cause.to_ascii_lowercase();
    cause.contains("lock")
        || cause.contains("wouldblock")
        || cause.contains("temporarily unavailable")
}

fn table_access(state: &AppState, table: &str) -> Result<TableAccess, String> {
    permissions::authorize(
        &Principal::open_access(),
        &state.registry,
        table,
        Action::Read,
    )
    .map_err(|_| format!("no table '{table}' in this app"))
}

/// The format a path's extension names (`.csv`, `.json`).
fn format_of_path(path: &Path) -> Option<Format> {
    let extension = path.extension()?.to_str()?.to_ascii_lowercase();
    match extension.as_str() {
        "csv" => Some(Format::Csv),
        "json" => Some(Format::Json),
        _ => None,
    }
}

fn chosen_format(flag: Option<&str>, path: Option<&Path>) -> Result<Option<Format>, String> {
    match flag {
        Some(text) => Format::parse(text).map(Some).map_err(|error| error.message),
        None => Ok(path.and_then(format_of_path)),
    }
}

/// `--csv-formulas escape|raw`, `escape` when absent.
fn chosen_csv_formulas(flag: Option<&str>) -> Result<CsvFormulas, String> {
    CsvFormulas::from_parameter(flag).map_err(|error| format!("--csv-formulas: {}", error.message))
}

fn progress_bar(length: Option<u64>, what: &str) -> ProgressBar {
    let bar = match length {
        Some(length) => ProgressBar::new(length),
        None => ProgressBar::new_spinner(),
    };
    let template = match length {
        Some(_) => format!("{{bar:40}} {{pos}}/{{len}} {what} ({{elapsed}})"),
        None => format!("{{spinner}} {{pos}} {what} ({{elapsed}})"),
    };
    if let Ok(style) = ProgressStyle::with_template(&template) {
        bar.set_style(style);
    }
    bar
}

/// `tabula export`: writes the table (filtered, sorted, projected like the HTTP export) to a
/// file or stdout.
pub fn export(args: &ExportArgs) -> Result<(), String> {
    let format =
        chosen_format(args.format.as_deref(), args.output.as_deref())?.unwrap_or(Format::Json);
    let formulas = chosen_csv_formulas(args.csv_formulas.as_deref())?;
    actix_web::rt::System::new().block_on(async {
        let state = open(&load_options(&args.config, &args.data_dir))?;
        let outcome = (|| {
            let access = table_access(&state, &args.table)?;
            let mut pairs = Vec::new();
            for (name, value) in [
                ("filter", &args.filter),
                ("sort", &args.sort),
                ("fields", &args.fields),
            ] {
                if let Some(value) = value {
                    pairs.push((name.to_owned(), value.clone()));
                }
            }
            let request = access
                .list_request(&pairs, state.page_limits(), parse_value)
                .map_err(|error| error.to_string())?;
            let total = (request.filter.is_none()).then(|| access.handle.shared.live_count());
            let bar = progress_bar(total, "records");
            let mut out: Box<dyn Write> = match &args.output {
                Some(path) => {
                    Box::new(BufWriter::new(File::create(path).map_err(|error| {
                        format!("cannot create {}: {error}", path.display())
                    })?))
                }
                None => Box::new(BufWriter::new(std::io::stdout().lock())),
            };
            let written = export_to(&access, &request, format, formulas, &mut out, &mut |done| {
                bar.set_position(done)
            })?;
            bar.finish_and_clear();
            eprintln!("exported {written} records from '{}'", args.table);
            Ok(())
        })();
        state.shutdown();
        outcome
    })
}

/// `tabula import`: creates records from a CSV or JSON file, 1000 rows per atomic commit.
pub fn import(args: &ImportArgs) -> Result<(), String> {
    let mut body = Vec::new();
    File::open(&args.input)
        .and_then(|mut file| file.read_to_end(&mut body))
        .map_err(|error| format!("cannot read {}: {error}", args.input.display()))?;
    let format = chosen_format(args.format.as_deref(), Some(&args.input))?;
    let formulas = chosen_csv_formulas(args.csv_formulas.as_deref())?;
    actix_web::rt::System::new().block_on(async {
        let state = open(&load_options(&args.config, &args.data_dir))?;
        let outcome = async {
            let access = permissions::authorize(
                &Principal::open_access(),
                &state.registry,
                &args.table,
                Action::Create,
            )
            .map_err(|_| format!("no table '{}' in this app", args.table))?;
            let format = match format {
                Some(format) => format,
                None => Format::for_import(None, None, &body).map_err(|error| error.message)?,
            };
            let rows = parse_rows(format, formulas, &access.schema, &body)
                .map_err(|errors| describe_errors("the file was not imported", &errors))?;
            let bar = progress_bar(Some(u64::try_from(rows.len()).unwrap_or(u64::MAX)), "rows");
            let result = import_rows(&state.registry, &access, rows, None, &mut |done| {
                bar.set_position(done)
            })
            .await;
            bar.finish_and_clear();
            match result {
                Ok(outcome) => report(&args.table, &outcome),
                Err(error) => {
                    let rows: Vec<crate::transfer::RowError> = error
                        .errors
                        .iter()
                        .filter_map(|item| {
                            Some(crate::transfer::RowError::new(
                                item.row?,
                                &item.field,
                                &item.message,
                            ))
                        })
                        .collect();
                    if rows.is_empty() {
                        Err(format!("nothing was imported: {}", error.message))
                    } else {
                        Err(describe_errors("nothing was imported", &rows))
                    }
                }
            }
        }
        .await;
        state.shutdown();
        outcome
    })
}

fn describe_errors(headline: &str, errors: &[crate::transfer::RowError]) -> String {
    let mut text = format!("{headline}:");
    for error in errors.iter().take(ERRORS_SHOWN) {
        let field = if error.field.is_empty() {
            String::new()
        } else {
            format!(" {}:", error.field)
        };
        text.push_str(&format!("\n  row {}:{field} {}", error.row, error.message));
    }
    if errors.len() > ERRORS_SHOWN {
        text.push_str(&format!("\n  … and {} more", errors.len() - ERRORS_SHOWN));
    }
    text
}

fn report(table: &str, outcome: &ImportOutcome) -> Result<(), String> {
    eprintln!(
        "imported {} records into '{table}', {} failed",
        outcome.imported, outcome.failed
    );
    if outcome.failed == 0 {
        Ok(())
    } else {
        Err(describe_errors(
            &format!("{} rows were not imported", outcome.failed),
            &outcome.errors,
        ))
    }
}
