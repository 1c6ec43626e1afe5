//! One table's pending change: the records a write creates, updates, trashes, restores or
//! removes, and everything derived from them — index entries, unique claims, the change journal
//! (history and activity: one `A` key per commit, each record listing its own entry ids),
//! counters — gathered into ONE [`WriteBatch`] that the table actor applies atomically.
//!
//! A changeset sees its own earlier steps: a record changed twice in one batch is read back from
//! the changeset, and a unique value released or claimed earlier in the batch counts as such for
//! the later steps (so a batch clash is found before anything is written). It only reads the
//! store; nothing is written until the actor applies [`Prepared::batch`]. Because it never
//! writes, the lifecycle orchestration also uses it as a dry run to find conflicts before any
//! table is touched.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};

use tabula_storage::journal::{ChangeAction, ChangeEntry};
use tabula_storage::{
    keys, FieldDef, RecordRef, StorageResult, StoredRecord, TableSchema, Value, WriteBatch,
};

use crate::changes::Change;
use crate::error::{DomainError, DomainResult};
use crate::query::search::SearchChanges;
use crate::registry::TableShared;
use crate::table::index_entries;

/// A unique value that the change would give to two live records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UniqueClash {
    /// The name of the unique field.
    pub field: String,
    /// The record that already holds the value (stored or earlier in the batch).
    pub holder: u64,
}

impl UniqueClash {
    /// The 409 for this clash; `item` names the batch item (`records[3]`) when there is one.
    pub fn into_error(self, item: Option<&str>) -> DomainError {
        let (message, field) = match item {
            Some(item) => (
                format!(
                    "A record with this value for field '{}' already exists ({item})",
                    self.field
                ),
                format!("{item}.{}", self.field),
            ),
            None => (
                format!(
                    "A record with this value for field '{}' already exists",
                    self.field
                ),
                self.field,
            ),
        };
        DomainError::Conflict {
            message,
            field: Some(field),
        }
    }
}

/// How many change entries a record lists at most (its newest); older ones stay in the journal
/// (the activity log) until the retention purge but leave the record's history.
pub const HISTORY_LIMIT: usize = 1000;

/// What a finished changeset hands to the actor.
pub struct Prepared {
    pub batch: WriteBatch,
    /// The table's live count once the batch is applied.
    pub live_count: u64,
    /// The journal entries the table has received once the batch is applied.
    pub journal_written: u64,
    /// Every record the batch writes, as written (history ids included); `None`: removed.
    pub records: HashMap<u64, Option<StoredRecord>>,
    /// One change per journal entry, in order, for the change feed.
    pub changes: Vec<Change>,
    /// The commit's journal entries (ids ascending), not yet in the batch: the caller writes
    /// them as a journal group (`WriteBatch::put_journal_group`), alone or together with the
    /// entries of the other writes sharing the batch.
    pub entries: Vec<ChangeEntry>,
    /// The commit's full-text posting changes, not yet in the batch: the caller writes them
    /// ([`SearchChanges::write`]) once every write sharing the batch has added its own, since
    /// they rewrite posting blocks that several writes may touch.
    pub search: SearchChanges,
}

/// The pending change of one table.
pub struct Changeset<'a> {
    shared: &'a TableShared,
    schema: &'a TableSchema,
    at: i64,
    user_id: Option<String>,
    batch: WriteBatch,
    /// The state of every record this changeset touched (`None`: removed for good).
    records: HashMap<u64, Option<StoredRecord>>,
    /// Unique key → holder after this changeset (`None`: released).
    unique_holders: HashMap<Vec<u8>, Option<u64>>,
    /// Unique key → holder as stored, for the keys already looked up (an upsert asks about
    /// each merge value twice: to match, then to check the write). For a changeset of the table
    /// actor the tree does not change until the changeset is finished and applied (the actor is
    /// its only writer), so a value read once stays true; a dry run outside the actor
    /// (`lifecycle`) was never a consistent snapshot and is checked again inside the commit.
    stored_holders: RefCell<HashMap<Vec<u8>, Option<u64>>>,
    /// The full-text posting changes, written as block rewrites when the changeset finishes.
    search: SearchChanges,
    entries: Vec<ChangeEntry>,
    /// The record as each entry left it (as it was, for a removal), for the change feed.
    snapshots: Vec<StoredRecord>,
    live_delta: i64,
}

