//! `tabula bench`: capacity testing built into the binary (docs/capacity.md). It starts an
//! embedded server (or loads one at `--url`), fills the bench tables, runs the named scenarios
//! closed loop or at an offered rate, or searches for the highest rate that holds an SLO
//! (`tabula bench capacity`), and reports throughput, latency percentiles, errors by status, the
//! server's memory, CPU and disk, and whether every acknowledged write is stored.
//!
//! The bench is an HTTP client of the product: nothing here is part of the server.

mod capacity;
mod chart;
mod client;
mod cores;
mod keys;
mod recorder;
mod report;
mod runner;
mod scenario;
mod schedule;
mod target;
mod thresholds;
mod workload;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;

use self::capacity::{find_capacity, Search, Step};
use self::client::{Endpoint, HttpConnector};
use self::keys::KeyChoice;
use self::recorder::count_f64;
use self::report::{
    Build, Machine, Report, ScenarioReport, ServerFigures, Settings, StoredCheck, Target,
    ThresholdResult,
};
use self::runner::{Plan, Second};
use self::scenario::Scenario;
use self::schedule::Arrivals;
use self::target::{Admin, EmbeddedServer};
use self::thresholds::{Figures, Threshold};
use self::workload::{BenchTable, KeySpace, Workload};

/// The flags of `tabula bench`.
#[derive(Debug, Clone, Default, PartialEq, Args)]
pub struct BenchArgs {
    /// Scenarios to run, in order: create, read, update, ycsb-a … ycsb-f, list, search, batch,
    /// upsert, collect, mixed (with --file) [default: create read list collect]. `capacity`
    /// first searches each one's capacity instead (with --slo).
    #[arg(value_name = "SCENARIO")]
    pub scenarios: Vec<String>,
    /// Load a running Tabula at this http:// URL instead of an embedded server.
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// A session token for --url [env TABULA_BENCH_TOKEN].
    #[arg(long, env = "TABULA_BENCH_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// An API key for --url (scope all to create the bench tables, write to use --table).
    #[arg(
        long,
        value_name = "KEY",
        env = "TABULA_BENCH_API_KEY",
        hide_env_values = true
    )]
    pub api_key: Option<String>,
    /// Use this existing table (its fields read from GET /api/tables/{t}) instead of creating
    /// bench tables.
    #[arg(long, value_name = "NAME")]
    pub table: Option<String>,
    /// Keep the bench tables created on --url at the end (deleted by default).
    #[arg(long)]
    pub keep_tables: bool,
    /// Spread the load over this many bench tables, one actor each [default: 1].
    #[arg(long, value_name = "T", default_value_t = 1)]
    pub tables: usize,
    /// Fill the bench tables with this many records in all before measuring (pgbench -i -s)
    /// [default: 10000 when a scenario reads records and the tables are empty].
    #[arg(long, value_name = "N")]
    pub records: Option<u64>,
    /// Connections (virtual users) [default: 64].
    #[arg(long, short = 'c', default_value_t = 64)]
    pub connections: usize,
    /// Client threads [default: one per client core].
    #[arg(long, short = 'j')]
    pub threads: Option<usize>,
    /// Length of each measured run (500ms, 10s, 2m) [default: 10s].
    #[arg(long, short = 'd', value_parser = parse_duration, default_value = "10s")]
    pub duration: Duration,
    /// Offered rate in requests per second (open loop); without it each connection sends as
    /// soon as its previous request is answered (closed loop).
    #[arg(long, short = 'R', value_name = "PER_SECOND")]
    pub rate: Option<f64>,
    /// Arrivals of an open loop: poisson or uniform [default: poisson].
    #[arg(long, value_name = "poisson|uniform", default_value = "poisson")]
    pub arrivals: String,
    /// Count requests slower than this as late, and skip those already later than it when due
    /// (pgbench -L) [open loop].
    #[arg(long, short = 'L', value_parser = parse_duration)]
    pub latency_limit: Option<Duration>,
    /// Key choice: uniform, zipfian or latest [default: each scenario's own].
    #[arg(long, value_name = "uniform|zipfian|latest")]
    pub keys: Option<String>,
    /// The scenario file of `mixed` (TOML, docs/capacity.md).
    #[arg(long, short = 'f', value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// `capacity`: the latency objective a rate must hold (p99<=10ms) [default: p99<=10ms].
    #[arg(long, default_value = "p99<=10ms")]
    pub slo: String,
    /// `capacity`: the highest share of errors a rate may have (0.1%) [default: 0.1%].
    #[arg(long, value_name = "PERCENT", default_value = "0.1%")]
    pub max_error_rate: String,
    /// `capacity`: the rate of its first step [default: a tenth of a short closed-loop run's].
    #[arg(long, value_name = "PER_SECOND")]
    pub start_rate: Option<f64>,
    /// A condition the run must meet, k6-style (p99<20ms, errors<1%, throughput>=5000);
    /// repeatable. The exit code is 1 when one fails.
    #[arg(long = "threshold", value_name = "CONDITION")]
    pub thresholds: Vec<String>,
    /// The embedded server's cores (0, 0-1, 0,2) [default: the first half].
    #[arg(long, value_name = "LIST")]
    pub server_cores: Option<String>,
    /// The load's cores [default: the other half].
    #[arg(long, value_name = "LIST")]
    pub client_cores: Option<String>,
    /// Write the report as JSON.
    #[arg(long, value_name = "FILE.json")]
    pub report: Option<PathBuf>,
    /// Write the report as Markdown.
    #[arg(long, value_name = "FILE.md")]
    pub markdown: Option<PathBuf>,
    /// Draw the capacity curve and throughput over time as SVG.
    #[arg(long, value_name = "FILE.svg")]
    pub chart: Option<PathBuf>,
    /// No live line per second.
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// The random seed [default: from the clock].
    #[arg(long)]
    pub seed: Option<u64>,
}

