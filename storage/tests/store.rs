//! Tests of the store: batches applied and read back, records found again after a restart,
//! record scans with a cursor, index range scans checked against a brute-force filter, unique
//! owners, the trash, and the table trees on disk.

mod common;

use std::ops::Bound;
use std::sync::atomic::{AtomicU32, Ordering as AtomicOrdering};

use proptest::prelude::*;
use tabula_storage::keys::{self, index_value_prefix, trash_key, unique_key};
use tabula_storage::pages;
use tabula_storage::{StorageError, Store, StoredRecord, TableStore, Value, WriteBatch};

use common::*;

/// Writes a record with its index entry on field `field_id` (as the table actor does).
fn create_record(table: &TableStore, record: &StoredRecord, field_id: u32) {
    let mut batch = WriteBatch::new();
    batch
        .put_record(record)
        .expect("a sample record can be encoded");
    batch.put_index_entry(field_id, record.value(field_id), record.id);
    batch.put_u64(keys::META_SEQUENCE, record.id);
    table.apply(batch).expect("apply a batch");
}

fn record_ids(table: &TableStore, after: Option<u64>, reverse: bool) -> Vec<u64> {
    table
        .records(after, reverse)
        .map(|record| record.expect("decode a stored record").id)
        .collect()
}

#[test]
fn a_batch_is_read_back() {
    let (_directory, store) = temporary_store();
    let table = store.table(1).expect("open a table");
    let record = sample_record(7);
    let mut batch = WriteBatch::new();
    assert!(batch.is_empty());
    batch.put_record(&record).expect("encode");
    batch.put_u64(keys::META_SEQUENCE, 7);
    batch.put_i64(keys::META_CREATED_AT, -5);
    assert!(!batch.is_empty());
    table.apply(batch).expect("apply");

    assert_eq!(table.get_record(7).expect("read"), Some(record));
    assert_eq!(table.get_record(8).expect("read"), None);
    assert_eq!(table.get_u64(keys::META_SEQUENCE).expect("read"), Some(7));
    assert_eq!(
        table.get_i64(keys::META_CREATED_AT).expect("read"),
        Some(-5)
    );
    assert_eq!(table.get_u64(keys::META_LIVE_COUNT).expect("read"), None);
}

#[test]
fn removals_in_a_batch_apply_with_the_puts() {
    let (_directory, store) = temporary_store();
    let table = store.table(1).expect("open a table");
    create_record(&table, &sample_record(1), 2);
    let mut batch = WriteBatch::new();
    batch.remove_record(1);
    batch.put_record(&sample_record(2)).expect("encode");
    table.apply(batch).expect("apply");
    assert_eq!(record_ids(&table, None, false), vec![2]);
}

#[test]
fn an_empty_batch_is_empty_however_it_is_made() {
    assert!(WriteBatch::new().is_empty());
    assert!(WriteBatch::default().is_empty());
    let (_directory, store) = temporary_store();
    let table = store.table(1).expect("open a table");
    table.apply(WriteBatch::default()).expect("apply nothing");
    assert_eq!(record_ids(&table, None, false), Vec::<u64>::new());
}

#[test]
fn tables_do_not_see_each_other() {
    let (_directory, store) = temporary_store();
    let first = store.table(1).expect("open a table");
    let second = store.table(2).expect("open a table");
    create_record(&first, &sample_record(1), 2);
    assert_eq!(second.get_record(1).expect("read"), None);
    assert_eq!(record_ids(&second, None, false), Vec::<u64>::new());
}

