//! The five reports of SPEC §7, computed from the rollups on disk (the aggregator flushes
//! before a report is read, so they include every event accepted so far).
//!
//! Resolution is one hour: a range covers the hour buckets from the one holding `from` up to,
//! not including, `to` (a date-only `to` means the end of that day). Unique visitors are exact
//! when the range (or period) lies within one UTC day — from the day's visitor and pair logs,
//! which record the hours each visitor was seen — and across days the union of per-day
//! [`DistinctSketch`]es (exact up to 2048 visitors, HyperLogLog p = 14 beyond).

use std::collections::{BTreeMap, HashMap};

use chrono::{Datelike, NaiveDate};
use rustc_hash::{FxHashMap, FxHashSet};
use tabula_storage::{codec, StorageResult};

use super::client::{split_campaign, Client};
use super::layout::{self, DaySummary, Dimension, HourTotals, PairEntry, VisitorRecord};
use super::sketch::DistinctSketch;
use super::visitor::{DAY_MS, HOUR_MS};
use crate::clock;
use crate::error::{DomainError, DomainResult, FieldError};

/// Largest `limit`.
pub const MAX_LIMIT: usize = 1000;
/// Most periods one time series may have.
pub const MAX_PERIODS: usize = 10_000;
/// Beyond this many rows tied at the cut, ties are broken by first appearance, not by name.
const TIE_NAMES_LIMIT: usize = 1000;

/// Hour buckets `[from_hour, to_hour)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HourRange {
    pub from_hour: u32,
    pub to_hour: u32,
}

impl HourRange {
    fn first_day(self) -> u32 {
        self.from_hour / 24
    }

    fn last_day(self) -> u32 {
        (self.to_hour - 1) / 24
    }

    fn covers_whole_day(self, day: u32) -> bool {
        self.from_hour <= day * 24 && self.to_hour >= day * 24 + 24
    }

    fn clip(self, other: HourRange) -> Option<HourRange> {
        let from_hour = self.from_hour.max(other.from_hour);
        let to_hour = self.to_hour.min(other.to_hour);
        (from_hour < to_hour).then_some(HourRange { from_hour, to_hour })
    }
}

/// The time-series bucket size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Granularity {
    Hour,
    Day,
    Week,
    Month,
}

/// Validated query parameters of every report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportParams {
    pub range: HourRange,
    pub granularity: Granularity,
    pub limit: usize,
}

/// Which report to compute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportKind {
    Overview,
    Pages,
    Referrers,
    Devices,
    Campaigns,
}

/// Parses `from`, `to`, `granularity`, `limit`, collecting one error per bad parameter.
pub fn parse_params(
    from: Option<&str>,
    to: Option<&str>,
    granularity: Option<&str>,
    limit: Option<&str>,
) -> DomainResult<ReportParams> {
    let mut errors = Vec::new();
    let instant = |name: &str, value: Option<&str>, errors: &mut Vec<FieldError>| {
        let Some(value) = value.map(str::trim).filter(|value| !value.is_empty()) else {
            errors.push(FieldError::new(name, format!("'{name}' is required")));
            return None;
        };
        match clock::parse_datetime_ms(value) {
            Some(millis) if millis >= 0 => Some((millis, clock::parse_date(value).is_some())),
            _ => {
                errors.push(FieldError::new(
                    name,
                    format!("'{name}' must be an RFC 3339 date-time or a YYYY-MM-DD date"),
                ));
                None
            }
        }
    };
    let from = instant("from", from, &mut errors);
    let to = instant("to", to, &mut errors);
    let granularity = match granularity.map(str::trim).unwrap_or("day") {
        "hour" => Some(Granularity::Hour),
        "day" => Some(Granularity::Day),
        "week" => Some(Granularity::Week),
        "month" => Some(Granularity::Month),
        _ => {
            errors.push(FieldError::new(
                "granularity",
                "'granularity' must be one of hour, day, week, month",
            ));
            None
        }
    };
    let limit = match limit.map(str::trim) {
        None => Some(10),
        Some(text) => match text.parse::<usize>() {
            Ok(limit) if (1..=MAX_LIMIT).contains(&limit) => Some(limit),
            _ => {
                errors.push(FieldError::new(
                    "limit",
                    format!("'limit' must be an integer from 1 to {MAX_LIMIT}"),
                ));
                None
            }
        },
    };
    let range = match (from, to) {
        (Some((from_ms, _)), Some((to_ms, to_is_date))) => {
            let to_ms = if to_is_date { to_ms + DAY_MS } else { to_ms };
            let from_hour = u32::try_from(from_ms / HOUR_MS).unwrap_or(u32::MAX);
            let to_hour = u32::try_from((to_ms + HOUR_MS - 1) / HOUR_MS).unwrap_or(u32::MAX);
            if to_hour <= from_hour || to_ms <= from_ms {
                errors.push(FieldError::new("to", "'to' must be after 'from'"));
                None
            } else {
                Some(HourRange { from_hour, to_hour })
            }
        }
        _ => None,
    };
    if let (Some(range), Some(granularity)) = (range, granularity) {
        if periods(range, granularity).len() > MAX_PERIODS {
            errors.push(FieldError::new(
                "granularity",
                format!("the range has more than {MAX_PERIODS} periods at this granularity"),
            ));
        }
    }
    match (range, granularity, limit) {
        (Some(range), Some(granularity), Some(limit)) if errors.is_empty() => Ok(ReportParams {
            range,
            granularity,
            limit,
        }),
        _ => Err(DomainError::BadRequest {
            message: "Invalid analytics query parameters".into(),
            errors,
        }),
    }
}

