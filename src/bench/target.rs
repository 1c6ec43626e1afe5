//! The server a bench loads, and the setup around the load: the embedded server (this binary's
//! `serve` on a throwaway data directory with the bench schema, pinned to the server cores,
//! measured through /proc), or a running Tabula at `--url`; the bench tables (created, or the
//! one `--table` names), their record ids, the initial fill, and the stored count after a run.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{json, Value as Json};

use super::client::Endpoint;
use super::workload::{BenchTable, KeySpace, BATCH_SIZE};

/// The embedded server's admin.
const ADMIN_EMAIL: &str = "bench@example.com";
const ADMIN_PASSWORD: &str = "bench-password-1";
/// The most ids read from an existing table (a key space larger than this is sampled).
pub const MAX_KNOWN_IDS: usize = 1_000_000;

/// The fields of a table the bench creates: a title, an indexed status, a score to update, a
/// unique key for upserts, and a body for full-text search.
pub fn bench_fields() -> Json {
    json!([
        {"name": "title", "type": "single-line-text", "required": true},
        {"name": "status", "type": "single-select", "options": ["todo", "doing", "done"], "default": "todo", "indexed": true},
        {"name": "score", "type": "integer", "min": 0, "max": 1_000_000},
        {"name": "key", "type": "single-line-text", "unique": true},
        {"name": "body", "type": "long-text"}
    ])
}

/// The names of `count` bench tables (`prefix` alone for one).
pub fn bench_table_names(prefix: &str, count: usize) -> Vec<String> {
    if count == 1 {
        vec![prefix.to_string()]
    } else {
        (1..=count)
            .map(|index| format!("{prefix}_{index:04}"))
            .collect()
    }
}

/// The embedded server's config: the bench tables, every rate limit off (one client far over
/// any limit), the loopback trusted as a proxy (page views name their visitor with
/// X-Forwarded-For), warnings only in its log.
fn embedded_config(port: u16, tables: &[String]) -> String {
    let mut config = format!(
        "[server]\nhost = \"127.0.0.1\"\nport = {port}\ntrusted_proxies = [\"127.0.0.1\"]\n\n\
         [log]\nlevel = \"warn\"\n\n[rate_limit]\nsign_in = 0\nsign_up = 0\npassword = 0\n\
         api_keys = 0\ntables_get = 0\ntables_post = 0\nactivity_get = 0\nadmin_per_second = 0\n\
         analytics_collect = 0\n"
    );
    for name in tables {
        config.push_str(&format!(
            "\n[[tables]]\nname = \"{name}\"\nsearch = [\"title\", \"body\"]\n"
        ));
        for field in bench_fields().as_array().into_iter().flatten() {
            config.push_str("  [[tables.fields]]\n");
            if let Some(field) = field.as_object() {
                for (key, value) in field {
                    config.push_str(&format!("  {key} = {value}\n"));
                }
            }
        }
    }
    config
}

/// The server this process started.
pub struct EmbeddedServer {
    child: Child,
    directory: tempfile::TempDir,
    pub endpoint: Endpoint,
    pub cores: Option<Vec<usize>>,
}

