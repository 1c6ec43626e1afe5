//! The configuration (SPEC §14): one [`Config`] struct documented field by field, and how it is
//! resolved — the file (or the built-in demo app) < `TABULA_*` environment < command line — then
//! checked: unknown keys are rejected with their full path, values and the schema are validated.

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tabula_actors::schema_rules::{normalize_schema, SchemaIssue};
use tabula_storage::{Schema, TableSchema};

use crate::webhooks::targets::{literal_target, LiteralTarget};

/// The built-in demo app: the checked-in `config.toml` itself, so the two can never differ.
pub const DEMO_CONFIG_TOML: &str = include_str!("../config.toml");

/// The file read from the working directory when no config file is named.
pub const DEFAULT_CONFIG_FILE: &str = "config.toml";

/// Names a config file to read (overridden by `--config`).
pub const ENV_CONFIG: &str = "TABULA_CONFIG";
/// Overrides `server.host` (overridden by `--host`).
pub const ENV_HOST: &str = "TABULA_HOST";
/// Overrides `server.port` (overridden by `--port`).
pub const ENV_PORT: &str = "TABULA_PORT";
/// Overrides `server.data_dir` (overridden by `--data-dir`).
pub const ENV_DATA_DIR: &str = "TABULA_DATA_DIR";
/// Overrides `log.level`.
pub const ENV_LOG: &str = "TABULA_LOG";
/// Overrides `schema.edit_api`: `true`/`false`/`1`/`0`.
pub const ENV_SCHEMA_EDIT_API: &str = "SCHEMA_EDIT_API_ENABLED";

// ---------------------------------------------------------------------------------------------
// The configuration

/// The whole configuration: the server sections (snake_case keys) and the schema's tables
/// (camelCase keys, SPEC §3). Every key is optional; `Config::default()` is SPEC §14's defaults
/// with no tables.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// `[app]`: the application itself.
    pub app: AppSettings,
    /// `[server]`: where and how HTTP is served.
    pub server: ServerSettings,
    /// `[log]`: structured logging.
    pub log: LogSettings,
    /// `[auth]`: accounts and sessions (SPEC §8).
    pub auth: AuthSettings,
    /// `[rate_limit]`: per-client request budgets.
    pub rate_limit: RateLimitSettings,
    /// `[limits]`: paging and batch sizes, query time budgets.
    pub limits: LimitSettings,
    /// `[analytics]`: the cookie-free analytics collector (SPEC §7).
    pub analytics: AnalyticsSettings,
    /// `[activity]`: the activity (audit) log (SPEC §6).
    pub activity: ActivitySettings,
    /// `[schema]`: live schema management (SPEC §9).
    pub schema: SchemaSettings,
    /// `[realtime]`: change events for realtime clients (SPEC §11).
    pub realtime: RealtimeSettings,
    /// `[webhooks]`: where webhook deliveries may go (SPEC §11, docs/realtime.md).
    pub webhooks: WebhookSettings,
    /// `[[tables]]`: the schema. After loading, every table and field has its id assigned.
    pub tables: Vec<TableSchema>,
}

/// `[app]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AppSettings {
    /// The application's name, shown in logs and the OpenAPI document. Default `"tabula"`.
    pub name: String,
}

impl Default for AppSettings {
    fn default() -> Self {
        AppSettings {
            name: "tabula".to_owned(),
        }
    }
}

/// `[server]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSettings {
    /// The address to listen on. Default `"127.0.0.1"`; env `TABULA_HOST`, flag `--host`.
    pub host: String,
    /// The TCP port; 0 asks the system for any free port. Default 3000; env `TABULA_PORT`,
    /// flag `--port`.
    pub port: u16,
    /// The directory of the sled store, relative to the working directory. Default `"./data"`;
    /// env `TABULA_DATA_DIR`, flag `--data-dir`.
    pub data_dir: PathBuf,
    /// Reverse proxies whose `X-Forwarded-For` header is believed. Default none.
    pub trusted_proxies: Vec<IpAddr>,
    /// The largest request body accepted; larger ones get 413. Default 26 214 400 (25 MiB).
    pub max_body_bytes: u64,
    /// The storage engine's page cache in MiB (sled's `cache_capacity`). Default 64; at least 1.
    pub cache_mb: u64,
    /// Run the server's threads under Linux's `SCHED_BATCH` policy (src/scheduling.rs).
    /// Default true; ignored elsewhere than Linux.
    pub batch_scheduling: bool,
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            host: "127.0.0.1".to_owned(),
            port: 3000,
            data_dir: PathBuf::from("./data"),
            trusted_proxies: Vec::new(),
            max_body_bytes: 26_214_400,
            cache_mb: 64,
            batch_scheduling: true,
        }
    }
}

/// `[log]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSettings {
    /// A tracing env-filter directive: a level (`"info"`) or per-target levels
    /// (`"info,tabula=debug"`). Default `"info"`; env `TABULA_LOG`.
    pub level: String,
    /// `"text"` for humans or `"json"` for one JSON object per line. Default `"text"`.
    pub format: String,
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings {
            level: "info".to_owned(),
            format: LOG_FORMAT_TEXT.to_owned(),
        }
    }
}

/// The `log.format` for human-readable lines.
pub const LOG_FORMAT_TEXT: &str = "text";
/// The `log.format` for one JSON object per line.
pub const LOG_FORMAT_JSON: &str = "json";

/// `[auth]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSettings {
    /// `false` serves every table as if all its permissions were `"all"` (for prototyping; a
    /// loud warning is logged). Default `true`.
    pub enabled: bool,
    /// Whether anyone may sign up. Default `true`.
    pub allow_sign_up: bool,
    /// The role of accounts that sign up. Default `"member"`.
    pub default_role: String,
    /// Marks the session cookie `Secure`. Default `false`.
    pub secure_cookies: bool,
    /// How long a session lasts, in hours. Default 168 (7 days).
    pub session_ttl_hours: u64,
    /// The most API keys one account may hold. Default 100.
    pub max_api_keys: u32,
}

