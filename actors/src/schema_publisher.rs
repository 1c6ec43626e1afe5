//! The schema publisher: the actor that owns the schema ledger (versions, the active version,
//! the draft, id watermarks — `schema_ledger.rs`) and makes a new version live. Publishing is
//! serialised (one at a time, nothing else answered meanwhile) and goes:
//! assign ids → validate (SPEC §3 rules, row rules, a dry run of every value conversion) →
//! remove dropped tables from the registry → send each changed table its new schema through its
//! own mailbox (`ApplySchema`: migrated and swapped in order with its writes) → install new
//! tables → append the version to the ledger. A failure part-way puts every table already
//! changed back on its old schema, so the old version stays live.

use std::collections::BTreeMap;
use std::sync::Arc;

use actix::fut::{wrap_future, ActorFutureExt};
use actix::{
    Actor, Addr, Arbiter, AtomicResponse, Context, Handler, Message, MessageResult,
    ResponseActFuture,
};
use tabula_storage::{Schema, StorageResult, Store, TableSchema};

use crate::clock;
use crate::error::DomainError;
use crate::registry::{Registry, TableHandle};
use crate::schema_diff::{diff_schemas, rebase_schema, RebaseConflict, SchemaChange};
use crate::schema_ledger::{checksum, Draft, IdWatermarks, Ledger, SchemaVersion};
use crate::schema_migration::{migrate, MigrationOptions};
use crate::schema_rules::{normalize_schema, SchemaIssue};
use crate::table::{ApplySchema, CopyRecordsInto};

/// Why a schema operation did not happen.
#[derive(Debug)]
pub enum SchemaError {
    /// Missing, forbidden, storage … as anywhere else.
    Domain(DomainError),
    /// The schema breaks a rule (or stored values cannot follow it): every problem with its
    /// JSON pointer.
    Invalid(Vec<SchemaIssue>),
    /// The caller's `baseVersion` is not the active version.
    Stale { expected: u64, actual: u64 },
    /// A rebase found tables both sides changed.
    Conflicts(Vec<RebaseConflict>),
}

impl From<DomainError> for SchemaError {
    fn from(error: DomainError) -> Self {
        SchemaError::Domain(error)
    }
}

impl From<tabula_storage::StorageError> for SchemaError {
    fn from(error: tabula_storage::StorageError) -> Self {
        SchemaError::Domain(DomainError::Storage(error))
    }
}

pub type SchemaResult<T> = Result<T, SchemaError>;

/// How the live schema relates to the config file's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drift {
    InSync,
    /// Live was changed through the API since the file seeded it.
    DriftedFromFile,
    /// The file changed since it seeded version 1.
    FileAhead,
}

impl Drift {
    pub fn name(self) -> &'static str {
        match self {
            Drift::InSync => "in-sync",
            Drift::DriftedFromFile => "drifted-from-file",
            Drift::FileAhead => "file-ahead",
        }
    }
}

/// `GET /api/admin/schema/status`.
#[derive(Debug, Clone)]
pub struct SchemaStatus {
    pub active_version: u64,
    pub active_checksum: String,
    pub draft_dirty: bool,
    pub draft_base_version: u64,
    pub draft_stale: bool,
    pub drift: Drift,
    pub file_checksum: String,
}

/// `GET /api/admin/schema/diff`: the changes from the side that stayed to the side that moved
/// (`from`/`to` are `"file"` or `"live"`).
#[derive(Debug, Clone)]
pub struct SchemaDiff {
    pub from: &'static str,
    pub to: &'static str,
    pub changes: Vec<SchemaChange>,
}

/// Who publishes and why.
#[derive(Debug, Clone, Default)]
pub struct PublishMeta {
    pub user_id: Option<String>,
    pub message: Option<String>,
    pub allow_destructive: bool,
    pub restored_from: Option<u64>,
}

/// A change of the draft made by the HTTP layer (which owns JSON): answers whether it changed
/// anything.
pub type DraftEdit = Box<dyn FnOnce(&mut Schema) -> SchemaResult<bool> + Send>;

/// A runtime table operation on the active schema.
pub type SchemaEdit = Box<dyn FnOnce(&mut Schema, &mut IdAllocator) -> SchemaResult<()> + Send>;

/// Hands out table and field ids above every id ever used.
pub struct IdAllocator {
    watermarks: IdWatermarks,
}

impl IdAllocator {
    pub fn next_table_id(&mut self) -> u32 {
        self.watermarks.table = self.watermarks.table.saturating_add(1);
        self.watermarks.table
    }

    pub fn next_field_id(&mut self, table_id: u32) -> u32 {
        let entry = self.watermarks.fields.entry(table_id).or_insert(0);
        *entry = entry.saturating_add(1);
        *entry
    }

