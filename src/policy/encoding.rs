//! Content codings: `Accept-Encoding` read into a few buckets, and what may be compressed.
//!
//! Clients spell `Accept-Encoding` in countless ways (`gzip, deflate, br`, `br;q=1.0, gzip;q=0.8,
//! *;q=0.1`, ...). Keyed by the raw value, one URI would hold a variant per spelling. cachegate
//! reads the header into a [`Bucket`] instead: the variant key holds the bucket, and a fill sends
//! the bucket's canonical `Accept-Encoding` ([`Bucket::accept_encoding`]), which lists only codings
//! every client of the bucket accepts. So what is stored under a bucket is something any client
//! of that bucket can decode, and a URI holds at most [`Bucket::ALL`]`.len()` encodings.
//!
//! The buckets form a ladder; each accepts everything below it:
//!
//! | bucket | the client accepts | fills send |
//! |---|---|---|
//! | `br` | `br` and `gzip` | `Accept-Encoding: br, gzip` |
//! | `gzip` | `gzip` | `Accept-Encoding: gzip` |
//! | `identity` | neither (or sent no `Accept-Encoding`) | `Accept-Encoding: identity` |
//!
//! Reading the header (RFC 9110 §12.5.3): codings are case-insensitive, whitespace around items
//! and parameters is ignored, `x-gzip` is `gzip`; a coding is accepted when its `q` is above 0,
//! and one not listed takes the `q` of `*` (if any), except `identity`, which is acceptable unless
//! refused. A coding listed twice keeps its lowest `q` (never send what a client may refuse); an
//! item with a malformed `q` is ignored; unknown codings are ignored. A positive `q` is a
//! preference the bucket does not keep: a client that accepts `br` and `gzip` may get either.
//! A client that refuses `identity` but accepts none of the buckets' codings falls to `identity`,
//! as RFC 9110 §12.5.3 has a server answer when nothing acceptable is available.
//!
//! A client accepting `br` but not `gzip` is rare; it falls to `identity`. `zstd` and `deflate`
//! are not buckets: clients that send them also send `gzip` (and `br`), and every added rung
//! would be one more copy of each URI for backends that do not produce it.

use super::cacheability::list_items;
use http::header::{
    ACCEPT_ENCODING, ACCEPT_RANGES, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE,
    ETAG, VARY,
};
use http::{HeaderMap, HeaderValue, StatusCode};

/// A content coding cachegate stores and can produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Coding {
    Gzip,
    Br,
}

impl Coding {
    /// The token in `Content-Encoding`.
    pub fn as_str(self) -> &'static str {
        match self {
            Coding::Gzip => "gzip",
            Coding::Br => "br",
        }
    }
}

/// Which encodings a client can take, as one of a few classes (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Bucket {
    /// No content coding.
    Identity,
    /// `gzip`.
    Gzip,
    /// `br` and `gzip`.
    Br,
}

impl Bucket {
    /// Every bucket, lowest rung first.
    pub const ALL: [Bucket; 3] = [Bucket::Identity, Bucket::Gzip, Bucket::Br];

    /// A stable name, for readable keys and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Bucket::Identity => "identity",
            Bucket::Gzip => "gzip",
            Bucket::Br => "br",
        }
    }

    /// The `Accept-Encoding` a fill for this bucket sends: only codings every client of the
    /// bucket accepts. [`bucket_of`] reads it back as this bucket.
    pub fn accept_encoding(self) -> HeaderValue {
        HeaderValue::from_static(match self {
            Bucket::Identity => "identity",
            Bucket::Gzip => "gzip",
            Bucket::Br => "br, gzip",
        })
    }

    /// Whether every client of the bucket can decode this coding.
    pub fn accepts(self, coding: Coding) -> bool {
        match coding {
            Coding::Gzip => self >= Bucket::Gzip,
            Coding::Br => self == Bucket::Br,
        }
    }

    /// The coding cachegate compresses with for this bucket, when it compresses.
    pub fn preferred(self) -> Option<Coding> {
        match self {
            Bucket::Identity => None,
            Bucket::Gzip => Some(Coding::Gzip),
            Bucket::Br => Some(Coding::Br),
        }
    }

    /// A byte for key digests.
    pub fn tag(self) -> u8 {
        self as u8
    }
}

/// A `q` value in thousandths: 0 (refused) to 1000.
pub type Quality = u16;

/// What one request's `Accept-Encoding` says about the codings cachegate knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Accepted {
    gzip: Option<Quality>,
    br: Option<Quality>,
    identity: Option<Quality>,
    star: Option<Quality>,
}

