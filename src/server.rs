//! The accept loop: HTTP/1.1 and h2 (over TLS with ALPN, or h2c in plain text) on each listener,
//! connection caps, per-connection limits, graceful shutdown.
//!
//! Serves any [`Handler`]; knows nothing of caching. `main` and the integration tests both start
//! cachegate through [`serve`], so what the tests exercise is what runs in production.

use crate::body::ProxyBody;
use http::header::{HeaderValue, CONNECTION};
use http::{Request, Response, Version};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify, Semaphore};
use tokio::time::Instant;

/// Something that answers requests; every error is already a response.
pub trait Handler: Send + Sync + 'static {
    fn handle(
        &self,
        req: Request<Incoming>,
        peer: SocketAddr,
    ) -> impl Future<Output = Response<ProxyBody>> + Send;
}

/// Limits of the listener, from `[server]`.
#[derive(Clone)]
pub struct ServeOptions {
    pub header_read_timeout: Duration,
    /// The handler refuses heads above this itself (431 with a JSON body); hyper's own read
    /// limit is twice as much, a backstop that answers a bare 431.
    pub max_header_bytes: usize,
    pub max_connections: usize,
    pub shutdown_grace: Duration,
    pub idle_timeout: Duration,
    /// Requests on one connection before it is closed (`Connection: close` on the last answer
    /// for HTTP/1.1, GOAWAY for h2); 0 for no limit.
    pub max_requests_per_connection: usize,
    pub http2_max_concurrent_streams: u32,
    /// Speak TLS (the handshake within `header_read_timeout`); `None` for plain text.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    /// Where connection-level events are counted.
    pub counters: Arc<ConnectionCounters>,
}

/// What happened to connections that never became, or stopped being, requests: counted here,
/// reported in `/stats` and `/metrics`.
#[derive(Debug, Default)]
pub struct ConnectionCounters {
    /// HTTP/1.1 connections closed because the request head did not arrive within
    /// `header_read_timeout` (hyper closes them without an answer).
    pub header_timeouts: AtomicU64,
    /// Connections closed after `max_requests_per_connection` requests.
    pub request_limit_closes: AtomicU64,
    /// TLS handshakes that failed or did not finish within `header_read_timeout`.
    pub tls_handshake_failures: AtomicU64,
}

/// Serves `handler` on every listener until `shutdown` resolves, then stops accepting and lets
/// open connections finish their in-flight requests for at most `shutdown_grace`. `closed` is
/// called once every listener is closed, before the drain.
pub async fn serve<H: Handler>(
    listeners: Vec<TcpListener>,
    handler: Arc<H>,
    opts: ServeOptions,
    shutdown: impl Future<Output = ()>,
    closed: impl FnOnce(),
) {
    let (stop_tx, stop_rx) = watch::channel(false);
    let permits = Arc::new(Semaphore::new(opts.max_connections.max(1)));
    let mut loops = Vec::new();
    for listener in listeners {
        loops.push(tokio::spawn(accept_loop(
            listener,
            handler.clone(),
            opts.clone(),
            permits.clone(),
            stop_rx.clone(),
        )));
    }
    shutdown.await;
    tracing::info!("shutting down: no new connections, draining in-flight requests");
    let _ = stop_tx.send(true);
    for handle in loops {
        let _ = handle.await;
    }
    closed();
    // Every open connection holds a slot; all slots back means all connections are closed.
    let all = u32::try_from(opts.max_connections.max(1)).unwrap_or(u32::MAX);
    if tokio::time::timeout(opts.shutdown_grace, permits.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!(grace = ?opts.shutdown_grace, "connections still open after the grace period; closing them");
    }
}

