//! Reading change entries back: a record's revision history (SPEC §4.4), and the rendering of a
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
/// `offset`. A record that does not exist (or was deleted for good) is a 404.
pub fn record_history(
    table: &TableShared,
    record_id: u64,
    limit: u64,
    offset: u64,
) -> DomainResult<HistoryPage> {
    if table.store.get_record(record_id)?.is_none() {
        return Err(record_not_found(record_id));
    }
    let schema = table.schema();
    let total = table.store.history_len(record_id)?;
    let skip = usize::try_from(offset).unwrap_or(usize::MAX);
    let take = usize::try_from(limit).unwrap_or(usize::MAX);
    let changes = table
        .store
        .history(record_id)
        .skip(skip)
        .take(take)
        .map(|entry| entry.map(|entry| name_change(&schema, entry)))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(HistoryPage { changes, total })
}
