//! Typing of filter operands: the literal a client wrote (in any spelling) becomes the value the
//! attribute stores, and operators that do not fit the attribute's type are refused. Every
//! filter spelling builds its leaves through the constructors here, so all of them coerce and
//! fail the same way.

use tabula_storage::{FieldDef, FieldType, TableSchema, Value};

use crate::clock;
use crate::error::{DomainError, DomainResult};
use crate::query::filter::{Attribute, CompareOp, Filter};
use crate::query::like::{escape_like, has_unescaped_percent};

/// A literal as written in a filter, before typing.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
}

impl Literal {
    /// The literal a scalar JSON value stands for; arrays and objects have none.
    pub fn from_value(value: &Value) -> Option<Literal> {
        Some(match value {
            Value::Null => Literal::Null,
            Value::Bool(flag) => Literal::Bool(*flag),
            Value::Int(number) => Literal::Int(*number),
            Value::Float(number) => Literal::Float(*number),
            Value::Text(text) => Literal::Text(text.clone()),
            Value::List(_) | Value::Map(_) => return None,
        })
    }

    fn describe(&self) -> String {
        match self {
            Literal::Null => "null".into(),
            Literal::Bool(flag) => flag.to_string(),
            Literal::Int(number) => number.to_string(),
            Literal::Float(number) => number.to_string(),
            Literal::Text(text) => format!("'{text}'"),
        }
    }
}

/// How an attribute's values are typed and which operators fit it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttributeKind {
    /// The record id (an integer).
    RecordId,
    /// `createdAt`, `updatedAt`, `deletedAt`: milliseconds since the epoch.
    Timestamp,
    Number,
    /// Free text, selects, relationships, users: compared as text.
    Text,
    /// Like text, stored lower-cased.
    Email,
    Date,
    Datetime,
    Checkbox,
    /// An array of option strings; comparisons test its elements.
    MultiSelect,
    Json,
}

impl AttributeKind {
    /// The kind of an attribute in `schema`.
    pub fn of(schema: &TableSchema, attribute: Attribute) -> AttributeKind {
        match attribute {
            Attribute::Id => AttributeKind::RecordId,
            Attribute::CreatedAt | Attribute::UpdatedAt | Attribute::DeletedAt => {
                AttributeKind::Timestamp
            }
            Attribute::CreatedBy | Attribute::UpdatedBy => AttributeKind::Text,
            Attribute::Field(field_id) => schema
                .field_by_id(field_id)
                .map_or(AttributeKind::Text, AttributeKind::of_field),
        }
    }

    pub fn of_field(field: &FieldDef) -> AttributeKind {
        match &field.field_type {
            field_type if field_type.is_numeric() => AttributeKind::Number,
            FieldType::Email => AttributeKind::Email,
            FieldType::Date => AttributeKind::Date,
            FieldType::Datetime => AttributeKind::Datetime,
            FieldType::Checkbox => AttributeKind::Checkbox,
            FieldType::MultiSelect => AttributeKind::MultiSelect,
            FieldType::Json => AttributeKind::Json,
            FieldType::CreatedAt | FieldType::UpdatedAt => AttributeKind::Timestamp,
            _ => AttributeKind::Text,
        }
    }

    /// Whether equality and ranges on this kind mean what the secondary index orders by (so
    /// the planner may answer them from the index). Arrays and JSON compare by element.
    pub fn index_compatible(self) -> bool {
        !matches!(self, AttributeKind::MultiSelect | AttributeKind::Json)
    }
}

/// How an attribute is named in error messages: `integer field 'priority'` or `createdAt`.
pub fn describe_attribute(schema: &TableSchema, attribute: Attribute) -> String {
    match attribute {
        Attribute::Field(field_id) => match schema.field_by_id(field_id) {
            Some(field) => format!("{} field '{}'", field.field_type, field.name),
            None => format!("field {field_id}"),
        },
        other => other.name(schema).unwrap_or("attribute").to_owned(),
    }
}

fn attribute_name(schema: &TableSchema, attribute: Attribute) -> String {
    attribute.name(schema).unwrap_or("?").to_owned()
}

fn null_error(parameter: &str) -> DomainError {
    DomainError::bad_request(parameter, "null can only be compared with = or !=")
}

fn operator_error(
    schema: &TableSchema,
    attribute: Attribute,
    operator: &str,
    parameter: &str,
) -> DomainError {
    DomainError::bad_request(
        parameter,
        format!(
            "operator {operator} cannot be used with {}",
            describe_attribute(schema, attribute)
        ),
    )
}

