//! A request's way in and out: the limits checked before anything else (head size, announced
//! body size, the `Host`, `[server] hosts`), the reserved prefix, the method's path (read,
//! write, or passed through), and around it the request id, the `/metrics` series and the
//! access line.

use super::{Answer, Proxy, CACHE_STATUS};
use crate::access::{self, AccessLine, X_REQUEST_ID};
use crate::body::ProxyBody;
use crate::error::ProxyError;
use crate::metrics::Finished;
use crate::policy::cache_key;
use crate::policy::cacheability;
use crate::policy::http_cache as http_cache_policy;
use crate::policy::outcome::Outcome;
use crate::server::Handler;
use crate::upstream::{ClientInfo, Trace};
use http::header::HOST;
use http::{Method, Request, Response};
use hyper::body::Incoming;
use std::net::SocketAddr;
use tokio::time::Instant;

/// What `dispatch` produced: an answer with its outcome, or a response cachegate gives under
/// the reserved prefix (the webhook), which is none of the cache's outcomes.
enum Dispatched {
    Answer(Answer),
    Reserved(Response<ProxyBody>),
}

/// What `handle` keeps of an answer once `finish` has consumed it: what the metrics and the
/// access line need.
#[derive(Default)]
struct Done {
    outcome: Option<Outcome>,
    route: Option<usize>,
    /// The tenant's digest, only when the access line is written.
    tenant: Option<String>,
}

impl Handler for Proxy {
    async fn handle(&self, req: Request<Incoming>, peer: SocketAddr) -> Response<ProxyBody> {
        // The config version in force now serves this request to its end, its fill included.
        self.current().respond(req, peer).await
    }
}

impl Proxy {
    async fn respond(&self, req: Request<Incoming>, peer: SocketAddr) -> Response<ProxyBody> {
        let started = Instant::now();
        let trace = Trace::new(access::request_id(req.headers()));
        let method = req.method().clone();
        let access = (self.inner.config.log.access
            && tracing::enabled!(target: "cachegate::access", tracing::Level::INFO))
        .then(|| req.uri().clone());
        let log = access.is_some();
        let (mut response, done) = match self.dispatch(req, peer, &trace).await {
            Ok(Dispatched::Answer(answer)) => self.finish_request(answer, log),
            Ok(Dispatched::Reserved(response)) => (response, Done::default()),
            Err(err) => self.finish_request(self.error_answer(&err), log),
        };
        response
            .headers_mut()
            .insert(X_REQUEST_ID.clone(), trace.id.clone());
        let elapsed = started.elapsed();
        self.inner.metrics.record(&Finished {
            route: self.route_id(done.route),
            method: &method,
            status: response.status(),
            outcome: done.outcome,
            elapsed,
        });
        if let Some(uri) = access {
            let routes = self.inner.config.routes.routes();
            AccessLine {
                request_id: &trace.id,
                peer,
                method: &method,
                path: uri.path(),
                query: uri.query(),
                route: done
                    .route
                    .and_then(|i| routes.get(i))
                    .map_or("", |r| r.pattern.as_str()),
                tenant: done.tenant.as_deref(),
                status: response.status().as_u16(),
                outcome: done.outcome.as_ref().map_or("reserved", Outcome::as_str),
                cache_status: response.headers().get(&CACHE_STATUS),
                duration: elapsed,
                backend: trace.backend_time(),
            }
            .log();
        }
        response
    }

    fn finish_request(&self, answer: Answer, log: bool) -> (Response<ProxyBody>, Done) {
        let route = answer.route;
        let tenant = answer
            .tenant
            .as_ref()
            .filter(|_| log)
            .map(|t| access::tenant_digest(t.as_str()));
        let (response, outcome) = self.finish(answer);
        let done = Done {
            outcome: Some(outcome),
            route,
            tenant,
        };
        (response, done)
    }

