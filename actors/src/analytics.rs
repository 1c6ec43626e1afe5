//! The analytics aggregator (SPEC §7): the actor that owns the page-view rollups, its messages,
//! and [`Analytics`], the handle the collect path uses.
//!
//! The collect path does the per-request work on the HTTP worker (validate, hash the visitor,
//! classify the User-Agent, extract referrer and campaign) and appends the event to a bounded
//! batch — never waiting for a disk write; a full batch is reported so the caller can shed load.
//! The batch is one text buffer plus fixed-size entries, so an event costs no allocation of its
//! own (the buffers keep their capacity); the aggregator swaps the whole batch for its empty
//! spare (on a short timer, or sooner when it fills), folds the events into the in-memory
//! rollups ([`rollup`]) and flushes them to the `sys/analytics` tree every `flush_interval_ms`
//! in one batch. Reports flush first, then read the tree
//! ([`report`]), so they see every accepted event.

pub mod client;
pub mod layout;
pub mod report;
pub mod rollup;
pub mod sketch;
pub mod visitor;

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::{
    Actor, ActorContext, Addr, Arbiter, AsyncContext, Context, Handler, Message, ResponseFuture,
    Supervised, Supervisor,
};
use tabula_storage::store::PartedWrites;
use tabula_storage::{StorageError, StorageResult, Store};

use crate::error::{DomainError, DomainResult};
use client::{normalised_path, push_campaign_value, referrer_host, ClientClassifier, PathGlob};
use report::{Report, ReportKind, ReportParams};
use rollup::{ClientRef, FlushSummary, PageView, PageViewRef, RollupSettings, Rollups};
use visitor::{day_of, VisitorHasher, DAY_MS};

pub use report::{Report as AnalyticsReport, ReportKind as AnalyticsReportKind};
pub use rollup::{PageView as CollectedPageView, PageViewRef as CollectedPageViewRef};
pub use visitor::AnalyticsClock;

/// How often the aggregator drains the queue when nobody wakes it sooner.
const DRAIN_INTERVAL: Duration = Duration::from_millis(25);
/// Most events folded in one go before the aggregator looks at its timers and mailbox again.
const DRAIN_BATCH: usize = 20_000;
/// Text capacity (bytes) a drained batch keeps for reuse; a burst's larger buffer is let go.
const SPARE_TEXT_KEEP_BYTES: usize = 4 << 20;
/// How often the aggregator checks whether a new day needs a retention purge.
const PURGE_CHECK_INTERVAL: Duration = Duration::from_secs(600);

/// The `[analytics]` settings the aggregator and the collect path need.
#[derive(Debug, Clone)]
pub struct AnalyticsSettings {
    /// `app.name`: part of the visitor hash.
    pub app_name: String,
    pub retention_days: u32,
    pub excluded_paths: Vec<String>,
    pub respect_dnt: bool,
    pub session_timeout_minutes: u64,
    pub flush_interval_ms: u64,
    pub queue_capacity: usize,
    /// Distinct values per dimension per day before "(other)" ([`rollup::ROWS_PER_DAY_CAP`]).
    pub rows_per_day_cap: usize,
    /// The analytics store's page cache (`analytics.cache_mb`).
    pub cache_bytes: u64,
}

impl Default for AnalyticsSettings {
    fn default() -> Self {
        AnalyticsSettings {
            app_name: "tabula".into(),
            retention_days: 365,
            excluded_paths: Vec::new(),
            respect_dnt: true,
            session_timeout_minutes: 30,
            flush_interval_ms: 1000,
            queue_capacity: 100_000,
            rows_per_day_cap: rollup::ROWS_PER_DAY_CAP,
            cache_bytes: DEFAULT_CACHE_BYTES,
        }
    }
}

/// The `p` field of a collect body as the HTTP layer found it.
#[derive(Debug, Clone, Copy)]
pub enum PathField<'a> {
    Missing,
    NotText,
    Text(&'a str),
}