impl<'a> Changeset<'a> {
    /// A changeset made at `at` (ms) by `user_id`.
    pub fn new(
        shared: &'a TableShared,
        schema: &'a TableSchema,
        user_id: Option<String>,
        at: i64,
    ) -> Self {
        Changeset::on_batch(shared, schema, user_id, at, WriteBatch::new())
    }

    /// A changeset that adds its writes to `batch`, which already holds other changes of the
    /// table that are not applied yet: it reads records and unique claims through the batch,
    /// so it sees them as if they were stored.
    pub fn on_batch(
        shared: &'a TableShared,
        schema: &'a TableSchema,
        user_id: Option<String>,
        at: i64,
        batch: WriteBatch,
    ) -> Self {
        Changeset {
            shared,
            schema,
            at,
            user_id,
            batch,
            records: HashMap::new(),
            unique_holders: HashMap::new(),
            stored_holders: RefCell::default(),
            search: SearchChanges::new(),
            entries: Vec::new(),
            snapshots: Vec::new(),
            live_delta: 0,
        }
    }

    /// The time of the change (ms).
    pub fn at(&self) -> i64 {
        self.at
    }

    pub fn user_id(&self) -> Option<&String> {
        self.user_id.as_ref()
    }

    pub fn schema(&self) -> &TableSchema {
        self.schema
    }

    /// Whether anything was changed.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Extra writes that belong to the same commit (id sequence, autonumbers, comments).
    pub fn batch_mut(&mut self) -> &mut WriteBatch {
        &mut self.batch
    }

    /// Gives back the batch (the writes of an abandoned changeset included).
    pub fn into_batch(self) -> WriteBatch {
        self.batch
    }

    /// A record as this changeset would leave it.
    pub fn record(&self, record_id: u64) -> DomainResult<Option<StoredRecord>> {
        if let Some(state) = self.records.get(&record_id) {
            return Ok(state.clone());
        }
        match self.batch.record(record_id)? {
            Some(state) => Ok(state),
            None => Ok(self.shared.store.get_record(record_id)?),
        }
    }

    /// Ids of stored records whose indexed field holds `value` (as stored, before this
    /// changeset; read each through [`Changeset::record`]).
    pub fn stored_ids_with_value(&self, field_id: u32, value: &Value) -> DomainResult<Vec<u64>> {
        Ok(self.shared.store.ids_with_value(field_id, value)?)
    }

