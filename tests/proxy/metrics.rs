use crate::support::client::{Answer, TestClient};
use crate::support::origin::Origin;
use crate::support::{TestProxy, ADMIN_TOKEN, BASE_CONFIG};
use http::Method;
use std::collections::{HashMap, HashSet};

const ORG42: &[(&str, &str)] = &[("x-org-id", "42")];

async fn scrape(proxy: &TestProxy) -> String {
    let answer = proxy.admin(Method::GET, "/metrics", "").await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(
        answer.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let text = answer.text();
    check_exposition(&text);
    text
}

/// The value of the one sample named exactly `series` (name and labels as written).
fn sample(text: &str, series: &str) -> f64 {
    let values: Vec<f64> = text
        .lines()
        .filter_map(|line| line.strip_prefix(series))
        .filter_map(|rest| rest.strip_prefix(' '))
        .map(|value| value.parse().unwrap())
        .collect();
    assert_eq!(values.len(), 1, "{series} in\n{text}");
    values[0]
}

/// Checks the text exposition format line by line: `# HELP` and `# TYPE` once per family and
/// before its samples, known types, metric and label names of the allowed characters, label
/// values quoted with only `\\`, `\"` and `\n` escaped, values that parse as floats, every
/// sample in a family whose TYPE was given (histograms through `_bucket`, `_sum`, `_count`), no
/// series twice, and cumulative histogram buckets ending in `+Inf` equal to `_count`.
fn check_exposition(text: &str) {
    let name_ok = |name: &str| {
        !name.is_empty()
            && !name.starts_with(|c: char| c.is_ascii_digit())
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    };
    let mut types: HashMap<String, String> = HashMap::new();
    let mut helps: HashSet<String> = HashSet::new();
    let mut series: HashSet<String> = HashSet::new();
    let mut last_bucket: HashMap<String, f64> = HashMap::new();
    assert!(text.ends_with('\n'), "the exposition ends with a newline");
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap();
            assert!(name_ok(name), "{line}");
            assert!(helps.insert(name.to_string()), "HELP twice: {line}");
            assert!(!types.contains_key(name), "HELP after TYPE: {line}");
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert!(name_ok(name), "{line}");
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "{line}"
            );
            assert!(
                types.insert(name.to_string(), kind.to_string()).is_none(),
                "TYPE twice: {line}"
            );
            continue;
        }
        assert!(
            !line.starts_with('#') && !line.is_empty(),
            "stray line: {line:?}"
        );
        let name_end = line.find(['{', ' ']).unwrap();
        let name = &line[..name_end];
        assert!(name_ok(name), "{line}");
        let mut rest = &line[name_end..];
        let mut labels = Vec::new();
        if let Some(inner) = rest.strip_prefix('{') {
            let mut chars = inner.char_indices();
            let mut key = String::new();
            loop {
                let (i, c) = chars
                    .next()
                    .unwrap_or_else(|| panic!("unclosed labels: {line}"));
                match c {
                    '}' if key.is_empty() => {
                        rest = &inner[i + 1..];
                        break;
                    }
                    '=' => {
                        assert!(name_ok(&key), "label name {key:?}: {line}");
                        assert_eq!(chars.next().map(|(_, c)| c), Some('"'), "{line}");
                        let mut value = String::new();
                        loop {
                            match chars.next().map(|(_, c)| c) {
                                Some('\\') => match chars.next().map(|(_, c)| c) {
                                    Some(e @ ('\\' | '"' | 'n')) => value.push(e),
                                    other => panic!("bad escape {other:?}: {line}"),
                                },
                                Some('"') => break,
                                Some('\n') | None => panic!("unterminated value: {line}"),
                                Some(c) => value.push(c),
                            }
                        }
                        labels.push((std::mem::take(&mut key), value));
                        match chars.next().map(|(_, c)| c) {
                            Some(',') => {}
                            Some('}') => {
                                let at = inner.len() - chars.as_str().len();
                                rest = &inner[at..];
                                break;
                            }
                            other => panic!("after a label {other:?}: {line}"),
                        }
                    }
                    c => key.push(c),
                }
            }
        }
        let value = rest
            .strip_prefix(' ')
            .unwrap_or_else(|| panic!("no value: {line}"));
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            "NaN" => f64::NAN,
            v => v.parse().unwrap_or_else(|_| panic!("value {v:?}: {line}")),
        };
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| {
                let base = name.strip_suffix(suffix)?;
                (types.get(base).map(String::as_str) == Some("histogram")).then_some(base)
            })
            .unwrap_or(name);
        assert!(types.contains_key(family), "sample before its TYPE: {line}");
        assert!(
            series.insert(line[..line.len() - rest.len()].to_string()),
            "twice: {line}"
        );
        if name.ends_with("_bucket") {
            let le = labels
                .iter()
                .find(|(k, _)| k == "le")
                .map(|(_, v)| v.clone());
            let le = le.unwrap_or_else(|| panic!("bucket without le: {line}"));
            let key: Vec<_> = labels.iter().filter(|(k, _)| k != "le").collect();
            let key = format!("{family}{key:?}");
            let previous = last_bucket.insert(key.clone(), value).unwrap_or(0.0);
            assert!(value >= previous, "buckets are cumulative: {line}");
            if le == "+Inf" {
                let head = &line[..line.len() - rest.len()];
                let count = head
                    .replacen("_bucket", "_count", 1)
                    .replace(",le=\"+Inf\"", "")
                    .replace("{le=\"+Inf\"}", "");
                let expected = text
                    .lines()
                    .find_map(|l| l.strip_prefix(&count)?.strip_prefix(' '))
                    .unwrap_or_else(|| panic!("no _count for {line}"));
                assert_eq!(expected.parse::<f64>().unwrap(), value, "{line}");
            }
        }
    }
    assert!(!types.is_empty());
}

