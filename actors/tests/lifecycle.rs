//! Property test of the record lifecycle through the real table actors: after any sequence of
//! creates, updates, batches, upserts, deletes (soft, permanent, cascading, set-null) and
//! restores — failed ones included — every record's history (the journal's entries for it, which
//! the record lists) replays to exactly its stored state, the journal's count is right, and the
//! counters and indexes agree with the records. Plus an exact check that a failed batch changes no byte of the table.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use proptest::prelude::*;
use tabula_actors::lifecycle;
use tabula_actors::registry::{Registry, TableHandle};
use tabula_actors::table::{
    CreateRecord, CreateRecords, RecordPatch, UpdateRecord, UpdateRecords, UpsertRecords,
};
use tabula_storage::journal::{ChangeAction, ChangeEntry};
use tabula_storage::{
    keys, FieldDef, FieldType, OnDelete, Store, StoredRecord, TableSchema, Value,
};

fn field(id: u32, name: &str, field_type: FieldType) -> FieldDef {
    FieldDef::new(id, name, field_type)
}

fn table(id: u32, name: &str, fields: Vec<FieldDef>) -> TableSchema {
    TableSchema {
        id,
        name: name.to_owned(),
        fields,
        permissions: Default::default(),
        views: Vec::new(),
        search: None,
        webhooks: Vec::new(),
    }
}

/// `parents` (code unique) ← `items.parent` (cascade); `items.sibling` → items (set-null);
/// `items.email` unique, `items.n` indexed.
fn schemas() -> Vec<TableSchema> {
    let mut code = field(2, "code", FieldType::SingleLineText);
    code.unique = true;
    let parents = table(
        1,
        "parents",
        vec![field(1, "name", FieldType::SingleLineText), code],
    );
    let mut email = field(2, "email", FieldType::Email);
    email.unique = true;
    let mut number = field(3, "n", FieldType::Integer);
    number.indexed = true;
    let mut parent = field(4, "parent", FieldType::Relationship);
    parent.related_table = Some("parents".into());
    parent.on_delete = Some(OnDelete::Cascade);
    let mut sibling = field(5, "sibling", FieldType::Relationship);
    sibling.related_table = Some("items".into());
    sibling.on_delete = Some(OnDelete::SetNull);
    let items = table(
        2,
        "items",
        vec![
            field(1, "name", FieldType::SingleLineText),
            email,
            number,
            parent,
            sibling,
        ],
    );
    vec![parents, items]
}

fn with_registry<T>(body: impl AsyncFnOnce(Arc<Registry>) -> T) -> T {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let system = actix::System::new();
    system.block_on(async move {
        let store = Store::open(directory.path()).expect("the store opens");
        let registry = Registry::new(store, 1);
        for schema in schemas() {
            registry.install(schema).expect("the table installs");
        }
        let result = body(Arc::clone(&registry)).await;
        registry.stop_actors();
        drop(directory);
        result
    })
}

#[derive(Debug, Clone)]
enum Op {
    CreateParent {
        code: Option<u8>,
    },
    CreateItem(ItemValues),
    CreateItems(Vec<ItemValues>),
    UpdateItem {
        pick: u8,
        values: ItemValues,
    },
    UpdateItems(Vec<(u8, ItemValues)>),
    UpsertItems(Vec<ItemValues>),
    Delete {
        parents: bool,
        picks: Vec<u8>,
        permanent: bool,
    },
    Restore {
        parents: bool,
        picks: Vec<u8>,
    },
}

#[derive(Debug, Clone)]
struct ItemValues {
    email: Option<Option<u8>>,
    n: Option<Option<i8>>,
    parent: Option<u8>,
    sibling: Option<u8>,
    invalid: bool,
}

fn item_values() -> impl Strategy<Value = ItemValues> {
    (
        prop::option::of(prop::option::of(0u8..6)),
        prop::option::of(prop::option::of(-3i8..4)),
        prop::option::weighted(0.4, 0u8..4),
        prop::option::weighted(0.3, 0u8..8),
        prop::bool::weighted(0.05),
    )
        .prop_map(|(email, n, parent, sibling, invalid)| ItemValues {
            email,
            n,
            parent,
            sibling,
            invalid,
        })
}