    async fn dispatch(
        &self,
        mut req: Request<Incoming>,
        peer: SocketAddr,
        trace: &Trace,
    ) -> Result<Dispatched, ProxyError> {
        let limits = &self.inner.config.server;
        if head_size(&req) > limits.max_header_bytes {
            return Err(ProxyError::HeadersTooLarge(limits.max_header_bytes));
        }
        // First of all: a header the client lists in `Connection` never reaches the backend, so it
        // must not take part in any decision either (e.g. `Connection: x-org-id` would key by a
        // tenant header the backend never sees).
        cacheability::strip_hop_by_hop(req.headers_mut());
        let host = request_host(&req)?;
        if let Some(allowed) = &self.inner.config.server.hosts {
            if !allowed.iter().any(|h| h.eq_ignore_ascii_case(&host)) {
                return Err(ProxyError::MisdirectedHost(host));
            }
        }
        if self.is_reserved(req.uri().path()) {
            return Ok(Dispatched::Reserved(self.reserved(req).await));
        }
        // The body limit, up front when the length is announced, else while it streams
        // (`ProxyBody::Limited`, which aborts the backend request past it).
        let max_body = limits.max_request_body;
        if content_length(&req).is_some_and(|n| n > max_body) {
            return Err(ProxyError::BodyTooLarge(max_body));
        }
        let client = ClientInfo {
            peer,
            tls: limits.tls.is_some(),
            host: &host,
            trace,
        };
        let answer = match *req.method() {
            Method::GET | Method::HEAD => {
                let (parts, body) = req.into_parts();
                self.read(parts, ProxyBody::limited(body, max_body), &client)
                    .await?
            }
            // Unsafe methods, unknown ones included, invalidate what they name (RFC 9111 §4.4).
            ref method
                if *method != Method::CONNECT
                    && !http_cache_policy::invalidate::is_safe(method) =>
            {
                self.write(req, &client).await?
            }
            _ => {
                let (parts, body) = req.into_parts();
                let req = Request::from_parts(parts, ProxyBody::limited(body, max_body));
                self.pass(req, &client, Outcome::Method, None).await?
            }
        };
        Ok(Dispatched::Answer(answer))
    }

    /// Whether a path is under the reserved prefix, as sent or once normalized (so that an
    /// encoded spelling of the prefix cannot slip past to the backend).
    fn is_reserved(&self, path: &str) -> bool {
        let prefix = &self.inner.config.webhook.prefix;
        if path.starts_with(prefix.as_str()) {
            return true;
        }
        // Other spellings (escapes, dot segments, `//`, `\`, another case) could still reach
        // the same path on a lenient backend. Only paths that could be one are examined, so the
        // common request pays a scan, not an allocation.
        let core = prefix.trim_matches('/');
        let maybe = path.contains('%')
            || path
                .as_bytes()
                .windows(core.len())
                .any(|w| w.eq_ignore_ascii_case(core.as_bytes()));
        maybe && {
            let lenient = cache_key::lenient_path(path).to_ascii_lowercase();
            lenient.starts_with(&prefix.to_ascii_lowercase())
                || lenient == prefix.trim_end_matches('/').to_ascii_lowercase()
        }
    }
}

/// The size of a request head as it came: the request line and each header line.
fn head_size<B>(req: &Request<B>) -> usize {
    let uri = req.uri();
    let target = uri.path_and_query().map_or(1, |pq| pq.as_str().len())
        + uri.authority().map_or(0, |a| a.as_str().len());
    let line = req.method().as_str().len() + target + 12;
    req.headers().iter().fold(line, |n, (name, value)| {
        n + name.as_str().len() + value.len() + 4
    })
}

/// The announced `Content-Length`, when there is one readable.
fn content_length<B>(req: &Request<B>) -> Option<u64> {
    req.headers()
        .get(http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// The Host the client addressed: exactly one `Host` header (HTTP/1.1) or the `:authority` (h2).
fn request_host<B>(req: &Request<B>) -> Result<String, ProxyError> {
    let mut values = req.headers().get_all(HOST).iter();
    let host = match (values.next(), values.next()) {
        (Some(_), Some(_)) => return Err(ProxyError::BadRequest("repeated host header")),
        (Some(value), None) => value
            .to_str()
            .map_err(|_| ProxyError::BadRequest("host header is not valid text"))?
            .to_owned(),
        (None, _) => match req.uri().authority() {
            Some(authority) => authority.as_str().to_owned(),
            None => return Err(ProxyError::BadRequest("missing host header")),
        },
    };
    if host.is_empty()
        || !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:[]_".contains(&b))
    {
        return Err(ProxyError::BadRequest("malformed host header"));
    }
    let mut host = host.to_ascii_lowercase();
    if let Some(stripped) = host.strip_suffix(".") {
        host = stripped.to_owned();
    }
    Ok(host)
}
