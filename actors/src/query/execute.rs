//! Answers a list request: follows the planner's access path, re-applies the whole filter to
//! every record read, sorts, pages, counts and aggregates. Also the brute-force answer (every
//! record read and checked) that tests hold the planner to.

use std::cmp::Ordering;
use std::collections::HashSet;
use std::ops::Bound;
use std::sync::Arc;

use tabula_storage::store::prefix_successor;
use tabula_storage::{keys, pages};
use tabula_storage::{StorageError, StoredRecord, TableSchema, Value};

use crate::error::DomainResult;
use crate::query::aggregate::{Accumulator, AggregateSpec, Aggregations, Group, Grouper};
use crate::query::budget::QueryBudget;
use crate::query::counts;
use crate::query::filter::{compare_values, Attribute, Filter};
use crate::query::plan::{self, AccessPath, Delivery, Order, Plan};
use crate::query::search::{self, SearchQuery, SearchResults, SearchScope};
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

impl TrashMode {
    /// Whether a record is listed in this mode.
    pub fn admits(self, record: &StoredRecord) -> bool {
        match self {
            TrashMode::Live => !record.is_deleted(),
            TrashMode::All => true,
            TrashMode::Trashed => record.is_deleted(),
        }
    }
}

/// A parsed list request (SPEC §4.2). Built by `parse_list_query`; `Default` is "every live
/// record, id order, no page size" (set `limit`).
#[derive(Debug, Clone, Default)]
pub struct ListRequest {
    pub filter: Option<Filter>,
    pub sort: Vec<SortKey>,
    pub offset: u64,
    pub limit: u64,
    /// Keyset cursor: only records with a greater id are returned. Like `offset`, it does not
    /// change `total`, which counts the whole filtered set.
    pub after: Option<u64>,
    pub skip_total: bool,
    pub trash: TrashMode,
    /// `fields=`: the field ids to render (`None`: all). System attributes are always rendered.
    pub projection: Option<Vec<u32>>,
    /// `search=`.
    pub search: Option<SearchQuery>,
    /// What the search may see when its caller may not read every search field or every row
    /// (`None`: the whole index). Set by `TableAccess::restrict`.
    pub search_scope: Option<SearchScope>,
    /// `expand=`: relation paths, each one or two names (`["project", "client"]`). Resolved
    /// against the registry by `query::expand::expand`.
    pub expand: Vec<Vec<String>>,
    /// `aggregate=`.
    pub aggregate: Option<AggregateSpec>,
    /// `groupBy=`: a field id.
    pub group_by: Option<u32>,
    /// The id of the view applied (`view=` or `/views/{v}/records`), for permission checks.
    pub view: Option<String>,
    /// How long the request may read (checked for every record read, and while patterns read
    /// long texts); unlimited by default.
    pub budget: QueryBudget,
}

/// One page of a list.
#[derive(Debug, Clone, Default)]
pub struct ListPage {
    pub records: Vec<StoredRecord>,
    /// `None` when the request asked to skip the count.
    pub total: Option<u64>,
    /// Whether more records follow this page (known even when the total is skipped).
    pub has_more: bool,
    /// `aggregations` when `aggregate` was asked.
    pub aggregations: Option<Aggregations>,
    /// `groups` when `groupBy` was asked (with per-group aggregations if `aggregate` was too).
    pub groups: Option<Vec<Group>>,
    /// The relevance score of each record of `records` (same order) for a search.
    pub scores: Option<Vec<f64>>,
    /// How the planner read the table (`index-equality(status)`, `id-scan`, …).
    pub plan: String,
}

/// Runs a list request against the store, using the indexes the planner picks.
pub fn list(table: &TableShared, request: &ListRequest) -> DomainResult<ListPage> {
    let schema = table.schema();
    let chosen = plan::plan(&schema, request);
    Executor::new(table, &schema, request, &chosen).run()
}

/// Orders two records by the sort keys, then by id ascending.
pub fn compare_records(sort: &[SortKey], left: &StoredRecord, right: &StoredRecord) -> Ordering {
    for key in sort {
        let ordering = compare_values(
            &key.attribute.value_ref(left),
            &key.attribute.value_ref(right),
        );
        let ordering = if key.descending {
            ordering.reverse()
        } else {
            ordering
        };
        if ordering != Ordering::Equal {
            return ordering;
        }
    }
    left.id.cmp(&right.id)
}

