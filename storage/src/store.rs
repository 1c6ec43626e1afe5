//! The sled database of one data directory: a tree per table, a system tree, and the group
//! commit that makes writes durable.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sled::IVec;

use crate::codec;
use crate::durability::{DurableTicket, GroupCommit};
use crate::error::StorageResult;
use crate::journal::{ChangeEntry, Comment};
use crate::keys;
use crate::pages;
use crate::record::StoredRecord;
use crate::value::Value;

/// How long [`Store::open`] waits for the directory lock to be released.
pub const LOCK_RETRY_WINDOW: Duration = Duration::from_secs(2);

/// sled's page cache when nothing else is configured (`server.cache_mb`, default 64). sled's own
/// default is 1 GiB, and it fills it: RSS then grows with the data until the cache is full.
pub const DEFAULT_CACHE_BYTES: u64 = 64 * 1024 * 1024;

/// The whole store. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    group_commit: Arc<GroupCommit>,
    /// Each table's write generation, shared by every [`TableStore`] of that table.
    generations: Arc<Mutex<HashMap<u32, Arc<AtomicU64>>>>,
    directory: PathBuf,
    /// The companion stores opened so far ([`Store::companion`]), by name.
    companions: Arc<Mutex<HashMap<String, Store>>>,
}

/// A number no other write generation of this process has had: every applied batch of a table
/// moves the table to a fresh one, so a value remembered under a generation (a cached total)
/// is valid exactly while the table's generation is still that number. Unique across stores,
/// so caches keyed by table id cannot confuse two data directories opened by one process.
fn fresh_generation() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed) & !APPLYING
}

/// The bit of a write generation that marks a batch being applied.
const APPLYING: u64 = 1 << 63;

impl Store {
    /// Opens (or creates) the store in `directory`.
    ///
    /// A directory whose lock is still held is retried for up to [`LOCK_RETRY_WINDOW`]: after a
    /// store of this process is closed and dropped, sled's background IO threads can keep the
    /// file (and its lock) open for a moment, so an immediate reopen (an in-process restart)
    /// would otherwise fail now and then. A lock held by another process still fails, just later.
    pub fn open(directory: &Path) -> StorageResult<Store> {
        Store::open_with_cache(directory, DEFAULT_CACHE_BYTES)
    }

    /// [`Store::open`] with sled's page cache bounded to `cache_bytes` (`server.cache_mb`).
    pub fn open_with_cache(directory: &Path, cache_bytes: u64) -> StorageResult<Store> {
        let started = Instant::now();
        let db = loop {
            let outcome = sled::Config::new()
                .path(directory)
                .mode(sled::Mode::HighThroughput)
                .cache_capacity(cache_bytes.max(1024 * 1024))
                .open();
            match outcome {
                Err(sled::Error::Io(error))
                    // sled 0.34 reports a held lock only through the message.
                    if error.to_string().contains("could not acquire lock")
                        && started.elapsed() < LOCK_RETRY_WINDOW =>
                {
                    std::thread::sleep(Duration::from_millis(10));
                }
                outcome => break outcome?,
            }
        };
        let group_commit = Arc::new(GroupCommit::start(db.clone())?);
        Ok(Store {
            db,
            group_commit,
            generations: Arc::default(),
            directory: directory.to_path_buf(),
            companions: Arc::default(),
        })
    }

    /// A store of its own in the subdirectory `name` of this one, with a page cache of
    /// `cache_bytes`: for data whose write volume should neither grow this store's cache nor
    /// evict the tables' pages (the analytics rollups). Opened on first use and shared after
    /// that; closed with this store. Its writes are durable through its own
    /// [`Store::durable`], not this store's.
    pub fn companion(&self, name: &str, cache_bytes: u64) -> StorageResult<Store> {
        let mut companions = self
            .companions
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(store) = companions.get(name) {
            return Ok(store.clone());
        }
        let store = Store::open_with_cache(&self.directory.join(name), cache_bytes)?;
        companions.insert(name.to_owned(), store.clone());
        Ok(store)
    }

    /// The tree of one table (created empty on first use). The first time a process opens a
    /// table, an earlier version's layout is moved into this one's
    /// ([`TableStore::upgrade_layout`]) before the table is handed out.
    pub fn table(&self, table_id: u32) -> StorageResult<TableStore> {
        let tree = self.db.open_tree(format!("table/{table_id}"))?;
        let mut generations = self
            .generations
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let first_open = !generations.contains_key(&table_id);
        let generation = Arc::clone(
            generations
                .entry(table_id)
                .or_insert_with(|| Arc::new(AtomicU64::new(fresh_generation()))),
        );
        let store = TableStore {
            tree,
            db: self.db.clone(),
            group_commit: Arc::clone(&self.group_commit),
            generation,
        };
        if first_open {
            // Under the lock, so no other caller gets the table before it is upgraded; a
            // failed move is tried again by the next caller.
            match store.upgrade_layout() {
                Ok(0) => {}
                Ok(moved) => tracing::info!(table_id, keys = moved, "records moved into pages"),
                Err(error) => {
                    generations.remove(&table_id);
                    return Err(error);
                }
            }
        }
        Ok(store)
    }

