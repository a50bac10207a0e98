//! Tenant extraction: finds the tenant id of a request in the place its route names.
//!
//! A tenant id is 1 to 64 characters of `[A-Za-z0-9._-]` after decoding. Anything else is
//! refused, never truncated or guessed, because the id selects whose data a cached entry is.

use std::borrow::Cow;
use std::net::{Ipv4Addr, Ipv6Addr};

use http::HeaderMap;

use crate::policy::cache_key::hex_value;
use crate::policy::route::TenantSource;
use crate::policy::Captures;

/// The longest tenant id accepted.
pub const MAX_TENANT_LEN: usize = 64;

/// What the tenant of one request turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tenant<'a> {
    /// The route is not keyed by tenant (source `None`).
    Shared,
    /// A valid tenant id, borrowed from the request when no decoding was needed.
    Id(Cow<'a, str>),
    /// The route names a source but the request does not carry it.
    Missing,
    /// The request carries a value that is not a valid tenant id.
    Invalid(InvalidTenant),
}

impl Tenant<'_> {
    /// The tenant id, when there is one.
    pub fn id(&self) -> Option<&str> {
        match self {
            Tenant::Id(id) => Some(id),
            _ => None,
        }
    }
}

/// Why a tenant value was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InvalidTenant {
    /// The header or query parameter appears more than once.
    Repeated,
    /// The value is a comma-separated list.
    List,
    /// The value is longer than [`MAX_TENANT_LEN`].
    TooLong,
    /// The value holds a character outside `[A-Za-z0-9._-]` (whitespace and controls included).
    BadChar,
    /// The value is empty.
    Empty,
    /// The value holds a `%` not followed by two hex digits.
    BadPercent,
}

impl InvalidTenant {
    /// A stable kebab-case label for logs and metrics.
    pub fn as_str(&self) -> &'static str {
        match self {
            InvalidTenant::Repeated => "repeated",
            InvalidTenant::List => "list",
            InvalidTenant::TooLong => "too-long",
            InvalidTenant::BadChar => "bad-char",
            InvalidTenant::Empty => "empty",
            InvalidTenant::BadPercent => "bad-percent",
        }
    }
}

impl std::fmt::Display for InvalidTenant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The parts of a request a tenant can be read from.
#[derive(Debug, Clone, Copy)]
pub struct TenantInputs<'a> {
    /// The request headers.
    pub headers: &'a HeaderMap,
    /// The Host header (or URI authority), as received.
    pub host: Option<&'a str>,
    /// The captures of the matched route pattern.
    pub captures: &'a Captures<'a, 'a>,
    /// The raw query string, without the `?`.
    pub query: Option<&'a str>,
}

/// Finds the tenant of a request. Does not allocate unless the value had to be decoded.
pub fn extract<'a>(source: &TenantSource, req: &TenantInputs<'a>) -> Tenant<'a> {
    let found = match source {
        TenantSource::None => return Tenant::Shared,
        TenantSource::Header(name) => from_header(req.headers, name),
        TenantSource::Path(name) => match req.captures.get(name) {
            Some(value) => decode(value, false),
            None => return Tenant::Missing,
        },
        TenantSource::Query(name) => from_query(req.query, name),
        TenantSource::Host => from_host(req.host),
    };
    match found {
        Ok(Some(id)) => Tenant::Id(id),
        Ok(None) => Tenant::Missing,
        Err(invalid) => Tenant::Invalid(invalid),
    }
}

/// Checks a decoded value against the tenant id rule.
fn check(value: &[u8]) -> Result<(), InvalidTenant> {
    if value.is_empty() {
        return Err(InvalidTenant::Empty);
    }
    // A list is reported as such even when it is also too long: it says what the client did.
    if value.contains(&b',') {
        return Err(InvalidTenant::List);
    }
    if value.len() > MAX_TENANT_LEN {
        return Err(InvalidTenant::TooLong);
    }
    if !value
        .iter()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err(InvalidTenant::BadChar);
    }
    Ok(())
}

