//! The filter tree that every filter spelling compiles to, its evaluation against a stored
//! record (within a query's time budget), and the total order of values shared with the index
//! encoding. LIKE patterns are compiled and matched by `query::like`.
//!
//! Values inside a tree are already typed for their attribute (see `query::typing`): a number
//! field holds numbers, a date field `YYYY-MM-DD` text, `createdAt` milliseconds, so evaluation
//! needs no schema.

use std::borrow::Cow;
use std::cmp::Ordering;

use tabula_storage::keys::ordered_f64_bits;
use tabula_storage::{FieldType, StoredRecord, TableSchema, Value};

use crate::error::{DomainError, DomainResult};
use crate::query::budget::QueryBudget;
use crate::query::execute::SortKey;
use crate::query::like::LikePattern;

/// A text at least this long is followed by a look at the query's budget once a LIKE has read
/// it: a pass over it takes long enough that reading the clock costs nothing in comparison.
const LONG_TEXT_BYTES: usize = 16 * 1024;

/// What a filter or sort refers to: a system attribute or a field (by id, so renames are safe).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Attribute {
    Id,
    CreatedAt,
    UpdatedAt,
    CreatedBy,
    UpdatedBy,
    DeletedAt,
    Field(u32),
}

impl Attribute {
    /// Resolves a name as a client writes it (`id`, `createdAt`, a field name); an unknown name
    /// is a 400 on the `filter` parameter.
    pub fn resolve(schema: &TableSchema, name: &str) -> DomainResult<Attribute> {
        Attribute::resolve_for(schema, name, "filter")
    }

    /// Like [`Attribute::resolve`], naming `parameter` in the error.
    ///
    /// Fields of the system-maintained types (`created-at`, `updated-at`, `created-by`,
    /// `updated-by`) resolve to the system attribute they mirror, so they filter and sort by
    /// the record's own bookkeeping.
    pub fn resolve_for(
        schema: &TableSchema,
        name: &str,
        parameter: &str,
    ) -> DomainResult<Attribute> {
        let system = match name {
            "id" => Some(Attribute::Id),
            "createdAt" => Some(Attribute::CreatedAt),
            "updatedAt" => Some(Attribute::UpdatedAt),
            "createdBy" => Some(Attribute::CreatedBy),
            "updatedBy" => Some(Attribute::UpdatedBy),
            "deletedAt" => Some(Attribute::DeletedAt),
            _ => None,
        };
        if let Some(attribute) = system {
            return Ok(attribute);
        }
        match schema.field_by_name(name) {
            Some(field) => Ok(match field.field_type {
                FieldType::CreatedAt => Attribute::CreatedAt,
                FieldType::UpdatedAt => Attribute::UpdatedAt,
                FieldType::CreatedBy => Attribute::CreatedBy,
                FieldType::UpdatedBy => Attribute::UpdatedBy,
                _ => Attribute::Field(field.id),
            }),
            None => Err(DomainError::bad_request(
                parameter,
                format!("unknown field: {name}"),
            )),
        }
    }

