//! An in-process backend: answers from a test-supplied function, records every request it sees,
//! and can hold requests at a gate until the test releases them.

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::wait::until;

/// A request as the origin saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: Method,
    pub target: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The origin's data version when the request arrived.
    pub version: u64,
    /// The HTTP version the request came in.
    pub http: http::Version,
}

impl Seen {
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// What the origin answers.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    pub delay: Option<Duration>,
    pub gate: Option<Gate>,
}

impl Reply {
    pub fn ok(body: impl Into<Bytes>) -> Reply {
        Reply {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.into(),
            delay: None,
            gate: None,
        }
    }
    pub fn status(mut self, status: u16) -> Reply {
        self.status = status;
        self
    }
    pub fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.into(), value.into()));
        self
    }
    pub fn delay(mut self, delay: Duration) -> Reply {
        self.delay = Some(delay);
        self
    }
    /// Holds the answer until the gate opens. The body is built when the request *arrived*,
    /// like a backend that read its data and then stalled.
    pub fn gate(mut self, gate: &Gate) -> Reply {
        self.gate = Some(gate.clone());
        self
    }
}

/// Holds origin answers until released; tells the test when a request is waiting at it.
#[derive(Debug, Clone)]
pub struct Gate {
    inner: Arc<GateInner>,
}

#[derive(Debug)]
struct GateInner {
    arrivals: watch::Sender<u64>,
    open: watch::Sender<bool>,
}

impl Default for Gate {
    fn default() -> Self {
        Self::new()
    }
}

impl Gate {
    pub fn new() -> Gate {
        Gate {
            inner: Arc::new(GateInner {
                arrivals: watch::channel(0).0,
                open: watch::channel(false).0,
            }),
        }
    }
    /// Waits until at least `n` requests have arrived at the gate.
    pub async fn arrivals(&self, n: u64) {
        let what = format!("{n} request(s) to reach the gate");
        until(&what, &mut self.inner.arrivals.subscribe(), |a| *a >= n).await;
    }
    pub fn open(&self) {
        self.inner.open.send_replace(true);
    }
    async fn pass(&self) {
        self.inner.arrivals.send_modify(|a| *a += 1);
        let mut rx = self.inner.open.subscribe();
        let _ = rx.wait_for(|open| *open).await;
    }
}

type Handler = dyn Fn(&Seen) -> Reply + Send + Sync;

/// The requests an origin saw, in arrival order, and their number to wait on.
#[derive(Default)]
struct Log {
    seen: Mutex<Vec<Seen>>,
    count: watch::Sender<usize>,
}

impl Log {
    fn push(&self, request: Seen) {
        let mut seen = self.seen.lock().unwrap();
        seen.push(request);
        self.count.send_replace(seen.len());
    }
}

/// A running origin. Requests are recorded in arrival order.
pub struct Origin {
    pub addr: SocketAddr,
    seen: Arc<Log>,
    version: Arc<AtomicU64>,
    _stop: watch::Sender<bool>,
}

impl Origin {
    /// An origin whose default answer is `{"target": ..., "version": N, "org": ...}`.
    pub async fn start() -> Origin {
        Origin::with(|seen| Reply::ok(default_body(seen))).await
    }

    pub async fn with(handler: impl Fn(&Seen) -> Reply + Send + Sync + 'static) -> Origin {
        Origin::serve(handler, None).await
    }

    /// An origin speaking TLS with `tls` (its certificate, its ALPN), answering as `start`.
    pub async fn with_tls(tls: Arc<rustls::ServerConfig>) -> Origin {
        let acceptor = tokio_rustls::TlsAcceptor::from(tls);
        Origin::serve(|seen| Reply::ok(default_body(seen)), Some(acceptor)).await
    }

    async fn serve(
        handler: impl Fn(&Seen) -> Reply + Send + Sync + 'static,
        tls: Option<tokio_rustls::TlsAcceptor>,
    ) -> Origin {
        let handler: Arc<Handler> = Arc::new(handler);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Log::default());
        let version = Arc::new(AtomicU64::new(1));
        let (stop_tx, mut stop_rx) = watch::channel(false);
        let (seen2, version2) = (seen.clone(), version.clone());
        tokio::spawn(async move {
            loop {
                let (stream, _) = tokio::select! {
                    accepted = listener.accept() => match accepted { Ok(a) => a, Err(_) => continue },
                    _ = stop_rx.wait_for(|s| *s) => return,
                };
                let (handler, seen, version) = (handler.clone(), seen2.clone(), version2.clone());
                let mut stopped = stop_rx.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let (handler, seen, version) =
                            (handler.clone(), seen.clone(), version.clone());
                        async move { Ok::<_, Infallible>(answer(req, &*handler, &seen, &version).await) }
                    });
                    let builder =
                        hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                    let serve = async move {
                        match tls {
                            None => {
                                let _ = builder
                                    .serve_connection(TokioIo::new(stream), service)
                                    .await;
                            }
                            Some(acceptor) => {
                                // A refused handshake (the proxy not trusting us) just ends here.
                                if let Ok(stream) = acceptor.accept(stream).await {
                                    let _ = builder
                                        .serve_connection(TokioIo::new(stream), service)
                                        .await;
                                }
                            }
                        }
                    };
                    // A stopped origin drops its open connections too (a process that died).
                    tokio::select! {
                        _ = serve => {}
                        _ = stopped.wait_for(|s| *s) => {}
                    }
                });
            }
        });
        Origin {
            addr,
            seen,
            version,
            _stop: stop_tx,
        }
    }

    /// Stops the origin as if its process died: the listener and every open connection close,
    /// so the port refuses connections from now on.
    pub fn stop(&self) {
        self._stop.send_replace(true);
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
    /// The number of requests seen so far, as it changes: `hits()` to wait on.
    pub fn watch_hits(&self) -> watch::Receiver<usize> {
        self.seen.count.subscribe()
    }
    /// Every request seen so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.seen.lock().unwrap().clone()
    }
    pub fn hits(&self) -> usize {
        self.seen.seen.lock().unwrap().len()
    }
    /// Requests seen for one path (query ignored).
    pub fn hits_on(&self, path: &str) -> usize {
        self.seen
            .seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.path() == path)
            .count()
    }
    /// Changes the data version the default body reports: "the data changed".
    pub fn set_version(&self, v: u64) {
        self.version.store(v, Ordering::SeqCst);
    }
}

pub fn default_body(seen: &Seen) -> String {
    serde_json::json!({
        "method": seen.method.as_str(),
        "target": seen.target,
        "version": seen.version,
        "org": seen.header("x-org-id"),
    })
    .to_string()
}

async fn answer(
    req: Request<Incoming>,
    handler: &Handler,
    seen: &Log,
    version: &AtomicU64,
) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let request = Seen {
        method: parts.method,
        target: parts
            .uri
            .path_and_query()
            .map(|p| p.to_string())
            .unwrap_or_default(),
        headers: parts.headers,
        body,
        version: version.load(Ordering::SeqCst),
        http: parts.version,
    };
    seen.push(request.clone());
    let reply = handler(&request);
    if let Some(gate) = &reply.gate {
        gate.pass().await;
    }
    if let Some(delay) = reply.delay {
        // The backend's latency, part of what is being simulated (not a synchronisation).
        tokio::time::sleep(delay).await;
    }
    let mut response = Response::new(Full::new(reply.body));
    *response.status_mut() = StatusCode::from_u16(reply.status).unwrap();
    for (name, value) in &reply.headers {
        response.headers_mut().append(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            http::HeaderValue::from_str(value).unwrap(),
        );
    }
    response
}
