//! The table actor: the only writer of one table's tree. Each message is validated, turned into
//! one atomic write batch (records, indexes, history, activity, counters together — see
//! `changeset.rs`), applied, and answered once the group commit has made it durable; the actor
//! moves on to the next message meanwhile. Changes that span tables (relationship `onDelete`,
//! cascade restore) are planned by `lifecycle.rs`, which sends each table its own share.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Weak};

use actix::{
    Actor, ActorContext, AsyncContext, Context, Handler, Message, ResponseFuture, Supervised,
};
use tabula_storage::journal::Comment;
use tabula_storage::{
    keys, DurableTicket, FieldDef, FieldType, JournalGroup, OnDelete, RecordRef, StorageError,
    StoredRecord, TableSchema, Value, WriteBatch,
};

use crate::changes::StagedChanges;
use crate::changeset::Changeset;
use crate::clock;
use crate::error::{DomainError, DomainResult, FieldError};
use crate::registry::{Registry, TableShared};
use crate::validate::{validate_write, WriteMode};

/// The longest comment, in characters (SPEC §4.4).
pub const MAX_COMMENT_CHARS: usize = 10_000;

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

/// Creates every record of a batch in one atomic commit. Any invalid item fails the batch with
/// every item's errors named `records[i].field`; a unique clash (with stored records or inside
/// the batch) is a 409; either way nothing is written.
#[derive(Message)]
#[rtype(result = "DomainResult<Vec<StoredRecord>>")]
pub struct CreateRecords {
    pub records: Vec<Vec<(String, Value)>>,
    pub user_id: Option<String>,
}

/// One item of [`UpdateRecords`].
pub struct RecordPatch {
    pub record_id: u64,
    pub fields: Vec<(String, Value)>,
}

/// Partially updates every record of a batch in one atomic commit. A missing (or trashed) id is
/// a 404, an invalid item a 400 naming `records[i].field`, a unique clash a 409; nothing is
/// written in any of these cases. The same id twice is applied in order.
#[derive(Message)]
#[rtype(result = "DomainResult<Vec<StoredRecord>>")]
pub struct UpdateRecords {
    pub patches: Vec<RecordPatch>,
    pub user_id: Option<String>,
}

/// What an upsert did.
#[derive(Debug, Clone)]
pub struct UpsertOutcome {
    /// Every item's record after the commit, in item order (empty unless `return_records`
    /// was asked for).
    pub records: Vec<StoredRecord>,
    pub created: u64,
    pub updated: u64,
}

/// Creates or updates records in one atomic commit: an item whose values of `merge_fields`
/// equal a live record's (the lowest id when several do, including records created earlier in
/// the same batch) partially updates it; any other item creates a record.
#[derive(Message)]
#[rtype(result = "DomainResult<UpsertOutcome>")]
pub struct UpsertRecords {
    pub records: Vec<Vec<(String, Value)>>,
    pub merge_fields: Vec<String>,
    pub user_id: Option<String>,
    /// Whether the answer carries the records (`returnRecords`); without them the actor does
    /// not copy them.
    pub return_records: bool,
}

/// A `set-null` effect: clear `field_id` of `record_id` if it still points at `target`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClearReference {
    pub record_id: u64,
    pub field_id: u32,
    pub target: u64,
}

/// What a deletion did in one table.
#[derive(Debug, Clone, Default)]
pub struct DeleteOutcome {
    /// How many of the named records were deleted (trashed ones skipped by a soft delete are not
    /// counted, nor are cascaded records).
    pub deleted: u64,
}

/// This table's share of a deletion planned by `lifecycle::delete_records`, in one atomic
/// commit: the named records are trashed (or removed for good when `permanent`), the cascaded
/// ones trashed with the parent that took them, and `set-null` references cleared. Live records
/// of this table that still point at a deleted record through a `restrict` self-relationship
/// make it a 409 with nothing written.
#[derive(Message)]
#[rtype(result = "DomainResult<DeleteOutcome>")]
pub struct DeleteRecords {
    pub record_ids: Vec<u64>,
    pub permanent: bool,
    /// A named record already in the trash (soft delete): skipped and not counted when `true`
    /// (batch delete), a 404 when `false` (single delete).
    pub skip_trashed: bool,
    /// Records a `cascade` takes with their parent; skipped if no longer live.
    pub cascaded: Vec<(u64, RecordRef)>,
    pub cleared: Vec<ClearReference>,
    pub user_id: Option<String>,
}

/// This table's share of a restore planned by `lifecycle::restore_records`, in one atomic
/// commit: every named record must be in the trash (missing → 404, live → 400 "Record is not
/// deleted"); the cascaded ones are restored if a cascade from that parent still holds them.
/// A unique value taken meanwhile by a live record is a 409 and nothing is written.
#[derive(Message)]
#[rtype(result = "DomainResult<Vec<StoredRecord>>")]
pub struct RestoreRecords {
    pub record_ids: Vec<u64>,
    pub cascaded: Vec<(u64, RecordRef)>,
    pub user_id: Option<String>,
}

/// Who asks for a change to a comment. Only the author or an admin may edit or delete one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub user_id: String,
    pub is_admin: bool,
}

/// Adds a comment to a live record.
#[derive(Message)]
#[rtype(result = "DomainResult<Comment>")]
pub struct CreateComment {
    pub record_id: u64,
    pub content: String,
    pub user_id: Option<String>,
}

/// Replaces a comment's content. `caller` is `None` while authentication is not wired in: an
/// anonymous caller is then allowed, as every caller is.
#[derive(Message)]
#[rtype(result = "DomainResult<Comment>")]
pub struct UpdateComment {
    pub record_id: u64,
    pub comment_id: u64,
    pub content: String,
    pub caller: Option<Caller>,
}

/// Removes a comment (same rule on `caller` as [`UpdateComment`]).
#[derive(Message)]
#[rtype(result = "DomainResult<()>")]
pub struct DeleteComment {
    pub record_id: u64,
    pub comment_id: u64,
    pub caller: Option<Caller>,
}

/// Removes journal entries (activity and history alike) older than `older_than` (ms), whole
/// commits at a time and about `max_entries` at most (one commit larger than that goes alone).
/// Answers how many entries were removed.
#[derive(Message)]
#[rtype(result = "DomainResult<u64>")]
pub struct PurgeActivity {
    pub older_than: i64,
    pub max_entries: usize,
}

/// Makes the next write fail as a broken store would: the write is refused, the actor stops and
/// its supervisor restarts it. Used by the supervision tests and fault drills.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ArmStorageFault;

/// Makes `schema` the table's schema, serialised with its writes: every write already in the
/// mailbox finished on the old schema, every later one runs on the new. A change that only adds
/// fields migrates **online**: the actor rewrites the records in bounded chunks
/// ([`MigrateChunk`], each one atomic batch, sent to itself so that queued writes run in
/// between) while the old schema stays live, catches up the records those writes change, and
/// swaps the schema in the step that migrates the last records. Any other change (retypes,
/// erasures, index or search changes of existing fields, rebuilds) migrates the stored values in
/// one atomic batch first (see `schema_migration.rs`); if any cannot convert, nothing changes and
/// the answer lists them.
#[derive(Message)]
#[rtype(result = "DomainResult<u64>")]
pub struct ApplySchema {
    pub schema: TableSchema,
    pub options: crate::schema_migration::MigrationOptions,
}

/// One chunk of an online migration (sent by the table actor to itself).
#[derive(Message)]
#[rtype(result = "()")]
pub struct MigrateChunk;

/// An online migration under way: the old schema is live, records up to `cursor` are migrated.
struct OnlineMigration {
    schema: TableSchema,
    plan: crate::schema_migration::OnlinePlan,
    /// The last record id migrated (records are migrated in id order).
    cursor: Option<u64>,
    autonumbers: BTreeMap<u32, u64>,
    rewritten: u64,
    chunks: u64,
    started: std::time::Instant,
    reply: tokio::sync::oneshot::Sender<DomainResult<(DurableTicket, u64)>>,
}

