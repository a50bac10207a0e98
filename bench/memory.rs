//! The memory benchmark: what an entry really costs, whether `max_memory` holds, and whether
//! hits stay as fast with a million entries as with a thousand.
//!
//! It runs cachegate as a child process (the binary next to this one, or `--cachegate PATH`)
//! in front of an origin served from this process, fills distinct keys over HTTP and reads the
//! child's resident memory (`VmRSS` in `/proc/<pid>/status`) and the store's counted bytes
//! (`/stats` on the admin API). Three measurements, each selectable:
//!
//! - `weight`: per body size, a fresh cachegate with a large `max_memory` is warmed with
//!   `entries / 4` entries, then `entries` more are stored; the growth of RSS per stored entry
//!   is compared with the growth of counted bytes per entry (the weight). With `--check` the
//!   run fails when they differ by more than 10 %, or when an entry's overhead beyond its
//!   body, stored headers and key is above 300 bytes.
//! - `bound`: `max_memory = "32MiB"`, ten times that stored in mixed body sizes; RSS must stay
//!   under the baseline (RSS after start and a small warm-up) plus 32 MiB plus 20 %.
//! - `flat`: two cachegates side by side, one holding 1k entries and one holding `--flat-entries`
//!   (a million by default), measured in alternating `wrk` rounds on the same 1k hot keys:
//!   hit throughput and p99 at both.
//!
//! Usage: `cachegate-bench-memory [weight] [bound] [flat] [--sizes 100,1024,8192,65536]
//! [--entries N] [--check] [--flat-entries N] [--flat-secs S] [--rounds R] [--cachegate PATH]`
//! (`bench/memory.sh` builds and runs it).

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::convert::Infallible;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

type Error = Box<dyn std::error::Error + Send + Sync>;

const ADMIN_TOKEN: &str = "bench-admin-token";
/// The tenant every benchmark request names.
const TENANT: &str = "t1";
/// In-flight fill requests.
const FILL_CONCURRENCY: usize = 32;

struct Options {
    weight: bool,
    bound: bool,
    flat: bool,
    sizes: Vec<usize>,
    entries: u64,
    check: bool,
    flat_entries: u64,
    flat_secs: u64,
    rounds: usize,
    cachegate: PathBuf,
}

fn main() {
    match run() {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(err) => {
            eprintln!("error: {err}");
            std::process::exit(2);
        }
    }
}

fn run() -> Result<bool, Error> {
    let opts = options()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let origin = spawn_origin().await?;
        let mut ok = true;
        if opts.weight {
            ok &= weight(&opts, origin).await?;
        }
        if opts.bound {
            ok &= bound(&opts, origin).await?;
        }
        if opts.flat {
            ok &= flat(&opts, origin).await?;
        }
        Ok(ok)
    })
}