fn operation() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => prop::option::of(0u8..4).prop_map(|code| Op::CreateParent { code }),
        4 => item_values().prop_map(Op::CreateItem),
        2 => prop::collection::vec(item_values(), 1..5).prop_map(Op::CreateItems),
        3 => (any::<u8>(), item_values()).prop_map(|(pick, values)| Op::UpdateItem { pick, values }),
        1 => prop::collection::vec((any::<u8>(), item_values()), 1..4).prop_map(Op::UpdateItems),
        2 => prop::collection::vec(item_values(), 1..4).prop_map(Op::UpsertItems),
        3 => (any::<bool>(), prop::collection::vec(any::<u8>(), 1..3), prop::bool::weighted(0.3))
            .prop_map(|(parents, picks, permanent)| Op::Delete { parents, picks, permanent }),
        3 => (any::<bool>(), prop::collection::vec(any::<u8>(), 1..3))
            .prop_map(|(parents, picks)| Op::Restore { parents, picks }),
    ]
}

/// A record id of a table from a random pick (sometimes one that does not exist).
fn pick_id(handle: &TableHandle, pick: u8) -> u64 {
    let last = handle
        .shared
        .store
        .get_u64(keys::META_SEQUENCE)
        .expect("readable")
        .unwrap_or(0);
    u64::from(pick) % (last + 1) + 1
}

/// A trashed record of a table from a random pick (a live or missing one when none is trashed,
/// or one time in eight).
fn pick_trashed(handle: &TableHandle, pick: u8) -> u64 {
    let trashed: Vec<u64> = handle
        .shared
        .store
        .trashed_ids()
        .collect::<Result<_, _>>()
        .expect("readable");
    if trashed.is_empty() || pick.is_multiple_of(8) {
        return pick_id(handle, pick);
    }
    trashed[usize::from(pick) % trashed.len()]
}

fn item_fields(values: &ItemValues, creating: bool) -> Vec<(String, Value)> {
    let mut fields = Vec::new();
    if creating {
        fields.push(("name".to_owned(), Value::Text("item".into())));
    }
    if let Some(email) = values.email {
        let value = email.map_or(Value::Null, |email| Value::Text(format!("e{email}@x.org")));
        fields.push(("email".to_owned(), value));
    }
    if let Some(number) = values.n {
        fields.push((
            "n".to_owned(),
            number.map_or(Value::Null, |n| Value::Int(i64::from(n))),
        ));
    }
    if let Some(parent) = values.parent {
        fields.push(("parent".to_owned(), Value::Int(i64::from(parent) + 1)));
    }
    if let Some(sibling) = values.sibling {
        fields.push(("sibling".to_owned(), Value::Int(i64::from(sibling) + 1)));
    }
    if values.invalid {
        fields.push(("n".to_owned(), Value::Text("not a number".into())));
    }
    fields
}