/// Copies the table's records (live and trashed, without their history), trash marks and
/// counters into `target`, an unserved table's tree (cloning a table with its data). Answers how
/// many records were copied, once durable.
#[derive(Message)]
#[rtype(result = "DomainResult<u64>")]
pub struct CopyRecordsInto {
    pub target: tabula_storage::TableStore,
}

/// The actor that owns every write to one table.
pub struct TableActor {
    pub(crate) shared: Arc<TableShared>,
    registry: Weak<Registry>,
    last_record_id: u64,
    autonumbers: HashMap<u32, u64>,
    /// Entries the table's journal has received, ever (the next commit's group continues from
    /// it).
    journal_written: u64,
    fault_armed: bool,
    /// An online schema migration under way (see [`ApplySchema`]).
    migration: Option<OnlineMigration>,
    /// Single creates and updates staged but not yet applied (see [`PendingCommit`]).
    pending: Option<PendingCommit>,
}

/// Single creates and updates that arrive together share one sled batch. sled pays a fixed
/// price for every atomic batch — it writes out its log buffer before and after the batch's
/// marker, handing each write to an IO thread — so 64 clients creating one record each cost
/// far more as 64 batches than as one. The actor stages each such write on top of the
/// pending batch (reading records and unique claims through it, so each write sees the ones
/// before it), adopts its counters at once, and applies the whole batch when its mailbox has
/// no more messages ready ([`ApplyPending`]), or before handling any other kind of message.
/// Nothing is answered before the batch is applied and durable, so no client can see a write
/// that is not stored; a failure to apply fails every write in the batch (503) and restarts
/// the actor, which reloads its counters from sled.
struct PendingCommit {
    batch: WriteBatch,
    /// The journal entries of the staged writes: one journal group, written when the batch is
    /// applied.
    entries: Vec<tabula_storage::journal::ChangeEntry>,
    /// The full-text changes of the staged writes, written (one rewrite per posting block) when
    /// the batch is applied.
    search: crate::query::search::SearchChanges,
    /// The table's live count once the batch is applied.
    live_count: u64,
    /// One per staged write: told when the batch is applied (a ticket for its durability).
    waiters: Vec<tokio::sync::oneshot::Sender<DomainResult<DurableTicket>>>,
}

impl PendingCommit {
    /// An empty pending batch of a table with `live_count` live records.
    fn new(live_count: u64) -> Self {
        PendingCommit {
            batch: WriteBatch::new(),
            entries: Vec::new(),
            search: Default::default(),
            live_count,
            waiters: Vec::new(),
        }
    }
}

/// Fails the writes of a pending batch that will never be applied (the actor restarts).
fn abandon(waiters: Vec<tokio::sync::oneshot::Sender<DomainResult<DurableTicket>>>) {
    for waiter in waiters {
        let _ = waiter.send(Err(unavailable()));
    }
}

/// Adds what a batch's writes gather until it is applied: their journal entries as one group
/// (`journal_written`: the table's entries ever written, these included) and the rewrites of
/// the posting blocks their words touch.
fn seal_batch(
    batch: &mut WriteBatch,
    journal_written: u64,
    entries: &[tabula_storage::journal::ChangeEntry],
    search: crate::query::search::SearchChanges,
    store: &tabula_storage::TableStore,
) -> tabula_storage::StorageResult<()> {
    batch.put_journal_group(journal_written, entries)?;
    search.write(store.tree(), batch)
}

/// The most writes one pending batch gathers before it is applied.
const MAX_PENDING_WRITES: usize = 256;

/// Applies the pending batch (sent by the table actor to itself after staging the first write
/// of a new batch; handled once the messages already in its mailbox are).
#[derive(Message)]
#[rtype(result = "()")]
struct ApplyPending;

/// A write admitted into the table's write queue (`TableHandle::send_write`): handled exactly
/// as `message`; the message's share of the place is given back once the actor has handled it.
pub struct Admitted<M> {
    pub message: M,
    pub slot: crate::registry::WriteSlot,
}

impl<M: Message> Message for Admitted<M> {
    type Result = M::Result;
}

/// `Handler<Admitted<M>>` for each write message: the handler of `M`, then the slot released.
macro_rules! admitted_writes {
    ($($message:ty),* $(,)?) => {
        $(
            impl Handler<Admitted<$message>> for TableActor {
                type Result = <TableActor as Handler<$message>>::Result;

                fn handle(
                    &mut self,
                    admitted: Admitted<$message>,
                    context: &mut Context<Self>,
                ) -> Self::Result {
                    let Admitted { message, slot } = admitted;
                    let answer = <TableActor as Handler<$message>>::handle(self, message, context);
                    drop(slot);
                    answer
                }
            }
        )*
    };
}

admitted_writes!(
    CreateRecord,
    UpdateRecord,
    CreateRecords,
    UpdateRecords,
    UpsertRecords,
    CreateComment,
    UpdateComment,
    DeleteComment,
);

/// Record ids and autonumbers handed out by a change not yet committed.
pub(crate) struct Sequences {
    last_record_id: u64,
    autonumbers: HashMap<u32, u64>,
}

