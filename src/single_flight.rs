//! Coalescing of concurrent misses: one leader per key does the work, the others wait for its result.
//!
//! Generic over the key, the shared result and per-flight metadata; knows nothing of HTTP. The proxy
//! uses the metadata to refuse joining a flight that an invalidation has overtaken (the fence check),
//! so requests that arrive after a purge never receive a value fetched before it.

use dashmap::mapref::entry::Entry;
use dashmap::DashMap;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// The map of flights in progress.
pub struct SingleFlight<K: Hash + Eq, V, M> {
    flights: Arc<DashMap<K, Arc<Flight<V, M>>>>,
}

struct Flight<V, M> {
    meta: M,
    // `None` until the leader publishes. Dropping the sender without publishing (a panicking or
    // cancelled fill) closes the channel, which wakes every waiter instead of leaving it hanging.
    tx: watch::Sender<Option<V>>,
}

/// What a caller became for its key.
pub enum Role<K: Hash + Eq + Clone, V, M> {
    /// Do the work and call [`Leader::publish`]; dropping the leader without publishing releases
    /// waiters with [`Wait::Abandoned`].
    Leader(Leader<K, V, M>),
    /// Another caller is doing the work.
    Waiter(Waiter<V>),
}

/// The right (and the duty) to produce the value for one key.
pub struct Leader<K: Hash + Eq + Clone, V, M> {
    key: K,
    flight: Arc<Flight<V, M>>,
    flights: Arc<DashMap<K, Arc<Flight<V, M>>>>,
    published: bool,
}

/// A handle to wait on somebody else's flight.
pub struct Waiter<V> {
    rx: watch::Receiver<Option<V>>,
}

/// How a wait ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Wait<V> {
    Done(V),
    /// The leader went away without a result.
    Abandoned,
    /// The bound passed; the caller should proceed on its own.
    TimedOut,
}

// === impl SingleFlight ===

impl<K, V, M> Default for SingleFlight<K, V, M>
where
    K: Hash + Eq + Clone,
    V: Clone,
{
    fn default() -> Self {
        Self {
            flights: Arc::new(DashMap::new()),
        }
    }
}

impl<K, V, M> SingleFlight<K, V, M>
where
    K: Hash + Eq + Clone,
    V: Clone,
{
    pub fn new() -> Self {
        Self::default()
    }

    /// Joins the flight for `key` when one exists and `can_join` accepts its metadata; otherwise
    /// starts a new flight with the metadata from `meta` (replacing a flight that may not be joined,
    /// which goes on for the callers it already has).
    pub fn join_or_lead(
        &self,
        key: K,
        can_join: impl FnOnce(&M) -> bool,
        meta: impl FnOnce() -> M,
    ) -> Role<K, V, M> {
        match self.flights.entry(key.clone()) {
            Entry::Occupied(mut occupied) => {
                if can_join(&occupied.get().meta) {
                    return Role::Waiter(Waiter {
                        rx: occupied.get().tx.subscribe(),
                    });
                }
                let flight = Arc::new(Flight::new(meta()));
                occupied.insert(flight.clone());
                Role::Leader(self.leader(key, flight))
            }
            Entry::Vacant(vacant) => {
                let flight = Arc::new(Flight::new(meta()));
                vacant.insert(flight.clone());
                Role::Leader(self.leader(key, flight))
            }
        }
    }

    /// Number of flights in progress (for stats and tests).
    pub fn in_flight(&self) -> usize {
        self.flights.len()
    }

    fn leader(&self, key: K, flight: Arc<Flight<V, M>>) -> Leader<K, V, M> {
        Leader {
            key,
            flight,
            flights: self.flights.clone(),
            published: false,
        }
    }
}

impl<V, M> Flight<V, M> {
    fn new(meta: M) -> Self {
        let (tx, _) = watch::channel(None);
        Self { meta, tx }
    }
}

// === impl Leader ===

impl<K: Hash + Eq + Clone, V, M> Leader<K, V, M> {
    /// A handle for the leader's own request, so it can wait for its flight like everybody else
    /// while the work itself runs in a task that outlives that request.
    pub fn subscribe(&self) -> Waiter<V> {
        Waiter {
            rx: self.flight.tx.subscribe(),
        }
    }

    pub fn meta(&self) -> &M {
        &self.flight.meta
    }