/// One collect request, already parsed from HTTP.
#[derive(Debug, Clone)]
pub struct CollectInput<'a> {
    pub path: PathField<'a>,
    pub referrer: Option<&'a str>,
    pub utm_source: Option<&'a str>,
    pub utm_medium: Option<&'a str>,
    pub utm_campaign: Option<&'a str>,
    /// The client address (the peer, or `X-Forwarded-For` from a trusted proxy). Hashed, never kept.
    pub client_ip: IpAddr,
    pub user_agent: &'a str,
    /// `DNT: 1` was sent.
    pub do_not_track: bool,
}

/// What became of a collect request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CollectOutcome {
    /// Accepted by the aggregator's queue.
    Counted,
    /// Deliberately not counted (DNT, excluded path).
    Ignored,
    /// The queue is full: shed the request.
    QueueFull,
}

/// Folds whatever is queued now (the collect path's wake-up when the queue fills).
#[derive(Message)]
#[rtype(result = "()")]
pub struct DrainQueue;

/// Drains the queue and writes every change to sled in one batch, closing finished days.
#[derive(Message)]
#[rtype(result = "DomainResult<FlushSummary>")]
pub struct FlushRollups;

/// Computes one report over everything accepted so far.
#[derive(Message)]
#[rtype(result = "DomainResult<Report>")]
pub struct ReadReport {
    pub kind: ReportKind,
    pub params: ReportParams,
}

/// Deletes the rollups older than `retention_days` (also run daily by the aggregator).
#[derive(Message)]
#[rtype(result = "DomainResult<usize>")]
pub struct PurgeExpired;

/// Graceful shutdown: drain, flush, make it durable, then report on `done`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct FlushForShutdown {
    pub done: std::sync::mpsc::Sender<StorageResult<()>>,
}

/// Events accepted and not yet folded: their texts (path, referrer domain, campaign, one after
/// the other) in one buffer, and one fixed-size entry per event.
#[derive(Default)]
struct Batch {
    views: Vec<QueuedView>,
    text: String,
}

/// One event of a [`Batch`]: its texts are `text[start..path_end]`, then the referrer domain
/// up to `referrer_end`, the campaign up to `campaign_end` (an empty referrer or campaign is
/// `None`: neither is ever an empty value); the client is its class id
/// ([`client::ClientClasses`]).
#[derive(Clone, Copy)]
struct QueuedView {
    at_ms: i64,
    visitor: u64,
    start: usize,
    path_end: usize,
    referrer_end: usize,
    campaign_end: usize,
    client: u32,
}

impl Batch {
    fn len(&self) -> usize {
        self.views.len()
    }

    /// Appends one event; `write` appends its path, referrer domain and campaign to the text
    /// buffer, reporting where each ends.
    fn push(
        &mut self,
        at_ms: i64,
        visitor: u64,
        client: u32,
        write: impl FnOnce(&mut String) -> [usize; 3],
    ) {
        let start = self.text.len();
        let [path_end, referrer_end, campaign_end] = write(&mut self.text);
        self.views.push(QueuedView {
            at_ms,
            visitor,
            start,
            path_end,
            referrer_end,
            campaign_end,
            client,
        });
    }

    fn get(&self, index: usize) -> Option<PageViewRef<'_>> {
        let view = self.views.get(index)?;
        let part = |from: usize, to: usize| self.text.get(from..to).unwrap_or("");
        let optional =
            |from: usize, to: usize| Some(part(from, to)).filter(|text| !text.is_empty());
        Some(PageViewRef {
            at_ms: view.at_ms,
            visitor: view.visitor,
            path: part(view.start, view.path_end),
            referrer: optional(view.path_end, view.referrer_end),
            campaign: optional(view.referrer_end, view.campaign_end),
            client: ClientRef::Class(view.client),
        })
    }

    /// Empties the batch, keeping its buffers (unless a burst made them large).
    fn clear(&mut self) {
        self.views.clear();
        self.text.clear();
        if self.text.capacity() > SPARE_TEXT_KEEP_BYTES {
            self.text = String::new();
            self.views = Vec::new();
        }
    }
}

