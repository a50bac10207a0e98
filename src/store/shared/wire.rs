//! What goes over the channel: purges (`P` + JSON, with the sending instance and the send
//! time) and lease announcements (`L` + the lease's key name).

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::policy::tag::Tag;
use crate::store::{Purge, PurgeScope, TenantScope};

#[derive(Debug, Serialize, Deserialize)]
enum WireScope {
    All,
    Shared,
    One(String),
}

#[derive(Debug, Serialize, Deserialize)]
struct WirePurge {
    origin: u64,
    sent_ms: u64,
    scope: WireScope,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    paths: Vec<String>,
    #[serde(default)]
    uris: Vec<String>,
    #[serde(default)]
    prefixes: Vec<String>,
    #[serde(default)]
    all: bool,
    #[serde(default)]
    soft: bool,
}

/// A message read from the channel.
#[derive(Debug)]
pub(crate) enum Message {
    Purge {
        origin: u64,
        sent_ms: u64,
        purge: Purge,
    },
    /// A lease was released (filled or not): wake its waiters.
    Lease(String),
}

pub(crate) fn purge_message(origin: u64, sent_ms: u64, purge: &Purge) -> Vec<u8> {
    let strings = |v: &[Arc<str>]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let wire = WirePurge {
        origin,
        sent_ms,
        scope: match &purge.tenant {
            PurgeScope::All => WireScope::All,
            PurgeScope::Only(TenantScope::Shared) => WireScope::Shared,
            PurgeScope::Only(TenantScope::One(id)) => WireScope::One(id.to_string()),
        },
        tags: purge.tags.iter().map(|t| t.to_string()).collect(),
        paths: strings(&purge.paths),
        uris: strings(&purge.uris),
        prefixes: strings(&purge.prefixes),
        all: purge.all,
        soft: purge.soft,
    };
    let mut out = b"P".to_vec();
    // Serialising plain strings and integers cannot fail.
    out.extend(serde_json::to_vec(&wire).unwrap_or_default());
    out
}

pub(crate) fn lease_message(lease_key: &str) -> String {
    format!("L{lease_key}")
}

pub(crate) fn parse(payload: &[u8]) -> Option<Message> {
    match payload.split_first()? {
        (b'L', rest) => Some(Message::Lease(String::from_utf8(rest.to_vec()).ok()?)),
        (b'P', rest) => {
            let wire: WirePurge = serde_json::from_slice(rest).ok()?;
            let arcs = |v: Vec<String>| v.into_iter().map(Arc::from).collect::<Vec<Arc<str>>>();
            let purge = Purge {
                tenant: match wire.scope {
                    WireScope::All => PurgeScope::All,
                    WireScope::Shared => PurgeScope::Only(TenantScope::Shared),
                    WireScope::One(id) => PurgeScope::Only(TenantScope::one(&id)),
                },
                tags: wire.tags.iter().map(|t| Tag::parse(t)).collect(),
                paths: arcs(wire.paths),
                uris: arcs(wire.uris),
                prefixes: arcs(wire.prefixes),
                all: wire.all,
                soft: wire.soft,
            };
            Some(Message::Purge {
                origin: wire.origin,
                sent_ms: wire.sent_ms,
                purge,
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purge_roundtrip() {
        let purge = Purge {
            tenant: PurgeScope::Only(TenantScope::one("acme")),
            tags: vec![Tag::parse("a"), Tag::path("/x"), Tag::Tenant],
            paths: vec![Arc::from("/p")],
            uris: vec![Arc::from("/p?q=1")],
            prefixes: vec![Arc::from("")],
            all: true,
            soft: true,
        };
        match parse(&purge_message(7, 99, &purge)) {
            Some(Message::Purge {
                origin: 7,
                sent_ms: 99,
                purge: back,
            }) => assert_eq!(back, purge),
            other => panic!("{other:?}"),
        }
        let all = Purge::tags(PurgeScope::All, vec![]);
        assert!(
            matches!(parse(&purge_message(1, 2, &all)), Some(Message::Purge { purge, .. }) if purge == all)
        );
        assert!(parse(b"").is_none());
        assert!(parse(b"P{").is_none());
        assert!(matches!(parse(b"Lk"), Some(Message::Lease(k)) if k == "k"));
    }
}