impl TableActor {
    pub fn new(shared: Arc<TableShared>, registry: Weak<Registry>) -> Self {
        let mut actor = TableActor {
            shared,
            registry,
            last_record_id: 0,
            autonumbers: HashMap::new(),
            journal_written: 0,
            fault_armed: false,
            migration: None,
            pending: None,
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
        self.journal_written = store.journal_written()?;
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
                self.shared.count_commit();
                Ok(self.shared.store.durable())
            }
            Err(error) => {
                tracing::error!(table = self.shared.id, %error, "write failed; restarting table actor");
                context.stop();
                Err(unavailable())
            }
        }
    }

    /// Finishes a changeset (history, activity, counters), adds the sequences it used, applies
    /// it and, once applied, adopts its counters. Its change events are staged on the change feed
    /// first, to be published once the commit is durable.
    fn commit_changeset(
        &mut self,
        changeset: Changeset<'_>,
        sequences: Option<Sequences>,
        context: &mut Context<Self>,
    ) -> DomainResult<(DurableTicket, Option<StagedChanges>)> {
        let (mut prepared, staged) =
            self.prepare(changeset, sequences.as_ref(), self.shared.live_count())?;
        seal_batch(
            &mut prepared.batch,
            prepared.journal_written,
            &prepared.entries,
            std::mem::take(&mut prepared.search),
            &self.shared.store,
        )?;
        let ticket = self.commit(prepared.batch, context)?;
        self.shared.set_live_count(prepared.live_count);
        self.adopt(prepared.journal_written, sequences);
        Ok((ticket, staged))
    }

    /// Adopts the counters of a prepared commit.
    fn adopt(&mut self, journal_written: u64, sequences: Option<Sequences>) {
        self.journal_written = journal_written;
        if let Some(sequences) = sequences {
            self.last_record_id = sequences.last_record_id;
            self.autonumbers = sequences.autonumbers;
        }
    }

    /// Finishes a changeset (history, activity, counters) on top of `live_count` live records,
    /// adds the sequences it used and stages its change events.
    fn prepare(
        &self,
        changeset: Changeset<'_>,
        sequences: Option<&Sequences>,
        live_count: u64,
    ) -> DomainResult<(crate::changeset::Prepared, Option<StagedChanges>)> {
        let (table_name, at) = (changeset.schema().name.clone(), changeset.at());
        let mut prepared = changeset.finish(self.journal_written, live_count)?;
        let staged = self.registry.upgrade().and_then(|registry| {
            let changes = std::mem::take(&mut prepared.changes);
            registry
                .changes()
                .stage(self.shared.id, &table_name, at, changes)
        });
        if let Some(sequences) = sequences {
            if sequences.last_record_id != self.last_record_id {
                prepared
                    .batch
                    .put_u64(keys::META_SEQUENCE, sequences.last_record_id);
            }
            for (field_id, last) in &sequences.autonumbers {
                if self.autonumbers.get(field_id) != Some(last) {
                    prepared
                        .batch
                        .put_u64(&keys::autonumber_key(*field_id), *last);
                }
            }
        }
        if let Some(migration) = &self.migration {
            // Records a chunk already migrated are caught up in the same batch as the write.
            if let Some(cursor) = migration.cursor {
                for (record_id, after) in &prepared.records {
                    if *record_id <= cursor {
                        let stored = self.shared.store.get_record(*record_id)?;
                        migration.plan.catch_up(
                            &mut prepared.batch,
                            stored.as_ref(),
                            after.as_ref(),
                        )?;
                    }
                }
            }
        }
        Ok((prepared, staged))
    }

    /// Applies the pending batch, if any, and tells its writers (see [`PendingCommit`]).
    pub(crate) fn settle(&mut self, context: &mut Context<Self>) {
        let Some(mut pending) = self.pending.take() else {
            return;
        };
        let sealed = seal_batch(
            &mut pending.batch,
            self.journal_written,
            &pending.entries,
            std::mem::take(&mut pending.search),
            &self.shared.store,
        );
        if let Err(error) = sealed {
            tracing::error!(table = self.shared.id, %error, "finishing the batch failed; restarting table actor");
            context.stop();
            abandon(pending.waiters);
            return;
        }
        match self.commit(pending.batch, context) {
            Ok(_) => {
                self.shared.set_live_count(pending.live_count);
                for waiter in pending.waiters {
                    // A writer that went away does not need its answer.
                    let _ = waiter.send(Ok(self.shared.store.durable()));
                }
            }
            // `commit` has logged the cause and stopped the actor.
            Err(_) => abandon(pending.waiters),
        }
    }

    /// Stages one write on the pending batch (see [`PendingCommit`]) and answers `value` once
    /// the batch is applied and durable, or the staging error (the write's own changes taken
    /// out of the batch again). `stage` returns the sequences it used (creates) and the value.
    fn stage_pending<T: 'static>(
        &mut self,
        user_id: Option<String>,
        context: &mut Context<Self>,
        stage: impl FnOnce(&Self, &mut Changeset<'_>) -> DomainResult<(Option<Sequences>, T)>,
    ) -> ResponseFuture<DomainResult<T>> {
        if self.migration.is_some() {
            // Writes during an online migration are caught up one by one (`prepare`).
            self.settle(context);
            let (shared, schema) = (Arc::clone(&self.shared), self.shared.schema());
            let mut changeset = Changeset::new(&shared, &schema, user_id, clock::now_ms());
            let staged =
                stage(self, &mut changeset).map(|(sequences, value)| (changeset, sequences, value));
            return reply(self, staged, context);
        }
        let (shared, schema) = (Arc::clone(&self.shared), self.shared.schema());
        let mut pending = self
            .pending
            .take()
            .unwrap_or_else(|| PendingCommit::new(self.shared.live_count()));
        pending.batch.savepoint();
        let batch = std::mem::take(&mut pending.batch);
        let mut changeset = Changeset::on_batch(&shared, &schema, user_id, clock::now_ms(), batch);
        let (sequences, value) = match stage(self, &mut changeset) {
            Ok(staged) if !changeset.is_empty() => staged,
            unchanged_or_failed => {
                // Nothing of this write stays in the batch; the writes before it do.
                pending.batch = changeset.into_batch();
                match &unchanged_or_failed {
                    Ok(_) => pending.batch.release(),
                    Err(_) => pending.batch.rollback(),
                }
                self.keep_pending(pending);
                return ready(unchanged_or_failed.map(|(_, value)| value));
            }
        };
        let (mut prepared, staged) = match self.prepare(
            changeset,
            sequences.as_ref(),
            pending.live_count,
        ) {
            Ok(prepared) => prepared,
            Err(error) => {
                // The batch went with the changeset: the writes staged before this one are
                // lost, so they fail too and the actor starts again from what sled holds.
                abandon(pending.waiters);
                tracing::error!(table = self.shared.id, %error, "staging failed; restarting table actor");
                context.stop();
                return ready(Err(error));
            }
        };
        prepared.batch.release();
        self.adopt(prepared.journal_written, sequences);
        pending.batch = prepared.batch;
        pending.live_count = prepared.live_count;
        pending.entries.append(&mut prepared.entries);
        pending.search.merge(prepared.search);
        let (sender, receiver) = tokio::sync::oneshot::channel();
        pending.waiters.push(sender);
        let writes = pending.waiters.len();
        self.keep_pending(pending);
        if writes == 1 {
            context.notify(ApplyPending);
        } else if writes >= MAX_PENDING_WRITES {
            // A mailbox that never runs dry must not hold writes back indefinitely.
            self.settle(context);
        }
        Box::pin(async move {
            let ticket = receiver.await.map_err(|_| unavailable())??;
            answer_when_durable(ticket, value, staged).await
        })
    }

    /// Puts the pending batch back (unless there is nothing in it).
    fn keep_pending(&mut self, pending: PendingCommit) {
        if !pending.batch.is_empty() || !pending.waiters.is_empty() {
            self.pending = Some(pending);
        }
    }

    pub(crate) fn sequences(&self) -> Sequences {
        Sequences {
            last_record_id: self.last_record_id,
            autonumbers: self.autonumbers.clone(),
        }
    }

    /// A new record from validated values: the next id, autofilled users, autonumbers.
    fn new_record(
        &self,
        schema: &TableSchema,
        mut values: BTreeMap<u32, Value>,
        user_id: Option<&String>,
        at: i64,
        sequences: &mut Sequences,
    ) -> StoredRecord {
        sequences.last_record_id += 1;
        for field in &schema.fields {
            match field.field_type {
                FieldType::User
                    if field.autofill.as_deref() == Some("current")
                        && !values.contains_key(&field.id) =>
                {
                    if let Some(user) = user_id {
                        values.insert(field.id, Value::Text(user.clone()));
                    }
                }
                FieldType::Autonumber => {
                    let next = sequences.autonumbers.get(&field.id).copied().unwrap_or(0) + 1;
                    sequences.autonumbers.insert(field.id, next);
                    values.insert(
                        field.id,
                        Value::Int(i64::try_from(next).unwrap_or(i64::MAX)),
                    );
                }
                _ => {}
            }
        }
        StoredRecord {
            id: sequences.last_record_id,
            fields: values,
            created_at: at,
            updated_at: at,
            created_by: user_id.cloned(),
            updated_by: user_id.cloned(),
            deleted_at: None,
            deleted_by: None,
            cascade_parent: None,
            history: Vec::new(),
        }
    }

    /// One error per relationship value of `values` that points at no live record. A target in
    /// this table is looked up through the changeset, so a batch may point at its own records.
    fn relationship_errors(
        &self,
        schema: &TableSchema,
        changeset: &Changeset<'_>,
        values: &BTreeMap<u32, Value>,
        item: Option<usize>,
    ) -> DomainResult<Vec<FieldError>> {
        let mut errors = Vec::new();
        for field in &schema.fields {
            if field.field_type != FieldType::Relationship {
                continue;
            }
            let Some(value) = values.get(&field.id) else {
                continue;
            };
            if value.is_empty_value() {
                continue;
            }
            if let Some(message) = self.missing_target(field, value, changeset)? {
                errors.push(FieldError::new(item_field(item, &field.name), message));
            }
        }
        Ok(errors)
    }

    /// `Some(message)` when a relationship value points at no live record.
    fn missing_target(
        &self,
        field: &FieldDef,
        value: &Value,
        changeset: &Changeset<'_>,
    ) -> DomainResult<Option<String>> {
        let Some(registry) = self.registry.upgrade() else {
            return Ok(None);
        };
        let Some(related_table) = field.related_table.as_deref() else {
            return Ok(None);
        };
        let Some(target) = registry.resolve(related_table) else {
            return Ok(None);
        };
        let target_id = value.as_str().and_then(|text| text.parse::<u64>().ok());
        let found = match target_id {
            Some(id) if target.shared.id == self.shared.id => changeset.record(id)?,
            Some(id) => target.shared.store.get_record(id)?,
            None => None,
        }
        .is_some_and(|record| !record.is_deleted());
        Ok((!found).then(|| missing_target_message(value)))
    }

    /// Validates and stages the creation of every item; `prefixed` names errors `records[i].x`.
    pub(crate) fn stage_creates(
        &self,
        schema: &TableSchema,
        changeset: &mut Changeset<'_>,
        sequences: &mut Sequences,
        items: Vec<Vec<(String, Value)>>,
        prefixed: bool,
    ) -> DomainResult<Vec<StoredRecord>> {
        let mut errors = Vec::new();
        let mut validated = Vec::with_capacity(items.len());
        for (index, input) in items.iter().enumerate() {
            let item = prefixed.then_some(index);
            match validate_write(schema, input, WriteMode::Create) {
                Ok(values) => validated.push(values),
                Err(item_errors) => errors.extend(name_items(item, item_errors)),
            }
        }
        if !errors.is_empty() {
            return Err(DomainError::Validation(errors));
        }
        let user_id = changeset.user_id().cloned();
        let at = changeset.at();
        let mut created = Vec::with_capacity(validated.len());
        let mut conflict = None;
        for (index, values) in validated.into_iter().enumerate() {
            let item = prefixed.then_some(index);
            errors.extend(self.relationship_errors(schema, changeset, &values, item)?);
            let record = self.new_record(schema, values, user_id.as_ref(), at, sequences);
            if let Err(clash) = changeset.create(record.clone())? {
                conflict.get_or_insert(clash.into_error(item_name(item).as_deref()));
            }
            created.push(record);
        }
        if !errors.is_empty() {
            return Err(DomainError::Validation(errors));
        }
        match conflict {
            Some(conflict) => Err(conflict),
            None => Ok(created),
        }
    }

    /// Validates and stages partial updates of live records.
    pub(crate) fn stage_updates(
        &self,
        schema: &TableSchema,
        changeset: &mut Changeset<'_>,
        patches: Vec<RecordPatch>,
        expected_updated_at: Option<i64>,
        prefixed: bool,
    ) -> DomainResult<Vec<StoredRecord>> {
        for patch in &patches {
            let record = changeset
                .record(patch.record_id)?
                .filter(|record| !record.is_deleted())
                .ok_or_else(|| record_not_found(patch.record_id))?;
            if expected_updated_at.is_some_and(|expected| expected != record.updated_at) {
                return Err(stale_update());
            }
        }
        let mut errors = Vec::new();
        let mut validated = Vec::with_capacity(patches.len());
        for (index, patch) in patches.iter().enumerate() {
            match validate_write(schema, &patch.fields, WriteMode::Update) {
                Ok(values) => validated.push((patch.record_id, values)),
                Err(item_errors) => {
                    errors.extend(name_items(prefixed.then_some(index), item_errors))
                }
            }
        }
        if !errors.is_empty() {
            return Err(DomainError::Validation(errors));
        }
        let mut updated_records = Vec::with_capacity(validated.len());
        let mut conflict = None;
        for (index, (record_id, changes)) in validated.into_iter().enumerate() {
            let item = prefixed.then_some(index);
            let existing = changeset
                .record(record_id)?
                .ok_or_else(|| record_not_found(record_id))?;
            errors.extend(self.relationship_errors(schema, changeset, &changes, item)?);
            let updated = apply_changes(&existing, &changes, changeset);
            if let Err(clash) = changeset.update(&existing, updated.clone(), &changes)? {
                conflict.get_or_insert(clash.into_error(item_name(item).as_deref()));
            }
            updated_records.push(updated);
        }
        if !errors.is_empty() {
            return Err(DomainError::Validation(errors));
        }
        match conflict {
            Some(conflict) => Err(conflict),
            None => Ok(updated_records),
        }
    }

    /// Stages an upsert: match on the merge fields, update or create.
    fn stage_upserts(
        &self,
        schema: &TableSchema,
        changeset: &mut Changeset<'_>,
        sequences: &mut Sequences,
        items: Vec<Vec<(String, Value)>>,
        merge_field_names: &[String],
        return_records: bool,
    ) -> DomainResult<UpsertOutcome> {
        let merge_fields = resolve_merge_fields(schema, merge_field_names)?;
        let mut matcher = MergeMatcher::new(schema, &merge_fields);
        let mut errors = Vec::new();
        let mut conflict = None;
        let mut outcome = UpsertOutcome {
            records: Vec::with_capacity(if return_records { items.len() } else { 0 }),
            created: 0,
            updated: 0,
        };
        let user_id = changeset.user_id().cloned();
        let at = changeset.at();
        for (index, input) in items.iter().enumerate() {
            let item = Some(index);
            let given = match validate_write(schema, input, WriteMode::Update) {
                Ok(values) => values,
                Err(item_errors) => {
                    errors.extend(name_items(item, item_errors));
                    continue;
                }
            };
            let mut merge_values = Vec::with_capacity(merge_fields.len());
            for field in &merge_fields {
                match given.get(&field.id).filter(|value| !value.is_empty_value()) {
                    Some(value) => merge_values.push(value.clone()),
                    None => errors.push(FieldError::new(
                        item_field(item, &field.name),
                        format!("A value for merge field '{}' is required", field.name),
                    )),
                }
            }
            if merge_values.len() != merge_fields.len() {
                continue;
            }
            let matched = matcher.find(changeset, &merge_values)?;
            let record = match matched {
                Some(existing) => {
                    errors.extend(self.relationship_errors(schema, changeset, &given, item)?);
                    let updated = apply_changes(&existing, &given, changeset);
                    let kept = return_records.then(|| updated.clone());
                    if let Err(clash) = changeset.update(&existing, updated, &given)? {
                        conflict.get_or_insert(clash.into_error(item_name(item).as_deref()));
                    }
                    outcome.updated += 1;
                    kept
                }
                None => {
                    let values = match validate_write(schema, input, WriteMode::Create) {
                        Ok(values) => values,
                        Err(item_errors) => {
                            errors.extend(name_items(item, item_errors));
                            continue;
                        }
                    };
                    errors.extend(self.relationship_errors(schema, changeset, &values, item)?);
                    let record = self.new_record(schema, values, user_id.as_ref(), at, sequences);
                    let (record_id, kept) = (record.id, return_records.then(|| record.clone()));
                    if let Err(clash) = changeset.create(record)? {
                        conflict.get_or_insert(clash.into_error(item_name(item).as_deref()));
                    }
                    matcher.remember(&merge_values, record_id);
                    outcome.created += 1;
                    kept
                }
            };
            outcome.records.extend(record);
        }
        if !errors.is_empty() {
            return Err(DomainError::Validation(errors));
        }
        match conflict {
            Some(conflict) => Err(conflict),
            None => Ok(outcome),
        }
    }

    /// A 409 if a live record of this table still points at one of `removed` through a
    /// `restrict` relationship to this same table (checked inside the commit, so it is exact).
    pub(crate) fn check_self_restrict(
        &self,
        schema: &TableSchema,
        changeset: &Changeset<'_>,
        removed: &BTreeSet<u64>,
    ) -> DomainResult<()> {
        for field in self_relationships(schema, &self.shared.id.to_string()) {
            if field.on_delete.unwrap_or_default() != OnDelete::Restrict {
                continue;
            }
            for parent in removed {
                let value = Value::Text(parent.to_string());
                for child in self.shared.store.ids_with_value(field.id, &value)? {
                    if removed.contains(&child) {
                        continue;
                    }
                    let points_here = changeset.record(child)?.is_some_and(|record| {
                        !record.is_deleted() && record.value(field.id) == &value
                    });
                    if points_here {
                        return Err(restrict_conflict(
                            parent,
                            &schema.name,
                            child,
                            &schema.name,
                            &field.name,
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// The comment a change names, checking that the record is live and `caller` may change it.
    fn comment_for_change(
        &self,
        record_id: u64,
        comment_id: u64,
        caller: Option<&Caller>,
    ) -> DomainResult<Comment> {
        self.live_record(record_id)?;
        let comment = self
            .shared
            .store
            .comment(record_id, comment_id)?
            .ok_or_else(|| comment_not_found(comment_id))?;
        if let Some(caller) = caller {
            let is_author = comment.user_id.as_deref() == Some(caller.user_id.as_str());
            if !is_author && !caller.is_admin {
                return Err(DomainError::Forbidden(
                    "Only the author of a comment or an admin may change it".into(),
                ));
            }
        }
        Ok(comment)
    }

    fn live_record(&self, record_id: u64) -> DomainResult<StoredRecord> {
        match self.shared.store.get_record(record_id)? {
            Some(record) if !record.is_deleted() => Ok(record),
            _ => Err(record_not_found(record_id)),
        }
    }

    /// Applies a batch that is not a record change (comments, purges) and answers with `value`
    /// once durable.
    fn commit_batch<T: 'static>(
        &mut self,
        batch: WriteBatch,
        value: T,
        context: &mut Context<Self>,
    ) -> ResponseFuture<DomainResult<T>> {
        match self.commit(batch, context) {
            Ok(ticket) => after_durable(ticket, value),
            Err(error) => ready(Err(error)),
        }
    }
}

/// The record as `changes` leave it (`Null` clears), with a strictly newer `updatedAt` so that
/// optimistic concurrency can tell two updates apart.
pub(crate) fn apply_changes(
    existing: &StoredRecord,
    changes: &BTreeMap<u32, Value>,
    changeset: &Changeset<'_>,
) -> StoredRecord {
    let mut updated = existing.clone();
    for (field_id, value) in changes {
        if value.is_null() {
            updated.fields.remove(field_id);
        } else {
            updated.fields.insert(*field_id, value.clone());
        }
    }
    updated.updated_at = changeset.at().max(existing.updated_at + 1);
    updated.updated_by = changeset.user_id().cloned();
    updated
}

/// The merge fields of an upsert, by name: at least one, each a field of the table.
fn resolve_merge_fields<'s>(
    schema: &'s TableSchema,
    names: &[String],
) -> DomainResult<Vec<&'s FieldDef>> {
    if names.is_empty() {
        return Err(DomainError::bad_request(
            "fieldsToMergeOn",
            "fieldsToMergeOn must name at least one field",
        ));
    }
    let mut fields: Vec<&FieldDef> = Vec::with_capacity(names.len());
    for name in names {
        let field = schema.field_by_name(name).ok_or_else(|| {
            DomainError::bad_request("fieldsToMergeOn", format!("Unknown merge field '{name}'"))
        })?;
        if !fields.iter().any(|known| known.id == field.id) {
            fields.push(field);
        }
    }
    Ok(fields)
}

/// Finds the record an upsert item matches: through a unique or indexed merge field when there
/// is one, else through a map of every live record built once per batch.
struct MergeMatcher<'s> {
    schema: &'s TableSchema,
    fields: Vec<&'s FieldDef>,
    /// Merge key → lowest matching id, for records created in this batch.
    created: HashMap<Vec<u8>, u64>,
    /// Merge key → lowest live id, when no merge field is indexed (built on first use).
    scanned: Option<HashMap<Vec<u8>, u64>>,
}

impl<'s> MergeMatcher<'s> {
    fn new(schema: &'s TableSchema, fields: &[&'s FieldDef]) -> Self {
        MergeMatcher {
            schema,
            fields: fields.to_vec(),
            created: HashMap::new(),
            scanned: None,
        }
    }

    fn key(values: &[Value]) -> Vec<u8> {
        let mut key = Vec::new();
        for value in values {
            keys::encode_index_value(value, &mut key);
        }
        key
    }

    fn matches(&self, record: &StoredRecord, values: &[Value]) -> bool {
        !record.is_deleted()
            && self
                .fields
                .iter()
                .zip(values)
                .all(|(field, value)| record.value(field.id) == value)
    }

    fn remember(&mut self, values: &[Value], record_id: u64) {
        self.created.entry(Self::key(values)).or_insert(record_id);
    }

    fn find(
        &mut self,
        changeset: &Changeset<'_>,
        values: &[Value],
    ) -> DomainResult<Option<StoredRecord>> {
        let mut candidates: Vec<u64> = Vec::new();
        candidates.extend(self.created.get(&Self::key(values)).copied());
        let unique = self.fields.iter().position(|field| field.unique);
        let indexed = self.fields.iter().position(|field| {
            self.schema
                .indexed_fields()
                .any(|indexed| indexed.id == field.id)
        });
        if let Some(position) = unique {
            let holder = changeset.unique_holder(self.fields[position].id, &values[position])?;
            candidates.extend(holder);
        } else if let Some(position) = indexed {
            let field_id = self.fields[position].id;
            candidates.extend(changeset.stored_ids_with_value(field_id, &values[position])?);
        } else {
            if self.scanned.is_none() {
                self.scanned = Some(self.scan(changeset)?);
            }
            let key = Self::key(values);
            candidates.extend(self.scanned.as_ref().and_then(|map| map.get(&key)).copied());
        }
        candidates.sort_unstable();
        candidates.dedup();
        for id in candidates {
            if let Some(record) = changeset.record(id)? {
                if self.matches(&record, values) {
                    return Ok(Some(record));
                }
            }
        }
        Ok(None)
    }

    fn scan(&self, changeset: &Changeset<'_>) -> DomainResult<HashMap<Vec<u8>, u64>> {
        let mut map = HashMap::new();
        for record in changeset.stored_records() {
            let record = record?;
            if record.is_deleted() {
                continue;
            }
            let values: Vec<Value> = self
                .fields
                .iter()
                .map(|field| record.value(field.id).clone())
                .collect();
            map.entry(Self::key(&values)).or_insert(record.id);
        }
        Ok(map)
    }
}

/// The relationship fields of `schema` that point at the table itself (by name or id).
pub fn self_relationships<'s>(
    schema: &'s TableSchema,
    table_id_text: &str,
) -> impl Iterator<Item = &'s FieldDef> {
    let name = schema.name.clone();
    let id_text = table_id_text.to_owned();
    schema.fields.iter().filter(move |field| {
        field.field_type == FieldType::Relationship
            && field
                .related_table
                .as_deref()
                .is_some_and(|related| related == name || related == id_text)
    })
}

