//! Full-text search (`search=`): the inverted index kept in the table's own tree, the query
//! syntax (words AND-ed, `"exact phrase"`, `-exclude`, `or`), and BM25 relevance.
//!
//! Key layout, under the one-byte prefix [`SEARCH`] (`F`) next to the storage crate's
//! `R`/`I`/`U`/`T`/`M`:
//!
//! * `F 'b' ++ term (UTF-8) ++ 0x00 ++ first_record_id (u64 BE)` → a **posting block**: the
//!   postings of up to [`BLOCK_POSTINGS`] records of one term, `first_record_id` being the
//!   smallest. Terms never contain `0x00`, so a term's blocks are exactly the keys under
//!   `F b term 0x00`, in record-id order, and their id ranges do not overlap. The value is
//!   [`BLOCK_FORMAT`] ++ bincode(`ids`, `lengths`, `frequencies`) ++ bincode(`positions`),
//!   varint-coded: the record ids (the first one, then the gaps), each record's document length,
//!   each record's term frequency, then every posting's positions (the first one, then the
//!   gaps). A search reads the first part only, unless the term is in a phrase;
//! * `F 't'` → the indexed documents (u64 BE) and their total length in tokens (u64 BE), for
//!   BM25's average document length; changed once per write batch by the batch's net change;
//! * `F 'v'` → the index format ([`INDEX_FORMAT`]). A table opened without it (a data directory
//!   written before the blocks, when every posting was its own `F 'p'` key) has its index rebuilt
//!   from its records first; one in format 2 (each record's length under its own `F 'd'` key)
//!   has the totals summed from those keys, which are then removed ([`ensure_index_format`]).
//!
//! The document of a record is the text of the table's search fields (the `search` option, or
//! every text field) in schema order, tokenised into lower-case alphanumeric runs; positions
//! skip one between fields so a phrase never spans two fields. Trashed records stay indexed (the
//! list filters by trash mode). The table actor gathers a write's posting changes
//! ([`SearchChanges`]) and turns them into block rewrites when the changeset finishes, in the
//! same batch as the records, so the index is exactly as durable as the data.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};
use std::ops::Bound;
use std::sync::Arc;

use sled::IVec;
use tabula_storage::{
    FieldDef, StorageError, StorageResult, StoredRecord, TableSchema, TableStore, Value, WriteBatch,
};

use crate::error::{DomainError, DomainResult};
use crate::query::budget::QueryBudget;
use crate::query::filter::Filter;
use crate::registry::TableShared;

/// The key prefix of the full-text index.
pub const SEARCH: u8 = b'F';
const BLOCK: u8 = b'b';
/// Format 2's per-record document lengths (`F 'd' ++ record id`), removed on upgrade.
const DOCUMENT: u8 = b'd';
/// The key of the document totals.
pub const TOTALS_KEY: [u8; 2] = [SEARCH, b't'];
/// The key of the index format marker.
pub const FORMAT_KEY: [u8; 2] = [SEARCH, b'v'];
/// The index format this version writes (`F 'v'`): 3 = posting blocks and one totals key
/// (2 = posting blocks and a length key per record).
pub const INDEX_FORMAT: u8 = 3;
/// The first byte of every block value.
pub const BLOCK_FORMAT: u8 = 1;
/// The most postings one block holds.
pub const BLOCK_POSTINGS: usize = 128;
/// A block rewritten with fewer postings than this (after removals) is merged into the next one.
pub const MIN_BLOCK_POSTINGS: usize = 32;
/// Tokens longer than this are cut (the same way when indexing and when searching).
pub const MAX_TOKEN_CHARS: usize = 64;
/// The longest search text accepted.
pub const MAX_SEARCH_CHARS: usize = 1_000;
const BM25_K1: f64 = 1.2;
const BM25_B: f64 = 0.75;
/// The most bytes one block decode may claim (a damaged length prefix becomes an error).
const BLOCK_DECODE_LIMIT: usize = 1 << 24;
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
    let mut key = Vec::with_capacity(term.len() + 11);
    key.push(SEARCH);
    key.push(BLOCK);
    key.extend_from_slice(term.as_bytes());
    key.push(0);
    key
}

fn block_key(prefix: &[u8], first_record_id: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(prefix.len() + 8);
    key.extend_from_slice(prefix);
    key.extend_from_slice(&first_record_id.to_be_bytes());
    key
}

/// The indexed documents and their total length, as `F t` holds them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DocumentTotals {
    pub documents: u64,
    pub tokens: u64,
}

impl DocumentTotals {
    fn decode(bytes: Option<&[u8]>) -> DocumentTotals {
        let number = |range: std::ops::Range<usize>| {
            bytes
                .and_then(|bytes| bytes.get(range))
                .and_then(|slice| <[u8; 8]>::try_from(slice).ok())
                .map_or(0, u64::from_be_bytes)
        };
        DocumentTotals {
            documents: number(0..8),
            tokens: number(8..16),
        }
    }

    fn encode(self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(16);
        bytes.extend_from_slice(&self.documents.to_be_bytes());
        bytes.extend_from_slice(&self.tokens.to_be_bytes());
        bytes
    }

    /// These totals changed by `documents` and `tokens` (never below zero).
    fn plus(self, documents: i64, tokens: i64) -> DocumentTotals {
        DocumentTotals {
            documents: self.documents.saturating_add_signed(documents),
            tokens: self.tokens.saturating_add_signed(tokens),
        }
    }

    /// The average document length BM25 uses: 1 for an empty index.
    pub fn average_length(self) -> f64 {
        if self.documents == 0 {
            1.0
        } else {
            // Both far below 2^53 in any real table, so the conversions are exact.
            (self.tokens as f64 / self.documents as f64).max(1.0)
        }
    }
}

/// The document totals as stored.
pub fn document_totals(tree: &sled::Tree) -> StorageResult<DocumentTotals> {
    Ok(DocumentTotals::decode(tree.get(TOTALS_KEY)?.as_deref()))
}

/// The smallest key after every key that starts with `prefix` (a term prefix ends in `0x00`).
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    tabula_storage::store::prefix_successor(prefix.to_vec())
}

fn block_config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<BLOCK_DECODE_LIMIT>()
}

fn block_error(message: impl Into<String>) -> StorageError {
    StorageError::Decode {
        what: "search block",
        message: message.into(),
    }
}

