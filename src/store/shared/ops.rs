//! The operations: lookups, fenced stores, vary records, metadata updates, purges, leases
//! and Redis's own figures.

use std::sync::Arc;
use std::time::Duration;

use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::{AsyncCommands, RedisResult};

use super::conn::Conn;
use super::encode::{decode_entry, decode_selection, encode_entry, encode_selection};
use super::keys::{scope_form, tag_digest, tenant_tag, text_digest, TenantNames};
use super::scripts::{LEASE_SCRIPT, META_SCRIPT, PURGE_SCRIPT, RELEASE_SCRIPT, STORE_SCRIPT};
use super::tier::{bump, random_u64, Inner};
use super::wire::{lease_message, purge_message};
use super::{
    Lease, LeaseToken, LeaseWait, RedisInfo, SharedError, SharedFound, SharedStored, SharedTicket,
};
use crate::clock::UnixMillis;
use crate::policy::tag::Tag;
use crate::policy::vary::Selection;
use crate::policy::Key;
use crate::store::{CachedResponse, Purge, PurgeScope, TenantScope};

/// How long a filled lease stays as a marker, for waiters that poll.
const FILLED_MARKER_MS: u64 = 2000;
/// Polling interval of a lease waiter, besides the announcement.
const LEASE_POLL: Duration = Duration::from_millis(20);
/// `info` sums the entries of at most this many tenants.
const INFO_TENANTS: usize = 1000;

/// Whether the found value decodes to the entry stored under `key`.
fn decode_for(inner: &Inner, key: &Key, value: Option<Vec<u8>>) -> Option<Arc<CachedResponse>> {
    let value = value?;
    match decode_entry(&value) {
        Ok(entry) if entry.key == *key => Some(Arc::new(entry)),
        Ok(_) => {
            bump(&inner.counters.errors);
            tracing::debug!("shared entry under another key's name");
            None
        }
        Err(e) => {
            bump(&inner.counters.errors);
            tracing::debug!(error = %e, "shared entry does not decode");
            None
        }
    }
}

pub(crate) async fn lookup(
    inner: &Inner,
    tenant: &TenantScope,
    primary: &Key,
    variant_of: &(dyn Fn(&Selection) -> Key + Sync),
) -> Result<SharedFound, SharedError> {
    let names = &inner.names.tenant(tenant);
    let (vary, value, stale): (Option<Vec<u8>>, Option<Vec<u8>>, bool) = inner
        .call(|mut conn| async move {
            redis::pipe()
                .get(names.vary(primary))
                .get(names.entry(primary))
                .exists(names.stale(primary))
                .query_async(&mut conn)
                .await
        })
        .await?;
    let selection = match vary.map(|v| decode_selection(&v)) {
        Some(Ok(selection)) if !selection.is_empty() => Some(Arc::new(selection)),
        Some(Err(e)) => {
            bump(&inner.counters.errors);
            tracing::debug!(error = %e, "shared vary record does not decode");
            None
        }
        _ => None,
    };
    let found = match selection {
        None => SharedFound {
            varies: None,
            key: Some(*primary),
            entry: decode_for(inner, primary, value),
            stale,
        },
        Some(selection) => {
            let variant = variant_of(&selection);
            let names = &inner.names.tenant(tenant);
            let (value, stale): (Option<Vec<u8>>, bool) = inner
                .call(|mut conn| async move {
                    redis::pipe()
                        .get(names.entry(&variant))
                        .exists(names.stale(&variant))
                        .query_async(&mut conn)
                        .await
                })
                .await?;
            SharedFound {
                varies: Some(selection),
                key: Some(variant),
                entry: decode_for(inner, &variant, value),
                stale,
            }
        }
    };
    if found.entry.is_some() {
        bump(&inner.counters.hits);
    } else {
        bump(&inner.counters.misses);
    }
    Ok(SharedFound {
        stale: found.stale && found.entry.is_some(),
        ..found
    })
}

