//! What a new schema version does to one table's stored data: which changes need the records
//! rewritten (added fields backfilled with their default, retyped fields converted, removed
//! fields erased when destructive) and which need the indexes rebuilt (newly indexed, unique or
//! searched fields), and the one write batch that does it. The table actor runs it inside its
//! mailbox (`ApplySchema`), so it is serialised with the table's writes; the schema publisher runs
//! the same code as a dry run to report values that cannot convert before anything changes.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use tabula_storage::{
    keys, FieldDef, FieldType, StoredRecord, TableSchema, TableStore, Value, WriteBatch,
};

use crate::error::{DomainError, DomainResult};
use crate::query::search::{search_fields, SEARCH};
use crate::validate::{default_value, normalise_value};

/// How many offending record ids a failure lists at most.
pub const MAX_LISTED_RECORDS: usize = 20;

/// How to apply a schema to a table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MigrationOptions {
    /// Erase the stored values of fields the new schema removes.
    pub allow_destructive: bool,
    /// Treat every field as new and rebuild every index: for a table whose tree already holds
    /// data the registry did not serve (a restored or cloned table).
    pub rebuild: bool,
}

/// A stored value (or a set of them) that the new schema cannot take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationFailure {
    pub field_id: u32,
    pub field_name: String,
    /// `type` (a value does not convert) or `unique` (two live records share a value).
    pub option: &'static str,
    pub message: String,
}

/// What applying the schema writes.
pub struct Migration {
    /// `None` when nothing stored changes (renames, permissions, views …).
    pub batch: Option<WriteBatch>,
    /// How many records were rewritten.
    pub rewritten: u64,
}

/// What a schema change means for the table's data.
#[derive(Debug, Default)]
struct Plan {
    /// Fields whose every stored value is converted (added, retyped, or every field of a
    /// rebuild), and whether the field is new (then records without a value get its default,
    /// and a new autonumber numbers them).
    converted: Vec<(FieldDef, bool)>,
    /// Field ids whose values are erased.
    erased: BTreeSet<u32>,
    rebuild_indexes: bool,
}

impl Plan {
    fn touches_records(&self) -> bool {
        !self.converted.is_empty() || !self.erased.is_empty()
    }

    fn is_empty(&self) -> bool {
        !self.touches_records() && !self.rebuild_indexes
    }
}

fn plan(old: &TableSchema, new: &TableSchema, options: MigrationOptions) -> Plan {
    let mut plan = Plan::default();
    for field in &new.fields {
        if options.rebuild {
            // The stored values were written under some schema with these ids: convert what
            // differs, fill nothing in.
            plan.converted.push((field.clone(), false));
            continue;
        }
        match old.field_by_id(field.id) {
            Some(before) if before.field_type == field.field_type => {}
            Some(_) => plan.converted.push((field.clone(), false)),
            None => plan.converted.push((field.clone(), true)),
        }
    }
    if options.allow_destructive {
        plan.erased = old
            .fields
            .iter()
            .filter(|field| new.field_by_id(field.id).is_none())
            .map(|field| field.id)
            .collect();
    }
    let index_shape = |schema: &TableSchema| -> Vec<(u32, bool)> {
        schema
            .indexed_fields()
            .map(|field| (field.id, field.unique))
            .collect()
    };
    let search_shape = |schema: &TableSchema| -> Vec<u32> {
        search_fields(schema).iter().map(|field| field.id).collect()
    };
    let indexed_or_searched: BTreeSet<u32> = index_shape(new)
        .into_iter()
        .map(|(id, _)| id)
        .chain(search_shape(new))
        .collect();
    plan.rebuild_indexes = options.rebuild
        || index_shape(old) != index_shape(new)
        || search_shape(old) != search_shape(new)
        || plan
            .converted
            .iter()
            .any(|(field, _)| indexed_or_searched.contains(&field.id));
    plan
}