    /// Gives every table and field whose id is 0 an id: the id of the table (field) of the same
    /// name in `reference` (the active version) when it has one and the id is free, so that a
    /// snapshot written without ids edits the tables it names; otherwise a fresh id.
    pub fn assign(&mut self, schema: &mut Schema, reference: &Schema) {
        let given: Vec<u32> = schema.tables.iter().map(|table| table.id).collect();
        for table in &mut schema.tables {
            if table.id == 0 {
                table.id = reference
                    .tables
                    .iter()
                    .find(|known| known.name == table.name && !given.contains(&known.id))
                    .map(|known| known.id)
                    .unwrap_or_else(|| self.next_table_id());
            }
            let highest = table.fields.iter().map(|field| field.id).max().unwrap_or(0);
            let entry = self.watermarks.fields.entry(table.id).or_insert(0);
            *entry = (*entry).max(highest);
            let known_fields = reference
                .tables
                .iter()
                .find(|known| known.id == table.id)
                .map(|known| known.fields.clone())
                .unwrap_or_default();
            let mut used: Vec<u32> = table.fields.iter().map(|field| field.id).collect();
            for field in &mut table.fields {
                if field.id == 0 {
                    field.id = known_fields
                        .iter()
                        .find(|known| known.name == field.name && !used.contains(&known.id))
                        .map(|known| known.id)
                        .unwrap_or_else(|| self.next_field_id(table.id));
                    used.push(field.id);
                }
            }
        }
    }
}

/// The actor. Built by [`SchemaPublisher::open`] before the tables are installed (it knows the
/// live schema), then started with [`SchemaPublisher::start`].
pub struct SchemaPublisher {
    ledger: Ledger,
    store: Store,
    registry: Arc<Registry>,
    file_schema: Schema,
    file_checksum: String,
    seed_checksum: String,
    active: SchemaVersion,
    draft: Draft,
    watermarks: IdWatermarks,
}

/// The running publisher: its address, and the thread it runs on (stopped at shutdown).
pub struct SchemaPublisherHandle {
    pub addr: Addr<SchemaPublisher>,
    arbiter: std::sync::Mutex<Option<Arbiter>>,
}

impl SchemaPublisherHandle {
    /// Stops the publisher's thread and waits for it (after the HTTP server drained).
    pub fn stop(&self) {
        let arbiter = self
            .arbiter
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        if let Some(arbiter) = arbiter {
            arbiter.stop();
            if arbiter.join().is_err() {
                tracing::error!("the schema publisher thread panicked while stopping");
            }
        }
    }
}

impl Drop for SchemaPublisherHandle {
    fn drop(&mut self) {
        self.stop();
    }
}

impl SchemaPublisher {
    /// Opens the ledger; on first start the config file's schema becomes version 1. The live
    /// schema is [`SchemaPublisher::live_schema`].
    pub fn open(
        store: &Store,
        registry: Arc<Registry>,
        file_schema: Schema,
    ) -> StorageResult<SchemaPublisher> {
        let ledger = Ledger::open(store)?;
        let file_checksum = checksum(&file_schema)?;
        let active_number = ledger.active_number()?;
        let active = match active_number.map(|n| ledger.version(n)).transpose()? {
            Some(Some(version)) => version,
            _ => {
                let version = SchemaVersion {
                    number: 1,
                    checksum: file_checksum.clone(),
                    created_at: clock::now_ms(),
                    created_by: None,
                    message: Some("Seeded from the configuration file".into()),
                    restored_from: None,
                    snapshot: file_schema.clone(),
                };
                let mut watermarks = IdWatermarks::default();
                watermarks.cover(&file_schema);
                ledger.set_seed_checksum(&file_checksum)?;
                ledger.append(
                    &version,
                    &watermarks,
                    &Draft::of(&version, version.created_at),
                )?;
                version
            }
        };
        let seed_checksum = ledger
            .seed_checksum()?
            .unwrap_or_else(|| file_checksum.clone());
        let draft = match ledger.draft()? {
            Some(draft) => draft,
            None => Draft::of(&active, clock::now_ms()),
        };
        let mut watermarks = ledger.watermarks()?;
        watermarks.cover(&active.snapshot);
        if let Some(pending) = ledger.pending()? {
            roll_back_interrupted_publish(store, &active.snapshot)?;
            watermarks.cover(&pending);
            ledger.clear_pending(&watermarks)?;
        }
        Ok(SchemaPublisher {
            ledger,
            store: store.clone(),
            registry,
            file_schema,
            file_checksum,
            seed_checksum,
            active,
            draft,
            watermarks,
        })
    }

    /// The active version's schema (what the registry must serve).
    pub fn live_schema(&self) -> &Schema {
        &self.active.snapshot
    }

