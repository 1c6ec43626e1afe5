//! The first admin and the secrets of accounts, through the real `tabula` binary (SPEC §1, §8):
//! `tabula admin create` offline, `TABULA_ADMIN_EMAIL`/`TABULA_ADMIN_PASSWORD` at start, the
//! bootstrap token logged at first start, the loud warning of `auth.enabled = false`; and that no
//! password, session token or API key reaches the data files or the log.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{json, Value as Json};

use crate::process::{client, free_port, get_json, post_json, Server};

/// Runs `tabula <args>` to completion in `working_dir`: exit code, stdout, stderr.
fn run(working_dir: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_tabula"))
        .current_dir(working_dir)
        .args(args)
        .env_remove("TABULA_CONFIG")
        .env_remove("TABULA_DATA_DIR")
        .env_remove("TABULA_ADMIN_EMAIL")
        .env_remove("TABULA_ADMIN_PASSWORD")
        .stdin(Stdio::null())
        .output()
        .expect("the binary runs");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Starts `tabula serve <args>` with JSON logs at `info` written to `log`, plus `env`.
fn start_logged(working_dir: &Path, args: &[&str], env: &[(&str, &str)], log: &Path) -> Server {
    let port = free_port();
    let mut command = Command::new(env!("CARGO_BIN_EXE_tabula"));
    command
        .current_dir(working_dir)
        .arg("serve")
        .args(args)
        .args(["--port", &port.to_string()])
        .env_remove("TABULA_CONFIG")
        .env_remove("TABULA_DATA_DIR")
        .env_remove("TABULA_ADMIN_EMAIL")
        .env_remove("TABULA_ADMIN_PASSWORD")
        .env("TABULA_LOG", "info")
        .stdout(File::create(log).expect("a log file"))
        .stderr(Stdio::null());
    for (name, value) in env {
        command.env(name, value);
    }
    let server = Server {
        child: command.spawn().expect("the binary starts"),
        base: format!("http://127.0.0.1:{port}"),
    };
    server.wait_healthy();
    server
}

/// A config file with JSON logs (so a test can read fields of log lines) and the demo tables.
fn json_log_config(directory: &Path) -> PathBuf {
    let text =
        tabula::config::DEMO_CONFIG_TOML.replacen("[log]\n", "[log]\nformat = \"json\"\n", 1);
    let text = text.replacen("\nformat = \"text\"", "\n", 1);
    let path = directory.join("config.toml");
    std::fs::write(&path, text).expect("write the config");
    path
}

fn log_lines(log: &Path) -> Vec<Json> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

fn sign_in(base: &str, email: &str, password: &str) -> (u16, Json) {
    post_json(
        base,
        "/api/auth/sign-in/email",
        &json!({"email": email, "password": password}),
        "",
    )
}

/// Every byte of every file under `directory`.
fn all_bytes_under(directory: &Path) -> Vec<u8> {
    let mut bytes = Vec::new();
    let mut pending = vec![directory.to_path_buf()];
    while let Some(path) = pending.pop() {
        if path.is_dir() {
            for entry in std::fs::read_dir(&path).expect("a readable directory") {
                pending.push(entry.expect("an entry").path());
            }
        } else if let Ok(content) = std::fs::read(&path) {
            bytes.extend_from_slice(&content);
        }
    }
    bytes
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle.as_bytes())
}

