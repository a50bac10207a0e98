use crate::support::client::TestClient;
use crate::support::origin::Origin;
use crate::support::{TestProxy, BASE_CONFIG};
use http::Method;

fn is_made_here(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

#[tokio::test]
async fn a_sane_request_id_goes_to_the_backend_and_comes_back() {
    let origin = Origin::start().await;
    let proxy = TestProxy::start(BASE_CONFIG, &origin.url()).await;
    let client = TestClient::new(proxy.addr);
    // A fill, a hit, a pass-through and a write.
    let cases = [
        (Method::GET, "/api/faculty/", "fill-1", true),
        (Method::GET, "/api/faculty/", "hit-1", false),
        (Method::GET, "/api/unknown/", "pass-1", true),
        (Method::POST, "/api/faculty/", "write-1", true),
    ];
    for (method, path, id, reaches_backend) in cases {
        let before = origin.hits();
        let answer = client
            .send(
                method.clone(),
                path,
                &[("x-org-id", "42"), ("x-request-id", id)],
                "",
            )
            .await;
        assert_eq!(answer.header("x-request-id"), Some(id), "{method} {path}");
        if reaches_backend {
            let seen = origin.seen();
            assert_eq!(seen.len(), before + 1, "{method} {path}");
            assert_eq!(
                seen[before].header("x-request-id"),
                Some(id),
                "{method} {path}"
            );
        } else {
            assert_eq!(origin.hits(), before, "a hit never reaches the backend");
        }
    }
}

#[tokio::test]
async fn a_missing_or_insane_request_id_is_made_here() {
    let origin = Origin::start().await;
    let proxy = TestProxy::start(BASE_CONFIG, &origin.url()).await;
    let client = TestClient::new(proxy.addr);
    let long = "a".repeat(129);
    let mut made = Vec::new();
    for (path, given) in [
        ("/api/unknown/1/", None),
        ("/api/unknown/2/", Some("has space")),
        ("/api/unknown/3/", Some("semi;colon")),
        ("/api/unknown/4/", Some(long.as_str())),
    ] {
        let mut headers = vec![("x-org-id", "42")];
        headers.extend(given.map(|id| ("x-request-id", id)));
        let answer = client.get(path, &headers).await;
        let id = answer.header("x-request-id").unwrap().to_string();
        assert!(is_made_here(&id), "{given:?} -> {id}");
        let seen = origin.seen();
        let sent = seen.iter().find(|s| s.path() == path).unwrap();
        assert_eq!(sent.header("x-request-id"), Some(id.as_str()));
        made.push(id);
    }
    made.sort();
    made.dedup();
    assert_eq!(made.len(), 4, "every request gets its own id");
}
