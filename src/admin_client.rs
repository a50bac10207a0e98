//! The operator's side of the admin API: `cachegate purge | stats | warm | entries`.
//!
//! Owns the command-line arguments of those subcommands, the wire types of the admin contract,
//! one async function per endpoint (each taking an [`AdminClient`]) and the human renderings
//! printed to the terminal. `main` only resolves the URL and token, starts a runtime and calls
//! [`run`], so everything an operator sees is reachable from unit tests.

use crate::notation::{format_duration, parse_duration};
use bytes::Bytes;
use clap::{Args, Subcommand};
use http::header::{HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE, USER_AGENT};
use http::{Method, Request, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use std::borrow::Cow;
use std::fmt;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

#[cfg(test)]
mod tests;

/// Where the admin API listens when neither `--admin` nor the environment says otherwise.
pub const DEFAULT_ADMIN_URL: &str = "http://127.0.0.1:9090";

/// Environment variable naming the admin API URL.
pub const ADMIN_URL_ENV: &str = "CACHEGATE_ADMIN_URL";

/// Environment variable holding the admin bearer token.
pub const ADMIN_TOKEN_ENV: &str = "CACHEGATE_ADMIN_TOKEN";

/// The largest admin response read; an entries listing is the only large one, and a runaway
/// answer should end in an error rather than in the operator's terminal eating memory.
const MAX_RESPONSE_BYTES: usize = 64 << 20;

/// How many tenants `stats` lists.
const TOP_TENANTS: usize = 20;

// === command-line arguments ===

/// Flags shared by every admin subcommand.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Admin API")]
pub struct AdminArgs {
    /// The admin API, e.g. http://127.0.0.1:9090 [default: the config's [admin] listen address,
    /// else http://127.0.0.1:9090]
    #[arg(long = "admin", env = ADMIN_URL_ENV, value_name = "URL")]
    pub url: Option<String>,
    /// The admin bearer token.
    #[arg(long, env = ADMIN_TOKEN_ENV, value_name = "TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// A file holding the admin bearer token (surrounding whitespace ignored); wins over --token
    /// and the environment.
    #[arg(long, value_name = "PATH")]
    pub token_file: Option<PathBuf>,
    /// Print the admin API's JSON answer instead of the readable summary.
    #[arg(long)]
    pub json: bool,
    /// How long one admin request may take, e.g. 30s or 2m.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub timeout: Duration,
}

/// `cachegate purge`: what to drop (or mark stale) from the cache.
#[derive(Args, Debug, Clone)]
#[command(group(clap::ArgGroup::new("what").required(true).multiple(true)))]
pub struct PurgeArgs {
    /// The tenant scope: a tenant id, or * for every tenant; without it, the shared (untenanted)
    /// entries, or every tenant with --all.
    #[arg(long, value_name = "TENANT")]
    pub tenant: Option<String>,
    /// Purge entries carrying this tag (repeatable), e.g. faculty or faculty:12.
    #[arg(long = "tag", value_name = "TAG", group = "what")]
    pub tags: Vec<String>,
    /// Purge this exact path, every query variant unless it has a ?query (repeatable).
    #[arg(long = "path", value_name = "PATH", group = "what")]
    pub paths: Vec<String>,
    /// Purge every entry whose path starts with this prefix (repeatable).
    #[arg(long = "prefix", value_name = "PREFIX", group = "what")]
    pub prefixes: Vec<String>,
    /// Purge everything in the tenant scope (every tenant when --tenant is not given).
    #[arg(long, group = "what")]
    pub all: bool,
    /// Mark the entries stale instead of deleting them.
    #[arg(long)]
    pub soft: bool,
    #[command(flatten)]
    pub admin: AdminArgs,
}

/// `cachegate warm`: fetch a list of paths through the cache so they are stored.
#[derive(Args, Debug, Clone)]
pub struct WarmArgs {
    /// The tenant to warm for; without it, the shared (untenanted) routes.
    #[arg(long, value_name = "TENANT")]
    pub tenant: Option<String>,
    /// One path or URL per line (blank lines and # comments skipped); - reads standard input.
    #[arg(long, value_name = "PATH")]
    pub file: PathBuf,
    /// The Host header the warming requests carry, for host-routed tenants.
    #[arg(long, value_name = "HOST")]
    pub host: Option<String>,
    /// How many requests the server runs at once for each batch.
    #[arg(long, value_name = "N", default_value_t = 8,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub concurrency: u32,
    /// How many paths go in one request to the admin API.
    #[arg(long, value_name = "N", default_value_t = 50,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub batch: u32,
    #[command(flatten)]
    pub admin: AdminArgs,
}

/// `cachegate stats`: nothing beyond the shared flags.
#[derive(Args, Debug, Clone)]
pub struct StatsArgs {
    #[command(flatten)]
    pub admin: AdminArgs,
}

/// `cachegate entries`: list stored entries.
#[derive(Args, Debug, Clone)]
pub struct EntriesArgs {
    /// Only entries of this tenant.
    #[arg(long, value_name = "TENANT")]
    pub tenant: Option<String>,
    /// Only entries whose path starts with this prefix.
    #[arg(long, value_name = "PREFIX")]
    pub prefix: Option<String>,
    /// At most this many entries.
    #[arg(long, value_name = "N")]
    pub limit: Option<u64>,
    #[command(flatten)]
    pub admin: AdminArgs,
}

/// One admin subcommand, ready to [`run`].
#[derive(Subcommand, Debug, Clone)]
pub enum AdminCommand {
    /// Purge cache entries by tag, path, prefix or tenant.
    Purge(PurgeArgs),
    /// Print the cache's hit ratio, counters, and per-route and per-tenant traffic.
    Stats(StatsArgs),
    /// Warm the cache with the paths listed in a file.
    Warm(WarmArgs),
    /// List stored entries.
    Entries(EntriesArgs),
}

impl AdminCommand {
    /// The flags every admin subcommand shares.
    pub fn admin(&self) -> &AdminArgs {
        match self {
            AdminCommand::Purge(args) => &args.admin,
            AdminCommand::Stats(args) => &args.admin,
            AdminCommand::Warm(args) => &args.admin,
            AdminCommand::Entries(args) => &args.admin,
        }
    }
}

impl PurgeArgs {
    /// The purge body these flags ask for. `--all` without a tenant names every tenant
    /// explicitly, because the server refuses `all` for the implicit shared scope.
    pub fn request(&self) -> PurgeRequest {
        let tenant = match (&self.tenant, self.all) {
            (None, true) => Some("*".to_string()),
            (tenant, _) => tenant.clone(),
        };
        PurgeRequest {
            tenant,
            tags: self.tags.clone(),
            paths: self.paths.clone(),
            prefixes: self.prefixes.clone(),
            all: self.all,
            soft: self.soft,
        }
    }
}

/// The token from the flags: `--token-file` first (an explicit file beats an inherited
/// environment variable), then `--token` or `CACHEGATE_ADMIN_TOKEN`.
pub fn resolve_token(args: &AdminArgs) -> Result<String, AdminError> {
    if let Some(path) = &args.token_file {
        let text = std::fs::read_to_string(path)
            .map_err(|err| AdminError::Input(format!("cannot read {}: {err}", path.display())))?;
        let token = text.trim();
        if token.is_empty() {
            return Err(AdminError::Input(format!(
                "the token file {} is empty",
                path.display()
            )));
        }
        return Ok(token.to_string());
    }
    match args.token.as_deref() {
        Some(token) if !token.is_empty() => Ok(token.to_string()),
        _ => Err(AdminError::MissingToken),
    }
}

/// The URL a client on the same host uses to reach a server listening on `addr`: a wildcard
/// address is where the server binds, not somewhere to connect to, so it becomes the loopback
/// address of the same family.
pub fn admin_url_for_listen(addr: SocketAddr) -> String {
    let ip = match addr.ip() {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}", SocketAddr::new(ip, addr.port()))
}

// === errors ===

/// Why an admin command failed. The messages are printed as they are after `cachegate: `.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("no admin token: pass --token or --token-file, or set {ADMIN_TOKEN_ENV}")]
    MissingToken,
    #[error("the admin token contains characters that cannot be sent in a header")]
    BadToken,
    #[error("invalid admin URL \"{url}\": {reason}")]
    BadUrl { url: String, reason: String },
    #[error("cannot reach the admin API at {url}: {detail}")]
    Unreachable { url: String, detail: String },
    #[error("the admin API at {url} did not answer within {}", format_duration(*.timeout))]
    Timeout { url: String, timeout: Duration },
    #[error("the admin API refused the token (401)")]
    Unauthorized,
    #[error("the admin API answered {status}: {detail}")]
    Status { status: u16, detail: String },
    #[error("unexpected answer from the admin API: {0}")]
    Protocol(String),
    /// The operator's input (a file, a list) cannot be used.
    #[error("{0}")]
    Input(String),
    #[error("cannot write the output: {0}")]
    Output(#[from] std::io::Error),
}

impl AdminError {
    /// Whether the operator's input is at fault (usage exit status) rather than the server or
    /// the network.
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            AdminError::MissingToken
                | AdminError::BadToken
                | AdminError::BadUrl { .. }
                | AdminError::Input(_)
        )
    }
}

