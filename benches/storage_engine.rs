//! Criterion benchmarks of the storage engine: record writes with group commit, point reads.

use std::collections::BTreeMap;

use criterion::{criterion_group, criterion_main, Criterion};
use tabula_storage::{keys, Store, StoredRecord, Value, WriteBatch};

fn sample_record(id: u64) -> StoredRecord {
    let mut fields = BTreeMap::new();
    fields.insert(1, Value::Text(format!("task number {id}")));
    fields.insert(2, Value::Text("todo".into()));
    fields.insert(3, Value::Int(3));
    StoredRecord {
        id,
        fields,
        created_at: 1_700_000_000_000,
        updated_at: 1_700_000_000_000,
        created_by: None,
        updated_by: None,
        deleted_at: None,
        deleted_by: None,
    }
}

fn point_reads(criterion: &mut Criterion) {
    let directory = tempfile::tempdir().expect("a temporary directory for the bench");
    let store = Store::open(directory.path()).expect("open the store");
    let table = store.table(1).expect("open the table tree");
    for id in 1..=10_000u64 {
        let mut batch = WriteBatch::new();
        batch.put_record(&sample_record(id)).expect("encode");
        batch.put_u64(keys::META_SEQUENCE, id);
        table.apply(batch).expect("apply");
    }
    let mut id = 0u64;
    criterion.bench_function("get_record (10k records)", |bench| {
        bench.iter(|| {
            id = id % 10_000 + 1;
            table.get_record(id).expect("read")
        })
    });
}

criterion_group!(benches, point_reads);
criterion_main!(benches);
