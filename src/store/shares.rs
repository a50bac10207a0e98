//! What each tenant and each route holds in the memory tier, and which entries go first when
//! a tenant holds more than its share or a route more than its bound (issue 12, part 4).
//!
//! Every entry is charged to its tenant (the shared scope counting as one tenant) and to the
//! route that filled it. Charges follow the tag index's discipline: an entry is counted in
//! before it enters the cache and counted out exactly once after it has left it (evicted,
//! replaced, refused, expired, purged or withdrawn), so the books never go below zero and a
//! tenant's ledger is dropped with its last entry: the books never hold more tenants than
//! the cache holds entries.
//!
//! Where a limit applies (a share below 100 %, a route's `max_memory`) the ledger also keeps
//! its entries in insertion order, as weak references: an entry that has left the cache is
//! skipped when it comes up, and the queue is compacted once its dead references outnumber an
//! eighth of its live entries (checked as entries are counted in and out alike): a dead
//! reference keeps its entry's struct allocated until then, an uncounted cost bounded to about
//! 20 bytes per live entry. Before an insert, the
//! tier asks [`Books::victim`] for the next entry to evict: first the oldest entry of a route
//! that the insert would take over its bound; then, when the tier is full, the oldest entry
//! of the inserting tenant if it would hold more than its share, else of the tenant furthest
//! over its share. Only when nobody is over a limit does the cache's own policy choose.
//!
//! Nothing here is touched by a lookup: the hit path takes no lock and allocates nothing.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use arc_swap::ArcSwap;

use super::TenantScope;

/// A queue is compacted when its dead references outnumber an eighth of its live entries plus
/// this many: a dead reference keeps its entry's struct allocated (not its body), so they are
/// kept few.
const QUEUE_SLACK: usize = 64;

/// What an entry is charged to, and how much.
#[derive(Clone, Copy, Debug)]
pub(super) struct Charge<'a> {
    pub(super) tenant: &'a TenantScope,
    pub(super) route: usize,
    pub(super) weight: u64,
}

/// The limits the books enforce, as the tier was built.
#[derive(Clone, Debug)]
pub(super) struct Limits {
    /// The bytes past which the tier counts as full for shares: its capacity, less some room
    /// when it has several shards (see `MemoryTier::new`).
    pub(super) full_at: u64,
    /// Bytes one tenant may hold before its own entries go first; `None` for no share.
    pub(super) tenant_share: Option<u64>,
    /// By route id: the route's `max_memory`, if any.
    pub(super) routes: Vec<Option<u64>>,
}

/// Why an entry was chosen for eviction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Reason {
    /// Its route would go over its `max_memory`.
    Route,
    /// The tier is full and its tenant holds more than its share.
    Share,
}

/// One tenant's or route's holdings.
#[derive(Debug)]
struct Ledger<T> {
    bytes: u64,
    entries: u64,
    /// Insertion order, kept only where a limit applies.
    queue: VecDeque<Weak<T>>,
}

impl<T> Default for Ledger<T> {
    fn default() -> Self {
        Self {
            bytes: 0,
            entries: 0,
            queue: VecDeque::new(),
        }
    }
}

impl<T> Ledger<T> {
    fn add(&mut self, weight: u64) {
        self.bytes += weight;
        self.entries += 1;
    }

    /// Counts an entry out. The queue is trimmed here too, not only on the next enqueue: a
    /// ledger whose entries leave without new ones arriving would otherwise keep a dead
    /// reference (and its allocation) per entry it held at its peak.
    fn take(&mut self, weight: u64) {
        self.bytes = self.bytes.saturating_sub(weight);
        self.entries = self.entries.saturating_sub(1);
        self.trim();
    }

    fn enqueue(&mut self, item: &Arc<T>) {
        self.queue.push_back(Arc::downgrade(item));
        self.trim();
    }

    /// Drops the dead references once they outnumber an eighth of the live entries (plus a
    /// constant), so the queue stays within 9/8 of the entries plus a constant at amortized
    /// constant cost (a compaction follows at least an eighth as many departures as it walks).
    fn trim(&mut self) {
        let live = usize::try_from(self.entries).unwrap_or(usize::MAX);
        if self.queue.len() > live.saturating_add(live / 8).saturating_add(QUEUE_SLACK) {
            self.queue.retain(|w| w.strong_count() > 0);
        }
    }

    /// The oldest queued entry still alive; dead references on the way are dropped.
    fn pop_live(&mut self) -> Option<Arc<T>> {
        while let Some(weak) = self.queue.pop_front() {
            if let Some(item) = weak.upgrade() {
                return Some(item);
            }
        }
        None
    }
}