#[tokio::test]
async fn a_miss_and_a_hit_are_counted_and_the_exposition_parses() {
    let origin = Origin::start().await;
    let proxy = TestProxy::start(BASE_CONFIG, &origin.url()).await;
    let client = TestClient::new(proxy.addr);
    let before = scrape(&proxy).await;
    assert!(!before.contains("cachegate_requests_total{"), "{before}");

    let miss = client.get("/api/faculty/", ORG42).await;
    assert_eq!(miss.cache_status(), "cachegate; fwd=miss; stored");
    let hit = client.get("/api/faculty/", ORG42).await;
    assert_eq!(hit.cache_status(), "cachegate; hit");
    client.get("/api/unknown/", ORG42).await;

    let text = scrape(&proxy).await;
    let requests = |route: &str, outcome: &str| {
        sample(
            &text,
            &format!(
                "cachegate_requests_total{{route=\"{route}\",method=\"GET\",status_class=\"2xx\",outcome=\"{outcome}\"}}"
            ),
        )
    };
    assert_eq!(requests("/api/faculty/", "miss-stored"), 1.0);
    assert_eq!(requests("/api/faculty/", "hit"), 1.0);
    assert_eq!(requests("", "bypass"), 1.0);
    assert_eq!(sample(&text, "cachegate_hits_total"), 1.0);
    assert_eq!(sample(&text, "cachegate_misses_total"), 1.0);
    assert_eq!(
        sample(&text, "cachegate_bypassed_total{reason=\"no-route\"}"),
        1.0
    );
    assert_eq!(
        sample(&text, "cachegate_not_stored_total{reason=\"set-cookie\"}"),
        0.0
    );
    assert_eq!(
        sample(
            &text,
            "cachegate_request_duration_seconds_count{route=\"/api/faculty/\"}"
        ),
        2.0
    );
    // The fill and the pass-through went to the backend; the hit did not.
    assert_eq!(
        sample(&text, "cachegate_backend_duration_seconds_count"),
        2.0
    );
    assert_eq!(
        sample(&text, "cachegate_tier_entries{tier=\"memory\"}"),
        1.0
    );
    assert!(sample(&text, "cachegate_tier_bytes{tier=\"memory\"}") > 0.0);
    assert_eq!(
        sample(&text, "cachegate_tier_evictions_total{tier=\"memory\"}"),
        0.0
    );
    assert_eq!(sample(&text, "cachegate_stale_served_total"), 0.0);
    assert_eq!(sample(&text, "cachegate_config_reloads_total"), 0.0);
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        sample(
            &text,
            &format!("cachegate_build_info{{version=\"{version}\"}}")
        ),
        1.0
    );
}