/// Something the access path produced: an id to fetch, or a record already read.
enum Candidate {
    Id(u64),
    Record(StoredRecord),
}

impl Candidate {
    fn id(&self) -> u64 {
        match self {
            Candidate::Id(id) => *id,
            Candidate::Record(record) => record.id,
        }
    }
}

type IndexEntries<'a> = Box<dyn Iterator<Item = DomainResult<(Vec<u8>, u64)>> + 'a>;
type Groups<'a> = Box<dyn Iterator<Item = DomainResult<Vec<Candidate>>> + 'a>;
type Candidates<'a> = Box<dyn Iterator<Item = DomainResult<Candidate>> + 'a>;

enum Stream<'a> {
    /// Groups in order (each sorted by the full order by the consumer).
    Ordered(Groups<'a>),
    Unordered(Candidates<'a>),
}

struct Executor<'a> {
    table: &'a TableShared,
    schema: &'a TableSchema,
    request: &'a ListRequest,
    plan: &'a Plan,
    need_all: bool,
    trash_ids: Option<HashSet<u64>>,
    /// The search's matches (shared with the ranked stream, which sorts only what it hands out).
    hits: Option<Arc<SearchResults>>,
}

/// How many index keys a count reads between two looks at the budget (each key is cheap).
const KEYS_PER_BUDGET_CHECK: usize = 4096;

fn storage<T>(result: Result<T, StorageError>) -> DomainResult<T> {
    result.map_err(Into::into)
}

/// The key range `[start, end)` of a field's index entries between two values.
fn index_key_range(
    field_id: u32,
    lower: &Bound<Value>,
    upper: &Bound<Value>,
) -> (Vec<u8>, Vec<u8>) {
    let field_prefix = keys::index_field_prefix(field_id);
    let start = match lower {
        Bound::Unbounded => field_prefix.clone(),
        Bound::Included(value) => keys::index_value_prefix(field_id, value),
        Bound::Excluded(value) => prefix_successor(keys::index_value_prefix(field_id, value)),
    };
    let end = match upper {
        Bound::Unbounded => prefix_successor(field_prefix),
        Bound::Included(value) => prefix_successor(keys::index_value_prefix(field_id, value)),
        Bound::Excluded(value) => keys::index_value_prefix(field_id, value),
    };
    (start, end)
}

/// The entries in `[start, end)` of a table's tree, ascending or descending, each turned into
/// a `T` by `decode(key, value)` (empty when the range is).
fn key_range<'a, T: 'a>(
    table: &TableShared,
    start: Vec<u8>,
    end: Vec<u8>,
    descending: bool,
    decode: fn(&[u8], &[u8]) -> DomainResult<T>,
) -> Box<dyn Iterator<Item = DomainResult<T>> + 'a> {
    if start >= end {
        return Box::new(std::iter::empty());
    }
    let range = table.store.tree().range(start..end);
    if descending {
        Box::new(range.rev().map(move |entry| {
            let (key, value) = storage(entry.map_err(StorageError::from))?;
            decode(&key, &value)
        }))
    } else {
        Box::new(range.map(move |entry| {
            let (key, value) = storage(entry.map_err(StorageError::from))?;
            decode(&key, &value)
        }))
    }
}

fn decode_trailing_id(key: &[u8], _value: &[u8]) -> DomainResult<u64> {
    // Trash keys always end in an 8-byte record id.
    Ok(keys::trailing_record_id(key).unwrap_or(0))
}

/// The record ids of the index bitmaps in `[start, end)`, in key order then id order.
fn index_range_ids<'a>(
    table: &TableShared,
    start: Vec<u8>,
    end: Vec<u8>,
) -> Box<dyn Iterator<Item = DomainResult<u64>> + 'a> {
    Box::new(
        table
            .store
            .index_entries(start, end, false)
            .map(|entry| storage(entry.map(|(_, id)| id))),
    )
}

/// The index entries in `[start, end)` as (the field and value — the value group —, the
/// record id), ascending or descending.
fn index_range_entries<'a>(
    table: &TableShared,
    start: Vec<u8>,
    end: Vec<u8>,
    descending: bool,
) -> Box<dyn Iterator<Item = DomainResult<(Vec<u8>, u64)>> + 'a> {
    Box::new(
        table
            .store
            .index_entries(start, end, descending)
            .map(|entry| {
                let (value_key, id) = storage(entry)?;
                Ok((value_key.to_vec(), id))
            }),
    )
}

