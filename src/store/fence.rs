//! Fill fences: how a purge stops fills that were already in flight from storing stale data.
//!
//! A global sequence counts purges. A fill takes a [`FillTicket`] (the sequence at its start)
//! before it sends the upstream request. A purge bumps the sequence and records, per tag and
//! tenant (or per tag for all tenants), the value it bumped to, and only then removes entries.
//! A fill is fenced when a purge covering one of its tags recorded a value above its ticket,
//! that is, when the purge began after the fill did. Tags may only be known once the response
//! arrives (origin `Cache-Tag` headers), which is why the check is "purged since my start"
//! rather than a snapshot of per-tag state taken at the start.
//!
//! Records older than the oldest ticket still in flight can never fence anything, so they are
//! pruned whenever the record map grows past a threshold; tickets register themselves on
//! creation and deregister on drop so that the oldest one is known.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use super::{PurgeScope, Tag, TagKey, TenantScope};

/// Below this many records the map is never pruned: pruning a small map saves nothing.
const PRUNE_MIN: usize = 1024;

/// Proof that a fill began at a given point of the purge sequence.
///
/// Keep it alive until the fill is stored or abandoned: while it lives, the purge records that
/// could fence it are kept.
pub struct FillTicket {
    seq: u64,
    fences: Arc<Fences>,
    /// The memory tier's trust epoch when the ticket was taken (see `tier::Trust`).
    pub(crate) epoch: u64,
}

impl std::fmt::Debug for FillTicket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FillTicket")
            .field("seq", &self.seq)
            .finish()
    }
}

impl Drop for FillTicket {
    fn drop(&mut self) {
        let mut tickets = self.fences.lock_tickets();
        if let Some(count) = tickets.get_mut(&self.seq) {
            *count -= 1;
            if *count == 0 {
                tickets.remove(&self.seq);
            }
        }
    }
}

/// The last purge recorded for one tag: for all tenants, and per tenant.
#[derive(Debug, Default)]
struct TagFence {
    all: u64,
    tenants: HashMap<TenantScope, u64>,
}

#[derive(Debug)]
struct Records {
    by_tag: HashMap<Tag, TagFence>,
    /// Number of recorded values (an `all` value counts as one), compared with `prune_at`.
    len: usize,
    prune_at: usize,
}

/// The purge sequence, the purge records and the registry of tickets in flight.
#[derive(Debug)]
pub(crate) struct Fences {
    seq: AtomicU64,
    records: RwLock<Records>,
    /// Sequence value -> number of live tickets taken at it.
    tickets: Mutex<BTreeMap<u64, usize>>,
}

impl Fences {
    pub(crate) fn new() -> Self {
        Self {
            seq: AtomicU64::new(0),
            records: RwLock::new(Records {
                by_tag: HashMap::new(),
                len: 0,
                prune_at: PRUNE_MIN,
            }),
            tickets: Mutex::new(BTreeMap::new()),
        }
    }

    fn lock_tickets(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, usize>> {
        // The map stays consistent even if a holder panicked, so a poisoned lock is still usable.
        self.tickets.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes a ticket at the current sequence value.
    pub(crate) fn begin(this: &Arc<Self>) -> FillTicket {
        // The sequence is read under the registry lock so that pruning, which reads both under
        // the same lock, never misses a ticket that read an older value.
        let mut tickets = this.lock_tickets();
        let seq = this.seq.load(Ordering::SeqCst);
        *tickets.entry(seq).or_insert(0) += 1;
        FillTicket {
            seq,
            fences: Arc::clone(this),
            epoch: 0,
        }
    }

    /// True when a purge covering any of `tags` began after `ticket` was taken.
    pub(crate) fn is_fenced(&self, ticket: &FillTicket, tags: &[TagKey]) -> bool {
        if tags.is_empty() {
            return false;
        }
        // No purge at all since the ticket: the common case costs one atomic load.
        if self.seq.load(Ordering::SeqCst) == ticket.seq {
            return false;
        }
        let records = self.records.read().unwrap_or_else(PoisonError::into_inner);
        tags.iter().any(|t| {
            records.by_tag.get(&t.tag).is_some_and(|f| {
                f.all > ticket.seq || f.tenants.get(&t.tenant).is_some_and(|&s| s > ticket.seq)
            })
        })
    }

    /// Bumps the sequence and records it for every tag in the scope. Must happen before the
    /// purge looks for entries.
    pub(crate) fn raise(&self, scope: &PurgeScope, tags: &[Tag]) {
        if tags.is_empty() {
            return;
        }
        let seq = self.seq.fetch_add(1, Ordering::SeqCst) + 1;
        let mut records = self.records.write().unwrap_or_else(PoisonError::into_inner);
        let mut added = 0;
        for tag in tags {
            let fence = records.by_tag.entry(tag.clone()).or_default();
            // Concurrent purges may record out of order; the larger value is the one that counts.
            match scope {
                PurgeScope::All => {
                    if fence.all == 0 {
                        added += 1;
                    }
                    fence.all = fence.all.max(seq);
                }
                PurgeScope::Only(tenant) => {
                    let slot = fence.tenants.entry(tenant.clone()).or_insert_with(|| {
                        added += 1;
                        0
                    });
                    *slot = (*slot).max(seq);
                }
            }
        }
        records.len += added;
        if records.len > records.prune_at {
            self.prune(&mut records);
        }
    }

    /// Drops every record that no live or future ticket can be fenced by.
    fn prune(&self, records: &mut Records) {
        let oldest = {
            let tickets = self.lock_tickets();
            match tickets.keys().next() {
                Some(&seq) => seq,
                // Future tickets read at least the current value, and a record fences only
                // tickets strictly below it.
                None => self.seq.load(Ordering::SeqCst),
            }
        };
        let mut len = 0;
        records.by_tag.retain(|_, fence| {
            if fence.all <= oldest {
                fence.all = 0;
            }
            fence.tenants.retain(|_, seq| *seq > oldest);
            len += fence.tenants.len() + usize::from(fence.all != 0);
            fence.all != 0 || !fence.tenants.is_empty()
        });
        records.len = len;
        // A long-lived ticket can keep many records alive; doubling the threshold keeps the
        // pruning cost amortised to a constant per purge in that case.
        records.prune_at = PRUNE_MIN.max(len * 2);
    }

    /// Number of purge records currently held.
    #[cfg(test)]
    pub(crate) fn record_count(&self) -> usize {
        self.records
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len
    }

    /// Number of distinct sequence values with live tickets.
    #[cfg(test)]
    pub(crate) fn live_ticket_seqs(&self) -> usize {
        self.lock_tickets().len()
    }
}
