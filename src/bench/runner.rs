//! Runs one measured load: worker threads (each pinned to a client core, each a single-threaded
//! tokio runtime) drive their share of the connections, closed loop or open loop, and report
//! every second; the run merges their recorders. Latency in an open loop is measured from each
//! request's due time (coordinated omission corrected), and with `--latency-limit` a request
//! already later than the limit when a connection frees up is skipped, not sent.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::{mpsc, Arc};
use std::time::Duration;

use serde_json::Value as Json;
use tokio::time::Instant;

use super::client::{Answer, Connector, Transport};
use super::recorder::Recorder;
use super::schedule::{Arrivals, Schedule};
use super::workload::{Expect, KeySpace, Worker, Workload};

/// How one run is driven.
#[derive(Debug, Clone)]
pub struct Plan {
    /// One worker thread per entry, pinned to that core (`None`: not pinned).
    pub cores: Vec<Option<usize>>,
    pub connections: usize,
    pub arrivals: Arrivals,
    pub duration: Duration,
    pub latency_limit: Option<Duration>,
    pub seed: u64,
    /// Tells this run's unique values from other runs' (see `Worker::new`).
    pub salt: u64,
}

/// One second of a run, all workers merged.
#[derive(Debug, Clone)]
pub struct Second {
    pub index: u64,
    pub recorder: Recorder,
}

/// What a run measured.
#[derive(Debug)]
pub struct Outcome {
    pub recorder: Recorder,
    pub elapsed: Duration,
    pub seconds: Vec<Second>,
    /// Each table's record ids as the run leaves them (known ones and those created).
    pub spaces: Vec<KeySpace>,
}

/// What a worker sends the run: a finished second, or its whole run.
enum Report {
    Second(Second),
    Done(Recorder, Vec<KeySpace>),
}

/// Runs `plan` with `workload`, connections from `connector`, starting from the key spaces
/// `spaces`; `on_second` sees every finished second (the live line).
pub fn run<C: Connector>(
    plan: &Plan,
    workload: Arc<Workload>,
    connector: Arc<C>,
    spaces: Vec<KeySpace>,
    mut on_second: impl FnMut(&Second),
) -> Result<Outcome, String> {
    // No worker without a connection.
    let workers = plan.cores.len().clamp(1, plan.connections.max(1));
    let (reports, incoming) = mpsc::channel();
    let started = std::time::Instant::now();
    let mut threads = Vec::new();
    for worker in 0..workers {
        let core = plan.cores.get(worker).copied().flatten();
        let connections = share(plan.connections, workers, worker);
        let arrivals = match plan.arrivals.rate() {
            Some(rate) => plan.arrivals.at_rate(rate / workers as f64),
            None => Arrivals::Closed,
        };
        let worker_plan = WorkerPlan {
            index: worker,
            connections,
            arrivals,
            duration: plan.duration,
            latency_limit: plan.latency_limit,
            seed: plan.seed.wrapping_add(worker as u64),
            salt: plan.salt,
        };
        let workload = workload.clone();
        let connector = connector.clone();
        let spaces = spaces.clone();
        let reports = reports.clone();
        let thread = std::thread::Builder::new()
            .name(format!("bench-client-{worker}"))
            .spawn(move || {
                if let Some(core) = core {
                    super::cores::pin_current_thread(&[core]);
                }
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build();
                let Ok(runtime) = runtime else {
                    let _ = reports.send(Report::Done(Recorder::default(), spaces));
                    return;
                };
                let local = tokio::task::LocalSet::new();
                let seconds = reports.clone();
                let (recorder, spaces) = local.block_on(
                    &runtime,
                    run_worker(worker_plan, workload, connector, spaces, move |second| {
                        let _ = seconds.send(Report::Second(second));
                    }),
                );
                let _ = reports.send(Report::Done(recorder, spaces));
            })
            .map_err(|error| format!("cannot start a client thread: {error}"))?;
        threads.push(thread);
    }
    drop(reports);
    let mut total = Recorder::default();
    let mut finished_spaces: Vec<Vec<KeySpace>> = Vec::new();
    let mut pending: BTreeMap<u64, (usize, Recorder)> = BTreeMap::new();
    let mut seconds = Vec::new();
    for report in incoming {
        match report {
            Report::Second(second) => {
                let entry = pending
                    .entry(second.index)
                    .or_insert_with(|| (0, Recorder::default()));
                entry.0 += 1;
                entry.1.merge(&second.recorder);
                if entry.0 == workers {
                    if let Some((_, recorder)) = pending.remove(&second.index) {
                        let merged = Second {
                            index: second.index,
                            recorder,
                        };
                        on_second(&merged);
                        seconds.push(merged);
                    }
                }
            }
            Report::Done(recorder, spaces) => {
                total.merge(&recorder);
                finished_spaces.push(spaces);
            }
        }
    }
    for thread in threads {
        let _ = thread.join();
    }
    // Seconds some worker never finished (the last partial one) are merged as they are.
    for (index, (_, recorder)) in pending {
        seconds.push(Second { index, recorder });
    }
    seconds.sort_by_key(|second| second.index);
    let spaces = merge_spaces(spaces, finished_spaces);
    Ok(Outcome {
        recorder: total,
        elapsed: started.elapsed(),
        seconds,
        spaces,
    })
}