impl Default for AuthSettings {
    fn default() -> Self {
        AuthSettings {
            enabled: true,
            allow_sign_up: true,
            default_role: "member".to_owned(),
            secure_cookies: false,
            session_ttl_hours: 168,
            max_api_keys: 100,
        }
    }
}

/// `[rate_limit]`: requests per client IP per window of `window_seconds`; 0 disables a limit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitSettings {
    /// The length of a window, in seconds. Default 60.
    pub window_seconds: u64,
    /// Sign-in attempts per window. Default 20.
    pub sign_in: u32,
    /// Sign-ups per window. Default 20.
    pub sign_up: u32,
    /// Password changes and resets per window, per account. Default 10.
    pub password: u32,
    /// API keys created per window, per account. Default 10.
    pub api_keys: u32,
    /// GET requests under `/api/tables` per window. Default 100.
    pub tables_get: u32,
    /// Writes (POST, PATCH, PUT, DELETE) under `/api/tables` per window. Default 50.
    pub tables_post: u32,
    /// GET requests to the activity log per window. Default 60.
    pub activity_get: u32,
    /// Requests to `/api/admin/*` per second (not per window). Default 10.
    pub admin_per_second: u32,
    /// Analytics collection events per window. Default 0 (unlimited).
    pub analytics_collect: u32,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        RateLimitSettings {
            window_seconds: 60,
            sign_in: 20,
            sign_up: 20,
            password: 10,
            api_keys: 10,
            tables_get: 100,
            tables_post: 50,
            activity_get: 60,
            admin_per_second: 10,
            analytics_collect: 0,
        }
    }
}

/// `[limits]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitSettings {
    /// Records per page when a list request does not say. Default 10.
    pub default_page_size: u64,
    /// The most records one page may hold; at least `default_page_size`. Default 1000.
    pub max_page_size: u64,
    /// The most operations in one batch or upsert request. Default 1000.
    pub max_batch: u64,
    /// How long one list query (records, views, trash, the dialects, one page of an export)
    /// may read, in milliseconds, before it stops with a 400 naming `query`. At least 1.
    /// Default 5000.
    pub query_timeout_ms: u64,
    /// How long one `POST /api/query` may read, in milliseconds, before it stops with a 400
    /// naming `sql`. At least 1. Default 30000.
    pub sql_timeout_ms: u64,
    /// The most writes one table holds at once — waiting in its actor's mailbox, staged, or
    /// waiting to be durable; a write past it answers 503 with `Retry-After` and writes nothing.
    /// Default 1024 (more than one write per connection at 1024 connections); at least 1.
    pub table_write_queue: usize,
}

impl Default for LimitSettings {
    fn default() -> Self {
        LimitSettings {
            default_page_size: 10,
            max_page_size: 1000,
            max_batch: 1000,
            query_timeout_ms: 5000,
            sql_timeout_ms: 30_000,
            table_write_queue: 1024,
        }
    }
}

/// `[analytics]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AnalyticsSettings {
    /// Whether the collector and the analytics API are on. Default `true`.
    pub enabled: bool,
    /// Days of analytics kept. Default 365.
    pub retention_days: u32,
    /// Page paths never recorded, as globs (`"/admin/*"`). Default none.
    pub excluded_paths: Vec<String>,
    /// Whether `DNT: 1` / `Sec-GPC: 1` means "do not record". Default `true`.
    pub respect_dnt: bool,
    /// Minutes of inactivity that end a visitor's session. Default 30.
    pub session_timeout_minutes: u32,
    /// How often collected events are written to the store, in milliseconds. Default 1000.
    pub flush_interval_ms: u64,
    /// Events buffered before collection sheds load. Default 100 000.
    pub queue_capacity: usize,
    /// The page cache of the analytics store (its own, in `data_dir/analytics`), in MiB.
    /// Default 16; at least 1.
    pub cache_mb: u64,
}

impl Default for AnalyticsSettings {
    fn default() -> Self {
        AnalyticsSettings {
            enabled: true,
            retention_days: 365,
            excluded_paths: Vec::new(),
            respect_dnt: true,
            session_timeout_minutes: 30,
            flush_interval_ms: 1000,
            queue_capacity: 100_000,
            cache_mb: tabula_actors::analytics::DEFAULT_CACHE_BYTES >> 20,
        }
    }
}

/// `[activity]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ActivitySettings {
    /// Days of activity log kept. Default 365.
    pub retention_days: u32,
}

impl Default for ActivitySettings {
    fn default() -> Self {
        ActivitySettings {
            retention_days: 365,
        }
    }
}

/// `[schema]`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SchemaSettings {
    /// Enables the schema edit API (`/api/admin/schema/*`; 404 when off). Default `false`;
    /// env `SCHEMA_EDIT_API_ENABLED`.
    pub edit_api: bool,
}

/// `[realtime]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RealtimeSettings {
    /// Recent change events kept for clients that reconnect and replay. Default 10 000.
    pub replay_log: usize,
}

impl Default for RealtimeSettings {
    fn default() -> Self {
        RealtimeSettings { replay_log: 10_000 }
    }
}

/// `[webhooks]`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookSettings {
    /// Lets deliveries reach loopback, private, link-local and other non-public addresses
    /// (`crate::webhooks::targets`). Default `false`: such a target is refused when it is
    /// resolved at delivery time, and a hook whose URL is such an address literally is a
    /// start-up error.
    pub allow_private_targets: bool,
}

// ---------------------------------------------------------------------------------------------
// Loading

/// The command line's say in the configuration (each `None` leaves the file/env value).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// `--config PATH`: the file to read; it must exist.
    pub config_path: Option<PathBuf>,
    /// `--data-dir DIR`.
    pub data_dir: Option<PathBuf>,
    /// `--port N`.
    pub port: Option<u16>,
    /// `--host HOST`.
    pub host: Option<String>,
}