/// Reads `500ms`, `10s`, `2m`, `1h` or a number of seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let invalid = || format!("invalid duration '{text}' (examples: 500ms, 10s, 2m)");
    let (number, unit) = match text.find(|c: char| c.is_ascii_alphabetic()) {
        Some(split) => text.split_at(split),
        None => (text, "s"),
    };
    let value: f64 = number.trim().parse().map_err(|_| invalid())?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => return Err(invalid()),
    };
    if !(seconds.is_finite() && seconds > 0.0 && seconds <= 7.0 * 86_400.0) {
        return Err(invalid());
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// Where the load goes and what it may touch.
struct Setup {
    admin: Admin,
    endpoint: Arc<Endpoint>,
    embedded: Option<EmbeddedServer>,
    tables: Vec<BenchTable>,
    spaces: Vec<KeySpace>,
    /// Tables this bench created on --url (deleted at the end unless --keep-tables).
    created: Vec<String>,
    client_cores: Option<Vec<usize>>,
}

/// Runs `tabula bench`; `Err` for a setup error or a failed threshold or stored count (the
/// report is printed first).
pub fn run(args: &BenchArgs) -> Result<(), String> {
    let mut names: Vec<String> = args.scenarios.clone();
    let capacity_mode = names.first().is_some_and(|first| first == "capacity");
    if capacity_mode {
        names.remove(0);
    }
    if names.is_empty() {
        names = scenario::DEFAULT_SCENARIOS
            .iter()
            .map(|name| name.to_string())
            .collect();
    }
    let scenarios: Vec<Scenario> = names
        .iter()
        .map(|name| match name.as_str() {
            "mixed" => match &args.file {
                Some(path) => scenario::read_scenario_file(path),
                None => Err("the mixed scenario needs a scenario file: --file FILE".into()),
            },
            other => scenario::built_in(other).ok_or_else(|| {
                format!(
                    "unknown scenario '{other}' (one of {}, or capacity first)",
                    scenario::BUILT_IN.map(|(name, _)| name).join(", ")
                )
            }),
        })
        .collect::<Result<_, String>>()?;
    let keys: Option<KeyChoice> = args.keys.as_deref().map(str::parse).transpose()?;
    let arrival_kind = match args.arrivals.as_str() {
        "poisson" | "uniform" => args.arrivals.as_str(),
        other => return Err(format!("--arrivals {other}: poisson or uniform")),
    };
    let arrivals_at = |rate: f64| match arrival_kind {
        "uniform" => Arrivals::Uniform { per_second: rate },
        _ => Arrivals::Poisson { per_second: rate },
    };
    if let Some(rate) = args.rate {
        if !(rate.is_finite() && rate > 0.0) {
            return Err(format!(
                "--rate {rate}: a positive number of requests per second"
            ));
        }
    }
    let thresholds: Vec<Threshold> = args
        .thresholds
        .iter()
        .map(|text| text.parse())
        .collect::<Result<_, _>>()?;
    let slo: Threshold = args.slo.parse()?;
    if !slo.is_latency() {
        return Err(format!(
            "--slo {}: an SLO is a latency condition (p99<=10ms)",
            args.slo
        ));
    }
    let max_error_rate: Threshold =
        format!("errors<={}", args.max_error_rate)
            .parse()
            .map_err(|_| {
                format!(
                    "--max-error-rate {}: a percentage (0.1%)",
                    args.max_error_rate
                )
            })?;
    if args.connections == 0 || args.connections > 100_000 {
        return Err("--connections: 1 to 100000".into());
    }
    if args.tables == 0 || args.tables > 10_000 {
        return Err("--tables: 1 to 10000".into());
    }
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |elapsed| {
                u64::try_from(elapsed.as_nanos() & u128::from(u64::MAX)).unwrap_or(1)
            })
    });

    let mut setup = set_up(args, seed)?;
    let needs_records = scenarios.iter().any(Scenario::needs_records);
    for scenario in &scenarios {
        for (operation, _) in &scenario.mix {
            if let Some(problem) = setup
                .tables
                .iter()
                .find_map(|table| table.unsupported(*operation))
            {
                return Err(format!("scenario {}: {problem}", scenario.name));
            }
        }
    }
    let known: u64 = setup
        .spaces
        .iter()
        .map(|space| u64::try_from(space.len()).unwrap_or(0))
        .sum();
    let wanted = args.records.unwrap_or(if needs_records && known == 0 {
        10_000
    } else {
        0
    });
    if wanted > known {
        fill(&mut setup, wanted - known, seed, args.quiet)?;
    }
    let records: u64 = setup
        .spaces
        .iter()
        .map(|space| u64::try_from(space.len()).unwrap_or(0))
        .sum();

    let threads = args
        .threads
        .unwrap_or_else(|| setup.client_cores.as_ref().map_or(1, Vec::len))
        .max(1);
    let cores: Vec<Option<usize>> = (0..threads)
        .map(|thread| {
            setup
                .client_cores
                .as_ref()
                .filter(|cores| !cores.is_empty())
                .map(|cores| cores[thread % cores.len()])
        })
        .collect();
    let mut reports = Vec::new();
    let mut salt = seed;
    for scenario in scenarios {
        let keys_used = keys.unwrap_or(scenario.default_keys);
        let workload = Arc::new(Workload {
            scenario: scenario.clone(),
            tables: setup.tables.clone(),
            keys: keys_used,
        });
        let connector = Arc::new(HttpConnector(setup.endpoint.clone()));
        let mut plan = Plan {
            cores: cores.clone(),
            connections: args.connections,
            arrivals: args.rate.map_or(Arrivals::Closed, arrivals_at),
            duration: args.duration,
            latency_limit: args.latency_limit,
            seed,
            salt,
        };
        let before = if scenario.writes_records() {
            Some(stored_records(&setup)?)
        } else {
            None
        };
        let usage_before = setup.embedded.as_ref().map(EmbeddedServer::usage);
        let mut total_requests = 0u64;
        let mut acknowledged = 0u64;
        let report = if capacity_mode {
            // A short closed-loop probe sets the first step when --start-rate does not.
            let start_rate = match args.start_rate {
                Some(rate) => rate,
                None => {
                    salt += 1;
                    plan.salt = salt;
                    let mut probe = plan.clone();
                    probe.duration = Duration::from_secs(2);
                    let outcome = runner::run(
                        &probe,
                        workload.clone(),
                        connector.clone(),
                        setup.spaces.clone(),
                        |_| {},
                    )?;
                    total_requests += outcome.recorder.requests();
                    acknowledged += outcome.recorder.acknowledged_records;
                    setup.spaces = outcome.spaces;
                    (count_f64(outcome.recorder.successes())
                        / outcome.elapsed.as_secs_f64().max(0.001)
                        / 10.0)
                        .max(10.0)
                }
            };
            let search = Search {
                start_rate,
                ..Search::default()
            };
            let mut last: Option<(ScenarioReport, runner::Outcome)> = None;
            let capacity = find_capacity(&search, |rate| {
                salt += 1;
                let step_plan = Plan {
                    arrivals: arrivals_at(rate),
                    salt,
                    ..plan.clone()
                };
                let name = scenario.name.clone();
                let quiet = args.quiet;
                let outcome = runner::run(
                    &step_plan,
                    workload.clone(),
                    connector.clone(),
                    setup.spaces.clone(),
                    |second| {
                        if !quiet {
                            eprintln!(
                                "{}  (offered {rate:.0}/s)",
                                report::progress_line(&name, second)
                            );
                        }
                    },
                )?;
                total_requests += outcome.recorder.requests();
                acknowledged += outcome.recorder.acknowledged_records;
                setup.spaces = outcome.spaces.clone();
                let seconds = step_plan.duration.as_secs_f64();
                let achieved = count_f64(outcome.recorder.requests()) / seconds;
                let figures = Figures {
                    percentiles: outcome.recorder.percentiles(),
                    error_rate: outcome.recorder.error_rate(),
                    throughput: achieved,
                };
                let broke = if !slo.holds(&figures) {
                    Some(format!("{} ({:.2} ms)", slo, slo.observed(&figures)))
                } else if !max_error_rate.holds(&figures) {
                    Some(format!(
                        "{} ({:.3} %)",
                        max_error_rate,
                        figures.error_rate * 100.0
                    ))
                } else if achieved < rate * search.min_delivered {
                    Some(format!("answered {achieved:.0}/s of {rate:.0}/s"))
                } else {
                    None
                };
                let step = Step {
                    offered: rate,
                    achieved,
                    latency: figures.percentiles,
                    error_rate: figures.error_rate,
                    held: broke.is_none(),
                    broke,
                };
                if step.held {
                    let measured = ScenarioReport::measured(
                        &scenario.name,
                        &scenario.description,
                        keys_used.name(),
                        &outcome.recorder,
                        seconds,
                        &outcome.seconds,
                    );
                    last = Some((measured, outcome));
                }
                Ok(step)
            })?;
            let mut measured = match last {
                Some((measured, _)) => measured,
                None => ScenarioReport::measured(
                    &scenario.name,
                    &scenario.description,
                    keys_used.name(),
                    &recorder::Recorder::default(),
                    0.0,
                    &[],
                ),
            };
            measured.capacity = Some(capacity);
            measured.acknowledged_records = acknowledged;
            measured
        } else {
            salt += 1;
            plan.salt = salt;
            let name = scenario.name.clone();
            let quiet = args.quiet;
            let outcome = runner::run(
                &plan,
                workload.clone(),
                connector.clone(),
                setup.spaces.clone(),
                |second: &Second| {
                    if !quiet {
                        eprintln!("{}", report::progress_line(&name, second));
                    }
                },
            )?;
            total_requests += outcome.recorder.requests();
            acknowledged += outcome.recorder.acknowledged_records;
            setup.spaces = outcome.spaces.clone();
            ScenarioReport::measured(
                &scenario.name,
                &scenario.description,
                keys_used.name(),
                &outcome.recorder,
                plan.duration.as_secs_f64(),
                &outcome.seconds,
            )
        };
        let mut report = report;
        if let Some(before) = before {
            let stored = stored_records(&setup)?;
            report.stored = Some(StoredCheck {
                before,
                acknowledged,
                stored,
                matches: stored == before + acknowledged,
                all_stored: stored >= before + acknowledged,
            });
        }
        if let (Some(server), Some(usage_before)) = (&setup.embedded, usage_before) {
            let usage = server.usage();
            let cpu_micros_per_request = match (usage.cpu, usage_before.cpu) {
                (Some(after), Some(before)) if total_requests > 0 => Some(
                    after.saturating_sub(before).as_secs_f64() * 1e6 / count_f64(total_requests),
                ),
                _ => None,
            };
            report.server = Some(ServerFigures {
                rss_bytes: usage.rss_bytes,
                cpu_micros_per_request,
                disk_bytes: usage.disk_bytes,
            });
        }
        reports.push(report);
    }

    let mut threshold_results = Vec::new();
    for threshold in &thresholds {
        for scenario in &reports {
            let figures = Figures {
                percentiles: scenario.latency,
                error_rate: scenario.error_rate,
                throughput: scenario.throughput,
            };
            threshold_results.push(ThresholdResult {
                threshold: threshold.to_string(),
                scenario: scenario.name.clone(),
                observed: threshold.observed(&figures),
                passed: threshold.holds(&figures),
            });
        }
    }
    let stored_ok = reports.iter().all(|scenario| {
        scenario
            .stored
            .as_ref()
            .is_none_or(|stored| stored.all_stored)
    });
    let thresholds_ok = threshold_results.iter().all(|result| result.passed);
    let report = Report {
        build: Build::this(),
        machine: Machine::this(),
        target: Target {
            kind: if setup.embedded.is_some() {
                "embedded"
            } else {
                "url"
            }
            .into(),
            url: setup.endpoint.url.clone(),
            tables: setup
                .tables
                .iter()
                .map(|table| table.name.clone())
                .collect(),
            server_cores: setup
                .embedded
                .as_ref()
                .and_then(|server| server.cores.as_deref())
                .map(cores::describe),
            client_cores: setup.client_cores.as_deref().map(cores::describe),
        },
        settings: Settings {
            connections: args.connections,
            threads,
            duration_seconds: args.duration.as_secs_f64(),
            arrivals: if args.rate.is_some() || capacity_mode {
                arrival_kind.into()
            } else {
                "closed".into()
            },
            rate: args.rate,
            latency_limit_ms: args.latency_limit.map(|limit| limit.as_secs_f64() * 1000.0),
            keys: keys.map(|keys| keys.name().to_string()),
            records,
            seed,
        },
        scenarios: reports,
        thresholds: threshold_results,
        passed: stored_ok && thresholds_ok,
    };
    print!("{}", report.text());
    if let Some(path) = &args.report {
        let json = serde_json::to_string_pretty(&report).map_err(|error| error.to_string())?;
        std::fs::write(path, json + "\n")
            .map_err(|error| format!("cannot write {}: {error}", path.display()))?;
    }
    if let Some(path) = &args.markdown {
        std::fs::write(path, report.markdown())
            .map_err(|error| format!("cannot write {}: {error}", path.display()))?;
    }
    if let Some(path) = &args.chart {
        chart::draw(&report, path)?;
    }
    if !setup.created.is_empty() && !args.keep_tables {
        setup.admin.delete_tables(&setup.created)?;
    }
    if !stored_ok {
        return Err(
            "a write scenario's stored count differs from what the server acknowledged".into(),
        );
    }
    if !thresholds_ok {
        return Err("a threshold failed".into());
    }
    Ok(())
}