    /// Starts the actor on a thread of its own (its dry runs read whole tables).
    pub fn start(self) -> SchemaPublisherHandle {
        let arbiter = Arbiter::new();
        let addr = Actor::start_in_arbiter(&arbiter.handle(), move |_| self);
        SchemaPublisherHandle {
            addr,
            arbiter: std::sync::Mutex::new(Some(arbiter)),
        }
    }

    /// An allocator above every id of the ledger, the active version, the draft and the disk.
    fn allocator(&self) -> IdAllocator {
        let mut watermarks = self.watermarks.clone();
        watermarks.cover(&self.active.snapshot);
        watermarks.cover(&self.draft.snapshot);
        let on_disk = self
            .store
            .table_ids_on_disk()
            .into_iter()
            .max()
            .unwrap_or(0);
        watermarks.table = watermarks.table.max(on_disk);
        IdAllocator { watermarks }
    }

    fn status(&self) -> SchemaStatus {
        let drift = if self.active.checksum == self.file_checksum {
            Drift::InSync
        } else if self.file_checksum != self.seed_checksum {
            Drift::FileAhead
        } else {
            Drift::DriftedFromFile
        };
        SchemaStatus {
            active_version: self.active.number,
            active_checksum: self.active.checksum.clone(),
            draft_dirty: self.draft.dirty,
            draft_base_version: self.draft.base_version,
            draft_stale: self.draft.base_version != self.active.number,
            drift,
            file_checksum: self.file_checksum.clone(),
        }
    }

    fn save_draft(&mut self, draft: Draft) -> SchemaResult<Draft> {
        self.ledger.save_draft(&draft)?;
        self.draft = draft;
        Ok(self.draft.clone())
    }

    fn check_base(&self, base_version: u64) -> SchemaResult<()> {
        if base_version != self.active.number {
            return Err(SchemaError::Stale {
                expected: self.active.number,
                actual: base_version,
            });
        }
        Ok(())
    }

    /// Every rule of SPEC §3 and the row rules, then a dry run of the data migration of every
    /// table that exists now. `schema` must have its ids assigned.
    fn validate(&self, schema: &Schema, allow_destructive: bool) -> SchemaResult<Vec<SchemaIssue>> {
        let mut candidate = schema.clone();
        if let Err(issues) = normalize_schema(&mut candidate) {
            return Ok(issues);
        }
        let mut issues = Vec::new();
        for (index, table) in candidate.tables.iter().enumerate() {
            for problem in crate::permissions::check_row_filters([table]) {
                issues.push(SchemaIssue {
                    path: format!("/tables/{index}/permissions/rowFilter"),
                    message: problem,
                });
            }
        }
        if !issues.is_empty() {
            return Ok(issues);
        }
        for (table_index, table) in candidate.tables.iter().enumerate() {
            let (store, old, options) = match self.registry.by_id(table.id) {
                Some(handle) => (
                    handle.shared.store.clone(),
                    handle.shared.schema(),
                    MigrationOptions {
                        allow_destructive,
                        rebuild: false,
                    },
                ),
                None => {
                    if !self.store.table_ids_on_disk().contains(&table.id) {
                        continue;
                    }
                    (
                        self.store.table(table.id)?,
                        Arc::new(table.clone()),
                        MigrationOptions {
                            allow_destructive: false,
                            rebuild: true,
                        },
                    )
                }
            };
            if let Err(failures) = migrate(&store, &old, table, options, false)? {
                for failure in failures {
                    let field_index = table
                        .fields
                        .iter()
                        .position(|field| field.id == failure.field_id)
                        .unwrap_or(0);
                    issues.push(SchemaIssue {
                        path: format!(
                            "/tables/{table_index}/fields/{field_index}/{}",
                            failure.option
                        ),
                        message: failure.message,
                    });
                }
            }
        }
        Ok(issues)
    }

