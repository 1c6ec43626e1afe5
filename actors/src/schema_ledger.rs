//! The schema ledger: every published schema version (append-only, with checksum, author,
//! message and `restoredFromVersion`), the active version number, the admins' working draft and
//! the id watermarks, all in the `sys/schema` tree. Only the schema publisher writes it.
//!
//! Keys (see ARCHITECTURE.md): `version ++ n (u64 BE)` → codec([`SchemaVersion`]);
//! `active` → n (u64 BE); `draft` → codec([`Draft`]); `seed` → codec(String), the checksum of the
//! config file's schema that seeded version 1; `watermarks` → codec([`IdWatermarks`]);
//! `pending` → codec(Schema), the snapshot of a publish under way (present only between the
//! start of a publish's table changes and its append or undo: found at start-up, it means the
//! process stopped mid-publish, and the tables are put back on the active version).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tabula_storage::{codec, Schema, StorageError, StorageResult, Store};

const VERSION_PREFIX: &[u8] = b"version";
const ACTIVE_KEY: &[u8] = b"active";
const DRAFT_KEY: &[u8] = b"draft";
const SEED_KEY: &[u8] = b"seed";
const WATERMARKS_KEY: &[u8] = b"watermarks";
const PENDING_KEY: &[u8] = b"pending";

/// One published schema version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SchemaVersion {
    pub number: u64,
    /// [`checksum`] of the snapshot.
    pub checksum: String,
    /// Milliseconds since the epoch.
    pub created_at: i64,
    /// The user id of the admin who published it (`None`: seeded from the config file).
    pub created_by: Option<String>,
    pub message: Option<String>,
    /// Set when the version was made by restoring an earlier one.
    pub restored_from: Option<u64>,
    pub snapshot: Schema,
}

/// The admins' working copy of the schema.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Draft {
    pub snapshot: Schema,
    /// The version the draft was started from (or last rebased on).
    pub base_version: u64,
    /// The snapshot of that version, kept with the draft so a rebase can tell which side changed
    /// what even after the base version was pruned.
    pub base_snapshot: Schema,
    /// Whether the draft differs from its base.
    pub dirty: bool,
    pub updated_at: i64,
}

impl Draft {
    /// A clean draft of `version`.
    pub fn of(version: &SchemaVersion, at: i64) -> Draft {
        Draft {
            snapshot: version.snapshot.clone(),
            base_version: version.number,
            base_snapshot: version.snapshot.clone(),
            dirty: false,
            updated_at: at,
        }
    }
}

/// The highest ids ever handed out, so that a new table or field never takes the id of one that
/// was removed (its data stays on disk, hidden, and must not resurface under another name).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IdWatermarks {
    pub table: u32,
    /// Table id → highest field id.
    pub fields: BTreeMap<u32, u32>,
}

impl IdWatermarks {
    /// Raises the watermarks to cover every id of `schema`.
    pub fn cover(&mut self, schema: &Schema) {
        for table in &schema.tables {
            self.table = self.table.max(table.id);
            let highest = table.fields.iter().map(|field| field.id).max().unwrap_or(0);
            let entry = self.fields.entry(table.id).or_insert(0);
            *entry = (*entry).max(highest);
        }
    }
}

/// The checksum of a schema: sha256 (hex) of its stored encoding. Two snapshots have the same
/// checksum exactly when they are the same schema.
pub fn checksum(schema: &Schema) -> StorageResult<String> {
    let bytes = codec::encode(schema)?;
    let digest = Sha256::digest(&bytes);
    Ok(digest.iter().map(|byte| format!("{byte:02x}")).collect())
}

/// The `sys/schema` tree.
#[derive(Clone)]
pub struct Ledger {
    tree: sled::Tree,
    store: Store,
}

impl Ledger {
    pub fn open(store: &Store) -> StorageResult<Ledger> {
        Ok(Ledger {
            tree: store.system_tree("schema")?,
            store: store.clone(),
        })
    }

    pub fn active_number(&self) -> StorageResult<Option<u64>> {
        Ok(self.tree.get(ACTIVE_KEY)?.and_then(|bytes| {
            let array: [u8; 8] = bytes.as_ref().try_into().ok()?;
            Some(u64::from_be_bytes(array))
        }))
    }

    pub fn version(&self, number: u64) -> StorageResult<Option<SchemaVersion>> {
        match self.tree.get(version_key(number))? {
            Some(bytes) => Ok(Some(codec::decode(&bytes, "schema version")?)),
            None => Ok(None),
        }
    }

    /// Every kept version, newest first.
    pub fn versions(&self) -> StorageResult<Vec<SchemaVersion>> {
        let mut versions = Vec::new();
        for entry in self.tree.scan_prefix(VERSION_PREFIX).rev() {
            let (_, bytes) = entry?;
            versions.push(codec::decode(&bytes, "schema version")?);
        }
        Ok(versions)
    }