/// One record's posting of a term with its positions spelled out (the tests' view of a block).
#[cfg(test)]
#[derive(Debug, Clone, PartialEq)]
struct StoredPosting {
    record_id: u64,
    /// The record's document length in tokens.
    length: u32,
    /// Where the term occurs, ascending (as many as its frequency).
    positions: Vec<u32>,
}

/// One record's posting of a term while the term's blocks are rewritten. Its positions stay
/// as a block stores them — the gaps, first position first — in a slice of the term's position
/// arena, so decoding and re-encoding a block costs a handful of allocations, not one per
/// posting.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Posting {
    record_id: u64,
    /// The record's document length in tokens.
    length: u32,
    /// The position gaps are `arena[start..start + count]` (`count`: the term frequency).
    start: usize,
    count: usize,
}

impl Posting {
    /// The position gaps of this posting in `arena` (the arena it was made with).
    fn gaps<'a>(&self, arena: &'a [u32]) -> &'a [u32] {
        self.start
            .checked_add(self.count)
            .and_then(|end| arena.get(self.start..end))
            .unwrap_or_default()
    }
}

/// A posting of `record_id` at ascending `positions`, its gaps appended to `arena`.
fn push_posting(arena: &mut Vec<u32>, record_id: u64, length: u32, positions: &[u32]) -> Posting {
    let start = arena.len();
    let mut previous = 0u32;
    for position in positions {
        arena.push(position.wrapping_sub(previous));
        previous = *position;
    }
    Posting {
        record_id,
        length,
        start,
        count: positions.len(),
    }
}

/// A block value: [`BLOCK_FORMAT`] ++ bincode(id gaps, lengths, frequencies) ++
/// bincode(position gaps). `postings` is sorted by record id and not empty; their position
/// gaps are in `arena`.
fn encode_postings(postings: &[Posting], arena: &[u32]) -> StorageResult<Vec<u8>> {
    let mut gaps = Vec::with_capacity(postings.len());
    let mut lengths = Vec::with_capacity(postings.len());
    let mut frequencies = Vec::with_capacity(postings.len());
    let mut positions = Vec::with_capacity(postings.len());
    let mut previous_id = 0u64;
    for posting in postings {
        gaps.push(posting.record_id.wrapping_sub(previous_id));
        previous_id = posting.record_id;
        lengths.push(posting.length);
        let posting_gaps = posting.gaps(arena);
        frequencies.push(u32::try_from(posting_gaps.len()).unwrap_or(u32::MAX));
        positions.extend_from_slice(posting_gaps);
    }
    let mut bytes = Vec::with_capacity(4 * postings.len() + positions.len() + 8);
    bytes.push(BLOCK_FORMAT);
    let encode_error = |error: bincode::error::EncodeError| StorageError::Encode(error.to_string());
    bincode::encode_into_std_write((gaps, lengths, frequencies), &mut bytes, block_config())
        .map_err(encode_error)?;
    bincode::encode_into_std_write(positions, &mut bytes, block_config()).map_err(encode_error)?;
    Ok(bytes)
}

/// Appends the postings of a block value to `postings`, their position gaps to `arena`.
fn decode_block_into(
    value: &[u8],
    postings: &mut Vec<Posting>,
    arena: &mut Vec<u32>,
) -> StorageResult<()> {
    let head = decode_head(value)?;
    let gaps = decode_gaps(value, &head)?;
    let mut start = arena.len();
    let mut total = 0usize;
    postings.reserve(head.ids.len());
    for ((record_id, length), frequency) in
        head.ids.iter().zip(&head.lengths).zip(&head.frequencies)
    {
        let count = usize::try_from(*frequency).unwrap_or(usize::MAX);
        total = total.saturating_add(count);
        if total > gaps.len() {
            return Err(block_error("fewer positions than frequencies"));
        }
        postings.push(Posting {
            record_id: *record_id,
            length: *length,
            start,
            count,
        });
        start += count;
    }
    if total < gaps.len() {
        return Err(block_error("more positions than frequencies"));
    }
    arena.extend_from_slice(&gaps);
    Ok(())
}

/// [`encode_postings`] of postings with their positions spelled out.
#[cfg(test)]
fn encode_block(postings: &[StoredPosting]) -> StorageResult<Vec<u8>> {
    let mut arena = Vec::new();
    let postings: Vec<Posting> = postings
        .iter()
        .map(|posting| {
            push_posting(
                &mut arena,
                posting.record_id,
                posting.length,
                &posting.positions,
            )
        })
        .collect();
    encode_postings(&postings, &arena)
}

/// The first part of a block: record ids, document lengths, frequencies, and where the
/// positions start.
struct BlockHead {
    ids: Vec<u64>,
    lengths: Vec<u32>,
    frequencies: Vec<u32>,
    positions_at: usize,
}

fn decode_head(value: &[u8]) -> StorageResult<BlockHead> {
    let (ids, columns_at) = decode_ids(value)?;
    let (lengths, frequencies, positions_at) = decode_columns(value, columns_at, ids.len())?;
    Ok(BlockHead {
        ids,
        lengths,
        frequencies,
        positions_at,
    })
}

/// A block's record ids, and where its other columns start.
fn decode_ids(value: &[u8]) -> StorageResult<(Vec<u64>, usize)> {
    let Some((&BLOCK_FORMAT, body)) = value.split_first() else {
        return Err(block_error("unknown block format"));
    };
    let (mut ids, read): (Vec<u64>, usize) = bincode::decode_from_slice(body, block_config())
        .map_err(|error| block_error(error.to_string()))?;
    let mut previous = 0u64;
    for (index, id) in ids.iter_mut().enumerate() {
        *id = if index == 0 {
            *id
        } else {
            previous
                .checked_add(*id)
                .filter(|next| *next > previous)
                .ok_or_else(|| block_error("record ids out of order"))?
        };
        previous = *id;
    }
    Ok((ids, 1 + read))
}

/// A block's document lengths and frequencies (`count` of each, from `at`), and where its
/// positions start.
fn decode_columns(
    value: &[u8],
    at: usize,
    count: usize,
) -> StorageResult<(Vec<u32>, Vec<u32>, usize)> {
    let body = value.get(at..).unwrap_or_default();
    let ((lengths, frequencies), read): ((Vec<u32>, Vec<u32>), usize) =
        bincode::decode_from_slice(body, block_config())
            .map_err(|error| block_error(error.to_string()))?;
    if lengths.len() != count || frequencies.len() != count {
        return Err(block_error("columns of different lengths"));
    }
    Ok((lengths, frequencies, at + read))
}

