//! Tests of group commit: concurrent writers all become durable while sharing few flushes, a
//! lone write waits for one flush, stopping releases pending tickets and refuses later ones, and
//! acknowledged writes survive the process being killed.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

use tabula_storage::{keys, DurableTicket, StorageError, Store, TableStore, WriteBatch};

use common::*;

/// Long enough for a slow CI disk, short enough that a hang fails the test instead of the job.
const DEADLINE: Duration = Duration::from_secs(60);

fn multi_thread_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_time()
        .build()
        .expect("a multi-thread runtime")
}

fn write_record(table: &TableStore, record_id: u64) {
    let mut batch = WriteBatch::new();
    batch
        .put_record(&sample_record(record_id))
        .expect("a sample record can be encoded");
    batch.put_u64(keys::META_SEQUENCE, record_id);
    table.apply(batch).expect("apply a batch");
}

/// Runs `work` on another thread and fails the test if it does not finish by the deadline.
fn within_deadline<T: Send + 'static>(what: &str, work: impl FnOnce() -> T + Send + 'static) -> T {
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = sender.send(work());
    });
    receiver
        .recv_timeout(DEADLINE)
        .unwrap_or_else(|_| panic!("{what} did not finish within {DEADLINE:?}"))
}

#[test]
fn concurrent_writers_all_become_durable_sharing_flushes() {
    const WRITERS: u64 = 32;
    const WRITES_EACH: u64 = 25;
    let (_directory, store) = temporary_store();
    let flushes_before = store.flush_count();
    let runtime = multi_thread_runtime();
    runtime.block_on(async {
        let mut writers = Vec::new();
        for writer in 0..WRITERS {
            // Several tables share the one group commit of the store.
            let table_id = u32::try_from(writer % 4).expect("small") + 1;
            let table = store.table(table_id).expect("open a table");
            writers.push(tokio::spawn(async move {
                for sequence in 0..WRITES_EACH {
                    write_record(&table, writer * WRITES_EACH + sequence + 1);
                    table.durable().wait().await?;
                }
                Ok::<(), StorageError>(())
            }));
        }
        for writer in writers {
            tokio::time::timeout(DEADLINE, writer)
                .await
                .expect("a writer finishes before the deadline")
                .expect("a writer task does not panic")
                .expect("every ticket resolves Ok");
        }
    });
    let flushes = store.flush_count() - flushes_before;
    let writes = WRITERS * WRITES_EACH;
    println!("{writes} durable writes took {flushes} flushes");
    assert!(flushes >= 1, "durable writes need at least one flush");
    // Typically about one flush per six writes here; a third leaves room for a fast disk.
    assert!(
        flushes * 3 <= writes,
        "{flushes} flushes for {writes} writes: group commit should share flushes"
    );
    for record_id in 1..=writes {
        let table_id = u32::try_from((record_id - 1) / WRITES_EACH % 4).expect("small") + 1;
        let table = store.table(table_id).expect("open a table");
        assert!(
            table.get_record(record_id).expect("read").is_some(),
            "record {record_id} of table {table_id} is missing"
        );
    }
}

#[test]
fn a_lone_write_waits_for_a_flush() {
    let (_directory, store) = temporary_store();
    let table = store.table(1).expect("open a table");
    for record_id in 1..=3 {
        let flushes_before = store.flush_count();
        write_record(&table, record_id);
        wait_durable(table.durable()).expect("durable");
        assert!(
            store.flush_count() > flushes_before,
            "the ticket resolved before any flush covered the write"
        );
    }
}

#[test]
fn a_ready_ticket_resolves_at_once() {
    wait_durable(DurableTicket::ready()).expect("nothing to wait for");
}

#[test]
fn stopping_releases_pending_tickets() {
    let (_directory, store) = temporary_store();
    let table = store.table(1).expect("open a table");
    let mut tickets = Vec::new();
    for record_id in 1..=300 {
        write_record(&table, record_id);
        tickets.push(table.durable());
    }
    let closing_store = store.clone();
    within_deadline("close", move || closing_store.close()).expect("the final flush succeeds");
    let outcomes = within_deadline("the pending tickets", move || {
        let runtime = multi_thread_runtime();
        runtime.block_on(async {
            let mut outcomes = Vec::new();
            for ticket in tickets {
                outcomes.push(ticket.wait().await);
            }
            outcomes
        })
    });
    for (position, outcome) in outcomes.iter().enumerate() {
        assert!(
            outcome.is_ok(),
            "ticket {position} taken before the stop: {outcome:?}"
        );
    }
}