pub(crate) async fn ticket(
    inner: &Inner,
    tenant: &TenantScope,
) -> Result<SharedTicket, SharedError> {
    let taken = UnixMillis::now();
    let registry = &inner.names.registry();
    let member = &format!("{} {}", tenant_tag(tenant), scope_form(tenant));
    let fence = &inner.names.tenant(tenant).fence();
    let cluster = inner.is_cluster();
    let seq: Option<u64> = inner
        .call(|mut conn| async move {
            if cluster {
                // Two slots: the registration is awaited before the sequence is read.
                let () = conn.sadd(registry, member).await?;
                conn.hget(fence, "#seq").await
            } else {
                let (seq,): (Option<u64>,) = redis::pipe()
                    .sadd(registry, member)
                    .ignore()
                    .hget(fence, "#seq")
                    .query_async(&mut conn)
                    .await?;
                Ok(seq)
            }
        })
        .await?;
    Ok(SharedTicket {
        tenant: tenant.clone(),
        seq: seq.unwrap_or(0),
        taken,
    })
}

/// Where an entry is indexed: its URI set, path and tag sets.
struct Placement {
    member: String,
    uri_set: String,
    path: Option<String>,
    tag_sets: Vec<String>,
    tag_digests: Vec<String>,
}

fn placement(names: &TenantNames, entry: &CachedResponse) -> Placement {
    let all = entry.tags();
    let mut tags: Vec<&Tag> = all.iter().map(|t| &t.tag).collect();
    tags.sort();
    tags.dedup();
    let path = tags.iter().find_map(|t| match t {
        Tag::Path(p) => Some(p.to_string()),
        _ => None,
    });
    Placement {
        member: hex::encode(entry.key.0),
        uri_set: names.uri_set(entry.target()),
        path,
        tag_sets: tags.iter().map(|t| names.tag_set(t)).collect(),
        tag_digests: tags.iter().map(|t| tag_digest(t)).collect(),
    }
}

pub(crate) async fn store(
    inner: &Inner,
    ticket: &SharedTicket,
    entry: &CachedResponse,
    until: UnixMillis,
) -> Result<SharedStored, SharedError> {
    if ticket.tenant != entry.tenant {
        // A ticket proves nothing about another tenant's purges.
        bump(&inner.counters.fenced);
        return Ok(SharedStored::Fenced);
    }
    let names = inner.names.tenant(&entry.tenant);
    let place = placement(&names, entry);
    let value = encode_entry(entry, inner.opts.compress_above);
    let now = UnixMillis::now();
    let retention = inner.opts.fence_retention.as_millis() as u64;
    let stored: i64 = inner
        .call(|mut conn| {
            let mut invocation = STORE_SCRIPT.prepare_invoke();
            invocation
                .key(names.fence())
                .key(names.entry(&entry.key))
                .key(names.stale(&entry.key))
                .key(names.paths())
                .key(names.path_expiry())
                .key(&place.uri_set);
            for set in &place.tag_sets {
                invocation.key(set);
            }
            invocation
                .arg(ticket.seq)
                .arg(ticket.taken.0)
                .arg(now.0)
                .arg(until.0)
                .arg(retention)
                .arg(&value)
                .arg(&place.member)
                .arg(place.path.as_deref().unwrap_or(""))
                .arg(if place.path.is_some() { "1" } else { "0" });
            for digest in &place.tag_digests {
                invocation.arg(digest);
            }
            async move { invocation.invoke_async(&mut conn).await }
        })
        .await?;
    if stored == 1 {
        bump(&inner.counters.stores);
        Ok(SharedStored::Stored)
    } else {
        bump(&inner.counters.fenced);
        Ok(SharedStored::Fenced)
    }
}

