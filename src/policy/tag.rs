//! Tags: the names an entry carries so that purges can find it, with one encoding and one parse.
//!
//! Three tags are built in, and every entry carries the first two: the whole-tenant tag `*`, the
//! path tag `path:<normalized path>`, and on `scope = "user"` routes `user:<id>`. Every other
//! tag is a name from the configuration (route `tags`, resource defaults) or from the backend's
//! tag headers. A purge request may not name the built-in ones (`invalidation` refuses them), so
//! that the tenant rule of `all`, the normalization of `paths` and the identity handling of
//! `user` cannot be bypassed.
//!
//! The encoded form (`Display`) is what listings show and what the fence and index key on, so
//! [`Tag::parse`] and `Display` are exact inverses: every text is exactly one tag.

use std::fmt;
use std::sync::Arc;

/// The encoded whole-tenant tag.
pub const TENANT: &str = "*";
/// The prefix of an encoded path tag.
pub const PATH_PREFIX: &str = "path:";
/// The prefix of an encoded user tag.
pub const USER_PREFIX: &str = "user:";

/// One tag (without its tenant: see `store::TagKey`).
///
/// Build named tags with [`Tag::parse`] (or `From<&str>`), never with `Tag::Named` directly:
/// a name that spells a built-in tag must become that built-in tag, or two spellings of one
/// tag would miss each other in the index.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Tag {
    /// `*`: every entry of the tenant; whole-tenant and prefix purges fence through it.
    Tenant,
    /// `path:<normalized path>`: every variant (query, vary) of one path (RFC 9111 §4.4).
    Path(Arc<str>),
    /// `user:<id>`: the entries of one user on `scope = "user"` routes, purged at logout.
    User(Arc<str>),
    /// Any other name.
    Named(Arc<str>),
}

impl Tag {
    /// The tag an encoded text names.
    pub fn parse(text: &str) -> Tag {
        if text == TENANT {
            Tag::Tenant
        } else if let Some(path) = text.strip_prefix(PATH_PREFIX) {
            Tag::Path(Arc::from(path))
        } else if let Some(user) = text.strip_prefix(USER_PREFIX) {
            Tag::User(Arc::from(user))
        } else {
            Tag::Named(Arc::from(text))
        }
    }

    /// The path tag of a normalized path.
    pub fn path(path: &str) -> Tag {
        Tag::Path(Arc::from(path))
    }

    /// The tag of one user's entries.
    pub fn user(id: &str) -> Tag {
        Tag::User(Arc::from(id))
    }

    /// Whether the tag is one of the built-in kinds, which purge requests may not name.
    pub fn is_builtin(&self) -> bool {
        !matches!(self, Tag::Named(_))
    }

    /// The length of the encoded form in bytes, without building it (entry weights use it).
    pub fn encoded_len(&self) -> usize {
        match self {
            Tag::Tenant => TENANT.len(),
            Tag::Path(path) => PATH_PREFIX.len() + path.len(),
            Tag::User(id) => USER_PREFIX.len() + id.len(),
            Tag::Named(name) => name.len(),
        }
    }
}

impl From<&str> for Tag {
    fn from(text: &str) -> Tag {
        Tag::parse(text)
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tag::Tenant => f.write_str(TENANT),
            Tag::Path(path) => write!(f, "{PATH_PREFIX}{path}"),
            Tag::User(id) => write!(f, "{USER_PREFIX}{id}"),
            Tag::Named(name) => f.write_str(name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_display_are_inverses() {
        let cases = [
            ("*", Tag::Tenant),
            ("path:/api/items/", Tag::path("/api/items/")),
            ("path:", Tag::path("")),
            ("user:alice", Tag::user("alice")),
            ("faculty:12", Tag::Named(Arc::from("faculty:12"))),
            ("**", Tag::Named(Arc::from("**"))),
            ("Path:/x", Tag::Named(Arc::from("Path:/x"))),
        ];
        for (text, tag) in cases {
            assert_eq!(Tag::parse(text), tag, "{text}");
            assert_eq!(tag.to_string(), text);
            assert_eq!(tag.encoded_len(), text.len(), "{text}");
            assert_eq!(tag.is_builtin(), !matches!(tag, Tag::Named(_)));
        }
    }
}