/// The 409 for a delete that a `restrict` relationship forbids.
pub fn restrict_conflict(
    parent: &u64,
    parent_table: &str,
    child: u64,
    child_table: &str,
    field: &str,
) -> DomainError {
    DomainError::Conflict {
        message: format!(
            "Cannot delete record {parent} of table '{parent_table}': record {child} of table '{child_table}' refers to it through '{field}' (onDelete: restrict)"
        ),
        field: Some(field.to_owned()),
    }
}

/// `records[3].email` for batch items, `email` otherwise.
fn item_field(item: Option<usize>, field: &str) -> String {
    match item {
        Some(index) => format!("records[{index}].{field}"),
        None => field.to_owned(),
    }
}

fn item_name(item: Option<usize>) -> Option<String> {
    item.map(|index| format!("records[{index}]"))
}

fn name_items(item: Option<usize>, errors: Vec<FieldError>) -> Vec<FieldError> {
    match item {
        None => errors,
        Some(_) => errors
            .into_iter()
            .map(|error| FieldError::new(item_field(item, &error.field), error.message))
            .collect(),
    }
}

/// The error of a relationship value that names no live record — or, for a caller under
/// permissions, no record it may read (`TableAccess::check_write`). It does not name the related
/// table, which the caller may not be allowed to know.
pub(crate) fn missing_target_message(value: &Value) -> String {
    format!("Related record '{}' not found", display_value(value))
}