pub(crate) async fn store_vary(
    inner: &Inner,
    tenant: &TenantScope,
    primary: &Key,
    selection: Option<&Selection>,
    until: UnixMillis,
) -> Result<(), SharedError> {
    let key = &inner.names.tenant(tenant).vary(primary);
    let ttl = UnixMillis::now().until(until).as_millis() as u64;
    match selection.filter(|s| !s.is_empty()) {
        Some(selection) if ttl > 0 => {
            let value = &encode_selection(selection);
            inner
                .call(|mut conn| async move { conn.pset_ex(key, value, ttl).await })
                .await
        }
        _ => {
            inner
                .call(|mut conn| async move { conn.del(key).await })
                .await
        }
    }
}

pub(crate) async fn update_meta(
    inner: &Inner,
    entry: &CachedResponse,
    until: UnixMillis,
) -> Result<bool, SharedError> {
    let names = inner.names.tenant(&entry.tenant);
    let key = names.entry(&entry.key);
    let read_key = &key;
    let old: Option<Vec<u8>> = inner
        .call(|mut conn| async move { conn.get(read_key).await })
        .await?;
    let Some(old) = old else { return Ok(false) };
    let mut stored = match decode_entry(&old) {
        Ok(stored) => stored,
        Err(e) => {
            bump(&inner.counters.errors);
            return Err(SharedError::Decode(e.to_string()));
        }
    };
    // All the lifetimes, not only the freshness: a revalidated entry's stale windows start
    // again with it, as they do in the memory tier.
    stored.set_times(entry.stored_at(), entry.lifetimes());
    stored.content = crate::store::compact(
        stored.status(),
        &entry.headers().to_map(),
        std::iter::once(&stored.body()),
    );
    let place = placement(&names, &stored);
    let value = encode_entry(&stored, inner.opts.compress_above);
    let old_digest = sha1_smol::Sha1::from(&old).digest().to_string();
    let now = UnixMillis::now();
    let replaced: i64 = inner
        .call(|mut conn| {
            let mut invocation = META_SCRIPT.prepare_invoke();
            invocation
                .key(&key)
                .key(names.paths())
                .key(names.path_expiry())
                .key(&place.uri_set);
            for set in &place.tag_sets {
                invocation.key(set);
            }
            invocation
                .arg(now.0)
                .arg(until.0)
                .arg(&value)
                .arg(&place.member)
                .arg(place.path.as_deref().unwrap_or(""))
                .arg(if place.path.is_some() { "1" } else { "0" })
                .arg(&old_digest);
            async move { invocation.invoke_async(&mut conn).await }
        })
        .await?;
    Ok(replaced == 1)
}

/// One tenant's part of a purge, as the purge script takes it.
fn purge_args(purge: &Purge) -> (Vec<String>, Vec<String>, Vec<String>, Vec<String>) {
    let fences = purge.fence_tags().iter().map(tag_digest).collect();
    let mut sets: Vec<Tag> = purge.tags.clone();
    sets.extend(purge.paths.iter().map(|p| Tag::path(p)));
    if purge.all {
        sets.push(Tag::Tenant);
    }
    let sets = sets.iter().map(tag_digest).collect();
    let uris = purge.uris.iter().map(|u| text_digest(u)).collect();
    let prefixes = purge.prefixes.iter().map(|p| p.to_string()).collect();
    (fences, sets, uris, prefixes)
}

async fn purge_tenant(
    mut conn: Conn,
    names: TenantNames,
    args: &(Vec<String>, Vec<String>, Vec<String>, Vec<String>),
    soft: bool,
    retention: u64,
) -> RedisResult<u64> {
    let (fences, sets, uris, prefixes) = args;
    let mut invocation = PURGE_SCRIPT.prepare_invoke();
    invocation
        .key(names.fence())
        .key(names.fence_queue())
        .key(names.paths())
        .key(names.path_expiry())
        .arg(&names.base)
        .arg(UnixMillis::now().0)
        .arg(retention)
        .arg(if soft { "1" } else { "0" })
        .arg(fences.len())
        .arg(sets.len())
        .arg(uris.len())
        .arg(prefixes.len());
    for a in fences.iter().chain(sets).chain(uris).chain(prefixes) {
        invocation.arg(a);
    }
    invocation.invoke_async(&mut conn).await
}

