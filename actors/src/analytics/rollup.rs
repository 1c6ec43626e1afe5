//! The in-memory rollups of the open days and how they reach sled.
//!
//! An open day holds, per hour, the totals and the views of every row of every dimension, the
//! day's visitors (hours seen, session state) and the (row, visitor) pairs that make per-row
//! unique counts exact. Every flush writes, in one sled batch, the current value of each changed
//! hour (`H`, `R`) and an append-only chunk of the pairs and visitors that changed (`L`, `W`),
//! so a restart rebuilds the day exactly. A day before today is closed at the next flush: its
//! per-row totals (`D`), per-row sketches (`K`) and day summary (`V`) are written and it leaves
//! memory. A late event for a closed day reopens it from disk.

use std::collections::BTreeMap;
use std::ops::Bound;

use rustc_hash::FxHashMap;
use tabula_storage::{codec, StorageResult, Store};

use super::layout::{self, DaySummary, Dimension, HourTotals, PairEntry, VisitorRecord, OTHER_ROW};
use super::sketch::DistinctSketch;
use super::visitor::{day_of, DAY_MS};

/// Distinct values per dimension per day with their own row; later ones count as "(other)".
pub const ROWS_PER_DAY_CAP: usize = 50_000;
/// Values per dimension whose row id is remembered in memory between flushes (then forgotten
/// and looked up in sled again when they come back).
const INTERNED_VALUES_LIMIT: usize = 200_000;
/// The most keys one batch of row names or of a day's closing sketches writes.
const CHUNK_KEYS: usize = 512;

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
            client: &self.client,
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
    pub client: &'a str,
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
    /// (dimension index, row, visitor) → hours seen.
    pairs: FxHashMap<(u64, u32, u8), u32>,
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
            pairs: FxHashMap::default(),
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
                    let slot = state
                        .pairs
                        .entry((pair.visitor, pair.row, dim.tag()))
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

    fn count_row(&mut self, dim: Dimension, hour: usize, row: u32) {
        *self.hour_rows[dim.index()][hour].entry(row).or_insert(0) += 1;
        self.dirty_hour_rows[dim.index()] |= 1 << hour;
        self.day_rows[dim.index()].entry(row).or_default().views += 1;
    }

    fn count_pair(&mut self, dim: Dimension, hour: usize, row: u32, visitor: u64) {
        let bit = 1u32 << hour;
        let slot = self.pairs.entry((visitor, row, dim.tag())).or_insert(0);
        if *slot & bit != 0 {
            return;
        }
        if *slot == 0 {
            self.day_rows[dim.index()].entry(row).or_default().uniques += 1;
        }
        *slot |= bit;
        self.pending_pairs[dim.index()].push(PairEntry {
            row,
            visitor,
            hours: *slot,
        });
    }

    /// Visitor, hour uniques and session accounting for one view at `ms_of_day`.
    fn count_visit(&mut self, visitor: u64, ms_of_day: u32, session_timeout_ms: i64) {
        let hour = (ms_of_day / 3_600_000).min(23) as usize;
        let bit = 1u32 << hour;
        let known = self.visitors.get(&visitor).copied();
        let mut state = match known {
            None => {
                self.hours[hour].unique_visitors += 1;
                self.start_session(hour);
                VisitorDay {
                    hours: bit,
                    last_seen_ms_of_day: ms_of_day,
                    session_start_hour: hour as u8,
                    session_views: 1,
                    dirty: false,
                }
            }
            Some(mut state) => {
                if state.hours & bit == 0 {
                    state.hours |= bit;
                    self.hours[hour].unique_visitors += 1;
                }
                let idle = i64::from(ms_of_day) - i64::from(state.last_seen_ms_of_day);
                if idle > session_timeout_ms {
                    self.start_session(hour);
                    state.session_start_hour = hour as u8;
                    state.session_views = 1;
                } else {
                    let start = usize::from(state.session_start_hour).min(23);
                    state.session_views += 1;
                    if state.session_views == 2 {
                        self.hours[start].bounces = self.hours[start].bounces.saturating_sub(1);
                    }
                    if idle > 0 {
                        self.hours[start].session_ms += idle.unsigned_abs();
                    }
                    self.dirty_hours |= 1 << start;
                }
                state.last_seen_ms_of_day = state.last_seen_ms_of_day.max(ms_of_day);
                state
            }
        };
        self.hours[hour].page_views += 1;
        self.dirty_hours |= bit;
        if !state.dirty {
            state.dirty = true;
            self.dirty_visitors.push(visitor);
        }
        self.visitors.insert(visitor, state);
    }

    fn start_session(&mut self, hour: usize) {
        self.hours[hour].sessions += 1;
        self.hours[hour].bounces += 1;
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
                    let mut rows: Vec<(u32, u64)> = self.hour_rows[dim.index()][hour as usize]
                        .iter()
                        .map(|(row, views)| (*row, *views))
                        .collect();
                    rows.sort_unstable();
                    batch.insert(
                        &layout::hour_rows_key(dim, first_hour + hour),
                        codec::encode(&rows)?,
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

    /// Writes the closed-day products: the per-row sketches in batches of
    /// [`CHUNK_KEYS`], then the per-row totals and the day summary together in a last
    /// batch. The summary is what marks a day closed for the reports, so it lands only after
    /// every sketch; a crash before it leaves the day open (it is closed again, rewriting the
    /// same sketches). Small batches keep memory bounded: sled copies a leaf for every insert
    /// and frees the copies only when the batch ends, so one batch of a day's 100 000 sketches
    /// held hundreds of MiB of copies at once.
    fn write_closing(&self, tree: &sled::Tree) -> StorageResult<()> {
        let mut visitors_by_row: FxHashMap<(u8, u32), Vec<u64>> = FxHashMap::default();
        for (visitor, row, tag) in self.pairs.keys() {
            visitors_by_row
                .entry((*tag, *row))
                .or_default()
                .push(*visitor);
        }
        let mut batch = sled::Batch::default();
        let mut staged = 0usize;
        for ((tag, row), visitors) in visitors_by_row {
            if let Some(dim) = Dimension::from_tag(tag) {
                let sketch = DistinctSketch::from_ids(visitors);
                batch.insert(
                    &layout::row_sketch_key(dim, self.day, row),
                    codec::encode(&sketch)?,
                );
                staged += 1;
                if staged == CHUNK_KEYS {
                    tree.apply_batch(std::mem::take(&mut batch))?;
                    staged = 0;
                }
            }
        }
        for dim in Dimension::ALL {
            let mut rows: Vec<(u32, u64, u64)> = self.day_rows[dim.index()]
                .iter()
                .map(|(row, totals)| (*row, totals.views, totals.uniques))
                .collect();
            rows.sort_unstable();
            batch.insert(&layout::day_rows_key(dim, self.day), codec::encode(&rows)?);
        }
        let visitors: Vec<u64> = self.visitors.keys().copied().collect();
        let summary = DaySummary {
            unique_visitors: u64::try_from(visitors.len()).unwrap_or(u64::MAX),
            sketch: DistinctSketch::from_ids(visitors),
        };
        batch.insert(&layout::day_summary_key(self.day), codec::encode(&summary)?);
        tree.apply_batch(batch)?;
        Ok(())
    }

    fn approximate_bytes(&self) -> usize {
        let rows: usize = self.day_rows.iter().map(|rows| rows.len()).sum();
        self.visitors.len() * 32 + self.pairs.len() * 32 + rows * 64
    }
}

/// What one flush did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlushSummary {
    pub wrote: bool,
    pub closed_days: usize,
}

