//! A rough timing of what full-text search adds to writes (ignored by default; run
//! `SEARCH_TIMING_RECORDS=100000 cargo test --release -p tabula-actors --test search_write_timing
//! -- --ignored --nocapture`): batch creates of 1000 records, then single creates sent 500 at a
//! time (they share group commits, so the figure is the table actor's cost per create), on a
//! table with two searched fields of common and unique words, with and without search.

mod query_support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tabula_actors::registry::{Registry, TableHandle};
use tabula_actors::table::{CreateRecord, CreateRecords};
use tabula_storage::{TableSchema, Value};

use query_support::{items_schema, table, text, with_registry};

const WORDS: &[&str] = &[
    "alpha", "beta", "gamma", "delta", "omega", "kappa", "sigma", "theta", "lambda", "zeta",
];

fn fields(index: u64) -> Vec<(String, Value)> {
    let word = |salt: u64| WORDS[usize::try_from((index * 7 + salt * 13) % 10).unwrap_or(0)];
    vec![
        (
            "title".to_string(),
            text(&format!("{} {} record{index}", word(1), word(2))),
        ),
        (
            "notes".to_string(),
            text(&format!(
                "ship the release number {} before friday",
                index % 1000
            )),
        ),
    ]
}

async fn batches(items: &TableHandle, from: u64, to: u64) {
    let mut next = from;
    while next < to {
        let records = (next..(next + 1000).min(to))
            .map(fields)
            .collect::<Vec<_>>();
        next += u64::try_from(records.len()).unwrap_or(0);
        items
            .addr
            .send(CreateRecords {
                records,
                user_id: None,
            })
            .await
            .expect("the actor answers")
            .expect("the batch is created");
    }
}

async fn singles(items: &TableHandle, from: u64, count: u64) -> Duration {
    let started = Instant::now();
    let replies: Vec<_> = (from..from + count)
        .map(|index| {
            items.addr.send(CreateRecord {
                fields: fields(index),
                user_id: None,
            })
        })
        .collect();
    for reply in replies {
        reply
            .await
            .expect("the actor answers")
            .expect("the record is created");
    }
    started.elapsed()
}

fn schema(searched: bool) -> TableSchema {
    let mut schema = items_schema();
    schema.search = Some(if searched {
        vec!["title".into(), "notes".into()]
    } else {
        Vec::new()
    });
    schema
}

#[test]
#[ignore = "a timing run, not a check"]
fn timing_of_writes_with_search() {
    let records: u64 = std::env::var("SEARCH_TIMING_RECORDS")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(100_000);
    for searched in [false, true] {
        with_registry(vec![schema(searched)], async |registry: Arc<Registry>| {
            let items = table(&registry, "items");
            let started = Instant::now();
            batches(&items, 0, records).await;
            let batch_time = started.elapsed();
            let mut rounds = Vec::new();
            for round in 0..6u64 {
                rounds.push(singles(&items, records + round * 500, 500).await);
            }
            rounds.sort_unstable();
            let started = Instant::now();
            batches(&items, records + 3000, records + 13_000).await;
            let late_batches = started.elapsed();
            println!(
                "search={searched:5} {records} records in batches of 1000: {:>8.0} records/s; \
                 single creates (500 in flight, median of 6): {:>8.0}/s; 10 000 more in batches: {:>8.0} records/s",
                records as f64 / batch_time.as_secs_f64(),
                500.0 / rounds[3].as_secs_f64(),
                10_000.0 / late_batches.as_secs_f64(),
            );
        });
    }
}
