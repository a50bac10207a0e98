use super::*;
use http::HeaderName;
use proptest::prelude::*;

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    map
}

fn bucket(lines: &[&str]) -> Bucket {
    let pairs: Vec<(&str, &str)> = lines.iter().map(|l| ("accept-encoding", *l)).collect();
    bucket_of(&headers(&pairs))
}

#[test]
fn what_browsers_and_tools_send() {
    assert_eq!(bucket(&["gzip, deflate, br, zstd"]), Bucket::Br);
    assert_eq!(bucket(&["gzip, deflate, br"]), Bucket::Br);
    assert_eq!(bucket(&["gzip, deflate"]), Bucket::Gzip);
    assert_eq!(bucket(&["gzip"]), Bucket::Gzip);
    assert_eq!(bucket(&["deflate, gzip;q=1.0, *;q=0.5"]), Bucket::Br);
    assert_eq!(bucket(&["identity"]), Bucket::Identity);
    // No header: many tools that cannot decode send none.
    assert_eq!(bucket(&[]), Bucket::Identity);
    // An empty value: the client wants no coding.
    assert_eq!(bucket(&[""]), Bucket::Identity);
}

#[test]
fn case_and_whitespace_do_not_matter() {
    assert_eq!(bucket(&["GZIP"]), Bucket::Gzip);
    assert_eq!(bucket(&["  Br ,\tGzip  "]), Bucket::Br);
    assert_eq!(bucket(&["gzip ; Q = 0.5 , br;q=0.1"]), Bucket::Br);
    assert_eq!(bucket(&["x-gzip"]), Bucket::Gzip);
    assert_eq!(bucket(&[",, gzip ,,"]), Bucket::Gzip);
}

#[test]
fn lines_form_one_list() {
    assert_eq!(bucket(&["gzip", "br"]), Bucket::Br);
    assert_eq!(bucket(&["br", "gzip;q=0"]), Bucket::Identity);
}

#[test]
fn q_zero_refuses_a_coding() {
    assert_eq!(bucket(&["gzip;q=0, br"]), Bucket::Identity);
    assert_eq!(bucket(&["br;q=0, gzip"]), Bucket::Gzip);
    assert_eq!(bucket(&["gzip;q=0.000"]), Bucket::Identity);
    assert_eq!(bucket(&["gzip;q=0.001"]), Bucket::Gzip);
    // A positive q is a preference the bucket does not keep.
    assert_eq!(bucket(&["gzip;q=1, br;q=0.1"]), Bucket::Br);
}

#[test]
fn star_stands_for_codings_not_listed() {
    assert_eq!(bucket(&["*"]), Bucket::Br);
    assert_eq!(bucket(&["*;q=0.2"]), Bucket::Br);
    assert_eq!(bucket(&["*, br;q=0"]), Bucket::Gzip);
    assert_eq!(bucket(&["gzip, *;q=0"]), Bucket::Gzip);
    assert_eq!(bucket(&["*;q=0"]), Bucket::Identity);
}

#[test]
fn identity_refused_is_read_but_falls_to_identity_when_nothing_else_is_accepted() {
    let read = |s: &str| Accepted::parse([s.as_bytes()]);
    assert!(read("gzip").identity_acceptable());
    assert!(!read("gzip, identity;q=0").identity_acceptable());
    assert!(!read("*;q=0").identity_acceptable());
    assert!(read("*;q=0, identity").identity_acceptable());
    assert_eq!(bucket(&["gzip, identity;q=0"]), Bucket::Gzip);
    // Nothing acceptable is available: answered without a coding (RFC 9110 §12.5.3).
    assert_eq!(bucket(&["deflate, identity;q=0"]), Bucket::Identity);
}

#[test]
fn a_coding_listed_twice_keeps_its_lowest_q() {
    assert_eq!(bucket(&["gzip, gzip;q=0"]), Bucket::Identity);
    assert_eq!(bucket(&["gzip;q=0, gzip"]), Bucket::Identity);
    assert_eq!(bucket(&["gzip;q=0.5, br, gzip;q=0.2"]), Bucket::Br);
}