    /// Ids of the tables that have a tree on disk.
    pub fn table_ids_on_disk(&self) -> Vec<u32> {
        self.db
            .tree_names()
            .iter()
            .filter_map(|name| {
                std::str::from_utf8(name)
                    .ok()?
                    .strip_prefix("table/")?
                    .parse()
                    .ok()
            })
            .collect()
    }

    /// Removes a table's tree and everything in it.
    pub fn drop_table(&self, table_id: u32) -> StorageResult<()> {
        self.db.drop_tree(format!("table/{table_id}"))?;
        Ok(())
    }

    /// A named tree for system data (users, sessions, schema versions, analytics rollups …).
    pub fn system_tree(&self, name: &str) -> StorageResult<sled::Tree> {
        Ok(self.db.open_tree(format!("sys/{name}"))?)
    }

    /// Removes a system tree and everything in it.
    pub fn drop_system_tree(&self, name: &str) -> StorageResult<()> {
        self.db.drop_tree(format!("sys/{name}"))?;
        Ok(())
    }

    /// A ticket that resolves once everything written before this call is on disk.
    pub fn durable(&self) -> DurableTicket {
        self.group_commit.ticket()
    }

    /// How many group-commit flushes have completed since the store was opened.
    pub fn flush_count(&self) -> u64 {
        self.group_commit.flush_count()
    }

    /// Flushes on the calling thread.
    pub fn flush_blocking(&self) -> StorageResult<()> {
        self.group_commit.flush_blocking()
    }

    /// Final flush and stop of the flusher (graceful shutdown).
    pub fn close(&self) -> StorageResult<()> {
        let companions: Vec<Store> = self
            .companions
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .values()
            .cloned()
            .collect();
        for companion in companions {
            companion.close()?;
        }
        self.group_commit.stop();
        self.flush_blocking()
    }

    /// Checks that a write reaches the disk (the health probe).
    pub fn check_writable(&self) -> StorageResult<()> {
        let tree = self.system_tree("health")?;
        tree.insert(b"probe", &[1u8])?;
        self.db.flush()?;
        Ok(())
    }

    /// The next id of the store-wide monotonic generator (change entries, comments): unique
    /// across every table and increasing, also across restarts and crashes.
    pub fn generate_id(&self) -> StorageResult<u64> {
        Ok(self.db.generate_id()?)
    }

    /// Bytes the database takes on disk.
    pub fn size_on_disk(&self) -> StorageResult<u64> {
        Ok(self.db.size_on_disk()?)
    }
}

/// How many keys one part of a long run of writes holds ([`PartedWrites`],
/// [`TableStore::apply_in_parts`]): sled holds a copy of every leaf a batch touches until the
/// batch ends, so one batch of a whole table or a whole day held hundreds of MiB at once.
pub const PART_KEYS: usize = 512;

/// Earlier-version keys moved per atomic batch by [`TableStore::upgrade_layout`]: large enough
/// that sled's fixed price per batch is small beside the keys (a part removes this many keys
/// and writes a few dozen pages or bitmaps).
const UPGRADE_PART: usize = 4096;

/// Writes to one tree that need not land atomically but are too many for one sled batch: they
/// are applied in order, [`PART_KEYS`] keys per batch, so a key written last lands last (a
/// marker that says the run is complete). The caller makes a crash between parts harmless.
pub struct PartedWrites<'a> {
    tree: &'a sled::Tree,
    batch: sled::Batch,
    staged: usize,
}

impl<'a> PartedWrites<'a> {
    pub fn new(tree: &'a sled::Tree) -> Self {
        PartedWrites {
            tree,
            batch: sled::Batch::default(),
            staged: 0,
        }
    }

    pub fn insert(&mut self, key: impl Into<IVec>, value: impl Into<IVec>) -> StorageResult<()> {
        self.batch.insert(key.into(), value.into());
        self.note_staged()
    }

    pub fn remove(&mut self, key: impl Into<IVec>) -> StorageResult<()> {
        self.batch.remove(key.into());
        self.note_staged()
    }

    fn note_staged(&mut self) -> StorageResult<()> {
        self.staged += 1;
        if self.staged == PART_KEYS {
            self.tree.apply_batch(std::mem::take(&mut self.batch))?;
            self.staged = 0;
        }
        Ok(())
    }

    /// Applies what is staged.
    pub fn finish(self) -> StorageResult<()> {
        self.tree.apply_batch(self.batch)?;
        Ok(())
    }
}

/// One table's tree. Reads are safe from any thread; writes go through [`TableStore::apply`] and
/// are made only by the table's actor.
#[derive(Clone)]
pub struct TableStore {
    tree: sled::Tree,
    db: sled::Db,
    group_commit: Arc<GroupCommit>,
    generation: Arc<AtomicU64>,
}

