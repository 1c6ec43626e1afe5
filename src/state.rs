//! The application state shared by every handler: configuration, the store, the table registry,
//! the accounts and the rate limiter.

use std::sync::Arc;
use std::time::Duration;

use tabula_actors::accounts::{AccountSettings, Accounts, AccountsClock};
use tabula_actors::analytics::{Analytics, AnalyticsClock};
use tabula_actors::query::{PageLimits, QueryBudget};
use tabula_actors::registry::{Registry, TableHandle};
use tabula_actors::schema_publisher::{SchemaPublisher, SchemaPublisherHandle};
use tabula_storage::{Schema, Store};

use crate::config::Config;
use crate::error::ApiError;
use crate::rate_limit::RateLimiter;
use crate::webhooks::Webhooks;

/// Everything a handler may need. Built once by [`AppState::start`], shared as `web::Data`.
pub struct AppState {
    pub config: Arc<Config>,
    pub store: Store,
    pub registry: Arc<Registry>,
    /// The analytics aggregator and collect path; `None` when `analytics.enabled = false`.
    pub analytics: Option<Analytics>,
    /// Users, sessions and API keys (SPEC §8).
    pub accounts: Accounts,
    /// The per-client request budgets of `[rate_limit]`.
    pub rate_limiter: RateLimiter,
    /// Webhook deliveries of committed changes and their log (SPEC §11).
    pub webhooks: Arc<Webhooks>,
    /// The schema publisher: versions, draft, live publishing (SPEC §9).
    pub schema: SchemaPublisherHandle,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot open the data directory {path}: {cause}")]
    Store { path: String, cause: String },
    #[error("cannot start table '{table}': {cause}")]
    Table { table: String, cause: String },
    #[error("invalid row rule: {0}")]
    RowRule(String),
    #[error("cannot set up the webhook client: {0}")]
    Webhooks(String),
}

impl AppState {
    /// Opens the store under the configured data directory and starts an actor for every table
    /// of the live schema: the active version of the schema ledger, or `schema` (the config
    /// file's) on first start, when it becomes version 1. Must run inside an actix system (the
    /// table actors live on its arbiters).
    pub fn start(config: Config, schema: Schema) -> Result<AppState, StartError> {
        let data_dir = config.server.data_dir.clone();
        let problems = tabula_actors::permissions::check_row_filters(&schema.tables);
        if !problems.is_empty() {
            return Err(StartError::RowRule(problems.join("; ")));
        }
        let cache_bytes = config.server.cache_mb.saturating_mul(1024 * 1024);
        let store = Store::open_with_cache(data_dir.as_ref(), cache_bytes).map_err(|error| {
            StartError::Store {
                path: data_dir.display().to_string(),
                cause: error.to_string(),
            }
        })?;
        let writer_threads = std::thread::available_parallelism()
            .map(usize::from)
            .unwrap_or(1)
            .min(4);
        let registry = Registry::new(store.clone(), writer_threads);
        registry.changes().set_capacity(config.realtime.replay_log);
        registry.set_write_queue_limit(config.limits.table_write_queue);
        let webhooks = Webhooks::start(Arc::clone(&registry), &config.webhooks)
            .map_err(|error| StartError::Webhooks(error.to_string()))?;
        let publisher = SchemaPublisher::open(&store, std::sync::Arc::clone(&registry), schema)
            .map_err(|error| StartError::Store {
                path: data_dir.display().to_string(),
                cause: format!("schema ledger: {error}"),
            })?;
        for table in publisher.live_schema().tables.clone() {
            let name = table.name.clone();
            registry.install(table).map_err(|error| StartError::Table {
                table: name,
                cause: error.to_string(),
            })?;
        }
        // The activity log's retention purge: now, then hourly, by each table's actor.
        tabula_actors::activity::spawn_retention(&registry, config.activity.retention_days);
        let analytics =
            if config.analytics.enabled {
                let settings = crate::routes::analytics::settings_from(&config);
                let analytics = Analytics::start(&store, settings, AnalyticsClock::system())
                    .map_err(|error| StartError::Store {
                        path: data_dir.display().to_string(),
                        cause: format!("analytics: {error}"),
                    })?;
                Some(analytics)
            } else {
                None
            };
        let session_ttl_ms = i64::try_from(config.auth.session_ttl_hours)
            .unwrap_or(i64::MAX)
            .saturating_mul(3_600_000);
        let account_settings = AccountSettings {
            session_ttl_ms,
            default_role: config.auth.default_role.clone(),
            allow_sign_up: config.auth.allow_sign_up,
            max_api_keys: config.auth.max_api_keys,
        };
        let accounts = Accounts::start(&store, account_settings, AccountsClock::system()).map_err(
            |error| StartError::Store {
                path: data_dir.display().to_string(),
                cause: format!("accounts: {error}"),
            },
        )?;
        let rate_limiter = RateLimiter::new(&config.rate_limit, &config.server);
        let schema = publisher.start();
        Ok(AppState {
            config: Arc::new(config),
            store,
            registry,
            analytics,
            accounts,
            rate_limiter,
            webhooks,
            schema,
        })
    }

    /// The table a path names (numeric id or name), or the 404 for it.
    pub fn table(&self, key: &str) -> Result<TableHandle, ApiError> {
        self.registry
            .resolve(key)
            .ok_or_else(|| ApiError::not_found(format!("Table '{key}' not found")))
    }

    pub fn page_limits(&self) -> PageLimits {
        PageLimits {
            default_page_size: self.config.limits.default_page_size,
            max_page_size: self.config.limits.max_page_size,
        }
    }

    /// The budget of one list query (`limits.query_timeout_ms`), starting now.
    pub fn query_budget(&self) -> QueryBudget {
        QueryBudget::starting_now(Duration::from_millis(self.config.limits.query_timeout_ms))
    }

    /// The budget of one SQL query (`limits.sql_timeout_ms`), starting now.
    pub fn sql_budget(&self) -> QueryBudget {
        QueryBudget::starting_now(Duration::from_millis(self.config.limits.sql_timeout_ms))
    }

    /// Flushes everything to disk; called once the HTTP server has drained.
    pub fn shutdown(&self) {
        // Realtime streams and the webhook dispatcher end (idempotent: `run` closed it already).
        self.registry.changes().close();
        // Every accepted page view is flushed before the store closes.
        if let Some(analytics) = &self.analytics {
            analytics.shutdown();
        }
        self.schema.stop();
        self.registry.stop_actors();
        self.accounts.shutdown();
        if let Err(error) = self.store.close() {
            tracing::error!(%error, "final flush failed");
        } else {
            tracing::info!("store flushed; goodbye");
        }
    }
}
