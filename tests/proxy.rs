//! The integration suite: real origin, real proxy, real sockets on 127.0.0.1 port 0.

#![allow(clippy::unwrap_used)]

mod support;

// hits, misses, keys, tenants, TTL, what is never stored
#[path = "proxy/caching.rs"]
mod caching;
// single-flight: stampedes, failing and cancelled leaders, private responses
#[path = "proxy/coalescing.rs"]
mod coalescing;
// writes passing through evict what they change, fenced against fills in flight
#[path = "proxy/write_eviction.rs"]
mod write_eviction;
// forwarding: headers, hosts, streaming, errors, shutdown
#[path = "proxy/forwarding.rs"]
mod forwarding;
// the invalidation webhook: signatures, purge kinds, fences
#[path = "proxy/invalidation.rs"]
mod invalidation;
// the admin API
#[path = "proxy/admin.rs"]
mod admin;
// authenticated tenants: JWT, introspection, trusted gateways, scopes
#[path = "proxy/auth.rs"]
mod auth;
// TLS: the listener, certificate reloads, https upstreams
#[path = "proxy/tls.rs"]
mod tls;
// protection limits: each answered with its status
#[path = "proxy/limits.rs"]
mod limits;
// the command line: check, bad configs
#[path = "proxy/cli.rs"]
mod cli;
// responses that vary: variants, credentials in Vary, what a fill carries
#[path = "proxy/vary.rs"]
mod vary;
// compression: Accept-Encoding buckets, stored encodings, compress = true, HEAD against GET
#[path = "proxy/compression.rs"]
mod compression;
// warming as a verified caller: credentials in warm requests
#[path = "proxy/warming.rs"]
mod warming;
// tenant shares and route bounds: who loses entries when memory runs out
#[path = "proxy/shares.rs"]
mod shares;
// several instances over one shared Redis tier (and a Redis Cluster)
#[path = "proxy/shared.rs"]
mod shared;
// /metrics: the exposition, its counters, its token
#[path = "proxy/metrics.rs"]
mod metrics;
// HTTP caching: 304 and ranges from entries, digest ETags, honour-origin mode (RFC 9111)
#[path = "proxy/http_cache.rs"]
mod http_cache;
// X-Request-Id: taken when sane, made otherwise, sent to the backend and back to the client
#[path = "proxy/request_id.rs"]
mod request_id;
// hot reload: POST /reload, SIGHUP, the file watch; what applies and what needs a restart
#[path = "proxy/reload.rs"]
mod reload;
// freshness: stale-while-revalidate, stale-if-error, revalidation with 304, negative caching
#[path = "proxy/freshness.rs"]
mod freshness;
