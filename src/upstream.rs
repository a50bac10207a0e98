//! The backend client: a pooled hyper-util client with connect and response timeouts, speaking
//! TLS (rustls, SNI from the upstream's host, optional h2 through ALPN) to `https://` upstreams.
//!
//! Knows nothing of caching. It builds the forwarded request head (hop-by-hop headers removed,
//! `X-Forwarded-*` and `Forwarded` set by cachegate) and turns transport failures into `ProxyError`.

use crate::access::X_REQUEST_ID;
use crate::body::ProxyBody;
use crate::error::ProxyError;
use crate::metrics::Histogram;
use crate::policy::cacheability::strip_hop_by_hop;
use http::header::{HeaderMap, HeaderName, HeaderValue, HOST};
use http::{Request, Response, Uri};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::time::Instant;

/// How to reach the backend.
#[derive(Debug, Clone)]
pub struct UpstreamOptions {
    pub url: Uri,
    pub connect_timeout: Duration,
    pub timeout: Duration,
    pub pool_max_idle_per_host: usize,
    pub pool_idle_timeout: Duration,
    /// For `https://`: the CA certificates to trust instead of the system roots.
    pub ca_file: Option<PathBuf>,
    /// For `https://`: offer h2 through ALPN.
    pub http2: bool,
}

/// A shared, cloneable handle on the backend connection pool.
#[derive(Clone)]
pub struct Upstream {
    client: Client<HttpsConnector<HttpConnector>, ProxyBody>,
    scheme: http::uri::Scheme,
    authority: http::uri::Authority,
    timeout: Duration,
    connect_timeout: Duration,
    /// Time to the response head of every request sent.
    latency: Arc<Histogram>,
}

/// Who sent the request to cachegate and under which name, for the forwarding headers, and the
/// request's [`Trace`].
pub struct ClientInfo<'a> {
    pub peer: SocketAddr,
    /// The client came over TLS (`X-Forwarded-Proto: https`).
    pub tls: bool,
    pub host: &'a str,
    pub trace: &'a Trace,
}

/// What follows one client request to the backend: its id, sent as `X-Request-Id`, and where
/// the time the backend took for it is written.
#[derive(Debug)]
pub struct Trace {
    pub id: HeaderValue,
    /// Made on the first request sent to the backend, so a hit allocates nothing for it.
    backend: OnceLock<BackendTimer>,
}

/// Attached to a request sent to the backend (as an extension); [`Upstream::send`] writes the
/// time to the response head into it. Shared, since a fill outlives the request that led it.
#[derive(Debug, Clone, Default)]
pub struct BackendTimer(Arc<AtomicU64>);

impl Trace {
    pub fn new(id: HeaderValue) -> Trace {
        Trace {
            id,
            backend: OnceLock::new(),
        }
    }

    /// The timer to attach to a request sent to the backend for this one.
    pub fn timer(&self) -> BackendTimer {
        self.backend.get_or_init(BackendTimer::default).clone()
    }

    /// How long the backend took to answer this request's last backend request (to the response
    /// head); `None` when none was sent, or it has not answered yet.
    pub fn backend_time(&self) -> Option<Duration> {
        let nanos = self.backend.get()?.0.load(Relaxed);
        (nanos > 0).then(|| Duration::from_nanos(nanos))
    }
}

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static FORWARDED: HeaderName = HeaderName::from_static("forwarded");

// === impl Upstream ===

impl Upstream {
    pub fn new(opts: &UpstreamOptions) -> Result<Self, ProxyError> {
        let scheme = opts
            .url
            .scheme()
            .cloned()
            .ok_or(ProxyError::Internal("upstream url has no scheme"))?;
        let authority = opts
            .url
            .authority()
            .cloned()
            .ok_or(ProxyError::Internal("upstream url has no authority"))?;
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(opts.connect_timeout));
        connector.set_nodelay(true);
        // The TLS layer wrapped around it takes https:// URIs to it.
        connector.enforce_http(false);
        // `https_or_http` lets the one client type serve both schemes; the scheme is the
        // upstream's, fixed at start. Trust is only built for https (no system roots needed
        // for a plain upstream).
        let tls = if scheme == http::uri::Scheme::HTTPS {
            crate::tls::client_config(opts.ca_file.as_deref())
                .map_err(|e| ProxyError::UpstreamTls(e.to_string()))?
        } else {
            rustls::ClientConfig::builder_with_provider(crate::tls::provider())
                .with_safe_default_protocol_versions()
                .map_err(|e| ProxyError::UpstreamTls(e.to_string()))?
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth()
        };
        let builder = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http();
        let connector = if opts.http2 {
            builder.enable_all_versions().wrap_connector(connector)
        } else {
            builder.enable_http1().wrap_connector(connector)
        };
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_max_idle_per_host(opts.pool_max_idle_per_host)
            .pool_idle_timeout(opts.pool_idle_timeout)
            .build(connector);
        Ok(Self {
            client,
            scheme,
            authority,
            timeout: opts.timeout,
            connect_timeout: opts.connect_timeout,
            latency: Arc::new(Histogram::default()),
        })
    }

    /// Time to the response head of every request sent, answered or not.
    pub fn latency(&self) -> &Histogram {
        &self.latency
    }

    /// The time allowed for the backend's response head (and, for fills, the whole body).
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The absolute backend URI for an origin-form target like `/api/x/?a=1`.
    pub fn uri_for(&self, path_and_query: &str) -> Result<Uri, ProxyError> {
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(path_and_query)
            .build()
            .map_err(|_| ProxyError::BadRequest("request target cannot be forwarded"))
    }

    /// Sends `req` and waits at most the configured timeout for the response head.
    ///
    /// The time it took is observed in [`Upstream::latency`] and written to the request's
    /// [`BackendTimer`] when it carries one.
    pub async fn send(&self, req: Request<ProxyBody>) -> Result<Response<Incoming>, ProxyError> {
        let timer = req.extensions().get::<BackendTimer>().cloned();
        let started = Instant::now();
        let result = tokio::time::timeout(self.timeout, self.client.request(req)).await;
        let elapsed = started.elapsed();
        self.latency.observe(elapsed);
        if let Some(timer) = timer {
            let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX).max(1);
            timer.0.store(nanos, Relaxed);
        }
        match result {
            Err(_elapsed) => Err(ProxyError::UpstreamTimeout(self.timeout)),
            Ok(Ok(response)) => Ok(response),
            Ok(Err(err)) => Err(self.failure(err)),
        }
    }
}

