//! Record pages and index bitmaps: many records, and many index entries, per sled key.
//!
//! sled pays a fixed price for every key a batch writes (a copy of the leaf it lands in, a log
//! entry, a page-table swap), whatever the size of its value. A table therefore keeps
//!
//! * its records in **pages** of [`PAGE_RECORDS`] consecutive ids (`P ++ page`, see
//!   [`crate::keys::page_key`]): a batch of 1000 new records writes about 32 keys, and 64
//!   concurrent single creates sharing one commit write two or three;
//! * each indexed field's entries as **bitmaps** of [`GROUP_IDS`] consecutive ids per value
//!   (`X ++ field ++ value ++ group`, see [`crate::keys::index_group_key`]): the ids with that
//!   value in that group are the bits set. Keys sort by value, then group, and a bitmap's bits
//!   by id, so an index read in key order yields (value, id) in the same order as the one key
//!   per entry of earlier versions did.
//!
//! A [`crate::WriteBatch`] gathers record and index changes per id; the table's store merges
//! them into the stored pages and bitmaps when it applies the batch (`TableStore::apply`), so
//! a batch touching a page many times rewrites it once.

use sled::IVec;

use crate::error::{StorageError, StorageResult};

/// log2 of [`PAGE_RECORDS`].
pub const PAGE_BITS: u32 = 5;
/// Records per page: ids `page * 32 .. page * 32 + 32`.
pub const PAGE_RECORDS: u64 = 1 << PAGE_BITS;
/// log2 of [`GROUP_IDS`].
pub const GROUP_BITS: u32 = 6;
/// Ids per index bitmap (one u64).
pub const GROUP_IDS: u64 = 1 << GROUP_BITS;

/// The first byte of an encoded page.
pub const PAGE_FORMAT: u8 = 1;

/// The page that holds record `id`.
pub fn page_of(id: u64) -> u64 {
    id >> PAGE_BITS
}

/// The record's slot within its page.
pub fn slot_of(id: u64) -> u8 {
    // The mask keeps five bits: always below 256.
    (id & (PAGE_RECORDS - 1)) as u8
}

/// The index group that holds record `id`.
pub fn group_of(id: u64) -> u64 {
    id >> GROUP_BITS
}

/// The bit of record `id` in its group's bitmap.
pub fn bit_of(id: u64) -> u64 {
    1 << (id & (GROUP_IDS - 1))
}

/// The ids a bitmap of group `group` holds, ascending or descending.
pub fn bitmap_ids(group: u64, bitmap: u64, descending: bool) -> BitmapIds {
    BitmapIds {
        base: group << GROUP_BITS,
        bits: bitmap,
        descending,
    }
}

/// Iterator over the ids of one bitmap.
pub struct BitmapIds {
    base: u64,
    bits: u64,
    descending: bool,
}

impl Iterator for BitmapIds {
    type Item = u64;

    fn next(&mut self) -> Option<u64> {
        if self.bits == 0 {
            return None;
        }
        let bit = if self.descending {
            63 - self.bits.leading_zeros()
        } else {
            self.bits.trailing_zeros()
        };
        self.bits &= !(1u64 << bit);
        Some(self.base + u64::from(bit))
    }
}

/// A bitmap value (u64 big-endian); a value of another length is damage.
pub fn decode_bitmap(bytes: &[u8]) -> StorageResult<u64> {
    let array: [u8; 8] = bytes.try_into().map_err(|_| StorageError::Decode {
        what: "index bitmap",
        message: format!("{} bytes instead of 8", bytes.len()),
    })?;
    Ok(u64::from_be_bytes(array))
}