fn options() -> Result<Options, Error> {
    let exe = std::env::current_exe()?;
    let mut opts = Options {
        weight: false,
        bound: false,
        flat: false,
        sizes: vec![100, 1024, 8192, 65536],
        entries: 20_000,
        check: false,
        flat_entries: 1_000_000,
        flat_secs: 5,
        rounds: 3,
        cachegate: exe.with_file_name("cachegate"),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "weight" => opts.weight = true,
            "bound" => opts.bound = true,
            "flat" => opts.flat = true,
            "--check" => opts.check = true,
            "--sizes" => {
                opts.sizes = value()?
                    .split(',')
                    .map(str::parse)
                    .collect::<Result<_, _>>()?
            }
            "--entries" => opts.entries = value()?.parse()?,
            "--flat-entries" => opts.flat_entries = value()?.parse()?,
            "--flat-secs" => opts.flat_secs = value()?.parse()?,
            "--rounds" => opts.rounds = value()?.parse()?,
            "--cachegate" => opts.cachegate = PathBuf::from(value()?),
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    if !(opts.weight || opts.bound || opts.flat) {
        opts.weight = true;
        opts.bound = true;
    }
    Ok(opts)
}

// === the origin ===

/// Serves `GET /m/<size>/<anything>`: `size` bytes of JSON-ish text, like an API answer.
async fn spawn_origin() -> Result<u16, Error> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|req| async move {
                    Ok::<_, Infallible>(answer(&req))
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(port)
}

fn answer(req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let size = req
        .uri()
        .path()
        .strip_prefix("/m/")
        .and_then(|rest| rest.split('/').next())
        .and_then(|size| size.parse::<usize>().ok())
        .unwrap_or(0);
    let body: Vec<u8> = b"{\"id\":1,\"name\":\"x\"}"
        .iter()
        .copied()
        .cycle()
        .take(size)
        .collect();
    let mut response = Response::new(Full::new(Bytes::from(body)));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

// === cachegate as a child ===

struct Proxy {
    child: Child,
    port: u16,
    admin: u16,
    client: Client<hyper_util::client::legacy::connect::HttpConnector, Empty<Bytes>>,
    /// Keeps the config file for the child's lifetime.
    _config: PathBuf,
}

struct Sample {
    rss: u64,
    entries: u64,
    bytes: u64,
}

impl Proxy {
    async fn start(opts: &Options, origin: u16, max_memory: &str) -> Result<Proxy, Error> {
        let port = free_port()?;
        let admin = free_port()?;
        let config = std::env::temp_dir().join(format!(
            "cachegate-bench-memory-{}-{port}.toml",
            std::process::id()
        ));
        std::fs::write(
            &config,
            format!(
                r#"[server]
listen = "127.0.0.1:{port}"
workers = 1
[upstream]
url = "http://127.0.0.1:{origin}"
[cache]
max_memory = "{max_memory}"
max_object_size = "1MiB"
tenant = {{ header = "X-Org-Id" }}
[log]
level = "warn"
[admin]
listen = "127.0.0.1:{admin}"
token_env = "BENCH_ADMIN_TOKEN"
[[route]]
path = "/m/{{*rest}}"
ttl = "1h"
"#
            ),
        )?;
        // The start-up warnings (no webhook secret, an unverified tenant header) are expected
        // here; the log is kept next to the config for a failed start.
        let log = std::fs::File::create(config.with_extension("log"))?;
        let child = Command::new(&opts.cachegate)
            .args(["serve", "--config"])
            .arg(&config)
            .env("BENCH_ADMIN_TOKEN", ADMIN_TOKEN)
            .stdin(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", opts.cachegate.display()))?;
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(FILL_CONCURRENCY)
            .build_http();
        let proxy = Proxy {
            child,
            port,
            admin,
            client,
            _config: config,
        };
        for _ in 0..100 {
            if proxy.sample().await.is_ok() {
                return Ok(proxy);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let log = std::fs::read_to_string(proxy._config.with_extension("log")).unwrap_or_default();
        Err(format!("cachegate did not come up:\n{log}").into())
    }

    /// Stores `count` distinct entries of `size` bytes, named `<prefix><i>`.
    async fn fill(&self, size: usize, prefix: &str, count: u64) -> Result<(), Error> {
        let next = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::new();
        for _ in 0..FILL_CONCURRENCY {
            let next = next.clone();
            let client = self.client.clone();
            let base = format!("http://127.0.0.1:{}/m/{size}/{prefix}", self.port);
            tasks.push(tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= count {
                        return Ok::<(), Error>(());
                    }
                    let req = Request::get(format!("{base}{i}"))
                        .header("x-org-id", TENANT)
                        .body(Empty::new())?;
                    let res = client.request(req).await?;
                    let status = res.status();
                    res.into_body().collect().await?;
                    if status != 200 {
                        return Err(format!("fill answered {status}").into());
                    }
                }
            }));
        }
        for task in tasks {
            task.await??;
        }
        Ok(())
    }

    /// Resident memory and the store's counters, after letting the process settle.
    async fn sample(&self) -> Result<Sample, Error> {
        let req = Request::get(format!("http://127.0.0.1:{}/stats", self.admin))
            .header("authorization", format!("Bearer {ADMIN_TOKEN}"))
            .body(Empty::new())?;
        let res = self.client.request(req).await?;
        if res.status() != 200 {
            return Err(format!("/stats answered {}", res.status()).into());
        }
        let body = res.into_body().collect().await?.to_bytes();
        let report: serde_json::Value = serde_json::from_slice(&body)?;
        let count = |field: &str| report.get(field).and_then(serde_json::Value::as_u64);
        Ok(Sample {
            rss: rss(self.child.id())?,
            entries: count("entries").ok_or("/stats has no entries")?,
            bytes: count("bytes").ok_or("/stats has no bytes")?,
        })
    }

    async fn settled_sample(&self) -> Result<Sample, Error> {
        tokio::time::sleep(Duration::from_millis(300)).await;
        self.sample().await
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self._config);
        let _ = std::fs::remove_file(self._config.with_extension("log"));
    }
}

fn free_port() -> Result<u16, Error> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// `VmRSS` of a process, in bytes.
fn rss(pid: u32) -> Result<u64, Error> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .ok_or("no VmRSS in /proc/<pid>/status")?;
    Ok(kib * 1024)
}

