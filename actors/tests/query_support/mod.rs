//! Shared fixtures of the query-engine tests: the test schemas, a minimal JSON reader standing
//! in for the HTTP layer's parser (this crate stays free of serde_json), and a real registry
//! with table actors inside an actix system.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;

use tabula_actors::query::PageLimits;
use tabula_actors::registry::{Registry, TableHandle};
use tabula_actors::table::{CreateRecord, DeleteRecords, UpdateRecord};
use tabula_storage::{FieldDef, FieldType, Permissions, Store, TableSchema, Value, ViewDef};

pub const LIMITS: PageLimits = PageLimits {
    default_page_size: 10,
    max_page_size: 1000,
};

fn field(id: u32, name: &str, field_type: FieldType) -> FieldDef {
    FieldDef::new(id, name, field_type)
}

fn options(mut field: FieldDef, options: &[&str]) -> FieldDef {
    field.options = Some(options.iter().map(|option| option.to_string()).collect());
    field
}

fn indexed(mut field: FieldDef) -> FieldDef {
    field.indexed = true;
    field
}

pub fn view(id: &str) -> ViewDef {
    ViewDef {
        id: id.to_owned(),
        name: format!("{id} view"),
        is_default: false,
        filter: None,
        sort: None,
        fields: None,
        group_by: None,
        permissions: None,
    }
}

/// `items`: every field type the engine types differently, some indexed.
pub fn items_schema() -> TableSchema {
    let mut code = field(5, "code", FieldType::SingleLineText);
    code.unique = true;
    let mut owner = field(11, "owner", FieldType::Relationship);
    owner.related_table = Some("people".into());
    owner.indexed = true;
    TableSchema {
        id: 1,
        name: "items".into(),
        fields: vec![
            field(1, "title", FieldType::SingleLineText),
            indexed(options(
                field(2, "status", FieldType::SingleSelect),
                &["a", "b", "c", "d"],
            )),
            indexed(field(3, "priority", FieldType::Integer)),
            field(4, "score", FieldType::Decimal),
            code,
            indexed(options(
                field(6, "tags", FieldType::MultiSelect),
                &["x", "y", "z"],
            )),
            indexed(field(7, "due", FieldType::Date)),
            field(8, "done", FieldType::Checkbox),
            field(9, "notes", FieldType::LongText),
            field(10, "at", FieldType::Datetime),
            owner,
            field(12, "email", FieldType::Email),
            field(13, "data", FieldType::Json),
        ],
        permissions: Permissions::default(),
        views: Vec::new(),
        search: None,
        webhooks: Vec::new(),
    }
}

/// `people`: the target of `items.owner`; `team` points at `teams` (for two-level expands).
pub fn people_schema() -> TableSchema {
    let mut team = field(2, "team", FieldType::Relationship);
    team.related_table = Some("teams".into());
    TableSchema {
        id: 2,
        name: "people".into(),
        fields: vec![field(1, "name", FieldType::SingleLineText), team],
        permissions: Permissions::default(),
        views: Vec::new(),
        search: None,
        webhooks: Vec::new(),
    }
}

pub fn teams_schema() -> TableSchema {
    TableSchema {
        id: 3,
        name: "teams".into(),
        fields: vec![field(1, "label", FieldType::SingleLineText)],
        permissions: Permissions::default(),
        views: Vec::new(),
        search: None,
        webhooks: Vec::new(),
    }
}

// ---------------------------------------------------------------------------------------------
// A minimal JSON reader (objects, arrays, strings with simple escapes, numbers, literals).

pub fn parse_json(text: &str) -> Result<Value, String> {
    let characters: Vec<char> = text.chars().collect();
    let mut at = 0;
    let value = json_value(&characters, &mut at)?;
    skip_space(&characters, &mut at);
    if at != characters.len() {
        return Err(format!("trailing characters at {at}"));
    }
    Ok(value)
}

fn skip_space(characters: &[char], at: &mut usize) {
    while characters.get(*at).is_some_and(|c| c.is_whitespace()) {
        *at += 1;
    }
}

