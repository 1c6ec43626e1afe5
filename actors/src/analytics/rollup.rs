//! The in-memory rollups of the open days and how they reach sled.
//!
//! An open day holds, per hour, the totals and the views of every row of every dimension, the
//! day's visitors (hours seen, session state) and the (row, visitor) pairs that make per-row
//! unique counts exact. Every flush writes, in one sled batch, the current value of each changed
//! hour (`H`, `R`) and an append-only chunk of the pairs and visitors that changed (`L`, `W`),
//! so a restart rebuilds the day exactly. A day before today is closed at the next flush: its
//! per-row totals (`D`), per-row sketches (`K`) and day summary (`V`) are written and it leaves
//! memory. A late event for a closed day reopens it from disk.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, VecDeque};
use std::ops::Bound;

use rustc_hash::FxHashMap;
use tabula_storage::store::PartedWrites;
use tabula_storage::{codec, StorageResult, Store};

use super::client::ClientClasses;
use super::layout::{
    self, DaySummary, Dimension, HourTotals, PairEntry, VisitorRecord, NAMES_PER_CHUNK, OTHER_ROW,
};
use super::sketch::DistinctSketch;
use super::visitor::{day_of, DAY_MS};

/// Distinct values per dimension per day with their own row; later ones count as "(other)".
pub const ROWS_PER_DAY_CAP: usize = 50_000;
/// Values per dimension whose row id is remembered in memory between flushes (then forgotten
/// and looked up in sled again when they come back).
const INTERNED_VALUES_LIMIT: usize = 200_000;
/// Value → row entries (`M`) written per flush for the rows named since: a cold start names
/// tens of thousands of values at once, and indexing them all in its first flush took the
/// core for a second. Until its entry is written a value stays in memory.
const INDEXED_PER_FLUSH: usize = 512;
/// Client class ids whose global row id is remembered (ids are dense from 0, one per distinct
/// `device␟browser␟os`; a larger id is simply looked up by its text each time).
const CLIENT_CLASSES_REMEMBERED: usize = 65_536;

/// An hour's row → views map, serialised exactly as the `Vec<(u32, u64)>` its readers decode
/// (a length, then the pairs) without collecting it first.
struct RowList<'a>(&'a FxHashMap<u32, u64>);

impl serde::Serialize for RowList<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(|(row, views)| (*row, *views)))
    }
}

/// One counted page view, as the collect path hands it over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageView {
    /// When it was received (ms since the epoch).
    pub at_ms: i64,
    /// The salted visitor hash of the day.
    pub visitor: u64,
    pub path: String,
    /// The referrer's domain; `None` for direct traffic.
    pub referrer: Option<String>,
    /// `source␟medium␟campaign`, when any UTM field was given.
    pub campaign: Option<String>,
    /// `device␟browser␟os`.
    pub client: std::sync::Arc<str>,
}

impl PageView {
    /// The borrowed form the aggregator folds.
    pub fn view(&self) -> PageViewRef<'_> {
        PageViewRef {
            at_ms: self.at_ms,
            visitor: self.visitor,
            path: &self.path,
            referrer: self.referrer.as_deref(),
            campaign: self.campaign.as_deref(),
            client: ClientRef::Value(&self.client),
        }
    }
}

/// One page view as the aggregator folds it, borrowed from the collect path's batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageViewRef<'a> {
    pub at_ms: i64,
    pub visitor: u64,
    pub path: &'a str,
    pub referrer: Option<&'a str>,
    pub campaign: Option<&'a str>,
    pub client: ClientRef<'a>,
}

/// The client of a page view: its row value `device␟browser␟os`, or the id of that value in
/// the collect path's [`ClientClasses`] (the text is read once per id, not per event).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientRef<'a> {
    Value(&'a str),
    Class(u32),
}

/// How the rollups count.
#[derive(Debug, Clone, Copy)]
pub struct RollupSettings {
    pub session_timeout_ms: i64,
    pub rows_per_day_cap: usize,
}

#[derive(Debug, Clone, Copy)]
struct VisitorDay {
    hours: u32,
    last_seen_ms_of_day: u32,
    session_start_hour: u8,
    session_views: u32,
    dirty: bool,
}

#[derive(Debug, Clone, Copy, Default)]
struct RowDay {
    views: u64,
    uniques: u64,
}

/// Everything counted for one open day.
struct DayState {
    day: u32,
    hours: [HourTotals; 24],
    dirty_hours: u32,
    /// `[dimension][hour]` → row → views.
    hour_rows: Vec<Vec<FxHashMap<u32, u64>>>,
    /// `[dimension]` → hours whose rows changed since the last flush.
    dirty_hour_rows: [u32; 4],
    /// `[dimension]` → row → the day's views and unique visitors.
    day_rows: Vec<FxHashMap<u32, RowDay>>,
    visitors: FxHashMap<u64, VisitorDay>,
    dirty_visitors: Vec<u64>,
    /// `[dimension]` → (visitor, row) → hours seen. One map per dimension, so the small ones
    /// (referrers, campaigns) stay in the cache while the paths' map is large.
    pairs: Vec<FxHashMap<(u64, u32), u32>>,
    pending_pairs: Vec<Vec<PairEntry>>,
    next_seq: u32,
}

