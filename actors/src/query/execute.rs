//! Answers a list request: filter, sort, page, count.

use std::cmp::Ordering;

use tabula_storage::StoredRecord;

use crate::error::DomainResult;
use crate::query::filter::{compare_values, Attribute, Filter};
use crate::registry::TableShared;

/// One sort key; ties are always broken by id ascending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SortKey {
    pub attribute: Attribute,
    pub descending: bool,
}

/// Which records a list considers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TrashMode {
    /// Live records only (the default).
    #[default]
    Live,
    /// Live and trashed (`includeDeleted=true`).
    All,
    /// Trashed only (`deleted=true`, `/trash`).
    Trashed,
}

#[derive(Debug, Clone, Default)]
pub struct ListRequest {
    pub filter: Option<Filter>,
    pub sort: Vec<SortKey>,
    pub offset: u64,
    pub limit: u64,
    pub after: Option<u64>,
    pub skip_total: bool,
    pub trash: TrashMode,
}

#[derive(Debug, Clone)]
pub struct ListPage {
    pub records: Vec<StoredRecord>,
    /// `None` when the request asked to skip the count.
    pub total: Option<u64>,
}

/// Runs a list request against the store.
pub fn list(table: &TableShared, request: &ListRequest) -> DomainResult<ListPage> {
    let mut matching = Vec::new();
    for record in table.store.records(request.after, false) {
        let record = record?;
        let visible = match request.trash {
            TrashMode::Live => !record.is_deleted(),
            TrashMode::All => true,
            TrashMode::Trashed => record.is_deleted(),
        };
        if visible && request.filter.as_ref().is_none_or(|filter| filter.matches(&record)) {
            matching.push(record);
        }
    }
    if !request.sort.is_empty() {
        matching.sort_by(|left, right| compare_records(&request.sort, left, right));
    }
    let total = u64::try_from(matching.len()).unwrap_or(u64::MAX);
    let offset = usize::try_from(request.offset).unwrap_or(usize::MAX);
    let limit = usize::try_from(request.limit).unwrap_or(usize::MAX);
    let records = matching.into_iter().skip(offset).take(limit).collect();
    Ok(ListPage {
        records,
        total: (!request.skip_total).then_some(total),
    })
}

/// Orders two records by the sort keys, then by id ascending.
pub fn compare_records(sort: &[SortKey], left: &StoredRecord, right: &StoredRecord) -> Ordering {
    for key in sort {
        let ordering = compare_values(&key.attribute.value_of(left), &key.attribute.value_of(right));
        let ordering = if key.descending { ordering.reverse() } else { ordering };
        if ordering != Ordering::Equal {
            return ordering;
        }
    }
    left.id.cmp(&right.id)
}