impl Accepted {
    /// Reads every line of a request's `Accept-Encoding`, as one list. Does not allocate.
    pub fn parse<'a>(lines: impl IntoIterator<Item = &'a [u8]>) -> Accepted {
        let mut accepted = Accepted::default();
        for line in lines {
            for item in line.split(|&b| b == b',') {
                let Some((coding, q)) = parse_item(item) else {
                    continue;
                };
                let slot = if coding.eq_ignore_ascii_case(b"gzip")
                    || coding.eq_ignore_ascii_case(b"x-gzip")
                {
                    &mut accepted.gzip
                } else if coding.eq_ignore_ascii_case(b"br") {
                    &mut accepted.br
                } else if coding.eq_ignore_ascii_case(b"identity") {
                    &mut accepted.identity
                } else if coding == b"*" {
                    &mut accepted.star
                } else {
                    continue;
                };
                // Listed twice: the lowest q, so nothing a client may refuse is ever sent.
                *slot = Some(slot.map_or(q, |old| old.min(q)));
            }
        }
        accepted
    }

    /// The `q` of a coding: its own, else that of `*`, else refused.
    pub fn quality(&self, coding: Coding) -> Quality {
        let own = match coding {
            Coding::Gzip => self.gzip,
            Coding::Br => self.br,
        };
        own.or(self.star).unwrap_or(0)
    }

    /// Whether the client takes an unencoded answer: unless refused by `identity;q=0`, or by
    /// `*;q=0` without `identity` listed.
    pub fn identity_acceptable(&self) -> bool {
        self.identity.or(self.star).is_none_or(|q| q > 0)
    }

    /// The highest bucket whose codings the client all accepts.
    pub fn bucket(&self) -> Bucket {
        let gzip = self.quality(Coding::Gzip) > 0;
        let br = self.quality(Coding::Br) > 0;
        match (gzip, br) {
            (true, true) => Bucket::Br,
            (true, false) => Bucket::Gzip,
            _ => Bucket::Identity,
        }
    }
}

/// One list item: its coding token and `q` (1 when absent); `None` for an empty item or a
/// malformed `q`.
fn parse_item(item: &[u8]) -> Option<(&[u8], Quality)> {
    let mut parts = item.split(|&b| b == b';');
    let coding = trim(parts.next()?);
    if coding.is_empty() {
        return None;
    }
    let mut q = None;
    for param in parts {
        let param = trim(param);
        let (name, value) = match param.iter().position(|&b| b == b'=') {
            Some(at) => (trim(&param[..at]), trim(&param[at + 1..])),
            None => (param, &b""[..]),
        };
        if name.eq_ignore_ascii_case(b"q") && q.is_none() {
            q = Some(parse_quality(value)?);
        }
    }
    Some((coding, q.unwrap_or(1000)))
}

/// `qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )`, in thousandths.
pub fn parse_quality(text: &[u8]) -> Option<Quality> {
    let (whole, fraction) = match text.iter().position(|&b| b == b'.') {
        Some(at) => (&text[..at], Some(&text[at + 1..])),
        None => (text, None),
    };
    let fraction = fraction.unwrap_or(b"");
    if fraction.len() > 3 || !fraction.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut thousandths: Quality = 0;
    for i in 0..3 {
        let digit = fraction.get(i).map_or(0, |b| Quality::from(b - b'0'));
        thousandths = thousandths * 10 + digit;
    }
    match whole {
        b"0" => Some(thousandths),
        b"1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// The bucket of a request: from its `Accept-Encoding`, `identity` when it sends none (many
/// scripts and tools that cannot decode send nothing). Does not allocate.
pub fn bucket_of(request: &HeaderMap) -> Bucket {
    let mut lines = request.get_all(ACCEPT_ENCODING).iter().peekable();
    if lines.peek().is_none() {
        return Bucket::Identity;
    }
    Accepted::parse(lines.map(HeaderValue::as_bytes)).bucket()
}

/// A response's content coding as far as serving it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoded {
    /// No `Content-Encoding` (or only `identity`).
    Identity,
    /// One coding cachegate knows.
    Known(Coding),
    /// Another coding, or several stacked.
    Other,
}

/// Reads a response's `Content-Encoding`.
pub fn encoded(response: &HeaderMap) -> Encoded {
    let mut found = Encoded::Identity;
    for item in list_items(response, &CONTENT_ENCODING) {
        let coding = match item.name {
            n if n.eq_ignore_ascii_case(b"identity") => continue,
            n if n.eq_ignore_ascii_case(b"gzip") || n.eq_ignore_ascii_case(b"x-gzip") => {
                Coding::Gzip
            }
            n if n.eq_ignore_ascii_case(b"br") => Coding::Br,
            _ => return Encoded::Other,
        };
        if found != Encoded::Identity {
            return Encoded::Other;
        }
        found = Encoded::Known(coding);
    }
    found
}

/// Whether a response filled for a bucket may be stored for it: every client of the bucket can
/// decode it. A backend that answers `Accept-Encoding: gzip` with `br` (or `zstd`) is not stored.
pub fn serves(bucket: Bucket, response: &HeaderMap) -> bool {
    match encoded(response) {
        Encoded::Identity => true,
        Encoded::Known(coding) => bucket.accepts(coding),
        Encoded::Other => false,
    }
}

/// Whether a response's `Vary` names `Accept-Encoding` (or is `*`).
pub fn varies_on_encoding(response: &HeaderMap) -> bool {
    list_items(response, &VARY).any(|item| item.is("accept-encoding") || item.is("*"))
}

/// What cachegate does to a stored-to-be response on a route with `compress`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Plan {
    /// The answer now depends on `Accept-Encoding`: `Vary` must say so, in every bucket.
    pub vary: bool,
    /// Compress the body with this coding.
    pub encode: Option<Coding>,
}

