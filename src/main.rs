//! Command line → Config → run the server until SIGINT/SIGTERM.

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use hlss::config::{Cli, Config};
use hlss::http::{self, App};
use hlss::library::Library;
use hlss::stream::Registry;

fn main() -> ExitCode {
    let config = match Config::try_from(Cli::parse()) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("hlss: {err}");
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("hlss=info")),
        )
        .init();
    match run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("hlss: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(config: Config) -> Result<(), String> {
    gst::init().map_err(|err| format!("cannot initialise GStreamer: {err}"))?;
    let library = Library::open(config.path.as_deref()).map_err(|err| err.to_string())?;
    // Bound here rather than by warp, which panics when the port is taken.
    let listener = std::net::TcpListener::bind(config.listen)
        .map_err(|err| format!("cannot listen on {}: {err}", config.listen))?;
    listener
        .set_nonblocking(true)
        .map_err(|err| format!("cannot listen on {}: {err}", config.listen))?;
    let local = listener
        .local_addr()
        .map_err(|err| format!("cannot listen on {}: {err}", config.listen))?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|err| format!("cannot start the async runtime: {err}"))?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener)
            .map_err(|err| format!("cannot listen on {local}: {err}"))?;
        tracing::info!("serving {}", library.describe());
        let app = Arc::new(App {
            library,
            registry: Registry::new(config.encoder.clone(), config.stream),
        });
        // Tests and scripts read the port from this line when they asked for port 0.
        let mut stdout = std::io::stdout();
        let _ = writeln!(stdout, "hlss: listening on http://{local}/");
        let _ = stdout.flush();

        warp::serve(http::routes(app.clone()))
            .incoming(listener)
            .graceful(shutdown_signal())
            .run()
            .await;
        tracing::info!("shutting down");
        app.registry.clear();
        Ok::<(), String>(())
    })
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async {
            match term.as_mut() {
                Some(term) => { term.recv().await; }
                None => std::future::pending::<()>().await,
            }
        } => {}
    }
}
