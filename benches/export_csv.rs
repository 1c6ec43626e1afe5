//! The speed of a CSV export: a table of N records (`TABULA_BENCH_RECORDS`, default 100 000,
//! filled through the table actor with batch creates of 1000) is exported with
//! `GET /api/tables/items/export?format=csv` through the real app in-process (`create_app` +
//! actix's test service: routing, the page producer on the blocking pool, the CSV writer, the
//! streamed body — everything but the socket). Also times the producer alone (the export pages
//! and the CSV writer, as the handler runs them) to split the cost. Reports records/s.
//!
//! `TABULA_BENCH_RECORDS=1000000 cargo bench --bench export_csv`

#[path = "support/mod.rs"]
mod support;

use std::time::Instant;

use actix_web::{test, web};
use tabula::state::AppState;
use tabula::transfer::{CsvFormulas, ExportWriter, Format};
use tabula_actors::query::execute::ListRequest;
use tabula_actors::query::export::{ExportPages, EXPORT_PAGE_SIZE};
use tabula_actors::table::CreateRecords;
use tabula_storage::Value;

const TABLES: &str = r#"
[auth]
enabled = false

[rate_limit]
tables_get = 0
tables_post = 0

[[tables]]
id = 1
name = "items"
search = []

  [[tables.fields]]
  id = 1
  name = "title"
  type = "single-line-text"

  [[tables.fields]]
  id = 2
  name = "status"
  type = "single-select"
  options = ["todo", "doing", "done"]
  indexed = true

  [[tables.fields]]
  id = 3
  name = "priority"
  type = "integer"

  [[tables.fields]]
  id = 4
  name = "notes"
  type = "long-text"
"#;

fn main() {
    let records = support::bench_records(100_000);
    tabula::telemetry::init_tracing("warn", false);
    let directory = tempfile::tempdir().expect("a temporary directory");
    let (config, schema) = support::load_config(directory.path(), TABLES);
    let system = actix_web::rt::System::new();
    let state = system
        .block_on(async { AppState::start(config, schema) })
        .expect("the app starts");
    let state = web::Data::new(state);
    let table = state.registry.resolve("items").expect("the table");
    system.block_on(async {
        let started = Instant::now();
        let mut written = 0;
        while written < records {
            let count = (records - written).min(1000);
            let batch = (0..count)
                .map(|index| {
                    let number = written + index;
                    vec![
                        ("title".to_owned(), Value::Text(format!("record {number}"))),
                        (
                            "status".to_owned(),
                            Value::Text(["todo", "doing", "done"][number % 3].into()),
                        ),
                        ("priority".to_owned(), Value::Int((number % 5) as i64)),
                        (
                            "notes".to_owned(),
                            Value::Text(format!("ship \"release\" {number}, before friday")),
                        ),
                    ]
                })
                .collect();
            table
                .addr
                .send(CreateRecords {
                    records: batch,
                    user_id: None,
                })
                .await
                .expect("the actor answers")
                .expect("the batch is written");
            written += count;
        }
        println!("filled {records} records in {:?}", started.elapsed());
    });

    // The producer alone: the pages and the CSV writer, as the handler's blocking task runs them.
    let shared = std::sync::Arc::clone(&table.shared);
    let table_schema = shared.schema();
    let request = ListRequest {
        limit: EXPORT_PAGE_SIZE,
        ..Default::default()
    };
    for _ in 0..2 {
        let started = Instant::now();
        let mut writer = ExportWriter::new(Format::Csv, CsvFormulas::Escape, &table_schema, None);
        let mut bytes = writer.start().expect("the header").len();
        for page in ExportPages::new(&shared, &request, EXPORT_PAGE_SIZE) {
            bytes += writer.page(&page.expect("a page")).expect("csv rows").len();
        }
        let elapsed = started.elapsed();
        assert_eq!(writer.written(), records as u64);
        println!(
            "producer: {records} records, {bytes} bytes in {elapsed:?} = {:.0} records/s",
            records as f64 / elapsed.as_secs_f64()
        );
    }

    // End to end through the HTTP handler.
    let service = system.block_on(test::init_service(tabula::create_app(state.clone())));
    for _ in 0..2 {
        system.block_on(async {
            let started = Instant::now();
            let request = test::TestRequest::get()
                .uri("/api/tables/items/export?format=csv")
                .to_request();
            let response = test::call_service(&service, request).await;
            assert_eq!(response.status().as_u16(), 200);
            let body = test::read_body(response).await;
            let elapsed = started.elapsed();
            let rows = body.iter().filter(|byte| **byte == b'\n').count();
            assert_eq!(rows, records + 1, "a header and one row per record");
            println!(
                "GET /export?format=csv: {records} records, {} bytes in {elapsed:?} = {:.0} records/s",
                body.len(),
                records as f64 / elapsed.as_secs_f64()
            );
        });
    }
    drop(service);
    state.shutdown();
}