/// Every position gap of a block (whose head is `head`), all postings' in a row; nothing may
/// follow them.
fn decode_gaps(value: &[u8], head: &BlockHead) -> StorageResult<Vec<u32>> {
    let body = value.get(head.positions_at..).unwrap_or_default();
    let (gaps, read): (Vec<u32>, usize) = bincode::decode_from_slice(body, block_config())
        .map_err(|error| block_error(error.to_string()))?;
    if read != body.len() {
        return Err(block_error("bytes left over after the positions"));
    }
    Ok(gaps)
}

/// The positions of every posting of a block (whose head is `head`).
fn decode_positions(value: &[u8], head: &BlockHead) -> StorageResult<Vec<Vec<u32>>> {
    let mut gaps = decode_gaps(value, head)?.into_iter();
    let mut all = Vec::with_capacity(head.frequencies.len());
    for frequency in &head.frequencies {
        let count = usize::try_from(*frequency).unwrap_or(usize::MAX);
        let mut positions = Vec::with_capacity(count.min(1024));
        let mut previous = 0u32;
        for _ in 0..count {
            let gap = gaps
                .next()
                .ok_or_else(|| block_error("fewer positions than frequencies"))?;
            previous = previous.wrapping_add(gap);
            positions.push(previous);
        }
        all.push(positions);
    }
    if gaps.next().is_some() {
        return Err(block_error("more positions than frequencies"));
    }
    Ok(all)
}

#[cfg(test)]
fn decode_block(value: &[u8]) -> StorageResult<Vec<StoredPosting>> {
    let (mut postings, mut arena) = (Vec::new(), Vec::new());
    decode_block_into(value, &mut postings, &mut arena)?;
    Ok(postings
        .iter()
        .map(|posting| {
            let mut position = 0u32;
            StoredPosting {
                record_id: posting.record_id,
                length: posting.length,
                positions: posting
                    .gaps(&arena)
                    .iter()
                    .map(|gap| {
                        position = position.wrapping_add(*gap);
                        position
                    })
                    .collect(),
            }
        })
        .collect())
}

/// A record's posting of one term after a batch: (document length, positions), or `None`.
type PostingChange = Option<(u32, Vec<u32>)>;

/// The search-index changes of one write batch: for each term, the posting each touched record
/// has after the batch (`None`: none any more). Several writes of the batch touching one record
/// or one block simply meet here, the later one winning; [`SearchChanges::write`] then reads
/// each affected block once and rewrites it into the batch.
#[derive(Debug, Default)]
pub struct SearchChanges {
    terms: BTreeMap<String, BTreeMap<u64, PostingChange>>,
    /// The net change of the document totals (`F t`): documents, tokens.
    documents: i64,
    tokens: i64,
    /// The batch already removes every stored `F` key (an index rebuild): blocks are written
    /// from nothing, none is read.
    rebuilding: bool,
}

impl SearchChanges {
    pub fn new() -> Self {
        SearchChanges::default()
    }

    /// The changes of a rebuild, for a batch that removes every stored `F` key first (records
    /// then added through [`SearchChanges::record`] with `old = None`).
    pub fn rebuilding() -> Self {
        SearchChanges {
            rebuilding: true,
            ..SearchChanges::default()
        }
    }

    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// Adds the changes of a later write of the same batch (its change of a record wins).
    pub fn merge(&mut self, later: SearchChanges) {
        self.rebuilding |= later.rebuilding;
        self.documents += later.documents;
        self.tokens += later.tokens;
        for (term, changes) in later.terms {
            self.terms.entry(term).or_default().extend(changes);
        }
    }

    /// Gathers the changes that turn `old` into `new` (either may be absent: a create or a
    /// permanent delete). Called for every record write, with the records as the batch leaves
    /// them step by step.
    pub fn record(
        &mut self,
        schema: &TableSchema,
        old: Option<&StoredRecord>,
        new: Option<&StoredRecord>,
    ) {
        let fields = search_fields(schema);
        if let (Some(old), Some(new)) = (old, new) {
            // The same record with the same searched values has the same document: nothing to
            // tokenise or change (the common update that leaves the searched fields alone).
            let unchanged = old.id == new.id
                && fields
                    .iter()
                    .all(|field| old.value(field.id) == new.value(field.id));
            if unchanged {
                return;
            }
        }
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
                    self.terms
                        .entry(term.clone())
                        .or_default()
                        .insert(*record_id, None);
                }
            }
            if document.length > 0 {
                self.documents -= 1;
                self.tokens -= i64::from(document.length);
            }
        }
        if let Some((record_id, document)) = new_document {
            for (term, positions) in document.terms {
                self.terms
                    .entry(term)
                    .or_default()
                    .insert(record_id, Some((document.length, positions)));
            }
            if document.length > 0 {
                self.documents += 1;
                self.tokens += i64::from(document.length);
            }
        }
    }

    /// Adds the block rewrites of every gathered change to `batch`, reading the affected
    /// blocks from `tree` (the table's tree as stored: the batch is applied right after).
    pub fn write(self, tree: &sled::Tree, batch: &mut WriteBatch) -> StorageResult<()> {
        if self.rebuilding {
            batch.put(FORMAT_KEY.to_vec(), vec![INDEX_FORMAT]);
        }
        if self.rebuilding || self.documents != 0 || self.tokens != 0 {
            let stored = if self.rebuilding {
                DocumentTotals::default()
            } else {
                match batch.get(&TOTALS_KEY) {
                    Some(staged) => DocumentTotals::decode(staged.map(|value| &value[..])),
                    None => document_totals(tree)?,
                }
            };
            batch.put(
                TOTALS_KEY.to_vec(),
                stored.plus(self.documents, self.tokens).encode(),
            );
        }
        for (term, changes) in self.terms {
            write_term(tree, batch, &term, changes, self.rebuilding)?;
        }
        Ok(())
    }
}

type Entry = (IVec, IVec);