/// Applies a purge in Redis and publishes it.
pub(crate) async fn apply_purge(inner: &Inner, purge: &Purge) -> Result<usize, SharedError> {
    let args = purge_args(purge);
    let retention = inner.opts.fence_retention.as_millis() as u64;
    let tenants: Vec<TenantNames> = match &purge.tenant {
        PurgeScope::Only(tenant) => vec![inner.names.tenant(tenant)],
        PurgeScope::All => {
            let registry = &inner.names.registry();
            let members: Vec<String> = inner
                .call(|mut conn| async move { conn.smembers(registry).await })
                .await?;
            members
                .iter()
                .filter_map(|m| m.split_once(' ').map(|(tag, _)| tag))
                .map(|tag| inner.names.tenant_by_tag(tag))
                .collect()
        }
    };
    let mut purged = 0u64;
    let args = &args;
    // A few tenants' scripts at a time, each under the command timeout.
    for chunk in tenants.chunks(16) {
        let results = inner
            .call(|conn| async move {
                let mut set = tokio::task::JoinSet::new();
                for names in chunk {
                    let (conn, names, args) = (conn.clone(), names.clone(), args.clone());
                    let soft = purge.soft;
                    set.spawn(
                        async move { purge_tenant(conn, names, &args, soft, retention).await },
                    );
                }
                let mut total = 0u64;
                while let Some(result) = set.join_next().await {
                    match result {
                        Ok(Ok(n)) => total += n,
                        Ok(Err(e)) => return Err(e),
                        Err(_) => {
                            return Err(redis::RedisError::from((
                                redis::ErrorKind::Client,
                                "purge task failed",
                            )))
                        }
                    }
                }
                Ok(total)
            })
            .await?;
        purged += results;
    }
    let channel = &inner.names.channel();
    let message = &purge_message(inner.instance, UnixMillis::now().0, purge);
    inner
        .call(|mut conn| async move { conn.publish::<_, _, ()>(channel, message).await })
        .await?;
    bump(&inner.counters.purges);
    Ok(purged as usize)
}

pub(crate) async fn purge(inner: &Inner, purge: &Purge) -> Result<usize, SharedError> {
    if purge.is_empty() {
        return Ok(0);
    }
    match apply_purge(inner, purge).await {
        Ok(n) => Ok(n),
        Err(e) => {
            inner.keep_for_replay(purge);
            Err(e)
        }
    }
}

/// Replays the purges kept while Redis was unreachable, in order, until one fails.
pub(crate) async fn replay(inner: &Inner) {
    while let Some(purge) = inner.next_replay() {
        if apply_purge(inner, &purge).await.is_err() {
            return;
        }
        tracing::info!("replayed a purge kept while redis was unreachable");
        inner.replayed(&purge);
    }
}

pub(crate) async fn lease(
    inner: &Inner,
    tenant: &TenantScope,
    key: &Key,
    ttl: Duration,
) -> Result<Lease, SharedError> {
    let name = &inner.names.tenant(tenant).lease(key);
    let value = random_u64();
    let ttl = (ttl.as_millis() as u64).max(1);
    let taken: i64 = inner
        .call(|mut conn| async move {
            LEASE_SCRIPT
                .key(name)
                .arg(value.to_string())
                .arg(ttl)
                .invoke_async(&mut conn)
                .await
        })
        .await?;
    if taken == 1 {
        bump(&inner.counters.leases_acquired);
        Ok(Lease::Acquired(LeaseToken {
            tenant: tenant.clone(),
            key: *key,
            value,
        }))
    } else {
        Ok(Lease::Held)
    }
}

