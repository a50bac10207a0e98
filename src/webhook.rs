//! Webhook authentication: the `Cachegate-Signature` header, its HMAC check, its time window,
//! and the memory that tells a repeated message from a new one.
//!
//! The backend signs `"<t>.<raw body>"` with HMAC-SHA256 under a shared secret and sends
//! `Cachegate-Signature: t=<unix seconds>,v1=<hex>`. Several `v1` values may be sent and several
//! secrets configured, so a secret can be rotated without a moment where the two sides disagree.
//! Secrets never leave this module in any printable form.
//!
//! A message with a valid signature inside the window is always accepted, an identical repeat
//! included (issue 8): the timestamp has one-second resolution, so a backend that sends the same
//! purge for two saves within one second sends the same signed message twice, and refusing the
//! second loses that save's purge. Applying a purge again can only cause misses, never serve
//! stale or foreign data, so the window alone bounds how long a captured message can be replayed;
//! the memory only reports repeats, for the log and `/stats`.

use std::collections::BTreeSet;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

#[cfg(test)]
mod tests;

/// The header name, lower-case so it can be given to `HeaderName::from_static`.
pub const SIGNATURE_HEADER: &str = "cachegate-signature";

/// How far a signature's timestamp may be from now, when the config does not say.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(300);

/// The most signed messages remembered at once to recognise repeats; past it the oldest is
/// forgotten.
pub const MAX_REMEMBERED: usize = 100_000;

/// The most `v1` values read from one header; more is refused as malformed.
const MAX_CANDIDATES: usize = 16;

type HmacSha256 = Hmac<Sha256>;

/// The SHA-256 block size, which is the key length HMAC works with.
const BLOCK: usize = 64;

/// A SHA-256 MAC.
type Tag = [u8; 32];

/// The webhook secrets currently accepted; the first one is the one to sign with.
#[derive(Clone)]
pub struct Secrets(Vec<Vec<u8>>);

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secrets({} redacted)", self.0.len())
    }
}

impl Secrets {
    /// Comma-separated list from an env var or file content; whitespace around items trimmed; empty items ignored; none -> error.
    pub fn parse(list: &str) -> Result<Secrets, String> {
        let secrets: Vec<Vec<u8>> = list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| s.as_bytes().to_vec())
            .collect();
        if secrets.is_empty() {
            return Err("no webhook secret given".to_owned());
        }
        Ok(Secrets(secrets))
    }

    /// How many secrets are accepted.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Always false: parsing refuses an empty list.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// A header value carrying one `v1` per secret, so a receiver holding any of them accepts it.
    pub fn sign_all(&self, body: &[u8], t_unix: u64) -> String {
        let mut out = format!("t={t_unix}");
        for secret in &self.0 {
            out.push_str(",v1=");
            out.push_str(&hex::encode(mac(secret, &t_unix.to_string(), body)));
        }
        out
    }
}

/// Why a webhook request was not authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SigError {
    /// No signature header, or an empty one.
    Missing,
    /// The header is not `t=<digits>,v1=<64 hex>[,v1=...]`.
    Malformed,
    /// The timestamp is further from now than the replay window, either way.
    Expired,
    /// No `v1` value matches the body under any configured secret.
    Mismatch,
}

impl SigError {
    /// A stable kebab-case label for logs and metrics.
    pub fn as_str(&self) -> &'static str {
        match self {
            SigError::Missing => "missing",
            SigError::Malformed => "malformed",
            SigError::Expired => "expired",
            SigError::Mismatch => "mismatch",
        }
    }
}

impl std::fmt::Display for SigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SigError::Missing => "missing Cachegate-Signature header",
            SigError::Malformed => "malformed Cachegate-Signature header",
            SigError::Expired => "signature timestamp outside the replay window",
            SigError::Mismatch => "signature does not match",
        })
    }
}

impl std::error::Error for SigError {}

/// How an accepted message relates to the ones accepted before it. Both are applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Delivery {
    /// Not accepted before within the window (as far as the bounded memory knows).
    First,
    /// The same signed message (timestamp and body) was already accepted within the window.
    Repeat,
}

impl Delivery {
    /// Whether the message was accepted before.
    pub fn is_repeat(self) -> bool {
        self == Delivery::Repeat
    }
}

/// Checks webhook signatures and remembers the accepted ones until they leave the window.
pub struct Verifier {
    secrets: Secrets,
    window: Duration,
    cap: usize,
    /// Accepted messages as (timestamp, digest of what was signed), oldest first for pruning.
    seen: Mutex<BTreeSet<(u64, Tag)>>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("secrets", &self.secrets)
            .field("window", &self.window)
            .field("remembered", &self.remembered())
            .finish()
    }
}

impl Verifier {
    /// A verifier accepting any of `secrets`, for timestamps within `window` of now.
    pub fn new(secrets: Secrets, window: Duration) -> Verifier {
        Verifier::with_cap(secrets, window, MAX_REMEMBERED)
    }

    fn with_cap(secrets: Secrets, window: Duration, cap: usize) -> Verifier {
        Verifier {
            secrets,
            window,
            cap,
            seen: Mutex::new(BTreeSet::new()),
        }
    }