/// The stored block `record_id` belongs to (the last one starting at or before it, else the
/// term's first block), and the block after that one.
fn locate(
    tree: &sled::Tree,
    prefix: &[u8],
    end: &[u8],
    record_id: u64,
) -> StorageResult<(Option<Entry>, Option<Entry>)> {
    let target = block_key(prefix, record_id);
    // The common case first, in one seek: a new record's id is beyond the last block's start.
    let Some(last) = tree.range(prefix.to_vec()..end.to_vec()).next_back() else {
        return Ok((None, None));
    };
    let last = last?;
    if last.0.as_ref() <= target.as_slice() {
        return Ok((Some(last), None));
    }
    let at = match tree.range(prefix.to_vec()..=target.clone()).next_back() {
        Some(block) => block?,
        // Before the first block: that block takes it.
        None => match tree.range(target..end.to_vec()).next() {
            Some(block) => block?,
            None => return Ok((None, None)),
        },
    };
    let next = block_after(tree, &at.0, end)?;
    Ok((Some(at), next))
}

fn block_after(tree: &sled::Tree, key: &[u8], end: &[u8]) -> StorageResult<Option<Entry>> {
    let range = (Bound::Excluded(key.to_vec()), Bound::Excluded(end.to_vec()));
    Ok(tree.range::<Vec<u8>, _>(range).next().transpose()?)
}

/// How a rewritten block's postings are cut into blocks: full blocks from the start for the
/// term's last block (records are mostly appended), even parts elsewhere (room on both sides).
fn split_block<T>(postings: &[T], last: bool) -> Vec<&[T]> {
    if postings.is_empty() {
        return Vec::new();
    }
    if postings.len() <= BLOCK_POSTINGS {
        return vec![postings];
    }
    let size = if last {
        BLOCK_POSTINGS
    } else {
        let parts = postings.len().div_ceil(BLOCK_POSTINGS);
        postings.len().div_ceil(parts)
    };
    postings.chunks(size).collect()
}

/// Rewrites the blocks of `term` that `changes` (ascending record ids) touch.
fn write_term(
    tree: &sled::Tree,
    batch: &mut WriteBatch,
    term: &str,
    changes: BTreeMap<u64, PostingChange>,
    rebuilding: bool,
) -> StorageResult<()> {
    let prefix = term_prefix(term);
    let end = prefix_end(&prefix);
    let mut changes = changes.into_iter().peekable();
    // The position gaps of the postings in hand (the block being rewritten and `carry`).
    let mut arena: Vec<u32> = Vec::new();
    // Postings of a block too small to keep on its own, merged into `following`.
    let mut carry: Vec<Posting> = Vec::new();
    let mut following: Option<Entry> = None;
    loop {
        let (current, next) = if let Some(block) = following.take() {
            let next = block_after(tree, &block.0, &end)?;
            (Some(block), next)
        } else {
            let Some((record_id, _)) = changes.peek() else {
                break;
            };
            if rebuilding {
                (None, None)
            } else {
                locate(tree, &prefix, &end, *record_id)?
            }
        };
        let upper = next
            .as_ref()
            .and_then(|(key, _)| tabula_storage::keys::trailing_record_id(key));
        let carried = !carry.is_empty();
        if !carried {
            // Nothing refers to the gaps of the blocks before this one any more.
            arena.clear();
        }
        let mut postings = std::mem::take(&mut carry);
        if let Some((_, value)) = &current {
            decode_block_into(value, &mut postings, &mut arena)?;
        }
        let mut changed = false;
        while let Some((record_id, change)) =
            changes.next_if(|(record_id, _)| upper.is_none_or(|upper| *record_id < upper))
        {
            let found = postings.binary_search_by_key(&record_id, |posting| posting.record_id);
            match (found, change) {
                (Ok(index), Some((length, positions))) => {
                    let posting = push_posting(&mut arena, record_id, length, &positions);
                    if let Some(slot) = postings.get_mut(index) {
                        let same = slot.length == posting.length
                            && slot.gaps(&arena) == posting.gaps(&arena);
                        if !same {
                            *slot = posting;
                            changed = true;
                        }
                    }
                }
                (Err(index), Some((length, positions))) => {
                    let posting = push_posting(&mut arena, record_id, length, &positions);
                    postings.insert(index, posting);
                    changed = true;
                }
                (Ok(index), None) => {
                    postings.remove(index);
                    changed = true;
                }
                (Err(_), None) => {}
            }
        }
        if !changed && !carried {
            continue;
        }
        if let Some((key, _)) = &current {
            batch.remove(key.clone());
        }
        if postings.len() < MIN_BLOCK_POSTINGS && next.is_some() {
            // Too small: merged into the next block (an empty one just goes).
            if !postings.is_empty() {
                carry = postings;
                following = next;
            }
            continue;
        }
        for part in split_block(&postings, next.is_none()) {
            if let Some(first) = part.first() {
                batch.put(
                    block_key(&prefix, first.record_id),
                    encode_postings(part, &arena)?,
                );
            }
        }
    }
    Ok(())
}

/// Makes sure the table's search index is in this version's format ([`INDEX_FORMAT`]):
/// - a tree without the marker — written before posting blocks, or never written — has every
///   `F` key removed (an earlier version's `F g` write token with them) and the index rebuilt
///   from its records, written in parts with the marker last;
/// - a tree in format 2 keeps its blocks: its per-record length keys are summed into the
///   totals key, written with the new marker in one batch, and then removed in small batches
///   (a crash between them leaves length keys no reader looks at; the next open removes them).
///
/// Answers whether it rebuilt or upgraded. Called when a table is opened, before it serves.
pub fn ensure_index_format(store: &TableStore, schema: &TableSchema) -> StorageResult<bool> {
    let tree = store.tree();
    let format = tree.get(FORMAT_KEY)?;
    if format.as_deref() == Some(&[INDEX_FORMAT][..]) {
        let (_, removals) = length_keys(store)?;
        store.apply_in_parts(removals)?;
        return Ok(false);
    }
    if format.as_deref() == Some(&[2][..]) {
        let (totals, removals) = length_keys(store)?;
        let mut batch = WriteBatch::new();
        batch.put(TOTALS_KEY.to_vec(), totals.encode());
        batch.put(FORMAT_KEY.to_vec(), vec![INDEX_FORMAT]);
        store.apply(batch)?;
        store.apply_in_parts(removals)?;
        tracing::info!(
            table = schema.name,
            documents = totals.documents,
            "search index upgraded to one totals key"
        );
        return Ok(true);
    }
    let mut batch = WriteBatch::new();
    for key in tree.scan_prefix([SEARCH]).keys() {
        batch.remove(key?);
    }
    let mut changes = SearchChanges::rebuilding();
    let mut records = 0u64;
    for record in store.records(None, false) {
        changes.record(schema, None, Some(&record?));
        records += 1;
    }
    changes.write(tree, &mut batch)?;
    // In parts, for memory: the format marker (`F v`) sorts after every other `F` key, so it
    // is written by the last part, and a crash before it rebuilds again at the next open.
    store.apply_in_parts(batch)?;
    if records > 0 {
        tracing::info!(
            table = schema.name,
            records,
            "search index rebuilt in the posting-block format"
        );
    }
    Ok(true)
}

