//! Full-text search (`search=`): the inverted index kept in the table's own tree, the query
//! syntax (words AND-ed, `"exact phrase"`, `-exclude`, `or`), and BM25 relevance.
//!
//! Key layout, under the one-byte prefix [`SEARCH`] (`F`) next to the storage crate's
//! `R`/`I`/`U`/`T`/`M`:
//!
//! * `F 'p' ++ term (UTF-8) ++ 0x00 ++ record_id (u64 BE)` → `doc_len (u32 BE) ++ positions
//!   (u32 BE each, ascending)`: one posting per term and record; terms never contain `0x00`, so
//!   a term's postings are exactly the keys under `F p term 0x00`, in record-id order;
//! * `F 'd' ++ record_id (u64 BE)` → `doc_len (u32 BE)`: the record's token count, sampled for
//!   the average document length.
//!
//! The document of a record is the text of the table's search fields (the `search` option, or
//! every text field) in schema order, tokenised into lower-case alphanumeric runs; positions
//! skip one between fields so a phrase never spans two fields. Trashed records stay indexed (the
//! list filters by trash mode). The table actor writes these keys in the same batch as the
//! record (`write_search_entries`), so the index is exactly as durable as the data.

use std::collections::{BTreeMap, HashMap, HashSet};

use tabula_storage::{FieldDef, StoredRecord, TableSchema, Value, WriteBatch};

use crate::error::{DomainError, DomainResult};
use crate::registry::TableShared;

/// The key prefix of the full-text index.
pub const SEARCH: u8 = b'F';
const POSTING: u8 = b'p';
const DOCUMENT: u8 = b'd';
/// Tokens longer than this are cut (the same way when indexing and when searching).
pub const MAX_TOKEN_CHARS: usize = 64;
/// The longest search text accepted.
pub const MAX_SEARCH_CHARS: usize = 1_000;
/// How many document lengths are read to estimate the average.
const LENGTH_SAMPLE: usize = 1_000;
const BM25_K1: f64 = 1.2;
const BM25_B: f64 = 0.75;

/// The fields a table's search covers: the `search` option's names, or every text field.
pub fn search_fields(schema: &TableSchema) -> Vec<&FieldDef> {
    match &schema.search {
        Some(names) => schema
            .fields
            .iter()
            .filter(|field| names.contains(&field.name))
            .collect(),
        None => schema
            .fields
            .iter()
            .filter(|field| field.field_type.is_text())
            .collect(),
    }
}

/// Splits text into lower-case alphanumeric tokens.
pub fn tokenize(text: &str) -> Vec<String> {
    text.split(|character: char| !character.is_alphanumeric())
        .filter(|word| !word.is_empty())
        .map(|word| {
            word.chars()
                .take(MAX_TOKEN_CHARS)
                .flat_map(char::to_lowercase)
                .collect()
        })
        .collect()
}

fn value_texts(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Text(text) => out.push(text.clone()),
        Value::Int(number) => out.push(number.to_string()),
        Value::Float(number) => out.push(number.to_string()),
        Value::List(items) => items.iter().for_each(|item| value_texts(item, out)),
        Value::Map(entries) => entries.values().for_each(|item| value_texts(item, out)),
        Value::Null | Value::Bool(_) => {}
    }
}

/// A record's indexed document: term → positions, and its length in tokens.
#[derive(Debug, PartialEq, Default)]
struct Document {
    terms: BTreeMap<String, Vec<u32>>,
    length: u32,
}

fn document(fields: &[&FieldDef], record: &StoredRecord) -> Document {
    let mut terms: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    let mut position: u32 = 0;
    let mut length: u32 = 0;
    for field in fields {
        let mut texts = Vec::new();
        value_texts(record.value(field.id), &mut texts);
        for text in texts {
            for token in tokenize(&text) {
                terms.entry(token).or_default().push(position);
                position = position.saturating_add(1);
                length = length.saturating_add(1);
            }
            // A gap so that phrases do not run from one value into the next.
            position = position.saturating_add(1);
        }
    }
    Document { terms, length }
}

fn term_prefix(term: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(term.len() + 3);
    key.push(SEARCH);
    key.push(POSTING);
    key.extend_from_slice(term.as_bytes());
    key.push(0);
    key
}

fn posting_key(term: &str, record_id: u64) -> Vec<u8> {
    let mut key = term_prefix(term);
    key.extend_from_slice(&record_id.to_be_bytes());
    key
}

fn document_key(record_id: u64) -> Vec<u8> {
    let mut key = vec![SEARCH, DOCUMENT];
    key.extend_from_slice(&record_id.to_be_bytes());
    key
}