/// The writes of one logical change, applied atomically. Later writes of a key replace earlier
/// ones, and the batch can be read back ([`WriteBatch::get`], [`WriteBatch::record`]), so a
/// commit that gathers several changes sees its own earlier writes. A savepoint lets a change
/// that fails half-way be taken out again without disturbing the writes gathered before it.
///
/// Records and index entries are gathered per id and merged into the stored pages and
/// bitmaps when the batch is applied ([`crate::pages`]); every other key is written as given.
#[derive(Default)]
pub struct WriteBatch {
    writes: BTreeMap<IVec, Option<IVec>>,
    /// Record id → its encoding, or `None` to remove it.
    records: BTreeMap<u64, Option<IVec>>,
    /// Bitmap key (`X ++ field ++ value ++ group`) → (bits to set, bits to clear).
    index: BTreeMap<Vec<u8>, (u64, u64)>,
    /// Since the savepoint: each write and what the batch held for it before (`None`:
    /// nothing).
    undo: Option<Vec<Undo>>,
}

enum Undo {
    Key(IVec, Option<Option<IVec>>),
    Record(u64, Option<Option<IVec>>),
    Index(Vec<u8>, Option<(u64, u64)>),
}

impl WriteBatch {
    pub fn new() -> Self {
        WriteBatch::default()
    }

    pub fn is_empty(&self) -> bool {
        self.writes.is_empty() && self.records.is_empty() && self.index.is_empty()
    }

    /// How many distinct writes the batch holds: keys, records and index bitmaps.
    pub fn len(&self) -> usize {
        self.writes.len() + self.records.len() + self.index.len()
    }

    pub fn put(&mut self, key: impl Into<IVec>, value: impl Into<IVec>) {
        self.write(key.into(), Some(value.into()));
    }

    pub fn remove(&mut self, key: impl Into<IVec>) {
        self.write(key.into(), None);
    }

    fn write(&mut self, key: IVec, value: Option<IVec>) {
        match &mut self.undo {
            Some(undo) => {
                let before = self.writes.insert(key.clone(), value);
                undo.push(Undo::Key(key, before));
            }
            None => {
                self.writes.insert(key, value);
            }
        }
    }

    fn write_record(&mut self, record_id: u64, value: Option<IVec>) {
        let before = self.records.insert(record_id, value);
        if let Some(undo) = &mut self.undo {
            undo.push(Undo::Record(record_id, before));
        }
    }

    /// Puts `record_id` into the index under `value` of a field (`present`), or takes it out.
    fn write_index(&mut self, field_id: u32, value: &Value, record_id: u64, present: bool) {
        let key = keys::index_group_key(field_id, value, pages::group_of(record_id));
        let bit = pages::bit_of(record_id);
        let before = self.index.get(&key).copied();
        let (mut set, mut clear) = before.unwrap_or((0, 0));
        if present {
            set |= bit;
            clear &= !bit;
        } else {
            clear |= bit;
            set &= !bit;
        }
        if let Some(undo) = &mut self.undo {
            undo.push(Undo::Index(key.clone(), before));
        }
        self.index.insert(key, (set, clear));
    }

    /// Adds record `record_id` to a field's index under `value`.
    pub fn put_index_entry(&mut self, field_id: u32, value: &Value, record_id: u64) {
        self.write_index(field_id, value, record_id, true);
    }

    /// Takes record `record_id` out of a field's index under `value`.
    pub fn remove_index_entry(&mut self, field_id: u32, value: &Value, record_id: u64) {
        self.write_index(field_id, value, record_id, false);
    }

    /// Removes a record (its slot in its page).
    pub fn remove_record(&mut self, record_id: u64) {
        self.write_record(record_id, None);
    }

    /// What the batch does to `key`: `None` when it does not touch it, `Some(None)` when it
    /// removes it, `Some(Some(value))` when it writes `value`. Keys only: records and index
    /// entries are read with [`WriteBatch::record`].
    pub fn get(&self, key: &[u8]) -> Option<Option<&IVec>> {
        self.writes.get(key).map(Option::as_ref)
    }

    /// The record the batch writes under `record_id` (`Some(None)`: it removes it; `None`: the
    /// batch does not touch it).
    pub fn record(&self, record_id: u64) -> StorageResult<Option<Option<StoredRecord>>> {
        match self.records.get(&record_id) {
            None => Ok(None),
            Some(None) => Ok(Some(None)),
            Some(Some(bytes)) => Ok(Some(Some(codec::decode(bytes, "record")?))),
        }
    }

    /// The holder the batch gives a unique value (`Some(None)`: it releases it; `None`: the
    /// batch does not touch it).
    pub fn unique_owner(&self, field_id: u32, value: &Value) -> Option<Option<u64>> {
        self.get(&keys::unique_key(field_id, value))
            .map(|bytes| bytes.and_then(|bytes| keys::trailing_record_id(bytes)))
    }

    /// Starts remembering writes so that [`WriteBatch::rollback`] can take them out again
    /// (one savepoint at a time; a new one replaces the last).
    pub fn savepoint(&mut self) {
        self.undo = Some(Vec::new());
    }