/// An encoded page: `PAGE_FORMAT ++ count(u8) ++ count × (slot u8, length u32 LE) ++ the
/// records' encodings, in slot order`. The header comes first so that one record is found
/// without reading the others.
pub fn encode_page<'a>(records: impl IntoIterator<Item = (u8, &'a [u8])>) -> Vec<u8> {
    let records: Vec<(u8, &[u8])> = records.into_iter().collect();
    let body: usize = records.iter().map(|(_, bytes)| bytes.len()).sum();
    let mut out = Vec::with_capacity(2 + records.len() * 5 + body);
    out.push(PAGE_FORMAT);
    // At most PAGE_RECORDS (32) slots, by construction of the callers (one per slot).
    out.push(records.len() as u8);
    for (slot, bytes) in &records {
        out.push(*slot);
        let length = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&length.to_le_bytes());
    }
    for (_, bytes) in records {
        out.extend_from_slice(bytes);
    }
    out
}

/// The slots of a page with each record's byte range in the page, in slot order.
pub fn page_slots(page: &[u8]) -> StorageResult<Vec<(u8, std::ops::Range<usize>)>> {
    let damaged = |message: &str| StorageError::Decode {
        what: "record page",
        message: message.to_owned(),
    };
    let (&format, rest) = page.split_first().ok_or_else(|| damaged("empty page"))?;
    if format != PAGE_FORMAT {
        return Err(StorageError::FormatVersion(format));
    }
    let (&count, rest) = rest.split_first().ok_or_else(|| damaged("no count"))?;
    let header = usize::from(count) * 5;
    if rest.len() < header {
        return Err(damaged("header cut short"));
    }
    let mut at = 2 + header;
    let mut slots = Vec::with_capacity(usize::from(count));
    let mut previous: Option<u8> = None;
    for entry in rest[..header].chunks_exact(5) {
        let slot = entry[0];
        if previous.is_some_and(|previous| previous >= slot) || u64::from(slot) >= PAGE_RECORDS {
            return Err(damaged("slots out of order"));
        }
        previous = Some(slot);
        let length = u32::from_le_bytes([entry[1], entry[2], entry[3], entry[4]]) as usize;
        let end = at
            .checked_add(length)
            .filter(|end| *end <= page.len())
            .ok_or_else(|| damaged("record beyond the page"))?;
        slots.push((slot, at..end));
        at = end;
    }
    if at != page.len() {
        return Err(damaged("bytes after the last record"));
    }
    Ok(slots)
}

/// The encoding of the record in `slot` of a page, if the page holds one.
pub fn page_record(page: &[u8], slot: u8) -> StorageResult<Option<&[u8]>> {
    Ok(page_slots(page)?
        .into_iter()
        .find(|(at, _)| *at == slot)
        .map(|(_, range)| &page[range]))
}

/// A page merged with changes of some of its slots (`None`: the slot is emptied), encoded;
/// `None` when no record is left.
pub fn merge_page(
    stored: Option<&[u8]>,
    changes: &[(u8, Option<&IVec>)],
) -> StorageResult<Option<Vec<u8>>> {
    let stored_slots = match stored {
        Some(page) => page_slots(page)?,
        None => Vec::new(),
    };
    let stored = stored.unwrap_or_default();
    let mut merged: Vec<(u8, &[u8])> = Vec::with_capacity(stored_slots.len() + changes.len());
    let (mut old, mut new) = (stored_slots.iter().peekable(), changes.iter().peekable());
    loop {
        match (old.peek(), new.peek()) {
            (None, None) => break,
            (Some((slot, range)), None) => {
                merged.push((*slot, &stored[range.clone()]));
                old.next();
            }
            (Some((old_slot, range)), Some((new_slot, _))) if old_slot < new_slot => {
                merged.push((*old_slot, &stored[range.clone()]));
                old.next();
            }
            (old_head, Some((new_slot, value))) => {
                if old_head.is_some_and(|(old_slot, _)| old_slot == new_slot) {
                    old.next();
                }
                if let Some(value) = value {
                    merged.push((*new_slot, value.as_ref()));
                }
                new.next();
            }
        }
    }
    Ok((!merged.is_empty()).then(|| encode_page(merged)))
}