    /// `header` = the Cachegate-Signature value, `now_unix` = current unix seconds (passed in, so
    /// tests control time). An accepted message is remembered until it leaves the window, so a
    /// second identical one is accepted as a [`Delivery::Repeat`].
    pub fn verify(
        &self,
        header: Option<&str>,
        body: &[u8],
        now_unix: u64,
    ) -> Result<Delivery, SigError> {
        let header = header.map(str::trim).unwrap_or("");
        if header.is_empty() {
            return Err(SigError::Missing);
        }
        let parsed = parse_header(header)?;
        let window = self.window.as_secs();
        if now_unix.abs_diff(parsed.t) > window {
            return Err(SigError::Expired);
        }
        let valid = self
            .secrets
            .0
            .iter()
            .map(|secret| mac(secret, parsed.t_text, body))
            .any(|expected| {
                parsed
                    .candidates
                    .iter()
                    .any(|given| bool::from(expected.ct_eq(given)))
            });
        if !valid {
            return Err(SigError::Mismatch);
        }
        // Remembered by what was signed, not by which MAC matched: while secrets rotate, the
        // same message carries one MAC per secret, and each must count as the same request.
        let mut signed = blake3::Hasher::new();
        signed.update(parsed.t_text.as_bytes());
        signed.update(b".");
        signed.update(body);
        Ok(self.remember(parsed.t, *signed.finalize().as_bytes(), now_unix))
    }

    /// How many accepted signatures are currently remembered.
    pub fn remembered(&self) -> usize {
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Records an accepted message and says whether it was recorded already.
    ///
    /// The key is the signed message, not the header text nor the MAC, so re-spelling the same
    /// signature (upper-case hex, extra or other `v1` values, other spacing) is still a repeat.
    fn remember(&self, t: u64, tag: Tag, now_unix: u64) -> Delivery {
        let window = self.window.as_secs();
        // The set only ever gains or loses whole entries, so it is consistent even after a
        // panic elsewhere poisoned the lock.
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        while let Some(&(oldest, _)) = seen.first() {
            if oldest.saturating_add(window) >= now_unix {
                break;
            }
            seen.pop_first();
        }
        if seen.contains(&(t, tag)) {
            return Delivery::Repeat;
        }
        // Only holders of a secret can mint new valid messages, so reaching the cap means the
        // backend itself sent that many within one window. Forgetting the oldest keeps memory
        // bounded and costs nothing but accuracy: a later repeat of it counts as a first
        // delivery, and is applied either way.
        while seen.len() >= self.cap.max(1) {
            seen.pop_first();
        }
        seen.insert((t, tag));
        Delivery::First
    }
}

/// The header value for a body, as the backend integrations compute it (used by tests and the CLI).
pub fn sign(secret: &[u8], body: &[u8], t_unix: u64) -> String {
    let tag = mac(secret, &t_unix.to_string(), body);
    format!("t={t_unix},v1={}", hex::encode(tag))
}

/// A parsed signature header.
struct Parsed<'a> {
    t: u64,
    /// The timestamp exactly as sent, which is what was signed.
    t_text: &'a str,
    candidates: Vec<Tag>,
}

/// Reads `t=<digits>,v1=<hex>[,v1=<hex>...]`; other keys are ignored so new schemes can be
/// added beside `v1` without breaking older proxies.
fn parse_header(header: &str) -> Result<Parsed<'_>, SigError> {
    let mut t: Option<(u64, &str)> = None;
    let mut candidates = Vec::new();
    for item in header.split(',') {
        let (key, value) = item.trim().split_once('=').ok_or(SigError::Malformed)?;
        match key.trim() {
            "t" => {
                if t.is_some() {
                    return Err(SigError::Malformed);
                }
                t = Some((timestamp(value.trim())?, value.trim()));
            }
            "v1" => {
                if candidates.len() == MAX_CANDIDATES {
                    return Err(SigError::Malformed);
                }
                let mut tag = [0u8; 32];
                hex::decode_to_slice(value.trim(), &mut tag).map_err(|_| SigError::Malformed)?;
                candidates.push(tag);
            }
            _ => {}
        }
    }
    match t {
        Some((t, t_text)) if !candidates.is_empty() => Ok(Parsed {
            t,
            t_text,
            candidates,
        }),
        _ => Err(SigError::Malformed),
    }
}

/// Plain decimal digits only: no sign and no leading zero, so the signed text has one spelling.
fn timestamp(text: &str) -> Result<u64, SigError> {
    let digits_only = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    let leading_zero = text.len() > 1 && text.starts_with('0');
    if !digits_only || leading_zero {
        return Err(SigError::Malformed);
    }
    text.parse().map_err(|_| SigError::Malformed)
}

/// HMAC-SHA256 of `"<t>.<body>"` under `secret`.
fn mac(secret: &[u8], t_text: &str, body: &[u8]) -> Tag {
    let mut mac = keyed(secret);
    mac.update(t_text.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.finalize().into_bytes().into()
}

/// An HMAC instance for a key of any length.
///
/// The key is brought to the block size the way RFC 2104 defines it (hashed when longer,
/// zero-padded when shorter), which is exactly what HMAC does internally; doing it here lets
/// the fixed-size constructor be used, which cannot fail.
fn keyed(secret: &[u8]) -> HmacSha256 {
    let mut key = hmac::digest::Key::<HmacSha256>::default();
    if secret.len() > BLOCK {
        let digest = Sha256::digest(secret);
        key[..digest.len()].copy_from_slice(&digest);
    } else {
        key[..secret.len()].copy_from_slice(secret);
    }
    <HmacSha256 as KeyInit>::new(&key)
}