/// Where the configuration came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSource {
    /// A file: named by `--config` or `TABULA_CONFIG`, or `./config.toml`.
    File(PathBuf),
    /// No file was named and `./config.toml` does not exist: the built-in demo app.
    BuiltInDemo,
}

impl fmt::Display for ConfigSource {
    fn fmt(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        match self {
            ConfigSource::File(path) => write!(formatter, "config file {}", path.display()),
            ConfigSource::BuiltInDemo => formatter.write_str("the built-in demo config"),
        }
    }
}

/// A loaded, checked configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedConfig {
    /// The configuration with env and command line applied and table/field ids assigned.
    pub config: Config,
    /// Where it came from.
    pub source: ConfigSource,
    /// The raw text of the file (or of the built-in demo), for schema drift checksums.
    pub file_schema_text: String,
}

/// One invalid setting: the key (as written in the file, e.g. `limits.max_page_size`, with the
/// env var or flag that set it when one did) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingProblem {
    pub key: String,
    pub message: String,
}

/// Why the configuration could not be loaded. Display is a message for the person starting the
/// server.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A file named by `--config` or `TABULA_CONFIG` does not exist.
    #[error("config file {} (named by {named_by}) does not exist", path.display())]
    MissingFile { path: PathBuf, named_by: String },
    /// The file exists but cannot be read.
    #[error("cannot read config file {}: {cause}", path.display())]
    Unreadable {
        path: PathBuf,
        cause: std::io::Error,
    },
    /// The TOML is malformed, has an unknown key or a value of the wrong type. `key` is the full
    /// path (`server.prot`, `tables[0].fields[1].colour`), empty for a syntax error.
    #[error("{}", describe_parse_error(source_name, key, message))]
    Parse {
        source_name: String,
        key: String,
        message: String,
    },
    /// An environment variable holds a value its setting cannot take.
    #[error("environment variable {variable}={value:?}: {message}")]
    Environment {
        variable: String,
        value: String,
        message: String,
    },
    /// Settings that parse but make no sense (every one of them).
    #[error("{}", describe_problems(source_name, "invalid setting", problems.iter().map(|problem| (problem.key.clone(), &problem.message))))]
    InvalidSettings {
        source_name: String,
        problems: Vec<SettingProblem>,
    },
    /// Schema rule violations (every one of them, SPEC §3).
    #[error("{}", describe_problems(source_name, "schema problem", issues.iter().map(|issue| (toml_key_path(&issue.path), &issue.message))))]
    InvalidSchema {
        source_name: String,
        issues: Vec<SchemaIssue>,
    },
}

fn describe_parse_error(source_name: &str, key: &str, message: &str) -> String {
    let message = message.trim_end();
    if key.is_empty() {
        format!("cannot parse {source_name}:\n{message}")
    } else {
        format!("cannot load {source_name}: at key `{key}`:\n{message}")
    }
}

fn describe_problems<'a>(
    source_name: &str,
    noun: &str,
    problems: impl Iterator<Item = (String, &'a String)>,
) -> String {
    let lines: Vec<String> = problems
        .map(|(key, message)| format!("  - {key}: {message}"))
        .collect();
    let plural = if lines.len() == 1 { "" } else { "s" };
    format!(
        "{source_name} has {} {noun}{plural}:\n{}",
        lines.len(),
        lines.join("\n")
    )
}

/// A schema issue's JSON pointer as the TOML key path a config author writes:
/// `/tables/0/fields/2/type` → `tables[0].fields[2].type`.
pub fn toml_key_path(pointer: &str) -> String {
    let mut key_path = String::new();
    for segment in pointer.split('/').filter(|segment| !segment.is_empty()) {
        if segment.bytes().all(|byte| byte.is_ascii_digit()) {
            key_path.push('[');
            key_path.push_str(segment);
            key_path.push(']');
        } else {
            if !key_path.is_empty() {
                key_path.push('.');
            }
            key_path.push_str(segment);
        }
    }
    key_path
}

/// Loads the configuration with the process's environment variables.
pub fn load(options: &LoadOptions) -> Result<LoadedConfig, ConfigError> {
    load_with_env(options, &|name| std::env::var(name).ok())
}

