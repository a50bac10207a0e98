//! Several instances over one shared Redis tier: sharing, cross-instance purges, Redis going
//! away and coming back, lost invalidations, cross-instance single-flight, Redis Cluster.
//! Every test starts its own `redis-server` (or cluster) on free loopback ports.

use crate::support::client::TestClient;
use crate::support::origin::{default_body, Gate, Origin, Reply};
use crate::support::redis::{RedisCluster, RedisServer};
use crate::support::wait::{poll_until, within};
use crate::support::{TestProxy, BASE_CONFIG};
use http::Method;
use std::time::Duration;
use tokio::task::JoinSet;

// Every instance is addressed by the same host, as behind a load balancer: the host is part
// of the key.
const ORG42: &[(&str, &str)] = &[("x-org-id", "42"), ("host", "api.test")];
const ORG7: &[(&str, &str)] = &[("x-org-id", "7"), ("host", "api.test")];

/// The base config with a shared tier at `redis` (a URL, or a `nodes = [...]` line).
fn config(redis: &str) -> String {
    let target = if redis.starts_with("nodes") {
        redis.to_owned()
    } else {
        format!("url = \"{redis}\"")
    };
    // A generous command timeout: test machines are slow and busy, and a timeout here would
    // only turn a shared hit into a miss, which the assertions would then misread.
    format!("{BASE_CONFIG}\n[redis]\n{target}\ncommand_timeout = \"500ms\"\nlocal_ttl = \"30s\"\n")
}

async fn pair(redis: &str, origin: &Origin) -> (TestProxy, TestProxy) {
    let config = config(redis);
    let a = TestProxy::start(&config, &origin.url()).await;
    let b = TestProxy::start(&config, &origin.url()).await;
    subscribed(&a).await;
    subscribed(&b).await;
    (a, b)
}

/// Waits until the instance talks to Redis (its breaker closed: at start it is open until the
/// first probe answers) and listens to the other instances' invalidations.
async fn subscribed(proxy: &TestProxy) {
    poll_until(
        "the instance reaches Redis and subscribes to invalidations",
        || {
            proxy
                .proxy
                .stats_report()
                .shared
                .is_some_and(|s| s.subscribed && s.memory_trusted && s.breaker == "closed")
        },
    )
    .await;
}

fn invalidations(proxy: &TestProxy) -> u64 {
    proxy
        .proxy
        .stats_report()
        .shared
        .map_or(0, |s| s.invalidations_applied)
}

#[tokio::test]
async fn a_fill_on_one_instance_is_a_hit_on_the_other() {
    let redis = RedisServer::start();
    let origin = Origin::start().await;
    let (a, b) = pair(&redis.url(), &origin).await;
    let (ca, cb) = (TestClient::new(a.addr), TestClient::new(b.addr));

    let first = ca.get("/api/faculty/?page=1", ORG42).await;
    assert_eq!(first.cache_status(), "cachegate; fwd=miss; stored");
    let second = cb.get("/api/faculty/?page=1", ORG42).await;
    assert_eq!(second.cache_status(), "cachegate; hit; detail=shared");
    assert_eq!(second.body, first.body);
    assert_eq!(origin.hits(), 1);
    // Copied into B's memory: the next hit there does not ask Redis.
    let third = cb.get("/api/faculty/?page=1", ORG42).await;
    assert_eq!(third.cache_status(), "cachegate; hit");
    // Another tenant's request is its own key, on every instance.
    let other = cb.get("/api/faculty/?page=1", ORG7).await;
    assert_eq!(other.cache_status(), "cachegate; fwd=miss; stored");
    assert_eq!(other.json()["org"], "7");
    let report = b.proxy.stats_report();
    assert_eq!(report.requests.shared_hits, 1);
}

