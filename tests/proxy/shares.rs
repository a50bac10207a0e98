//! Tenant shares and route bounds through the whole proxy (issue 12, part 4): a noisy tenant's
//! scan of its catalogue cannot evict a quiet tenant's hot entries, and a route over its
//! `max_memory` evicts its own entries only. `/stats` shows what each holds.

use crate::support::client::TestClient;
use crate::support::origin::{Origin, Reply};
use crate::support::TestProxy;

const CONFIG: &str = r#"
[upstream]
url = "{upstream}"

[cache]
max_memory = "4MiB"
max_object_size = "256KiB"
max_tenant_share = "25%"
tenant = { header = "X-Org-Id" }

[[route]]
path = "/api/items/{id}"

[[route]]
path = "/api/search/{*rest}"
max_memory = "64KiB"
"#;

/// Items and search results of 32 KiB, anything else small.
async fn origin() -> Origin {
    Origin::with(|seen| {
        let big = seen.path().starts_with("/api/search/") || seen.path().contains("/big-");
        Reply::ok(if big {
            vec![b'x'; 32 * 1024]
        } else {
            b"{\"ok\":true}".to_vec()
        })
    })
    .await
}

fn org(id: &str) -> [(&str, &str); 1] {
    [("x-org-id", id)]
}

#[tokio::test]
async fn a_noisy_tenant_cannot_evict_a_quiet_tenants_hot_keys() {
    let origin = origin().await;
    let proxy = TestProxy::start(CONFIG, &origin.url()).await;
    let client = TestClient::new(proxy.addr);
    let (quiet, noisy) = (org("quiet"), org("noisy"));
    for n in 0..100 {
        client.get(&format!("/api/items/{n}"), &quiet).await;
    }
    // The noisy tenant reads its catalogue, ten times the tier, each item twice (a miss and a
    // hit); between two rounds of the quiet tenant's reads it turns the tier over once.
    let noisy_items = 10 * 4 * 1024 / 32;
    let every = 4 * 1024 / 32;
    let (mut hits, mut lookups) = (0, 0);
    for i in 0..noisy_items {
        let path = format!("/api/items/big-{i}");
        client.get(&path, &noisy).await;
        client.get(&path, &noisy).await;
        if i % every == every - 1 {
            for n in 0..100 {
                let answer = client.get(&format!("/api/items/{n}"), &quiet).await;
                lookups += 1;
                if answer.cache_status() == "cachegate; hit" {
                    hits += 1;
                }
            }
        }
    }
    let ratio = f64::from(hits) / f64::from(lookups);
    println!(
        "quiet tenant's hit ratio: {:.1}% ({hits} of {lookups})",
        ratio * 100.0
    );
    assert!(ratio >= 0.99, "quiet tenant's hit ratio {ratio}");

    let stats = proxy.admin(http::Method::GET, "/stats", "").await.json();
    assert!(stats["share_evictions"].as_u64().unwrap() > 0, "{stats}");
    assert_eq!(stats["tenant_share"], 1024 * 1024);
    let memory = stats["tenant_memory"].as_array().unwrap();
    let of = |tenant: &str| {
        memory
            .iter()
            .find(|t| t["tenant"] == tenant)
            .unwrap_or_else(|| panic!("{tenant} not in {stats}"))
    };
    assert_eq!(of("quiet")["entries"], 100);
    assert!(of("noisy")["bytes"].as_u64().unwrap() <= 4 * 1024 * 1024);
    assert_eq!(memory[0]["tenant"], "noisy", "most bytes first");
}

#[tokio::test]
async fn a_route_over_its_bound_evicts_its_own_entries_only() {
    let origin = origin().await;
    let proxy = TestProxy::start(CONFIG, &origin.url()).await;
    let client = TestClient::new(proxy.addr);
    let tenant = org("42");
    for n in 0..10 {
        client.get(&format!("/api/items/{n}"), &tenant).await;
    }
    // Eight search results of 32 KiB do not fit in the route's 64 KiB.
    for q in 0..8 {
        let answer = client.get(&format!("/api/search/q{q}"), &tenant).await;
        assert_eq!(answer.cache_status(), "cachegate; fwd=miss; stored");
    }
    let stats = proxy.admin(http::Method::GET, "/stats", "").await.json();
    let search = &stats["route_memory"][1];
    assert_eq!(search["path"], "/api/search/{*rest}");
    assert_eq!(search["max_memory"], 64 * 1024);
    assert!(search["bytes"].as_u64().unwrap() <= 64 * 1024, "{stats}");
    assert_eq!(
        search["entries"], 1,
        "one 32 KiB result and its overhead fit"
    );
    assert_eq!(stats["route_evictions"], 7);
    assert_eq!(stats["evictions"], 7);
    assert_eq!(stats["route_memory"][0]["entries"], 10);
    // The newest result stays, the oldest went; the other route kept everything.
    let newest = client.get("/api/search/q7", &tenant).await;
    assert_eq!(newest.cache_status(), "cachegate; hit");
    let oldest = client.get("/api/search/q0", &tenant).await;
    assert_eq!(oldest.cache_status(), "cachegate; fwd=miss; stored");
    for n in 0..10 {
        let item = client.get(&format!("/api/items/{n}"), &tenant).await;
        assert_eq!(item.cache_status(), "cachegate; hit");
    }
}