fn display_value(value: &Value) -> String {
    match value {
        Value::Text(text) => text.clone(),
        Value::Int(number) => number.to_string(),
        other => format!("{other:?}"),
    }
}

/// Checks a comment's content: 1..=10 000 characters, not only whitespace.
pub fn validate_comment_content(content: &str) -> DomainResult<()> {
    if content.trim().is_empty() {
        return Err(DomainError::bad_request(
            "content",
            "Comment content must not be empty",
        ));
    }
    if content.chars().count() > MAX_COMMENT_CHARS {
        return Err(DomainError::bad_request(
            "content",
            format!("Comment content must be at most {MAX_COMMENT_CHARS} characters"),
        ));
    }
    Ok(())
}

/// Adds or removes the secondary and unique index entries of `record` (for the changeset; the
/// one implementation is [`write_index_entries`]). Full-text entries go through
/// [`crate::query::search::SearchChanges`] beside it.
pub(crate) fn index_entries(
    batch: &mut WriteBatch,
    schema: &TableSchema,
    old: Option<&StoredRecord>,
    new: Option<&StoredRecord>,
) {
    write_index_entries(batch, schema, old, new);
}

/// Adds or removes the secondary and unique index entries of `record` to/from a batch (the
/// full-text index: [`crate::query::search::SearchChanges`]).
fn write_index_entries(
    batch: &mut WriteBatch,
    schema: &TableSchema,
    old: Option<&StoredRecord>,
    new: Option<&StoredRecord>,
) {
    for field in schema.indexed_fields() {
        // A unique field's live, non-empty value is indexed by its claim alone (the store
        // merges claims into index reads: `TableStore::index_entries`); every other value of
        // an indexed field by a bit in its bitmap.
        let (old_bit, new_bit) = (bitmap_value(field, old), bitmap_value(field, new));
        if old_bit != new_bit {
            if let (Some(record), Some(value)) = (old, old_bit) {
                batch.remove_index_entry(field.id, value, record.id);
            }
            if let (Some(record), Some(value)) = (new, new_bit) {
                batch.put_index_entry(field.id, value, record.id);
            }
        }
        if field.unique {
            // Unique entries exist only for live records with a non-empty value.
            let (old_unique, new_unique) = (
                live_unique_value(old, field.id),
                live_unique_value(new, field.id),
            );
            if old_unique != new_unique {
                if let Some(value) = old_unique {
                    batch.remove(keys::unique_key(field.id, value));
                }
                if let (Some(value), Some(record)) = (new_unique, new) {
                    batch.put(
                        keys::unique_key(field.id, value),
                        record.id.to_be_bytes().to_vec(),
                    );
                }
            }
        }
    }
    // The full-text index (`F` keys) is not written here: its posting blocks are shared by many
    // records, so the caller gathers the batch's changes in a `SearchChanges` and writes the
    // blocks once.
}

