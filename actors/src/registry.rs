//! The registry of live tables: for each one its current schema, its store, the address of the
//! actor that owns its writes and the bound on the writes it holds at once (its write queue).
//! Tables can be installed, re-schemed and removed while serving.

use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};

use actix::{Addr, Arbiter, ArbiterHandle, Handler, Message, Supervisor};
use arc_swap::ArcSwap;
use dashmap::DashMap;
use tabula_storage::{keys, StorageResult, Store, TableSchema, TableStore};

use crate::changes::{ChangeFeed, DEFAULT_REPLAY_LOG};
use crate::clock;
use crate::error::{DomainError, DomainResult};
use crate::table::{Admitted, TableActor};

/// The write queue of a table when none is configured (`limits.table_write_queue`).
pub const DEFAULT_WRITE_QUEUE: usize = 1024;

/// What readers and the table's actor share about one table.
pub struct TableShared {
    pub id: u32,
    schema: ArcSwap<TableSchema>,
    pub store: TableStore,
    live_count: AtomicU64,
    created_at: i64,
    updated_at: AtomicI64,
    restarts: AtomicU64,
    commits: AtomicU64,
    /// Writes admitted and not yet done with ([`WriteSlot`]s alive).
    queued_writes: Arc<AtomicUsize>,
    /// The most writes admitted at once.
    write_queue_limit: AtomicUsize,
}

/// One write admitted into a table's write queue. It holds its place while any clone of it
/// lives: the sender keeps one until the answer arrives (or it stops waiting), the message keeps
/// one until the actor has handled it — so neither a slow commit nor a caller that went away
/// lets more than the limit pile up in the actor's mailbox.
#[derive(Clone)]
pub struct WriteSlot {
    _place: Arc<QueuePlace>,
}

/// The place a [`WriteSlot`] holds, given back when the last clone is dropped.
struct QueuePlace {
    queued_writes: Arc<AtomicUsize>,
}

impl Drop for QueuePlace {
    fn drop(&mut self) {
        self.queued_writes.fetch_sub(1, Ordering::AcqRel);
    }
}

impl TableShared {
    /// A place in the table's write queue, or `Unavailable` (503 with `Retry-After`) when all
    /// of them are taken: the write is then refused before anything of it is done.
    pub fn admit_write(&self) -> DomainResult<WriteSlot> {
        let limit = self.write_queue_limit.load(Ordering::Acquire);
        let admitted =
            self.queued_writes
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |queued| {
                    (queued < limit).then_some(queued + 1)
                });
        match admitted {
            Ok(_) => Ok(WriteSlot {
                _place: Arc::new(QueuePlace {
                    queued_writes: Arc::clone(&self.queued_writes),
                }),
            }),
            Err(_) => Err(DomainError::Unavailable(
                "The table has too many writes in progress; retry shortly".into(),
            )),
        }
    }

    /// Writes admitted and not yet done with.
    pub fn queued_writes(&self) -> usize {
        self.queued_writes.load(Ordering::Acquire)
    }

    pub(crate) fn set_write_queue_limit(&self, limit: usize) {
        self.write_queue_limit
            .store(limit.max(1), Ordering::Release);
    }

    /// The table's schema as of now. Hold the `Arc` for the whole of one request so that the
    /// request sees one consistent version.
    pub fn schema(&self) -> Arc<TableSchema> {
        self.schema.load_full()
    }

    /// Replaces the schema of a table no registry serves any more.
    pub(crate) fn replace_schema(&self, schema: TableSchema) {
        self.schema.store(Arc::new(schema));
    }

    pub fn live_count(&self) -> u64 {
        self.live_count.load(Ordering::Acquire)
    }

    pub(crate) fn set_live_count(&self, count: u64) {
        self.live_count.store(count, Ordering::Release);
    }

    pub fn created_at(&self) -> i64 {
        self.created_at
    }

    pub fn updated_at(&self) -> i64 {
        self.updated_at.load(Ordering::Acquire)
    }

    pub(crate) fn touch(&self, at: i64) {
        self.updated_at.fetch_max(at, Ordering::AcqRel);
    }

    /// How many times the supervisor has restarted the table's actor.
    pub fn restarts(&self) -> u64 {
        self.restarts.load(Ordering::Acquire)
    }

    /// How many batches the table's actor has applied (several writes may share one).
    pub fn commits(&self) -> u64 {
        self.commits.load(Ordering::Acquire)
    }

    pub(crate) fn count_commit(&self) {
        self.commits.fetch_add(1, Ordering::AcqRel);
    }

    pub(crate) fn count_restart(&self) {
        self.restarts.fetch_add(1, Ordering::AcqRel);
    }

    /// Re-reads the live count from the store (after an actor restart).
    pub(crate) fn reload_live_count(&self) -> StorageResult<()> {
        let count = self.store.get_u64(keys::META_LIVE_COUNT)?.unwrap_or(0);
        self.set_live_count(count);
        Ok(())
    }
}

