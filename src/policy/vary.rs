//! `Vary` as HTTP caches read it (RFC 9111 §4.1), and what a fill request may carry.
//!
//! A response's `Vary` names request headers that selected it. cachegate stores such a response
//! as one *variant* of its key: the variant key is a digest of the primary key and the request's
//! normalised values of the selecting headers, so a lookup serves a variant only to requests
//! whose values match. Headers the primary key already covers (the route's `vary`, the tenant
//! header, `forward_headers`) select nothing more.
//!
//! Credentials in `Vary` (`Cookie`, `Authorization`) say the answer may differ per caller. Such an
//! answer is shared across a tenant's callers only where the operator declared the route's scope
//! (`tenant` or `public`), or kept per caller where the key has a verified user; otherwise it is
//! not stored ([`NotStored::VaryCredential`]).
//!
//! A fill request is a function of the key: [`fill_header`] says which request headers a fill
//! may forward, so nothing the key does not account for can change what is stored for everyone.
//!
//! `Accept-Encoding` selects by its [`Bucket`] (`policy::encoding`), not its spelling: the variant
//! key holds the bucket and a fill sends the bucket's canonical value, so a URI holds at most one
//! variant per bucket however many ways clients write the header.

use super::cacheability::{list_items, NotStored};
use super::encoding::{bucket_of, Bucket};
use super::route::Scope;
use super::Key;
use http::header::{
    ACCEPT, ACCEPT_ENCODING, ACCEPT_LANGUAGE, AUTHORIZATION, CONTENT_ENCODING, COOKIE, ORIGIN,
    USER_AGENT, VARY,
};
use http::{HeaderMap, HeaderName};

/// How many variants one primary key may hold unless the route says otherwise.
pub const DEFAULT_MAX_VARIANTS: usize = 8;

/// The blake3 derive-key context of variant keys; changing it changes every variant key.
const VARIANT_CONTEXT: &str = "cachegate 2026 response variant key v1";

/// The request headers a response's `Vary` selects on, beyond what the primary key covers.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Selection {
    /// Selecting request headers, sorted by name, without duplicates.
    pub headers: Vec<HeaderName>,
    /// The answer differs per caller, and the key's verified user tells callers apart.
    pub by_user: bool,
}

impl Selection {
    /// True when the response is the same for every request with the primary key.
    pub fn is_empty(&self) -> bool {
        self.headers.is_empty() && !self.by_user
    }

    /// Adds `Accept-Encoding`, for an answer cachegate made depend on it (by compressing),
    /// unless the primary key covers it already.
    pub fn select_encoding(&mut self, rules: &VaryRules<'_>) {
        if !rules.keyed.contains(&ACCEPT_ENCODING) {
            insert_sorted(&mut self.headers, ACCEPT_ENCODING);
        }
    }
}

/// What the route and the request's key say about a response's `Vary`.
#[derive(Debug, Clone, Copy)]
pub struct VaryRules<'a> {
    /// Request headers the primary key already covers.
    pub keyed: &'a [HeaderName],
    /// The route's scope.
    pub scope: Scope,
    /// Whether the operator wrote the scope (on the route or in `[cache]`).
    pub scope_declared: bool,
    /// Whether the key carries a verified user, so per-caller answers can be kept apart.
    pub user_known: bool,
}

/// Reads a response's `Vary` into the request headers that select it.
///
/// `Vary: *` is never stored, nor a `Vary` on the peer address cachegate forwards.
/// `Accept-Encoding` selects by bucket, so it adds at most [`Bucket::ALL`] variants; an encoded
/// body selects on it even when `Vary` forgets to say so.
pub fn selection(response: &HeaderMap, rules: &VaryRules<'_>) -> Result<Selection, NotStored> {
    let mut selection = Selection::default();
    let encoded = response.contains_key(CONTENT_ENCODING);
    for item in list_items(response, &VARY) {
        if item.is("*") {
            return Err(NotStored::VaryStar);
        }
        let Ok(name) = HeaderName::from_bytes(item.name) else {
            // Not a header name: no request could be matched against it.
            return Err(NotStored::VaryStar);
        };
        if rules.keyed.contains(&name) || SET_FROM_THE_KEY.contains(&name.as_str()) {
            continue;
        }
        if SET_PER_PEER.contains(&name.as_str()) {
            // cachegate sets these from the peer's address on every fill: the answer is per
            // caller, and what a client sends under these names says nothing about it.
            return Err(NotStored::VaryStar);
        }
        if name == COOKIE || name == AUTHORIZATION {
            match credential_rule(rules) {
                CredentialRule::Shared => continue,
                CredentialRule::ByUser => {
                    selection.by_user = true;
                    continue;
                }
                CredentialRule::Refuse => return Err(NotStored::VaryCredential),
            }
        }
        insert_sorted(&mut selection.headers, name);
        if selection.headers.len() > MAX_SELECTING {
            return Err(NotStored::VaryLimit);
        }
    }
    // An encoded body the origin did not declare as varying would reach clients that cannot
    // decode it: select on Accept-Encoding anyway.
    if encoded && !rules.keyed.contains(&ACCEPT_ENCODING) {
        insert_sorted(&mut selection.headers, ACCEPT_ENCODING);
    }
    Ok(selection)
}

