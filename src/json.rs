//! Conversion between request/response JSON and the engine's `Value`, and the JSON shape of a
//! record (SPEC §4.1): `{id, fields:{name: value}, createdAt, updatedAt, createdBy, updatedBy}`.

use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;
use tabula_actors::clock;
use tabula_storage::{StoredRecord, TableSchema, Value};

/// JSON → engine value (numbers become `Int` when integral and in range).
pub fn to_value(json: &serde_json::Value) -> Value {
    match json {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(flag) => Value::Bool(*flag),
        serde_json::Value::Number(number) => match number.as_i64() {
            Some(integer) => Value::Int(integer),
            None => Value::Float(number.as_f64().unwrap_or(f64::NAN)),
        },
        serde_json::Value::String(text) => Value::Text(text.clone()),
        serde_json::Value::Array(items) => Value::List(items.iter().map(to_value).collect()),
        serde_json::Value::Object(entries) => Value::Map(
            entries
                .iter()
                .map(|(key, item)| (key.clone(), to_value(item)))
                .collect(),
        ),
    }
}

/// Parses JSON text into an engine value (handed to the query engine for JSON filter forms).
pub fn parse_value(text: &str) -> Result<Value, String> {
    serde_json::from_str::<serde_json::Value>(text)
        .map(|json| to_value(&json))
        .map_err(|error| error.to_string())
}

/// Engine value → JSON.
pub fn from_value(value: &Value) -> serde_json::Value {
    // `Value` serialises to its natural JSON form in human-readable serializers.
    serde_json::to_value(value).unwrap_or(serde_json::Value::Null)
}

/// A record rendered in the API shape, serialised without intermediate JSON trees.
pub struct RecordView<'a> {
    pub schema: &'a TableSchema,
    pub record: &'a StoredRecord,
    /// Field ids to include; `None` means every field.
    pub projection: Option<&'a [u32]>,
}

struct FieldsView<'a>(&'a RecordView<'a>);

impl Serialize for FieldsView<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let view = self.0;
        let mut map = serializer.serialize_map(None)?;
        for field in &view.schema.fields {
            if let Some(projection) = view.projection {
                if !projection.contains(&field.id) {
                    continue;
                }
            }
            match view.record.fields.get(&field.id) {
                Some(value) if !value.is_null() => map.serialize_entry(&field.name, value)?,
                _ => {}
            }
        }
        map.end()
    }
}

impl Serialize for RecordView<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let record = self.record;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("id", &record.id.to_string())?;
        map.serialize_entry("fields", &FieldsView(self))?;
        map.serialize_entry("createdAt", &clock::format_ms(record.created_at))?;
        map.serialize_entry("updatedAt", &clock::format_ms(record.updated_at))?;
        map.serialize_entry("createdBy", &record.created_by)?;
        map.serialize_entry("updatedBy", &record.updated_by)?;
        if let Some(deleted_at) = record.deleted_at {
            map.serialize_entry("deletedAt", &clock::format_ms(deleted_at))?;
            map.serialize_entry("deletedBy", &record.deleted_by)?;
        }
        map.end()
    }
}

/// A record in the flat shape of the compatibility dialects (SPEC §10): every readable field at
/// the top level (`null` when empty) beside `id`, `createdAt`, `updatedAt`, `createdBy`, `updatedBy` (and `deletedAt`,
/// `deletedBy` for a trashed one). The system attributes are written last and win over a field
/// of the same name.
pub struct FlatRecordView<'a>(pub RecordView<'a>);

impl Serialize for FlatRecordView<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        const SYSTEM: [&str; 7] = [
            "id",
            "createdAt",
            "updatedAt",
            "createdBy",
            "updatedBy",
            "deletedAt",
            "deletedBy",
        ];
        let view = &self.0;
        let record = view.record;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("id", &record.id.to_string())?;
        for field in &view.schema.fields {
            if SYSTEM.contains(&field.name.as_str()) {
                continue;
            }
            if let Some(projection) = view.projection {
                if !projection.contains(&field.id) {
                    continue;
                }
            }
            // Every readable field is present, `null` when empty, as in a row of a table.
            match record.fields.get(&field.id) {
                Some(value) => map.serialize_entry(&field.name, value)?,
                None => map.serialize_entry(&field.name, &Value::Null)?,
            }
        }
        map.serialize_entry("createdAt", &clock::format_ms(record.created_at))?;
        map.serialize_entry("updatedAt", &clock::format_ms(record.updated_at))?;
        map.serialize_entry("createdBy", &record.created_by)?;
        map.serialize_entry("updatedBy", &record.updated_by)?;
        if let Some(deleted_at) = record.deleted_at {
            map.serialize_entry("deletedAt", &clock::format_ms(deleted_at))?;
            map.serialize_entry("deletedBy", &record.deleted_by)?;
        }
        map.end()
    }
}
