//! Cache keys: request-target normalization and the digest of everything that selects a stored response.
//!
//! The normalized target is both what is keyed and what is forwarded upstream, so every rewrite
//! here must mean exactly the same thing to the backend. Anything whose meaning could differ
//! between the proxy and a backend (dot segments, `//`, broken escapes) is rejected, never guessed.

use std::borrow::Cow;

use http::{HeaderMap, HeaderName};

use crate::policy::Key;

/// A normalized origin-form request target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target<'a> {
    /// The normalized path; always starts with `/`.
    pub path: Cow<'a, str>,
    /// The canonical query: encoded pairs sorted by name, joined with `&`; "" when there is none.
    pub query: Cow<'a, str>,
}

impl Target<'_> {
    /// The target as sent upstream: `/p?q`, or `/p` when the query is empty.
    pub fn path_and_query(&self) -> String {
        if self.query.is_empty() {
            self.path.to_string()
        } else {
            let mut out = String::with_capacity(self.path.len() + 1 + self.query.len());
            out.push_str(&self.path);
            out.push('?');
            out.push_str(&self.query);
            out
        }
    }

    /// Detaches the target from the request it was borrowed from.
    pub fn into_owned(self) -> Target<'static> {
        Target {
            path: Cow::Owned(self.path.into_owned()),
            query: Cow::Owned(self.query.into_owned()),
        }
    }
}

/// Why a request target was refused instead of normalized.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ambiguous {
    /// The path does not start with `/`, or holds a `?` or `#`.
    NotOrigin,
    /// A `.` or `..` segment, also when spelled with `%2E`.
    DotSegment,
    /// An empty segment (`//`) anywhere but at the end of the path.
    EmptySegment,
    /// A `%` not followed by two hex digits.
    BadPercent,
    /// A literal backslash, which some backends read as `/`.
    Backslash,
    /// A raw control, space or non-ASCII byte in the path.
    ControlOrNonAscii,
    /// `%00` in the path.
    EncodedNul,
    /// `%2F` or `%5C` in the path: cachegate never reads them as separators, but Django (WSGI
    /// `PATH_INFO`) and ASGI servers decode them before routing, so `/a%2Fb` and `/a/b` may be
    /// one resource at the backend, and a write to one spelling could not evict the other.
    EncodedSeparator,
}

impl Ambiguous {
    /// A stable kebab-case label for logs and metrics.
    pub fn as_str(&self) -> &'static str {
        match self {
            Ambiguous::NotOrigin => "not-origin",
            Ambiguous::DotSegment => "dot-segment",
            Ambiguous::EmptySegment => "empty-segment",
            Ambiguous::BadPercent => "bad-percent",
            Ambiguous::Backslash => "backslash",
            Ambiguous::ControlOrNonAscii => "control-or-non-ascii",
            Ambiguous::EncodedNul => "encoded-nul",
            Ambiguous::EncodedSeparator => "encoded-separator",
        }
    }
}

impl std::fmt::Display for Ambiguous {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Normalizes a request path and raw query into the form that is keyed and forwarded.
///
/// Borrows from the input whenever it is already canonical, which is the common case.
pub fn normalize<'a>(path: &'a str, query: Option<&'a str>) -> Result<Target<'a>, Ambiguous> {
    let path = normalize_path(path)?;
    let query = match query {
        Some(q) => normalize_query(q)?,
        None => Cow::Borrowed(""),
    };
    Ok(Target { path, query })
}

/// The value of one hex digit, either case.
pub(crate) fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// RFC 3986 unreserved characters: the only ones whose escapes may be decoded without changing meaning.
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

/// Builds an output that stays a borrow of its source until the first byte that changes.
struct Lazy<'a> {
    src: &'a str,
    buf: Option<String>,
    pos: usize,
}

impl<'a> Lazy<'a> {
    fn new(src: &'a str) -> Self {
        Self {
            src,
            buf: None,
            pos: 0,
        }
    }