/// The value under which a record is in a field's index bitmaps: every record's, except a
/// unique field's live, non-empty value (indexed by its claim).
fn bitmap_value<'r>(field: &FieldDef, record: Option<&'r StoredRecord>) -> Option<&'r Value> {
    let claimed = field.unique && live_unique_value(record, field.id).is_some();
    record
        .filter(|_| !claimed)
        .map(|record| record.value(field.id))
}

/// The value a record holds in a unique index: only live records with a non-empty value.
fn live_unique_value(record: Option<&StoredRecord>, field_id: u32) -> Option<&Value> {
    record
        .filter(|record| !record.is_deleted())
        .map(|record| record.value(field_id))
        .filter(|value| !value.is_empty_value())
}

/// The reply future: waits for the covering flush, then hands back `value`.
fn after_durable<T: 'static>(ticket: DurableTicket, value: T) -> ResponseFuture<DomainResult<T>> {
    Box::pin(async move {
        ticket.wait().await.map_err(|error| {
            tracing::error!(%error, "a write could not be made durable");
            DomainError::Unavailable("The write could not be made durable".into())
        })?;
        Ok(value)
    })
}

/// `value` once the write is durable, its change events published then (a failed flush drops
/// them unpublished).
async fn answer_when_durable<T: 'static>(
    ticket: DurableTicket,
    value: T,
    staged: Option<StagedChanges>,
) -> DomainResult<T> {
    let outcome = after_durable(ticket, value).await;
    if let (Ok(_), Some(staged)) = (&outcome, staged) {
        staged.publish();
    }
    outcome
}

/// The answer to a write the table could not complete (the actor restarts).
fn unavailable() -> DomainError {
    DomainError::Unavailable("The table is temporarily unavailable; retry the request".into())
}

fn ready<T: 'static>(result: DomainResult<T>) -> ResponseFuture<DomainResult<T>> {
    Box::pin(async move { result })
}

/// Commits a staged changeset and answers `value` once durable, or the staging error.
pub(crate) fn reply<T: 'static>(
    actor: &mut TableActor,
    staged: DomainResult<(Changeset<'_>, Option<Sequences>, T)>,
    context: &mut Context<TableActor>,
) -> ResponseFuture<DomainResult<T>> {
    let (changeset, sequences, value) = match staged {
        Ok(staged) => staged,
        Err(error) => return ready(Err(error)),
    };
    if changeset.is_empty() {
        return ready(Ok(value));
    }
    match actor.commit_changeset(changeset, sequences, context) {
        Ok((ticket, staged)) => Box::pin(answer_when_durable(ticket, value, staged)),
        Err(error) => ready(Err(error)),
    }
}

impl Actor for TableActor {
    type Context = Context<Self>;

    /// Writes still pending when the actor stops (shutdown) are applied, not dropped: their
    /// writers may still be waiting for the answer.
    fn stopping(&mut self, context: &mut Context<Self>) -> actix::Running {
        self.settle(context);
        actix::Running::Stop
    }
}

impl Supervised for TableActor {
    fn restarting(&mut self, _context: &mut Context<Self>) {
        self.shared.count_restart();
        if let Some(pending) = self.pending.take() {
            abandon(pending.waiters);
        }
        self.fault_armed = false;
        if let Some(migration) = self.migration.take() {
            self.fail_migration(
                migration,
                DomainError::Unavailable(
                    "The table restarted during a schema change; the old schema stays live".into(),
                ),
            );
        }
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
        self.stage_pending(message.user_id, context, move |actor, changeset| {
            let mut sequences = actor.sequences();
            let record = actor
                .stage_creates(
                    &schema,
                    changeset,
                    &mut sequences,
                    vec![message.fields],
                    false,
                )?
                .pop()
                .ok_or_else(|| internal("no record staged"))?;
            Ok((Some(sequences), record))
        })
    }
}

impl Handler<ApplyPending> for TableActor {
    type Result = ();

    fn handle(&mut self, _message: ApplyPending, context: &mut Context<Self>) {
        self.settle(context);
    }
}

impl Handler<UpdateRecord> for TableActor {
    type Result = ResponseFuture<DomainResult<StoredRecord>>;

    fn handle(&mut self, message: UpdateRecord, context: &mut Context<Self>) -> Self::Result {
        let schema = self.shared.schema();
        let patch = RecordPatch {
            record_id: message.record_id,
            fields: message.fields,
        };
        let expected_updated_at = message.expected_updated_at;
        self.stage_pending(message.user_id, context, move |actor, changeset| {
            let record = actor
                .stage_updates(&schema, changeset, vec![patch], expected_updated_at, false)?
                .pop()
                .ok_or_else(|| internal("no record staged"))?;
            Ok((None, record))
        })
    }
}

impl Handler<CreateRecords> for TableActor {
    type Result = ResponseFuture<DomainResult<Vec<StoredRecord>>>;

    fn handle(&mut self, message: CreateRecords, context: &mut Context<Self>) -> Self::Result {
        self.settle(context);
        let (shared, schema) = (Arc::clone(&self.shared), self.shared.schema());
        let mut changeset = Changeset::new(&shared, &schema, message.user_id, clock::now_ms());
        let mut sequences = self.sequences();
        let staged = self
            .stage_creates(
                &schema,
                &mut changeset,
                &mut sequences,
                message.records,
                true,
            )
            .map(|records| (changeset, Some(sequences), records));
        reply(self, staged, context)
    }
}

impl Handler<UpdateRecords> for TableActor {
    type Result = ResponseFuture<DomainResult<Vec<StoredRecord>>>;

    fn handle(&mut self, message: UpdateRecords, context: &mut Context<Self>) -> Self::Result {
        self.settle(context);
        let (shared, schema) = (Arc::clone(&self.shared), self.shared.schema());
        let mut changeset = Changeset::new(&shared, &schema, message.user_id, clock::now_ms());
        let staged = self
            .stage_updates(&schema, &mut changeset, message.patches, None, true)
            .map(|records| (changeset, None, records));
        reply(self, staged, context)
    }
}

impl Handler<UpsertRecords> for TableActor {
    type Result = ResponseFuture<DomainResult<UpsertOutcome>>;

