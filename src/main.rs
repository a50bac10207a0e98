//! The `cachegate` command: parse arguments, set up logging, load the config, run.

/// jemalloc (the `jemalloc` feature, on by default): the weight of a stored entry counts its
/// allocations in jemalloc's size classes (`store::alloc_size`), and its small classes keep
/// the transient buffers of fills from fragmenting the memory between stored entries.
#[cfg(feature = "jemalloc")]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use anyhow::Context;
use cachegate::admin_client::{self, AdminClient, AdminCommand, ProgressLine, RunOutcome};
use cachegate::app::{self, App, Listeners, StartWarning};
use cachegate::config::{Config, LogFormat, SecretSource};
use cachegate::notation::format_size;
use clap::{Args, Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// A read-through caching reverse proxy for multi-tenant REST APIs.
#[derive(Parser)]
#[command(name = "cachegate", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once at start: the size of the admin variant costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Listen and proxy to the backend, caching under the route rules.
    Serve(ConfigArg),
    /// Validate the config and print the resolved route table.
    Check(ConfigArg),
    #[command(flatten)]
    Admin(AdminCommand),
}

#[derive(Args)]
struct ConfigArg {
    /// The config file. Without it, ./proxy.toml when present, else the embedded default
    /// (memory tier, backend on 127.0.0.1:8000, listening on 0.0.0.0:8080).
    #[arg(long, short, env = "CACHEGATE_CONFIG", value_name = "PATH")]
    config: Option<PathBuf>,
}

/// Exit status when the input must be fixed: a config that cannot be used, or bad operator
/// arguments, including those the argument parser refuses (64 is EX_USAGE from sysexits.h).
const EXIT_BAD_CONFIG: u8 = 64;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => return refused_arguments(&err),
    };
    let (arg, serve) = match cli.command {
        Command::Admin(command) => return admin(&command),
        Command::Serve(arg) => (arg, true),
        Command::Check(arg) => (arg, false),
    };
    let config = match load_config(arg.config.as_deref()) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("cachegate: {err:#}");
            return ExitCode::from(EXIT_BAD_CONFIG);
        }
    };
    if !serve {
        println!("{config}");
        for warning in config.trust_warnings() {
            println!("warning: {warning}");
        }
        if config.routes.routes().is_empty() {
            println!("warning: no [[route]] is configured: every request is forwarded uncached");
        }
        println!("{}: ok", config.source);
        return ExitCode::SUCCESS;
    }
    match run(config, config_path(arg.config.as_deref())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("cachegate: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Prints what the argument parser said. `--help` and `--version` are answers (exit 0); any
/// other refusal is a usage error, with the status README promises for bad input (clap's own
/// would be 2).
fn refused_arguments(err: &clap::Error) -> ExitCode {
    let _ = err.print();
    if err.use_stderr() {
        ExitCode::from(EXIT_BAD_CONFIG)
    } else {
        ExitCode::SUCCESS
    }
}

/// The admin API URL when neither `--admin` nor `CACHEGATE_ADMIN_URL` gives one: the `[admin]
/// listen` address of the config `serve` would use (`CACHEGATE_CONFIG` or ./proxy.toml), else
/// the documented default.
fn default_admin_url() -> String {
    let path = std::env::var_os("CACHEGATE_CONFIG").map(PathBuf::from);
    load_config(path.as_deref())
        .ok()
        .and_then(|config| config.admin)
        .map_or_else(
            || admin_client::DEFAULT_ADMIN_URL.to_string(),
            |admin| admin_client::admin_url_for_listen(admin.listen),
        )
}

/// Runs an operator subcommand (`purge`, `stats`, `warm`, `entries`) against the admin API.
fn admin(command: &AdminCommand) -> ExitCode {
    let failed = |err: admin_client::AdminError| {
        eprintln!("cachegate: {err}");
        if err.is_usage() {
            ExitCode::from(EXIT_BAD_CONFIG)
        } else {
            ExitCode::FAILURE
        }
    };
    let args = command.admin();
    let url = args.url.clone().unwrap_or_else(default_admin_url);
    let client = match admin_client::resolve_token(args)
        .and_then(|token| AdminClient::new(&url, &token, args.timeout))
    {
        Ok(client) => client,
        Err(err) => return failed(err),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("cachegate: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    use std::io::IsTerminal;
    let stderr = std::io::stderr();
    let mut progress = ProgressLine::new(stderr.lock(), stderr.is_terminal());
    let mut stdout = std::io::stdout().lock();
    match runtime.block_on(admin_client::run(
        &client,
        command,
        &mut stdout,
        &mut progress,
    )) {
        Ok(RunOutcome::Success) => ExitCode::SUCCESS,
        Ok(RunOutcome::Partial) => ExitCode::FAILURE,
        Err(err) => failed(err),
    }
}

/// The file [`load_config`] reads, which reloads read again; `None` for the embedded default.
fn config_path(path: Option<&Path>) -> Option<PathBuf> {
    match path {
        Some(path) => Some(path.to_path_buf()),
        None => {
            let default = Path::new("proxy.toml");
            default.exists().then(|| default.to_path_buf())
        }
    }
}

fn load_config(path: Option<&Path>) -> anyhow::Result<Config> {
    match path {
        Some(path) => Ok(Config::load(path)?),
        None => {
            let default = Path::new("proxy.toml");
            if default.exists() {
                Ok(Config::load(default)?)
            } else {
                Ok(Config::embedded_default())
            }
        }
    }
}

/// Logging to stderr: `RUST_LOG` when set, else `[log] level`, else `info`; text or JSON lines
/// as `[log] format` says.
fn init_tracing(config: &Config) {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(config.log.level.as_deref().unwrap_or("info")))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match config.log.format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => builder.json().with_current_span(false).init(),
    }
}

fn run(config: Config, path: Option<PathBuf>) -> anyhow::Result<()> {
    init_tracing(&config);
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_all();
    if let Some(workers) = config.server.workers {
        runtime.worker_threads(workers);
    }
    let runtime = runtime.build().context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let listeners = Listeners::bind(&config).await?;
        let app = App::build(config, app::read_secret)?;
        for warning in app.warnings() {
            warn_at_start(warning);
        }
        if let Some(path) = path {
            app.reload_from(path);
        }
        // Installed before serving: from now on SIGHUP reloads the config instead of ending
        // the process.
        #[cfg(unix)]
        match app.reloader().on_sighup() {
            Ok(reloads) => {
                tokio::spawn(reloads);
            }
            Err(err) => tracing::error!(error = %err, "cannot listen for SIGHUP: reload through the admin API"),
        }
        let config = app.config();
        for warning in config.trust_warnings() {
            tracing::warn!("{warning}");
        }
        tracing::info!(
            config = %config.source,
            listen = ?config.server.listen,
            upstream = %config.upstream.url,
            routes = config.routes.routes().len(),
            "cachegate {} serving",
            env!("CARGO_PKG_VERSION"),
        );
        if let Some(admin) = &config.admin {
            tracing::info!(listen = %admin.listen, "admin API serving");
        }
        app.serve(listeners, shutdown_signal()).await;
        tracing::info!("stopped");
        Ok(())
    })
}

