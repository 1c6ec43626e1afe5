//! The full-text index in posting blocks: for random documents and random sequences of batch
//! creates, updates, trashes, restores and permanent deletes, every search answer (ids, order,
//! totals, pages) equals a brute-force evaluation over the stored records with BM25 computed
//! from the records themselves; block splits and merges at their edges; and the index after a
//! restart, including the rebuild of a data directory written in the old per-posting format.

mod query_support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use proptest::prelude::*;
use tabula_actors::query::search::{
    block_sizes, document_totals, record_matches, stored_postings, tokenize, SearchQuery,
    BLOCK_POSTINGS, FORMAT_KEY, INDEX_FORMAT, TOTALS_KEY,
};
use tabula_actors::query::{list, parse_list_query, SEARCH};
use tabula_actors::registry::{Registry, TableHandle};
use tabula_actors::table::{
    CreateRecords, DeleteRecords, RecordPatch, RestoreRecords, UpdateRecords,
};
use tabula_storage::{Store, StoredRecord, TableSchema, Value};

use query_support::{items_schema, pairs, parse_json, table, text, with_registry, LIMITS};

const WORDS: &[&str] = &["red", "blue", "green", "cat"];
const QUERIES: &[&str] = &[
    "red",
    "cat",
    "red blue",
    "\"red blue\"",
    "\"blue blue\"",
    "green -cat",
    "red -\"blue green\"",
    "cat or green",
    "red cat or blue -green",
    "nothing",
];

fn searchable_schema() -> TableSchema {
    let mut schema = items_schema();
    schema.search = Some(vec!["title".into(), "notes".into()]);
    schema
}

/// (title, notes) of one record.
type Texts = (String, String);

#[derive(Debug, Clone)]
enum Op {
    Create(Vec<Texts>),
    /// Patches of records picked by index among the live ones (one batch; a pick may repeat).
    Update(Vec<(usize, Texts)>),
    Trash(usize),
    Restore(usize),
    /// Permanent deletes of records picked among all (one batch).
    Remove(Vec<usize>),
}

fn words() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(WORDS), 0..6).prop_map(|words| words.join(" "))
}

fn texts() -> impl Strategy<Value = Texts> {
    (words(), words())
}

fn operation() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => prop::collection::vec(texts(), 1..90).prop_map(Op::Create),
        2 => prop::collection::vec((any::<usize>(), texts()), 1..12).prop_map(Op::Update),
        1 => any::<usize>().prop_map(Op::Trash),
        1 => any::<usize>().prop_map(Op::Restore),
        1 => prop::collection::vec(any::<usize>(), 1..40).prop_map(Op::Remove),
    ]
}

fn all_records(handle: &TableHandle) -> Vec<StoredRecord> {
    handle
        .shared
        .store
        .records(None, false)
        .collect::<Result<_, _>>()
        .expect("readable")
}

fn fields(texts: &Texts) -> Vec<(String, Value)> {
    vec![
        ("title".to_owned(), text(&texts.0)),
        ("notes".to_owned(), text(&texts.1)),
    ]
}

