//! Field-level validation and normalisation of client input against a table's schema (SPEC §3,
//! §4.1): types, formats, options, bounds, required, readonly. Checks that need the store
//! (uniqueness, relationship targets) are made by the table actor.

use std::collections::BTreeMap;

use tabula_storage::{FieldDef, FieldType, TableSchema, Value};

use crate::error::FieldError;

/// System attributes every record has; clients may never write them.
pub const SYSTEM_ATTRIBUTES: &[&str] = &[
    "id",
    "createdAt",
    "updatedAt",
    "createdBy",
    "updatedBy",
    "deletedAt",
    "deletedBy",
];

/// Whether the write creates a record (defaults and required apply) or patches one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    Create,
    Update,
}

/// Validates client input (`name → value` pairs as sent) and returns the normalised values keyed
/// by field id. On create the result holds every field that has a value after defaults; on
/// update only the fields given (`Null` meaning "clear"). Every problem is reported, not just the
/// first.
pub fn validate_write(
    schema: &TableSchema,
    input: &[(String, Value)],
    mode: WriteMode,
) -> Result<BTreeMap<u32, Value>, Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut values = BTreeMap::new();
    for (name, value) in input {
        if SYSTEM_ATTRIBUTES.contains(&name.as_str()) {
            errors.push(FieldError::new(
                name,
                format!("Cannot write to readonly field '{name}'"),
            ));
            continue;
        }
        let Some(field) = schema.field_by_name(name) else {
            errors.push(FieldError::new(name, format!("Unknown field '{name}'")));
            continue;
        };
        if field.field_type.is_readonly() {
            errors.push(FieldError::new(
                name,
                format!("Cannot write to readonly field '{name}'"),
            ));
            continue;
        }
        if value.is_null() {
            if field.required {
                errors.push(FieldError::new(name, format!("Missing required fields: {name}")));
            } else {
                values.insert(field.id, Value::Null);
            }
            continue;
        }
        match normalise_value(field, value) {
            Ok(normalised) => {
                values.insert(field.id, normalised);
            }
            Err(message) => errors.push(FieldError::new(name, message)),
        }
    }
    if mode == WriteMode::Create {
        for field in &schema.fields {
            if values.contains_key(&field.id) || field.field_type.is_readonly() {
                continue;
            }
            if let Some(default) = default_value(field) {
                values.insert(field.id, default);
            }
        }
        for field in &schema.fields {
            let missing = values.get(&field.id).is_none_or(Value::is_empty_value);
            let already_reported = errors.iter().any(|error| error.field == field.name);
            if field.required && missing && !already_reported {
                errors.push(FieldError::new(
                    &field.name,
                    format!("Missing required fields: {}", field.name),
                ));
            }
        }
    }
    if errors.is_empty() {
        Ok(values)
    } else {
        Err(errors)
    }
}

/// The value a field gets on create when the input does not give one.
pub fn default_value(field: &FieldDef) -> Option<Value> {
    if let Some(default) = &field.default {
        return normalise_value(field, default).ok();
    }
    match field.field_type {
        FieldType::Checkbox => Some(Value::Bool(false)),
        _ => None,
    }
}

/// Checks and normalises one non-null value for a field; the error is the message for the
/// envelope's `errors[]` item.
pub fn normalise_value(field: &FieldDef, value: &Value) -> Result<Value, String> {
    let name = &field.name;
    match (&field.field_type, value) {
        (FieldType::Integer, Value::Int(_)) => Ok(value.clone()),
        (FieldType::Checkbox, Value::Bool(_)) => Ok(value.clone()),
        (FieldType::SingleLineText | FieldType::LongText, Value::Text(_)) => Ok(value.clone()),
        (FieldType::Json, _) => Ok(value.clone()),
        (field_type, other) => Err(format!(
            "Field '{name}' expects a {field_type} value, got {}",
            other.kind_name()
        )),
    }
}
