//! Entity tags (RFC 9110 §8.8.3): parsing, the weak and strong comparisons (§8.8.3.2), and the
//! strong tag cachegate derives from a body's digest when the backend sends none.

use http::HeaderValue;

/// One entity tag: `"xyz"` or `W/"xyz"`; `opaque` is what is between the quotes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntityTag<'a> {
    pub weak: bool,
    pub opaque: &'a [u8],
}

impl EntityTag<'_> {
    /// Weak comparison: the opaque tags match, whatever their weakness.
    pub fn weak_eq(&self, other: &EntityTag<'_>) -> bool {
        self.opaque == other.opaque
    }

    /// Strong comparison: both strong and the opaque tags match.
    pub fn strong_eq(&self, other: &EntityTag<'_>) -> bool {
        !self.weak && !other.weak && self.opaque == other.opaque
    }
}

fn is_etagc(b: u8) -> bool {
    b == 0x21 || (0x23..=0x7e).contains(&b) || b >= 0x80
}

/// Parses one entity tag at the start of `s`; returns it and the rest.
fn parse_one(s: &[u8]) -> Option<(EntityTag<'_>, &[u8])> {
    let (weak, s) = match s.strip_prefix(b"W/") {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let s = s.strip_prefix(b"\"")?;
    let end = s.iter().position(|&b| b == b'"')?;
    let opaque = &s[..end];
    if !opaque.iter().all(|&b| is_etagc(b)) {
        return None;
    }
    Some((EntityTag { weak, opaque }, &s[end + 1..]))
}

/// A single entity tag, such as an `ETag` value.
pub fn parse(value: &[u8]) -> Option<EntityTag<'_>> {
    match parse_one(value.trim_ascii())? {
        (tag, rest) if rest.trim_ascii().is_empty() => Some(tag),
        _ => None,
    }
}

/// An `If-None-Match` / `If-Match` value: `*` or a list of entity tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagList<'a> {
    Any,
    Tags(Vec<EntityTag<'a>>),
}

/// Reads a list of entity tags (commas may occur inside a tag). An unreadable member ends the
/// list: what was read before it is kept.
pub fn parse_list(value: &[u8]) -> TagList<'_> {
    if value.trim_ascii() == b"*" {
        return TagList::Any;
    }
    let mut tags = Vec::new();
    let mut rest = value;
    loop {
        rest = rest.trim_ascii_start();
        while let Some(r) = rest.strip_prefix(b",") {
            rest = r.trim_ascii_start();
        }
        if rest.is_empty() {
            break;
        }
        match parse_one(rest) {
            Some((tag, r)) => {
                tags.push(tag);
                rest = r;
            }
            None => break,
        }
    }
    TagList::Tags(tags)
}

/// The strong entity tag cachegate gives a body the backend sent no `ETag` for: the first
/// 16 bytes of its blake3 digest, `"b3-<hex>"`. Equal bodies get equal tags in every instance.
pub fn digest(body: &[u8]) -> HeaderValue {
    digest_chunks([body])
}

/// [`digest`] over a body in chunks.
pub fn digest_chunks<'a>(chunks: impl IntoIterator<Item = &'a [u8]>) -> HeaderValue {
    let mut hasher = blake3::Hasher::new();
    for chunk in chunks {
        hasher.update(chunk);
    }
    let hash = hasher.finalize();
    let mut text = String::with_capacity(38);
    text.push_str("\"b3-");
    for b in &hash.as_bytes()[..16] {
        text.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
        text.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
    }
    text.push('"');
    HeaderValue::from_str(&text).unwrap_or(HeaderValue::from_static("\"b3\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(weak: bool, opaque: &str) -> EntityTag<'_> {
        EntityTag {
            weak,
            opaque: opaque.as_bytes(),
        }
    }

    #[test]
    fn tags_are_parsed_strong_and_weak() {
        assert_eq!(parse(b"\"xyzzy\""), Some(tag(false, "xyzzy")));
        assert_eq!(parse(b" W/\"xyzzy\" "), Some(tag(true, "xyzzy")));
        assert_eq!(parse(b"\"\""), Some(tag(false, "")));
        assert_eq!(parse(b"xyzzy"), None);
        assert_eq!(parse(b"w/\"x\""), None);
        assert_eq!(parse(b"\"x\" junk"), None);
    }

    #[test]
    fn rfc9110_8_8_3_2_comparison_table() {
        // ETag 1, ETag 2, strong, weak
        let table = [
            (tag(true, "1"), tag(true, "1"), false, true),
            (tag(true, "1"), tag(true, "2"), false, false),
            (tag(true, "1"), tag(false, "1"), false, true),
            (tag(false, "1"), tag(false, "1"), true, true),
        ];
        for (a, b, strong, weak) in table {
            assert_eq!(a.strong_eq(&b), strong, "{a:?} {b:?}");
            assert_eq!(a.weak_eq(&b), weak, "{a:?} {b:?}");
        }
    }

    #[test]
    fn lists_hold_commas_inside_tags() {
        assert_eq!(parse_list(b" * "), TagList::Any);
        assert_eq!(
            parse_list(b"\"a,b\", W/\"c\",,\"d\""),
            TagList::Tags(vec![tag(false, "a,b"), tag(true, "c"), tag(false, "d")])
        );
        assert_eq!(
            parse_list(b"\"a\", bogus, \"d\""),
            TagList::Tags(vec![tag(false, "a")])
        );
    }

    #[test]
    fn the_digest_tag_is_strong_and_stable() {
        let a = digest(b"hello");
        assert_eq!(a, digest(b"hello"));
        assert_ne!(a, digest(b"hello!"));
        assert_eq!(a, digest_chunks([&b"hel"[..], &b"lo"[..]]));
        let parsed = parse(a.as_bytes()).expect("a valid tag");
        assert!(!parsed.weak);
        assert_eq!(parsed.opaque.len(), 3 + 32);
    }
}
