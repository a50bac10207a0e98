//! What jemalloc, the global allocator of the `cachegate` binary (the `jemalloc` feature), takes
//! for one allocation: the weight model counts an entry's allocations with [`allocation`].
//!
//! jemalloc (5.3, built for 4 KiB pages as on x86-64) serves a request of `len` bytes from its
//! size class ([`size_class`], what `malloc_usable_size` reports):
//!
//! - small requests, up to [`SMALL_MAX`] (14 KiB), come out of slabs of their class: 8, then
//!   multiples of 16 up to 128, then four classes per doubling (160, 192, 224, 256, 320, ...,
//!   10 KiB, 12 KiB, 14 KiB). A slab spans the fewest whole pages that hold a whole number of
//!   regions, so nothing is lost at its end, or, for the classes `.cargo/config.toml` names
//!   in jemalloc's `slab_sizes` ([`SLAB_PAGES`]), the pages given there; its descriptor (an
//!   extent header of [`EXTENT_HEADER`] bytes, kept apart from the slab) is shared by its
//!   regions.
//! - larger requests get an extent of whole pages of their own, sized to their class (16 KiB,
//!   20 KiB, 24 KiB, 28 KiB, 32 KiB, 40 KiB, ...). jemalloc is built without its
//!   "cache-oblivious" placement (which starts each large block at a random cache line of an
//!   extra page, about a page more per large entry), so a block starts at its first page, and
//!   only the pages written become resident: a block filled to its length costs its length
//!   rounded up to whole pages and its extent's header, not its class (a 65,590-byte block
//!   spans 17 pages of an 80 KiB extent).
//!
//! Every page of the heap also has an entry in jemalloc's page map ([`PAGE_MAP_ENTRY`] bytes
//! with jemalloc built for 48-bit addresses, `.cargo/config.toml`), which a block pays by
//! the pages it spans.

/// The page size jemalloc is built for (taken from the build machine, 4 KiB on x86-64).
pub const PAGE: usize = 4096;

/// The largest small size class: larger requests get page extents of their own.
pub const SMALL_MAX: usize = 14 * 1024;

/// The descriptor of one extent (a slab or a large block), allocated apart from it.
pub const EXTENT_HEADER: usize = 128;

/// Bytes of jemalloc's page map per page of heap (its radix tree's leaves, compact when it is
/// built for 48-bit addresses).
pub const PAGE_MAP_ENTRY: usize = 8;

/// The small classes whose slabs `.cargo/config.toml` sets (`slab_sizes`), with their pages
/// per slab: by default these hold one to sixteen regions (an 8 KiB slab one), so a region
/// carried up to the whole of its slab's descriptor. A test checks the table against the file.
pub const SLAB_PAGES: [(usize, usize); 16] = [
    (512, 4),
    (1024, 16),
    (1536, 18),
    (1792, 14),
    (2048, 16),
    (2560, 20),
    (3072, 18),
    (3584, 21),
    (4096, 16),
    (5120, 20),
    (6144, 18),
    (7168, 21),
    (8192, 16),
    (10240, 20),
    (12288, 18),
    (14336, 21),
];

/// jemalloc's size class for a request of `len` bytes: what the block really spans, and what
/// `malloc_usable_size` reports; 0 for 0.
pub fn size_class(len: usize) -> usize {
    match len {
        0 => 0,
        1..=8 => 8,
        9..=128 => len.next_multiple_of(16),
        _ => {
            // Four classes per doubling: above 2^k, steps of 2^(k-2).
            let lg = (len - 1).ilog2();
            let step = 1usize << (lg - 2);
            len.checked_next_multiple_of(step).unwrap_or(usize::MAX)
        }
    }
}

/// Regions in one slab of a small size class: the pages [`SLAB_PAGES`] gives it, or by
/// default the least common multiple of the class and the page, which holds
/// `PAGE / gcd(class, PAGE)` regions.
fn slab_regions(class: usize) -> usize {
    if let Some(&(_, pages)) = SLAB_PAGES.iter().find(|(c, _)| *c == class) {
        return pages * PAGE / class;
    }
    let gcd = 1usize << class.trailing_zeros().min(PAGE.trailing_zeros());
    PAGE / gcd
}

/// The bytes a request of `len` bytes adds to the resident memory, written in full: what the
/// block spans (for a small request its size class, for a large one its length in whole
/// pages; see the module's text) and the allocator's [`bookkeeping`] for it; nothing for 0.
pub fn allocation(len: usize) -> u64 {
    (spanned(len) as u64).saturating_add(bookkeeping(len))
}

/// The bytes a block of `len` bytes spans once written: its size class if small, its length
/// in whole pages if large.
fn spanned(len: usize) -> usize {
    match len {
        0 => 0,
        1..=SMALL_MAX => size_class(len),
        _ => len.checked_next_multiple_of(PAGE).unwrap_or(usize::MAX),
    }
}

