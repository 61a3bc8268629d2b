//! Command line → Config → run the server until SIGINT/SIGTERM.

mod memory;

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use hlss::access::{Accounts, Secret};
use hlss::config::{Cli, Command, Config, UserAction};
use hlss::http::{self, App};
use hlss::library::Library;
use hlss::stream::{Budget, Registry};

/// How long shutdown waits for responses in flight, and then for pipelines to stop.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(5);
/// How often streams look at the time: the precision of their time-outs.
const STREAM_TICK: std::time::Duration = std::time::Duration::from_millis(200);
/// How often the users file is read to see whether it changed.
const USERS_POLL: std::time::Duration = std::time::Duration::from_secs(2);

fn main() -> ExitCode {
    // GStreamer reads its plugin registry during `gst::init`; `registry` keeps the cache open
    // until the process ends.
    let registry = hlss::transcode::registry_env();
    for (name, value) in &registry.vars {
        // SAFETY: nothing has started a thread yet (the runtime and GStreamer come later), so no
        // other thread can be reading the environment.
        unsafe { std::env::set_var(name, value) };
    }
    let mut cli = Cli::parse();
    if let Some(command) = cli.command.take() {
        return match command_line(command) {
            Ok(()) => ExitCode::SUCCESS,
            Err(message) => {
                eprintln!("hlss: {message}");
                ExitCode::FAILURE
            }
        };
    }
    let config = match Config::try_from(cli) {
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
    tracing::debug!("{}", registry.reason);
    match run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("hlss: {message}");
            ExitCode::FAILURE
        }
    }
}

/// `hlss user add` and `hlss link`: print a line and leave.
fn command_line(command: Command) -> Result<(), String> {
    match command {
        Command::User {
            action: UserAction::Add { name },
        } => {
            if !hlss::access::users::valid_name(&name) {
                return Err(hlss::access::UsersError::BadName.to_string());
            }
            let password = read_password(&name)?;
            let line =
                hlss::access::users::line_for(&name, &password).map_err(|e| e.to_string())?;
            println!("{line}");
            Ok(())
        }
        Command::Link {
            path,
            expires,
            secret_file,
            base,
            page,
        } => {
            let secret = Secret::from_file(&secret_file).map_err(|e| e.to_string())?;
            let rel = hlss::library::RelPath::parse(path.trim_start_matches('/'))
                .filter(|rel| !rel.is_root())
                .ok_or_else(|| format!("{path:?} is not a file's path in the library"))?;
            let shared = http::signed_link(&secret, &rel, *expires).ok_or_else(|| {
                "--expires must be more than a second and at most a year".to_owned()
            })?;
            let base = base.unwrap_or_default();
            let path = if page { shared.page } else { shared.playlist };
            println!("{}{path}", base.trim_end_matches('/'));
            Ok(())
        }
    }
}

/// The password for `hlss user add`: asked twice without echo on a terminal, else the first
/// line of standard input.
fn read_password(name: &str) -> Result<String, String> {
    use std::io::IsTerminal;
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password(format!("Password for {name}: "))
            .map_err(|e| format!("cannot read the password: {e}"))?;
        let again = rpassword::prompt_password("Again: ")
            .map_err(|e| format!("cannot read the password: {e}"))?;
        if first != again {
            return Err("the two passwords differ".into());
        }
        return Ok(first);
    }
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|e| format!("cannot read the password: {e}"))?;
    Ok(line.trim_end_matches(['\n', '\r']).to_owned())
}

