//! The stored forms of what a table remembers about its records besides their current values:
//! change entries (revision history and the activity log) and comments.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::value::Value;

/// What a change did to a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ChangeAction {
    Create,
    Update,
    Delete,
    Restore,
    PermanentDelete,
}

impl ChangeAction {
    /// The action's name in the API (`permanent_delete` for the last one).
    pub fn name(self) -> &'static str {
        match self {
            ChangeAction::Create => "create",
            ChangeAction::Update => "update",
            ChangeAction::Delete => "delete",
            ChangeAction::Restore => "restore",
            ChangeAction::PermanentDelete => "permanent_delete",
        }
    }

    pub fn parse(name: &str) -> Option<ChangeAction> {
        [
            ChangeAction::Create,
            ChangeAction::Update,
            ChangeAction::Delete,
            ChangeAction::Restore,
            ChangeAction::PermanentDelete,
        ]
        .into_iter()
        .find(|action| action.name() == name)
    }
}

/// One change to one record, written in the same batch as the change itself: once under the
/// record's history and once in the table's activity log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangeEntry {
    /// Unique across the whole store and increasing with time (the activity id).
    pub id: u64,
    pub at: i64,
    pub user_id: Option<String>,
    pub action: ChangeAction,
    pub table_id: u32,
    pub record_id: u64,
    /// Field id → value before the change (only the fields that changed, for an update).
    pub before: Option<BTreeMap<u32, Value>>,
    /// Field id → value after the change.
    pub after: Option<BTreeMap<u32, Value>>,
}

/// A comment on a record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comment {
    pub id: u64,
    pub record_id: u64,
    pub content: String,
    pub user_id: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}
