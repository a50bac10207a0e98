//! The stored form of an entry's body and headers: one block of exactly their size.
//!
//! A response read from a connection arrives as slices of the connection's read buffer: the
//! header values hyper parses, and a body that came in one chunk. Kept as they are, each entry
//! would hold a whole buffer of at least 8 KiB alive, whatever its own size, so the store would
//! cost several times what it counts (issue 12 measured 7.3 KB of RSS per entry of 971 bytes).
//! Copying once per fill makes an entry own exactly what it stores.
//!
//! The headers are not kept as an `http::HeaderMap`: a map costs about a hundred bytes of
//! buckets and index per header beyond the header's own bytes, more than a small entry's body.
//! They are encoded after the body in the same block, a few bytes per header beyond its name
//! and value ([`StoredHeaders`]), and a hit builds the map it answers with from them: the
//! values are slices of the block (a reference count each), the standard names constants.
//! Where the body fills its allocator size class, or nearly, the records are kept in a small
//! allocation of their own instead ([`Content`]), which a hit shares as one `Bytes` while it
//! answers.

use bytes::Bytes;
use http::header::{self, HeaderName};

use super::{allocation, SHARED_BYTES_HANDLE};
use http::{HeaderMap, HeaderValue, StatusCode};

/// Names written as one byte: the index in this table, plus one (zero marks a name written
/// out). The order is part of the encoding of an entry in memory only: shared tiers encode
/// headers by name. Besides the standard names, those that API frameworks and their
/// middleware commonly send: a name in the table costs a hit nothing, one written out is
/// copied into a name of its own on every hit.
static STANDARD: [HeaderName; 89] = [
    header::ACCEPT,
    header::ACCEPT_CHARSET,
    header::ACCEPT_ENCODING,
    header::ACCEPT_LANGUAGE,
    header::ACCEPT_RANGES,
    header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
    header::ACCESS_CONTROL_ALLOW_HEADERS,
    header::ACCESS_CONTROL_ALLOW_METHODS,
    header::ACCESS_CONTROL_ALLOW_ORIGIN,
    header::ACCESS_CONTROL_EXPOSE_HEADERS,
    header::ACCESS_CONTROL_MAX_AGE,
    header::ACCESS_CONTROL_REQUEST_HEADERS,
    header::ACCESS_CONTROL_REQUEST_METHOD,
    header::AGE,
    header::ALLOW,
    header::ALT_SVC,
    header::AUTHORIZATION,
    header::CACHE_CONTROL,
    header::CACHE_STATUS,
    header::CDN_CACHE_CONTROL,
    header::CONNECTION,
    header::CONTENT_DISPOSITION,
    header::CONTENT_ENCODING,
    header::CONTENT_LANGUAGE,
    header::CONTENT_LENGTH,
    header::CONTENT_LOCATION,
    header::CONTENT_RANGE,
    header::CONTENT_SECURITY_POLICY,
    header::CONTENT_SECURITY_POLICY_REPORT_ONLY,
    header::CONTENT_TYPE,
    header::COOKIE,
    header::DNT,
    header::DATE,
    header::ETAG,
    header::EXPECT,
    header::EXPIRES,
    header::FORWARDED,
    header::FROM,
    header::HOST,
    header::IF_MATCH,
    header::IF_MODIFIED_SINCE,
    header::IF_NONE_MATCH,
    header::IF_RANGE,
    header::IF_UNMODIFIED_SINCE,
    header::LAST_MODIFIED,
    header::LINK,
    header::LOCATION,
    header::MAX_FORWARDS,
    header::ORIGIN,
    header::PRAGMA,
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::PUBLIC_KEY_PINS,
    header::RANGE,
    header::REFERER,
    header::REFERRER_POLICY,
    header::REFRESH,
    header::RETRY_AFTER,
    header::SERVER,
    header::SET_COOKIE,
    header::STRICT_TRANSPORT_SECURITY,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::USER_AGENT,
    header::UPGRADE,
    header::VARY,
    header::VIA,
    header::WARNING,
    header::WWW_AUTHENTICATE,
    header::X_CONTENT_TYPE_OPTIONS,
    header::X_DNS_PREFETCH_CONTROL,
    header::X_FRAME_OPTIONS,
    header::X_XSS_PROTECTION,
    HeaderName::from_static("cross-origin-embedder-policy"),
    HeaderName::from_static("cross-origin-opener-policy"),
    HeaderName::from_static("cross-origin-resource-policy"),
    HeaderName::from_static("permissions-policy"),
    HeaderName::from_static("server-timing"),
    HeaderName::from_static("x-powered-by"),
    HeaderName::from_static("x-request-id"),
    HeaderName::from_static("x-correlation-id"),
    HeaderName::from_static("x-runtime"),
    HeaderName::from_static("x-total-count"),
    HeaderName::from_static("x-ratelimit-limit"),
    HeaderName::from_static("x-ratelimit-remaining"),
    HeaderName::from_static("x-ratelimit-reset"),
    HeaderName::from_static("ratelimit-policy"),
    HeaderName::from_static("surrogate-key"),
];

