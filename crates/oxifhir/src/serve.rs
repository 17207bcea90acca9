//! `oxifhir serve`: open the store, bind, serve until Ctrl-C or SIGTERM, then drain.

use anyhow::Context;
use oxifhir_server::{FhirServer, ServerConfig, http};

use crate::cli::ServeArgs;

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
    let config = ServerConfig {
        base_url: base_url.trim_end_matches('/').to_string(),
        max_body_bytes: args.max_body_bytes,
        default_count: args.default_count.max(1),
        max_count: args.max_count.max(1),
    };
    let server = FhirServer::new(store.clone(), config);
    let search_params = server
        .load_search_params()
        .await
        .map_err(|e| anyhow::anyhow!("loading search parameters: {}", e.message()))?;
    tracing::info!(
        custom = search_params.custom().len(),
        "search parameters loaded"
    );
    tracing::info!(
        backend = store.backend_name(),
        listen = %local,
        base_url = %base_url,
        "oxifhir is serving FHIR R4; authentication is OFF (--auth none): anyone who can reach this address can read and write everything"
    );
    http::serve(listener, http::router(server), shutdown_signal())
        .await
        .context("serving HTTP")?;
    tracing::info!("shut down cleanly");
    Ok(())
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
