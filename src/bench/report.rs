//! The bench's report: what ran where (build, machine, pinning, settings), each scenario's
//! figures, the capacity search's steps, the stored-count check and the thresholds; printed as
//! a table, and written as JSON (`--report`) and Markdown (`--markdown`).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use super::capacity::Capacity;
use super::recorder::{count_f64, Percentiles, Recorder};
use super::runner::Second;

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub build: Build,
    pub machine: Machine,
    pub target: Target,
    pub settings: Settings,
    pub scenarios: Vec<ScenarioReport>,
    pub thresholds: Vec<ThresholdResult>,
    /// Every threshold held and every stored count matched.
    pub passed: bool,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Build {
    pub version: String,
    /// `release` or `debug`.
    pub profile: String,
    pub target: String,
}

impl Build {
    pub fn this() -> Build {
        Build {
            version: env!("CARGO_PKG_VERSION").to_string(),
            profile: if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            }
            .to_string(),
            target: format!("{}-{}", std::env::consts::ARCH, std::env::consts::OS),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Machine {
    pub cores: usize,
    pub memory_bytes: Option<u64>,
    pub cpu: Option<String>,
}

impl Machine {
    pub fn this() -> Machine {
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory_bytes = meminfo
            .lines()
            .find(|line| line.starts_with("MemTotal:"))
            .and_then(|line| line.split_whitespace().nth(1)?.parse::<u64>().ok())
            .map(|kilobytes| kilobytes * 1024);
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find(|line| line.starts_with("model name"))
            .and_then(|line| line.split_once(':'))
            .map(|(_, model)| model.trim().to_string());
        Machine {
            cores: super::cores::available_cores(),
            memory_bytes,
            cpu,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Target {
    /// `embedded` or `url`.
    pub kind: String,
    pub url: String,
    pub tables: Vec<String>,
    /// The embedded server's cores, when pinned.
    pub server_cores: Option<String>,
    /// The load's cores, when pinned.
    pub client_cores: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Settings {
    pub connections: usize,
    pub threads: usize,
    pub duration_seconds: f64,
    /// `closed`, `uniform` or `poisson`.
    pub arrivals: String,
    pub rate: Option<f64>,
    pub latency_limit_ms: Option<f64>,
    /// The key distribution when `--keys` named one (each scenario reports its own).
    pub keys: Option<String>,
    pub records: u64,
    pub seed: u64,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScenarioReport {
    pub name: String,
    pub description: String,
    pub keys: String,
    pub requests: u64,
    pub duration_seconds: f64,
    /// Requests answered per second (every status).
    pub throughput: f64,
    pub latency: Percentiles,
    /// Errors by status (`"409"`) or `"connection"`: every non-2xx answer and failure.
    pub errors: BTreeMap<String, u64>,
    pub error_rate: f64,
    pub late: u64,
    pub skipped: u64,
    pub acknowledged_records: u64,
    /// After a scenario that writes records: the stored count against what was acknowledged.
    pub stored: Option<StoredCheck>,
    /// The embedded server's figures.
    pub server: Option<ServerFigures>,
    /// Throughput and latency second by second.
    pub seconds: Vec<SecondFigures>,
    /// `tabula bench capacity`: the search's answer and steps.
    pub capacity: Option<Capacity>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredCheck {
    pub before: u64,
    pub acknowledged: u64,
    pub stored: u64,
    /// `stored == before + acknowledged`.
    pub matches: bool,
    /// `stored >= before + acknowledged`: no acknowledged record is missing (other clients
    /// of a server at --url may have written more meanwhile).
    pub all_stored: bool,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerFigures {
    pub rss_bytes: Option<u64>,
    pub cpu_micros_per_request: Option<f64>,
    pub disk_bytes: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SecondFigures {
    pub second: u64,
    pub requests: u64,
    pub errors: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

impl SecondFigures {
    pub fn of(second: &Second) -> SecondFigures {
        let figures = second.recorder.percentiles();
        SecondFigures {
            second: second.index + 1,
            requests: second.recorder.requests(),
            errors: second.recorder.errors(),
            p50_ms: figures.p50_ms,
            p99_ms: figures.p99_ms,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ThresholdResult {
    pub threshold: String,
    pub scenario: String,
    pub observed: f64,
    pub passed: bool,
}

impl ScenarioReport {
    /// The figures of one measured run.
    pub fn measured(
        name: &str,
        description: &str,
        keys: &str,
        recorder: &Recorder,
        seconds: f64,
        per_second: &[Second],
    ) -> ScenarioReport {
        ScenarioReport {
            name: name.to_string(),
            description: description.to_string(),
            keys: keys.to_string(),
            requests: recorder.requests(),
            duration_seconds: seconds,
            throughput: if seconds > 0.0 {
                count_f64(recorder.requests()) / seconds
            } else {
                0.0
            },
            latency: recorder.percentiles(),
            errors: recorder.errors_by_kind(),
            error_rate: recorder.error_rate(),
            late: recorder.late,
            skipped: recorder.skipped,
            acknowledged_records: recorder.acknowledged_records,
            stored: None,
            server: None,
            seconds: per_second.iter().map(SecondFigures::of).collect(),
            capacity: None,
        }
    }
}

/// The live line of one second, like pgbench's `-P`.
pub fn progress_line(scenario: &str, second: &Second) -> String {
    let figures = second.recorder.percentiles();
    let mut line = format!(
        "{scenario:>8} {:>4} s  {:>9.0} req/s  p50 {:>7.2} ms  p99 {:>7.2} ms  errors {}",
        second.index + 1,
        count_f64(second.recorder.requests()),
        figures.p50_ms,
        figures.p99_ms,
        second.recorder.errors()
    );
    if second.recorder.skipped > 0 || second.recorder.late > 0 {
        let _ = write!(
            line,
            "  late {}  skipped {}",
            second.recorder.late, second.recorder.skipped
        );
    }
    line
}

fn megabytes(bytes: Option<u64>) -> String {
    bytes.map_or("–".into(), |bytes| {
        format!("{:.1} MB", count_f64(bytes) / 1e6)
    })
}

fn errors_text(errors: &BTreeMap<String, u64>) -> String {
    if errors.is_empty() {
        "0".into()
    } else {
        errors
            .iter()
            .map(|(kind, count)| format!("{count}×{kind}"))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

impl Report {
    /// The report as the terminal shows it at the end.
    pub fn text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "\ntabula {} ({}, {}) · {} cores{} · target {} {}{}",
            self.build.version,
            self.build.profile,
            self.build.target,
            self.machine.cores,
            self.machine
                .memory_bytes
                .map(|bytes| format!(", {:.1} GiB", count_f64(bytes) / f64::from(1u32 << 30)))
                .unwrap_or_default(),
            self.target.kind,
            self.target.url,
            match (&self.target.server_cores, &self.target.client_cores) {
                (Some(server), Some(client)) =>
                    format!(" · server cores {server}, client cores {client}"),
                (None, Some(client)) => format!(" · client cores {client}"),
                _ => String::new(),
            }
        );
        let _ = writeln!(
            out,
            "{} connections, {} threads, {} arrivals{}, {:.0} s per run, {} records{}\n",
            self.settings.connections,
            self.settings.threads,
            self.settings.arrivals,
            self.settings
                .rate
                .map(|rate| format!(" at {rate:.0}/s"))
                .unwrap_or_default(),
            self.settings.duration_seconds,
            self.settings.records,
            self.settings
                .latency_limit_ms
                .map(|limit| format!(", latency limit {limit} ms"))
                .unwrap_or_default()
        );
        let _ = writeln!(
            out,
            "{:<9} {:>11} {:>9} {:>9} {:>9} {:>9} {:>9}  {:<14} server",
            "scenario", "req/s", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "max ms", "errors",
        );
        for scenario in &self.scenarios {
            let server = scenario
                .server
                .as_ref()
                .map(|server| {
                    format!(
                        "{} µs CPU/req, RSS {}, disk {}",
                        server
                            .cpu_micros_per_request
                            .map_or("–".into(), |micros| format!("{micros:.0}")),
                        megabytes(server.rss_bytes),
                        megabytes(server.disk_bytes)
                    )
                })
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "{:<9} {:>11.0} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2}  {:<14} {}",
                scenario.name,
                scenario.throughput,
                scenario.latency.p50_ms,
                scenario.latency.p90_ms,
                scenario.latency.p99_ms,
                scenario.latency.p999_ms,
                scenario.latency.max_ms,
                errors_text(&scenario.errors),
                server
            );
        }
        for scenario in &self.scenarios {
            if let Some(stored) = &scenario.stored {
                let expected = stored.before + stored.acknowledged;
                let verdict = if stored.matches {
                    "every acknowledged write is stored".to_string()
                } else if stored.all_stored {
                    format!(
                        "every acknowledged write is stored ({} more records written by other clients)",
                        stored.stored - expected
                    )
                } else {
                    format!("MISSING {} acknowledged records", expected - stored.stored)
                };
                let _ = writeln!(
                    out,
                    "{}: {} records acknowledged, {} stored after ({} before): {verdict}",
                    scenario.name, stored.acknowledged, stored.stored, stored.before,
                );
            }
            if let Some(capacity) = &scenario.capacity {
                let _ = writeln!(
                    out,
                    "{}: capacity {} (broke at {}) after {} steps",
                    scenario.name,
                    capacity
                        .rate
                        .map_or("none: even the lowest rate broke".into(), |rate| format!(
                            "{rate:.0} req/s"
                        )),
                    capacity
                        .broke_at
                        .map_or("–".into(), |rate| format!("{rate:.0} req/s")),
                    capacity.steps.len()
                );
            }
        }
        for threshold in &self.thresholds {
            let _ = writeln!(
                out,
                "threshold {} on {}: {:.3} → {}",
                threshold.threshold,
                threshold.scenario,
                threshold.observed,
                if threshold.passed { "passed" } else { "FAILED" }
            );
        }
        out
    }

    /// The report in Markdown.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# tabula bench\n");
        let _ = writeln!(
            out,
            "tabula {} ({}, {}), {} cores{}{}; target {} `{}`{}.\n",
            self.build.version,
            self.build.profile,
            self.build.target,
            self.machine.cores,
            self.machine
                .cpu
                .as_ref()
                .map(|cpu| format!(" ({cpu})"))
                .unwrap_or_default(),
            self.machine
                .memory_bytes
                .map(|bytes| format!(", {:.1} GiB", count_f64(bytes) / f64::from(1u32 << 30)))
                .unwrap_or_default(),
            self.target.kind,
            self.target.url,
            match (&self.target.server_cores, &self.target.client_cores) {
                (Some(server), Some(client)) =>
                    format!(", server on cores {server}, load on cores {client}"),
                _ => String::new(),
            }
        );
        let _ = writeln!(
            out,
            "{} connections, {} threads, {} arrivals{}, {:.0} s per run, {} records.\n",
            self.settings.connections,
            self.settings.threads,
            self.settings.arrivals,
            self.settings
                .rate
                .map(|rate| format!(" at {rate:.0}/s"))
                .unwrap_or_default(),
            self.settings.duration_seconds,
            self.settings.records
        );
        let _ = writeln!(out, "| scenario | keys | req/s | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | errors | CPU µs/req | RSS | disk |");
        let _ = writeln!(
            out,
            "|---|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|"
        );
        for scenario in &self.scenarios {
            let server = scenario.server.as_ref();
            let _ = writeln!(
                out,
                "| {} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {} | {} | {} | {} |",
                scenario.name,
                scenario.keys,
                scenario.throughput,
                scenario.latency.p50_ms,
                scenario.latency.p90_ms,
                scenario.latency.p99_ms,
                scenario.latency.p999_ms,
                scenario.latency.max_ms,
                errors_text(&scenario.errors),
                server
                    .and_then(|server| server.cpu_micros_per_request)
                    .map_or("–".into(), |micros| format!("{micros:.0}")),
                megabytes(server.and_then(|server| server.rss_bytes)),
                megabytes(server.and_then(|server| server.disk_bytes)),
            );
        }
        for scenario in &self.scenarios {
            if let Some(capacity) = &scenario.capacity {
                let _ = writeln!(
                    out,
                    "\n## {} capacity: {}\n",
                    scenario.name,
                    capacity
                        .rate
                        .map_or("none".into(), |rate| format!("{rate:.0} req/s"))
                );
                let _ = writeln!(
                    out,
                    "| offered /s | achieved /s | p50 ms | p99 ms | errors | held |"
                );
                let _ = writeln!(out, "|---:|---:|---:|---:|---:|---|");
                for step in &capacity.steps {
                    let _ = writeln!(
                        out,
                        "| {:.0} | {:.0} | {:.2} | {:.2} | {:.2} % | {} |",
                        step.offered,
                        step.achieved,
                        step.latency.p50_ms,
                        step.latency.p99_ms,
                        step.error_rate * 100.0,
                        if step.held {
                            "yes".to_string()
                        } else {
                            format!("no: {}", step.broke.as_deref().unwrap_or(""))
                        }
                    );
                }
            }
        }
        if !self.thresholds.is_empty() {
            let _ = writeln!(
                out,
                "\n| threshold | scenario | observed | result |\n|---|---|---:|---|"
            );
            for threshold in &self.thresholds {
                let _ = writeln!(
                    out,
                    "| `{}` | {} | {:.3} | {} |",
                    threshold.threshold,
                    threshold.scenario,
                    threshold.observed,
                    if threshold.passed { "passed" } else { "failed" }
                );
            }
        }
        out
    }
}
