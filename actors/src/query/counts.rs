//! Cached totals. Counting the index entries of a common value costs a key read per match, so
//! the exact total of, say, `status='active'` is remembered — validated against the table's
//! write generation, a token that every write batch replaces (`F g`, written by the table actor
//! through `write_index_entries`, which every record write goes through). A total is reused
//! only while the token is the one it was counted under, so it is never stale.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use tabula_storage::WriteBatch;

use crate::error::DomainResult;
use crate::query::search::SEARCH;
use crate::registry::TableShared;

/// The key of the write generation token.
pub const GENERATION_KEY: [u8; 2] = [SEARCH, b'g'];
/// The most totals remembered (all tables together); the cache is emptied when it fills.
const MAX_CACHED: usize = 10_000;

/// The token of the next write: a per-process base (the start time in nanoseconds) and a
/// counter, so no two batches — in this process or any earlier one — share a token.
fn next_token() -> [u8; 16] {
    static BASE: OnceLock<u64> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(1);
    let base = *BASE.get_or_init(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|elapsed| u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX))
            .unwrap_or(0)
    });
    let mut token = [0u8; 16];
    token[..8].copy_from_slice(&base.to_be_bytes());
    token[8..].copy_from_slice(&COUNTER.fetch_add(1, Ordering::Relaxed).to_be_bytes());
    token
}

/// Gives the batch a new write generation (called for every record write).
pub fn bump_generation(batch: &mut WriteBatch) {
    batch.put(GENERATION_KEY.to_vec(), next_token().to_vec());
}

/// (table id, what is counted) → (the generation token it was counted under, the total).
type CountCache = HashMap<(u32, Vec<u8>), (Vec<u8>, u64)>;

fn cache() -> &'static Mutex<CountCache> {
    static CACHE: OnceLock<Mutex<CountCache>> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

/// The total described by `what` (any bytes that identify the count within the table), from
/// the cache when the table has not been written since, else from `count` (and remembered).
pub fn cached_count(
    table: &TableShared,
    what: Vec<u8>,
    count: impl FnOnce() -> DomainResult<u64>,
) -> DomainResult<u64> {
    let Some(token) = table
        .store
        .tree()
        .get(GENERATION_KEY)
        .map_err(tabula_storage::StorageError::from)?
    else {
        // A tree never written by this version has no token: nothing to validate against.
        return count();
    };
    let key = (table.id, what);
    {
        let cached = cache()
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some((cached_token, total)) = cached.get(&key) {
            if cached_token.as_slice() == token.as_ref() {
                return Ok(*total);
            }
        }
    }
    let total = count()?;
    // Remember it only if no write landed while counting.
    let still = table
        .store
        .tree()
        .get(GENERATION_KEY)
        .map_err(tabula_storage::StorageError::from)?;
    if still.as_deref() == Some(token.as_ref()) {
        let mut cached = cache()
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if cached.len() >= MAX_CACHED {
            cached.clear();
        }
        cached.insert(key, (token.to_vec(), total));
    }
    Ok(total)
}
