//! The analytics aggregator (SPEC §7) below HTTP: generated event streams give exactly the
//! reports a direct model computes (proptest), for open and closed days and partial ranges;
//! counts survive a restart; the salt changes at midnight; the estimator across days; the
//! building blocks (referrer domains, globs, User-Agent classes); retention; load shedding.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use proptest::prelude::*;
use tabula_actors::analytics::client::{
    campaign_value, referrer_domain, ClientClassifier, PathGlob, SEPARATOR,
};
use tabula_actors::analytics::report::{
    self, Granularity, HourRange, Report, ReportKind, ReportParams,
};
use tabula_actors::analytics::rollup::PageView;
use tabula_actors::analytics::sketch::DistinctSketch;
use tabula_actors::analytics::visitor::{AnalyticsClock, DAY_MS, HOUR_MS};
use tabula_actors::analytics::{
    Analytics, AnalyticsSettings, CollectInput, CollectOutcome, FlushRollups, PathField,
    PurgeExpired, ReadReport,
};
use tabula_storage::Store;

/// 2026-11-22T00:00:00Z.
const DAY0_MS: i64 = 1_795_305_600_000;
const TIMEOUT_MS: i64 = 30 * 60_000;

// ---------------------------------------------------------------------------------------------
// Harness

fn settings() -> AnalyticsSettings {
    AnalyticsSettings {
        flush_interval_ms: 60_000,
        ..AnalyticsSettings::default()
    }
}

/// The analytics store the aggregator of `store` writes to.
fn rollup_store(store: &Store) -> Store {
    store
        .companion(
            tabula_actors::analytics::COMPANION,
            tabula_actors::analytics::DEFAULT_CACHE_BYTES,
        )
        .unwrap()
}

fn start(store: &Store, clock: &AnalyticsClock, settings: AnalyticsSettings) -> Analytics {
    Analytics::start(store, settings, clock.clone()).expect("analytics starts")
}

/// Opens the store at `path` and starts the analytics on it with the test settings, the clock
/// at `clock_ms`, then hands them `events`.
fn reopen<'a>(
    path: &std::path::Path,
    clock_ms: i64,
    events: impl IntoIterator<Item = &'a Event>,
) -> (Store, Analytics) {
    let store = Store::open(path).unwrap();
    let analytics = start(&store, &AnalyticsClock::manual(clock_ms), settings());
    for event in events {
        analytics.enqueue(event.page_view());
    }
    (store, analytics)
}

async fn read(analytics: &Analytics, kind: ReportKind, params: ReportParams) -> Report {
    analytics
        .addr()
        .send(ReadReport { kind, params })
        .await
        .expect("the aggregator answers")
        .expect("the report computes")
}

fn params(from_ms: i64, to_ms: i64, granularity: Granularity, limit: usize) -> ReportParams {
    ReportParams {
        range: report::hour_range(from_ms, to_ms),
        granularity,
        limit,
    }
}

fn run<F: std::future::Future<Output = ()>>(future: F) {
    actix_rt::System::new().block_on(future);
}

// ---------------------------------------------------------------------------------------------
// The model: what the reports must say, computed directly from the events.

#[derive(Debug, Clone)]
struct Event {
    at_ms: i64,
    visitor: u64,
    path: String,
    referrer: Option<String>,
    campaign: Option<String>,
    client: String,
}

impl Event {
    fn page_view(&self) -> PageView {
        PageView {
            at_ms: self.at_ms,
            visitor: self.visitor,
            path: self.path.clone(),
            referrer: self.referrer.clone(),
            campaign: self.campaign.clone(),
            client: Arc::from(self.client.as_str()),
        }
    }

    fn hour(&self) -> u32 {
        u32::try_from(self.at_ms / HOUR_MS).unwrap()
    }
}

fn in_range(event: &Event, range: HourRange) -> bool {
    event.hour() >= range.from_hour && event.hour() < range.to_hour
}

/// Sessions: per (day, visitor), split where the gap exceeds the timeout; (start hour, views,
/// duration ms).
fn model_sessions(events: &[Event]) -> Vec<(u32, u64, i64)> {
    let mut by_visitor: BTreeMap<(i64, u64), Vec<i64>> = BTreeMap::new();
    for event in events {
        by_visitor
            .entry((event.at_ms.div_euclid(DAY_MS), event.visitor))
            .or_default()
            .push(event.at_ms);
    }
    let mut sessions = Vec::new();
    for times in by_visitor.values() {
        let mut start = times[0];
        let mut last = times[0];
        let mut views = 1u64;
        for time in &times[1..] {
            if time - last > TIMEOUT_MS {
                sessions.push((u32::try_from(start / HOUR_MS).unwrap(), views, last - start));
                start = *time;
                views = 1;
            } else {
                views += 1;
            }
            last = *time;
        }
        sessions.push((u32::try_from(start / HOUR_MS).unwrap(), views, last - start));
    }
    sessions
}