impl DayState {
    fn new(day: u32) -> Self {
        DayState {
            day,
            hours: [HourTotals::default(); 24],
            dirty_hours: 0,
            hour_rows: (0..4)
                .map(|_| (0..24).map(|_| FxHashMap::default()).collect())
                .collect(),
            dirty_hour_rows: [0; 4],
            day_rows: (0..4).map(|_| FxHashMap::default()).collect(),
            visitors: FxHashMap::default(),
            dirty_visitors: Vec::new(),
            pairs: (0..4).map(|_| FxHashMap::default()).collect(),
            pending_pairs: (0..4).map(|_| Vec::new()).collect(),
            next_seq: 0,
        }
    }

    /// Rebuilds a day from what earlier flushes wrote.
    fn load(tree: &sled::Tree, day: u32) -> StorageResult<Self> {
        let mut state = DayState::new(day);
        let first_hour = day * 24;
        for hour in 0..24u32 {
            if let Some(bytes) = tree.get(layout::hour_totals_key(first_hour + hour))? {
                state.hours[hour as usize] = codec::decode(&bytes, "analytics hour totals")?;
            }
            for dim in Dimension::ALL {
                if let Some(bytes) = tree.get(layout::hour_rows_key(dim, first_hour + hour))? {
                    let rows: Vec<(u32, u64)> = codec::decode(&bytes, "analytics hour rows")?;
                    for (row, views) in rows {
                        state.hour_rows[dim.index()][hour as usize].insert(row, views);
                        state.day_rows[dim.index()].entry(row).or_default().views += views;
                    }
                }
            }
        }
        let mut next_seq = 0u32;
        for dim in Dimension::WITH_VISITORS {
            for entry in tree.scan_prefix(layout::pair_log_prefix(day, dim)) {
                let (key, bytes) = entry?;
                next_seq = next_seq.max(layout::u32_at(&key, 6).unwrap_or(0) + 1);
                let pairs: Vec<PairEntry> = codec::decode(&bytes, "analytics pair log")?;
                for pair in pairs {
                    let slot = state.pairs[dim.index()]
                        .entry((pair.visitor, pair.row))
                        .or_insert(0);
                    if *slot == 0 {
                        state.day_rows[dim.index()]
                            .entry(pair.row)
                            .or_default()
                            .uniques += 1;
                    }
                    *slot |= pair.hours;
                }
            }
        }
        for entry in tree.scan_prefix(layout::visitor_log_prefix(day)) {
            let (key, bytes) = entry?;
            next_seq = next_seq.max(layout::u32_at(&key, 5).unwrap_or(0) + 1);
            let records: Vec<VisitorRecord> = codec::decode(&bytes, "analytics visitor log")?;
            for record in records {
                let hours = state
                    .visitors
                    .get(&record.visitor)
                    .map_or(0, |known| known.hours);
                state.visitors.insert(
                    record.visitor,
                    VisitorDay {
                        hours: hours | record.hours,
                        last_seen_ms_of_day: record.last_seen_ms_of_day,
                        session_start_hour: record.session_start_hour,
                        session_views: record.session_views,
                        dirty: false,
                    },
                );
            }
        }
        state.next_seq = next_seq;
        Ok(state)
    }

    /// Counts one view in `dim` at `hour`: in `row` (a global row id) while the day has room
    /// for it (it already has the row, or fewer than `cap` rows), otherwise in "(other)". With
    /// a visitor, also the (row, visitor) pair and the row's unique visitors.
    fn count(&mut self, dim: Dimension, hour: usize, row: u32, visitor: Option<u64>, cap: usize) {
        let index = dim.index();
        let rows = &mut self.day_rows[index];
        let row = if rows.contains_key(&row) || rows.len() < cap {
            row
        } else {
            OTHER_ROW
        };
        let totals = rows.entry(row).or_default();
        totals.views += 1;
        *self.hour_rows[index][hour].entry(row).or_insert(0) += 1;
        self.dirty_hour_rows[index] |= 1 << hour;
        let Some(visitor) = visitor else {
            return;
        };
        let bit = 1u32 << hour;
        let slot = self.pairs[index].entry((visitor, row)).or_insert(0);
        if *slot & bit != 0 {
            return;
        }
        if *slot == 0 {
            totals.uniques += 1;
        }
        *slot |= bit;
        self.pending_pairs[index].push(PairEntry {
            row,
            visitor,
            hours: *slot,
        });
    }