/// Worker `worker`'s share of `total` among `workers` (the first ones take the remainder).
fn share(total: usize, workers: usize, worker: usize) -> usize {
    total / workers + usize::from(worker < total % workers)
}

/// The run's key spaces: the known ids plus every worker's created ones.
fn merge_spaces(start: Vec<KeySpace>, workers: Vec<Vec<KeySpace>>) -> Vec<KeySpace> {
    start
        .into_iter()
        .enumerate()
        .map(|(table, space)| {
            let mut ids: Vec<Box<str>> = space.known.as_ref().clone();
            for worker in &workers {
                if let Some(theirs) = worker.get(table) {
                    ids.extend(theirs.created.iter().cloned());
                }
            }
            KeySpace {
                known: Arc::new(ids),
                created: Vec::new(),
            }
        })
        .collect()
}

/// One worker's part of a run.
#[derive(Debug, Clone)]
pub struct WorkerPlan {
    pub index: usize,
    pub connections: usize,
    /// This worker's arrivals (its share of the rate).
    pub arrivals: Arrivals,
    pub duration: Duration,
    pub latency_limit: Option<Duration>,
    pub seed: u64,
    pub salt: u64,
}

/// A worker's shared state: its request maker, the recorders of the run and of the current
/// second, and the open-loop schedule its connections share.
struct Shared {
    worker: Worker,
    total: Recorder,
    second: Recorder,
    schedule: Option<Schedule>,
}

impl Shared {
    fn record(&mut self, latency: Duration, status: Option<u16>, late: bool) {
        self.total.record(latency, status);
        self.second.record(latency, status);
        if late {
            self.total.late += 1;
            self.second.late += 1;
        }
    }

    fn skip(&mut self) {
        self.total.skipped += 1;
        self.second.skipped += 1;
    }

    fn acknowledge(&mut self, records: u64) {
        self.total.acknowledged_records += records;
        self.second.acknowledged_records += records;
    }
}

