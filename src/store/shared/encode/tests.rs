use super::*;
use proptest::prelude::*;

fn entry(body: Vec<u8>) -> CachedResponse {
    let tenant = TenantScope::one("acme");
    let mut headers = HeaderMap::new();
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    headers.append("set-thing", HeaderValue::from_static("a"));
    headers.append("set-thing", HeaderValue::from_static("b"));
    headers.insert("x-custom", HeaderValue::from_bytes(b"\x80bin").unwrap());
    let content =
        crate::store::compact(StatusCode::NOT_FOUND, &headers, [Bytes::from(body)].iter());
    CachedResponse::from(crate::store::EntryParts {
        content,
        stored_at: UnixMillis(1_700_000_000_000),
        lifetimes: Lifetimes {
            fresh_until: UnixMillis(1_700_000_060_000),
            stale_while_revalidate_until: UnixMillis(1_700_000_090_000),
            stale_if_error_until: UnixMillis(1_700_000_660_000),
            revalidate_until: UnixMillis(1_700_001_260_000),
        },
        extra_tags: crate::store::extra_tags(&[Tag::user("bob"), Tag::parse("faculty:12")]),
        tenant,
        text: EntryText::new("/api/items?a=1", "GET /api/items?a=1"),
        key: Key([7; 32]),
        variant: Some(Arc::new(Selection {
            headers: vec![HeaderName::from_static("accept-language")],
            by_user: true,
        })),
        route: 3,
    })
}

fn same(a: &CachedResponse, b: &CachedResponse) {
    assert_eq!(a.status(), b.status());
    assert_eq!(a.headers(), b.headers());
    assert_eq!(a.body(), b.body());
    assert_eq!(a.stored_at, b.stored_at);
    assert_eq!(a.fresh_until(), b.fresh_until());
    assert_eq!(a.lifetimes(), b.lifetimes());
    assert_eq!(a.tags(), b.tags());
    assert_eq!(a.extra_tags, b.extra_tags);
    assert_eq!(a.readable_key(), b.readable_key());
    assert_eq!(a.tenant, b.tenant);
    assert_eq!(a.target(), b.target());
    assert_eq!(a.key, b.key);
    assert_eq!(a.variant, b.variant);
    assert_eq!(a.route, b.route);
}

#[test]
fn roundtrip_raw_body() {
    let e = entry(b"{\"ok\":true}".to_vec());
    let data = encode_entry(&e, 1024);
    assert_eq!(data[8] & COMPRESSED, 0);
    same(&decode_entry(&data).unwrap(), &e);
}

#[test]
fn roundtrip_compressed_body() {
    let e = entry(b"abcdefgh".repeat(1000));
    let data = encode_entry(&e, 1024);
    assert_eq!(data[8] & COMPRESSED, COMPRESSED);
    assert!(data.len() < 2000, "{}", data.len());
    same(&decode_entry(&data).unwrap(), &e);
}

#[test]
fn incompressible_body_is_stored_raw() {
    let body: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let e = entry(body);
    let data = encode_entry(&e, 16);
    same(&decode_entry(&data).unwrap(), &e);
}

#[test]
fn shared_scope_and_no_variant_roundtrip() {
    let mut e = entry(Vec::new());
    e.tenant = TenantScope::Shared;
    e.extra_tags = Default::default();
    e.variant = None;
    same(&decode_entry(&encode_entry(&e, 0)).unwrap(), &e);
}

#[test]
fn every_truncation_is_an_error() {
    for data in [
        encode_entry(&entry(b"hello".to_vec()), 1024),
        encode_entry(&entry(b"xyz".repeat(500)), 10),
    ] {
        for len in 0..data.len() {
            assert!(decode_entry(&data[..len]).is_err(), "truncated at {len}");
        }
        let mut longer = data.clone();
        longer.push(0);
        assert!(decode_entry(&longer).is_err());
    }
}

#[test]
fn another_version_or_magic_is_an_error() {
    let mut data = encode_entry(&entry(b"x".to_vec()), 1024);
    data[4..8].copy_from_slice(&(FORMAT_VERSION + 1).to_le_bytes());
    assert_eq!(
        decode_entry(&data).unwrap_err(),
        DecodeError("another format version")
    );
    let mut data = encode_entry(&entry(b"x".to_vec()), 1024);
    data[0] = b'X';
    assert!(decode_entry(&data).is_err());
    assert!(decode_selection(&data).is_err());
}

#[test]
fn selection_roundtrip() {
    let s = Selection {
        headers: vec![
            HeaderName::from_static("accept"),
            HeaderName::from_static("x-flavour"),
        ],
        by_user: false,
    };
    let data = encode_selection(&s);
    assert_eq!(decode_selection(&data).unwrap(), s);
    for len in 0..data.len() {
        assert!(decode_selection(&data[..len]).is_err());
    }
}

proptest! {
    #[test]
    fn garbage_never_panics(data in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode_entry(&data);
        let _ = decode_selection(&data);
    }

    #[test]
    fn corrupted_values_never_panic(at in 0usize..400, byte in any::<u8>()) {
        let mut data = encode_entry(&entry(b"some body".repeat(20)), 64);
        let at = at % data.len();
        data[at] = byte;
        let _ = decode_entry(&data);
    }

    #[test]
    fn arbitrary_bodies_roundtrip(body in proptest::collection::vec(any::<u8>(), 0..3000),
                                  above in 0usize..2000) {
        let e = entry(body);
        let d = decode_entry(&encode_entry(&e, above)).unwrap();
        prop_assert_eq!(d.body(), e.body());
    }
}