/// Several ascending id streams merged into one ascending stream without duplicates.
struct MergeAscending<'a> {
    streams: Vec<Box<dyn Iterator<Item = DomainResult<u64>> + 'a>>,
    heads: Vec<Option<u64>>,
    started: bool,
    last: Option<u64>,
}

impl<'a> MergeAscending<'a> {
    fn new(streams: Vec<Box<dyn Iterator<Item = DomainResult<u64>> + 'a>>) -> Self {
        let heads = vec![None; streams.len()];
        MergeAscending {
            streams,
            heads,
            started: false,
            last: None,
        }
    }
}

impl Iterator for MergeAscending<'_> {
    type Item = DomainResult<u64>;

    fn next(&mut self) -> Option<DomainResult<u64>> {
        if !self.started {
            self.started = true;
            for (head, stream) in self.heads.iter_mut().zip(self.streams.iter_mut()) {
                match stream.next() {
                    Some(Ok(id)) => *head = Some(id),
                    Some(Err(error)) => return Some(Err(error)),
                    None => {}
                }
            }
        }
        loop {
            let (index, smallest) = self
                .heads
                .iter()
                .enumerate()
                .filter_map(|(index, head)| head.map(|id| (index, id)))
                .min_by_key(|(_, id)| *id)?;
            self.heads[index] = match self.streams[index].next() {
                Some(Ok(id)) => Some(id),
                Some(Err(error)) => return Some(Err(error)),
                None => None,
            };
            if self.last != Some(smallest) {
                self.last = Some(smallest);
                return Some(Ok(smallest));
            }
        }
    }
}

/// Index entries grouped by value: each item is the ids of one value, in walk order.
struct ValueGroups<'a> {
    entries: std::iter::Peekable<IndexEntries<'a>>,
}

impl Iterator for ValueGroups<'_> {
    type Item = DomainResult<Vec<Candidate>>;

    fn next(&mut self) -> Option<Self::Item> {
        let (group, first) = match self.entries.next()? {
            Ok(entry) => entry,
            Err(error) => return Some(Err(error)),
        };
        let mut members = vec![Candidate::Id(first)];
        while let Some(Ok((next_group, _))) = self.entries.peek() {
            if *next_group != group {
                break;
            }
            if let Some(Ok((_, id))) = self.entries.next() {
                members.push(Candidate::Id(id));
            }
        }
        Some(Ok(members))
    }
}

fn singles<'a>(candidates: impl Iterator<Item = DomainResult<Candidate>> + 'a) -> Groups<'a> {
    Box::new(candidates.map(|candidate| candidate.map(|candidate| vec![candidate])))
}

fn ids_in_order<'a>(ids: Vec<u64>, ordered: bool) -> Stream<'a> {
    let candidates = ids.into_iter().map(|id| Ok(Candidate::Id(id)));
    if ordered {
        Stream::Ordered(singles(candidates))
    } else {
        Stream::Unordered(Box::new(candidates))
    }
}

fn order_compare(order: &Order, left: &StoredRecord, right: &StoredRecord) -> Ordering {
    match order {
        Order::Keys(keys) => compare_records(keys, left, right),
        Order::Relevance => left.id.cmp(&right.id),
    }
}

/// Collects the page, the count and the aggregations from the records the stream yields.
struct Collector<'a> {
    request: &'a ListRequest,
    need_all: bool,
    matched: u64,
    pageable: u64,
    page: Vec<StoredRecord>,
    has_more: bool,
    accumulator: Option<Accumulator>,
    grouper: Option<Grouper>,
}

impl<'a> Collector<'a> {
    fn new(request: &'a ListRequest, need_all: bool) -> Self {
        Collector {
            request,
            need_all,
            matched: 0,
            pageable: 0,
            page: Vec::new(),
            has_more: false,
            accumulator: request.aggregate.as_ref().map(Accumulator::new),
            grouper: request.group_by.map(Grouper::new),
        }
    }

