//! Answers from what the lookup found: a fresh entry (a hit, from memory or the shared tier),
//! an entry held past its freshness (answered stale while one request refreshes it, or kept
//! for a conditional fill), and the `504` of `only-if-cached`; whatever cannot answer goes on
//! to the fill. The request's own `Cache-Control` is read through `proxy::http_cache`.

use super::classify::{Cacheable, Resolved};
use super::{fill, http_cache, Answer, Proxy};
use crate::clock::UnixMillis;
use crate::error::ProxyError;
use crate::policy::cacheability::Bypass;
use crate::policy::freshness::{self, Situation, StaleWhy, Usability};
use crate::policy::outcome::{Outcome, StaleServed};
use crate::store::{CachedResponse, Source};
use crate::upstream::ClientInfo;

impl Proxy {
    /// A fresh entry against the request's own `Cache-Control`, where the route honours it
    /// (RFC 9111 §5.2.1): its answer, or `None` when the request goes to the origin anyway.
    pub(super) fn answer_fresh(
        &self,
        entry: &CachedResponse,
        source: Source,
        cacheable: &Cacheable<'_>,
        parts: &http::request::Parts,
        now: UnixMillis,
    ) -> Option<Answer> {
        let route = cacheable.route;
        let outcome = match source {
            Source::Memory => Outcome::Hit,
            Source::Shared => Outcome::SharedHit,
        };
        match http_cache::entry_use(route, &parts.headers, entry, now) {
            http_cache::Use::Stored { .. } => {
                let response = http_cache::respond(entry, &parts.method, &parts.headers, Some(now));
                Some(Answer::cached(response, outcome, cacheable))
            }
            http_cache::Use::GatewayTimeout => {
                let outcome = Outcome::Bypass(Bypass::OnlyIfCached);
                let response = http_cache::gateway_timeout();
                Some(Answer::cached(response, outcome, cacheable))
            }
            http_cache::Use::Forward => None,
        }
    }

    /// The entry held for this key, if any (past its freshness, or soft-purged): answered
    /// stale while one request refreshes it, kept for a conditional fill and as a fallback, or
    /// of no use; without one, the fill.
    pub(super) async fn answer_held(
        &self,
        cacheable: Cacheable<'_>,
        mut miss: fill::Miss<'_>,
        resolved: &Resolved<'_, '_>,
        parts: &http::request::Parts,
        client: &ClientInfo<'_>,
        now: UnixMillis,
    ) -> Result<Answer, ProxyError> {
        let Some(held) = miss.held.take() else {
            return self
                .fill_or_join(cacheable, miss, resolved, parts, client)
                .await;
        };
        let route = cacheable.route;
        let facts = freshness::EntryFacts {
            lifetimes: held.entry.lifetimes(),
            soft_purged: held.soft_purged,
            has_validators: freshness::has_validators(&held.entry.headers().to_map()),
            route_revalidates: cacheable.route.freshness.serves_while_revalidating(),
        };
        let mut usability = freshness::usability(&facts, Situation::Lookup, now);
        let mut stale_why = None;
        if let Usability::StaleServable(why) = usability {
            stale_why = Some(match why {
                StaleWhy::SoftPurged => StaleServed::SoftPurged,
                StaleWhy::WhileRevalidate | StaleWhy::IfError => StaleServed::WhileRevalidate,
            });
        }
        // The request's own Cache-Control, where the route honours it (RFC 9111 §5.2.1):
        // it may restrict the cache's windows, or widen them with `max-stale`.
        let servable = matches!(usability, Usability::StaleServable(_));
        let asked = match usability {
            Usability::Fresh | Usability::Unusable => None,
            _ => http_cache::held_use(
                route,
                &parts.headers,
                &held.entry,
                (servable, held.soft_purged),
                now,
            ),
        };
        match asked {
            None => {}
            Some(http_cache::Use::Stored { .. }) if servable => {}
            Some(http_cache::Use::Stored { .. }) => {
                usability = Usability::StaleServable(StaleWhy::WhileRevalidate);
                stale_why = Some(StaleServed::MaxStale);
            }
            Some(http_cache::Use::Forward) => usability = Usability::MustRevalidate,
            Some(http_cache::Use::GatewayTimeout) => {
                let outcome = Outcome::Bypass(Bypass::OnlyIfCached);
                let response = http_cache::gateway_timeout();
                return Ok(Answer::cached(response, outcome, &cacheable));
            }
        }
        let outcome = match usability {
            Usability::Fresh => match held.source {
                Source::Memory => Outcome::Hit,
                Source::Shared => Outcome::SharedHit,
            },
            Usability::StaleServable(_) => {
                // Conditional requests and ranges are answered from the stale entry too.
                let response =
                    http_cache::respond(&held.entry, &parts.method, &parts.headers, Some(now));
                miss.held = Some(held);
                self.refresh_in_background(&cacheable, &miss, resolved, parts, client);
                let why = stale_why.unwrap_or(StaleServed::WhileRevalidate);
                return Ok(Answer::cached(response, Outcome::Stale(why), &cacheable));
            }
            Usability::MustRevalidate => {
                miss.held = Some(held);
                return self
                    .fill_or_join(cacheable, miss, resolved, parts, client)
                    .await;
            }
            Usability::Unusable => {
                if http_cache::only_if_cached(route, &parts.headers) {
                    let outcome = Outcome::Bypass(Bypass::OnlyIfCached);
                    let response = http_cache::gateway_timeout();
                    return Ok(Answer::cached(response, outcome, &cacheable));
                }
                return self
                    .fill_or_join(cacheable, miss, resolved, parts, client)
                    .await;
            }
        };
        let response = http_cache::respond(&held.entry, &parts.method, &parts.headers, Some(now));
        Ok(Answer::cached(response, outcome, &cacheable))
    }
}
