//! Criterion benchmarks of the record lifecycle (issue 4), through the real app in-process
//! (`create_app` + actix's test service: JSON parsing, the table actor, one atomic batch, the
//! durable group commit, rendering — everything but the socket):
//!
//! * `batch_create_1000`: POST /records/batch with 1000 records per request, on a table without
//!   full-text search and on one with it (throughput in records/s);
//! * `upsert_100_unique`: POST /records/upsert of 100 records merged on a unique field, half of
//!   them matching stored records (records/s);
//! * `single_create_x64`: 64 concurrent single creates sharing the group commit (creates/s);
//! * `journal_cost`: the storage side of a create applied with and without its history and
//!   activity entries (the A/B of what the journal adds to a create), alone and 32 to a batch.
//!
//! Run on one core: `taskset -c 0 cargo bench --bench lifecycle`.

#[path = "support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use actix_web::dev::{Service, ServiceResponse};
use actix_web::{test, web};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use futures_util::future::join_all;
use serde_json::json;
use tabula::state::AppState;
use tabula_storage::journal::{ChangeAction, ChangeEntry};
use tabula_storage::{keys, Store, StoredRecord, Value, WriteBatch};

const TABLES: &str = r#"
# Access control is measured separately (benches/http_auth.sh): off here, and no rate limits.
[auth]
enabled = false

[rate_limit]
tables_get = 0
tables_post = 0

[[tables]]
id = 1
name = "plain"
search = []

  [[tables.fields]]
  id = 1
  name = "title"
  type = "single-line-text"
  required = true

  [[tables.fields]]
  id = 2
  name = "status"
  type = "single-select"
  options = ["todo", "doing", "done"]
  default = "todo"
  indexed = true

  [[tables.fields]]
  id = 3
  name = "priority"
  type = "integer"

[[tables]]
id = 2
name = "searchable"
search = ["title", "notes"]

  [[tables.fields]]
  id = 1
  name = "title"
  type = "single-line-text"
  required = true

  [[tables.fields]]
  id = 2
  name = "status"
  type = "single-select"
  options = ["todo", "doing", "done"]
  default = "todo"
  indexed = true

  [[tables.fields]]
  id = 3
  name = "notes"
  type = "long-text"

[[tables]]
id = 3
name = "contacts"

  [[tables.fields]]
  id = 1
  name = "name"
  type = "single-line-text"
  required = true

  [[tables.fields]]
  id = 2
  name = "email"
  type = "email"
  unique = true

  [[tables.fields]]
  id = 3
  name = "visits"
  type = "integer"
"#;

/// A started app state on a temporary directory (kept alive with it).
struct Fixture {
    state: web::Data<AppState>,
    _directory: tempfile::TempDir,
}

fn start(system: &actix_web::rt::SystemRunner) -> Fixture {
    tabula::telemetry::init_tracing("warn", false);
    // As `tabula serve` does before its threads start (`server.batch_scheduling`, default on).
    tabula::scheduling::apply(true);
    let directory = tempfile::tempdir().expect("a temporary directory for the bench");
    let (config, schema) = support::load_config(directory.path(), TABLES);
    let state = system
        .block_on(async { AppState::start(config, schema) })
        .expect("the app starts");
    Fixture {
        state: web::Data::new(state),
        _directory: directory,
    }
}

async fn post_bytes<S, B>(service: &S, path: &str, body: web::Bytes) -> u16
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: actix_web::body::MessageBody,
{
    let request = test::TestRequest::post()
        .uri(path)
        .insert_header(("content-type", "application/json"))
        .set_payload(body)
        .to_request();
    let response = test::call_service(service, request).await;
    let status = response.status().as_u16();
    // Read the body so rendering is part of the measured work.
    let body = test::read_body(response).await;
    if status >= 400 {
        eprintln!("{path}: {status} {}", String::from_utf8_lossy(&body));
    }
    status
}

fn batch_body(table: &str, batch: u64) -> web::Bytes {
    let records: Vec<serde_json::Value> = (0..1000u64)
        .map(|item| {
            if table == "plain" {
                json!({"title": format!("task {batch}-{item}"), "status": "doing", "priority": item % 5})
            } else {
                json!({"title": format!("task {batch}-{item}"), "notes": format!("ship the release number {item} before friday")})
            }
        })
        .collect();
    web::Bytes::from(json!({ "records": records }).to_string())
}