fn json_value(characters: &[char], at: &mut usize) -> Result<Value, String> {
    skip_space(characters, at);
    match characters.get(*at) {
        Some('{') => {
            *at += 1;
            let mut entries = BTreeMap::new();
            skip_space(characters, at);
            if characters.get(*at) == Some(&'}') {
                *at += 1;
                return Ok(Value::Map(entries));
            }
            loop {
                skip_space(characters, at);
                let Value::Text(key) = json_value(characters, at)? else {
                    return Err("object key must be a string".into());
                };
                skip_space(characters, at);
                if characters.get(*at) != Some(&':') {
                    return Err(format!("expected ':' at {at}"));
                }
                *at += 1;
                let value = json_value(characters, at)?;
                entries.insert(key, value);
                skip_space(characters, at);
                match characters.get(*at) {
                    Some(',') => *at += 1,
                    Some('}') => {
                        *at += 1;
                        return Ok(Value::Map(entries));
                    }
                    _ => return Err(format!("expected ',' or '}}' at {at}")),
                }
            }
        }
        Some('[') => {
            *at += 1;
            let mut items = Vec::new();
            skip_space(characters, at);
            if characters.get(*at) == Some(&']') {
                *at += 1;
                return Ok(Value::List(items));
            }
            loop {
                items.push(json_value(characters, at)?);
                skip_space(characters, at);
                match characters.get(*at) {
                    Some(',') => *at += 1,
                    Some(']') => {
                        *at += 1;
                        return Ok(Value::List(items));
                    }
                    _ => return Err(format!("expected ',' or ']' at {at}")),
                }
            }
        }
        Some('"') => {
            *at += 1;
            let mut text = String::new();
            loop {
                match characters.get(*at) {
                    None => return Err("unterminated string".into()),
                    Some('"') => {
                        *at += 1;
                        return Ok(Value::Text(text));
                    }
                    Some('\\') => {
                        *at += 1;
                        match characters.get(*at) {
                            Some('n') => text.push('\n'),
                            Some(other) => text.push(*other),
                            None => return Err("unterminated string".into()),
                        }
                        *at += 1;
                    }
                    Some(other) => {
                        text.push(*other);
                        *at += 1;
                    }
                }
            }
        }
        Some(c) if c.is_ascii_digit() || *c == '-' => {
            let start = *at;
            while characters
                .get(*at)
                .is_some_and(|c| c.is_ascii_digit() || matches!(c, '-' | '+' | '.' | 'e' | 'E'))
            {
                *at += 1;
            }
            let number: String = characters[start..*at].iter().collect();
            number
                .parse::<i64>()
                .map(Value::Int)
                .or_else(|_| number.parse::<f64>().map(Value::Float))
                .map_err(|error| error.to_string())
        }
        Some(_) => {
            for (word, value) in [
                ("true", Value::Bool(true)),
                ("false", Value::Bool(false)),
                ("null", Value::Null),
            ] {
                let end = *at + word.len();
                if characters.len() >= end
                    && characters[*at..end].iter().collect::<String>() == word
                {
                    *at = end;
                    return Ok(value);
                }
            }
            Err(format!("unexpected character at {at}"))
        }
        None => Err("unexpected end".into()),
    }
}

// ---------------------------------------------------------------------------------------------
// A real registry with table actors.

/// Query pairs from `name=value` strings (already decoded).
pub fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect()
}

/// Runs `body` inside an actix system with a fresh store and the given tables installed.
pub fn with_registry<T>(
    schemas: Vec<TableSchema>,
    body: impl AsyncFnOnce(Arc<Registry>) -> T,
) -> T {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let system = actix::System::new();
    system.block_on(async move {
        let store = Store::open(directory.path()).expect("the store opens");
        let registry = Registry::new(store, 1);
        for schema in schemas {
            registry.install(schema).expect("the table installs");
        }
        let result = body(Arc::clone(&registry)).await;
        registry.stop_actors();
        drop(directory);
        result
    })
}

pub fn table(registry: &Registry, name: &str) -> TableHandle {
    registry.resolve(name).expect("the table is installed")
}

/// Creates a record; `None` when validation or a unique value refuses it.
pub async fn create(handle: &TableHandle, fields: Vec<(&str, Value)>) -> Option<u64> {
    let message = CreateRecord {
        fields: fields
            .into_iter()
            .map(|(name, value)| (name.to_owned(), value))
            .collect(),
        user_id: Some("u1".into()),
    };
    match handle.addr.send(message).await.expect("the actor answers") {
        Ok(record) => Some(record.id),
        Err(_) => None,
    }
}

pub async fn update(handle: &TableHandle, record_id: u64, fields: Vec<(&str, Value)>) -> bool {
    let message = UpdateRecord {
        record_id,
        fields: fields
            .into_iter()
            .map(|(name, value)| (name.to_owned(), value))
            .collect(),
        expected_updated_at: None,
        user_id: Some("u2".into()),
    };
    handle
        .addr
        .send(message)
        .await
        .expect("the actor answers")
        .is_ok()
}

pub async fn delete(handle: &TableHandle, record_id: u64, permanent: bool) -> bool {
    let message = DeleteRecords {
        record_ids: vec![record_id],
        permanent,
        skip_trashed: false,
        cascaded: Vec::new(),
        cleared: Vec::new(),
        user_id: Some("u2".into()),
    };
    handle
        .addr
        .send(message)
        .await
        .expect("the actor answers")
        .is_ok()
}

pub fn text(value: &str) -> Value {
    Value::Text(value.to_owned())
}

pub fn list_of(values: &[&str]) -> Value {
    Value::List(values.iter().map(|value| text(value)).collect())
}