/// One tenant's holdings, as `/stats` reports them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TenantUsage {
    pub tenant: TenantScope,
    pub bytes: u64,
    pub entries: u64,
}

/// One route's holdings, as `/stats` reports them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteUsage {
    /// The route's id (`Route::id`, [`super::CachedResponse::route`]).
    pub route: usize,
    pub bytes: u64,
    pub entries: u64,
    /// The route's `max_memory`.
    pub max_bytes: Option<u64>,
}

/// What the memory tier holds per tenant and per route.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemoryUsage {
    /// The tenants holding the most bytes, most first, at most the number asked for.
    pub tenants: Vec<TenantUsage>,
    /// The sum of the tenants left out of `tenants`: (tenants, bytes, entries).
    pub other_tenants: (u64, u64, u64),
    /// Every configured route, in table order.
    pub routes: Vec<RouteUsage>,
    /// Bytes one tenant may hold before its own entries go first; `None` for no share.
    pub tenant_share: Option<u64>,
}

/// The books: per-tenant and per-route ledgers under one lock, taken only on inserts and
/// removals.
#[derive(Debug)]
pub(super) struct Books<T> {
    full_at: u64,
    tenant_share: Option<u64>,
    /// By route id; replaced whole when a reload changes the route table.
    route_limits: ArcSwap<Vec<Option<u64>>>,
    state: Mutex<State<T>>,
}

#[derive(Debug)]
struct State<T> {
    /// Sum of the weights counted in.
    total: u64,
    tenants: HashMap<TenantScope, Ledger<T>>,
    /// By route id; entries of an id beyond the list are charged to their tenant only.
    routes: Vec<Ledger<T>>,
    /// Tenants holding more than their share; at most 100 / share of them, plus those a burst
    /// of concurrent inserts pushed over.
    over: Vec<TenantScope>,
}

