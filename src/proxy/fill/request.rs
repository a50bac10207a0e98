//! What a fill request carries and how its entry is named: the request headers the key
//! covers, the rules for what a fill may forward, and a variant's label in its readable key.

use super::Miss;
use crate::policy::cache_key;
use crate::policy::route::TenantSource;
use crate::policy::vary::{self, FillRules, Selection};
use crate::proxy::Cacheable;
use http::HeaderName;

/// Request headers the key covers: the route's `vary` (and `forward_headers`), and the tenant
/// header when the key holds a tenant. A declared `public` route keeps no tenant even where its
/// source is a header: that header is then neither forwarded on fills nor taken as keyed when
/// a response's `Vary` names it.
pub(super) fn keyed_headers(cacheable: &Cacheable<'_>) -> Vec<HeaderName> {
    let mut keyed = cacheable.route.vary.clone();
    if let (TenantSource::Header(name), Some(_)) = (&cacheable.route.tenant, &cacheable.tenant) {
        keyed.push(name.clone());
    }
    keyed
}

/// What a fill of this request may carry.
pub(super) fn fill_rules<'a>(
    cacheable: &Cacheable<'_>,
    miss: &'a Miss<'_>,
    keyed: &'a [HeaderName],
) -> FillRules<'a> {
    FillRules {
        keyed,
        selected: miss
            .varies
            .as_ref()
            .map_or(&[][..], |state| &state.selection().headers),
        // The key separates callers by tenant (or user): their credential may go. What a
        // `public` route shares must not depend on one caller's credential.
        credentials: cacheable.tenant.is_some() || cacheable.user.is_some(),
    }
}

/// How a variant shows in its readable key: the selecting headers with their normalised values
/// (credentials never in clear: they only select per user, which shows as `user`).
pub(super) fn variant_label(selection: &Selection, sent: &http::HeaderMap) -> String {
    let mut label = String::from("vary(");
    for (i, name) in selection.headers.iter().enumerate() {
        if i > 0 {
            label.push(' ');
        }
        label.push_str(name.as_str());
        label.push('=');
        match vary::normalised_value(sent, name) {
            Some(value) if !cache_key::is_credential_header(name) => label.push_str(&value),
            Some(_) => label.push_str("(credential)"),
            None => label.push('-'),
        }
    }
    if selection.by_user {
        label.push_str(if selection.headers.is_empty() {
            "user"
        } else {
            " user"
        });
    }
    label.push(')');
    label
}