/// The `{"error", "detail"}` shape of every non-2xx admin answer.
#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    detail: Option<String>,
}

// === the client ===

/// A connection pool on one admin API with its token and per-request timeout.
pub struct AdminClient {
    client: Client<HttpConnector, Full<Bytes>>,
    /// `http://host:port` plus any path prefix, without a trailing slash.
    base: String,
    authorization: HeaderValue,
    timeout: Duration,
}

/// A decoded admin answer together with the bytes it came from, for `--json`.
#[derive(Debug, Clone)]
pub struct Reply<T> {
    pub value: T,
    pub raw: Bytes,
}

impl<T> Reply<T> {
    /// The raw answer as text, ending in a newline.
    pub fn raw_text(&self) -> String {
        let mut text = String::from_utf8_lossy(&self.raw).into_owned();
        if !text.ends_with('\n') {
            text.push('\n');
        }
        text
    }
}

impl AdminClient {
    /// A client for the admin API at `url` (`http://` is assumed when no scheme is given).
    pub fn new(url: &str, token: &str, timeout: Duration) -> Result<AdminClient, AdminError> {
        let base = base_url(url)?;
        if token.is_empty() {
            return Err(AdminError::MissingToken);
        }
        let mut authorization =
            HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| AdminError::BadToken)?;
        // Keeps the token out of any debug rendering of the request.
        authorization.set_sensitive(true);
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(timeout));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new()).build(connector);
        Ok(AdminClient {
            client,
            base,
            authorization,
            timeout,
        })
    }

    /// The base URL requests go to, as shown in error messages.
    pub fn url(&self) -> &str {
        &self.base
    }

    /// Sends one request and returns the body of a 2xx answer; every other outcome is an error.
    async fn call(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Bytes, AdminError> {
        let uri: Uri = format!("{}{path_and_query}", self.base)
            .parse()
            .map_err(|err| AdminError::Input(format!("cannot build the request URL: {err}")))?;
        let mut req = Request::builder()
            .method(method)
            .uri(uri)
            .header(AUTHORIZATION, self.authorization.clone())
            .header(ACCEPT, "application/json")
            .header(USER_AGENT, concat!("cachegate/", env!("CARGO_PKG_VERSION")));
        if body.is_some() {
            req = req.header(CONTENT_TYPE, "application/json");
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|err| AdminError::Input(format!("cannot build the request: {err}")))?;
        let exchange = async {
            let response = self.client.request(req).await.map_err(|err| {
                let detail = error_chain(&err);
                if err.is_connect() {
                    AdminError::Unreachable {
                        url: self.base.clone(),
                        detail,
                    }
                } else {
                    AdminError::Protocol(detail)
                }
            })?;
            let (parts, body) = response.into_parts();
            let bytes = Limited::new(body, MAX_RESPONSE_BYTES)
                .collect()
                .await
                .map_err(|err| AdminError::Protocol(format!("cannot read the answer: {err}")))?
                .to_bytes();
            Ok::<_, AdminError>((parts.status, bytes))
        };
        let (status, bytes) = tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_elapsed| AdminError::Timeout {
                url: self.base.clone(),
                timeout: self.timeout,
            })??;
        if status.is_success() {
            return Ok(bytes);
        }
        if status == http::StatusCode::UNAUTHORIZED {
            return Err(AdminError::Unauthorized);
        }
        Err(AdminError::Status {
            status: status.as_u16(),
            detail: error_detail(&bytes),
        })
    }

    async fn call_json<T: DeserializeOwned>(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Reply<T>, AdminError> {
        let raw = self.call(method, path_and_query, body).await?;
        let value = serde_json::from_slice(&raw)
            .map_err(|err| AdminError::Protocol(format!("{path_and_query}: {err}")))?;
        Ok(Reply { value, raw })
    }
}