/// The value a stored value becomes under a field's new type, or why it cannot.
pub fn convert_value(field: &FieldDef, value: &Value) -> Result<Value, String> {
    if let Ok(normalised) = normalise_value(field, value) {
        return Ok(normalised);
    }
    let candidate = match (&field.field_type, value) {
        (FieldType::Checkbox, Value::Text(text)) => match text.trim().to_lowercase().as_str() {
            "true" | "yes" | "1" | "on" => Value::Bool(true),
            "false" | "no" | "0" | "off" | "" => Value::Bool(false),
            _ => value.clone(),
        },
        (FieldType::Checkbox, Value::Int(number)) if *number == 0 || *number == 1 => {
            Value::Bool(*number == 1)
        }
        (FieldType::MultiSelect, Value::Text(text)) => Value::List(
            text.split(',')
                .map(str::trim)
                .filter(|item| !item.is_empty())
                .map(|item| Value::Text(item.to_owned()))
                .collect(),
        ),
        (FieldType::SingleSelect, Value::List(items)) if items.len() == 1 => items[0].clone(),
        (target, Value::Text(text)) if target.is_numeric() => {
            let trimmed = text.trim();
            if trimmed.is_empty() {
                Value::Null
            } else if let Ok(integer) = trimmed.parse::<i64>() {
                Value::Int(integer)
            } else if let Ok(number) = trimmed.parse::<f64>() {
                Value::Float(number)
            } else {
                value.clone()
            }
        }
        (target, Value::Bool(flag)) if target.is_numeric() => Value::Int(i64::from(*flag)),
        (FieldType::Json, _) => value.clone(),
        (_, Value::Int(number)) => Value::Text(number.to_string()),
        (_, Value::Float(number)) => Value::Text(number.to_string()),
        (_, Value::Bool(flag)) => Value::Text(flag.to_string()),
        (_, Value::List(items)) => Value::Text(
            items
                .iter()
                .map(|item| match item {
                    Value::Text(text) => text.clone(),
                    Value::Int(number) => number.to_string(),
                    Value::Float(number) => number.to_string(),
                    other => format!("{other:?}"),
                })
                .collect::<Vec<_>>()
                .join(", "),
        ),
        _ => value.clone(),
    };
    normalise_value(field, &candidate)
}