async fn run(registry: &Registry, op: &Op) {
    let parents = registry.resolve("parents").expect("parents");
    let items = registry.resolve("items").expect("items");
    let user = Some("u1".to_owned());
    // Every outcome is acceptable here (validation, conflicts, missing ids): the invariants
    // must hold whatever happened.
    match op {
        Op::CreateParent { code } => {
            let mut fields = vec![("name".to_owned(), Value::Text("p".into()))];
            if let Some(code) = code {
                fields.push(("code".to_owned(), Value::Text(format!("c{code}"))));
            }
            let _ = parents
                .addr
                .send(CreateRecord {
                    fields,
                    user_id: user,
                })
                .await;
        }
        Op::CreateItem(values) => {
            let fields = item_fields(values, true);
            let _ = items
                .addr
                .send(CreateRecord {
                    fields,
                    user_id: user,
                })
                .await;
        }
        Op::CreateItems(list) => {
            let records = list
                .iter()
                .map(|values| item_fields(values, true))
                .collect();
            let _ = items
                .addr
                .send(CreateRecords {
                    records,
                    user_id: user,
                })
                .await;
        }
        Op::UpdateItem { pick, values } => {
            let message = UpdateRecord {
                record_id: pick_id(&items, *pick),
                fields: item_fields(values, false),
                expected_updated_at: None,
                user_id: user,
            };
            let _ = items.addr.send(message).await;
        }
        Op::UpdateItems(list) => {
            let patches = list
                .iter()
                .map(|(pick, values)| RecordPatch {
                    record_id: pick_id(&items, *pick),
                    fields: item_fields(values, false),
                })
                .collect();
            let _ = items
                .addr
                .send(UpdateRecords {
                    patches,
                    user_id: user,
                })
                .await;
        }
        Op::UpsertItems(list) => {
            let records = list
                .iter()
                .map(|values| {
                    let mut fields = item_fields(values, true);
                    fields.retain(|(name, _)| name != "email");
                    let email = values.email.flatten().unwrap_or(0);
                    fields.push(("email".to_owned(), Value::Text(format!("e{email}@x.org"))));
                    fields
                })
                .collect();
            let message = UpsertRecords {
                records,
                merge_fields: vec!["email".to_owned()],
                user_id: user,
                return_records: true,
            };
            let _ = items.addr.send(message).await;
        }
        Op::Delete {
            parents: on_parents,
            picks,
            permanent,
        } => {
            let handle = if *on_parents { &parents } else { &items };
            let ids = picks.iter().map(|pick| pick_id(handle, *pick)).collect();
            let _ = lifecycle::delete_records(registry, handle, ids, *permanent, true, user).await;
        }
        Op::Restore {
            parents: on_parents,
            picks,
        } => {
            let handle = if *on_parents { &parents } else { &items };
            let ids = picks
                .iter()
                .map(|pick| pick_trashed(handle, *pick))
                .collect();
            let _ = lifecycle::restore_records(registry, handle, ids, user).await;
        }
    }
}

/// What a record looks like after replaying its history.
#[derive(Debug, PartialEq)]
enum Replayed {
    Present {
        fields: BTreeMap<u32, Value>,
        deleted: bool,
    },
    Gone,
}

fn apply(fields: &mut BTreeMap<u32, Value>, changes: &BTreeMap<u32, Value>) {
    for (field_id, value) in changes {
        if value.is_null() {
            fields.remove(field_id);
        } else {
            fields.insert(*field_id, value.clone());
        }
    }
}

fn value_of(fields: &BTreeMap<u32, Value>, field_id: u32) -> Value {
    fields.get(&field_id).cloned().unwrap_or(Value::Null)
}

fn replay(entries: &[ChangeEntry]) -> Result<Replayed, String> {
    let mut state: Option<Replayed> = None;
    for entry in entries {
        let before = entry.before.clone().unwrap_or_default();
        let after = entry.after.clone().unwrap_or_default();
        state = Some(match (state, entry.action) {
            (None, ChangeAction::Create) => Replayed::Present {
                fields: after,
                deleted: false,
            },
            (
                Some(Replayed::Present {
                    mut fields,
                    deleted: false,
                }),
                ChangeAction::Update,
            ) => {
                for (field_id, value) in &before {
                    if &value_of(&fields, *field_id) != value {
                        return Err(format!("update {} has a wrong before", entry.id));
                    }
                }
                apply(&mut fields, &after);
                Replayed::Present {
                    fields,
                    deleted: false,
                }
            }
            (
                Some(Replayed::Present {
                    fields,
                    deleted: false,
                }),
                ChangeAction::Delete,
            ) => {
                if before != fields {
                    return Err(format!("delete {} has a wrong before", entry.id));
                }
                Replayed::Present {
                    fields,
                    deleted: true,
                }
            }
            (
                Some(Replayed::Present {
                    fields,
                    deleted: true,
                }),
                ChangeAction::Restore,
            ) => {
                if after != fields {
                    return Err(format!("restore {} has a wrong after", entry.id));
                }
                Replayed::Present {
                    fields,
                    deleted: false,
                }
            }
            (Some(Replayed::Present { fields, .. }), ChangeAction::PermanentDelete) => {
                if before != fields {
                    return Err(format!("permanent delete {} has a wrong before", entry.id));
                }
                Replayed::Gone
            }
            (state, action) => {
                return Err(format!(
                    "{action:?} (entry {}) cannot follow {state:?}",
                    entry.id
                ))
            }
        });
    }
    state.ok_or_else(|| "an empty history".to_owned())
}