/// The high bit of a record's first byte: the value is sensitive (`HeaderValue::is_sensitive`).
const SENSITIVE: u8 = 0x80;

/// An entry's headers, encoded after the body in its block or in an allocation of their own:
/// a view of the records, which costs nothing to take.
///
/// Each header is one record, in the order of the map it was made from: a byte holding the
/// name's place in the table of standard names plus one (zero for a name written out, then its
/// length in one byte and its bytes; the high bit marks a sensitive value), the value's length
/// (LEB128) and the value's bytes.
#[derive(Clone, Copy)]
pub struct StoredHeaders<'a> {
    /// The encoded records.
    records: &'a [u8],
    /// What a value taken from them shares.
    source: Source<'a>,
}

/// Where the records of a [`StoredHeaders`] are kept.
#[derive(Clone, Copy)]
enum Source<'a> {
    /// In the block, from `start` to its end: a value is a slice of the block.
    Block { block: &'a Bytes, start: usize },
    /// In an allocation of their own, shared (once per iteration) to give values out.
    Own(&'a SplitRecords),
}

impl<'a> StoredHeaders<'a> {
    /// Number of headers (a name with two values counts twice). Walks the records' framing
    /// only: no name or value is built.
    pub fn len(&self) -> usize {
        let mut count = 0;
        let mut at = 0;
        while let Some(frame) = frame(self.records, at) {
            count += 1;
            at = frame.value.end;
        }
        count
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The encoded records (names, values and their few bytes of framing).
    pub fn encoded(&self) -> &'a [u8] {
        self.records
    }

    /// The bytes of the encoded records.
    pub fn encoded_len(&self) -> usize {
        self.encoded().len()
    }

    /// The headers in their stored order. A standard name is a constant and a value a slice
    /// of the block (or of the records' own allocation, which an iteration shares once: one
    /// small allocation); only a name outside the standard table is copied.
    pub fn iter(&self) -> Records<'a> {
        Records {
            records: self.records,
            at: 0,
            values: match self.source {
                Source::Block { block, start } => Values::Block { block, start },
                Source::Own(own) => Values::Own { own, shared: None },
            },
        }
    }

    /// The first value of `name`.
    pub fn get(&self, name: &HeaderName) -> Option<HeaderValue> {
        self.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// Whether a header named `name` is stored.
    pub fn contains_key(&self, name: &HeaderName) -> bool {
        self.iter().any(|(n, _)| n == *name)
    }

    /// The headers as a map (what a response carries).
    pub fn to_map(&self) -> HeaderMap {
        let mut map = HeaderMap::with_capacity(self.len());
        for (name, value) in self.iter() {
            map.append(name, value);
        }
        map
    }
}

impl PartialEq for StoredHeaders<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.encoded() == other.encoded()
    }
}

impl Eq for StoredHeaders<'_> {}

impl std::fmt::Debug for StoredHeaders<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

/// The headers of a [`StoredHeaders`], decoded one record at a time.
pub struct Records<'a> {
    records: &'a [u8],
    at: usize,
    values: Values<'a>,
}

/// What the values a [`Records`] gives out are slices of.
enum Values<'a> {
    /// The block, whose records start at `start`.
    Block { block: &'a Bytes, start: usize },
    /// The records' own allocation, shared at the first value.
    Own {
        own: &'a SplitRecords,
        shared: Option<Bytes>,
    },
}

impl Values<'_> {
    /// The bytes at `range` of the records, sharing what holds them.
    fn slice(&mut self, range: std::ops::Range<usize>) -> Bytes {
        match self {
            Values::Block { block, start } => block.slice(*start + range.start..*start + range.end),
            Values::Own { own, shared } => shared.get_or_insert_with(|| own.share()).slice(range),
        }
    }
}