async fn accept_loop<H: Handler>(
    listener: TcpListener,
    handler: Arc<H>,
    opts: ServeOptions,
    permits: Arc<Semaphore>,
    mut stop: watch::Receiver<bool>,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(opts.header_read_timeout)
        .max_buf_size(opts.max_header_bytes.saturating_mul(2).max(8192));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(opts.http2_max_concurrent_streams)
        .max_header_list_size(
            u32::try_from(opts.max_header_bytes.saturating_mul(2)).unwrap_or(u32::MAX),
        );
    let builder = Arc::new(builder);

    loop {
        // Wait for a free connection slot before accepting, so excess clients queue in the
        // kernel's backlog instead of being accepted and starved.
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_closed) => break,
            },
            _ = stopped(&mut stop) => break,
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stopped(&mut stop) => break,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(err) => {
                // EMFILE and friends: back off briefly rather than spin on a failing accept.
                tracing::warn!(error = %err, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let activity = Arc::new(Activity::new());
        let handler = handler.clone();
        let tracked = activity.clone();
        let max_requests = opts.max_requests_per_connection;
        let counted = opts.counters.clone();
        let service = hyper::service::service_fn(move |req: Request<Incoming>| {
            let handler = handler.clone();
            let busy = Busy::start(&tracked);
            let last = max_requests > 0 && busy.number >= max_requests;
            if max_requests > 0 && busy.number == max_requests {
                counted.request_limit_closes.fetch_add(1, Ordering::Relaxed);
            }
            let http1 = req.version() < Version::HTTP_2;
            let tracked = tracked.clone();
            async move {
                let mut response = handler.handle(req, peer).await;
                if last {
                    if http1 {
                        response
                            .headers_mut()
                            .insert(CONNECTION, HeaderValue::from_static("close"));
                    }
                    tracked.limit.notify_one();
                }
                // The request stays in flight until its body is sent, so a long download is
                // never taken for idleness.
                Ok::<_, Infallible>(response.map(|body| Tracked { body, _busy: busy }))
            }
        });
        let builder = builder.clone();
        let stop = stop.clone();
        let tls = opts.tls.clone();
        let counters = opts.counters.clone();
        let (first, idle) = (opts.header_read_timeout, opts.idle_timeout);
        tokio::spawn(async move {
            let conn = Conn {
                builder,
                activity,
                counters,
                stop,
                peer,
                first,
                idle,
            };
            match tls {
                None => conn.run(stream, service).await,
                Some(acceptor) => {
                    match tokio::time::timeout(first, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => conn.run(stream, service).await,
                        Ok(Err(err)) => {
                            conn.counters
                                .tls_handshake_failures
                                .fetch_add(1, Ordering::Relaxed);
                            tracing::debug!(error = %err, %peer, "TLS handshake failed");
                        }
                        Err(_elapsed) => {
                            conn.counters
                                .tls_handshake_failures
                                .fetch_add(1, Ordering::Relaxed);
                            tracing::debug!(%peer, "TLS handshake did not finish in time");
                        }
                    }
                }
            }
            drop(permit);
        });
    }
    // Stop listening before draining, so new clients are refused at once instead of queueing.
    drop(listener);
}

/// One accepted connection and what its serving loop watches.
struct Conn {
    builder: Arc<auto::Builder<TokioExecutor>>,
    activity: Arc<Activity>,
    counters: Arc<ConnectionCounters>,
    stop: watch::Receiver<bool>,
    peer: SocketAddr,
    first: Duration,
    idle: Duration,
}

