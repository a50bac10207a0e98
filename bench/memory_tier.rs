//! Benchmark behind the memory tier's choice of cache: quick_cache vs moka vs a plain DashMap.
//!
//! Run with `cargo bench --bench memory_tier`. It measures the cost of a get from two threads
//! over 100k entries of 1 KiB under three key distributions (uniform, zipf with s = 1.0, and a
//! hot set of 1k keys), then the hit ratio of each bounded cache on a zipf workload when it
//! can hold only 10% of the keys, which compares their eviction policies. Everything is
//! deterministic (fixed-seed xorshift) and the whole run stays well under a minute in release.

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use bytes::Bytes;
use dashmap::DashMap;

const ENTRIES: usize = 100_000;
const VALUE_BYTES: usize = 1024;
const THREADS: usize = 2;
const GETS_PER_THREAD: usize = 2_000_000;
const HOT_KEYS: usize = 1_000;
/// The bounded caches hold this share of the key space in the hit ratio run.
const CAPACITY_SHARE: usize = 10;
const WARMUP_REQUESTS: usize = 200_000;
const COUNTED_REQUESTS: usize = 2_000_000;
/// Bytes charged per entry: the value, the key and a rough bookkeeping overhead.
const ENTRY_WEIGHT: u64 = (VALUE_BYTES + 32 + 64) as u64;

type K = [u8; 32];

/// A small deterministic generator (xorshift64*), so every run sees the same keys.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A uniform float in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn below(&mut self, n: usize) -> usize {
        (self.unit() * n as f64) as usize
    }
}

/// Samples ranks 0..n with probability proportional to 1 / (rank + 1)^s by inverting the CDF.
struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    fn new(n: usize, s: f64) -> Self {
        let mut cdf = Vec::with_capacity(n);
        let mut total = 0.0;
        for rank in 0..n {
            total += 1.0 / ((rank + 1) as f64).powf(s);
            cdf.push(total);
        }
        for c in &mut cdf {
            *c /= total;
        }
        Self { cdf }
    }

    fn sample(&self, rng: &mut XorShift) -> usize {
        let u = rng.unit();
        self.cdf.partition_point(|&c| c < u).min(self.cdf.len() - 1)
    }

    /// The share of requests that go to the `k` most popular ranks.
    fn head_mass(&self, k: usize) -> f64 {
        self.cdf[k.min(self.cdf.len()) - 1]
    }
}

#[derive(Clone, Copy)]
enum Dist {
    Uniform,
    Zipf,
    Hot,
}

impl Dist {
    const ALL: [Dist; 3] = [Dist::Uniform, Dist::Zipf, Dist::Hot];

    fn label(self) -> &'static str {
        match self {
            Dist::Uniform => "uniform",
            Dist::Zipf => "zipf(1.0)",
            Dist::Hot => "hot 1k",
        }
    }

    /// A request sequence of key indices, precomputed so sampling is not timed.
    fn sequence(self, zipf: &Zipf, seed: u64, len: usize) -> Vec<u32> {
        let mut rng = XorShift(seed);
        (0..len)
            .map(|_| {
                let i = match self {
                    Dist::Uniform => rng.below(ENTRIES),
                    Dist::Zipf => zipf.sample(&mut rng),
                    Dist::Hot => rng.below(HOT_KEYS),
                };
                i as u32
            })
            .collect()
    }
}

/// The operations the benchmark needs from each cache.
trait Probe: Sync {
    fn get(&self, key: &K) -> Option<Bytes>;
    fn insert(&self, key: K, value: Bytes);
    /// Lets caches that apply writes lazily settle before measuring.
    fn settle(&self) {}
}

#[derive(Clone)]
struct ByteWeighter;

impl quick_cache::Weighter<K, Bytes> for ByteWeighter {
    fn weight(&self, _key: &K, value: &Bytes) -> u64 {
        (value.len() + 32 + 64) as u64
    }
}

struct Quick(quick_cache::sync::Cache<K, Bytes, ByteWeighter>);

impl Quick {
    fn new(entries: usize) -> Self {
        Self(quick_cache::sync::Cache::with_weighter(
            entries,
            entries as u64 * ENTRY_WEIGHT,
            ByteWeighter,
        ))
    }
}

impl Probe for Quick {
    fn get(&self, key: &K) -> Option<Bytes> {
        self.0.get(key)
    }

    fn insert(&self, key: K, value: Bytes) {
        self.0.insert(key, value);
    }
}

/// Gives every entry the same long TTL, so moka pays for its per-entry expiry machinery as the
/// store would (the store's entries all carry their own TTL).
struct LongTtl;

impl moka::Expiry<K, Bytes> for LongTtl {
    fn expire_after_create(&self, _key: &K, _value: &Bytes, _at: Instant) -> Option<Duration> {
        Some(Duration::from_secs(3600))
    }
}

struct Moka(moka::sync::Cache<K, Bytes>);

impl Moka {
    fn new(entries: usize) -> Self {
        Self(
            moka::sync::Cache::builder()
                .max_capacity(entries as u64 * ENTRY_WEIGHT)
                .weigher(|_key: &K, value: &Bytes| (value.len() + 32 + 64) as u32)
                .expire_after(LongTtl)
                .build(),
        )
    }
}

impl Probe for Moka {
    fn get(&self, key: &K) -> Option<Bytes> {
        self.0.get(key)
    }

    fn insert(&self, key: K, value: Bytes) {
        self.0.insert(key, value);
    }