/// Format 2's per-record length keys, read once: the document totals they add up to, and the
/// batch that removes them (one key per record: applied in parts).
fn length_keys(store: &TableStore) -> StorageResult<(DocumentTotals, WriteBatch)> {
    let mut totals = DocumentTotals::default();
    let mut removals = WriteBatch::new();
    for entry in store.tree().scan_prefix([SEARCH, DOCUMENT]) {
        let (key, value) = entry?;
        let length = <[u8; 4]>::try_from(&value[..]).map_or(0, u32::from_be_bytes);
        if length > 0 {
            totals = totals.plus(1, i64::from(length));
        }
        removals.remove(key);
    }
    Ok((totals, removals))
}

/// Every posting of the index as (term, record id), terms in byte order, ids ascending: for
/// checks and tests.
pub fn stored_postings(store: &TableStore) -> StorageResult<Vec<(String, u64)>> {
    let mut postings = Vec::new();
    for entry in store.tree().scan_prefix([SEARCH, BLOCK]) {
        let (key, value) = entry?;
        let term_end = key.len().saturating_sub(9);
        let term = String::from_utf8_lossy(key.get(2..term_end).unwrap_or_default()).into_owned();
        for record_id in decode_head(&value)?.ids {
            postings.push((term.clone(), record_id));
        }
    }
    Ok(postings)
}

/// How many postings each block of `term` holds, in order: for checks and tests. Also checks
/// that each block's key names its first record.
pub fn block_sizes(store: &TableStore, term: &str) -> StorageResult<Vec<usize>> {
    let mut sizes = Vec::new();
    for entry in store.tree().scan_prefix(term_prefix(term)) {
        let (key, value) = entry?;
        let head = decode_head(&value)?;
        if head.ids.first().copied() != tabula_storage::keys::trailing_record_id(&key) {
            return Err(block_error(
                "a block key that does not name its first record",
            ));
        }
        sizes.push(head.ids.len());
    }
    Ok(sizes)
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

/// A term's postings in record-id order: the ids of every block, the blocks themselves (their
/// lengths and frequencies are decoded only for the blocks a scored match falls in), and the
/// positions of every posting for the words of phrases.
#[derive(Debug, Default)]
struct PostingList {
    ids: Vec<u64>,
    blocks: Vec<BlockRef>,
    /// Read only for the words of phrases (else empty).
    positions: Vec<Vec<u32>>,
}

/// One block of a [`PostingList`].
#[derive(Debug)]
struct BlockRef {
    /// The index of its first id in [`PostingList::ids`].
    start: usize,
    value: IVec,
    /// Where its lengths and frequencies start in `value`.
    columns_at: usize,
}

impl PostingList {
    fn len(&self) -> usize {
        self.ids.len()
    }

    fn find(&self, record_id: u64) -> Option<usize> {
        self.ids.binary_search(&record_id).ok()
    }
}

/// Reads the (length, frequency) of postings of one list in ascending index order, decoding
/// each block's columns once, when the first posting of it is asked for.
struct ColumnReader<'a> {
    list: &'a PostingList,
    block: usize,
    /// The current block's lengths and frequencies, once decoded.
    columns: Option<(Vec<u32>, Vec<u32>)>,
}

impl<'a> ColumnReader<'a> {
    fn new(list: &'a PostingList) -> Self {
        ColumnReader {
            list,
            block: 0,
            columns: None,
        }
    }

    /// The document length and term frequency of posting `index` (never below an index asked
    /// for before).
    fn get(&mut self, index: usize) -> StorageResult<Option<(u32, u32)>> {
        let blocks = &self.list.blocks;
        let before = self.block;
        while blocks
            .get(self.block + 1)
            .is_some_and(|next| next.start <= index)
        {
            self.block += 1;
        }
        if self.block != before {
            self.columns = None;
        }
        let Some(block) = blocks.get(self.block) else {
            return Ok(None);
        };
        if self.columns.is_none() {
            let end = blocks
                .get(self.block + 1)
                .map_or(self.list.ids.len(), |next| next.start);
            let (lengths, frequencies, _) = decode_columns(
                &block.value,
                block.columns_at,
                end.saturating_sub(block.start),
            )?;
            self.columns = Some((lengths, frequencies));
        }
        let offset = index.saturating_sub(block.start);
        Ok(self.columns.as_ref().and_then(|(lengths, frequencies)| {
            Some((*lengths.get(offset)?, *frequencies.get(offset)?))
        }))
    }
}

/// A term's posting list, or `None` when its blocks overlap: a batch rewrote them while they
/// were read (see [`load_all_postings`]).
fn load_postings(
    table: &TableShared,
    term: &str,
    with_positions: bool,
) -> StorageResult<Option<PostingList>> {
    let mut list = PostingList::default();
    for entry in table.store.tree().scan_prefix(term_prefix(term)) {
        let (_, value) = entry?;
        let (ids, columns_at) = decode_ids(&value)?;
        if with_positions {
            let (lengths, frequencies, positions_at) =
                decode_columns(&value, columns_at, ids.len())?;
            let head = BlockHead {
                ids: Vec::new(),
                lengths,
                frequencies,
                positions_at,
            };
            list.positions.extend(decode_positions(&value, &head)?);
        }
        if let (Some(last), Some(first)) = (list.ids.last(), ids.first()) {
            if first <= last {
                return Ok(None);
            }
        }
        list.blocks.push(BlockRef {
            start: list.ids.len(),
            value,
            columns_at,
        });
        list.ids.extend(ids);
    }
    Ok(Some(list))
}

