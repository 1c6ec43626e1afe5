//! Scans a whole filtered, sorted set page by page with constant memory (exports): every page is
//! one ordinary list request of the query engine, and the next one starts after the last record
//! of the previous one (keyset paging, never an offset).
//!
//! In id order the cursor is the engine's own `after`; in any other order it is a
//! [`Filter::After`] on the sort keys AND-ed into the request, plus — when the first sort key is
//! an indexed field sorted ascending — a `>=` bound on it so that the planner walks the index
//! from the cursor instead of from the start. Each page has the request's time budget anew.

use tabula_storage::StoredRecord;

use crate::error::DomainResult;
use crate::query::execute::{list, ListRequest, SortKey};
use crate::query::filter::{Attribute, CompareOp, Filter};
use crate::query::plan::indexable_field;
use crate::registry::TableShared;

/// Records per page of an export scan.
pub const EXPORT_PAGE_SIZE: u64 = 1000;

/// The pages of a scan over every record a list request matches, in its order.
pub struct ExportPages<'a> {
    table: &'a TableShared,
    base: ListRequest,
    /// The sort keys when the order is not plain id ascending.
    keys: Option<Vec<SortKey>>,
    /// The last record of the previous page.
    cursor: Option<StoredRecord>,
    /// Records still to return (`None`: all).
    remaining: Option<u64>,
    done: bool,
}

impl<'a> ExportPages<'a> {
    /// A scan over what `request` matches (its filter, sort, trash mode, search and row rule as
    /// already AND-ed in); its paging, count, aggregate and group-by settings are ignored.
    pub fn new(table: &'a TableShared, request: &ListRequest, page_size: u64) -> Self {
        Self::with_limit(table, request, page_size, None)
    }

    /// [`ExportPages::new`] returning at most `max_records` records in all.
    pub fn with_limit(
        table: &'a TableShared,
        request: &ListRequest,
        page_size: u64,
        max_records: Option<u64>,
    ) -> Self {
        let mut base = request.clone();
        base.limit = page_size.max(1);
        base.offset = 0;
        base.after = None;
        base.skip_total = true;
        base.aggregate = None;
        base.group_by = None;
        base.expand = Vec::new();
        let by_id = base.sort.is_empty()
            || (base.sort.len() == 1
                && base.sort[0].attribute == Attribute::Id
                && !base.sort[0].descending);
        let keys = if by_id {
            // A search without a sort would be in relevance order, which has no keyset: an
            // export lists its hits in id order.
            base.sort = vec![SortKey {
                attribute: Attribute::Id,
                descending: false,
            }];
            None
        } else {
            Some(base.sort.clone())
        };
        ExportPages {
            table,
            base,
            keys,
            cursor: None,
            remaining: max_records,
            done: max_records == Some(0),
        }
    }

    fn page_request(&self) -> ListRequest {
        let mut request = self.base.clone();
        // Each page is one query with a budget of its own: a long export goes on for as long
        // as its pages keep finishing in time.
        request.budget = self.base.budget.restarted();
        let Some(cursor) = &self.cursor else {
            return request;
        };
        match &self.keys {
            None => request.after = Some(cursor.id),
            Some(keys) => {
                let values = keys
                    .iter()
                    .map(|key| key.attribute.value_of(cursor))
                    .collect::<Vec<_>>();
                let mut parts = Vec::new();
                if let (Some(first), Some(value)) = (keys.first(), values.first()) {
                    if let Attribute::Field(field_id) = first.attribute {
                        let schema = self.table.schema();
                        if !first.descending
                            && !value.is_null()
                            && indexable_field(&schema, field_id)
                        {
                            // Ascending, so everything after the cursor is >= its value (and
                            // not null, since nulls sort first): the planner can seek there.
                            parts.push(Filter::Compare {
                                attribute: first.attribute,
                                op: CompareOp::Gte,
                                value: value.clone(),
                            });
                        }
                    }
                }
                parts.push(Filter::After {
                    keys: keys.clone(),
                    values,
                    id: cursor.id,
                });
                for part in parts {
                    request.filter = Some(Filter::and_into(request.filter.take(), part));
                }
            }
        }
        request
    }
}

impl Iterator for ExportPages<'_> {
    type Item = DomainResult<Vec<StoredRecord>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let mut request = self.page_request();
        if let Some(remaining) = self.remaining {
            request.limit = request.limit.min(remaining);
        }
        let page = match list(self.table, &request) {
            Ok(page) => page,
            Err(error) => {
                self.done = true;
                return Some(Err(error));
            }
        };
        if !page.has_more {
            self.done = true;
        }
        if let Some(remaining) = &mut self.remaining {
            *remaining =
                remaining.saturating_sub(u64::try_from(page.records.len()).unwrap_or(u64::MAX));
            if *remaining == 0 {
                self.done = true;
            }
        }
        match page.records.last() {
            Some(last) => self.cursor = Some(last.clone()),
            None => {
                self.done = true;
                return None;
            }
        }
        Some(Ok(page.records))
    }
}
