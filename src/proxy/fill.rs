//! Misses: one fill per key at a time, run as its own task, shared with the requests that wait on it.
//!
//! The fill task owns the flight, so the leader's client going away never cancels it. What waiters
//! receive is either the stored entry or the shared error; a response that may not be stored
//! (`Set-Cookie`, `private`, a status outside the list, too large...) may belong to the leader alone,
//! so waiters never see it: they go round again behind a new leader.

mod fetch;
mod refresh;
mod request;

use super::{stream_response, Answer, Cacheable, FlightMeta, Inner, Proxy, Resolved};
use crate::body::ProxyBody;
use crate::clock::UnixMillis;
use crate::error::ProxyError;
use crate::policy::cache_key::{self, KeyParts};
use crate::policy::cacheability::{self, NotStored, StoreRules};
use crate::policy::freshness::{self, Rules, Situation, StaleWhy, Usability};
use crate::policy::http_cache::{self as http_cache_policy, EtagRule};
use crate::policy::outcome::{BackendFault, Fill, Outcome, StaleServed};
use crate::policy::route::Scope;
use crate::policy::vary::{self, Selection, VaryRules};
use crate::policy::Key;
use crate::single_flight::{Leader, Role, Wait};
use crate::store::{
    compact, extra_tags, CachedResponse, EntryParts, EntryText, Held, LeaseDecision, LeaseWait,
    Source, StoreOutcome, Tag, TagKey, TenantScope, VaryState,
};
use crate::upstream::ClientInfo;
use fetch::{fetch, Expect, Fetched};
use http::{HeaderName, Request, Response};
use refresh::{add_validators, fault_of, revalidated};
use request::{fill_rules, keyed_headers, variant_label};
use std::sync::Arc;
use tokio::sync::oneshot;
use tokio::time::Instant;

/// What a flight hands to its waiters.
#[derive(Clone)]
pub(crate) enum Shared {
    Entry(Arc<CachedResponse>),
    Error(Arc<ProxyError>),
    /// The response was for the leader only; wait behind a new leader.
    NotShareable,
    /// The backend failed, and the stale entry answers instead (inside its `stale-if-error`
    /// window).
    Stale(Arc<CachedResponse>, BackendFault),
}

/// What the fill hands to the request that started it.
enum LeaderAnswer {
    Entry(Arc<CachedResponse>, Fill),
    /// Another instance filled the key while this one waited on its lease.
    Shared(Arc<CachedResponse>),
    Private(Response<ProxyBody>, NotStored),
    Error(Arc<ProxyError>),
    /// The backend failed; the stale entry answers instead.
    Stale(Arc<CachedResponse>, BackendFault),
    /// The backend confirmed the stale entry with a `304`: its refreshed form, and what
    /// storing it did.
    Revalidated(Arc<CachedResponse>, Fill),
}

/// What a miss knows beyond its key: the key it looked up (a variant key when the URI's
/// responses are known to vary), what they vary on, and the verified user.
pub(crate) struct Miss<'a> {
    pub(crate) lookup: Key,
    pub(crate) varies: Option<Arc<VaryState>>,
    pub(crate) user: Option<&'a str>,
    /// The entry still held under `lookup`, no longer fresh: its validators make the fill
    /// conditional, and it answers if the backend fails inside its `stale-if-error` window.
    pub(crate) held: Option<Held>,
}

/// Everything a fill task needs, owned, so it can outlive the request that started it.
struct FillJob {
    /// The request's key; a response that varies is stored under a variant of it.
    primary: Key,
    /// The key the flight is for (the primary key or the variant looked up).
    lookup: Key,
    request: Request<ProxyBody>,
    /// The headers the fill request carries: a variant key is computed from what the backend saw.
    sent: http::HeaderMap,
    tags: Vec<TagKey>,
    /// The route's freshness rules, which give the stored entry its lifetimes.
    freshness: Rules,
    /// The entry the fill refreshes, if one is held (see [`Miss::held`]).
    held: Option<Held>,
    /// The fill request carries the held entry's validators.
    conditional: bool,
    readable_key: String,
    keyed_headers: Vec<HeaderName>,
    scope: Scope,
    scope_declared: bool,
    max_variants: usize,
    user: Option<String>,
    tenant: TenantScope,
    target: String,
    /// The route's id, which the entry is charged to.
    route: usize,
    /// Honour-origin mode and the digest `ETag` rule.
    http: http_cache_policy::Rules,
    /// The route's `compress`.
    compress: bool,
}

