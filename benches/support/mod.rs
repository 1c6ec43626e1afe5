//! What the in-process benchmarks share: the size knob and an app configuration loaded from
//! a TOML text into a temporary data directory (`#[path = "support/mod.rs"] mod support;`).

use std::path::Path;

use tabula::config::{load_with_env, Config, LoadOptions};
use tabula_storage::Schema;

/// `TABULA_BENCH_RECORDS`, or `default`.
#[allow(dead_code)] // not every bench sizes itself
pub fn bench_records(default: usize) -> usize {
    std::env::var("TABULA_BENCH_RECORDS")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(default)
}

/// The configuration `toml` describes, with its data under `directory/data`, and its schema.
pub fn load_config(directory: &Path, toml: &str) -> (Config, Schema) {
    let config_file = directory.join("bench.toml");
    std::fs::write(&config_file, toml).expect("write the bench config");
    let options = LoadOptions {
        config_path: Some(config_file),
        data_dir: Some(directory.join("data")),
        ..Default::default()
    };
    let config = load_with_env(&options, &|_| None)
        .expect("the bench config loads")
        .config;
    let schema = Schema {
        tables: config.tables.clone(),
    };
    (config, schema)
}
