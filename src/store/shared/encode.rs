//! The stored form of an entry in the shared tier: a versioned compact binary encoding.
//!
//! Layout (integers little-endian, strings and byte strings prefixed by a `u32` length):
//! magic `CGE1`, `u32` [`FORMAT_VERSION`], flags (bit 0: body compressed), `u16` status,
//! `u64` stored-at, `u64` fresh-until, `u64` stale-while-revalidate-until, `u64`
//! stale-if-error-until, `u64` revalidate-until, `u64` route, tenant (`u8` 0 shared / 1 one + id),
//! target, readable key, 32-byte key, variant (`u8` 0 none / 1, then `u8` by-user, `u32`
//! count and names), tags (`u32` count + encoded tags), headers (`u32` count + name + value), and the
//! body: raw bytes, or `u64` raw length + zstd frame.
//!
//! Decoding never panics: anything truncated, trailing, oversized or invalid is an error.
//! A decoded entry owns its bytes (nothing borrows the buffer Redis returned).

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

use crate::clock::UnixMillis;
use crate::policy::freshness::Lifetimes;
use crate::policy::tag::Tag;
use crate::policy::vary::Selection;
use crate::policy::Key;
use crate::store::{
    compact, extra_tags, CachedResponse, EntryParts, EntryText, TenantScope, FORMAT_VERSION,
};

const ENTRY_MAGIC: &[u8; 4] = b"CGE1";
const VARY_MAGIC: &[u8; 4] = b"CGV1";
const COMPRESSED: u8 = 1;
/// zstd's fastest level: a 16 KiB body in about 12 µs.
const ZSTD_LEVEL: i32 = 1;
/// The largest body a stored value may claim to decompress to.
const MAX_BODY: u64 = 512 << 20;

/// Why a stored value does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DecodeError(&'static str);

/// Encodes `entry`; bodies longer than `compress_above` are compressed.
pub fn encode_entry(entry: &CachedResponse, compress_above: usize) -> Vec<u8> {
    let body = entry.body();
    let mut out = Writer(Vec::with_capacity(body.len() + 256));
    out.bytes(ENTRY_MAGIC);
    out.u32(FORMAT_VERSION);
    let compressed = if body.len() > compress_above {
        zstd::bulk::compress(&body, ZSTD_LEVEL)
            .ok()
            .filter(|c| c.len() < body.len())
    } else {
        None
    };
    out.u8(if compressed.is_some() { COMPRESSED } else { 0 });
    out.u16(entry.status().as_u16());
    let lifetimes = entry.lifetimes();
    out.u64(entry.stored_at().0);
    out.u64(lifetimes.fresh_until.0);
    out.u64(lifetimes.stale_while_revalidate_until.0);
    out.u64(lifetimes.stale_if_error_until.0);
    out.u64(lifetimes.revalidate_until.0);
    out.u64(entry.route as u64);
    match &entry.tenant {
        TenantScope::Shared => out.u8(0),
        TenantScope::One(id) => {
            out.u8(1);
            out.str(id);
        }
    }
    out.str(entry.target());
    out.str(entry.readable_key());
    out.bytes(&entry.key.0);
    match &entry.variant {
        None => out.u8(0),
        Some(selection) => {
            out.u8(1);
            out.selection(selection);
        }
    }
    let tags = entry.tags();
    out.u32(tags.len() as u32);
    for tag in &tags {
        out.str(&tag.tag.to_string());
    }
    let headers = entry.headers();
    out.u32(headers.len() as u32);
    for (name, value) in headers.iter() {
        out.str(name.as_str());
        out.blob(value.as_bytes());
    }
    match compressed {
        Some(frame) => {
            out.u64(body.len() as u64);
            out.blob(&frame);
        }
        None => out.blob(&body),
    }
    out.0
}