    fn settle(&self) {
        self.0.run_pending_tasks();
    }
}

/// The unbounded baseline: what a get costs with no eviction policy at all.
struct Dash(DashMap<K, Bytes>);

impl Probe for Dash {
    fn get(&self, key: &K) -> Option<Bytes> {
        self.0.get(key).map(|v| v.value().clone())
    }

    fn insert(&self, key: K, value: Bytes) {
        self.0.insert(key, value);
    }
}

fn keys() -> Vec<K> {
    (0..ENTRIES as u64)
        .map(|i| *blake3::hash(&i.to_le_bytes()).as_bytes())
        .collect()
}

/// Fills `cache` with every key, each with its own 1 KiB value; returns how many are held.
fn fill(cache: &impl Probe, keys: &[K]) -> usize {
    for (i, k) in keys.iter().enumerate() {
        cache.insert(*k, Bytes::from(vec![i as u8; VALUE_BYTES]));
    }
    cache.settle();
    keys.iter().filter(|k| cache.get(k).is_some()).count()
}

/// Mean nanoseconds per get, each thread running its own request sequence.
fn ns_per_get(cache: &impl Probe, keys: &[K], sequences: &[Vec<u32>]) -> f64 {
    let total_ns = AtomicU64::new(0);
    let start = Barrier::new(sequences.len());
    std::thread::scope(|scope| {
        for seq in sequences {
            let (total_ns, start) = (&total_ns, &start);
            scope.spawn(move || {
                start.wait();
                let t0 = Instant::now();
                let mut found = 0usize;
                for &i in seq {
                    if black_box(cache.get(&keys[i as usize])).is_some() {
                        found += 1;
                    }
                }
                let ns = t0.elapsed().as_nanos() as u64;
                black_box(found);
                total_ns.fetch_add(ns, Ordering::Relaxed);
            });
        }
    });
    let gets: usize = sequences.iter().map(Vec::len).sum();
    total_ns.into_inner() as f64 / gets as f64
}

/// Hit ratio of a read-through workload: a miss inserts the key, as a fill would.
fn hit_ratio(cache: &impl Probe, keys: &[K], requests: &[u32]) -> f64 {
    let value = |i: usize| Bytes::from(vec![i as u8; VALUE_BYTES]);
    let (warmup, counted) = requests.split_at(WARMUP_REQUESTS.min(requests.len()));
    for &i in warmup {
        let i = i as usize;
        if cache.get(&keys[i]).is_none() {
            cache.insert(keys[i], value(i));
        }
    }
    let mut hits = 0usize;
    for &i in counted {
        let i = i as usize;
        if cache.get(&keys[i]).is_some() {
            hits += 1;
        } else {
            cache.insert(keys[i], value(i));
        }
    }
    hits as f64 / counted.len().max(1) as f64
}

fn main() {
    let started = Instant::now();
    let keys = keys();
    let zipf = Zipf::new(ENTRIES, 1.0);

    println!(
        "memory tier: {ENTRIES} entries x {VALUE_BYTES} B, {THREADS} threads x {GETS_PER_THREAD} gets"
    );
    println!();
    print!("{:<14}", "ns/get");
    for d in Dist::ALL {
        print!("{:>12}", d.label());
    }
    println!();

    let sequences: Vec<Vec<Vec<u32>>> = Dist::ALL
        .iter()
        .map(|d| {
            (0..THREADS)
                .map(|t| {
                    d.sequence(
                        &zipf,
                        0x9e37_79b9_7f4a_7c15 ^ (t as u64 + 1),
                        GETS_PER_THREAD,
                    )
                })
                .collect()
        })
        .collect();

    fn row(name: &str, cache: &impl Probe, keys: &[K], sequences: &[Vec<Vec<u32>>]) {
        let held = fill(cache, keys);
        print!("{name:<14}");
        for per_thread in sequences {
            print!("{:>12.1}", ns_per_get(cache, keys, per_thread));
        }
        if held < keys.len() {
            print!("   (held only {held} of {} entries)", keys.len());
        }
        println!();
    }
    // Each cache is built, measured and dropped in turn so only one holds ~100 MiB at a time.
    row(
        "quick_cache",
        &Quick::new(ENTRIES + ENTRIES / 10),
        &keys,
        &sequences,
    );
    row(
        "moka",
        &Moka::new(ENTRIES + ENTRIES / 10),
        &keys,
        &sequences,
    );
    row("dashmap", &Dash(DashMap::new()), &keys, &sequences);

    let capacity = ENTRIES / CAPACITY_SHARE;
    let requests = Dist::Zipf.sequence(&zipf, 0x2545_f491, WARMUP_REQUESTS + COUNTED_REQUESTS);
    println!();
    println!(
        "hit ratio, zipf(1.0) read-through, capacity {capacity} of {ENTRIES} keys, \
         {COUNTED_REQUESTS} requests after {WARMUP_REQUESTS} warm-up"
    );
    let quick = hit_ratio(&Quick::new(capacity), &keys, &requests);
    println!("{:<14}{:>11.1}%", "quick_cache", quick * 100.0);
    let moka = hit_ratio(&Moka::new(capacity), &keys, &requests);
    println!("{:<14}{:>11.1}%", "moka", moka * 100.0);
    println!(
        "{:<14}{:>11.1}%   (the {capacity} most popular keys: the best a cache this size can do)",
        "ideal",
        zipf.head_mass(capacity) * 100.0
    );
    println!();
    println!("total run time {:.1} s", started.elapsed().as_secs_f64());
}