impl EmbeddedServer {
    /// Starts `tabula serve` with the bench schema of `tables` on a fresh data directory,
    /// pinned to `cores`, and signs in as its admin.
    pub fn start(tables: &[String], cores: Option<Vec<usize>>) -> Result<EmbeddedServer, String> {
        let directory = tempfile::Builder::new()
            .prefix("tabula-bench-")
            .tempdir()
            .map_err(|error| format!("cannot make a temporary directory: {error}"))?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map_err(|error| format!("cannot find a free port: {error}"))?
            .port();
        let config = directory.path().join("bench.toml");
        std::fs::write(&config, embedded_config(port, tables))
            .map_err(|error| format!("cannot write {}: {error}", config.display()))?;
        let binary =
            std::env::current_exe().map_err(|error| format!("cannot find this binary: {error}"))?;
        let mut command = Command::new(binary);
        command
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .arg("--data-dir")
            .arg(directory.path().join("data"))
            .current_dir(directory.path())
            .env(crate::server::ENV_ADMIN_EMAIL, ADMIN_EMAIL)
            .env(crate::server::ENV_ADMIN_PASSWORD, ADMIN_PASSWORD)
            .env_remove("TABULA_PORT")
            .env_remove("TABULA_HOST")
            .env_remove("TABULA_DATA_DIR")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        let child = command
            .spawn()
            .map_err(|error| format!("cannot start the server: {error}"))?;
        let pinned = cores
            .as_ref()
            .map(|cores| pin_process(child.id(), cores))
            .unwrap_or(false);
        let mut server = EmbeddedServer {
            child,
            directory,
            endpoint: Endpoint::new(&format!("http://127.0.0.1:{port}"), None)?,
            cores: if pinned { cores } else { None },
        };
        let admin = Admin::new(server.endpoint.clone())?;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = server.child.try_wait() {
                return Err(format!("the server exited at start ({status})"));
            }
            if admin
                .get("/api/health")
                .is_ok_and(|(status, _)| status == 200)
            {
                break;
            }
            if Instant::now() > deadline {
                return Err("the server did not answer /api/health within 60 s".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let (status, session) = admin.send(
            reqwest::Method::POST,
            "/api/auth/sign-in/email",
            Some(json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})),
        )?;
        let token = session["token"]
            .as_str()
            .filter(|_| status == 200)
            .ok_or_else(|| format!("the bench admin could not sign in ({status})"))?;
        server.endpoint = server.endpoint.with_credential(token)?;
        Ok(server)
    }

    /// The server's resident memory, CPU time so far and bytes on disk.
    pub fn usage(&self) -> ServerUsage {
        let pid = self.child.id();
        ServerUsage {
            rss_bytes: resident_bytes(pid),
            cpu: cpu_time(pid),
            disk_bytes: directory_bytes(&self.directory.path().join("data")),
        }
    }
}

impl Drop for EmbeddedServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Pins every thread of process `pid` to `cores` (it has only its main thread just after the
/// spawn, and threads inherit the mask; the loop also covers any started already).
fn pin_process(pid: u32, cores: &[usize]) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    let threads: Vec<i32> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|entries| {
            entries
                .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_else(|_| vec![pid]);
    threads
        .into_iter()
        .map(|thread| super::cores::pin(thread, cores))
        .collect::<Vec<bool>>()
        .into_iter()
        .all(|pinned| pinned)
}

/// What the embedded server uses.
#[derive(Debug, Clone, Copy, Default)]
pub struct ServerUsage {
    pub rss_bytes: Option<u64>,
    /// User + system CPU time.
    pub cpu: Option<Duration>,
    pub disk_bytes: Option<u64>,
}

fn resident_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kilobytes: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kilobytes * 1024)
}

fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: fields after it.
    let after_name = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // utime and stime are fields 14 and 15, so 11 and 12 after the name and state.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf reads a system constant and has no other effect.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let per_second = u64::try_from(per_second).ok().filter(|ticks| *ticks > 0)?;
    Some(Duration::from_micros(ticks * 1_000_000 / per_second))
}

fn directory_bytes(path: &Path) -> Option<u64> {
    let mut total = 0;
    let mut pending: Vec<PathBuf> = vec![path.to_path_buf()];
    while let Some(directory) = pending.pop() {
        for entry in std::fs::read_dir(&directory).ok()?.flatten() {
            let metadata = entry.metadata().ok()?;
            if metadata.is_dir() {
                pending.push(entry.path());
            } else {
                total += metadata.len();
            }
        }
    }
    Some(total)
}

/// The setup client: plain requests to the target outside the measured load.
pub struct Admin {
    runtime: tokio::runtime::Runtime,
    client: reqwest::Client,
    endpoint: Endpoint,
}