async fn apply(handle: &TableHandle, op: &Op) {
    let records = all_records(handle);
    let live: Vec<u64> = records
        .iter()
        .filter(|record| !record.is_deleted())
        .map(|record| record.id)
        .collect();
    let trashed: Vec<u64> = records
        .iter()
        .filter(|record| record.is_deleted())
        .map(|record| record.id)
        .collect();
    let all: Vec<u64> = records.iter().map(|record| record.id).collect();
    let pick = |ids: &[u64], index: usize| ids.get(index % ids.len().max(1)).copied();
    match op {
        Op::Create(items) => {
            let outcome = handle
                .addr
                .send(CreateRecords {
                    records: items.iter().map(fields).collect(),
                    user_id: None,
                })
                .await
                .expect("the actor answers");
            assert!(outcome.is_ok(), "{outcome:?}");
        }
        Op::Update(patches) => {
            let patches: Vec<RecordPatch> = patches
                .iter()
                .filter_map(|(index, texts)| {
                    Some(RecordPatch {
                        record_id: pick(&live, *index)?,
                        fields: fields(texts),
                    })
                })
                .collect();
            if !patches.is_empty() {
                let outcome = handle
                    .addr
                    .send(UpdateRecords {
                        patches,
                        user_id: None,
                    })
                    .await
                    .expect("the actor answers");
                assert!(outcome.is_ok(), "{outcome:?}");
            }
        }
        Op::Trash(index) | Op::Restore(index) => {
            let restore = matches!(op, Op::Restore(_));
            let Some(record_id) = pick(if restore { &trashed } else { &live }, *index) else {
                return;
            };
            let outcome = if restore {
                handle
                    .addr
                    .send(RestoreRecords {
                        record_ids: vec![record_id],
                        cascaded: Vec::new(),
                        user_id: None,
                    })
                    .await
                    .expect("the actor answers")
                    .map(|_| ())
            } else {
                handle
                    .addr
                    .send(delete_message(vec![record_id], false))
                    .await
                    .expect("the actor answers")
                    .map(|_| ())
            };
            assert!(outcome.is_ok(), "{outcome:?}");
        }
        Op::Remove(indexes) => {
            let ids: BTreeSet<u64> = indexes
                .iter()
                .filter_map(|index| pick(&all, *index))
                .collect();
            if !ids.is_empty() {
                let outcome = handle
                    .addr
                    .send(delete_message(ids.into_iter().collect(), true))
                    .await
                    .expect("the actor answers");
                assert!(outcome.is_ok(), "{outcome:?}");
            }
        }
    }
}

fn delete_message(record_ids: Vec<u64>, permanent: bool) -> DeleteRecords {
    DeleteRecords {
        record_ids,
        permanent,
        skip_trashed: permanent,
        cascaded: Vec::new(),
        cleared: Vec::new(),
        user_id: None,
    }
}

/// A record's document as the brute force sees it: term → frequency, and its length.
fn document(record: &StoredRecord) -> (BTreeMap<String, u32>, u32) {
    let mut terms: BTreeMap<String, u32> = BTreeMap::new();
    let mut length = 0u32;
    for field_id in [1u32, 9] {
        if let Value::Text(value) = record.value(field_id) {
            for token in tokenize(value) {
                *terms.entry(token).or_default() += 1;
                length += 1;
            }
        }
    }
    (terms, length)
}

/// The ranked answer from the records alone: (id, score) best first, ties by id ascending,
/// live records only unless `include_trashed`.
fn brute_force(
    schema: &TableSchema,
    records: &[StoredRecord],
    query: &SearchQuery,
    include_trashed: bool,
) -> Vec<(u64, f64)> {
    let documents: Vec<(BTreeMap<String, u32>, u32)> = records.iter().map(document).collect();
    let mut all_terms: Vec<&str> = Vec::new();
    let mut required: Vec<&str> = Vec::new();
    for clause in &query.clauses {
        for term in clause.required.iter().flatten() {
            if !required.contains(&term.as_str()) {
                required.push(term);
            }
        }
        for term in clause.required.iter().chain(&clause.excluded).flatten() {
            if !all_terms.contains(&term.as_str()) {
                all_terms.push(term);
            }
        }
    }
    let frequency = |term: &str| {
        documents
            .iter()
            .filter(|(terms, _)| terms.contains_key(term))
            .count() as f64
    };
    let live = records.iter().filter(|record| !record.is_deleted()).count() as f64;
    let largest = all_terms
        .iter()
        .map(|term| frequency(term))
        .fold(0.0, f64::max);
    let total = largest.max(live);
    let lengths: Vec<u32> = documents
        .iter()
        .map(|(_, length)| *length)
        .filter(|length| *length > 0)
        .collect();
    let average = if lengths.is_empty() {
        1.0
    } else {
        (lengths.iter().map(|length| u64::from(*length)).sum::<u64>() as f64 / lengths.len() as f64)
            .max(1.0)
    };
    let mut hits: Vec<(u64, f64)> = records
        .iter()
        .zip(&documents)
        .filter(|(record, _)| include_trashed || !record.is_deleted())
        .filter(|(record, _)| record_matches(schema, query, record))
        .map(|(record, (terms, length))| {
            let mut score = 0.0;
            for term in &required {
                if let Some(count) = terms.get(*term) {
                    let df = frequency(term);
                    let idf = (1.0 + (total - df + 0.5) / (df + 0.5)).ln();
                    let count = f64::from(*count);
                    score += idf * count * 2.2
                        / (count + 1.2 * (1.0 - 0.75 + 0.75 * f64::from(*length) / average));
                }
            }
            (record.id, score)
        })
        .collect();
    hits.sort_by(|left, right| right.1.total_cmp(&left.1).then(left.0.cmp(&right.0)));
    hits
}

