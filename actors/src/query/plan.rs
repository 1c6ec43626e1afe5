//! The planner: decides how a list request reads the table — which keys it walks, whether
//! they come in the requested order, and whether the keys alone answer the filter (so the total
//! is counted without reading records).
//!
//! How it chooses, in order:
//! 1. `search=` → the full-text index (relevance order when no sort is given);
//! 2. `id = n` / `id IN (…)` in the top-level AND → those records directly;
//! 3. an equality or `IN` on an indexed/unique field in the top-level AND → the index entries
//!    of those values (fewest values wins); within one value they are in id order, several
//!    values are merged, so id order needs no sort and `after` seeks inside each value;
//! 4. a range (`> >= < <=`, several on one field merged) on an indexed field → the index range;
//!    if the first sort key is that field the range is walked in sort order, otherwise the ids
//!    are collected (keys only) and sorted;
//! 5. `deleted=true` → the trash keys (sorted in memory when the order is not by id);
//! 6. a sort whose first key is an indexed field → the whole index walked in that order, value
//!    group by value group (each group sorted by the remaining keys, then id);
//! 7. otherwise the records in id order (an id range from `id` predicates and `after` seeks).
//!
//! The whole filter is always re-applied to every record read, so a path only has to return a
//! superset of the matches in the right order.

use std::ops::Bound;

use tabula_storage::{TableSchema, Value};

use crate::query::execute::{ListRequest, SortKey, TrashMode};
use crate::query::filter::{compare_values, Attribute, CompareOp, Filter};
use crate::query::typing::AttributeKind;

/// The order a list is answered in.
#[derive(Debug, Clone, PartialEq)]
pub enum Order {
    /// Search relevance, best first, ties by id ascending.
    Relevance,
    /// Sort keys, then id ascending.
    Keys(Vec<SortKey>),
}

impl Order {
    /// `Some(descending)` when the order is by id.
    pub fn by_id(&self) -> Option<bool> {
        match self {
            Order::Keys(keys) => keys
                .first()
                .filter(|key| key.attribute == Attribute::Id)
                .map(|key| key.descending),
            Order::Relevance => None,
        }
    }
}

/// The effective order of a request: its sort, or relevance for a search, or id ascending.
pub fn effective_order(request: &ListRequest) -> Order {
    if request.sort.is_empty() {
        if request.search.is_some() {
            Order::Relevance
        } else {
            Order::Keys(vec![SortKey {
                attribute: Attribute::Id,
                descending: false,
            }])
        }
    } else {
        Order::Keys(request.sort.clone())
    }
}

/// Which keys the executor reads.
#[derive(Debug, Clone, PartialEq)]
pub enum AccessPath {
    /// The full-text index.
    Search,
    /// These record ids (from `id =` / `id IN`).
    RecordIds(Vec<u64>),
    /// The index entries of these values of a field.
    IndexEquality { field_id: u32, values: Vec<Value> },
    /// The index entries of a field between two values, ids collected.
    IndexRange {
        field_id: u32,
        lower: Bound<Value>,
        upper: Bound<Value>,
    },
    /// The index entries of a field walked in value order, group by group.
    IndexWalk {
        field_id: u32,
        lower: Bound<Value>,
        upper: Bound<Value>,
        descending: bool,
    },
    /// The trash keys, in id order.
    Trash,
    /// The records in id order between two ids.
    IdScan {
        lower: Bound<u64>,
        upper: Bound<u64>,
        descending: bool,
    },
}

/// How the candidates arrive relative to the requested order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Already in order: the executor can stop after the page.
    InOrder,
    /// Groups in order; each group is sorted by the full order.
    GroupsInOrder,
    /// In any order: everything is read and the first page selected.
    NeedsSort,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub access: AccessPath,
    pub delivery: Delivery,
    /// The access path alone answers the whole filter, so the total is a count of keys.
    pub exact: bool,
    pub order: Order,
}