/// Checks an admin URL and returns it as `http://authority[/prefix]`.
fn base_url(url: &str) -> Result<String, AdminError> {
    let bad = |reason: &str| AdminError::BadUrl {
        url: url.to_string(),
        reason: reason.to_string(),
    };
    let trimmed = url.trim();
    let with_scheme: Cow<'_, str> = if trimmed.contains("://") {
        Cow::Borrowed(trimmed)
    } else {
        Cow::Owned(format!("http://{trimmed}"))
    };
    let uri: Uri = with_scheme
        .parse()
        .map_err(|_| bad("expected e.g. http://127.0.0.1:9090"))?;
    match uri.scheme_str() {
        Some("http") => {}
        // No TLS stack is built in: the admin listener is meant for loopback or a private network.
        Some("https") => return Err(bad("only http:// is supported")),
        _ => return Err(bad("expected e.g. http://127.0.0.1:9090")),
    }
    let Some(authority) = uri.authority() else {
        return Err(bad("no host"));
    };
    if uri.query().is_some() {
        return Err(bad("a query string is not allowed"));
    }
    let prefix = uri.path().trim_end_matches('/');
    Ok(format!("http://{authority}{prefix}"))
}

/// The message of an error and its sources, skipping the client's generic outer wrapper.
fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = Vec::new();
    let mut current = err.source();
    while let Some(source) = current {
        parts.push(source.to_string());
        current = source.source();
    }
    if parts.is_empty() {
        err.to_string()
    } else {
        parts.join(": ")
    }
}

