//! What a run measured: the latency histogram (HdrHistogram, microseconds), every answer by
//! status, transport failures, late and skipped requests, and the records acknowledged as
//! stored. Each worker thread fills its own recorder; the run merges them.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// The longest latency a histogram holds (an hour, in microseconds); longer ones are clamped.
const LONGEST_MICROS: u64 = 3_600_000_000;

/// One worker's (or a whole run's) measurements.
#[derive(Debug, Clone)]
pub struct Recorder {
    /// Every answered or failed request's latency, in microseconds.
    pub latency: Histogram<u64>,
    /// Answers by HTTP status.
    pub statuses: BTreeMap<u16, u64>,
    /// Requests that got no HTTP answer (connection refused, reset, closed).
    pub transport_errors: u64,
    /// Requests slower than `--latency-limit`.
    pub late: u64,
    /// Requests not sent because they were already later than `--latency-limit` when due.
    pub skipped: u64,
    /// Records the server acknowledged as stored (201 creates, batch `created`, upsert
    /// `created`).
    pub acknowledged_records: u64,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder {
            // Cannot fire: the bounds are constants that `new_with_bounds` accepts (low ≥ 1,
            // high ≥ 2 × low, 3 significant digits ≤ 5).
            latency: Histogram::new_with_bounds(1, LONGEST_MICROS, 3)
                .expect("constant histogram bounds are valid"),
            statuses: BTreeMap::new(),
            transport_errors: 0,
            late: 0,
            skipped: 0,
            acknowledged_records: 0,
        }
    }
}

impl Recorder {
    /// Records one request's outcome: its latency and its status (`None`: no HTTP answer).
    pub fn record(&mut self, latency: Duration, status: Option<u16>) {
        let micros = u64::try_from(latency.as_micros())
            .unwrap_or(LONGEST_MICROS)
            .clamp(1, LONGEST_MICROS);
        // `saturating_record` clamps to the histogram's bounds instead of failing.
        self.latency.saturating_record(micros);
        match status {
            Some(status) => *self.statuses.entry(status).or_default() += 1,
            None => self.transport_errors += 1,
        }
    }

    /// Adds another recorder's measurements to this one.
    pub fn merge(&mut self, other: &Recorder) {
        // Both histograms have the same bounds, so `add` cannot fail; a value out of range
        // would be clamped by `saturating_record` had it come in one by one.
        let _ = self.latency.add(&other.latency);
        for (status, count) in &other.statuses {
            *self.statuses.entry(*status).or_default() += count;
        }
        self.transport_errors += other.transport_errors;
        self.late += other.late;
        self.skipped += other.skipped;
        self.acknowledged_records += other.acknowledged_records;
    }

    /// Requests answered or failed.
    pub fn requests(&self) -> u64 {
        self.statuses.values().sum::<u64>() + self.transport_errors
    }

    /// Requests answered with a 2xx.
    pub fn successes(&self) -> u64 {
        self.statuses
            .iter()
            .filter(|(status, _)| (200..300).contains(*status))
            .map(|(_, count)| count)
            .sum()
    }

    /// Requests not answered with a 2xx: every non-2xx status and every transport failure.
    pub fn errors(&self) -> u64 {
        self.requests() - self.successes()
    }

    /// The errors by kind: the status (`"409"`) or `"connection"`.
    pub fn errors_by_kind(&self) -> BTreeMap<String, u64> {
        let mut kinds: BTreeMap<String, u64> = self
            .statuses
            .iter()
            .filter(|(status, _)| !(200..300).contains(*status))
            .map(|(status, count)| (status.to_string(), *count))
            .collect();
        if self.transport_errors > 0 {
            kinds.insert("connection".into(), self.transport_errors);
        }
        kinds
    }

    /// The share of requests that were errors, 0 when there were none.
    pub fn error_rate(&self) -> f64 {
        let requests = self.requests();
        if requests == 0 {
            0.0
        } else {
            count_f64(self.errors()) / count_f64(requests)
        }
    }

    /// The latency figures of the report.
    pub fn percentiles(&self) -> Percentiles {
        let quantile = |q: f64| micros_to_ms(self.latency.value_at_quantile(q));
        Percentiles {
            p50_ms: quantile(0.5),
            p90_ms: quantile(0.9),
            p99_ms: quantile(0.99),
            p999_ms: quantile(0.999),
            max_ms: micros_to_ms(self.latency.max()),
            mean_ms: self.latency.mean() / 1000.0,
        }
    }
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Percentiles {
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

impl Percentiles {
    /// The percentile a threshold or an SLO names (`p50`, `p90`, `p99`, `p99.9`, `max`, `mean`).
    pub fn named(&self, name: &str) -> Option<f64> {
        match name {
            "p50" | "median" => Some(self.p50_ms),
            "p90" => Some(self.p90_ms),
            "p99" => Some(self.p99_ms),
            "p99.9" | "p999" => Some(self.p999_ms),
            "max" => Some(self.max_ms),
            "mean" | "avg" => Some(self.mean_ms),
            _ => None,
        }
    }
}

fn micros_to_ms(micros: u64) -> f64 {
    count_f64(micros) / 1000.0
}

/// A count as a float for rates and shares. Counts of a run stay far below 2^53, where every
/// whole number is exact in an f64.
pub fn count_f64(count: u64) -> f64 {
    count as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_histograms_give_the_percentiles_of_all_requests() {
        let mut fast = Recorder::default();
        let mut slow = Recorder::default();
        for _ in 0..990 {
            fast.record(Duration::from_millis(1), Some(200));
        }
        for _ in 0..10 {
            slow.record(Duration::from_millis(500), Some(503));
        }
        let mut run = Recorder::default();
        run.merge(&fast);
        run.merge(&slow);
        assert_eq!(run.requests(), 1000);
        assert_eq!(run.successes(), 990);
        assert_eq!(run.errors(), 10);
        assert_eq!(
            run.errors_by_kind(),
            BTreeMap::from([("503".to_string(), 10)])
        );
        let figures = run.percentiles();
        assert!((figures.p50_ms - 1.0).abs() < 0.01, "{figures:?}");
        assert!((figures.p99_ms - 1.0).abs() < 0.01, "{figures:?}");
        assert!((figures.p999_ms - 500.0).abs() < 1.0, "{figures:?}");
        assert!((figures.max_ms - 500.0).abs() < 1.0, "{figures:?}");
        assert!((run.error_rate() - 0.01).abs() < 1e-12);
    }

    #[test]
    fn transport_failures_are_errors_and_extreme_latencies_are_kept_in_range() {
        let mut recorder = Recorder::default();
        recorder.record(Duration::ZERO, None);
        recorder.record(Duration::from_secs(10 * 3600), Some(200));
        assert_eq!(
            recorder.errors_by_kind(),
            BTreeMap::from([("connection".to_string(), 1)])
        );
        assert_eq!(recorder.requests(), 2);
        assert!(recorder.percentiles().max_ms >= 3_599_000.0);
        assert_eq!(Recorder::default().error_rate(), 0.0);
    }
}