fn two_decimals(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

fn model_overview(
    events: &[Event],
    range: HourRange,
    granularity: Granularity,
) -> report::Overview {
    let sessions: Vec<_> = model_sessions(events)
        .into_iter()
        .filter(|(hour, _, _)| *hour >= range.from_hour && *hour < range.to_hour)
        .collect();
    let session_count = sessions.len() as u64;
    let bounces = sessions.iter().filter(|(_, views, _)| *views == 1).count() as u64;
    let duration: i64 = sessions.iter().map(|(_, _, ms)| ms).sum();
    let views: Vec<&Event> = events
        .iter()
        .filter(|event| in_range(event, range))
        .collect();
    let unique = |from: u32, to: u32| {
        views
            .iter()
            .filter(|event| event.hour() >= from && event.hour() < to)
            .map(|event| event.visitor)
            .collect::<BTreeSet<_>>()
            .len() as u64
    };
    let time_series = report::periods(range, granularity)
        .into_iter()
        .map(|(start_ms, period)| report::PeriodTotals {
            start_ms,
            page_views: views
                .iter()
                .filter(|event| event.hour() >= period.from_hour && event.hour() < period.to_hour)
                .count() as u64,
            unique_visitors: unique(period.from_hour, period.to_hour),
            sessions: model_sessions(events)
                .iter()
                .filter(|(hour, _, _)| *hour >= period.from_hour && *hour < period.to_hour)
                .count() as u64,
        })
        .collect();
    report::Overview {
        page_views: views.len() as u64,
        unique_visitors: unique(range.from_hour, range.to_hour),
        sessions: session_count,
        bounce_rate: if session_count == 0 {
            0.0
        } else {
            two_decimals(bounces as f64 * 100.0 / session_count as f64)
        },
        avg_session_seconds: if session_count == 0 {
            0.0
        } else {
            two_decimals(duration as f64 / 1000.0 / session_count as f64)
        },
        time_series,
    }
}

/// Rows of one dimension: (name, views, unique visitors), views desc then name asc, `total`.
fn model_ranking(
    events: &[Event],
    range: HourRange,
    limit: usize,
    value: impl Fn(&Event) -> Option<String>,
) -> (Vec<(String, u64, u64)>, u64) {
    let mut rows: HashMap<String, (u64, BTreeSet<u64>)> = HashMap::new();
    for event in events.iter().filter(|event| in_range(event, range)) {
        if let Some(name) = value(event) {
            let row = rows.entry(name).or_default();
            row.0 += 1;
            row.1.insert(event.visitor);
        }
    }
    let total = rows.len() as u64;
    let mut rows: Vec<(String, u64, u64)> = rows
        .into_iter()
        .map(|(name, (views, visitors))| (name, views, visitors.len() as u64))
        .collect();
    rows.sort_by(|left, right| right.1.cmp(&left.1).then(left.0.cmp(&right.0)));
    rows.truncate(limit);
    (rows, total)
}

fn model_shares(events: &[Event], range: HourRange, part: usize) -> Vec<(String, u64, f64)> {
    let selected: Vec<&Event> = events
        .iter()
        .filter(|event| in_range(event, range))
        .collect();
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    for event in &selected {
        let name = event.client.split(SEPARATOR).nth(part).unwrap().to_owned();
        *counts.entry(name).or_default() += 1;
    }
    let all = selected.len() as u64;
    let mut rows: Vec<(String, u64, f64)> = counts
        .into_iter()
        .map(|(name, count)| (name, count, two_decimals(count as f64 * 100.0 / all as f64)))
        .collect();
    rows.sort_by_key(|row| std::cmp::Reverse(row.1));
    rows
}

async fn assert_reports_match(analytics: &Analytics, events: &[Event], range: HourRange) {
    let limit = 5;
    let query = ReportParams {
        range,
        granularity: Granularity::Day,
        limit,
    };
    for granularity in [Granularity::Hour, Granularity::Day, Granularity::Week] {
        let Report::Overview(overview) = read(
            analytics,
            ReportKind::Overview,
            ReportParams {
                granularity,
                ..query
            },
        )
        .await
        else {
            panic!("an overview")
        };
        assert_eq!(
            overview,
            model_overview(events, range, granularity),
            "{range:?} {granularity:?}"
        );
    }
    let Report::Pages(pages) = read(analytics, ReportKind::Pages, query).await else {
        panic!("pages")
    };
    let (expected, total) = model_ranking(events, range, limit, |event| Some(event.path.clone()));
    let actual: Vec<(String, u64, u64)> = pages
        .rows
        .iter()
        .map(|row| {
            (
                row.name.clone().unwrap(),
                row.page_views,
                row.unique_visitors,
            )
        })
        .collect();
    assert_eq!((actual, pages.total), (expected, total), "pages {range:?}");

    let Report::Referrers(referrers) = read(analytics, ReportKind::Referrers, query).await else {
        panic!("referrers")
    };
    let (expected, total) = model_ranking(events, range, limit, |event| {
        Some(event.referrer.clone().unwrap_or_default())
    });
    let actual: Vec<(String, u64, u64)> = referrers
        .rows
        .iter()
        .map(|row| {
            (
                row.name.clone().unwrap_or_default(),
                row.page_views,
                row.unique_visitors,
            )
        })
        .collect();
    assert_eq!(
        (actual, referrers.total),
        (expected, total),
        "referrers {range:?}"
    );

    let Report::Campaigns(campaigns) = read(analytics, ReportKind::Campaigns, query).await else {
        panic!("campaigns")
    };
    let (expected, total) = model_ranking(events, range, limit, |event| event.campaign.clone());
    let actual: Vec<(String, u64, u64)> = campaigns
        .rows
        .iter()
        .map(|row| {
            let part = |value: &Option<String>| value.clone().unwrap_or_default();
            (
                format!(
                    "{}{SEPARATOR}{}{SEPARATOR}{}",
                    part(&row.source),
                    part(&row.medium),
                    part(&row.campaign)
                ),
                row.page_views,
                row.unique_visitors,
            )
        })
        .collect();
    assert_eq!(
        (actual, campaigns.total),
        (expected, total),
        "campaigns {range:?}"
    );

    let Report::Devices(devices) = read(
        analytics,
        ReportKind::Devices,
        ReportParams {
            limit: 100,
            ..query
        },
    )
    .await
    else {
        panic!("devices")
    };
    let flatten = |rows: &[report::ShareRow]| -> Vec<(String, u64, f64)> {
        rows.iter()
            .map(|row| (row.name.clone(), row.count, row.percentage))
            .collect()
    };
    assert_eq!(
        flatten(&devices.device_types),
        model_shares(events, range, 0)
    );
    assert_eq!(flatten(&devices.browsers), model_shares(events, range, 1));
    assert_eq!(
        flatten(&devices.operating_systems),
        model_shares(events, range, 2)
    );
}

// ---------------------------------------------------------------------------------------------
// Generated streams

const PATHS: [&str; 6] = [
    "/",
    "/pricing",
    "/docs",
    "/docs/install",
    "/blog/a",
    "/blog/b",
];
const REFERRERS: [Option<&str>; 4] = [
    None,
    Some("google.com"),
    Some("news.ycombinator.com"),
    Some("t.co"),
];
const CLIENTS: [&str; 4] = [
    "desktop\u{1f}Chrome\u{1f}Linux",
    "mobile\u{1f}Safari\u{1f}iOS",
    "tablet\u{1f}Safari\u{1f}iPad",
    "desktop\u{1f}Firefox\u{1f}Windows 10",
];

fn event_strategy() -> impl Strategy<Value = (i64, u64, usize, usize, Option<usize>, usize)> {
    (
        0i64..(3 * DAY_MS),
        0u64..12,
        0usize..PATHS.len(),
        0usize..REFERRERS.len(),
        proptest::option::of(0usize..3),
        0usize..CLIENTS.len(),
    )
}

fn build_events(raw: Vec<(i64, u64, usize, usize, Option<usize>, usize)>) -> Vec<Event> {
    let mut events: Vec<Event> = raw
        .into_iter()
        .map(
            |(offset, visitor, path, referrer, campaign, client)| Event {
                // Cluster times so sessions both continue and time out.
                at_ms: DAY0_MS
                    + (offset / (7 * 60_000)) * (7 * 60_000)
                    + i64::try_from(visitor).unwrap() * 1000,
                visitor: visitor.wrapping_mul(0x9E37_79B9_7F4A_7C15),
                path: PATHS[path].to_owned(),
                referrer: REFERRERS[referrer].map(str::to_owned),
                campaign: campaign.map(|index| {
                    campaign_value(
                        Some(["newsletter", "ads", "x"][index]),
                        Some("email"),
                        Some("launch"),
                    )
                    .unwrap()
                }),
                client: CLIENTS[client].to_owned(),
            },
        )
        .collect();
    events.sort_by_key(|event| event.at_ms);
    events
}

fn check_stream(events: Vec<Event>, clock_ms: i64) {
    let directory = tempfile::tempdir().unwrap();
    run(async move {
        let store = Store::open(directory.path()).unwrap();
        let clock = AnalyticsClock::manual(clock_ms);
        let analytics = start(&store, &clock, settings());
        for event in &events {
            assert_eq!(
                analytics.enqueue(event.page_view()),
                CollectOutcome::Counted
            );
        }
        analytics.addr().send(FlushRollups).await.unwrap().unwrap();
        let ranges = [
            // everything, three days (cross-day union)
            report::hour_range(DAY0_MS, DAY0_MS + 3 * DAY_MS),
            // exactly the first day
            report::hour_range(DAY0_MS, DAY0_MS + DAY_MS),
            // exactly the last day
            report::hour_range(DAY0_MS + 2 * DAY_MS, DAY0_MS + 3 * DAY_MS),
            // part of the second day
            report::hour_range(
                DAY0_MS + DAY_MS + 5 * HOUR_MS,
                DAY0_MS + DAY_MS + 17 * HOUR_MS,
            ),
            // from the middle of day one to the middle of day three
            report::hour_range(DAY0_MS + 13 * HOUR_MS, DAY0_MS + 2 * DAY_MS + 9 * HOUR_MS),
            // one hour
            report::hour_range(DAY0_MS + 10 * HOUR_MS, DAY0_MS + 11 * HOUR_MS),
        ];
        for range in ranges {
            assert_reports_match(&analytics, &events, range).await;
        }
        analytics.shutdown();
    });
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, .. ProptestConfig::default() })]

    /// Every day closed (the clock is past them): reports read the closed-day rollups.
    #[test]
    fn generated_streams_give_exact_reports_on_closed_days(raw in proptest::collection::vec(event_strategy(), 1..160)) {
        check_stream(build_events(raw), DAY0_MS + 4 * DAY_MS);
    }

    /// The last day still open (the clock is inside it): reports read its logs.
    #[test]
    fn generated_streams_give_exact_reports_on_open_days(raw in proptest::collection::vec(event_strategy(), 1..160)) {
        check_stream(build_events(raw), DAY0_MS + 2 * DAY_MS + 23 * HOUR_MS);
    }
}