    /// Visitor, hour uniques and session accounting for one view at `ms_of_day`.
    fn count_visit(&mut self, visitor: u64, ms_of_day: u32, session_timeout_ms: i64) {
        let hour = (ms_of_day / 3_600_000).min(23) as usize;
        let bit = 1u32 << hour;
        let hours = &mut self.hours;
        let state = match self.visitors.entry(visitor) {
            Entry::Vacant(vacant) => {
                hours[hour].unique_visitors += 1;
                start_session(hours, hour);
                vacant.insert(VisitorDay {
                    hours: bit,
                    last_seen_ms_of_day: ms_of_day,
                    session_start_hour: hour as u8,
                    session_views: 1,
                    dirty: false,
                })
            }
            Entry::Occupied(occupied) => {
                let state = occupied.into_mut();
                if state.hours & bit == 0 {
                    state.hours |= bit;
                    hours[hour].unique_visitors += 1;
                }
                let idle = i64::from(ms_of_day) - i64::from(state.last_seen_ms_of_day);
                if idle > session_timeout_ms {
                    start_session(hours, hour);
                    state.session_start_hour = hour as u8;
                    state.session_views = 1;
                } else {
                    let start = usize::from(state.session_start_hour).min(23);
                    state.session_views += 1;
                    if state.session_views == 2 {
                        hours[start].bounces = hours[start].bounces.saturating_sub(1);
                    }
                    if idle > 0 {
                        hours[start].session_ms += idle.unsigned_abs();
                    }
                    self.dirty_hours |= 1 << start;
                }
                state.last_seen_ms_of_day = state.last_seen_ms_of_day.max(ms_of_day);
                state
            }
        };
        hours[hour].page_views += 1;
        self.dirty_hours |= bit;
        if !state.dirty {
            state.dirty = true;
            self.dirty_visitors.push(visitor);
        }
    }

    /// Adds this day's changes since the last flush to `batch`.
    fn write_changes(&mut self, batch: &mut sled::Batch) -> StorageResult<()> {
        let first_hour = self.day * 24;
        for hour in 0..24u32 {
            if self.dirty_hours & (1 << hour) != 0 {
                batch.insert(
                    &layout::hour_totals_key(first_hour + hour),
                    codec::encode(&self.hours[hour as usize])?,
                );
            }
        }
        self.dirty_hours = 0;
        for dim in Dimension::ALL {
            let dirty = std::mem::take(&mut self.dirty_hour_rows[dim.index()]);
            for hour in 0..24u32 {
                if dirty & (1 << hour) != 0 {
                    // Encoded straight from the map, in its order: every reader adds the rows
                    // up by id, so sorting them (the whole hour, every flush) bought nothing.
                    batch.insert(
                        &layout::hour_rows_key(dim, first_hour + hour),
                        codec::encode(&RowList(&self.hour_rows[dim.index()][hour as usize]))?,
                    );
                }
            }
        }
        let mut logged = false;
        for dim in Dimension::WITH_VISITORS {
            let pending = &mut self.pending_pairs[dim.index()];
            if !pending.is_empty() {
                batch.insert(
                    layout::pair_log_key(self.day, dim, self.next_seq),
                    codec::encode(&*pending)?,
                );
                // Kept with its capacity: the next second needs about as much again, and
                // regrowing it from nothing every flush was a string of large reallocations.
                pending.clear();
                logged = true;
            }
        }
        if !self.dirty_visitors.is_empty() {
            let mut records = Vec::with_capacity(self.dirty_visitors.len());
            for visitor in self.dirty_visitors.drain(..) {
                if let Some(state) = self.visitors.get_mut(&visitor) {
                    state.dirty = false;
                    records.push(VisitorRecord {
                        visitor,
                        hours: state.hours,
                        last_seen_ms_of_day: state.last_seen_ms_of_day,
                        session_start_hour: state.session_start_hour,
                        session_views: state.session_views,
                    });
                }
            }
            batch.insert(
                layout::visitor_log_key(self.day, self.next_seq),
                codec::encode(&records)?,
            );
            logged = true;
        }
        if logged {
            self.next_seq += 1;
        }
        Ok(())
    }

