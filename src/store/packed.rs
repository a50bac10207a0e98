//! Compact forms of an entry's instants and of the memory tier's state for it, which keep an
//! entry's struct in a small allocation (issue 12: a small entry's bookkeeping costs more than
//! its body).

use std::sync::atomic::{AtomicU32, Ordering};

use crate::clock::UnixMillis;
use crate::policy::freshness::Lifetimes;

/// The high bit of a packed offset: the rest counts whole seconds, not milliseconds.
const SECONDS: u32 = 1 << 31;

/// An instant as 32 bits after `base`: exact milliseconds up to about 24 days, whole seconds
/// (rounded down, so never later than the instant) up to about 68 years, [`UnixMillis::MAX`]
/// ("never") as itself. An instant before `base` is packed as `base`.
fn pack(base: UnixMillis, at: UnixMillis) -> u32 {
    if at == UnixMillis::MAX {
        return u32::MAX;
    }
    let after = at.0.saturating_sub(base.0);
    match u32::try_from(after) {
        Ok(ms) if ms < SECONDS => ms,
        _ => SECONDS | (after / 1000).min(u64::from(SECONDS - 2)) as u32,
    }
}

fn unpack(base: UnixMillis, packed: u32) -> UnixMillis {
    match packed {
        u32::MAX => UnixMillis::MAX,
        ms if ms < SECONDS => UnixMillis(base.0.saturating_add(u64::from(ms))),
        secs => UnixMillis(base.0.saturating_add(u64::from(secs & !SECONDS) * 1000)),
    }
}

/// An entry's [`Lifetimes`], as offsets from the instant it was stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Offsets([u32; 4]);

impl Offsets {
    pub(super) fn new(stored_at: UnixMillis, l: &Lifetimes) -> Offsets {
        Offsets([
            pack(stored_at, l.fresh_until),
            pack(stored_at, l.stale_while_revalidate_until),
            pack(stored_at, l.stale_if_error_until),
            pack(stored_at, l.revalidate_until),
        ])
    }

    pub(super) fn fresh_until(&self, stored_at: UnixMillis) -> UnixMillis {
        unpack(stored_at, self.0[0])
    }

    pub(super) fn lifetimes(&self, stored_at: UnixMillis) -> Lifetimes {
        Lifetimes {
            fresh_until: unpack(stored_at, self.0[0]),
            stale_while_revalidate_until: unpack(stored_at, self.0[1]),
            stale_if_error_until: unpack(stored_at, self.0[2]),
            revalidate_until: unpack(stored_at, self.0[3]),
        }
    }
}

const INSERTED: u32 = 1 << 31;
const PUBLISHED: u32 = 1 << 30;
const STALE: u32 = 1 << 29;
const HITS: u32 = STALE - 1;
/// Hits stop counting this far below the flags, so that racing increments never reach them.
const HITS_ROOM: u32 = 1 << 16;

/// The memory tier's state for an entry it holds, in one word of the entry: whether a tier
/// holds it, whether its fill published it, whether a soft purge marked it stale, and the
/// lookups it answered (counted up to about 500 million). A clone of an entry starts afresh.
#[derive(Default)]
pub(crate) struct SlotState(AtomicU32);

impl Clone for SlotState {
    fn clone(&self) -> Self {
        SlotState::default()
    }
}

impl std::fmt::Debug for SlotState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.0.load(Ordering::Relaxed);
        f.debug_struct("SlotState")
            .field("inserted", &(state & INSERTED != 0))
            .field("published", &(state & PUBLISHED != 0))
            .field("stale", &(state & STALE != 0))
            .field("hits", &(state & HITS))
            .finish()
    }
}

impl SlotState {
    /// Claims the entry for one insert into a tier; false when an insert already claimed it
    /// (the tier then holds a copy of its own).
    pub(crate) fn claim(&self) -> bool {
        self.0.fetch_or(INSERTED, Ordering::AcqRel) & INSERTED == 0
    }

    pub(crate) fn publish(&self) {
        self.0.fetch_or(PUBLISHED, Ordering::Release);
    }

    pub(crate) fn is_published(&self) -> bool {
        self.0.load(Ordering::Acquire) & PUBLISHED != 0
    }

    pub(crate) fn is_stale(&self) -> bool {
        self.0.load(Ordering::Acquire) & STALE != 0
    }

    /// Marks the entry stale; true when this call is the one that marked it.
    pub(crate) fn mark_stale(&self) -> bool {
        self.0.fetch_or(STALE, Ordering::AcqRel) & STALE == 0
    }

    /// Counts a lookup answered (one relaxed add).
    pub(crate) fn hit(&self) {
        if self.0.load(Ordering::Relaxed) & HITS < HITS - HITS_ROOM {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn hits(&self) -> u32 {
        self.0.load(Ordering::Relaxed) & HITS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_round_trip_to_the_millisecond_for_weeks_and_never_later_beyond() {
        let base = UnixMillis(1_700_000_000_123);
        for ms in [0u64, 1, 999, 86_400_000, 24 * 86_400_000, (1 << 31) - 1] {
            assert_eq!(
                unpack(base, pack(base, UnixMillis(base.0 + ms))).0,
                base.0 + ms
            );
        }
        for ms in [
            1u64 << 31,
            365 * 86_400_000 + 1,
            50 * 365 * 86_400_000 + 999,
        ] {
            let at = UnixMillis(base.0 + ms);
            let back = unpack(base, pack(base, at));
            assert!(back <= at && at.0 - back.0 < 1000, "{ms}");
        }
        // Beyond 68 years: held as about 68 years.
        let far = UnixMillis(base.0 + 100 * 365 * 86_400_000);
        assert!(unpack(base, pack(base, far)).0 > base.0 + 67 * 365 * 86_400_000);
        assert_eq!(unpack(base, pack(base, UnixMillis::MAX)), UnixMillis::MAX);
        assert_eq!(unpack(base, pack(base, UnixMillis(5))), base);
    }

    #[test]
    fn the_state_counts_hits_without_touching_its_flags() {
        let state = SlotState::default();
        assert!(state.claim());
        assert!(!state.claim());
        assert!(!state.is_published());
        state.hit();
        state.hit();
        state.publish();
        assert!(state.is_published() && !state.is_stale());
        assert!(state.mark_stale());
        assert!(!state.mark_stale());
        assert_eq!(state.hits(), 2);
        state.0.fetch_or(HITS - HITS_ROOM, Ordering::Relaxed);
        state.hit();
        assert_eq!(state.hits(), HITS - HITS_ROOM);
        assert!(state.is_stale() && state.is_published());
        assert_eq!(state.clone().hits(), 0);
    }
}