/// Thousands of distinct paths: a flush names more values, and a day closes with more row
/// sketches, than one storage batch takes, so both are written in several batches; the reports
/// must still be exact, on closed days and across them.
#[test]
fn many_distinct_values_are_named_and_closed_across_batches() {
    let mut events = Vec::new();
    for day in 0..3i64 {
        for index in 0..1_500u64 {
            let visitor = (index * 7 + u64::try_from(day).unwrap()) % 900;
            events.push(Event {
                at_ms: DAY0_MS + day * DAY_MS + i64::try_from(index).unwrap() * 50_000,
                visitor: visitor.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
                path: format!(
                    "/page/{}",
                    (index * 13 + u64::try_from(day).unwrap() * 400) % 1_700
                ),
                referrer: Some(format!("site{}.example", index % 700)),
                campaign: None,
                client: CLIENTS[0].to_owned(),
            });
        }
        // Five values of each dimension with more views than any other, and distinct counts,
        // so that the first page of every report has one right order.
        for top in 0..5u64 {
            for view in 0..(10 + top) {
                events.push(Event {
                    at_ms: DAY0_MS + day * DAY_MS + i64::try_from(view).unwrap() * 3_000_000,
                    visitor: (10_000 + top * 100 + view).wrapping_mul(0x9E37_79B9_7F4A_7C15),
                    path: format!("/top/{top}"),
                    referrer: Some(format!("top{top}.example")),
                    campaign: None,
                    client: CLIENTS[usize::try_from(top % 3 + 1).unwrap()].to_owned(),
                });
            }
        }
    }
    events.sort_by_key(|event| event.at_ms);
    check_stream(events, DAY0_MS + 4 * DAY_MS);
}

/// Every path of a report page: (name, views), in the report's order (views desc, name asc).
async fn all_pages(analytics: &Analytics, from_ms: i64, to_ms: i64) -> Vec<(String, u64)> {
    let Report::Pages(pages) = read(
        analytics,
        ReportKind::Pages,
        params(from_ms, to_ms, Granularity::Day, 100_000),
    )
    .await
    else {
        panic!("pages")
    };
    pages
        .rows
        .iter()
        .map(|row| (row.name.clone().unwrap_or_default(), row.page_views))
        .collect()
}

/// One view of each of `paths` on day 0, each by its own visitor, from `first_ms` on.
fn views_of(paths: &[String], first_ms: i64) -> Vec<Event> {
    paths
        .iter()
        .zip(0i64..)
        .map(|(path, index)| Event {
            at_ms: first_ms + index,
            visitor: u64::try_from(index)
                .unwrap()
                .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                | 1,
            path: path.clone(),
            referrer: None,
            campaign: None,
            client: CLIENTS[0].to_owned(),
        })
        .collect()
}