/// Types a literal for an attribute: `'3'` against a number field is 3, `'x'` is a 400; dates
/// and datetimes are normalised to their stored form; timestamps become milliseconds.
pub fn typed_value(
    schema: &TableSchema,
    attribute: Attribute,
    literal: &Literal,
    parameter: &str,
) -> DomainResult<Value> {
    if *literal == Literal::Null {
        return Ok(Value::Null);
    }
    let kind = AttributeKind::of(schema, attribute);
    let mismatch = |expected: &str| {
        DomainError::bad_request(
            parameter,
            format!(
                "{} is not {expected} for {}",
                literal.describe(),
                describe_attribute(schema, attribute)
            ),
        )
    };
    match kind {
        AttributeKind::RecordId => match literal {
            Literal::Int(number) => Ok(Value::Int(*number)),
            Literal::Text(text) => text
                .trim()
                .parse::<i64>()
                .map(Value::Int)
                .map_err(|_| mismatch("a record id")),
            _ => Err(mismatch("a record id")),
        },
        AttributeKind::Number => match literal {
            Literal::Int(number) => Ok(Value::Int(*number)),
            Literal::Float(number) if number.is_finite() => Ok(Value::Float(*number)),
            Literal::Text(text) => {
                let text = text.trim();
                if let Ok(number) = text.parse::<i64>() {
                    Ok(Value::Int(number))
                } else {
                    match text.parse::<f64>() {
                        Ok(number) if number.is_finite() => Ok(Value::Float(number)),
                        _ => Err(mismatch("a number")),
                    }
                }
            }
            _ => Err(mismatch("a number")),
        },
        AttributeKind::Timestamp => match literal {
            Literal::Int(millis) => Ok(Value::Int(*millis)),
            Literal::Text(text) => clock::parse_datetime_ms(text)
                .map(Value::Int)
                .ok_or_else(|| mismatch("a date or time")),
            _ => Err(mismatch("a date or time")),
        },
        AttributeKind::Date => match literal {
            Literal::Text(text) => {
                let text = text.trim();
                if let Some(date) = clock::parse_date(text) {
                    return Ok(Value::Text(date.format("%Y-%m-%d").to_string()));
                }
                // A datetime against a date field compares by its UTC day.
                clock::parse_datetime_ms(text)
                    .and_then(|millis| clock::format_ms(millis).get(..10).map(str::to_owned))
                    .map(Value::Text)
                    .ok_or_else(|| mismatch("a date"))
            }
            _ => Err(mismatch("a date")),
        },
        AttributeKind::Datetime => match literal {
            // A date against a datetime field is midnight UTC of that day.
            Literal::Text(text) => clock::normalise_datetime(text)
                .map(Value::Text)
                .ok_or_else(|| mismatch("a date or time")),
            _ => Err(mismatch("a date or time")),
        },
        AttributeKind::Checkbox => match literal {
            Literal::Bool(flag) => Ok(Value::Bool(*flag)),
            Literal::Int(1) => Ok(Value::Bool(true)),
            Literal::Int(0) => Ok(Value::Bool(false)),
            Literal::Text(text) => match text.trim().to_ascii_lowercase().as_str() {
                "true" | "1" => Ok(Value::Bool(true)),
                "false" | "0" => Ok(Value::Bool(false)),
                _ => Err(mismatch("true or false")),
            },
            _ => Err(mismatch("true or false")),
        },
        AttributeKind::Text | AttributeKind::MultiSelect | AttributeKind::Email => {
            let text = match literal {
                Literal::Text(text) => text.clone(),
                Literal::Int(number) => number.to_string(),
                Literal::Float(number) => number.to_string(),
                _ => return Err(mismatch("text")),
            };
            Ok(Value::Text(if kind == AttributeKind::Email {
                text.to_lowercase()
            } else {
                text
            }))
        }
        AttributeKind::Json => Ok(match literal {
            Literal::Null => Value::Null,
            Literal::Bool(flag) => Value::Bool(*flag),
            Literal::Int(number) => Value::Int(*number),
            Literal::Float(number) => Value::Float(*number),
            Literal::Text(text) => Value::Text(text.clone()),
        }),
    }
}