    /// Writes the closed-day products in parts ([`PartedWrites`]): the per-row sketches, then
    /// the per-row totals, then the day summary. The summary is what marks a day closed for the reports, so it lands only after
    /// every sketch; a crash before it leaves the day open (it is closed again, rewriting the
    /// same sketches). Small batches keep memory bounded: sled copies a leaf for every insert
    /// and frees the copies only when the batch ends, so one batch of a day's 100 000 sketches
    /// held hundreds of MiB of copies at once.
    fn write_closing(&self, tree: &sled::Tree) -> StorageResult<()> {
        let mut parts = PartedWrites::new(tree);
        for dim in Dimension::ALL {
            let mut visitors_by_row: FxHashMap<u32, Vec<u64>> = FxHashMap::default();
            for (visitor, row) in self.pairs[dim.index()].keys() {
                visitors_by_row.entry(*row).or_default().push(*visitor);
            }
            for (row, visitors) in visitors_by_row {
                let sketch = DistinctSketch::from_ids(visitors);
                parts.insert(
                    &layout::row_sketch_key(dim, self.day, row),
                    codec::encode(&sketch)?,
                )?;
            }
        }
        for dim in Dimension::ALL {
            let mut rows: Vec<(u32, u64, u64)> = self.day_rows[dim.index()]
                .iter()
                .map(|(row, totals)| (*row, totals.views, totals.uniques))
                .collect();
            rows.sort_unstable();
            parts.insert(&layout::day_rows_key(dim, self.day), codec::encode(&rows)?)?;
        }
        let visitors: Vec<u64> = self.visitors.keys().copied().collect();
        let summary = DaySummary {
            unique_visitors: u64::try_from(visitors.len()).unwrap_or(u64::MAX),
            sketch: DistinctSketch::from_ids(visitors),
        };
        parts.insert(&layout::day_summary_key(self.day), codec::encode(&summary)?)?;
        parts.finish()
    }

    fn approximate_bytes(&self) -> usize {
        let rows: usize = self.day_rows.iter().map(|rows| rows.len()).sum();
        let pairs: usize = self.pairs.iter().map(|pairs| pairs.len()).sum();
        self.visitors.len() * 32 + pairs * 32 + rows * 64
    }
}

/// A session starts in `hour` (a bounce until its second view).
fn start_session(hours: &mut [HourTotals; 24], hour: usize) {
    hours[hour].sessions += 1;
    hours[hour].bounces += 1;
}

/// What one flush did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlushSummary {
    pub wrote: bool,
    pub closed_days: usize,
}

/// Bytes of a value kept inside its dictionary entry (longer ones are on the heap).
const INLINE_VALUE_BYTES: usize = 30;

/// A value of the value → row dictionary: its bytes inline when short, so that a lookup —
/// one per dimension per event — compares them without following a pointer (with 100 000
/// distinct paths, that pointer was a cache miss per event). Hashed and compared as the
/// value's bytes, so the map is looked up with `value.as_bytes()`.
#[derive(Clone, Debug)]
enum ValueKey {
    Inline {
        len: u8,
        bytes: [u8; INLINE_VALUE_BYTES],
    },
    Heap(Box<[u8]>),
}

// Four words: the inline bytes, their length and the variant's tag.
const _: () = assert!(std::mem::size_of::<ValueKey>() == 32);

impl ValueKey {
    fn new(value: &str) -> Self {
        let source = value.as_bytes();
        match u8::try_from(source.len()) {
            Ok(len) if source.len() <= INLINE_VALUE_BYTES => {
                let mut bytes = [0u8; INLINE_VALUE_BYTES];
                bytes[..source.len()].copy_from_slice(source);
                ValueKey::Inline { len, bytes }
            }
            _ => ValueKey::Heap(Box::from(source)),
        }
    }

    fn as_bytes(&self) -> &[u8] {
        match self {
            ValueKey::Inline { len, bytes } => &bytes[..usize::from(*len)],
            ValueKey::Heap(bytes) => bytes,
        }
    }
}

impl PartialEq for ValueKey {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for ValueKey {}

impl std::hash::Hash for ValueKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        // As `[u8]` hashes, which `Borrow<[u8]>` requires.
        self.as_bytes().hash(state);
    }
}

impl std::borrow::Borrow<[u8]> for ValueKey {
    fn borrow(&self) -> &[u8] {
        self.as_bytes()
    }
}

/// Every open day, the value → row id dictionary, and the tree they are flushed to.
pub struct Rollups {
    store: Store,
    tree: sled::Tree,
    settings: RollupSettings,
    days: BTreeMap<u32, DayState>,
    interned: Vec<FxHashMap<ValueKey, u32>>,
    /// Per dimension: `interned` holds the whole value → row dictionary, so a value missing
    /// from it is new and sled need not be asked (true from start-up while the dictionary fits
    /// [`INTERNED_VALUES_LIMIT`], false once the map has been emptied for size).
    interned_complete: [bool; 4],
    last_row_ids: [u32; 4],
    /// New rows since the last flush, to be named (`C`).
    pending_names: Vec<(Dimension, u32, String)>,
    /// Per dimension: the last row whose `M` entry is written (`J`).
    indexed_rows: [u32; 4],
    /// Named rows whose `M` entry is not written yet, in the order they were given out (so
    /// ascending within a dimension); their values stay in `interned`.
    unindexed: VecDeque<(Dimension, u32, String)>,
    /// Client class id ([`ClientRef::Class`]) → its global row id, once looked up.
    client_rows: Vec<Option<u32>>,
    dirty: bool,
}