/// The readable part of an error answer: its `detail` (with the `error` code), else its text.
fn error_detail(body: &[u8]) -> String {
    if let Ok(parsed) = serde_json::from_slice::<ErrorBody>(body) {
        match (parsed.error, parsed.detail) {
            (Some(error), Some(detail)) => return format!("{error}: {detail}"),
            (None, Some(detail)) => return detail,
            (Some(error), None) => return error,
            (None, None) => {}
        }
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return "no details given".to_string();
    }
    // An HTML error page from something in between can be long; the start says enough.
    text.chars().take(200).collect()
}

// === purge ===

/// The body of `POST /purge`. Empty lists and false flags are left out of the JSON.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PurgeRequest {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub prefixes: Vec<String>,
    #[serde(skip_serializing_if = "is_false")]
    pub all: bool,
    #[serde(skip_serializing_if = "is_false")]
    pub soft: bool,
}

fn is_false(value: &bool) -> bool {
    !*value
}

/// The answer of `POST /purge`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct PurgeResponse {
    #[serde(default)]
    pub purged: u64,
}

/// `POST /purge`.
pub async fn purge(
    client: &AdminClient,
    req: &PurgeRequest,
) -> Result<Reply<PurgeResponse>, AdminError> {
    let body = to_json(req)?;
    client.call_json(Method::POST, "/purge", Some(body)).await
}

/// `purged N entries`.
pub fn render_purge(answer: &PurgeResponse) -> String {
    format!("purged {}\n", plural(answer.purged, "entry", "entries"))
}

// === stats ===