/// A cold start names 1 300 new paths in one flush (name chunks), but writes only some of their
/// value → row entries; the rest follow in later flushes. A restart before they are all written
/// must still find every path's row: the same paths counted again add up in the same rows (not
/// in new rows of the same name), and the reports name every row.
#[test]
fn new_values_keep_their_rows_across_a_restart_before_they_are_all_indexed() {
    let directory = tempfile::tempdir().unwrap();
    let paths: Vec<String> = (0..1_300).map(|index| format!("/cold/{index}")).collect();
    let clock_ms = DAY0_MS + 12 * HOUR_MS;
    let path = directory.path().to_path_buf();
    let first = paths.clone();
    run(async move {
        let (store, analytics) = reopen(&path, clock_ms, &views_of(&first, DAY0_MS + HOUR_MS));
        analytics.addr().send(FlushRollups).await.unwrap().unwrap();
        let tree = rollup_store(&store).system_tree("analytics").unwrap();
        let indexed = tree.scan_prefix([b'M', 1]).count();
        assert!(
            (1..first.len()).contains(&indexed),
            "one flush indexes some of the new values, not all: {indexed}"
        );
        assert!(
            tree.scan_prefix([b'N', 1]).next().is_none(),
            "no per-row names"
        );
        // Stopped at once: the graceful shutdown flushes, but the backlog is still there.
        analytics.shutdown();
        store.close().unwrap();
    });
    let path = directory.path().to_path_buf();
    run(async move {
        let (store, analytics) = reopen(&path, clock_ms, &views_of(&paths, DAY0_MS + 2 * HOUR_MS));
        analytics.addr().send(FlushRollups).await.unwrap().unwrap();
        let mut expected: Vec<(String, u64)> = paths.iter().map(|path| (path.clone(), 2)).collect();
        expected.sort();
        assert_eq!(
            all_pages(&analytics, DAY0_MS, DAY0_MS + DAY_MS).await,
            expected
        );
        // Later flushes write the rest of the entries.
        for _ in 0..4 {
            analytics.addr().send(FlushRollups).await.unwrap().unwrap();
        }
        let tree = rollup_store(&store).system_tree("analytics").unwrap();
        assert_eq!(tree.scan_prefix([b'M', 1]).count(), paths.len());
        analytics.shutdown();
    });
}

/// A data directory of an earlier version has one name key per row (`N`), every value → row
/// entry (`M`) and no index watermark; a chunk of names beyond the last row given out is what a
/// flush stopped half-way leaves. Old rows keep their names and rows, new ones follow them,
/// and the stale chunk names nothing.
#[test]
fn rows_named_by_an_earlier_version_keep_their_names_and_new_rows_follow() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().to_path_buf();
    {
        let store = Store::open(&path).unwrap();
        let tree = rollup_store(&store).system_tree("analytics").unwrap();
        for (row, value) in [(1u32, "/old/a"), (2, "/old/b")] {
            let mut name_key = vec![b'N', 1];
            name_key.extend_from_slice(&row.to_be_bytes());
            tree.insert(name_key, value.as_bytes()).unwrap();
            let mut id_key = vec![b'M', 1];
            id_key.extend_from_slice(value.as_bytes());
            tree.insert(id_key, &row.to_be_bytes()).unwrap();
        }
        tree.insert([b'I', 1], &2u32.to_be_bytes()).unwrap();
        let mut stale = vec![b'C', 1];
        stale.extend_from_slice(&4u32.to_be_bytes());
        let stale_names = tabula_storage::codec::encode(&vec!["/stale/4", "/stale/5"]).unwrap();
        tree.insert(stale, stale_names).unwrap();
        store.close().unwrap();
    }
    let clock_ms = DAY0_MS + 12 * HOUR_MS;
    run(async move {
        let (store, analytics) = reopen(&path, clock_ms, []);
        let paths: Vec<String> = ["/old/a", "/new/1", "/old/b", "/new/2", "/new/3", "/new/4"]
            .iter()
            .map(|path| (*path).to_owned())
            .collect();
        let mut events = views_of(&paths, DAY0_MS + HOUR_MS);
        events.extend(views_of(&paths[..2], DAY0_MS + 2 * HOUR_MS));
        for event in &events {
            analytics.enqueue(event.page_view());
        }
        analytics.addr().send(FlushRollups).await.unwrap().unwrap();
        assert_eq!(
            all_pages(&analytics, DAY0_MS, DAY0_MS + DAY_MS).await,
            [
                ("/new/1", 2),
                ("/old/a", 2),
                ("/new/2", 1),
                ("/new/3", 1),
                ("/new/4", 1),
                ("/old/b", 1)
            ]
            .map(|(path, views)| (path.to_owned(), views))
        );
        let tree = rollup_store(&store).system_tree("analytics").unwrap();
        let mut old_row = vec![b'M', 1];
        old_row.extend_from_slice(b"/old/b");
        assert_eq!(
            tree.get(old_row).unwrap().unwrap().as_ref(),
            2u32.to_be_bytes()
        );
        let mut new_row = vec![b'M', 1];
        new_row.extend_from_slice(b"/new/1");
        assert_eq!(
            tree.get(new_row).unwrap().unwrap().as_ref(),
            3u32.to_be_bytes()
        );
        analytics.shutdown();
    });
}

// ---------------------------------------------------------------------------------------------
// Restart, rollover, retention, shedding

fn fixed_events(day_offset_ms: i64, visitors: std::ops::Range<u64>) -> Vec<Event> {
    let mut events = Vec::new();
    for visitor in visitors {
        for step in 0..3i64 {
            events.push(Event {
                at_ms: DAY0_MS + day_offset_ms + step * 60_000 + i64::try_from(visitor).unwrap(),
                visitor: visitor.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
                path: PATHS[usize::try_from(visitor).unwrap() % PATHS.len()].to_owned(),
                referrer: None,
                campaign: None,
                client: CLIENTS[0].to_owned(),
            });
        }
    }
    events.sort_by_key(|event| event.at_ms);
    events
}

#[test]
fn restart_keeps_the_counts_and_the_visitors() {
    let directory = tempfile::tempdir().unwrap();
    let first = fixed_events(10 * HOUR_MS, 0..40);
    let second = fixed_events(10 * HOUR_MS + 10 * 60_000, 20..60);
    let mut all = first.clone();
    all.extend(second.clone());
    all.sort_by_key(|event| event.at_ms);
    let clock_ms = DAY0_MS + 12 * HOUR_MS;
    let path = directory.path().to_path_buf();
    run(async move {
        let (store, analytics) = reopen(&path, clock_ms, &first);
        // No explicit flush: the graceful shutdown must flush what was accepted.
        analytics.shutdown();
        store.close().unwrap();
    });
    let path = directory.path().to_path_buf();
    run(async move {
        let (_store, analytics) = reopen(&path, clock_ms, &second);
        analytics.addr().send(FlushRollups).await.unwrap().unwrap();
        let day = report::hour_range(DAY0_MS, DAY0_MS + DAY_MS);
        assert_reports_match(&analytics, &all, day).await;
        let Report::Overview(overview) = read(
            &analytics,
            ReportKind::Overview,
            params(DAY0_MS, DAY0_MS + DAY_MS, Granularity::Day, 10),
        )
        .await
        else {
            panic!()
        };
        assert_eq!(overview.page_views, 240);
        assert_eq!(
            overview.unique_visitors, 60,
            "visitors 20..40 are the same after the restart"
        );
        assert_eq!(
            overview.sessions, 60,
            "their sessions continue across the restart"
        );
        analytics.shutdown();
    });
}