/// The average document length, from the document totals.
fn average_document_length(table: &TableShared) -> DomainResult<f64> {
    Ok(document_totals(table.store.tree())?.average_length())
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
    if rest.is_empty() {
        return first.ids.clone();
    }
    first
        .ids
        .iter()
        .enumerate()
        .filter(|(first_index, record_id)| {
            let others: Option<Vec<&Vec<u32>>> = rest
                .iter()
                .map(|list| {
                    list.find(**record_id)
                        .and_then(|index| list.positions.get(index))
                })
                .collect();
            let Some(others) = others else {
                return false;
            };
            let starts = first.positions.get(*first_index);
            starts.is_some_and(|starts| {
                starts.iter().any(|start| {
                    others.iter().enumerate().all(|(offset, positions)| {
                        let wanted = u32::try_from(offset + 1)
                            .ok()
                            .and_then(|offset| start.checked_add(offset));
                        wanted.is_some_and(|wanted| positions.binary_search(&wanted).is_ok())
                    })
                })
            })
        })
        .map(|(_, record_id)| *record_id)
        .collect()
}

/// The first index at or after `from` whose id is not below `record_id` (`ids` ascending):
/// galloping, so a walk over dense matches costs a step or two per match.
fn advance(ids: &[u64], from: usize, record_id: u64) -> usize {
    let rest = ids.get(from..).unwrap_or_default();
    if rest.first().is_none_or(|first| *first >= record_id) {
        return from;
    }
    // rest[0] < record_id: find a bound whose id is not below it, doubling the step.
    let mut low = 0usize;
    let mut step = 1usize;
    while rest.get(low + step).is_some_and(|id| *id < record_id) {
        low += step;
        step = step.saturating_mul(2);
    }
    let high = (low + step).min(rest.len());
    let between = rest.get(low + 1..high).unwrap_or_default();
    from + low + 1 + between.partition_point(|id| *id < record_id)
}

/// Ids in both ascending lists.
fn intersect(left: &[u64], right: &[u64]) -> Vec<u64> {
    let (small, large) = if left.len() <= right.len() {
        (left, right)
    } else {
        (right, left)
    };
    let mut cursor = 0usize;
    small
        .iter()
        .copied()
        .filter(|id| {
            cursor = advance(large, cursor, *id);
            large.get(cursor) == Some(id)
        })
        .collect()
}

/// One record that matched, with its relevance.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SearchHit {
    pub record_id: u64,
    pub score: f64,
}

/// The relevance order: best score first, ties by id ascending.
fn rank_order(left: &SearchHit, right: &SearchHit) -> Ordering {
    right
        .score
        .total_cmp(&left.score)
        .then(left.record_id.cmp(&right.record_id))
}

/// A hit ordered by [`rank_order`] (`Less` = ranks first), for the top-k heap.
struct Ranked(SearchHit);

impl PartialEq for Ranked {
    fn eq(&self, other: &Self) -> bool {
        rank_order(&self.0, &other.0) == Ordering::Equal
    }
}

impl Eq for Ranked {}

impl PartialOrd for Ranked {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Ranked {
    fn cmp(&self, other: &Self) -> Ordering {
        rank_order(&self.0, &other.0)
    }
}

/// Every record (live or trashed) that matched a search, with its BM25 score: ids ascending
/// (for counts and lookups), and the relevance order on demand ([`SearchResults::ranked`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SearchResults {
    ids: Vec<u64>,
    scores: Vec<f64>,
}

impl SearchResults {
    /// How many records matched.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The matching ids, ascending.
    pub fn ids(&self) -> &[u64] {
        &self.ids
    }

    /// Whether `record_id` matched.
    pub fn contains(&self, record_id: u64) -> bool {
        self.ids.binary_search(&record_id).is_ok()
    }

    /// The score of a record that matched.
    pub fn score(&self, record_id: u64) -> Option<f64> {
        let index = self.ids.binary_search(&record_id).ok()?;
        self.scores.get(index).copied()
    }

    /// Every hit, ids ascending.
    pub fn hits(&self) -> impl Iterator<Item = SearchHit> + '_ {
        self.ids
            .iter()
            .zip(&self.scores)
            .map(|(record_id, score)| SearchHit {
                record_id: *record_id,
                score: *score,
            })
    }

    /// The hits best first (ties by id ascending), computed as far as they are consumed: the
    /// first `expected` by one pass with a bounded heap, the next ones in growing rounds, so a
    /// page of 20 out of 200 000 hits never sorts them all.
    pub fn ranked(self: Arc<Self>, expected: usize) -> RankedHits {
        RankedHits {
            round: expected.max(16),
            results: self,
            buffer: Vec::new().into_iter(),
            last: None,
            remaining: None,
        }
    }
}

/// The iterator of [`SearchResults::ranked`].
pub struct RankedHits {
    results: Arc<SearchResults>,
    /// The current round's hits, best first.
    buffer: std::vec::IntoIter<SearchHit>,
    /// The last hit handed out: every later round ranks after it.
    last: Option<SearchHit>,
    /// How many hits are still to come (known once the first round ran).
    remaining: Option<usize>,
    round: usize,
}

impl RankedHits {
    fn refill(&mut self) {
        let remaining = self.remaining.unwrap_or(self.results.len());
        if remaining == 0 {
            return;
        }
        let after = self.last;
        let candidates = self
            .results
            .hits()
            .filter(|hit| after.is_none_or(|after| rank_order(hit, &after) == Ordering::Greater));
        let mut round: Vec<SearchHit> = if self.round.saturating_mul(4) >= remaining {
            // Most of what is left: one sort.
            let mut all: Vec<SearchHit> = candidates.collect();
            all.sort_unstable_by(rank_order);
            all
        } else {
            let mut heap: BinaryHeap<Ranked> = BinaryHeap::with_capacity(self.round + 1);
            for hit in candidates {
                if heap.len() < self.round {
                    heap.push(Ranked(hit));
                } else if heap
                    .peek()
                    .is_some_and(|worst| rank_order(&hit, &worst.0) == Ordering::Less)
                {
                    heap.pop();
                    heap.push(Ranked(hit));
                }
            }
            heap.into_sorted_vec()
                .into_iter()
                .map(|ranked| ranked.0)
                .collect()
        };
        round.truncate(remaining);
        self.remaining = Some(remaining);
        self.round = self.round.saturating_mul(4);
        self.buffer = round.into_iter();
    }
}

impl Iterator for RankedHits {
    type Item = SearchHit;