/// A table's shared state and the address of its actor.
#[derive(Clone)]
pub struct TableHandle {
    pub shared: Arc<TableShared>,
    pub addr: Addr<TableActor>,
}

impl TableHandle {
    /// Sends a write to the table's actor through its write queue: `Unavailable` at once when
    /// the queue is full (nothing is sent), else the actor's answer. The place is held until the
    /// actor has handled the message and the answer has arrived.
    pub async fn send_write<M>(&self, message: M) -> DomainResult<M::Result>
    where
        M: Message + Send + 'static,
        M::Result: Send,
        TableActor: Handler<Admitted<M>>,
    {
        let slot = self.shared.admit_write()?;
        let answer = self
            .addr
            .send(Admitted {
                message,
                slot: slot.clone(),
            })
            .await;
        drop(slot);
        answer.map_err(crate::lifecycle::unavailable)
    }
}

/// Every live table, by id and by name.
pub struct Registry {
    store: Store,
    tables: DashMap<u32, TableHandle>,
    names: DashMap<String, u32>,
    arbiters: Mutex<Vec<Arbiter>>,
    arbiter_handles: Vec<ArbiterHandle>,
    next_arbiter: AtomicUsize,
    /// The write queue of every table ([`TableShared::admit_write`]).
    write_queue_limit: AtomicUsize,
    myself: Weak<Registry>,
    /// Every committed record change, for realtime clients and webhooks.
    changes: Arc<ChangeFeed>,
}

