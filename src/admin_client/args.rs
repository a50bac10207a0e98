//! The flags of `cachegate purge | stats | warm | entries`, and the admin API bodies they ask
//! for. Every field of a request body the server accepts has a flag here (the contract tests in
//! `tests/contract.rs` check it).

use super::client::AdminError;
use super::warm::read_warm_list;
use super::{ADMIN_TOKEN_ENV, ADMIN_URL_ENV};
use crate::admin_api::{
    check_warm_header, check_warm_headers, Capture, EntriesQuery, PurgeBody, WarmHeaders,
    WarmRequest, CREDENTIAL_CACHE_ALL,
};
use crate::notation::parse_duration;
use clap::Args;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

/// Flags shared by every admin subcommand.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Admin API")]
pub struct AdminArgs {
    /// The admin API, e.g. http://127.0.0.1:9090 [default: the config's `[admin] listen` address,
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
    /// entries, or every tenant with --all or --user.
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
    /// A logout: forget this user's verified credentials and purge the user's entries of
    /// `scope = "user"` routes (in every tenant when --tenant is not given).
    #[arg(long, value_name = "USER", group = "what")]
    pub user: Option<String>,
    /// Forget every verified credential, so each caller is verified again on its next request.
    #[arg(long, group = "what")]
    pub forget_credentials: bool,
    /// Mark the entries stale instead of deleting them.
    #[arg(long)]
    pub soft: bool,
    #[command(flatten)]
    pub admin: AdminArgs,
}

/// `cachegate warm`: fetch paths through the cache so they are stored.
#[derive(Args, Debug, Clone)]
#[command(group(clap::ArgGroup::new("source").required(true).multiple(true)))]
pub struct WarmArgs {
    /// The tenant to warm for; without it, the shared (untenanted) routes.
    #[arg(long, value_name = "TENANT")]
    pub tenant: Option<String>,
    /// One path or http(s) URL per line (blank lines and # comments skipped); - reads standard
    /// input. A URL is warmed under its own host.
    #[arg(long, value_name = "PATH", group = "source")]
    pub file: Option<PathBuf>,
    /// A route pattern exactly as in the config, e.g. /api/faculty/{id}/, warmed once per
    /// --capture.
    #[arg(long, value_name = "PATTERN", group = "source", requires = "captures")]
    pub route: Option<String>,
    /// The captures of one path of --route (repeatable): 12 for a one-capture route, else
    /// name=value pairs, e.g. org=7,id=3.
    #[arg(long = "capture", value_name = "VALUES", requires = "route", value_parser = parse_capture)]
    pub captures: Vec<Capture>,
    /// The Host clients send (the host is part of the key); paths without a URL are warmed
    /// under it [default: the config's only `[server] hosts` entry].
    #[arg(long, value_name = "HOST")]
    pub host: Option<String>,
    /// A request header sent with every warm request, as 'Name: value' (repeatable), e.g. the
    /// Accept your clients send. Keep credentials off the command line: --header-env and
    /// --header-file read a value from elsewhere.
    #[arg(long = "header", value_name = "NAME: VALUE")]
    pub headers: Vec<String>,
    /// A request header whose value is the environment variable VARIABLE (repeatable), e.g.
    /// Authorization=CACHEGATE_WARM_AUTHORIZATION for a service user's token: each path is then
    /// verified and keyed as that user's request.
    #[arg(long = "header-env", value_name = "NAME=VARIABLE")]
    pub header_envs: Vec<String>,
    /// A request header whose value is the content of the file PATH, surrounding whitespace
    /// ignored (repeatable), e.g. Authorization=/run/secrets/warm-authorization.
    #[arg(long = "header-file", value_name = "NAME=PATH")]
    pub header_files: Vec<String>,
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

/// `cachegate reload`: nothing beyond the shared flags.
#[derive(Args, Debug, Clone)]
pub struct ReloadArgs {
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

impl PurgeArgs {
    /// The purge body these flags ask for. `--all` and `--user` without a tenant name every
    /// tenant explicitly: the server refuses `all` for the implicit shared scope, and a user's
    /// entries are never shared ones.
    pub fn body(&self) -> PurgeBody {
        let tenant = match (&self.tenant, self.all || self.user.is_some()) {
            (None, true) => Some("*".to_string()),
            (tenant, _) => tenant.clone(),
        };
        let list = |items: &Vec<String>| (!items.is_empty()).then(|| items.clone());
        PurgeBody {
            tenant,
            tags: list(&self.tags),
            paths: list(&self.paths),
            prefixes: list(&self.prefixes),
            all: self.all.then_some(true),
            soft: self.soft.then_some(true),
            user: self.user.clone(),
            credential_cache: self
                .forget_credentials
                .then(|| CREDENTIAL_CACHE_ALL.to_string()),
            ..PurgeBody::default()
        }
    }
}

impl WarmArgs {
    /// Everything to warm: the file's lines (read now) and the route's captures. `warm` sends it
    /// in batches.
    pub fn plan(&self) -> Result<WarmRequest, AdminError> {
        self.plan_with(|name| std::env::var_os(name))
    }

    /// [`WarmArgs::plan`], with the environment read through `env`.
    pub fn plan_with(
        &self,
        env: impl Fn(&str) -> Option<OsString>,
    ) -> Result<WarmRequest, AdminError> {
        let headers = self.warm_headers(env)?;
        let paths = match &self.file {
            Some(file) => read_warm_list(file)?,
            None => Vec::new(),
        };
        Ok(WarmRequest {
            tenant: self.tenant.clone(),
            paths,
            route: self.route.clone(),
            captures: self.captures.clone(),
            host: self.host.clone(),
            concurrency: Some(usize::try_from(self.concurrency).unwrap_or(usize::MAX)),
            headers,
        })
    }