/// A data directory of an earlier version kept the rollups in the tables' store: the first
/// start moves them into the analytics store (in several batches: more than 512 entries) and
/// the reports are exactly what they were.
#[test]
fn rollups_in_the_tables_store_are_moved_to_the_analytics_store_at_start() {
    let directory = tempfile::tempdir().unwrap();
    let mut events = fixed_events(10 * HOUR_MS, 0..40);
    // Many distinct paths: over 512 entries (their names and ids) to move.
    events.extend((0..1_200u64).map(|index| Event {
        at_ms: DAY0_MS + 11 * HOUR_MS + i64::try_from(index).unwrap(),
        visitor: (1_000 + index).wrapping_mul(0x9E37_79B9_7F4A_7C15),
        path: format!("/moved/{index}"),
        referrer: None,
        campaign: None,
        client: CLIENTS[0].to_owned(),
    }));
    events.sort_by_key(|event| event.at_ms);
    let clock_ms = DAY0_MS + 12 * HOUR_MS;
    let path = directory.path().to_path_buf();
    let counted = events.clone();
    run(async move {
        let (store, analytics) = reopen(&path, clock_ms, &counted);
        analytics.addr().send(FlushRollups).await.unwrap().unwrap();
        analytics.shutdown();
        // Where an earlier version kept them.
        let new = rollup_store(&store).system_tree("analytics").unwrap();
        let old = store.system_tree("analytics").unwrap();
        for entry in new.iter() {
            let (key, value) = entry.unwrap();
            old.insert(key, value).unwrap();
        }
        assert!(old.len() > 512);
        new.clear().unwrap();
        store.close().unwrap();
    });
    let path = directory.path().to_path_buf();
    run(async move {
        let (store, analytics) = reopen(&path, clock_ms, []);
        assert!(store.system_tree("analytics").unwrap().is_empty());
        assert!(!rollup_store(&store)
            .system_tree("analytics")
            .unwrap()
            .is_empty());
        let day = report::hour_range(DAY0_MS, DAY0_MS + DAY_MS);
        assert_reports_match(&analytics, &events, day).await;
        analytics.shutdown();
        store.close().unwrap();
    });
}

#[test]
fn the_salt_changes_at_midnight_and_only_the_current_one_is_kept() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().to_path_buf();
    run(async move {
        let store = Store::open(&path).unwrap();
        let clock = AnalyticsClock::manual(DAY0_MS + 23 * HOUR_MS);
        let analytics = start(&store, &clock, settings());
        let input = CollectInput {
            path: PathField::Text("/"),
            referrer: None,
            utm_source: None,
            utm_medium: None,
            utm_campaign: None,
            client_ip: IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7)),
            user_agent: "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36",
            do_not_track: false,
        };
        assert_eq!(analytics.collect(&input).unwrap(), CollectOutcome::Counted);
        assert_eq!(analytics.collect(&input).unwrap(), CollectOutcome::Counted);
        let day0 = u32::try_from(DAY0_MS / DAY_MS).unwrap();
        assert_eq!(analytics.salt_day(), Some(day0));
        let salt_before = rollup_store(&store)
            .system_tree("analytics")
            .unwrap()
            .get(b"S")
            .unwrap()
            .unwrap();

        clock.set(DAY0_MS + DAY_MS + HOUR_MS);
        assert_eq!(analytics.collect(&input).unwrap(), CollectOutcome::Counted);
        assert_eq!(analytics.salt_day(), Some(day0 + 1));
        let salt_after = rollup_store(&store)
            .system_tree("analytics")
            .unwrap()
            .get(b"S")
            .unwrap()
            .unwrap();
        assert_ne!(
            salt_before, salt_after,
            "the stored salt is replaced, the old one forgotten"
        );

        let Report::Overview(overview) = read(
            &analytics,
            ReportKind::Overview,
            params(DAY0_MS, DAY0_MS + 2 * DAY_MS, Granularity::Day, 10),
        )
        .await
        else {
            panic!()
        };
        assert_eq!(overview.page_views, 3);
        // Same IP and User-Agent, but a new day's salt: a new visitor that cannot be linked.
        assert_eq!(overview.unique_visitors, 2);
        assert_eq!(
            overview
                .time_series
                .iter()
                .map(|period| period.unique_visitors)
                .collect::<Vec<_>>(),
            vec![1, 1]
        );
        analytics.shutdown();
    });
}

#[test]
fn a_restart_the_same_day_keeps_the_salt() {
    let directory = tempfile::tempdir().unwrap();
    let clock_ms = DAY0_MS + 9 * HOUR_MS;
    let input = |ua: &'static str| CollectInput {
        path: PathField::Text("/"),
        referrer: Some("https://www.Example.com:8443/some/page?q=1"),
        utm_source: None,
        utm_medium: None,
        utm_campaign: None,
        client_ip: IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1)),
        user_agent: ua,
        do_not_track: false,
    };
    for _ in 0..2 {
        let path = directory.path().to_path_buf();
        run(async move {
            let store = Store::open(&path).unwrap();
            let analytics = start(&store, &AnalyticsClock::manual(clock_ms), settings());
            analytics.collect(&input("agent")).unwrap();
            analytics.shutdown();
            store.close().unwrap();
        });
    }
    let path = directory.path().to_path_buf();
    run(async move {
        let store = Store::open(&path).unwrap();
        let analytics = start(&store, &AnalyticsClock::manual(clock_ms), settings());
        let Report::Referrers(referrers) = read(
            &analytics,
            ReportKind::Referrers,
            params(DAY0_MS, DAY0_MS + DAY_MS, Granularity::Day, 10),
        )
        .await
        else {
            panic!()
        };
        assert_eq!(referrers.rows.len(), 1);
        assert_eq!(referrers.rows[0].name.as_deref(), Some("example.com"));
        assert_eq!(referrers.rows[0].page_views, 2);
        assert_eq!(referrers.rows[0].unique_visitors, 1);
        analytics.shutdown();
    });
}

