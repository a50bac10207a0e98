use crate::support::client::TestClient;
use crate::support::origin::{default_body, Gate, Origin, Reply};
use crate::support::wait::until;
use crate::support::{TestProxy, BASE_CONFIG};
use std::time::Duration;
use tokio::task::JoinSet;
use tokio::time::Instant;

const ORG42: &[(&str, &str)] = &[("x-org-id", "42")];

#[tokio::test]
async fn a_stampede_of_200_costs_one_backend_request() {
    let origin =
        Origin::with(|seen| Reply::ok(default_body(seen)).delay(Duration::from_millis(200))).await;
    let proxy = TestProxy::start(BASE_CONFIG, &origin.url()).await;
    let client = TestClient::new(proxy.addr);
    let mut set = JoinSet::new();
    for _ in 0..200 {
        let client = client.clone();
        set.spawn(async move { client.get("/api/faculty/?page=1", ORG42).await });
    }
    let mut statuses = std::collections::HashMap::<String, usize>::new();
    while let Some(answer) = set.join_next().await {
        let answer = answer.unwrap();
        assert_eq!(answer.status, 200);
        assert_eq!(answer.json()["target"], "/api/faculty/?page=1");
        assert_eq!(answer.json()["org"], "42");
        *statuses
            .entry(answer.cache_status().to_owned())
            .or_default() += 1;
    }
    assert_eq!(origin.hits(), 1, "{statuses:?}");
    assert_eq!(statuses.values().sum::<usize>(), 200);
    assert_eq!(
        statuses.get("cachegate; fwd=miss; stored"),
        Some(&1),
        "{statuses:?}"
    );
}

#[tokio::test]
async fn a_failing_leader_fails_every_waiter_promptly() {
    // The backend accepts the request and stalls past the proxy's 2s upstream timeout.
    let gate = Gate::new();
    let g = gate.clone();
    let origin = Origin::with(move |seen| Reply::ok(default_body(seen)).gate(&g)).await;
    let proxy = TestProxy::start(BASE_CONFIG, &origin.url()).await;
    let client = TestClient::new(proxy.addr);
    let started = Instant::now();
    let mut set = JoinSet::new();
    for _ in 0..50 {
        let client = client.clone();
        set.spawn(async move { client.get("/api/faculty/", ORG42).await });
    }
    while let Some(answer) = set.join_next().await {
        let answer = answer.unwrap();
        assert_eq!(answer.status, 504);
        assert_eq!(answer.json()["error"], "upstream_timeout");
    }
    // One fill timed out and everybody heard about it, well before the 5s coalescing bound.
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(origin.hits(), 1);
    gate.open();
}

#[tokio::test]
async fn an_unreachable_backend_fails_every_waiter_with_502() {
    // A port that was free a moment ago: nothing listens there.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let proxy = TestProxy::start(BASE_CONFIG, &format!("http://127.0.0.1:{port}")).await;
    let client = TestClient::new(proxy.addr);
    let mut set = JoinSet::new();
    for _ in 0..20 {
        let client = client.clone();
        set.spawn(async move { client.get("/api/faculty/", ORG42).await });
    }
    while let Some(answer) = set.join_next().await {
        let answer = answer.unwrap();
        assert_eq!(answer.status, 502);
        assert_eq!(answer.json()["error"], "upstream_unreachable");
        assert_eq!(answer.header("content-type"), Some("application/json"));
    }
}

#[tokio::test]
async fn the_fill_survives_its_leader_disconnecting() {
    let gate = Gate::new();
    let g = gate.clone();
    let origin = Origin::with(move |seen| Reply::ok(default_body(seen)).gate(&g)).await;
    let proxy = TestProxy::start(BASE_CONFIG, &origin.url()).await;
    let client = TestClient::new(proxy.addr);
    let leader = {
        let client = client.clone();
        tokio::spawn(async move { client.get("/api/faculty/", ORG42).await })
    };
    gate.arrivals(1).await;
    let waiter = {
        let client = client.clone();
        tokio::spawn(async move { client.get("/api/faculty/", ORG42).await })
    };
    // Wait until the waiter has joined the flight, then drop the leader's connection.
    let mut waits = proxy.watch_waits();
    until("the second request to join the flight", &mut waits, |n| {
        *n >= 1
    })
    .await;
    leader.abort();
    let _ = leader.await;
    gate.open();
    let answer = waiter.await.unwrap();
    assert_eq!(answer.status, 200);
    // The fill completed and stored: the next request is a hit and the backend saw one request.
    let next = client.get("/api/faculty/", ORG42).await;
    assert_eq!(next.cache_status(), "cachegate; hit");
    assert_eq!(origin.hits(), 1);
}

#[tokio::test]
async fn private_responses_are_never_handed_to_waiters() {
    // Each request gets a session cookie of its own: none may receive another's.
    let counter = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let c = counter.clone();
    let gate = Gate::new();
    let g = gate.clone();
    let origin = Origin::with(move |_| {
        let n = c.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Reply::ok(format!("user-{n}"))
            .header("set-cookie", &format!("sid={n}"))
            .gate(&g)
    })
    .await;
    let proxy = TestProxy::start(BASE_CONFIG, &origin.url()).await;
    let client = TestClient::new(proxy.addr);
    let mut waits = proxy.watch_waits();
    let mut set = JoinSet::new();
    for _ in 0..5 {
        let client = client.clone();
        set.spawn(async move { client.get("/api/faculty/", ORG42).await });
    }
    // The first request's fill is held at the origin until the four others wait on it, so the
    // private answer is really offered to waiters before anyone gets it.
    gate.arrivals(1).await;
    until("four requests to wait on the held fill", &mut waits, |n| {
        *n >= 4
    })
    .await;
    assert_eq!(
        origin.hits(),
        1,
        "a request went to the origin instead of waiting"
    );
    gate.open();
    let mut bodies = std::collections::HashSet::new();
    while let Some(answer) = set.join_next().await {
        let answer = answer.unwrap();
        let body = answer.text();
        let n = body.trim_start_matches("user-");
        assert_eq!(
            answer.header("set-cookie"),
            Some(format!("sid={n}").as_str())
        );
        assert!(bodies.insert(body), "a private response was shared");
    }
    assert_eq!(origin.hits(), 5);
}

#[tokio::test]
async fn a_waiter_past_the_coalescing_bound_goes_alone() {
    let gate = Gate::new();
    let g = gate.clone();
    let origin = Origin::with(move |seen| {
        if seen.header("user-agent") == Some("hold") {
            Reply::ok(default_body(seen)).gate(&g)
        } else {
            Reply::ok(default_body(seen))
        }
    })
    .await;
    let config = BASE_CONFIG
        .replace("coalesce_timeout = \"5s\"", "coalesce_timeout = \"200ms\"")
        .replace("timeout = \"2s\"", "timeout = \"20s\"");
    let proxy = TestProxy::start(&config, &origin.url()).await;
    let client = TestClient::new(proxy.addr);
    let leader = {
        let client = client.clone();
        tokio::spawn(async move {
            client
                .get(
                    "/api/faculty/",
                    &[("x-org-id", "42"), ("user-agent", "hold")],
                )
                .await
        })
    };
    gate.arrivals(1).await;
    let alone = client.get("/api/faculty/", ORG42).await;
    assert_eq!(alone.status, 200);
    assert_eq!(
        alone.cache_status(),
        "cachegate; fwd=miss; detail=coalesce-timeout"
    );
    gate.open();
    assert_eq!(
        leader.await.unwrap().cache_status(),
        "cachegate; fwd=miss; stored"
    );
    assert_eq!(origin.hits(), 2);
}
