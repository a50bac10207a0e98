//! Tests for signature verification, secret rotation, the time window and repeat detection.

use super::*;

const NOW: u64 = 1_700_000_000;
const BODY: &[u8] = br#"{"tenant":"42","tags":["rooms"]}"#;

fn verifier(secrets: &str) -> Verifier {
    let secrets = Secrets::parse(secrets).unwrap_or_else(|e| panic!("{e}"));
    Verifier::new(secrets, DEFAULT_WINDOW)
}

/// Verifies `header` for `body` at `now` with a fresh verifier holding `secrets`.
fn check(
    secrets: &str,
    header: Option<&str>,
    body: &[u8],
    now: u64,
    want: Result<Delivery, SigError>,
) {
    let got = verifier(secrets).verify(header, body, now);
    assert_eq!(got, want, "header {header:?} at {now}");
}

fn hex_of(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

#[test]
fn hmac_matches_rfc_4231() {
    // Test case 2 (short key) and test case 6 (key longer than the block, hashed first).
    let cases: [(&[u8], &[u8], &str); 2] = [
        (
            b"Jefe",
            b"what do ya want for nothing?",
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
        ),
        (
            &[0xaa; 131],
            b"Test Using Larger Than Block-Size Key - Hash Key First",
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
        ),
    ];
    for (key, data, want) in cases {
        let mut m = keyed(key);
        m.update(data);
        assert_eq!(hex_of(&m.finalize().into_bytes()), want);
    }
}

#[test]
fn exact_block_key_is_used_as_is() {
    // A 64-byte key must not be hashed; compare with a key one byte longer, which is.
    let key = [7u8; 64];
    let long = [7u8; 65];
    assert_ne!(sign(&key, BODY, NOW), sign(&long, BODY, NOW));
}

#[test]
fn sign_has_the_documented_shape() {
    let header = sign(b"s3cret", BODY, NOW);
    let (t, v1) = header
        .split_once(",v1=")
        .unwrap_or_else(|| panic!("{header}"));
    assert_eq!(t, format!("t={NOW}"));
    assert_eq!(v1.len(), 64);
    assert!(v1
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
}

#[test]
fn good_signature_is_accepted() {
    check(
        "s3cret",
        Some(&sign(b"s3cret", BODY, NOW)),
        BODY,
        NOW,
        Ok(Delivery::First),
    );
    check(
        "s3cret",
        Some(&sign(b"s3cret", b"", NOW)),
        b"",
        NOW,
        Ok(Delivery::First),
    );
}

#[test]
fn tampered_body_is_mismatch() {
    let header = sign(b"s3cret", BODY, NOW);
    check(
        "s3cret",
        Some(&header),
        br#"{"tenant":"43","tags":["rooms"]}"#,
        NOW,
        Err(SigError::Mismatch),
    );
}

#[test]
fn tampered_timestamp_is_mismatch() {
    let header = sign(b"s3cret", BODY, NOW).replacen(&NOW.to_string(), &(NOW + 1).to_string(), 1);
    check("s3cret", Some(&header), BODY, NOW, Err(SigError::Mismatch));
}

#[test]
fn wrong_secret_is_mismatch() {
    check(
        "other",
        Some(&sign(b"s3cret", BODY, NOW)),
        BODY,
        NOW,
        Err(SigError::Mismatch),
    );
}

#[test]
fn second_secret_in_rotation_is_accepted() {
    check(
        "new-one, old-one",
        Some(&sign(b"old-one", BODY, NOW)),
        BODY,
        NOW,
        Ok(Delivery::First),
    );
    check(
        "new-one, old-one",
        Some(&sign(b"new-one", BODY, NOW)),
        BODY,
        NOW,
        Ok(Delivery::First),
    );
}

#[test]
fn sign_all_carries_every_secret() {
    let sender = Secrets::parse("a,b").unwrap_or_else(|e| panic!("{e}"));
    let header = sender.sign_all(BODY, NOW);
    assert_eq!(header.matches("v1=").count(), 2);
    check("b", Some(&header), BODY, NOW, Ok(Delivery::First));
    check("a", Some(&header), BODY, NOW, Ok(Delivery::First));
}

#[test]
fn window_edges_are_inclusive() {
    let window = DEFAULT_WINDOW.as_secs();
    let header = sign(b"k", BODY, NOW);
    check("k", Some(&header), BODY, NOW + window, Ok(Delivery::First));
    check("k", Some(&header), BODY, NOW - window, Ok(Delivery::First));
}

#[test]
fn too_old_is_expired() {
    let header = sign(b"k", BODY, NOW);
    check(
        "k",
        Some(&header),
        BODY,
        NOW + DEFAULT_WINDOW.as_secs() + 1,
        Err(SigError::Expired),
    );
    check(
        "k",
        Some(&sign(b"k", BODY, 0)),
        BODY,
        NOW,
        Err(SigError::Expired),
    );
}

#[test]
fn too_far_in_the_future_is_expired() {
    let header = sign(b"k", BODY, NOW);
    check(
        "k",
        Some(&header),
        BODY,
        NOW - DEFAULT_WINDOW.as_secs() - 1,
        Err(SigError::Expired),
    );
    check(
        "k",
        Some(&sign(b"k", BODY, u64::MAX)),
        BODY,
        NOW,
        Err(SigError::Expired),
    );
}

#[test]
fn a_repeat_is_accepted_and_reported() {
    let v = verifier("k");
    let header = sign(b"k", BODY, NOW);
    assert_eq!(v.verify(Some(&header), BODY, NOW), Ok(Delivery::First));
    assert_eq!(
        v.verify(Some(&header), BODY, NOW + 10),
        Ok(Delivery::Repeat)
    );
    // The same signature spelled differently is still the same message.
    let upper = header
        .replace("v1=", "V1=")
        .to_uppercase()
        .replace("V1=", "v1=")
        .replace("T=", "t=");
    assert_eq!(v.verify(Some(&upper), BODY, NOW + 11), Ok(Delivery::Repeat));
    let padded = format!(
        "t={NOW}, v1={}, v1={}",
        "0".repeat(64),
        &header[header.len() - 64..]
    );
    assert_eq!(
        v.verify(Some(&padded), BODY, NOW + 12),
        Ok(Delivery::Repeat)
    );
    // A fresh timestamp is a fresh signature.
    assert_eq!(
        v.verify(Some(&sign(b"k", BODY, NOW + 1)), BODY, NOW + 12),
        Ok(Delivery::First)
    );
    assert_eq!(v.remembered(), 2);
}

#[test]
fn refused_requests_are_not_remembered() {
    let v = verifier("k");
    let header = sign(b"k", BODY, NOW);
    assert_eq!(
        v.verify(Some(&header), b"tampered", NOW),
        Err(SigError::Mismatch)
    );
    assert_eq!(v.remembered(), 0);
    assert_eq!(v.verify(Some(&header), BODY, NOW), Ok(Delivery::First));
}

#[test]
fn expired_signatures_are_pruned() {
    let v = verifier("k");
    let window = DEFAULT_WINDOW.as_secs();
    for i in 0..5 {
        let header = sign(b"k", BODY, NOW + i);
        assert_eq!(v.verify(Some(&header), BODY, NOW + i), Ok(Delivery::First));
    }
    assert_eq!(v.remembered(), 5);
    // At NOW + window + 3, the ones signed at NOW..=NOW+2 have left the window.
    let header = sign(b"k", BODY, NOW + window + 3);
    assert_eq!(
        v.verify(Some(&header), BODY, NOW + window + 3),
        Ok(Delivery::First)
    );
    assert_eq!(v.remembered(), 3);
}

#[test]
fn full_memory_forgets_the_oldest_and_refuses_nothing() {
    let secrets = Secrets::parse("k").unwrap_or_else(|e| panic!("{e}"));
    let v = Verifier::with_cap(secrets, DEFAULT_WINDOW, 3);
    for i in 0..3 {
        assert_eq!(
            v.verify(Some(&sign(b"k", BODY, NOW + i)), BODY, NOW),
            Ok(Delivery::First)
        );
    }
    // A fourth message is accepted; the oldest (NOW) is forgotten to make room.
    assert_eq!(
        v.verify(Some(&sign(b"k", BODY, NOW + 3)), BODY, NOW),
        Ok(Delivery::First)
    );
    assert_eq!(v.remembered(), 3);
    assert_eq!(
        v.verify(Some(&sign(b"k", BODY, NOW + 3)), BODY, NOW),
        Ok(Delivery::Repeat)
    );
    // The forgotten one is still applied, only counted as a first delivery again.
    assert_eq!(
        v.verify(Some(&sign(b"k", BODY, NOW)), BODY, NOW),
        Ok(Delivery::First)
    );
    assert_eq!(v.remembered(), 3);
}

/// Issue 8, "Invalidations were lost": the legacy body carries nothing that changes between two
/// saves of the same tenant and resource, and the timestamp has one-second resolution, so two
/// saves within one second send the same signed message. Both must be accepted.
#[test]
fn issue_8_the_same_legacy_message_twice_in_one_second_is_accepted_twice() {
    let v = verifier("k");
    let body = br#"{"organization_id": 42, "resource_type": "rooms"}"#;
    let header = sign(b"k", body, NOW);
    assert_eq!(v.verify(Some(&header), body, NOW), Ok(Delivery::First));
    assert_eq!(v.verify(Some(&header), body, NOW), Ok(Delivery::Repeat));
    // Sent again late in the window (a retry), it is still applied.
    let edge = NOW + DEFAULT_WINDOW.as_secs();
    assert_eq!(v.verify(Some(&header), body, edge), Ok(Delivery::Repeat));
    // Past the window it is refused, repeat or not.
    assert_eq!(
        v.verify(Some(&header), body, edge + 1),
        Err(SigError::Expired)
    );
}

#[test]
fn missing_header_is_missing() {
    check("k", None, BODY, NOW, Err(SigError::Missing));
    check("k", Some(""), BODY, NOW, Err(SigError::Missing));
    check("k", Some("  "), BODY, NOW, Err(SigError::Missing));
}

#[test]
fn malformed_headers_are_malformed() {
    let good = sign(b"k", BODY, NOW);
    let v1 = &good[good.len() - 64..];
    let cases = [
        format!("v1={v1}"),                                   // missing t
        format!("t={NOW}"),                                   // missing v1
        format!("t={NOW},v1="),                               // empty v1
        format!("t={NOW},v1={}", "zz".repeat(32)),            // non-hex
        format!("t={NOW},v1={}", &v1[..62]),                  // short
        format!("t={NOW},v1={v1}00"),                         // long
        format!("t=abc,v1={v1}"),                             // non-numeric t
        format!("t=-5,v1={v1}"),                              // signed t
        format!("t=+{NOW},v1={v1}"),                          // signed t
        format!("t=0{NOW},v1={v1}"),                          // leading zero
        format!("t=,v1={v1}"),                                // empty t
        format!("t=99999999999999999999999,v1={v1}"),         // overflow
        format!("t={NOW},t={NOW},v1={v1}"),                   // duplicated t
        format!("t={NOW},v1={v1},"),                          // trailing comma
        format!("t={NOW};v1={v1}"),                           // wrong separator
        format!("t={NOW},{v1}"),                              // item without key
        format!("t={NOW}{}", format!(",v1={v1}").repeat(17)), // too many candidates
    ];
    for header in &cases {
        check("k", Some(header), BODY, NOW, Err(SigError::Malformed));
    }
}

#[test]
fn several_v1_values_where_one_matches() {
    let good = sign(b"k", BODY, NOW);
    let v1 = &good[good.len() - 64..];
    let other = sign(b"other", BODY, NOW);
    let other_v1 = &other[other.len() - 64..];
    let header = format!("t={NOW},v1={other_v1},v1={v1}");
    check("k", Some(&header), BODY, NOW, Ok(Delivery::First));
    let header = format!("t={NOW},v1={other_v1},v1={other_v1}");
    check("k", Some(&header), BODY, NOW, Err(SigError::Mismatch));
}

#[test]
fn spacing_and_unknown_schemes_are_tolerated() {
    let good = sign(b"k", BODY, NOW);
    let v1 = &good[good.len() - 64..];
    check(
        "k",
        Some(&format!(" v1={v1} , v0=abc, t={NOW} ")),
        BODY,
        NOW,
        Ok(Delivery::First),
    );
    check(
        "k",
        Some(&format!("t={NOW},v1={}", v1.to_uppercase())),
        BODY,
        NOW,
        Ok(Delivery::First),
    );
}

#[test]
fn secrets_list_is_trimmed_and_needs_one() {
    let parsed = |s: &str| Secrets::parse(s).map(|s| s.0);
    assert_eq!(parsed(" a , b,,"), Ok(vec![b"a".to_vec(), b"b".to_vec()]));
    assert_eq!(parsed("a\n"), Ok(vec![b"a".to_vec()]));
    assert_eq!(parsed(""), Err("no webhook secret given".to_owned()));
    assert_eq!(parsed(" , ,\n"), Err("no webhook secret given".to_owned()));
}

#[test]
fn secrets_are_never_printed() {
    let secrets = Secrets::parse("hunter2-secret,other-secret").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(format!("{secrets:?}"), "Secrets(2 redacted)");
    let v = Verifier::new(secrets, DEFAULT_WINDOW);
    let printed = format!("{v:?}");
    assert!(
        !printed.contains("hunter2") && !printed.contains("other-secret"),
        "{printed}"
    );
    for e in [
        SigError::Missing,
        SigError::Malformed,
        SigError::Expired,
        SigError::Mismatch,
    ] {
        assert!(!e.to_string().contains("hunter2"));
        assert!(!e.as_str().is_empty());
    }
}

/// During a secret rotation the backend signs with every secret (`sign_all`). The same request
/// resent with only the second `v1` value is the same message, so it counts as a repeat: the
/// memory is keyed by what was signed, not by the MAC that matched.
#[test]
fn a_resend_with_another_secrets_mac_during_rotation_is_a_repeat() {
    let v = verifier("new-one, old-one");
    let sender = Secrets::parse("new-one, old-one").unwrap_or_else(|e| panic!("{e}"));
    let header = sender.sign_all(BODY, NOW);
    assert_eq!(v.verify(Some(&header), BODY, NOW), Ok(Delivery::First));
    // The same request, keeping only the MAC under the old secret.
    let old_only = format!("t={NOW},v1={}", &header[header.len() - 64..]);
    assert_eq!(
        v.verify(Some(&old_only), BODY, NOW + 1),
        Ok(Delivery::Repeat)
    );
}