/// `attribute op literal`, typed; null only with `=` / `!=`; ordering operators only where an
/// order means something.
pub fn compare(
    schema: &TableSchema,
    attribute: Attribute,
    op: CompareOp,
    literal: &Literal,
    parameter: &str,
) -> DomainResult<Filter> {
    if *literal == Literal::Null && op.is_ordering() {
        return Err(null_error(parameter));
    }
    let kind = AttributeKind::of(schema, attribute);
    if op.is_ordering()
        && matches!(
            kind,
            AttributeKind::Checkbox | AttributeKind::MultiSelect | AttributeKind::Json
        )
    {
        return Err(operator_error(schema, attribute, op.symbol(), parameter));
    }
    let value = typed_value(schema, attribute, literal, parameter)?;
    Ok(Filter::Compare {
        attribute,
        op,
        value,
    })
}

/// `attribute IN (…)`, each literal typed; null is refused.
pub fn one_of(
    schema: &TableSchema,
    attribute: Attribute,
    literals: &[Literal],
    parameter: &str,
) -> DomainResult<Filter> {
    if literals.contains(&Literal::Null) {
        return Err(null_error(parameter));
    }
    if AttributeKind::of(schema, attribute) == AttributeKind::Json {
        return Err(operator_error(schema, attribute, "IN", parameter));
    }
    if literals.is_empty() {
        return Err(DomainError::bad_request(
            parameter,
            format!(
                "IN needs at least one value for {}",
                attribute_name(schema, attribute)
            ),
        ));
    }
    let values = literals
        .iter()
        .map(|literal| typed_value(schema, attribute, literal, parameter))
        .collect::<DomainResult<Vec<Value>>>()?;
    Ok(Filter::In { attribute, values })
}

/// Where a text operand goes in a LIKE pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LikeShape {
    /// The operand is a pattern (`~`): used as written, wrapped in `%…%` when it has no `%`.
    Pattern,
    /// `contains`: the operand anywhere.
    Contains,
    StartsWith,
    EndsWith,
}

/// `attribute ~ pattern` (or `!~`, `contains`, `startsWith`, `endsWith`). Only text-like
/// attributes take patterns.
pub fn like(
    schema: &TableSchema,
    attribute: Attribute,
    operand: &Literal,
    shape: LikeShape,
    negated: bool,
    operator: &str,
    parameter: &str,
) -> DomainResult<Filter> {
    let kind = AttributeKind::of(schema, attribute);
    if !matches!(
        kind,
        AttributeKind::Text
            | AttributeKind::Email
            | AttributeKind::MultiSelect
            | AttributeKind::Date
            | AttributeKind::Datetime
    ) {
        return Err(operator_error(schema, attribute, operator, parameter));
    }
    let text = match operand {
        Literal::Null => return Err(null_error(parameter)),
        Literal::Text(text) => text.clone(),
        Literal::Int(number) => number.to_string(),
        Literal::Float(number) => number.to_string(),
        Literal::Bool(_) => {
            return Err(DomainError::bad_request(
                parameter,
                format!(
                    "operator {operator} needs a text value for {}",
                    attribute_name(schema, attribute)
                ),
            ))
        }
    };
    let pattern = match shape {
        LikeShape::Pattern if has_unescaped_percent(&text) => text,
        LikeShape::Pattern => format!("%{text}%"),
        LikeShape::Contains => format!("%{}%", escape_like(&text)),
        LikeShape::StartsWith => format!("{}%", escape_like(&text)),
        LikeShape::EndsWith => format!("%{}", escape_like(&text)),
    };
    Ok(Filter::Like {
        attribute,
        pattern: pattern.into(),
        negated,
    })
}

/// `isTrue` / `isFalse`: checkbox fields only.
pub fn truth(
    schema: &TableSchema,
    attribute: Attribute,
    expected: bool,
    operator: &str,
    parameter: &str,
) -> DomainResult<Filter> {
    if AttributeKind::of(schema, attribute) != AttributeKind::Checkbox {
        return Err(operator_error(schema, attribute, operator, parameter));
    }
    Ok(Filter::Compare {
        attribute,
        op: CompareOp::Eq,
        value: Value::Bool(expected),
    })
}

/// `contains` in the structured and SonicJs forms: element membership for a multi-select,
/// substring for text.
pub fn contains(
    schema: &TableSchema,
    attribute: Attribute,
    operand: &Literal,
    operator: &str,
    parameter: &str,
) -> DomainResult<Filter> {
    if AttributeKind::of(schema, attribute) == AttributeKind::MultiSelect {
        return compare(schema, attribute, CompareOp::Eq, operand, parameter);
    }
    like(
        schema,
        attribute,
        operand,
        LikeShape::Contains,
        false,
        operator,
        parameter,
    )
}