#[test]
fn admin_create_works_offline_and_no_secret_reaches_the_disk_or_the_log() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let root = directory.path();
    let password = "offline-admin-pass-5731";
    let (code, stdout, stderr) = run(
        root,
        &[
            "admin",
            "create",
            "--email",
            "Boss@Example.com",
            "--password",
            password,
            "--name",
            "The Boss",
            "--data-dir",
            "data",
        ],
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("boss@example.com"), "{stdout}");

    let (code, _, stderr) = run(
        root,
        &[
            "admin",
            "create",
            "--email",
            "boss@example.com",
            "--password",
            password,
            "--data-dir",
            "data",
        ],
    );
    assert_eq!(code, Some(1));
    assert!(stderr.contains("already exists"), "{stderr}");
    let (code, _, stderr) = run(
        root,
        &[
            "admin",
            "create",
            "--email",
            "second@example.com",
            "--password",
            "short",
            "--data-dir",
            "data",
        ],
    );
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("password: Password must be at least 8 characters"),
        "{stderr}"
    );

    let config = json_log_config(root);
    let config = config.to_str().expect("a UTF-8 path");
    let log = root.join("server.log");
    let server = start_logged(root, &["--config", config, "--data-dir", "data"], &[], &log);
    let (status, body) = sign_in(&server.base, "boss@example.com", password);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user"]["role"], json!("admin"));
    assert_eq!(body["user"]["name"], json!("The Boss"));
    let session = body["token"].as_str().expect("a token").to_owned();
    let (status, users) = get_json(&server.base, "/api/auth/admin/list-users", &session);
    assert_eq!(status, 200, "{users}");
    let (status, key) = post_json(
        &server.base,
        "/api/auth/api-keys",
        &json!({"name": "ci", "scope": "read"}),
        &session,
    );
    assert_eq!(status, 201, "{key}");
    let api_key = key["key"].as_str().expect("a key").to_owned();
    let (status, _) = get_json(&server.base, "/api/tables/tasks/records", &api_key);
    assert_eq!(status, 200);
    // A wrong password in the log would be as bad as the right one.
    let (status, _) = sign_in(&server.base, "boss@example.com", "wrong-password-9274");
    assert_eq!(status, 401);
    server.signal("-TERM");
    assert_eq!(server.wait_exit(), Some(0));

    let lines = log_lines(&log);
    assert!(!lines.is_empty(), "the server logged");
    assert!(
        lines
            .iter()
            .all(|line| line.get("bootstrap_token").is_none()),
        "an admin exists, so no bootstrap token is issued"
    );
    let logged = std::fs::read(&log).expect("the log");
    let stored = all_bytes_under(&root.join("data"));
    assert!(
        contains(&stored, "boss@example.com"),
        "the search below can find what is stored"
    );
    for secret in [
        password,
        "wrong-password-9274",
        session.as_str(),
        api_key.as_str(),
    ] {
        assert!(!contains(&stored, secret), "{secret} is in the data files");
        assert!(!contains(&logged, secret), "{secret} is in the log");
    }
    // The key's shown prefix is stored (it is listed), the rest of it is not.
    assert!(!contains(&stored, &api_key[12..]));
}

#[test]
fn the_bootstrap_token_is_logged_at_first_start_and_claims_the_first_admin_once() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let root = directory.path();
    let config = json_log_config(root);
    let config = config.to_str().expect("a UTF-8 path");
    let log = root.join("first.log");
    let server = start_logged(root, &["--config", config], &[], &log);
    let tokens: Vec<String> = log_lines(&log)
        .iter()
        .filter_map(|line| line["bootstrap_token"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(tokens.len(), 1, "logged once: {tokens:?}");
    let token = &tokens[0];
    let claim = |bearer: &str, email: &str| {
        post_json(
            &server.base,
            "/api/admin/bootstrap/claim",
            &json!({"email": email, "password": "first-admin-pass", "name": "First"}),
            bearer,
        )
    };
    let (status, body) = claim("not-the-token", "first@example.com");
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["code"], json!("UNAUTHORIZED"));
    let (status, body) = claim(token, "first@example.com");
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["user"]["role"], json!("admin"));
    let session = body["token"].as_str().expect("a session").to_owned();
    let (status, _) = get_json(&server.base, "/api/auth/admin/list-users", &session);
    assert_eq!(status, 200, "the claim signs the admin in");
    let (status, body) = claim(token, "second@example.com");
    assert_eq!(status, 404, "an account exists now: {body}");
    assert_eq!(body["code"], json!("NOT_FOUND"));
    server.signal("-TERM");
    assert_eq!(server.wait_exit(), Some(0));
    let logged = std::fs::read(&log).expect("the log");
    assert!(!contains(&logged, "first-admin-pass"));
    assert!(!contains(&logged, &session));

    // Restarted with an account: no new token.
    let log = root.join("second.log");
    let server = start_logged(root, &["--config", config], &[], &log);
    server.signal("-TERM");
    assert_eq!(server.wait_exit(), Some(0));
    assert!(log_lines(&log)
        .iter()
        .all(|line| line.get("bootstrap_token").is_none()));
}