    /// Whether the record is visible and matches; counts and aggregates it if so.
    fn accept(&mut self, record: &StoredRecord) -> DomainResult<bool> {
        if !self.request.trash.admits(record) {
            return Ok(false);
        }
        if let Some(filter) = &self.request.filter {
            if !filter.matches_within(record, &self.request.budget)? {
                return Ok(false);
            }
        }
        self.matched += 1;
        if let (Some(spec), Some(accumulator)) = (&self.request.aggregate, &mut self.accumulator) {
            accumulator.add(spec, record);
        }
        if let Some(grouper) = &mut self.grouper {
            grouper.add(self.request.aggregate.as_ref(), record);
        }
        Ok(true)
    }

    fn is_pageable(&self, record: &StoredRecord) -> bool {
        self.request.after.is_none_or(|after| record.id > after)
    }

    /// Takes the next record in order; `true` when nothing more is needed.
    fn emit(&mut self, record: StoredRecord) -> bool {
        if !self.is_pageable(&record) {
            return false;
        }
        self.pageable += 1;
        if self.pageable > self.request.offset {
            if u64::try_from(self.page.len()).unwrap_or(u64::MAX) < self.request.limit {
                self.page.push(record);
            } else {
                self.has_more = true;
                return !self.need_all;
            }
        }
        false
    }

    fn keep_count(&self) -> usize {
        let keep = self
            .request
            .offset
            .saturating_add(self.request.limit)
            .saturating_add(1);
        usize::try_from(keep).unwrap_or(usize::MAX)
    }
}

impl<'a> Executor<'a> {
    fn new(
        table: &'a TableShared,
        schema: &'a TableSchema,
        request: &'a ListRequest,
        plan: &'a Plan,
    ) -> Self {
        let need_all = request.aggregate.is_some()
            || request.group_by.is_some()
            || (!request.skip_total && !plan.exact);
        Executor {
            table,
            schema,
            request,
            plan,
            need_all,
            trash_ids: None,
            hits: None,
        }
    }

    fn trash_ids(&mut self) -> DomainResult<&HashSet<u64>> {
        if self.trash_ids.is_none() {
            let ids = self
                .table
                .store
                .trashed_ids()
                .collect::<Result<HashSet<u64>, StorageError>>()?;
            self.trash_ids = Some(ids);
        }
        Ok(self.trash_ids.get_or_insert_with(HashSet::new))
    }

    /// Whether a record id is visible in the trash mode, from the trash keys alone.
    fn admits_id(&mut self, id: u64) -> DomainResult<bool> {
        Ok(match self.request.trash {
            TrashMode::All => true,
            TrashMode::Live => !self.trash_ids()?.contains(&id),
            TrashMode::Trashed => self.trash_ids()?.contains(&id),
        })
    }

    fn count_admitted(
        &mut self,
        ids: impl Iterator<Item = DomainResult<u64>>,
    ) -> DomainResult<u64> {
        let mut count = 0u64;
        for (read, id) in ids.enumerate() {
            if read % KEYS_PER_BUDGET_CHECK == 0 {
                self.request.budget.check()?;
            }
            if self.admits_id(id?)? {
                count += 1;
            }
        }
        Ok(count)
    }

