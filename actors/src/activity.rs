//! The activity log across tables (SPEC §6): every table keeps its own entries (`A` keys, written
//! in the same commit as the change); a listing merges the tables' ranges newest first by entry
//! id (ids come from one store-wide monotonic generator), filters and pages them. Also the
//! background retention purge, which asks each table's actor to drop its expired entries.

use std::collections::{BinaryHeap, HashMap};
use std::sync::{Arc, Weak};
use std::time::Duration;

use actix::Addr;
use tabula_storage::journal::{ChangeAction, ChangeEntry};
use tabula_storage::StorageResult;

use crate::clock;
use crate::error::{DomainError, DomainResult};
use crate::history::{name_change, NamedChange};
use crate::query::filter::Filter;
use crate::registry::{Registry, TableHandle};
use crate::table::{PurgeActivity, TableActor};

/// The page size when `pageSize` is not given.
pub const DEFAULT_PAGE_SIZE: u64 = 50;
/// The largest `pageSize` accepted (larger → 400).
pub const MAX_PAGE_SIZE: u64 = 100;
/// How often the retention purge runs (and once at start).
pub const RETENTION_INTERVAL: Duration = Duration::from_secs(3600);
/// Entries one purge message removes at most (one commit), so a table is never blocked long.
pub const PURGE_CHUNK: usize = 10_000;

const MS_PER_DAY: i64 = 86_400_000;

/// A parsed `GET /api/activity` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivityQuery {
    /// 1-based.
    pub page: u64,
    pub page_size: u64,
    /// A table name or id; only its entries.
    pub table: Option<String>,
    pub action: Option<ChangeAction>,
    pub user_id: Option<String>,
    /// Inclusive bounds on the entry time (ms).
    pub from: Option<i64>,
    pub to: Option<i64>,
    /// Only these tables (the ones the caller may read); `None`: every table.
    pub readable_tables: Option<Vec<u32>>,
}

impl Default for ActivityQuery {
    fn default() -> Self {
        ActivityQuery {
            page: 1,
            page_size: DEFAULT_PAGE_SIZE,
            table: None,
            action: None,
            user_id: None,
            from: None,
            to: None,
            readable_tables: None,
        }
    }
}

impl ActivityQuery {
    fn matches(&self, entry: &ChangeEntry) -> bool {
        self.action.is_none_or(|action| entry.action == action)
            && self
                .user_id
                .as_deref()
                .is_none_or(|user| entry.user_id.as_deref() == Some(user))
            && self.from.is_none_or(|from| entry.at >= from)
            && self.to.is_none_or(|to| entry.at <= to)
    }

    /// Whether only the table narrows the listing (the total then comes from the counters).
    fn unfiltered(&self) -> bool {
        self.action.is_none() && self.user_id.is_none() && self.from.is_none() && self.to.is_none()
    }
}

/// Parses `page`, `pageSize` (1..=100), `tableName`, `action`, `userId`, `from`, `to`; a bad
/// value is a 400 naming the parameter.
pub fn parse_activity_query(pairs: &[(String, String)]) -> DomainResult<ActivityQuery> {
    let mut query = ActivityQuery::default();
    for (name, value) in pairs {
        match name.as_str() {
            "page" => {
                query.page = value
                    .trim()
                    .parse::<u64>()
                    .ok()
                    .filter(|page| (1..=crate::query::MAX_COUNT_PARAMETER).contains(page))
                    .ok_or_else(|| {
                        DomainError::bad_request("page", "page must be a positive integer")
                    })?;
            }
            "pageSize" => {
                query.page_size = value
                    .trim()
                    .parse::<u64>()
                    .ok()
                    .filter(|size| (1..=MAX_PAGE_SIZE).contains(size))
                    .ok_or_else(|| {
                        DomainError::bad_request(
                            "pageSize",
                            format!("pageSize must be an integer from 1 to {MAX_PAGE_SIZE}"),
                        )
                    })?;
            }
            "tableName" => query.table = Some(value.clone()),
            "action" => {
                query.action = Some(ChangeAction::parse(value).ok_or_else(|| {
                    DomainError::bad_request(
                        "action",
                        format!(
                            "Unknown action '{value}': expected create, update, delete, restore or permanent_delete"
                        ),
                    )
                })?);
            }
            "userId" => query.user_id = Some(value.clone()),
            "from" | "to" => {
                let at = clock::parse_datetime_ms(value).ok_or_else(|| {
                    DomainError::bad_request(
                        name,
                        format!("{name} must be an RFC 3339 time or a YYYY-MM-DD date"),
                    )
                })?;
                if name == "from" {
                    query.from = Some(at);
                } else {
                    query.to = Some(at);
                }
            }
            _ => {}
        }
    }
    Ok(query)
}