    /// The name a client writes for this attribute (`None` for a field the schema lost).
    pub fn name<'s>(&self, schema: &'s TableSchema) -> Option<&'s str> {
        Some(match self {
            Attribute::Id => "id",
            Attribute::CreatedAt => "createdAt",
            Attribute::UpdatedAt => "updatedAt",
            Attribute::CreatedBy => "createdBy",
            Attribute::UpdatedBy => "updatedBy",
            Attribute::DeletedAt => "deletedAt",
            Attribute::Field(field_id) => {
                return schema.field_by_id(*field_id).map(|f| f.name.as_str())
            }
        })
    }

    /// The attribute's value in a record (times as integers of milliseconds).
    pub fn value_of(&self, record: &StoredRecord) -> Value {
        self.value_ref(record).into_owned()
    }

    /// The attribute's value, borrowed when it is a field value.
    pub fn value_ref<'r>(&self, record: &'r StoredRecord) -> Cow<'r, Value> {
        match self {
            Attribute::Id => Cow::Owned(Value::Int(i64::try_from(record.id).unwrap_or(i64::MAX))),
            Attribute::CreatedAt => Cow::Owned(Value::Int(record.created_at)),
            Attribute::UpdatedAt => Cow::Owned(Value::Int(record.updated_at)),
            Attribute::CreatedBy => {
                Cow::Owned(record.created_by.clone().map_or(Value::Null, Value::Text))
            }
            Attribute::UpdatedBy => {
                Cow::Owned(record.updated_by.clone().map_or(Value::Null, Value::Text))
            }
            Attribute::DeletedAt => Cow::Owned(record.deleted_at.map_or(Value::Null, Value::Int)),
            Attribute::Field(field_id) => Cow::Borrowed(record.value(*field_id)),
        }
    }
}

/// The comparison operators of the filter tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CompareOp {
    Eq,
    Ne,
    Gt,
    Gte,
    Lt,
    Lte,
}

impl CompareOp {
    /// The operator as the expression language writes it.
    pub fn symbol(self) -> &'static str {
        match self {
            CompareOp::Eq => "=",
            CompareOp::Ne => "!=",
            CompareOp::Gt => ">",
            CompareOp::Gte => ">=",
            CompareOp::Lt => "<",
            CompareOp::Lte => "<=",
        }
    }

    /// Whether the operator orders values (as opposed to testing equality).
    pub fn is_ordering(self) -> bool {
        !matches!(self, CompareOp::Eq | CompareOp::Ne)
    }

    /// The operator with its operands swapped (`3 < x` is `x > 3`).
    pub fn flipped(self) -> CompareOp {
        match self {
            CompareOp::Eq => CompareOp::Eq,
            CompareOp::Ne => CompareOp::Ne,
            CompareOp::Gt => CompareOp::Lt,
            CompareOp::Gte => CompareOp::Lte,
            CompareOp::Lt => CompareOp::Gt,
            CompareOp::Lte => CompareOp::Gte,
        }
    }
}

/// A filter tree. Values are already typed for their attribute.
///
/// Semantics worth knowing:
/// * `= null` holds when the value is absent (or an empty array); `!= null` is its negation;
/// * `!=`, `!~` and `NOT` hold for records without a value; `> >= < <=` and `~` never do;
/// * a record whose value is an array (multi-select) matches `=`, `~` and `IN` when any element
///   does, and `!=` / `!~` when no element does.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// Every part holds (the empty AND holds for every record).
    And(Vec<Filter>),
    /// Some part holds (the empty OR holds for no record).
    Or(Vec<Filter>),
    Not(Box<Filter>),
    Compare {
        attribute: Attribute,
        op: CompareOp,
        value: Value,
    },
    /// The value equals one of `values` (none of them null).
    In {
        attribute: Attribute,
        values: Vec<Value>,
    },
    /// Case-insensitive LIKE: `%` any run, `_` one character, `\` takes the next one literally.
    /// The pattern is the effective one (the expression language's substring wrapping is
    /// already applied), compiled once for every record it is matched against.
    Like {
        attribute: Attribute,
        pattern: LikePattern,
        negated: bool,
    },
    /// The value is null, the empty string or the empty array (`isEmpty`).
    IsEmpty {
        attribute: Attribute,
    },
    /// The record comes after a cursor in a sort order (the sort keys, then id ascending,
    /// exactly as `execute::compare_records` orders records): the keyset step of a scan that
    /// pages through a sorted set without an offset (exports). `values` are the cursor
    /// record's values of `keys`, `id` its id. Never produced by a filter spelling.
    After {
        keys: Vec<SortKey>,
        values: Vec<Value>,
        id: u64,
    },
}

