//! The key layout of a table's tree and the order-preserving encoding of index values.
//!
//! Every table owns one sled tree; each kind of entry sits under a one-byte prefix so a whole
//! write (record, indexes, counters, history, activity) is one atomic `apply_batch`. Integers are
//! big-endian so sled's byte order is the numeric order. Index values are encoded so that
//! comparing the bytes compares the values (see [`encode_index_value`]).

use crate::value::Value;

/// `P ++ page(u64 BE)` → a page of up to 32 records with consecutive ids, each encoded as a
/// `StoredRecord` ([`crate::pages`]).
pub const RECORD_PAGE: u8 = b'P';
/// `X ++ field_id(u32 BE) ++ index_value ++ group(u64 BE)` → u64 BE bitmap: which of the 64
/// ids of the group hold that value ([`crate::pages`]). Every record, live or trashed, is in
/// one bitmap per indexed field (nulls included, sorting first).
pub const INDEX: u8 = b'X';
/// Earlier versions' `R ++ record_id(u64 BE)` → encoded `StoredRecord`, one key per record.
/// Moved into pages when the table is opened ([`crate::TableStore::upgrade_layout`]).
pub const LEGACY_RECORD: u8 = b'R';
/// Earlier versions' `I ++ field_id ++ index_value ++ record_id(u64 BE)` → empty, one key per
/// index entry. Moved into bitmaps when the table is opened.
pub const LEGACY_INDEX: u8 = b'I';
/// `U ++ field_id(u32 BE) ++ index_value` → record_id(u64 BE). Live records with a non-empty value.
pub const UNIQUE: u8 = b'U';
/// `T ++ record_id(u64 BE)` → empty: the trashed records.
pub const TRASH: u8 = b'T';
/// `M ++ name` → a counter or a timestamp (u64/i64 BE).
pub const META: u8 = b'M';

/// Meta key of the last assigned record id.
pub const META_SEQUENCE: &[u8] = b"Mseq";
/// Meta key of the number of live (not trashed) records.
pub const META_LIVE_COUNT: &[u8] = b"Mcount";
/// Meta key of the table's creation time (ms since the epoch).
pub const META_CREATED_AT: &[u8] = b"Mcreated";
/// Meta key prefix of an autonumber field's sequence: `Mauto ++ field_id(u32 BE)`.
pub const META_AUTONUMBER: &[u8] = b"Mauto";

/// `A ++ first_entry_id(u64 BE)` → encoded `(written: u64, Vec<ChangeEntry>)`: the change
/// journal (revision history and activity log at once). One key per commit, not per record: it
/// holds every change entry of that commit (with `before`/`after`, ids ascending) — a batch of
/// 1000 adds one key — and `written`, how many entries the table's journal has received so far,
/// this commit's included (so no counter key is rewritten by every commit). A record lists the
/// ids of its own entries (`StoredRecord::history`), which is how its history is found. Within a
/// table every id of a commit is above every id of the commits before it (one actor allocates
/// them in order), so the keys are in entry-id order.
pub const ACTIVITY: u8 = b'A';
/// `C ++ record_id(u64 BE) ++ comment_id(u64 BE)` → encoded `Comment`.
pub const COMMENT: u8 = b'C';
/// `N ++ record_id(u64 BE)` → u64 BE: how many comments the record has (absent = 0).
pub const COMMENT_COUNT: u8 = b'N';
/// Meta key of how many journal entries the retention purge has removed, ever (u64 BE). The
/// entries in the journal are the newest group's `written` minus this.
pub const META_ACTIVITY_PURGED: &[u8] = b"Mactpurged";
/// Meta key of the journal's floor (u64 BE): every entry with a smaller id was purged.
pub const META_ACTIVITY_FLOOR: &[u8] = b"Mactfloor";

/// `P ++ page`: the key of a record page (`page` from [`crate::pages::page_of`]).
pub fn page_key(page: u64) -> [u8; 9] {
    prefixed_id(RECORD_PAGE, page)
}

/// `R ++ record_id`: an earlier version's record key.
pub fn legacy_record_key(record_id: u64) -> [u8; 9] {
    prefixed_id(LEGACY_RECORD, record_id)
}