/// The answer of `GET /stats`. Unknown fields are ignored and missing ones read as zero, so the
/// client keeps working against a server one version apart.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct Stats {
    pub hits: u64,
    pub misses: u64,
    #[serde(deserialize_with = "null_as_zero")]
    pub hit_ratio: f64,
    pub stored: u64,
    pub collapsed: u64,
    pub bypassed: u64,
    pub entries: u64,
    pub bytes: u64,
    pub evictions: u64,
    pub purged: u64,
    pub fenced: u64,
    pub upstream_errors: u64,
    pub routes: Vec<RouteStats>,
    pub tenants: Vec<TenantStats>,
}

/// One route's traffic in [`Stats`].
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct RouteStats {
    pub route: usize,
    pub path: String,
    pub hits: u64,
    pub misses: u64,
    pub bypassed: u64,
}

/// One tenant's traffic in [`Stats`].
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct TenantStats {
    pub tenant: String,
    pub hits: u64,
    pub misses: u64,
}

/// A ratio of 0/0 is NaN, which JSON encoders write as `null`; that reads as zero here.
fn null_as_zero<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(deserializer)?.unwrap_or(0.0))
}

/// `GET /stats`.
pub async fn stats(client: &AdminClient) -> Result<Reply<Stats>, AdminError> {
    client.call_json(Method::GET, "/stats", None).await
}

/// The readable summary: totals, then the per-route table, then the busiest tenants.
pub fn render_stats(stats: &Stats) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "hit ratio        {}  ({} hits, {} misses)\n",
        percent(stats.hit_ratio),
        stats.hits,
        stats.misses
    ));
    out.push_str(&format!(
        "entries          {}  ({})\n",
        stats.entries,
        human_size(stats.bytes)
    ));
    let counters = [
        ("stored", stats.stored),
        ("collapsed", stats.collapsed),
        ("bypassed", stats.bypassed),
        ("evictions", stats.evictions),
        ("purged", stats.purged),
        ("fenced", stats.fenced),
        ("upstream errors", stats.upstream_errors),
    ];
    for (name, value) in counters {
        out.push_str(&format!("{name:<17}{value}\n"));
    }

    out.push_str("\nroutes\n");
    if stats.routes.is_empty() {
        out.push_str("  (none reported)\n");
    } else {
        let rows = stats
            .routes
            .iter()
            .map(|r| {
                vec![
                    r.route.to_string(),
                    r.path.clone(),
                    r.hits.to_string(),
                    r.misses.to_string(),
                    r.bypassed.to_string(),
                    ratio_of(r.hits, r.misses),
                ]
            })
            .collect();
        out.push_str(&table(
            &[
                Column::right("#"),
                Column::left("path"),
                Column::right("hits"),
                Column::right("misses"),
                Column::right("bypassed"),
                Column::right("hit ratio"),
            ],
            rows,
        ));
    }

    let mut tenants: Vec<&TenantStats> = stats.tenants.iter().collect();
    // Busiest first; ties by name so the listing is stable between runs.
    tenants.sort_by(|a, b| {
        let traffic = |t: &TenantStats| t.hits.saturating_add(t.misses);
        traffic(b)
            .cmp(&traffic(a))
            .then_with(|| a.tenant.cmp(&b.tenant))
    });
    if tenants.len() > TOP_TENANTS {
        out.push_str(&format!(
            "\ntop {TOP_TENANTS} tenants by traffic (of {})\n",
            tenants.len()
        ));
        tenants.truncate(TOP_TENANTS);
    } else {
        out.push_str("\ntenants by traffic\n");
    }
    if tenants.is_empty() {
        out.push_str("  (none reported)\n");
    } else {
        let rows = tenants
            .iter()
            .map(|t| {
                vec![
                    tenant_label(&t.tenant).to_string(),
                    t.hits.to_string(),
                    t.misses.to_string(),
                    ratio_of(t.hits, t.misses),
                ]
            })
            .collect();
        out.push_str(&table(
            &[
                Column::left("tenant"),
                Column::right("hits"),
                Column::right("misses"),
                Column::right("hit ratio"),
            ],
            rows,
        ));
    }
    out
}

// === entries ===

/// The filters of `GET /entries`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EntriesQuery {
    pub tenant: Option<String>,
    pub prefix: Option<String>,
    pub limit: Option<u64>,
}