    /// Takes out every write made since the savepoint, newest first, and ends it.
    pub fn rollback(&mut self) {
        for undo in self.undo.take().unwrap_or_default().into_iter().rev() {
            match undo {
                Undo::Key(key, before) => restore(&mut self.writes, key, before),
                Undo::Record(id, before) => restore(&mut self.records, id, before),
                Undo::Index(key, before) => restore(&mut self.index, key, before),
            }
        }
    }

    /// Keeps the writes made since the savepoint and ends it.
    pub fn release(&mut self) {
        self.undo = None;
    }

    pub fn put_record(&mut self, record: &StoredRecord) -> StorageResult<()> {
        let bytes = codec::encode(record)?;
        self.write_record(record.id, Some(bytes.into()));
        Ok(())
    }

    pub fn put_u64(&mut self, key: &[u8], number: u64) {
        self.put(key.to_vec(), number.to_be_bytes().to_vec());
    }

    pub fn put_i64(&mut self, key: &[u8], number: i64) {
        self.put(key.to_vec(), number.to_be_bytes().to_vec());
    }

    /// Writes the journal group of one commit (`A ++ first id`): its change entries (with
    /// `before`/`after`, ids ascending) and `written`, the table's entries ever written including
    /// these. Nothing for an empty list.
    pub fn put_journal_group(
        &mut self,
        written: u64,
        entries: &[ChangeEntry],
    ) -> StorageResult<()> {
        let Some(first) = entries.first() else {
            return Ok(());
        };
        self.put(
            keys::activity_key(first.id).to_vec(),
            codec::encode(&(written, entries))?,
        );
        Ok(())
    }

    pub fn put_comment(&mut self, comment: &Comment) -> StorageResult<()> {
        self.put(
            keys::comment_key(comment.record_id, comment.id).to_vec(),
            codec::encode(comment)?,
        );
        Ok(())
    }
}

/// Puts back what a map held for `key` before a write (`None`: nothing).
fn restore<K: Ord, V>(map: &mut BTreeMap<K, V>, key: K, before: Option<V>) {
    match before {
        Some(before) => {
            map.insert(key, before);
        }
        None => {
            map.remove(&key);
        }
    }
}

