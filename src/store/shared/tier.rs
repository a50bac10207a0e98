//! The state behind a [`SharedTier`](super::SharedTier): connections, breaker, counters, the
//! replay queue and lease waiters, and the calls every operation goes through.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use redis::cluster::ClusterClient;
use redis::RedisResult;
use tokio::sync::Notify;

use super::breaker::CircuitBreaker;
use super::conn::{is_unavailable, Conn};
use super::keys::Names;
use super::{SharedError, SharedOptions};
use crate::store::{Purge, PurgeScope};

/// Counters since start.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) hits: AtomicU64,
    pub(crate) misses: AtomicU64,
    pub(crate) errors: AtomicU64,
    pub(crate) timeouts: AtomicU64,
    pub(crate) stores: AtomicU64,
    pub(crate) fenced: AtomicU64,
    pub(crate) purges: AtomicU64,
    pub(crate) pubsub_reconnects: AtomicU64,
    pub(crate) invalidations_received: AtomicU64,
    pub(crate) pubsub_lag_ms: AtomicU64,
    pub(crate) leases_acquired: AtomicU64,
    pub(crate) lease_waits: AtomicU64,
}

pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

pub(crate) struct Inner {
    pub(crate) opts: SharedOptions,
    pub(crate) names: Names,
    /// The data connection; None until the cluster connection is made.
    pub(crate) conn: RwLock<Option<Conn>>,
    pub(crate) cluster: Option<ClusterClient>,
    pub(crate) breaker: CircuitBreaker,
    pub(crate) counters: Counters,
    /// This instance, in the purges it publishes (so it drops its own).
    pub(crate) instance: u64,
    pub(crate) replay: Mutex<VecDeque<Purge>>,
    /// Lease key name -> the waiters of this instance.
    pub(crate) waiters: Mutex<HashMap<String, Arc<Notify>>>,
    pub(crate) subscribed: AtomicBool,
}

impl Inner {
    pub(crate) fn new(
        opts: SharedOptions,
        conn: Option<Conn>,
        cluster: Option<ClusterClient>,
    ) -> Self {
        Inner {
            names: Names::new(&opts.prefix),
            breaker: CircuitBreaker::new(opts.breaker_failures, opts.breaker_cooldown),
            conn: RwLock::new(conn),
            cluster,
            counters: Counters::default(),
            instance: random_u64(),
            replay: Mutex::new(VecDeque::new()),
            waiters: Mutex::new(HashMap::new()),
            subscribed: AtomicBool::new(false),
            opts,
        }
    }

    pub(crate) fn is_cluster(&self) -> bool {
        self.cluster.is_some()
    }

    fn current_conn(&self) -> Option<Conn> {
        self.conn
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Runs one operation (one round trip, or a few in sequence) through the breaker and
    /// under the command timeout, counting errors. An operation that found the connection
    /// dropped or refused is tried once more within the same bound: the connection
    /// reconnects on such an error, so after Redis came back the second try goes through.
    pub(crate) async fn call<T, F, Fut>(&self, op: F) -> Result<T, SharedError>
    where
        F: Fn(Conn) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let Some(permit) = self.breaker.admit() else {
            return Err(SharedError::Unavailable);
        };
        let Some(conn) = self.current_conn() else {
            // Not connected yet (a cluster connection is made in the background).
            drop(permit);
            return Err(SharedError::Unavailable);
        };
        let timeout = self.opts.command_timeout;
        let attempt = async {
            match op(conn.clone()).await {
                Err(e) if e.is_connection_dropped() || e.is_connection_refusal() => op(conn).await,
                other => other,
            }
        };
        match tokio::time::timeout(timeout, attempt).await {
            Ok(Ok(value)) => {
                permit.success();
                Ok(value)
            }
            Ok(Err(e)) => {
                bump(&self.counters.errors);
                if is_unavailable(&e) {
                    permit.failure();
                } else {
                    // Redis answered: it is there, the command was wrong.
                    permit.success();
                }
                tracing::debug!(error = %e, "shared tier command failed");
                Err(SharedError::Redis(e.to_string()))
            }
            Err(_) => {
                bump(&self.counters.errors);
                bump(&self.counters.timeouts);
                permit.failure();
                Err(SharedError::Timeout(timeout))
            }
        }
    }

    /// Keeps a purge that did not reach Redis for replay; beyond the limit, the queue
    /// collapses into one purge of everything.
    pub(crate) fn keep_for_replay(&self, purge: &Purge) {
        let mut queue = self.replay.lock().unwrap_or_else(PoisonError::into_inner);
        if queue.iter().any(is_everything) {
            return;
        }
        if queue.len() >= self.opts.replay_limit {
            queue.clear();
            let mut everything = Purge::tags(PurgeScope::All, Vec::new());
            everything.all = true;
            queue.push_back(everything);
        } else {
            queue.push_back(purge.clone());
        }
    }

    pub(crate) fn replay_pending(&self) -> usize {
        self.replay
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    pub(crate) fn next_replay(&self) -> Option<Purge> {
        self.replay
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .front()
            .cloned()
    }

    /// Drops the replayed purge at the front (if it is still the one replayed: an overflow
    /// may have replaced the queue meanwhile).
    pub(crate) fn replayed(&self, purge: &Purge) {
        let mut queue = self.replay.lock().unwrap_or_else(PoisonError::into_inner);
        if queue.front() == Some(purge) {
            queue.pop_front();
        }
    }

    /// The waiters' notifier of a lease key, registered while the guard lives.
    pub(crate) fn waiter(self: &Arc<Self>, lease_key: &str) -> WaiterGuard {
        let mut map = self.waiters.lock().unwrap_or_else(PoisonError::into_inner);
        let notify = Arc::clone(map.entry(lease_key.to_string()).or_default());
        WaiterGuard {
            inner: Arc::clone(self),
            key: lease_key.to_string(),
            notify,
        }
    }

    pub(crate) fn wake(&self, lease_key: &str) {
        let map = self.waiters.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(notify) = map.get(lease_key) {
            notify.notify_waiters();
        }
    }
}

/// A purge of everything in every tenant, which covers any other.
fn is_everything(purge: &Purge) -> bool {
    purge.tenant == PurgeScope::All && purge.all && !purge.soft
}

pub(crate) struct WaiterGuard {
    inner: Arc<Inner>,
    key: String,
    pub(crate) notify: Arc<Notify>,
}

impl Drop for WaiterGuard {
    fn drop(&mut self) {
        let mut map = self
            .inner
            .waiters
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // The map's handle and ours: no other waiter left.
        if Arc::strong_count(&self.notify) <= 2 {
            map.remove(&self.key);
        }
    }
}

/// A random value (lease tokens, instance ids) from the standard library's randomly keyed
/// hasher, mixed with a counter and the time.
pub(crate) fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hash, Hasher};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    COUNTER.fetch_add(1, Ordering::Relaxed).hash(&mut h);
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
        .hash(&mut h);
    h.finish()
}

/// How often the background task looks at the breaker and the replay queue.
pub(crate) fn tick(opts: &SharedOptions) -> Duration {
    (opts.breaker_cooldown / 2).clamp(Duration::from_millis(10), Duration::from_millis(500))
}