fn batch_create(criterion: &mut Criterion) {
    let system = actix_web::rt::System::new();
    let fixture = start(&system);
    let service = system.block_on(test::init_service(tabula::create_app(
        fixture.state.clone(),
    )));
    let mut group = criterion.benchmark_group("batch_create_1000");
    group.throughput(Throughput::Elements(1000));
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(10));
    for table in ["plain", "searchable"] {
        let bodies: Vec<web::Bytes> = (0..8).map(|batch| batch_body(table, batch)).collect();
        let path = format!("/api/tables/{table}/records/batch");
        group.bench_function(table, |bench| {
            bench.iter_custom(|iterations| {
                system.block_on(async {
                    let started = Instant::now();
                    for iteration in 0..iterations {
                        let index = usize::try_from(iteration % 8).unwrap_or(0);
                        let status = post_bytes(&service, &path, bodies[index].clone()).await;
                        assert_eq!(status, 201);
                    }
                    started.elapsed()
                })
            })
        });
    }
    group.finish();
}

fn upsert(criterion: &mut Criterion) {
    let system = actix_web::rt::System::new();
    let fixture = start(&system);
    let service = system.block_on(test::init_service(tabula::create_app(
        fixture.state.clone(),
    )));
    // 10 000 stored contacts; each request matches 50 of them and creates 50 new ones.
    system.block_on(async {
        for chunk in 0..10u64 {
            let records: Vec<serde_json::Value> = (0..1000u64)
                .map(
                    |item| json!({"name": "c", "email": format!("c{}@x.org", chunk * 1000 + item)}),
                )
                .collect();
            let body = web::Bytes::from(json!({ "records": records }).to_string());
            assert_eq!(
                post_bytes(&service, "/api/tables/contacts/records/batch", body).await,
                201
            );
        }
    });
    let mut round = 0u64;
    let mut next_body = move || {
        round += 1;
        let records: Vec<serde_json::Value> = (0..100u64)
            .map(|item| {
                let email = if item % 2 == 0 {
                    format!("c{}@x.org", (round * 50 + item) % 10_000)
                } else {
                    format!("new{round}-{item}@x.org")
                };
                json!({"fields": {"name": "c", "email": email, "visits": item}})
            })
            .collect();
        web::Bytes::from(
            json!({"records": records, "fieldsToMergeOn": ["email"], "returnRecords": false})
                .to_string(),
        )
    };
    // `LIFECYCLE_UPSERT_REQUESTS=n`: exactly n requests and no measurement, for instruction
    // counts that do not depend on the machine's load (valgrind --tool=callgrind: the total of
    // n requests minus the total of 0 requests, divided by n).
    if let Some(requests) = std::env::var("LIFECYCLE_UPSERT_REQUESTS")
        .ok()
        .and_then(|value| value.parse::<u64>().ok())
    {
        let bodies: Vec<web::Bytes> = (0..requests).map(|_| next_body()).collect();
        system.block_on(async {
            for body in bodies {
                let status =
                    post_bytes(&service, "/api/tables/contacts/records/upsert", body).await;
                assert_eq!(status, 200);
            }
        });
        return;
    }
    let mut group = criterion.benchmark_group("upsert_100_unique");
    group.throughput(Throughput::Elements(100));
    group.sample_size(20);
    group.bench_function("half_updates", |bench| {
        bench.iter_custom(|iterations| {
            let bodies: Vec<web::Bytes> = (0..iterations).map(|_| next_body()).collect();
            system.block_on(async {
                let started = Instant::now();
                for body in bodies {
                    let status =
                        post_bytes(&service, "/api/tables/contacts/records/upsert", body).await;
                    assert_eq!(status, 200);
                }
                started.elapsed()
            })
        })
    });
    // Four clients at a time: each request is still one atomic commit, but while one waits for
    // its flush the actor applies the next (a lone client leaves the core idle during every
    // flush).
    group.throughput(Throughput::Elements(400));
    group.bench_function("half_updates_4_clients", |bench| {
        bench.iter_custom(|iterations| {
            let bodies: Vec<Vec<web::Bytes>> = (0..iterations)
                .map(|_| (0..4).map(|_| next_body()).collect())
                .collect();
            system.block_on(async {
                let started = Instant::now();
                for round in bodies {
                    let requests = round.into_iter().map(|body| {
                        post_bytes(&service, "/api/tables/contacts/records/upsert", body)
                    });
                    for status in join_all(requests).await {
                        assert_eq!(status, 200);
                    }
                }
                started.elapsed()
            })
        })
    });
    group.finish();
}

