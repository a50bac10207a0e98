//! Pure decisions: route matching, tenant extraction, key derivation and cacheability.
//!
//! Nothing in here does IO, reads a clock or knows about tokio, hyper, dashmap or redis
//! (`.ci/run` greps for it). The server, upstream client and stores call these functions.

pub mod cache_key;
pub mod cacheability;
pub mod encoding;
pub mod freshness;
pub mod http_cache;
pub mod outcome;
pub mod route;
pub mod tag;
pub mod tenant;
pub mod vary;

/// A fixed-size cache key: the blake3 digest of everything that selects a stored response.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key(pub [u8; 32]);

impl Key {
    /// Lower-case hex of the first 8 bytes, enough to tell keys apart in a log line.
    pub fn short_hex(&self) -> String {
        self.0[..8].iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Key({})", self.short_hex())
    }
}

/// Values captured by a route pattern, in pattern order: `{id}` -> ("id", "12").
///
/// Names borrow from the route table, values from the request path.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Captures<'r, 'p> {
    pairs: Vec<(&'r str, &'p str)>,
}

impl<'r, 'p> Captures<'r, 'p> {
    pub fn new() -> Self {
        Self { pairs: Vec::new() }
    }

    pub fn push(&mut self, name: &'r str, value: &'p str) {
        self.pairs.push((name, value));
    }

    pub fn get(&self, name: &str) -> Option<&'p str> {
        self.pairs.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&'r str, &'p str)> + '_ {
        self.pairs.iter().copied()
    }

    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }
}