impl Filter {
    /// AND of `parts`, without a wrapper for a single part.
    pub fn all_of(mut parts: Vec<Filter>) -> Filter {
        if parts.len() == 1 {
            if let Some(only) = parts.pop() {
                return only;
            }
        }
        Filter::And(parts)
    }

    /// OR of `parts`, without a wrapper for a single part.
    pub fn any_of(mut parts: Vec<Filter>) -> Filter {
        if parts.len() == 1 {
            if let Some(only) = parts.pop() {
                return only;
            }
        }
        Filter::Or(parts)
    }

    /// ANDs `extra` into an optional filter (flattening a top-level AND so the planner sees
    /// every conjunct).
    pub fn and_into(existing: Option<Filter>, extra: Filter) -> Filter {
        match existing {
            None => extra,
            Some(Filter::And(mut parts)) => {
                match extra {
                    Filter::And(more) => parts.extend(more),
                    other => parts.push(other),
                }
                Filter::And(parts)
            }
            Some(other) => match extra {
                Filter::And(mut more) => {
                    more.insert(0, other);
                    Filter::And(more)
                }
                extra => Filter::And(vec![other, extra]),
            },
        }
    }

    /// Whether the record satisfies the filter.
    pub fn matches(&self, record: &StoredRecord) -> bool {
        // An unlimited budget never runs out, so this is never the error.
        self.matches_within(record, &QueryBudget::unlimited())
            .unwrap_or(false)
    }

    /// Whether the record satisfies the filter, stopping with the budget's error when it runs
    /// out while a LIKE reads a long text.
    pub fn matches_within(
        &self,
        record: &StoredRecord,
        budget: &QueryBudget,
    ) -> DomainResult<bool> {
        Ok(match self {
            Filter::And(parts) => {
                for part in parts {
                    if !part.matches_within(record, budget)? {
                        return Ok(false);
                    }
                }
                true
            }
            Filter::Or(parts) => {
                for part in parts {
                    if part.matches_within(record, budget)? {
                        return Ok(true);
                    }
                }
                false
            }
            Filter::Not(inner) => !inner.matches_within(record, budget)?,
            Filter::Compare {
                attribute,
                op,
                value,
            } => compare_matches(&attribute.value_ref(record), *op, value),
            Filter::In { attribute, values } => {
                let actual = attribute.value_ref(record);
                match actual.as_ref() {
                    Value::List(items) => items.iter().any(|item| {
                        values
                            .iter()
                            .any(|value| compare_values(item, value) == Ordering::Equal)
                    }),
                    single => values
                        .iter()
                        .any(|value| compare_values(single, value) == Ordering::Equal),
                }
            }
            Filter::Like {
                attribute,
                pattern,
                negated,
            } => {
                let actual = attribute.value_ref(record);
                let found = match actual.as_ref() {
                    Value::List(items) => {
                        let mut found = false;
                        for item in items {
                            if like_value(pattern, item, budget)? {
                                found = true;
                                break;
                            }
                        }
                        found
                    }
                    single => like_value(pattern, single, budget)?,
                };
                found != *negated
            }
            Filter::IsEmpty { attribute } => attribute.value_ref(record).is_empty_value(),
            Filter::After { keys, values, id } => {
                for (key, cursor) in keys.iter().zip(values) {
                    let ordering = compare_values(&key.attribute.value_ref(record), cursor);
                    let ordering = if key.descending {
                        ordering.reverse()
                    } else {
                        ordering
                    };
                    if ordering != Ordering::Equal {
                        return Ok(ordering == Ordering::Greater);
                    }
                }
                record.id > *id
            }
        })
    }

    /// Every attribute the filter mentions.
    pub fn attributes(&self, out: &mut Vec<Attribute>) {
        match self {
            Filter::And(parts) | Filter::Or(parts) => {
                parts.iter().for_each(|part| part.attributes(out))
            }
            Filter::Not(inner) => inner.attributes(out),
            Filter::Compare { attribute, .. }
            | Filter::In { attribute, .. }
            | Filter::Like { attribute, .. }
            | Filter::IsEmpty { attribute } => out.push(*attribute),
            Filter::After { keys, .. } => out.extend(keys.iter().map(|key| key.attribute)),
        }
    }
}