    /// Copies the next `n` source bytes unchanged; callers only pass ASCII runs.
    fn keep(&mut self, n: usize) {
        if let Some(buf) = &mut self.buf {
            buf.push_str(&self.src[self.pos..self.pos + n]);
        }
        self.pos += n;
    }

    /// Consumes the next `n` source bytes and writes the ASCII byte `b` instead.
    fn replace_byte(&mut self, n: usize, b: u8) {
        self.owned().push(char::from(b));
        self.pos += n;
    }

    /// Consumes the next `n` source bytes and writes `%XX` for `b` instead.
    fn replace_escape(&mut self, n: usize, b: u8) {
        push_escape(self.owned(), b);
        self.pos += n;
    }

    fn owned(&mut self) -> &mut String {
        let (src, pos) = (self.src, self.pos);
        self.buf.get_or_insert_with(|| {
            let mut s = String::with_capacity(src.len());
            s.push_str(&src[..pos]);
            s
        })
    }

    fn written(&self) -> &str {
        match &self.buf {
            Some(buf) => buf,
            None => &self.src[..self.pos],
        }
    }

    fn finish(self) -> Cow<'a, str> {
        match self.buf {
            Some(buf) => Cow::Owned(buf),
            None => Cow::Borrowed(&self.src[..self.pos]),
        }
    }
}

fn push_escape(out: &mut String, b: u8) {
    out.push('%');
    out.push(char::from(HEX_UPPER[usize::from(b >> 4)]));
    out.push(char::from(HEX_UPPER[usize::from(b & 0x0f)]));
}

/// Decodes the escape at `bytes[i]` (which is `%`), or fails when it is malformed.
fn escape_at(bytes: &[u8], i: usize) -> Result<u8, Ambiguous> {
    let hi = bytes.get(i + 1).copied().and_then(hex_value);
    let lo = bytes.get(i + 2).copied().and_then(hex_value);
    match (hi, lo) {
        (Some(hi), Some(lo)) => Ok(hi << 4 | lo),
        _ => Err(Ambiguous::BadPercent),
    }
}

/// Checks a finished path segment (in its normalized spelling).
fn check_segment(segment: &str, last: bool) -> Result<(), Ambiguous> {
    if segment == "." || segment == ".." {
        return Err(Ambiguous::DotSegment);
    }
    // A trailing slash (`/faculty/`) is meaningful to Django and so is kept; an empty segment
    // anywhere else is collapsed by some servers and not by others.
    if segment.is_empty() && !last {
        return Err(Ambiguous::EmptySegment);
    }
    Ok(())
}

fn normalize_path(path: &str) -> Result<Cow<'_, str>, Ambiguous> {
    let bytes = path.as_bytes();
    if bytes.first() != Some(&b'/') {
        return Err(Ambiguous::NotOrigin);
    }
    let mut out = Lazy::new(path);
    out.keep(1);
    let mut segment_start = 1;
    let mut i = 1;
    while i < bytes.len() {
        match bytes[i] {
            b'/' => {
                check_segment(&out.written()[segment_start..], false)?;
                out.keep(1);
                segment_start = out.written().len();
                i += 1;
            }
            b'%' => {
                let value = escape_at(bytes, i)?;
                if value == 0 {
                    return Err(Ambiguous::EncodedNul);
                }
                if value == b'/' || value == b'\\' {
                    return Err(Ambiguous::EncodedSeparator);
                }
                if is_unreserved(value) {
                    out.replace_byte(3, value);
                } else if bytes[i + 1..i + 3].iter().any(u8::is_ascii_lowercase) {
                    out.replace_escape(3, value);
                } else {
                    // Reserved characters stay escaped: decoding them could change the meaning.
                    out.keep(3);
                }
                i += 3;
            }
            b'\\' => return Err(Ambiguous::Backslash),
            b'?' | b'#' => return Err(Ambiguous::NotOrigin),
            b if b <= b' ' || b >= 0x7f => return Err(Ambiguous::ControlOrNonAscii),
            _ => {
                out.keep(1);
                i += 1;
            }
        }
    }
    check_segment(&out.written()[segment_start..], true)?;
    Ok(out.finish())
}