#[tokio::test]
async fn a_write_through_one_instance_is_purged_everywhere_before_it_is_acknowledged() {
    let redis = RedisServer::start();
    let origin = Origin::start().await;
    let (a, b) = pair(&redis.url(), &origin).await;
    let c = TestProxy::start(&config(&redis.url()), &origin.url()).await;
    subscribed(&c).await;
    let (ca, cb, cc) = (
        TestClient::new(a.addr),
        TestClient::new(b.addr),
        TestClient::new(c.addr),
    );
    ca.get("/api/faculty/7/", ORG42).await;
    // B holds a memory copy now.
    assert_eq!(
        cb.get("/api/faculty/7/", ORG42).await.cache_status(),
        "cachegate; hit; detail=shared"
    );
    assert_eq!(
        cb.get("/api/faculty/7/", ORG42).await.cache_status(),
        "cachegate; hit"
    );
    let before = invalidations(&b);
    origin.set_version(2);
    let write = ca.send(Method::PUT, "/api/faculty/7/", ORG42, "{}").await;
    assert_eq!(write.status, 200);
    // Redis was purged before the acknowledgement: an instance without a memory copy misses.
    let fresh = cc.get("/api/faculty/7/", ORG42).await;
    assert_eq!(fresh.cache_status(), "cachegate; fwd=miss; stored");
    assert_eq!(fresh.json()["version"], 2);
    // B drops its memory copy when the invalidation arrives.
    poll_until("B receives the invalidation", || invalidations(&b) > before).await;
    let after = cb.get("/api/faculty/7/", ORG42).await;
    assert_eq!(after.json()["version"], 2, "{}", after.cache_status());
}