fn run(config: Config) -> Result<(), String> {
    gst::init().map_err(|err| format!("cannot initialise GStreamer: {err}"))?;
    // Before listening: the first viewer after a start should not wait for plugins to load.
    let warmed = hlss::transcode::warm_up();
    tracing::debug!("GStreamer plugins loaded in {warmed:.0?}");
    let library = Library::open(config.path.as_deref()).map_err(|err| err.to_string())?;
    let gate = match &config.access.users {
        Some(users) => {
            let accounts = Accounts::load(users).map_err(|err| err.to_string())?;
            let secret = match &config.access.secret_file {
                Some(file) => Secret::from_file(file),
                None => Secret::random(),
            }
            .map_err(|err| err.to_string())?;
            if accounts.count() == 0 {
                tracing::warn!(
                    "{} lists nobody: nobody can log in (add lines made by `hlss user add NAME`)",
                    users.display()
                );
            }
            Some(http::auth::Gate::new(
                Arc::new(accounts),
                secret,
                config.access.login_attempts,
                config.tls.is_some(),
            ))
        }
        None => None,
    };
    let certificates = match &config.tls {
        Some((cert, key)) => {
            Some(http::tls::Certificates::load(cert, key).map_err(|err| err.to_string())?)
        }
        None => None,
    };
    // Bound here rather than by warp, which panics when the port is taken.
    let listener = std::net::TcpListener::bind(config.listen)
        .map_err(|err| format!("cannot listen on {}: {err}", config.listen))?;
    listener
        .set_nonblocking(true)
        .map_err(|err| format!("cannot listen on {}: {err}", config.listen))?;
    let local = listener
        .local_addr()
        .map_err(|err| format!("cannot listen on {}: {err}", config.listen))?;
    let admin = match config.metrics_listen {
        Some(address) => {
            let cannot = |err: std::io::Error| format!("cannot listen on {address}: {err}");
            let admin = std::net::TcpListener::bind(address).map_err(cannot)?;
            admin.set_nonblocking(true).map_err(cannot)?;
            let at = admin.local_addr().map_err(cannot)?;
            Some((admin, at))
        }
        None => None,
    };

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|err| format!("cannot start the async runtime: {err}"))?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener)
            .map_err(|err| format!("cannot listen on {local}: {err}"))?;
        tracing::info!("serving {}", library.describe());
        let budget = Budget::new(config.max_transcodes, config.memory_budget);
        let app = Arc::new(App {
            library,
            registry: Registry::new(config.encoder.clone(), config.stream, budget),
            stats: Default::default(),
            web: config.web.clone(),
            admin_apart: admin.is_some(),
            gate,
            trusted_proxies: config.access.trusted_proxies.clone(),
        });
        // Tests and scripts read the port from this line when they asked for port 0.
        let mut stdout = std::io::stdout();
        let scheme = if certificates.is_some() {
            "https"
        } else {
            "http"
        };
        let _ = writeln!(stdout, "hlss: listening on {scheme}://{local}/");
        if let Some((_, at)) = &admin {
            let _ = writeln!(stdout, "hlss: metrics and status on http://{at}/");
        }
        let _ = stdout.flush();

        let sweeper = tokio::spawn(sweep(app.clone(), config.idle_timeout));
        let ticker = tokio::spawn(tick(app.clone()));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        // hlss's own accept loop (not warp::serve): it bounds slow clients and catches panics.
        let tls = certificates.as_ref().map(http::tls::Certificates::acceptor);
        let reloader = tokio::spawn(reload_on_hangup(app.clone(), certificates));
        let users_watch = tokio::spawn(watch_users(app.clone()));
        let (stop_admin, admin_stopped) = tokio::sync::oneshot::channel::<()>();
        let admin_server = match admin {
            Some((admin, at)) => {
                let admin = tokio::net::TcpListener::from_std(admin)
                    .map_err(|err| format!("cannot listen on {at}: {err}"))?;
                let role = http::Listener::Admin;
                Some(tokio::spawn(http::serve::serve(
                    admin,
                    app.clone(),
                    role,
                    None,
                    async {
                        let _ = admin_stopped.await;
                    },
                )))
            }
            None => None,
        };
        let role = http::Listener::Public;
        let server = http::serve::serve(listener, app.clone(), role, tls, async {
            let _ = stopped.await;
        });
        tokio::pin!(server);
        tokio::select! {
            () = &mut server => {}
            () = shutdown_signal() => {
                tracing::info!("shutting down: no new connections; finishing responses in flight");
                let _ = stop.send(());
                let _ = stop_admin.send(());
                if tokio::time::timeout(SHUTDOWN_GRACE, &mut server).await.is_err() {
                    tracing::warn!(
                        "responses still in flight after {} s; closing them",
                        SHUTDOWN_GRACE.as_secs()
                    );
                }
            }
        }
        sweeper.abort();
        ticker.abort();
        reloader.abort();
        users_watch.abort();
        if let Some(admin_server) = admin_server {
            admin_server.abort();
        }
        app.registry.clear();
        // Pipelines stop on their own bus threads; give them a moment to reach NULL.
        let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE;
        while hlss::transcode::running() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        tracing::info!(pipelines_left = hlss::transcode::running(), "stopped");
        Ok::<(), String>(())
    })
}

