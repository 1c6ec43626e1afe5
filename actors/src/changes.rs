//! The change feed (SPEC §11): every committed record change, one event per record, in commit
//! order, for realtime clients and webhooks. Below HTTP: events carry the stored record; what a
//! subscriber may see of it is decided by whoever renders it.
//!
//! A table actor *stages* a commit's events (which gives them their sequence numbers) before it
//! applies the batch, and *publishes* them once the group commit has made the batch durable (or
//! drops them if it never becomes durable). Events are released to subscribers strictly in
//! sequence order: a commit that became durable waits for every earlier staged commit to settle,
//! so a subscriber never sees event n+1 before event n, and `Last-Event-ID: n` replay is exact.
//! The last [`ChangeFeed::capacity`] released events are kept in memory for replay.
//!
//! Sequence numbers continue from the store's id generator at start, so they grow across restarts
//! (every event consumes one journal entry id, which comes from the same generator).

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use tabula_storage::journal::ChangeAction;
use tabula_storage::StoredRecord;
use tokio::sync::broadcast;

/// The default number of events kept for replay (`realtime.replay_log`).
pub const DEFAULT_REPLAY_LOG: usize = 10_000;

/// How many released events a slow subscriber may fall behind before it must catch up from the
/// replay log.
const CHANNEL_CAPACITY: usize = 1024;

/// One committed change to one record.
#[derive(Debug, Clone)]
pub struct ChangeEvent {
    /// Position in the feed; strictly increasing, also across restarts.
    pub sequence: u64,
    pub action: ChangeAction,
    pub table_id: u32,
    /// The table's name when the change was committed.
    pub table_name: String,
    /// The record as the change left it (for `permanent_delete`: as it was before).
    pub record: StoredRecord,
    /// When the change was made (ms).
    pub at: i64,
}

/// A change not yet given a sequence number.
#[derive(Debug, Clone)]
pub struct Change {
    pub action: ChangeAction,
    pub record: StoredRecord,
}

/// The feed shared by every table actor and every subscriber.
pub struct ChangeFeed {
    state: Mutex<FeedState>,
}

struct FeedState {
    /// The last sequence number handed out.
    last_assigned: u64,
    /// Staged commits by their first sequence number: their events and whether they settled
    /// (`Some(true)` durable, `Some(false)` never to be published).
    pending: BTreeMap<u64, (Vec<ChangeEvent>, Option<bool>)>,
    /// The most recent released events, oldest first.
    log: VecDeque<Arc<ChangeEvent>>,
    capacity: usize,
    /// The highest sequence number that left the log (replay after it is incomplete).
    evicted_through: u64,
    /// The highest sequence number released (or dropped).
    released_through: u64,
    /// `None` once the feed is closed (server shutdown): every subscriber's stream ends.
    sender: Option<broadcast::Sender<Arc<ChangeEvent>>>,
}

/// What a subscriber gets: the live receiver and the last event released before it subscribed.
pub struct Subscription {
    pub receiver: broadcast::Receiver<Arc<ChangeEvent>>,
    pub last_sequence: u64,
}

/// Events after a sequence number, from the replay log.
pub struct Replay {
    pub events: Vec<Arc<ChangeEvent>>,
    /// Some events after the requested one are no longer in the log.
    pub incomplete: bool,
}

fn lock(state: &Mutex<FeedState>) -> MutexGuard<'_, FeedState> {
    // Every update of the state is whole (no invariant spans a panic point), so a poisoned
    // lock still guards consistent data.
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl ChangeFeed {
    /// A feed whose sequence numbers continue after `last_sequence`, keeping `capacity` events.
    pub fn new(last_sequence: u64, capacity: usize) -> Arc<ChangeFeed> {
        let (sender, _) = broadcast::channel(CHANNEL_CAPACITY);
        Arc::new(ChangeFeed {
            state: Mutex::new(FeedState {
                last_assigned: last_sequence,
                pending: BTreeMap::new(),
                log: VecDeque::new(),
                capacity,
                evicted_through: last_sequence,
                released_through: last_sequence,
                sender: Some(sender),
            }),
        })
    }

    /// How many events the replay log keeps.
    pub fn capacity(&self) -> usize {
        lock(&self.state).capacity
    }

    /// Changes how many events the replay log keeps (start-up, from `realtime.replay_log`).
    pub fn set_capacity(&self, capacity: usize) {
        let mut state = lock(&self.state);
        state.capacity = capacity;
        state.trim();
    }

    /// Gives a commit's changes their sequence numbers. Publish the result once the commit is
    /// durable; dropping it unpublished discards the events. `None` when there is nothing.
    pub fn stage(
        self: &Arc<Self>,
        table_id: u32,
        table_name: &str,
        at: i64,
        changes: Vec<Change>,
    ) -> Option<StagedChanges> {
        if changes.is_empty() {
            return None;
        }
        let mut state = lock(&self.state);
        let first = state.last_assigned + 1;
        let events: Vec<ChangeEvent> = changes
            .into_iter()
            .map(|change| {
                state.last_assigned += 1;
                ChangeEvent {
                    sequence: state.last_assigned,
                    action: change.action,
                    table_id,
                    table_name: table_name.to_owned(),
                    record: change.record,
                    at,
                }
            })
            .collect();
        state.pending.insert(first, (events, None));
        Some(StagedChanges {
            feed: Arc::clone(self),
            key: first,
            settled: false,
        })
    }

    fn settle(&self, key: u64, durable: bool) {
        let mut state = lock(&self.state);
        if let Some(entry) = state.pending.get_mut(&key) {
            entry.1 = Some(durable);
        }
        while let Some(entry) = state.pending.first_entry() {
            let Some(durable) = entry.get().1 else {
                break;
            };
            let (events, _) = entry.remove();
            for event in events {
                state.released_through = event.sequence;
                if durable {
                    let event = Arc::new(event);
                    state.log.push_back(Arc::clone(&event));
                    // No receiver is not an error: the event stays in the replay log.
                    if let Some(sender) = &state.sender {
                        let _ = sender.send(event);
                    }
                }
            }
            state.trim();
        }
    }

    /// Subscribes to every event released from now on (a closed feed gives a receiver that
    /// is already closed).
    pub fn subscribe(&self) -> Subscription {
        let state = lock(&self.state);
        let receiver = match &state.sender {
            Some(sender) => sender.subscribe(),
            None => broadcast::channel(1).1,
        };
        Subscription {
            receiver,
            last_sequence: state.released_through,
        }
    }

    /// Ends every subscription once it has read what was already released (server shutdown:
    /// realtime streams close, the webhook dispatcher stops). Idempotent.
    pub fn close(&self) {
        lock(&self.state).sender = None;
    }

    /// The released events with a sequence number above `after`, from the replay log.
    pub fn since(&self, after: u64) -> Replay {
        let state = lock(&self.state);
        let events = state
            .log
            .iter()
            .filter(|event| event.sequence > after)
            .cloned()
            .collect();
        Replay {
            events,
            incomplete: after < state.evicted_through,
        }
    }

    /// The last sequence number released.
    pub fn last_sequence(&self) -> u64 {
        lock(&self.state).released_through
    }
}