impl From<&EntriesArgs> for EntriesQuery {
    fn from(args: &EntriesArgs) -> Self {
        EntriesQuery {
            tenant: args.tenant.clone(),
            prefix: args.prefix.clone(),
            limit: args.limit,
        }
    }
}

impl EntriesQuery {
    /// `/entries` with the filters that are set, percent-encoded.
    pub fn path_and_query(&self) -> String {
        let mut pairs = Vec::new();
        if let Some(tenant) = &self.tenant {
            pairs.push(format!("tenant={}", encode_query_value(tenant)));
        }
        if let Some(prefix) = &self.prefix {
            pairs.push(format!("prefix={}", encode_query_value(prefix)));
        }
        if let Some(limit) = self.limit {
            pairs.push(format!("limit={limit}"));
        }
        if pairs.is_empty() {
            "/entries".to_string()
        } else {
            format!("/entries?{}", pairs.join("&"))
        }
    }
}

/// The answer of `GET /entries`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct EntriesResponse {
    pub entries: Vec<Entry>,
}

/// One stored entry as the admin API describes it.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct Entry {
    pub key: String,
    pub tenant: String,
    pub target: String,
    pub status: u16,
    pub ttl_left_secs: u64,
    pub age_secs: u64,
    pub size: u64,
    pub tags: Vec<String>,
    pub stale: bool,
}

/// `GET /entries`.
pub async fn entries(
    client: &AdminClient,
    query: &EntriesQuery,
) -> Result<Reply<EntriesResponse>, AdminError> {
    client
        .call_json(Method::GET, &query.path_and_query(), None)
        .await
}

/// The entries as a table, the long columns (target, tags) last.
pub fn render_entries(entries: &[Entry]) -> String {
    if entries.is_empty() {
        return "no entries\n".to_string();
    }
    let rows = entries
        .iter()
        .map(|e| {
            vec![
                // The full key is 64 hex digits; its start tells entries apart on screen.
                e.key.chars().take(12).collect(),
                tenant_label(&e.tenant).to_string(),
                e.status.to_string(),
                format_duration(Duration::from_secs(e.age_secs)),
                if e.stale {
                    "stale".to_string()
                } else {
                    format_duration(Duration::from_secs(e.ttl_left_secs))
                },
                human_size(e.size),
                e.target.clone(),
                e.tags.join(","),
            ]
        })
        .collect();
    let mut out = table(
        &[
            Column::left("key"),
            Column::left("tenant"),
            Column::right("status"),
            Column::right("age"),
            Column::right("ttl left"),
            Column::right("size"),
            Column::left("target"),
            Column::left("tags"),
        ],
        rows,
    );
    out.push_str(&format!(
        "{}\n",
        plural(entries.len() as u64, "entry", "entries")
    ));
    out
}

// === warm ===

/// The body of `POST /warm`. `tenant` is always sent, as `null` for the shared scope.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct WarmRequest {
    pub tenant: Option<String>,
    pub paths: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<u32>,
}

/// The answer of `POST /warm`, and the sum of all batches of one `cachegate warm`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct WarmResponse {
    pub done: u64,
    pub failed: u64,
    pub results: Vec<WarmResult>,
}

/// How one warmed path went.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct WarmResult {
    pub path: String,
    pub status: u16,
    /// The `Cache-Status` value of the warming request.
    pub cache: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl WarmResult {
    /// A path failed when the backend answered an error or the request itself failed.
    pub fn failed(&self) -> bool {
        self.status >= 400 || self.error.is_some()
    }
}

/// Where a warm run stands, reported after each batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WarmProgress {
    /// Paths sent so far.
    pub sent: usize,
    pub total: usize,
    pub failed: u64,
}

impl fmt::Display for WarmProgress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "warmed {}/{} ({} failed)",
            self.sent, self.total, self.failed
        )
    }
}

/// `POST /warm` with one batch.
pub async fn warm_batch(
    client: &AdminClient,
    req: &WarmRequest,
) -> Result<Reply<WarmResponse>, AdminError> {
    let body = to_json(req)?;
    client.call_json(Method::POST, "/warm", Some(body)).await
}

