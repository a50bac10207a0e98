//! The background tasks: the keeper (connects, probes the breaker, replays kept purges) and
//! the subscriber (purges of other instances, lease announcements, subscription state).

use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError, Weak};
use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::{PushInfo, PushKind, Value};
use tokio::sync::mpsc;

use super::conn::Conn;
use super::ops;
use super::tier::{bump, tick, Inner};
use super::wire::{self, Message};
use super::{Breaker, SharedEvent};
use crate::clock::UnixMillis;

/// Connects (a cluster connection is made here), probes an open breaker once its cooldown
/// is over, and replays kept purges once it is closed. Ends when the tier is dropped.
pub(crate) async fn keeper(inner: Weak<Inner>) {
    let Some(first) = inner.upgrade() else { return };
    let tick = tick(&first.opts);
    let mut breaker = first.breaker.watch();
    drop(first);
    loop {
        let Some(inner) = inner.upgrade() else { return };
        connect_cluster(&inner).await;
        if inner.breaker.state() != Breaker::Closed {
            probe(&inner).await;
        }
        if inner.breaker.state() == Breaker::Closed && inner.replay_pending() > 0 {
            ops::replay(&inner).await;
        }
        drop(inner);
        tokio::select! {
            _ = breaker.changed() => {}
            () = tokio::time::sleep(tick) => {}
        }
    }
}

async fn connect_cluster(inner: &Inner) {
    let Some(client) = &inner.cluster else { return };
    if inner
        .conn
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .is_some()
    {
        return;
    }
    match tokio::time::timeout(inner.opts.connect_timeout, client.get_async_connection()).await {
        Ok(Ok(conn)) => {
            *inner.conn.write().unwrap_or_else(PoisonError::into_inner) = Some(Conn::Cluster(conn));
        }
        Ok(Err(e)) => tracing::debug!(error = %e, "redis cluster connection failed"),
        Err(_) => tracing::debug!("redis cluster connection timed out"),
    }
}

async fn probe(inner: &Inner) {
    let Some(permit) = inner.breaker.admit() else {
        return;
    };
    let conn = inner
        .conn
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let Some(conn) = conn else {
        permit.failure();
        return;
    };
    let bound = inner.opts.command_timeout.max(inner.opts.connect_timeout);
    match tokio::time::timeout(bound, ops::ping(conn)).await {
        Ok(Ok(())) => {
            tracing::info!("redis answers: shared tier available");
            permit.success();
        }
        _ => permit.failure(),
    }
}

/// Subscribes (again after every disconnection), and turns what arrives into events.
pub(crate) async fn subscriber(
    inner: Weak<Inner>,
    managers: Vec<ConnectionManager>,
    mut pushes: mpsc::UnboundedReceiver<PushInfo>,
    events: mpsc::Sender<SharedEvent>,
) {
    let Some(first) = inner.upgrade() else { return };
    let channel = first.names.channel();
    let retry = tick(&first.opts);
    let bound = first.opts.connect_timeout.max(Duration::from_millis(100));
    drop(first);
    let mut current = 0usize;
    let mut subscribed = false;
    loop {
        let Some(strong) = inner.upgrade() else {
            return;
        };
        if !subscribed {
            let mut manager = managers[current % managers.len()].clone();
            match tokio::time::timeout(bound, manager.subscribe(&channel)).await {
                Ok(Ok(())) => {
                    subscribed = true;
                    strong.subscribed.store(true, Ordering::Relaxed);
                    tracing::info!("subscribed to the invalidation channel");
                    let _ = events.send(SharedEvent::Subscribed).await;
                }
                _ => current = current.wrapping_add(1),
            }
        }
        drop(strong);
        let push = if subscribed {
            // Wake now and then to notice the tier is gone.
            match tokio::time::timeout(Duration::from_secs(1), pushes.recv()).await {
                Ok(Some(push)) => Some(push),
                Ok(None) => return,
                Err(_) => None,
            }
        } else {
            tokio::select! {
                push = pushes.recv() => match push {
                    Some(push) => Some(push),
                    None => return,
                },
                () = tokio::time::sleep(retry) => None,
            }
        };
        let Some(push) = push else { continue };
        let Some(strong) = inner.upgrade() else {
            return;
        };
        match push.kind {
            PushKind::Disconnection if subscribed => {
                subscribed = false;
                strong.subscribed.store(false, Ordering::Relaxed);
                bump(&strong.counters.pubsub_reconnects);
                tracing::warn!("invalidation channel lost: resubscribing");
                let _ = events.send(SharedEvent::Disconnected).await;
            }
            PushKind::Message => {
                if let Some(payload) = push.data.into_iter().nth(1) {
                    handle(&strong, payload, &events).await;
                }
            }
            _ => {}
        }
    }
}

async fn handle(inner: &Inner, payload: Value, events: &mpsc::Sender<SharedEvent>) {
    let Ok(payload) = redis::from_redis_value::<Vec<u8>>(payload) else {
        return;
    };
    match wire::parse(&payload) {
        Some(Message::Lease(name)) => inner.wake(&name),
        Some(Message::Purge {
            origin,
            sent_ms,
            purge,
        }) => {
            if origin == inner.instance {
                return;
            }
            bump(&inner.counters.invalidations_received);
            let lag = UnixMillis::now().0.saturating_sub(sent_ms);
            inner.counters.pubsub_lag_ms.store(lag, Ordering::Relaxed);
            let _ = events.send(SharedEvent::Purged(purge)).await;
        }
        None => tracing::debug!("unreadable message on the invalidation channel"),
    }
}

/// Starts both tasks.
pub(crate) fn spawn(
    inner: &Arc<Inner>,
    managers: Vec<ConnectionManager>,
    pushes: mpsc::UnboundedReceiver<PushInfo>,
    events: mpsc::Sender<SharedEvent>,
) {
    tokio::spawn(keeper(Arc::downgrade(inner)));
    tokio::spawn(subscriber(Arc::downgrade(inner), managers, pushes, events));
}