/// One comparison, with the null and array rules of [`Filter`].
fn compare_matches(actual: &Value, op: CompareOp, expected: &Value) -> bool {
    if expected.is_null() {
        let absent = match actual {
            Value::Null => true,
            Value::List(items) => items.is_empty(),
            _ => false,
        };
        return match op {
            CompareOp::Eq => absent,
            CompareOp::Ne => !absent,
            // Rejected when the tree is built; nothing orders against null.
            _ => false,
        };
    }
    if let (Value::List(items), false) = (actual, matches!(expected, Value::List(_))) {
        let any = |op: CompareOp| items.iter().any(|item| scalar_matches(item, op, expected));
        return match op {
            CompareOp::Ne => !any(CompareOp::Eq),
            other => any(other),
        };
    }
    scalar_matches(actual, op, expected)
}

fn scalar_matches(actual: &Value, op: CompareOp, expected: &Value) -> bool {
    let ordering = compare_values(actual, expected);
    match op {
        CompareOp::Eq => ordering == Ordering::Equal,
        CompareOp::Ne => ordering != Ordering::Equal,
        CompareOp::Gt => !actual.is_null() && ordering == Ordering::Greater,
        CompareOp::Gte => !actual.is_null() && ordering != Ordering::Less,
        CompareOp::Lt => !actual.is_null() && ordering == Ordering::Less,
        CompareOp::Lte => !actual.is_null() && ordering != Ordering::Greater,
    }
}

fn like_value(pattern: &LikePattern, value: &Value, budget: &QueryBudget) -> DomainResult<bool> {
    Ok(match value {
        Value::Text(text) => {
            let found = pattern.matches(text);
            if text.len() >= LONG_TEXT_BYTES {
                budget.check()?;
            }
            found
        }
        Value::Int(number) => pattern.matches(&number.to_string()),
        Value::Float(number) => pattern.matches(&number.to_string()),
        _ => false,
    })
}

/// The total order used for filters and sorts. It agrees with the index key encoding
/// (`tabula_storage::keys::encode_index_value`): nulls first, then booleans, numbers
/// (integers and decimals compared exactly), text by UTF-8 bytes, lists, maps. The common cases
/// are compared directly; the rest through the encoding itself.
pub fn compare_values(left: &Value, right: &Value) -> Ordering {
    match (left, right) {
        (Value::Null, Value::Null) => Ordering::Equal,
        (Value::Null, _) => Ordering::Less,
        (_, Value::Null) => Ordering::Greater,
        (Value::Int(left), Value::Int(right)) => left.cmp(right),
        (Value::Text(left), Value::Text(right)) => left.as_bytes().cmp(right.as_bytes()),
        (Value::Bool(left), Value::Bool(right)) => left.cmp(right),
        // Same f64 image means same tie-break suffix, so the image decides.
        (Value::Float(left), Value::Float(right)) => {
            ordered_f64_bits(*left).cmp(&ordered_f64_bits(*right))
        }
        // Integers against decimals (and anything rarer) go through the encoding itself.
        _ => {
            let mut left_key = Vec::new();
            let mut right_key = Vec::new();
            tabula_storage::keys::encode_index_value(left, &mut left_key);
            tabula_storage::keys::encode_index_value(right, &mut right_key);
            left_key.cmp(&right_key)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_compare_exactly_across_kinds() {
        assert_eq!(
            compare_values(&Value::Int(3), &Value::Float(3.0)),
            Ordering::Equal
        );
        assert_eq!(
            compare_values(&Value::Int(3), &Value::Float(3.5)),
            Ordering::Less
        );
        assert_eq!(
            compare_values(&Value::Null, &Value::Int(-9)),
            Ordering::Less
        );
    }
}
