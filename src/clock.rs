//! Wall-clock time for what outlives one process: an entry's stored-at and fresh-until
//! instants mean the same thing in every instance that reads it from a shared tier.
//!
//! The clock is anchored once (the system time and tokio's monotonic clock read together) and
//! moves with tokio's clock afterwards. So within a process it never goes backwards when the
//! system time is stepped, and tests that pause or advance tokio's clock move it too.
//! Between processes it is as good as the machines' clock synchronisation.

use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

/// Milliseconds since the Unix epoch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UnixMillis(pub u64);

impl UnixMillis {
    /// Later than any real time: "never expires".
    pub const MAX: UnixMillis = UnixMillis(u64::MAX);

    /// The current wall-clock time, as this process reckons it (see the module docs).
    pub fn now() -> UnixMillis {
        static ANCHOR: OnceLock<(u64, Instant)> = OnceLock::new();
        let (wall, mono) = *ANCHOR.get_or_init(|| {
            let wall = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64);
            (wall, Instant::now())
        });
        UnixMillis(wall + Instant::now().saturating_duration_since(mono).as_millis() as u64)
    }

    /// `self + d`, saturating.
    pub fn plus(self, d: Duration) -> UnixMillis {
        UnixMillis(
            self.0
                .saturating_add(d.as_millis().min(u64::MAX as u128) as u64),
        )
    }

    /// Time from `earlier` to `self`; zero when `earlier` is later.
    pub fn since(self, earlier: UnixMillis) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }

    /// Time from `self` to `later`; zero when `later` is earlier.
    pub fn until(self, later: UnixMillis) -> Duration {
        later.since(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn moves_with_the_runtime_clock() {
        let a = UnixMillis::now();
        tokio::time::advance(Duration::from_secs(5)).await;
        let b = UnixMillis::now();
        assert_eq!(b.since(a), Duration::from_secs(5));
        assert_eq!(a.until(b), Duration::from_secs(5));
        assert_eq!(a.since(b), Duration::ZERO);
        assert_eq!(a.plus(Duration::from_secs(5)), b);
    }
}
