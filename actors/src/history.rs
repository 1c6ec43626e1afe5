//! Reading change entries back: a record's revision history (SPEC §4.4), from the entry ids the
//! record lists and the table's journal; and the rendering of a
//! change's values from field ids to field names with the table's current schema (values of
//! fields that no longer exist are skipped; a renamed field shows under its new name).

use std::collections::BTreeMap;

use tabula_storage::journal::ChangeEntry;
use tabula_storage::{TableSchema, Value};

use crate::error::DomainResult;
use crate::registry::TableShared;
use crate::table::record_not_found;

/// A change entry with its values keyed by field name.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedChange {
    /// The entry itself (its `before`/`after` by field id are left as read).
    pub entry: ChangeEntry,
    pub before: Option<Vec<(String, Value)>>,
    pub after: Option<Vec<(String, Value)>>,
}

/// One page of a record's history, newest first.
#[derive(Debug, Clone)]
pub struct HistoryPage {
    pub changes: Vec<NamedChange>,
    /// Every history entry of the record.
    pub total: u64,
}

/// `field id → value` as `(name, value)` pairs in the schema's field order.
pub fn named_values(schema: &TableSchema, values: &BTreeMap<u32, Value>) -> Vec<(String, Value)> {
    schema
        .fields
        .iter()
        .filter_map(|field| {
            values
                .get(&field.id)
                .map(|value| (field.name.clone(), value.clone()))
        })
        .collect()
}

/// Renders a change entry's values by field name.
pub fn name_change(schema: &TableSchema, entry: ChangeEntry) -> NamedChange {
    NamedChange {
        before: entry
            .before
            .as_ref()
            .map(|values| named_values(schema, values)),
        after: entry
            .after
            .as_ref()
            .map(|values| named_values(schema, values)),
        entry,
    }
}

/// The history of one record (live or trashed), newest first: `limit` entries after skipping
/// `offset`. A record that does not exist (or was deleted for good) is a 404. The record lists
/// its entries' ids; entries the retention purge removed (ids below the journal's floor) are no
/// longer part of it.
pub fn record_history(
    table: &TableShared,
    record_id: u64,
    limit: u64,
    offset: u64,
) -> DomainResult<HistoryPage> {
    let record = table
        .store
        .get_record(record_id)?
        .ok_or_else(|| record_not_found(record_id))?;
    let floor = table.store.journal_floor()?;
    let kept: Vec<u64> = record
        .history
        .iter()
        .copied()
        .filter(|id| *id >= floor)
        .collect();
    let schema = table.schema();
    let skip = usize::try_from(offset).unwrap_or(usize::MAX);
    let take = usize::try_from(limit).unwrap_or(usize::MAX);
    let mut changes = Vec::new();
    for entry_id in kept.iter().rev().skip(skip).take(take) {
        if let Some(entry) = table.store.journal_entry(*entry_id)? {
            changes.push(name_change(&schema, entry));
        }
    }
    Ok(HistoryPage {
        changes,
        total: u64::try_from(kept.len()).unwrap_or(u64::MAX),
    })
}
