//! Cross-instance purge latency: how long after a write is acknowledged by one instance the
//! other instance has dropped its memory copy.
//!
//! Two cachegate instances (A and B) run in this process, started as `main` starts one
//! (`Config::from_toml`, `Listeners::bind`, `App::build`, `App::serve`), over one Redis: the
//! one at `--redis URL`, or a `redis-server` this program starts on a free loopback port (and
//! kills when it ends). An origin of its own answers every `GET` with a small JSON body and
//! every write with `200`. For each iteration, on a path of its own:
//!
//! 1. `GET` on B twice: a miss that fills Redis and B's memory, then a memory hit;
//! 2. `PUT` through A, timed from sending to A's answer (the acknowledgement);
//! 3. a thread watching B's count of applied invalidations (read every 50 µs or so, bounded
//!    in time) notes the instant it moves, whether before or after the acknowledgement;
//! 4. `GET` on B again, which must be a miss: neither B's memory nor Redis may still hold the
//!    old answer.
//!
//! Every request names the same `Host`, so both instances key the path alike (the host is part
//! of the key), as behind a load balancer. It prints p50, p99 and max of the time from sending
//! the write to the acknowledgement, to B applying the invalidation, and from the
//! acknowledgement to B applying it (zero when it came first), and how often it came first.
//!
//! Usage: `cachegate-bench-shared [--redis URL] [--iterations N] [--max-secs S]`
//! (`bench/shared.sh` builds and runs it).

use bytes::Bytes;
use cachegate::app::{App, Listeners, SecretError};
use cachegate::config::{Config, SecretSource};
use cachegate::proxy::Proxy;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::convert::Infallible;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

type Error = Box<dyn std::error::Error + Send + Sync>;

/// The host every request names, on both instances.
const HOST: &str = "bench.test";
const TENANT: &str = "42";
/// Iterations run first and not recorded (connections, allocator, scripts loaded in Redis).
const WARMUP: usize = 20;
/// The longest wait for one invalidation to reach B, and for anything to start.
const WAIT_LIMIT: Duration = Duration::from_secs(2);
const START_LIMIT: Duration = Duration::from_secs(10);

const CONFIG: &str = r#"
[upstream]
url = "{origin}"

[cache]
tenant = { header = "X-Org-Id" }

[[route]]
path = "/api/{*rest}"
ttl = "1h"

[redis]
url = "{redis}"
prefix = "cgbench"
"#;

struct Options {
    redis: Option<String>,
    iterations: usize,
    max_secs: u64,
}