/// What the collect path and the aggregator share.
struct Ingest {
    /// The events accepted since the aggregator last took them (at most `capacity`).
    pending: Mutex<Batch>,
    capacity: usize,
    wake_pending: AtomicBool,
    hasher: VisitorHasher,
    classifier: ClientClassifier,
    excluded: Vec<PathGlob>,
    respect_dnt: bool,
    clock: AnalyticsClock,
}

/// The actor that owns the rollups: the only writer of `sys/analytics` (besides the salt).
pub struct AnalyticsAggregator {
    ingest: Arc<Ingest>,
    /// The batch being folded (taken from `ingest.pending`) and how far folding has got.
    folding: Batch,
    folded: usize,
    store: Store,
    tree: sled::Tree,
    settings: AnalyticsSettings,
    rollups: Rollups,
    last_purge_day: Option<u32>,
    last_flush: Instant,
}

impl AnalyticsAggregator {
    fn rollup_settings(settings: &AnalyticsSettings) -> RollupSettings {
        RollupSettings {
            session_timeout_ms: i64::try_from(settings.session_timeout_minutes)
                .unwrap_or(i64::MAX / 60_000)
                .saturating_mul(60_000),
            rows_per_day_cap: settings.rows_per_day_cap,
        }
    }

    /// Folds what is queued, at most [`DRAIN_BATCH`] events. A storage failure stops the
    /// actor (its supervisor restarts it from what is on disk: the same loss as a crash, at most
    /// one flush interval). Returns whether everything queued has been folded.
    fn drain(&mut self, context: &mut Context<Self>) -> bool {
        self.ingest.wake_pending.store(false, Ordering::Release);
        let mut budget = DRAIN_BATCH;
        loop {
            if self.folded == self.folding.len() {
                self.folding.clear();
                self.folded = 0;
                std::mem::swap(&mut self.folding, &mut *self.ingest.lock());
                if self.folding.len() == 0 {
                    return true;
                }
            }
            while let Some(event) = self.folding.get(self.folded) {
                if budget == 0 {
                    // More is waiting: come back after the other messages and timers.
                    if !self.ingest.wake_pending.swap(true, Ordering::AcqRel) {
                        context.notify(DrainQueue);
                    }
                    return false;
                }
                if let Err(error) = self.rollups.fold(event, self.ingest.classifier.classes()) {
                    // The event that failed is dropped; the rest of the batch waits for the
                    // restarted actor.
                    self.folded += 1;
                    self.fail(&error, context);
                    return true;
                }
                self.folded += 1;
                budget -= 1;
            }
        }
    }

    /// Drains, then flushes if the flush interval has passed. Under sustained load the
    /// mailbox never empties, so the flush deadline is checked here and not only on a timer.
    fn drain_and_flush_when_due(&mut self, context: &mut Context<Self>) {
        self.drain(context);
        if self.last_flush.elapsed() >= self.flush_interval() {
            if let Err(error) = self.flush(context) {
                tracing::warn!(%error, "analytics flush failed");
            }
        }
    }

    fn flush_interval(&self) -> Duration {
        Duration::from_millis(self.settings.flush_interval_ms.max(10))
    }

    fn flush(&mut self, context: &mut Context<Self>) -> DomainResult<FlushSummary> {
        // Everything queued now is folded in, however much it is.
        while !self.drain(context) {}
        self.last_flush = Instant::now();
        let today = day_of(self.ingest.clock.now_ms());
        match self.rollups.flush(today) {
            Ok(summary) => {
                if summary.wrote {
                    // Durable at the next group commit; nobody needs to wait for it here.
                    drop(self.rollups.durable());
                }
                Ok(summary)
            }
            Err(error) => {
                self.fail(&error, context);
                Err(DomainError::Unavailable(
                    "Analytics are temporarily unavailable; retry the request".into(),
                ))
            }
        }
    }

