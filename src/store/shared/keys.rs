//! Key names: a namespace, the format version, a digest of the tenant scope in braces (a
//! cluster hash tag, so one tenant's keys share one slot) and digests, never a raw
//! client-supplied string.

use crate::policy::tag::Tag;
use crate::policy::Key;
use crate::store::{TenantScope, FORMAT_VERSION};

/// The digest tags, tag sets and fences are named by: SHA-1 of the tag's encoded form, in
/// lower-case hex, which the scripts compute too (`redis.sha1hex`).
pub(crate) fn tag_digest(tag: &Tag) -> String {
    text_digest(&tag.to_string())
}

/// SHA-1 of `text`, lower-case hex.
pub(crate) fn text_digest(text: &str) -> String {
    sha1_smol::Sha1::from(text.as_bytes()).digest().to_string()
}

/// The display form of a tenant scope in the tenant registry.
pub(crate) fn scope_form(tenant: &TenantScope) -> String {
    match tenant {
        TenantScope::Shared => "s".to_string(),
        TenantScope::One(id) => format!("t:{id}"),
    }
}

/// The tenant's slot tag: the first 16 hex characters of the blake3 digest of its form.
pub(crate) fn tenant_tag(tenant: &TenantScope) -> String {
    let digest = blake3::hash(scope_form(tenant).as_bytes());
    hex::encode(&digest.as_bytes()[..8])
}

/// The names of one namespace (a prefix and the format version).
#[derive(Clone, Debug)]
pub(crate) struct Names {
    /// `{prefix}:v{FORMAT_VERSION}`
    base: String,
}

impl Names {
    pub(crate) fn new(prefix: &str) -> Names {
        Names {
            base: format!("{prefix}:v{FORMAT_VERSION}"),
        }
    }

    /// The set of every tenant that took a ticket: members are `<T> <form>`.
    pub(crate) fn registry(&self) -> String {
        format!("{}:tenants", self.base)
    }

    /// The pub/sub channel of purges and lease announcements.
    pub(crate) fn channel(&self) -> String {
        format!("{}:events", self.base)
    }

    pub(crate) fn tenant(&self, tenant: &TenantScope) -> TenantNames {
        self.tenant_by_tag(&tenant_tag(tenant))
    }

    /// The names of the tenant whose slot tag is `tag` (as the registry holds it).
    pub(crate) fn tenant_by_tag(&self, tag: &str) -> TenantNames {
        TenantNames {
            base: format!("{}:{{{tag}}}:", self.base),
        }
    }
}

/// The names of one tenant's keys, all in one cluster slot.
#[derive(Clone, Debug)]
pub(crate) struct TenantNames {
    /// `{prefix}:v{N}:{<T>}:`, which the scripts prepend to what they derive.
    pub(crate) base: String,
}

impl TenantNames {
    fn name(&self, kind: &str, rest: &str) -> String {
        format!("{}{kind}:{rest}", self.base)
    }

    /// The stored entry.
    pub(crate) fn entry(&self, key: &Key) -> String {
        self.name("e", &hex::encode(key.0))
    }

    /// The soft-purge marker of an entry.
    pub(crate) fn stale(&self, key: &Key) -> String {
        self.name("s", &hex::encode(key.0))
    }

    /// What a primary key's responses vary on.
    pub(crate) fn vary(&self, primary: &Key) -> String {
        self.name("v", &hex::encode(primary.0))
    }

    /// The fill lease on a key.
    pub(crate) fn lease(&self, key: &Key) -> String {
        self.name("l", &hex::encode(key.0))
    }

    /// The set of the entries carrying a tag (a ZSET scored by their last usable instant).
    pub(crate) fn tag_set(&self, tag: &Tag) -> String {
        self.name("g", &tag_digest(tag))
    }

    /// The set of the entries filled from exactly one `path?query` target.
    pub(crate) fn uri_set(&self, target: &str) -> String {
        self.name("q", &text_digest(target))
    }

    /// Purge sequence (`#seq`), pruned-fence floor (`#floor`) and per-tag fences.
    pub(crate) fn fence(&self) -> String {
        format!("{}fence", self.base)
    }

    /// Fence fields by the time they were raised, for pruning.
    pub(crate) fn fence_queue(&self) -> String {
        format!("{}fenceq", self.base)
    }

    /// The tenant's paths (score 0, for lexical prefix ranges).
    pub(crate) fn paths(&self) -> String {
        format!("{}paths", self.base)
    }

    /// The tenant's paths by the last usable instant of their entries.
    pub(crate) fn path_expiry(&self) -> String {
        format!("{}pathexp", self.base)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_namespace_version_and_tenant_slot() {
        let names = Names::new("cg");
        let acme = names.tenant(&TenantScope::one("acme"));
        let shared = names.tenant(&TenantScope::Shared);
        let key = Key([0xab; 32]);
        let entry = acme.entry(&key);
        let tag = tenant_tag(&TenantScope::one("acme"));
        assert_eq!(tag.len(), 16);
        assert_eq!(
            entry,
            format!("cg:v{FORMAT_VERSION}:{{{tag}}}:e:{}", "ab".repeat(32))
        );
        assert_ne!(acme.base, shared.base);
        assert_eq!(names.registry(), format!("cg:v{FORMAT_VERSION}:tenants"));
        assert_eq!(names.channel(), format!("cg:v{FORMAT_VERSION}:events"));
    }

    #[test]
    fn client_strings_never_appear_in_names() {
        let names = Names::new("cg");
        let evil = TenantScope::one("a}b{c d\r\n");
        let t = names.tenant(&evil);
        let set = t.tag_set(&Tag::path("/x y}{"));
        let uri = t.uri_set("/x?a=}{");
        for name in [&t.base, &set, &uri] {
            assert!(!name.contains(' ') && !name.contains('\n'), "{name}");
            assert_eq!(name.matches('{').count(), 1, "{name}");
        }
    }

    #[test]
    fn tag_digest_is_sha1_of_the_encoded_tag() {
        // sha1("*")
        assert_eq!(
            tag_digest(&Tag::Tenant),
            "df58248c414f342c81e056b40bee12d17a08bf61"
        );
        assert_eq!(tag_digest(&Tag::path("/a")), text_digest("path:/a"));
    }

    #[test]
    fn tenants_get_distinct_slot_tags() {
        assert_ne!(
            tenant_tag(&TenantScope::Shared),
            tenant_tag(&TenantScope::one("s"))
        );
        assert_ne!(
            tenant_tag(&TenantScope::one("a")),
            tenant_tag(&TenantScope::one("b"))
        );
    }
}