/// Loads the configuration with `env` standing in for the environment (tests pass a closure).
/// An empty (or blank) variable counts as unset.
pub fn load_with_env(
    options: &LoadOptions,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<LoadedConfig, ConfigError> {
    load_with_implicit_file(options, env, Path::new(DEFAULT_CONFIG_FILE))
}

/// [`load_with_env`], with `implicit_file` as the file read when none is named.
fn load_with_implicit_file(
    options: &LoadOptions,
    env: &dyn Fn(&str) -> Option<String>,
    implicit_file: &Path,
) -> Result<LoadedConfig, ConfigError> {
    let env = |name: &str| env(name).filter(|value| !value.trim().is_empty());
    let (source, text) = read_source(options, &env, implicit_file)?;
    let source_name = source.to_string();
    let mut config = parse_config(&text, &source_name)?;
    let mut overrides = Overrides::default();
    apply_environment(&mut config, &env, &mut overrides)?;
    apply_command_line(&mut config, options, &mut overrides);
    let problems = check_settings(&config, &overrides);
    if !problems.is_empty() {
        return Err(ConfigError::InvalidSettings {
            source_name,
            problems,
        });
    }
    let mut schema = Schema {
        tables: std::mem::take(&mut config.tables),
    };
    normalize_schema(&mut schema).map_err(|issues| ConfigError::InvalidSchema {
        source_name: source_name.clone(),
        issues,
    })?;
    config.tables = schema.tables;
    Ok(LoadedConfig {
        config,
        source,
        file_schema_text: text,
    })
}

/// Finds the config text: the named file (which must exist), else the implicit file if it
/// exists, else the built-in demo.
fn read_source(
    options: &LoadOptions,
    env: &dyn Fn(&str) -> Option<String>,
    implicit_file: &Path,
) -> Result<(ConfigSource, String), ConfigError> {
    let named = match &options.config_path {
        Some(path) => Some((path.clone(), "--config".to_owned())),
        None => env(ENV_CONFIG).map(|path| (PathBuf::from(path), ENV_CONFIG.to_owned())),
    };
    if let Some((path, named_by)) = named {
        return match std::fs::read_to_string(&path) {
            Ok(text) => Ok((ConfigSource::File(path), text)),
            Err(cause) if cause.kind() == std::io::ErrorKind::NotFound => {
                Err(ConfigError::MissingFile { path, named_by })
            }
            Err(cause) => Err(ConfigError::Unreadable { path, cause }),
        };
    }
    if implicit_file.exists() {
        let text =
            std::fs::read_to_string(implicit_file).map_err(|cause| ConfigError::Unreadable {
                path: implicit_file.to_path_buf(),
                cause,
            })?;
        return Ok((ConfigSource::File(implicit_file.to_path_buf()), text));
    }
    Ok((ConfigSource::BuiltInDemo, DEMO_CONFIG_TOML.to_owned()))
}

/// Parses TOML into a [`Config`], naming the full key path of an unknown key or a bad value.
fn parse_config(text: &str, source_name: &str) -> Result<Config, ConfigError> {
    serde_path_to_error::deserialize(toml::Deserializer::new(text)).map_err(|error| {
        let key = error.path().to_string();
        ConfigError::Parse {
            source_name: source_name.to_owned(),
            // serde_path_to_error writes the empty path (a syntax error) as ".".
            key: if key == "." { String::new() } else { key },
            message: error.into_inner().to_string(),
        }
    })
}

/// Which keys the environment or the command line set, and by which variable or flag, so that
/// a problem with the value names where it came from.
#[derive(Debug, Default)]
struct Overrides {
    set_by: Vec<(&'static str, &'static str)>,
}

impl Overrides {
    fn record(&mut self, key: &'static str, setter: &'static str) {
        self.set_by.retain(|(recorded, _)| *recorded != key);
        self.set_by.push((key, setter));
    }

    /// `key`, followed by `(from TABULA_PORT)` when an override set it.
    fn describe(&self, key: &str) -> String {
        match self.set_by.iter().find(|(recorded, _)| *recorded == key) {
            Some((_, setter)) => format!("{key} (from {setter})"),
            None => key.to_owned(),
        }
    }
}

/// Applies `TABULA_HOST`, `TABULA_PORT`, `TABULA_DATA_DIR`, `TABULA_LOG` and
/// `SCHEMA_EDIT_API_ENABLED`.
fn apply_environment(
    config: &mut Config,
    env: &dyn Fn(&str) -> Option<String>,
    overrides: &mut Overrides,
) -> Result<(), ConfigError> {
    if let Some(host) = env(ENV_HOST) {
        config.server.host = host.trim().to_owned();
        overrides.record("server.host", ENV_HOST);
    }
    if let Some(port) = env(ENV_PORT) {
        config.server.port = port
            .trim()
            .parse::<u16>()
            .map_err(|_| ConfigError::Environment {
                variable: ENV_PORT.to_owned(),
                value: port.clone(),
                message: "expected a port number from 0 to 65535".to_owned(),
            })?;
        overrides.record("server.port", ENV_PORT);
    }
    if let Some(data_dir) = env(ENV_DATA_DIR) {
        config.server.data_dir = PathBuf::from(data_dir);
        overrides.record("server.data_dir", ENV_DATA_DIR);
    }
    if let Some(level) = env(ENV_LOG) {
        config.log.level = level.trim().to_owned();
        overrides.record("log.level", ENV_LOG);
    }
    if let Some(flag) = env(ENV_SCHEMA_EDIT_API) {
        config.schema.edit_api = parse_flag(&flag).ok_or_else(|| ConfigError::Environment {
            variable: ENV_SCHEMA_EDIT_API.to_owned(),
            value: flag.clone(),
            message: "expected true, false, 1 or 0".to_owned(),
        })?;
        overrides.record("schema.edit_api", ENV_SCHEMA_EDIT_API);
    }
    Ok(())
}

/// `true`/`1` or `false`/`0`, ignoring case and surrounding spaces.
fn parse_flag(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "1" => Some(true),
        "false" | "0" => Some(false),
        _ => None,
    }
}

/// Applies `--host`, `--port` and `--data-dir`.
fn apply_command_line(config: &mut Config, options: &LoadOptions, overrides: &mut Overrides) {
    if let Some(host) = &options.host {
        config.server.host = host.clone();
        overrides.record("server.host", "--host");
    }
    if let Some(port) = options.port {
        config.server.port = port;
        overrides.record("server.port", "--port");
    }
    if let Some(data_dir) = &options.data_dir {
        config.server.data_dir = data_dir.clone();
        overrides.record("server.data_dir", "--data-dir");
    }
}