/// Turns checked bytes (ASCII only) into a string.
fn checked_str(value: &[u8]) -> Result<&str, InvalidTenant> {
    check(value)?;
    std::str::from_utf8(value).map_err(|_| InvalidTenant::BadChar)
}

type Found<'a> = Result<Option<Cow<'a, str>>, InvalidTenant>;

fn from_header<'a>(headers: &'a HeaderMap, name: &http::HeaderName) -> Found<'a> {
    let mut values = headers.get_all(name).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    // Two header lines could be joined into a list by one hop and not by another.
    if values.next().is_some() {
        return Err(InvalidTenant::Repeated);
    }
    checked_str(value.as_bytes()).map(|id| Some(Cow::Borrowed(id)))
}

/// Percent-decodes a value (and `+` as space in query components), then checks it.
fn decode(raw: &str, plus_is_space: bool) -> Found<'_> {
    let bytes = raw.as_bytes();
    let needs_decoding = bytes.contains(&b'%') || (plus_is_space && bytes.contains(&b'+'));
    if !needs_decoding {
        return checked_str(bytes).map(|id| Some(Cow::Borrowed(id)));
    }
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hi = bytes.get(i + 1).copied().and_then(hex_value);
                let lo = bytes.get(i + 2).copied().and_then(hex_value);
                let (Some(hi), Some(lo)) = (hi, lo) else {
                    return Err(InvalidTenant::BadPercent);
                };
                decoded.push(hi << 4 | lo);
                i += 3;
            }
            b'+' if plus_is_space => {
                decoded.push(b' ');
                i += 1;
            }
            b => {
                decoded.push(b);
                i += 1;
            }
        }
    }
    check(&decoded)?;
    String::from_utf8(decoded)
        .map(|id| Some(Cow::Owned(id)))
        .map_err(|_| InvalidTenant::BadChar)
}

/// Compares a raw query component with a plain name, decoding on the fly.
fn name_matches(raw: &str, name: &str) -> bool {
    let raw = raw.as_bytes();
    let mut want = name.bytes();
    let mut i = 0;
    while i < raw.len() {
        let b = match raw[i] {
            b'%' => {
                let hi = raw.get(i + 1).copied().and_then(hex_value);
                let lo = raw.get(i + 2).copied().and_then(hex_value);
                let (Some(hi), Some(lo)) = (hi, lo) else {
                    return false;
                };
                i += 3;
                hi << 4 | lo
            }
            b'+' => {
                i += 1;
                b' '
            }
            b => {
                i += 1;
                b
            }
        };
        if want.next() != Some(b) {
            return false;
        }
    }
    want.next().is_none()
}

fn from_query<'a>(query: Option<&'a str>, name: &str) -> Found<'a> {
    let Some(query) = query else {
        return Ok(None);
    };
    let mut found = None;
    for piece in query.split('&').filter(|p| !p.is_empty()) {
        let (raw_name, raw_value) = piece.split_once('=').unwrap_or((piece, ""));
        if name_matches(raw_name, name) {
            // Backends disagree on which of two values wins, so neither is trusted.
            if found.is_some() {
                return Err(InvalidTenant::Repeated);
            }
            found = Some(raw_value);
        }
    }
    match found {
        Some(raw) => decode(raw, true),
        None => Ok(None),
    }
}

fn from_host(host: Option<&str>) -> Found<'_> {
    let Some(host) = host else {
        return Ok(None);
    };
    // A bracketed IPv6 literal never names a tenant.
    if host.starts_with('[') {
        return Ok(None);
    }
    let host = match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.parse::<Ipv4Addr>().is_ok() || host.parse::<Ipv6Addr>().is_ok() {
        return Ok(None);
    }
    // `example.com` is the API itself, not a tenant subdomain.
    if host.split('.').count() < 3 {
        return Ok(None);
    }
    let label = host.split('.').next().unwrap_or(host);
    check(label.as_bytes())?;
    if label.bytes().any(|b| b.is_ascii_uppercase()) {
        Ok(Some(Cow::Owned(label.to_ascii_lowercase())))
    } else {
        Ok(Some(Cow::Borrowed(label)))
    }
}

#[cfg(test)]
mod tests;
