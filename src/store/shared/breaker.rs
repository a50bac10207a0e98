//! The circuit breaker: after `failures` consecutive failures it refuses every call for a
//! cooldown, then lets one probe through; the probe's success closes it again.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::Breaker;

#[derive(Debug)]
enum State {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
    },
    /// One probe is in flight; everything else is refused until it ends.
    HalfOpen,
}

#[derive(Debug)]
pub(crate) struct CircuitBreaker {
    state: Mutex<State>,
    threshold: u32,
    cooldown: Duration,
    /// The public state, for waiters (the replay task, `ready`).
    changes: watch::Sender<Breaker>,
    opened: std::sync::atomic::AtomicU64,
}

/// Leave to make one call. Report how it went with [`Permit::success`] or
/// [`Permit::failure`]; a permit dropped unreported (its call was cancelled) counts as
/// nothing, except that a cancelled probe reopens the breaker so another probe can follow.
#[must_use]
pub(crate) struct Permit<'a> {
    breaker: &'a CircuitBreaker,
    probe: bool,
    done: bool,
}

impl Permit<'_> {
    pub(crate) fn success(mut self) {
        self.done = true;
        self.breaker.success();
    }

    pub(crate) fn failure(mut self) {
        self.done = true;
        self.breaker.failure();
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if !self.done && self.probe {
            self.breaker.reopen();
        }
    }
}

impl CircuitBreaker {
    /// A breaker that starts open, ready to let its first probe through at once.
    pub(crate) fn new(threshold: u32, cooldown: Duration) -> Self {
        CircuitBreaker {
            state: Mutex::new(State::Open {
                until: Instant::now(),
            }),
            threshold: threshold.max(1),
            cooldown,
            changes: watch::Sender::new(Breaker::Open),
            opened: std::sync::atomic::AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn publish(&self, state: &State) {
        let public = match state {
            State::Closed { .. } => Breaker::Closed,
            State::Open { .. } => Breaker::Open,
            State::HalfOpen => Breaker::HalfOpen,
        };
        self.changes.send_if_modified(|b| {
            let changed = *b != public;
            *b = public;
            changed
        });
    }

    /// A permit to call, or None while the breaker refuses.
    pub(crate) fn admit(&self) -> Option<Permit<'_>> {
        let mut state = self.lock();
        let probe = match &*state {
            State::Closed { .. } => false,
            State::HalfOpen => return None,
            State::Open { until } if Instant::now() < *until => return None,
            State::Open { .. } => {
                *state = State::HalfOpen;
                self.publish(&state);
                true
            }
        };
        Some(Permit {
            breaker: self,
            probe,
            done: false,
        })
    }

    fn success(&self) {
        let mut state = self.lock();
        if !matches!(*state, State::Closed { failures: 0 }) {
            *state = State::Closed { failures: 0 };
            self.publish(&state);
        }
    }

    fn failure(&self) {
        let mut state = self.lock();
        let open = match &mut *state {
            State::Closed { failures } => {
                *failures += 1;
                *failures >= self.threshold
            }
            State::HalfOpen => true,
            // A call admitted before the breaker opened: it is open already.
            State::Open { .. } => false,
        };
        if open {
            *state = State::Open {
                until: Instant::now() + self.cooldown,
            };
            self.opened
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self.publish(&state);
        }
    }

    fn reopen(&self) {
        let mut state = self.lock();
        if matches!(*state, State::HalfOpen) {
            *state = State::Open {
                until: Instant::now(),
            };
            self.publish(&state);
        }
    }

    /// Lets requests through: closed, or open with its cooldown over (a probe may go).
    pub(crate) fn available(&self) -> bool {
        match &*self.lock() {
            State::Closed { .. } => true,
            State::HalfOpen => false,
            State::Open { until } => Instant::now() >= *until,
        }
    }

    pub(crate) fn state(&self) -> Breaker {
        *self.changes.borrow()
    }

    pub(crate) fn times_opened(&self) -> u64 {
        self.opened.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub(crate) fn watch(&self) -> watch::Receiver<Breaker> {
        self.changes.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn opens_after_consecutive_failures_and_probes_after_cooldown() {
        let b = CircuitBreaker::new(2, Duration::from_secs(1));
        // Starts open, first probe allowed at once.
        assert_eq!(b.state(), Breaker::Open);
        let probe = b.admit().unwrap();
        assert!(b.admit().is_none(), "one probe at a time");
        probe.success();
        assert_eq!(b.state(), Breaker::Closed);

        b.admit().unwrap().failure();
        b.admit().unwrap().success();
        b.admit().unwrap().failure();
        assert_eq!(b.state(), Breaker::Closed, "failures must be consecutive");
        b.admit().unwrap().failure();
        assert_eq!(b.state(), Breaker::Open);
        assert_eq!(b.times_opened(), 1);
        assert!(b.admit().is_none());
        assert!(!b.available());

        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(b.available());
        let probe = b.admit().unwrap();
        assert_eq!(b.state(), Breaker::HalfOpen);
        probe.failure();
        assert_eq!(b.state(), Breaker::Open);
        assert_eq!(b.times_opened(), 2);

        tokio::time::advance(Duration::from_secs(1)).await;
        drop(b.admit().unwrap());
        assert_eq!(b.state(), Breaker::Open, "a cancelled probe reopens");
        assert!(b.admit().is_some(), "and lets the next probe through");
    }
}
