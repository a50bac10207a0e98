//! What `cachegate check` prints: the effective settings, the route table, and the trust
//! warnings (also logged at start).

use std::fmt;

use super::auth::AuthConfig;
use super::Config;
use crate::notation::{format_duration, format_size};
use crate::policy::route::Scope;

impl fmt::Display for Config {
    /// A summary of the effective settings followed by the route table, for `cachegate check`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.server;
        let u = &self.upstream;
        let c = &self.cache;
        let listen: Vec<String> = s.listen.iter().map(ToString::to_string).collect();
        writeln!(f, "config:   {}", self.source)?;
        writeln!(
            f,
            "listen:   {} (workers {}, max {} connections)",
            listen.join(", "),
            s.workers.map_or("auto".to_string(), |w| w.to_string()),
            s.max_connections
        )?;
        match &s.tls {
            Some(t) => writeln!(
                f,
                "tls:      cert {}, key {} (ALPN h2, http/1.1; files checked every {})",
                t.cert.display(),
                t.key.display(),
                format_duration(s.tls_reload_interval)
            )?,
            None => writeln!(f, "tls:      off (plain HTTP/1.1 and h2c)")?,
        }
        writeln!(
            f,
            "limits:   head {} in {}, body {}, {} requests a connection, {} h2 streams",
            format_size(s.max_header_bytes as u64),
            format_duration(s.header_read_timeout),
            format_size(s.max_request_body),
            match s.max_requests_per_connection {
                0 => "unlimited".to_string(),
                n => n.to_string(),
            },
            s.http2_max_concurrent_streams
        )?;
        writeln!(
            f,
            "upstream: {} (connect {}, timeout {}{})",
            u.url,
            format_duration(u.connect_timeout),
            format_duration(u.timeout),
            match (&u.ca_file, u.url.scheme_str()) {
                (Some(ca), _) => format!(", trusting {}", ca.display()),
                (None, Some("https")) => ", trusting the system roots".to_string(),
                _ => String::new(),
            }
        )?;
        writeln!(
            f,
            "cache:    {}/v{}, {}{}, objects up to {}, default ttl {}, tenant {}, scope {}",
            c.namespace,
            c.version,
            format_size(c.max_memory),
            c.tenant_share_bytes().map_or(String::new(), |_| format!(
                " (at most {}% a tenant)",
                c.max_tenant_share
            )),
            format_size(c.max_object_size),
            format_duration(c.default_ttl),
            c.tenant,
            c.scope.map_or("per route".to_string(), |s| s.to_string())
        )?;
        match &self.admin {
            Some(a) => writeln!(f, "admin:    {} (token from {})", a.listen, a.token)?,
            None => writeln!(f, "admin:    off (no [admin] section)")?,
        }
        let w = &self.webhook;
        writeln!(
            f,
            "webhook:  POST {} (secrets from {}, replay window {}); {} is reserved",
            w.path,
            w.secret,
            format_duration(w.replay_window),
            w.prefix
        )?;
        match &self.auth {
            Some(a) => writeln!(f, "auth:     {}", AuthSummary(a))?,
            None => writeln!(
                f,
                "auth:     off (no [auth] section; tenants are taken as sent)"
            )?,
        }
        match &self.redis {
            Some(r) => writeln!(f, "redis:    {r}")?,
            None => writeln!(f, "redis:    off (no [redis] section; memory tier only)")?,
        }
        writeln!(f)?;
        write!(f, "{}", self.routes)?;
        self.credential_vary(f)
    }
}

impl Config {
    /// Lists the cached routes whose scope is inferred, where an answer with `Vary: Cookie` or
    /// `Vary: Authorization` is kept per verified user or not stored at all.
    fn credential_vary(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inferred: Vec<_> = self
            .routes
            .routes()
            .iter()
            .filter(|r| r.cache && !r.scope_declared && r.scope != Scope::User)
            .collect();
        if inferred.is_empty() {
            return Ok(());
        }
        writeln!(f)?;
        writeln!(
            f,
            "answers with Vary: Cookie or Authorization are shared by a tenant's callers only \
             where the route declares its scope; on these routes the scope is inferred:"
        )?;
        for route in inferred {
            let verified = self.auth.is_some() && route.scope != Scope::Public;
            let rule = if verified {
                "kept per verified user"
            } else {
                "not stored (detail=vary-credential)"
            };
            writeln!(
                f,
                "  {}  {rule}; add scope = \"{}\" to share them",
                route.pattern.as_str(),
                route.scope
            )?;
        }
        Ok(())
    }
}

impl Config {
    /// Warnings for `check` and the start log: routes keyed by a tenant any client can set,
    /// when no `[auth]` section verifies callers.
    pub fn trust_warnings(&self) -> Vec<String> {
        match &self.auth {
            Some(auth) => auth
                .trusted_proxies
                .iter()
                .filter(|net| {
                    let host_bits = if net.network().is_ipv4() { 32 } else { 128 };
                    // A network this wide is the internet, not an auth gateway.
                    host_bits - net.prefix_len() > if net.network().is_ipv4() { 24 } else { 64 }
                })
                .map(|net| {
                    format!(
                        "auth.trusted_proxies: {net} trusts the tenant header of a very wide \
                         network; list only the auth gateways that set it"
                    )
                })
                .collect(),
            None => self.routes.trust_warnings(),
        }
    }
}

/// One-line description of `[auth]` for the `check` summary.
struct AuthSummary<'a>(&'a AuthConfig);

impl fmt::Display for AuthSummary<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let a = self.0;
        let mut parts: Vec<String> = Vec::new();
        if let Some(j) = &a.jwt {
            let algorithms = if j.algorithms.is_empty() {
                "algorithms of the key".to_string()
            } else {
                let names: Vec<&str> = j.algorithms.iter().map(|a| a.name()).collect();
                names.join(",")
            };
            let mut checks = String::new();
            if !j.issuer.is_empty() {
                checks.push_str(&format!(", iss {}", j.issuer.join(" ")));
            }
            if !j.audience.is_empty() {
                checks.push_str(&format!(", aud {}", j.audience.join(" ")));
            }
            parts.push(format!(
                "jwt ({}, {algorithms}, tenant claim {}, user claim {}{checks}, leeway {})",
                j.keys,
                j.tenant_claim,
                j.user_claim,
                format_duration(j.leeway)
            ));
        }
        if let Some(i) = &a.introspect {
            parts.push(format!(
                "introspect (GET {}, tenant field {}, user field {}, ttl {})",
                i.path,
                i.tenant_field,
                i.user_field,
                format_duration(i.ttl)
            ));
        }
        if !a.trusted_proxies.is_empty() {
            let nets: Vec<String> = a.trusted_proxies.iter().map(ToString::to_string).collect();
            let user = a
                .user_header
                .as_ref()
                .map_or(String::new(), |h| format!(", user header {h}"));
            parts.push(format!("trusted proxies {}{user}", nets.join(" ")));
        }
        write!(f, "{}; key secret from {}", parts.join("; "), a.key_secret)
    }
}