/// One activity entry with the name of its table, and its changes when asked for.
#[derive(Debug, Clone)]
pub struct ActivityItem {
    pub entry: ChangeEntry,
    pub table_name: String,
    /// The changes by field name (detail only).
    pub changes: Option<NamedChange>,
}

/// One page of the activity log, newest first.
#[derive(Debug, Clone)]
pub struct ActivityPage {
    pub items: Vec<ActivityItem>,
    /// Every matching entry.
    pub total: u64,
}

type EntryStream = Box<dyn Iterator<Item = StorageResult<ChangeEntry>>>;

/// The matching entries of every served table (or the named one), merged newest first.
pub fn list_activity(registry: &Registry, query: &ActivityQuery) -> DomainResult<ActivityPage> {
    list_visible_activity(registry, query, &HashMap::new())
}

/// [`list_activity`] for a caller under row rules (table id → the rule with `@user.*` filled
/// in): an entry of such a table is listed only when its record, as it is now, matches the
/// rule — the same test as the detail endpoint, so a permanently deleted record's entries are
/// no longer listed to them.
pub fn list_visible_activity(
    registry: &Registry,
    query: &ActivityQuery,
    row_rules: &HashMap<u32, Filter>,
) -> DomainResult<ActivityPage> {
    let mut tables: Vec<TableHandle> = match &query.table {
        Some(name) => registry.resolve(name).into_iter().collect(),
        None => registry.all(),
    };
    if let Some(readable) = &query.readable_tables {
        tables.retain(|handle| readable.contains(&handle.shared.id));
    }
    let ruled = tables
        .iter()
        .any(|handle| row_rules.contains_key(&handle.shared.id));
    let fast_total = if query.unfiltered() && !ruled {
        let mut total = 0u64;
        for handle in &tables {
            let count = handle.shared.store.activity_len()?;
            total = total.saturating_add(count);
        }
        Some(total)
    } else {
        None
    };
    let mut streams: Vec<EntryStream> = Vec::with_capacity(tables.len());
    let mut heads: Vec<Option<ChangeEntry>> = Vec::with_capacity(tables.len());
    let mut heap = BinaryHeap::new();
    for (index, handle) in tables.iter().enumerate() {
        let filter = query.clone();
        let rule = row_rules.get(&handle.shared.id).cloned();
        let records = handle.shared.store.clone();
        let mut stream: EntryStream =
            Box::new(handle.shared.store.activity(true).filter(move |entry| {
                let Ok(entry) = entry else {
                    return true;
                };
                filter.matches(entry)
                    && rule
                        .as_ref()
                        .is_none_or(|rule| match records.get_record(entry.record_id) {
                            Ok(record) => record.is_some_and(|record| rule.matches(&record)),
                            // A read error hides the entry rather than failing the whole page.
                            Err(_) => false,
                        })
            }));
        let head = stream.next().transpose()?;
        if let Some(entry) = &head {
            heap.push((entry.id, index));
        }
        heads.push(head);
        streams.push(stream);
    }
    let skip = query.page.saturating_sub(1).saturating_mul(query.page_size);
    let mut items = Vec::new();
    let mut position = 0u64;
    while let Some((_, index)) = heap.pop() {
        let Some(entry) = heads[index].take() else {
            continue;
        };
        if let Some(next) = streams[index].next().transpose()? {
            heap.push((next.id, index));
            heads[index] = Some(next);
        }
        if position >= skip && u64::try_from(items.len()).unwrap_or(u64::MAX) < query.page_size {
            items.push(ActivityItem {
                table_name: tables[index].shared.schema().name.clone(),
                entry,
                changes: None,
            });
        }
        position += 1;
        let page_full = u64::try_from(items.len()).unwrap_or(u64::MAX) >= query.page_size;
        if page_full && fast_total.is_some() {
            break;
        }
    }
    Ok(ActivityPage {
        items,
        total: fast_total.unwrap_or(position),
    })
}

