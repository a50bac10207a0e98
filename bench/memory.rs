//! The memory benchmark: what an entry really costs, whether `max_memory` holds, and whether
//! hits stay as fast with a million entries as with a thousand (issue 12).
//!
//! It runs cachegate as a child process (the binary next to this one, or `--cachegate PATH`)
//! in front of an origin served from this process, fills distinct keys over HTTP and reads the
//! child's resident memory (`VmRSS` in `/proc/<pid>/status`) and the store's counted bytes
//! (`/stats` on the admin API). Four measurements, each selectable (`weight` and `bound` when
//! none is named):
//!
//! - `weight`: per body size, a fresh cachegate with a large `max_memory` is warmed with a
//!   quarter of the entries it then stores (`--entries`, a quarter as many for bodies over
//!   16 KiB); the growth of RSS per stored entry is compared with the growth of counted bytes
//!   per entry (the weight). With `--check` the run fails when they differ by more than 10 %;
//!   with `--max-overhead B`, when an entry costs more than `B` bytes beyond its body, stored
//!   headers and key. Beside the overhead it prints the part of it that is jemalloc's
//!   bookkeeping for a block of the body's size (`store::alloc_size::bookkeeping`), which
//!   grows with the body.
//! - `bound`: `max_memory = "32MiB"`, ten times that stored in mixed body sizes; RSS must stay
//!   under the baseline (RSS after the same traffic through an uncached route) plus 32 MiB
//!   plus 20 % (a failure with `--check`).
//! - `flat`: two cachegates side by side, one holding 1k entries and one `--flat-entries` (a
//!   million by default), measured in alternating `wrk` rounds on the same 1k hot keys: hit
//!   throughput and p99 at both, and the time of a purge of one path.
//! - `calibrate`: the constants of the weight model (`store::CachedResponse::weight`), each
//!   measured in a fresh process of its own that stores entries straight into a `store::Tiered`
//!   (as a fill does, through `store::compact`): scenarios that differ by one part of an entry
//!   (its slot, three more headers, the whole-tenant tag, a path tag), and the value of each
//!   constant that would make the weight match the RSS growth.
//!
//! Usage: `cachegate-bench-memory [weight] [bound] [flat] [calibrate] [--sizes 100,1024,8192,65536]
//! [--entries N] [--check] [--max-overhead B] [--flat-entries N] [--flat-secs S] [--rounds R]
//! [--cachegate PATH]` (`bench/memory.sh` builds and runs it).

/// The allocator of the `cachegate` binary: `calibrate` stores entries in this process, so their
/// RSS must come from the same allocator as the proxy's.
#[cfg(feature = "jemalloc")]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

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
    calibrate: bool,
    sizes: Vec<usize>,
    entries: u64,
    check: bool,
    max_overhead: Option<u64>,
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
    if opts.calibrate {
        calibrate(&opts)?;
    }
    if !(opts.weight || opts.bound || opts.flat) {
        return Ok(true);
    }
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
        calibrate: false,
        sizes: vec![100, 1024, 8192, 65536],
        entries: 20_000,
        check: false,
        max_overhead: None,
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
            "calibrate" => opts.calibrate = true,
            "calibrate-one" => {
                let scenario = value()?;
                let entries = value()?.parse()?;
                calibrate_one(&scenario, entries)?;
                std::process::exit(0);
            }
            "--check" => opts.check = true,
            "--sizes" => {
                opts.sizes = value()?
                    .split(',')
                    .map(str::parse)
                    .collect::<Result<_, _>>()?
            }
            "--entries" => opts.entries = value()?.parse()?,
            "--max-overhead" => opts.max_overhead = Some(value()?.parse()?),
            "--flat-entries" => opts.flat_entries = value()?.parse()?,
            "--flat-secs" => opts.flat_secs = value()?.parse()?,
            "--rounds" => opts.rounds = value()?.parse()?,
            "--cachegate" => opts.cachegate = PathBuf::from(value()?),
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    if !(opts.weight || opts.bound || opts.flat || opts.calibrate) {
        opts.weight = true;
        opts.bound = true;
    }
    Ok(opts)
}