    /// The highest version number ever written (kept versions only; the active one is always
    /// kept and always the newest).
    pub fn newest_number(&self) -> StorageResult<u64> {
        match self.tree.scan_prefix(VERSION_PREFIX).next_back() {
            Some(entry) => {
                let (key, _) = entry?;
                Ok(key_number(&key).unwrap_or(0))
            }
            None => Ok(0),
        }
    }

    /// Appends `version` and makes it active, with the new watermarks and draft, in one atomic
    /// batch, then flushes.
    pub fn append(
        &self,
        version: &SchemaVersion,
        watermarks: &IdWatermarks,
        draft: &Draft,
    ) -> StorageResult<()> {
        let mut batch = sled::Batch::default();
        batch.insert(version_key(version.number), codec::encode(version)?);
        batch.insert(ACTIVE_KEY, &version.number.to_be_bytes());
        batch.insert(WATERMARKS_KEY, codec::encode(watermarks)?);
        batch.insert(DRAFT_KEY, codec::encode(draft)?);
        batch.remove(PENDING_KEY);
        self.tree.apply_batch(batch)?;
        self.store.flush_blocking()
    }

    /// Marks a publish of `snapshot` as under way (flushed before any table changes).
    pub fn set_pending(&self, snapshot: &Schema) -> StorageResult<()> {
        self.tree.insert(PENDING_KEY, codec::encode(snapshot)?)?;
        self.store.flush_blocking()
    }

    /// The snapshot of a publish that was under way when the process stopped.
    pub fn pending(&self) -> StorageResult<Option<Schema>> {
        match self.tree.get(PENDING_KEY)? {
            Some(bytes) => Ok(Some(codec::decode(&bytes, "pending schema")?)),
            None => Ok(None),
        }
    }

    /// Ends a publish that did not happen (undone, or rolled back at start-up), keeping its ids
    /// out of reach of later tables and fields.
    pub fn clear_pending(&self, watermarks: &IdWatermarks) -> StorageResult<()> {
        let mut batch = sled::Batch::default();
        batch.remove(PENDING_KEY);
        batch.insert(WATERMARKS_KEY, codec::encode(watermarks)?);
        self.tree.apply_batch(batch)?;
        self.store.flush_blocking()
    }

    pub fn draft(&self) -> StorageResult<Option<Draft>> {
        match self.tree.get(DRAFT_KEY)? {
            Some(bytes) => Ok(Some(codec::decode(&bytes, "schema draft")?)),
            None => Ok(None),
        }
    }

    pub fn save_draft(&self, draft: &Draft) -> StorageResult<()> {
        self.tree.insert(DRAFT_KEY, codec::encode(draft)?)?;
        self.store.flush_blocking()
    }

    pub fn seed_checksum(&self) -> StorageResult<Option<String>> {
        match self.tree.get(SEED_KEY)? {
            Some(bytes) => Ok(Some(codec::decode(&bytes, "schema seed checksum")?)),
            None => Ok(None),
        }
    }

    pub fn set_seed_checksum(&self, checksum: &str) -> StorageResult<()> {
        self.tree.insert(SEED_KEY, codec::encode(&checksum)?)?;
        Ok(())
    }

    pub fn watermarks(&self) -> StorageResult<IdWatermarks> {
        match self.tree.get(WATERMARKS_KEY)? {
            Some(bytes) => codec::decode(&bytes, "schema id watermarks"),
            None => Ok(IdWatermarks::default()),
        }
    }

    /// Removes every version but the newest `keep` and the active one; returns how many went.
    pub fn prune(&self, keep: usize) -> StorageResult<u64> {
        let active = self.active_number()?;
        let mut batch = sled::Batch::default();
        let mut deleted = 0u64;
        for (position, entry) in self.tree.scan_prefix(VERSION_PREFIX).rev().enumerate() {
            let (key, _) = entry?;
            let number = key_number(&key).ok_or_else(|| StorageError::Decode {
                what: "schema version key",
                message: "not a version number".into(),
            })?;
            if position < keep || Some(number) == active {
                continue;
            }
            batch.remove(key);
            deleted += 1;
        }
        if deleted > 0 {
            self.tree.apply_batch(batch)?;
            self.store.flush_blocking()?;
        }
        Ok(deleted)
    }
}

fn version_key(number: u64) -> Vec<u8> {
    let mut key = VERSION_PREFIX.to_vec();
    key.extend_from_slice(&number.to_be_bytes());
    key
}

fn key_number(key: &[u8]) -> Option<u64> {
    let bytes: [u8; 8] = key.get(VERSION_PREFIX.len()..)?.try_into().ok()?;
    Some(u64::from_be_bytes(bytes))
}