/// Headers cachegate sets on every fill from what the key holds (the host) or from nothing
/// the client chooses (the scheme): a `Vary` on them selects nothing the key does not.
const SET_FROM_THE_KEY: [&str; 3] = ["host", "x-forwarded-host", "x-forwarded-proto"];

/// Headers cachegate sets on every fill from the peer's address.
const SET_PER_PEER: [&str; 2] = ["x-forwarded-for", "forwarded"];

fn insert_sorted(names: &mut Vec<HeaderName>, name: HeaderName) {
    if let Err(at) = names.binary_search_by(|n| n.as_str().cmp(name.as_str())) {
        names.insert(at, name);
    }
}

/// What a credential named in `Vary` means on a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialRule {
    /// The operator declared who shares the answer (`tenant` or `public`), or the key already
    /// holds the user (`user`): the credential selects nothing more.
    Shared,
    /// The scope was inferred, but the key's verified user tells callers apart.
    ByUser,
    /// Nothing tells callers apart: not stored.
    Refuse,
}

/// How a route treats `Vary: Cookie` or `Vary: Authorization`.
pub fn credential_rule(rules: &VaryRules<'_>) -> CredentialRule {
    match rules.scope {
        Scope::User => CredentialRule::Shared,
        Scope::Tenant | Scope::Public if rules.scope_declared => CredentialRule::Shared,
        _ if rules.user_known => CredentialRule::ByUser,
        _ => CredentialRule::Refuse,
    }
}

/// The key of one variant: the primary key and the request's normalised values of the
/// selecting headers (and the verified user, when the answer is per caller). Does not allocate.
pub fn variant_key(
    primary: &Key,
    selection: &Selection,
    request: &HeaderMap,
    user: Option<&str>,
) -> Key {
    let mut hasher = blake3::Hasher::new_derive_key(VARIANT_CONTEXT);
    hasher.update(&primary.0);
    count(&mut hasher, selection.headers.len());
    for name in &selection.headers {
        field(&mut hasher, name.as_str().as_bytes());
        if *name == ACCEPT_ENCODING {
            // The bucket, not the spelling; marked apart from the raw values' 0 and 1.
            hasher.update(&[2, bucket_of(request).tag()]);
            continue;
        }
        let fold = case_insensitive(name);
        let mut values = request.get_all(name).iter().peekable();
        if values.peek().is_none() {
            // A missing header differs from an empty one.
            hasher.update(&[0]);
            continue;
        }
        hasher.update(&[1]);
        let mut normaliser = Normaliser::new(fold);
        for (i, value) in values.enumerate() {
            if i > 0 {
                normaliser.push(&mut hasher, b',');
            }
            for &b in value.as_bytes() {
                normaliser.push(&mut hasher, b);
            }
        }
        normaliser.finish(&mut hasher);
    }
    if selection.by_user {
        match user {
            Some(user) => {
                hasher.update(&[1]);
                field(&mut hasher, user.as_bytes());
            }
            None => {
                hasher.update(&[0]);
            }
        }
    }
    Key(*hasher.finalize().as_bytes())
}

/// The normalised value of a selecting header as [`variant_key`] sees it, for display and tests.
///
/// `Accept-Encoding` shows as its bucket (`br`, `gzip` or `identity`).
pub fn normalised_value(request: &HeaderMap, name: &HeaderName) -> Option<String> {
    if *name == ACCEPT_ENCODING {
        return Some(bucket_of(request).as_str().to_owned());
    }
    let mut values = request.get_all(name).iter().peekable();
    values.peek()?;
    let mut out = Vec::new();
    let mut normaliser = Normaliser::new(case_insensitive(name));
    for (i, value) in values.enumerate() {
        if i > 0 {
            normaliser.push(&mut out, b',');
        }
        for &b in value.as_bytes() {
            normaliser.push(&mut out, b);
        }
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}

/// Headers whose values compare case-insensitively (tokens, language tags, media types).
fn case_insensitive(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "accept" | "accept-charset" | "accept-encoding" | "accept-language" | "origin"
    )
}

/// Where normalised bytes go: a hasher or a buffer.
trait Sink {
    fn put(&mut self, bytes: &[u8]);
}