impl FeedState {
    fn trim(&mut self) {
        while self.log.len() > self.capacity {
            if let Some(event) = self.log.pop_front() {
                self.evicted_through = event.sequence;
            }
        }
    }
}

/// A commit's events, numbered and waiting for the commit to become durable.
pub struct StagedChanges {
    feed: Arc<ChangeFeed>,
    key: u64,
    settled: bool,
}

impl StagedChanges {
    /// The commit is durable: release the events (after every earlier commit's).
    pub fn publish(mut self) {
        self.settled = true;
        self.feed.settle(self.key, true);
    }
}

impl Drop for StagedChanges {
    fn drop(&mut self) {
        if !self.settled {
            self.feed.settle(self.key, false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(id: u64) -> Change {
        Change {
            action: ChangeAction::Create,
            record: StoredRecord {
                id,
                fields: Default::default(),
                created_at: 0,
                updated_at: 0,
                created_by: None,
                updated_by: None,
                deleted_at: None,
                deleted_by: None,
                cascade_parent: None,
                history: Vec::new(),
            },
        }
    }

    #[test]
    fn events_are_released_in_sequence_order_whatever_order_commits_settle_in() {
        let feed = ChangeFeed::new(100, 10);
        let mut subscription = feed.subscribe();
        assert_eq!(subscription.last_sequence, 100);
        let first = feed.stage(1, "a", 0, vec![change(1)]).expect("staged");
        let second = feed
            .stage(1, "a", 0, vec![change(2), change(3)])
            .expect("staged");
        second.publish();
        assert!(
            subscription.receiver.try_recv().is_err(),
            "waits for the first"
        );
        first.publish();
        let sequences: Vec<u64> = (0..3)
            .map(|_| subscription.receiver.try_recv().expect("event").sequence)
            .collect();
        assert_eq!(sequences, vec![101, 102, 103]);
    }

    #[test]
    fn a_dropped_commit_is_never_published_and_does_not_block_later_ones() {
        let feed = ChangeFeed::new(0, 10);
        let mut subscription = feed.subscribe();
        let failed = feed.stage(1, "a", 0, vec![change(1)]).expect("staged");
        let ok = feed.stage(1, "a", 0, vec![change(2)]).expect("staged");
        ok.publish();
        drop(failed);
        let event = subscription.receiver.try_recv().expect("event");
        assert_eq!((event.sequence, event.record.id), (2, 2));
        assert!(subscription.receiver.try_recv().is_err());
        assert_eq!(feed.last_sequence(), 2);
    }

    #[test]
    fn the_replay_log_is_bounded_and_says_when_it_is_incomplete() {
        let feed = ChangeFeed::new(0, 2);
        for id in 1..=3 {
            feed.stage(1, "a", 0, vec![change(id)])
                .expect("staged")
                .publish();
        }
        assert!(feed.since(0).incomplete);
        let full = feed.since(1);
        assert!(!full.incomplete);
        assert_eq!(
            full.events.iter().map(|e| e.sequence).collect::<Vec<_>>(),
            vec![2, 3]
        );
        assert!(feed.since(3).events.is_empty());
    }

    #[test]
    fn closing_ends_every_subscription_after_what_was_released() {
        let feed = ChangeFeed::new(0, 10);
        let mut subscription = feed.subscribe();
        feed.stage(1, "a", 0, vec![change(1)])
            .expect("staged")
            .publish();
        feed.close();
        assert_eq!(subscription.receiver.try_recv().expect("event").sequence, 1);
        assert!(matches!(
            subscription.receiver.try_recv(),
            Err(broadcast::error::TryRecvError::Closed)
        ));
        assert!(matches!(
            feed.subscribe().receiver.try_recv(),
            Err(broadcast::error::TryRecvError::Closed)
        ));
    }
}