#[test]
fn retention_purges_old_rollups() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().to_path_buf();
    run(async move {
        let store = Store::open(&path).unwrap();
        let clock = AnalyticsClock::manual(DAY0_MS + 12 * HOUR_MS);
        let analytics = start(
            &store,
            &clock,
            AnalyticsSettings {
                retention_days: 2,
                ..settings()
            },
        );
        for event in fixed_events(HOUR_MS, 0..5) {
            analytics.enqueue(event.page_view());
        }
        for event in fixed_events(2 * DAY_MS + HOUR_MS, 0..3) {
            analytics.enqueue(event.page_view());
        }
        clock.set(DAY0_MS + 2 * DAY_MS + 12 * HOUR_MS);
        let removed = analytics.addr().send(PurgeExpired).await.unwrap().unwrap();
        assert!(removed > 0);
        let everything = params(DAY0_MS, DAY0_MS + 3 * DAY_MS, Granularity::Day, 10);
        let Report::Overview(overview) = read(&analytics, ReportKind::Overview, everything).await
        else {
            panic!()
        };
        assert_eq!(overview.page_views, 9, "day 0 is gone, day 2 is kept");
        assert_eq!(
            overview
                .time_series
                .iter()
                .map(|period| period.page_views)
                .collect::<Vec<_>>(),
            vec![0, 0, 9]
        );
        let Report::Pages(pages) = read(&analytics, ReportKind::Pages, everything).await else {
            panic!()
        };
        assert_eq!(pages.rows.iter().map(|row| row.page_views).sum::<u64>(), 9);
        analytics.shutdown();
    });
}

/// Many more events than the aggregator folds in one go (20 000), accepted faster than it
/// drains: every one is counted exactly, in order (the sessions depend on it).
#[test]
fn a_long_stream_is_folded_completely_across_drains() {
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move |bound: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % bound
    };
    let raw = (0..45_000)
        .map(|_| {
            (
                i64::try_from(next(u64::try_from(2 * DAY_MS).unwrap())).unwrap(),
                next(40),
                usize::try_from(next(PATHS.len() as u64)).unwrap(),
                usize::try_from(next(REFERRERS.len() as u64)).unwrap(),
                Some(usize::try_from(next(3)).unwrap()).filter(|_| next(2) == 0),
                usize::try_from(next(CLIENTS.len() as u64)).unwrap(),
            )
        })
        .collect();
    check_stream(build_events(raw), DAY0_MS + 2 * DAY_MS + 23 * HOUR_MS);
}

/// What the collect path derives goes into the batch and out of the reports as it should:
/// the referrer's domain lower-cased without `www.`, port or trailing dot; the campaign's three
/// parts; the path without its query string.
#[test]
fn collect_derives_path_referrer_and_campaign() {
    let directory = tempfile::tempdir().unwrap();
    run(async move {
        let store = Store::open(directory.path()).unwrap();
        let clock = AnalyticsClock::manual(DAY0_MS + 9 * HOUR_MS);
        let analytics = start(&store, &clock, settings());
        let input = CollectInput {
            path: PathField::Text(" /pricing?plan=pro#faq "),
            referrer: Some("https://WWW.Ünï.Example.COM.:8443/x"),
            utm_source: Some(" news "),
            utm_medium: None,
            utm_campaign: Some("launch"),
            client_ip: IpAddr::V4(Ipv4Addr::new(198, 51, 100, 9)),
            user_agent: "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36",
            do_not_track: false,
        };
        assert_eq!(analytics.collect(&input).unwrap(), CollectOutcome::Counted);
        let direct = CollectInput {
            path: PathField::Text("?only=query"),
            referrer: Some("   "),
            utm_source: None,
            utm_campaign: None,
            ..input.clone()
        };
        assert_eq!(analytics.collect(&direct).unwrap(), CollectOutcome::Counted);
        let range = params(DAY0_MS, DAY0_MS + DAY_MS, Granularity::Day, 10);
        let Report::Pages(pages) = read(&analytics, ReportKind::Pages, range).await else {
            panic!()
        };
        let mut paths: Vec<&str> = pages
            .rows
            .iter()
            .map(|row| row.name.as_deref().unwrap_or(""))
            .collect();
        paths.sort_unstable();
        assert_eq!(paths, ["/", "/pricing"]);
        let Report::Referrers(referrers) = read(&analytics, ReportKind::Referrers, range).await
        else {
            panic!()
        };
        let mut domains: Vec<Option<&str>> = referrers
            .rows
            .iter()
            .map(|row| row.name.as_deref())
            .collect();
        domains.sort_unstable();
        assert_eq!(domains, [None, Some("Ünï.example.com")]);
        let Report::Campaigns(campaigns) = read(&analytics, ReportKind::Campaigns, range).await
        else {
            panic!()
        };
        assert_eq!(campaigns.rows.len(), 1);
        let row = &campaigns.rows[0];
        assert_eq!(
            (
                row.source.as_deref(),
                row.medium.as_deref(),
                row.campaign.as_deref()
            ),
            (Some("news"), None, Some("launch"))
        );
        assert_eq!(row.page_views, 1, "the direct view has no campaign");
        analytics.shutdown();
    });
}

#[test]
fn a_full_queue_sheds_load() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().to_path_buf();
    run(async move {
        let store = Store::open(&path).unwrap();
        let clock = AnalyticsClock::manual(DAY0_MS);
        let analytics = start(
            &store,
            &clock,
            AnalyticsSettings {
                queue_capacity: 4,
                ..settings()
            },
        );
        let event = fixed_events(0, 0..1).remove(0);
        let outcomes: Vec<CollectOutcome> = (0..100_000)
            .map(|_| analytics.enqueue(event.page_view()))
            .collect();
        assert!(outcomes.contains(&CollectOutcome::QueueFull));
        let accepted = outcomes
            .iter()
            .filter(|outcome| **outcome == CollectOutcome::Counted)
            .count() as u64;
        let Report::Overview(overview) = read(
            &analytics,
            ReportKind::Overview,
            params(DAY0_MS, DAY0_MS + DAY_MS, Granularity::Day, 10),
        )
        .await
        else {
            panic!()
        };
        assert_eq!(
            overview.page_views, accepted,
            "every accepted event is counted, no more"
        );
        analytics.shutdown();
    });
}