    /// The headers of `--header`, `--header-env` and `--header-file`, checked as the server
    /// checks them. A value may be a credential: no message quotes one.
    fn warm_headers(
        &self,
        env: impl Fn(&str) -> Option<OsString>,
    ) -> Result<WarmHeaders, AdminError> {
        let input = |text: String| AdminError::Input(text);
        let mut given: Vec<(String, String, String)> = Vec::new();
        for (i, text) in self.headers.iter().enumerate() {
            let flag = format!("--header #{}", i + 1);
            // Not quoted: the text holds the value.
            let (name, value) = text
                .split_once(':')
                .ok_or_else(|| input(format!("{flag}: expected 'Name: value'")))?;
            given.push((flag, name.to_string(), value.trim().to_string()));
        }
        for text in &self.header_envs {
            let (name, variable) = split_source(text, "--header-env", "NAME=VARIABLE")?;
            let flag = format!("--header-env {name}");
            if !is_variable_name(variable) {
                // Not quoted: a value given in place of the variable's name is the credential.
                return Err(input(format!(
                    "{flag}: expected NAME=VARIABLE, where VARIABLE names an environment variable (letters, digits and _)"
                )));
            }
            let value = match env(variable) {
                None => {
                    return Err(input(format!(
                        "{flag}: the environment variable {variable} is not set"
                    )))
                }
                Some(value) => value.into_string().map_err(|_| {
                    input(format!(
                        "{flag}: the environment variable {variable} is not UTF-8"
                    ))
                })?,
            };
            if value.trim().is_empty() {
                return Err(input(format!(
                    "{flag}: the environment variable {variable} is empty"
                )));
            }
            given.push((flag, name.to_string(), value.trim().to_string()));
        }
        for text in &self.header_files {
            let (name, path) = split_source(text, "--header-file", "NAME=PATH")?;
            let flag = format!("--header-file {name}");
            // Not the I/O error's text alone: it never holds the content, but say which file.
            let value = std::fs::read_to_string(path)
                .map_err(|err| input(format!("{flag}: cannot read {path}: {err}")))?;
            if value.trim().is_empty() {
                return Err(input(format!("{flag}: the file {path} is empty")));
            }
            given.push((flag, name.to_string(), value.trim().to_string()));
        }
        let mut out = BTreeMap::new();
        for (flag, name, value) in given {
            check_warm_header(&name, &value).map_err(|why| input(format!("{flag}: {why}")))?;
            let twice = out
                .keys()
                .any(|seen: &String| seen.eq_ignore_ascii_case(&name));
            if twice {
                return Err(input(format!("{flag}: header {name} is given twice")));
            }
            out.insert(name, value);
        }
        let headers = WarmHeaders(out);
        check_warm_headers(&headers).map_err(input)?;
        Ok(headers)
    }
}

/// `NAME=SOURCE` of `--header-env` and `--header-file`. The text names a header and where its
/// value is, never the value, so it may be quoted.
///
/// The text is quoted only when it is a header name alone, and the name only once it is one:
/// a whole `Name: value` line given by mistake holds the value.
fn split_source<'t>(
    text: &'t str,
    flag: &str,
    shape: &str,
) -> Result<(&'t str, &'t str), AdminError> {
    let Some((name, source)) = text
        .split_once('=')
        .filter(|(name, source)| !name.is_empty() && !source.is_empty())
    else {
        return Err(AdminError::Input(if is_token(text) {
            format!("{flag} {text:?}: expected {shape}")
        } else {
            format!("{flag}: expected {shape}")
        }));
    };
    if !is_token(name) {
        return Err(AdminError::Input(format!(
            "{flag}: a header name is not an HTTP header name (letters, digits and !#$%&'*+-.^_`|~)"
        )));
    }
    Ok((name, source))
}

/// An HTTP token, as header names are.
fn is_token(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// A portable environment variable name: letters, digits and `_`, not starting with a digit.
fn is_variable_name(text: &str) -> bool {
    text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && text.bytes().next().is_some_and(|b| !b.is_ascii_digit())
}

impl EntriesArgs {
    /// The filters of `GET /entries` these flags ask for.
    pub fn query(&self) -> EntriesQuery {
        EntriesQuery {
            tenant: self.tenant.clone(),
            prefix: self.prefix.clone(),
            limit: self.limit,
        }
    }
}

/// A `--capture` value: `12` is the one capture of its route; a value with `=` is
/// `name=value` pairs separated by commas (`org=7,id=3`; a value may hold `=`, not `,`).
pub fn parse_capture(text: &str) -> Result<Capture, String> {
    if !text.contains('=') {
        return Ok(Capture::One(text.to_string()));
    }
    let mut named = BTreeMap::new();
    for pair in text.split(',') {
        let (name, value) = pair
            .split_once('=')
            .filter(|(name, _)| !name.is_empty())
            .ok_or_else(|| format!("expected name=value pairs, e.g. org=7,id=3, not {pair:?}"))?;
        if named.insert(name.to_string(), value.to_string()).is_some() {
            return Err(format!("capture {name:?} is given twice"));
        }
    }
    Ok(Capture::Named(named))
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