#[test]
fn durable_records_survive_a_restart() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let written: Vec<StoredRecord> = (1..=25).map(sample_record).collect();
    {
        let store = Store::open(directory.path()).expect("open");
        let table = store.table(4).expect("open a table");
        for record in &written {
            create_record(&table, record, 2);
            let mut batch = WriteBatch::new();
            batch.put(
                unique_key(1, record.value(1)),
                record.id.to_be_bytes().to_vec(),
            );
            table.apply(batch).expect("apply");
        }
        wait_durable(table.durable()).expect("the writes become durable");
        store.close().expect("close");
    }
    let store = Store::open(directory.path()).expect("reopen");
    assert_eq!(store.table_ids_on_disk(), vec![4]);
    let table = store.table(4).expect("open the table again");
    for record in &written {
        assert_eq!(
            table.get_record(record.id).expect("read"),
            Some(record.clone())
        );
        assert_eq!(
            table.unique_owner(1, record.value(1)).expect("read"),
            Some(record.id)
        );
    }
    assert_eq!(table.get_u64(keys::META_SEQUENCE).expect("read"), Some(25));
    let todo = index_value_prefix(2, &Value::Text("todo".into()));
    let indexed: Vec<u64> = table
        .index_ids(
            2,
            Bound::Included(todo.clone()),
            Bound::Included(todo),
            false,
        )
        .collect::<Result<_, _>>()
        .expect("scan the index");
    assert_eq!(indexed, (1..=25).collect::<Vec<u64>>());
}

#[test]
fn records_scan_in_id_order_after_a_cursor() {
    let (_directory, store) = temporary_store();
    let table = store.table(1).expect("open a table");
    // Written out of order, with gaps, and around byte boundaries of the big-endian id.
    let ids = [300u64, 2, 255, 1, 256, 9, 70_000, 3];
    for id in ids {
        create_record(&table, &sample_record(id), 2);
    }
    // Entries of other kinds (index, unique, trash, meta) must not show up as records.
    let mut batch = WriteBatch::new();
    batch.put(trash_key(9).to_vec(), Vec::new());
    batch.put(unique_key(1, &Value::Int(1)), 1u64.to_be_bytes().to_vec());
    table.apply(batch).expect("apply");

    let mut ascending = ids.to_vec();
    ascending.sort_unstable();
    let mut descending = ascending.clone();
    descending.reverse();
    assert_eq!(record_ids(&table, None, false), ascending);
    assert_eq!(record_ids(&table, None, true), descending);
    assert_eq!(
        record_ids(&table, Some(9), false),
        vec![255, 256, 300, 70_000]
    );
    assert_eq!(record_ids(&table, Some(0), false), ascending);
    assert_eq!(record_ids(&table, Some(70_000), false), Vec::<u64>::new());
    assert_eq!(record_ids(&table, Some(u64::MAX), false), Vec::<u64>::new());
    // `after` bounds the ids from below in both directions: (after, ∞), newest first.
    assert_eq!(
        record_ids(&table, Some(9), true),
        vec![70_000, 300, 256, 255]
    );
}

#[test]
fn a_damaged_record_is_an_error_not_a_panic() {
    let (_directory, store) = temporary_store();
    let table = store.table(1).expect("open a table");
    create_record(&table, &sample_record(1), 2);
    let good = tabula_storage::codec::encode(&sample_record(1)).expect("encode");
    let page = pages::encode_page([
        (1u8, &good[..]),
        (2, &[9u8, 1, 2, 3][..]),
        (3, &[1u8, 0xFF, 0xFF, 0xFF][..]),
    ]);
    table
        .tree()
        .insert(keys::page_key(0), page)
        .expect("write raw bytes");
    assert!(matches!(
        table.get_record(2),
        Err(StorageError::FormatVersion(9))
    ));
    assert!(matches!(
        table.get_record(3),
        Err(StorageError::Decode { .. })
    ));
    let outcomes: Vec<bool> = table
        .records(None, false)
        .map(|record| record.is_ok())
        .collect();
    assert_eq!(outcomes, vec![true, false, false]);
}

#[test]
fn unique_owner_finds_the_holder_of_a_value() {
    let (_directory, store) = temporary_store();
    let table = store.table(1).expect("open a table");
    let mut batch = WriteBatch::new();
    batch.put(
        unique_key(5, &Value::Text("ada@example.com".into())),
        11u64.to_be_bytes().to_vec(),
    );
    batch.put(unique_key(5, &Value::Int(42)), 12u64.to_be_bytes().to_vec());
    batch.put(
        unique_key(6, &Value::Text("ada@example.com".into())),
        13u64.to_be_bytes().to_vec(),
    );
    table.apply(batch).expect("apply");

    let owner = |field_id, value: Value| table.unique_owner(field_id, &value).expect("read");
    assert_eq!(owner(5, Value::Text("ada@example.com".into())), Some(11));
    assert_eq!(owner(6, Value::Text("ada@example.com".into())), Some(13));
    assert_eq!(owner(5, Value::Int(42)), Some(12));
    // Equal numbers share one unique entry whatever their variant.
    assert_eq!(owner(5, Value::Float(42.0)), Some(12));
    assert_eq!(owner(5, Value::Text("ADA@example.com".into())), None);
    assert_eq!(owner(5, Value::Text("ada@example.co".into())), None);
    assert_eq!(owner(7, Value::Int(42)), None);

    let mut batch = WriteBatch::new();
    batch.remove(unique_key(5, &Value::Int(42)));
    table.apply(batch).expect("apply");
    assert_eq!(owner(5, Value::Int(42)), None);
}