    /// The total from keys alone, when the plan is exact.
    fn fast_count(&mut self) -> DomainResult<Option<u64>> {
        if !self.plan.exact {
            return Ok(None);
        }
        let access = &self.plan.access;
        if let AccessPath::Search = access {
            let Some(hits) = self.hits.clone() else {
                return Ok(Some(0));
            };
            let matched = u64::try_from(hits.len()).unwrap_or(u64::MAX);
            if self.request.trash == TrashMode::All {
                return Ok(Some(matched));
            }
            // The trashed matches, counted from the smaller side.
            let trash = self.trash_ids()?;
            let trashed = if trash.len() < hits.len() {
                trash.iter().filter(|id| hits.contains(**id)).count()
            } else {
                hits.ids().iter().filter(|id| trash.contains(id)).count()
            };
            let trashed = u64::try_from(trashed).unwrap_or(u64::MAX);
            return Ok(Some(match self.request.trash {
                TrashMode::Trashed => trashed,
                _ => matched.saturating_sub(trashed),
            }));
        }
        if self.request.filter.is_none() {
            let live = self.table.live_count();
            return Ok(Some(match self.request.trash {
                TrashMode::Live => live,
                TrashMode::Trashed => u64::try_from(self.trash_ids()?.len()).unwrap_or(u64::MAX),
                TrashMode::All => {
                    live.saturating_add(u64::try_from(self.trash_ids()?.len()).unwrap_or(u64::MAX))
                }
            }));
        }
        let table = self.table;
        let access = access.clone();
        let trash_mode = match self.request.trash {
            TrashMode::Live => 0u8,
            TrashMode::All => 1,
            TrashMode::Trashed => 2,
        };
        // Each count is of whole key ranges: the ranges (and the trash mode) identify it.
        let ranges: Vec<(Vec<u8>, Vec<u8>)> = match &access {
            AccessPath::IndexEquality { field_id, values } => distinct_values(values)
                .iter()
                .map(|value| {
                    let prefix = keys::index_value_prefix(*field_id, value);
                    let end = prefix_successor(prefix.clone());
                    (prefix, end)
                })
                .collect(),
            AccessPath::IndexRange {
                field_id,
                lower,
                upper,
            }
            | AccessPath::IndexWalk {
                field_id,
                lower,
                upper,
                ..
            } => vec![index_key_range(*field_id, lower, upper)],
            _ => return Ok(None),
        };
        let mut what = vec![trash_mode];
        for (start, end) in &ranges {
            for key in [start, end] {
                what.extend_from_slice(&u32::try_from(key.len()).unwrap_or(u32::MAX).to_be_bytes());
                what.extend_from_slice(key);
            }
        }
        let total = counts::cached_count(table, what, || {
            let mut total = 0u64;
            for (start, end) in ranges {
                total += self.count_admitted(index_range_ids(table, start, end))?;
            }
            Ok(total)
        })?;
        Ok(Some(total))
    }

