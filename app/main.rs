//! `cargo run` serves the reference app; `cargo run -- routes` prints its route table,
//! `cargo run -- openapi` its API contract (OpenAPI 3.1).

use std::net::SocketAddr;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match std::env::args().nth(1).as_deref() {
        Some("routes") => {
            print!("{}", arbor::RouteInfo::table(arbor_app::routes::ROUTES));
            std::process::ExitCode::SUCCESS
        }
        Some("openapi") => {
            println!("{}", arbor_app::routes::openapi().json());
            std::process::ExitCode::SUCCESS
        }
        None | Some("serve") => match serve().await {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("error: {error}");
                std::process::ExitCode::FAILURE
            }
        },
        Some(other) => {
            eprintln!(
                "error: unknown command `{other}`\n\nusage: arbor-app [serve | routes | openapi]"
            );
            std::process::ExitCode::from(2)
        }
    }
}

async fn serve() -> std::io::Result<()> {
    let invalid = |e: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, e);
    // Spans go to OTEL_EXPORTER_OTLP_ENDPOINT when it is set; dropped at exit, the export
    // flushes what it still holds.
    let export =
        arbor::otel::OtlpExport::from_env("arbor-app").map_err(|e| invalid(e.to_string()))?;
    arbor::logging::init_with(
        arbor::logging::Format::from_env(),
        export.as_ref().map(arbor::otel::OtlpExport::layer),
    );
    let metrics_setting = arbor_app::metrics::MetricsSetting::from_env().map_err(invalid)?;
    if metrics_setting != arbor_app::metrics::MetricsSetting::Off {
        // Before anything records: the stores register their metrics when they connect.
        arbor::metrics::Metrics::install()
            .map(drop)
            .map_err(|e| invalid(e.to_string()))?;
    }
    let config = arbor_app::Config::from_env().map_err(invalid)?;
    let options = arbor_app::serve_options_from_env().map_err(invalid)?;
    let state = arbor_app::AppState::new(config).await.map_err(invalid)?;
    if let arbor_app::metrics::MetricsSetting::Listener(address) = metrics_setting {
        let metrics = arbor_app::metrics::metrics(&state).map_err(invalid)?;
        let listener = tokio::net::TcpListener::bind(address).await?;
        tracing::info!("metrics on http://{}/metrics", listener.local_addr()?);
        tokio::spawn(arbor::serve(listener, metrics.router()));
    }
    let app = arbor_app::app_from_env(state).map_err(invalid)?;
    let host = std::env::var("HOST").unwrap_or_else(|_| "127.0.0.1".into());
    let port = std::env::var("PORT").unwrap_or_else(|_| "3000".into());
    let address: SocketAddr = format!("{host}:{port}").parse().map_err(|e| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("HOST/PORT: {e}"))
    })?;
    let listener = tokio::net::TcpListener::bind(address).await?;
    tracing::info!(
        "arbor reference app listening on http://{}",
        listener.local_addr()?
    );
    // Returns once the shutdown has drained (SIGTERM, Ctrl-C): `main` then exits with 0.
    arbor::serve_with(listener, app, options).await?;
    if let Some(export) = export {
        if let Err(error) = export.shutdown() {
            tracing::warn!(%error, "the last spans could not be exported");
        }
    }
    Ok(())
}