#[test]
fn trashed_ids_are_listed_in_id_order() {
    let (_directory, store) = temporary_store();
    let table = store.table(1).expect("open a table");
    let trashed = [512u64, 3, 1 << 40, 256, 1];
    let mut batch = WriteBatch::new();
    for id in trashed {
        batch.put_record(&sample_record(id)).expect("encode");
        batch.put(trash_key(id).to_vec(), Vec::new());
    }
    batch.put_record(&sample_record(2)).expect("encode");
    table.apply(batch).expect("apply");

    let listed: Vec<u64> = table
        .trashed_ids()
        .collect::<Result<_, _>>()
        .expect("scan the trash");
    assert_eq!(listed, vec![1, 3, 256, 512, 1 << 40]);

    let mut batch = WriteBatch::new();
    batch.remove(trash_key(256).to_vec());
    table.apply(batch).expect("restore one");
    let listed: Vec<u64> = table
        .trashed_ids()
        .collect::<Result<_, _>>()
        .expect("scan the trash");
    assert_eq!(listed, vec![1, 3, 512, 1 << 40]);
}

#[test]
fn table_ids_on_disk_and_drop_table() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    {
        let store = Store::open(directory.path()).expect("open");
        assert_eq!(store.table_ids_on_disk(), Vec::<u32>::new());
        for table_id in [20, 3, 1, u32::MAX] {
            let table = store.table(table_id).expect("open a table");
            create_record(&table, &sample_record(1), 2);
        }
        // System trees are not tables.
        store
            .system_tree("users")
            .expect("open a system tree")
            .insert(b"u1", b"x")
            .expect("write");
        let mut listed = store.table_ids_on_disk();
        listed.sort_unstable();
        assert_eq!(listed, vec![1, 3, 20, u32::MAX]);

        store.drop_table(3).expect("drop a table");
        let mut listed = store.table_ids_on_disk();
        listed.sort_unstable();
        assert_eq!(listed, vec![1, 20, u32::MAX]);
        // Dropping a table that does not exist is not an error.
        store.drop_table(999).expect("drop a missing table");
        wait_durable(store.durable()).expect("flush");
        store.close().expect("close");
    }
    let store = Store::open(directory.path()).expect("reopen");
    let mut listed = store.table_ids_on_disk();
    listed.sort_unstable();
    assert_eq!(listed, vec![1, 20, u32::MAX]);
    // A dropped table comes back empty when it is opened again.
    let table = store.table(3).expect("open the dropped table");
    assert_eq!(table.get_record(1).expect("read"), None);
    assert_eq!(table.get_u64(keys::META_SEQUENCE).expect("read"), None);
    let kept = store.table(20).expect("open a kept table");
    assert_eq!(kept.get_record(1).expect("read"), Some(sample_record(1)));
}

#[test]
fn the_store_reports_its_size_and_health() {
    let (_directory, store) = temporary_store();
    store.check_writable().expect("the store is writable");
    assert!(store.size_on_disk().expect("size") > 0);
    store.flush_blocking().expect("flush");
}

/// Index values with ties, several types and the awkward cases (-0.0, NUL bytes, prefixes).
fn pool_value() -> BoxedStrategy<Value> {
    prop_oneof![
        Just(Value::Null),
        Just(Value::Bool(false)),
        Just(Value::Bool(true)),
        (-3i64..=3).prop_map(Value::Int),
        prop::sample::select(vec![-2.5, -0.0, 0.5, 1.0, f64::INFINITY, f64::NEG_INFINITY])
            .prop_map(Value::Float),
        prop::sample::select(vec!["", "\0", "a", "a\0", "ab", "b", "é"])
            .prop_map(|text| Value::Text(text.to_owned())),
    ]
    .boxed()
}