// === weight ===

/// The bytes of a stored entry that are its content: body, stored headers (names and values,
/// as the proxy stores them: the origin's `content-type`, `date` and `content-length`) and key
/// (its readable form and its digest). What an entry costs beyond these is overhead.
fn content_bytes(size: usize, readable_key_len: usize) -> u64 {
    let headers = "content-type".len() + "application/json".len();
    let date = "date".len() + "Thu, 01 Jan 1970 00:00:00 GMT".len();
    let length = "content-length".len() + size.to_string().len();
    (size + headers + date + length + readable_key_len + 32) as u64
}

async fn weight(opts: &Options, origin: u16) -> Result<bool, Error> {
    println!(
        "{:>8} {:>9} {:>12} {:>12} {:>7} {:>10}",
        "body", "entries", "rss/entry", "weight/entry", "ratio", "overhead"
    );
    let mut ok = true;
    for &size in &opts.sizes {
        let proxy = Proxy::start(opts, origin, "8GiB").await?;
        proxy.fill(size, "warm-", opts.entries / 4).await?;
        let before = proxy.settled_sample().await?;
        proxy.fill(size, "k-", opts.entries).await?;
        let after = proxy.settled_sample().await?;
        let entries = after.entries.saturating_sub(before.entries);
        if entries == 0 {
            return Err("nothing was stored".into());
        }
        let rss = after.rss.saturating_sub(before.rss) as f64 / entries as f64;
        let weight = after.bytes.saturating_sub(before.bytes) as f64 / entries as f64;
        let ratio = weight / rss;
        // The readable key of a typical `/m/<size>/k-<i>`, as `policy::cache_key::readable` writes it.
        let path = format!("/m/{size}/k-{}", opts.entries / 2);
        let readable = format!("cg:v1 127.0.0.1:{} t={TENANT} GET {path}", proxy.port);
        let overhead = rss - content_bytes(size, readable.len()) as f64;
        println!(
            "{size:>8} {entries:>9} {rss:>12.0} {weight:>12.0} {ratio:>7.3} {overhead:>10.0}"
        );
        if opts.check && !(0.9..=1.1).contains(&ratio) {
            println!("FAIL: weight/rss {ratio:.3} for {size}-byte bodies is off by more than 10 %");
            ok = false;
        }
        if opts.check && overhead > 300.0 {
            println!("FAIL: overhead {overhead:.0} bytes per {size}-byte entry is above 300");
            ok = false;
        }
    }
    Ok(ok)
}

// === bound ===

async fn bound(opts: &Options, origin: u16) -> Result<bool, Error> {
    const BOUND: u64 = 32 * 1024 * 1024;
    let proxy = Proxy::start(opts, origin, "32MiB").await?;
    proxy.fill(1024, "warm-", 200).await?;
    let baseline = proxy.settled_sample().await?;
    // Ten times the bound, in rounds of mixed sizes so that freed space of one size is
    // offered to the others.
    let sizes = [100usize, 1024, 8192, 65536];
    let per_round: u64 = sizes.iter().map(|s| *s as u64 + 400).sum();
    let rounds = 10 * BOUND / per_round / 100;
    for round in 0..100 {
        for size in sizes {
            proxy.fill(size, &format!("r{round}-"), rounds).await?;
        }
    }
    let after = proxy.settled_sample().await?;
    let limit = baseline.rss + BOUND + BOUND / 5;
    println!(
        "bound: max_memory 32 MiB, stored {} MiB in {} entries; baseline RSS {:.1} MiB, \
         final RSS {:.1} MiB (counted {:.1} MiB in {} entries), limit {:.1} MiB",
        rounds * per_round * 100 / (1024 * 1024),
        rounds * sizes.len() as u64 * 100,
        mib(baseline.rss),
        mib(after.rss),
        mib(after.bytes),
        after.entries,
        mib(limit)
    );
    if after.rss > limit {
        println!("FAIL: RSS is above baseline + max_memory + 20 %");
        return Ok(!opts.check);
    }
    Ok(true)
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

// === flat ===

async fn flat(_opts: &Options, _origin: u16) -> Result<bool, Error> {
    Err("flat: not yet".into())
}