/// A computed report.
#[derive(Debug, Clone, PartialEq)]
pub enum Report {
    Overview(Overview),
    Pages(Ranking),
    Referrers(Ranking),
    Devices(Devices),
    Campaigns(CampaignRanking),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Overview {
    pub page_views: u64,
    pub unique_visitors: u64,
    pub sessions: u64,
    /// Percent of sessions with one page view, 2 decimals.
    pub bounce_rate: f64,
    /// Mean session length in seconds, 2 decimals.
    pub avg_session_seconds: f64,
    pub time_series: Vec<PeriodTotals>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeriodTotals {
    /// Start of the period (ms since the epoch), even when the range starts inside it.
    pub start_ms: i64,
    pub page_views: u64,
    pub unique_visitors: u64,
    pub sessions: u64,
}

/// A row of pages or referrers; `name` is `None` for direct traffic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RankedRow {
    pub name: Option<String>,
    pub page_views: u64,
    pub unique_visitors: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ranking {
    pub rows: Vec<RankedRow>,
    /// Distinct rows in the range before `limit`.
    pub total: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CampaignRow {
    pub source: Option<String>,
    pub medium: Option<String>,
    pub campaign: Option<String>,
    pub page_views: u64,
    pub unique_visitors: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CampaignRanking {
    pub rows: Vec<CampaignRow>,
    pub total: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ShareRow {
    pub name: String,
    pub count: u64,
    /// Percent of all page views in the range, 2 decimals.
    pub percentage: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Devices {
    pub device_types: Vec<ShareRow>,
    pub browsers: Vec<ShareRow>,
    pub operating_systems: Vec<ShareRow>,
}

/// Computes one report from the tree.
pub fn compute(tree: &sled::Tree, kind: ReportKind, params: ReportParams) -> StorageResult<Report> {
    let reader = Reader::new(tree);
    Ok(match kind {
        ReportKind::Overview => Report::Overview(reader.overview(params)?),
        ReportKind::Pages => Report::Pages(reader.ranking(Dimension::Path, params)?),
        ReportKind::Referrers => Report::Referrers(reader.ranking(Dimension::Referrer, params)?),
        ReportKind::Devices => Report::Devices(reader.devices(params)?),
        ReportKind::Campaigns => {
            let ranking = reader.ranking(Dimension::Campaign, params)?;
            Report::Campaigns(CampaignRanking {
                total: ranking.total,
                rows: ranking
                    .rows
                    .into_iter()
                    .map(|row| {
                        let value = row.name.unwrap_or_default();
                        let (source, medium, campaign) = if value == layout::OTHER_NAME {
                            (Some(value.as_str()), None, None)
                        } else {
                            split_campaign(&value)
                        };
                        CampaignRow {
                            source: source.map(str::to_owned),
                            medium: medium.map(str::to_owned),
                            campaign: campaign.map(str::to_owned),
                            page_views: row.page_views,
                            unique_visitors: row.unique_visitors,
                        }
                    })
                    .collect(),
            })
        }
    })
}

/// Rounds to 2 decimals.
fn two_decimals(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        two_decimals(part as f64 * 100.0 / whole as f64)
    }
}

/// The periods of `granularity` that meet `range`, each with its natural start and the part of
/// it inside the range.
pub fn periods(range: HourRange, granularity: Granularity) -> Vec<(i64, HourRange)> {
    let mut periods = Vec::new();
    let mut start = period_start(range.from_hour, granularity);
    while start < range.to_hour {
        let end = period_end(start, granularity);
        let period = HourRange {
            from_hour: start,
            to_hour: end,
        };
        if let Some(clipped) = period.clip(range) {
            periods.push((i64::from(start) * HOUR_MS, clipped));
        }
        if periods.len() > MAX_PERIODS {
            break;
        }
        start = end;
    }
    periods
}

fn date_of_day(day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(1970, 1, 1)
        .and_then(|epoch| epoch.checked_add_days(chrono::Days::new(u64::from(day))))
        .unwrap_or_default()
}

fn day_of_date(date: NaiveDate) -> u32 {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default();
    u32::try_from(date.signed_duration_since(epoch).num_days()).unwrap_or(0)
}

fn period_start(hour: u32, granularity: Granularity) -> u32 {
    let day = hour / 24;
    match granularity {
        Granularity::Hour => hour,
        Granularity::Day => day * 24,
        // 1970-01-01 was a Thursday; weeks start on Monday (ISO).
        Granularity::Week => day.saturating_sub((day + 3) % 7) * 24,
        Granularity::Month => {
            let date = date_of_day(day);
            let first = date.with_day(1).unwrap_or(date);
            day_of_date(first) * 24
        }
    }
}

fn period_end(start: u32, granularity: Granularity) -> u32 {
    match granularity {
        Granularity::Hour => start + 1,
        Granularity::Day => start + 24,
        Granularity::Week => start + 24 * 7,
        Granularity::Month => {
            let date = date_of_day(start / 24);
            let next = date
                .checked_add_months(chrono::Months::new(1))
                .unwrap_or(date);
            day_of_date(next).max(start / 24 + 1) * 24
        }
    }
}

/// Reads rollups for one report, remembering what it already decoded.
struct Reader<'a> {
    tree: &'a sled::Tree,
    summaries: std::cell::RefCell<HashMap<u32, Option<DaySummary>>>,
}

impl<'a> Reader<'a> {
    fn new(tree: &'a sled::Tree) -> Self {
        Reader {
            tree,
            summaries: std::cell::RefCell::new(HashMap::new()),
        }
    }

    fn hour_totals(&self, range: HourRange) -> StorageResult<BTreeMap<u32, HourTotals>> {
        let start = layout::hour_totals_key(range.from_hour);
        let end = layout::hour_totals_key(range.to_hour);
        let mut totals = BTreeMap::new();
        for entry in self.tree.range(start..end) {
            let (key, bytes) = entry?;
            if let Some(hour) = layout::u32_at(&key, 1) {
                totals.insert(hour, codec::decode(&bytes, "analytics hour totals")?);
            }
        }
        Ok(totals)
    }

    /// The summary of a closed day; `None` while the day is open (or has no data).
    fn day_summary(&self, day: u32) -> StorageResult<Option<DaySummary>> {
        if let Some(known) = self.summaries.borrow().get(&day) {
            return Ok(known.clone());
        }
        let summary = match self.tree.get(layout::day_summary_key(day))? {
            Some(bytes) => Some(codec::decode(&bytes, "analytics day summary")?),
            None => None,
        };
        self.summaries.borrow_mut().insert(day, summary.clone());
        Ok(summary)
    }

    /// Each visitor of `day` with the hours they were seen in (from the visitor log).
    fn day_visitors(&self, day: u32) -> StorageResult<FxHashMap<u64, u32>> {
        let mut visitors: FxHashMap<u64, u32> = FxHashMap::default();
        for entry in self.tree.scan_prefix(layout::visitor_log_prefix(day)) {
            let (_, bytes) = entry?;
            let records: Vec<VisitorRecord> = codec::decode(&bytes, "analytics visitor log")?;
            for record in records {
                *visitors.entry(record.visitor).or_insert(0) |= record.hours;
            }
        }
        Ok(visitors)
    }

    /// Distinct visitors in `range`: exact within one day, a sketch union across days.
    fn unique_visitors(
        &self,
        range: HourRange,
        totals: &BTreeMap<u32, HourTotals>,
    ) -> StorageResult<u64> {
        if range.to_hour - range.from_hour == 1 {
            return Ok(totals
                .get(&range.from_hour)
                .map_or(0, |hour| hour.unique_visitors));
        }
        if range.first_day() == range.last_day() {
            let day = range.first_day();
            if range.covers_whole_day(day) {
                if let Some(summary) = self.day_summary(day)? {
                    return Ok(summary.unique_visitors);
                }
            }
            let mask = super::rollup::hours_mask(day, range.from_hour, range.to_hour);
            let visitors = self.day_visitors(day)?;
            let count = visitors
                .values()
                .filter(|hours| **hours & mask != 0)
                .count();
            return Ok(u64::try_from(count).unwrap_or(u64::MAX));
        }
        let mut union = DistinctSketch::default();
        for day in range.first_day()..=range.last_day() {
            if range.covers_whole_day(day) {
                if let Some(summary) = self.day_summary(day)? {
                    union.merge(&summary.sketch);
                    continue;
                }
            }
            let mask = super::rollup::hours_mask(day, range.from_hour, range.to_hour);
            let ids: Vec<u64> = self
                .day_visitors(day)?
                .into_iter()
                .filter(|(_, hours)| hours & mask != 0)
                .map(|(visitor, _)| visitor)
                .collect();
            union.merge(&DistinctSketch::from_ids(ids));
        }
        Ok(union.count())
    }

    fn overview(&self, params: ReportParams) -> StorageResult<Overview> {
        let range = params.range;
        let totals = self.hour_totals(range)?;
        let mut sum = HourTotals::default();
        for hour in totals.values() {
            sum.add(hour);
        }
        let mut time_series = Vec::new();
        for (start_ms, period) in periods(range, params.granularity) {
            let mut period_sum = HourTotals::default();
            for (_, hour) in totals.range(period.from_hour..period.to_hour) {
                period_sum.add(hour);
            }
            let unique_visitors = if period_sum.page_views == 0 {
                0
            } else {
                self.unique_visitors(period, &totals)?
            };
            time_series.push(PeriodTotals {
                start_ms,
                page_views: period_sum.page_views,
                unique_visitors,
                sessions: period_sum.sessions,
            });
        }
        let unique_visitors = if sum.page_views == 0 {
            0
        } else {
            self.unique_visitors(range, &totals)?
        };
        let avg_session_seconds = if sum.sessions == 0 {
            0.0
        } else {
            two_decimals(sum.session_ms as f64 / 1000.0 / sum.sessions as f64)
        };
        Ok(Overview {
            page_views: sum.page_views,
            unique_visitors,
            sessions: sum.sessions,
            bounce_rate: percent(sum.bounces, sum.sessions),
            avg_session_seconds,
            time_series,
        })
    }

    fn day_rows(&self, dim: Dimension, day: u32) -> StorageResult<Option<Vec<(u32, u64, u64)>>> {
        match self.tree.get(layout::day_rows_key(dim, day))? {
            Some(bytes) => Ok(Some(codec::decode(&bytes, "analytics day rows")?)),
            None => Ok(None),
        }
    }

    /// Views per row over the range: closed whole days from `D`, everything else from `R`.
    /// The stored row lists are folded straight into a [`RowViews`] without being collected.
    fn row_views(&self, dim: Dimension, range: HourRange) -> StorageResult<RowViews> {
        let mut views = RowViews::default();
        let mut hourly_from: Option<u32> = None;
        let add_hours = |from: u32, to: u32, views: &mut RowViews| {
            let start = layout::hour_rows_key(dim, from);
            let end = layout::hour_rows_key(dim, to);
            for entry in self.tree.range(start..end) {
                let (_, bytes) = entry?;
                fold_rows::<2>(&bytes, "analytics hour rows", |row, count| {
                    views.add(row, count)
                })?;
            }
            Ok::<(), tabula_storage::StorageError>(())
        };
        for day in range.first_day()..=range.last_day() {
            let closed = if range.covers_whole_day(day) {
                self.tree.get(layout::day_rows_key(dim, day))?
            } else {
                None
            };
            match closed {
                Some(bytes) => {
                    if let Some(from) = hourly_from.take() {
                        add_hours(from, day * 24, &mut views)?;
                    }
                    fold_rows::<3>(&bytes, "analytics day rows", |row, count| {
                        views.add(row, count)
                    })?;
                }
                None => {
                    if hourly_from.is_none() {
                        hourly_from = Some(range.from_hour.max(day * 24));
                    }
                }
            }
        }
        if let Some(from) = hourly_from {
            add_hours(from, range.to_hour, &mut views)?;
        }
        Ok(views)
    }

    /// True when the closing of `day` wrote the per-row products of `dim`: its row list
    /// (`D`), which lands after every row sketch (`K`) of the dimension. The row list is what
    /// [`Reader::row_views`] has just read, so this costs no cold page (the day summary, which
    /// marks the whole day closed, holds a 16 KiB sketch).
    fn day_rows_written(&self, dim: Dimension, day: u32) -> StorageResult<bool> {
        Ok(self.tree.contains_key(layout::day_rows_key(dim, day))?)
    }

    /// The visitors of each of `rows` on `day` seen in an hour of `mask`, from the pair log,
    /// read in place. A visitor can be listed more than once (each log entry of a pair holds
    /// the hours seen so far, so a pair was seen in `mask` when any of its entries says so).
    fn day_row_visitors(
        &self,
        dim: Dimension,
        day: u32,
        rows: &FxHashSet<u32>,
        mask: u32,
    ) -> StorageResult<FxHashMap<u32, Vec<u64>>> {
        let mut visitors: FxHashMap<u32, Vec<u64>> = FxHashMap::default();
        for entry in self.tree.scan_prefix(layout::pair_log_prefix(day, dim)) {
            let (_, bytes) = entry?;
            fold_pairs(&bytes, |row, visitor, hours| {
                if hours & mask != 0 && rows.contains(&row) {
                    visitors.entry(row).or_default().push(visitor);
                }
            })?;
        }
        Ok(visitors)
    }

    /// Distinct visitors of each of `rows` over the range.
    fn row_uniques(
        &self,
        dim: Dimension,
        rows: &[u32],
        range: HourRange,
    ) -> StorageResult<FxHashMap<u32, u64>> {
        let wanted: FxHashSet<u32> = rows.iter().copied().collect();
        let mut counts: FxHashMap<u32, u64> = FxHashMap::default();
        if range.first_day() == range.last_day() {
            let day = range.first_day();
            if range.covers_whole_day(day) {
                if let Some(day_rows) = self.day_rows(dim, day)? {
                    for (row, _, uniques) in day_rows {
                        if wanted.contains(&row) {
                            counts.insert(row, uniques);
                        }
                    }
                    return Ok(counts);
                }
            }
            let mask = super::rollup::hours_mask(day, range.from_hour, range.to_hour);
            for (row, mut visitors) in self.day_row_visitors(dim, day, &wanted, mask)? {
                visitors.sort_unstable();
                visitors.dedup();
                counts.insert(row, u64::try_from(visitors.len()).unwrap_or(u64::MAX));
            }
            return Ok(counts);
        }
        let mut sketches: FxHashMap<u32, DistinctSketch> = FxHashMap::default();
        // In key order, so that sketches sharing a leaf are read together.
        let mut sorted_rows = rows.to_vec();
        sorted_rows.sort_unstable();
        for day in range.first_day()..=range.last_day() {
            let closed = range.covers_whole_day(day) && self.day_rows_written(dim, day)?;
            if closed {
                for row in &sorted_rows {
                    if let Some(bytes) = self.tree.get(layout::row_sketch_key(dim, day, *row))? {
                        let sketch: DistinctSketch = codec::decode(&bytes, "analytics row sketch")?;
                        sketches.entry(*row).or_default().merge(&sketch);
                    }
                }
                continue;
            }
            let mask = super::rollup::hours_mask(day, range.from_hour, range.to_hour);
            // `from_ids` sorts and deduplicates.
            for (row, ids) in self.day_row_visitors(dim, day, &wanted, mask)? {
                sketches
                    .entry(row)
                    .or_default()
                    .merge(&DistinctSketch::from_ids(ids));
            }
        }
        for (row, sketch) in sketches {
            counts.insert(row, sketch.count());
        }
        Ok(counts)
    }

    fn row_name(&self, dim: Dimension, row: u32) -> StorageResult<String> {
        if row == layout::OTHER_ROW {
            return Ok(layout::OTHER_NAME.to_owned());
        }
        Ok(super::rollup::row_name(self.tree, dim, row)?.unwrap_or_default())
    }

    /// Rows by views (desc), then name (asc); `limit` of them with unique visitors.
    fn ranking(&self, dim: Dimension, params: ReportParams) -> StorageResult<Ranking> {
        let views = self.row_views(dim, params.range)?;
        let rows = views.nonzero();
        let total = u64::try_from(rows.len()).unwrap_or(u64::MAX);
        let candidates = top_candidates(rows, params.limit);
        let mut named = Vec::with_capacity(candidates.len());
        for (row, count) in candidates {
            named.push((row, count, self.row_name(dim, row)?));
        }
        named.sort_by(|left, right| right.1.cmp(&left.1).then_with(|| left.2.cmp(&right.2)));
        named.truncate(params.limit);
        let row_ids: Vec<u32> = named.iter().map(|(row, _, _)| *row).collect();
        let uniques = if dim == Dimension::Client {
            FxHashMap::default()
        } else {
            self.row_uniques(dim, &row_ids, params.range)?
        };
        let rows = named
            .into_iter()
            .map(|(row, page_views, name)| RankedRow {
                unique_visitors: uniques.get(&row).copied().unwrap_or(0),
                name: (!(dim == Dimension::Referrer && name.is_empty())).then_some(name),
                page_views,
            })
            .collect();
        Ok(Ranking { rows, total })
    }

    fn devices(&self, params: ReportParams) -> StorageResult<Devices> {
        let views = self.row_views(Dimension::Client, params.range)?.nonzero();
        let mut device_types: BTreeMap<String, u64> = BTreeMap::new();
        let mut browsers: BTreeMap<String, u64> = BTreeMap::new();
        let mut systems: BTreeMap<String, u64> = BTreeMap::new();
        let mut all = 0u64;
        for (row, count) in views {
            if count == 0 {
                continue;
            }
            all += count;
            let value = self.row_name(Dimension::Client, row)?;
            let (device, browser, os) = if row == layout::OTHER_ROW {
                ("other", layout::OTHER_NAME, layout::OTHER_NAME)
            } else {
                Client::split_row_value(&value)
            };
            *device_types.entry(device.to_owned()).or_insert(0) += count;
            *browsers.entry(browser.to_owned()).or_insert(0) += count;
            *systems.entry(os.to_owned()).or_insert(0) += count;
        }
        let shares = |counts: BTreeMap<String, u64>| {
            let mut rows: Vec<ShareRow> = counts
                .into_iter()
                .map(|(name, count)| ShareRow {
                    percentage: percent(count, all),
                    name,
                    count,
                })
                .collect();
            // BTreeMap order is by name; a stable sort by count keeps names ascending in ties.
            rows.sort_by_key(|row| std::cmp::Reverse(row.count));
            rows.truncate(params.limit);
            rows
        };
        Ok(Devices {
            device_types: shares(device_types),
            browsers: shares(browsers),
            operating_systems: shares(systems),
        })
    }
}

/// Row ids below this are counted in a dense vector (8 bytes a row id, allocated up to the
/// largest id met: 100 000 paths ≈ 800 KB); larger ids (a dictionary grown over years) in a map.
const DENSE_ROWS_LIMIT: usize = 1 << 21;

/// Views per row id. Row ids are small dense integers per dimension (the dictionary hands them
/// out in sequence), so a vector indexed by row id beats hashing ~1.5 M decoded rows.
#[derive(Default)]
struct RowViews {
    dense: Vec<u64>,
    sparse: FxHashMap<u32, u64>,
}

impl RowViews {
    fn add(&mut self, row: u32, count: u64) {
        let index = row as usize;
        if index < DENSE_ROWS_LIMIT {
            if index >= self.dense.len() {
                self.dense
                    .resize((index + 1).next_power_of_two().min(DENSE_ROWS_LIMIT), 0);
            }
            self.dense[index] += count;
        } else {
            *self.sparse.entry(row).or_insert(0) += count;
        }
    }

    /// The rows with views, by row id.
    fn nonzero(self) -> Vec<(u32, u64)> {
        let mut rows: Vec<(u32, u64)> = self
            .dense
            .iter()
            .enumerate()
            .filter(|(_, count)| **count > 0)
            .map(|(row, count)| (row as u32, *count))
            .collect();
        let mut sparse: Vec<(u32, u64)> = self
            .sparse
            .into_iter()
            .filter(|(_, count)| *count > 0)
            .collect();
        sparse.sort_unstable();
        rows.extend(sparse);
        rows
    }
}

/// The rows that can make the first `limit` by views (desc): every row with at least the views
/// of the `limit`-th, in (views desc, row id asc) order — so that ties at the cut can then be
/// broken by name — or just the first `limit` when more than [`TIE_NAMES_LIMIT`] rows tie.
/// The same as sorting all rows, with a selection instead of a full sort.
fn top_candidates(mut rows: Vec<(u32, u64)>, limit: usize) -> Vec<(u32, u64)> {
    let order =
        |left: &(u32, u64), right: &(u32, u64)| right.1.cmp(&left.1).then(left.0.cmp(&right.0));
    let cut = if rows.len() > limit && limit > 0 {
        let (_, nth, _) = rows.select_nth_unstable_by(limit - 1, order);
        nth.1
    } else {
        rows.iter().map(|(_, count)| *count).min().unwrap_or(0)
    };
    rows.retain(|(_, count)| *count >= cut);
    rows.sort_unstable_by(order);
    if rows.len() > limit + TIE_NAMES_LIMIT {
        rows.truncate(limit);
    }
    rows
}

/// One bincode 2 (standard config) varint: < 251 is the byte itself, 251/252/253 announce a
/// little-endian u16/u32/u64. `None` for anything else (u128, truncation).
fn read_varint(bytes: &[u8], at: &mut usize) -> Option<u64> {
    let first = *bytes.get(*at)?;
    *at += 1;
    let wide = |at: &mut usize, width: usize| {
        let slice = bytes.get(*at..*at + width)?;
        *at += width;
        let mut buffer = [0u8; 8];
        buffer[..width].copy_from_slice(slice);
        Some(u64::from_le_bytes(buffer))
    };
    match first {
        0..=250 => Some(u64::from(first)),
        251 => wide(at, 2),
        252 => wide(at, 4),
        253 => wide(at, 8),
        _ => None,
    }
}

/// Reads a stored list of integer tuples in place, as [`codec::encode`] wrote a `Vec` of
/// `FIELDS`-tuples (or structs) of unsigned integers, calling `each` per tuple. `None` when the
/// bytes are not such a list (`each` may have been called for the tuples before the fault).
fn scan_tuples<const FIELDS: usize>(
    bytes: &[u8],
    mut each: impl FnMut([u64; FIELDS]),
) -> Option<()> {
    if bytes.first() != Some(&codec::FORMAT_VERSION) {
        return None;
    }
    let mut at = 1usize;
    let count = read_varint(bytes, &mut at)?;
    for _ in 0..count {
        let mut tuple = [0u64; FIELDS];
        for field in &mut tuple {
            *field = read_varint(bytes, &mut at)?;
        }
        each(tuple);
    }
    (at == bytes.len()).then_some(())
}

/// Reads a stored row list in place — `Vec<(u32, u64)>` (`FIELDS` = 2, the `R` hour rows) or
/// `Vec<(u32, u64, u64)>` (`FIELDS` = 3, the `D` day rows) — calling `each(row, views)` per
/// row. `None` when the bytes are not such a list.
fn scan_rows<const FIELDS: usize>(bytes: &[u8], mut each: impl FnMut(u32, u64)) -> Option<()> {
    let mut fits = true;
    scan_tuples::<FIELDS>(bytes, |tuple| {
        match (u32::try_from(tuple[0]), tuple.get(1)) {
            (Ok(row), Some(views)) if fits => each(row, *views),
            _ => fits = false,
        }
    })?;
    fits.then_some(())
}

/// Calls `each(row, visitor, hours)` for every entry of a stored pair-log chunk
/// (`Vec<PairEntry>`) read in place: one pass checks the bytes, a second folds them. Bytes that
/// are not such a chunk go through [`codec::decode`], which reports the error.
fn fold_pairs(bytes: &[u8], mut each: impl FnMut(u32, u64, u32)) -> StorageResult<()> {
    let entry = |tuple: [u64; 3]| {
        Some((
            u32::try_from(tuple[0]).ok()?,
            tuple[1],
            u32::try_from(tuple[2]).ok()?,
        ))
    };
    let mut fits = true;
    let valid = scan_tuples::<3>(bytes, |tuple| fits &= entry(tuple).is_some()).is_some();
    if valid && fits {
        scan_tuples::<3>(bytes, |tuple| {
            if let Some((row, visitor, hours)) = entry(tuple) {
                each(row, visitor, hours);
            }
        });
        return Ok(());
    }
    let chunk: Vec<PairEntry> = codec::decode(bytes, "analytics pair log")?;
    for pair in chunk {
        each(pair.row, pair.visitor, pair.hours);
    }
    Ok(())
}

/// Calls `each(row, views)` for every row of a stored row list (see [`scan_rows`]) without
/// decoding it into a vector: one pass checks the bytes, a second folds them. Bytes that are
/// not such a list go through [`codec::decode`], which reports the error.
fn fold_rows<const FIELDS: usize>(
    bytes: &[u8],
    what: &'static str,
    each: impl FnMut(u32, u64),
) -> StorageResult<()> {
    if scan_rows::<FIELDS>(bytes, |_, _| {}).is_some() {
        scan_rows::<FIELDS>(bytes, each);
        return Ok(());
    }
    let mut each = each;
    if FIELDS == 2 {
        let rows: Vec<(u32, u64)> = codec::decode(bytes, what)?;
        rows.into_iter().for_each(|(row, views)| each(row, views));
    } else {
        let rows: Vec<(u32, u64, u64)> = codec::decode(bytes, what)?;
        rows.into_iter()
            .for_each(|(row, views, _)| each(row, views));
    }
    Ok(())
}

/// Hour buckets from millisecond instants (tests): `[hour_of(from), ceil(to))`.
pub fn hour_range(from_ms: i64, to_ms: i64) -> HourRange {
    HourRange {
        from_hour: u32::try_from(from_ms / HOUR_MS).unwrap_or(0),
        to_hour: u32::try_from((to_ms + HOUR_MS - 1) / HOUR_MS).unwrap_or(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn read_pairs(bytes: &[u8]) -> StorageResult<Vec<PairEntry>> {
        let mut read = Vec::new();
        fold_pairs(bytes, |row, visitor, hours| {
            read.push(PairEntry {
                row,
                visitor,
                hours,
            })
        })?;
        Ok(read)
    }

    proptest! {
        /// A pair-log chunk read in place gives exactly the entries the codec wrote.
        #[test]
        fn pair_logs_are_read_in_place_exactly_as_the_codec_wrote_them(
            entries in proptest::collection::vec((any::<u32>(), any::<u64>(), any::<u32>()), 0..60),
        ) {
            let chunk: Vec<PairEntry> = entries
                .iter()
                .map(|(row, visitor, hours)| PairEntry { row: *row, visitor: *visitor, hours: *hours })
                .collect();
            let bytes = codec::encode(&chunk).unwrap();
            prop_assert_eq!(read_pairs(&bytes).unwrap(), chunk);
        }

        /// A cut or lengthened chunk is an error and nothing of it is counted.
        #[test]
        fn damaged_pair_logs_are_errors_and_count_nothing(
            entries in proptest::collection::vec((any::<u32>(), any::<u64>(), any::<u32>()), 1..20),
            cut in any::<prop::sample::Index>(),
        ) {
            let chunk: Vec<PairEntry> = entries
                .iter()
                .map(|(row, visitor, hours)| PairEntry { row: *row, visitor: *visitor, hours: *hours })
                .collect();
            let bytes = codec::encode(&chunk).unwrap();
            let mut calls = 0;
            let cut = cut.index(bytes.len());
            prop_assert!(fold_pairs(&bytes[..cut], |_, _, _| calls += 1).is_err());
            let mut longer = bytes.clone();
            longer.push(0);
            prop_assert!(fold_pairs(&longer, |_, _, _| calls += 1).is_err());
            prop_assert_eq!(calls, 0);
        }
    }

    /// A visitor count that is a u64 in a pair's `hours` (not a u32) is not a pair log.
    #[test]
    fn tuples_beyond_the_field_types_are_not_pair_logs() {
        let wide: Vec<(u32, u64, u64)> = vec![(1, 2, u64::from(u32::MAX) + 1)];
        assert!(fold_pairs(&codec::encode(&wide).unwrap(), |_, _, _| panic!("counted")).is_err());
    }

    /// Values on every side of the varint width boundaries.
    const SAMPLES: [u64; 9] = [
        0,
        1,
        250,
        251,
        65_535,
        65_536,
        4_294_967_295,
        4_294_967_296,
        u64::MAX,
    ];

    #[test]
    fn row_lists_are_read_in_place_exactly_as_the_codec_wrote_them() {
        let mut hour_rows: Vec<(u32, u64)> = Vec::new();
        let mut day_rows: Vec<(u32, u64, u64)> = Vec::new();
        for (index, views) in SAMPLES.iter().enumerate() {
            let row = [0u32, 7, 250, 251, 70_000, u32::MAX][index % 6];
            hour_rows.push((row, *views));
            day_rows.push((row, *views, SAMPLES[SAMPLES.len() - 1 - index]));
        }
        let mut read = Vec::new();
        fold_rows::<2>(&codec::encode(&hour_rows).unwrap(), "t", |row, views| {
            read.push((row, views))
        })
        .unwrap();
        assert_eq!(read, hour_rows);
        read.clear();
        fold_rows::<3>(&codec::encode(&day_rows).unwrap(), "t", |row, views| {
            read.push((row, views))
        })
        .unwrap();
        let expected: Vec<(u32, u64)> = day_rows
            .iter()
            .map(|(row, views, _)| (*row, *views))
            .collect();
        assert_eq!(read, expected);
        let empty: Vec<(u32, u64)> = Vec::new();
        fold_rows::<2>(&codec::encode(&empty).unwrap(), "t", |_, _| {
            panic!("no rows")
        })
        .unwrap();
    }

    #[test]
    fn damaged_row_lists_are_errors_and_count_nothing() {
        let bytes = codec::encode(&vec![(3u32, 70_000u64), (4, 5)]).unwrap();
        for cut in 0..bytes.len() {
            let mut calls = 0;
            assert!(
                fold_rows::<2>(&bytes[..cut], "t", |_, _| calls += 1).is_err(),
                "cut at {cut}"
            );
            assert_eq!(calls, 0);
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(fold_rows::<2>(&longer, "t", |_, _| {}).is_err());
    }

    #[test]
    fn views_are_summed_densely_and_sparsely() {
        let mut views = RowViews::default();
        let big = u32::try_from(DENSE_ROWS_LIMIT).unwrap() + 5;
        for (row, count) in [
            (3, 1),
            (big, 2),
            (3, 4),
            (0, 1),
            (9, 0),
            (big, 1),
            (big - 10, 1),
        ] {
            views.add(row, count);
        }
        assert_eq!(
            views.nonzero(),
            vec![(0, 1), (3, 5), (big - 10, 1), (big, 3)]
        );
    }

    #[test]
    fn the_top_candidates_are_those_of_a_full_sort() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for round in 0..200 {
            let len = (next() % 300) as usize;
            let spread = 1 + next() % if round % 2 == 0 { 5 } else { 1000 };
            let rows: Vec<(u32, u64)> = (0..len)
                .map(|index| (index as u32 * 3, 1 + next() % spread))
                .collect();
            for limit in [1usize, 3, 10, 50, 400] {
                let mut sorted = rows.clone();
                sorted.sort_unstable_by(|left, right| {
                    right.1.cmp(&left.1).then(left.0.cmp(&right.0))
                });
                let cut = sorted
                    .get(limit.saturating_sub(1))
                    .map_or(0, |(_, count)| *count);
                let mut expected: Vec<(u32, u64)> = sorted
                    .iter()
                    .copied()
                    .take_while(|(_, count)| *count >= cut)
                    .collect();
                if expected.len() > limit + TIE_NAMES_LIMIT {
                    expected.truncate(limit);
                }
                assert_eq!(
                    top_candidates(rows.clone(), limit),
                    expected,
                    "round {round} limit {limit}"
                );
            }
        }
    }
}