    fn next(&mut self) -> Option<SearchHit> {
        let hit = match self.buffer.next() {
            Some(hit) => hit,
            None => {
                self.refill();
                self.buffer.next()?
            }
        };
        self.last = Some(hit);
        if let Some(remaining) = &mut self.remaining {
            *remaining = remaining.saturating_sub(1);
        }
        Some(hit)
    }
}

/// How many times a search re-reads its posting lists when writes land while it reads them.
const READ_ATTEMPTS: usize = 5;

/// How long a search waits, in all, for batches being applied to its table to finish.
const APPLY_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// The posting lists of `terms`, as of one write generation. A term's blocks are read one key
/// at a time while the table actor may apply a batch that rewrites them (a split or a merge
/// moves postings between keys), so the lists are read while no batch is being applied and
/// read again when the table's write generation ([`TableStore::generation`]) moved meanwhile.
///
/// [`TableStore::generation`]: tabula_storage::TableStore::generation
fn load_all_postings<'t>(
    table: &TableShared,
    terms: &[&'t str],
    phrase_terms: &HashSet<&str>,
) -> DomainResult<HashMap<&'t str, PostingList>> {
    let started = std::time::Instant::now();
    let mut attempts = 0;
    while attempts < READ_ATTEMPTS && started.elapsed() < APPLY_WAIT {
        let Some(before) = table.store.generation() else {
            // A batch is going in: give its writer the processor, then look again.
            std::thread::sleep(std::time::Duration::from_micros(100));
            continue;
        };
        attempts += 1;
        let mut postings: HashMap<&str, PostingList> = HashMap::new();
        let mut consistent = true;
        for term in terms {
            match load_postings(table, term, phrase_terms.contains(term))? {
                Some(list) => {
                    postings.insert(term, list);
                }
                None => {
                    consistent = false;
                    break;
                }
            }
        }
        if consistent && table.store.generation() == Some(before) {
            return Ok(postings);
        }
    }
    Err(DomainError::Unavailable(
        "The search index is being rewritten by a burst of writes; retry the request".into(),
    ))
}

/// Runs a search against the table's index: every record (live or trashed) that matches, with
/// its BM25 score. Reads only the posting blocks of the query's terms, never the records.
pub fn run_search(table: &TableShared, query: &SearchQuery) -> DomainResult<SearchResults> {
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
    let postings = load_all_postings(table, &all_terms, &phrase_terms)?;
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
            let mut cursor = 0usize;
            candidates.retain(|id| {
                cursor = advance(&excluded, cursor, *id);
                excluded.get(cursor) != Some(id)
            });
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
    let largest_df = postings.values().map(PostingList::len).max().unwrap_or(0);
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
    // `matched` is ascending: one cursor per list walks forward.
    let mut cursors = vec![0usize; weighted.len()];
    let mut columns: Vec<ColumnReader> = weighted
        .iter()
        .map(|(list, _)| ColumnReader::new(list))
        .collect();
    let mut scores = Vec::with_capacity(matched.len());
    for record_id in &matched {
        let mut score = 0.0;
        for (((list, idf), cursor), columns) in weighted
            .iter()
            .zip(cursors.iter_mut())
            .zip(columns.iter_mut())
        {
            *cursor = advance(&list.ids, *cursor, *record_id);
            if list.ids.get(*cursor) != Some(record_id) {
                continue;
            }
            if let Some((length, frequency)) = columns.get(*cursor)? {
                let (frequency, length) = (f64::from(frequency), f64::from(length));
                score += idf * frequency * (BM25_K1 + 1.0)
                    / (frequency + BM25_K1 * (1.0 - BM25_B + BM25_B * length / average_length));
            }
        }
        scores.push(score);
    }
    Ok(SearchResults {
        ids: matched,
        scores,
    })
}

/// What a search may see for a caller who may not read the whole table: the search fields it
/// may read (by id) and the row rule of the rows it may see. Set on a list request by
/// `TableAccess::restrict` when either narrows the table.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SearchScope {
    pub fields: Vec<u32>,
    pub rows: Option<Filter>,
}

impl SearchScope {
    /// The scope's fields, in schema order (the order of the document's positions).
    fn fields<'s>(&self, schema: &'s TableSchema) -> Vec<&'s FieldDef> {
        schema
            .fields
            .iter()
            .filter(|field| self.fields.contains(&field.id))
            .collect()
    }
}

/// Runs a search as its caller may see the table: over the whole index ([`run_search`]), or
/// within `scope` ([`run_scoped_search`]); either way within `budget`.
pub fn run_search_within(
    table: &TableShared,
    schema: &TableSchema,
    query: &SearchQuery,
    scope: Option<&SearchScope>,
    budget: &QueryBudget,
) -> DomainResult<SearchResults> {
    match scope {
        None => {
            let results = run_search(table, query)?;
            budget.check()?;
            Ok(results)
        }
        Some(scope) => run_scoped_search(table, schema, query, scope, budget),
    }
}