impl TableStore {
    /// Applies a batch atomically. It is not durable until [`TableStore::durable`] resolves.
    ///
    /// Every applied batch moves the table to a fresh [write generation](TableStore::generation)
    /// once its writes are visible.
    pub fn apply(&self, batch: WriteBatch) -> StorageResult<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let writes = self.materialize(batch)?;
        self.apply_writes(writes)
    }

    fn apply_writes(&self, writes: BTreeMap<IVec, Option<IVec>>) -> StorageResult<()> {
        let mut batch = sled::Batch::default();
        for (key, value) in writes {
            match value {
                Some(value) => batch.insert(key, value),
                None => batch.remove(key),
            }
        }
        // While the batch goes in, the generation says so ([`TableStore::generation`] is
        // `None`); afterwards it is a new one, whatever the outcome.
        self.generation
            .store(fresh_generation() | APPLYING, Ordering::SeqCst);
        let outcome = self.tree.apply_batch(batch);
        self.generation.store(fresh_generation(), Ordering::SeqCst);
        outcome?;
        Ok(())
    }

    /// The batch as plain key writes: its record changes merged into their stored pages and
    /// its index changes into their stored bitmaps (a page or bitmap the batch also writes as a
    /// key is merged into that instead). Only the table's actor writes, so what is read here
    /// is what the batch was built against.
    fn materialize(&self, batch: WriteBatch) -> StorageResult<BTreeMap<IVec, Option<IVec>>> {
        let WriteBatch {
            mut writes,
            records,
            index,
            undo: _,
        } = batch;
        let stored = |writes: &BTreeMap<IVec, Option<IVec>>, key: &[u8]| -> StorageResult<_> {
            Ok(match writes.get(key) {
                Some(value) => value.clone(),
                None => self.tree.get(key)?,
            })
        };
        let mut records = records.into_iter().peekable();
        while let Some((first, _)) = records.peek() {
            let page = pages::page_of(*first);
            let mut changes: Vec<(u8, Option<IVec>)> = Vec::new();
            while let Some((id, value)) = records.next_if(|(id, _)| pages::page_of(*id) == page) {
                changes.push((pages::slot_of(id), value));
            }
            let key = keys::page_key(page);
            let before = stored(&writes, &key)?;
            let changes: Vec<(u8, Option<&IVec>)> = changes
                .iter()
                .map(|(slot, value)| (*slot, value.as_ref()))
                .collect();
            let merged = pages::merge_page(before.as_deref(), &changes)?;
            writes.insert(IVec::from(&key[..]), merged.map(IVec::from));
        }
        for (key, (set, clear)) in index {
            let before = match stored(&writes, &key)? {
                Some(bytes) => pages::decode_bitmap(&bytes)?,
                None => 0,
            };
            let bitmap = (before & !clear) | set;
            let value = (bitmap != 0).then(|| IVec::from(&bitmap.to_be_bytes()[..]));
            writes.insert(IVec::from(key), value);
        }
        Ok(writes)
    }

    /// Applies `batch` as several batches of [`PART_KEYS`] keys, in key order (its greatest
    /// key lands last): for writes too many for one sled batch that need not land atomically,
    /// such as an index rebuild whose format marker sorts last.
    pub fn apply_in_parts(&self, batch: WriteBatch) -> StorageResult<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut part = BTreeMap::new();
        for (key, value) in self.materialize(batch)? {
            part.insert(key, value);
            if part.len() == PART_KEYS {
                self.apply_writes(std::mem::take(&mut part))?;
            }
        }
        if !part.is_empty() {
            self.apply_writes(part)?;
        }
        Ok(())
    }

    /// Moves an earlier version's records (one `R` key each) into pages and its index entries
    /// (one `I` key each) into bitmaps (except those of live unique values, whose claims now
    /// serve as their entries), in atomic batches of [`UPGRADE_PART`] keys: each batch writes
    /// the pages and bitmaps and removes the keys they replace, so a crash part-way leaves every
    /// record and entry in exactly one of the two forms and the next open goes on from there.
    /// Reads see only pages and bitmaps, so [`Store::table`] runs this before the table is
    /// used. Answers how many keys were moved (0 for a table in this version's layout).
    pub fn upgrade_layout(&self) -> StorageResult<u64> {
        let mut moved = 0u64;
        for prefix in [keys::LEGACY_RECORD, keys::LEGACY_INDEX] {
            loop {
                let mut batch = WriteBatch::new();
                for entry in self.tree.scan_prefix([prefix]).take(UPGRADE_PART) {
                    let (key, value) = entry?;
                    let Some(id) = keys::trailing_record_id(&key).filter(|_| key.len() >= 9) else {
                        batch.remove(key);
                        continue;
                    };
                    if prefix == keys::LEGACY_RECORD {
                        batch.records.insert(id, Some(value));
                    } else if self.claimed_by(&key[1..key.len() - 8], id)? {
                        // A live unique value: its claim is its index entry now.
                    } else {
                        let mut group_key = Vec::with_capacity(key.len());
                        group_key.push(keys::INDEX);
                        group_key.extend_from_slice(&key[1..key.len() - 8]);
                        group_key.extend_from_slice(&pages::group_of(id).to_be_bytes());
                        batch.index.entry(group_key).or_insert((0, 0)).0 |= pages::bit_of(id);
                    }
                    batch.remove(key);
                    moved += 1;
                }
                if batch.is_empty() {
                    break;
                }
                self.apply(batch)?;
            }
        }
        Ok(moved)
    }

    /// The table's write generation, or `None` while a batch is being applied. It changes
    /// with every batch applied through any `TableStore` of this table, so what was read from
    /// the tree between two calls that gave the same `Some(generation)` is one consistent state
    /// (a seqlock): totals are cached under it (`query/counts.rs`) and posting lists that span
    /// several keys are read again when it moved. Held in memory only, like the caches it
    /// validates.
    pub fn generation(&self) -> Option<u64> {
        std::sync::atomic::fence(Ordering::SeqCst);
        let generation = self.generation.load(Ordering::SeqCst);
        (generation & APPLYING == 0).then_some(generation)
    }

    /// A ticket for everything written so far.
    pub fn durable(&self) -> DurableTicket {
        self.group_commit.ticket()
    }

    pub fn get_record(&self, record_id: u64) -> StorageResult<Option<StoredRecord>> {
        let Some(page) = self.tree.get(keys::page_key(pages::page_of(record_id)))? else {
            return Ok(None);
        };
        match pages::page_record(&page, pages::slot_of(record_id))? {
            Some(bytes) => Ok(Some(codec::decode(bytes, "record")?)),
            None => Ok(None),
        }
    }

    pub fn get_u64(&self, key: &[u8]) -> StorageResult<Option<u64>> {
        Ok(self.tree.get(key)?.and_then(|bytes| {
            let array: [u8; 8] = bytes.as_ref().try_into().ok()?;
            Some(u64::from_be_bytes(array))
        }))
    }

    pub fn get_i64(&self, key: &[u8]) -> StorageResult<Option<i64>> {
        Ok(self.get_u64(key)?.map(|number| number as i64))
    }

    /// The record holding `value` in the unique index of a field, if any.
    pub fn unique_owner(&self, field_id: u32, value: &Value) -> StorageResult<Option<u64>> {
        Ok(self
            .tree
            .get(keys::unique_key(field_id, value))?
            .and_then(|bytes| keys::trailing_record_id(&bytes)))
    }

    /// Whether the unique claim of `field_and_value` (the bytes after a `U` prefix) is held
    /// by `record_id`.
    fn claimed_by(&self, field_and_value: &[u8], record_id: u64) -> StorageResult<bool> {
        let mut claim = Vec::with_capacity(field_and_value.len() + 1);
        claim.push(keys::UNIQUE);
        claim.extend_from_slice(field_and_value);
        Ok(self
            .tree
            .get(claim)?
            .is_some_and(|holder| keys::trailing_record_id(&holder) == Some(record_id)))
    }

    /// Records in id order with id in `(after, ∞)`, ascending, or descending when `reverse`.
    pub fn records(
        &self,
        after: Option<u64>,
        reverse: bool,
    ) -> impl Iterator<Item = StorageResult<StoredRecord>> {
        let lower = match after {
            Some(id) => Bound::Excluded(id),
            None => Bound::Unbounded,
        };
        self.records_between(lower, Bound::Unbounded, reverse)
    }

    /// Records with ids between two bounds, in id order (descending when `descending`).
    pub fn records_between(
        &self,
        lower: Bound<u64>,
        upper: Bound<u64>,
        descending: bool,
    ) -> impl Iterator<Item = StorageResult<StoredRecord>> {
        let first = match lower {
            Bound::Unbounded => Some(0),
            Bound::Included(id) => Some(id),
            Bound::Excluded(id) => id.checked_add(1),
        };
        let last = match upper {
            Bound::Unbounded => Some(u64::MAX),
            Bound::Included(id) => Some(id),
            Bound::Excluded(id) => id.checked_sub(1),
        };
        let range = match (first, last) {
            (Some(first), Some(last)) if first <= last => Some((first, last)),
            _ => None,
        };
        let pages: Box<dyn Iterator<Item = sled::Result<(IVec, IVec)>>> = match range {
            None => Box::new(std::iter::empty()),
            Some((first, last)) => {
                let start = keys::page_key(pages::page_of(first));
                let end = keys::page_key(pages::page_of(last));
                let pages = self.tree.range(start..=end);
                if descending {
                    Box::new(pages.rev())
                } else {
                    Box::new(pages)
                }
            }
        };
        let (first, last) = range.unwrap_or((1, 0));
        PageRecords {
            pages,
            current: std::collections::VecDeque::new(),
            first,
            last,
            descending,
        }
    }

    /// Ids from a field's index between two encoded-value bounds (each a full key prefix from
    /// [`keys::index_value_prefix`], or `None` for the field's whole range).
    pub fn index_ids(
        &self,
        field_id: u32,
        lower: Bound<Vec<u8>>,
        upper: Bound<Vec<u8>>,
        reverse: bool,
    ) -> impl Iterator<Item = StorageResult<u64>> {
        let field_prefix = keys::index_field_prefix(field_id);
        // A value prefix is followed by the group number, so "after every key with this
        // prefix" is the prefix's successor.
        let start = match lower {
            Bound::Unbounded => field_prefix.clone(),
            Bound::Included(prefix) => prefix,
            Bound::Excluded(prefix) => prefix_successor(prefix),
        };
        let end = match upper {
            Bound::Unbounded => prefix_successor(field_prefix),
            Bound::Included(prefix) => prefix_successor(prefix),
            Bound::Excluded(prefix) => prefix,
        };
        self.index_entries(start, end, reverse)
            .map(|entry| entry.map(|(_, id)| id))
    }

    /// The index entries whose keys lie in `[start, end)` (bounds on `X ++ field ++ value`
    /// keys), in value order then id order (both reversed when `descending`): each as (its
    /// field and value — the entry's key without a group —, the record id).
    ///
    /// A unique field's live, non-empty values are indexed by their claims (`U ++ field ++
    /// value` → id) and have no bitmap, so the claims in the same range are merged in: one key
    /// per such record instead of two.
    pub fn index_entries(
        &self,
        start: Vec<u8>,
        end: Vec<u8>,
        descending: bool,
    ) -> impl Iterator<Item = StorageResult<(IVec, u64)>> {
        let claims_range = claims_range(&start, &end);
        let bitmaps = self.ordered_range(start, end, descending);
        let bitmaps = bitmaps.flat_map(move |entry| {
            let expanded: Box<dyn Iterator<Item = StorageResult<(IVec, u64)>>> =
                match decode_bitmap_entry(entry) {
                    Ok((key, group, bitmap)) => {
                        let value_key = IVec::from(&key[..key.len().saturating_sub(8)]);
                        Box::new(
                            pages::bitmap_ids(group, bitmap, descending)
                                .map(move |id| Ok((value_key.clone(), id))),
                        )
                    }
                    Err(error) => Box::new(std::iter::once(Err(error))),
                };
            expanded
        });
        let claims: Box<dyn Iterator<Item = sled::Result<(IVec, IVec)>>> = match claims_range {
            Some((start, end)) => self.ordered_range(start, end, descending),
            None => Box::new(std::iter::empty()),
        };
        let claims = claims.map(|entry| {
            let (key, value) = entry?;
            let mut value_key = key.to_vec();
            value_key[0] = keys::INDEX;
            Ok((
                IVec::from(value_key),
                keys::trailing_record_id(&value).unwrap_or(0),
            ))
        });
        MergeEntries {
            left: (Box::new(bitmaps) as EntryStream).peekable(),
            right: (Box::new(claims) as EntryStream).peekable(),
            descending,
        }
    }

    /// The tree's entries in `[start, end)`, ascending or descending.
    fn ordered_range(
        &self,
        start: Vec<u8>,
        end: Vec<u8>,
        descending: bool,
    ) -> Box<dyn Iterator<Item = sled::Result<(IVec, IVec)>>> {
        if start >= end {
            Box::new(std::iter::empty())
        } else if descending {
            Box::new(self.tree.range(start..end).rev())
        } else {
            Box::new(self.tree.range(start..end))
        }
    }

    /// Ids of trashed records in id order.
    pub fn trashed_ids(&self) -> impl Iterator<Item = StorageResult<u64>> {
        self.tree.scan_prefix([keys::TRASH]).map(|entry| {
            let (key, _) = entry?;
            Ok(keys::trailing_record_id(&key).unwrap_or(0))
        })
    }

    /// The next id of the store-wide monotonic generator (see [`Store::generate_id`]).
    pub fn generate_id(&self) -> StorageResult<u64> {
        Ok(self.db.generate_id()?)
    }

    /// Ids of the records whose value of an indexed field is exactly `value` (live and trashed).
    pub fn ids_with_value(&self, field_id: u32, value: &Value) -> StorageResult<Vec<u64>> {
        let prefix = keys::index_value_prefix(field_id, value);
        self.index_ids(
            field_id,
            Bound::Included(prefix.clone()),
            Bound::Included(prefix),
            false,
        )
        .collect()
    }

    /// The journal's floor: every entry with a smaller id was purged (0 before any purge).
    pub fn journal_floor(&self) -> StorageResult<u64> {
        Ok(self.get_u64(keys::META_ACTIVITY_FLOOR)?.unwrap_or(0))
    }

    /// The table's change entries one by one (with their changes), newest first (`reverse`) or
    /// oldest first.
    pub fn activity(&self, reverse: bool) -> impl Iterator<Item = StorageResult<ChangeEntry>> {
        self.journal_groups(reverse).flat_map(move |group| {
            let entries: Vec<StorageResult<ChangeEntry>> = match group {
                Ok(mut group) => {
                    if reverse {
                        group.entries.reverse();
                    }
                    group.entries.into_iter().map(Ok).collect()
                }
                Err(error) => vec![Err(error)],
            };
            entries
        })
    }

    /// The journal groups (one per commit), newest first (`reverse`) or oldest first.
    pub fn journal_groups(
        &self,
        reverse: bool,
    ) -> impl Iterator<Item = StorageResult<JournalGroup>> {
        let range = self.tree.scan_prefix([keys::ACTIVITY]);
        let iter: Box<dyn Iterator<Item = sled::Result<(IVec, IVec)>>> = if reverse {
            Box::new(range.rev())
        } else {
            Box::new(range)
        };
        iter.map(|entry| {
            let (key, bytes) = entry?;
            decode_journal_group(&key, &bytes)
        })
    }

    /// How many entries the table's journal has received, ever (the newest group's `written`;
    /// when the purge removed every group, all of them were purged).
    pub fn journal_written(&self) -> StorageResult<u64> {
        match self.journal_groups(true).next() {
            Some(group) => Ok(group?.written),
            None => Ok(self.get_u64(keys::META_ACTIVITY_PURGED)?.unwrap_or(0)),
        }
    }

    /// How many entries the table's journal holds now.
    pub fn activity_len(&self) -> StorageResult<u64> {
        let purged = self.get_u64(keys::META_ACTIVITY_PURGED)?.unwrap_or(0);
        Ok(self.journal_written()?.saturating_sub(purged))
    }

    /// One change entry (with its changes), found in the group of the commit that wrote it (the
    /// group with the greatest first id not above `entry_id`).
    pub fn journal_entry(&self, entry_id: u64) -> StorageResult<Option<ChangeEntry>> {
        let start = vec![keys::ACTIVITY];
        let end = keys::activity_key(entry_id).to_vec();
        let Some(group) = self.tree.range(start..=end).next_back() else {
            return Ok(None);
        };
        let (key, bytes) = group?;
        let group = decode_journal_group(&key, &bytes)?;
        Ok(group.entries.into_iter().find(|entry| entry.id == entry_id))
    }

    /// One record's comments, oldest first.
    pub fn comments(&self, record_id: u64) -> impl Iterator<Item = StorageResult<Comment>> {
        self.tree
            .scan_prefix(keys::comment_prefix(record_id))
            .map(|entry| {
                let (_key, bytes) = entry?;
                codec::decode(&bytes, "comment")
            })
    }

    /// The keys of one record's comments (to remove them with the record).
    pub fn comment_keys(&self, record_id: u64) -> impl Iterator<Item = StorageResult<IVec>> {
        self.tree
            .scan_prefix(keys::comment_prefix(record_id))
            .keys()
            .map(|key| Ok(key?))
    }

    pub fn comment(&self, record_id: u64, comment_id: u64) -> StorageResult<Option<Comment>> {
        match self.tree.get(keys::comment_key(record_id, comment_id))? {
            Some(bytes) => Ok(Some(codec::decode(&bytes, "comment")?)),
            None => Ok(None),
        }
    }

    /// How many comments a record has (the `N` counter).
    pub fn comment_count(&self, record_id: u64) -> StorageResult<u64> {
        Ok(self
            .get_u64(&keys::comment_count_key(record_id))?
            .unwrap_or(0))
    }

    /// Raw access for the actor's own bookkeeping (history, activity, comments …).
    pub fn tree(&self) -> &sled::Tree {
        &self.tree
    }
}