/// Closes idle streams every second (or more often for short timeouts), and returns the memory of
/// pipelines that stopped to the system.
async fn sweep(app: Arc<App>, idle_timeout: std::time::Duration) {
    let period = (idle_timeout / 4).clamp(
        std::time::Duration::from_millis(250),
        std::time::Duration::from_secs(1),
    );
    let mut ticks = tokio::time::interval(period);
    let mut pipelines = 0;
    loop {
        ticks.tick().await;
        app.registry.sweep(idle_timeout);
        // Pipelines that stopped since the last tick freed their frames: give the memory back.
        let now = hlss::transcode::running();
        if now < pipelines {
            tokio::task::spawn_blocking(memory::release);
        }
        pipelines = now;
    }
}

/// Lets streams make their time-based decisions (request time-outs, idle runs, waiting for a
/// transcode place).
async fn tick(app: Arc<App>) {
    let mut ticks = tokio::time::interval(STREAM_TICK);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        app.registry.tick();
    }
}

/// Reads the TLS certificate and key and the users file again on every SIGHUP (renewed
/// certificates take effect without a restart; connections already open keep theirs).
async fn reload_on_hangup(app: Arc<App>, certificates: Option<Arc<http::tls::Certificates>>) {
    let Ok(mut hangups) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
    else {
        tracing::warn!("cannot listen for SIGHUP: certificates and users are read only at start");
        return;
    };
    while hangups.recv().await.is_some() {
        if let Some(certificates) = certificates.clone() {
            match tokio::task::spawn_blocking(move || certificates.reload()).await {
                Ok(Ok(())) => tracing::info!("TLS certificate read again"),
                Ok(Err(err)) => tracing::error!("{err}; the certificate in use stays"),
                Err(err) => tracing::error!("reading the TLS certificate: {err}"),
            }
        }
        reload_users(&app).await;
    }
}

/// Reads the users file every couple of seconds and takes it when it changed: adding or
/// removing a user, or changing a password, needs no restart.
async fn watch_users(app: Arc<App>) {
    if app.gate.is_none() {
        return;
    }
    let mut ticks = tokio::time::interval(USERS_POLL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        reload_users(&app).await;
    }
}

async fn reload_users(app: &Arc<App>) {
    if app.gate.is_none() {
        return;
    }
    let read = app.clone();
    let outcome = tokio::task::spawn_blocking(move || {
        read.gate.as_ref().map(|gate| gate.accounts().reload())
    })
    .await;
    let Some(gate) = app.gate.as_ref() else {
        return;
    };
    let path = gate.accounts().path().display();
    match outcome {
        Ok(Some(Ok(true))) => {
            tracing::info!("{path} changed: {} users", gate.accounts().count());
        }
        Ok(Some(Ok(false))) | Ok(None) => {}
        // Logged at each poll while it stays broken: rare, and worth seeing.
        Ok(Some(Err(err))) => tracing::error!("{err}; the users read before stay"),
        Err(err) => tracing::error!("reading the users file: {err}"),
    }
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