    /// The candidates of the plan's access path. In streaming mode (`after` not needed for
    /// the count) the id-ordered paths seek past `after`.
    fn stream(&mut self) -> DomainResult<Stream<'a>> {
        let table = self.table;
        let seek = if self.need_all {
            None
        } else {
            self.request.after
        };
        let by_id = self.plan.order.by_id();
        let ordered = self.plan.delivery != Delivery::NeedsSort;
        Ok(match &self.plan.access {
            AccessPath::Search => {
                let hits = self.hits.clone().unwrap_or_default();
                if ordered {
                    // Relevance order: ranked as far as the page needs (all of it when every
                    // match is read anyway).
                    let expected = if self.need_all {
                        usize::MAX
                    } else {
                        let wanted = self
                            .request
                            .offset
                            .saturating_add(self.request.limit)
                            .saturating_add(1);
                        usize::try_from(wanted).unwrap_or(usize::MAX)
                    };
                    let ranked = hits.ranked(expected);
                    Stream::Ordered(singles(ranked.map(|hit| Ok(Candidate::Id(hit.record_id)))))
                } else {
                    ids_in_order(hits.ids().to_vec(), false)
                }
            }
            AccessPath::RecordIds(ids) => ids_in_order(ids.clone(), ordered),
            AccessPath::IndexEquality { field_id, values } => {
                let streams = distinct_values(values)
                    .into_iter()
                    .map(|value| {
                        let prefix = keys::index_value_prefix(*field_id, &value);
                        let end = prefix_successor(prefix.clone());
                        let mut start = prefix;
                        match seek.filter(|_| by_id == Some(false)) {
                            Some(after) => {
                                // From the group of the next id on, without the ids up to
                                // `after` that share its bitmap.
                                let next = after.saturating_add(1);
                                start.extend_from_slice(&pages::group_of(next).to_be_bytes());
                                Box::new(
                                    index_range_ids(table, start, end)
                                        .filter(move |id| !matches!(id, Ok(id) if *id <= after)),
                                )
                                    as Box<dyn Iterator<Item = DomainResult<u64>>>
                            }
                            None => index_range_ids(table, start, end),
                        }
                    })
                    .collect();
                let merged = MergeAscending::new(streams);
                match by_id {
                    Some(false) => Stream::Ordered(singles(merged.map(|id| id.map(Candidate::Id)))),
                    Some(true) => {
                        let mut ids = merged.collect::<DomainResult<Vec<u64>>>()?;
                        ids.reverse();
                        ids_in_order(ids, true)
                    }
                    None => Stream::Unordered(Box::new(merged.map(|id| id.map(Candidate::Id)))),
                }
            }
            AccessPath::IndexRange {
                field_id,
                lower,
                upper,
            } => {
                let (start, end) = index_key_range(*field_id, lower, upper);
                let mut ids =
                    index_range_ids(table, start, end).collect::<DomainResult<Vec<u64>>>()?;
                if let Some(descending) = by_id {
                    ids.sort_unstable();
                    if descending {
                        ids.reverse();
                    }
                }
                ids_in_order(ids, by_id.is_some())
            }
            AccessPath::IndexWalk {
                field_id,
                lower,
                upper,
                descending,
            } => {
                let (start, end) = index_key_range(*field_id, lower, upper);
                Stream::Ordered(Box::new(ValueGroups {
                    entries: index_range_entries(table, start, end, *descending).peekable(),
                }))
            }
            AccessPath::Trash => {
                let start = match seek {
                    Some(after) => keys::trash_key(after.saturating_add(1)).to_vec(),
                    None => vec![keys::TRASH],
                };
                let ids = key_range(
                    table,
                    start,
                    vec![keys::TRASH + 1],
                    false,
                    decode_trailing_id,
                );
                match by_id {
                    Some(false) => Stream::Ordered(singles(ids.map(|id| id.map(Candidate::Id)))),
                    Some(true) => {
                        let mut ids = ids.collect::<DomainResult<Vec<u64>>>()?;
                        ids.reverse();
                        ids_in_order(ids, true)
                    }
                    None => Stream::Unordered(Box::new(ids.map(|id| id.map(Candidate::Id)))),
                }
            }
            AccessPath::IdScan {
                lower,
                upper,
                descending,
            } => {
                let lower = match seek {
                    Some(after) => match lower {
                        Bound::Included(id) if *id > after => Bound::Included(*id),
                        Bound::Excluded(id) if *id > after => Bound::Excluded(*id),
                        _ => Bound::Excluded(after),
                    },
                    None => *lower,
                };
                let records = table
                    .store
                    .records_between(lower, *upper, *descending)
                    .map(|record| storage(record).map(Candidate::Record));
                if ordered {
                    Stream::Ordered(singles(records))
                } else {
                    Stream::Unordered(Box::new(records))
                }
            }
        })
    }

    /// The record of a candidate, once the budget allows reading one more.
    fn resolve(&self, candidate: Candidate) -> DomainResult<Option<StoredRecord>> {
        self.request.budget.check()?;
        match candidate {
            Candidate::Record(record) => Ok(Some(record)),
            Candidate::Id(id) => Ok(self.table.store.get_record(id)?),
        }
    }

    fn run(mut self) -> DomainResult<ListPage> {
        if self.plan.access == AccessPath::Search {
            let hits = match &self.request.search {
                Some(query) => search::run_search_within(
                    self.table,
                    self.schema,
                    query,
                    self.request.search_scope.as_ref(),
                    &self.request.budget,
                )?,
                None => SearchResults::default(),
            };
            self.hits = Some(Arc::new(hits));
        }
        let scores = self.hits.clone();
        let mut fast_total = None;
        if !self.request.skip_total && !self.need_all {
            fast_total = self.fast_count()?;
            if fast_total.is_none() {
                self.need_all = true;
            }
        }
        let skip_before = if self.need_all {
            None
        } else {
            self.request.after
        };
        let stream = self.stream()?;
        let order = &self.plan.order;
        let mut collector = Collector::new(self.request, self.need_all);
        match stream {
            Stream::Ordered(groups) => {
                'groups: for group in groups {
                    let mut records = Vec::new();
                    for candidate in group? {
                        if skip_before.is_some_and(|after| candidate.id() <= after) {
                            continue;
                        }
                        if let Some(record) = self.resolve(candidate)? {
                            if collector.accept(&record)? {
                                records.push(record);
                            }
                        }
                    }
                    if records.len() > 1 {
                        records.sort_by(|left, right| order_compare(order, left, right));
                    }
                    for record in records {
                        if collector.emit(record) {
                            break 'groups;
                        }
                    }
                }
            }
            Stream::Unordered(candidates) => {
                let keep = collector.keep_count();
                let mut buffer: Vec<StoredRecord> = Vec::new();
                for candidate in candidates {
                    let candidate = candidate?;
                    if skip_before.is_some_and(|after| candidate.id() <= after) {
                        continue;
                    }
                    let Some(record) = self.resolve(candidate)? else {
                        continue;
                    };
                    if !collector.accept(&record)? || !collector.is_pageable(&record) {
                        continue;
                    }
                    collector.pageable += 1;
                    buffer.push(record);
                    if buffer.len() >= keep.saturating_mul(2).max(1024) {
                        buffer.sort_by(|left, right| order_compare(order, left, right));
                        buffer.truncate(keep);
                    }
                }
                buffer.sort_by(|left, right| order_compare(order, left, right));
                let offset = usize::try_from(collector.request.offset).unwrap_or(usize::MAX);
                let limit = usize::try_from(collector.request.limit).unwrap_or(usize::MAX);
                collector.has_more = collector.pageable
                    > collector
                        .request
                        .offset
                        .saturating_add(collector.request.limit);
                collector.page = buffer.into_iter().skip(offset).take(limit).collect();
            }
        }
        let total = if self.request.skip_total {
            None
        } else {
            Some(fast_total.unwrap_or(collector.matched))
        };
        let page_scores = scores.map(|scores| {
            collector
                .page
                .iter()
                .map(|record| scores.score(record.id).unwrap_or(0.0))
                .collect()
        });
        Ok(ListPage {
            aggregations: match (&self.request.aggregate, &collector.accumulator) {
                (Some(spec), Some(accumulator)) => Some(accumulator.finish(spec, self.schema)),
                _ => None,
            },
            groups: collector
                .grouper
                .as_ref()
                .map(|grouper| grouper.finish(self.request.aggregate.as_ref(), self.schema)),
            records: collector.page,
            total,
            has_more: collector.has_more,
            scores: page_scores,
            plan: self.plan.describe(self.schema),
        })
    }
}