    fn handle(&mut self, message: UpsertRecords, context: &mut Context<Self>) -> Self::Result {
        self.settle(context);
        let (shared, schema) = (Arc::clone(&self.shared), self.shared.schema());
        let mut changeset = Changeset::new(&shared, &schema, message.user_id, clock::now_ms());
        let mut sequences = self.sequences();
        let staged = self
            .stage_upserts(
                &schema,
                &mut changeset,
                &mut sequences,
                message.records,
                &message.merge_fields,
                message.return_records,
            )
            .map(|outcome| (changeset, Some(sequences), outcome));
        reply(self, staged, context)
    }
}

impl Handler<DeleteRecords> for TableActor {
    type Result = ResponseFuture<DomainResult<DeleteOutcome>>;

    fn handle(&mut self, message: DeleteRecords, context: &mut Context<Self>) -> Self::Result {
        self.settle(context);
        let (shared, schema) = (Arc::clone(&self.shared), self.shared.schema());
        let mut changeset = Changeset::new(&shared, &schema, message.user_id, clock::now_ms());
        let staged = (|| {
            let mut outcome = DeleteOutcome::default();
            let mut removed = BTreeSet::new();
            for record_id in message.record_ids {
                if removed.contains(&record_id) {
                    continue;
                }
                let record = changeset
                    .record(record_id)?
                    .ok_or_else(|| record_not_found(record_id))?;
                if message.permanent {
                    changeset.remove(&record)?;
                } else if record.is_deleted() {
                    if message.skip_trashed {
                        continue;
                    }
                    return Err(record_not_found(record_id));
                } else {
                    changeset.trash(&record, None)?;
                }
                removed.insert(record_id);
                outcome.deleted += 1;
            }
            for (record_id, parent) in message.cascaded {
                if let Some(record) = changeset.record(record_id)?.filter(|r| !r.is_deleted()) {
                    changeset.trash(&record, Some(parent))?;
                    removed.insert(record_id);
                }
            }
            for clear in message.cleared {
                let target = Value::Text(clear.target.to_string());
                let Some(record) = changeset.record(clear.record_id)? else {
                    continue;
                };
                if record.is_deleted() || record.value(clear.field_id) != &target {
                    continue;
                }
                let changes = BTreeMap::from([(clear.field_id, Value::Null)]);
                let updated = apply_changes(&record, &changes, &changeset);
                // Clearing a value never takes a unique value from anyone.
                let _ = changeset.update(&record, updated, &changes)?;
            }
            self.check_self_restrict(&schema, &changeset, &removed)?;
            Ok((changeset, None, outcome))
        })();
        reply(self, staged, context)
    }
}

impl Handler<RestoreRecords> for TableActor {
    type Result = ResponseFuture<DomainResult<Vec<StoredRecord>>>;

    fn handle(&mut self, message: RestoreRecords, context: &mut Context<Self>) -> Self::Result {
        self.settle(context);
        let (shared, schema) = (Arc::clone(&self.shared), self.shared.schema());
        let mut changeset = Changeset::new(&shared, &schema, message.user_id, clock::now_ms());
        let staged = (|| {
            let mut restored = Vec::with_capacity(message.record_ids.len());
            for (index, record_id) in message.record_ids.iter().copied().enumerate() {
                let record = changeset
                    .record(record_id)?
                    .ok_or_else(|| record_not_found(record_id))?;
                if !record.is_deleted() {
                    if changeset.touched(record_id) {
                        continue;
                    }
                    return Err(DomainError::BadRequest {
                        message: "Record is not deleted".into(),
                        errors: vec![FieldError::new(
                            format!("ids[{index}]"),
                            format!("Record {record_id} is not deleted"),
                        )],
                    });
                }
                match changeset.restore(&record)? {
                    Ok(record) => restored.push(record),
                    Err(clash) => return Err(restore_clash(record_id, clash)),
                }
            }
            for (record_id, parent) in message.cascaded {
                let Some(record) = changeset.record(record_id)? else {
                    continue;
                };
                if record.cascade_parent != Some(parent) || !record.is_deleted() {
                    continue;
                }
                if let Err(clash) = changeset.restore(&record)? {
                    return Err(restore_clash(record_id, clash));
                }
            }
            Ok((changeset, None, restored))
        })();
        reply(self, staged, context)
    }
}

impl Handler<CreateComment> for TableActor {
    type Result = ResponseFuture<DomainResult<Comment>>;

    fn handle(&mut self, message: CreateComment, context: &mut Context<Self>) -> Self::Result {
        self.settle(context);
        let staged = (|| {
            self.live_record(message.record_id)?;
            validate_comment_content(&message.content)?;
            let store = &self.shared.store;
            let now = clock::now_ms();
            let comment = Comment {
                id: store.generate_id()?,
                record_id: message.record_id,
                content: message.content,
                user_id: message.user_id,
                created_at: now,
                updated_at: now,
            };
            let count = store.comment_count(message.record_id)?.saturating_add(1);
            let mut batch = WriteBatch::new();
            batch.put_comment(&comment)?;
            batch.put_u64(&keys::comment_count_key(message.record_id), count);
            Ok((batch, comment))
        })();
        match staged {
            Ok((batch, comment)) => self.commit_batch(batch, comment, context),
            Err(error) => ready(Err(error)),
        }
    }
}

impl Handler<UpdateComment> for TableActor {
    type Result = ResponseFuture<DomainResult<Comment>>;

    fn handle(&mut self, message: UpdateComment, context: &mut Context<Self>) -> Self::Result {
        self.settle(context);
        let staged = (|| {
            let mut comment = self.comment_for_change(
                message.record_id,
                message.comment_id,
                message.caller.as_ref(),
            )?;
            validate_comment_content(&message.content)?;
            comment.content = message.content;
            comment.updated_at = clock::now_ms().max(comment.updated_at + 1);
            let mut batch = WriteBatch::new();
            batch.put_comment(&comment)?;
            Ok((batch, comment))
        })();
        match staged {
            Ok((batch, comment)) => self.commit_batch(batch, comment, context),
            Err(error) => ready(Err(error)),
        }
    }
}

impl Handler<DeleteComment> for TableActor {
    type Result = ResponseFuture<DomainResult<()>>;

    fn handle(&mut self, message: DeleteComment, context: &mut Context<Self>) -> Self::Result {
        self.settle(context);
        let staged = (|| {
            let comment = self.comment_for_change(
                message.record_id,
                message.comment_id,
                message.caller.as_ref(),
            )?;
            let store = &self.shared.store;
            let count = store.comment_count(message.record_id)?.saturating_sub(1);
            let mut batch = WriteBatch::new();
            batch.remove(keys::comment_key(comment.record_id, comment.id).to_vec());
            batch.put_u64(&keys::comment_count_key(message.record_id), count);
            Ok(batch)
        })();
        match staged {
            Ok(batch) => self.commit_batch(batch, (), context),
            Err(error) => ready(Err(error)),
        }
    }
}

impl Handler<PurgeActivity> for TableActor {
    type Result = ResponseFuture<DomainResult<u64>>;

    fn handle(&mut self, message: PurgeActivity, context: &mut Context<Self>) -> Self::Result {
        self.settle(context);
        let staged = (|| {
            let store = &self.shared.store;
            let mut batch = WriteBatch::new();
            let mut purged = 0u64;
            let mut floor = None;
            let limit = u64::try_from(message.max_entries).unwrap_or(u64::MAX);
            for group in store.journal_groups(false) {
                let JournalGroup {
                    first_id, entries, ..
                } = group?;
                // One commit's entries share their time.
                let expired = entries
                    .first()
                    .is_some_and(|entry| entry.at < message.older_than);
                let size = u64::try_from(entries.len()).unwrap_or(u64::MAX);
                if !expired || (purged > 0 && purged.saturating_add(size) > limit) {
                    break;
                }
                batch.remove(keys::activity_key(first_id).to_vec());
                floor = entries.last().map(|entry| entry.id.saturating_add(1));
                purged = purged.saturating_add(size);
            }
            if let Some(floor) = floor {
                let purged_ever = store
                    .get_u64(keys::META_ACTIVITY_PURGED)?
                    .unwrap_or(0)
                    .saturating_add(purged);
                batch.put_u64(keys::META_ACTIVITY_PURGED, purged_ever);
                batch.put_u64(keys::META_ACTIVITY_FLOOR, floor);
            }
            Ok((batch, purged))
        })();
        match staged {
            Ok((_, 0)) => ready(Ok(0)),
            Ok((batch, purged)) => self.commit_batch(batch, purged, context),
            Err(error) => ready(Err(error)),
        }
    }
}

