//! Waiting for what another task does: on an event (a watched value changing), never by polling,
//! and never for ever: a wait that outlasts [`LIMIT`] fails the test, naming what it waited for.

use std::future::Future;
use std::time::Duration;
use tokio::sync::watch;

/// The longest any test waits for an event.
pub const LIMIT: Duration = Duration::from_secs(10);

/// Awaits `event`, failing the test if it has not happened within [`LIMIT`].
pub async fn within<T>(what: &str, event: impl Future<Output = T>) -> T {
    tokio::time::timeout(LIMIT, event)
        .await
        .unwrap_or_else(|_| panic!("waited {LIMIT:?} for {what}, in vain"))
}

/// Waits until the value `rx` watches satisfies `cond` (at once when it already does).
pub async fn until<T>(what: &str, rx: &mut watch::Receiver<T>, cond: impl FnMut(&T) -> bool) {
    if within(what, rx.wait_for(cond)).await.is_err() {
        panic!("{what}: nothing can change the watched value any more");
    }
}

/// Waits until `cond` holds, for state that no watch announces: counters of another
/// component, or what a Redis server holds. Checked every 10 ms, for at most [`LIMIT`].
pub async fn poll_until(what: &str, mut cond: impl FnMut() -> bool) {
    within(what, async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}