/// Whether a fill's entry answers this request: stored under the key the request's own values
/// select. A waiter that joined before the URI was known to vary may see another variant.
fn answers(
    entry: &CachedResponse,
    primary: &Key,
    headers: &http::HeaderMap,
    user: Option<&str>,
) -> bool {
    match &entry.variant {
        None => entry.key == *primary,
        Some(selection) => entry.key == vary::variant_key(primary, selection, headers, user),
    }
}

impl Proxy {
    /// Joins the fill in flight for this key, or starts one; retries behind a new leader when the
    /// fill's response was not shareable, and goes alone once the coalescing bound has passed.
    pub(super) async fn fill_or_join(
        &self,
        cacheable: Cacheable<'_>,
        mut miss: Miss<'_>,
        resolved: &Resolved<'_, '_>,
        parts: &http::request::Parts,
        client: &ClientInfo<'_>,
    ) -> Result<Answer, ProxyError> {
        let inner = &self.inner;
        let target = resolved.target;
        let (tenant, tags) = super::fill_scope(&cacheable, resolved);
        let deadline = Instant::now() + inner.config.cache.coalesce_timeout;
        // A leader goes round once more when its fill stored another variant than its own.
        let mut led = false;
        loop {
            let role = inner.flights.join_or_lead(
                miss.lookup,
                |meta| !inner.store.is_fenced(&meta.ticket, &tags),
                || FlightMeta {
                    ticket: inner.store.begin_fill(),
                },
            );
            let waiter = match role {
                Role::Leader(leader) => {
                    let scope = (tenant.clone(), tags.clone());
                    let answer = self
                        .lead(leader, &cacheable, &miss, scope, target, parts, client, led)
                        .await?;
                    match answer {
                        Some(answer) => return Ok(answer),
                        None => {
                            // The fill did not know the URI varies, so it did not forward a
                            // header its `Vary` names: fill again now that it is known.
                            led = true;
                            if let Some(hit) = self.own_variant(&cacheable, &mut miss, parts).await
                            {
                                return Ok(hit);
                            }
                            continue;
                        }
                    }
                }
                Role::Waiter(waiter) => {
                    inner.stats.wait_started();
                    waiter
                }
            };
            let remaining = deadline.saturating_duration_since(Instant::now());
            match waiter.wait(remaining).await {
                Wait::Done(Shared::Entry(entry)) => {
                    if answers(&entry, &cacheable.key, &parts.headers, miss.user) {
                        let response =
                            super::http_cache::respond(&entry, &parts.method, &parts.headers, None);
                        return Ok(Answer::cached(response, Outcome::Collapsed, &cacheable));
                    }
                    // The response varies and was selected by other values than ours: look up
                    // our own variant now that the URI is known to vary, else fill it.
                    if let Some(hit) = self.own_variant(&cacheable, &mut miss, parts).await {
                        return Ok(hit);
                    }
                    continue;
                }
                Wait::Done(Shared::Error(err)) => {
                    return Err(err.copy_for_waiters());
                }
                Wait::Done(Shared::Stale(entry, fault)) => {
                    if answers(&entry, &cacheable.key, &parts.headers, miss.user) {
                        let response = super::http_cache::respond(
                            &entry,
                            &parts.method,
                            &parts.headers,
                            Some(UnixMillis::now()),
                        );
                        let outcome = Outcome::Stale(StaleServed::IfError(fault));
                        return Ok(Answer::cached(response, outcome, &cacheable));
                    }
                    continue;
                }
                Wait::Done(Shared::NotShareable) | Wait::Abandoned => continue,
                Wait::TimedOut => {
                    let keyed = keyed_headers(&cacheable);
                    let rules = fill_rules(&cacheable, &miss, &keyed);
                    let request = self.fill_request(parts, target, client, &rules)?;
                    let response = inner.upstream.send(request).await?;
                    let mut response = stream_response(response, &inner.config.cache.tag_headers);
                    if cacheable.head {
                        *response.body_mut() = ProxyBody::empty();
                    }
                    return Ok(Answer::cached(
                        response,
                        Outcome::CoalesceTimeout,
                        &cacheable,
                    ));
                }
            }
        }
    }

