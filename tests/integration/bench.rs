//! `tabula bench` as a user runs it: against the embedded server it starts itself, and against
//! a running Tabula at `--url`; the report's shape, the stored-count check, and the exit code of
//! a failed threshold.

use std::process::{Command, Output};

use serde_json::{json, Value as Json};

use crate::process::{client, Server};

/// Runs `tabula bench` with `args` and its report written to a file; the output and the report.
fn bench(args: &[&str]) -> (Output, Option<Json>) {
    let directory = tempfile::tempdir().expect("a directory");
    let report = directory.path().join("report.json");
    let markdown = directory.path().join("report.md");
    let chart = directory.path().join("chart.svg");
    let output = Command::new(env!("CARGO_BIN_EXE_tabula"))
        .arg("bench")
        .args(args)
        .arg("--report")
        .arg(&report)
        .arg("--markdown")
        .arg(&markdown)
        .arg("--chart")
        .arg(&chart)
        .arg("--quiet")
        .env_remove("TABULA_CONFIG")
        .output()
        .expect("the binary runs");
    let report: Option<Json> = std::fs::read(&report)
        .ok()
        .map(|bytes| serde_json::from_slice(&bytes).expect("the report is JSON"));
    if report.is_some() {
        let markdown = std::fs::read_to_string(&markdown).expect("the Markdown report");
        assert!(markdown.contains("| scenario |"), "{markdown}");
        let chart = std::fs::read_to_string(&chart).expect("the chart");
        assert!(chart.starts_with("<svg") && chart.contains("throughput over time"));
    }
    (output, report)
}

fn scenario<'a>(report: &'a Json, name: &str) -> &'a Json {
    report["scenarios"]
        .as_array()
        .and_then(|scenarios| scenarios.iter().find(|scenario| scenario["name"] == name))
        .unwrap_or_else(|| panic!("scenario {name} in {report}"))
}