fn posting_value(length: u32, positions: &[u32]) -> Vec<u8> {
    let mut value = Vec::with_capacity(4 + positions.len() * 4);
    value.extend_from_slice(&length.to_be_bytes());
    for position in positions {
        value.extend_from_slice(&position.to_be_bytes());
    }
    value
}

/// Adds to `batch` the search-index changes that turn `old` into `new` (either may be absent:
/// a create or a permanent delete). Called by the table actor for every write.
pub fn write_search_entries(
    batch: &mut WriteBatch,
    schema: &TableSchema,
    old: Option<&StoredRecord>,
    new: Option<&StoredRecord>,
) {
    let fields = search_fields(schema);
    let old_document = old.map(|record| (record.id, document(&fields, record)));
    let new_document = new.map(|record| (record.id, document(&fields, record)));
    if old_document == new_document {
        return;
    }
    if let Some((record_id, document)) = &old_document {
        let kept = new_document
            .as_ref()
            .filter(|(new_id, _)| new_id == record_id)
            .map(|(_, document)| &document.terms);
        for term in document.terms.keys() {
            if kept.is_none_or(|kept| !kept.contains_key(term)) {
                batch.remove(posting_key(term, *record_id));
            }
        }
        if document.length > 0 && kept.is_none() {
            batch.remove(document_key(*record_id));
        }
    }
    if let Some((record_id, document)) = &new_document {
        for (term, positions) in &document.terms {
            batch.put(
                posting_key(term, *record_id),
                posting_value(document.length, positions),
            );
        }
        if document.length > 0 {
            batch.put(
                document_key(*record_id),
                document.length.to_be_bytes().to_vec(),
            );
        } else {
            batch.remove(document_key(*record_id));
        }
    }
}

/// One thing to look for: a word, or the words of a phrase in sequence.
pub type SearchItem = Vec<String>;

/// Items that must all be present, and items none of which may be.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SearchClause {
    pub required: Vec<SearchItem>,
    pub excluded: Vec<SearchItem>,
}

/// A parsed `search=`: the clauses are alternatives (`or`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SearchQuery {
    pub clauses: Vec<SearchClause>,
}

/// Parses web-search syntax: words are AND-ed, `"…"` is a phrase, `-word` / `-"…"` excludes,
/// `or` between two items separates alternatives (AND binds tighter). A word that tokenises into
/// several tokens (`e-mail`) is a phrase. `None` when the text holds no searchable word.
pub fn parse_search(text: &str) -> DomainResult<Option<SearchQuery>> {
    if text.chars().count() > MAX_SEARCH_CHARS {
        return Err(DomainError::bad_request(
            "search",
            format!("search text too long (max {MAX_SEARCH_CHARS} characters)"),
        ));
    }
    let characters: Vec<char> = text.chars().collect();
    let mut clauses = vec![SearchClause::default()];
    let mut at = 0usize;
    while at < characters.len() {
        if characters[at].is_whitespace() {
            at += 1;
            continue;
        }
        let excluded = characters[at] == '-';
        if excluded {
            at += 1;
        }
        let raw: String = if characters.get(at) == Some(&'"') {
            at += 1;
            let start = at;
            while at < characters.len() && characters[at] != '"' {
                at += 1;
            }
            let phrase = characters[start..at].iter().collect();
            at += 1;
            phrase
        } else {
            let start = at;
            while at < characters.len() && !characters[at].is_whitespace() {
                at += 1;
            }
            let word: String = characters[start..at].iter().collect();
            if !excluded && word.eq_ignore_ascii_case("or") {
                let current_has_items = clauses.last().is_some_and(|clause| {
                    !clause.required.is_empty() || !clause.excluded.is_empty()
                });
                if current_has_items {
                    clauses.push(SearchClause::default());
                }
                continue;
            }
            word
        };
        let item = tokenize(&raw);
        if item.is_empty() {
            continue;
        }
        if let Some(clause) = clauses.last_mut() {
            if excluded {
                clause.excluded.push(item);
            } else {
                clause.required.push(item);
            }
        }
    }
    clauses.retain(|clause| !clause.required.is_empty() || !clause.excluded.is_empty());
    if clauses.is_empty() {
        return Ok(None);
    }
    if clauses.iter().any(|clause| clause.required.is_empty()) {
        return Err(DomainError::bad_request(
            "search",
            "search needs at least one word to look for (exclusions alone are not supported)",
        ));
    }
    Ok(Some(SearchQuery { clauses }))
}