/// The change entries of one commit (see [`keys::ACTIVITY`]).
#[derive(Debug, Clone, PartialEq)]
pub struct JournalGroup {
    /// The id of the first entry (the key).
    pub first_id: u64,
    /// Entries the table's journal had received once this commit was written.
    pub written: u64,
    /// Ids ascending, with their changes.
    pub entries: Vec<ChangeEntry>,
}

/// The unique claims (`U` keys) that match a range of index keys (`X` keys): the same bytes
/// after the prefix. `None` when the range does not start among the index keys.
fn claims_range(start: &[u8], end: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    if start.first() != Some(&keys::INDEX) {
        return None;
    }
    let with_prefix = |key: &[u8]| {
        let mut claim = key.to_vec();
        claim[0] = keys::UNIQUE;
        claim
    };
    let end = match end.first() {
        Some(&keys::INDEX) => with_prefix(end),
        _ => vec![keys::UNIQUE + 1],
    };
    Some((with_prefix(start), end))
}

type EntryStream = Box<dyn Iterator<Item = StorageResult<(IVec, u64)>>>;

/// Two streams of index entries, each in (value, id) order, merged into one; an entry in both
/// is handed out once.
struct MergeEntries {
    left: std::iter::Peekable<EntryStream>,
    right: std::iter::Peekable<EntryStream>,
    descending: bool,
}