impl Rollups {
    pub fn open(store: Store, tree: sled::Tree, settings: RollupSettings) -> StorageResult<Self> {
        let mut last_row_ids = [0u32; 4];
        let mut interned: Vec<FxHashMap<ValueKey, u32>> =
            (0..4).map(|_| FxHashMap::default()).collect();
        let mut interned_complete = [false; 4];
        let mut indexed_rows = [0u32; 4];
        let mut unindexed = VecDeque::new();
        for dim in Dimension::ALL {
            let last_key = tree.get(layout::last_row_id_key(dim))?;
            let last = last_key
                .as_ref()
                .and_then(|bytes| layout::u32_at(bytes, 0))
                .unwrap_or(0);
            last_row_ids[dim.index()] = last;
            // Without `J`, an earlier version wrote every row's `M` entry with its name.
            let indexed = match tree.get(layout::indexed_rows_key(dim))? {
                Some(bytes) => layout::u32_at(&bytes, 0).unwrap_or(0).min(last),
                None if last_key.is_some() => last,
                None => 0,
            };
            indexed_rows[dim.index()] = indexed;
            remove_unreached_name_chunks(&tree, dim, last)?;
            let backlog = named_rows(&tree, dim, indexed.saturating_add(1), last)?;
            // Row ids are dense from 1, so the last one is the dictionary's size: load it whole
            // when it fits, and new values never cost a sled lookup.
            let map = &mut interned[dim.index()];
            for (row, value) in &backlog {
                map.insert(ValueKey::new(value), *row);
            }
            unindexed.extend(backlog.into_iter().map(|(row, value)| (dim, row, value)));
            if usize::try_from(last).unwrap_or(usize::MAX) <= INTERNED_VALUES_LIMIT {
                let mut complete = true;
                for entry in tree.scan_prefix(layout::row_id_key(dim, "")) {
                    let (key, bytes) = entry?;
                    // Values are written from strings; anything else leaves sled to be asked.
                    match key.get(2..).map(std::str::from_utf8) {
                        Some(Ok(value)) => {
                            let row = layout::u32_at(&bytes, 0).unwrap_or(OTHER_ROW);
                            map.insert(ValueKey::new(value), row);
                        }
                        _ => complete = false,
                    }
                }
                interned_complete[dim.index()] = complete;
            }
        }
        Ok(Rollups {
            store,
            tree,
            settings,
            days: BTreeMap::new(),
            interned,
            interned_complete,
            last_row_ids,
            pending_names: Vec::new(),
            indexed_rows,
            unindexed,
            client_rows: Vec::new(),
            dirty: false,
        })
    }

    pub fn tree(&self) -> &sled::Tree {
        &self.tree
    }

    /// True when something was counted since the last flush.
    pub fn is_dirty(&self) -> bool {
        self.dirty
    }

    /// Days currently held in memory.
    pub fn open_days(&self) -> Vec<u32> {
        self.days.keys().copied().collect()
    }

    /// A rough size of the in-memory rollups (logs and benches).
    pub fn approximate_bytes(&self) -> usize {
        self.days.values().map(DayState::approximate_bytes).sum()
    }

    /// Folds one page view into its day (`classes`: what a [`ClientRef::Class`] refers to).
    pub fn fold(&mut self, event: PageViewRef<'_>, classes: &ClientClasses) -> StorageResult<()> {
        let day = day_of(event.at_ms);
        let ms_of_day = u32::try_from(event.at_ms.rem_euclid(DAY_MS)).unwrap_or(0);
        let hour = (ms_of_day / 3_600_000).min(23) as usize;
        if !self.days.contains_key(&day) {
            let state = DayState::load(&self.tree, day)?;
            self.days.insert(day, state);
        }
        let path = self.row_for(day, Dimension::Path, event.path)?;
        let referrer = self.row_for(day, Dimension::Referrer, event.referrer.unwrap_or(""))?;
        let campaign = match event.campaign {
            Some(value) => Some(self.row_for(day, Dimension::Campaign, value)?),
            None => None,
        };
        let client = self.client_row(day, event.client, classes)?;
        let timeout = self.settings.session_timeout_ms;
        let cap = self.settings.rows_per_day_cap;
        let Some(state) = self.days.get_mut(&day) else {
            return Ok(());
        };
        let visitor = Some(event.visitor);
        state.count_visit(event.visitor, ms_of_day, timeout);
        state.count(Dimension::Path, hour, path, visitor, cap);
        state.count(Dimension::Referrer, hour, referrer, visitor, cap);
        if let Some(campaign) = campaign {
            state.count(Dimension::Campaign, hour, campaign, visitor, cap);
        }
        state.count(Dimension::Client, hour, client, None, cap);
        self.dirty = true;
        Ok(())
    }

    /// The row of `value`: its global id when it has one (whether `day` has room for it is
    /// settled when counting), else a new id while the day has room, else "(other)". New
    /// values get an id (and a dictionary entry) only when counted.
    fn row_for(&mut self, day: u32, dim: Dimension, value: &str) -> StorageResult<u32> {
        if let Some(row) = self.known_row(dim, value)? {
            return Ok(row);
        }
        Ok(self.new_row(day, dim, value).unwrap_or(OTHER_ROW))
    }