/// One record that matched, with its relevance.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SearchHit {
    pub record_id: u64,
    pub score: f64,
}

struct Posting {
    record_id: u64,
    document_length: u32,
    term_frequency: u32,
    /// Read only for the words of phrases.
    positions: Vec<u32>,
}

/// A term's postings in record-id order.
type PostingList = Vec<Posting>;

fn read_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let chunk: [u8; 4] = bytes.get(at..at + 4)?.try_into().ok()?;
    Some(u32::from_be_bytes(chunk))
}

fn load_postings(
    table: &TableShared,
    term: &str,
    with_positions: bool,
) -> DomainResult<PostingList> {
    let mut postings = Vec::new();
    for entry in table.store.tree().scan_prefix(term_prefix(term)) {
        let (key, value) = entry.map_err(tabula_storage::StorageError::from)?;
        let Some(record_id) = tabula_storage::keys::trailing_record_id(&key) else {
            continue;
        };
        let count = value.len().saturating_sub(4) / 4;
        let positions = if with_positions {
            (0..count)
                .filter_map(|index| read_u32(&value, 4 + index * 4))
                .collect()
        } else {
            Vec::new()
        };
        postings.push(Posting {
            record_id,
            document_length: read_u32(&value, 0).unwrap_or(0),
            term_frequency: u32::try_from(count).unwrap_or(u32::MAX),
            positions,
        });
    }
    Ok(postings)
}

fn find(postings: &[Posting], record_id: u64) -> Option<&Posting> {
    postings
        .binary_search_by_key(&record_id, |posting| posting.record_id)
        .ok()
        .and_then(|index| postings.get(index))
}

/// The average document length, from a sample of the `F d` entries.
fn average_document_length(table: &TableShared) -> DomainResult<f64> {
    let mut total = 0u64;
    let mut count = 0u64;
    for entry in table
        .store
        .tree()
        .scan_prefix([SEARCH, DOCUMENT])
        .take(LENGTH_SAMPLE)
    {
        let (_, value) = entry.map_err(tabula_storage::StorageError::from)?;
        total += u64::from(read_u32(&value, 0).unwrap_or(0));
        count += 1;
    }
    Ok(if count == 0 {
        1.0
    } else {
        // Both are far below 2^53, so the conversions are exact.
        (total as f64 / count as f64).max(1.0)
    })
}

/// The records (ascending ids) matching `item`: every word; for a phrase, in sequence.
fn item_matches(item: &SearchItem, postings: &HashMap<&str, PostingList>) -> Vec<u64> {
    let lists: Option<Vec<&PostingList>> = item
        .iter()
        .map(|term| postings.get(term.as_str()))
        .collect();
    let Some(lists) = lists else {
        return Vec::new();
    };
    let Some((first, rest)) = lists.split_first() else {
        return Vec::new();
    };
    first
        .iter()
        .filter(|first_posting| {
            let others: Option<Vec<&Posting>> = rest
                .iter()
                .map(|list| find(list, first_posting.record_id))
                .collect();
            let Some(others) = others else {
                return false;
            };
            if others.is_empty() {
                return true;
            }
            first_posting.positions.iter().any(|start| {
                others.iter().enumerate().all(|(offset, posting)| {
                    let wanted = u32::try_from(offset + 1)
                        .ok()
                        .and_then(|offset| start.checked_add(offset));
                    wanted.is_some_and(|wanted| posting.positions.binary_search(&wanted).is_ok())
                })
            })
        })
        .map(|posting| posting.record_id)
        .collect()
}

/// Ids in both ascending lists.
fn intersect(left: &[u64], right: &[u64]) -> Vec<u64> {
    let (small, large) = if left.len() <= right.len() {
        (left, right)
    } else {
        (right, left)
    };
    small
        .iter()
        .copied()
        .filter(|id| large.binary_search(id).is_ok())
        .collect()
}