pub fn trash_key(record_id: u64) -> [u8; 9] {
    let mut key = [0u8; 9];
    key[0] = TRASH;
    key[1..].copy_from_slice(&record_id.to_be_bytes());
    key
}

/// `A ++ first_entry_id` (the key of a commit's journal group).
pub fn activity_key(entry_id: u64) -> [u8; 9] {
    prefixed_id(ACTIVITY, entry_id)
}

/// `C ++ record_id`: the prefix of one record's comments.
pub fn comment_prefix(record_id: u64) -> [u8; 9] {
    prefixed_id(COMMENT, record_id)
}

/// `C ++ record_id ++ comment_id`.
pub fn comment_key(record_id: u64, comment_id: u64) -> [u8; 17] {
    prefixed_id_pair(COMMENT, record_id, comment_id)
}

/// `N ++ record_id`.
pub fn comment_count_key(record_id: u64) -> [u8; 9] {
    prefixed_id(COMMENT_COUNT, record_id)
}

fn prefixed_id(prefix: u8, id: u64) -> [u8; 9] {
    let mut key = [0u8; 9];
    key[0] = prefix;
    key[1..].copy_from_slice(&id.to_be_bytes());
    key
}

fn prefixed_id_pair(prefix: u8, first: u64, second: u64) -> [u8; 17] {
    let mut key = [0u8; 17];
    key[0] = prefix;
    key[1..9].copy_from_slice(&first.to_be_bytes());
    key[9..].copy_from_slice(&second.to_be_bytes());
    key
}

/// The id at the end of a `T`, `R` or legacy `I` key (a record id), or of a `P` or `X` key
/// (a page or group number).
pub fn trailing_record_id(key: &[u8]) -> Option<u64> {
    let start = key.len().checked_sub(8)?;
    let bytes: [u8; 8] = key[start..].try_into().ok()?;
    Some(u64::from_be_bytes(bytes))
}

pub fn autonumber_key(field_id: u32) -> Vec<u8> {
    let mut key = META_AUTONUMBER.to_vec();
    key.extend_from_slice(&field_id.to_be_bytes());
    key
}

/// `X ++ field_id`: the prefix of every index bitmap of one field.
pub fn index_field_prefix(field_id: u32) -> Vec<u8> {
    let mut key = Vec::with_capacity(5);
    key.push(INDEX);
    key.extend_from_slice(&field_id.to_be_bytes());
    key
}

/// `X ++ field_id ++ value`: the prefix of every bitmap of exactly this value.
pub fn index_value_prefix(field_id: u32, value: &Value) -> Vec<u8> {
    let mut key = index_field_prefix(field_id);
    encode_index_value(value, &mut key);
    key
}

/// `X ++ field_id ++ value ++ group`: the bitmap of one value's ids in one group (`group` from
/// [`crate::pages::group_of`]).
pub fn index_group_key(field_id: u32, value: &Value, group: u64) -> Vec<u8> {
    let mut key = index_value_prefix(field_id, value);
    key.extend_from_slice(&group.to_be_bytes());
    key
}

/// `I ++ field_id ++ value ++ record_id`: an earlier version's index entry.
pub fn legacy_index_entry_key(field_id: u32, value: &Value, record_id: u64) -> Vec<u8> {
    let mut key = vec![LEGACY_INDEX];
    key.extend_from_slice(&field_id.to_be_bytes());
    encode_index_value(value, &mut key);
    key.extend_from_slice(&record_id.to_be_bytes());
    key
}

pub fn unique_key(field_id: u32, value: &Value) -> Vec<u8> {
    let mut key = Vec::with_capacity(16);
    key.push(UNIQUE);
    key.extend_from_slice(&field_id.to_be_bytes());
    encode_index_value(value, &mut key);
    key
}

// Type tags: nulls sort before every value; within one field all values share a type.
const TAG_NULL: u8 = 0x00;
const TAG_FALSE: u8 = 0x10;
const TAG_TRUE: u8 = 0x11;
const TAG_NUMBER: u8 = 0x20;
const TAG_TEXT: u8 = 0x30;
const TAG_LIST: u8 = 0x40;
const TAG_MAP: u8 = 0x50;

