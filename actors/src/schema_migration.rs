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
use crate::query::search::{search_fields, SearchChanges, SEARCH};
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
    // A rebuild removes every full-text key first, then writes the blocks from nothing.
    let mut search = if plan.rebuild_indexes {
        SearchChanges::rebuilding()
    } else {
        SearchChanges::new()
    };
    if plan.rebuild_indexes && build_batch {
        for prefix in [keys::INDEX, keys::UNIQUE, SEARCH] {
            for entry in store.tree().scan_prefix([prefix]) {
                let (key, _) = entry.map_err(tabula_storage::StorageError::from)?;
                batch.remove(key);
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
            search.record(new, None, Some(&updated));
        } else if changed {
            crate::table::index_entries(&mut batch, new, Some(&record), Some(&updated));
            search.record(new, Some(&record), Some(&updated));
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
    if build_batch {
        search.write(store.tree(), &mut batch)?;
    }
    Ok(Ok(Migration {
        batch: build_batch.then_some(batch),
        rewritten,
    }))
}

/// Every secondary and unique index entry of one record under `schema` (full-text ones: the
/// caller's [`SearchChanges`]).
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

// ---------------------------------------------------------------------------------------------
// Online migration: a change that only adds fields is applied in bounded chunks while the old
// schema stays live (see the table actor's `MigrateChunk`).

/// How many records one chunk of an online migration rewrites at most.
pub const CHUNK_RECORDS: usize = 2_000;
/// How long one chunk may read and rewrite records before it stops (the table's writes wait for
/// the chunk in the mailbox, so this bounds their extra latency).
pub const CHUNK_BUDGET: std::time::Duration = std::time::Duration::from_millis(20);

/// The pause between two chunks. The next chunk is a timer, not a message in the mailbox: an
/// actor that always has a message keeps its thread (actix handles up to 256 messages per poll),
/// so the replies of the writes that ran in between (futures on the same thread, woken by the
/// group-commit flusher) would wait for the whole migration. The pause hands the thread back.
pub const CHUNK_PAUSE: std::time::Duration = std::time::Duration::from_millis(1);

/// What an online migration writes. Only changes whose stored effect old-schema readers cannot
/// see qualify: added fields (their values live under field ids the old schema does not have,
/// which every reader ignores, as for a removed field) and the secondary index entries of added
/// indexed fields (consulted only for fields the schema indexes). Retypes, erasures, index or
/// unique changes of existing fields, full-text changes and rebuilds change what the old schema
/// reads, so they run as one batch (`migrate`).
#[derive(Debug, Clone)]
pub struct OnlinePlan {
    /// Added fields that give existing records a value (a default, or an autonumber).
    filled: Vec<FieldDef>,
    /// The new schema cut down to the added indexed fields, without full-text search: the index
    /// entries the migration adds (`None`: none).
    index_schema: Option<TableSchema>,
}

/// The online plan of going from `old` to `new`, or `None` when the change must run as one batch
/// (or has nothing to do with stored data at all).
pub fn online_plan(
    old: &TableSchema,
    new: &TableSchema,
    options: MigrationOptions,
) -> Option<OnlinePlan> {
    let plan = plan(old, new, options);
    if options.rebuild || !plan.erased.is_empty() || plan.converted.is_empty() {
        return None;
    }
    if plan.converted.iter().any(|(_, added)| !added) {
        return None;
    }
    let gets_values = |field: &FieldDef| {
        field.field_type == FieldType::Autonumber
            || (!field.field_type.is_readonly() && default_value(field).is_some())
    };
    let filled: Vec<FieldDef> = plan
        .converted
        .iter()
        .map(|(field, _)| field)
        .filter(|field| gets_values(field))
        .cloned()
        .collect();
    // Full-text documents must not change: an added field may join them only without values.
    let old_searched: Vec<u32> = search_fields(old).iter().map(|field| field.id).collect();
    let new_searched: Vec<u32> = search_fields(new)
        .iter()
        .filter(|field| old.field_by_id(field.id).is_some())
        .map(|field| field.id)
        .collect();
    let filled_searched = search_fields(new)
        .iter()
        .any(|field| filled.iter().any(|filled| filled.id == field.id));
    if old_searched != new_searched || filled_searched {
        return None;
    }
    // Existing fields keep their index shape; added indexed fields are not unique with values.
    let existing_shape = |schema: &TableSchema| -> Vec<(u32, bool)> {
        schema
            .indexed_fields()
            .filter(|field| old.field_by_id(field.id).is_some())
            .map(|field| (field.id, field.unique))
            .collect()
    };
    if existing_shape(old) != existing_shape(new) {
        return None;
    }
    let added_indexed: Vec<FieldDef> = new
        .indexed_fields()
        .filter(|field| old.field_by_id(field.id).is_none())
        .filter(|field| filled.iter().any(|filled| filled.id == field.id))
        .cloned()
        .collect();
    if added_indexed.iter().any(|field| field.unique) {
        return None;
    }
    let index_schema = (!added_indexed.is_empty()).then(|| {
        let mut schema = new.clone();
        schema.fields = added_indexed;
        schema.search = Some(Vec::new());
        schema
    });
    Some(OnlinePlan {
        filled,
        index_schema,
    })
}

impl OnlinePlan {
    /// Whether the change leaves every stored record as it is (added fields without a value):
    /// the schema can be swapped at once.
    pub fn writes_nothing(&self) -> bool {
        self.filled.is_empty()
    }

    /// `record` with the added fields it lacks filled in (autonumbers counted in `autonumbers`).
    fn fill(&self, record: &StoredRecord, autonumbers: &mut BTreeMap<u32, u64>) -> StoredRecord {
        let mut updated = record.clone();
        for field in &self.filled {
            if !record.value(field.id).is_null() {
                continue;
            }
            if field.field_type == FieldType::Autonumber {
                let next = autonumbers.entry(field.id).or_insert(0);
                *next += 1;
                updated.fields.insert(
                    field.id,
                    Value::Int(i64::try_from(*next).unwrap_or(i64::MAX)),
                );
            } else if let Some(default) = default_value(field) {
                updated.fields.insert(field.id, default);
            }
        }
        updated
    }

    /// Migrates one stored record into `batch`: answers whether it was rewritten.
    pub fn migrate_record(
        &self,
        batch: &mut WriteBatch,
        record: &StoredRecord,
        autonumbers: &mut BTreeMap<u32, u64>,
    ) -> DomainResult<bool> {
        let updated = self.fill(record, autonumbers);
        if updated == *record {
            return Ok(false);
        }
        batch.put_record(&updated)?;
        if let Some(schema) = &self.index_schema {
            crate::table::index_entries(batch, schema, Some(record), Some(&updated));
        }
        Ok(true)
    }

    /// Catches up a record a write on the old schema changes after a chunk migrated it: `stored`
    /// is the record as the chunk left it (before the write), `after` as the write leaves it
    /// (`None`: removed for good). An old-schema write keeps the values of fields it does not
    /// know, so only the added fields' index entries can need fixing (a removed record's).
    pub fn catch_up(
        &self,
        batch: &mut WriteBatch,
        stored: Option<&StoredRecord>,
        after: Option<&StoredRecord>,
    ) -> DomainResult<()> {
        // A value an old-schema write dropped is filled in again (never an autonumber: those
        // are numbered in id order by the chunks only).
        let after = match after {
            Some(record) => {
                let mut numbered = BTreeMap::new();
                let filled = self.fill(record, &mut numbered);
                if filled != *record && numbered.is_empty() {
                    batch.put_record(&filled)?;
                    Some(filled)
                } else {
                    Some(record.clone())
                }
            }
            None => None,
        };
        if let Some(schema) = &self.index_schema {
            crate::table::index_entries(batch, schema, stored, after.as_ref());
        }
        Ok(())
    }

    /// Takes the added fields' values (and index entries) out of `record` again: the undo of a
    /// failed online migration. Answers whether it changed anything.
    pub fn undo_record(&self, batch: &mut WriteBatch, record: &StoredRecord) -> DomainResult<bool> {
        let mut stripped = record.clone();
        for field in &self.filled {
            stripped.fields.remove(&field.id);
        }
        if stripped == *record {
            return Ok(false);
        }
        batch.put_record(&stripped)?;
        if let Some(schema) = &self.index_schema {
            crate::table::index_entries(batch, schema, Some(record), Some(&stripped));
        }
        Ok(true)
    }
}