/// Runs a search against the table's index: every record (live or trashed) that matches, with
/// its BM25 score, best first (ties by id ascending). Reads only the postings of the query's
/// terms, never the records.
pub fn run_search(table: &TableShared, query: &SearchQuery) -> DomainResult<Vec<SearchHit>> {
    let mut phrase_terms: HashSet<&str> = HashSet::new();
    let mut all_terms: Vec<&str> = Vec::new();
    for clause in &query.clauses {
        for item in clause.required.iter().chain(&clause.excluded) {
            for term in item {
                if item.len() > 1 {
                    phrase_terms.insert(term);
                }
                if !all_terms.contains(&term.as_str()) {
                    all_terms.push(term);
                }
            }
        }
    }
    let mut postings: HashMap<&str, PostingList> = HashMap::new();
    for term in &all_terms {
        postings.insert(
            term,
            load_postings(table, term, phrase_terms.contains(term))?,
        );
    }
    let mut matched: Vec<u64> = Vec::new();
    for clause in &query.clauses {
        let mut candidates: Option<Vec<u64>> = None;
        for item in &clause.required {
            let found = item_matches(item, &postings);
            candidates = Some(match candidates {
                None => found,
                Some(previous) => intersect(&previous, &found),
            });
        }
        let mut candidates = candidates.unwrap_or_default();
        for item in &clause.excluded {
            let excluded = item_matches(item, &postings);
            candidates.retain(|id| excluded.binary_search(id).is_err());
        }
        matched.extend(candidates);
    }
    if query.clauses.len() > 1 {
        matched.sort_unstable();
        matched.dedup();
    }
    let mut required_terms: Vec<&str> = Vec::new();
    for term in query
        .clauses
        .iter()
        .flat_map(|clause| clause.required.iter().flatten())
    {
        if !required_terms.contains(&term.as_str()) {
            required_terms.push(term);
        }
    }
    let largest_df = postings.values().map(Vec::len).max().unwrap_or(0);
    let documents = u64::try_from(largest_df)
        .unwrap_or(u64::MAX)
        .max(table.live_count());
    // Counts far below 2^53: exact as f64.
    let documents = documents as f64;
    let average_length = average_document_length(table)?;
    let weighted: Vec<(&PostingList, f64)> = required_terms
        .iter()
        .filter_map(|term| postings.get(term))
        .map(|list| {
            // A count of postings, far below 2^53: exact as f64.
            let document_frequency = list.len() as f64;
            let idf =
                (1.0 + (documents - document_frequency + 0.5) / (document_frequency + 0.5)).ln();
            (list, idf)
        })
        .collect();
    let mut hits: Vec<SearchHit> = matched
        .into_iter()
        .map(|record_id| {
            let mut score = 0.0;
            for (list, idf) in &weighted {
                if let Some(posting) = find(list, record_id) {
                    let frequency = f64::from(posting.term_frequency);
                    let length = f64::from(posting.document_length);
                    score += idf * frequency * (BM25_K1 + 1.0)
                        / (frequency + BM25_K1 * (1.0 - BM25_B + BM25_B * length / average_length));
                }
            }
            SearchHit { record_id, score }
        })
        .collect();
    hits.sort_by(|left, right| {
        right
            .score
            .total_cmp(&left.score)
            .then(left.record_id.cmp(&right.record_id))
    });
    Ok(hits)
}

/// Whether a record matches a search, decided from the record itself (no index): the
/// brute-force reference the index is tested against.
pub fn record_matches(schema: &TableSchema, query: &SearchQuery, record: &StoredRecord) -> bool {
    let document = document(&search_fields(schema), record);
    let item_found = |item: &SearchItem| {
        let Some(starts) = item.first().and_then(|term| document.terms.get(term)) else {
            return false;
        };
        starts.iter().any(|start| {
            item.iter().enumerate().skip(1).all(|(offset, term)| {
                let wanted = u32::try_from(offset)
                    .ok()
                    .and_then(|offset| start.checked_add(offset));
                match (document.terms.get(term), wanted) {
                    (Some(positions), Some(wanted)) => positions.binary_search(&wanted).is_ok(),
                    _ => false,
                }
            })
        })
    };
    query.clauses.iter().any(|clause| {
        clause.required.iter().all(item_found) && !clause.excluded.iter().any(item_found)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokenizer_lowercases_alphanumeric_runs() {
        assert_eq!(
            tokenize("Hello, WORLD! e-mail 42x"),
            vec!["hello", "world", "e", "mail", "42x"]
        );
    }

    #[test]
    fn query_syntax() {
        let query = parse_search("postgres -mysql \"full text\" or sqlite")
            .unwrap()
            .unwrap();
        assert_eq!(query.clauses.len(), 2);
        assert_eq!(
            query.clauses[0].required,
            vec![
                vec!["postgres".to_string()],
                vec!["full".into(), "text".into()]
            ]
        );
        assert_eq!(query.clauses[0].excluded, vec![vec!["mysql".to_string()]]);
        assert_eq!(query.clauses[1].required, vec![vec!["sqlite".to_string()]]);
        assert!(parse_search("  ").unwrap().is_none());
        assert!(parse_search("-only").is_err());
    }
}
