//! The operator's side of the admin API: `cachegate purge | stats | warm | entries | reload`.
//!
//! The request and answer bodies are the server's own types (`crate::admin_api`, and
//! `crate::stats::Report` for `/stats`); this module owns how they are built from the command
//! line and shown to the operator:
//!
//! - `args`: the subcommands' flags, and the bodies they ask for;
//! - `client`: an HTTP client for the admin API, one function per endpoint, and the errors;
//! - `warm`: warm lists, batches and progress;
//! - `stats`, `render`: the readable renderings.
//!
//! `main` only resolves the URL and token, starts a runtime and calls [`run`], so everything an
//! operator sees is reachable from unit tests.

mod args;
mod client;
mod render;
mod stats;
mod warm;

#[cfg(test)]
mod tests;

pub use crate::admin_api::{
    EntriesAnswer, EntriesQuery, Entry, PurgeAnswer, PurgeBody, ReloadAnswer, WarmReport,
    WarmRequest, Warmed,
};
pub use crate::stats::Report;
pub use args::{
    admin_url_for_listen, parse_capture, resolve_token, AdminArgs, EntriesArgs, PurgeArgs,
    ReloadArgs, StatsArgs, WarmArgs,
};
pub use client::{entries, purge, reload, stats, warm_batch, AdminClient, AdminError, Reply};
pub use render::{human_size, render_entries, render_purge, render_reload};
pub use stats::render_stats;
pub use warm::{
    parse_warm_list, read_warm_list, render_warm_failures, warm, ProgressLine, WarmProgress,
};

use clap::Subcommand;
use std::io::Write;

/// Where the admin API listens when neither `--admin` nor the environment says otherwise.
pub const DEFAULT_ADMIN_URL: &str = "http://127.0.0.1:9090";

/// Environment variable naming the admin API URL.
pub const ADMIN_URL_ENV: &str = "CACHEGATE_ADMIN_URL";

/// Environment variable holding the admin bearer token.
pub const ADMIN_TOKEN_ENV: &str = "CACHEGATE_ADMIN_TOKEN";

/// One admin subcommand, ready to [`run`].
#[derive(Subcommand, Debug, Clone)]
pub enum AdminCommand {
    /// Purge cache entries by tag, path, prefix, tenant or user, or forget verified credentials.
    Purge(PurgeArgs),
    /// Print the cache's hit ratio, counters, and per-route and per-tenant traffic.
    Stats(StatsArgs),
    /// Warm the cache with the paths listed in a file, or with a route's captures.
    Warm(WarmArgs),
    /// List stored entries.
    Entries(EntriesArgs),
    /// Reload the running instance's config file (as SIGHUP does) and print what changed and
    /// what needs a restart; an invalid file is refused and the running config stays.
    Reload(ReloadArgs),
}

impl AdminCommand {
    /// The flags every admin subcommand shares.
    pub fn admin(&self) -> &AdminArgs {
        match self {
            AdminCommand::Purge(args) => &args.admin,
            AdminCommand::Stats(args) => &args.admin,
            AdminCommand::Warm(args) => &args.admin,
            AdminCommand::Entries(args) => &args.admin,
            AdminCommand::Reload(args) => &args.admin,
        }
    }
}

/// What a command's run means for the exit status, once it did not fail outright.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunOutcome {
    Success,
    /// Some warmed paths failed; they were listed.
    Partial,
}

/// Runs `command` against `client`, writing the result to `out` (the raw JSON with `--json`)
/// and warm progress to `progress`.
pub async fn run<O: Write, P: Write>(
    client: &AdminClient,
    command: &AdminCommand,
    out: &mut O,
    progress: &mut ProgressLine<P>,
) -> Result<RunOutcome, AdminError> {
    let json = command.admin().json;
    match command {
        AdminCommand::Purge(args) => {
            let reply = purge(client, &args.body()).await?;
            emit(out, json, &reply, render_purge)?;
        }
        AdminCommand::Stats(_) => {
            let reply = stats(client).await?;
            emit(out, json, &reply, render_stats)?;
        }
        AdminCommand::Entries(args) => {
            let reply = entries(client, &args.query()).await?;
            emit(out, json, &reply, |answer| render_entries(&answer.entries))?;
        }
        AdminCommand::Reload(_) => {
            let reply = reload(client).await?;
            emit(out, json, &reply, render_reload)?;
        }
        AdminCommand::Warm(args) => {
            let plan = args.plan()?;
            let batch = usize::try_from(args.batch).unwrap_or(usize::MAX);
            let result = warm(client, &plan, batch, |p| progress.update(&p)).await;
            progress.finish();
            let summary = result?;
            if json {
                let text = serde_json::to_string(&summary)
                    .map_err(|err| AdminError::Protocol(err.to_string()))?;
                writeln!(out, "{text}")?;
            } else {
                out.write_all(render_warm_failures(&summary.results).as_bytes())?;
            }
            out.flush()?;
            if summary.failed > 0 {
                return Ok(RunOutcome::Partial);
            }
        }
    }
    Ok(RunOutcome::Success)
}

fn emit<T, O: Write>(
    out: &mut O,
    json: bool,
    reply: &Reply<T>,
    render: impl FnOnce(&T) -> String,
) -> Result<(), AdminError> {
    let text = if json {
        reply.raw_text()
    } else {
        render(&reply.value)
    };
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}