/// Every open day, the value → row id dictionary, and the tree they are flushed to.
pub struct Rollups {
    store: Store,
    tree: sled::Tree,
    settings: RollupSettings,
    days: BTreeMap<u32, DayState>,
    interned: Vec<FxHashMap<Box<str>, u32>>,
    /// Per dimension: `interned` holds the whole value → row dictionary, so a value missing
    /// from it is new and sled need not be asked (true from start-up while the dictionary fits
    /// [`INTERNED_VALUES_LIMIT`], false once the map has been emptied for size).
    interned_complete: [bool; 4],
    last_row_ids: [u32; 4],
    pending_names: Vec<(Dimension, u32, String)>,
    dirty: bool,
}

impl Rollups {
    pub fn open(store: Store, tree: sled::Tree, settings: RollupSettings) -> StorageResult<Self> {
        let mut last_row_ids = [0u32; 4];
        let mut interned: Vec<FxHashMap<Box<str>, u32>> =
            (0..4).map(|_| FxHashMap::default()).collect();
        let mut interned_complete = [false; 4];
        for dim in Dimension::ALL {
            if let Some(bytes) = tree.get(layout::last_row_id_key(dim))? {
                last_row_ids[dim.index()] = layout::u32_at(&bytes, 0).unwrap_or(0);
            }
            // Row ids are dense from 1, so the last one is the dictionary's size: load it whole
            // when it fits, and new values never cost a sled lookup.
            if usize::try_from(last_row_ids[dim.index()]).unwrap_or(usize::MAX)
                <= INTERNED_VALUES_LIMIT
            {
                let map = &mut interned[dim.index()];
                let mut complete = true;
                for entry in tree.scan_prefix(layout::row_id_key(dim, "")) {
                    let (key, bytes) = entry?;
                    // Values are written from strings; anything else leaves sled to be asked.
                    match key.get(2..).map(std::str::from_utf8) {
                        Some(Ok(value)) => {
                            let row = layout::u32_at(&bytes, 0).unwrap_or(OTHER_ROW);
                            map.insert(Box::from(value), row);
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

    /// Folds one page view into its day.
    pub fn fold(&mut self, event: PageViewRef<'_>) -> StorageResult<()> {
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
        let client = self.row_for(day, Dimension::Client, event.client)?;
        let timeout = self.settings.session_timeout_ms;
        let Some(state) = self.days.get_mut(&day) else {
            return Ok(());
        };
        state.count_visit(event.visitor, ms_of_day, timeout);
        state.count_row(Dimension::Path, hour, path);
        state.count_pair(Dimension::Path, hour, path, event.visitor);
        state.count_row(Dimension::Referrer, hour, referrer);
        state.count_pair(Dimension::Referrer, hour, referrer, event.visitor);
        if let Some(campaign) = campaign {
            state.count_row(Dimension::Campaign, hour, campaign);
            state.count_pair(Dimension::Campaign, hour, campaign, event.visitor);
        }
        state.count_row(Dimension::Client, hour, client);
        self.dirty = true;
        Ok(())
    }

    /// The row of `value` on `day`: its global id while the day has room (or already has it),
    /// otherwise "(other)". New values get an id (and a dictionary entry) only when counted.
    fn row_for(&mut self, day: u32, dim: Dimension, value: &str) -> StorageResult<u32> {
        let known = match self.interned[dim.index()].get(value) {
            Some(row) => Some(*row),
            None if self.interned_complete[dim.index()] => None,
            None => match self.tree.get(layout::row_id_key(dim, value))? {
                Some(bytes) => {
                    let row = layout::u32_at(&bytes, 0).unwrap_or(OTHER_ROW);
                    self.interned[dim.index()].insert(Box::from(value), row);
                    Some(row)
                }
                None => None,
            },
        };
        let Some(state) = self.days.get(&day) else {
            return Ok(OTHER_ROW);
        };
        let day_rows = &state.day_rows[dim.index()];
        if let Some(row) = known {
            if day_rows.contains_key(&row) || day_rows.len() < self.settings.rows_per_day_cap {
                return Ok(row);
            }
            return Ok(OTHER_ROW);
        }
        if day_rows.len() >= self.settings.rows_per_day_cap {
            return Ok(OTHER_ROW);
        }
        let row = self.last_row_ids[dim.index()] + 1;
        self.last_row_ids[dim.index()] = row;
        self.interned[dim.index()].insert(Box::from(value), row);
        self.pending_names.push((dim, row, value.to_owned()));
        Ok(row)
    }

    /// Writes every change since the last flush in one batch, then closes the days before
    /// `today` (one batch each). Returns once the batch is applied (not yet fsynced: see [`Store::durable`]).
    pub fn flush(&mut self, today: u32) -> StorageResult<FlushSummary> {
        let closing: Vec<u32> = self.days.range(..today).map(|(day, _)| *day).collect();
        if !self.dirty && closing.is_empty() {
            return Ok(FlushSummary::default());
        }
        // New rows' names first, in batches of their own (a cold start names thousands of
        // values per flush, and one batch per flush held sled's copies of every leaf it
        // touched until it ended): a crash after them leaves names no count refers to yet,
        // never a count whose row has no name.
        let mut named = [false; 4];
        let mut batch = sled::Batch::default();
        let mut staged = 0usize;
        for (dim, row, value) in std::mem::take(&mut self.pending_names) {
            batch.insert(&layout::row_name_key(dim, row), value.as_bytes());
            batch.insert(layout::row_id_key(dim, &value), &row.to_be_bytes());
            named[dim.index()] = true;
            staged += 2;
            if staged >= CHUNK_KEYS {
                self.tree.apply_batch(std::mem::take(&mut batch))?;
                staged = 0;
            }
        }
        for dim in Dimension::ALL {
            if named[dim.index()] {
                batch.insert(
                    &layout::last_row_id_key(dim),
                    &self.last_row_ids[dim.index()].to_be_bytes(),
                );
            }
        }
        self.tree.apply_batch(batch)?;
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
        for (interned, complete) in self.interned.iter_mut().zip(&mut self.interned_complete) {
            if interned.len() > INTERNED_VALUES_LIMIT {
                interned.clear();
                *complete = false;
            }
        }
        self.dirty = false;
        Ok(FlushSummary {
            wrote: true,
            closed_days: closing.len(),
        })
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