/// Appends the order-preserving encoding of `value`.
///
/// * numbers (integers and decimals alike) as the total-order bits of an f64, except that
///   integers beyond ±2^53 keep exact order through an i64 suffix (an integer's f64 is the
///   largest one not above it, so that it never ties with a larger decimal such as 2^63);
/// * text as its UTF-8 bytes with `0x00` escaped as `0x00 0xFF`, closed by `0x00 0x00`, so a
///   shorter string sorts before its extensions and the encoding is prefix-free;
/// * dates and datetimes are stored as normalised ISO strings, whose byte order is time order;
/// * lists and maps element by element (rarely indexed; order is only required to be total).
pub fn encode_index_value(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Null => out.push(TAG_NULL),
        Value::Bool(false) => out.push(TAG_FALSE),
        Value::Bool(true) => out.push(TAG_TRUE),
        Value::Int(number) => {
            out.push(TAG_NUMBER);
            out.extend_from_slice(&ordered_f64_bits(f64_at_or_below(*number)).to_be_bytes());
            // Ties in f64 (|n| > 2^53) are broken by the exact integer.
            out.extend_from_slice(&ordered_i64_bits(*number).to_be_bytes());
        }
        Value::Float(number) => {
            out.push(TAG_NUMBER);
            out.extend_from_slice(&ordered_f64_bits(*number).to_be_bytes());
            out.extend_from_slice(&float_tiebreak(*number).to_be_bytes());
        }
        Value::Text(text) => {
            out.push(TAG_TEXT);
            encode_escaped_bytes(text.as_bytes(), out);
        }
        Value::List(items) => {
            out.push(TAG_LIST);
            for item in items {
                out.push(0x01);
                encode_index_value(item, out);
            }
            out.push(0x00);
        }
        Value::Map(entries) => {
            out.push(TAG_MAP);
            for (key, item) in entries {
                out.push(0x01);
                encode_escaped_bytes(key.as_bytes(), out);
                encode_index_value(item, out);
            }
            out.push(0x00);
        }
    }
}

fn encode_escaped_bytes(bytes: &[u8], out: &mut Vec<u8>) {
    for &byte in bytes {
        out.push(byte);
        if byte == 0 {
            out.push(0xFF);
        }
    }
    out.extend_from_slice(&[0x00, 0x00]);
}

/// Maps an f64 to a u64 whose unsigned order is the numeric order (-0.0 and 0.0 made equal,
/// NaN after +inf).
pub fn ordered_f64_bits(number: f64) -> u64 {
    let number = if number == 0.0 { 0.0 } else { number };
    let bits = number.to_bits();
    if bits >> 63 == 1 {
        !bits
    } else {
        bits | (1 << 63)
    }
}

/// The largest f64 that is not greater than `number`.
///
/// Rounding to nearest could round up: `i64::MAX as f64` is 2^63, which would tie with the
/// decimal 2^63 and then lose the tie-break (a decimal's suffix saturates at `i64::MAX`). Rounded
/// down, an integer ties only with a decimal of exactly its f64 value, which is an integer within
/// the i64 range, so the i64 suffix compares the two exactly.
fn f64_at_or_below(number: i64) -> f64 {
    let nearest = number as f64;
    // `nearest` is an integer in [-2^63, 2^63]; i128 holds it and every i64 exactly.
    if nearest as i128 > i128::from(number) {
        nearest.next_down()
    } else {
        nearest
    }
}

/// Maps an i64 to a u64 whose unsigned order is the signed order.
pub fn ordered_i64_bits(number: i64) -> u64 {
    (number as u64) ^ (1 << 63)
}

/// The i64 suffix for a float: the integer it lies at or beyond, so that an integer and a float
/// with the same f64 image compare by their exact values.
fn float_tiebreak(number: f64) -> u64 {
    if number.is_nan() {
        return u64::MAX;
    }
    // `as` saturates for out-of-range floats, which is exactly the order we want here.
    ordered_i64_bits(number as i64)
}