#[tokio::test]
async fn purges_are_counted_by_source() {
    let origin = Origin::start().await;
    let proxy = TestProxy::start(BASE_CONFIG, &origin.url()).await;
    let client = TestClient::new(proxy.addr);
    client.get("/api/faculty/1/", ORG42).await;
    let purge = proxy
        .admin(
            Method::POST,
            "/purge",
            r#"{"tenant": "42", "tags": ["department"]}"#,
        )
        .await;
    assert_eq!(purge.status, 200, "{}", purge.text());
    let hook = proxy
        .invalidate(r#"{"tenant": "42", "tags": ["faculty"]}"#)
        .await;
    assert_eq!(hook.status, 200, "{}", hook.text());
    let write = client
        .send(Method::PUT, "/api/faculty/1/", ORG42, "{}")
        .await;
    assert_eq!(write.status, 200);
    let text = scrape(&proxy).await;
    for source in ["admin", "webhook", "write"] {
        let series = format!("cachegate_purges_total{{source=\"{source}\"}}");
        assert_eq!(sample(&text, &series), 1.0, "{series}");
    }
    assert_eq!(sample(&text, "cachegate_purged_entries_total"), 1.0);
}

async fn get_metrics(proxy: &TestProxy, headers: &[(&str, &str)]) -> Answer {
    TestClient::new(proxy.admin_addr)
        .get("/metrics", headers)
        .await
}

#[tokio::test]
async fn metrics_need_the_token_unless_open_and_can_be_off() {
    let origin = Origin::start().await;
    let proxy = TestProxy::start(BASE_CONFIG, &origin.url()).await;
    let bearer = format!("Bearer {ADMIN_TOKEN}");
    for headers in [vec![], vec![("authorization", "Bearer wrong")]] {
        let answer = get_metrics(&proxy, &headers).await;
        assert_eq!(answer.status, 401, "{headers:?}");
        assert_eq!(answer.json()["error"], "unauthorized");
    }
    let answer = get_metrics(&proxy, &[("authorization", &bearer)]).await;
    assert_eq!(answer.status, 200);

    let open = format!("{BASE_CONFIG}\n[admin]\nmetrics_open = true\n");
    let proxy = TestProxy::start(&open, &origin.url()).await;
    assert_eq!(get_metrics(&proxy, &[]).await.status, 200);
    let stats = TestClient::new(proxy.admin_addr).get("/stats", &[]).await;
    assert_eq!(stats.status, 401, "only /metrics is opened");

    let off = format!("{BASE_CONFIG}\n[admin]\nmetrics = false\n");
    let proxy = TestProxy::start(&off, &origin.url()).await;
    let answer = get_metrics(&proxy, &[("authorization", &bearer)]).await;
    assert_eq!(answer.status, 404);
    TestClient::new(proxy.addr)
        .get("/api/faculty/", ORG42)
        .await;
    assert_eq!(proxy.proxy.metrics().snapshot().requests, []);
}

#[tokio::test]
async fn probes_answer_without_the_token() {
    let origin = Origin::start().await;
    let proxy = TestProxy::start(BASE_CONFIG, &origin.url()).await;
    let admin = TestClient::new(proxy.admin_addr);
    let health = admin.get("/healthz", &[]).await;
    assert_eq!(
        (health.status.as_u16(), health.json()["status"].clone()),
        (200, "ok".into())
    );
    let ready = admin.get("/readyz", &[]).await;
    assert_eq!(
        (ready.status.as_u16(), ready.json()["status"].clone()),
        (200, "ready".into())
    );
}