impl Sink for blake3::Hasher {
    fn put(&mut self, bytes: &[u8]) {
        self.update(bytes);
    }
}

impl Sink for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

/// Streams a header value into its normal form: leading and trailing whitespace trimmed,
/// whitespace runs collapsed to one space, none around `,` and `;`, and ASCII lower-cased
/// where the header is case-insensitive. Streaming keeps the hit path free of allocations.
struct Normaliser {
    fold: bool,
    /// A space is pending: emitted before the next byte unless that byte is a separator.
    space: bool,
    /// Nothing emitted yet, or the last byte emitted was a separator: spaces are dropped.
    after_separator: bool,
}

impl Normaliser {
    fn new(fold: bool) -> Self {
        Normaliser {
            fold,
            space: false,
            after_separator: true,
        }
    }

    fn push(&mut self, sink: &mut impl Sink, b: u8) {
        if b == b' ' || b == b'\t' {
            self.space = !self.after_separator;
            return;
        }
        let separator = b == b',' || b == b';';
        if self.space && !separator {
            sink.put(b" ");
        }
        self.space = false;
        self.after_separator = separator;
        let b = if self.fold { b.to_ascii_lowercase() } else { b };
        sink.put(&[b]);
    }

    fn finish(self, sink: &mut impl Sink) {
        // Trailing whitespace is dropped; the end marker keeps "a" + "b" apart from "ab".
        sink.put(&[0xff]);
    }
}

fn field(hasher: &mut blake3::Hasher, bytes: &[u8]) {
    count(hasher, bytes.len());
    hasher.update(bytes);
}

fn count(hasher: &mut blake3::Hasher, n: usize) {
    hasher.update(&(n as u64).to_le_bytes());
}

/// What a fill request may carry besides cachegate's own forwarding headers.
#[derive(Debug, Clone, Copy)]
pub struct FillRules<'a> {
    /// Request headers the primary key covers: the route's `vary` and `forward_headers`, the
    /// tenant header.
    pub keyed: &'a [HeaderName],
    /// Headers a stored response of this key was seen to select on.
    pub selected: &'a [HeaderName],
    /// Whether the credential may go with the fill: the scope keys callers by tenant or user.
    /// On a `public` route what everyone shares must not depend on one caller's credential.
    pub credentials: bool,
}

/// Content negotiation (and CORS's `Origin`): forwarded on every fill, since a response that
/// depends on them says so in `Vary`, and then they select its variant.
pub const NEGOTIATION: [HeaderName; 4] = [ACCEPT, ACCEPT_LANGUAGE, ACCEPT_ENCODING, ORIGIN];

/// Most request headers one response's `Vary` may select on; a longer list is not stored, so a
/// hostile `Vary` cannot make every lookup of the URI hash hundreds of headers.
pub const MAX_SELECTING: usize = 16;

/// Standard headers that do not change the answer, forwarded on fills for the backend's logs and
/// traces.
pub const HARMLESS: [&str; 4] = ["user-agent", "x-request-id", "traceparent", "tracestate"];

/// Whether a fill forwards this request header. Everything else is dropped on fills: the
/// headers frameworks read to override the method, rewrite the path or the scheme,
/// conditionals and `Range` (a fill always asks for the full answer every waiter can use).
pub fn fill_header(name: &HeaderName, rules: &FillRules<'_>) -> bool {
    if *name == AUTHORIZATION || *name == COOKIE {
        return rules.credentials || rules.keyed.contains(name);
    }
    NEGOTIATION.contains(name)
        || *name == USER_AGENT
        || HARMLESS.contains(&name.as_str())
        || rules.keyed.contains(name)
        || rules.selected.contains(name)
}

/// The request headers of a fill: only those [`fill_header`] allows, in their order, with
/// `Accept-Encoding` replaced by the canonical value of the request's bucket (sent also when the
/// client sent none), so whatever comes back suits every client of the bucket.
pub fn fill_headers(request: &HeaderMap, rules: &FillRules<'_>) -> HeaderMap {
    let mut out = HeaderMap::with_capacity(request.keys_len() + 1);
    out.insert(ACCEPT_ENCODING, fill_encoding(request));
    for name in request.keys() {
        if *name == ACCEPT_ENCODING {
            continue;
        }
        if fill_header(name, rules) {
            for value in request.get_all(name) {
                out.append(name.clone(), value.clone());
            }
        }
    }
    out
}

/// The `Accept-Encoding` a fill for this request sends: its bucket's canonical value.
pub fn fill_encoding(request: &HeaderMap) -> http::HeaderValue {
    Bucket::accept_encoding(bucket_of(request))
}

#[cfg(test)]
mod tests;