impl Upstream {
    /// What a failed backend request answers: a body over its limit is the client's fault
    /// (413); a refused certificate or failed handshake, a connect timeout and other connect
    /// failures are told apart for the operator.
    fn failure(&self, err: hyper_util::client::legacy::Error) -> ProxyError {
        let mut timed_out = false;
        for e in crate::error::causes(&err) {
            if let Some(limit) = e.downcast_ref::<crate::body::BodyTooLarge>() {
                return ProxyError::BodyTooLarge(limit.0);
            }
            if let Some(io) = e.downcast_ref::<std::io::Error>() {
                timed_out |= io.kind() == std::io::ErrorKind::TimedOut;
            }
        }
        if let Some(reason) = crate::tls::is_tls_error(&err) {
            return ProxyError::UpstreamTls(reason);
        }
        if err.is_connect() {
            if timed_out {
                return ProxyError::UpstreamConnectTimeout(self.connect_timeout);
            }
            return ProxyError::UpstreamConnect(Box::new(err));
        }
        ProxyError::UpstreamProtocol(Box::new(err))
    }
}

/// Turns the client's request headers into the forwarded ones: hop-by-hop headers go, and the
/// forwarding headers are replaced by what cachegate saw, never kept from the client (a backend
/// that builds absolute links from them must not be steered by a caller into a cached body).
/// `X-Request-Id` is the request's id, the client's own only when it was sane.
pub fn forward_headers(headers: &mut HeaderMap, client: &ClientInfo<'_>) {
    strip_hop_by_hop(headers);
    headers.insert(X_REQUEST_ID.clone(), client.trace.id.clone());
    for name in [
        &X_FORWARDED_FOR,
        &X_FORWARDED_PROTO,
        &X_FORWARDED_HOST,
        &FORWARDED,
    ] {
        headers.remove(name);
    }
    let ip = client.peer.ip();
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    let for_value = match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("\"[{v6}]\""),
    };
    if let Ok(v) = HeaderValue::from_str(&ip.to_string()) {
        headers.insert(X_FORWARDED_FOR.clone(), v);
    }
    let proto = if client.tls { "https" } else { "http" };
    headers.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static(proto));
    if let Ok(host) = HeaderValue::from_str(client.host) {
        headers.insert(X_FORWARDED_HOST.clone(), host.clone());
        headers.insert(HOST, host);
    }
    let forwarded = format!("for={for_value};proto={proto};host=\"{}\"", client.host);
    if let Ok(v) = HeaderValue::from_str(&forwarded) {
        headers.insert(FORWARDED.clone(), v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forwarded(peer: &str, host: &str, incoming: &[(&str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (k, v) in incoming {
            headers.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        let trace = Trace::new(HeaderValue::from_static("rid-1"));
        let client = ClientInfo {
            peer: peer.parse().unwrap(),
            tls: false,
            host,
            trace: &trace,
        };
        forward_headers(&mut headers, &client);
        headers
    }

    #[test]
    fn client_forwarding_headers_are_replaced_not_kept() {
        let h = forwarded(
            "10.1.2.3:5000",
            "api.example.com",
            &[
                ("x-forwarded-for", "6.6.6.6"),
                ("x-forwarded-host", "evil.test"),
                ("x-forwarded-proto", "https"),
                ("forwarded", "for=6.6.6.6;host=evil.test"),
            ],
        );
        assert_eq!(h["x-forwarded-for"], "10.1.2.3");
        assert_eq!(h["x-forwarded-host"], "api.example.com");
        assert_eq!(h["x-request-id"], "rid-1", "the request's id goes on");
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(
            h["forwarded"],
            "for=10.1.2.3;proto=http;host=\"api.example.com\""
        );
        assert_eq!(h.get_all("x-forwarded-for").iter().count(), 1);
    }

    #[test]
    fn ipv6_peers_are_quoted_in_forwarded() {
        let h = forwarded("[2001:db8::1]:443", "h", &[]);
        assert_eq!(
            h["forwarded"],
            "for=\"[2001:db8::1]\";proto=http;host=\"h\""
        );
        assert_eq!(h["x-forwarded-for"], "2001:db8::1");
    }

    #[test]
    fn hop_by_hop_headers_are_not_forwarded() {
        let h = forwarded(
            "127.0.0.1:1",
            "h",
            &[
                ("connection", "x-secret, keep-alive"),
                ("x-secret", "1"),
                ("keep-alive", "timeout=5"),
                ("accept", "application/json"),
            ],
        );
        assert!(h.get("connection").is_none());
        assert!(h.get("x-secret").is_none());
        assert!(h.get("keep-alive").is_none());
        assert_eq!(h["accept"], "application/json");
    }
}