/// Whether `token` is already in canonical query encoding.
fn is_canonical_token(token: &[u8]) -> bool {
    let mut i = 0;
    while i < token.len() {
        match token[i] {
            b'%' => {
                let digits = token.get(i + 1..i + 3);
                let upper = digits.is_some_and(|d| {
                    d.iter()
                        .all(|c| c.is_ascii_digit() || (b'A'..=b'F').contains(c))
                });
                match escape_at(token, i) {
                    Ok(value) if upper && !is_unreserved(value) => i += 3,
                    _ => return false,
                }
            }
            b if is_unreserved(b) => i += 1,
            _ => return false,
        }
    }
    true
}

/// Whether a raw query already is its own canonical form, so it can be borrowed as is.
fn is_canonical_query(query: &str) -> bool {
    if query.is_empty() {
        return true;
    }
    let mut previous: Option<&str> = None;
    for piece in query.split('&') {
        let Some((name, value)) = piece.split_once('=') else {
            return false;
        };
        if piece.is_empty()
            || !is_canonical_token(name.as_bytes())
            || !is_canonical_token(value.as_bytes())
        {
            return false;
        }
        if previous.is_some_and(|p| p > name) {
            return false;
        }
        previous = Some(name);
    }
    true
}

/// Fully decodes a query component (`+` is a space) and appends its canonical encoding.
fn canonical_component(raw: &str, out: &mut String) -> Result<(), Ambiguous> {
    let bytes = raw.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let decoded = match bytes[i] {
            b'%' => {
                let value = escape_at(bytes, i)?;
                i += 3;
                value
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
        if is_unreserved(decoded) {
            out.push(char::from(decoded));
        } else {
            push_escape(out, decoded);
        }
    }
    Ok(())
}

fn normalize_query(query: &str) -> Result<Cow<'_, str>, Ambiguous> {
    if is_canonical_query(query) {
        return Ok(Cow::Borrowed(query));
    }
    let mut pairs: Vec<(String, String)> = Vec::new();
    for piece in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = piece.split_once('=').unwrap_or((piece, ""));
        let mut encoded_name = String::with_capacity(name.len());
        canonical_component(name, &mut encoded_name)?;
        let mut encoded_value = String::with_capacity(value.len());
        canonical_component(value, &mut encoded_value)?;
        pairs.push((encoded_name, encoded_value));
    }
    // A stable sort by name only: repeated names keep their order, because backends differ in
    // which of them they read (Django reads the last one).
    pairs.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out = String::with_capacity(query.len() + pairs.len());
    for (n, (name, value)) in pairs.iter().enumerate() {
        if n > 0 {
            out.push('&');
        }
        out.push_str(name);
        out.push('=');
        out.push_str(value);
    }
    Ok(Cow::Owned(out))
}

/// Everything that selects one stored response.
#[derive(Debug, Clone, Copy)]
pub struct KeyParts<'a> {
    /// Separates deployments or environments sharing one store.
    pub namespace: &'a str,
    /// Bumped to invalidate every key at once (e.g. after a route or encoding change).
    pub version: u32,
    /// The request host; lower-cased, trailing `.` and default `:80` stripped here.
    pub host: &'a str,
    /// The tenant id, or `None` for a route shared by every tenant.
    pub tenant: Option<&'a str>,
    /// The verified user id on `scope = "user"` routes, else `None`.
    pub user: Option<&'a str>,
    /// The per-deployment key credential values are digested with in the readable form.
    pub credential_key: &'a [u8; 32],
    /// The normalized target.
    pub target: &'a Target<'a>,
    /// The route's vary headers, in route order.
    pub vary: &'a [HeaderName],
    /// The request headers the vary values are read from.
    pub headers: &'a HeaderMap,
}