#[test]
fn the_admin_of_the_environment_is_created_at_start_and_a_short_password_stops_it() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let root = directory.path();
    let config = json_log_config(root);
    let config = config.to_str().expect("a UTF-8 path");

    let port = free_port().to_string();
    let refuse = |env: &[(&str, &str)]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_tabula"));
        command
            .current_dir(root)
            .args(["serve", "--config", config, "--port", &port])
            .env_remove("TABULA_ADMIN_EMAIL")
            .env_remove("TABULA_ADMIN_PASSWORD")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (name, value) in env {
            command.env(name, value);
        }
        let output = command.output().expect("the binary runs");
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let (code, stderr) = refuse(&[
        ("TABULA_ADMIN_EMAIL", "env@example.com"),
        ("TABULA_ADMIN_PASSWORD", "short"),
    ]);
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("TABULA_ADMIN_PASSWORD")
            && stderr.contains("Password must be at least 8 characters"),
        "{stderr}"
    );
    let (code, stderr) = refuse(&[("TABULA_ADMIN_EMAIL", "env@example.com")]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("must be set together"), "{stderr}");

    let log = root.join("env.log");
    let env = [
        ("TABULA_ADMIN_EMAIL", "env@example.com"),
        ("TABULA_ADMIN_PASSWORD", "env-admin-pass-1"),
    ];
    let server = start_logged(root, &["--config", config], &env, &log);
    let (status, body) = sign_in(&server.base, "env@example.com", "env-admin-pass-1");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user"]["role"], json!("admin"));
    server.signal("-TERM");
    assert_eq!(server.wait_exit(), Some(0));
    let lines = log_lines(&log);
    assert!(lines
        .iter()
        .all(|line| line.get("bootstrap_token").is_none()));
    assert!(!contains(
        &std::fs::read(&log).expect("the log"),
        "env-admin-pass-1"
    ));

    // A second start with the same variables leaves the account alone.
    let server = start_logged(root, &["--config", config], &env, &root.join("again.log"));
    let (status, _) = sign_in(&server.base, "env@example.com", "env-admin-pass-1");
    assert_eq!(status, 200);
    server.signal("-TERM");
    assert_eq!(server.wait_exit(), Some(0));
}

#[test]
fn auth_off_serves_everyone_and_warns_loudly() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let root = directory.path();
    let text = tabula::config::DEMO_CONFIG_TOML.replacen("\nenabled = true\n", "\n", 1);
    let text = text.replacen("[auth]\n", "[auth]\nenabled = false\n", 1);
    let text = text.replacen("[log]\n", "[log]\nformat = \"json\"\n", 1);
    let text = text.replacen("\nformat = \"text\"", "\n", 1);
    std::fs::write(root.join("open.toml"), text).expect("write the config");
    let log = root.join("open.log");
    let server = start_logged(root, &["--config", "open.toml"], &[], &log);
    let (status, body) = post_json(
        &server.base,
        "/api/tables/tasks/records",
        &json!({"title": "anyone may", "priority": 2}),
        "",
    );
    assert_eq!(status, 201, "{body}");
    let response = client()
        .get(format!("{}/api/tables/tasks/records", server.base))
        .send()
        .expect("answered");
    assert_eq!(response.status().as_u16(), 200);
    server.signal("-TERM");
    assert_eq!(server.wait_exit(), Some(0));
    let warned = log_lines(&log).iter().any(|line| {
        line["level"] == json!("WARN")
            && line["message"]
                .as_str()
                .is_some_and(|message| message.contains("AUTH IS DISABLED"))
    });
    assert!(
        warned,
        "{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
}
