//! The shared (Redis) tier's families, `cachegate_shared_*`, rendered from the `/stats`
//! report's [`SharedCounts`].

use super::encode::{counter, family};
use crate::stats::SharedCounts;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::MetricType;

/// The shared (Redis) tier's families: lookups, failures, the breaker, the subscription.
pub(super) fn shared_tier(
    e: &mut DescriptorEncoder<'_>,
    shared: &SharedCounts,
) -> Result<(), std::fmt::Error> {
    let counters: [(&str, &str, u64); 12] = [
        (
            "cachegate_shared_hits",
            "Shared-tier lookups that found a fresh entry.",
            shared.hits,
        ),
        (
            "cachegate_shared_misses",
            "Shared-tier lookups that found nothing usable.",
            shared.misses,
        ),
        (
            "cachegate_shared_errors",
            "Shared-tier commands that failed (each a counted miss).",
            shared.errors,
        ),
        (
            "cachegate_shared_timeouts",
            "Shared-tier commands that outlasted command_timeout.",
            shared.timeouts,
        ),
        (
            "cachegate_shared_stores",
            "Entries written to the shared tier.",
            shared.stores,
        ),
        (
            "cachegate_shared_fenced",
            "Fills the shared tier refused because a purge overlapped them.",
            shared.fenced,
        ),
        (
            "cachegate_shared_purges",
            "Purges applied to the shared tier.",
            shared.purges,
        ),
        (
            "cachegate_shared_breaker_opened",
            "Times the circuit breaker opened.",
            shared.breaker_opened,
        ),
        (
            "cachegate_shared_pubsub_reconnects",
            "Times the invalidation subscription was lost.",
            shared.pubsub_reconnects,
        ),
        (
            "cachegate_shared_invalidations_received",
            "Other instances' purges received.",
            shared.invalidations_received,
        ),
        (
            "cachegate_shared_invalidations_applied",
            "Other instances' purges applied to the memory tier.",
            shared.invalidations_applied,
        ),
        (
            "cachegate_shared_promoted",
            "Shared hits copied into the memory tier.",
            shared.promoted,
        ),
    ];
    for (name, help, value) in counters {
        counter(e, name, help, value)?;
    }
    let gauges: [(&str, &str, u64); 4] = [
        (
            "cachegate_shared_replay_pending",
            "Purges waiting for Redis to answer again.",
            shared.replay_pending,
        ),
        (
            "cachegate_shared_subscribed",
            "1 while subscribed to the invalidation channel.",
            u64::from(shared.subscribed),
        ),
        (
            "cachegate_shared_memory_trusted",
            "1 while the memory tier answers (0 while the subscription is down).",
            u64::from(shared.memory_trusted),
        ),
        (
            "cachegate_shared_pubsub_lag_milliseconds",
            "Publish-to-receipt delay of the last invalidation received.",
            shared.pubsub_lag_ms,
        ),
    ];
    for (name, help, value) in gauges {
        family(e, name, help, MetricType::Gauge, [(Vec::new(), value)])?;
    }
    family(
        e,
        "cachegate_shared_breaker_state",
        "The circuit breaker: 1 for the current state.",
        MetricType::Gauge,
        ["closed", "open", "half_open"].into_iter().map(|state| {
            (
                vec![("state", state.to_string())],
                u64::from(shared.breaker == state),
            )
        }),
    )
}