    fn fail(&self, error: &StorageError, context: &mut Context<Self>) {
        tracing::error!(%error, "analytics storage failure; restarting the aggregator");
        context.stop();
    }

    fn purge(&mut self, context: &mut Context<Self>) -> DomainResult<usize> {
        self.flush(context)?;
        let today = day_of(self.ingest.clock.now_ms());
        let first_kept = today.saturating_sub(self.settings.retention_days.saturating_sub(1));
        let removed = self.rollups.purge_before(first_kept)?;
        self.last_purge_day = Some(today);
        if removed > 0 {
            tracing::info!(
                removed,
                first_kept_day = first_kept,
                "analytics retention purge"
            );
        }
        Ok(removed)
    }
}

impl Actor for AnalyticsAggregator {
    type Context = Context<Self>;

    fn started(&mut self, context: &mut Context<Self>) {
        context.run_interval(DRAIN_INTERVAL, |actor, context| {
            actor.drain_and_flush_when_due(context)
        });
        context.run_interval(PURGE_CHECK_INTERVAL, |actor, context| {
            let today = day_of(actor.ingest.clock.now_ms());
            if actor.last_purge_day != Some(today) {
                if let Err(error) = actor.purge(context) {
                    tracing::warn!(%error, "analytics retention purge failed");
                }
            }
        });
    }
}

impl Supervised for AnalyticsAggregator {
    fn restarting(&mut self, _context: &mut Context<Self>) {
        // What was not yet folded of the batch in hand (`folding` from `folded` on) is folded
        // by the restarted actor, as events still queued are.
        let settings = Self::rollup_settings(&self.settings);
        match Rollups::open(self.store.clone(), self.tree.clone(), settings) {
            Ok(rollups) => self.rollups = rollups,
            Err(error) => tracing::error!(%error, "cannot reload the analytics rollups"),
        }
    }
}

impl Handler<DrainQueue> for AnalyticsAggregator {
    type Result = ();

    fn handle(&mut self, _message: DrainQueue, context: &mut Context<Self>) {
        self.drain_and_flush_when_due(context);
    }
}

impl Handler<FlushRollups> for AnalyticsAggregator {
    type Result = DomainResult<FlushSummary>;

    fn handle(&mut self, _message: FlushRollups, context: &mut Context<Self>) -> Self::Result {
        self.flush(context)
    }
}

impl Handler<ReadReport> for AnalyticsAggregator {
    type Result = ResponseFuture<DomainResult<Report>>;

    fn handle(&mut self, message: ReadReport, context: &mut Context<Self>) -> Self::Result {
        let flushed = self.flush(context);
        let tree = self.tree.clone();
        Box::pin(async move {
            flushed?;
            let computed = tokio::task::spawn_blocking(move || {
                report::compute(&tree, message.kind, message.params)
            })
            .await
            .map_err(|error| DomainError::Unavailable(format!("report task failed: {error}")))?;
            Ok(computed?)
        })
    }
}

impl Handler<PurgeExpired> for AnalyticsAggregator {
    type Result = DomainResult<usize>;

    fn handle(&mut self, _message: PurgeExpired, context: &mut Context<Self>) -> Self::Result {
        self.purge(context)
    }
}

impl Handler<FlushForShutdown> for AnalyticsAggregator {
    type Result = ();

    fn handle(&mut self, message: FlushForShutdown, context: &mut Context<Self>) {
        let outcome = match self.flush(context) {
            Ok(_) => self.store.flush_blocking(),
            Err(error) => Err(StorageError::Flush(error.to_string())),
        };
        let _ = message.done.send(outcome);
    }
}