/// Bodies shorter than this are never compressed: the saving is a few bytes and the encoded
/// form of a short JSON body can be larger than the body.
pub const MIN_COMPRESS_SIZE: usize = 512;

/// Whether cachegate compresses a response the backend sent unencoded, filled for `bucket`.
///
/// Only successful answers with a textual media type (`text/*`, JSON, XML, JavaScript, SVG and
/// their `+json` / `+xml` kin), without `Content-Encoding` or `Cache-Control: no-transform`,
/// of at least [`MIN_COMPRESS_SIZE`] bytes. The decision does not depend on the bucket, only
/// the coding does: every bucket's variant of a URI agrees on `Vary`.
pub fn plan(bucket: Bucket, status: StatusCode, response: &HeaderMap, len: usize) -> Plan {
    let eligible = status.is_success()
        && status != StatusCode::NO_CONTENT
        && status != StatusCode::PARTIAL_CONTENT
        && len >= MIN_COMPRESS_SIZE
        && !response.contains_key(CONTENT_ENCODING)
        && !list_items(response, &CACHE_CONTROL).any(|item| item.is("no-transform"))
        && response
            .get(CONTENT_TYPE)
            .is_some_and(|value| compressible_type(value.as_bytes()));
    if !eligible {
        return Plan::default();
    }
    Plan {
        vary: true,
        encode: bucket.preferred(),
    }
}

/// Textual media types, worth compressing.
pub fn compressible_type(content_type: &[u8]) -> bool {
    let essence = content_type
        .split(|&b| b == b';')
        .next()
        .map(trim)
        .unwrap_or_default();
    let Ok(essence) = std::str::from_utf8(essence) else {
        return false;
    };
    let essence = essence.to_ascii_lowercase();
    let Some((kind, sub)) = essence.split_once('/') else {
        return false;
    };
    kind == "text"
        || sub.ends_with("+json")
        || sub.ends_with("+xml")
        || matches!(
            (kind, sub),
            ("application", "json")
                | ("application", "xml")
                | ("application", "javascript")
                | ("application", "x-javascript")
                | ("application", "ecmascript")
                | ("application", "x-ndjson")
                | ("application", "graphql-response+json")
                | ("image", "svg+xml")
        )
}

/// Adds `Accept-Encoding` to a response's `Vary`, unless it is there already (or `Vary: *`).
pub fn add_vary(response: &mut HeaderMap) {
    if !varies_on_encoding(response) {
        response.append(VARY, HeaderValue::from_static("Accept-Encoding"));
    }
}

/// The head of a response cachegate compressed: `Content-Encoding` set, the length left to
/// whoever knows the new body, a strong `ETag` made weak (the encoded bytes differ from those
/// it named, RFC 9110 §8.8.1), and `Accept-Ranges` dropped (ranges would be of other bytes).
pub fn encoded_head(response: &mut HeaderMap, coding: Coding) {
    response.insert(CONTENT_ENCODING, HeaderValue::from_static(coding.as_str()));
    response.remove(CONTENT_LENGTH);
    response.remove(ACCEPT_RANGES);
    if let Some(etag) = response.get(ETAG) {
        if etag.as_bytes().first() == Some(&b'"') {
            let mut weak = Vec::with_capacity(etag.len() + 2);
            weak.extend_from_slice(b"W/");
            weak.extend_from_slice(etag.as_bytes());
            match HeaderValue::from_bytes(&weak) {
                Ok(weak) => {
                    response.insert(ETAG, weak);
                }
                Err(_) => {
                    response.remove(ETAG);
                }
            }
        }
    }
    add_vary(response);
}

#[cfg(test)]
mod tests;
