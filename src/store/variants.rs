//! What the store remembers about a primary key whose responses vary: the request headers that
//! select among them (from the latest stored response's `Vary`) and which variant keys were
//! stored, so a URI holds a bounded number of variants.
//!
//! The memory is advisory. A lookup uses it to compute the variant key; when it is missing,
//! evicted or out of date the lookup misses and the next fill records it again. Correctness does
//! not depend on it: a variant key digests the primary key and the selecting values, so a
//! variant is served only to requests whose values match, and purges reach every variant
//! through the tags all variants of a URI carry.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use quick_cache::sync::Cache;

use crate::policy::vary::Selection;
use crate::policy::Key;

/// What one primary key's responses vary on, and the variants stored for it.
#[derive(Debug)]
pub struct VaryState {
    selection: Arc<Selection>,
    variants: Mutex<Vec<Key>>,
}

impl VaryState {
    /// The request headers that select a variant.
    pub fn selection(&self) -> &Arc<Selection> {
        &self.selection
    }
}

/// Why a variant was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VariantLimit;

/// Primary key -> [`VaryState`], bounded by count.
pub(crate) struct VariantMemory {
    states: Cache<Key, Arc<VaryState>>,
    /// Set once anything varied: until then a lookup skips the map (the hit path of a backend
    /// that never sends `Vary` pays one relaxed load).
    used: AtomicBool,
}

/// Bytes of memory budget per remembered primary key; bounds the map by the tier's size.
const BYTES_PER_STATE: u64 = 2048;

impl VariantMemory {
    pub(crate) fn new(max_bytes: u64) -> Self {
        let capacity = usize::try_from((max_bytes / BYTES_PER_STATE).max(256)).unwrap_or(256);
        Self {
            states: Cache::new(capacity),
            used: AtomicBool::new(false),
        }
    }

    /// What `primary`'s responses were last seen to vary on, if anything.
    pub(crate) fn get(&self, primary: &Key) -> Option<Arc<VaryState>> {
        if !self.used.load(Ordering::Relaxed) {
            return None;
        }
        self.states.get(primary)
    }

    /// Records that `variant` of `primary` is about to be stored, selected by `selection`.
    ///
    /// A selection other than the remembered one replaces it (the backend's `Vary` changed):
    /// the variants stored under the old one can no longer be looked up, and are returned so
    /// the tier drops them (the cap would otherwise not bound what one URI holds).
    /// Beyond `max` variants, keys the tier no longer `holds` are dropped first; if the URI still
    /// has `max` live variants, the new one is refused.
    pub(crate) fn admit(
        &self,
        primary: Key,
        selection: &Arc<Selection>,
        variant: Key,
        max: usize,
        holds: impl Fn(&Key) -> bool,
    ) -> Result<Vec<Key>, VariantLimit> {
        let mut unreachable = Vec::new();
        if let Some(state) = self.states.get(&primary) {
            let mut variants = state.variants.lock().unwrap_or_else(|e| e.into_inner());
            if *state.selection == **selection {
                if variants.contains(&variant) {
                    return Ok(unreachable);
                }
                if variants.len() >= max {
                    variants.retain(|k| holds(k));
                }
                if variants.len() >= max {
                    return Err(VariantLimit);
                }
                variants.push(variant);
                return Ok(unreachable);
            }
            unreachable = std::mem::take(&mut *variants);
        }
        if max == 0 {
            return Err(VariantLimit);
        }
        self.used.store(true, Ordering::Relaxed);
        self.states.insert(
            primary,
            Arc::new(VaryState {
                selection: Arc::clone(selection),
                variants: Mutex::new(vec![variant]),
            }),
        );
        Ok(unreachable)
    }

    /// Records what `primary`'s responses vary on as another instance found it (a shared
    /// tier's record), keeping what is known when it agrees. Returns the variants stored under
    /// a different, older selection, which no lookup reaches any more.
    pub(crate) fn note(&self, primary: Key, selection: &Arc<Selection>) -> Vec<Key> {
        let mut unreachable = Vec::new();
        if let Some(state) = self.states.get(&primary) {
            if *state.selection == **selection {
                return unreachable;
            }
            unreachable =
                std::mem::take(&mut *state.variants.lock().unwrap_or_else(|e| e.into_inner()));
        }
        self.used.store(true, Ordering::Relaxed);
        self.states.insert(
            primary,
            Arc::new(VaryState {
                selection: Arc::clone(selection),
                variants: Mutex::new(Vec::new()),
            }),
        );
        unreachable
    }

    /// Forgets `primary`: its responses no longer vary, so lookups use the primary key itself.
    /// Returns the variants stored for it, which no lookup reaches any more.
    pub(crate) fn forget(&self, primary: &Key) -> Vec<Key> {
        if !self.used.load(Ordering::Relaxed) {
            return Vec::new();
        }
        match self.states.remove(primary) {
            Some((_, state)) => {
                std::mem::take(&mut *state.variants.lock().unwrap_or_else(|e| e.into_inner()))
            }
            None => Vec::new(),
        }
    }

    /// Primary keys remembered.
    pub(crate) fn len(&self) -> usize {
        self.states.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderName;

    fn sel(names: &[&'static str]) -> Arc<Selection> {
        Arc::new(Selection {
            headers: names.iter().map(|n| HeaderName::from_static(n)).collect(),
            by_user: false,
        })
    }

    #[test]
    fn a_uri_holds_at_most_max_live_variants() {
        let memory = VariantMemory::new(1 << 20);
        let p = Key([1; 32]);
        let accept = sel(&["accept"]);
        for i in 0..3 {
            assert_eq!(
                memory.admit(p, &accept, Key([10 + i; 32]), 3, |_| true),
                Ok(vec![])
            );
        }
        // A known variant is always admitted again.
        assert_eq!(
            memory.admit(p, &accept, Key([10; 32]), 3, |_| true),
            Ok(vec![])
        );
        assert_eq!(
            memory.admit(p, &accept, Key([20; 32]), 3, |_| true),
            Err(VariantLimit)
        );
        // Once variants are gone from the tier, their places are free again.
        let gone = Key([11; 32]);
        assert_eq!(
            memory.admit(p, &accept, Key([20; 32]), 3, |k| *k != gone),
            Ok(vec![])
        );
    }

    #[test]
    fn a_changed_vary_replaces_what_was_remembered_and_gives_back_its_variants() {
        let memory = VariantMemory::new(1 << 20);
        let p = Key([1; 32]);
        memory
            .admit(p, &sel(&["accept"]), Key([2; 32]), 1, |_| true)
            .unwrap();
        // The old variants cannot be looked up any more: the tier is told to drop them.
        assert_eq!(
            memory.admit(p, &sel(&["accept", "origin"]), Key([3; 32]), 1, |_| true),
            Ok(vec![Key([2; 32])])
        );
        assert_eq!(
            memory.get(&p).unwrap().selection(),
            &sel(&["accept", "origin"])
        );
        assert_eq!(memory.forget(&p), vec![Key([3; 32])]);
        assert!(memory.get(&p).is_none());
        assert_eq!(memory.forget(&p), vec![]);
    }
}