    /// Looks up the request's own variant once a fill has shown the URI varies; a hit, or
    /// `None` with `miss` now naming the variant key to fill.
    async fn own_variant(
        &self,
        cacheable: &Cacheable<'_>,
        miss: &mut Miss<'_>,
        parts: &http::request::Parts,
    ) -> Option<Answer> {
        let primary = cacheable.key;
        let (headers, user) = (&parts.headers, miss.user);
        let variant_of =
            move |selection: &Selection| vary::variant_key(&primary, selection, headers, user);
        let now = UnixMillis::now();
        let tenant = cacheable.tenant.as_ref().map(|t| t.as_str());
        let found = self
            .inner
            .store
            .find(tenant, &primary, &variant_of, now)
            .await;
        miss.varies = found.varies;
        miss.lookup = found.lookup;
        // What was held was another key's (the primary, before the variation was known).
        miss.held = None;
        let (entry, source) = found.entry?;
        let response = super::http_cache::respond(&entry, &parts.method, &parts.headers, Some(now));
        let outcome = match source {
            Source::Memory => Outcome::Hit,
            Source::Shared => Outcome::SharedHit,
        };
        Some(Answer::cached(response, outcome, cacheable))
    }

    /// Leads a fill and answers from it; `None` when the stored entry is a variant selected by
    /// other values than this request's (its fill could not forward them, not knowing the URI
    /// varies) and this request has not gone round for that already (`led`).
    #[allow(clippy::too_many_arguments)]
    async fn lead(
        &self,
        leader: Leader<Key, Shared, FlightMeta>,
        cacheable: &Cacheable<'_>,
        miss: &Miss<'_>,
        (tenant, tags): (TenantScope, Vec<TagKey>),
        target: &cache_key::Target<'_>,
        parts: &http::request::Parts,
        client: &ClientInfo<'_>,
        led: bool,
    ) -> Result<Option<Answer>, ProxyError> {
        // On a route with `vary`, a miss may be for a URI the cache has never seen or for a
        // variant it lacks; the path tag (the last tag) tells the first case apart.
        let uri_miss = match tags.last() {
            Some(path_tag) if !cacheable.route.vary.is_empty() || miss.varies.is_some() => {
                self.inner.store.holds(path_tag).await == Some(false)
            }
            _ => false,
        };
        let job = self.fill_job(cacheable, miss, (tenant, tags), target, parts, client)?;
        let (tx, rx) = oneshot::channel();
        let inner = self.inner.clone();
        tokio::spawn(async move { run_fill(inner, leader, job, tx).await });
        let answer = rx
            .await
            .map_err(|_| ProxyError::Internal("fill task ended without an answer"))?;
        let head = cacheable.head;
        let outcome = |fill| {
            if uri_miss {
                Outcome::UriMiss(fill)
            } else {
                Outcome::Miss(fill)
            }
        };
        match answer {
            LeaderAnswer::Entry(entry, _)
                if !led && !answers(&entry, &cacheable.key, &parts.headers, miss.user) =>
            {
                Ok(None)
            }
            LeaderAnswer::Entry(entry, fill) => {
                let response =
                    super::http_cache::respond(&entry, &parts.method, &parts.headers, None);
                Ok(Some(Answer::cached(response, outcome(fill), cacheable)))
            }
            LeaderAnswer::Shared(entry)
                if !answers(&entry, &cacheable.key, &parts.headers, miss.user) =>
            {
                Ok(None)
            }
            LeaderAnswer::Shared(entry) => {
                let response = super::http_cache::respond(
                    &entry,
                    &parts.method,
                    &parts.headers,
                    Some(UnixMillis::now()),
                );
                Ok(Some(Answer::cached(
                    response,
                    Outcome::SharedHit,
                    cacheable,
                )))
            }
            LeaderAnswer::Private(mut response, reason) => {
                if head {
                    *response.body_mut() = ProxyBody::empty();
                }
                let outcome = outcome(Fill::NotStored(reason));
                Ok(Some(Answer::cached(response, outcome, cacheable)))
            }
            LeaderAnswer::Error(err) => Err(err.copy_for_waiters()),
            // The held entry is the leader's own (looked up under its key).
            LeaderAnswer::Stale(entry, fault) => {
                let response = super::http_cache::respond(
                    &entry,
                    &parts.method,
                    &parts.headers,
                    Some(UnixMillis::now()),
                );
                let outcome = Outcome::Stale(StaleServed::IfError(fault));
                Ok(Some(Answer::cached(response, outcome, cacheable)))
            }
            LeaderAnswer::Revalidated(entry, fill) => {
                let response =
                    super::http_cache::respond(&entry, &parts.method, &parts.headers, None);
                let outcome = Outcome::Revalidated(fill);
                Ok(Some(Answer::cached(response, outcome, cacheable)))
            }
        }
    }
}

