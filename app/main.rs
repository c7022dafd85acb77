//! `cargo run` serves the reference app; `cargo run -- routes` prints its route table,
//! `cargo run -- openapi` its API contract (OpenAPI 3.1), `cargo run -- openapi --diff
//! OLD.json` the breaking changes since `OLD.json`, and `cargo run -- openapi --typescript` a
//! TypeScript client of it.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match std::env::args().nth(1).as_deref() {
        Some("routes") => {
            print!("{}", arbor::RouteInfo::table(arbor_app::routes::ROUTES));
            std::process::ExitCode::SUCCESS
        }
        Some("openapi") => match std::env::args().nth(2).as_deref() {
            None => {
                println!("{}", arbor_app::routes::openapi().json());
                std::process::ExitCode::SUCCESS
            }
            Some("--diff") => openapi_diff(std::env::args().nth(3)),
            Some("--typescript") => {
                let document = arbor_app::routes::openapi().document();
                print!("{}", arbor::openapi::typescript_client(document));
                std::process::ExitCode::SUCCESS
            }
            Some(other) => {
                eprintln!("error: unknown option `{other}`\n\nusage: arbor-app openapi [--diff OLD.json | --typescript]");
                std::process::ExitCode::from(2)
            }
        },
        None | Some("serve") => match serve().await {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("error: {error}");
                std::process::ExitCode::FAILURE
            }
        },
        Some(other) => {
            eprintln!(
                "error: unknown command `{other}`\n\nusage: arbor-app [serve | routes | openapi [--diff OLD.json | --typescript]]"
            );
            std::process::ExitCode::from(2)
        }
    }
}

/// `openapi --diff OLD.json`: the breaking changes from `OLD.json` to this build's contract;
/// exit status 1 when there are any, 2 when the old document cannot be read.
fn openapi_diff(old: Option<String>) -> std::process::ExitCode {
    let Some(old) = old else {
        eprintln!(
            "error: `--diff` needs the old document\n\nusage: arbor-app openapi --diff OLD.json"
        );
        return std::process::ExitCode::from(2);
    };
    let old: serde_json::Value = match std::fs::read(&old)
        .map_err(|e| e.to_string())
        .and_then(|bytes| serde_json::from_slice(&bytes).map_err(|e| e.to_string()))
    {
        Ok(old) => old,
        Err(error) => {
            eprintln!("error: reading {old}: {error}");
            return std::process::ExitCode::from(2);
        }
    };
    let changes = arbor::openapi::breaking_changes(&old, arbor_app::routes::openapi().document());
    if changes.is_empty() {
        println!("no breaking changes");
        return std::process::ExitCode::SUCCESS;
    }
    println!("{} breaking change(s):", changes.len());
    for change in &changes {
        println!("  {change}");
    }
    std::process::ExitCode::FAILURE
}

async fn serve() -> std::io::Result<()> {
    let invalid = |e: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, e);
    // Spans go to OTEL_EXPORTER_OTLP_ENDPOINT when it is set; dropped at exit, the export
    // flushes what it still holds.
    let export =
        arbor::otel::OtlpExport::from_env("arbor-app").map_err(|e| invalid(e.to_string()))?;
    // Dropped when `serve` returns: the log lines still queued are written.
    let _logs = arbor::logging::init_with(
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
    // `HOST` and `PORT` (default 3000), or the socket `cargo arbor dev` hands over.
    let listener = arbor::listener_from_env(3000).await?;
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