/// Decodes what [`encode_entry`] wrote (by this format version only).
pub fn decode_entry(data: &[u8]) -> Result<CachedResponse, DecodeError> {
    let mut r = Reader(data);
    if r.take(4)? != ENTRY_MAGIC {
        return Err(DecodeError("not an entry"));
    }
    if r.u32()? != FORMAT_VERSION {
        return Err(DecodeError("another format version"));
    }
    let flags = r.u8()?;
    if flags & !COMPRESSED != 0 {
        return Err(DecodeError("unknown flags"));
    }
    let status = StatusCode::from_u16(r.u16()?).map_err(|_| DecodeError("bad status"))?;
    let stored_at = UnixMillis(r.u64()?);
    let fresh_until = UnixMillis(r.u64()?);
    let stale_while_revalidate_until = UnixMillis(r.u64()?);
    let stale_if_error_until = UnixMillis(r.u64()?);
    let revalidate_until = UnixMillis(r.u64()?);
    let route = u32::try_from(r.u64()?).map_err(|_| DecodeError("bad route"))?;
    let tenant = match r.u8()? {
        0 => TenantScope::Shared,
        1 => TenantScope::one(r.str()?),
        _ => return Err(DecodeError("bad tenant")),
    };
    let target = r.str()?;
    let text = EntryText::new(target, r.str()?);
    let mut key = [0u8; 32];
    key.copy_from_slice(r.take(32)?);
    let variant = match r.u8()? {
        0 => None,
        1 => Some(Arc::new(r.selection()?)),
        _ => return Err(DecodeError("bad variant")),
    };
    let count = r.count()?;
    let mut tags = Vec::with_capacity(count);
    for _ in 0..count {
        tags.push(Tag::parse(r.str()?));
    }
    let count = r.count()?;
    let mut headers = HeaderMap::with_capacity(count);
    for _ in 0..count {
        let name = HeaderName::from_bytes(r.blob()?).map_err(|_| DecodeError("bad header name"))?;
        let value =
            HeaderValue::from_bytes(r.blob()?).map_err(|_| DecodeError("bad header value"))?;
        headers.append(name, value);
    }
    let body = if flags & COMPRESSED != 0 {
        let len = r.u64()?;
        if len > MAX_BODY {
            return Err(DecodeError("body too large"));
        }
        let frame = r.blob()?;
        let body = zstd::bulk::decompress(frame, len as usize)
            .map_err(|_| DecodeError("bad compressed body"))?;
        if body.len() as u64 != len {
            return Err(DecodeError("compressed body of the wrong length"));
        }
        Bytes::from(body)
    } else {
        Bytes::copy_from_slice(r.blob()?)
    };
    if !r.0.is_empty() {
        return Err(DecodeError("trailing bytes"));
    }
    // The entry owns one block of its own, as a fill's does.
    Ok(CachedResponse::from(EntryParts {
        content: compact(status, &headers, std::iter::once(&body)),
        stored_at,
        lifetimes: Lifetimes {
            fresh_until,
            stale_while_revalidate_until,
            stale_if_error_until,
            revalidate_until,
        },
        extra_tags: extra_tags(&tags),
        tenant,
        text,
        key: Key(key),
        variant,
        route,
    }))
}

/// Encodes a vary record: what a primary key's responses vary on.
pub fn encode_selection(selection: &Selection) -> Vec<u8> {
    let mut out = Writer(Vec::with_capacity(64));
    out.bytes(VARY_MAGIC);
    out.u32(FORMAT_VERSION);
    out.selection(selection);
    out.0
}

pub fn decode_selection(data: &[u8]) -> Result<Selection, DecodeError> {
    let mut r = Reader(data);
    if r.take(4)? != VARY_MAGIC {
        return Err(DecodeError("not a vary record"));
    }
    if r.u32()? != FORMAT_VERSION {
        return Err(DecodeError("another format version"));
    }
    let selection = r.selection()?;
    if !r.0.is_empty() {
        return Err(DecodeError("trailing bytes"));
    }
    Ok(selection)
}

struct Writer(Vec<u8>);

impl Writer {
    fn bytes(&mut self, b: &[u8]) {
        self.0.extend_from_slice(b);
    }
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u16(&mut self, v: u16) {
        self.bytes(&v.to_le_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.bytes(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.bytes(&v.to_le_bytes());
    }
    fn blob(&mut self, b: &[u8]) {
        self.u32(b.len() as u32);
        self.bytes(b);
    }
    fn str(&mut self, s: &str) {
        self.blob(s.as_bytes());
    }
    fn selection(&mut self, selection: &Selection) {
        self.u8(u8::from(selection.by_user));
        self.u32(selection.headers.len() as u32);
        for name in &selection.headers {
            self.str(name.as_str());
        }
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.0.len() < n {
            return Err(DecodeError("truncated"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }
    fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(self.array()?))
    }
    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    /// A count of items that each take at least 4 bytes, checked against what is left so a
    /// corrupt count cannot make a huge allocation.
    fn count(&mut self) -> Result<usize, DecodeError> {
        let n = self.u32()? as usize;
        if n > self.0.len() / 4 {
            return Err(DecodeError("count beyond the value"));
        }
        Ok(n)
    }
    fn blob(&mut self) -> Result<&'a [u8], DecodeError> {
        let n = self.u32()? as usize;
        self.take(n)
    }
    fn str(&mut self) -> Result<&'a str, DecodeError> {
        std::str::from_utf8(self.blob()?).map_err(|_| DecodeError("bad utf-8"))
    }
    fn selection(&mut self) -> Result<Selection, DecodeError> {
        let by_user = match self.u8()? {
            0 => false,
            1 => true,
            _ => return Err(DecodeError("bad selection")),
        };
        let count = self.count()?;
        let mut headers = Vec::with_capacity(count);
        for _ in 0..count {
            headers.push(
                HeaderName::from_bytes(self.blob()?).map_err(|_| DecodeError("bad header name"))?,
            );
        }
        Ok(Selection { headers, by_user })
    }
}

#[cfg(test)]
mod tests;