/// Runs one worker's connections on the current (single-threaded) runtime until the plan's
/// duration is over and every request in flight is answered; `on_second` gets each second.
pub async fn run_worker<C: Connector>(
    plan: WorkerPlan,
    workload: Arc<Workload>,
    connector: Arc<C>,
    spaces: Vec<KeySpace>,
    on_second: impl Fn(Second) + 'static,
) -> (Recorder, Vec<KeySpace>) {
    let shared = Rc::new(RefCell::new(Shared {
        worker: Worker::new(plan.index, plan.seed, plan.salt, workload.keys, spaces),
        total: Recorder::default(),
        second: Recorder::default(),
        schedule: Schedule::new(plan.arrivals, plan.seed),
    }));
    let start = Instant::now();
    let end = start + plan.duration;
    let on_second = Rc::new(on_second);
    let ticker = {
        let shared = shared.clone();
        let on_second = on_second.clone();
        tokio::task::spawn_local(async move {
            let mut index = 0u64;
            loop {
                index += 1;
                let tick = start + Duration::from_secs(index);
                if tick > end {
                    break;
                }
                tokio::time::sleep_until(tick).await;
                let recorder = std::mem::take(&mut shared.borrow_mut().second);
                on_second(Second {
                    index: index - 1,
                    recorder,
                });
            }
        })
    };
    let mut connections = Vec::new();
    for _ in 0..plan.connections.max(1) {
        let shared = shared.clone();
        let workload = workload.clone();
        let connector = connector.clone();
        let plan = plan.clone();
        connections.push(tokio::task::spawn_local(async move {
            let mut transport = connector.connect().await;
            drive(&mut transport, &plan, &workload, &shared, start, end).await;
        }));
    }
    for connection in connections {
        let _ = connection.await;
    }
    ticker.abort();
    // The requests answered after the last whole second: a last, partial second.
    let rest = std::mem::take(&mut shared.borrow_mut().second);
    if rest.requests() > 0 || rest.skipped > 0 {
        on_second(Second {
            index: plan.duration.as_secs(),
            recorder: rest,
        });
    }
    let mut shared = shared.borrow_mut();
    let spaces = std::mem::take(&mut shared.worker.spaces);
    (std::mem::take(&mut shared.total), spaces)
}

