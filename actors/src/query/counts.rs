//! Cached totals. Counting the index entries of a common value costs a key read per match, so
//! the exact total of, say, `status='active'` is remembered — validated against the table's
//! write generation ([`TableStore::generation`](tabula_storage::TableStore::generation)), which
//! moves on after every batch applied to the table. A total is reused only while the
//! generation is the one it was counted under, so it never outlives the data it counted.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use crate::error::DomainResult;
use crate::registry::TableShared;

/// The most totals remembered (all tables together); the cache is emptied when it fills.
const MAX_CACHED: usize = 10_000;

/// (table id, what is counted) → (the write generation it was counted under, the total).
type CountCache = HashMap<(u32, Vec<u8>), (u64, u64)>;

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
    let Some(generation) = table.store.generation() else {
        // A batch is going in: count, but remember nothing.
        return count();
    };
    let key = (table.id, what);
    {
        let cached = cache()
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some((counted_under, total)) = cached.get(&key) {
            if *counted_under == generation {
                return Ok(*total);
            }
        }
    }
    let total = count()?;
    // Remember it only if no write landed while counting.
    if table.store.generation() == Some(generation) {
        let mut cached = cache()
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if cached.len() >= MAX_CACHED {
            cached.clear();
        }
        cached.insert(key, (generation, total));
    }
    Ok(total)
}