// === the origin ===

/// Serves `GET /<route>/<size>/<anything>`: `size` bytes of JSON-ish text, like an API answer.
async fn spawn_origin() -> Result<u16, Error> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(
                        |req| async move { Ok::<_, Infallible>(answer(&req)) },
                    );
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
        .split('/')
        .nth(2)
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
    async fn start(
        opts: &Options,
        origin: u16,
        max_memory: &str,
        workers: usize,
    ) -> Result<Proxy, Error> {
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
workers = {workers}
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
[[route]]
path = "/p/{{*rest}}"
cache = false
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
        self.get_many("m", size, prefix, count).await
    }

    /// Sends `count` requests for distinct paths under the route `/<route>/`.
    async fn get_many(
        &self,
        route: &str,
        size: usize,
        prefix: &str,
        count: u64,
    ) -> Result<(), Error> {
        let next = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::new();
        for _ in 0..FILL_CONCURRENCY {
            let next = next.clone();
            let client = self.client.clone();
            let base = format!("http://127.0.0.1:{}/{route}/{size}/{prefix}", self.port);
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

    /// Purges one path of the benchmark tenant through the admin API; how long it took.
    async fn purge_path(&self, path: &str) -> Result<Duration, Error> {
        let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
        let body = serde_json::json!({ "tenant": TENANT, "paths": [path] }).to_string();
        let req = Request::post(format!("http://127.0.0.1:{}/purge", self.admin))
            .header("authorization", format!("Bearer {ADMIN_TOKEN}"))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))?;
        let started = std::time::Instant::now();
        let res = client.request(req).await?;
        let status = res.status();
        res.into_body().collect().await?;
        if status != 200 {
            return Err(format!("/purge answered {status}").into());
        }
        Ok(started.elapsed())
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
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
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

/// What the allocator keeps beside a block of `size` bytes (its slab descriptor's share or its
/// extent's descriptor, and its page map): part of the overhead that grows with the body.
#[cfg(feature = "jemalloc")]
fn allocator_bookkeeping(size: usize) -> u64 {
    cachegate::store::alloc_size::bookkeeping(size)
}

#[cfg(not(feature = "jemalloc"))]
fn allocator_bookkeeping(_size: usize) -> u64 {
    0
}

async fn weight(opts: &Options, origin: u16) -> Result<bool, Error> {
    println!(
        "{:>8} {:>9} {:>12} {:>12} {:>7} {:>10}",
        "body", "entries", "rss/entry", "weight/entry", "ratio", "overhead"
    );
    println!("(overhead: of which the allocator's bookkeeping for a block of the body's size)");
    let mut ok = true;
    for &size in &opts.sizes {
        // The largest bodies dominate their entries' cost: a quarter as many measure them as
        // well. Smaller ones need the allocator in its steady state, which takes a few
        // thousand entries (with `--entries 2500`, 8 KiB bodies measure 10 % high).
        let count = if size > 16384 {
            opts.entries / 4
        } else {
            opts.entries
        };
        let proxy = Proxy::start(opts, origin, "8GiB", 2).await?;
        proxy.fill(size, "warm-", count / 4).await?;
        let before = proxy.settled_sample().await?;
        proxy.fill(size, "k-", count).await?;
        let after = proxy.settled_sample().await?;
        let entries = after.entries.saturating_sub(before.entries);
        if entries == 0 {
            return Err("nothing was stored".into());
        }
        let rss = after.rss.saturating_sub(before.rss) as f64 / entries as f64;
        let weight = after.bytes.saturating_sub(before.bytes) as f64 / entries as f64;
        let ratio = weight / rss;
        // The readable key of a typical `/m/<size>/k-<i>`, as `policy::cache_key::readable` writes it.
        let path = format!("/m/{size}/k-{}", count / 2);
        let readable = format!("cg:v1 127.0.0.1:{} t={TENANT} GET {path}", proxy.port);
        let overhead = rss - content_bytes(size, readable.len()) as f64;
        let allocator = allocator_bookkeeping(size);
        println!(
            "{size:>8} {entries:>9} {rss:>12.0} {weight:>12.0} {ratio:>7.3} {overhead:>10.0} \
             (allocator {allocator})"
        );
        if opts.check && !(0.9..=1.1).contains(&ratio) {
            println!("FAIL: weight/rss {ratio:.3} for {size}-byte bodies is off by more than 10 %");
            ok = false;
        }
        if opts.max_overhead.is_some_and(|max| overhead > max as f64) {
            println!(
                "FAIL: overhead {overhead:.0} bytes per {size}-byte entry is above the maximum"
            );
            ok = false;
        }
    }
    Ok(ok)
}

// === bound ===

async fn bound(opts: &Options, origin: u16) -> Result<bool, Error> {
    const BOUND: u64 = 32 * 1024 * 1024;
    let proxy = Proxy::start(opts, origin, "32MiB", 2).await?;
    let sizes = [100usize, 1024, 8192, 65536];
    // The baseline is the process serving the same traffic with nothing stored (through an
    // uncached route): its connections' buffers have grown to what the large bodies need.
    for round in 0..2 {
        for size in sizes {
            proxy
                .get_many("p", size, &format!("r{round}-"), 100)
                .await?;
        }
    }
    let baseline = proxy.settled_sample().await?;
    // Ten times the bound, in rounds of mixed sizes so that freed space of one size is
    // offered to the others.
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

async fn flat(opts: &Options, origin: u16) -> Result<bool, Error> {
    const HOT: u64 = 1000;
    const SIZE: usize = 1024;
    let small = Proxy::start(opts, origin, "8GiB", 1).await?;
    let large = Proxy::start(opts, origin, "8GiB", 1).await?;
    small.fill(SIZE, "hot-", HOT).await?;
    large.fill(SIZE, "hot-", HOT).await?;
    let started = std::time::Instant::now();
    large
        .fill(SIZE, "k-", opts.flat_entries.saturating_sub(HOT))
        .await?;
    let filled = started.elapsed();
    let (s, l) = (small.sample().await?, large.sample().await?);
    println!(
        "flat: {} and {} entries of {SIZE} bytes stored over HTTP ({:.0} fills/s); RSS {:.0} MiB \
         and {:.0} MiB, counted {:.0} MiB and {:.0} MiB",
        s.entries,
        l.entries,
        opts.flat_entries.saturating_sub(HOT) as f64 / filled.as_secs_f64(),
        mib(s.rss),
        mib(l.rss),
        mib(s.bytes),
        mib(l.bytes)
    );
    // Every request a hit on one of the same 1k keys, in a different order per connection.
    let script =
        std::env::temp_dir().join(format!("cachegate-bench-hot-{}.lua", std::process::id()));
    std::fs::write(
        &script,
        format!(
            "local i = 0\n\
             request = function()\n  i = (i * 7 + 13) % {HOT}\n  \
             return wrk.format(\"GET\", \"/m/{SIZE}/hot-\" .. i, {{[\"X-Org-Id\"] = \"{TENANT}\"}})\n\
             end\n"
        ),
    )?;
    println!(
        "{:<6} {:>10} {:>12} {:>10}",
        "round", "entries", "req/s", "p99 µs"
    );
    let mut results: [Vec<(f64, f64)>; 2] = [Vec::new(), Vec::new()];
    for round in 1..=opts.rounds {
        for (i, proxy) in [&small, &large].into_iter().enumerate() {
            let (rps, p99) = wrk(proxy.port, &script, opts.flat_secs)?;
            let entries = if i == 0 { s.entries } else { l.entries };
            println!("{round:<6} {entries:>10} {rps:>12.0} {p99:>10.0}");
            results[i].push((rps, p99));
        }
    }
    let _ = std::fs::remove_file(&script);
    // Rounds alternate, so each pair saw the same machine: compare within pairs.
    let median = |mut x: Vec<f64>| {
        x.sort_by(f64::total_cmp);
        x[x.len() / 2]
    };
    let pairs = || results[0].iter().zip(&results[1]);
    let rps = median(pairs().map(|(s, l)| l.0 / s.0).collect());
    let p99 = median(pairs().map(|(s, l)| l.1 / s.1).collect());
    println!(
        "{} vs {} entries, median of the rounds' ratios: throughput {:+.1} %, p99 {:+.1} %",
        l.entries,
        s.entries,
        (rps - 1.0) * 100.0,
        (p99 - 1.0) * 100.0
    );
    // A purge of one path costs what it touches, whatever else is stored.
    for (proxy, n) in [(&small, s.entries), (&large, l.entries)] {
        let took = proxy.purge_path(&format!("/m/{SIZE}/hot-1")).await?;
        println!(
            "purge of one path with {n} entries stored: {:.2} ms",
            took.as_secs_f64() * 1e3
        );
    }
    Ok(true)
}

/// Runs `wrk` on the proxy: requests per second and p99 latency in microseconds.
fn wrk(port: u16, script: &std::path::Path, secs: u64) -> Result<(f64, f64), Error> {
    let out = Command::new("wrk")
        .args(["-t1", "-c32", &format!("-d{secs}s"), "--latency", "-s"])
        .arg(script)
        .arg(format!("http://127.0.0.1:{port}/"))
        .output()
        .map_err(|e| format!("cannot run wrk: {e}"))?;
    let text = String::from_utf8(out.stdout)?;
    let rps = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .ok_or_else(|| format!("no Requests/sec in wrk output:\n{text}"))?;
    let p99 = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("99%"))
        .and_then(|v| micros(v.trim()))
        .ok_or_else(|| format!("no 99% latency in wrk output:\n{text}"))?;
    if text.contains("Non-2xx") {
        return Err(format!("wrk saw errors:\n{text}").into());
    }
    Ok((rps, p99))
}

/// A wrk duration (`812.00us`, `1.23ms`, `2.00s`) in microseconds.
fn micros(text: &str) -> Option<f64> {
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let (value, unit) = text.split_at(split);
    let value: f64 = value.parse().ok()?;
    match unit {
        "us" => Some(value),
        "ms" => Some(value * 1e3),
        "s" => Some(value * 1e6),
        _ => None,
    }
}

// === calibrate ===

/// The scenarios, each adding one part to the one before it.
const SCENARIOS: [&str; 3] = ["bare", "headers", "tag"];

fn calibrate(opts: &Options) -> Result<(), Error> {
    use cachegate::store::{SLOT_OVERHEAD, TAG_OVERHEAD};
    let exe = std::env::current_exe()?;
    let mut gaps = Vec::new();
    println!(
        "{:>10} {:>12} {:>12} {:>8}",
        "scenario", "rss/entry", "weight/entry", "gap"
    );
    for scenario in SCENARIOS {
        let out = Command::new(&exe)
            .args(["calibrate-one", scenario, &(opts.entries * 10).to_string()])
            .output()?;
        let text = String::from_utf8(out.stdout)?;
        let mut fields = text.split_whitespace().map(str::parse::<f64>);
        let (Some(Ok(rss)), Some(Ok(weight))) = (fields.next(), fields.next()) else {
            return Err(format!("calibrate-one {scenario}: {text}").into());
        };
        println!(
            "{scenario:>10} {rss:>12.0} {weight:>12.0} {:>8.0}",
            rss - weight
        );
        gaps.push(rss - weight);
    }
    // Each gap beyond the previous scenario's is the error of the constant that scenario adds.
    // The headers are in the block, which the formula sizes exactly: their gap is a check.
    println!(
        "implied: SLOT_OVERHEAD {:.0} (now {SLOT_OVERHEAD}; with PATH_INDEX_OVERHEAD, the bare \
         entry's gap), three headers off by {:.0}, TAG_OVERHEAD {:.0} (now {TAG_OVERHEAD})",
        SLOT_OVERHEAD as f64 + gaps[0],
        gaps[1] - gaps[0],
        TAG_OVERHEAD as f64 + (gaps[2] - gaps[1]),
    );
    Ok(())
}

/// Stores `entries / 4` entries, then `entries` more, and prints the RSS growth and the growth
/// of counted bytes per entry of the second batch.
fn calibrate_one(scenario: &str, entries: u64) -> Result<(), Error> {
    use cachegate::policy::freshness::Lifetimes;
    use cachegate::policy::Key;
    use cachegate::store::{
        compact, extra_tags, CachedResponse, EntryParts, EntryText, MemoryOptions, Tag,
        TenantScope, Tiered,
    };
    let level = SCENARIOS
        .iter()
        .position(|s| *s == scenario)
        .ok_or("unknown scenario")?;
    let mut headers = http::HeaderMap::new();
    headers.insert("content-type", "application/json".parse()?);
    headers.insert("date", "Thu, 01 Jan 1970 00:00:00 GMT".parse()?);
    headers.insert("content-length", "100".parse()?);
    if level >= 1 {
        headers.insert("etag", "\"abcdef\"".parse()?);
        headers.insert("cache-control", "max-age=60".parse()?);
        headers.insert("last-modified", "Thu, 01 Jan 1970 00:00:00 GMT".parse()?);
    }
    let body = [Bytes::from(vec![b'x'; 100])];
    let store = Tiered::new(MemoryOptions {
        max_bytes: 16 << 30,
        ..MemoryOptions::default()
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let entry = |i: u64| {
        // As a fill builds it: the tenant id the store shares, a path of its own, the key's digest.
        let tenant = store.interned_tenant(TenantScope::one(TENANT));
        let target = format!("/m/100/k-{i}");
        let tags: Vec<Tag> = if level >= 2 {
            vec![Tag::parse("items")]
        } else {
            Vec::new()
        };
        let content = compact(http::StatusCode::OK, &headers, &body);
        let key = Key(*blake3::hash(&i.to_le_bytes()).as_bytes());
        let readable_key = format!("cg:v1 127.0.0.1:18080 t={TENANT} GET {target}");
        let now = cachegate::clock::UnixMillis::now();
        let later = now.plus(Duration::from_secs(3600));
        Arc::new(CachedResponse::from(EntryParts {
            content,
            stored_at: now,
            lifetimes: Lifetimes {
                fresh_until: later,
                stale_while_revalidate_until: later,
                stale_if_error_until: later,
                revalidate_until: later,
            },
            extra_tags: extra_tags(&tags),
            tenant,
            text: EntryText::new(&target, &readable_key),
            key,
            variant: None,
            route: 0,
        }))
    };
    let pid = std::process::id();
    runtime.block_on(async {
        let fill = |from: u64, to: u64| {
            let store = &store;
            async move {
                for i in from..to {
                    let e = entry(i);
                    let ticket = store.begin_fill();
                    store.store(&ticket, None, e).await;
                }
            }
        };
        fill(0, entries / 4).await;
        let (rss0, bytes0, n0) = (rss(pid)?, store.stats().bytes, store.stats().entries);
        fill(entries / 4, entries / 4 + entries).await;
        let (rss1, bytes1, n1) = (rss(pid)?, store.stats().bytes, store.stats().entries);
        let n = (n1 - n0) as f64;
        println!(
            "{} {}",
            (rss1 - rss0) as f64 / n,
            (bytes1 - bytes0) as f64 / n
        );
        Ok::<(), Error>(())
    })
}
