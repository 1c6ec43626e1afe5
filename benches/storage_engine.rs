//! Criterion benchmarks of the storage engine: point reads, index range scans and full scans over
//! a 100k-record table, the apply of one create batch, the ceiling sled sets for batches of 1000
//! records, and durable creates from concurrent writers sharing the group commit (reported as
//! writes per second).
//!
//! Run with `cargo bench --bench storage_engine`; the measurements take about two minutes.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{
    criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput,
};
use tabula_storage::keys::{self, index_value_prefix};
use tabula_storage::{Store, StoredRecord, TableStore, Value, WriteBatch};

/// Records in the read fixture.
const FIXTURE_RECORDS: u64 = 100_000;
/// The indexed status field and its values (each held by a fifth of the records).
const STATUS_FIELD: u32 = 2;
const STATUSES: [&str; 5] = ["todo", "doing", "review", "done", "archived"];
/// The indexed number field.
const NUMBER_FIELD: u32 = 3;

fn status_of(record_id: u64) -> &'static str {
    let position = usize::try_from(record_id % 5).expect("a remainder of 5 fits a usize");
    STATUSES[position]
}

fn sample_record(record_id: u64) -> StoredRecord {
    let mut fields = BTreeMap::new();
    fields.insert(1, Value::Text(format!("task number {record_id}")));
    fields.insert(STATUS_FIELD, Value::Text(status_of(record_id).into()));
    fields.insert(
        NUMBER_FIELD,
        Value::Int(i64::try_from(record_id % 1000).expect("a remainder of 1000 fits an i64")),
    );
    fields.insert(4, Value::Text("a short description of the task".into()));
    StoredRecord {
        id: record_id,
        fields,
        created_at: 1_700_000_000_000,
        updated_at: 1_700_000_000_000,
        created_by: Some("user-1".into()),
        updated_by: None,
        deleted_at: None,
        deleted_by: None,
        cascade_parent: None,
        history: Vec::new(),
    }
}

/// Adds what the table actor writes for a create: the record, its index entries and counters.
fn add_create(batch: &mut WriteBatch, record: &StoredRecord) {
    batch
        .put_record(record)
        .expect("a sample record can be encoded");
    for field_id in [STATUS_FIELD, NUMBER_FIELD] {
        batch.put_index_entry(field_id, record.value(field_id), record.id);
    }
    batch.put_u64(keys::META_SEQUENCE, record.id);
    batch.put_u64(keys::META_LIVE_COUNT, record.id);
}

/// A store in a temporary directory (removed on drop) with one table.
struct Fixture {
    _directory: tempfile::TempDir,
    store: Store,
    table: TableStore,
}

impl Fixture {
    fn empty() -> Self {
        let directory = tempfile::tempdir().expect("a temporary directory for the bench");
        let store = Store::open(directory.path()).expect("open the store");
        let table = store.table(1).expect("open the table tree");
        Fixture {
            _directory: directory,
            store,
            table,
        }
    }

    fn with_records(count: u64) -> Self {
        let fixture = Fixture::empty();
        let mut batch = WriteBatch::new();
        for record_id in 1..=count {
            add_create(&mut batch, &sample_record(record_id));
            if record_id % 1000 == 0 {
                fixture
                    .table
                    .apply(std::mem::take(&mut batch))
                    .expect("apply");
            }
        }
        fixture.table.apply(batch).expect("apply");
        fixture.store.flush_blocking().expect("flush the fixture");
        fixture
    }
}

/// A cheap deterministic sequence of record ids (xorshift), so reads do not follow key order.
struct RandomIds {
    state: u64,
    count: u64,
}

impl RandomIds {
    fn next(&mut self) -> u64 {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        self.state % self.count + 1
    }
}

fn reads(criterion: &mut Criterion) {
    let fixture = Fixture::with_records(FIXTURE_RECORDS);
    let table = &fixture.table;

    let mut group = criterion.benchmark_group("read_100k");
    group
        .sample_size(50)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));

    let mut ids = RandomIds {
        state: 0x9E37_79B9_7F4A_7C15,
        count: FIXTURE_RECORDS,
    };
    group.bench_function("get_record (random id)", |bench| {
        bench.iter(|| {
            table
                .get_record(ids.next())
                .expect("read")
                .expect("the record exists")
        })
    });

    let todo = index_value_prefix(STATUS_FIELD, &Value::Text("todo".into()));
    group.bench_function("index_ids status = todo, first 20", |bench| {
        bench.iter(|| {
            let found: Vec<u64> = table
                .index_ids(
                    STATUS_FIELD,
                    Bound::Included(todo.clone()),
                    Bound::Included(todo.clone()),
                    false,
                )
                .take(20)
                .collect::<Result<_, _>>()
                .expect("scan the index");
            assert_eq!(found.len(), 20);
            found
        })
    });
    group.bench_function("index_ids status = todo, first 20 + records", |bench| {
        bench.iter(|| {
            let records: Vec<StoredRecord> = table
                .index_ids(
                    STATUS_FIELD,
                    Bound::Included(todo.clone()),
                    Bound::Included(todo.clone()),
                    false,
                )
                .take(20)
                .map(|record_id| {
                    let record_id = record_id.expect("scan the index");
                    table
                        .get_record(record_id)
                        .expect("read")
                        .expect("an indexed record exists")
                })
                .collect();
            records
        })
    });

    let low = index_value_prefix(NUMBER_FIELD, &Value::Int(100));
    let high = index_value_prefix(NUMBER_FIELD, &Value::Int(110));
    group.bench_function("index_ids 100 <= number < 110, first 20", |bench| {
        bench.iter(|| {
            let found: Vec<u64> = table
                .index_ids(
                    NUMBER_FIELD,
                    Bound::Included(low.clone()),
                    Bound::Excluded(high.clone()),
                    false,
                )
                .take(20)
                .collect::<Result<_, _>>()
                .expect("scan the index");
            found
        })
    });
    group.finish();

    let mut group = criterion.benchmark_group("scan_100k");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(8))
        .throughput(Throughput::Elements(FIXTURE_RECORDS));
    group.bench_function("records (decode all)", |bench| {
        bench.iter(|| {
            let mut count = 0u64;
            for record in table.records(None, false) {
                record.expect("decode");
                count += 1;
            }
            assert_eq!(count, FIXTURE_RECORDS);
            count
        })
    });
    group.finish();
}

