//! The cost of a live publish: a table of N records gets a new field with a default (every
//! record is rewritten with it), while a writer keeps creating records one at a time. Reports
//! the time until the new version is live and the writer's latency (p50/p99/max) before and
//! during the publish. The scenario runs through the real app state (schema publisher, table
//! actor, group commit), without HTTP.
//!
//! `TABULA_BENCH_RECORDS=1000000 cargo bench --bench schema_publish` (default 20 000 records).
//! `TABULA_BENCH_CHANGE=convert`: the indexed `status` field becomes single-line text instead,
//! a change that rewrites every record and index entry in one atomic batch (no online plan);
//! the peak RSS before and after the publish shows what that batch holds in memory.

#[path = "support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use tabula::state::AppState;
use tabula_actors::schema_publisher::{ChangeSchema, PublishMeta};
use tabula_actors::table::{CreateRecord, CreateRecords};
use tabula_storage::{FieldDef, FieldType, Schema, Value};

const TABLES: &str = r#"
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
  options = ["todo", "done"]
  indexed = true
"#;

fn percentile(sorted: &[Duration], fraction: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * fraction).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn report(label: &str, mut latencies: Vec<Duration>) {
    latencies.sort();
    println!(
        "{label}: {} writes, p50 {:?}, p99 {:?}, max {:?}",
        latencies.len(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or_default()
    );
}

fn main() {
    let records = support::bench_records(20_000);
    // The table actor logs each online migration (records, chunks, time) at info.
    tabula::telemetry::init_tracing("warn,tabula_actors::table=info", false);
    let directory = tempfile::tempdir().expect("a temporary directory");
    let (config, schema) = support::load_config(directory.path(), TABLES);
    actix_rt::System::new().block_on(async move {
        let state = AppState::start(config, schema).expect("the app starts");
        let table = state.registry.resolve("items").expect("the table");
        let started = Instant::now();
        let mut written = 0;
        while written < records {
            let count = (records - written).min(1000);
            let batch = (0..count)
                .map(|index| {
                    vec![
                        (
                            "title".to_owned(),
                            Value::Text(format!("record {}", written + index)),
                        ),
                        ("status".to_owned(), Value::Text("todo".into())),
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

        let write_one = |index: usize| {
            let addr = table.addr.clone();
            async move {
                let started = Instant::now();
                addr.send(CreateRecord {
                    fields: vec![("title".to_owned(), Value::Text(format!("live {index}")))],
                    user_id: None,
                })
                .await
                .expect("the actor answers")
                .expect("the write succeeds");
                started.elapsed()
            }
        };
        let mut baseline = Vec::new();
        for index in 0..200 {
            baseline.push(write_one(index).await);
        }
        report("before the publish", baseline);

        let publishing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let flag = std::sync::Arc::clone(&publishing);
        let publish_started = Instant::now();
        let writer = async move {
            let mut during = Vec::new();
            let mut index = 0;
            while flag.load(std::sync::atomic::Ordering::Acquire) {
                let latency = write_one(index).await;
                if latency > Duration::from_millis(50) {
                    println!(
                        "  slow write: {latency:?}, ended {:?} after the publish started",
                        publish_started.elapsed()
                    );
                }
                during.push(latency);
                index += 1;
            }
            during
        };
        let publisher = state.schema.addr.clone();
        let convert = std::env::var("TABULA_BENCH_CHANGE").is_ok_and(|change| change == "convert");
        let (rss, peak) = support::memory_mib();
        // The peak so far is the fill's: reset it (Linux) so the one after is the publish's.
        let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
        println!("before the publish: RSS {rss:.0} MiB, peak {peak:.0} MiB (peak reset: {reset})");
        let publish = async move {
            let started = Instant::now();
            let edit: tabula_actors::schema_publisher::SchemaEdit = if convert {
                Box::new(|snapshot: &mut Schema, _: &mut tabula_actors::schema_publisher::IdAllocator| {
                    if let Some(status) = snapshot.tables[0]
                        .fields
                        .iter_mut()
                        .find(|field| field.name == "status")
                    {
                        status.field_type = FieldType::SingleLineText;
                        status.options = None;
                    }
                    Ok(())
                })
            } else {
                Box::new(
                    |snapshot: &mut Schema, ids: &mut tabula_actors::schema_publisher::IdAllocator| {
                        let mut field =
                            FieldDef::new(ids.next_field_id(1), "flag", FieldType::Checkbox);
                        field.default = Some(Value::Bool(true));
                        snapshot.tables[0].fields.push(field);
                        Ok(())
                    },
                )
            };
            publisher
                .send(ChangeSchema {
                    edit,
                    meta: PublishMeta::default(),
                })
                .await
                .expect("the publisher answers")
                .expect("the publish succeeds");
            let elapsed = started.elapsed();
            publishing.store(false, std::sync::atomic::Ordering::Release);
            elapsed
        };
        let (during, until_live) = futures_util::join!(writer, publish);
        let (rss, peak) = support::memory_mib();
        println!(
            "{} live after {until_live:?} ({records} records rewritten); RSS {rss:.0} MiB, peak {peak:.0} MiB",
            if convert { "converted field" } else { "added field" }
        );
        report("during the publish", during);
        state.shutdown();
    });
}