impl Conn {
    /// Serves the connection's requests until it closes, asking it to close on shutdown, on
    /// idleness and after its last allowed request.
    async fn run<IO, S>(self, stream: IO, service: S)
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
        S: hyper::service::Service<
                Request<Incoming>,
                Response = Response<Tracked>,
                Error = Infallible,
            > + Send
            + 'static,
        S::Future: Send + 'static,
    {
        let Conn {
            builder,
            activity,
            counters,
            mut stop,
            peer,
            first,
            idle,
        } = self;
        {
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            let mut conn = std::pin::pin!(conn);
            let mut closing = false;
            // An idle connection asked to close gets this long to do so; an h2 peer that never
            // acknowledges the GOAWAY would otherwise keep it open.
            let mut give_up: Option<Instant> = None;
            loop {
                tokio::select! {
                    result = conn.as_mut() => {
                        if let Err(err) = result {
                            let timeout = err
                                .downcast_ref::<hyper::Error>()
                                .is_some_and(hyper::Error::is_timeout);
                            if timeout {
                                counters.header_timeouts.fetch_add(1, Ordering::Relaxed);
                                tracing::info!(%peer, "request head not received in time; connection closed");
                            } else {
                                tracing::debug!(error = %err, %peer, "connection ended with an error");
                            }
                        }
                        break;
                    }
                    // The last allowed request was answered: no more on this connection.
                    _ = activity.limit.notified(), if !closing => {
                        tracing::debug!(%peer, "request limit of the connection reached; closing it");
                        conn.as_mut().graceful_shutdown();
                        closing = true;
                    }
                    // Shutdown or idleness: stop taking requests, finish the ones in flight.
                    _ = stopped(&mut stop), if !closing => {
                        conn.as_mut().graceful_shutdown();
                        closing = true;
                    }
                    _ = activity.idle(first, idle), if !closing => {
                        conn.as_mut().graceful_shutdown();
                        closing = true;
                        give_up = Some(Instant::now() + IDLE_CLOSE_GRACE);
                    }
                    _ = sleep_until_some(give_up), if give_up.is_some() => {
                        tracing::debug!(%peer, "idle connection did not close in time; dropping it");
                        break;
                    }
                }
            }
        }
    }
}

/// How long an idle connection may take to close after it was asked to.
const IDLE_CLOSE_GRACE: Duration = Duration::from_secs(2);

async fn sleep_until_some(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// When a connection last did something, so that idle ones give back their slot. hyper closes
/// idle HTTP/1.1 connections itself (`header_read_timeout`), but nothing closes an h2
/// connection that never sends a request, which would hold a `max_connections` slot forever.
struct Activity {
    born: Instant,
    in_flight: AtomicUsize,
    served: AtomicBool,
    /// Milliseconds after `born` of the last request start or end.
    last: AtomicU64,
    /// Requests started on the connection.
    requests: AtomicUsize,
    /// Notified when the last request the connection may serve is answered.
    limit: Notify,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            born: Instant::now(),
            in_flight: AtomicUsize::new(0),
            served: AtomicBool::new(false),
            last: AtomicU64::new(0),
            requests: AtomicUsize::new(0),
            limit: Notify::new(),
        }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.born.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last.store(ms, Ordering::Relaxed);
    }

    /// Resolves once no request has been in flight for `idle` (or, before the first request,
    /// for `first`).
    async fn idle(&self, first: Duration, idle: Duration) {
        loop {
            let limit = if self.served.load(Ordering::Relaxed) {
                idle
            } else {
                first
            };
            let quiet_since = self.born + Duration::from_millis(self.last.load(Ordering::Relaxed));
            let deadline = quiet_since + limit;
            if self.in_flight.load(Ordering::Relaxed) == 0 && Instant::now() >= deadline {
                return;
            }
            // Busy or not yet due: look again at the deadline (or in a while, when busy).
            let wake = deadline.max(Instant::now() + limit.min(Duration::from_secs(1)));
            tokio::time::sleep_until(wake).await;
        }
    }
}

/// A response body that keeps its request marked in flight until it is dropped.
struct Tracked {
    body: ProxyBody,
    _busy: Busy,
}

impl http_body::Body for Tracked {
    type Data = bytes::Bytes;
    type Error = crate::error::BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, Self::Error>>> {
        std::pin::Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// Marks a request in flight on its connection for as long as it lives.
struct Busy {
    activity: Arc<Activity>,
    /// The request's number on its connection, from 1.
    number: usize,
}

impl Busy {
    fn start(activity: &Arc<Activity>) -> Busy {
        activity.served.store(true, Ordering::Relaxed);
        activity.in_flight.fetch_add(1, Ordering::Relaxed);
        let number = activity.requests.fetch_add(1, Ordering::Relaxed) + 1;
        activity.touch();
        Busy {
            activity: activity.clone(),
            number,
        }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.activity.touch();
        self.activity.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Resolves once shutdown has been signalled (or the signalling side is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}