/// Every setting that parses but cannot work, each naming its key.
fn check_settings(config: &Config, overrides: &Overrides) -> Vec<SettingProblem> {
    let mut problems = Vec::new();
    let mut report = |key: &str, message: String| {
        problems.push(SettingProblem {
            key: overrides.describe(key),
            message,
        });
    };
    if config.app.name.trim().is_empty() {
        report("app.name", "may not be empty".to_owned());
    }
    if config.server.host.trim().is_empty() {
        report("server.host", "may not be empty".to_owned());
    }
    if config.server.data_dir.as_os_str().is_empty() {
        report("server.data_dir", "may not be empty".to_owned());
    }
    if config.server.max_body_bytes == 0 {
        report("server.max_body_bytes", "must be at least 1".to_owned());
    }
    if config.server.cache_mb == 0 {
        report("server.cache_mb", "must be at least 1".to_owned());
    }
    if let Err(problem) = check_log_level(&config.log.level) {
        report(
            "log.level",
            format!("{problem}; try \"info\", \"debug\" or \"warn,tabula=debug\""),
        );
    }
    if config.log.format != LOG_FORMAT_TEXT && config.log.format != LOG_FORMAT_JSON {
        report(
            "log.format",
            format!(
                "must be \"{LOG_FORMAT_TEXT}\" or \"{LOG_FORMAT_JSON}\" (got \"{}\")",
                config.log.format
            ),
        );
    }
    if config.auth.default_role.trim().is_empty() {
        report("auth.default_role", "may not be empty".to_owned());
    }
    if config.auth.session_ttl_hours == 0 {
        report("auth.session_ttl_hours", "must be at least 1".to_owned());
    }
    if config.auth.max_api_keys == 0 {
        report("auth.max_api_keys", "must be at least 1".to_owned());
    }
    if config.rate_limit.window_seconds == 0 {
        report("rate_limit.window_seconds", "must be at least 1".to_owned());
    }
    if config.limits.default_page_size == 0 {
        report("limits.default_page_size", "must be at least 1".to_owned());
    }
    if config.limits.max_page_size < config.limits.default_page_size {
        report(
            "limits.max_page_size",
            format!(
                "{} is smaller than limits.default_page_size ({})",
                config.limits.max_page_size, config.limits.default_page_size
            ),
        );
    }
    if config.limits.max_batch == 0 {
        report("limits.max_batch", "must be at least 1".to_owned());
    }
    if config.limits.query_timeout_ms == 0 {
        report("limits.query_timeout_ms", "must be at least 1".to_owned());
    }
    if config.limits.sql_timeout_ms == 0 {
        report("limits.sql_timeout_ms", "must be at least 1".to_owned());
    }
    if config.limits.table_write_queue == 0 {
        report("limits.table_write_queue", "must be at least 1".to_owned());
    }
    if config.analytics.retention_days == 0 {
        report("analytics.retention_days", "must be at least 1".to_owned());
    }
    for (index, path) in config.analytics.excluded_paths.iter().enumerate() {
        if !path.starts_with('/') {
            report(
                &format!("analytics.excluded_paths[{index}]"),
                format!("a path glob starts with '/' (got \"{path}\")"),
            );
        }
    }
    if config.analytics.session_timeout_minutes == 0 {
        report(
            "analytics.session_timeout_minutes",
            "must be at least 1".to_owned(),
        );
    }
    if config.analytics.flush_interval_ms == 0 {
        report(
            "analytics.flush_interval_ms",
            "must be at least 1".to_owned(),
        );
    }
    if config.analytics.queue_capacity == 0 {
        report("analytics.queue_capacity", "must be at least 1".to_owned());
    }
    if config.analytics.cache_mb == 0 {
        report("analytics.cache_mb", "must be at least 1".to_owned());
    }
    if config.activity.retention_days == 0 {
        report("activity.retention_days", "must be at least 1".to_owned());
    }
    if !config.webhooks.allow_private_targets {
        for (table_index, table) in config.tables.iter().enumerate() {
            for (hook_index, hook) in table.webhooks.iter().enumerate() {
                if literal_target(&hook.url) == LiteralTarget::Private {
                    report(
                        &format!("tables[{table_index}].webhooks[{hook_index}].url"),
                        format!(
                            "\"{}\" is a loopback, private or otherwise non-public address, \
                             to which deliveries are refused; set \
                             webhooks.allow_private_targets = true to allow it",
                            hook.url
                        ),
                    );
                }
            }
        }
    }
    problems
}

/// The level names a `log.level` directive may use.
const LOG_LEVELS: &[&str] = &["trace", "debug", "info", "warn", "error", "off"];