#[test]
fn rows_beyond_the_daily_cap_are_counted_as_other() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().to_path_buf();
    run(async move {
        let store = Store::open(&path).unwrap();
        let clock = AnalyticsClock::manual(DAY0_MS + DAY_MS);
        let analytics = start(
            &store,
            &clock,
            AnalyticsSettings {
                rows_per_day_cap: 3,
                ..settings()
            },
        );
        for (index, path) in ["/a", "/b", "/c", "/d", "/e", "/a", "/e"]
            .iter()
            .enumerate()
        {
            let mut event = fixed_events(0, 0..1).remove(0);
            event.path = (*path).to_owned();
            event.at_ms += i64::try_from(index).unwrap();
            analytics.enqueue(event.page_view());
        }
        let Report::Pages(pages) = read(
            &analytics,
            ReportKind::Pages,
            params(DAY0_MS, DAY0_MS + DAY_MS, Granularity::Day, 10),
        )
        .await
        else {
            panic!()
        };
        let rows: Vec<(String, u64)> = pages
            .rows
            .iter()
            .map(|row| (row.name.clone().unwrap(), row.page_views))
            .collect();
        assert_eq!(
            rows,
            vec![
                ("(other)".into(), 3),
                ("/a".into(), 2),
                ("/b".into(), 1),
                ("/c".into(), 1)
            ]
        );
        assert_eq!(pages.total, 4);
        analytics.shutdown();
    });
}

#[test]
fn collect_validates_the_path_and_honours_dnt_and_exclusions() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().to_path_buf();
    run(async move {
        let store = Store::open(&path).unwrap();
        let clock = AnalyticsClock::manual(DAY0_MS);
        let analytics = start(
            &store,
            &clock,
            AnalyticsSettings {
                excluded_paths: vec!["/admin/*".into(), "/secret".into()],
                ..settings()
            },
        );
        let input = |path: PathField<'static>, dnt: bool| CollectInput {
            path,
            referrer: None,
            utm_source: Some("news"),
            utm_medium: None,
            utm_campaign: None,
            client_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            user_agent: "curl/8",
            do_not_track: dnt,
        };
        for bad in [
            PathField::Missing,
            PathField::NotText,
            PathField::Text(""),
            PathField::Text("  "),
        ] {
            assert!(analytics.collect(&input(bad, false)).is_err());
        }
        assert_eq!(
            analytics
                .collect(&input(PathField::Text("/x"), true))
                .unwrap(),
            CollectOutcome::Ignored
        );
        assert_eq!(
            analytics
                .collect(&input(PathField::Text("/admin/users/1"), false))
                .unwrap(),
            CollectOutcome::Ignored
        );
        assert_eq!(
            analytics
                .collect(&input(PathField::Text("/secret?x=1"), false))
                .unwrap(),
            CollectOutcome::Ignored
        );
        assert_eq!(
            analytics
                .collect(&input(PathField::Text("/ok?utm_source=x#top"), false))
                .unwrap(),
            CollectOutcome::Counted
        );
        let Report::Pages(pages) = read(
            &analytics,
            ReportKind::Pages,
            params(DAY0_MS, DAY0_MS + DAY_MS, Granularity::Day, 10),
        )
        .await
        else {
            panic!()
        };
        assert_eq!(pages.total, 1);
        assert_eq!(pages.rows[0].name.as_deref(), Some("/ok"));
        let Report::Campaigns(campaigns) = read(
            &analytics,
            ReportKind::Campaigns,
            params(DAY0_MS, DAY0_MS + DAY_MS, Granularity::Day, 10),
        )
        .await
        else {
            panic!()
        };
        assert_eq!(campaigns.rows[0].source.as_deref(), Some("news"));
        assert_eq!(campaigns.rows[0].medium, None);
        analytics.shutdown();
    });
}

// ---------------------------------------------------------------------------------------------
// Building blocks

