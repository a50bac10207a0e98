//! What compression costs against what a hit costs, and what storing variants costs in memory.
//!
//! Prints, for a typical 1 KiB and 16 KiB JSON body: the time to compress it once with gzip
//! (levels 1 and 6), brotli (qualities 1, 4, 5) and zstd (level 1), and to decompress the gzip
//! and brotli forms; the encoded sizes; the counted weight of storing the identity entry alone
//! against identity + gzip + br entries. Given `--hit-us-1k` and `--hit-us-16k` (the CPU time of
//! one hit, measured by bench/compress.sh in the same run), each cost is also shown as a multiple
//! of a hit. Usage: cachegate-bench-compress [--hit-us-1k US] [--hit-us-16k US] [--millis MS]

use bytes::Bytes;
use cachegate::clock::UnixMillis;
use cachegate::compress;
use cachegate::policy::freshness::Lifetimes;
use cachegate::policy::Key;
use cachegate::store::{compact, CachedResponse, EntryParts, EntryText, TenantScope};
use std::hint::black_box;
use std::io::Read;
use std::time::{Duration, Instant};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut hit_1k = None;
    let mut hit_16k = None;
    let mut millis = 1000u64;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--hit-us-1k" => hit_1k = Some(value()?.parse::<f64>()?),
            "--hit-us-16k" => hit_16k = Some(value()?.parse::<f64>()?),
            "--millis" => millis = value()?.parse()?,
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    let budget = Duration::from_millis(millis);
    println!(
        "{:<6} {:<22} {:>10} {:>8} {:>10}",
        "body", "operation", "us/op", "bytes", "x hit"
    );
    for (label, body, hit) in [("1KiB", json(13), hit_1k), ("16KiB", json(208), hit_16k)] {
        let row = |name: &str, us: f64, bytes: Option<usize>| {
            let ratio = hit.map_or("-".to_owned(), |h| format!("{:.1}", us / h));
            let bytes = bytes.map_or("-".to_owned(), |b| b.to_string());
            println!("{label:<6} {name:<22} {us:>10.2} {bytes:>8} {ratio:>10}");
        };
        row("identity (stored)", 0.0, Some(body.len()));
        let gz1 = compress::gzip([&body[..]], 1);
        let gz6 = compress::gzip([&body[..]], 6);
        row(
            "gzip -1",
            time(budget, || compress::gzip([&body[..]], 1)),
            Some(gz1.len()),
        );
        row(
            "gzip -6",
            time(budget, || compress::gzip([&body[..]], 6)),
            Some(gz6.len()),
        );
        for q in [1, 4, 5] {
            let size = compress::brotli([&body[..]], q).len();
            let us = time(budget, || compress::brotli([&body[..]], q));
            row(&format!("brotli q{q}"), us, Some(size));
        }
        let zstd1 = zstd::bulk::compress(&body, 1)?;
        row(
            "zstd -1",
            time(budget, || {
                zstd::bulk::compress(&body, 1).unwrap_or_default()
            }),
            Some(zstd1.len()),
        );
        let br5 = compress::brotli([&body[..]], compress::BROTLI_QUALITY);
        row(
            "gunzip (to identity)",
            time(budget, || {
                let mut out = Vec::with_capacity(body.len());
                let _ = flate2::read::GzDecoder::new(&gz6[..]).read_to_end(&mut out);
                out
            }),
            None,
        );
        row(
            "unbrotli (to identity)",
            time(budget, || {
                let mut out = Vec::with_capacity(body.len());
                let _ = brotli::Decompressor::new(&br5[..], 4096).read_to_end(&mut out);
                out
            }),
            None,
        );
        let one = weight(&body, None);
        let three = one + weight(&gz6, Some("gzip")) + weight(&br5, Some("br"));
        println!(
            "{label:<6} memory: identity entry {one} B; identity + gzip-6 + br-{} entries {three} B ({:.2}x); one entry per bucket of an uncompressible-by-backend body would be {} B (3.00x)",
            compress::BROTLI_QUALITY,
            three as f64 / one as f64,
            3 * one,
        );
    }
    Ok(())
}

/// A list-endpoint answer of `n` items, about 90 bytes each: ids, names, departments, dates.
fn json(n: usize) -> Vec<u8> {
    const DEPTS: [&str; 5] = ["physics", "chemistry", "history", "mathematics", "biology"];
    let items: Vec<String> = (0..n)
        .map(|i| {
            format!(
                "{{\"id\":{},\"name\":\"Faculty member {i}\",\"dept\":\"{}\",\"since\":\"20{:02}-0{}-1{}\"}}",
                1000 + i * 7,
                DEPTS[i % DEPTS.len()],
                i % 25,
                1 + i % 9,
                i % 10
            )
        })
        .collect();
    format!("{{\"count\":{n},\"results\":[{}]}}", items.join(",")).into_bytes()
}

/// Microseconds per call: the median of five means over a fifth of `budget` each, after a
/// warm-up, so one burst of noise on a shared machine does not make the figure.
fn time<T>(budget: Duration, mut f: impl FnMut() -> T) -> f64 {
    for _ in 0..20 {
        black_box(f());
    }
    let mut means: Vec<f64> = (0..5)
        .map(|_| {
            let started = Instant::now();
            let mut n = 0u64;
            while started.elapsed() < budget / 5 {
                for _ in 0..10 {
                    black_box(f());
                }
                n += 10;
            }
            started.elapsed().as_secs_f64() * 1e6 / n as f64
        })
        .collect();
    means.sort_by(f64::total_cmp);
    means[2]
}

/// The counted weight of a stored entry with this body, as a fill builds it.
fn weight(body: &[u8], coding: Option<&str>) -> u64 {
    let mut headers = http::HeaderMap::new();
    headers.insert(
        "content-type",
        http::HeaderValue::from_static("application/json"),
    );
    headers.insert("content-length", http::HeaderValue::from(body.len()));
    if let Some(coding) = coding {
        headers.insert(
            "content-encoding",
            http::HeaderValue::from_static(if coding == "br" { "br" } else { "gzip" }),
        );
        headers.insert("vary", http::HeaderValue::from_static("Accept-Encoding"));
    }
    let content = compact(
        http::StatusCode::OK,
        &headers,
        [Bytes::copy_from_slice(body)].iter(),
    );
    let entry = CachedResponse::from(EntryParts {
        content,
        stored_at: UnixMillis::now(),
        lifetimes: Lifetimes {
            fresh_until: UnixMillis::now().plus(Duration::from_secs(60)),
            stale_while_revalidate_until: UnixMillis::now().plus(Duration::from_secs(60)),
            stale_if_error_until: UnixMillis::now().plus(Duration::from_secs(60)),
            revalidate_until: UnixMillis::now().plus(Duration::from_secs(60)),
        },
        extra_tags: Default::default(),
        tenant: TenantScope::one("42"),
        text: EntryText::new(
            "/api/faculty/",
            "cg:v1 api.example.com t=42 GET /api/faculty/",
        ),
        key: Key([7; 32]),
        variant: None,
        route: 0,
    });
    entry.weight()
}