impl Plan {
    /// A short description (`index-equality(status)`), for tests, logs and benchmarks.
    pub fn describe(&self, schema: &TableSchema) -> String {
        let field_name = |field_id: &u32| {
            schema
                .field_by_id(*field_id)
                .map_or_else(|| field_id.to_string(), |field| field.name.clone())
        };
        match &self.access {
            AccessPath::Search => "search".into(),
            AccessPath::RecordIds(_) => "record-ids".into(),
            AccessPath::IndexEquality { field_id, .. } => {
                format!("index-equality({})", field_name(field_id))
            }
            AccessPath::IndexRange { field_id, .. } => {
                format!("index-range({})", field_name(field_id))
            }
            AccessPath::IndexWalk { field_id, .. } => {
                format!("index-walk({})", field_name(field_id))
            }
            AccessPath::Trash => "trash".into(),
            AccessPath::IdScan { .. } => "id-scan".into(),
        }
    }
}

/// What one top-level conjunct lets the planner do.
#[derive(Debug, Clone)]
enum Predicate {
    Ids(Vec<u64>),
    IdRange {
        lower: Bound<u64>,
        upper: Bound<u64>,
    },
    Equal {
        field_id: u32,
        values: Vec<Value>,
    },
    Range {
        field_id: u32,
        lower: Bound<Value>,
        upper: Bound<Value>,
    },
}

/// The top-level AND's parts (nested ANDs flattened).
pub fn conjuncts(filter: Option<&Filter>) -> Vec<&Filter> {
    fn collect<'f>(filter: &'f Filter, out: &mut Vec<&'f Filter>) {
        match filter {
            Filter::And(parts) => parts.iter().for_each(|part| collect(part, out)),
            other => out.push(other),
        }
    }
    let mut out = Vec::new();
    if let Some(filter) = filter {
        collect(filter, &mut out);
    }
    out
}

fn positive_id(value: &Value) -> Option<u64> {
    value
        .as_i64()
        .and_then(|number| u64::try_from(number).ok())
        .filter(|id| *id > 0)
}

fn id_bounds(op: CompareOp, number: i64) -> (Bound<u64>, Bound<u64>) {
    // Record ids are ≥ 1; a negative bound either keeps everything or nothing.
    let clamped = u64::try_from(number).unwrap_or(0);
    match op {
        CompareOp::Gt if number < 0 => (Bound::Unbounded, Bound::Unbounded),
        CompareOp::Gt => (Bound::Excluded(clamped), Bound::Unbounded),
        CompareOp::Gte => (Bound::Included(clamped), Bound::Unbounded),
        CompareOp::Lt => (Bound::Unbounded, Bound::Excluded(clamped)),
        CompareOp::Lte if number < 0 => (Bound::Unbounded, Bound::Excluded(0)),
        CompareOp::Lte => (Bound::Unbounded, Bound::Included(clamped)),
        CompareOp::Eq | CompareOp::Ne => (Bound::Unbounded, Bound::Unbounded),
    }
}

/// Whether the index of a field may answer predicates on it.
pub fn indexable_field(schema: &TableSchema, field_id: u32) -> bool {
    schema.field_by_id(field_id).is_some_and(|field| {
        (field.indexed || field.unique) && AttributeKind::of_field(field).index_compatible()
    })
}

/// Whether a field has an index a sort can walk (any indexed type: the index orders by the
/// same total order the sort uses).
pub fn walkable_field(schema: &TableSchema, field_id: u32) -> bool {
    schema
        .field_by_id(field_id)
        .is_some_and(|field| field.indexed || field.unique)
}

fn predicate(schema: &TableSchema, conjunct: &Filter) -> Option<Predicate> {
    match conjunct {
        Filter::Compare {
            attribute: Attribute::Id,
            op,
            value,
        } => match op {
            CompareOp::Eq => Some(Predicate::Ids(positive_id(value).into_iter().collect())),
            CompareOp::Ne => None,
            op => {
                let (lower, upper) = id_bounds(*op, value.as_i64()?);
                Some(Predicate::IdRange { lower, upper })
            }
        },
        Filter::In {
            attribute: Attribute::Id,
            values,
        } => Some(Predicate::Ids(
            values.iter().filter_map(positive_id).collect(),
        )),
        Filter::Compare {
            attribute: Attribute::Field(field_id),
            op,
            value,
        } if indexable_field(schema, *field_id) => Some(match op {
            CompareOp::Eq => Predicate::Equal {
                field_id: *field_id,
                values: vec![value.clone()],
            },
            CompareOp::Ne => return None,
            CompareOp::Gt => Predicate::Range {
                field_id: *field_id,
                lower: Bound::Excluded(value.clone()),
                upper: Bound::Unbounded,
            },
            CompareOp::Gte => Predicate::Range {
                field_id: *field_id,
                lower: Bound::Included(value.clone()),
                upper: Bound::Unbounded,
            },
            // Nulls sort first in the index and never satisfy `<` / `<=`.
            CompareOp::Lt => Predicate::Range {
                field_id: *field_id,
                lower: Bound::Excluded(Value::Null),
                upper: Bound::Excluded(value.clone()),
            },
            CompareOp::Lte => Predicate::Range {
                field_id: *field_id,
                lower: Bound::Excluded(Value::Null),
                upper: Bound::Included(value.clone()),
            },
        }),
        Filter::In {
            attribute: Attribute::Field(field_id),
            values,
        } if indexable_field(schema, *field_id) => Some(Predicate::Equal {
            field_id: *field_id,
            values: values.clone(),
        }),
        _ => None,
    }
}

