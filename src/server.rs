//! The accept loop: HTTP/1.1 and h2c on each listener, connection caps, graceful shutdown.
//!
//! Serves any [`Handler`]; knows nothing of caching. `main` and the integration tests both start
//! cachegate through [`serve`], so what the tests exercise is what runs in production.

use crate::body::ProxyBody;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
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
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub header_read_timeout: Duration,
    pub max_header_bytes: usize,
    pub max_connections: usize,
    pub shutdown_grace: Duration,
    pub idle_timeout: Duration,
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
        .max_buf_size(opts.max_header_bytes.max(8192));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(opts.max_header_bytes).unwrap_or(u32::MAX));
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
        let service = hyper::service::service_fn(move |req| {
            let handler = handler.clone();
            let busy = Busy::start(&tracked);
            async move {
                let response = handler.handle(req, peer).await;
                // The request stays in flight until its body is sent, so a long download is
                // never taken for idleness.
                Ok::<_, Infallible>(response.map(|body| Tracked { body, _busy: busy }))
            }
        });
        let builder = builder.clone();
        let mut stop = stop.clone();
        let (first, idle) = (opts.header_read_timeout, opts.idle_timeout);
        tokio::spawn(async move {
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
                            tracing::debug!(error = %err, %peer, "connection ended with an error");
                        }
                        break;
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
            drop(permit);
        });
    }
    // Stop listening before draining, so new clients are refused at once instead of queueing.
    drop(listener);
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
}

impl Activity {
    fn new() -> Activity {
        Activity {
            born: Instant::now(),
            in_flight: AtomicUsize::new(0),
            served: AtomicBool::new(false),
            last: AtomicU64::new(0),
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
struct Busy(Arc<Activity>);

impl Busy {
    fn start(activity: &Arc<Activity>) -> Busy {
        activity.served.store(true, Ordering::Relaxed);
        activity.in_flight.fetch_add(1, Ordering::Relaxed);
        activity.touch();
        Busy(activity.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Resolves once shutdown has been signalled (or the signalling side is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}