/// A search of the fields and rows of `scope` only. Every part of the query sees only them —
/// words, phrases, exclusions and `or` alternatives — and so does the ranking:
///
/// 1. the index yields the candidates: for each alternative, the records holding all of its
///    required words and phrases in any search field (a superset: a phrase inside one readable
///    field is a phrase of the whole document too); exclusions are not applied here, since the
///    index cannot tell in which field an excluded word is;
/// 2. each candidate is read, must pass the row rule, and its document is rebuilt from the
///    scope's fields alone; the query (exclusions included) is decided on that document;
/// 3. BM25 is computed over the matching records alone: their readable term frequencies and
///    lengths, document frequencies among them, their average length. The whole index's
///    statistics count hidden fields and rows, so an order computed from them would tell the
///    caller something about text it may not read.
///
/// It costs one record read per candidate, checked against `budget`.
pub fn run_scoped_search(
    table: &TableShared,
    schema: &TableSchema,
    query: &SearchQuery,
    scope: &SearchScope,
    budget: &QueryBudget,
) -> DomainResult<SearchResults> {
    let mut phrase_terms: HashSet<&str> = HashSet::new();
    let mut required_terms: Vec<&str> = Vec::new();
    for item in query.clauses.iter().flat_map(|clause| &clause.required) {
        for term in item {
            if item.len() > 1 {
                phrase_terms.insert(term);
            }
            if !required_terms.contains(&term.as_str()) {
                required_terms.push(term);
            }
        }
    }
    let postings = load_all_postings(table, &required_terms, &phrase_terms)?;
    budget.check()?;
    let mut candidates: Vec<u64> = Vec::new();
    for clause in &query.clauses {
        let mut found: Option<Vec<u64>> = None;
        for item in &clause.required {
            let ids = item_matches(item, &postings);
            found = Some(match found {
                None => ids,
                Some(previous) => intersect(&previous, &ids),
            });
        }
        candidates.extend(found.unwrap_or_default());
    }
    candidates.sort_unstable();
    candidates.dedup();
    let fields = scope.fields(schema);
    // (record id, readable length, readable frequency of each required term)
    let mut matched: Vec<(u64, u32, Vec<u32>)> = Vec::new();
    for record_id in candidates {
        budget.check()?;
        let Some(record) = table.store.get_record(record_id)? else {
            continue;
        };
        if let Some(rule) = &scope.rows {
            if !rule.matches_within(&record, budget)? {
                continue;
            }
        }
        let document = document(&fields, &record);
        if !document_matches(query, &document) {
            continue;
        }
        let frequencies = required_terms
            .iter()
            .map(|term| {
                document.terms.get(*term).map_or(0, |positions| {
                    u32::try_from(positions.len()).unwrap_or(u32::MAX)
                })
            })
            .collect();
        matched.push((record_id, document.length, frequencies));
    }
    // Counts and lengths far below 2^53: exact as f64.
    let documents = matched.len() as f64;
    let total_length: u64 = matched
        .iter()
        .map(|(_, length, _)| u64::from(*length))
        .sum();
    let average_length = if matched.is_empty() {
        1.0
    } else {
        (total_length as f64 / documents).max(1.0)
    };
    let idf: Vec<f64> = (0..required_terms.len())
        .map(|term| {
            let document_frequency = matched
                .iter()
                .filter(|(_, _, frequencies)| frequencies.get(term).is_some_and(|f| *f > 0))
                .count() as f64;
            (1.0 + (documents - document_frequency + 0.5) / (document_frequency + 0.5)).ln()
        })
        .collect();
    let mut ids = Vec::with_capacity(matched.len());
    let mut scores = Vec::with_capacity(matched.len());
    for (record_id, length, frequencies) in matched {
        let length = f64::from(length);
        let score = frequencies
            .iter()
            .zip(&idf)
            .filter(|(frequency, _)| **frequency > 0)
            .map(|(frequency, idf)| {
                let frequency = f64::from(*frequency);
                idf * frequency * (BM25_K1 + 1.0)
                    / (frequency + BM25_K1 * (1.0 - BM25_B + BM25_B * length / average_length))
            })
            .sum();
        ids.push(record_id);
        scores.push(score);
    }
    Ok(SearchResults { ids, scores })
}

/// Whether a document holds the query: for some alternative, every required item and no
/// excluded one (a phrase: its words at consecutive positions).
fn document_matches(query: &SearchQuery, document: &Document) -> bool {
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

/// Whether a record matches a search, decided from the record itself (no index): the
/// brute-force reference the index is tested against.
pub fn record_matches(schema: &TableSchema, query: &SearchQuery, record: &StoredRecord) -> bool {
    document_matches(query, &document(&search_fields(schema), record))
}

/// [`record_matches`] as a caller limited to `scope` sees the record (outside its row rule:
/// no match).
pub fn scoped_record_matches(
    schema: &TableSchema,
    scope: Option<&SearchScope>,
    query: &SearchQuery,
    record: &StoredRecord,
) -> bool {
    match scope {
        None => record_matches(schema, query, record),
        Some(scope) => {
            scope.rows.as_ref().is_none_or(|rule| rule.matches(record))
                && document_matches(query, &document(&scope.fields(schema), record))
        }
    }
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
    fn blocks_round_trip() {
        let postings: Vec<StoredPosting> = [
            (3u64, 5u32, vec![0u32, 4]),
            (4, 1, vec![0]),
            (900, 300, vec![7, 250, 299]),
        ]
        .into_iter()
        .map(|(record_id, length, positions)| StoredPosting {
            record_id,
            length,
            positions,
        })
        .collect();
        let bytes = encode_block(&postings).unwrap();
        assert_eq!(decode_block(&bytes).unwrap(), postings);
        let head = decode_head(&bytes).unwrap();
        assert_eq!(head.ids, vec![3, 4, 900]);
        assert_eq!(head.frequencies, vec![2, 1, 3]);
        // Damage is an error, not a panic or a wrong answer.
        assert!(decode_block(&bytes[..bytes.len() - 1]).is_err());
        assert!(decode_block(&[BLOCK_FORMAT + 1]).is_err());
        assert!(decode_block(&[]).is_err());
    }

    #[test]
    fn blocks_split_full_at_the_end_and_evenly_elsewhere() {
        let postings: Vec<StoredPosting> = (0..300)
            .map(|record_id| StoredPosting {
                record_id,
                length: 1,
                positions: vec![0],
            })
            .collect();
        let sizes = |last| -> Vec<usize> {
            split_block(&postings, last)
                .iter()
                .map(|part| part.len())
                .collect()
        };
        assert_eq!(sizes(true), vec![128, 128, 44]);
        assert_eq!(sizes(false), vec![100, 100, 100]);
        assert!(split_block::<StoredPosting>(&[], true).is_empty());
    }

    #[test]
    fn advance_gallops_to_the_first_id_not_below() {
        let ids: Vec<u64> = (0..1000).map(|id| id * 3).collect();
        for from in [0usize, 1, 17, 999, 1000] {
            for record_id in [0u64, 1, 3, 4, 50, 2997, 2998, 5000] {
                let wanted = from.max(ids.partition_point(|id| *id < record_id));
                assert_eq!(advance(&ids, from, record_id), wanted, "{from} {record_id}");
            }
        }
    }

    #[test]
    fn ranked_hits_come_best_first_in_rounds() {
        let ids: Vec<u64> = (1..=500).collect();
        let scores: Vec<f64> = ids
            .iter()
            .map(|id| f64::from(u32::try_from(id % 7).unwrap()))
            .collect();
        let results = Arc::new(SearchResults { ids, scores });
        let mut wanted: Vec<SearchHit> = results.hits().collect();
        wanted.sort_by(rank_order);
        for expected in [1usize, 5, 16, 100, 499, 500, usize::MAX] {
            let ranked: Vec<SearchHit> = Arc::clone(&results).ranked(expected).collect();
            assert_eq!(ranked, wanted, "{expected}");
        }
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