#[test]
fn the_estimator_is_exact_when_small_and_within_error_when_large() {
    let mut exact = DistinctSketch::default();
    for id in 0..2000u64 {
        exact.insert(id.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        exact.insert(id.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    }
    assert!(exact.is_exact());
    assert_eq!(exact.count(), 2000);
    // Disjoint and overlapping day sketches, unioned as a multi-day range does.
    let ids = |range: std::ops::Range<u64>| -> Vec<u64> {
        range
            .map(|id| {
                let mut x = id.wrapping_add(0x9E37_79B9_7F4A_7C15);
                x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
                x ^ (x >> 31)
            })
            .collect()
    };
    for (days, per_day, overlap) in [
        (30u64, 1_000u64, 200u64),
        (30, 20_000, 5_000),
        (7, 150_000, 50_000),
    ] {
        let mut union = DistinctSketch::default();
        for day in 0..days {
            let start = day * (per_day - overlap);
            union.merge(&DistinctSketch::from_ids(ids(start..start + per_day)));
        }
        let truth = (days - 1) * (per_day - overlap) + per_day;
        let error = (union.count() as f64 - truth as f64).abs() / truth as f64;
        // p = 14: standard error 0.81 %; allow four of them.
        assert!(
            error < 0.0325,
            "{days} days × {per_day}: estimate {} for {truth} ({error})",
            union.count()
        );
    }
}

/// The referrer domain as first written (char-pattern searches), the reference for the
/// byte-search version the collect path uses.
fn reference_referrer_domain(referrer: &str) -> Option<String> {
    let referrer = referrer.trim();
    let after_scheme = match referrer
        .as_bytes()
        .windows(3)
        .position(|window| window == b"://")
    {
        Some(index) => &referrer[index + 3..],
        None => referrer,
    };
    let authority_end = after_scheme
        .find(['/', '?', '#'])
        .unwrap_or(after_scheme.len());
    let authority = &after_scheme[..authority_end];
    let host = authority.rsplit('@').next().unwrap_or(authority);
    let host = if host.starts_with('[') {
        host.find(']').map_or(host, |end| &host[..=end])
    } else {
        host.split(':').next().unwrap_or(host)
    };
    let host = host.trim_end_matches('.');
    let host = match host.as_bytes().get(..4) {
        Some(prefix) if prefix.eq_ignore_ascii_case(b"www.") => &host[4..],
        _ => host,
    };
    let host = tabula_actors::analytics::client::truncate(host, 1024);
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

proptest! {
    #[test]
    fn referrer_domains_match_the_reference(
        referrer in "[ a-zA-Z0-9:/?#@.\\[\\]wWÜé-]{0,40}",
    ) {
        prop_assert_eq!(referrer_domain(&referrer), reference_referrer_domain(&referrer));
    }
}

#[test]
fn referrer_domains_drop_www_ports_and_credentials() {
    let cases = [
        ("https://www.google.com/search?q=x", Some("google.com")),
        (
            "http://user:pw@News.YCombinator.com:8080/item",
            Some("news.ycombinator.com"),
        ),
        ("android-app://com.slack", Some("com.slack")),
        ("example.org/path", Some("example.org")),
        ("https://[2001:db8::1]:443/", Some("[2001:db8::1]")),
        ("", None),
        ("   ", None),
        ("https:///nohost", None),
        ("https://WWW.Example.COM./a", Some("example.com")),
        ("https://wwwx.example.com/", Some("wwwx.example.com")),
        ("https://ww", Some("ww")),
        ("https://Ünï.de/", Some("Ünï.de")),
        ("https://é/", Some("é")),
        ("no scheme://here", Some("here")),
    ];
    for (referrer, expected) in cases {
        assert_eq!(referrer_domain(referrer).as_deref(), expected, "{referrer}");
    }
}

#[test]
fn excluded_path_globs() {
    let glob = PathGlob::new("/admin/*");
    assert!(glob.matches("/admin/"));
    assert!(glob.matches("/admin/users/7"));
    assert!(!glob.matches("/admin"));
    assert!(!glob.matches("/public/admin/x"));
    assert!(PathGlob::new("*.php").matches("/wp/login.php"));
    assert!(PathGlob::new("/p?ge").matches("/page"));
    assert!(!PathGlob::new("/p?ge").matches("/pge"));
    assert!(PathGlob::new("/a*b*c").matches("/aXXbYYc"));
}

#[test]
fn user_agents_are_classified_and_cached() {
    let classifier = ClientClassifier::default();
    let cases = [
        ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36", "desktop", "Chrome", "Windows 10"),
        ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1", "mobile", "Safari", "iOS"),
        ("Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.6 Mobile/15E148 Safari/604.1", "tablet", "Safari", "iOS"),
        ("Mozilla/5.0 (Linux; Android 13; SM-X200) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36", "tablet", "Chrome", "Android"),
        ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36", "mobile", "Chrome", "Android"),
        ("Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0", "desktop", "Firefox", "Linux"),
        ("Mozilla/5.0 (Macintosh; Intel Mac OS X 14_2) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.2 Safari/605.1.15", "desktop", "Safari", "macOS"),
        ("Googlebot/2.1 (+http://www.google.com/bot.html)", "other", "misc crawler", "Unknown"),
        ("", "other", "Unknown", "Unknown"),
    ];
    let mut ids = Vec::new();
    for (user_agent, device, browser, os) in cases {
        let class = classifier.classify(user_agent);
        let value = classifier.classes().name(class).expect("a class given out");
        let parts: Vec<&str> = value.split(SEPARATOR).collect();
        assert_eq!(
            (parts[0], parts[1], parts[2]),
            (device, browser, os),
            "{user_agent}"
        );
        assert_eq!(classifier.classify(user_agent), class, "cached");
        assert_eq!(classifier.classes().id_of(&value), class, "{value}");
        ids.push(class);
    }
    // One id per distinct classification: the two Chrome desktops would share one, these
    // nine are all different.
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), cases.len());
    assert!(classifier.classes().name(u32::MAX).is_none());
}

#[test]
fn report_parameters_are_validated_together() {
    let error = report::parse_params(None, None, Some("year"), Some("0")).unwrap_err();
    let tabula_actors::DomainError::BadRequest { errors, .. } = error else {
        panic!()
    };
    let fields: Vec<&str> = errors.iter().map(|error| error.field.as_str()).collect();
    assert_eq!(fields, vec!["from", "to", "granularity", "limit"]);
    let parsed = report::parse_params(Some("2026-11-22"), Some("2026-11-22"), None, None).unwrap();
    assert_eq!(
        parsed.range.to_hour - parsed.range.from_hour,
        24,
        "a date-only `to` includes its day"
    );
    assert_eq!(parsed.granularity, Granularity::Day);
    assert_eq!(parsed.limit, 10);
    let parsed = report::parse_params(
        Some("2026-11-22T10:30:00Z"),
        Some("2026-11-22T12:00:00.000Z"),
        Some("hour"),
        Some("3"),
    )
    .unwrap();
    assert_eq!(parsed.range.to_hour - parsed.range.from_hour, 2);
    assert!(
        report::parse_params(Some("2026-11-23"), Some("2026-11-22T00:00:00Z"), None, None).is_err()
    );
    assert!(report::parse_params(Some("yesterday"), Some("2026-11-22"), None, None).is_err());
}

#[test]
fn periods_are_calendar_aligned() {
    // 2026-11-22 is a Sunday: its week started Monday 2026-11-16.
    let range = report::hour_range(DAY0_MS, DAY0_MS + 2 * DAY_MS);
    let weeks = report::periods(range, Granularity::Week);
    assert_eq!(weeks.len(), 2);
    assert_eq!(weeks[0].0, DAY0_MS - 6 * DAY_MS);
    let months = report::periods(
        report::hour_range(DAY0_MS, DAY0_MS + 20 * DAY_MS),
        Granularity::Month,
    );
    assert_eq!(months.len(), 2, "November and December");
    assert_eq!(months[1].0, DAY0_MS + 9 * DAY_MS);
}

#[test]
fn register_sketches_keep_their_stored_format() {
    // Before issue 6 the registers were stored as a plain byte sequence; the byte-string
    // encoding must read those bytes and write the very same ones.
    #[derive(serde::Serialize, serde::Deserialize)]
    enum Stored {
        Exact(Vec<u64>),
        Registers(Vec<u8>),
    }
    let sketch = DistinctSketch::from_ids(
        (0..5_000u64)
            .map(|id| id.wrapping_mul(0x9E37_79B9_7F4A_7C15))
            .collect(),
    );
    assert!(!sketch.is_exact());
    let DistinctSketch::Registers(registers) = &sketch else {
        panic!("registers expected");
    };
    let old = tabula_storage::codec::encode(&Stored::Registers(registers.clone())).unwrap();
    assert_eq!(tabula_storage::codec::encode(&sketch).unwrap(), old);
    let read: DistinctSketch = tabula_storage::codec::decode(&old, "sketch").unwrap();
    assert_eq!(read, sketch);
    let exact = DistinctSketch::from_ids(vec![3, 1, 2]);
    let old_exact = tabula_storage::codec::encode(&Stored::Exact(vec![1, 2, 3])).unwrap();
    assert_eq!(tabula_storage::codec::encode(&exact).unwrap(), old_exact);
    let Stored::Exact(ids) = tabula_storage::codec::decode(&old_exact, "sketch").unwrap() else {
        panic!("exact expected");
    };
    assert_eq!(ids, vec![1, 2, 3]);
}
