//! Start-up and shutdown: config → tracing → store → actors → first admin → HTTP server →
//! final flush. One [`create_app`] serves main, the tests and the benches.

use std::net::TcpListener;
use std::time::Duration;

use actix_service::{IntoServiceFactory, ServiceFactoryExt};
use actix_web::body::MessageBody;
use actix_web::dev::{AppConfig, ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::middleware::from_fn;
use actix_web::{web, App};
use tabula_storage::Schema;

use crate::auth;
use crate::cli::ServeArgs;
use crate::config::{self, ConfigSource};
use crate::connection_guard::GuardedStream;
use crate::rate_limit;
use crate::routes;
use crate::state::AppState;
use crate::telemetry::{init_tracing, RequestContext};

/// The application: every route, the error envelope for foreign errors, the request context.
pub fn create_app(
    state: web::Data<AppState>,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let max_body_bytes = usize::try_from(state.config.server.max_body_bytes).unwrap_or(usize::MAX);
    let collect_rate_limited = state.config.rate_limit.analytics_collect > 0;
    App::new()
        .app_data(state)
        .app_data(web::PayloadConfig::new(max_body_bytes))
        .app_data(web::JsonConfig::default().limit(max_body_bytes))
        // The analytics collect path (the hottest route) first, with its own lean middleware:
        // the same request context and error envelope, its rate limit only when one is set, no
        // credential resolution (SPEC §7 ignores credentials there).
        .configure(|config| routes::analytics::configure_collect(config, collect_rate_limited))
        // Every other route, behind the shared middleware stack.
        .service(
            web::scope("")
                .configure(routes::configure)
                .default_service(web::to(routes::unknown_route))
                // Inside out: the caller is identified, then counted against its rate limit.
                .wrap(from_fn(rate_limit::enforce))
                .wrap(from_fn(auth::identify))
                .wrap(RequestContext),
        )
}

/// Serves HTTP on `listener` until SIGINT/SIGTERM, drains in-flight requests, then flushes.
/// On the signal the change feed is closed first, so that realtime streams (which never end by
/// themselves) finish and do not hold up the drain.
///
/// actix-web's `HttpServer` is assembled here from its parts (actix-server, actix-http's
/// `HttpService`, the same timeouts) so that each connection can be wrapped in a
/// [`GuardedStream`]: a request refused at the protocol level then gets the error envelope.
pub async fn run(listener: TcpListener, state: web::Data<AppState>) -> std::io::Result<()> {
    let app_state = state.clone();
    let local = listener.local_addr()?;
    let builder = actix_server::Server::build();
    let graceful_shutdown = builder.graceful_shutdown_signal();
    let server = builder
        .listen("tabula-http", listener, move || {
            let shutdown = graceful_shutdown.clone();
            let http = actix_http::HttpService::build()
                .keep_alive(actix_http::KeepAlive::default())
                .client_request_timeout(Duration::from_secs(5))
                .client_disconnect_timeout(Duration::from_secs(1))
                .h1_allow_half_closed(true)
                .local_addr(local)
                .graceful_shutdown_signal(move || {
                    let shutdown = shutdown.clone();
                    async move { shutdown.notified().await }
                })
                .finish(actix_service::map_config(
                    create_app(app_state.clone())
                        .into_factory()
                        .map_err(|error| error.error_response()),
                    move |_| AppConfig::default(),
                ));
            actix_service::fn_service(|stream: tokio::net::TcpStream| async move {
                let peer = stream.peer_addr().ok();
                Ok::<_, actix_http::error::DispatchError>((
                    GuardedStream::new(stream),
                    actix_http::Protocol::Http1,
                    peer,
                ))
            })
            .and_then(http)
        })?
        .shutdown_timeout(30)
        .disable_signals()
        .run();
    let handle = server.handle();
    let feed = std::sync::Arc::clone(state.registry.changes());
    actix_web::rt::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down: draining in-flight requests");
        feed.close();
        handle.stop(true).await;
    });
    server.await?;
    state.shutdown();
    Ok(())
}