#[tokio::test]
async fn a_webhook_to_one_instance_purges_the_other() {
    let redis = RedisServer::start();
    let origin = Origin::start().await;
    let (a, b) = pair(&redis.url(), &origin).await;
    let cb = TestClient::new(b.addr);
    cb.get("/api/faculty/9/", ORG42).await;
    cb.get("/api/faculty/9/", ORG42).await;
    let before = invalidations(&b);
    origin.set_version(3);
    let answer = a
        .invalidate(r#"{"tenant": "42", "paths": ["/api/faculty/9/"]}"#)
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    poll_until("B receives the invalidation", || invalidations(&b) > before).await;
    let after = cb.get("/api/faculty/9/", ORG42).await;
    assert_eq!(after.cache_status(), "cachegate; fwd=miss; stored");
    assert_eq!(after.json()["version"], 3);
}

#[tokio::test]
async fn a_thousand_cold_requests_over_two_instances_cost_one_backend_request() {
    let redis = RedisServer::start();
    let gate = Gate::new();
    let origin = {
        let gate = gate.clone();
        Origin::with(move |seen| Reply::ok(default_body(seen)).gate(&gate)).await
    };
    let (a, b) = pair(&redis.url(), &origin).await;
    let clients = [TestClient::new(a.addr), TestClient::new(b.addr)];
    let mut set = JoinSet::new();
    for i in 0..1000 {
        let client = clients[i % 2].clone();
        set.spawn(async move { client.get("/api/faculty/?page=3", ORG42).await });
    }
    // One fill reaches the backend; hold it until both instances have a waiting flight.
    gate.arrivals(1).await;
    poll_until("both instances wait on the fill", || {
        a.proxy.stats_report().requests.collapsed + b.proxy.stats_report().requests.collapsed > 0
            || b.proxy
                .stats_report()
                .shared
                .is_some_and(|s| s.lease_waits + s.leases_acquired >= 1)
    })
    .await;
    gate.open();
    let mut failed = 0;
    while let Some(answer) = set.join_next().await {
        let answer = answer.unwrap();
        if answer.status != 200 {
            failed += 1;
        }
    }
    assert_eq!(failed, 0);
    assert_eq!(origin.hits(), 1);
}

#[tokio::test]
async fn redis_stopping_under_load_fails_no_request_and_sharing_resumes_after_a_restart() {
    let mut redis = RedisServer::start();
    let origin = Origin::start().await;
    let (a, b) = pair(&redis.url(), &origin).await;
    let clients = [TestClient::new(a.addr), TestClient::new(b.addr)];
    let load = |round: usize| {
        let mut set = JoinSet::new();
        for i in 0..200 {
            let client = clients[i % 2].clone();
            set.spawn(async move {
                client
                    .get(&format!("/api/faculty/?page={}", (i + round) % 20), ORG42)
                    .await
                    .status
            });
        }
        set
    };
    let mut running = load(0);
    redis.stop();
    let mut during = load(1);
    for set in [&mut running, &mut during] {
        while let Some(status) = set.join_next().await {
            assert_eq!(status.unwrap(), 200);
        }
    }
    // Still answering, from memory and the backend, with Redis gone.
    let answer = clients[0].get("/api/faculty/?page=1", ORG42).await;
    assert_eq!(answer.status, 200);
    // A purge while Redis is down applies locally at once.
    origin.set_version(5);
    let write = clients[0]
        .send(Method::PUT, "/api/faculty/?page=1", ORG42, "{}")
        .await;
    assert!(write.status.as_u16() < 500);

    // Back, empty: sharing resumes by itself and nothing stale is served.
    redis.restart();
    subscribed(&a).await;
    subscribed(&b).await;
    // Each round a key nobody holds: A fills it, B must find it in Redis.
    within("B hits what A filled after Redis came back", async {
        for page in 100.. {
            let path = format!("/api/faculty/?page={page}");
            clients[0].get(&path, ORG7).await;
            if clients[1].get(&path, ORG7).await.cache_status() == "cachegate; hit; detail=shared" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    // Memory was flushed on reconnection: nothing from before the outage is served.
    let after = clients[1].get("/api/faculty/?page=1", ORG42).await;
    assert_eq!(after.json()["version"], 5, "{}", after.cache_status());
}

#[tokio::test]
async fn a_lost_subscription_never_leaves_a_stale_memory_entry_served() {
    let redis = RedisServer::start();
    let origin = Origin::start().await;
    let (a, b) = pair(&redis.url(), &origin).await;
    let (ca, cb) = (TestClient::new(a.addr), TestClient::new(b.addr));
    ca.get("/api/faculty/4/", ORG42).await;
    cb.get("/api/faculty/4/", ORG42).await;
    assert_eq!(
        cb.get("/api/faculty/4/", ORG42).await.cache_status(),
        "cachegate; hit"
    );
    let reconnects = |p: &TestProxy| {
        p.proxy
            .stats_report()
            .shared
            .map_or(0, |s| s.pubsub_reconnects)
    };
    let before = reconnects(&b);
    redis.kill_pubsub();
    poll_until("B notices its subscription is gone", || {
        reconnects(&b) > before
            || b.proxy
                .stats_report()
                .shared
                .is_some_and(|s| !s.memory_trusted)
    })
    .await;
    // The purge's message may be lost to B; B no longer trusts its memory copy.
    origin.set_version(8);
    ca.send(Method::PUT, "/api/faculty/4/", ORG42, "{}").await;
    let answer = cb.get("/api/faculty/4/", ORG42).await;
    assert_eq!(answer.json()["version"], 8, "{}", answer.cache_status());
    subscribed(&b).await;
    let answer = cb.get("/api/faculty/4/", ORG42).await;
    assert_eq!(answer.json()["version"], 8, "{}", answer.cache_status());
}

#[tokio::test]
async fn a_redis_cluster_shares_and_purges_across_slots() {
    let cluster = RedisCluster::start(3);
    let nodes = cluster
        .urls()
        .iter()
        .map(|u| format!("\"{u}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let origin = Origin::start().await;
    let (a, b) = pair(&format!("nodes = [{nodes}]"), &origin).await;
    let (ca, cb) = (TestClient::new(a.addr), TestClient::new(b.addr));
    // Tenants hash to different slots (and so, nodes).
    let tenants: Vec<String> = (0..12).map(|t| t.to_string()).collect();
    for t in &tenants {
        let org = [("x-org-id", t.as_str()), ("host", "api.test")];
        assert_eq!(
            ca.get("/api/faculty/1/", &org).await.cache_status(),
            "cachegate; fwd=miss; stored"
        );
        assert_eq!(
            cb.get("/api/faculty/1/", &org).await.cache_status(),
            "cachegate; hit; detail=shared"
        );
    }
    // A purge of every tenant's tag reaches every slot.
    origin.set_version(2);
    let before = invalidations(&b);
    let answer = a
        .invalidate(r#"{"tenant": "*", "paths": ["/api/faculty/1/"]}"#)
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    poll_until("B receives the invalidation", || invalidations(&b) > before).await;
    for t in &tenants {
        let org = [("x-org-id", t.as_str()), ("host", "api.test")];
        let answer = cb.get("/api/faculty/1/", &org).await;
        assert_eq!(
            answer.json()["version"],
            2,
            "tenant {t}: {}",
            answer.cache_status()
        );
    }
    // And a purge of one tenant leaves the others.
    ca.send(
        Method::PUT,
        "/api/faculty/1/",
        &[("x-org-id", "3"), ("host", "api.test")],
        "{}",
    )
    .await;
    let kept = cb
        .get(
            "/api/faculty/1/",
            &[("x-org-id", "4"), ("host", "api.test")],
        )
        .await;
    assert!(kept.cache_status().starts_with("cachegate; hit"));
}

/// The shared config with a 1s default TTL and a long stale-while-revalidate window, for the
/// routes that set no TTL of their own (`/api/departments/`).
fn stale_config(redis: &str) -> String {
    config(redis).replace(
        "default_ttl = \"5m\"",
        "default_ttl = \"1s\"\nstale_while_revalidate = \"1h\"",
    )
}

#[tokio::test]
async fn an_expired_shared_entry_is_served_stale_by_either_instance_with_one_refresh() {
    let redis = RedisServer::start();
    let gate = Gate::new();
    let held = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (g, h) = (gate.clone(), held.clone());
    let origin = Origin::with(move |seen| {
        let reply = Reply::ok(default_body(seen));
        if h.load(std::sync::atomic::Ordering::SeqCst) {
            reply.gate(&g)
        } else {
            reply
        }
    })
    .await;
    let config = stale_config(&redis.url());
    let a = TestProxy::start(&config, &origin.url()).await;
    let b = TestProxy::start(&config, &origin.url()).await;
    subscribed(&a).await;
    subscribed(&b).await;
    let (ca, cb) = (TestClient::new(a.addr), TestClient::new(b.addr));
    let first = ca.get("/api/departments/", ORG42).await;
    assert_eq!(first.cache_status(), "cachegate; fwd=miss; stored");
    assert_eq!(first.json()["version"], 1);
    // Entries expire by the wall clock, which Redis and both instances share: wait out the
    // one-second TTL.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    origin.set_version(2);
    held.store(true, std::sync::atomic::Ordering::SeqCst);
    // B never held the entry in memory: it finds it expired in Redis and serves it stale while
    // its refresh, held at the gate, runs.
    let stale_b = cb.get("/api/departments/", ORG42).await;
    assert_eq!(stale_b.cache_status(), "cachegate; hit; fwd=stale");
    assert_eq!(stale_b.json()["version"], 1);
    gate.arrivals(1).await;
    // A serves its own (memory) copy stale too; its refresh waits on B's lease instead of
    // asking the backend.
    let stale_a = ca.get("/api/departments/", ORG42).await;
    assert_eq!(stale_a.cache_status(), "cachegate; hit; fwd=stale");
    assert_eq!(stale_a.json()["version"], 1);
    gate.open();
    for (name, client) in [("A", &ca), ("B", &cb)] {
        let refreshed = within("the refreshed entry", async {
            loop {
                let answer = client.get("/api/departments/", ORG42).await;
                if answer.json()["version"] == 2 {
                    return answer;
                }
                assert_eq!(answer.cache_status(), "cachegate; hit; fwd=stale", "{name}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        assert!(
            refreshed.cache_status().starts_with("cachegate; hit"),
            "{name}: {}",
            refreshed.cache_status()
        );
    }
    assert_eq!(
        origin.hits(),
        2,
        "one fill and one refresh across both instances"
    );
}