impl Iterator for MergeEntries {
    type Item = StorageResult<(IVec, u64)>;

    fn next(&mut self) -> Option<Self::Item> {
        let order = match (self.left.peek(), self.right.peek()) {
            (None, None) => return None,
            (Some(_), None) | (Some(Err(_)), _) => std::cmp::Ordering::Less,
            (None, Some(_)) | (_, Some(Err(_))) => std::cmp::Ordering::Greater,
            (Some(Ok(left)), Some(Ok(right))) => {
                let order = (&left.0, left.1).cmp(&(&right.0, right.1));
                if self.descending {
                    order.reverse()
                } else {
                    order
                }
            }
        };
        match order {
            std::cmp::Ordering::Less => self.left.next(),
            std::cmp::Ordering::Greater => self.right.next(),
            std::cmp::Ordering::Equal => {
                self.right.next();
                self.left.next()
            }
        }
    }
}

/// One index bitmap entry as (its key, its group, its bits).
fn decode_bitmap_entry(entry: sled::Result<(IVec, IVec)>) -> StorageResult<(IVec, u64, u64)> {
    let (key, value) = entry?;
    let group = keys::trailing_record_id(&key).unwrap_or(0);
    Ok((key, group, pages::decode_bitmap(&value)?))
}

/// The records of a run of pages, between two ids, one page decoded at a time.
struct PageRecords {
    pages: Box<dyn Iterator<Item = sled::Result<(IVec, IVec)>>>,
    /// The current page's records still to hand out: (the page, the record's byte range).
    current: std::collections::VecDeque<(IVec, std::ops::Range<usize>)>,
    first: u64,
    last: u64,
    descending: bool,
}