    /// Validates `candidate` (ids assigned here) and makes it live; see the module comment.
    fn publish(
        &mut self,
        mut candidate: Schema,
        meta: PublishMeta,
    ) -> ResponseActFuture<Self, SchemaResult<SchemaVersion>> {
        let mut allocator = self.allocator();
        let reference = self.active.snapshot.clone();
        allocator.assign(&mut candidate, &reference);
        let prepared = (|| {
            let issues = self.validate(&candidate, meta.allow_destructive)?;
            if !issues.is_empty() {
                return Err(SchemaError::Invalid(issues));
            }
            normalize_schema(&mut candidate).map_err(SchemaError::Invalid)?;
            Ok(self.plan(&candidate, meta.allow_destructive))
        })();
        let steps = match prepared {
            Ok(steps) => steps,
            Err(error) => return Box::pin(actix::fut::ready(Err(error))),
        };
        if let Err(error) = self.ledger.set_pending(&candidate) {
            return Box::pin(actix::fut::ready(Err(error.into())));
        }
        let registry = Arc::clone(&self.registry);
        let store = self.store.clone();
        let work = wrap_future::<_, Self>(apply_steps(registry, store, steps));
        Box::pin(work.map(move |outcome, actor, _context| {
            if let Err(error) = outcome {
                let mut watermarks = allocator.watermarks;
                watermarks.cover(&candidate);
                if let Err(error) = actor.ledger.clear_pending(&watermarks) {
                    tracing::error!(%error, "could not clear the pending publish");
                }
                actor.watermarks = watermarks;
                return Err(error);
            }
            actor.record_version(candidate, meta, allocator)
        }))
    }

    /// What going from the active version to `candidate` does, table by table.
    fn plan(&self, candidate: &Schema, allow_destructive: bool) -> Vec<Step> {
        let mut steps = Vec::new();
        for old in &self.active.snapshot.tables {
            if !candidate.tables.iter().any(|table| table.id == old.id) {
                steps.push(Step::Remove {
                    table_id: old.id,
                    old: old.clone(),
                    destroy: allow_destructive,
                });
            }
        }
        for table in &candidate.tables {
            match self.registry.by_id(table.id) {
                Some(handle) => {
                    if *handle.shared.schema() != *table {
                        steps.push(Step::Change {
                            handle,
                            new: table.clone(),
                            allow_destructive,
                        });
                    }
                }
                None => steps.push(Step::Install { new: table.clone() }),
            }
        }
        steps
    }

    /// Appends the now-live `snapshot` to the ledger as the next version.
    fn record_version(
        &mut self,
        snapshot: Schema,
        meta: PublishMeta,
        allocator: IdAllocator,
    ) -> SchemaResult<SchemaVersion> {
        let number = self
            .ledger
            .newest_number()?
            .max(self.active.number)
            .saturating_add(1);
        let version = SchemaVersion {
            number,
            checksum: checksum(&snapshot)?,
            created_at: clock::now_ms(),
            created_by: meta.user_id,
            message: meta.message,
            restored_from: meta.restored_from,
            snapshot,
        };
        let mut watermarks = allocator.watermarks;
        watermarks.cover(&version.snapshot);
        let draft = if self.draft.dirty {
            self.draft.clone()
        } else {
            Draft::of(&version, version.created_at)
        };
        if let Err(error) = self.ledger.append(&version, &watermarks, &draft) {
            tracing::error!(%error, version = number, "the published schema could not be recorded");
            return Err(error.into());
        }
        self.watermarks = watermarks;
        self.active = version.clone();
        self.draft = draft;
        tracing::info!(version = number, "schema version published");
        Ok(version)
    }
}

impl Actor for SchemaPublisher {
    type Context = Context<Self>;
}

/// One table's part of a publish.
enum Step {
    Remove {
        table_id: u32,
        old: TableSchema,
        destroy: bool,
    },
    Change {
        handle: TableHandle,
        new: TableSchema,
        allow_destructive: bool,
    },
    Install {
        new: TableSchema,
    },
}

/// What was done, to undo it if a later step fails.
enum Done {
    Removed(TableSchema),
    Changed(TableHandle, TableSchema),
    Installed(u32),
}

/// Runs the steps: removals, then changes, then installs. On failure every step done is undone
/// (in reverse) and the error returned.
async fn apply_steps(registry: Arc<Registry>, store: Store, steps: Vec<Step>) -> SchemaResult<()> {
    let mut done: Vec<Done> = Vec::new();
    let mut destroyed = Vec::new();
    let mut outcome = Ok(());
    for step in steps {
        let result = match step {
            Step::Remove {
                table_id,
                old,
                destroy,
            } => {
                registry.remove(table_id);
                done.push(Done::Removed(old));
                if destroy {
                    destroyed.push(table_id);
                }
                Ok(())
            }
            Step::Change {
                handle,
                new,
                allow_destructive,
            } => {
                let old = (*handle.shared.schema()).clone();
                let options = MigrationOptions {
                    allow_destructive,
                    rebuild: false,
                };
                let sent = handle
                    .addr
                    .send(ApplySchema {
                        schema: new,
                        options,
                    })
                    .await;
                match sent {
                    Ok(Ok(_)) => {
                        done.push(Done::Changed(handle, old));
                        Ok(())
                    }
                    Ok(Err(error)) => Err(SchemaError::Domain(error)),
                    Err(error) => Err(SchemaError::Domain(DomainError::Unavailable(format!(
                        "table actor unavailable: {error}"
                    )))),
                }
            }
            Step::Install { new } => install_table(&registry, &store, new, &mut done).await,
        };
        if let Err(error) = result {
            outcome = Err(error);
            break;
        }
    }
    if outcome.is_err() {
        undo(&registry, done).await;
        return outcome;
    }
    for table_id in destroyed {
        if let Err(error) = store.drop_table(table_id) {
            tracing::error!(table = table_id, %error, "could not erase a removed table");
        }
    }
    Ok(())
}