/// Checks every invariant of one table; `Err` describes the first broken one.
fn check_table(handle: &TableHandle) -> Result<(), String> {
    let store = &handle.shared.store;
    let schema = handle.shared.schema();
    let tree = store.tree();
    let records: BTreeMap<u64, StoredRecord> = store
        .records(None, false)
        .map(|record| record.map(|record| (record.id, record)))
        .collect::<Result<_, _>>()
        .map_err(|error| error.to_string())?;
    // The journal: every entry once, ids ascending, each listed by its record.
    let journal: Vec<ChangeEntry> = store
        .activity(false)
        .collect::<Result<_, _>>()
        .map_err(|error| error.to_string())?;
    if journal.windows(2).any(|pair| pair[0].id >= pair[1].id) {
        return Err("journal entries out of id order".into());
    }
    let mut histories: BTreeMap<u64, Vec<ChangeEntry>> = BTreeMap::new();
    for entry in &journal {
        if entry.table_id != schema.id {
            return Err(format!("entry {} names table {}", entry.id, entry.table_id));
        }
        histories
            .entry(entry.record_id)
            .or_default()
            .push(entry.clone());
    }
    for (record_id, entries) in &histories {
        let replayed = replay(entries).map_err(|error| format!("record {record_id}: {error}"))?;
        let stored = match records.get(record_id) {
            Some(record) => Replayed::Present {
                fields: record.fields.clone(),
                deleted: record.is_deleted(),
            },
            None => Replayed::Gone,
        };
        if replayed != stored {
            return Err(format!(
                "record {record_id}: history gives {replayed:?}, store holds {stored:?}"
            ));
        }
    }
    for (record_id, record) in &records {
        let listed: Vec<u64> = histories
            .get(record_id)
            .map(|entries| entries.iter().map(|entry| entry.id).collect())
            .unwrap_or_default();
        if listed.is_empty() || record.history != listed {
            return Err(format!(
                "record {record_id} lists {:?}, the journal has {listed:?}",
                record.history
            ));
        }
        if record.cascade_parent.is_some() && !record.is_deleted() {
            return Err(format!(
                "live record {record_id} remembers a cascade parent"
            ));
        }
        let trashed_key = tree
            .contains_key(keys::trash_key(*record_id))
            .map_err(|e| e.to_string())?;
        if trashed_key != record.is_deleted() {
            return Err(format!("record {record_id}: trash key {trashed_key}"));
        }
    }
    let journal_len = store.activity_len().map_err(|e| e.to_string())?;
    if journal_len != u64::try_from(journal.len()).unwrap_or(u64::MAX) {
        return Err(format!(
            "the journal count says {journal_len} for {} entries",
            journal.len()
        ));
    }
    // Counters.
    let live = u64::try_from(records.values().filter(|r| !r.is_deleted()).count()).unwrap_or(0);
    let live_meta = store
        .get_u64(keys::META_LIVE_COUNT)
        .map_err(|e| e.to_string())?
        .unwrap_or(0);
    if live != live_meta || live != handle.shared.live_count() {
        return Err(format!(
            "{live} live records, counter {live_meta}, shared {}",
            handle.shared.live_count()
        ));
    }
    // Indexes: every record (live or trashed) in every indexed field; unique values of live ones.
    let mut expected_index = BTreeSet::new();
    let mut expected_unique = BTreeMap::new();
    for record in records.values() {
        for field in schema.indexed_fields() {
            let value = record.value(field.id);
            expected_index.insert((keys::index_value_prefix(field.id, value), record.id));
            if field.unique && !record.is_deleted() && !value.is_empty_value() {
                expected_unique.insert(
                    keys::unique_key(field.id, value),
                    record.id.to_be_bytes().to_vec(),
                );
            }
        }
    }
    let index: BTreeSet<(Vec<u8>, u64)> = handle
        .shared
        .store
        .index_entries(vec![keys::INDEX], vec![keys::INDEX + 1], false)
        .map(|entry| entry.map(|(value_key, id)| (value_key.to_vec(), id)))
        .collect::<Result<_, _>>()
        .map_err(|error| error.to_string())?;
    // A bitmap with no id left is removed, never kept as zero.
    for entry in tree.scan_prefix([keys::INDEX]).values() {
        let bitmap = entry.map_err(|error| error.to_string())?;
        if bitmap.iter().all(|byte| *byte == 0) {
            return Err("an empty index bitmap is stored".into());
        }
    }
    if index != expected_index {
        return Err("the index entries differ from the records".into());
    }
    let unique: BTreeMap<Vec<u8>, Vec<u8>> = tree
        .scan_prefix([keys::UNIQUE])
        .map(|entry| entry.map(|(key, value)| (key.to_vec(), value.to_vec())))
        .collect::<Result<_, _>>()
        .map_err(|error| error.to_string())?;
    if unique != expected_unique {
        return Err("the unique entries differ from the live records".into());
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn history_and_activity_agree_with_the_data(ops in prop::collection::vec(operation(), 1..40)) {
        let outcome = with_registry(async |registry: Arc<Registry>| {
            for op in &ops {
                run(&registry, op).await;
            }
            for name in ["parents", "items"] {
                let handle = registry.resolve(name).expect("the table");
                check_table(&handle).map_err(|error| format!("{name}: {error}"))?;
            }
            Ok::<(), String>(())
        });
        prop_assert!(outcome.is_ok(), "{:?}", outcome);
    }
}

fn snapshot(handle: &TableHandle) -> Vec<(Vec<u8>, Vec<u8>)> {
    handle
        .shared
        .store
        .tree()
        .iter()
        .map(|entry| {
            let (key, value) = entry.expect("readable");
            (key.to_vec(), value.to_vec())
        })
        .collect()
}

#[test]
fn a_failed_batch_changes_no_byte_of_the_table() {
    with_registry(async |registry: Arc<Registry>| {
        let items = registry.resolve("items").expect("items");
        let good = |email: &str| {
            vec![
                ("name".to_owned(), Value::Text("a".into())),
                ("email".to_owned(), Value::Text(email.into())),
                ("n".to_owned(), Value::Int(1)),
            ]
        };
        let created = items
            .addr
            .send(CreateRecords {
                records: vec![good("a@x.org"), good("b@x.org")],
                user_id: None,
            })
            .await
            .expect("the actor answers");
        assert!(created.is_ok());
        let before = snapshot(&items);
        let invalid = vec![
            good("c@x.org"),
            vec![("n".to_owned(), Value::Text("x".into()))],
        ];
        let clash = vec![good("d@x.org"), good("a@x.org")];
        let inner_clash = vec![good("e@x.org"), good("E@x.org")];
        for records in [invalid, clash, inner_clash] {
            let outcome = items
                .addr
                .send(CreateRecords {
                    records,
                    user_id: None,
                })
                .await
                .expect("the actor answers");
            assert!(outcome.is_err());
            assert_eq!(snapshot(&items), before);
        }
        let missing = items
            .addr
            .send(UpdateRecords {
                patches: vec![
                    RecordPatch {
                        record_id: 1,
                        fields: vec![("n".to_owned(), Value::Int(5))],
                    },
                    RecordPatch {
                        record_id: 99,
                        fields: vec![],
                    },
                ],
                user_id: None,
            })
            .await
            .expect("the actor answers");
        assert!(missing.is_err());
        assert_eq!(snapshot(&items), before);
        assert_eq!(items.shared.live_count(), 2);
    });
}