impl PageRecords {
    /// Queues the records of the next page that has any in range; false at the end.
    fn load_next_page(&mut self) -> StorageResult<bool> {
        while let Some(entry) = self.pages.next() {
            let (key, page) = entry?;
            let base = keys::trailing_record_id(&key).unwrap_or(0) << pages::PAGE_BITS;
            let mut slots = pages::page_slots(&page)?;
            slots.retain(|(slot, _)| (self.first..=self.last).contains(&(base + u64::from(*slot))));
            if self.descending {
                slots.reverse();
            }
            self.current
                .extend(slots.into_iter().map(|(_, range)| (page.clone(), range)));
            if !self.current.is_empty() {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

impl Iterator for PageRecords {
    type Item = StorageResult<StoredRecord>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.current.is_empty() {
            match self.load_next_page() {
                Ok(true) => {}
                Ok(false) => return None,
                Err(error) => return Some(Err(error)),
            }
        }
        let (page, range) = self.current.pop_front()?;
        Some(codec::decode(&page[range], "record"))
    }
}

fn decode_journal_group(key: &[u8], bytes: &[u8]) -> StorageResult<JournalGroup> {
    let (written, entries): (u64, Vec<ChangeEntry>) = codec::decode(bytes, "journal group")?;
    Ok(JournalGroup {
        first_id: keys::trailing_record_id(key).unwrap_or(0),
        written,
        entries,
    })
}

/// The smallest key greater than every key starting with `prefix`.
pub fn prefix_successor(mut prefix: Vec<u8>) -> Vec<u8> {
    while let Some(last) = prefix.pop() {
        if last < 0xFF {
            prefix.push(last + 1);
            return prefix;
        }
    }
    // All 0xFF (never the case for our prefixes): no finite successor; the empty key sorts
    // first, so return the longest possible single byte bound instead.
    vec![0xFF; 16]
}