impl Proxy {
    /// Everything a fill task needs, built from the request before it is spawned: the fill
    /// request (conditional with the held entry's validators), the readable key and the
    /// route's rules.
    fn fill_job(
        &self,
        cacheable: &Cacheable<'_>,
        miss: &Miss<'_>,
        (tenant, tags): (TenantScope, Vec<TagKey>),
        target: &cache_key::Target<'_>,
        parts: &http::request::Parts,
        client: &ClientInfo<'_>,
    ) -> Result<FillJob, ProxyError> {
        let keyed_headers = keyed_headers(cacheable);
        let rules = fill_rules(cacheable, miss, &keyed_headers);
        let mut request = self.fill_request(parts, target, client, &rules)?;
        let sent = request.headers().clone();
        // Validators go on fills on behalf of the cache only (the client's own conditional
        // headers never do): a `304` then refreshes the held entry without a body.
        let conditional = miss.held.as_ref().is_some_and(|held| {
            add_validators(request.headers_mut(), &held.entry.headers().to_map())
        });
        let config = &self.inner.config;
        let readable_key = cache_key::readable(&KeyParts {
            namespace: &config.cache.namespace,
            version: config.cache.version,
            host: client.host,
            tenant: tenant.id(),
            user: cacheable.user.as_deref(),
            credential_key: self.inner.credential_key.as_bytes(),
            target,
            vary: &cacheable.route.vary,
            headers: &parts.headers,
        });
        let route = cacheable.route;
        Ok(FillJob {
            primary: cacheable.key,
            lookup: miss.lookup,
            request,
            sent,
            tags,
            freshness: route.freshness.clone(),
            held: miss.held.clone(),
            conditional,
            readable_key,
            keyed_headers,
            scope: route.scope,
            scope_declared: route.scope_declared,
            max_variants: route.max_variants,
            user: miss.user.map(str::to_owned),
            tenant,
            target: target.path_and_query(),
            route: route.id,
            compress: route.compress,
            http: route.http,
        })
    }

    /// Starts the one background refresh of a stale entry that is being answered: leads a
    /// fill through the single-flight map (so concurrent stale answers send one request), or
    /// does nothing when a fill of the key is already in flight. The fill is fenced like any
    /// other: one that overlapped a purge is not stored.
    pub(super) fn refresh_in_background(
        &self,
        cacheable: &Cacheable<'_>,
        miss: &Miss<'_>,
        resolved: &Resolved<'_, '_>,
        parts: &http::request::Parts,
        client: &ClientInfo<'_>,
    ) {
        let inner = &self.inner;
        let (tenant, tags) = super::fill_scope(cacheable, resolved);
        let role = inner.flights.join_or_lead(
            miss.lookup,
            |meta| !inner.store.is_fenced(&meta.ticket, &tags),
            || FlightMeta {
                ticket: inner.store.begin_fill(),
            },
        );
        let Role::Leader(leader) = role else {
            return; // a fill of this key is in flight: it refreshes the entry
        };
        match self.fill_job(
            cacheable,
            miss,
            (tenant, tags),
            resolved.target,
            parts,
            client,
        ) {
            Ok(job) => {
                // Nobody waits for the answer: the stale entry has answered already.
                let (tx, _) = oneshot::channel();
                let inner = self.inner.clone();
                tokio::spawn(async move { run_fill(inner, leader, job, tx).await });
            }
            Err(err) => {
                tracing::warn!(error = %err.chain(), "background refresh not started");
                leader.publish(Shared::Error(Arc::new(err)));
            }
        }
    }
}