#[test]
fn a_ticket_taken_after_stop_is_refused() {
    let (_directory, store) = temporary_store();
    let table = store.table(1).expect("open a table");
    write_record(&table, 1);
    store.close().expect("close");
    write_record(&table, 2);
    let outcome = wait_durable(table.durable());
    assert!(
        matches!(outcome, Err(StorageError::ShuttingDown)),
        "{outcome:?}"
    );
    // Closing twice is harmless.
    store.close().expect("close again");
}

#[test]
fn closing_under_load_acknowledges_only_what_is_durable() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let acknowledged: Vec<u64> = {
        let store = Store::open(directory.path()).expect("open");
        let runtime = multi_thread_runtime();
        let writers: Vec<_> = (0..8u64)
            .map(|writer| {
                let table = store.table(1).expect("open a table");
                runtime.spawn(async move {
                    let mut acknowledged = Vec::new();
                    for sequence in 0..10_000u64 {
                        let record_id = writer * 10_000 + sequence + 1;
                        write_record(&table, record_id);
                        match table.durable().wait().await {
                            Ok(()) => acknowledged.push(record_id),
                            Err(StorageError::ShuttingDown) => break,
                            Err(other) => panic!("unexpected durability error: {other}"),
                        }
                    }
                    acknowledged
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(200));
        let closing_store = store.clone();
        within_deadline("close under load", move || closing_store.close())
            .expect("the final flush succeeds");
        let acknowledged = runtime.block_on(async {
            let mut acknowledged = Vec::new();
            for writer in writers {
                let ids = tokio::time::timeout(DEADLINE, writer)
                    .await
                    .expect("a writer stops once its ticket is refused")
                    .expect("a writer task does not panic");
                acknowledged.extend(ids);
            }
            acknowledged
        });
        drop(runtime);
        acknowledged
    };
    assert!(
        !acknowledged.is_empty(),
        "some writes were acknowledged before the close"
    );
    let store = Store::open(directory.path()).expect("reopen after the close");
    let table = store.table(1).expect("open the table");
    for record_id in acknowledged {
        assert!(
            table.get_record(record_id).expect("read").is_some(),
            "acknowledged record {record_id} was lost"
        );
    }
}

#[test]
fn dropping_the_store_stops_the_flusher_and_releases_the_directory() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let path = directory.path().to_owned();
    within_deadline("drop", move || {
        let store = Store::open(&path).expect("open");
        let table = store.table(1).expect("open a table");
        write_record(&table, 1);
        wait_durable(table.durable()).expect("durable");
        drop(table);
        drop(store);
    });
    let store = Store::open(directory.path()).expect("reopen once the first store is gone");
    let table = store.table(1).expect("open the table");
    assert!(table.get_record(1).expect("read").is_some());
}

/// Where [`crash_writer_child`] writes; set only in the child process.
const CRASH_DIRECTORY_VARIABLE: &str = "TABULA_STORAGE_CRASH_TEST_DIRECTORY";
const CRASH_RECORDS: u64 = 40;

/// The child half of [`acknowledged_writes_survive_an_abort`]: in a normal run it does nothing.
/// In the child it acknowledges `CRASH_RECORDS` writes and aborts.
#[test]
fn crash_writer_child() {
    let Some(directory) = std::env::var_os(CRASH_DIRECTORY_VARIABLE) else {
        return;
    };
    let store = Store::open(Path::new(&directory)).expect("open in the child");
    let table = store.table(1).expect("open a table");
    for record_id in 1..=CRASH_RECORDS {
        write_record(&table, record_id);
        wait_durable(table.durable()).expect("durable");
    }
    println!("acknowledged {CRASH_RECORDS}");
    // No destructor, no final flush: only what the group commit flushed is on disk. (Writing
    // more first would push the acknowledged records out of sled's buffers anyway and make the
    // test blind to a ticket that resolves without a flush.)
    std::process::abort();
}

#[test]
fn acknowledged_writes_survive_an_abort() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let output = Command::new(std::env::current_exe().expect("the test binary"))
        .args([
            "crash_writer_child",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CRASH_DIRECTORY_VARIABLE, directory.path())
        .output()
        .expect("run the child");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        !output.status.success(),
        "the child was meant to abort: {stdout}"
    );
    assert!(
        stdout.contains(&format!("acknowledged {CRASH_RECORDS}")),
        "the child did not get its acknowledgements: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let store = Store::open(directory.path()).expect("reopen after the crash");
    let table = store.table(1).expect("open the table");
    for record_id in 1..=CRASH_RECORDS {
        assert_eq!(
            table.get_record(record_id).expect("read"),
            Some(sample_record(record_id)),
            "acknowledged record {record_id} was lost in the crash"
        );
    }
}