#[test]
fn unknown_codings_and_parameters_are_ignored() {
    assert_eq!(bucket(&["zstd, deflate, compress"]), Bucket::Identity);
    assert_eq!(bucket(&["zstd, gzip;level=9"]), Bucket::Gzip);
    assert_eq!(bucket(&["gzip;foo;q=0.5"]), Bucket::Gzip);
    // Only the first q counts.
    assert_eq!(bucket(&["gzip;q=0;q=1"]), Bucket::Identity);
}

#[test]
fn a_malformed_q_drops_its_item() {
    for bad in [
        "gzip;q=2",
        "gzip;q=1.5",
        "gzip;q=0.1234",
        "gzip;q=abc",
        "gzip;q=",
        "gzip;q",
        "gzip;q=-1",
        "gzip;q=.5",
        "gzip;q=\"0.5\"",
    ] {
        assert_eq!(bucket(&[bad]), Bucket::Identity, "{bad}");
    }
    assert_eq!(bucket(&["gzip;q=bad, br, gzip"]), Bucket::Br);
}

#[test]
fn quality_values() {
    assert_eq!(parse_quality(b"0"), Some(0));
    assert_eq!(parse_quality(b"0."), Some(0));
    assert_eq!(parse_quality(b"0.5"), Some(500));
    assert_eq!(parse_quality(b"0.05"), Some(50));
    assert_eq!(parse_quality(b"0.999"), Some(999));
    assert_eq!(parse_quality(b"1"), Some(1000));
    assert_eq!(parse_quality(b"1.000"), Some(1000));
    assert_eq!(parse_quality(b"1.001"), None);
    assert_eq!(parse_quality(b""), None);
    assert_eq!(parse_quality(b"00.5"), None);
}

#[test]
fn every_canonical_header_reads_back_as_its_bucket() {
    for b in Bucket::ALL {
        let sent = headers(&[("accept-encoding", b.accept_encoding().to_str().unwrap())]);
        assert_eq!(bucket_of(&sent), b);
    }
}

#[test]
fn buckets_accept_the_codings_below_them() {
    assert!(!Bucket::Identity.accepts(Coding::Gzip));
    assert!(Bucket::Gzip.accepts(Coding::Gzip));
    assert!(!Bucket::Gzip.accepts(Coding::Br));
    assert!(Bucket::Br.accepts(Coding::Gzip) && Bucket::Br.accepts(Coding::Br));
    for b in Bucket::ALL {
        if let Some(coding) = b.preferred() {
            assert!(b.accepts(coding));
        }
    }
}

#[test]
fn a_response_is_stored_for_a_bucket_only_when_its_clients_decode_it() {
    let id = headers(&[]);
    let gzip = headers(&[("content-encoding", "gzip")]);
    let br = headers(&[("content-encoding", "BR")]);
    let zstd = headers(&[("content-encoding", "zstd")]);
    let stacked = headers(&[("content-encoding", "gzip, br")]);
    let explicit = headers(&[("content-encoding", "identity")]);
    for b in Bucket::ALL {
        assert!(serves(b, &id) && serves(b, &explicit));
        assert!(!serves(b, &zstd) && !serves(b, &stacked));
    }
    assert!(!serves(Bucket::Identity, &gzip));
    assert!(serves(Bucket::Gzip, &gzip) && !serves(Bucket::Gzip, &br));
    assert!(serves(Bucket::Br, &gzip) && serves(Bucket::Br, &br));
    assert_eq!(encoded(&gzip), Encoded::Known(Coding::Gzip));
    assert_eq!(encoded(&stacked), Encoded::Other);
}