impl Registry {
    /// A registry whose table actors run on `writer_threads` dedicated arbiters, off the HTTP
    /// workers. Must be called inside a running actix system.
    pub fn new(store: Store, writer_threads: usize) -> Arc<Registry> {
        let arbiters: Vec<Arbiter> = (0..writer_threads.max(1)).map(|_| Arbiter::new()).collect();
        let arbiter_handles = arbiters.iter().map(Arbiter::handle).collect();
        // Event numbers continue above every id handed out before (see `changes.rs`); a store
        // that cannot give one starts at 0 and only replay across this restart suffers.
        let last_sequence = store.generate_id().unwrap_or(0);
        let changes = ChangeFeed::new(last_sequence, DEFAULT_REPLAY_LOG);
        Arc::new_cyclic(|myself| Registry {
            store,
            tables: DashMap::new(),
            names: DashMap::new(),
            arbiters: Mutex::new(arbiters),
            arbiter_handles,
            next_arbiter: AtomicUsize::new(0),
            write_queue_limit: AtomicUsize::new(DEFAULT_WRITE_QUEUE),
            myself: myself.clone(),
            changes,
        })
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The change feed every table actor publishes its committed changes to.
    pub fn changes(&self) -> &Arc<ChangeFeed> {
        &self.changes
    }

    /// Sets the most writes each table holds at once (at least 1), for the tables served now
    /// and those installed later.
    pub fn set_write_queue_limit(&self, limit: usize) {
        let limit = limit.max(1);
        self.write_queue_limit.store(limit, Ordering::Release);
        for entry in self.tables.iter() {
            entry.value().shared.set_write_queue_limit(limit);
        }
    }

    /// Starts serving `schema`, or swaps the schema of the table with its id if it is already
    /// served. Messages already in the actor's mailbox finish on the schema they loaded.
    pub fn install(&self, schema: TableSchema) -> StorageResult<TableHandle> {
        let schema = Arc::new(schema);
        if let Some(handle) = self.tables.get(&schema.id).map(|entry| entry.clone()) {
            self.swap_schema(&handle.shared, Arc::unwrap_or_clone(schema));
            return Ok(handle);
        }
        let store = self.store.table(schema.id)?;
        let now = clock::now_ms();
        let created_at = match store.get_i64(keys::META_CREATED_AT)? {
            Some(at) => at,
            None => {
                let mut batch = tabula_storage::WriteBatch::new();
                batch.put_i64(keys::META_CREATED_AT, now);
                store.apply(batch)?;
                now
            }
        };
        // A data directory from before the posting blocks gets its search index rebuilt here,
        // before the table serves a single search (a no-op once the format marker is there).
        crate::query::search::ensure_index_format(&store, &schema)?;
        let shared = Arc::new(TableShared {
            id: schema.id,
            schema: ArcSwap::new(Arc::clone(&schema)),
            store,
            live_count: AtomicU64::new(0),
            created_at,
            updated_at: AtomicI64::new(created_at),
            restarts: AtomicU64::new(0),
            commits: AtomicU64::new(0),
            queued_writes: Arc::new(AtomicUsize::new(0)),
            write_queue_limit: AtomicUsize::new(self.write_queue_limit.load(Ordering::Acquire)),
        });
        shared.reload_live_count()?;
        let arbiter = self.pick_arbiter();
        let actor_shared = Arc::clone(&shared);
        let registry = self.myself.clone();
        let addr = Supervisor::start_in_arbiter(&arbiter, move |_ctx| {
            TableActor::new(actor_shared, registry)
        });
        let handle = TableHandle { shared, addr };
        self.names.insert(schema.name.clone(), schema.id);
        self.tables.insert(schema.id, handle.clone());
        Ok(handle)
    }

    /// Replaces a served table's schema (and its name in the by-name map). The table's actor
    /// calls this from its mailbox (`ApplySchema`) so that the swap is ordered with its writes.
    pub fn swap_schema(&self, shared: &TableShared, schema: TableSchema) {
        let schema = Arc::new(schema);
        let previous = shared.schema.swap(Arc::clone(&schema));
        if previous.name != schema.name {
            self.names
                .remove_if(&previous.name, |_, id| *id == schema.id);
            self.names.insert(schema.name.clone(), schema.id);
        }
        shared.touch(clock::now_ms());
    }

    /// Stops serving a table (its data stays on disk).
    pub fn remove(&self, table_id: u32) -> Option<TableHandle> {
        let (_, handle) = self.tables.remove(&table_id)?;
        let name = handle.shared.schema().name.clone();
        self.names.remove_if(&name, |_, id| *id == table_id);
        Some(handle)
    }

    /// Finds a table by numeric id or by name.
    pub fn resolve(&self, key: &str) -> Option<TableHandle> {
        let id = match key.parse::<u32>() {
            Ok(id) => id,
            Err(_) => *self.names.get(key)?,
        };
        self.tables.get(&id).map(|entry| entry.clone())
    }

    pub fn by_id(&self, table_id: u32) -> Option<TableHandle> {
        self.tables.get(&table_id).map(|entry| entry.clone())
    }

    /// Every served table, by id.
    pub fn all(&self) -> Vec<TableHandle> {
        let mut handles: Vec<TableHandle> = self
            .tables
            .iter()
            .map(|entry| entry.value().clone())
            .collect();
        handles.sort_by_key(|handle| handle.shared.id);
        handles
    }

    fn pick_arbiter(&self) -> ArbiterHandle {
        let index = self.next_arbiter.fetch_add(1, Ordering::Relaxed) % self.arbiter_handles.len();
        self.arbiter_handles[index].clone()
    }

    /// Stops every table actor and waits for their threads to end (after the HTTP server has
    /// drained, so no write is in flight). Idempotent.
    pub fn stop_actors(&self) {
        let arbiters = std::mem::take(
            &mut *self
                .arbiters
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        );
        for arbiter in &arbiters {
            arbiter.stop();
        }
        for arbiter in arbiters {
            if arbiter.join().is_err() {
                tracing::error!("a table actor thread panicked while stopping");
            }
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.stop_actors();
    }
}