/// One record's framing: where its written-out name is (`None` for a table name, whose code
/// is the record's first byte less the sensitive bit), where its value is, and where the next
/// record starts.
struct Frame {
    first: u8,
    name: Option<std::ops::Range<usize>>,
    value: std::ops::Range<usize>,
}

/// The framing of the record at `at`, without building its name or value.
fn frame(bytes: &[u8], mut at: usize) -> Option<Frame> {
    let first = *bytes.get(at)?;
    at += 1;
    let name = if first & !SENSITIVE == 0 {
        let len = usize::from(*bytes.get(at)?);
        let range = at + 1..at + 1 + len;
        bytes.get(range.clone())?;
        at = range.end;
        Some(range)
    } else {
        None
    };
    let (len, used) = read_len(bytes.get(at..)?)?;
    at += used;
    let end = at.checked_add(len).filter(|end| *end <= bytes.len())?;
    Some(Frame {
        first,
        name,
        value: at..end,
    })
}

impl Iterator for Records<'_> {
    type Item = (HeaderName, HeaderValue);

    fn next(&mut self) -> Option<Self::Item> {
        let Frame { first, name, value } = frame(self.records, self.at)?;
        let name = match name {
            Some(range) => HeaderName::from_bytes(&self.records[range]).ok()?,
            None => STANDARD.get(usize::from(first & !SENSITIVE) - 1)?.clone(),
        };
        // The records were written from valid values, so the check never refuses one; if it
        // did, the iteration ends rather than answer a header that was not stored.
        let mut header = HeaderValue::from_maybe_shared(self.values.slice(value.clone())).ok()?;
        header.set_sensitive(first & SENSITIVE != 0);
        self.at = value.end;
        Some((name, header))
    }
}

fn write_len(out: &mut Vec<u8>, mut len: usize) {
    while len >= 0x80 {
        out.push((len as u8 & 0x7f) | 0x80);
        len >>= 7;
    }
    out.push(len as u8);
}

fn read_len(bytes: &[u8]) -> Option<(usize, usize)> {
    let mut len = 0usize;
    for (i, b) in bytes.iter().enumerate().take(4) {
        len |= usize::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((len, i + 1));
        }
    }
    None
}

/// The record of one header, appended to `out`.
fn write_record(out: &mut Vec<u8>, name: &HeaderName, value: &HeaderValue) {
    let sensitive = if value.is_sensitive() { SENSITIVE } else { 0 };
    match STANDARD.iter().position(|s| s == name) {
        Some(i) => out.push((i as u8 + 1) | sensitive),
        None => {
            // Names longer than a byte can count are refused by every HTTP parser in front of
            // this one (and by hyper); if one reaches here it is truncated, not lost silently
            // as a shorter valid name: `HeaderName::from_bytes` on the cut name may differ, so
            // such a header is dropped instead.
            let bytes = name.as_str().as_bytes();
            let Ok(len) = u8::try_from(bytes.len()) else {
                return;
            };
            out.push(sensitive);
            out.push(len);
            out.extend_from_slice(bytes);
        }
    }
    write_len(out, value.as_bytes().len());
    out.extend_from_slice(value.as_bytes());
}

/// The encoded size of `headers`' records.
fn records_len(headers: &HeaderMap) -> usize {
    headers
        .iter()
        .map(|(name, value)| {
            let name = if STANDARD.contains(name) {
                1
            } else {
                2 + name.as_str().len()
            };
            let len = value.as_bytes().len();
            name + len + (usize::BITS - len.max(1).leading_zeros()).div_ceil(7) as usize
        })
        .sum()
}

/// A response as stored: its status, and its body and headers in one block with the body
/// first and the header records after it, or, where the allocator would round that block up
/// by more than a second allocation costs (a body that fills one of its size classes, or
/// nearly), the body in a block and the records in an allocation of their own. Cloning costs
/// a reference count an allocation.
#[derive(Clone, Default)]
pub struct Content {
    /// The body, then (unless `split` holds them) the records.
    block: Bytes,
    /// The records, when they have an allocation of their own.
    split: Option<SplitRecords>,
    /// Where the body ends in `block` (all of it when the records are split).
    body_len: u32,
    status: StatusCode,
}

/// Header records in an allocation of their own: a reference count, a length and the bytes,
/// behind a thin pointer.
///
/// They are not a `Bytes` block: that would cost a handle (four words, boxed: the entry has
/// no room for it) and a shared header of its own, about 64 bytes an entry more. A hit that
/// takes values from them shares the allocation as one `Bytes` for as long as the values live
/// ([`SplitRecords::share`]), one small allocation per iteration of the headers.
#[derive(Clone)]
pub(crate) struct SplitRecords(triomphe::ThinArc<(), u8>);

