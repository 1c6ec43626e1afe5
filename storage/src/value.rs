//! The dynamic field value stored in records, config defaults and schema snapshots.
//!
//! One type serves two worlds: in human-readable formats (TOML config, JSON snapshots) it is
//! written as the natural JSON value (`"a"`, `3`, `[1,2]`, `{"k":true}`); in binary formats
//! (bincode on disk) it is a tagged enum, because bincode cannot deserialize self-describing data.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A field value. Numbers are `Int` when they fit an i64 and `Float` otherwise.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Value {
    #[default]
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
    List(Vec<Value>),
    Map(BTreeMap<String, Value>),
}

impl Value {
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Text(text) => Some(text),
            _ => None,
        }
    }

    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(number) => Some(*number),
            _ => None,
        }
    }

    /// The value as f64 for any number.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(number) => Some(*number as f64),
            Value::Float(number) => Some(*number),
            _ => None,
        }
    }

    /// A short name of the value's kind, for error messages.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Int(_) | Value::Float(_) => "number",
            Value::Text(_) => "string",
            Value::List(_) => "array",
            Value::Map(_) => "object",
        }
    }

    /// "Empty" in the sense of unique indexes and `isEmpty`: null, "", or [].
    pub fn is_empty_value(&self) -> bool {
        match self {
            Value::Null => true,
            Value::Text(text) => text.is_empty(),
            Value::List(items) => items.is_empty(),
            Value::Map(entries) => entries.is_empty(),
            _ => false,
        }
    }
}

impl From<&str> for Value {
    fn from(text: &str) -> Self {
        Value::Text(text.to_owned())
    }
}
impl From<String> for Value {
    fn from(text: String) -> Self {
        Value::Text(text)
    }
}
impl From<i64> for Value {
    fn from(number: i64) -> Self {
        Value::Int(number)
    }
}
impl From<bool> for Value {
    fn from(flag: bool) -> Self {
        Value::Bool(flag)
    }
}

/// The binary (tagged) form used by bincode.
#[derive(Serialize, Deserialize)]
enum TaggedValue {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
    List(Vec<Value>),
    Map(BTreeMap<String, Value>),
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            match self {
                Value::Null => serializer.serialize_unit(),
                Value::Bool(flag) => serializer.serialize_bool(*flag),
                Value::Int(number) => serializer.serialize_i64(*number),
                Value::Float(number) => serializer.serialize_f64(*number),
                Value::Text(text) => serializer.serialize_str(text),
                Value::List(items) => items.serialize(serializer),
                Value::Map(entries) => entries.serialize(serializer),
            }
        } else {
            // The clones are shallow for scalars; lists and maps are rare in hot paths.
            let tagged = match self {
                Value::Null => TaggedValue::Null,
                Value::Bool(flag) => TaggedValue::Bool(*flag),
                Value::Int(number) => TaggedValue::Int(*number),
                Value::Float(number) => TaggedValue::Float(*number),
                Value::Text(text) => TaggedValue::Text(text.clone()),
                Value::List(items) => TaggedValue::List(items.clone()),
                Value::Map(entries) => TaggedValue::Map(entries.clone()),
            };
            tagged.serialize(serializer)
        }
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if deserializer.is_human_readable() {
            deserializer.deserialize_any(NaturalValueVisitor)
        } else {
            Ok(match TaggedValue::deserialize(deserializer)? {
                TaggedValue::Null => Value::Null,
                TaggedValue::Bool(flag) => Value::Bool(flag),
                TaggedValue::Int(number) => Value::Int(number),
                TaggedValue::Float(number) => Value::Float(number),
                TaggedValue::Text(text) => Value::Text(text),
                TaggedValue::List(items) => Value::List(items),
                TaggedValue::Map(entries) => Value::Map(entries),
            })
        }
    }
}

struct NaturalValueVisitor;

impl<'de> Visitor<'de> for NaturalValueVisitor {
    type Value = Value;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("any JSON-like value")
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        Value::deserialize(deserializer)
    }
    fn visit_bool<E>(self, flag: bool) -> Result<Value, E> {
        Ok(Value::Bool(flag))
    }
    fn visit_i64<E>(self, number: i64) -> Result<Value, E> {
        Ok(Value::Int(number))
    }
    fn visit_u64<E>(self, number: u64) -> Result<Value, E> {
        Ok(i64::try_from(number)
            .map(Value::Int)
            .unwrap_or(Value::Float(number as f64)))
    }
    fn visit_f64<E>(self, number: f64) -> Result<Value, E> {
        Ok(Value::Float(number))
    }
    fn visit_str<E: de::Error>(self, text: &str) -> Result<Value, E> {
        Ok(Value::Text(text.to_owned()))
    }
    fn visit_string<E: de::Error>(self, text: String) -> Result<Value, E> {
        Ok(Value::Text(text))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut sequence: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = sequence.next_element()? {
            items.push(item);
        }
        Ok(Value::List(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut entries = BTreeMap::new();
        while let Some((key, value)) = map.next_entry::<String, Value>()? {
            entries.insert(key, value);
        }
        Ok(Value::Map(entries))
    }
}