/// One entry with its changes. A malformed id is a 400, an unknown one a 404.
pub fn activity_entry(registry: &Registry, id_text: &str) -> DomainResult<ActivityItem> {
    let entry_id = id_text.trim().parse::<u64>().map_err(|_| {
        DomainError::bad_request("id", format!("'{id_text}' is not an activity id"))
    })?;
    for handle in registry.all() {
        let store = &handle.shared.store;
        let Some(entry) = store.journal_entry(entry_id)? else {
            continue;
        };
        let schema = handle.shared.schema();
        let changes = name_change(&schema, entry.clone());
        return Ok(ActivityItem {
            entry,
            table_name: schema.name.clone(),
            changes: Some(changes),
        });
    }
    Err(DomainError::NotFound(format!(
        "Activity entry {entry_id} not found"
    )))
}

/// Removes, in every table, the activity entries older than `retention_days` before `now`
/// (with the history of records that no longer exist). Answers how many were removed.
pub async fn purge_expired(
    registry: &Registry,
    retention_days: u32,
    now: i64,
) -> DomainResult<u64> {
    purge_tables(table_actors(registry), retention_days, now).await
}

/// The addresses of every table's actor. Unlike table handles they do not keep the store open,
/// so a background task may hold them across an await without delaying a shutdown.
fn table_actors(registry: &Registry) -> Vec<Addr<TableActor>> {
    registry
        .all()
        .into_iter()
        .map(|handle| handle.addr)
        .collect()
}

async fn purge_tables(
    actors: Vec<Addr<TableActor>>,
    retention_days: u32,
    now: i64,
) -> DomainResult<u64> {
    let older_than = now.saturating_sub(i64::from(retention_days).saturating_mul(MS_PER_DAY));
    let mut purged = 0u64;
    for actor in actors {
        loop {
            let removed = actor
                .send(PurgeActivity {
                    older_than,
                    max_entries: PURGE_CHUNK,
                })
                .await
                .map_err(|error| DomainError::Unavailable(error.to_string()))??;
            purged = purged.saturating_add(removed);
            if removed == 0 {
                break;
            }
        }
    }
    Ok(purged)
}

/// Runs [`purge_expired`] now and every [`RETENTION_INTERVAL`] on the current actix arbiter,
/// until the registry is dropped. Must be called inside a running actix system.
pub fn spawn_retention(registry: &Arc<Registry>, retention_days: u32) {
    let registry: Weak<Registry> = Arc::downgrade(registry);
    actix::spawn(async move {
        let mut interval = tokio::time::interval(RETENTION_INTERVAL);
        loop {
            interval.tick().await;
            // Only the actors' addresses are held across the await (see `table_actors`).
            let Some(actors) = registry.upgrade().map(|registry| table_actors(&registry)) else {
                break;
            };
            match purge_tables(actors, retention_days, clock::now_ms()).await {
                Ok(0) => {}
                Ok(purged) => tracing::info!(purged, "expired activity entries purged"),
                Err(error) => tracing::warn!(%error, "activity retention purge failed"),
            }
        }
    });
}