#[test]
fn compression_plans() {
    let ok = StatusCode::OK;
    let json = headers(&[("content-type", "application/json; charset=utf-8")]);
    assert_eq!(
        plan(Bucket::Br, ok, &json, 4096),
        Plan {
            vary: true,
            encode: Some(Coding::Br)
        }
    );
    assert_eq!(
        plan(Bucket::Gzip, ok, &json, 4096).encode,
        Some(Coding::Gzip)
    );
    // The identity bucket's answer still says it varies.
    assert_eq!(
        plan(Bucket::Identity, ok, &json, 4096),
        Plan {
            vary: true,
            encode: None
        }
    );
    // Too short, not text, already encoded, no-transform, not a success.
    assert_eq!(plan(Bucket::Br, ok, &json, 100), Plan::default());
    let png = headers(&[("content-type", "image/png")]);
    assert_eq!(plan(Bucket::Br, ok, &png, 4096), Plan::default());
    let none = headers(&[]);
    assert_eq!(plan(Bucket::Br, ok, &none, 4096), Plan::default());
    let encoded = headers(&[
        ("content-type", "application/json"),
        ("content-encoding", "gzip"),
    ]);
    assert_eq!(plan(Bucket::Br, ok, &encoded, 4096), Plan::default());
    let keep = headers(&[
        ("content-type", "text/html"),
        ("cache-control", "max-age=60, No-Transform"),
    ]);
    assert_eq!(plan(Bucket::Br, ok, &keep, 4096), Plan::default());
    assert_eq!(
        plan(Bucket::Br, StatusCode::NOT_FOUND, &json, 4096),
        Plan::default()
    );
    assert_eq!(
        plan(Bucket::Br, StatusCode::PARTIAL_CONTENT, &json, 4096),
        Plan::default()
    );
}

#[test]
fn textual_media_types() {
    for t in [
        "application/json",
        "Application/JSON",
        "application/problem+json",
        "application/vnd.api+json; charset=utf-8",
        "text/html",
        "text/csv",
        "application/xml",
        "image/svg+xml",
        "application/javascript",
    ] {
        assert!(compressible_type(t.as_bytes()), "{t}");
    }
    for t in [
        "image/png",
        "application/octet-stream",
        "application/zip",
        "video/mp4",
        "json",
        "",
    ] {
        assert!(!compressible_type(t.as_bytes()), "{t}");
    }
}

#[test]
fn an_encoded_head() {
    let mut head = headers(&[
        ("content-type", "application/json"),
        ("content-length", "4096"),
        ("accept-ranges", "bytes"),
        ("etag", "\"v1\""),
        ("vary", "Accept"),
    ]);
    encoded_head(&mut head, Coding::Gzip);
    assert_eq!(head["content-encoding"], "gzip");
    assert!(!head.contains_key("content-length"));
    assert!(!head.contains_key("accept-ranges"));
    assert_eq!(head["etag"], "W/\"v1\"");
    let vary: Vec<_> = head.get_all("vary").iter().collect();
    assert_eq!(vary, ["Accept", "Accept-Encoding"]);
    // A weak ETag stays as it is; a Vary naming Accept-Encoding is not repeated.
    let mut head = headers(&[("etag", "W/\"v1\""), ("vary", "accept-encoding")]);
    encoded_head(&mut head, Coding::Br);
    assert_eq!(head["etag"], "W/\"v1\"");
    assert_eq!(head.get_all("vary").iter().count(), 1);
}

proptest! {
    /// Whatever a client sends, the bucket's canonical header is accepted by that client: every
    /// coding a fill for its bucket may bring back, the client takes.
    #[test]
    fn the_bucket_never_widens_what_a_client_accepts(
        items in proptest::collection::vec(
            (
                prop_oneof![
                    Just("gzip"), Just("GZip"), Just("x-gzip"), Just("br"), Just("identity"),
                    Just("*"), Just("zstd"), Just("deflate"), Just("")
                ],
                prop_oneof![
                    Just(""), Just(";q=0"), Just(";q=1"), Just(";q=0.5"), Just(" ; q=0.000"),
                    Just(";q=9"), Just(";q=0.0001")
                ],
            ),
            0..6,
        )
    ) {
        let line: Vec<String> = items.iter().map(|(c, q)| format!("{c}{q}")).collect();
        let line = line.join(", ");
        let accepted = Accepted::parse([line.as_bytes()]);
        let bucket = accepted.bucket();
        for coding in [Coding::Gzip, Coding::Br] {
            if bucket.accepts(coding) {
                prop_assert!(accepted.quality(coding) > 0, "{line}: {bucket:?} {coding:?}");
            }
        }
        let reread = Accepted::parse([bucket.accept_encoding().as_bytes()]).bucket();
        prop_assert_eq!(reread, bucket);
    }
}