fn bound(value: Option<(bool, Value)>) -> Bound<Value> {
    match value {
        None => Bound::Unbounded,
        Some((true, value)) => Bound::Included(value),
        Some((false, value)) => Bound::Excluded(value),
    }
}

fn encoded_bound(field_id: u32, bound: &Bound<Value>) -> Bound<Vec<u8>> {
    match bound {
        Bound::Unbounded => Bound::Unbounded,
        Bound::Included(value) => Bound::Included(index_value_prefix(field_id, value)),
        Bound::Excluded(value) => Bound::Excluded(index_value_prefix(field_id, value)),
    }
}

fn within(value: &Value, lower: &Bound<Value>, upper: &Bound<Value>) -> bool {
    use std::cmp::Ordering::{Greater, Less};
    let above_lower = match lower {
        Bound::Unbounded => true,
        Bound::Included(bound) => compare_index_values(value, bound) != Less,
        Bound::Excluded(bound) => compare_index_values(value, bound) == Greater,
    };
    let below_upper = match upper {
        Bound::Unbounded => true,
        Bound::Included(bound) => compare_index_values(value, bound) != Greater,
        Bound::Excluded(bound) => compare_index_values(value, bound) == Less,
    };
    above_lower && below_upper
}

/// A fresh table id per proptest case, so that cases can share one store.
fn next_table_id() -> u32 {
    static NEXT: AtomicU32 = AtomicU32::new(1);
    NEXT.fetch_add(1, AtomicOrdering::Relaxed)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn index_ranges_match_a_brute_force_filter(
        values in prop::collection::vec(pool_value(), 0..40),
        neighbours in prop::collection::vec(pool_value(), 0..6),
        lower in prop::option::of((any::<bool>(), pool_value())),
        upper in prop::option::of((any::<bool>(), pool_value())),
        reverse in any::<bool>(),
    ) {
        const FIELD: u32 = 7;
        let (_directory, store) = temporary_store();
        let table = store.table(next_table_id()).expect("open a table");
        let mut batch = WriteBatch::new();
        let mut entries = Vec::new();
        for (position, value) in values.into_iter().enumerate() {
            // Distinct ids (37 and 41 are coprime), out of insertion order, across a byte
            // boundary.
            let record_id = u64::try_from(position).expect("small") * 37 % 41 + 250;
            batch.put_index_entry(FIELD, &value, record_id);
            entries.push((value, record_id));
        }
        // Entries of the neighbouring fields must never leak into the scan.
        for (position, value) in neighbours.iter().enumerate() {
            let record_id = u64::try_from(position).expect("small");
            batch.put_index_entry(FIELD - 1, value, record_id);
            batch.put_index_entry(FIELD + 1, value, record_id);
        }
        table.apply(batch).expect("apply");

        let (lower, upper) = (bound(lower), bound(upper));
        let mut expected: Vec<(Value, u64)> = entries
            .into_iter()
            .filter(|(value, _)| within(value, &lower, &upper))
            .collect();
        expected.sort_by(|(left, left_id), (right, right_id)| {
            compare_index_values(left, right).then(left_id.cmp(right_id))
        });
        let mut expected: Vec<u64> = expected.into_iter().map(|(_, id)| id).collect();
        if reverse {
            expected.reverse();
        }

        let found: Vec<u64> = table
            .index_ids(FIELD, encoded_bound(FIELD, &lower), encoded_bound(FIELD, &upper), reverse)
            .collect::<Result<_, _>>()
            .expect("scan the index");
        prop_assert_eq!(found, expected, "lower {:?}, upper {:?}", lower, upper);
    }
}

#[test]
fn an_equality_scan_returns_the_matching_ids_in_order() {
    let (_directory, store) = temporary_store();
    let table = store.table(1).expect("open a table");
    let statuses = ["todo", "done", "doing", "todo\0", "tod"];
    let mut batch = WriteBatch::new();
    for id in 1..=100u64 {
        let position = usize::try_from(id).expect("small") % statuses.len();
        let status = Value::Text(statuses[position].into());
        batch.put_index_entry(2, &status, id);
    }
    table.apply(batch).expect("apply");
    let todo = index_value_prefix(2, &Value::Text("todo".into()));
    let first_twenty: Vec<u64> = table
        .index_ids(
            2,
            Bound::Included(todo.clone()),
            Bound::Included(todo),
            false,
        )
        .take(20)
        .collect::<Result<_, _>>()
        .expect("scan");
    let expected: Vec<u64> = (1..=100u64).filter(|id| id % 5 == 0).take(20).collect();
    assert_eq!(first_twenty, expected);
}