/// Warms every path of `plan` in requests of at most `batch` paths, calling `progress` after
/// each one, and returns the sum of the answers. A failed batch request stops the run: the
/// server is unwell, and sending the rest would only repeat the error.
pub async fn warm(
    client: &AdminClient,
    plan: &WarmRequest,
    batch: usize,
    mut progress: impl FnMut(WarmProgress),
) -> Result<WarmResponse, AdminError> {
    let mut total = WarmResponse::default();
    let mut sent = 0;
    for chunk in plan.paths.chunks(batch.max(1)) {
        let req = WarmRequest {
            paths: chunk.to_vec(),
            ..plan.clone()
        };
        let answer = warm_batch(client, &req).await?.value;
        // The per-path results are the ground truth; the server's own count only matters if
        // it knows of failures the results do not list.
        let failing = answer.results.iter().filter(|r| r.failed()).count() as u64;
        let failed = failing.max(answer.failed);
        sent += chunk.len();
        total.done += answer.done;
        total.failed += failed;
        total.results.extend(answer.results);
        progress(WarmProgress {
            sent,
            total: plan.paths.len(),
            failed: total.failed,
        });
    }
    Ok(total)
}

/// The paths of a warm list: one per line, blank lines and `#` comments skipped, full URLs cut
/// down to their path and query (the admin API warms through its own listener, so the scheme
/// and host of a URL copied from a browser or a log say nothing useful).
pub fn parse_warm_list(text: &str) -> Result<Vec<String>, AdminError> {
    let mut paths = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let path = path_of(line).ok_or_else(|| {
            AdminError::Input(format!(
                "line {}: \"{line}\" is neither a path (/...) nor an http(s) URL",
                index + 1
            ))
        })?;
        paths.push(path.to_string());
    }
    Ok(paths)
}

/// The path and query of a line: a path as it is, a URL without scheme, authority and fragment.
fn path_of(line: &str) -> Option<String> {
    let without_fragment = line.split('#').next().unwrap_or(line);
    let after_authority = if let Some(rest) = without_fragment.strip_prefix("//") {
        rest
    } else if without_fragment.starts_with('/') {
        return Some(without_fragment.to_string());
    } else {
        let (scheme, rest) = without_fragment.split_once("://")?;
        if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
            return None;
        }
        rest
    };
    // The authority ends at the first `/` or `?`; a URL with neither is the root.
    match after_authority.find(['/', '?']) {
        Some(at) if after_authority[at..].starts_with('?') => {
            Some(format!("/{}", &after_authority[at..]))
        }
        Some(at) => Some(after_authority[at..].to_string()),
        None => Some("/".to_string()),
    }
}

/// Reads a warm list from a file, or standard input for `-`.
pub fn read_warm_list(path: &Path) -> Result<Vec<String>, AdminError> {
    let text = if path == Path::new("-") {
        std::io::read_to_string(std::io::stdin())
            .map_err(|err| AdminError::Input(format!("cannot read standard input: {err}")))?
    } else {
        std::fs::read_to_string(path)
            .map_err(|err| AdminError::Input(format!("cannot read {}: {err}", path.display())))?
    };
    let paths = parse_warm_list(&text)
        .map_err(|err| AdminError::Input(format!("{}: {err}", path.display())))?;
    if paths.is_empty() {
        return Err(AdminError::Input(format!(
            "{} lists no paths to warm",
            path.display()
        )));
    }
    Ok(paths)
}

/// The failed paths, one per line with the reason.
pub fn render_warm_failures(results: &[WarmResult]) -> String {
    let mut out = String::new();
    for result in results.iter().filter(|r| r.failed()) {
        let reason = match (&result.error, result.status) {
            (Some(error), 0) => error.clone(),
            (Some(error), status) => format!("{status}: {error}"),
            (None, status) => format!("status {status}"),
        };
        out.push_str(&format!("failed {}: {reason}\n", result.path));
    }
    out
}

