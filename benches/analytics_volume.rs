//! Analytics at volume (issue 6): ten million page views over 100 000 distinct paths spread over
//! 30 days go through the aggregator (the same queue the collect handler fills, with a hand-set
//! clock so the days pass), then every report is timed for the 30-day range, rendered as the
//! HTTP handler renders it. Prints ingest rate, RSS (current and peak) and report latencies.
//! `cargo bench --bench analytics_volume` (EVENTS=… PATHS=… to change the size, CACHE_MB=… for
//! the analytics store's page cache, DAYS=… for the span of days (30), VERBOSE=1 for RSS over time).

#[path = "support/mod.rs"]
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tabula_actors::analytics::report::{self, Granularity, ReportKind, ReportParams};
use tabula_actors::analytics::rollup::PageView;
use tabula_actors::analytics::visitor::{DAY_MS, HOUR_MS};
use tabula_actors::analytics::{
    Analytics, AnalyticsClock, AnalyticsSettings, CollectOutcome, FlushRollups, ReadReport,
};
use tabula_storage::Store;

/// 2026-10-01T00:00:00Z.
const START_MS: i64 = 1_790_812_800_000;

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

/// Zipf(1) over `count` ranks: the cumulative weights.
fn zipf_cdf(count: usize) -> Vec<f64> {
    let mut total = 0.0;
    let mut cdf = Vec::with_capacity(count);
    for rank in 1..=count {
        total += 1.0 / rank as f64;
        cdf.push(total);
    }
    for value in &mut cdf {
        *value /= total;
    }
    cdf
}

fn pick(cdf: &[f64], rng: &mut StdRng) -> usize {
    let target: f64 = rng.gen();
    cdf.partition_point(|value| *value < target)
        .min(cdf.len() - 1)
}