/// Starts the embedded server or reaches `--url`, and finds or creates the bench tables.
fn set_up(args: &BenchArgs, seed: u64) -> Result<Setup, String> {
    let split = cores::default_split(cores::available_cores());
    let server_cores = match &args.server_cores {
        Some(list) => Some(cores::parse_core_list(list)?),
        None => split.as_ref().map(|(server, _)| server.clone()),
    };
    let client_cores = match &args.client_cores {
        Some(list) => Some(cores::parse_core_list(list)?),
        None if args.url.is_some() => None,
        None => split.as_ref().map(|(_, client)| client.clone()),
    };
    let pinned_client = client_cores.filter(|cores| cores::pin_current_thread(cores));
    match &args.url {
        None => {
            if args.table.is_some() {
                return Err(
                    "--table names a table of --url; the embedded server has only the bench tables"
                        .into(),
                );
            }
            let names = target::bench_table_names("bench", args.tables);
            eprintln!(
                "tabula bench: embedded server{} with {} bench table{}, load{}",
                server_cores
                    .as_deref()
                    .map(|cores| format!(" on cores {}", cores::describe(cores)))
                    .unwrap_or_default(),
                names.len(),
                if names.len() == 1 { "" } else { "s" },
                pinned_client
                    .as_deref()
                    .map(|cores| format!(" on cores {}", cores::describe(cores)))
                    .unwrap_or_default(),
            );
            let server = EmbeddedServer::start(&names, server_cores)?;
            let endpoint = server.endpoint.clone();
            let admin = Admin::new(endpoint.clone())?;
            let tables = names
                .iter()
                .map(|name| admin.table(name).map(|(table, _)| table))
                .collect::<Result<Vec<_>, _>>()?;
            let spaces = vec![KeySpace::default(); tables.len()];
            Ok(Setup {
                admin,
                endpoint: Arc::new(endpoint),
                embedded: Some(server),
                tables,
                spaces,
                created: Vec::new(),
                client_cores: pinned_client,
            })
        }
        Some(url) => {
            let credential = args.api_key.as_deref().or(args.token.as_deref());
            let endpoint = Endpoint::new(url, credential)?;
            let admin = Admin::new(endpoint.clone())?;
            let (status, _) = admin.get("/api/health")?;
            if status != 200 {
                return Err(format!("{url}/api/health answered {status}"));
            }
            let (names, created) = match &args.table {
                Some(table) => (vec![table.clone()], Vec::new()),
                None => {
                    let names = target::bench_table_names(
                        &format!("bench_{:04x}", seed & 0xFFFF),
                        args.tables,
                    );
                    admin.create_tables(&names)?;
                    (names.clone(), names)
                }
            };
            let mut tables = Vec::new();
            let mut spaces = Vec::new();
            for name in &names {
                let (table, count) = admin.table(name)?;
                let ids = if count > 0 {
                    admin.record_ids(name)?
                } else {
                    Vec::new()
                };
                tables.push(table);
                spaces.push(KeySpace {
                    known: Arc::new(ids),
                    created: Vec::new(),
                });
            }
            Ok(Setup {
                admin,
                endpoint: Arc::new(endpoint),
                embedded: None,
                tables,
                spaces,
                created,
                client_cores: pinned_client,
            })
        }
    }
}

