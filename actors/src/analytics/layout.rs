//! The key layout of the analytics rollups in the `sys/analytics` sled tree, and the stored
//! value types. Keys are big-endian so that sled's byte order is time order within a prefix.
//!
//! | key | value |
//! |---|---|
//! | `S` | the current day's salt |
//! | `H ++ hour` | [`HourTotals`]: views, sessions, bounces, session time, exact hourly uniques |
//! | `R ++ dim ++ hour` | `Vec<(row, views)>` of one dimension in one hour |
//! | `L ++ day ++ dim ++ seq` | [`PairEntry`] chunk: (row, visitor) pairs first seen / seen in a new hour |
//! | `W ++ day ++ seq` | [`VisitorRecord`] chunk: each visitor's hours and session state |
//! | `D ++ dim ++ day` | `Vec<(row, views, uniques)>` of a closed day (exact uniques) |
//! | `K ++ dim ++ day ++ row` | [`DistinctSketch`] of a row's visitors on a closed day |
//! | `V ++ day` | [`DaySummary`] of a closed day: exact uniques and their sketch |
//! | `C ++ dim ++ first row` | `Vec<String>`: the values of rows `first row`, `first row + 1`, … (at most [`NAMES_PER_CHUNK`]) |
//! | `N ++ dim ++ row` | the row's value, as earlier versions wrote it (one key per row; read when no chunk has the row) |
//! | `M ++ dim ++ value` | the row id of a value |
//! | `J ++ dim` | the last row whose `M` entry is written (`M` entries follow the names, a few hundred per flush) |
//! | `I ++ dim` | the last row id given out in a dimension |
//!
//! Row ids are global per dimension (so a range merges rows by index), row 0 is "(other)".
//! Row ids are given out in order, so a flush's new rows of a dimension are consecutive and
//! are named in a few chunks rather than one key per row: a cold start names tens of thousands
//! of values in its first seconds, and one sled insert per name (two with `M`) was what made
//! its first flush take a second of the core.

use serde::{Deserialize, Serialize};

use super::sketch::DistinctSketch;

pub const HOUR_TOTALS: u8 = b'H';
pub const HOUR_ROWS: u8 = b'R';
pub const PAIR_LOG: u8 = b'L';
pub const VISITOR_LOG: u8 = b'W';
pub const DAY_ROWS: u8 = b'D';
pub const ROW_SKETCH: u8 = b'K';
pub const DAY_SUMMARY: u8 = b'V';
pub const NAME_CHUNK: u8 = b'C';
pub const ROW_NAME: u8 = b'N';
pub const ROW_ID: u8 = b'M';
pub const INDEXED_ROWS: u8 = b'J';
pub const LAST_ROW_ID: u8 = b'I';

/// Most names in one `C` chunk: a report that names a row decodes its chunk.
pub const NAMES_PER_CHUNK: usize = 64;

/// The row every value beyond a day's cap is counted in.
pub const OTHER_ROW: u32 = 0;
/// Its rendered name.
pub const OTHER_NAME: &str = "(other)";

/// A dimension the rollups are broken down by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dimension {
    Path,
    Referrer,
    Campaign,
    /// `device␟browser␟os`: one row per distinct classification; the devices report splits it.
    Client,
}

impl Dimension {
    pub const ALL: [Dimension; 4] = [
        Dimension::Path,
        Dimension::Referrer,
        Dimension::Campaign,
        Dimension::Client,
    ];
    /// The dimensions whose rows count unique visitors.
    pub const WITH_VISITORS: [Dimension; 3] =
        [Dimension::Path, Dimension::Referrer, Dimension::Campaign];

    pub fn tag(self) -> u8 {
        match self {
            Dimension::Path => 1,
            Dimension::Referrer => 2,
            Dimension::Campaign => 3,
            Dimension::Client => 4,
        }
    }

    pub fn index(self) -> usize {
        usize::from(self.tag() - 1)
    }

    pub fn from_tag(tag: u8) -> Option<Dimension> {
        Dimension::ALL.into_iter().find(|dim| dim.tag() == tag)
    }
}

/// The totals of one hour bucket. Sessions, bounces and session time belong to the hour the
/// session started in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HourTotals {
    pub page_views: u64,
    pub sessions: u64,
    pub bounces: u64,
    pub session_ms: u64,
    pub unique_visitors: u64,
}