/// The tighter of two lower bounds.
fn tighter_lower(left: Bound<Value>, right: Bound<Value>) -> Bound<Value> {
    match (&left, &right) {
        (Bound::Unbounded, _) => right,
        (_, Bound::Unbounded) => left,
        (Bound::Included(a) | Bound::Excluded(a), Bound::Included(b) | Bound::Excluded(b)) => {
            match compare_values(a, b) {
                std::cmp::Ordering::Less => right,
                std::cmp::Ordering::Greater => left,
                std::cmp::Ordering::Equal if matches!(left, Bound::Excluded(_)) => left,
                std::cmp::Ordering::Equal => right,
            }
        }
    }
}

/// The tighter of two upper bounds.
fn tighter_upper(left: Bound<Value>, right: Bound<Value>) -> Bound<Value> {
    match (&left, &right) {
        (Bound::Unbounded, _) => right,
        (_, Bound::Unbounded) => left,
        (Bound::Included(a) | Bound::Excluded(a), Bound::Included(b) | Bound::Excluded(b)) => {
            match compare_values(a, b) {
                std::cmp::Ordering::Less => left,
                std::cmp::Ordering::Greater => right,
                std::cmp::Ordering::Equal if matches!(left, Bound::Excluded(_)) => left,
                std::cmp::Ordering::Equal => right,
            }
        }
    }
}

fn tighter_id_lower(left: Bound<u64>, right: Bound<u64>) -> Bound<u64> {
    let key = |bound: &Bound<u64>| match bound {
        Bound::Unbounded => (0u64, 0u8),
        Bound::Included(id) => (*id, 1),
        Bound::Excluded(id) => (*id, 2),
    };
    if key(&left) >= key(&right) {
        left
    } else {
        right
    }
}

fn tighter_id_upper(left: Bound<u64>, right: Bound<u64>) -> Bound<u64> {
    let key = |bound: &Bound<u64>| match bound {
        Bound::Unbounded => (u64::MAX, 2u8),
        Bound::Included(id) => (*id, 1),
        Bound::Excluded(id) => (*id, 0),
    };
    if key(&left) <= key(&right) {
        left
    } else {
        right
    }
}

