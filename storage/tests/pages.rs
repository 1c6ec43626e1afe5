//! Tests of record pages and index bitmaps: random sequences of record and index writes,
//! split into batches (some rolled back to a savepoint), checked against a plain map after
//! every batch; the page codec against damage; and the move of an earlier version's one key
//! per record and per index entry into pages and bitmaps when a table is opened.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;
use std::sync::atomic::{AtomicU32, Ordering};

use proptest::prelude::*;
use tabula_storage::keys::{self, index_value_prefix};
use tabula_storage::pages::{self, encode_page, merge_page, page_record, page_slots};
use tabula_storage::{codec, Store, StoredRecord, TableStore, Value, WriteBatch};

use common::*;

/// A fresh table id per proptest case, so that cases can share one store.
fn next_table_id() -> u32 {
    static NEXT: AtomicU32 = AtomicU32::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

const FIELD: u32 = 3;

/// One write of a random sequence.
#[derive(Debug, Clone)]
enum Write {
    /// A record written with `version` in its field 1 (a new one or a replacement).
    Put {
        id: u64,
        version: i64,
    },
    Remove {
        id: u64,
    },
    /// The record joins the index under one of a few values.
    Index {
        id: u64,
        value: u8,
    },
    Unindex {
        id: u64,
        value: u8,
    },
}

/// Ids over several pages and groups, bunched so that writes meet the same ids again.
fn record_id() -> BoxedStrategy<u64> {
    prop_oneof![0u64..40, 60u64..140, Just(u64::MAX), Just(u64::MAX - 33)].boxed()
}

fn write() -> BoxedStrategy<Write> {
    prop_oneof![
        3 => (record_id(), any::<i64>()).prop_map(|(id, version)| Write::Put { id, version }),
        1 => record_id().prop_map(|id| Write::Remove { id }),
        3 => (record_id(), 0u8..3).prop_map(|(id, value)| Write::Index { id, value }),
        1 => (record_id(), 0u8..3).prop_map(|(id, value)| Write::Unindex { id, value }),
    ]
    .boxed()
}

fn record(id: u64, version: i64) -> StoredRecord {
    // The sample's values need an id that fits an i64; the stored id is any u64.
    let mut record = sample_record(id % 1_000);
    record.id = id;
    record.fields.insert(1, Value::Int(version));
    record
}

fn index_value(value: u8) -> Value {
    Value::Text(format!("v{value}"))
}

/// What the table must hold: records by id, index entries as (value, id).
#[derive(Default, Clone)]
struct Model {
    records: BTreeMap<u64, StoredRecord>,
    index: BTreeSet<(u8, u64)>,
}

impl Model {
    fn apply(&mut self, write: &Write) {
        match *write {
            Write::Put { id, version } => {
                self.records.insert(id, record(id, version));
            }
            Write::Remove { id } => {
                self.records.remove(&id);
            }
            Write::Index { id, value } => {
                self.index.insert((value, id));
            }
            Write::Unindex { id, value } => {
                self.index.remove(&(value, id));
            }
        }
    }
}

fn stage(batch: &mut WriteBatch, write: &Write) {
    match *write {
        Write::Put { id, version } => batch.put_record(&record(id, version)).expect("encode"),
        Write::Remove { id } => batch.remove_record(id),
        Write::Index { id, value } => batch.put_index_entry(FIELD, &index_value(value), id),
        Write::Unindex { id, value } => batch.remove_index_entry(FIELD, &index_value(value), id),
    }
}

fn stored_ids(table: &TableStore, lower: Bound<u64>, upper: Bound<u64>, back: bool) -> Vec<u64> {
    table
        .records_between(lower, upper, back)
        .map(|record| record.expect("decode a stored record").id)
        .collect()
}

fn check(table: &TableStore, model: &Model, probes: &[u64]) -> Result<(), TestCaseError> {
    let all: Vec<u64> = model.records.keys().copied().collect();
    prop_assert_eq!(
        stored_ids(table, Bound::Unbounded, Bound::Unbounded, false),
        all.clone()
    );
    let mut descending = all.clone();
    descending.reverse();
    prop_assert_eq!(
        stored_ids(table, Bound::Unbounded, Bound::Unbounded, true),
        descending
    );
    for &probe in probes {
        prop_assert_eq!(
            table.get_record(probe).expect("read"),
            model.records.get(&probe).cloned()
        );
        let after: Vec<u64> = model
            .records
            .range(probe.saturating_add(1)..)
            .map(|(id, _)| *id)
            .collect();
        let after = if probe == u64::MAX { Vec::new() } else { after };
        prop_assert_eq!(
            table
                .records(Some(probe), false)
                .map(|r| r.expect("decode").id)
                .collect::<Vec<_>>(),
            after
        );
        let up_to: Vec<u64> = model
            .records
            .range(..=probe)
            .rev()
            .map(|(id, _)| *id)
            .collect();
        prop_assert_eq!(
            stored_ids(table, Bound::Unbounded, Bound::Included(probe), true),
            up_to
        );
    }
    for value in 0u8..3 {
        let prefix = index_value_prefix(FIELD, &index_value(value));
        let expected: Vec<u64> = model
            .index
            .iter()
            .filter(|(at, _)| *at == value)
            .map(|(_, id)| *id)
            .collect();
        let found: Vec<u64> = table
            .index_ids(
                FIELD,
                Bound::Included(prefix.clone()),
                Bound::Included(prefix.clone()),
                false,
            )
            .collect::<Result<_, _>>()
            .expect("scan the index");
        prop_assert_eq!(&found, &expected);
        let mut backwards: Vec<u64> = table
            .index_ids(
                FIELD,
                Bound::Included(prefix.clone()),
                Bound::Included(prefix),
                true,
            )
            .collect::<Result<_, _>>()
            .expect("scan the index backwards");
        backwards.reverse();
        prop_assert_eq!(backwards, expected);
    }
    // The whole field in (value, id) order.
    let everything: Vec<u64> = model.index.iter().map(|(_, id)| *id).collect();
    let found: Vec<u64> = table
        .index_ids(FIELD, Bound::Unbounded, Bound::Unbounded, false)
        .collect::<Result<_, _>>()
        .expect("scan the field");
    prop_assert_eq!(found, everything);
    // No empty page or bitmap is left behind.
    for entry in table.tree().iter() {
        let (key, value) = entry.expect("read");
        if key[0] == keys::RECORD_PAGE {
            prop_assert!(!page_slots(&value).expect("a valid page").is_empty());
        }
        if key[0] == keys::INDEX {
            prop_assert!(pages::decode_bitmap(&value).expect("a bitmap") != 0);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Batches of random record and index writes (each batch's writes staged in order, later
    /// ones replacing earlier ones; some batches with a tail rolled back to a savepoint) leave
    /// the table as a plain map would.
    #[test]
    fn pages_and_bitmaps_hold_what_was_written(
        batches in prop::collection::vec(
            (prop::collection::vec(write(), 1..30), prop::collection::vec(write(), 0..6)),
            1..8,
        ),
        probes in prop::collection::vec(record_id(), 4),
    ) {
        let (_directory, store) = temporary_store();
        let table = store.table(next_table_id()).expect("open a table");
        let mut model = Model::default();
        for (kept, rolled_back) in &batches {
            let mut batch = WriteBatch::new();
            let mut staged = model.clone();
            for write in kept {
                stage(&mut batch, write);
                staged.apply(write);
            }
            // What the batch reads back is what it staged.
            for write in kept {
                if let Write::Put { id, .. } | Write::Remove { id } = write {
                    prop_assert_eq!(
                        batch.record(*id).expect("decode"),
                        Some(staged.records.get(id).cloned())
                    );
                }
            }
            batch.savepoint();
            for write in rolled_back {
                stage(&mut batch, write);
            }
            batch.rollback();
            table.apply(batch).expect("apply");
            model = staged;
            check(&table, &model, &probes)?;
        }
    }

    /// Merging changes into a page keeps the untouched slots byte for byte.
    #[test]
    fn a_merged_page_is_the_stored_page_with_the_changes(
        stored in prop::collection::btree_map(0u8..32, prop::collection::vec(any::<u8>(), 0..40), 0..32),
        changes in prop::collection::btree_map(0u8..32, prop::option::of(prop::collection::vec(any::<u8>(), 0..40)), 0..32),
    ) {
        let page = encode_page(stored.iter().map(|(slot, bytes)| (*slot, &bytes[..])));
        let ivecs: Vec<(u8, Option<sled::IVec>)> = changes
            .iter()
            .map(|(slot, bytes)| (*slot, bytes.as_ref().map(|bytes| sled::IVec::from(&bytes[..]))))
            .collect();
        let change_refs: Vec<(u8, Option<&sled::IVec>)> =
            ivecs.iter().map(|(slot, value)| (*slot, value.as_ref())).collect();
        let merged = merge_page(Some(&page), &change_refs).expect("merge");
        let mut expected = stored.clone();
        for (slot, bytes) in &changes {
            match bytes {
                Some(bytes) => {
                    expected.insert(*slot, bytes.clone());
                }
                None => {
                    expected.remove(slot);
                }
            }
        }
        match merged {
            None => prop_assert!(expected.is_empty()),
            Some(merged) => {
                let slots: Vec<u8> = page_slots(&merged).expect("valid").into_iter().map(|(slot, _)| slot).collect();
                prop_assert_eq!(slots, expected.keys().copied().collect::<Vec<_>>());
                for slot in 0u8..32 {
                    prop_assert_eq!(
                        page_record(&merged, slot).expect("valid"),
                        expected.get(&slot).map(Vec::as_slice)
                    );
                }
            }
        }
    }

    /// No byte string makes the page reader panic: it is a page or an error.
    #[test]
    fn damaged_pages_are_errors(bytes in prop::collection::vec(any::<u8>(), 0..80), slot in 0u8..40) {
        let _ = page_slots(&bytes);
        let _ = page_record(&bytes, slot);
        let mut page = encode_page([(1u8, &[1u8, 2, 3][..]), (4, &[9u8][..])]);
        if !bytes.is_empty() {
            let at = usize::from(bytes[0]) % page.len();
            page[at] ^= bytes.get(1).copied().unwrap_or(1) | 1;
            let _ = page_slots(&page);
        }
    }
}

#[test]
fn a_damaged_page_is_an_error_not_a_panic() {
    let (_directory, store) = temporary_store();
    let table = store.table(1).expect("open a table");
    table
        .tree()
        .insert(
            keys::page_key(0),
            vec![pages::PAGE_FORMAT, 2, 1, 9, 9, 9, 9],
        )
        .expect("write raw bytes");
    table
        .tree()
        .insert(keys::page_key(1), vec![7u8, 0])
        .expect("write raw bytes");
    assert!(table.get_record(1).is_err());
    assert!(table.get_record(33).is_err(), "an unknown page format");
    let outcomes: Vec<bool> = table.records(None, false).map(|r| r.is_ok()).collect();
    assert_eq!(outcomes, vec![false, false]);
}

#[test]
fn many_records_in_one_batch_share_few_keys() {
    let (_directory, store) = temporary_store();
    let table = store.table(1).expect("open a table");
    let mut batch = WriteBatch::new();
    for id in 1..=1000u64 {
        batch.put_record(&sample_record(id)).expect("encode");
        batch.put_index_entry(FIELD, &index_value((id % 3) as u8), id);
    }
    table.apply(batch).expect("apply");
    let pages = table.tree().scan_prefix([keys::RECORD_PAGE]).count();
    let bitmaps = table.tree().scan_prefix([keys::INDEX]).count();
    // Ids 1..=1000 fall in pages 0..=31 and groups 0..=15, each group with all three values.
    assert_eq!(pages, 32);
    assert_eq!(bitmaps, 48);
    assert_eq!(table.records(None, false).count(), 1000);
}

/// Writes an earlier version's table: one `R` key per record, one `I` key per index entry.
fn write_legacy(tree: &sled::Tree, records: &[StoredRecord]) {
    for record in records {
        tree.insert(
            keys::legacy_record_key(record.id),
            codec::encode(record).expect("encode"),
        )
        .expect("write a legacy record");
        tree.insert(
            keys::legacy_index_entry_key(FIELD, &index_value((record.id % 3) as u8), record.id),
            Vec::new(),
        )
        .expect("write a legacy index entry");
        // Records 1..=10 hold live unique values of another field: their claims serve as
        // their index entries from now on.
        if record.id <= 10 {
            let value = Value::Int(record.id as i64);
            tree.insert(
                keys::legacy_index_entry_key(FIELD + 1, &value, record.id),
                Vec::new(),
            )
            .expect("write a legacy index entry");
            tree.insert(
                keys::unique_key(FIELD + 1, &value),
                record.id.to_be_bytes().to_vec(),
            )
            .expect("write a claim");
        }
    }
}

#[test]
fn an_earlier_versions_records_and_index_move_into_pages_and_bitmaps_at_open() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let records: Vec<StoredRecord> = (1..=700u64).map(sample_record).collect();
    {
        let store = Store::open(directory.path()).expect("open");
        let tree = store.table(5).expect("open a table").tree().clone();
        write_legacy(&tree, &records);
        // A move interrupted part-way: some records already in a page, their keys gone.
        let table = store.table(5).expect("the same table");
        let mut batch = WriteBatch::new();
        for record in &records[..40] {
            batch.put_record(record).expect("encode");
        }
        table.apply(batch).expect("apply");
        for record in &records[..40] {
            tree.remove(keys::legacy_record_key(record.id))
                .expect("remove");
        }
        store.close().expect("close");
    }
    let store = Store::open(directory.path()).expect("reopen");
    let table = store.table(5).expect("open the table again");
    for prefix in [keys::LEGACY_RECORD, keys::LEGACY_INDEX] {
        assert_eq!(
            table.tree().scan_prefix([prefix]).count(),
            0,
            "legacy keys left"
        );
    }
    let stored: Vec<StoredRecord> = table
        .records(None, false)
        .collect::<Result<_, _>>()
        .expect("read every record");
    assert_eq!(stored, records);
    assert_eq!(
        table.get_record(333).expect("read"),
        Some(sample_record(333))
    );
    for value in 0u8..3 {
        let prefix = index_value_prefix(FIELD, &index_value(value));
        let ids: Vec<u64> = table
            .index_ids(
                FIELD,
                Bound::Included(prefix.clone()),
                Bound::Included(prefix),
                false,
            )
            .collect::<Result<_, _>>()
            .expect("scan");
        let expected: Vec<u64> = (1..=700u64)
            .filter(|id| id % 3 == u64::from(value))
            .collect();
        assert_eq!(ids, expected);
    }
    assert_eq!(
        table
            .tree()
            .scan_prefix(keys::index_field_prefix(FIELD + 1))
            .count(),
        0,
        "no bitmap for a claimed value"
    );
    let claimed: Vec<u64> = table
        .index_ids(FIELD + 1, Bound::Unbounded, Bound::Unbounded, false)
        .collect::<Result<_, _>>()
        .expect("scan");
    assert_eq!(claimed, (1..=10).collect::<Vec<u64>>());
    // Opening again moves nothing.
    assert_eq!(table.upgrade_layout().expect("upgrade"), 0);
}

/// A unique field's live values are indexed by their claims alone: index reads merge the
/// claims with the bitmaps in (value, id) order, an entry in both once.
#[test]
fn unique_claims_are_merged_into_index_reads() {
    let (_directory, store) = temporary_store();
    let table = store.table(1).expect("open a table");
    let claim = |batch: &mut WriteBatch, field: u32, value: u8, id: u64| {
        batch.put(
            keys::unique_key(field, &index_value(value)),
            id.to_be_bytes().to_vec(),
        );
    };
    let mut batch = WriteBatch::new();
    batch.put_index_entry(FIELD, &index_value(1), 5);
    batch.put_index_entry(FIELD, &index_value(2), 100);
    batch.put_index_entry(FIELD, &index_value(3), 2);
    claim(&mut batch, FIELD, 1, 3);
    claim(&mut batch, FIELD, 2, 7);
    claim(&mut batch, FIELD, 4, 1);
    // Another field's claims stay out; a claim that repeats a bitmap entry counts once.
    claim(&mut batch, FIELD + 1, 1, 9);
    claim(&mut batch, FIELD - 1, 9, 9);
    batch.put_index_entry(FIELD, &index_value(4), 1);
    table.apply(batch).expect("apply");

    let scan = |lower: Bound<Vec<u8>>, upper: Bound<Vec<u8>>, back: bool| -> Vec<u64> {
        table
            .index_ids(FIELD, lower, upper, back)
            .collect::<Result<_, _>>()
            .expect("scan")
    };
    assert_eq!(
        scan(Bound::Unbounded, Bound::Unbounded, false),
        vec![3, 5, 7, 100, 2, 1]
    );
    assert_eq!(
        scan(Bound::Unbounded, Bound::Unbounded, true),
        vec![1, 2, 100, 7, 5, 3]
    );
    let two = index_value_prefix(FIELD, &index_value(2));
    assert_eq!(
        scan(
            Bound::Included(two.clone()),
            Bound::Included(two.clone()),
            false
        ),
        vec![7, 100]
    );
    assert_eq!(
        scan(Bound::Excluded(two.clone()), Bound::Unbounded, false),
        vec![2, 1]
    );
    assert_eq!(
        scan(Bound::Unbounded, Bound::Excluded(two), true),
        vec![5, 3]
    );
    let groups: Vec<(Vec<u8>, u64)> = table
        .index_entries(
            keys::index_field_prefix(FIELD),
            keys::index_field_prefix(FIELD + 1),
            false,
        )
        .map(|entry| entry.map(|(value_key, id)| (value_key.to_vec(), id)))
        .collect::<Result<_, _>>()
        .expect("entries");
    assert_eq!(groups[0], (index_value_prefix(FIELD, &index_value(1)), 3));
    assert_eq!(groups[2], (index_value_prefix(FIELD, &index_value(2)), 7));
}