fn main() {
    tabula::telemetry::init_tracing("warn", false);
    let events = env_number("EVENTS", 10_000_000);
    let days = i64::try_from(env_number("DAYS", 30)).unwrap_or(30).max(1);
    let path_count = usize::try_from(env_number("PATHS", 100_000)).unwrap_or(100_000);
    let directory = tempfile::tempdir().expect("a temporary directory");
    let clock = AnalyticsClock::manual(START_MS);
    // CACHE_MB: the analytics store's page cache (`analytics.cache_mb`), 8 MiB by default like
    // the server's; the tables' store keeps the server's default (`server.cache_mb`).
    let cache_mb = env_number(
        "CACHE_MB",
        tabula_actors::analytics::DEFAULT_CACHE_BYTES >> 20,
    );
    let store = Store::open(directory.path()).expect("the store opens");
    let settings = AnalyticsSettings {
        cache_bytes: cache_mb << 20,
        ..AnalyticsSettings::default()
    };
    actix_rt::System::new().block_on(async move {
        let analytics = Analytics::start(&store, settings.clone(), clock.clone())
            .expect("analytics starts");
        let mut rng = StdRng::seed_from_u64(6);
        let paths = zipf_cdf(path_count);
        let referrers: Vec<Option<String>> = std::iter::once(None)
            .chain((0..60).map(|index| Some(format!("site{index}.example"))))
            .collect();
        let referrer_cdf = zipf_cdf(referrers.len());
        let clients: Vec<Arc<str>> = [
            "desktop\u{1f}Chrome\u{1f}Windows 10",
            "desktop\u{1f}Firefox\u{1f}Linux",
            "desktop\u{1f}Safari\u{1f}Mac OSX",
            "mobile\u{1f}Safari\u{1f}iPhone",
            "mobile\u{1f}Chrome\u{1f}Android",
            "tablet\u{1f}Safari\u{1f}iPad",
            "other\u{1f}misc crawler\u{1f}Unknown",
        ]
        .iter()
        .map(|value| Arc::from(*value))
        .collect();
        let step_ms = (days * DAY_MS) / i64::try_from(events).unwrap_or(1).max(1);
        let visitors_per_day = 60_000u64;

        let started = Instant::now();
        let mut peak = (0.0f64, 0.0f64);
        let mut shed = 0u64;
        for index in 0..events {
            let at_ms = START_MS + i64::try_from(index).unwrap_or(0) * step_ms;
            if index % 20_000 == 0 {
                clock.set(at_ms);
                // The flush the aggregator's timer makes every second in real time: here time
                // runs ~10⁴× faster, so the bench asks for one per 20 000 events.
                analytics.addr().send(FlushRollups).await.expect("flush").expect("flush works");
                let memory = support::memory_mib();
                peak.0 = peak.0.max(memory.0);
                if std::env::var("VERBOSE").is_ok() && index % 200_000 == 0 {
                    println!("{index}: RSS {:.0} MiB peak {:.0} MiB", memory.0, memory.1);
                }
            }
            let day = u64::try_from(at_ms / DAY_MS).unwrap_or(0);
            // A day's visitors: a hash of (day, visitor number), so days do not share visitors.
            let visitor_number = rng.gen_range(0..visitors_per_day);
            let visitor = (day << 32 | visitor_number).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            let campaign = (rng.gen_range(0..10) == 0).then(|| {
                format!("source{}\u{1f}email\u{1f}campaign{}", rng.gen_range(0..20), rng.gen_range(0..10))
            });
            let mut event = PageView {
                at_ms,
                visitor,
                path: format!("/page/{}", pick(&paths, &mut rng)),
                referrer: referrers[pick(&referrer_cdf, &mut rng)].clone(),
                campaign,
                client: Arc::clone(&clients[rng.gen_range(0..clients.len())]),
            };
            loop {
                // The aggregator drains on its own thread; wait when it is behind (as HTTP would shed).
                match analytics.enqueue(event.clone()) {
                    CollectOutcome::Counted => break,
                    _ => {
                        shed += 1;
                        std::thread::sleep(Duration::from_micros(200));
                        event.at_ms = at_ms;
                    }
                }
            }
        }
        println!("before the final flush: RSS {:.0} MiB, peak {:.0} MiB", support::memory_mib().0, support::memory_mib().1);
        clock.set(START_MS + days * DAY_MS - HOUR_MS);
        analytics.addr().send(FlushRollups).await.expect("flush").expect("flush works");
        let ingest = started.elapsed();
        let (rss, hwm) = support::memory_mib();
        println!(
            "ingested {events} events over {path_count} paths in {:.1} s ({:.0} events/s on the aggregator; producer waited {shed} times)",
            ingest.as_secs_f64(),
            events as f64 / ingest.as_secs_f64()
        );
        println!("RSS after ingest: {rss:.0} MiB, peak RSS (VmHWM): {hwm:.0} MiB, peak sampled during ingest: {:.0} MiB", peak.0);
        let rollups = store
            .companion(tabula_actors::analytics::COMPANION, settings.cache_bytes)
            .and_then(|analytics| analytics.size_on_disk())
            .unwrap_or(0);
        println!("on disk: {:.0} MiB", rollups as f64 / 1_048_576.0);

        let range = report::hour_range(START_MS, START_MS + days * DAY_MS);
        let kinds = [
            ("overview (day)", ReportKind::Overview, Granularity::Day),
            ("overview (hour)", ReportKind::Overview, Granularity::Hour),
            ("overview (week)", ReportKind::Overview, Granularity::Week),
            ("pages", ReportKind::Pages, Granularity::Day),
            ("referrers", ReportKind::Referrers, Granularity::Day),
            ("devices", ReportKind::Devices, Granularity::Day),
            ("campaigns", ReportKind::Campaigns, Granularity::Day),
        ];
        let mut worst = 0.0f64;
        for (name, kind, granularity) in kinds {
            let params = ReportParams { range, granularity, limit: 10 };
            let mut timings = Vec::new();
            let mut body = String::new();
            for _ in 0..7 {
                let started = Instant::now();
                let report = analytics
                    .addr()
                    .send(ReadReport { kind, params })
                    .await
                    .expect("the aggregator answers")
                    .expect("the report computes");
                body = tabula::routes::analytics::render_report(report).to_string();
                timings.push(started.elapsed().as_secs_f64() * 1000.0);
            }
            timings.sort_by(|left, right| left.total_cmp(right));
            worst = worst.max(timings[timings.len() - 1]);
            if std::env::var("VERBOSE").is_ok() {
                let (rss, hwm) = support::memory_mib();
                println!("  after {name}: RSS {rss:.0} MiB, peak {hwm:.0} MiB");
            }
            println!(
                "{days}-day {name:16} min {:6.2} ms  median {:6.2} ms  max {:6.2} ms  ({} bytes)",
                timings[0],
                timings[timings.len() / 2],
                timings[timings.len() - 1],
                body.len()
            );
        }
        let (rss, hwm) = support::memory_mib();
        println!("slowest {days}-day report: {worst:.2} ms; RSS now {rss:.0} MiB, peak {hwm:.0} MiB");
        // The allocator hands freed pages back after a second (src/memory.rs).
        actix_rt::time::sleep(Duration::from_secs(2)).await;
        println!("RSS 2 s later: {:.0} MiB", support::memory_mib().0);
        analytics.shutdown();
    });
}