    /// The global id of `value`, if it has one.
    fn known_row(&mut self, dim: Dimension, value: &str) -> StorageResult<Option<u32>> {
        if let Some(row) = self.interned[dim.index()].get(value.as_bytes()) {
            return Ok(Some(*row));
        }
        if self.interned_complete[dim.index()] {
            return Ok(None);
        }
        match self.tree.get(layout::row_id_key(dim, value))? {
            Some(bytes) => {
                let row = layout::u32_at(&bytes, 0).unwrap_or(OTHER_ROW);
                self.interned[dim.index()].insert(ValueKey::new(value), row);
                Ok(Some(row))
            }
            None => Ok(None),
        }
    }

    /// A new global id for `value` (not known yet), unless `day` has no room for another row.
    fn new_row(&mut self, day: u32, dim: Dimension, value: &str) -> Option<u32> {
        let state = self.days.get(&day)?;
        if state.day_rows[dim.index()].len() >= self.settings.rows_per_day_cap {
            return None;
        }
        let row = self.last_row_ids[dim.index()] + 1;
        self.last_row_ids[dim.index()] = row;
        self.interned[dim.index()].insert(ValueKey::new(value), row);
        self.pending_names.push((dim, row, value.to_owned()));
        Some(row)
    }

    /// [`Rollups::row_for`] of the client dimension; a class id is looked up by its text once,
    /// then remembered with its global id.
    fn client_row(
        &mut self,
        day: u32,
        client: ClientRef<'_>,
        classes: &ClientClasses,
    ) -> StorageResult<u32> {
        let class = match client {
            ClientRef::Value(value) => return self.row_for(day, Dimension::Client, value),
            ClientRef::Class(class) => class,
        };
        let index = usize::try_from(class).unwrap_or(usize::MAX);
        if let Some(Some(row)) = self.client_rows.get(index) {
            return Ok(*row);
        }
        // An id the classes never gave out cannot come from the collect path; "(other)".
        let Some(value) = classes.name(class) else {
            return Ok(OTHER_ROW);
        };
        let row = match self.known_row(Dimension::Client, &value)? {
            Some(row) => row,
            None => match self.new_row(day, Dimension::Client, &value) {
                Some(row) => row,
                // No room today: "(other)", and the id is looked up again next time.
                None => return Ok(OTHER_ROW),
            },
        };
        if index < CLIENT_CLASSES_REMEMBERED {
            if self.client_rows.len() <= index {
                self.client_rows.resize(index + 1, None);
            }
            self.client_rows[index] = Some(row);
        }
        Ok(row)
    }

    /// Writes every change since the last flush in one batch, then closes the days before
    /// `today` (one batch each). Returns once the batch is applied (not yet fsynced: see [`Store::durable`]).
    pub fn flush(&mut self, today: u32) -> StorageResult<FlushSummary> {
        let closing: Vec<u32> = self.days.range(..today).map(|(day, _)| *day).collect();
        if !self.dirty && closing.is_empty() && self.unindexed.is_empty() {
            return Ok(FlushSummary::default());
        }
        // New rows' names first, in chunks and batches of their own: a crash after them leaves
        // names no count refers to yet, never a count whose row has no name.
        self.write_names()?;
        // Then every open day's counts and logs in one batch, so they agree after a crash.
        let mut batch = sled::Batch::default();
        for state in self.days.values_mut() {
            state.write_changes(&mut batch)?;
        }
        self.tree.apply_batch(batch)?;
        // Each closing day in batches of its own (a day's products can be large). A crash before
        // a day's summary leaves it open on disk: reports read it from its logs, as they read
        // today, and it is closed when an event for it arrives.
        for day in &closing {
            if let Some(state) = self.days.get(day) {
                state.write_closing(&self.tree)?;
            }
            self.days.remove(day);
        }
        self.write_index_entries()?;
        for dim in Dimension::ALL {
            let interned = &mut self.interned[dim.index()];
            if interned.len() > INTERNED_VALUES_LIMIT {
                interned.clear();
                self.interned_complete[dim.index()] = false;
                // Values without an `M` entry can only be found here.
                for (_, row, value) in self.unindexed.iter().filter(|entry| entry.0 == dim) {
                    interned.insert(ValueKey::new(value), *row);
                }
            }
        }
        self.dirty = false;
        Ok(FlushSummary {
            wrote: true,
            closed_days: closing.len(),
        })
    }