impl Admin {
    pub fn new(endpoint: Endpoint) -> Result<Admin, String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|error| format!("cannot start the setup runtime: {error}"))?;
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            // No idle connections: between setup calls nothing drives a pooled one, and one the
            // server closed meanwhile would fail the next call.
            .pool_max_idle_per_host(0)
            .build()
            .map_err(|error| format!("cannot start the setup client: {error}"))?;
        Ok(Admin {
            runtime,
            client,
            endpoint,
        })
    }

    fn url(&self, path: &str) -> String {
        format!(
            "http://{}{}{path}",
            self.endpoint.address, self.endpoint.base_path
        )
    }

    pub fn get(&self, path: &str) -> Result<(u16, Json), String> {
        self.send(reqwest::Method::GET, path, None)
    }

    /// One request; a 429 is waited out (its Retry-After, at most 10 times).
    pub fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Json>,
    ) -> Result<(u16, Json), String> {
        self.runtime.block_on(send(
            &self.client,
            &self.endpoint,
            self.url(path),
            method,
            body,
        ))
    }

    /// Table `name` as the bench uses it, and its record count.
    pub fn table(&self, name: &str) -> Result<(BenchTable, u64), String> {
        let (status, description) = self.get(&format!("/api/tables/{name}"))?;
        if status != 200 {
            return Err(format!(
                "GET /api/tables/{name}: {status} {}",
                message(&description)
            ));
        }
        let table = BenchTable::from_description(&description)?;
        Ok((table, self.record_count(name)?))
    }

    /// The live records of table `name` (`recordCount` of `GET /api/tables`).
    pub fn record_count(&self, name: &str) -> Result<u64, String> {
        let (status, tables) = self.get("/api/tables")?;
        if status != 200 {
            return Err(format!("GET /api/tables: {status} {}", message(&tables)));
        }
        tables["tables"]
            .as_array()
            .and_then(|tables| tables.iter().find(|table| table["name"] == name))
            .and_then(|table| table["recordCount"].as_u64())
            .ok_or_else(|| format!("GET /api/tables gives no recordCount for '{name}'"))
    }

    /// Creates the bench tables `names` (an admin credential); a table of that name that
    /// already exists is an error.
    pub fn create_tables(&self, names: &[String]) -> Result<(), String> {
        for name in names {
            let (status, body) = self.send(
                reqwest::Method::POST,
                "/api/admin/tables",
                Some(json!({"name": name, "fields": bench_fields(), "search": ["title", "body"]})),
            )?;
            if status != 201 {
                return Err(format!(
                    "creating the bench table '{name}': {status} {} (an admin's token or an API key of scope all is needed, or name a table with --table)",
                    message(&body)
                ));
            }
        }
        Ok(())
    }

    /// Deletes the bench tables `names` and their data.
    pub fn delete_tables(&self, names: &[String]) -> Result<(), String> {
        for name in names {
            let (status, body) = self.send(
                reqwest::Method::DELETE,
                &format!("/api/admin/tables/{name}?allowDestructive=true"),
                None,
            )?;
            if !(200..300).contains(&status) {
                return Err(format!(
                    "deleting the bench table '{name}': {status} {}",
                    message(&body)
                ));
            }
        }
        Ok(())
    }

    /// Up to [`MAX_KNOWN_IDS`] record ids of table `name`, oldest first.
    pub fn record_ids(&self, name: &str) -> Result<Vec<Box<str>>, String> {
        let mut ids: Vec<Box<str>> = Vec::new();
        loop {
            let after = ids
                .last()
                .map(|id| format!("&after={id}"))
                .unwrap_or_default();
            let (status, page) = self.get(&format!(
                "/api/tables/{name}/records?limit=1000&skipTotal=true&sort=id{after}"
            ))?;
            if status != 200 {
                return Err(format!("listing '{name}': {status} {}", message(&page)));
            }
            let records = page["records"].as_array().cloned().unwrap_or_default();
            let before = ids.len();
            ids.extend(
                records
                    .iter()
                    .filter_map(|record| record_id(record).map(String::into_boxed_str)),
            );
            if records.len() < 1000 || ids.len() == before || ids.len() >= MAX_KNOWN_IDS {
                ids.truncate(MAX_KNOWN_IDS);
                return Ok(ids);
            }
        }
    }

    /// Fills `table` with `count` more records in batches of 1000 (four in flight), calling
    /// `progress` with the records stored so far; the new ids are added to `space`.
    pub fn fill(
        &self,
        table: &BenchTable,
        count: u64,
        salt: u64,
        space: &mut KeySpace,
        progress: &dyn Fn(u64),
    ) -> Result<(), String> {
        use rand::SeedableRng;
        let mut random = rand::rngs::SmallRng::seed_from_u64(salt);
        let batches: Vec<Json> = {
            let mut batches = Vec::new();
            let mut left = count;
            let mut unique = (salt & 0xFFFF) << 48 | 0xFFFF << 32;
            while left > 0 {
                let size = left.min(u64::try_from(BATCH_SIZE).unwrap_or(1000));
                let records: Vec<Json> = (0..size)
                    .map(|_| {
                        unique += 1;
                        table.record(unique, &mut random)
                    })
                    .collect();
                batches.push(json!({"records": records, "returnRecords": true}));
                left -= size;
            }
            batches
        };
        let path = format!("/api/tables/{}/records/batch", table.name);
        let replies: Vec<Result<(u16, Json), String>> = self.runtime.block_on(async {
            let mut stored = 0u64;
            let mut replies = Vec::new();
            let mut sends = futures_util::stream::iter(batches.into_iter().map(|batch| {
                send(
                    &self.client,
                    &self.endpoint,
                    self.url(&path),
                    reqwest::Method::POST,
                    Some(batch),
                )
            }))
            .buffered(4);
            while let Some(reply) = sends.next().await {
                if let Ok((_, body)) = &reply {
                    stored += body["created"].as_u64().unwrap_or(0);
                    progress(stored);
                }
                replies.push(reply);
            }
            replies
        });
        let mut ids: Vec<Box<str>> = space.known.as_ref().clone();
        for reply in replies {
            let (status, body) = reply?;
            if status != 201 {
                return Err(format!(
                    "filling '{}': {status} {}",
                    table.name,
                    message(&body)
                ));
            }
            for record in body["records"].as_array().into_iter().flatten() {
                if let Some(id) = record_id(record) {
                    ids.push(id.into_boxed_str());
                }
            }
        }
        space.known = std::sync::Arc::new(ids);
        Ok(())
    }
}