impl SplitRecords {
    fn new(records: &[u8]) -> SplitRecords {
        SplitRecords(triomphe::ThinArc::from_header_and_slice((), records))
    }

    /// The records as one `Bytes`, which keeps the allocation alive while any slice of it
    /// does.
    fn share(&self) -> Bytes {
        Bytes::from_owner(self.clone())
    }

    fn len(&self) -> usize {
        self.0.slice.len()
    }
}

impl AsRef<[u8]> for SplitRecords {
    fn as_ref(&self) -> &[u8] {
        &self.0.slice
    }
}

/// Bytes before a [`SplitRecords`]' records: its reference count and length.
pub(crate) const SPLIT_RECORDS_HEADER: usize = 16;

impl Content {
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The body: a slice of the block (a reference count, never a copy).
    pub fn body(&self) -> Bytes {
        self.block.slice(..self.body_len())
    }

    /// Bytes of the body.
    pub fn body_len(&self) -> usize {
        if self.split.is_some() {
            self.block.len()
        } else {
            self.body_len as usize
        }
    }

    /// The headers, read from their records.
    pub fn headers(&self) -> StoredHeaders<'_> {
        match &self.split {
            Some(own) => StoredHeaders {
                records: own.as_ref(),
                source: Source::Own(own),
            },
            None => {
                let start = self.body_len as usize;
                StoredHeaders {
                    records: self.block.get(start..).unwrap_or_default(),
                    source: Source::Block {
                        block: &self.block,
                        start,
                    },
                }
            }
        }
    }

    /// What the allocations take, each as the allocator rounds it: the block with its shared
    /// handle, and split records with their count and length.
    pub(crate) fn cost(&self) -> u64 {
        let block = match self.block.len() {
            0 => 0,
            len => allocation(len) + allocation(SHARED_BYTES_HANDLE),
        };
        block
            + self
                .split
                .as_ref()
                .map_or(0, |own| allocation(SPLIT_RECORDS_HEADER + own.len()))
    }
}

impl PartialEq for Content {
    fn eq(&self, other: &Self) -> bool {
        self.status == other.status
            && self.body() == other.body()
            && self.headers() == other.headers()
    }
}

impl Eq for Content {}

impl std::fmt::Debug for Content {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Content")
            .field("status", &self.status)
            .field("body", &self.body())
            .field("headers", &self.headers())
            .finish()
    }
}

/// A response of `status`: copies `headers` and the body (its chunks, in order) into blocks
/// of exactly their size (see [`Content`]). The body and every value the headers give out are slices of those
/// blocks, so nothing refers to the buffers they came from.
///
/// Each block's shared handle is made here rather than on the first hit, so that an entry's
/// size does not change once it is stored.
pub fn compact<'a, B>(status: StatusCode, headers: &HeaderMap, body: B) -> Content
where
    B: IntoIterator<Item = &'a Bytes>,
    B::IntoIter: Clone,
{
    let body = body.into_iter();
    let body_len: usize = body.clone().map(Bytes::len).sum();
    let records_len = records_len(headers);
    let fits = u32::try_from(body_len).is_ok();
    let joint = fits
        && (body_len == 0 || records_len == 0 || {
            let one = allocation(body_len + records_len);
            let two = allocation(body_len) + allocation(SPLIT_RECORDS_HEADER + records_len);
            one <= two
        });
    let mut data = Vec::with_capacity(body_len + if joint { records_len } else { 0 });
    for chunk in body {
        data.extend_from_slice(chunk);
    }
    let mut records = Vec::with_capacity(if joint { 0 } else { records_len });
    let out = if joint { &mut data } else { &mut records };
    for (name, value) in headers {
        write_record(out, name, value);
    }
    Content {
        block: Bytes::from(data).slice(..),
        split: (!joint).then(|| SplitRecords::new(&records)),
        body_len: if joint { body_len as u32 } else { 0 },
        status,
    }
}