/// The fill task: fetch, decide, store, then publish to waiters and answer the leader.
async fn run_fill(
    inner: Arc<Inner>,
    leader: Leader<Key, Shared, FlightMeta>,
    job: FillJob,
    answer: oneshot::Sender<LeaderAnswer>,
) {
    let FillJob {
        primary,
        lookup,
        request,
        sent,
        tags,
        freshness,
        held,
        conditional,
        readable_key,
        keyed_headers,
        scope,
        scope_declared,
        max_variants,
        user,
        tenant,
        target,
        route,
        http: switches,
        compress,
    } = job;
    let rules = StoreRules {
        cacheable_statuses: &inner.config.cache.cacheable_statuses,
        negative_statuses: freshness
            .negative
            .as_ref()
            .map_or(&[][..], |n| &n.statuses[..]),
        max_object_size: inner.config.cache.max_object_size,
    };
    let vary_rules = VaryRules {
        keyed: &keyed_headers,
        scope,
        scope_declared,
        user_known: user.is_some(),
    };
    // Cross-instance single-flight: one instance fills a cold key, the others wait for it.
    let mut lease = LeaseGuard {
        inner: inner.clone(),
        token: None,
        filled: false,
    };
    match inner.store.lease(&tenant, &lookup).await {
        LeaseDecision::Fill(token) => lease.token = token,
        LeaseDecision::Wait => {
            let bound = inner.config.cache.coalesce_timeout;
            if inner.store.wait_lease(&tenant, &lookup, bound).await == LeaseWait::Filled {
                let variant_of = |selection: &Selection| {
                    vary::variant_key(&primary, selection, &sent, user.as_deref())
                };
                let now = UnixMillis::now();
                let found = inner
                    .store
                    .find(tenant.id(), &primary, &variant_of, now)
                    .await;
                if let Some((entry, _)) = found.entry {
                    leader.publish(Shared::Entry(entry.clone()));
                    let _ = answer.send(LeaderAnswer::Shared(entry));
                    return;
                }
            }
            // The holder gave up, died or stored nothing this request can use: fill here.
        }
    }
    let shared_ticket = inner.store.shared_ticket(&tenant).await;
    let timeout = inner.upstream.timeout();
    // A held entry inside its `stale-if-error` window answers should the backend fail.
    let fallback = held.as_ref().filter(|h| {
        let l = h.entry.lifetimes();
        l.stale_if_error_until > l.fresh_until
    });
    let expect = Expect {
        conditional,
        fallback: fallback.is_some(),
    };
    let request_time = UnixMillis::now();
    let fetch = fetch(
        &inner,
        request,
        &rules,
        &vary_rules,
        expect,
        &switches,
        compress,
    );
    let fetched = match tokio::time::timeout(timeout, fetch).await {
        Ok(result) => result,
        Err(_elapsed) => Err(ProxyError::UpstreamTimeout(timeout)),
    };
    // The backend failed: a held entry inside its window answers instead of the failure.
    let fault = match &fetched {
        Err(err) => Some(fault_of(err)),
        Ok(Fetched::Failing(code, _)) => Some(BackendFault::Status(*code)),
        Ok(_) => None,
    };
    if let (Some(fault), Some(held)) = (fault, fallback) {
        let facts = freshness::EntryFacts {
            lifetimes: held.entry.lifetimes(),
            soft_purged: held.soft_purged,
            has_validators: freshness::has_validators(&held.entry.headers().to_map()),
            route_revalidates: freshness.serves_while_revalidating(),
        };
        let now = UnixMillis::now();
        if freshness::usability(&facts, Situation::BackendFailed, now)
            == Usability::StaleServable(StaleWhy::IfError)
        {
            if let Err(err) = &fetched {
                tracing::warn!(error = %err.chain(), "fill failed; answering from the stale entry");
            }
            let entry = Arc::clone(&held.entry);
            leader.publish(Shared::Stale(Arc::clone(&entry), fault));
            let _ = answer.send(LeaderAnswer::Stale(entry, fault));
            return;
        }
    }
    let fetched = match fetched {
        Ok(Fetched::Failing(_, response)) => Ok(Fetched::Private(response, NotStored::Status)),
        other => other,
    };
    match fetched {
        Ok(Fetched::NotModified(parts)) => {
            let Some(held) = held else {
                // `conditional` implies a held entry; without one there is nothing to refresh.
                leader.publish(Shared::NotShareable);
                let response = Response::from_parts(parts, ProxyBody::empty());
                let _ = answer.send(LeaderAnswer::Private(response, NotStored::Status));
                return;
            };
            let entry = Arc::new(revalidated(
                &held.entry,
                &parts.headers,
                &freshness,
                &switches,
                request_time,
            ));
            let fill =
                store_and_publish(&inner, leader, shared_ticket.as_ref(), &mut lease, &entry).await;
            tracing::debug!(key = %entry.key.short_hex(), fill = ?fill, "revalidated");
            let _ = answer.send(LeaderAnswer::Revalidated(entry, fill));
        }
        Ok(Fetched::Failing(..)) => unreachable!("turned into a private answer above"),
        Ok(Fetched::Complete(parts, body, declared, selection)) => {
            // The route's TTL and windows, or in honour-origin mode the origin's freshness
            // (RFC 9111 §4.2) counted from its age on arrival.
            let (stored_at, mut origin) = http_cache_policy::origin_says(
                &switches,
                parts.status,
                &parts.headers,
                super::http_cache::system_time(request_time),
                super::http_cache::system_time(UnixMillis::now()),
            );
            // A digest `ETag` added below is a validator too: the entry can be revalidated.
            origin.validators |= switches.etag == EtagRule::Digest && parts.status.is_success();
            let stored_at = super::http_cache::unix_millis(stored_at);
            let lifetimes =
                freshness::lifetimes(&freshness, parts.status.as_u16(), &origin, stored_at);
            // Where the entry goes: the request's key, or the variant its `Vary` selects.
            let (key, variant, readable_key) = if selection.is_empty() {
                inner.store.forget_variants(&tenant, &primary).await;
                (primary, None, readable_key)
            } else {
                let selection = Arc::new(selection);
                let key = vary::variant_key(&primary, &selection, &sent, user.as_deref());
                let admitted = inner
                    .store
                    .admit_variant(
                        &tenant,
                        primary,
                        &selection,
                        key,
                        max_variants,
                        lifetimes.usable_until(),
                    )
                    .await;
                if admitted.is_err() {
                    leader.publish(Shared::NotShareable);
                    let body = ProxyBody::Prefixed {
                        prefix: body.chunks,
                        rest: None,
                    };
                    let response = Response::from_parts(parts, body);
                    let _ = answer.send(LeaderAnswer::Private(response, NotStored::VaryLimit));
                    return;
                }
                let readable_key = format!("{readable_key} {}", variant_label(&selection, &sent));
                (key, Some(selection), readable_key)
            };
            let mut tags = tags;
            for tag in declared {
                let tag = TagKey::new(tenant.clone(), Tag::parse(&tag));
                if !tags.contains(&tag) {
                    tags.push(tag);
                }
            }
            let mut headers = cacheability::stored_headers(&parts.headers);
            if !matches!(parts.status.as_u16(), 100..=199 | 204 | 304) {
                // The body is whole now: its length is known even when the origin streamed it
                // chunked, and a HEAD answered from the entry must announce it.
                headers.insert(
                    http::header::CONTENT_LENGTH,
                    http::HeaderValue::from(body.len),
                );
            }
            if switches.etag == EtagRule::Digest
                && parts.status.is_success()
                && !headers.contains_key(http::header::ETAG)
            {
                let tag =
                    http_cache_policy::etag::digest_chunks(body.chunks.iter().map(|c| &c[..]));
                headers.insert(http::header::ETAG, tag);
            }
            // The entry owns what it stores: nothing in it may keep a connection's read
            // buffer alive (issue 12). Strings and lists are of their exact length too.
            let entry = Arc::new(CachedResponse::from(EntryParts {
                content: compact(parts.status, &headers, body.chunks.iter()),
                stored_at,
                lifetimes,
                extra_tags: extra_tags(tags.iter().map(|t| &t.tag)),
                // Entries of one tenant share one copy of its id.
                tenant: inner.store.interned_tenant(tenant),
                text: EntryText::new(&target, &readable_key),
                key,
                variant,
                // Route ids are handed out one by one from zero.
                route: u32::try_from(route).unwrap_or(u32::MAX),
            }));
            let fill =
                store_and_publish(&inner, leader, shared_ticket.as_ref(), &mut lease, &entry).await;
            tracing::debug!(key = %entry.key.short_hex(), fill = ?fill, "filled");
            let _ = answer.send(LeaderAnswer::Entry(entry, fill));
        }
        Ok(Fetched::Private(response, reason)) => {
            leader.publish(Shared::NotShareable);
            let _ = answer.send(LeaderAnswer::Private(response, reason));
        }
        Err(err) => {
            // The target, not the readable key: a query may carry a credential, which the
            // log must not show.
            let shown = match target.split_once('?') {
                Some((path, query)) => format!("{path}?{}", crate::access::redact_query(query)),
                None => target.clone(),
            };
            tracing::warn!(target = %shown, error = %err.chain(), "fill failed");
            let err = Arc::new(err);
            leader.publish(Shared::Error(err.clone()));
            let _ = answer.send(LeaderAnswer::Error(err));
        }
    }
}

