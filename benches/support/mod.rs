//! What the in-process benchmarks share: the size knob, the process's memory, and an app
//! configuration loaded from a TOML text into a temporary data directory
//! (`#[path = "support/mod.rs"] mod support;`).

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
#[allow(dead_code)] // not every bench loads a configuration
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

/// `VmRSS` and `VmHWM` (the peak) of this process in MiB.
#[allow(dead_code)] // not every bench reports memory
pub fn memory_mib() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|line| line.starts_with(name))
            .and_then(|line| line.split_whitespace().nth(1))
            .and_then(|kib| kib.parse::<f64>().ok())
            .map_or(0.0, |kib| kib / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}