pub(crate) async fn release(
    inner: &Inner,
    token: LeaseToken,
    filled: bool,
) -> Result<(), SharedError> {
    let name = inner.names.tenant(&token.tenant).lease(&token.key);
    let channel = &inner.names.channel();
    let message = &lease_message(&name);
    let name_ref = &name;
    let value = token.value;
    let result = inner
        .call(|mut conn| async move {
            RELEASE_SCRIPT
                .key(name_ref)
                .arg(value.to_string())
                .arg(if filled { "1" } else { "0" })
                .arg(channel)
                .arg(message)
                .arg(FILLED_MARKER_MS)
                .invoke_async::<i64>(&mut conn)
                .await
        })
        .await;
    inner.wake(&name);
    result.map(|_| ())
}

pub(crate) async fn wait_lease(
    inner: &Arc<Inner>,
    tenant: &TenantScope,
    key: &Key,
    timeout: Duration,
) -> LeaseWait {
    bump(&inner.counters.lease_waits);
    let name = inner.names.tenant(tenant).lease(key);
    let deadline = tokio::time::Instant::now() + timeout;
    let guard = inner.waiter(&name);
    // Bounded: every round waits at least until the next poll, and the deadline ends it.
    loop {
        let notified = guard.notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let name = &name;
        let value: Option<String> = match inner
            .call(|mut conn| async move { conn.get(name).await })
            .await
        {
            Ok(value) => value,
            Err(_) => return LeaseWait::Released,
        };
        match value.as_deref() {
            None => return LeaseWait::Released,
            Some("F") => return LeaseWait::Filled,
            Some(_) => {}
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return LeaseWait::TimedOut;
        }
        let poll = LEASE_POLL.min(deadline - now);
        tokio::select! {
            () = &mut notified => {}
            () = tokio::time::sleep(poll) => {}
        }
    }
}

fn info_field<'a>(info: &'a str, name: &str) -> Option<&'a str> {
    info.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .map(str::trim)
}

pub(crate) async fn info(inner: &Inner) -> Result<RedisInfo, SharedError> {
    let cluster = inner.is_cluster();
    let text: String = inner
        .call(|mut conn| async move {
            let mut cmd = redis::cmd("INFO");
            cmd.arg("server").arg("memory");
            match &mut conn {
                Conn::Cluster(c) => {
                    let value = c
                        .route_command(cmd, RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random))
                        .await?;
                    Ok(redis::from_redis_value(value)?)
                }
                Conn::Single(_) => cmd.query_async(&mut conn).await,
            }
        })
        .await?;
    let registry = &inner.names.registry();
    let (tenants, members): (u64, Vec<String>) = inner
        .call(|mut conn| async move {
            let tenants: u64 = conn.scard(registry).await?;
            let members: Vec<String> = conn
                .srandmember_multiple(registry, INFO_TENANTS as isize)
                .await?;
            Ok((tenants, members))
        })
        .await?;
    let sets: &Vec<String> = &members
        .iter()
        .filter_map(|m| m.split_once(' ').map(|(tag, _)| tag))
        .map(|tag| inner.names.tenant_by_tag(tag).tag_set(&Tag::Tenant))
        .collect::<Vec<String>>();
    let entries: u64 = inner
        .call(|mut conn| async move {
            if cluster {
                let mut total = 0u64;
                for set in sets {
                    let n: u64 = conn.zcard(set).await?;
                    total += n;
                }
                Ok(total)
            } else {
                let mut pipe = redis::pipe();
                for set in sets {
                    pipe.zcard(set);
                }
                let counts: Vec<u64> = pipe.query_async(&mut conn).await?;
                Ok(counts.iter().sum())
            }
        })
        .await?;
    Ok(RedisInfo {
        version: info_field(&text, "redis_version")
            .unwrap_or_default()
            .to_string(),
        mode: info_field(&text, "redis_mode")
            .unwrap_or_default()
            .to_string(),
        used_memory: info_field(&text, "used_memory")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
        entries,
        tenants,
    })
}

/// Whether `conn` answers.
pub(crate) async fn ping(mut conn: Conn) -> RedisResult<()> {
    redis::cmd("PING")
        .query_async::<String>(&mut conn)
        .await
        .map(|_| ())
}