/// The blake3 derive-key context; changing it changes every key.
const KEY_CONTEXT: &str = "cachegate 2025 response cache key v1";

/// The only method class that is keyed: HEAD is answered from the GET entry.
const METHOD_CLASS: &str = "GET";

/// The host as keyed: lower-case, without a default `:80` port or a trailing `.`.
pub fn canonical_host(host: &str) -> Cow<'_, str> {
    let host = trim_host(host);
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(host.to_ascii_lowercase())
    } else {
        Cow::Borrowed(host)
    }
}

fn trim_host(host: &str) -> &str {
    let host = host.strip_suffix(":80").unwrap_or(host);
    host.strip_suffix('.').unwrap_or(host)
}

/// Feeds a length-prefixed field, so that no two field sequences hash the same bytes.
fn field(hasher: &mut blake3::Hasher, bytes: &[u8]) {
    count(hasher, bytes.len());
    hasher.update(bytes);
}

fn count(hasher: &mut blake3::Hasher, n: usize) {
    hasher.update(&(n as u64).to_le_bytes());
}

/// Feeds the canonical host without allocating: lower-casing ASCII keeps the length.
fn host_field(hasher: &mut blake3::Hasher, host: &str) {
    let host = trim_host(host).as_bytes();
    count(hasher, host.len());
    let mut chunk = [0u8; 64];
    for part in host.chunks(chunk.len()) {
        let lower = &mut chunk[..part.len()];
        lower.copy_from_slice(part);
        lower.make_ascii_lowercase();
        hasher.update(lower);
    }
}

/// The cache key of a request. Does not allocate: it is on the cache-hit path.
pub fn digest(parts: &KeyParts<'_>) -> Key {
    let mut hasher = blake3::Hasher::new_derive_key(KEY_CONTEXT);
    field(&mut hasher, parts.namespace.as_bytes());
    hasher.update(&parts.version.to_le_bytes());
    host_field(&mut hasher, parts.host);
    for optional in [parts.tenant, parts.user] {
        match optional {
            None => {
                hasher.update(&[0]);
            }
            Some(value) => {
                hasher.update(&[1]);
                field(&mut hasher, value.as_bytes());
            }
        }
    }
    field(&mut hasher, METHOD_CLASS.as_bytes());
    field(&mut hasher, parts.target.path.as_bytes());
    field(&mut hasher, parts.target.query.as_bytes());
    count(&mut hasher, parts.vary.len());
    for name in parts.vary {
        field(&mut hasher, name.as_str().as_bytes());
        if *name == http::header::ACCEPT_ENCODING {
            // By bucket, as variants are: a fill sends the bucket's canonical value, whatever
            // the client wrote. The count no header list can have marks it apart.
            count(&mut hasher, usize::MAX);
            hasher.update(&[super::encoding::bucket_of(parts.headers).tag()]);
            continue;
        }
        // The value count makes a missing header (0 values) differ from an empty one (1 value).
        let values = parts.headers.get_all(name);
        count(&mut hasher, values.iter().count());
        for value in values {
            field(&mut hasher, value.as_bytes());
        }
    }
    Key(*hasher.finalize().as_bytes())
}

/// Whether a header carries a credential and so must never be shown in clear.
pub fn is_credential_header(name: &HeaderName) -> bool {
    let name = name.as_str();
    matches!(name, "authorization" | "cookie" | "proxy-authorization")
        || ["token", "key", "secret", "session"]
            .iter()
            .any(|word| name.contains(word))
}