#[test]
fn an_empty_or_inverted_range_is_empty() {
    let (_directory, store) = temporary_store();
    let table = store.table(1).expect("open a table");
    let mut batch = WriteBatch::new();
    for id in 1..=10u64 {
        batch.put_index_entry(2, &Value::Int(i64::try_from(id).expect("small")), id);
    }
    table.apply(batch).expect("apply");
    let scan = |lower: Bound<Value>, upper: Bound<Value>| -> Vec<u64> {
        table
            .index_ids(2, encoded_bound(2, &lower), encoded_bound(2, &upper), false)
            .collect::<Result<_, _>>()
            .expect("scan")
    };
    assert_eq!(
        scan(
            Bound::Included(Value::Int(7)),
            Bound::Excluded(Value::Int(3))
        ),
        Vec::<u64>::new()
    );
    assert_eq!(
        scan(
            Bound::Excluded(Value::Int(5)),
            Bound::Excluded(Value::Int(5))
        ),
        Vec::<u64>::new()
    );
    assert_eq!(
        scan(
            Bound::Excluded(Value::Int(4)),
            Bound::Excluded(Value::Int(6))
        ),
        vec![5]
    );
}

#[test]
fn the_write_generation_moves_with_every_applied_batch_and_only_then() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let store = Store::open(directory.path()).expect("open");
    let table = store.table(1).expect("table");
    let same_table = store.table(1).expect("the same table again");
    let other_table = store.table(2).expect("another table");
    let before = table.generation().expect("no batch is being applied");
    assert_eq!(
        same_table.generation(),
        Some(before),
        "one generation per table"
    );

    table.apply(WriteBatch::new()).expect("an empty batch");
    assert_eq!(
        table.generation(),
        Some(before),
        "an empty batch changes nothing"
    );
    let other_before = other_table.generation();

    let mut batch = WriteBatch::new();
    batch.put_u64(keys::META_SEQUENCE, 1);
    table.apply(batch).expect("apply");
    let after = table.generation().expect("settled");
    assert_ne!(after, before);
    assert_eq!(same_table.generation(), Some(after));
    assert_eq!(
        other_table.generation(),
        other_before,
        "other tables keep theirs"
    );

    // Another data directory's table 1 never shares a generation with this one.
    let elsewhere = tempfile::tempdir().expect("a temporary directory");
    let other_store = Store::open(elsewhere.path()).expect("open");
    assert_ne!(
        other_store.table(1).expect("table").generation(),
        Some(after)
    );
}

#[test]
fn a_batch_reads_back_its_own_writes_and_rolls_back_to_its_savepoint() {
    let mut batch = WriteBatch::new();
    let record = sample_record(1);
    batch.put_record(&record).expect("encode");
    batch.put(
        unique_key(2, &Value::Text("a@x.org".into())),
        1u64.to_be_bytes().to_vec(),
    );
    batch.savepoint();
    batch.remove_record(1);
    batch.put(
        unique_key(2, &Value::Text("b@x.org".into())),
        2u64.to_be_bytes().to_vec(),
    );
    assert_eq!(
        batch.record(1).expect("decode"),
        Some(None),
        "removed in the batch"
    );
    assert_eq!(
        batch.unique_owner(2, &Value::Text("b@x.org".into())),
        Some(Some(2))
    );
    batch.rollback();
    assert_eq!(batch.record(1).expect("decode"), Some(Some(record)));
    assert_eq!(batch.unique_owner(2, &Value::Text("b@x.org".into())), None);
    assert_eq!(
        batch.unique_owner(2, &Value::Text("a@x.org".into())),
        Some(Some(1))
    );
    assert_eq!(batch.record(2).expect("decode"), None, "not in the batch");
    assert_eq!(batch.len(), 2);
}