impl Ingest {
    fn lock(&self) -> std::sync::MutexGuard<'_, Batch> {
        // A panic while holding the lock can leave at worst text that no entry points at: the
        // entries and their offsets stay consistent, so the batch is still usable.
        self.pending
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The analytics of one server: the aggregator's address and the collect path's state.
#[derive(Clone)]
pub struct Analytics {
    addr: Addr<AnalyticsAggregator>,
    ingest: Arc<Ingest>,
    arbiter: Arc<Mutex<Option<Arbiter>>>,
}

/// The analytics store's subdirectory of the data directory.
pub const COMPANION: &str = "analytics";
/// The page cache of the analytics store by default (`analytics.cache_mb`).
pub const DEFAULT_CACHE_BYTES: u64 = 8 * 1024 * 1024;

/// Moves the rollups an earlier version kept in the tables' store (its `sys/analytics` tree)
/// into the analytics store, in parts ([`PartedWrites`]), and drops the old tree once
/// the copy is on disk. A crash during the move leaves the old tree whole, and the next start
/// copies it again over the same keys.
fn move_rollups(tables: &Store, analytics: &Store) -> StorageResult<()> {
    let old = tables.system_tree("analytics")?;
    if old.is_empty() {
        return Ok(());
    }
    let new = analytics.system_tree("analytics")?;
    let mut parts = PartedWrites::new(&new);
    let mut moved = 0u64;
    for entry in old.iter() {
        let (key, value) = entry?;
        parts.insert(key, value)?;
        moved += 1;
    }
    parts.finish()?;
    analytics.flush_blocking()?;
    drop(old);
    tables.drop_system_tree("analytics")?;
    tables.flush_blocking()?;
    tracing::info!(
        entries = moved,
        "analytics rollups moved to their own store"
    );
    Ok(())
}

impl Analytics {
    /// Opens the analytics store — a companion of `store` in its `analytics` subdirectory, with
    /// a page cache of its own ([`AnalyticsSettings::cache_bytes`]) — moves rollups an earlier
    /// version kept in `store` into it, and starts the aggregator on its own thread, off the
    /// HTTP workers. Must run inside an actix system.
    pub fn start(
        store: &Store,
        settings: AnalyticsSettings,
        clock: AnalyticsClock,
    ) -> StorageResult<Analytics> {
        let tables = store;
        let store = &tables.companion(COMPANION, settings.cache_bytes)?;
        move_rollups(tables, store)?;
        let tree = store.system_tree("analytics")?;
        let hasher = VisitorHasher::open(store.clone(), tree.clone(), &settings.app_name)?;
        let ingest = Arc::new(Ingest {
            pending: Mutex::new(Batch::default()),
            capacity: settings.queue_capacity.max(1),
            wake_pending: AtomicBool::new(false),
            hasher,
            classifier: ClientClassifier::default(),
            excluded: settings
                .excluded_paths
                .iter()
                .map(|glob| PathGlob::new(glob))
                .collect(),
            respect_dnt: settings.respect_dnt,
            clock,
        });
        let rollups = Rollups::open(
            store.clone(),
            tree.clone(),
            AnalyticsAggregator::rollup_settings(&settings),
        )?;
        let arbiter = Arbiter::new();
        let actor = AnalyticsAggregator {
            ingest: Arc::clone(&ingest),
            folding: Batch::default(),
            folded: 0,
            store: store.clone(),
            tree,
            settings,
            rollups,
            last_purge_day: None,
            last_flush: Instant::now(),
        };
        let addr = Supervisor::start_in_arbiter(&arbiter.handle(), move |_| actor);
        Ok(Analytics {
            addr,
            ingest,
            arbiter: Arc::new(Mutex::new(Some(arbiter))),
        })
    }

    /// The aggregator, for reports, flushes and purges.
    pub fn addr(&self) -> &Addr<AnalyticsAggregator> {
        &self.addr
    }

    /// The analytics clock.
    pub fn clock(&self) -> &AnalyticsClock {
        &self.ingest.clock
    }

    /// Events waiting in the queue (accepted, not yet taken by the aggregator).
    pub fn queued(&self) -> usize {
        self.ingest.lock().len()
    }

    /// The salt day in use (tests).
    pub fn salt_day(&self) -> Option<u32> {
        self.ingest.hasher.salt_day()
    }