fn single_creates(criterion: &mut Criterion) {
    let system = actix_web::rt::System::new();
    let fixture = start(&system);
    let service = system.block_on(test::init_service(tabula::create_app(
        fixture.state.clone(),
    )));
    let body = web::Bytes::from(
        json!({"title": "a single task", "status": "todo", "priority": 3}).to_string(),
    );
    let mut group = criterion.benchmark_group("single_create_x64");
    group.throughput(Throughput::Elements(64));
    group.sample_size(20);
    group.bench_function("with_history_and_activity", |bench| {
        bench.iter_custom(|iterations| {
            system.block_on(async {
                let started = Instant::now();
                for _ in 0..iterations {
                    let requests = (0..64)
                        .map(|_| post_bytes(&service, "/api/tables/plain/records", body.clone()));
                    for status in join_all(requests).await {
                        assert_eq!(status, 201);
                    }
                }
                started.elapsed()
            })
        })
    });
    group.finish();
}

/// The storage side of a create, as the table actor writes it: the record, its index entry,
/// the id sequence and live count — and, with the journal, the journal group (one key holding
/// the change entries, ids from the store-wide generator) and each entry's id in its record.
/// Measured for a create applied alone (one writer) and for 32 creates sharing one batch (what
/// the table actor's pending batch does with concurrent single creates).
fn journal_cost(criterion: &mut Criterion) {
    let mut group = criterion.benchmark_group("journal_cost");
    for (name, with_journal, together) in [
        ("create_without_journal", false, 1u64),
        ("create_with_journal", true, 1),
        ("32_creates_sharing_a_batch_without_journal", false, 32),
        ("32_creates_sharing_a_batch_with_journal", true, 32),
    ] {
        // A store of its own for each variant, so that each measures its own writes and the
        // deferred work they leave to sled (run on one store one after the other, the variant
        // measured second met a larger tree; run alternately, each paid for the other's
        // deferred work), from the same empty start.
        let directory = tempfile::tempdir().expect("a temporary directory for the bench");
        let store = Store::open(directory.path()).expect("open the store");
        let table = store.table(1).expect("open the table tree");
        let mut next_id = 0u64;
        group.throughput(Throughput::Elements(together));
        group.bench_function(name, |bench| {
            bench.iter(|| journal_creates(&table, &mut next_id, with_journal, together))
        });
    }
    group.finish();
}

/// `together` creates in one batch, with or without their journal entries (see [`journal_cost`]).
fn journal_creates(
    table: &tabula_storage::TableStore,
    next_id: &mut u64,
    with_journal: bool,
    together: u64,
) {
    let mut batch = WriteBatch::new();
    let mut entries = Vec::new();
    for _ in 0..together {
        *next_id += 1;
        let mut fields = BTreeMap::new();
        fields.insert(1, Value::Text(format!("task number {next_id}")));
        fields.insert(2, Value::Text("todo".into()));
        fields.insert(3, Value::Int(3));
        let mut record = StoredRecord {
            id: *next_id,
            fields,
            created_at: 1_700_000_000_000,
            updated_at: 1_700_000_000_000,
            created_by: None,
            updated_by: None,
            deleted_at: None,
            deleted_by: None,
            cascade_parent: None,
            history: Vec::new(),
        };
        batch.put_index_entry(2, record.value(2), record.id);
        if with_journal {
            let entry = ChangeEntry {
                id: table.generate_id().expect("an id"),
                at: record.created_at,
                user_id: None,
                action: ChangeAction::Create,
                table_id: 1,
                record_id: record.id,
                before: None,
                after: Some(record.fields.clone()),
            };
            record.history.push(entry.id);
            entries.push(entry);
        }
        batch.put_record(&record).expect("encode");
    }
    batch.put_u64(keys::META_SEQUENCE, *next_id);
    batch.put_u64(keys::META_LIVE_COUNT, *next_id);
    batch.put_journal_group(*next_id, &entries).expect("encode");
    table.apply(batch).expect("apply");
}

criterion_group!(benches, batch_create, upsert, single_creates, journal_cost);
criterion_main!(benches);