/// What jemalloc keeps for a block of `len` bytes beside the bytes it spans: its share of its
/// slab's descriptor, or the descriptor of its own extent, and the page map of its pages. It
/// grows with the block: 256 bytes for 64 KiB.
pub fn bookkeeping(len: usize) -> u64 {
    let bytes = match spanned(len) {
        0 | usize::MAX => 0,
        class if len <= SMALL_MAX => {
            EXTENT_HEADER / slab_regions(class) + class * PAGE_MAP_ENTRY / PAGE
        }
        pages => EXTENT_HEADER + pages / PAGE * PAGE_MAP_ENTRY,
    };
    bytes as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_classes_at_their_boundaries() {
        let classes = [
            (1, 8),
            (8, 8),
            (9, 16),
            (16, 16),
            (17, 32),
            (33, 48),
            (100, 112),
            (128, 128),
            (129, 160),
            (160, 160),
            (161, 192),
            (256, 256),
            (257, 320),
            (1024, 1024),
            (1025, 1280),
            (4096, 4096),
            (4097, 5120),
            (8192, 8192),
            (8193, 10240),
            (12289, 14336),
            (SMALL_MAX, SMALL_MAX),
            (SMALL_MAX + 1, 16384),
            (16385, 20480),
            (32769, 40960),
            (65536, 65536),
            (65537, 81920),
            (1 << 20, 1 << 20),
            ((1 << 20) + 1, 1_310_720),
        ];
        for (len, class) in classes {
            assert_eq!(size_class(len), class, "len {len}");
        }
        assert_eq!(size_class(0), 0);
        assert_eq!(size_class(usize::MAX), usize::MAX);
    }

    #[test]
    fn four_classes_per_doubling_above_128() {
        let mut classes: Vec<usize> = (1..=(1 << 16)).map(size_class).collect();
        classes.dedup();
        assert_eq!(&classes[..9], &[8, 16, 32, 48, 64, 80, 96, 112, 128]);
        // 128 to 64 KiB: nine doublings.
        assert_eq!(classes.len() - 9, 9 * 4);
        for pair in classes.windows(2) {
            let step = pair[1] - pair[0];
            assert!(step >= pair[0] / 8 && step <= pair[0] / 4 + 16, "{pair:?}");
        }
    }

    #[test]
    fn small_requests_cost_their_class_and_a_share_of_their_slab() {
        assert_eq!(slab_regions(8), 512);
        assert_eq!(slab_regions(112), 256);
        assert_eq!(slab_regions(256), 16);
        assert_eq!(slab_regions(1024), 64);
        assert_eq!(slab_regions(1280), 16);
        assert_eq!(slab_regions(8192), 8);
        assert_eq!(slab_regions(10240), 8);
        assert_eq!(slab_regions(SMALL_MAX), 6);
        assert_eq!(allocation(0), 0);
        assert_eq!(allocation(1), 8);
        assert_eq!(allocation(100), 112);
        assert_eq!(allocation(1000), 1024 + 2 + 2);
        assert_eq!(allocation(1100), 1280 + 8 + 2);
        assert_eq!(allocation(8192), 8192 + 16 + 16);
        assert_eq!(allocation(8300), 10240 + 16 + 20);
        assert_eq!(allocation(SMALL_MAX), 14336 + 21 + 28);
    }

    #[test]
    fn large_requests_cost_their_whole_pages_and_a_descriptor() {
        assert_eq!(allocation(SMALL_MAX + 1), 16384 + 128 + 4 * 8);
        assert_eq!(allocation(65536), 65536 + 128 + 16 * 8);
        assert_eq!(allocation(65590), 69632 + 128 + 17 * 8);
        assert_eq!(allocation(usize::MAX), usize::MAX as u64);
    }

    #[test]
    fn bookkeeping_is_the_descriptor_and_page_map() {
        assert_eq!(bookkeeping(0), 0);
        assert_eq!(bookkeeping(100), 0);
        assert_eq!(bookkeeping(1024), 2 + 2);
        assert_eq!(bookkeeping(8192), 16 + 16);
        assert_eq!(bookkeeping(65536), 128 + 128);
    }

    /// The slabs the model assumes are the ones jemalloc is built with.
    #[test]
    fn the_slab_table_is_the_build_configuration() {
        let config = include_str!("../../.cargo/config.toml");
        let line = config
            .lines()
            .find(|line| line.starts_with("JEMALLOC_SYS_WITH_MALLOC_CONF"))
            .expect("the malloc configuration");
        let slabs = line
            .split(&['"', ','][..])
            .find_map(|option| option.strip_prefix("slab_sizes:"))
            .expect("slab_sizes");
        let configured: Vec<(usize, usize)> = slabs
            .split('|')
            .map(|range| {
                let (sizes, pages) = range.split_once(':').unwrap();
                let (from, to) = sizes.split_once('-').unwrap();
                assert_eq!(from, to, "one class per range: {range}");
                (from.parse().unwrap(), pages.parse().unwrap())
            })
            .collect();
        assert_eq!(configured, SLAB_PAGES);
        for (class, pages) in SLAB_PAGES {
            assert_eq!(size_class(class), class);
            assert_eq!(
                pages * PAGE % class,
                0,
                "{class}: a whole number of regions"
            );
        }
        assert!(config.contains("JEMALLOC_SYS_WITH_LG_VADDR = \"48\""));
    }

    #[test]
    fn an_allocation_never_costs_less_than_its_length() {
        for len in (0..70_000).chain([1 << 20, (1 << 20) + 1]) {
            assert!(allocation(len) >= len as u64, "len {len}");
            assert!(size_class(len) >= len, "len {len}");
            assert!(size_class(len + 1) >= size_class(len), "len {len}");
        }
    }
}