impl<T> Books<T> {
    pub(super) fn new(limits: Limits) -> Self {
        let routes = limits.routes.iter().map(|_| Ledger::default()).collect();
        Self {
            full_at: limits.full_at,
            tenant_share: limits.tenant_share,
            route_limits: ArcSwap::from_pointee(limits.routes),
            state: Mutex::new(State {
                total: 0,
                tenants: HashMap::new(),
                routes,
                over: Vec::new(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // The books hold counters only; a panic elsewhere cannot leave them unusable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The route's `max_memory`, if it has one.
    pub(super) fn route_limit(&self, route: usize) -> Option<u64> {
        self.route_limits.load().get(route).copied().flatten()
    }

    /// Puts the bounds of a new route table in force, by route id. Entries already held stay
    /// charged to their route; a route whose bound was lowered loses its oldest entries as its
    /// next inserts need room (only those inserted while it had a bound are queued).
    pub(super) fn set_route_limits(&self, routes: Vec<Option<u64>>) {
        let mut state = self.lock();
        while state.routes.len() < routes.len() {
            state.routes.push(Ledger::default());
        }
        self.route_limits.store(Arc::new(routes));
    }

    /// The scope the books hold for `tenant` when it has entries, else `tenant` itself: entries
    /// of one tenant then share one copy of its id.
    pub(super) fn interned(&self, tenant: TenantScope) -> TenantScope {
        let TenantScope::One(_) = &tenant else {
            return tenant;
        };
        let state = self.lock();
        match state.tenants.get_key_value(&tenant) {
            Some((held, _)) => held.clone(),
            None => tenant,
        }
    }

    /// Counts an entry in; call before it enters the cache.
    pub(super) fn count_in(&self, charge: Charge<'_>) {
        let mut state = self.lock();
        state.total += charge.weight;
        if let Some(route) = state.routes.get_mut(charge.route) {
            route.add(charge.weight);
        }
        // Cloning the scope costs a reference count, and only for a tenant's first entry.
        if !state.tenants.contains_key(charge.tenant) {
            state
                .tenants
                .insert(charge.tenant.clone(), Ledger::default());
        }
        let Some(ledger) = state.tenants.get_mut(charge.tenant) else {
            return;
        };
        ledger.add(charge.weight);
        let bytes = ledger.bytes;
        self.note_share(&mut state, charge.tenant, bytes);
    }

    /// Queues an entry for eviction by its limits; call once it is in the cache. An entry that
    /// has left meanwhile is queued in vain and skipped when it comes up.
    pub(super) fn enqueue(&self, charge: Charge<'_>, item: &Arc<T>) {
        if self.route_limit(charge.route).is_none() && self.tenant_share.is_none() {
            return;
        }
        let mut state = self.lock();
        if self.route_limit(charge.route).is_some() {
            if let Some(route) = state.routes.get_mut(charge.route) {
                route.enqueue(item);
            }
        }
        if self.tenant_share.is_some() {
            if let Some(ledger) = state.tenants.get_mut(charge.tenant) {
                ledger.enqueue(item);
            }
        }
    }

    /// Counts entries out; call once each has left the cache.
    pub(super) fn count_out<'a>(&self, charges: impl IntoIterator<Item = Charge<'a>>) {
        let mut state = self.lock();
        for charge in charges {
            state.total = state.total.saturating_sub(charge.weight);
            if let Some(route) = state.routes.get_mut(charge.route) {
                route.take(charge.weight);
            }
            let Some(ledger) = state.tenants.get_mut(charge.tenant) else {
                continue;
            };
            ledger.take(charge.weight);
            let (bytes, entries) = (ledger.bytes, ledger.entries);
            if entries == 0 {
                state.tenants.remove(charge.tenant);
            }
            self.note_share(&mut state, charge.tenant, bytes);
        }
    }

    /// Keeps the over-share list in step with a tenant's new byte count.
    fn note_share(&self, state: &mut State<T>, tenant: &TenantScope, bytes: u64) {
        let Some(share) = self.tenant_share else {
            return;
        };
        let listed = state.over.iter().position(|t| t == tenant);
        match (bytes > share, listed) {
            (true, None) => state.over.push(tenant.clone()),
            (false, Some(i)) => {
                state.over.swap_remove(i);
            }
            _ => {}
        }
    }

    /// The next entry to evict before inserting `charge`, if a limit asks for one.
    ///
    /// The entry is taken off its queue; the caller removes it from the cache (unless it has
    /// left already) and counts it out, then asks again.
    pub(super) fn victim(&self, charge: Charge<'_>) -> Option<(Arc<T>, Reason)> {
        if self.route_limit(charge.route).is_none() && self.tenant_share.is_none() {
            return None;
        }
        let mut state = self.lock();
        if let Some(limit) = self.route_limit(charge.route) {
            if let Some(route) = state.routes.get_mut(charge.route) {
                if route.bytes + charge.weight > limit {
                    if let Some(item) = route.pop_live() {
                        return Some((item, Reason::Route));
                    }
                }
            }
        }
        let share = self.tenant_share?;
        if state.total + charge.weight <= self.full_at {
            return None;
        }
        let own = state.tenants.get(charge.tenant).map_or(0, |l| l.bytes);
        if own + charge.weight > share {
            if let Some(item) = state
                .tenants
                .get_mut(charge.tenant)
                .and_then(Ledger::pop_live)
            {
                return Some((item, Reason::Share));
            }
        }
        // The inserting tenant is within its share (or has nothing left to give): the tenant
        // furthest over its share gives instead.
        let State { tenants, over, .. } = &mut *state;
        let furthest = over
            .iter()
            .filter_map(|t| tenants.get(t).map(|l| (l.bytes, t)))
            .max_by_key(|(bytes, _)| *bytes)
            .map(|(_, t)| t.clone())?;
        tenants
            .get_mut(&furthest)
            .and_then(Ledger::pop_live)
            .map(|item| (item, Reason::Share))
    }

    /// The holdings of the `top` tenants holding the most bytes, the rest summed, and every
    /// route's.
    pub(super) fn usage(&self, top: usize) -> MemoryUsage {
        let state = self.lock();
        let mut tenants: Vec<TenantUsage> = state
            .tenants
            .iter()
            .map(|(tenant, l)| TenantUsage {
                tenant: tenant.clone(),
                bytes: l.bytes,
                entries: l.entries,
            })
            .collect();
        let routes = state
            .routes
            .iter()
            .enumerate()
            .map(|(route, l)| RouteUsage {
                route,
                bytes: l.bytes,
                entries: l.entries,
                max_bytes: self.route_limit(route),
            })
            .collect();
        drop(state);
        tenants.sort_by(|a, b| b.bytes.cmp(&a.bytes).then_with(|| a.tenant.cmp(&b.tenant)));
        let rest = if tenants.len() > top {
            tenants.split_off(top)
        } else {
            Vec::new()
        };
        let other_tenants = rest.iter().fold((0, 0, 0), |(n, bytes, entries), t| {
            (n + 1, bytes + t.bytes, entries + t.entries)
        });
        MemoryUsage {
            tenants,
            other_tenants,
            routes,
            tenant_share: self.tenant_share,
        }
    }

    /// Queued references of `tenant`, live or dead, for tests of the queue's bound.
    #[cfg(test)]
    pub(super) fn queued(&self, tenant: &TenantScope) -> usize {
        self.lock().tenants.get(tenant).map_or(0, |l| l.queue.len())
    }
}