fn search(handle: &TableHandle, items: &[(&str, &str)]) -> (Vec<u64>, Vec<f64>, Option<u64>) {
    let request = parse_list_query(&handle.shared.schema(), &pairs(items), LIMITS, parse_json)
        .expect("parses");
    let page = list(&handle.shared, &request).expect("lists");
    (
        page.records.iter().map(|record| record.id).collect(),
        page.scores.unwrap_or_default(),
        page.total,
    )
}

/// Every check of the index against the records; `Err` names the first difference.
fn check(handle: &TableHandle) -> Result<(), String> {
    let schema = handle.shared.schema();
    let records = all_records(handle);
    // The stored postings are exactly the records' terms.
    let mut expected: Vec<(String, u64)> = records
        .iter()
        .flat_map(|record| {
            document(record)
                .0
                .into_keys()
                .map(move |term| (term, record.id))
        })
        .collect();
    expected.sort();
    let stored = stored_postings(&handle.shared.store).map_err(|error| error.to_string())?;
    if stored != expected {
        return Err(format!(
            "stored postings differ: {} stored, {} expected",
            stored.len(),
            expected.len()
        ));
    }
    // The document totals are exactly the records' documents.
    let (documents, tokens) = records
        .iter()
        .map(|record| document(record).1)
        .filter(|length| *length > 0)
        .fold((0u64, 0u64), |(count, sum), length| {
            (count + 1, sum + u64::from(length))
        });
    let totals = document_totals(handle.shared.store.tree()).map_err(|error| error.to_string())?;
    if (totals.documents, totals.tokens) != (documents, tokens) {
        return Err(format!(
            "document totals {totals:?}, expected {documents} documents of {tokens} tokens"
        ));
    }
    for term in WORDS {
        let sizes = block_sizes(&handle.shared.store, term).map_err(|error| error.to_string())?;
        if sizes
            .iter()
            .any(|size| *size == 0 || *size > BLOCK_POSTINGS)
        {
            return Err(format!("blocks of {term}: {sizes:?}"));
        }
    }
    for text_query in QUERIES {
        let Some(query) = tabula_actors::query::search::parse_search(text_query)
            .map_err(|error| format!("{error:?}"))?
        else {
            continue;
        };
        for (trash_item, include_trashed) in [
            (("includeDeleted", "false"), false),
            (("includeDeleted", "true"), true),
        ] {
            let wanted = brute_force(&schema, &records, &query, include_trashed);
            let (ids, scores, total) = search(
                handle,
                &[("search", text_query), trash_item, ("limit", "1000")],
            );
            let wanted_ids: Vec<u64> = wanted.iter().map(|(id, _)| *id).collect();
            if ids != wanted_ids {
                return Err(format!(
                    "{text_query:?} ({include_trashed}): {ids:?} != {wanted_ids:?}"
                ));
            }
            if total != Some(wanted.len() as u64) {
                return Err(format!(
                    "{text_query:?}: total {total:?} != {}",
                    wanted.len()
                ));
            }
            for (score, (_, wanted_score)) in scores.iter().zip(&wanted) {
                if (score - wanted_score).abs() > 1e-9 * wanted_score.abs().max(1.0) {
                    return Err(format!("{text_query:?}: score {score} != {wanted_score}"));
                }
            }
            // Page by page, the same ranking.
            let mut paged = Vec::new();
            for page in 0.. {
                let offset = (page * 7).to_string();
                let (ids, _, page_total) = search(
                    handle,
                    &[
                        ("search", text_query),
                        trash_item,
                        ("limit", "7"),
                        ("offset", offset.as_str()),
                    ],
                );
                if page_total != total {
                    return Err(format!("{text_query:?}: page total {page_total:?}"));
                }
                if ids.is_empty() {
                    break;
                }
                paged.extend(ids);
            }
            if paged != wanted_ids {
                return Err(format!("{text_query:?}: pages {paged:?} != {wanted_ids:?}"));
            }
            // Sorted by id instead of relevance.
            let (by_id, _, _) = search(
                handle,
                &[
                    ("search", text_query),
                    trash_item,
                    ("sort", "id"),
                    ("limit", "1000"),
                ],
            );
            let mut sorted = wanted_ids.clone();
            sorted.sort_unstable();
            if by_id != sorted {
                return Err(format!("{text_query:?}: by id {by_id:?} != {sorted:?}"));
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn search_answers_equal_a_brute_force_over_the_records(ops in prop::collection::vec(operation(), 1..24)) {
        let outcome = with_registry(vec![searchable_schema()], async |registry: Arc<Registry>| {
            let items = table(&registry, "items");
            for op in &ops {
                apply(&items, op).await;
            }
            check(&items)
        });
        prop_assert!(outcome.is_ok(), "{:?}", outcome);
    }
}

async fn create_titles(handle: &TableHandle, titles: impl Iterator<Item = String>) {
    let records: Vec<Vec<(String, Value)>> = titles
        .map(|title| vec![("title".to_owned(), text(&title))])
        .collect();
    for chunk in records.chunks(100) {
        let outcome = handle
            .addr
            .send(CreateRecords {
                records: chunk.to_vec(),
                user_id: None,
            })
            .await
            .expect("the actor answers");
        assert!(outcome.is_ok());
    }
}

#[test]
fn blocks_fill_split_and_merge_at_their_edges() {
    with_registry(
        vec![searchable_schema()],
        async |registry: Arc<Registry>| {
            let items = table(&registry, "items");
            let sizes = |term: &str| block_sizes(&items.shared.store, term).expect("readable");
            // Batches append: full blocks from the start, the rest in the last one.
            create_titles(
                &items,
                (1..=300).map(|id| {
                    if id <= 10 {
                        "v".to_owned()
                    } else {
                        "w".to_owned()
                    }
                }),
            )
            .await;
            assert_eq!(sizes("w"), vec![128, 128, 34]);
            assert_eq!(sizes("v"), vec![10]);
            // Postings before the first block go into it; overfull and not the last, it splits
            // into even halves. A term whose last posting goes loses its block.
            let patches: Vec<RecordPatch> = (1..=10)
                .map(|record_id| RecordPatch {
                    record_id,
                    fields: vec![("title".to_owned(), text("w"))],
                })
                .collect();
            let outcome = items
                .addr
                .send(UpdateRecords {
                    patches,
                    user_id: None,
                })
                .await
                .expect("the actor answers");
            assert!(outcome.is_ok());
            assert_eq!(sizes("w"), vec![69, 69, 128, 34]);
            assert!(sizes("v").is_empty());
            // Single creates fill the last block to the brim, then open a new one.
            for _ in 0..95 {
                query_support::create(&items, vec![("title", text("w"))]).await;
            }
            assert_eq!(sizes("w"), vec![69, 69, 128, 128, 1]);
            // A block left with fewer than a quarter is merged into the next one (its key follows
            // its first record).
            let outcome = items
                .addr
                .send(delete_message((1..=50).collect(), true))
                .await
                .expect("the actor answers");
            assert!(outcome.is_ok());
            assert_eq!(sizes("w"), vec![88, 128, 128, 1]);
            // A block whose every posting goes is dropped.
            let outcome = items
                .addr
                .send(delete_message((51..=138).collect(), true))
                .await
                .expect("the actor answers");
            assert!(outcome.is_ok());
            assert_eq!(sizes("w"), vec![128, 128, 1]);
            assert_eq!(
                search(&items, &[("search", "w"), ("limit", "1")]).2,
                Some(257)
            );
            check(&items).expect("the index agrees with the records");
        },
    );
}

/// Runs `body` on a registry over the store in `directory` (kept between calls).
fn with_store<T>(
    directory: &std::path::Path,
    schema: TableSchema,
    body: impl AsyncFnOnce(Arc<Registry>, Store) -> T,
) -> T {
    let system = actix::System::new();
    system.block_on(async move {
        let store = Store::open(directory).expect("the store opens");
        let registry = Registry::new(store.clone(), 1);
        registry.install(schema).expect("the table installs");
        let result = body(Arc::clone(&registry), store.clone()).await;
        registry.stop_actors();
        store.close().expect("the store closes");
        result
    })
}

#[test]
fn the_index_survives_a_restart_and_an_old_format_is_rebuilt_at_open() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    with_store(
        directory.path(),
        searchable_schema(),
        async |registry: Arc<Registry>, _| {
            let items = table(&registry, "items");
            create_titles(
                &items,
                (1..=200).map(|id| format!("{} n{id}", WORDS[id % 4])),
            )
            .await;
            assert!(query_support::delete(&items, 3, false).await);
            check(&items).expect("the index agrees with the records");
        },
    );
    let before = with_store(
        directory.path(),
        searchable_schema(),
        async |registry: Arc<Registry>, _| {
            let items = table(&registry, "items");
            check(&items).expect("the index agrees with the records after a restart");
            let (ids, _, total) = search(&items, &[("search", "red"), ("limit", "1000")]);
            // The data directory as a version before posting blocks left it: one `F p` key per
            // posting, no format marker, no blocks.
            let tree = items.shared.store.tree();
            for entry in tree.scan_prefix([SEARCH, b'b']) {
                let (key, _) = entry.expect("readable");
                tree.remove(key).expect("removed");
            }
            tree.remove(FORMAT_KEY).expect("removed");
            for record in all_records(&items) {
                for term in document(&record).0.keys() {
                    let mut key = vec![SEARCH, b'p'];
                    key.extend_from_slice(term.as_bytes());
                    key.push(0);
                    key.extend_from_slice(&record.id.to_be_bytes());
                    tree.insert(key, vec![0, 0, 0, 2, 0, 0, 0, 0])
                        .expect("written");
                }
            }
            tree.flush().expect("flushed");
            (ids, total)
        },
    );
    with_store(
        directory.path(),
        searchable_schema(),
        async |registry: Arc<Registry>, _| {
            let items = table(&registry, "items");
            let tree = items.shared.store.tree();
            assert_in_current_format(tree, b'p');
            let (ids, _, total) = search(&items, &[("search", "red"), ("limit", "1000")]);
            assert_eq!((ids, total), before);
            check(&items).expect("the rebuilt index agrees with the records");
        },
    );
}

/// After an open that upgraded the index: no key of the old `kind` is left under the search
/// prefix and the format marker is the current one.
fn assert_in_current_format(tree: &sled::Tree, kind: u8) {
    assert_eq!(tree.scan_prefix([SEARCH, kind]).count(), 0);
    assert_eq!(
        tree.get(FORMAT_KEY).expect("readable").as_deref(),
        Some(&[INDEX_FORMAT][..])
    );
}

/// A data directory in format 2 (blocks, and one `F d` length key per record) is upgraded at
/// open: the lengths become the totals key, the length keys go, the blocks stay. A length key
/// left over by an upgrade that was interrupted is removed at the next open.
#[test]
fn a_format_2_index_is_upgraded_to_one_totals_key_at_open() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let length_key = |record_id: u64| {
        let mut key = vec![SEARCH, b'd'];
        key.extend_from_slice(&record_id.to_be_bytes());
        key
    };
    let before = with_store(
        directory.path(),
        searchable_schema(),
        async |registry: Arc<Registry>, _| {
            let items = table(&registry, "items");
            create_titles(
                &items,
                (1..=300).map(|id| format!("{} n{id} {}", WORDS[id % 4], "x ".repeat(id % 7))),
            )
            .await;
            check(&items).expect("the index agrees with the records");
            let (ids, scores, total) = search(&items, &[("search", "red"), ("limit", "1000")]);
            // Back to format 2: no totals key, a length key per record with text.
            let tree = items.shared.store.tree();
            tree.remove(TOTALS_KEY).expect("removed");
            tree.insert(FORMAT_KEY, vec![2u8]).expect("written");
            for record in all_records(&items) {
                let length = document(&record).1;
                if length > 0 {
                    tree.insert(length_key(record.id), length.to_be_bytes().to_vec())
                        .expect("written");
                }
            }
            tree.flush().expect("flushed");
            (ids, scores, total)
        },
    );
    with_store(
        directory.path(),
        searchable_schema(),
        async |registry: Arc<Registry>, _| {
            let items = table(&registry, "items");
            let tree = items.shared.store.tree();
            assert_in_current_format(tree, b'd');
            check(&items).expect("the upgraded index agrees with the records");
            assert_eq!(
                search(&items, &[("search", "red"), ("limit", "1000")]),
                before,
                "the same hits, scores and total"
            );
            tree.insert(length_key(7), 3u32.to_be_bytes().to_vec())
                .expect("written");
            tree.flush().expect("flushed");
        },
    );
    with_store(
        directory.path(),
        searchable_schema(),
        async |registry: Arc<Registry>, _| {
            let items = table(&registry, "items");
            assert_eq!(
                items
                    .shared
                    .store
                    .tree()
                    .scan_prefix([SEARCH, b'd'])
                    .count(),
                0,
                "a left-over length key is removed"
            );
            check(&items).expect("the index agrees with the records");
        },
    );
}

/// A race check: it catches a search that sees a half-rewritten index only when a batch lands
/// while the search reads its blocks, which a run may or may not provoke.
#[test]
fn searches_read_one_consistent_index_while_blocks_are_rewritten() {
    with_registry(
        vec![searchable_schema()],
        async |registry: Arc<Registry>| {
            let items = table(&registry, "items");
            create_titles(&items, (1..=4000).map(|id| format!("w n{id}"))).await;
            let reader_items = items.clone();
            let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let reader_stop = Arc::clone(&stop);
            // Every write below removes or adds whole batches of 40, so any consistent answer
            // holds a multiple of 40 matches, each once.
            let reader = std::thread::spawn(move || {
                let mut searches = 0u32;
                while !reader_stop.load(std::sync::atomic::Ordering::Acquire) || searches < 20 {
                    let request = parse_list_query(
                        &reader_items.shared.schema(),
                        &pairs(&[("search", "w"), ("limit", "1"), ("includeDeleted", "true")]),
                        LIMITS,
                        parse_json,
                    )
                    .expect("parses");
                    let total = list(&reader_items.shared, &request)
                        .map_err(|error| format!("{error:?}"))?
                        .total
                        .unwrap_or(0);
                    if total % 40 != 0 || total < 4000 - 40 {
                        return Err(format!("an answer from a half-applied batch: {total}"));
                    }
                    searches += 1;
                }
                Ok::<u32, String>(searches)
            });
            for round in 0..60u64 {
                let first = 1 + round * 40;
                let outcome = items
                    .addr
                    .send(delete_message((first..first + 40).collect(), true))
                    .await
                    .expect("the actor answers");
                assert!(outcome.is_ok());
                create_titles(&items, (0..40).map(|_| "w".to_owned())).await;
            }
            stop.store(true, std::sync::atomic::Ordering::Release);
            let searches = reader.join().expect("the reader finishes");
            assert!(searches.is_ok(), "{searches:?}");
            check(&items).expect("the index agrees with the records");
        },
    );
}