    /// The per-request work of `POST /api/analytics/collect`: validates, derives the event and
    /// hands it to the aggregator's queue without waiting.
    pub fn collect(&self, input: &CollectInput<'_>) -> DomainResult<CollectOutcome> {
        let raw_path = match input.path {
            PathField::Text(text) if !text.trim().is_empty() => text,
            _ => {
                return Err(DomainError::bad_request(
                    "p",
                    "'p' (the page path) is required and must be a non-empty string",
                ))
            }
        };
        if input.do_not_track && self.ingest.respect_dnt {
            return Ok(CollectOutcome::Ignored);
        }
        let path = normalised_path(raw_path).unwrap_or("/");
        if self.ingest.excluded.iter().any(|glob| glob.matches(path)) {
            return Ok(CollectOutcome::Ignored);
        }
        let now = self.ingest.clock.now_ms();
        let visitor = self
            .ingest
            .hasher
            .visitor_id(day_of(now), input.client_ip, input.user_agent);
        let client = self.ingest.classifier.classify(input.user_agent);
        let referrer = input.referrer.and_then(referrer_host);
        Ok(self.push(now, visitor, client, |text| {
            text.push_str(path);
            let path_end = text.len();
            if let Some(host) = referrer {
                let from = text.len();
                text.push_str(host);
                text[from..].make_ascii_lowercase();
            }
            let referrer_end = text.len();
            push_campaign_value(text, input.utm_source, input.utm_medium, input.utm_campaign);
            [path_end, referrer_end, text.len()]
        }))
    }

    /// Hands a prepared event to the aggregator (benches and tests that replay events with
    /// their own timestamps).
    pub fn enqueue(&self, event: PageView) -> CollectOutcome {
        let view = event.view();
        let client = self.ingest.classifier.classes().id_of(&event.client);
        self.push(view.at_ms, view.visitor, client, |text| {
            text.push_str(view.path);
            let path_end = text.len();
            text.push_str(view.referrer.unwrap_or(""));
            let referrer_end = text.len();
            text.push_str(view.campaign.unwrap_or(""));
            [path_end, referrer_end, text.len()]
        })
    }

    /// Appends one event to the pending batch (or reports it full) and wakes the aggregator
    /// when the batch passes an eighth of its capacity.
    fn push(
        &self,
        at_ms: i64,
        visitor: u64,
        client: u32,
        write: impl FnOnce(&mut String) -> [usize; 3],
    ) -> CollectOutcome {
        let queued = {
            let mut pending = self.ingest.lock();
            if pending.len() >= self.ingest.capacity {
                return CollectOutcome::QueueFull;
            }
            pending.push(at_ms, visitor, client, write);
            pending.len()
        };
        let wake_at = (self.ingest.capacity / 8).max(1);
        if queued >= wake_at && !self.ingest.wake_pending.swap(true, Ordering::AcqRel) {
            self.addr.do_send(DrainQueue);
        }
        CollectOutcome::Counted
    }

    /// Graceful shutdown: every accepted event is flushed and fsynced, then the aggregator's
    /// thread stops. Call once the HTTP server has drained; blocks up to 30 s. Idempotent.
    pub fn shutdown(&self) {
        let arbiter = self
            .arbiter
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        let Some(arbiter) = arbiter else {
            return;
        };
        let (done, outcome) = std::sync::mpsc::channel();
        self.addr.do_send(FlushForShutdown { done });
        match outcome.recv_timeout(Duration::from_secs(30)) {
            Ok(Ok(())) => tracing::info!("analytics flushed"),
            Ok(Err(error)) => tracing::error!(%error, "final analytics flush failed"),
            Err(_) => tracing::error!("the analytics aggregator did not flush in time"),
        }
        arbiter.stop();
        if arbiter.join().is_err() {
            tracing::error!("the analytics aggregator thread panicked while stopping");
        }
    }
}

/// Milliseconds in a day, re-exported for callers that build timestamps.
pub const DAY_MILLIS: i64 = DAY_MS;