fn single_creates(criterion: &mut Criterion) {
    let fixture = Fixture::empty();
    let mut group = criterion.benchmark_group("write");
    group
        .sample_size(50)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements(1));
    let mut next_id = 0u64;
    group.bench_function(
        "apply create batch (record + 2 index entries + counters)",
        |bench| {
            bench.iter(|| {
                next_id += 1;
                let mut batch = WriteBatch::new();
                add_create(&mut batch, &sample_record(next_id));
                fixture.table.apply(batch).expect("apply")
            })
        },
    );
    group.finish();

    // The ceiling sled sets for batch creates: 1000 records per atomic batch, with nothing but
    // the record key, and with the record and one index entry (the least a table with an
    // indexed field writes per record). Throughput is in records.
    let mut group = criterion.benchmark_group("write ceiling");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .throughput(Throughput::Elements(1000));
    for (name, with_index) in [
        ("1000 records a batch, record key only", false),
        ("1000 records a batch, record + 1 index entry", true),
    ] {
        let fixture = Fixture::empty();
        let mut next_id = 0u64;
        group.bench_function(name, |bench| {
            bench.iter(|| {
                let mut batch = WriteBatch::new();
                for _ in 0..1000 {
                    next_id += 1;
                    let record = sample_record(next_id);
                    batch.put_record(&record).expect("encode");
                    if with_index {
                        batch.put_index_entry(STATUS_FIELD, record.value(STATUS_FIELD), record.id);
                    }
                }
                fixture.table.apply(batch).expect("apply")
            })
        });
    }
    group.finish();
}

/// Creates `total` records durably from `writers` tasks; each task applies a create, takes a
/// ticket and awaits it before its next create, as a table actor's callers do.
async fn durable_creates_from(
    table: &TableStore,
    next_id: &Arc<AtomicU64>,
    writers: u64,
    total: u64,
) {
    let mut tasks = Vec::new();
    for writer in 0..writers {
        let share = total / writers + u64::from(writer < total % writers);
        let table = table.clone();
        let next_id = Arc::clone(next_id);
        tasks.push(tokio::spawn(async move {
            for _ in 0..share {
                let record_id = next_id.fetch_add(1, Ordering::Relaxed);
                let mut batch = WriteBatch::new();
                add_create(&mut batch, &sample_record(record_id));
                table.apply(batch).expect("apply");
                table.durable().wait().await.expect("durable");
            }
        }));
    }
    for task in tasks {
        task.await.expect("a writer task does not panic");
    }
}

fn durable_creates(criterion: &mut Criterion) {
    let fixture = Fixture::empty();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .build()
        .expect("a multi-thread runtime");
    let next_id = Arc::new(AtomicU64::new(1));

    let mut group = criterion.benchmark_group("durable_create");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
        .throughput(Throughput::Elements(1));
    for writers in [1u64, 16, 64] {
        let flushes_before = fixture.store.flush_count();
        let ids_before = next_id.load(Ordering::Relaxed);
        group.bench_with_input(
            BenchmarkId::new("concurrent writers", writers),
            &writers,
            |bench, &writers| {
                bench.iter_custom(|iterations| {
                    let started = Instant::now();
                    runtime.block_on(durable_creates_from(
                        &fixture.table,
                        &next_id,
                        writers,
                        iterations,
                    ));
                    started.elapsed()
                })
            },
        );
        let writes = next_id.load(Ordering::Relaxed) - ids_before;
        let flushes = fixture.store.flush_count() - flushes_before;
        println!(
            "durable_create with {writers} writers: {writes} writes shared {flushes} flushes \
             ({:.1} writes per flush)",
            writes as f64 / flushes.max(1) as f64
        );
    }
    group.finish();
}

criterion_group!(storage_engine, reads, single_creates, durable_creates);
criterion_main!(storage_engine);
