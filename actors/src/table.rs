//! The table actor: the only writer of one table's tree. Each message is validated, turned into
//! one atomic write batch (record, indexes, counters together), applied, and answered once the
//! group commit has made it durable; the actor moves on to the next message meanwhile.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Weak};

use actix::{Actor, Context, Handler, Message, ResponseFuture, Supervised};
use tabula_storage::{
    keys, DurableTicket, FieldType, StorageError, StoredRecord, TableSchema, Value, WriteBatch,
};

use crate::clock;
use crate::error::{DomainError, DomainResult, FieldError};
use crate::registry::{Registry, TableShared};
use crate::validate::{validate_write, WriteMode};

/// Creates one record from client input (`name → value` pairs).
#[derive(Message)]
#[rtype(result = "DomainResult<StoredRecord>")]
pub struct CreateRecord {
    pub fields: Vec<(String, Value)>,
    pub user_id: Option<String>,
}

/// Partially updates a live record. `expected_updated_at` enables optimistic concurrency.
#[derive(Message)]
#[rtype(result = "DomainResult<StoredRecord>")]
pub struct UpdateRecord {
    pub record_id: u64,
    pub fields: Vec<(String, Value)>,
    pub expected_updated_at: Option<i64>,
    pub user_id: Option<String>,
}

/// Moves a live record to the trash, or removes a record for good when `permanent`.
#[derive(Message)]
#[rtype(result = "DomainResult<()>")]
pub struct DeleteRecord {
    pub record_id: u64,
    pub permanent: bool,
    pub user_id: Option<String>,
}

/// Makes the next write fail as a broken store would: the write is refused, the actor stops and
/// its supervisor restarts it. Used by the supervision tests and fault drills.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ArmStorageFault;

/// The actor that owns every write to one table.
pub struct TableActor {
    shared: Arc<TableShared>,
    registry: Weak<Registry>,
    last_record_id: u64,
    autonumbers: HashMap<u32, u64>,
    fault_armed: bool,
}

impl TableActor {
    pub fn new(shared: Arc<TableShared>, registry: Weak<Registry>) -> Self {
        let mut actor = TableActor {
            shared,
            registry,
            last_record_id: 0,
            autonumbers: HashMap::new(),
            fault_armed: false,
        };
        if let Err(error) = actor.reload() {
            // The first write will hit the same store and stop the actor, which retries.
            tracing::error!(table = actor.shared.id, %error, "cannot load table state");
        }
        actor
    }

    /// Reloads the in-memory counters from sled (start and restart).
    fn reload(&mut self) -> Result<(), StorageError> {
        let store = &self.shared.store;
        self.last_record_id = store.get_u64(keys::META_SEQUENCE)?.unwrap_or(0);
        self.autonumbers.clear();
        for field in &self.shared.schema().fields {
            if field.field_type == FieldType::Autonumber {
                let last = store.get_u64(&keys::autonumber_key(field.id))?.unwrap_or(0);
                self.autonumbers.insert(field.id, last);
            }
        }
        self.shared.reload_live_count()?;
        Ok(())
    }

    /// Applies a batch; a storage failure stops the actor (the supervisor restarts it and the
    /// restart reloads from sled) and the caller gets a 503.
    fn commit(
        &mut self,
        batch: WriteBatch,
        context: &mut Context<Self>,
    ) -> DomainResult<DurableTicket> {
        let outcome = if std::mem::take(&mut self.fault_armed) {
            Err(StorageError::Flush("injected storage fault".into()))
        } else {
            self.shared.store.apply(batch)
        };
        match outcome {
            Ok(()) => {
                self.shared.touch(clock::now_ms());
                Ok(self.shared.store.durable())
            }
            Err(error) => {
                tracing::error!(table = self.shared.id, %error, "write failed; restarting table actor");
                use actix::ActorContext;
                context.stop();
                Err(DomainError::Unavailable(
                    "The table is temporarily unavailable; retry the request".into(),
                ))
            }
        }
    }

    /// Checks relationship targets and unique values of `candidate` (the record as it would be
    /// stored) against the store.
    fn check_references_and_uniques(
        &self,
        schema: &TableSchema,
        candidate: &StoredRecord,
        changed: &BTreeMap<u32, Value>,
    ) -> DomainResult<()> {
        let mut errors = Vec::new();
        for field in &schema.fields {
            let Some(value) = changed.get(&field.id) else {
                continue;
            };
            if value.is_empty_value() {
                continue;
            }
            if field.field_type == FieldType::Relationship {
                if let Some(error) = self.missing_target(field.related_table.as_deref(), value) {
                    errors.push(FieldError::new(&field.name, error));
                }
            }
        }
        if !errors.is_empty() {
            return Err(DomainError::Validation(errors));
        }
        for field in schema.fields.iter().filter(|field| field.unique) {
            let value = candidate.value(field.id);
            if value.is_empty_value() || !changed.contains_key(&field.id) {
                continue;
            }
            if let Some(owner) = self.shared.store.unique_owner(field.id, value)? {
                if owner != candidate.id {
                    return Err(DomainError::Conflict {
                        message: format!(
                            "A record with this value for field '{}' already exists",
                            field.name
                        ),
                        field: Some(field.name.clone()),
                    });
                }
            }
        }
        Ok(())
    }