    /// Names the rows given out since the last flush: per dimension, chunks of consecutive rows
    /// (`C`), then the index watermark (`J`, so that a directory of this version is never
    /// taken for an earlier one's), then the last row id (`I`), which makes the rows given out.
    fn write_names(&mut self) -> StorageResult<()> {
        let names = std::mem::take(&mut self.pending_names);
        if names.is_empty() {
            return Ok(());
        }
        let mut parts = PartedWrites::new(&self.tree);
        for dim in Dimension::ALL {
            let mut chunk: Vec<&str> = Vec::with_capacity(NAMES_PER_CHUNK);
            let mut first_row = 0u32;
            for (_, row, value) in names.iter().filter(|entry| entry.0 == dim) {
                let follows = u64::from(first_row) + chunk.len() as u64 == u64::from(*row);
                if !chunk.is_empty() && (!follows || chunk.len() == NAMES_PER_CHUNK) {
                    parts.insert(
                        &layout::name_chunk_key(dim, first_row),
                        codec::encode(&chunk)?,
                    )?;
                    chunk.clear();
                }
                if chunk.is_empty() {
                    first_row = *row;
                }
                chunk.push(value);
            }
            if chunk.is_empty() {
                continue;
            }
            parts.insert(
                &layout::name_chunk_key(dim, first_row),
                codec::encode(&chunk)?,
            )?;
            parts.insert(
                &layout::indexed_rows_key(dim),
                &self.indexed_rows[dim.index()].to_be_bytes(),
            )?;
            parts.insert(
                &layout::last_row_id_key(dim),
                &self.last_row_ids[dim.index()].to_be_bytes(),
            )?;
        }
        parts.finish()?;
        self.unindexed.extend(names);
        Ok(())
    }

    /// Writes the `M` entries of the oldest [`INDEXED_PER_FLUSH`] named rows that lack one,
    /// then the watermarks (`J`) they advance. A crash in between writes them again at the
    /// next start.
    fn write_index_entries(&mut self) -> StorageResult<()> {
        if self.unindexed.is_empty() {
            return Ok(());
        }
        let mut parts = PartedWrites::new(&self.tree);
        let mut advanced = [false; 4];
        for _ in 0..INDEXED_PER_FLUSH {
            let Some((dim, row, value)) = self.unindexed.pop_front() else {
                break;
            };
            parts.insert(layout::row_id_key(dim, &value), &row.to_be_bytes())?;
            self.indexed_rows[dim.index()] = row;
            advanced[dim.index()] = true;
        }
        for dim in Dimension::ALL {
            if advanced[dim.index()] {
                parts.insert(
                    &layout::indexed_rows_key(dim),
                    &self.indexed_rows[dim.index()].to_be_bytes(),
                )?;
            }
        }
        parts.finish()
    }

    /// Named rows still waiting for their value → row entry (benches and logs).
    pub fn unindexed_rows(&self) -> usize {
        self.unindexed.len()
    }

    /// A ticket that resolves when everything applied so far is on disk.
    pub fn durable(&self) -> tabula_storage::DurableTicket {
        self.store.durable()
    }

    /// Deletes every rollup of the days before `first_kept_day`. Returns the keys removed.
    pub fn purge_before(&mut self, first_kept_day: u32) -> StorageResult<usize> {
        let first_kept_hour = first_kept_day.saturating_mul(24);
        let day_bound = |prefix: u8| {
            let mut key = vec![prefix];
            key.extend_from_slice(&first_kept_day.to_be_bytes());
            key
        };
        let mut ranges: Vec<(Vec<u8>, Vec<u8>)> = vec![
            (
                vec![layout::HOUR_TOTALS],
                layout::hour_totals_key(first_kept_hour).to_vec(),
            ),
            (vec![layout::PAIR_LOG], day_bound(layout::PAIR_LOG)),
            (vec![layout::VISITOR_LOG], day_bound(layout::VISITOR_LOG)),
            (vec![layout::DAY_SUMMARY], day_bound(layout::DAY_SUMMARY)),
        ];
        for dim in Dimension::ALL {
            let tag = dim.tag();
            ranges.push((
                vec![layout::HOUR_ROWS, tag],
                layout::hour_rows_key(dim, first_kept_hour).to_vec(),
            ));
            ranges.push((
                vec![layout::DAY_ROWS, tag],
                layout::day_rows_key(dim, first_kept_day).to_vec(),
            ));
            ranges.push((
                vec![layout::ROW_SKETCH, tag],
                layout::row_sketch_key(dim, first_kept_day, 0).to_vec(),
            ));
        }
        let mut removed = 0usize;
        let mut batch = sled::Batch::default();
        for (start, end) in ranges {
            for entry in self
                .tree
                .range::<Vec<u8>, _>((Bound::Included(start), Bound::Excluded(end)))
            {
                let (key, _) = entry?;
                batch.remove(key);
                removed += 1;
            }
        }
        if removed > 0 {
            self.tree.apply_batch(batch)?;
        }
        let stale: Vec<u32> = self
            .days
            .range(..first_kept_day)
            .map(|(day, _)| *day)
            .collect();
        for day in stale {
            self.days.remove(&day);
        }
        Ok(removed)
    }
}