fn record_id(record: &Json) -> Option<String> {
    match &record["id"] {
        Json::String(id) => Some(id.clone()),
        Json::Number(id) => Some(id.to_string()),
        _ => None,
    }
}

/// An error envelope's message, for setup errors.
fn message(body: &Json) -> String {
    body["error"]["message"]
        .as_str()
        .or(body["message"].as_str())
        .unwrap_or_default()
        .to_string()
}

async fn send(
    client: &reqwest::Client,
    endpoint: &Endpoint,
    url: String,
    method: reqwest::Method,
    body: Option<Json>,
) -> Result<(u16, Json), String> {
    for _ in 0..10 {
        let mut request = client.request(method.clone(), &url);
        if let Some(credential) = endpoint.credential() {
            request = request.bearer_auth(credential);
        }
        if let Some(body) = &body {
            request = request.json(body);
        }
        let reply = request
            .send()
            .await
            .map_err(|error| format!("{method} {url}: {error}"))?;
        let status = reply.status().as_u16();
        if status == 429 {
            let wait = reply
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|value| value.to_str().ok()?.parse::<u64>().ok())
                .unwrap_or(1);
            tokio::time::sleep(Duration::from_secs(wait.clamp(1, 60))).await;
            continue;
        }
        let bytes = reply
            .bytes()
            .await
            .map_err(|error| format!("{method} {url}: {error}"))?;
        return Ok((status, serde_json::from_slice(&bytes).unwrap_or(Json::Null)));
    }
    Err(format!("{method} {url}: still rate limited after 10 tries"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_config_declares_the_bench_tables() {
        let names = bench_table_names("bench", 3);
        assert_eq!(names, ["bench_0001", "bench_0002", "bench_0003"]);
        let directory = tempfile::tempdir().expect("a directory");
        let path = directory.path().join("bench.toml");
        std::fs::write(&path, embedded_config(4000, &names)).expect("written");
        let loaded = crate::config::load(&crate::config::LoadOptions {
            config_path: Some(path),
            ..Default::default()
        })
        .expect("a valid config");
        assert_eq!(loaded.config.tables.len(), 3);
        assert_eq!(loaded.config.server.port, 4000);
        let table = BenchTable::from_description(
            &json!({"name": "bench", "fields": bench_fields(), "search": ["title", "body"]}),
        )
        .expect("a bench table");
        for operation in [
            super::super::scenario::Operation::List,
            super::super::scenario::Operation::Upsert,
            super::super::scenario::Operation::Search,
            super::super::scenario::Operation::Update,
        ] {
            assert_eq!(table.unsupported(operation), None);
        }
    }
}