    /// Ends the flight: later callers start afresh (or find what the leader stored), and every
    /// current waiter receives `value`.
    pub fn publish(mut self, value: V) {
        self.remove();
        self.flight.tx.send_replace(Some(value));
        self.published = true;
    }

    fn remove(&self) {
        // Only our own flight: a newer one may have replaced it after an invalidation.
        self.flights
            .remove_if(&self.key, |_, current| Arc::ptr_eq(current, &self.flight));
    }
}

impl<K: Hash + Eq + Clone, V, M> Drop for Leader<K, V, M> {
    fn drop(&mut self) {
        if !self.published {
            // Dropping `flight` (the last sender owner besides the map) closes the channel.
            self.remove();
        }
    }
}

// === impl Waiter ===

impl<V: Clone> Waiter<V> {
    /// Waits at most `bound` for the flight's value.
    pub async fn wait(mut self, bound: Duration) -> Wait<V> {
        let result = tokio::time::timeout(bound, self.rx.wait_for(|v| v.is_some())).await;
        match result {
            Ok(Ok(value)) => match value.as_ref() {
                Some(v) => Wait::Done(v.clone()),
                None => Wait::Abandoned,
            },
            Ok(Err(_closed)) => Wait::Abandoned,
            Err(_elapsed) => Wait::TimedOut,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Sf = SingleFlight<u32, u32, u64>;

    fn lead(sf: &Sf, key: u32) -> Leader<u32, u32, u64> {
        match sf.join_or_lead(key, |_| true, || 0) {
            Role::Leader(l) => l,
            Role::Waiter(_) => panic!("expected to lead"),
        }
    }

    fn join(sf: &Sf, key: u32) -> Waiter<u32> {
        match sf.join_or_lead(key, |_| true, || 0) {
            Role::Waiter(w) => w,
            Role::Leader(_) => panic!("expected to wait"),
        }
    }

    #[tokio::test]
    async fn waiters_share_the_leaders_value() {
        let sf = Sf::new();
        let leader = lead(&sf, 1);
        let waiters: Vec<_> = (0..10).map(|_| join(&sf, 1)).collect();
        leader.publish(7);
        for w in waiters {
            assert_eq!(w.wait(Duration::from_secs(1)).await, Wait::Done(7));
        }
        assert_eq!(sf.in_flight(), 0);
    }

    #[tokio::test]
    async fn a_dropped_leader_releases_waiters_at_once() {
        let sf = Sf::new();
        let leader = lead(&sf, 1);
        let waiter = join(&sf, 1);
        drop(leader);
        assert_eq!(waiter.wait(Duration::from_secs(60)).await, Wait::Abandoned);
        // The key is free again.
        let _ = lead(&sf, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiter_gives_up_after_its_bound() {
        let sf = Sf::new();
        let _leader = lead(&sf, 1);
        let waiter = join(&sf, 1);
        assert_eq!(waiter.wait(Duration::from_millis(50)).await, Wait::TimedOut);
    }

    #[tokio::test]
    async fn a_refused_flight_is_replaced_and_both_complete() {
        let sf = Sf::new();
        let old = lead(&sf, 1);
        let old_waiter = join(&sf, 1);
        // An invalidation happened: new callers may not join the old flight.
        let new = match sf.join_or_lead(1, |_| false, || 1) {
            Role::Leader(l) => l,
            Role::Waiter(_) => panic!("must not join a fenced flight"),
        };
        assert_eq!(*new.meta(), 1);
        let new_waiter = join(&sf, 1);
        // The old leader finishing must not remove the new flight.
        old.publish(10);
        assert_eq!(sf.in_flight(), 1);
        new.publish(20);
        assert_eq!(
            old_waiter.wait(Duration::from_secs(1)).await,
            Wait::Done(10)
        );
        assert_eq!(
            new_waiter.wait(Duration::from_secs(1)).await,
            Wait::Done(20)
        );
    }

    #[tokio::test]
    async fn the_leader_can_wait_on_its_own_flight() {
        let sf = Sf::new();
        let leader = lead(&sf, 1);
        let own = leader.subscribe();
        let task = tokio::spawn(async move { leader.publish(3) });
        assert_eq!(own.wait(Duration::from_secs(1)).await, Wait::Done(3));
        task.await.unwrap();
    }
}