/// One connection's loop.
async fn drive<T: Transport>(
    transport: &mut T,
    plan: &WorkerPlan,
    workload: &Workload,
    shared: &RefCell<Shared>,
    start: Instant,
    end: Instant,
) {
    loop {
        let due = {
            let mut state = shared.borrow_mut();
            match state.schedule.as_mut() {
                Some(schedule) => {
                    let due = start + schedule.next_due();
                    if due >= end {
                        return;
                    }
                    Some(due)
                }
                None => None,
            }
        };
        let sent_from = match due {
            Some(due) => {
                tokio::time::sleep_until(due).await;
                if let Some(limit) = plan.latency_limit {
                    if Instant::now().saturating_duration_since(due) > limit {
                        shared.borrow_mut().skip();
                        continue;
                    }
                }
                due
            }
            None => {
                let now = Instant::now();
                if now >= end {
                    return;
                }
                now
            }
        };
        let operation = workload
            .scenario
            .pick(&mut shared.borrow_mut().worker.random);
        let made = shared.borrow_mut().worker.request(workload, operation);
        let Some((request, expect)) = made else {
            // Nothing to name (an empty table): counts as a client-side failure of the run.
            shared.borrow_mut().record(Duration::ZERO, None, false);
            if due.is_none() {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            continue;
        };
        let mut answer = transport.send(&request).await;
        if let (Expect::ThenModify(table), Ok(read)) = (expect, &answer) {
            if read.status == 200 {
                let record: Json = serde_json::from_slice(&read.body).unwrap_or_default();
                let write = shared.borrow_mut().worker.modify(workload, table, &record);
                if let Some(write) = write {
                    answer = transport.send(&write).await;
                }
            }
        }
        let latency = Instant::now().saturating_duration_since(sent_from);
        let late = plan.latency_limit.is_some_and(|limit| latency > limit);
        let mut state = shared.borrow_mut();
        match answer {
            Ok(answer) => {
                state.record(latency, Some(answer.status), late);
                acknowledge(&mut state, expect, &answer);
            }
            Err(()) => state.record(latency, None, late),
        }
    }
}

/// Counts the records a successful write stored, and keeps a created record's id.
fn acknowledge(state: &mut Shared, expect: Expect, answer: &Answer) {
    if !(200..300).contains(&answer.status) {
        return;
    }
    match expect {
        Expect::Created(table) if answer.status == 201 => {
            state.acknowledge(1);
            #[derive(serde::Deserialize)]
            struct Created {
                id: Json,
            }
            if let Ok(created) = serde_json::from_slice::<Created>(&answer.body) {
                let id = match created.id {
                    Json::String(id) => id,
                    other => other.to_string(),
                };
                state.worker.created(table, id);
            }
        }
        Expect::CreatedCount => {
            #[derive(serde::Deserialize)]
            struct Counted {
                created: u64,
            }
            if let Ok(counted) = serde_json::from_slice::<Counted>(&answer.body) {
                state.acknowledge(counted.created);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::keys::KeyChoice;
    use crate::bench::scenario::built_in;
    use crate::bench::workload::{BenchTable, Request};
    use bytes::Bytes;
    use serde_json::json;

    /// A server that answers in `service` and, for requests arriving in `stall`, not before the
    /// stall ends (a checkpoint, a GC pause, a full disk).
    struct SimulatedServer {
        service: Duration,
        stall: Option<(Duration, Duration)>,
        start: Instant,
    }

    impl Transport for SimulatedServer {
        async fn send(&mut self, request: &Request) -> Result<Answer, ()> {
            let now = Instant::now() - self.start;
            if let Some((from, to)) = self.stall {
                if now >= from && now < to {
                    tokio::time::sleep_until(self.start + to).await;
                }
            }
            tokio::time::sleep(self.service).await;
            let created = request.method == hyper::Method::POST;
            Ok(Answer {
                status: if created { 201 } else { 200 },
                body: Bytes::from(if created {
                    r#"{"id":"7"}"#
                } else {
                    r#"{"id":"1"}"#
                }),
            })
        }
    }

    struct SimulatedConnector {
        service: Duration,
        stall: Option<(Duration, Duration)>,
        start: Instant,
    }

    impl Connector for SimulatedConnector {
        type Transport = SimulatedServer;
        async fn connect(&self) -> SimulatedServer {
            SimulatedServer {
                service: self.service,
                stall: self.stall,
                start: self.start,
            }
        }
    }

    fn workload(scenario: &str) -> Arc<Workload> {
        let table = BenchTable::from_description(&json!({"name": "bench", "fields": [
            {"name": "title", "type": "single-line-text"}, {"name": "score", "type": "integer"}]}))
        .expect("a table");
        Arc::new(Workload {
            scenario: built_in(scenario).expect("built in"),
            tables: vec![table],
            keys: KeyChoice::Uniform,
        })
    }

    fn spaces() -> Vec<KeySpace> {
        vec![KeySpace {
            known: Arc::new(
                (1..=100)
                    .map(|id| id.to_string().into_boxed_str())
                    .collect(),
            ),
            created: Vec::new(),
        }]
    }

    /// Runs one worker on a paused clock: the simulated time passes only as the simulated
    /// server sleeps, so the test is exact and instant.
    fn simulate(
        arrivals: Arrivals,
        connections: usize,
        stall: bool,
        latency_limit: Option<Duration>,
    ) -> (Recorder, Vec<Second>) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .expect("a runtime");
        let local = tokio::task::LocalSet::new();
        let seconds = Rc::new(RefCell::new(Vec::new()));
        let recorder = local.block_on(&runtime, {
            let seconds = seconds.clone();
            async move {
                let connector = Arc::new(SimulatedConnector {
                    service: Duration::from_micros(200),
                    stall: stall.then_some((Duration::from_secs(2), Duration::from_secs(3))),
                    start: Instant::now(),
                });
                let plan = WorkerPlan {
                    index: 0,
                    connections,
                    arrivals,
                    duration: Duration::from_secs(10),
                    latency_limit,
                    seed: 1,
                    salt: 1,
                };
                run_worker(plan, workload("read"), connector, spaces(), move |second| {
                    seconds.borrow_mut().push(second)
                })
                .await
                .0
            }
        });
        let seconds = seconds.borrow().clone();
        (recorder, seconds)
    }

    #[test]
    fn a_stalled_server_shows_in_the_open_loop_p99_and_is_not_hidden() {
        let rate = Arrivals::Uniform { per_second: 1000.0 };
        let (steady, _) = simulate(rate, 4, false, None);
        assert_eq!(steady.requests(), 10_000, "every due request is sent");
        // The simulated 0.2 ms service takes one tick of tokio's millisecond timer.
        assert!(
            steady.percentiles().p99_ms <= 1.01,
            "{:?}",
            steady.percentiles()
        );

        let (stalled, seconds) = simulate(rate, 4, true, None);
        assert_eq!(stalled.requests(), 10_000, "none is dropped");
        let figures = stalled.percentiles();
        // A tenth of the requests fell due during the 1 s stall and waited for its end: from
        // their due time, they took up to a second, so the p99 is most of that second.
        assert!(figures.p99_ms > 800.0, "{figures:?}");
        assert!(figures.max_ms >= 999.0, "{figures:?}");
        assert!((10..=11).contains(&seconds.len()), "{}", seconds.len());
        assert_eq!(
            seconds
                .iter()
                .map(|second| second.recorder.requests())
                .sum::<u64>(),
            10_000
        );
        // The live line shows it too: the second the stall ends answers the waiting requests.
        let worst = seconds
            .iter()
            .map(|second| second.recorder.percentiles().p99_ms)
            .fold(0.0, f64::max);
        assert!(worst > 800.0, "{worst}");

        // The closed loop measures from the send, as a plain load tool would: the stall is a
        // handful of slow requests and the p99 hides it. This is why open loop is the default
        // of `capacity`.
        let (closed, _) = simulate(Arrivals::Closed, 4, true, None);
        assert!(
            closed.percentiles().p99_ms <= 1.01,
            "{:?}",
            closed.percentiles()
        );
        assert!(closed.percentiles().max_ms >= 999.0);
    }

    #[test]
    fn a_latency_limit_counts_late_requests_and_skips_hopeless_ones() {
        let rate = Arrivals::Uniform { per_second: 1000.0 };
        let (limited, _) = simulate(rate, 4, true, Some(Duration::from_millis(100)));
        assert!(limited.late > 0, "late {}", limited.late);
        assert!(limited.skipped > 700, "skipped {}", limited.skipped);
        assert_eq!(
            limited.requests() + limited.skipped,
            10_000,
            "every due request is sent or skipped"
        );
        let (steady, _) = simulate(rate, 4, false, Some(Duration::from_millis(100)));
        assert_eq!((steady.late, steady.skipped), (0, 0));
    }

    #[test]
    fn creates_are_acknowledged_and_join_the_key_space() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .expect("a runtime");
        let local = tokio::task::LocalSet::new();
        let (recorder, spaces) = local.block_on(&runtime, async {
            let connector = Arc::new(SimulatedConnector {
                service: Duration::from_millis(1),
                stall: None,
                start: Instant::now(),
            });
            let plan = WorkerPlan {
                index: 0,
                connections: 2,
                arrivals: Arrivals::Closed,
                duration: Duration::from_secs(1),
                latency_limit: None,
                seed: 1,
                salt: 1,
            };
            run_worker(plan, workload("create"), connector, spaces(), |_| {}).await
        });
        assert_eq!(recorder.requests(), 2000);
        assert_eq!(recorder.acknowledged_records, 2000);
        assert_eq!(spaces[0].created.len(), 2000);
    }

    #[test]
    fn connections_and_workers_share_out_evenly() {
        assert_eq!(
            (0..3)
                .map(|worker| share(64, 3, worker))
                .collect::<Vec<_>>(),
            vec![22, 21, 21]
        );
        assert_eq!(share(1, 2, 1), 0);
    }
}