/// The values of an `IN`, each once, in value order (sorted, so a long list costs
/// O(n log n), not a comparison of every pair).
fn distinct_values(values: &[Value]) -> Vec<Value> {
    let mut distinct = values.to_vec();
    distinct.sort_by(compare_values);
    distinct.dedup_by(|later, earlier| compare_values(later, earlier) == Ordering::Equal);
    distinct
}

/// The brute-force answer: every record read, checked against the filter and the search, sorted
/// and paged in memory. The planner's answer must always equal this one (the property tests
/// hold it to that); it is also the baseline of the benchmarks.
pub fn list_by_scan(table: &TableShared, request: &ListRequest) -> DomainResult<ListPage> {
    let schema = table.schema();
    let order = plan::effective_order(request);
    let scores: Option<SearchResults> = match &request.search {
        Some(query) => Some(search::run_search_within(
            table,
            &schema,
            query,
            request.search_scope.as_ref(),
            &request.budget,
        )?),
        None => None,
    };
    let mut collector = Collector::new(request, true);
    let mut matching = Vec::new();
    for record in table.store.records(None, false) {
        request.budget.check()?;
        let record = record?;
        if let Some(query) = &request.search {
            if !search::scoped_record_matches(
                &schema,
                request.search_scope.as_ref(),
                query,
                &record,
            ) {
                continue;
            }
        }
        if collector.accept(&record)? {
            matching.push(record);
        }
    }
    let score_of = |record: &StoredRecord| {
        scores
            .as_ref()
            .and_then(|scores| scores.score(record.id))
            .unwrap_or(0.0)
    };
    match &order {
        Order::Relevance => matching.sort_by(|left, right| {
            score_of(right)
                .total_cmp(&score_of(left))
                .then(left.id.cmp(&right.id))
        }),
        Order::Keys(keys) => matching.sort_by(|left, right| compare_records(keys, left, right)),
    }
    for record in matching {
        collector.emit(record);
    }
    let page_scores = scores
        .as_ref()
        .map(|_| collector.page.iter().map(score_of).collect());
    Ok(ListPage {
        aggregations: match (&request.aggregate, &collector.accumulator) {
            (Some(spec), Some(accumulator)) => Some(accumulator.finish(spec, &schema)),
            _ => None,
        },
        groups: collector
            .grouper
            .as_ref()
            .map(|grouper| grouper.finish(request.aggregate.as_ref(), &schema)),
        total: (!request.skip_total).then_some(collector.matched),
        has_more: collector.has_more,
        records: collector.page,
        scores: page_scores,
        plan: "brute-force".into(),
    })
}
