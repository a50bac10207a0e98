//! Connections: one multiplexed, reconnecting connection to a single server, or a cluster
//! connection, behind one `ConnectionLike`; and the pub/sub connections (RESP3 push).

use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, PushInfo, RedisFuture, Value};
use tokio::sync::mpsc;

use super::{SharedError, SharedOptions};

/// The data connection: cheap to clone, every clone multiplexes on the same sockets.
#[derive(Clone)]
pub(crate) enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// What `connect` prepares without talking to Redis.
pub(crate) struct Endpoints {
    /// The single server's data connection (lazy: it connects on first use and reconnects).
    pub(crate) single: Option<ConnectionManager>,
    /// The cluster client, whose connection is made in the background.
    pub(crate) cluster: Option<ClusterClient>,
    /// Pub/sub connections (RESP3, lazy), one per seed node; the subscriber uses one at a
    /// time and moves on to the next when it fails.
    pub(crate) pubsub: Vec<ConnectionManager>,
}

fn redis_error(e: redis::RedisError) -> SharedError {
    SharedError::Redis(e.to_string())
}

/// `redis+cluster://` and `rediss+cluster://` name a cluster's seed nodes.
fn plain_url(url: &str) -> String {
    url.replacen("redis+cluster://", "redis://", 1)
        .replacen("rediss+cluster://", "rediss://", 1)
}

/// The same URL asking for RESP3, which pub/sub on a multiplexed connection needs.
fn resp3_url(url: &str) -> String {
    if url.contains("protocol=") {
        return url.to_string();
    }
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}protocol=resp3")
}

fn manager_config(opts: &SharedOptions) -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_connection_timeout(Some(opts.connect_timeout))
        .set_response_timeout(Some(opts.command_timeout.max(Duration::from_millis(1))))
        // Reconnecting is retried by the next call (and the breaker's probe), not in a loop
        // that commands would queue behind.
        .set_number_of_retries(1)
        .set_min_delay(Duration::from_millis(10))
        .set_max_delay(Duration::from_millis(100))
}

/// Builds the clients; fails only on an unusable URL.
pub(crate) fn endpoints(
    opts: &SharedOptions,
    pushes: mpsc::UnboundedSender<PushInfo>,
) -> Result<Endpoints, SharedError> {
    if opts.urls.is_empty() {
        return Err(SharedError::Redis("no redis url".to_string()));
    }
    let urls: Vec<String> = opts.urls.iter().map(|u| plain_url(u)).collect();
    let mut pubsub = Vec::new();
    for url in &urls {
        let client = redis::Client::open(resp3_url(url)).map_err(redis_error)?;
        let config = manager_config(opts)
            // The subscriber waits for pushes, not for replies: no response timeout.
            .set_response_timeout(None)
            .set_push_sender(pushes.clone())
            .set_automatic_resubscription();
        pubsub.push(ConnectionManager::new_lazy_with_config(client, config).map_err(redis_error)?);
        if !opts.cluster {
            break;
        }
    }
    if opts.cluster {
        let cluster = ClusterClient::builder(urls)
            .connection_timeout(opts.connect_timeout)
            .response_timeout(opts.command_timeout.max(Duration::from_millis(1)))
            .retries(1)
            .min_retry_wait(5)
            .max_retry_wait(50)
            .build()
            .map_err(redis_error)?;
        Ok(Endpoints {
            single: None,
            cluster: Some(cluster),
            pubsub,
        })
    } else {
        // RESP3 here too: the manager then hears a disconnection and reconnects at once,
        // rather than on the first command that fails.
        let client = redis::Client::open(resp3_url(&urls[0])).map_err(redis_error)?;
        let single = ConnectionManager::new_lazy_with_config(client, manager_config(opts))
            .map_err(redis_error)?;
        Ok(Endpoints {
            single: Some(single),
            cluster: None,
            pubsub,
        })
    }
}

/// Whether an error says Redis cannot be reached or cannot serve (the breaker counts these),
/// as opposed to an answer it gave.
pub(crate) fn is_unavailable(e: &redis::RedisError) -> bool {
    use redis::{ErrorKind, ServerErrorKind};
    e.is_io_error()
        || e.is_timeout()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || matches!(
            e.kind(),
            ErrorKind::ClusterConnectionNotFound
                | ErrorKind::Server(ServerErrorKind::BusyLoading)
                | ErrorKind::Server(ServerErrorKind::ClusterDown)
                | ErrorKind::Server(ServerErrorKind::MasterDown)
                | ErrorKind::Server(ServerErrorKind::TryAgain)
                | ErrorKind::Server(ServerErrorKind::ReadOnly)
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(plain_url("redis+cluster://h:1"), "redis://h:1");
        assert_eq!(resp3_url("redis://h:1/0"), "redis://h:1/0?protocol=resp3");
        assert_eq!(
            resp3_url("redis://h:1/0?x=1"),
            "redis://h:1/0?x=1&protocol=resp3"
        );
    }
}