impl Handler<ApplySchema> for TableActor {
    type Result = ResponseFuture<DomainResult<u64>>;

    fn handle(&mut self, message: ApplySchema, context: &mut Context<Self>) -> Self::Result {
        self.settle(context);
        if self.migration.is_some() {
            return ready(Err(DomainError::Unavailable(
                "A schema change of this table is in progress".into(),
            )));
        }
        let old = self.shared.schema();
        if let Some(plan) =
            crate::schema_migration::online_plan(&old, &message.schema, message.options)
        {
            if plan.writes_nothing() {
                self.swap_schema(message.schema, context);
                return ready(Ok(0));
            }
            let (sender, receiver) = tokio::sync::oneshot::channel();
            self.migration = Some(OnlineMigration {
                schema: message.schema,
                plan,
                cursor: None,
                autonumbers: BTreeMap::new(),
                rewritten: 0,
                chunks: 0,
                started: std::time::Instant::now(),
                reply: sender,
            });
            context.notify_later(MigrateChunk, crate::schema_migration::CHUNK_PAUSE);
            return Box::pin(async move {
                let (ticket, rewritten) = receiver.await.map_err(|_| {
                    DomainError::Unavailable("The table stopped during a schema change".into())
                })??;
                after_durable(ticket, rewritten).await
            });
        }
        let migration = match crate::schema_migration::migrate(
            &self.shared.store,
            &old,
            &message.schema,
            message.options,
            true,
        ) {
            Ok(Ok(migration)) => migration,
            Ok(Err(failures)) => {
                return ready(Err(crate::schema_migration::failures_error(failures)))
            }
            Err(error) => return ready(Err(error)),
        };
        let ticket = match migration.batch {
            Some(batch) => match self.commit(batch, context) {
                Ok(ticket) => Some(ticket),
                Err(error) => return ready(Err(error)),
            },
            None => None,
        };
        self.swap_schema(message.schema, context);
        match ticket {
            Some(ticket) => after_durable(ticket, migration.rewritten),
            None => ready(Ok(0)),
        }
    }
}

impl TableActor {
    /// Makes `schema` live (the stored data already follows it) and reloads the counters.
    fn swap_schema(&mut self, schema: TableSchema, context: &mut Context<Self>) {
        match self.registry.upgrade() {
            Some(registry) => registry.swap_schema(&self.shared, schema),
            None => self.shared.replace_schema(schema),
        }
        if let Err(error) = self.reload() {
            tracing::error!(table = self.shared.id, %error, "reload after a schema change failed");
            context.stop();
        }
    }

    /// Ends a failed online migration: the old schema is still live; the added values (and
    /// index entries) the chunks wrote are taken out again, and the publisher gets `error`.
    fn fail_migration(&mut self, migration: OnlineMigration, error: DomainError) {
        if let Some(cursor) = migration.cursor {
            let undone = (|| -> DomainResult<()> {
                let mut batch = WriteBatch::new();
                for record in self.shared.store.records(None, false) {
                    let record = record?;
                    if record.id > cursor {
                        break;
                    }
                    migration.plan.undo_record(&mut batch, &record)?;
                }
                self.shared.store.apply(batch)?;
                Ok(())
            })();
            if let Err(error) = undone {
                tracing::error!(table = self.shared.id, %error, "could not undo a failed online migration (the values stay hidden)");
            }
        }
        let _ = migration.reply.send(Err(error));
    }
}

impl Handler<MigrateChunk> for TableActor {
    type Result = ();

    fn handle(&mut self, _message: MigrateChunk, context: &mut Context<Self>) {
        self.settle(context);
        use crate::schema_migration::{CHUNK_BUDGET, CHUNK_RECORDS};
        let Some(mut migration) = self.migration.take() else {
            return;
        };
        let started = std::time::Instant::now();
        let mut batch = WriteBatch::new();
        let mut reached_end = true;
        let staged = (|| -> DomainResult<()> {
            let records = self.shared.store.records(migration.cursor, false);
            for (processed, record) in records.enumerate() {
                if processed >= CHUNK_RECORDS || started.elapsed() >= CHUNK_BUDGET {
                    reached_end = false;
                    break;
                }
                let record = record?;
                if migration
                    .plan
                    .migrate_record(&mut batch, &record, &mut migration.autonumbers)?
                {
                    migration.rewritten += 1;
                }
                migration.cursor = Some(record.id);
            }
            Ok(())
        })();
        if let Err(error) = staged {
            self.fail_migration(migration, error);
            return;
        }
        migration.chunks += 1;
        if reached_end {
            // The last chunk: the remaining records, the sequences and the swap, in one step.
            for (field_id, last) in &migration.autonumbers {
                batch.put_u64(&keys::autonumber_key(*field_id), *last);
            }
        }
        let ticket = if batch.is_empty() {
            self.shared.store.durable()
        } else {
            match self.commit(batch, context) {
                Ok(ticket) => ticket,
                Err(error) => {
                    self.fail_migration(migration, error);
                    return;
                }
            }
        };
        if !reached_end {
            self.migration = Some(migration);
            context.notify_later(MigrateChunk, crate::schema_migration::CHUNK_PAUSE);
            return;
        }
        let OnlineMigration {
            schema,
            rewritten,
            chunks,
            started,
            reply,
            ..
        } = migration;
        self.swap_schema(schema, context);
        tracing::info!(
            table = self.shared.id,
            rewritten,
            chunks,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "online schema migration done"
        );
        let _ = reply.send(Ok((ticket, rewritten)));
    }
}

impl Handler<CopyRecordsInto> for TableActor {
    type Result = ResponseFuture<DomainResult<u64>>;

    fn handle(&mut self, message: CopyRecordsInto, context: &mut Context<Self>) -> Self::Result {
        self.settle(context);
        let copied = (|| {
            let store = &self.shared.store;
            let mut batch = WriteBatch::new();
            let mut copied = 0u64;
            for record in store.records(None, false) {
                let mut record = record?;
                record.history.clear();
                batch.put_record(&record)?;
                copied += 1;
            }
            for prefix in [keys::TRASH, keys::META] {
                for entry in store.tree().scan_prefix([prefix]) {
                    let (key, value) = entry.map_err(StorageError::from)?;
                    let journal_meta = key.as_ref() == keys::META_ACTIVITY_PURGED
                        || key.as_ref() == keys::META_ACTIVITY_FLOOR
                        || key.as_ref() == keys::META_CREATED_AT;
                    if !journal_meta {
                        batch.put(key, value);
                    }
                }
            }
            message.target.apply(batch)?;
            Ok(copied)
        })();
        match copied {
            Ok(copied) => after_durable(message.target.durable(), copied),
            Err(error) => ready(Err(error)),
        }
    }
}

impl Handler<ArmStorageFault> for TableActor {
    type Result = ();

    fn handle(&mut self, _message: ArmStorageFault, context: &mut Context<Self>) {
        self.settle(context);
        self.fault_armed = true;
    }
}

fn restore_clash(record_id: u64, clash: crate::changeset::UniqueClash) -> DomainError {
    DomainError::Conflict {
        message: format!(
            "Cannot restore record {record_id}: record {} now holds its value for unique field '{}'",
            clash.holder, clash.field
        ),
        field: Some(clash.field),
    }
}

/// The 409 for an update whose `updatedAt` token is not the stored one.
fn stale_update() -> DomainError {
    DomainError::Conflict {
        message: "The record was modified after you last read it. Reload it and try again.".into(),
        field: None,
    }
}

fn internal(what: &str) -> DomainError {
    DomainError::Unavailable(format!("internal inconsistency: {what}"))
}

/// The 404 for a record id that is not there (or not visible).
pub fn record_not_found(record_id: u64) -> DomainError {
    DomainError::NotFound(format!("Record {record_id} not found"))
}

/// The 404 for a comment id that is not there.
pub fn comment_not_found(comment_id: u64) -> DomainError {
    DomainError::NotFound(format!("Comment {comment_id} not found"))
}