impl HourTotals {
    pub fn add(&mut self, other: &HourTotals) {
        self.page_views += other.page_views;
        self.sessions += other.sessions;
        self.bounces += other.bounces;
        self.session_ms += other.session_ms;
        self.unique_visitors += other.unique_visitors;
    }

    pub fn is_empty(&self) -> bool {
        *self == HourTotals::default()
    }
}

/// A (row, visitor) pair of one day with the hours (bit per UTC hour) it was seen in so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PairEntry {
    pub row: u32,
    pub visitor: u64,
    pub hours: u32,
}

/// A visitor of one day: the hours seen and the state of the current session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct VisitorRecord {
    pub visitor: u64,
    pub hours: u32,
    pub last_seen_ms_of_day: u32,
    pub session_start_hour: u8,
    pub session_views: u32,
}

/// A closed day: its exact distinct visitors and their sketch for cross-day unions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaySummary {
    pub unique_visitors: u64,
    pub sketch: DistinctSketch,
}

pub fn hour_totals_key(hour: u32) -> [u8; 5] {
    let mut key = [HOUR_TOTALS, 0, 0, 0, 0];
    key[1..].copy_from_slice(&hour.to_be_bytes());
    key
}

pub fn hour_rows_key(dim: Dimension, hour: u32) -> [u8; 6] {
    let mut key = [HOUR_ROWS, dim.tag(), 0, 0, 0, 0];
    key[2..].copy_from_slice(&hour.to_be_bytes());
    key
}

pub fn pair_log_prefix(day: u32, dim: Dimension) -> Vec<u8> {
    let mut key = vec![PAIR_LOG];
    key.extend_from_slice(&day.to_be_bytes());
    key.push(dim.tag());
    key
}

pub fn pair_log_key(day: u32, dim: Dimension, seq: u32) -> Vec<u8> {
    let mut key = pair_log_prefix(day, dim);
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

pub fn visitor_log_prefix(day: u32) -> Vec<u8> {
    let mut key = vec![VISITOR_LOG];
    key.extend_from_slice(&day.to_be_bytes());
    key
}

pub fn visitor_log_key(day: u32, seq: u32) -> Vec<u8> {
    let mut key = visitor_log_prefix(day);
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

pub fn day_rows_key(dim: Dimension, day: u32) -> [u8; 6] {
    let mut key = [DAY_ROWS, dim.tag(), 0, 0, 0, 0];
    key[2..].copy_from_slice(&day.to_be_bytes());
    key
}

pub fn row_sketch_key(dim: Dimension, day: u32, row: u32) -> [u8; 10] {
    let mut key = [ROW_SKETCH, dim.tag(), 0, 0, 0, 0, 0, 0, 0, 0];
    key[2..6].copy_from_slice(&day.to_be_bytes());
    key[6..].copy_from_slice(&row.to_be_bytes());
    key
}

pub fn day_summary_key(day: u32) -> [u8; 5] {
    let mut key = [DAY_SUMMARY, 0, 0, 0, 0];
    key[1..].copy_from_slice(&day.to_be_bytes());
    key
}

pub fn row_name_key(dim: Dimension, row: u32) -> [u8; 6] {
    let mut key = [ROW_NAME, dim.tag(), 0, 0, 0, 0];
    key[2..].copy_from_slice(&row.to_be_bytes());
    key
}

pub fn name_chunk_key(dim: Dimension, first_row: u32) -> [u8; 6] {
    let mut key = [NAME_CHUNK, dim.tag(), 0, 0, 0, 0];
    key[2..].copy_from_slice(&first_row.to_be_bytes());
    key
}

pub fn indexed_rows_key(dim: Dimension) -> [u8; 2] {
    [INDEXED_ROWS, dim.tag()]
}

pub fn row_id_key(dim: Dimension, value: &str) -> Vec<u8> {
    let mut key = vec![ROW_ID, dim.tag()];
    key.extend_from_slice(value.as_bytes());
    key
}

pub fn last_row_id_key(dim: Dimension) -> [u8; 2] {
    [LAST_ROW_ID, dim.tag()]
}

/// The big-endian u32 at `offset` of a key.
pub fn u32_at(key: &[u8], offset: usize) -> Option<u32> {
    let bytes: [u8; 4] = key.get(offset..offset + 4)?.try_into().ok()?;
    Some(u32::from_be_bytes(bytes))
}
