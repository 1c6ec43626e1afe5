//! A rough timing of the query engine's main paths on a large table (ignored by default; run
//! `QUERY_TIMING_RECORDS=100000 cargo test --release -p tabula-actors --test query_timing --
//! --ignored --nocapture`). The benchmarks proper live in `benches/`; this shows the cost curve
//! of each access path without HTTP.

mod query_support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tabula_actors::query::{list, parse_list_query};
use tabula_actors::registry::Registry;
use tabula_actors::table::CreateRecords;
use tabula_storage::Value;

use query_support::{items_schema, pairs, parse_json, table, text, with_registry, LIMITS};

const WORDS: &[&str] = &[
    "alpha", "beta", "gamma", "delta", "omega", "kappa", "sigma", "theta", "lambda", "zeta",
];

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort_unstable();
    samples[samples.len() / 2]
}

#[test]
#[ignore = "a timing run, not a check"]
fn timing_of_the_access_paths() {
    let records: u64 = std::env::var("QUERY_TIMING_RECORDS")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(100_000);
    with_registry(vec![items_schema()], async |registry: Arc<Registry>| {
        let items = table(&registry, "items");
        let started = Instant::now();
        let mut next = 0u64;
        while next < records {
            let batch: Vec<Vec<(String, Value)>> = (next..(next + 1000).min(records))
                .map(|index| {
                    let word = |salt: u64| {
                        WORDS[usize::try_from((index * 7 + salt * 13) % 10).unwrap_or(0)]
                    };
                    vec![
                        (
                            "title".to_string(),
                            text(&format!("{} {} record{index}", word(1), word(2))),
                        ),
                        (
                            "status".to_string(),
                            text(["a", "b", "c"][usize::try_from(index % 3).unwrap_or(0)]),
                        ),
                        (
                            "priority".to_string(),
                            Value::Int(i64::try_from(index % 1000).unwrap_or(0)),
                        ),
                        ("code".to_string(), text(&format!("k{index:08}"))),
                    ]
                })
                .collect();
            next += u64::try_from(batch.len()).unwrap_or(0);
            items
                .addr
                .send(CreateRecords {
                    records: batch,
                    user_id: None,
                })
                .await
                .expect("the actor answers")
                .expect("the batch is created");
        }
        println!("{records} records written in {:?}", started.elapsed());
        let schema = items.shared.schema();
        let middle = (records / 2).to_string();
        let cases: Vec<(&str, Vec<(&str, &str)>)> = vec![
            (
                "equality, 1/3 of the table, total",
                vec![("filter", "status='a'"), ("limit", "20")],
            ),
            (
                "equality, 1/3, skipTotal",
                vec![
                    ("filter", "status='a'"),
                    ("limit", "20"),
                    ("skipTotal", "true"),
                ],
            ),
            (
                "equality, 1/1000, total",
                vec![("filter", "priority=7"), ("limit", "20")],
            ),
            (
                "unique equality",
                vec![("filter", "code='k00000042'"), ("limit", "20")],
            ),
            (
                "range 1%, total",
                vec![
                    ("filter", "priority>=100 AND priority<110"),
                    ("limit", "20"),
                ],
            ),
            (
                "sort on index, skipTotal",
                vec![
                    ("sort", "-priority"),
                    ("limit", "20"),
                    ("skipTotal", "true"),
                ],
            ),
            (
                "sort on index, total",
                vec![("sort", "-priority"), ("limit", "20")],
            ),
            (
                "keyset page, total",
                vec![("after", middle.as_str()), ("limit", "20")],
            ),
            (
                "keyset page, skipTotal",
                vec![
                    ("after", middle.as_str()),
                    ("limit", "20"),
                    ("skipTotal", "true"),
                ],
            ),
            ("first page, no filter", vec![("limit", "20")]),
            (
                "search, rare word",
                vec![("search", "record42"), ("limit", "20")],
            ),
            (
                "search, common word",
                vec![("search", "alpha"), ("limit", "20")],
            ),
            (
                "search, two words",
                vec![("search", "alpha beta"), ("limit", "20")],
            ),
        ];
        // `QUERY_TIMING_ONLY=search` runs only the cases whose label contains it.
        let only = std::env::var("QUERY_TIMING_ONLY").unwrap_or_default();
        let rounds: usize = std::env::var("QUERY_TIMING_ROUNDS")
            .ok()
            .and_then(|text| text.parse().ok())
            .unwrap_or(15);
        for (label, query) in cases {
            if !label.contains(only.as_str()) {
                continue;
            }
            let request =
                parse_list_query(&schema, &pairs(&query), LIMITS, parse_json).expect("parses");
            let mut samples = Vec::new();
            let mut plan = String::new();
            let mut total = None;
            for _ in 0..rounds {
                let started = Instant::now();
                let page = list(&items.shared, &request).expect("lists");
                samples.push(started.elapsed());
                plan = page.plan;
                total = page.total;
            }
            println!(
                "{label:40} {:>12?}  {plan} total={total:?}",
                median(samples)
            );
        }
    });
}