/// A `200 OK` of `headers` and no body, for tests and tools that build entries by hand.
pub fn stored(headers: &HeaderMap) -> Content {
    compact(StatusCode::OK, headers, [])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 12: an entry kept the connection's read buffer alive through its body and header
    /// values.
    #[test]
    fn the_copy_keeps_every_header_and_the_body() {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        headers.append("x-a", HeaderValue::from_static("1"));
        headers.append("x-a", HeaderValue::from_static(""));
        let mut secret = HeaderValue::from_static("s");
        secret.set_sensitive(true);
        headers.insert("x-secret", secret);
        headers.insert("etag", HeaderValue::from_static("\"v1\""));
        let long = "x".repeat(300);
        headers.insert("x-long", HeaderValue::from_str(&long).unwrap());
        let buffer = Bytes::from(b"....{\"a\":1}....".to_vec());
        let chunks = [buffer.slice(4..8), buffer.slice(8..11)];
        let content = compact(StatusCode::OK, &headers, &chunks);
        let (copy, body) = (content.headers(), content.body());
        assert_eq!(copy.to_map(), headers);
        assert_eq!(copy.len(), headers.len());
        assert_eq!(copy.encoded_len(), records_len(&headers));
        assert_eq!(&body[..], b"{\"a\":1}");
        assert!(copy
            .get(&HeaderName::from_static("x-secret"))
            .unwrap()
            .is_sensitive());
        assert_eq!(copy.get(&header::ETAG).unwrap(), "\"v1\"");
        assert!(copy.contains_key(&header::CONTENT_TYPE));
        assert!(!copy.contains_key(&header::LOCATION));
        // Nothing points into the source buffer any more.
        let source = buffer.as_ptr_range();
        assert!(!source.contains(&body.as_ptr()));
        for value in copy.to_map().values() {
            assert!(!source.contains(&value.as_bytes().as_ptr()));
        }
    }

    fn json_headers(len: usize) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
        headers
    }

    /// A body that fills its size class exactly would be rounded up to the next class with the
    /// records after it: the records get an allocation of their own, and the cost says so.
    #[test]
    fn a_body_that_fills_its_class_keeps_the_records_apart() {
        for len in [1024usize, 8192, 65536] {
            let headers = json_headers(len);
            let body = Bytes::from(vec![b'x'; len]);
            let content = compact(StatusCode::OK, &headers, [&body]);
            assert!(content.split.is_some(), "{len}");
            assert_eq!(content.body(), body);
            assert_eq!(content.body_len(), len);
            assert_eq!(content.headers().to_map(), headers);
            let records = records_len(&headers);
            assert_eq!(
                content.cost(),
                allocation(len)
                    + allocation(SHARED_BYTES_HANDLE)
                    + allocation(SPLIT_RECORDS_HEADER + records)
            );
            // A value is a slice of the records' allocation, not a copy, and keeps it alive.
            let records_at = content.headers().encoded().as_ptr_range();
            let (name, value) = content.headers().iter().next().unwrap();
            assert_eq!(name, header::CONTENT_TYPE);
            assert!(records_at.contains(&value.as_bytes().as_ptr()));
            drop(content);
            assert_eq!(value, "application/json");
        }
        // A body with room in its class keeps them after it, in one block.
        for len in [100usize, 1000, 8000, 60_000] {
            let headers = json_headers(len);
            let content = compact(StatusCode::OK, &headers, [&Bytes::from(vec![b'x'; len])]);
            assert!(content.split.is_none(), "{len}");
            assert_eq!(content.body_len(), len);
            assert_eq!(content.headers().to_map(), headers);
            let block = len + records_len(&headers);
            assert_eq!(
                content.cost(),
                allocation(block) + allocation(SHARED_BYTES_HANDLE)
            );
        }
    }

    #[test]
    fn an_empty_response_makes_an_empty_block() {
        let content = compact(StatusCode::OK, &HeaderMap::new(), &[]);
        let (copy, body) = (content.headers(), content.body());
        assert!(copy.is_empty());
        assert!(copy.to_map().is_empty());
        assert!(body.is_empty());
    }

    #[test]
    fn every_standard_name_is_one_byte_and_the_table_has_room_for_the_flag() {
        assert!(STANDARD.len() < usize::from(SENSITIVE));
        for name in &STANDARD {
            let mut map = HeaderMap::new();
            map.insert(name.clone(), HeaderValue::from_static("v"));
            assert_eq!(stored(&map).headers().encoded_len(), 3, "{name}");
            assert_eq!(stored(&map).headers().to_map(), map);
        }
    }

    #[test]
    fn lengths_round_trip() {
        for len in [0, 1, 127, 128, 300, 16_383, 16_384, 70_000] {
            let mut out = Vec::new();
            write_len(&mut out, len);
            assert_eq!(read_len(&out), Some((len, out.len())));
        }
    }
}