    /// Every stored record in id order, as stored before this changeset.
    pub fn stored_records(&self) -> impl Iterator<Item = StorageResult<StoredRecord>> + 'a {
        self.shared.store.records(None, false)
    }

    /// Whether the changeset already touched the record.
    pub fn touched(&self, record_id: u64) -> bool {
        self.records.contains_key(&record_id)
    }

    /// The live record holding `value` in a unique field, as this changeset would leave it.
    pub fn unique_holder(&self, field_id: u32, value: &Value) -> DomainResult<Option<u64>> {
        let key = keys::unique_key(field_id, value);
        if let Some(holder) = self.unique_holders.get(&key) {
            return Ok(*holder);
        }
        if let Some(holder) = self.batch.get(&key) {
            return Ok(holder.and_then(|bytes| keys::trailing_record_id(bytes)));
        }
        if let Some(holder) = self.stored_holders.borrow().get(&key) {
            return Ok(*holder);
        }
        let holder = self.shared.store.unique_owner(field_id, value)?;
        self.stored_holders.borrow_mut().insert(key, holder);
        Ok(holder)
    }

    /// The first unique field of `candidate` (restricted to `fields` when given) whose value
    /// another live record holds.
    pub fn unique_clash(
        &self,
        candidate: &StoredRecord,
        fields: Option<&BTreeMap<u32, Value>>,
    ) -> DomainResult<Option<UniqueClash>> {
        if candidate.is_deleted() {
            return Ok(None);
        }
        for field in self.schema.fields.iter().filter(|field| field.unique) {
            if fields.is_some_and(|fields| !fields.contains_key(&field.id)) {
                continue;
            }
            let value = candidate.value(field.id);
            if value.is_empty_value() {
                continue;
            }
            if let Some(holder) = self.unique_holder(field.id, value)? {
                if holder != candidate.id {
                    return Ok(Some(UniqueClash {
                        field: field.name.clone(),
                        holder,
                    }));
                }
            }
        }
        Ok(None)
    }

    /// Writes `new` over `old` (index entries and unique claims now; the record itself when the
    /// changeset finishes, once its new history entry has an id).
    fn put(&mut self, old: Option<&StoredRecord>, new: StoredRecord) -> DomainResult<()> {
        index_entries(&mut self.batch, self.schema, old, Some(&new));
        self.search.record(self.schema, old, Some(&new));
        self.track_uniques(old, Some(&new));
        self.records.insert(new.id, Some(new));
        Ok(())
    }

    fn track_uniques(&mut self, old: Option<&StoredRecord>, new: Option<&StoredRecord>) {
        for field in self.schema.fields.iter().filter(|field| field.unique) {
            let old_value = live_unique_value(old, field);
            let new_value = live_unique_value(new, field);
            if old_value == new_value {
                continue;
            }
            if let Some(value) = old_value {
                self.unique_holders
                    .insert(keys::unique_key(field.id, value), None);
            }
            if let (Some(value), Some(record)) = (new_value, new) {
                self.unique_holders
                    .insert(keys::unique_key(field.id, value), Some(record.id));
            }
        }
    }

    fn entry(
        &mut self,
        action: ChangeAction,
        mut snapshot: StoredRecord,
        before: Option<BTreeMap<u32, Value>>,
        after: Option<BTreeMap<u32, Value>>,
    ) {
        let record_id = snapshot.id;
        // The history ids are not part of an event; without them a kept event stays small.
        snapshot.history = Vec::new();
        self.snapshots.push(snapshot);
        self.entries.push(ChangeEntry {
            id: 0,
            at: self.at,
            user_id: self.user_id.clone(),
            action,
            table_id: self.shared.id,
            record_id,
            before,
            after,
        });
    }

    /// Creates a new live record. Fails with the clash if a unique value is taken.
    pub fn create(&mut self, record: StoredRecord) -> DomainResult<Result<(), UniqueClash>> {
        if let Some(clash) = self.unique_clash(&record, None)? {
            return Ok(Err(clash));
        }
        let after = record.fields.clone();
        let snapshot = record.clone();
        self.put(None, record)?;
        self.live_delta += 1;
        self.entry(ChangeAction::Create, snapshot, None, Some(after));
        Ok(Ok(()))
    }

    /// Replaces the live record `old` with `new`, whose `changed` fields were written (a unique
    /// check runs on those). History keeps only the fields whose value differs.
    pub fn update(
        &mut self,
        old: &StoredRecord,
        new: StoredRecord,
        changed: &BTreeMap<u32, Value>,
    ) -> DomainResult<Result<(), UniqueClash>> {
        if let Some(clash) = self.unique_clash(&new, Some(changed))? {
            return Ok(Err(clash));
        }
        let (before, after) = field_diff(old, &new);
        let snapshot = new.clone();
        self.put(Some(old), new)?;
        self.entry(ChangeAction::Update, snapshot, Some(before), Some(after));
        Ok(Ok(()))
    }

    /// Moves the live record `old` to the trash; `cascade_parent` names the parent whose deletion
    /// took it.
    pub fn trash(
        &mut self,
        old: &StoredRecord,
        cascade_parent: Option<RecordRef>,
    ) -> DomainResult<StoredRecord> {
        let mut trashed = old.clone();
        trashed.deleted_at = Some(self.at);
        trashed.deleted_by = self.user_id.clone();
        trashed.cascade_parent = cascade_parent;
        self.batch.put(keys::trash_key(old.id).to_vec(), Vec::new());
        self.put(Some(old), trashed.clone())?;
        self.live_delta -= 1;
        self.entry(
            ChangeAction::Delete,
            trashed.clone(),
            Some(old.fields.clone()),
            None,
        );
        Ok(trashed)
    }

    /// Brings the trashed record `old` back. Its unique values were released when it was
    /// trashed, so they are checked again.
    pub fn restore(
        &mut self,
        old: &StoredRecord,
    ) -> DomainResult<Result<StoredRecord, UniqueClash>> {
        let mut restored = old.clone();
        restored.deleted_at = None;
        restored.deleted_by = None;
        restored.cascade_parent = None;
        if let Some(clash) = self.unique_clash(&restored, None)? {
            return Ok(Err(clash));
        }
        self.batch.remove(keys::trash_key(old.id).to_vec());
        self.put(Some(old), restored.clone())?;
        self.live_delta += 1;
        self.entry(
            ChangeAction::Restore,
            restored.clone(),
            None,
            Some(restored.fields.clone()),
        );
        Ok(Ok(restored))
    }

    /// Removes a record (live or trashed) for good, with its index entries and comments. Its
    /// journal entries stay (the activity log still describes it) until the retention purge.
    pub fn remove(&mut self, old: &StoredRecord) -> DomainResult<()> {
        self.batch.remove_record(old.id);
        self.batch.remove(keys::trash_key(old.id).to_vec());
        index_entries(&mut self.batch, self.schema, Some(old), None);
        self.search.record(self.schema, Some(old), None);
        self.track_uniques(Some(old), None);
        for key in self.shared.store.comment_keys(old.id) {
            self.batch.remove(key?);
        }
        self.batch.remove(keys::comment_count_key(old.id).to_vec());
        if !old.is_deleted() {
            self.live_delta -= 1;
        }
        self.records.insert(old.id, None);
        self.entry(
            ChangeAction::PermanentDelete,
            old.clone(),
            Some(old.fields.clone()),
            None,
        );
        Ok(())
    }

    /// Assigns entry ids from the store-wide generator, appends each to its record's history,
    /// and adds the records and the live count to the batch (the journal entries and the
    /// full-text changes are handed back in [`Prepared::entries`] and [`Prepared::search`]).
    /// `journal_written` is how many entries the table's journal has received before this commit,
    /// `live_count` how many live records the table has before it.
    pub fn finish(mut self, journal_written: u64, live_count: u64) -> DomainResult<Prepared> {
        let store = &self.shared.store;
        for entry in &mut self.entries {
            entry.id = store.generate_id()?;
            if let Some(Some(record)) = self.records.get_mut(&entry.record_id) {
                record.history.push(entry.id);
            }
        }
        for record in self.records.values_mut().flatten() {
            if record.history.len() > HISTORY_LIMIT {
                let excess = record.history.len() - HISTORY_LIMIT;
                record.history.drain(..excess);
            }
            self.batch.put_record(record)?;
        }
        let added = u64::try_from(self.entries.len()).unwrap_or(u64::MAX);
        let journal_written = journal_written.saturating_add(added);
        let live_count = apply_delta(live_count, self.live_delta);
        if self.live_delta != 0 {
            self.batch.put_u64(keys::META_LIVE_COUNT, live_count);
        }
        let changes = self
            .entries
            .iter()
            .zip(self.snapshots)
            .map(|(entry, record)| Change {
                action: entry.action,
                record,
            })
            .collect();
        Ok(Prepared {
            batch: self.batch,
            live_count,
            journal_written,
            records: self.records,
            changes,
            entries: self.entries,
            search: self.search,
        })
    }
}

fn apply_delta(count: u64, delta: i64) -> u64 {
    if delta >= 0 {
        count.saturating_add(delta.unsigned_abs())
    } else {
        count.saturating_sub(delta.unsigned_abs())
    }
}

/// The value a record holds in a unique index: only live records with a non-empty value.
fn live_unique_value<'r>(record: Option<&'r StoredRecord>, field: &FieldDef) -> Option<&'r Value> {
    record
        .filter(|record| !record.is_deleted())
        .map(|record| record.value(field.id))
        .filter(|value| !value.is_empty_value())
}

/// The fields whose value differs between two versions of a record: (before, after), absent
/// values as `Null`.
pub fn field_diff(
    old: &StoredRecord,
    new: &StoredRecord,
) -> (BTreeMap<u32, Value>, BTreeMap<u32, Value>) {
    let mut before = BTreeMap::new();
    let mut after = BTreeMap::new();
    let ids = old.fields.keys().chain(new.fields.keys());
    for field_id in ids {
        let (old_value, new_value) = (old.value(*field_id), new.value(*field_id));
        if old_value != new_value && !before.contains_key(field_id) {
            before.insert(*field_id, old_value.clone());
            after.insert(*field_id, new_value.clone());
        }
    }
    (before, after)
}