    /// `Some(message)` when a relationship value points at no live record.
    fn missing_target(&self, related_table: Option<&str>, value: &Value) -> Option<String> {
        let registry = self.registry.upgrade()?;
        let related_table = related_table?;
        let target = registry.resolve(related_table)?;
        let found = match value {
            Value::Text(text) => text
                .parse::<u64>()
                .ok()
                .and_then(|id| target.shared.store.get_record(id).ok().flatten())
                .is_some_and(|record| !record.is_deleted()),
            _ => false,
        };
        (!found).then(|| {
            format!(
                "Related record '{}' does not exist in table '{related_table}'",
                display_value(value)
            )
        })
    }
}

fn display_value(value: &Value) -> String {
    match value {
        Value::Text(text) => text.clone(),
        Value::Int(number) => number.to_string(),
        other => format!("{other:?}"),
    }
}

/// Adds or removes the index entries of `record` to/from a batch.
fn write_index_entries(
    batch: &mut WriteBatch,
    schema: &TableSchema,
    old: Option<&StoredRecord>,
    new: Option<&StoredRecord>,
) {
    for field in schema.indexed_fields() {
        let old_value = old.map(|record| record.value(field.id));
        let new_value = new.map(|record| record.value(field.id));
        if old_value != new_value {
            if let (Some(record), Some(value)) = (old, old_value) {
                batch.remove(keys::index_entry_key(field.id, value, record.id));
            }
            if let (Some(record), Some(value)) = (new, new_value) {
                batch.put(keys::index_entry_key(field.id, value, record.id), Vec::new());
            }
        }
        if field.unique {
            // Unique entries exist only for live records with a non-empty value.
            let (old_unique, new_unique) = (live_unique_value(old, field.id), live_unique_value(new, field.id));
            if old_unique != new_unique {
                if let Some(value) = old_unique {
                    batch.remove(keys::unique_key(field.id, value));
                }
                if let (Some(value), Some(record)) = (new_unique, new) {
                    batch.put(keys::unique_key(field.id, value), record.id.to_be_bytes().to_vec());
                }
            }
        }
    }
}

/// The value a record holds in a unique index: only live records with a non-empty value.
fn live_unique_value(record: Option<&StoredRecord>, field_id: u32) -> Option<&Value> {
    record
        .filter(|record| !record.is_deleted())
        .map(|record| record.value(field_id))
        .filter(|value| !value.is_empty_value())
}

/// The reply future: waits for the covering flush, then hands back `value`.
fn after_durable<T: 'static>(
    ticket: DurableTicket,
    value: T,
) -> ResponseFuture<DomainResult<T>> {
    Box::pin(async move {
        ticket.wait().await.map_err(|error| {
            tracing::error!(%error, "a write could not be made durable");
            DomainError::Unavailable("The write could not be made durable".into())
        })?;
        Ok(value)
    })
}

fn ready<T: 'static>(result: DomainResult<T>) -> ResponseFuture<DomainResult<T>> {
    Box::pin(async move { result })
}

impl Actor for TableActor {
    type Context = Context<Self>;
}

impl Supervised for TableActor {
    fn restarting(&mut self, _context: &mut Context<Self>) {
        self.shared.count_restart();
        self.fault_armed = false;
        if let Err(error) = self.reload() {
            tracing::error!(table = self.shared.id, %error, "reload after restart failed");
        }
        tracing::warn!(table = self.shared.id, "table actor restarted");
    }
}

impl Handler<CreateRecord> for TableActor {
    type Result = ResponseFuture<DomainResult<StoredRecord>>;

    fn handle(&mut self, message: CreateRecord, context: &mut Context<Self>) -> Self::Result {
        let schema = self.shared.schema();
        let mut values = match validate_write(&schema, &message.fields, WriteMode::Create) {
            Ok(values) => values,
            Err(errors) => return ready(Err(DomainError::Validation(errors))),
        };
        let now = clock::now_ms();
        let record_id = self.last_record_id + 1;
        for field in &schema.fields {
            match field.field_type {
                FieldType::User
                    if field.autofill.as_deref() == Some("current")
                        && !values.contains_key(&field.id) =>
                {
                    if let Some(user) = &message.user_id {
                        values.insert(field.id, Value::Text(user.clone()));
                    }
                }
                _ => {}
            }
        }
        let mut autonumbers = Vec::new();
        for field in schema
            .fields
            .iter()
            .filter(|field| field.field_type == FieldType::Autonumber)
        {
            let next = self.autonumbers.get(&field.id).copied().unwrap_or(0) + 1;
            values.insert(field.id, Value::Int(i64::try_from(next).unwrap_or(i64::MAX)));
            autonumbers.push((field.id, next));
        }
        let record = StoredRecord {
            id: record_id,
            fields: values,
            created_at: now,
            updated_at: now,
            created_by: message.user_id.clone(),
            updated_by: message.user_id,
            deleted_at: None,
            deleted_by: None,
        };
        if let Err(error) = self.check_references_and_uniques(&schema, &record, &record.fields) {
            return ready(Err(error));
        }
        let mut batch = WriteBatch::new();
        if let Err(error) = batch.put_record(&record) {
            return ready(Err(error.into()));
        }
        write_index_entries(&mut batch, &schema, None, Some(&record));
        batch.put_u64(keys::META_SEQUENCE, record_id);
        let live_count = self.shared.live_count() + 1;
        batch.put_u64(keys::META_LIVE_COUNT, live_count);
        for (field_id, next) in &autonumbers {
            batch.put_u64(&keys::autonumber_key(*field_id), *next);
        }
        match self.commit(batch, context) {
            Ok(ticket) => {
                self.last_record_id = record_id;
                self.autonumbers.extend(autonumbers);
                self.shared.set_live_count(live_count);
                after_durable(ticket, record)
            }
            Err(error) => ready(Err(error)),
        }
    }
}