fn main() {
    if let Err(err) = run() {
        eprintln!("cachegate-bench-shared: {err}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Error> {
    let opts = parse_args()?;
    // Kept alive until the end: dropping it kills the server.
    let mut own_redis = None;
    let redis_url = match &opts.redis {
        Some(url) => url.clone(),
        None => {
            let server = RedisServer::start()?;
            let url = server.url();
            own_redis = Some(server);
            url
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(measure(&opts, &redis_url));
    drop(runtime);
    drop(own_redis);
    result
}

fn parse_args() -> Result<Options, Error> {
    let mut opts = Options {
        redis: None,
        iterations: 500,
        max_secs: 60,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--redis" => opts.redis = Some(value()?),
            "--iterations" => opts.iterations = value()?.parse()?,
            "--max-secs" => opts.max_secs = value()?.parse()?,
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    if opts.iterations == 0 {
        return Err("--iterations must be at least 1".into());
    }
    Ok(opts)
}

/// One iteration's instants.
struct Sample {
    sent: Instant,
    acked: Instant,
    /// When the watcher saw B's applied count move.
    applied: Instant,
}

async fn measure(opts: &Options, redis_url: &str) -> Result<(), Error> {
    let origin = start_origin().await?;
    let config = CONFIG
        .replace("{origin}", &format!("http://{origin}"))
        .replace("{redis}", redis_url);
    let a = Instance::start(&config).await?;
    let b = Instance::start(&config).await?;
    a.wait_subscribed().await?;
    b.wait_subscribed().await?;
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let watcher = Watcher::start(b.proxy.clone());

    let run_id = std::process::id();
    let deadline = Instant::now() + Duration::from_secs(opts.max_secs);
    let mut samples = Vec::with_capacity(opts.iterations);
    let mut timeouts = 0usize;
    for i in 0..WARMUP + opts.iterations {
        if Instant::now() > deadline {
            eprintln!(
                "stopped after {} iterations: --max-secs reached",
                samples.len()
            );
            break;
        }
        let path = format!("/api/purge-bench/{run_id}-{i}/");
        let first = send(&client, b.addr, Method::GET, &path).await?;
        let second = send(&client, b.addr, Method::GET, &path).await?;
        if first != "cachegate; fwd=miss; stored" || second != "cachegate; hit" {
            return Err(format!(
                "{path}: B answered {first:?} then {second:?}, expected a stored miss then a memory hit"
            )
            .into());
        }
        let mut seen = watcher.arm(b.applied());
        let sent = Instant::now();
        let status = send(&client, a.addr, Method::PUT, &path).await?;
        let acked = Instant::now();
        if !status.is_empty() {
            return Err(format!("{path}: the write through A answered {status:?}").into());
        }
        let applied = seen.recv().await.flatten();
        let after = send(&client, b.addr, Method::GET, &path).await?;
        if after != "cachegate; fwd=miss; stored" {
            return Err(format!("{path}: after the write, B answered {after:?}").into());
        }
        match applied {
            None => timeouts += 1,
            Some(applied) if i >= WARMUP => samples.push(Sample {
                sent,
                acked,
                applied,
            }),
            Some(_) => {}
        }
    }
    let poll = watcher.mean_poll();
    if samples.is_empty() {
        return Err("no iteration was recorded".into());
    }
    let n = samples.len();
    let early = samples.iter().filter(|s| s.applied <= s.acked).count();
    println!(
        "cross-instance purge: {n} writes through A, each path held in B's memory (Redis at {})",
        redact(redis_url)
    );
    let series = |f: &dyn Fn(&Sample) -> Duration| summary(samples.iter().map(f).collect());
    println!(
        "  PUT sent -> acknowledged by A:      {}",
        series(&|s| s.acked - s.sent)
    );
    println!(
        "  PUT sent -> applied on B:           {}",
        series(&|s| s.applied.saturating_duration_since(s.sent))
    );
    println!(
        "  acknowledged -> applied on B:       {}",
        series(&|s| s.applied.saturating_duration_since(s.acked))
    );
    println!(
        "  applied on B before the acknowledgement arrived: {early} of {n} (B polled every {:.3} ms on average)",
        poll.as_secs_f64() * 1e3
    );
    if timeouts > 0 {
        return Err(
            format!("{timeouts} invalidation(s) did not reach B within {WAIT_LIMIT:?}").into(),
        );
    }
    a.stop().await;
    b.stop().await;
    Ok(())
}

/// A thread that watches B's count of applied invalidations, so that the instant B applies one
/// is known whether it comes before or after A's acknowledgement. It polls with short sleeps
/// rather than spinning, to leave the cores to the instances.
struct Watcher {
    arm:
        Option<std::sync::mpsc::Sender<(u64, tokio::sync::mpsc::UnboundedSender<Option<Instant>>)>>,
    thread: Option<std::thread::JoinHandle<Duration>>,
}

/// The sleep between two reads of the count (the OS rounds it up).
const POLL: Duration = Duration::from_micros(50);

impl Watcher {
    fn start(proxy: Proxy) -> Watcher {
        let (arm, armed) =
            std::sync::mpsc::channel::<(u64, tokio::sync::mpsc::UnboundedSender<Option<Instant>>)>(
            );
        let thread = std::thread::spawn(move || {
            let (mut polls, mut polling) = (0u32, Duration::ZERO);
            for (before, done) in armed {
                let start = Instant::now();
                let seen = loop {
                    if proxy.store().invalidations_applied() > before {
                        break Some(Instant::now());
                    }
                    if start.elapsed() > WAIT_LIMIT {
                        break None;
                    }
                    std::thread::sleep(POLL);
                    polls += 1;
                };
                polling += start.elapsed();
                let _ = done.send(seen);
            }
            polling / polls.max(1)
        });
        Watcher {
            arm: Some(arm),
            thread: Some(thread),
        }
    }

    /// Starts watching for the count to exceed `before`; the receiver gets the instant it did
    /// (`None` after [`WAIT_LIMIT`]).
    fn arm(&self, before: u64) -> tokio::sync::mpsc::UnboundedReceiver<Option<Instant>> {
        let (done, seen) = tokio::sync::mpsc::unbounded_channel();
        if let Some(arm) = &self.arm {
            let _ = arm.send((before, done));
        }
        seen
    }

    /// The mean time between two reads of the count: the resolution of the instants.
    fn mean_poll(mut self) -> Duration {
        self.arm = None;
        self.thread
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default()
    }
}

/// `p50 … p99 … max …` of `times`, in milliseconds (nearest rank).
fn summary(mut times: Vec<Duration>) -> String {
    times.sort();
    let rank = |p: usize| times[(times.len() * p).div_ceil(100).max(1) - 1];
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    format!(
        "p50 {:.3} ms  p99 {:.3} ms  max {:.3} ms",
        ms(rank(50)),
        ms(rank(99)),
        ms(times[times.len() - 1])
    )
}

/// The URL without any password.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

/// Sends a request with the benchmark's host and tenant; returns the `Cache-Status` of a
/// `GET`, and for a write an empty string on `2xx` (else the status).
async fn send(
    client: &Client<HttpConnector, Full<Bytes>>,
    addr: SocketAddr,
    method: Method,
    path: &str,
) -> Result<String, Error> {
    let body = if method == Method::GET {
        Bytes::new()
    } else {
        Bytes::from_static(b"{}")
    };
    let req = Request::builder()
        .method(method.clone())
        .uri(format!("http://{addr}{path}"))
        .header(http::header::HOST, HOST)
        .header("x-org-id", TENANT)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(body))?;
    let response = client.request(req).await?;
    let status = response.status();
    let cache_status = response
        .headers()
        .get("cache-status")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    response.into_body().collect().await?;
    if method == Method::GET {
        if status != StatusCode::OK {
            return Err(format!("GET {path} answered {status}").into());
        }
        Ok(cache_status)
    } else if status.is_success() {
        Ok(String::new())
    } else {
        Ok(status.to_string())
    }
}

// === the instances ===

/// A cachegate serving in this process.
struct Instance {
    addr: SocketAddr,
    proxy: Proxy,
    shutdown: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

/// No secrets: the benchmark uses neither the webhook, nor the admin API, nor `[auth]`.
fn no_secret(_: &SecretSource) -> Result<Option<String>, SecretError> {
    Ok(None)
}

impl Instance {
    async fn start(config_toml: &str) -> Result<Instance, Error> {
        let mut config = Config::from_toml(config_toml, "bench-shared.toml")?;
        config.server.listen = vec![SocketAddr::from(([127, 0, 0, 1], 0))];
        let listeners = Listeners::bind(&config).await?;
        let addr = listeners.proxy[0].local_addr()?;
        let app = App::build(config, no_secret)?;
        let proxy = app.proxy().clone();
        let (shutdown, stop) = oneshot::channel::<()>();
        let task = tokio::spawn(app.serve(listeners, async {
            let _ = stop.await;
        }));
        Ok(Instance {
            addr,
            proxy,
            shutdown,
            task,
        })
    }

    /// Waits (bounded) until the instance hears the other instances' invalidations and
    /// answers from its memory tier.
    async fn wait_subscribed(&self) -> Result<(), Error> {
        let start = Instant::now();
        loop {
            let shared = self.proxy.store().shared_stats();
            if shared.is_some_and(|s| s.subscribed) && self.proxy.store().memory_trusted_now() {
                return Ok(());
            }
            if start.elapsed() > START_LIMIT {
                return Err(
                    format!("not subscribed to invalidations within {START_LIMIT:?}").into(),
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Other instances' purges applied to this instance's memory tier.
    fn applied(&self) -> u64 {
        self.proxy.store().invalidations_applied()
    }

    async fn stop(self) {
        let _ = self.shutdown.send(());
        let _ = self.task.await;
    }
}

// === the origin ===

async fn start_origin() -> Result<SocketAddr, Error> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(
                        |req| async move { Ok::<_, Infallible>(answer(&req)) },
                    );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(addr)
}

fn answer(req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let body = if req.method() == Method::GET {
        format!("{{\"path\":\"{}\",\"items\":[1,2,3]}}", req.uri().path())
    } else {
        "{}".to_owned()
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

// === redis-server ===

/// A `redis-server` on a free loopback port, killed (by its handle) when dropped.
struct RedisServer {
    port: u16,
    dir: PathBuf,
    child: Child,
}

impl RedisServer {
    fn start() -> Result<RedisServer, Error> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let dir = std::env::temp_dir().join(format!(
            "cachegate-bench-redis-{}-{port}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir)?;
        let child = Command::new("redis-server")
            .arg("--port")
            .arg(port.to_string())
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start redis-server (is it installed?): {e}"))?;
        let mut server = RedisServer { port, dir, child };
        let start = Instant::now();
        loop {
            if let Some(status) = server.child.try_wait()? {
                return Err(format!("redis-server exited at start: {status}").into());
            }
            if ping(port) {
                return Ok(server);
            }
            if start.elapsed() > START_LIMIT {
                return Err(format!("redis-server did not answer within {START_LIMIT:?}").into());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }
}

/// Whether a server on `port` answers `PING` with `+PONG`.
fn ping(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
    let mut reply = [0u8; 7];
    stream.write_all(b"PING\r\n").is_ok()
        && stream.read_exact(&mut reply).is_ok()
        && &reply == b"+PONG\r\n"
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