/// Logs what the operator should hear about at start, each with what to do about it.
fn warn_at_start(warning: &StartWarning) {
    match warning {
        StartWarning::NoWebhookSecret(source) => tracing::warn!(
            source = %source,
            "no webhook secret is set: invalidation webhooks will be refused; to accept them, {} \
             (e.g. the output of `openssl rand -hex 32`), and give the backend the same value",
            set_secret(source)
        ),
        StartWarning::NoKeySecret(source) => tracing::warn!(
            source = %source,
            "no credential digest key is set: digests in keys and logs differ per process and \
             restart; {} (any random string, the same on every instance)",
            set_secret(source)
        ),
        StartWarning::NoAdminToken(source) => tracing::warn!(
            source = %source,
            "no admin token is set: the admin API answers only /healthz and /readyz; {} \
             (e.g. the output of `openssl rand -hex 32`), or remove [admin] to run without it",
            set_secret(source)
        ),
        StartWarning::UnstorableObjects {
            max_object_size,
            admissible,
        } => tracing::warn!(
            max_object_size,
            admissible,
            "responses between {} and {} are fetched whole but never stored; set \
             [cache] max_object_size = \"{}\", or raise [cache] max_memory",
            format_size(*admissible),
            format_size(*max_object_size),
            format_size(*admissible),
        ),
    }
}

/// What to do to set a secret: the environment variable the config names.
fn set_secret(source: &SecretSource) -> String {
    match source {
        SecretSource::Env(name) => format!("set the environment variable {name}"),
        SecretSource::File(path) => format!("write it to {}", path.display()),
    }
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %err, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