impl Handler<UpdateRecord> for TableActor {
    type Result = ResponseFuture<DomainResult<StoredRecord>>;

    fn handle(&mut self, message: UpdateRecord, context: &mut Context<Self>) -> Self::Result {
        let schema = self.shared.schema();
        let existing = match self.shared.store.get_record(message.record_id) {
            Ok(Some(record)) if !record.is_deleted() => record,
            Ok(_) => return ready(Err(record_not_found(message.record_id))),
            Err(error) => return ready(Err(error.into())),
        };
        if let Some(expected) = message.expected_updated_at {
            if expected != existing.updated_at {
                return ready(Err(DomainError::Conflict {
                    message: "The record was modified after you last read it. Reload it and try again.".into(),
                    field: None,
                }));
            }
        }
        let changes = match validate_write(&schema, &message.fields, WriteMode::Update) {
            Ok(values) => values,
            Err(errors) => return ready(Err(DomainError::Validation(errors))),
        };
        let mut updated = existing.clone();
        for (field_id, value) in &changes {
            if value.is_null() {
                updated.fields.remove(field_id);
            } else {
                updated.fields.insert(*field_id, value.clone());
            }
        }
        // Strictly increasing, so optimistic concurrency can tell two updates apart.
        updated.updated_at = clock::now_ms().max(existing.updated_at + 1);
        updated.updated_by = message.user_id;
        if let Err(error) = self.check_references_and_uniques(&schema, &updated, &changes) {
            return ready(Err(error));
        }
        let mut batch = WriteBatch::new();
        if let Err(error) = batch.put_record(&updated) {
            return ready(Err(error.into()));
        }
        write_index_entries(&mut batch, &schema, Some(&existing), Some(&updated));
        match self.commit(batch, context) {
            Ok(ticket) => after_durable(ticket, updated),
            Err(error) => ready(Err(error)),
        }
    }
}

impl Handler<DeleteRecord> for TableActor {
    type Result = ResponseFuture<DomainResult<()>>;

    fn handle(&mut self, message: DeleteRecord, context: &mut Context<Self>) -> Self::Result {
        let schema = self.shared.schema();
        let existing = match self.shared.store.get_record(message.record_id) {
            Ok(Some(record)) => record,
            Ok(None) => return ready(Err(record_not_found(message.record_id))),
            Err(error) => return ready(Err(error.into())),
        };
        if existing.is_deleted() && !message.permanent {
            return ready(Err(record_not_found(message.record_id)));
        }
        let mut batch = WriteBatch::new();
        let was_live = !existing.is_deleted();
        if message.permanent {
            batch.remove(keys::record_key(existing.id).to_vec());
            batch.remove(keys::trash_key(existing.id).to_vec());
            write_index_entries(&mut batch, &schema, Some(&existing), None);
        } else {
            let mut trashed = existing.clone();
            trashed.deleted_at = Some(clock::now_ms());
            trashed.deleted_by = message.user_id;
            if let Err(error) = batch.put_record(&trashed) {
                return ready(Err(error.into()));
            }
            batch.put(keys::trash_key(existing.id).to_vec(), Vec::new());
            write_index_entries(&mut batch, &schema, Some(&existing), Some(&trashed));
        }
        let live_count = if was_live {
            self.shared.live_count().saturating_sub(1)
        } else {
            self.shared.live_count()
        };
        batch.put_u64(keys::META_LIVE_COUNT, live_count);
        match self.commit(batch, context) {
            Ok(ticket) => {
                self.shared.set_live_count(live_count);
                after_durable(ticket, ())
            }
            Err(error) => ready(Err(error)),
        }
    }
}

impl Handler<ArmStorageFault> for TableActor {
    type Result = ();

    fn handle(&mut self, _message: ArmStorageFault, _context: &mut Context<Self>) {
        self.fault_armed = true;
    }
}

/// The 404 for a record id that is not there (or not visible).
pub fn record_not_found(record_id: u64) -> DomainError {
    DomainError::NotFound(format!("Record {record_id} not found"))
}
