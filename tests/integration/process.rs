//! The real `tabula` binary over a socket: the demo app with no setup, config errors, restart,
//! graceful shutdown, and a SIGKILL in the middle of acknowledged writes.

use std::io::Read;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value as Json};

pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free port")
}

/// A running `tabula serve`.
pub(crate) struct Server {
    pub(crate) child: Child,
    pub(crate) base: String,
}

impl Server {
    pub(crate) fn start(working_dir: &Path, args: &[&str]) -> Server {
        let port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_tabula"))
            .current_dir(working_dir)
            .arg("serve")
            .args(args)
            .args(["--port", &port.to_string()])
            .env_remove("TABULA_CONFIG")
            .env("TABULA_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the binary starts");
        let server = Server {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        server.wait_healthy();
        server
    }

    pub(crate) fn wait_healthy(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let client = client();
        while Instant::now() < deadline {
            if let Ok(response) = client.get(format!("{}/api/health", self.base)).send() {
                if response.status().as_u16() == 200 {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("the server did not become healthy");
    }

    pub(crate) fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    /// Waits for the process to exit and returns its exit code (None when killed by a signal).
    pub(crate) fn wait_exit(mut self) -> Option<i32> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait works") {
                return status.code();
            }
            assert!(Instant::now() < deadline, "the server did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes the demo config into `directory` with auth and rate limits off, for tests whose
/// subject is durability rather than access control; returns its path.
fn unthrottled_demo_config(directory: &Path) -> std::path::PathBuf {
    let demo = tabula::config::DEMO_CONFIG_TOML
        .replacen("[auth]\n", "[auth]\nenabled = false\n", 1)
        .replacen(
            "\nenabled = true\n# Whether anyone may create",
            "\n# Whether anyone may create",
            1,
        )
        .replace("tables_get = 100", "tables_get = 0")
        .replace("tables_post = 50", "tables_post = 0");
    assert!(demo.contains("tables_post = 0") && demo.contains("enabled = false"));
    let path = directory.join("unthrottled.toml");
    std::fs::write(&path, demo).expect("write the test config");
    path
}

pub(crate) fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("an HTTP client")
}

pub(crate) fn post_json(base: &str, path: &str, body: &Json, token: &str) -> (u16, Json) {
    let response = client()
        .post(format!("{base}{path}"))
        .bearer_auth(token)
        .json(body)
        .send()
        .expect("the request is answered");
    let status = response.status().as_u16();
    (status, response.json().unwrap_or(Json::Null))
}

pub(crate) fn get_json(base: &str, path: &str, token: &str) -> (u16, Json) {
    let response = client()
        .get(format!("{base}{path}"))
        .bearer_auth(token)
        .send()
        .expect("the request is answered");
    let status = response.status().as_u16();
    (status, response.json().unwrap_or(Json::Null))
}

/// Signs up (the demo tables are for signed-in members) and returns the session token.
pub(crate) fn sign_up(base: &str, email: &str) -> String {
    let (status, body) = post_json(
        base,
        "/api/auth/sign-up/email",
        &json!({"email": email, "password": "process-test-password", "name": "Tester"}),
        "",
    );
    assert_eq!(status, 200, "{body}");
    body["token"].as_str().expect("a session token").to_owned()
}

#[test]
fn serves_the_demo_app_with_no_config_and_shuts_down_cleanly() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let server = Server::start(directory.path(), &[]);
    let (status, _) = get_json(&server.base, "/api/tables/tasks/records", "");
    assert_eq!(status, 401, "the demo's tables are for signed-in users");
    let token = sign_up(&server.base, "demo@example.com");
    let (status, tables) = get_json(&server.base, "/api/tables", &token);
    assert_eq!(status, 200);
    let names: Vec<&str> = tables["tables"]
        .as_array()
        .expect("tables")
        .iter()
        .filter_map(|table| table["name"].as_str())
        .collect();
    assert!(
        names.contains(&"tasks") && names.contains(&"contacts"),
        "{names:?}"
    );
    let (status, _) = post_json(
        &server.base,
        "/api/tables/tasks/records",
        &json!({"title": "hello"}),
        &token,
    );
    assert_eq!(status, 201);
    assert!(
        directory.path().join("data").exists(),
        "data goes under ./data"
    );

    server.signal("-TERM");
    assert_eq!(server.wait_exit(), Some(0), "graceful shutdown exits 0");

    let server = Server::start(directory.path(), &[]);
    let (_, list) = get_json(&server.base, "/api/tables/tasks/records", &token);
    assert_eq!(
        list["records"][0]["fields"]["title"],
        json!("hello"),
        "the write survived a restart"
    );
    server.signal("-INT");
    assert_eq!(server.wait_exit(), Some(0));
}

pub(crate) fn run_to_exit(args: &[&str], working_dir: &Path) -> (Option<i32>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tabula"))
        .current_dir(working_dir)
        .args(args)
        .env_remove("TABULA_CONFIG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait works") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the binary should have refused to start");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        let _ = pipe.read_to_string(&mut stderr);
    }
    (status.code(), stderr)
}

#[test]
fn a_named_missing_config_or_an_unknown_key_is_a_clear_error() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let (code, stderr) = run_to_exit(&["serve", "--config", "nope.toml"], directory.path());
    assert_ne!(code, Some(0));
    assert!(stderr.contains("nope.toml"), "{stderr}");

    let file = directory.path().join("bad.toml");
    std::fs::write(&file, "[server]\nprot = 3000\n").expect("write config");
    let (code, stderr) = run_to_exit(&["serve", "--config", "bad.toml"], directory.path());
    assert_ne!(code, Some(0));
    assert!(stderr.contains("server.prot"), "{stderr}");
}

#[test]
fn every_acknowledged_create_survives_a_sigkill() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let config = unthrottled_demo_config(directory.path());
    let config = config.to_str().expect("a UTF-8 path");
    let server = Server::start(directory.path(), &["--config", config]);
    let base = server.base.clone();
    let token = sign_up(&base, "writer@example.com");
    let acknowledged = Arc::new(Mutex::new(Vec::<(String, String)>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..8)
        .map(|writer| {
            let base = base.clone();
            let acknowledged = Arc::clone(&acknowledged);
            let stop = Arc::clone(&stop);
            let token = token.clone();
            std::thread::spawn(move || {
                let client = client();
                let mut sequence = 0;
                while !stop.load(Ordering::Relaxed) {
                    sequence += 1;
                    let title = format!("w{writer}-{sequence}");
                    let response = client
                        .post(format!("{base}/api/tables/tasks/records"))
                        .bearer_auth(&token)
                        .json(&json!({"title": title}))
                        .send();
                    let Ok(response) = response else { break };
                    if response.status().as_u16() != 201 {
                        break;
                    }
                    let Ok(body) = response.json::<Json>() else {
                        break;
                    };
                    if let Some(id) = body["id"].as_str() {
                        acknowledged
                            .lock()
                            .expect("the list lock")
                            .push((id.to_owned(), title));
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    let mut server = server;
    server.child.kill().expect("SIGKILL");
    let _ = server.child.wait();
    stop.store(true, Ordering::Relaxed);
    for writer in writers {
        let _ = writer.join();
    }
    drop(server);
    let acknowledged = acknowledged.lock().expect("the list lock").clone();
    assert!(
        acknowledged.len() > 50,
        "the writers made progress: {}",
        acknowledged.len()
    );

    let config = unthrottled_demo_config(directory.path());
    let config = config.to_str().expect("a UTF-8 path");
    let server = Server::start(directory.path(), &["--config", config]);
    let mut stored = std::collections::HashMap::new();
    let mut after = 0u64;
    loop {
        let (status, page) = get_json(
            &server.base,
            &format!("/api/tables/tasks/records?limit=1000&after={after}&skipTotal=true"),
            &token,
        );
        assert_eq!(status, 200);
        let records = page["records"].as_array().expect("records").clone();
        if records.is_empty() {
            break;
        }
        for record in &records {
            let id = record["id"].as_str().expect("id").to_owned();
            after = id.parse().expect("numeric id");
            stored.insert(
                id,
                record["fields"]["title"].as_str().unwrap_or("").to_owned(),
            );
        }
    }
    for (id, title) in &acknowledged {
        assert_eq!(
            stored.get(id),
            Some(title),
            "acknowledged record {id} is present after SIGKILL"
        );
    }
}

#[test]
fn json_logs_are_one_object_per_line() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let config = directory.path().join("config.toml");
    std::fs::write(&config, "[log]\nformat = \"json\"\nlevel = \"info\"\n").expect("write config");
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_tabula"))
        .current_dir(directory.path())
        .args(["serve", "--port", &port.to_string()])
        .env_remove("TABULA_CONFIG")
        .env_remove("TABULA_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while client().get(format!("{base}/api/health")).send().is_err() {
        assert!(Instant::now() < deadline, "the server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    let output = child.wait_with_output().expect("the server exits");
    assert_eq!(output.status.code(), Some(0));
    let logs = String::from_utf8_lossy(&output.stdout);
    let lines: Vec<&str> = logs
        .lines()
        .filter(|line| !line.trim().is_empty())
        .collect();
    assert!(!lines.is_empty(), "the server logged something");
    for line in lines {
        let entry: Json = serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}"));
        assert!(
            entry["level"].is_string() && entry["timestamp"].is_string(),
            "{line}"
        );
    }
    assert!(logs.contains("listening on"), "{logs}");
}

/// Reads SSE frames from a streaming response until one contains `needle` (or ten seconds pass).
fn read_until(stream: &mut impl Read, seen: &mut String, needle: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buffer = [0u8; 4096];
    while Instant::now() < deadline {
        if seen.contains(needle) {
            return true;
        }
        match stream.read(&mut buffer) {
            Ok(0) => return seen.contains(needle),
            Ok(read) => seen.push_str(&String::from_utf8_lossy(&buffer[..read])),
            Err(_) => return seen.contains(needle),
        }
    }
    seen.contains(needle)
}

#[test]
fn a_realtime_stream_over_a_socket_sees_changes_and_does_not_hold_up_shutdown() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let config = unthrottled_demo_config(directory.path());
    let config = config.to_str().expect("a UTF-8 path");
    let server = Server::start(directory.path(), &["--config", config]);
    let streaming = reqwest::blocking::Client::builder()
        .timeout(None)
        .build()
        .expect("a client");
    let mut stream = streaming
        .get(format!("{}/api/realtime?tables=tasks", server.base))
        .send()
        .expect("the stream opens");
    assert_eq!(stream.status().as_u16(), 200);
    let mut seen = String::new();
    assert!(
        read_until(&mut stream, &mut seen, "event: connected"),
        "{seen}"
    );
    let (status, _) = post_json(
        &server.base,
        "/api/tables/tasks/records",
        &json!({"title": "over the wire"}),
        "unused",
    );
    assert_eq!(status, 201);
    assert!(
        read_until(&mut stream, &mut seen, "over the wire"),
        "{seen}"
    );
    assert!(seen.contains("event: change"), "{seen}");

    let signalled = Instant::now();
    server.signal("-TERM");
    assert_eq!(server.wait_exit(), Some(0), "graceful shutdown exits 0");
    assert!(
        signalled.elapsed() < Duration::from_secs(10),
        "an open stream does not hold the drain up to its timeout"
    );
}

/// Sends `request` as raw bytes and reads the whole answer until the server closes.
fn raw_exchange(base: &str, request: &[u8]) -> String {
    use std::io::Write;
    let address = base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(address).expect("a connection");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("a timeout");
    stream.write_all(request).expect("the request is sent");
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

#[test]
fn requests_refused_at_the_protocol_level_get_the_envelope() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let server = Server::start(directory.path(), &[]);
    let long_target = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(70_000));
    let many_headers = format!(
        "GET /api/health HTTP/1.1\r\nHost: x\r\n{}\r\n",
        (0..100)
            .map(|i| format!("X-Field-{i}: v\r\n"))
            .collect::<String>()
    );
    let cases: [(&str, Vec<u8>, u16, &str); 4] = [
        ("long request target", long_target.into_bytes(), 414, "PAYLOAD_TOO_LARGE"),
        ("too many header fields", many_headers.into_bytes(), 431, "PAYLOAD_TOO_LARGE"),
        (
            "Content-Length with Transfer-Encoding",
            b"POST /api/auth/sign-in/email HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".to_vec(),
            400,
            "VALIDATION_ERROR",
        ),
        ("a malformed request line", b"NOT HTTP AT ALL\r\n\r\n".to_vec(), 400, "VALIDATION_ERROR"),
    ];
    for (label, request, status, code) in cases {
        let answer = raw_exchange(&server.base, &request);
        let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
        assert!(
            head.starts_with(&format!("HTTP/1.1 {status} ")),
            "{label}: {head}"
        );
        assert!(
            head.contains("content-type: application/json"),
            "{label}: {head}"
        );
        assert!(head.contains("x-request-id: "), "{label}: {head}");
        let envelope: Json =
            serde_json::from_str(body).unwrap_or_else(|_| panic!("{label}: a JSON body: {body:?}"));
        assert_eq!(envelope["success"], json!(false), "{label}");
        assert_eq!(envelope["code"], json!(code), "{label}");
    }
    // Requests before a refused one on the same connection are answered first, in order.
    let pipelined = [
        b"GET /api/health HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        b"BROKEN\r\n\r\n".to_vec(),
    ]
    .concat();
    let answer = raw_exchange(&server.base, &pipelined);
    let first = answer.find("HTTP/1.1 200 OK").expect("the health answer");
    let second = answer
        .find("HTTP/1.1 400 Bad Request")
        .expect("the refusal");
    assert!(first < second, "{answer}");
    // And the server keeps serving.
    let (status, _) = get_json(&server.base, "/api/health", "unused");
    assert_eq!(status, 200);
    server.signal("-TERM");
    assert_eq!(server.wait_exit(), Some(0));
}