/// Appends bytes with anything but visible ASCII (and `"`, `\`) escaped, so a log line stays one
/// line and its space-separated fields stay apart; spaces are kept only inside quotes.
fn push_escaped(out: &mut String, bytes: &[u8], quoted: bool) {
    for &b in bytes {
        match b {
            b'"' | b'\\' => {
                out.push('\\');
                out.push(char::from(b));
            }
            b' ' if quoted => out.push(' '),
            b'!'..=b'~' => out.push(char::from(b)),
            _ => {
                out.push_str("\\x");
                out.push(char::from(HEX_UPPER[usize::from(b >> 4)]));
                out.push(char::from(HEX_UPPER[usize::from(b & 0x0f)]));
            }
        }
    }
}

/// A human-readable rendering of the key for logs and debugging, with credentials hashed.
///
/// Example: `cg:v1 api.example.com t=42 GET /api/faculty/?a=1&b=2 accept-language="fr"`.
/// A shared route has no `t=` part; a missing vary header shows as `name=-`.
pub fn readable(parts: &KeyParts<'_>) -> String {
    let mut out = String::with_capacity(96);
    push_escaped(&mut out, parts.namespace.as_bytes(), false);
    out.push_str(":v");
    out.push_str(&parts.version.to_string());
    out.push(' ');
    push_escaped(&mut out, canonical_host(parts.host).as_bytes(), false);
    if let Some(tenant) = parts.tenant {
        out.push_str(" t=");
        push_escaped(&mut out, tenant.as_bytes(), false);
    }
    if let Some(user) = parts.user {
        out.push_str(" u=");
        push_escaped(&mut out, user.as_bytes(), false);
    }
    out.push(' ');
    out.push_str(METHOD_CLASS);
    out.push(' ');
    push_escaped(&mut out, parts.target.path_and_query().as_bytes(), false);
    for name in parts.vary {
        out.push(' ');
        out.push_str(name.as_str());
        out.push('=');
        if *name == http::header::ACCEPT_ENCODING {
            out.push_str(super::encoding::bucket_of(parts.headers).as_str());
            continue;
        }
        let mut values = parts.headers.get_all(name).iter().peekable();
        if values.peek().is_none() {
            out.push('-');
        }
        let secret = is_credential_header(name);
        for (n, value) in values.enumerate() {
            if n > 0 {
                out.push(',');
            }
            if secret {
                out.push('#');
                let digest = blake3::keyed_hash(parts.credential_key, value.as_bytes());
                out.push_str(&digest.to_hex()[..16]);
            } else {
                out.push('"');
                push_escaped(&mut out, value.as_bytes(), true);
                out.push('"');
            }
        }
    }
    out
}

/// RFC 3986 §5.2.4 for an absolute path: `.` segments go, `..` removes the one before.
pub fn remove_dot_segments(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    for (i, segment) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        match *segment {
            "." => {
                if last {
                    out.push("");
                }
            }
            ".." => {
                out.pop();
                if last {
                    out.push("");
                }
            }
            other => out.push(other),
        }
    }
    format!("/{}", out.join("/"))
}

/// Every spelling of `path` a lenient backend might resolve to the same resource: escapes
/// decoded (`%2F` included), `\` read as `/`, runs of `/` collapsed, dot segments resolved.
/// Not a key: only for refusing to forward what could reach a reserved path.
pub fn lenient_path(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%' && i + 2 < bytes.len())
            .then(|| std::str::from_utf8(&bytes[i + 1..i + 3]).ok())
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(b) => {
                decoded.push(b);
                i += 3;
            }
            None => {
                decoded.push(bytes[i]);
                i += 1;
            }
        }
    }
    let text = String::from_utf8_lossy(&decoded).replace('\\', "/");
    let mut collapsed = String::with_capacity(text.len() + 1);
    if !text.starts_with('/') {
        collapsed.push('/');
    }
    for c in text.chars() {
        if !(c == '/' && collapsed.ends_with('/')) {
            collapsed.push(c);
        }
    }
    remove_dot_segments(&collapsed)
}

#[cfg(test)]
mod tests;