/// Serves a new table; a tree that already holds records (a restored or cloned table) has its
/// values converted and its indexes rebuilt for the schema first.
async fn install_table(
    registry: &Arc<Registry>,
    store: &Store,
    new: TableSchema,
    done: &mut Vec<Done>,
) -> SchemaResult<()> {
    let had_data = store.table_ids_on_disk().contains(&new.id)
        && store.table(new.id)?.records(None, false).next().is_some();
    let table_id = new.id;
    let handle = registry.install(new.clone())?;
    done.push(Done::Installed(table_id));
    if had_data {
        let sent = handle
            .addr
            .send(ApplySchema {
                schema: new,
                options: MigrationOptions {
                    allow_destructive: false,
                    rebuild: true,
                },
            })
            .await;
        match sent {
            Ok(Ok(_)) => {}
            Ok(Err(error)) => return Err(SchemaError::Domain(error)),
            Err(error) => {
                return Err(SchemaError::Domain(DomainError::Unavailable(format!(
                    "table actor unavailable: {error}"
                ))))
            }
        }
    }
    Ok(())
}

/// Start-up after a publish was interrupted (the process stopped between its first table change
/// and its append to the ledger): every table of the active version has its stored values
/// converted back to that version's types and its indexes rebuilt, before anything serves it.
/// Values a table cannot convert back are logged and left as they are.
fn roll_back_interrupted_publish(store: &Store, active: &Schema) -> StorageResult<()> {
    tracing::warn!(
        "a schema publish was interrupted: the tables are put back on the active version"
    );
    let on_disk = store.table_ids_on_disk();
    for table in active
        .tables
        .iter()
        .filter(|table| on_disk.contains(&table.id))
    {
        let table_store = store.table(table.id)?;
        let options = MigrationOptions {
            allow_destructive: false,
            rebuild: true,
        };
        match migrate(&table_store, table, table, options, true) {
            Ok(Ok(migration)) => {
                if let Some(batch) = migration.batch {
                    table_store.apply(batch)?;
                }
            }
            Ok(Err(failures)) => {
                for failure in failures {
                    tracing::error!(table = %table.name, problem = %failure.message, "roll-back left values that do not fit");
                }
            }
            Err(DomainError::Storage(error)) => return Err(error),
            Err(error) => tracing::error!(table = %table.name, %error, "roll-back failed"),
        }
    }
    store.flush_blocking()
}

