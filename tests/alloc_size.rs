//! `store::alloc_size` against the real allocator: the size class of every length up to past
//! 64 KiB, as jemalloc counts it, and the resident memory that blocks filled to their length
//! add.
#![cfg(feature = "jemalloc")]

use std::hint::black_box;
use std::sync::Mutex;

use cachegate::store::alloc_size::{allocation, size_class, PAGE, SMALL_MAX};

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// One test at a time: the other's allocations would show in the resident memory measured.
static SERIAL: Mutex<()> = Mutex::new(());

#[test]
fn size_classes_match_jemalloc() {
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    // The bytes this thread ever allocated: each allocation adds its size class.
    let allocated = tikv_jemalloc_ctl::thread::allocatedp::read().expect("thread.allocatedp");
    let mut wrong = Vec::new();
    for len in 1..=70_000 {
        let before = allocated.get();
        let block: Vec<u8> = black_box(Vec::with_capacity(len));
        let after = allocated.get();
        drop(block);
        let class = (after - before) as usize;
        if class != size_class(len) {
            wrong.push((len, class, size_class(len)));
        }
    }
    assert!(
        wrong.is_empty(),
        "(len, jemalloc, size_class) differ: {:?}",
        &wrong[..wrong.len().min(20)]
    );
}

/// Resident bytes of this process, from `/proc/self/status`.
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
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
        .expect("VmRSS");
    kib * 1024
}

#[test]
fn allocation_matches_resident_growth() {
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let mut kept = Vec::new();
    // Small classes with slabs of 256, 64 and 8 regions, and large blocks just above a
    // class boundary (where the class would over-count by a fifth) and at one.
    for (len, count) in [
        (100, 100_000),
        (1000, 20_000),
        (8192, 4_000),
        (SMALL_MAX + 1, 2_000),
        (33_000, 1_000),
        (65_836, 1_000),
        (16 * PAGE, 1_000),
    ] {
        // Nothing is freed before the end: a later size would reuse the pages.
        let mut blocks: Vec<Vec<u8>> = vec![Vec::new(); count];
        // A first batch settles the slabs and extents the allocator keeps at hand.
        // Written in full (a zeroed block of fresh pages would not become resident).
        let warm: Vec<Vec<u8>> = (0..count / 4).map(|_| vec![b'x'; len]).collect();
        let before = rss();
        for block in blocks.iter_mut() {
            *block = vec![b'x'; len];
        }
        let per_block = (rss() - before) as f64 / count as f64;
        let counted = allocation(len) as f64;
        assert!(
            (per_block / counted - 1.0).abs() < 0.05,
            "len {len}: {per_block:.0} resident bytes per block, allocation() counts {counted}"
        );
        kept.push((warm, blocks));
    }
}