/// Chooses the access path for a request (see the module documentation).
pub fn plan(schema: &TableSchema, request: &ListRequest) -> Plan {
    let order = effective_order(request);
    let id_order = order.by_id();
    let in_id_order = |ordered: bool| {
        if ordered && id_order.is_some() {
            Delivery::InOrder
        } else {
            Delivery::NeedsSort
        }
    };
    let parts = conjuncts(request.filter.as_ref());
    let no_filter = parts.is_empty() && request.filter.is_none();
    if request.search.is_some() {
        let delivery = if order == Order::Relevance {
            Delivery::InOrder
        } else {
            Delivery::NeedsSort
        };
        return Plan {
            access: AccessPath::Search,
            delivery,
            exact: no_filter,
            order,
        };
    }

    let predicates: Vec<(usize, Predicate)> = parts
        .iter()
        .enumerate()
        .filter_map(|(index, part)| predicate(schema, part).map(|found| (index, found)))
        .collect();
    let only = |covered: usize| parts.len() == covered;

    // 2. Record ids.
    if let Some(ids) = predicates
        .iter()
        .filter_map(|(_, found)| match found {
            Predicate::Ids(ids) => Some(ids),
            _ => None,
        })
        .min_by_key(|ids| ids.len())
    {
        let mut ids = ids.clone();
        ids.sort_unstable();
        ids.dedup();
        if id_order == Some(true) {
            ids.reverse();
        }
        return Plan {
            access: AccessPath::RecordIds(ids),
            delivery: in_id_order(true),
            exact: false,
            order,
        };
    }

    // 3. Equality / IN on an indexed field.
    if let Some((field_id, values)) = predicates
        .iter()
        .filter_map(|(_, found)| match found {
            Predicate::Equal { field_id, values } => Some((*field_id, values)),
            _ => None,
        })
        .min_by_key(|(_, values)| values.len())
    {
        return Plan {
            access: AccessPath::IndexEquality {
                field_id,
                values: values.clone(),
            },
            delivery: in_id_order(true),
            exact: only(1),
            order,
        };
    }

    // 4. Ranges on an indexed field (all ranges on one field merged); the first sort key's
    //    field is preferred, so the range can be walked in order.
    let first_sort_field = match &order {
        Order::Keys(keys) => keys.first().and_then(|key| match key.attribute {
            Attribute::Field(field_id) => Some((field_id, key.descending)),
            _ => None,
        }),
        Order::Relevance => None,
    };
    let mut ranges: Vec<(u32, Bound<Value>, Bound<Value>, usize)> = Vec::new();
    for (_, found) in &predicates {
        if let Predicate::Range {
            field_id,
            lower,
            upper,
        } = found
        {
            match ranges
                .iter_mut()
                .find(|(existing, ..)| existing == field_id)
            {
                Some((_, existing_lower, existing_upper, count)) => {
                    *existing_lower = tighter_lower(existing_lower.clone(), lower.clone());
                    *existing_upper = tighter_upper(existing_upper.clone(), upper.clone());
                    *count += 1;
                }
                None => ranges.push((*field_id, lower.clone(), upper.clone(), 1)),
            }
        }
    }
    let chosen_range = ranges
        .iter()
        .find(|(field_id, ..)| {
            first_sort_field.is_some_and(|(sort_field, _)| sort_field == *field_id)
        })
        .or_else(|| ranges.first());
    if let Some((field_id, lower, upper, covered)) = chosen_range.cloned() {
        let exact = only(covered);
        if let Some((sort_field, descending)) =
            first_sort_field.filter(|(sort_field, _)| *sort_field == field_id)
        {
            return Plan {
                access: AccessPath::IndexWalk {
                    field_id: sort_field,
                    lower,
                    upper,
                    descending,
                },
                delivery: Delivery::GroupsInOrder,
                exact,
                order,
            };
        }
        return Plan {
            access: AccessPath::IndexRange {
                field_id,
                lower,
                upper,
            },
            delivery: in_id_order(true),
            exact,
            order,
        };
    }

    // 5. The trash (normally far smaller than the table: read it and sort).
    if request.trash == TrashMode::Trashed {
        return Plan {
            access: AccessPath::Trash,
            delivery: in_id_order(true),
            exact: no_filter,
            order,
        };
    }

    // 6. A sort on an indexed field walks its index.
    if let Some((field_id, descending)) =
        first_sort_field.filter(|(field_id, _)| walkable_field(schema, *field_id))
    {
        return Plan {
            access: AccessPath::IndexWalk {
                field_id,
                lower: Bound::Unbounded,
                upper: Bound::Unbounded,
                descending,
            },
            delivery: Delivery::GroupsInOrder,
            exact: no_filter,
            order,
        };
    }

    // 7. Records in id order, narrowed by id predicates.
    let (mut lower, mut upper) = (Bound::Unbounded, Bound::Unbounded);
    for (_, found) in &predicates {
        if let Predicate::IdRange {
            lower: part_lower,
            upper: part_upper,
        } = found
        {
            lower = tighter_id_lower(lower, *part_lower);
            upper = tighter_id_upper(upper, *part_upper);
        }
    }
    Plan {
        access: AccessPath::IdScan {
            lower,
            upper,
            descending: id_order == Some(true),
        },
        delivery: in_id_order(true),
        exact: no_filter,
        order,
    }
}