/// Applies `new` to the table whose stored data matches `old`. With `build_batch` false it only
/// checks (the publisher's dry run) and returns no batch.
pub fn migrate(
    store: &TableStore,
    old: &TableSchema,
    new: &TableSchema,
    options: MigrationOptions,
    build_batch: bool,
) -> DomainResult<Result<Migration, Vec<MigrationFailure>>> {
    let plan = plan(old, new, options);
    if plan.is_empty() {
        return Ok(Ok(Migration {
            batch: None,
            rewritten: 0,
        }));
    }
    let mut batch = WriteBatch::new();
    if plan.rebuild_indexes && build_batch {
        for prefix in [keys::INDEX, keys::UNIQUE, SEARCH] {
            for entry in store.tree().scan_prefix([prefix]) {
                let (key, _) = entry.map_err(tabula_storage::StorageError::from)?;
                if key.as_ref() != crate::query::counts::GENERATION_KEY {
                    batch.remove(key);
                }
            }
        }
    }
    let mut failures: BTreeMap<u32, (String, Vec<u64>, String)> = BTreeMap::new();
    let mut unique_holders: HashMap<Vec<u8>, u64> = HashMap::new();
    let mut unique_clashes: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
    let mut autonumbers: BTreeMap<u32, u64> = BTreeMap::new();
    let mut rewritten = 0u64;
    for record in store.records(None, false) {
        let record = record?;
        let mut updated = record.clone();
        for field_id in &plan.erased {
            updated.fields.remove(field_id);
        }
        for (field, added) in &plan.converted {
            let stored = record.value(field.id);
            if field.field_type == FieldType::Autonumber {
                if stored.is_null() && *added {
                    let next = autonumbers.entry(field.id).or_insert(0);
                    *next += 1;
                    updated.fields.insert(
                        field.id,
                        Value::Int(i64::try_from(*next).unwrap_or(i64::MAX)),
                    );
                }
                continue;
            }
            if field.field_type.is_readonly() {
                continue;
            }
            if stored.is_null() {
                if *added {
                    if let Some(default) = default_value(field) {
                        updated.fields.insert(field.id, default);
                    }
                }
                continue;
            }
            match convert_value(field, stored) {
                Ok(Value::Null) => {
                    updated.fields.remove(&field.id);
                }
                Ok(converted) => {
                    updated.fields.insert(field.id, converted);
                }
                Err(message) => {
                    let entry = failures
                        .entry(field.id)
                        .or_insert_with(|| (field.name.clone(), Vec::new(), message));
                    entry.1.push(record.id);
                }
            }
        }
        if !updated.is_deleted() {
            for field in new.fields.iter().filter(|field| field.unique) {
                let value = updated.value(field.id);
                if value.is_empty_value() {
                    continue;
                }
                let key = keys::unique_key(field.id, value);
                if let Some(holder) = unique_holders.get(&key) {
                    let clash = unique_clashes.entry(field.id).or_default();
                    if !clash.contains(holder) {
                        clash.push(*holder);
                    }
                    clash.push(record.id);
                } else {
                    unique_holders.insert(key, record.id);
                }
            }
        }
        if !build_batch {
            continue;
        }
        let changed = updated != record;
        if changed {
            batch.put_record(&updated)?;
            rewritten += 1;
        }
        if plan.rebuild_indexes {
            write_all_index_entries(&mut batch, new, &updated);
        } else if changed {
            crate::table::index_entries(&mut batch, new, Some(&record), Some(&updated));
        }
    }
    let mut problems: Vec<MigrationFailure> = failures
        .into_iter()
        .map(|(field_id, (field_name, ids, message))| MigrationFailure {
            field_id,
            message: format!(
                "table '{}', field '{field_name}': {} cannot be converted to {} ({message})",
                new.name,
                describe_records(&ids),
                new.field_by_id(field_id)
                    .map(|field| field.field_type.name().to_owned())
                    .unwrap_or_default(),
            ),
            field_name,
            option: "type",
        })
        .collect();
    for (field_id, ids) in unique_clashes {
        let field_name = new
            .field_by_id(field_id)
            .map(|field| field.name.clone())
            .unwrap_or_default();
        problems.push(MigrationFailure {
            field_id,
            message: format!(
                "table '{}', field '{field_name}': cannot be unique, {} share a value",
                new.name,
                describe_records(&ids)
            ),
            field_name,
            option: "unique",
        });
    }
    if !problems.is_empty() {
        return Ok(Err(problems));
    }
    for (field_id, last) in autonumbers {
        batch.put_u64(&keys::autonumber_key(field_id), last);
    }
    crate::query::counts::bump_generation(&mut batch);
    Ok(Ok(Migration {
        batch: build_batch.then_some(batch),
        rewritten,
    }))
}

/// Every index entry (secondary, unique, full-text) of one record under `schema`.
fn write_all_index_entries(batch: &mut WriteBatch, schema: &TableSchema, record: &StoredRecord) {
    crate::table::index_entries(batch, schema, None, Some(record));
}

/// "records 3, 7 and 9" (at most [`MAX_LISTED_RECORDS`] ids, then "and N more").
fn describe_records(ids: &[u64]) -> String {
    let shown: Vec<String> = ids
        .iter()
        .take(MAX_LISTED_RECORDS)
        .map(u64::to_string)
        .collect();
    let noun = if ids.len() == 1 { "record" } else { "records" };
    let more = ids.len().saturating_sub(MAX_LISTED_RECORDS);
    if more > 0 {
        format!("{noun} {} and {more} more", shown.join(", "))
    } else {
        format!("{noun} {}", shown.join(", "))
    }
}

/// The validation error for failures found inside the table actor (a write raced the
/// publisher's dry run): one item per field, named by field.
pub fn failures_error(failures: Vec<MigrationFailure>) -> DomainError {
    DomainError::BadRequest {
        message: "The schema change cannot be applied to the stored records".into(),
        errors: failures
            .into_iter()
            .map(|failure| crate::FieldError::new(failure.field_name, failure.message))
            .collect(),
    }
}
