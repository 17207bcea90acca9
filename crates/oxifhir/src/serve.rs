//! `oxifhir serve`: open the store, bind, serve until Ctrl-C or SIGTERM, then drain.

use std::sync::Arc;

use anyhow::Context;
use oxifhir_jobs::RuntimeConfig;
use oxifhir_server::asynchronous::AsyncConfig;
use oxifhir_server::auth::{AuthConfig, AuthMode, SmartAuth};
use oxifhir_server::observability::endpoint::MetricsToken;
use oxifhir_server::operations::export::files::{ExportFiles, ExportLocation};
use oxifhir_server::{ExportConfig, FhirServer, MaintenanceConfig, ServerConfig, http};

use crate::cli::{AuthKind, ServeArgs};

/// Runs the server until a shutdown signal.
pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let store_config = args.db.store_config();
    let store = oxifhir_store::open(&store_config)
        .await
        .context("opening the database")?;
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let local = listener.local_addr().context("reading the bound address")?;
    let base_url = args
        .base_url
        .clone()
        .unwrap_or_else(|| format!("http://{local}/fhir"));
    let location = match &args.export.export_store {
        Some(text) => ExportLocation::parse(text).map_err(anyhow::Error::msg)?,
        None => ExportLocation::Local(args.db.data.join("exports")),
    };
    ExportFiles::open(&location)
        .map_err(anyhow::Error::msg)
        .context("opening the export store")?;
    let config = ServerConfig {
        base_url: base_url.trim_end_matches('/').to_string(),
        max_body_bytes: args.max_body_bytes,
        read_timeout: args.read_timeout.max(std::time::Duration::from_millis(100)),
        default_count: args.default_count.max(1),
        max_count: args.max_count.max(1),
        asynchronous: AsyncConfig {
            retention: args.jobs.job_retention,
            poll_too_fast_ratio: args.jobs.poll_too_fast_ratio.clamp(0.0, 1.0),
            max_active_per_client: args.jobs.max_active_jobs.max(1),
            kickoff_rate: args.jobs.kickoff_rate,
            poll_rate: args.jobs.poll_rate,
        },
        export: ExportConfig {
            location: location.clone(),
            file_resources: args.export.export_part_size.max(1),
            file_bytes: args.export.export_part_bytes.max(1),
            batch: args.export.export_batch.max(1),
            parallel: args.export.export_parallel.max(1),
            throttle: args.export.export_throttle,
            settle: args.export.export_settle,
        },
        maintenance: MaintenanceConfig {
            batch: args.jobs.maintenance_batch.max(1),
            throttle: args.jobs.maintenance_throttle,
        },
        metrics_token: args.metrics_token.as_deref().and_then(MetricsToken::new),
    };
    let auth = auth_mode(&args, &config.base_url)?;
    let server = FhirServer::new(store.clone(), config).with_auth(auth.clone());
    let search_params = server
        .load_search_params()
        .await
        .map_err(|e| anyhow::anyhow!("loading search parameters: {}", e.message()))?;
    tracing::info!(
        custom = search_params.custom().len(),
        "search parameters loaded"
    );
    let slots = oxifhir_server::operations::scheduling::index_slot_ends(&server)
        .await
        .map_err(|e| anyhow::anyhow!("indexing Slot end times: {}", e.message()))?;
    if slots > 0 {
        tracing::info!(
            slots,
            "indexed the end times of Slots stored before Slot?end="
        );
    }
    let jobs = server
        .job_runtime(RuntimeConfig {
            workers: args.jobs.workers,
            lease: args.jobs.job_lease.max(std::time::Duration::from_secs(1)),
            retention: args.jobs.job_retention,
            ..RuntimeConfig::default()
        })
        .start();
    match &auth {
        AuthMode::None => tracing::info!(
            backend = store.backend_name(),
            listen = %local,
            base_url = %base_url,
            workers = args.jobs.workers,
            export_store = %location,
            "oxifhir is serving FHIR R4; authentication is OFF (--auth none): anyone who can reach this address can read and write everything"
        ),
        AuthMode::Smart(smart) => {
            tracing::info!(
                backend = store.backend_name(),
                listen = %local,
                base_url = %base_url,
                workers = args.jobs.workers,
                export_store = %location,
                token_endpoint = smart.token_endpoint(),
                clients = smart.client_count(),
                "oxifhir is serving FHIR R4; authentication is ON (--auth smart): every request but GET /metadata needs a bearer token"
            );
            if smart.secret_is_ephemeral() {
                tracing::warn!(
                    "no signing_secret in the auth config: access tokens are signed with a random key of this process, so they stop working at restart and other nodes reject them"
                );
            }
        }
    }
    let read_timeout = server.config().read_timeout;
    http::serve_with(
        listener,
        http::router(server),
        read_timeout,
        shutdown_signal(),
    )
    .await
    .context("serving HTTP")?;
    tracing::info!("handing running jobs back to the queue");
    jobs.shutdown().await;
    tracing::info!("shut down cleanly");
    Ok(())
}

/// The authentication the flags ask for; a bad or missing auth config stops start-up.
fn auth_mode(args: &ServeArgs, base_url: &str) -> anyhow::Result<AuthMode> {
    match (args.auth, &args.auth_config) {
        (AuthKind::None, None) => Ok(AuthMode::None),
        (AuthKind::None, Some(path)) => anyhow::bail!(
            "--auth-config {} is given but --auth is none: pass --auth smart to enforce it (or drop the config)",
            path.display()
        ),
        (AuthKind::Smart, None) => {
            anyhow::bail!("--auth smart needs --auth-config FILE (or OXIFHIR_AUTH_CONFIG)")
        }
        (AuthKind::Smart, Some(path)) => {
            let config = AuthConfig::load(path)?;
            Ok(AuthMode::Smart(Arc::new(SmartAuth::new(config, base_url))))
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => tracing::info!("Ctrl-C received; shutting down"),
        _ = terminate => tracing::info!("SIGTERM received; shutting down"),
    }
}