/// The progress line on standard error: rewritten in place on a terminal, one line per update
/// otherwise (so logs and CI output stay readable).
pub struct ProgressLine<W: Write> {
    out: W,
    in_place: bool,
    dirty: bool,
}

impl<W: Write> ProgressLine<W> {
    pub fn new(out: W, in_place: bool) -> Self {
        ProgressLine {
            out,
            in_place,
            dirty: false,
        }
    }

    /// Shows `progress`, replacing the previous line on a terminal.
    pub fn update(&mut self, progress: &WarmProgress) {
        // Progress is a courtesy: a closed stderr must not fail the warm run itself.
        let _ = if self.in_place {
            self.dirty = true;
            write!(self.out, "\r\x1b[2K{progress}")
        } else {
            writeln!(self.out, "{progress}")
        };
        let _ = self.out.flush();
    }

    /// Ends an in-place line so what follows starts on a fresh line.
    pub fn finish(&mut self) {
        if self.dirty {
            let _ = writeln!(self.out);
            let _ = self.out.flush();
            self.dirty = false;
        }
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

// === running a command ===

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
            let reply = purge(client, &args.request()).await?;
            emit(out, json, &reply, render_purge)?;
        }
        AdminCommand::Stats(_) => {
            let reply = stats(client).await?;
            emit(out, json, &reply, render_stats)?;
        }
        AdminCommand::Entries(args) => {
            let reply = entries(client, &EntriesQuery::from(args)).await?;
            emit(out, json, &reply, |answer| render_entries(&answer.entries))?;
        }
        AdminCommand::Warm(args) => {
            let plan = WarmRequest {
                tenant: args.tenant.clone(),
                paths: read_warm_list(&args.file)?,
                host: args.host.clone(),
                concurrency: Some(args.concurrency),
            };
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

// === formatting helpers ===

fn to_json(value: &impl Serialize) -> Result<Vec<u8>, AdminError> {
    serde_json::to_vec(value).map_err(|err| AdminError::Input(format!("cannot encode: {err}")))
}

fn plural(n: u64, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

/// A 0..=1 ratio as a percentage with one decimal.
fn percent(ratio: f64) -> String {
    if ratio.is_finite() {
        format!("{:.1}%", ratio * 100.0)
    } else {
        "-".to_string()
    }
}

/// hits / (hits + misses) as a percentage, `-` without traffic.
fn ratio_of(hits: u64, misses: u64) -> String {
    let lookups = hits.saturating_add(misses);
    if lookups == 0 {
        "-".to_string()
    } else {
        percent(hits as f64 / lookups as f64)
    }
}

/// The shared scope has the empty tenant id, which would print as nothing.
fn tenant_label(tenant: &str) -> &str {
    if tenant.is_empty() {
        "(shared)"
    } else {
        tenant
    }
}

/// A byte count in binary units with one decimal: `512 B`, `1.5 KiB`, `12.0 MiB`.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// Percent-encodes a query value: unreserved characters and `/` stay as they are (a path
/// prefix remains readable in logs), everything else becomes `%XX`.
fn encode_query_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~' | b'/') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// A table column: its heading and which side its values hug.
struct Column {
    heading: &'static str,
    right: bool,
}

impl Column {
    fn left(heading: &'static str) -> Column {
        Column {
            heading,
            right: false,
        }
    }
    fn right(heading: &'static str) -> Column {
        Column {
            heading,
            right: true,
        }
    }
}

/// Aligned columns separated by two spaces, headings first, no trailing blanks.
fn table(columns: &[Column], rows: Vec<Vec<String>>) -> String {
    let mut widths: Vec<usize> = columns.iter().map(|c| c.heading.chars().count()).collect();
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let headings = columns.iter().map(|c| c.heading.to_string()).collect();
    let mut out = String::new();
    for row in std::iter::once(headings).chain(rows) {
        let mut line = String::new();
        for (i, (cell, column)) in row.iter().zip(columns).enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            let pad = widths[i].saturating_sub(cell.chars().count());
            if column.right {
                line.push_str(&" ".repeat(pad));
                line.push_str(cell);
            } else {
                line.push_str(cell);
                line.push_str(&" ".repeat(pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}