/// Resolves on SIGINT or (on Unix) SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM; only SIGINT stops the server");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// `tabula serve`: the whole life of the server process.
pub fn serve(args: &ServeArgs) -> Result<(), String> {
    let loaded = config::load(&args.load_options()).map_err(|error| error.to_string())?;
    let config = loaded.config;
    init_tracing(&config.log.level, config.log.format == "json");
    // Before the runtime, the store and the actors start their threads: they inherit it.
    crate::scheduling::apply(config.server.batch_scheduling);
    match &loaded.source {
        ConfigSource::File(path) => {
            tracing::info!(config = %path.display(), "configuration loaded")
        }
        ConfigSource::BuiltInDemo => {
            tracing::info!("no config.toml found: serving the built-in demo app (tasks, contacts)")
        }
    }
    let schema = Schema {
        tables: config.tables.clone(),
    };
    let address = (config.server.host.clone(), config.server.port);
    actix_web::rt::System::new().block_on(async move {
        let data_dir = config.server.data_dir.display().to_string();
        let state = AppState::start(config, schema).map_err(|error| error.to_string())?;
        first_admin(&state).await?;
        let listener = TcpListener::bind(&address)
            .map_err(|error| format!("cannot listen on {}:{}: {error}", address.0, address.1))?;
        let local = listener.local_addr().map_err(|error| error.to_string())?;
        tracing::info!(data_dir = %data_dir, "listening on http://{local}");
        run(listener, web::Data::new(state))
            .await
            .map_err(|error| error.to_string())
    })
}

/// Sets up the first admin (SPEC §1): `TABULA_ADMIN_EMAIL`/`TABULA_ADMIN_PASSWORD` create it;
/// otherwise, while no account exists, a one-time bootstrap token (valid for an hour) is logged
/// for `POST /api/admin/bootstrap/claim`. Also warns loudly when auth is off.
async fn first_admin(state: &AppState) -> Result<(), String> {
    if !state.config.auth.enabled {
        tracing::warn!(
            "AUTH IS DISABLED (auth.enabled = false): every table is open to anyone, as if all \
             its permissions were \"all\". Never run like this with data that matters."
        );
    }
    let variable = |name: &str| {
        std::env::var(name)
            .ok()
            .filter(|value| !value.trim().is_empty())
    };
    match (variable(ENV_ADMIN_EMAIL), variable(ENV_ADMIN_PASSWORD)) {
        (Some(email), Some(password)) => {
            let created = state
                .accounts
                .ensure_admin(&email, &password)
                .await
                .map_err(|error| {
                    format!(
                        "cannot create the admin of {ENV_ADMIN_EMAIL}/{ENV_ADMIN_PASSWORD}: {}",
                        tabula_actors::accounts::describe(&error)
                    )
                })?;
            if created {
                tracing::info!(email = %email, "admin account created from {ENV_ADMIN_EMAIL}");
            }
        }
        (Some(_), None) | (None, Some(_)) => {
            return Err(format!(
                "{ENV_ADMIN_EMAIL} and {ENV_ADMIN_PASSWORD} must be set together"
            ))
        }
        (None, None) => {}
    }
    if let Some(token) = state
        .accounts
        .issue_bootstrap_token()
        .map_err(|error| error.to_string())?
    {
        tracing::warn!(
            bootstrap_token = %token,
            "no admin account exists yet: claim the first admin within 1 hour with \
             POST /api/admin/bootstrap/claim, header 'Authorization: Bearer <bootstrap_token>', \
             body {{\"email\",\"password\",\"name\"}} (or set {ENV_ADMIN_EMAIL}/{ENV_ADMIN_PASSWORD})"
        );
    }
    Ok(())
}

/// Creates the first admin at start (with [`ENV_ADMIN_PASSWORD`]).
pub const ENV_ADMIN_EMAIL: &str = "TABULA_ADMIN_EMAIL";
/// The password of the admin of [`ENV_ADMIN_EMAIL`] (at least 8 characters).
pub const ENV_ADMIN_PASSWORD: &str = "TABULA_ADMIN_PASSWORD";