/// The value of `row` in `dim`: from the name chunk holding it, or (a row named by an earlier
/// version) from its own key. `None` for a row never named.
pub fn row_name(tree: &sled::Tree, dim: Dimension, row: u32) -> StorageResult<Option<String>> {
    if let Some((first_row, bytes)) = chunk_at_or_before(tree, dim, row)? {
        let names: Vec<String> = codec::decode(&bytes, "analytics row names")?;
        let offset = usize::try_from(row - first_row).unwrap_or(usize::MAX);
        if let Some(name) = names.into_iter().nth(offset) {
            return Ok(Some(name));
        }
    }
    Ok(tree
        .get(layout::row_name_key(dim, row))?
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned()))
}

/// The name chunk of `dim` with the greatest first row ≤ `row`, with that first row.
fn chunk_at_or_before(
    tree: &sled::Tree,
    dim: Dimension,
    row: u32,
) -> StorageResult<Option<(u32, sled::IVec)>> {
    let below = match row.checked_add(1) {
        Some(next) => tree.get_lt(layout::name_chunk_key(dim, next))?,
        None => tree
            .scan_prefix([layout::NAME_CHUNK, dim.tag()])
            .next_back()
            .transpose()?,
    };
    Ok(below.and_then(|(key, bytes)| {
        let same_dim = key.len() == 6 && key[..2] == [layout::NAME_CHUNK, dim.tag()];
        same_dim
            .then(|| layout::u32_at(&key, 2))
            .flatten()
            .map(|first| (first, bytes))
    }))
}

/// The named rows of `dim` from `from_row` to `to_row` (inclusive), in order, from the name
/// chunks (rows named by an earlier version are not in chunks: they all have `M` entries).
fn named_rows(
    tree: &sled::Tree,
    dim: Dimension,
    from_row: u32,
    to_row: u32,
) -> StorageResult<Vec<(u32, String)>> {
    let mut rows = Vec::new();
    if from_row > to_row {
        return Ok(rows);
    }
    let start = match chunk_at_or_before(tree, dim, from_row)? {
        Some((first, _)) => first,
        None => from_row,
    };
    let chunks =
        tree.range(layout::name_chunk_key(dim, start)..=layout::name_chunk_key(dim, to_row));
    for entry in chunks {
        let (key, bytes) = entry?;
        let Some(first) = layout::u32_at(&key, 2) else {
            continue;
        };
        let names: Vec<String> = codec::decode(&bytes, "analytics row names")?;
        for (row, name) in (first..).zip(names) {
            if (from_row..=to_row).contains(&row) {
                rows.push((row, name));
            }
        }
    }
    Ok(rows)
}

/// Removes the name chunks of rows beyond the last one given out: a flush that stopped after
/// its names but before its last row id leaves them, and the rows are given out again.
fn remove_unreached_name_chunks(tree: &sled::Tree, dim: Dimension, last: u32) -> StorageResult<()> {
    let Some(beyond) = last.checked_add(1) else {
        return Ok(());
    };
    let end = [layout::NAME_CHUNK, dim.tag() + 1];
    let mut parts = PartedWrites::new(tree);
    for entry in tree.range(layout::name_chunk_key(dim, beyond).to_vec()..end.to_vec()) {
        let (key, _) = entry?;
        parts.remove(key)?;
    }
    parts.finish()
}

/// The set of hours (bits) of `day` that fall in `[from_hour, to_hour)`.
pub fn hours_mask(day: u32, from_hour: u32, to_hour: u32) -> u32 {
    let first = day * 24;
    let mut mask = 0u32;
    for hour in 0..24u32 {
        let absolute = first + hour;
        if absolute >= from_hour && absolute < to_hour {
            mask |= 1 << hour;
        }
    }
    mask
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dictionary_keys_are_found_by_their_bytes_inline_or_not() {
        let values = [
            String::new(),
            "/".to_owned(),
            "x".repeat(INLINE_VALUE_BYTES),
            "y".repeat(INLINE_VALUE_BYTES + 1),
            "/ünïcödé/päth/that/is/longer/than/thirty/bytes".to_owned(),
        ];
        let mut map: FxHashMap<ValueKey, u32> = FxHashMap::default();
        for (row, value) in (1u32..).zip(&values) {
            let key = ValueKey::new(value);
            assert_eq!(key.as_bytes(), value.as_bytes());
            assert_eq!(
                matches!(key, ValueKey::Inline { .. }),
                value.len() <= INLINE_VALUE_BYTES,
                "{value}"
            );
            map.insert(key, row);
        }
        for (row, value) in (1u32..).zip(&values) {
            assert_eq!(map.get(value.as_bytes()), Some(&row), "{value}");
        }
        assert_eq!(map.get("z".repeat(INLINE_VALUE_BYTES).as_bytes()), None);
        assert_eq!(map.get("/ ".as_bytes()), None);
        assert_eq!(map.len(), values.len());
    }
}