/// A `log.level` is a comma-separated list of directives, each a level (`info`) or
/// `target=level` (`tabula=debug`). A bare word that is not a level would be read by the
/// env-filter as a target name and silence everything else, so it is refused here.
fn check_log_level(level: &str) -> Result<(), String> {
    let is_level = |word: &str| LOG_LEVELS.contains(&word.trim().to_ascii_lowercase().as_str());
    for directive in level.split(',').map(str::trim) {
        let well_formed = match directive.rsplit_once('=') {
            Some((target, directive_level)) => {
                !target.trim().is_empty() && is_level(directive_level)
            }
            None => is_level(directive),
        };
        if !well_formed {
            return Err(format!(
                "'{directive}' is neither a level ({}) nor target=level",
                LOG_LEVELS.join(", ")
            ));
        }
    }
    tracing_subscriber::EnvFilter::try_new(level)
        .map(|_| ())
        .map_err(|error| error.to_string())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use tabula_storage::FieldType;

    use super::*;

    /// The checked-in config.toml, by absolute path (tests do not depend on the working dir).
    fn checked_in_config_path() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join(DEFAULT_CONFIG_FILE)
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    /// Loads `text` as an explicitly named file with the environment `variables`.
    fn load_text(
        text: &str,
        options: LoadOptions,
        variables: &[(&str, &str)],
    ) -> Result<LoadedConfig, ConfigError> {
        let directory = tempfile::tempdir().expect("a temporary directory");
        let file = directory.path().join("test.toml");
        std::fs::write(&file, text).expect("write the test config");
        let options = LoadOptions {
            config_path: Some(file),
            ..options
        };
        let variables: BTreeMap<String, String> = variables
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect();
        load_with_env(&options, &|name| variables.get(name).cloned())
    }

    fn parse_error_key(text: &str) -> String {
        match load_text(text, LoadOptions::default(), &[]) {
            Err(ConfigError::Parse { key, .. }) => key,
            other => panic!("expected a parse error, got {other:?}"),
        }
    }

    #[test]
    fn the_checked_in_config_toml_parses_and_is_the_built_in_demo() {
        let from_file = load_with_env(
            &LoadOptions {
                config_path: Some(checked_in_config_path()),
                ..LoadOptions::default()
            },
            &no_env,
        )
        .expect("config.toml loads");
        let nowhere = tempfile::tempdir().expect("a temporary directory");
        let demo = load_with_implicit_file(
            &LoadOptions::default(),
            &no_env,
            &nowhere.path().join(DEFAULT_CONFIG_FILE),
        )
        .expect("the demo loads");
        assert_eq!(demo.source, ConfigSource::BuiltInDemo);
        assert_eq!(demo.config, from_file.config);
        assert_eq!(demo.file_schema_text, from_file.file_schema_text);

        let tables: Vec<&str> = demo
            .config
            .tables
            .iter()
            .map(|table| table.name.as_str())
            .collect();
        assert_eq!(tables, vec!["tasks", "contacts"]);
        let contacts = &demo.config.tables[1];
        let relationship = contacts
            .fields
            .iter()
            .find(|field| field.field_type == FieldType::Relationship)
            .expect("contacts has a relationship");
        assert_eq!(relationship.related_table.as_deref(), Some("tasks"));
        assert!(demo.config.analytics.enabled);
    }

    #[test]
    fn the_checked_in_config_toml_sets_every_key_to_its_default() {
        let loaded = load_with_env(
            &LoadOptions {
                config_path: Some(checked_in_config_path()),
                ..LoadOptions::default()
            },
            &no_env,
        )
        .expect("config.toml loads");
        let settings = Config {
            tables: Vec::new(),
            ..loaded.config
        };
        assert_eq!(settings, Config::default());

        // Every key of every section is written out, so the file documents all of them.
        let written: toml::Table = toml::from_str(DEMO_CONFIG_TOML).expect("config.toml is TOML");
        let defaults = toml::Table::try_from(Config::default()).expect("defaults serialise");
        for (section, default_section) in &defaults {
            let Some(default_keys) = default_section.as_table() else {
                continue;
            };
            let written_keys = written
                .get(section)
                .and_then(toml::Value::as_table)
                .unwrap_or_else(|| panic!("config.toml lacks [{section}]"));
            for key in default_keys.keys() {
                assert!(
                    written_keys.contains_key(key),
                    "config.toml lacks {section}.{key}"
                );
            }
        }
    }

    #[test]
    fn an_empty_file_gives_every_default_of_the_spec() {
        let config = load_text("", LoadOptions::default(), &[])
            .expect("an empty file loads")
            .config;
        assert_eq!(config.app.name, "tabula");
        assert_eq!(config.server.host, "127.0.0.1");
        assert_eq!(config.server.port, 3000);
        assert_eq!(config.server.data_dir, PathBuf::from("./data"));
        assert!(config.server.trusted_proxies.is_empty());
        assert_eq!(config.server.max_body_bytes, 26_214_400);
        assert_eq!(config.server.cache_mb, 64);
        assert!(config.server.batch_scheduling);
        assert_eq!(config.log.level, "info");
        assert_eq!(config.log.format, "text");
        assert!(config.auth.enabled);
        assert!(config.auth.allow_sign_up);
        assert_eq!(config.auth.default_role, "member");
        assert!(!config.auth.secure_cookies);
        assert_eq!(config.auth.session_ttl_hours, 168);
        let rate_limit = &config.rate_limit;
        assert_eq!(rate_limit.window_seconds, 60);
        assert_eq!(rate_limit.sign_in, 20);
        assert_eq!(rate_limit.sign_up, 20);
        assert_eq!(rate_limit.password, 10);
        assert_eq!(rate_limit.tables_get, 100);
        assert_eq!(rate_limit.tables_post, 50);
        assert_eq!(rate_limit.activity_get, 60);
        assert_eq!(rate_limit.admin_per_second, 10);
        assert_eq!(rate_limit.analytics_collect, 0);
        assert_eq!(config.limits.default_page_size, 10);
        assert_eq!(config.limits.max_page_size, 1000);
        assert_eq!(config.limits.max_batch, 1000);
        assert_eq!(config.limits.query_timeout_ms, 5000);
        assert_eq!(config.limits.sql_timeout_ms, 30_000);
        let analytics = &config.analytics;
        assert!(analytics.enabled);
        assert_eq!(analytics.retention_days, 365);
        assert!(analytics.excluded_paths.is_empty());
        assert!(analytics.respect_dnt);
        assert_eq!(analytics.session_timeout_minutes, 30);
        assert_eq!(analytics.flush_interval_ms, 1000);
        assert_eq!(analytics.queue_capacity, 100_000);
        assert_eq!(analytics.cache_mb, 8);
        assert_eq!(config.activity.retention_days, 365);
        assert!(!config.schema.edit_api);
        assert_eq!(config.realtime.replay_log, 10_000);
        assert!(config.tables.is_empty());
        assert_eq!(config, Config::default());
    }

    #[test]
    fn the_environment_overrides_the_file() {
        let text = "[server]\nhost = \"0.0.0.0\"\nport = 4000\ndata_dir = \"/srv/file\"\n\
                    [log]\nlevel = \"warn\"\n[schema]\nedit_api = false\n";
        let config = load_text(text, LoadOptions::default(), &[])
            .expect("loads")
            .config;
        assert_eq!(config.server.port, 4000);
        assert_eq!(config.log.level, "warn");

        let environment = [
            ("TABULA_HOST", "10.0.0.1"),
            ("TABULA_PORT", "5000"),
            ("TABULA_DATA_DIR", "/srv/env"),
            ("TABULA_LOG", "debug"),
            ("SCHEMA_EDIT_API_ENABLED", "true"),
        ];
        let config = load_text(text, LoadOptions::default(), &environment)
            .expect("loads")
            .config;
        assert_eq!(config.server.host, "10.0.0.1");
        assert_eq!(config.server.port, 5000);
        assert_eq!(config.server.data_dir, PathBuf::from("/srv/env"));
        assert_eq!(config.log.level, "debug");
        assert!(config.schema.edit_api);
    }

    #[test]
    fn the_command_line_overrides_the_environment() {
        let environment = [
            ("TABULA_HOST", "10.0.0.1"),
            ("TABULA_PORT", "5000"),
            ("TABULA_DATA_DIR", "/srv/env"),
        ];
        let options = LoadOptions {
            config_path: None,
            data_dir: Some(PathBuf::from("/srv/cli")),
            port: Some(6000),
            host: Some("::1".to_owned()),
        };
        let config = load_text("[server]\nport = 4000\n", options, &environment)
            .expect("loads")
            .config;
        assert_eq!(config.server.host, "::1");
        assert_eq!(config.server.port, 6000);
        assert_eq!(config.server.data_dir, PathBuf::from("/srv/cli"));
    }

    #[test]
    fn the_config_flag_wins_over_tabula_config() {
        let directory = tempfile::tempdir().expect("a temporary directory");
        let flag_file = directory.path().join("flag.toml");
        std::fs::write(&flag_file, "[app]\nname = \"from-flag\"\n").expect("write");
        let env_file = directory.path().join("env.toml");
        std::fs::write(&env_file, "[app]\nname = \"from-env\"\n").expect("write");
        let env_file_text = env_file.display().to_string();
        let env = |name: &str| (name == ENV_CONFIG).then(|| env_file_text.clone());

        let loaded = load_with_env(&LoadOptions::default(), &env).expect("loads");
        assert_eq!(loaded.config.app.name, "from-env");
        assert_eq!(loaded.source, ConfigSource::File(env_file.clone()));

        let options = LoadOptions {
            config_path: Some(flag_file.clone()),
            ..LoadOptions::default()
        };
        let loaded = load_with_env(&options, &env).expect("loads");
        assert_eq!(loaded.config.app.name, "from-flag");
        assert_eq!(loaded.source, ConfigSource::File(flag_file));
        assert_eq!(loaded.file_schema_text, "[app]\nname = \"from-flag\"\n");
    }

    #[test]
    fn an_implicit_config_toml_is_read_when_present() {
        let directory = tempfile::tempdir().expect("a temporary directory");
        let implicit = directory.path().join(DEFAULT_CONFIG_FILE);
        std::fs::write(&implicit, "[app]\nname = \"implicit\"\n").expect("write");
        let loaded =
            load_with_implicit_file(&LoadOptions::default(), &no_env, &implicit).expect("loads");
        assert_eq!(loaded.source, ConfigSource::File(implicit));
        assert_eq!(loaded.config.app.name, "implicit");
        assert!(loaded.config.tables.is_empty());
    }

    #[test]
    fn an_explicitly_named_missing_file_is_an_error_naming_it() {
        let directory = tempfile::tempdir().expect("a temporary directory");
        let missing = directory.path().join("nope.toml");
        let options = LoadOptions {
            config_path: Some(missing.clone()),
            ..LoadOptions::default()
        };
        let error = load_with_env(&options, &no_env).expect_err("a missing file is an error");
        assert!(matches!(&error, ConfigError::MissingFile { path, .. } if *path == missing));
        let message = error.to_string();
        assert!(message.contains("nope.toml"), "{message}");
        assert!(message.contains("--config"), "{message}");
        assert!(message.contains("does not exist"), "{message}");

        let missing_text = missing.display().to_string();
        let env = |name: &str| (name == ENV_CONFIG).then(|| missing_text.clone());
        let message = load_with_env(&LoadOptions::default(), &env)
            .expect_err("a missing file is an error")
            .to_string();
        assert!(message.contains("nope.toml"), "{message}");
        assert!(message.contains("TABULA_CONFIG"), "{message}");
    }

    #[test]
    fn unknown_keys_are_rejected_with_their_full_path() {
        assert_eq!(parse_error_key("colour = 1\n"), "colour");
        assert_eq!(parse_error_key("[server]\nprot = 3000\n"), "server.prot");
        assert_eq!(parse_error_key("[serve]\nport = 3000\n"), "serve");
        let table = "[[tables]]\nname = \"tasks\"\n\
                     [[tables.fields]]\nname = \"title\"\ntype = \"single-line-text\"\n";
        assert_eq!(
            parse_error_key(&format!(
                "{table}[[tables.fields]]\nname = \"b\"\ntype = \"integer\"\ncolour = \"red\"\n"
            )),
            "tables[0].fields[1].colour"
        );
        assert_eq!(
            parse_error_key(&format!("{table}[tables.permissions]\nwrite = \"all\"\n")),
            "tables[0].permissions.write"
        );
        assert_eq!(
            parse_error_key(&format!(
                "{table}[[tables.views]]\nid = \"v\"\nfilters = \"x\"\n"
            )),
            "tables[0].views[0].filters"
        );

        let message = load_text("[server]\nprot = 3000\n", LoadOptions::default(), &[])
            .expect_err("an unknown key is an error")
            .to_string();
        assert!(message.contains("server.prot"), "{message}");
        assert!(message.contains("unknown field `prot`"), "{message}");
    }

    #[test]
    fn values_of_the_wrong_type_name_their_key() {
        assert_eq!(parse_error_key("[server]\nport = \"x\"\n"), "server.port");
        assert_eq!(parse_error_key("[server]\nport = 70000\n"), "server.port");
        assert_eq!(
            parse_error_key("[server]\ntrusted_proxies = [\"10.0.0.1\", \"proxy\"]\n"),
            "server.trusted_proxies[1]"
        );
        assert_eq!(
            parse_error_key("[analytics]\nenabled = \"yes\"\n"),
            "analytics.enabled"
        );
    }

    #[test]
    fn a_syntax_error_is_reported_with_its_line() {
        let error = load_text("[server\nport = 3000\n", LoadOptions::default(), &[])
            .expect_err("bad TOML is an error");
        let message = error.to_string();
        assert!(matches!(error, ConfigError::Parse { ref key, .. } if key.is_empty()));
        assert!(message.contains("line 1"), "{message}");
    }

    #[test]
    fn an_unknown_field_type_names_the_table_and_the_field() {
        let text = "[[tables]]\nname = \"tasks\"\n\
                    [[tables.fields]]\nname = \"title\"\ntype = \"single-line-text\"\n\
                    [[tables.fields]]\nname = \"due\"\ntype = \"dat\"\n";
        let error = load_text(text, LoadOptions::default(), &[]).expect_err("an unknown type");
        let ConfigError::InvalidSchema { issues, .. } = &error else {
            panic!("expected a schema error, got {error:?}");
        };
        assert_eq!(issues.len(), 1, "{issues:?}");
        assert_eq!(issues[0].path, "/tables/0/fields/1/type");
        let message = error.to_string();
        assert!(
            message.contains(
                "tables[0].fields[1].type: table 'tasks', field 'due': unknown type 'dat'"
            ),
            "{message}"
        );
    }

    #[test]
    fn every_schema_problem_is_listed() {
        let text = "[[tables]]\nname = \"Tasks\"\n\
                    [[tables]]\nname = \"notes\"\n";
        let message = load_text(text, LoadOptions::default(), &[])
            .expect_err("an invalid schema")
            .to_string();
        assert!(message.contains("has 3 schema problems"), "{message}");
        assert!(
            message.contains("tables[0].name: table 'Tasks'"),
            "{message}"
        );
        assert!(
            message.contains("tables[0].fields: table 'Tasks'"),
            "{message}"
        );
        assert!(
            message.contains("tables[1].fields: table 'notes'"),
            "{message}"
        );
    }

    #[test]
    fn missing_ids_are_assigned_on_load() {
        let text = "[[tables]]\nname = \"a\"\n[[tables.fields]]\nname = \"x\"\ntype = \"integer\"\n\
                    [[tables.fields]]\nid = 4\nname = \"y\"\ntype = \"integer\"\n\
                    [[tables]]\nid = 3\nname = \"b\"\n[[tables.fields]]\nname = \"x\"\ntype = \"integer\"\n";
        let config = load_text(text, LoadOptions::default(), &[])
            .expect("loads")
            .config;
        let table_ids: Vec<u32> = config.tables.iter().map(|table| table.id).collect();
        assert_eq!(table_ids, vec![4, 3]);
        let field_ids: Vec<u32> = config.tables[0]
            .fields
            .iter()
            .map(|field| field.id)
            .collect();
        assert_eq!(field_ids, vec![5, 4]);
    }

    #[test]
    fn schema_edit_api_enabled_takes_true_false_1_and_0() {
        for (value, expected) in [
            ("true", true),
            ("1", true),
            ("TRUE", true),
            ("false", false),
            ("0", false),
        ] {
            let config = load_text(
                "[schema]\nedit_api = true\n",
                LoadOptions::default(),
                &[("SCHEMA_EDIT_API_ENABLED", value)],
            )
            .expect("loads")
            .config;
            assert_eq!(config.schema.edit_api, expected, "{value}");
        }
        let error = load_text(
            "",
            LoadOptions::default(),
            &[("SCHEMA_EDIT_API_ENABLED", "yes")],
        )
        .expect_err("yes is not a flag");
        let message = error.to_string();
        assert!(message.contains("SCHEMA_EDIT_API_ENABLED"), "{message}");
        // An empty variable counts as unset.
        let config = load_text(
            "[schema]\nedit_api = true\n",
            LoadOptions::default(),
            &[("SCHEMA_EDIT_API_ENABLED", "")],
        )
        .expect("loads")
        .config;
        assert!(config.schema.edit_api);
    }

    #[test]
    fn a_bad_port_in_the_environment_names_the_variable() {
        let message = load_text("", LoadOptions::default(), &[("TABULA_PORT", "http")])
            .expect_err("not a port")
            .to_string();
        assert!(message.contains("TABULA_PORT"), "{message}");
    }

    #[test]
    fn invalid_values_name_their_keys() {
        let text = "[log]\nformat = \"xml\"\n[limits]\ndefault_page_size = 50\nmax_page_size = 20\n\
                    [rate_limit]\nwindow_seconds = 0\n[analytics]\nexcluded_paths = [\"admin/*\"]\n";
        let error = load_text(text, LoadOptions::default(), &[]).expect_err("invalid values");
        let ConfigError::InvalidSettings { problems, .. } = &error else {
            panic!("expected invalid settings, got {error:?}");
        };
        let keys: Vec<&str> = problems
            .iter()
            .map(|problem| problem.key.as_str())
            .collect();
        assert_eq!(
            keys,
            vec![
                "log.format",
                "rate_limit.window_seconds",
                "limits.max_page_size",
                "analytics.excluded_paths[0]"
            ]
        );
        let message = error.to_string();
        assert!(message.contains("4 invalid settings"), "{message}");
    }

    #[test]
    fn a_bad_log_level_from_the_environment_names_key_and_variable() {
        let error = load_text("", LoadOptions::default(), &[("TABULA_LOG", "verbose")])
            .expect_err("a bad directive");
        let message = error.to_string();
        assert!(message.contains("log.level (from TABULA_LOG)"), "{message}");
    }

    #[test]
    fn log_levels_are_levels_or_target_directives() {
        for good in [
            "info",
            "WARN",
            "off",
            "info,tabula=debug",
            "tabula_actors=trace",
        ] {
            assert_eq!(check_log_level(good), Ok(()), "{good}");
        }
        for bad in ["", "verbose", "info,", "tabula=loud", "=debug"] {
            assert!(check_log_level(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn port_zero_means_any_free_port_and_is_accepted() {
        let config = load_text("", LoadOptions::default(), &[("TABULA_PORT", "0")])
            .expect("loads")
            .config;
        assert_eq!(config.server.port, 0);
    }

    #[test]
    fn toml_key_paths_follow_the_toml_spelling() {
        assert_eq!(
            toml_key_path("/tables/0/fields/2/type"),
            "tables[0].fields[2].type"
        );
        assert_eq!(
            toml_key_path("/tables/1/permissions/fields/0/field"),
            "tables[1].permissions.fields[0].field"
        );
        assert_eq!(toml_key_path("/tables/3"), "tables[3]");
    }
}
