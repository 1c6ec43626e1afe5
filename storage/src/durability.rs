//! Group commit: many writers, one `flush()` at a time, every writer released by the first flush
//! that started after its write.
//!
//! A writer applies its batch, then takes a ticket. One flusher thread runs sled's blocking
//! `flush()` for everything written so far and releases every ticket issued before that flush
//! started. Under load many writes share one fsync, so durability does not cap throughput at one
//! fsync per request; alone, a write waits for exactly one flush.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use tokio::sync::oneshot;

use crate::error::{StorageError, StorageResult};

/// The flusher shared by every tree of one sled database.
pub struct GroupCommit {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

struct Shared {
    db: sled::Db,
    state: Mutex<FlushState>,
    work_ready: Condvar,
}

#[derive(Default)]
struct FlushState {
    /// The last ticket handed out.
    issued: u64,
    /// Every ticket up to this one is durable.
    flushed: u64,
    waiters: VecDeque<(u64, oneshot::Sender<Result<(), String>>)>,
    stopping: bool,
    /// Flushes the flusher thread has completed (for tests, benches and metrics).
    flushes: u64,
}

/// A write waiting to become durable. Await [`DurableTicket::wait`].
pub struct DurableTicket {
    receiver: Option<oneshot::Receiver<Result<(), String>>>,
}

impl DurableTicket {
    /// Resolves once a flush covering the write has completed.
    pub async fn wait(self) -> StorageResult<()> {
        let Some(receiver) = self.receiver else {
            return Ok(());
        };
        match receiver.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(message)) => Err(StorageError::Flush(message)),
            Err(_) => Err(StorageError::ShuttingDown),
        }
    }

    /// A ticket that is already durable (nothing was written).
    pub fn ready() -> Self {
        DurableTicket { receiver: None }
    }
}

fn lock(state: &Mutex<FlushState>) -> MutexGuard<'_, FlushState> {
    // A poisoned lock means a flusher panicked mid-update; the counters are still monotonic and
    // consistent (they are only assigned whole), so keep going with the inner value.
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl GroupCommit {
    pub fn start(db: sled::Db) -> StorageResult<Self> {
        let shared = Arc::new(Shared {
            db,
            state: Mutex::new(FlushState::default()),
            work_ready: Condvar::new(),
        });
        let flusher_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("tabula-flusher".into())
            .spawn(move || run_flusher(&flusher_shared))
            .map_err(|error| StorageError::Flush(format!("cannot start flusher: {error}")))?;
        Ok(GroupCommit {
            shared,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Takes a ticket for everything this thread has written so far.
    pub fn ticket(&self) -> DurableTicket {
        let (sender, receiver) = oneshot::channel();
        let mut state = lock(&self.shared.state);
        if state.stopping {
            // No flusher will cover this write: dropping the sender resolves the ticket with
            // `StorageError::ShuttingDown` rather than leaving it to hang.
            drop(sender);
        } else {
            state.issued += 1;
            let ticket = state.issued;
            state.waiters.push_back((ticket, sender));
            self.shared.work_ready.notify_one();
        }
        DurableTicket {
            receiver: Some(receiver),
        }
    }

    /// Flushes everything now, on the calling thread (start-up, shutdown, offline tools).
    pub fn flush_blocking(&self) -> StorageResult<()> {
        self.shared.db.flush()?;
        Ok(())
    }

    /// How many flushes the flusher thread has completed so far. Under concurrent load this stays
    /// far below the number of tickets issued.
    pub fn flush_count(&self) -> u64 {
        lock(&self.shared.state).flushes
    }

    /// Releases every waiter after a final flush and stops the flusher thread.
    pub fn stop(&self) {
        {
            let mut state = lock(&self.shared.state);
            state.stopping = true;
            self.shared.work_ready.notify_all();
        }
        let handle = self
            .thread
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        if let Some(handle) = handle {
            let _ = handle.join();
        }
    }
}

impl Drop for GroupCommit {
    fn drop(&mut self) {
        self.stop();
    }
}

fn run_flusher(shared: &Shared) {
    loop {
        let target = {
            let mut state = lock(&shared.state);
            while state.flushed == state.issued && !state.stopping {
                state = shared
                    .work_ready
                    .wait(state)
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
            }
            if state.flushed == state.issued && state.stopping {
                return;
            }
            state.issued
        };
        // Every ticket <= target was issued after its write was applied, so this flush covers it.
        let outcome = shared.db.flush().map(|_| ()).map_err(|error| {
            tracing::error!(%error, "durable flush failed");
            error.to_string()
        });
        let mut state = lock(&shared.state);
        state.flushed = target;
        state.flushes += 1;
        while state
            .waiters
            .front()
            .is_some_and(|(ticket, _)| *ticket <= target)
        {
            if let Some((_, sender)) = state.waiters.pop_front() {
                let _ = sender.send(outcome.clone());
            }
        }
    }
}