/// Fills the bench tables with `records` more records, spread evenly, with a progress bar.
fn fill(setup: &mut Setup, records: u64, seed: u64, quiet: bool) -> Result<(), String> {
    let bar = if quiet {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new(records)
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "filling {bar:40} {pos}/{len} records ({per_sec}, {eta} left)",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let tables = u64::try_from(setup.tables.len()).unwrap_or(1).max(1);
    let mut done = 0u64;
    for (index, table) in setup.tables.iter().enumerate() {
        let index = u64::try_from(index).unwrap_or(0);
        let share = records / tables + u64::from(index < records % tables);
        if share == 0 {
            continue;
        }
        let base = done;
        let Some(space) = setup.spaces.get_mut(usize::try_from(index).unwrap_or(0)) else {
            continue;
        };
        setup.admin.fill(
            table,
            share,
            seed ^ (index + 1).wrapping_mul(0x51_7cc1_b727_220a),
            space,
            &|stored| bar.set_position(base + stored),
        )?;
        done += share;
    }
    bar.finish_and_clear();
    Ok(())
}

/// The live records of every bench table.
fn stored_records(setup: &Setup) -> Result<u64, String> {
    setup
        .tables
        .iter()
        .map(|table| setup.admin.record_count(&table.name))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::scenario::Operation;
    use super::*;

    #[test]
    fn durations_are_read_with_their_unit() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("1.5m"), Ok(Duration::from_secs(90)));
        for bad in ["", "0s", "-1s", "10x", "fast", "nan", "100000h"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_operation_reports_whether_it_writes() {
        assert!(Operation::Batch.writes_records());
        assert!(!Operation::Search.writes_records());
    }
}