/// Stores what a fill (or a `304` refresh) produced, through the tickets taken before its
/// request went out, then publishes it to the waiters; a stored entry lets the other
/// instances' waiters look it up (the lease says `filled`).
async fn store_and_publish(
    inner: &Inner,
    leader: Leader<Key, Shared, FlightMeta>,
    shared_ticket: Option<&crate::store::shared::SharedTicket>,
    lease: &mut LeaseGuard,
    entry: &Arc<CachedResponse>,
) -> Fill {
    let fill = match inner
        .store
        .store(&leader.meta().ticket, shared_ticket, entry.clone())
        .await
    {
        StoreOutcome::Stored => {
            lease.filled = true;
            Fill::Stored
        }
        StoreOutcome::Fenced => Fill::Fenced,
        StoreOutcome::TooLarge => Fill::NotStored(NotStored::TooLarge),
    };
    // Store first, publish second: a request arriving in between finds the entry.
    if fill == Fill::Fenced {
        // A purge overtook this fill. Requests joining after the purge were let in when it
        // named only tags they could not see (tags the origin declares in its response), so
        // no waiter may take this body: each goes round again, behind a fill that starts
        // after the purge. The leader's own request started before the purge and may have it.
        leader.publish(Shared::NotShareable);
    } else {
        leader.publish(Shared::Entry(entry.clone()));
    }
    fill
}

/// A fill's cross-instance lease, released (in the background) however the fill ends; with
/// `filled`, the other instances' waiters are told to look the key up.
struct LeaseGuard {
    inner: Arc<Inner>,
    token: Option<crate::store::LeaseToken>,
    filled: bool,
}

impl Drop for LeaseGuard {
    fn drop(&mut self) {
        if let Some(token) = self.token.take() {
            let (inner, filled) = (self.inner.clone(), self.filled);
            tokio::spawn(async move { inner.store.release_lease(token, filled).await });
        }
    }
}