#[test]
fn bench_on_the_embedded_server_reports_its_figures_and_checks_the_stored_count() {
    let (output, report) = bench(&[
        "create",
        "read",
        "--duration",
        "2s",
        "--connections",
        "8",
        "--records",
        "500",
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let report = report.expect("a report");
    assert_eq!(report["passed"], true);
    assert_eq!(report["target"]["kind"], "embedded");
    assert_eq!(report["target"]["tables"], json!(["bench"]));
    assert!(report["build"]["version"].is_string());
    assert!(report["machine"]["cores"]
        .as_u64()
        .is_some_and(|cores| cores >= 1));
    assert_eq!(report["settings"]["connections"], 8);
    assert_eq!(report["settings"]["arrivals"], "closed");
    assert!(report["settings"]["records"]
        .as_u64()
        .is_some_and(|records| records >= 500));

    let create = scenario(&report, "create");
    let requests = create["requests"].as_u64().expect("a count");
    assert!(requests > 0, "{create}");
    assert_eq!(create["errors"], json!({}), "{create}");
    for percentile in ["p50Ms", "p90Ms", "p99Ms", "p999Ms", "maxMs"] {
        assert!(
            create["latency"][percentile]
                .as_f64()
                .is_some_and(|ms| ms > 0.0),
            "{create}"
        );
    }
    let p50 = create["latency"]["p50Ms"].as_f64().unwrap_or_default();
    let p99 = create["latency"]["p99Ms"].as_f64().unwrap_or_default();
    assert!(p50 <= p99);
    // Every acknowledged create is stored, and the check says so.
    let stored = &create["stored"];
    assert_eq!(stored["acknowledged"], create["acknowledgedRecords"]);
    assert_eq!(stored["acknowledged"].as_u64(), Some(requests));
    assert_eq!(
        stored["stored"].as_u64(),
        Some(stored["before"].as_u64().unwrap_or_default() + requests)
    );
    assert_eq!(stored["matches"], true);
    assert!(create["server"]["rssBytes"]
        .as_u64()
        .is_some_and(|bytes| bytes > 0));
    assert!(create["server"]["diskBytes"]
        .as_u64()
        .is_some_and(|bytes| bytes > 0));
    assert!(create["server"]["cpuMicrosPerRequest"]
        .as_f64()
        .is_some_and(|micros| micros > 0.0));
    assert!(create["seconds"]
        .as_array()
        .is_some_and(|seconds| seconds.len() >= 2));

    let read = scenario(&report, "read");
    assert!(read["requests"]
        .as_u64()
        .is_some_and(|requests| requests > 0));
    assert_eq!(read["errors"], json!({}), "{read}");
    assert!(
        read["stored"].is_null(),
        "a read-only scenario has no stored check"
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("every acknowledged write is stored"),
        "{stdout}"
    );
}

#[test]
fn a_failed_threshold_makes_the_exit_code_non_zero() {
    let (output, report) = bench(&[
        "read",
        "--duration",
        "1s",
        "--connections",
        "2",
        "--records",
        "100",
        "--threshold",
        "p99<1us",
        "--threshold",
        "errors<1%",
    ]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("a threshold failed"), "{stderr}");
    let report = report.expect("the report is written before the exit");
    assert_eq!(report["passed"], false);
    let results = report["thresholds"].as_array().expect("threshold results");
    assert_eq!(results.len(), 2);
    assert_eq!(results[0]["threshold"], "p99<1us");
    assert_eq!(results[0]["passed"], false);
    assert_eq!(results[1]["threshold"], "errors<1%");
    assert_eq!(results[1]["passed"], true);

    let (output, _) = bench(&["read", "--threshold", "p98<3ms"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("unknown metric 'p98'"), "{stderr}");
    let (output, _) = bench(&["teleport"]);
    assert!(String::from_utf8_lossy(&output.stderr).contains("unknown scenario 'teleport'"));
}

#[test]
fn bench_at_a_url_uses_a_named_table_or_creates_its_own_and_removes_it() {
    let directory = tempfile::tempdir().expect("a directory");
    let data = directory.path().join("data");
    let created = Command::new(env!("CARGO_BIN_EXE_tabula"))
        .args([
            "admin",
            "create",
            "--email",
            "ops@example.com",
            "--password",
            "ops-password-1",
        ])
        .arg("--config")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/config.toml"))
        .arg("--data-dir")
        .arg(&data)
        .current_dir(directory.path())
        .output()
        .expect("admin create runs");
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    // The demo app with auth on and its rate limits off: the bench is one client far over them
    // (on the demo's own limits its requests are counted as 429 errors).
    let demo = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config.toml"))
        .expect("the demo config");
    let unlimited: String = demo
        .lines()
        .map(|line| match line.split_once(" = ") {
            Some((key, _))
                if [
                    "sign_in",
                    "sign_up",
                    "password",
                    "api_keys",
                    "tables_get",
                    "tables_post",
                    "activity_get",
                    "admin_per_second",
                ]
                .contains(&key) =>
            {
                format!("{key} = 0\n")
            }
            _ => format!("{line}\n"),
        })
        .collect();
    let config = directory.path().join("config.toml");
    std::fs::write(&config, unlimited).expect("written");
    let server = Server::start(
        directory.path(),
        &[
            "--config",
            config.to_str().expect("a path"),
            "--data-dir",
            data.to_str().expect("a path"),
        ],
    );
    let http = client();
    let session: Json = http
        .post(format!("{}/api/auth/sign-in/email", server.base))
        .json(&json!({"email": "ops@example.com", "password": "ops-password-1"}))
        .send()
        .expect("signed in")
        .json()
        .expect("JSON");
    let token = session["token"].as_str().expect("a token").to_string();

    // The demo's tasks table, its fields read from the server.
    let (output, report) = bench(&[
        "ycsb-a",
        "--url",
        &server.base,
        "--token",
        &token,
        "--table",
        "tasks",
        "--records",
        "50",
        "--duration",
        "1s",
        "--connections",
        "2",
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report = report.expect("a report");
    assert_eq!(report["target"]["kind"], "url");
    assert_eq!(report["target"]["tables"], json!(["tasks"]));
    let ycsb = scenario(&report, "ycsb-a");
    assert_eq!(ycsb["keys"], "zipfian");
    assert!(ycsb["requests"]
        .as_u64()
        .is_some_and(|requests| requests > 0));
    assert_eq!(ycsb["errors"], json!({}), "{ycsb}");
    let tasks: Json = http
        .get(format!("{}/api/tables", server.base))
        .bearer_auth(&token)
        .send()
        .expect("tables")
        .json()
        .expect("JSON");
    let names: Vec<&str> = tasks["tables"]
        .as_array()
        .expect("tables")
        .iter()
        .filter_map(|table| table["name"].as_str())
        .collect();
    assert!(
        names.iter().all(|name| !name.starts_with("bench")),
        "{names:?}"
    );

    // Its own table, created for the run and deleted after it.
    let (output, report) = bench(&[
        "create",
        "upsert",
        "--url",
        &server.base,
        "--token",
        &token,
        "--duration",
        "1s",
        "--connections",
        "2",
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report = report.expect("a report");
    let table = report["target"]["tables"][0]
        .as_str()
        .expect("a table")
        .to_string();
    assert!(table.starts_with("bench_"), "{table}");
    for name in ["create", "upsert"] {
        let stored = &scenario(&report, name)["stored"];
        assert_eq!(stored["matches"], true, "{name}: {stored}");
    }
    let gone = http
        .get(format!("{}/api/tables/{table}", server.base))
        .bearer_auth(&token)
        .send()
        .expect("answered");
    assert_eq!(gone.status().as_u16(), 404);

    // Without a credential the bench cannot create its table, and says why.
    let (output, _) = bench(&["create", "--url", &server.base, "--duration", "1s"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("creating the bench table"), "{stderr}");
}
