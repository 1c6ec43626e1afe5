//! The filter tree and its evaluation against a stored record, typed by the field.

use std::cmp::Ordering;

use tabula_storage::{StoredRecord, TableSchema, Value};

use crate::error::{DomainError, DomainResult};

/// What a filter or sort refers to: a system attribute or a field (by id, so renames are safe).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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
    /// Resolves a name as a client writes it (`id`, `createdAt`, a field name).
    pub fn resolve(schema: &TableSchema, name: &str) -> DomainResult<Attribute> {
        Ok(match name {
            "id" => Attribute::Id,
            "createdAt" => Attribute::CreatedAt,
            "updatedAt" => Attribute::UpdatedAt,
            "createdBy" => Attribute::CreatedBy,
            "updatedBy" => Attribute::UpdatedBy,
            "deletedAt" => Attribute::DeletedAt,
            _ => match schema.field_by_name(name) {
                Some(field) => Attribute::Field(field.id),
                None => {
                    return Err(DomainError::bad_request(
                        "filter",
                        format!("unknown field: {name}"),
                    ))
                }
            },
        })
    }

    /// The attribute's value in a record (times as integers of milliseconds).
    pub fn value_of(&self, record: &StoredRecord) -> Value {
        match self {
            Attribute::Id => Value::Int(i64::try_from(record.id).unwrap_or(i64::MAX)),
            Attribute::CreatedAt => Value::Int(record.created_at),
            Attribute::UpdatedAt => Value::Int(record.updated_at),
            Attribute::CreatedBy => record.created_by.clone().map_or(Value::Null, Value::Text),
            Attribute::UpdatedBy => record.updated_by.clone().map_or(Value::Null, Value::Text),
            Attribute::DeletedAt => record.deleted_at.map_or(Value::Null, Value::Int),
            Attribute::Field(field_id) => record.value(*field_id).clone(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    Eq,
    Ne,
    Gt,
    Gte,
    Lt,
    Lte,
}

/// A filter tree. Values are already typed for their attribute.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    And(Vec<Filter>),
    Or(Vec<Filter>),
    Compare {
        attribute: Attribute,
        op: CompareOp,
        value: Value,
    },
}

impl Filter {
    pub fn matches(&self, record: &StoredRecord) -> bool {
        match self {
            Filter::And(parts) => parts.iter().all(|part| part.matches(record)),
            Filter::Or(parts) => parts.iter().any(|part| part.matches(record)),
            Filter::Compare {
                attribute,
                op,
                value,
            } => {
                let actual = attribute.value_of(record);
                let ordering = compare_values(&actual, value);
                match op {
                    CompareOp::Eq => ordering == Ordering::Equal,
                    CompareOp::Ne => ordering != Ordering::Equal,
                    CompareOp::Gt => !actual.is_null() && ordering == Ordering::Greater,
                    CompareOp::Gte => !actual.is_null() && ordering != Ordering::Less,
                    CompareOp::Lt => !actual.is_null() && ordering == Ordering::Less,
                    CompareOp::Lte => !actual.is_null() && ordering != Ordering::Greater,
                }
            }
        }
    }
}

/// The total order used for filters and sorts; it agrees with the index key encoding (nulls
/// first, numbers numerically, text by bytes).
pub fn compare_values(left: &Value, right: &Value) -> Ordering {
    let mut left_key = Vec::new();
    let mut right_key = Vec::new();
    tabula_storage::keys::encode_index_value(left, &mut left_key);
    tabula_storage::keys::encode_index_value(right, &mut right_key);
    left_key.cmp(&right_key)
}
