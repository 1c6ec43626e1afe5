//! The stored form of a record: values keyed by field id (so a rename keeps the data) plus the
//! system attributes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::value::Value;

/// A record as it sits on disk. Times are milliseconds since the Unix epoch, UTC.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredRecord {
    pub id: u64,
    /// Field id → value. Absent and `Null` both mean "no value".
    pub fields: BTreeMap<u32, Value>,
    pub created_at: i64,
    pub updated_at: i64,
    pub created_by: Option<String>,
    pub updated_by: Option<String>,
    pub deleted_at: Option<i64>,
    pub deleted_by: Option<String>,
    /// Set while the record is in the trash because a `cascade` relationship took it with its
    /// parent: restoring that parent restores this record too. Cleared on restore.
    pub cascade_parent: Option<RecordRef>,
    /// The ids of the record's change entries in the table's journal (`A` groups), oldest first:
    /// its revision history. Written with the record in every change, so the history costs no
    /// key of its own; capped by the table actor to the newest changes.
    pub history: Vec<u64>,
}

/// A record of some table, by ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RecordRef {
    pub table_id: u32,
    pub record_id: u64,
}

impl StoredRecord {
    pub fn is_deleted(&self) -> bool {
        self.deleted_at.is_some()
    }

    /// The value of a field, `Null` when absent.
    pub fn value(&self, field_id: u32) -> &Value {
        static NULL: Value = Value::Null;
        self.fields.get(&field_id).unwrap_or(&NULL)
    }
}