/// Puts back what a failed publish did, newest first. Best effort: each failure is logged.
async fn undo(registry: &Arc<Registry>, done: Vec<Done>) {
    for step in done.into_iter().rev() {
        match step {
            Done::Installed(table_id) => {
                registry.remove(table_id);
            }
            Done::Removed(old) => {
                let table_id = old.id;
                if let Err(error) = registry.install(old) {
                    tracing::error!(table = table_id, %error, "undo: could not serve the table again");
                }
            }
            Done::Changed(handle, old) => {
                let table_id = handle.shared.id;
                let sent = handle
                    .addr
                    .send(ApplySchema {
                        schema: old,
                        options: MigrationOptions {
                            allow_destructive: false,
                            rebuild: true,
                        },
                    })
                    .await;
                if !matches!(sent, Ok(Ok(_))) {
                    tracing::error!(table = table_id, "undo: could not put back the old schema");
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Messages, each followed by its handler.

/// The active version, the draft's state and the drift against the config file.
#[derive(Message)]
#[rtype(result = "SchemaStatus")]
pub struct GetSchemaStatus;

impl Handler<GetSchemaStatus> for SchemaPublisher {
    type Result = MessageResult<GetSchemaStatus>;

    fn handle(&mut self, _message: GetSchemaStatus, _context: &mut Context<Self>) -> Self::Result {
        MessageResult(self.status())
    }
}

/// The live schema against the config file's: from the side that stayed to the side that moved
/// (file → live unless the file is ahead).
#[derive(Message)]
#[rtype(result = "SchemaDiff")]
pub struct DiffSchema;

impl Handler<DiffSchema> for SchemaPublisher {
    type Result = MessageResult<DiffSchema>;

    fn handle(&mut self, _message: DiffSchema, _context: &mut Context<Self>) -> Self::Result {
        let diff = if self.status().drift == Drift::FileAhead {
            SchemaDiff {
                from: "live",
                to: "file",
                changes: diff_schemas(&self.active.snapshot, &self.file_schema),
            }
        } else {
            SchemaDiff {
                from: "file",
                to: "live",
                changes: diff_schemas(&self.file_schema, &self.active.snapshot),
            }
        };
        MessageResult(diff)
    }
}

/// The active version (with its snapshot).
#[derive(Message)]
#[rtype(result = "SchemaVersion")]
pub struct GetActiveVersion;

impl Handler<GetActiveVersion> for SchemaPublisher {
    type Result = MessageResult<GetActiveVersion>;

    fn handle(&mut self, _message: GetActiveVersion, _context: &mut Context<Self>) -> Self::Result {
        MessageResult(self.active.clone())
    }
}

/// The working draft.
#[derive(Message)]
#[rtype(result = "Draft")]
pub struct GetDraft;

impl Handler<GetDraft> for SchemaPublisher {
    type Result = MessageResult<GetDraft>;

    fn handle(&mut self, _message: GetDraft, _context: &mut Context<Self>) -> Self::Result {
        MessageResult(self.draft.clone())
    }
}

/// Replaces the draft's snapshot. `base_version` (when given) must be the active version. Ids
/// left at 0 are assigned.
#[derive(Message)]
#[rtype(result = "SchemaResult<Draft>")]
pub struct ReplaceDraft {
    pub snapshot: Schema,
    pub base_version: Option<u64>,
}

impl Handler<ReplaceDraft> for SchemaPublisher {
    type Result = SchemaResult<Draft>;

    fn handle(&mut self, message: ReplaceDraft, _context: &mut Context<Self>) -> Self::Result {
        if let Some(base_version) = message.base_version {
            self.check_base(base_version)?;
        }
        let mut snapshot = message.snapshot;
        let reference = self.active.snapshot.clone();
        self.allocator().assign(&mut snapshot, &reference);
        let draft = Draft {
            dirty: snapshot != self.active.snapshot,
            snapshot,
            base_version: self.active.number,
            base_snapshot: self.active.snapshot.clone(),
            updated_at: clock::now_ms(),
        };
        self.save_draft(draft)
    }
}

/// Resets the draft to the active version.
#[derive(Message)]
#[rtype(result = "SchemaResult<Draft>")]
pub struct DiscardDraft;

impl Handler<DiscardDraft> for SchemaPublisher {
    type Result = SchemaResult<Draft>;

    fn handle(&mut self, _message: DiscardDraft, _context: &mut Context<Self>) -> Self::Result {
        let draft = Draft::of(&self.active, clock::now_ms());
        self.save_draft(draft)
    }
}

/// Changes the draft's snapshot in place (add, patch or remove a table): answers the draft and
/// whether it changed.
#[derive(Message)]
#[rtype(result = "SchemaResult<(Draft, bool)>")]
pub struct EditDraft {
    pub edit: DraftEdit,
}

impl Handler<EditDraft> for SchemaPublisher {
    type Result = SchemaResult<(Draft, bool)>;

    fn handle(&mut self, message: EditDraft, _context: &mut Context<Self>) -> Self::Result {
        let mut snapshot = self.draft.snapshot.clone();
        (message.edit)(&mut snapshot)?;
        let reference = self.active.snapshot.clone();
        self.allocator().assign(&mut snapshot, &reference);
        let changed = snapshot != self.draft.snapshot;
        if !changed {
            return Ok((self.draft.clone(), false));
        }
        let mut draft = self.draft.clone();
        draft.dirty = snapshot != draft.base_snapshot;
        draft.snapshot = snapshot;
        draft.updated_at = clock::now_ms();
        Ok((self.save_draft(draft)?, true))
    }
}

/// Checks the draft: every problem with its JSON pointer (empty: valid).
#[derive(Message)]
#[rtype(result = "SchemaResult<Vec<SchemaIssue>>")]
pub struct ValidateDraft;

impl Handler<ValidateDraft> for SchemaPublisher {
    type Result = SchemaResult<Vec<SchemaIssue>>;

    fn handle(&mut self, _message: ValidateDraft, _context: &mut Context<Self>) -> Self::Result {
        let mut snapshot = self.draft.snapshot.clone();
        let reference = self.active.snapshot.clone();
        self.allocator().assign(&mut snapshot, &reference);
        self.validate(&snapshot, false)
    }
}

/// Publishes the draft as the next version. `base_version` must be the active version and the
/// draft must be based on it.
#[derive(Message)]
#[rtype(result = "SchemaResult<SchemaVersion>")]
pub struct PublishDraft {
    pub base_version: u64,
    pub meta: PublishMeta,
}

impl Handler<PublishDraft> for SchemaPublisher {
    type Result = AtomicResponse<Self, SchemaResult<SchemaVersion>>;

    fn handle(&mut self, message: PublishDraft, _context: &mut Context<Self>) -> Self::Result {
        let checked = self.check_base(message.base_version).and_then(|()| {
            if self.draft.base_version != self.active.number {
                Err(SchemaError::Stale {
                    expected: self.active.number,
                    actual: self.draft.base_version,
                })
            } else {
                Ok(())
            }
        });
        if let Err(error) = checked {
            return AtomicResponse::new(Box::pin(actix::fut::ready(Err(error))));
        }
        let snapshot = self.draft.snapshot.clone();
        // The published draft becomes clean (record_version keeps only a dirty draft).
        self.draft.dirty = false;
        let work = self.publish(snapshot, message.meta);
        AtomicResponse::new(Box::pin(work.map(|outcome, actor, _| {
            if outcome.is_err() {
                actor.draft.dirty = actor.draft.snapshot != actor.draft.base_snapshot;
            }
            outcome
        })))
    }
}

/// Re-applies the draft's changes on the active version.
#[derive(Message)]
#[rtype(result = "SchemaResult<Draft>")]
pub struct RebaseDraft;

impl Handler<RebaseDraft> for SchemaPublisher {
    type Result = SchemaResult<Draft>;

    fn handle(&mut self, _message: RebaseDraft, _context: &mut Context<Self>) -> Self::Result {
        let merged = rebase_schema(
            &self.draft.base_snapshot,
            &self.draft.snapshot,
            &self.active.snapshot,
        )
        .map_err(SchemaError::Conflicts)?;
        let draft = Draft {
            dirty: merged != self.active.snapshot,
            snapshot: merged,
            base_version: self.active.number,
            base_snapshot: self.active.snapshot.clone(),
            updated_at: clock::now_ms(),
        };
        self.save_draft(draft)
    }
}

/// Every kept version, newest first, and the active version's number.
#[derive(Message)]
#[rtype(result = "SchemaResult<(Vec<SchemaVersion>, u64)>")]
pub struct ListVersions;

impl Handler<ListVersions> for SchemaPublisher {
    type Result = SchemaResult<(Vec<SchemaVersion>, u64)>;

    fn handle(&mut self, _message: ListVersions, _context: &mut Context<Self>) -> Self::Result {
        Ok((self.ledger.versions()?, self.active.number))
    }
}

/// One version with its snapshot.
#[derive(Message)]
#[rtype(result = "SchemaResult<SchemaVersion>")]
pub struct GetVersion {
    pub number: u64,
}

impl Handler<GetVersion> for SchemaPublisher {
    type Result = SchemaResult<SchemaVersion>;

    fn handle(&mut self, message: GetVersion, _context: &mut Context<Self>) -> Self::Result {
        self.ledger
            .version(message.number)?
            .ok_or_else(|| version_not_found(message.number))
    }
}

/// Publishes a new version equal to version `number`.
#[derive(Message)]
#[rtype(result = "SchemaResult<SchemaVersion>")]
pub struct RestoreVersion {
    pub number: u64,
    pub user_id: Option<String>,
}

impl Handler<RestoreVersion> for SchemaPublisher {
    type Result = AtomicResponse<Self, SchemaResult<SchemaVersion>>;

    fn handle(&mut self, message: RestoreVersion, _context: &mut Context<Self>) -> Self::Result {
        let version = match self.ledger.version(message.number) {
            Ok(Some(version)) => version,
            Ok(None) => {
                return AtomicResponse::new(Box::pin(actix::fut::ready(Err(version_not_found(
                    message.number,
                )))))
            }
            Err(error) => {
                return AtomicResponse::new(Box::pin(actix::fut::ready(Err(error.into()))))
            }
        };
        let meta = PublishMeta {
            user_id: message.user_id,
            message: Some(format!("Restored version {}", message.number)),
            allow_destructive: false,
            restored_from: Some(message.number),
        };
        AtomicResponse::new(self.publish(version.snapshot, meta))
    }
}

/// Drops every version but the newest `keep` (never the active one): answers how many went.
#[derive(Message)]
#[rtype(result = "SchemaResult<u64>")]
pub struct PruneVersions {
    pub keep: usize,
}

impl Handler<PruneVersions> for SchemaPublisher {
    type Result = SchemaResult<u64>;

    fn handle(&mut self, message: PruneVersions, _context: &mut Context<Self>) -> Self::Result {
        Ok(self.ledger.prune(message.keep)?)
    }
}

/// Applies a runtime table operation to the active schema and publishes the result.
#[derive(Message)]
#[rtype(result = "SchemaResult<(SchemaVersion, Schema)>")]
pub struct ChangeSchema {
    pub edit: SchemaEdit,
    pub meta: PublishMeta,
}

impl Handler<ChangeSchema> for SchemaPublisher {
    type Result = AtomicResponse<Self, SchemaResult<(SchemaVersion, Schema)>>;

    fn handle(&mut self, message: ChangeSchema, _context: &mut Context<Self>) -> Self::Result {
        let mut snapshot = self.active.snapshot.clone();
        let mut allocator = self.allocator();
        if let Err(error) = (message.edit)(&mut snapshot, &mut allocator) {
            return AtomicResponse::new(Box::pin(actix::fut::ready(Err(error))));
        }
        let work = self.publish(snapshot, message.meta);
        AtomicResponse::new(Box::pin(work.map(|outcome, actor, _| {
            outcome.map(|version| (version, actor.active.snapshot.clone()))
        })))
    }
}

/// Clones a table under a new name (and id), with its records when `copy_data`, and publishes.
/// Answers the version, the clone's id and how many records were copied.
#[derive(Message)]
#[rtype(result = "SchemaResult<(SchemaVersion, u32, u64)>")]
pub struct CloneTable {
    pub source: String,
    pub name: String,
    pub copy_data: bool,
    pub meta: PublishMeta,
}

impl Handler<CloneTable> for SchemaPublisher {
    type Result = AtomicResponse<Self, SchemaResult<(SchemaVersion, u32, u64)>>;

    fn handle(&mut self, message: CloneTable, _context: &mut Context<Self>) -> Self::Result {
        let prepared = (|| {
            let handle = self.registry.resolve(&message.source).ok_or_else(|| {
                DomainError::NotFound(format!("Table '{}' not found", message.source))
            })?;
            if self.active.snapshot.table(&message.name).is_some() {
                return Err(SchemaError::Domain(DomainError::Conflict {
                    message: format!("A table named '{}' already exists", message.name),
                    field: Some("name".into()),
                }));
            }
            let mut clone = (*handle.shared.schema()).clone();
            let clone_id = self.allocator().next_table_id();
            // A self-relationship (naming the source by name or id) points at the clone: the
            // copied records' links are ids of the clone's own (copied) records.
            let self_ids: Vec<u32> =
                crate::table::self_relationships(&clone, &clone.id.to_string())
                    .map(|field| field.id)
                    .collect();
            for field in clone
                .fields
                .iter_mut()
                .filter(|field| self_ids.contains(&field.id))
            {
                field.related_table = Some(message.name.clone());
            }
            clone.id = clone_id;
            clone.name = message.name.clone();
            let target = self.store.table(clone_id)?;
            Ok((handle, clone, target))
        })();
        let (handle, clone, target) = match prepared {
            Ok(prepared) => prepared,
            Err(error) => return AtomicResponse::new(Box::pin(actix::fut::ready(Err(error)))),
        };
        let clone_id = clone.id;
        let copy_data = message.copy_data;
        let copy = async move {
            if !copy_data {
                return Ok(0);
            }
            match handle.addr.send(CopyRecordsInto { target }).await {
                Ok(Ok(copied)) => Ok(copied),
                Ok(Err(error)) => Err(SchemaError::Domain(error)),
                Err(error) => Err(SchemaError::Domain(DomainError::Unavailable(format!(
                    "table actor unavailable: {error}"
                )))),
            }
        };
        let meta = message.meta;
        let work = wrap_future::<_, Self>(copy).then(move |copied, actor, _context| {
            let publish: ResponseActFuture<Self, SchemaResult<(SchemaVersion, u32, u64)>> =
                match copied {
                    Ok(copied) => {
                        let mut snapshot = actor.active.snapshot.clone();
                        snapshot.tables.push(clone);
                        Box::pin(actor.publish(snapshot, meta).map(move |outcome, actor, _| {
                            if outcome.is_err() {
                                // Nothing serves the copy: take its data away again.
                                if let Err(error) = actor.store.drop_table(clone_id) {
                                    tracing::error!(%error, "could not remove a failed clone");
                                }
                            }
                            outcome.map(|version| (version, clone_id, copied))
                        }))
                    }
                    Err(error) => Box::pin(actix::fut::ready(Err(error))),
                };
            publish
        });
        AtomicResponse::new(Box::pin(work))
    }
}

fn version_not_found(number: u64) -> SchemaError {
    SchemaError::Domain(DomainError::NotFound(format!(
        "Schema version {number} not found"
    )))
}

/// Table id → name of every table of a schema (for messages).
pub fn table_names(schema: &Schema) -> BTreeMap<u32, String> {
    schema
        .tables
        .iter()
        .map(|table| (table.id, table.name.clone()))
        .collect()
}
