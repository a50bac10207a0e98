//! Who is asking: verified identities for routes whose answers depend on the caller.
//!
//! On a `tenant` or `user` route the credential is verified *before* any cache lookup, and the
//! tenant (and user) that select the entry come from the verified credential, never from a value
//! any client can set. Three sources, tried in this order: a tenant header sent by a trusted
//! proxy (an auth gateway in front), a JWT bearer token, and introspection of an opaque token or
//! session cookie by the backend.

pub mod algorithm;
pub mod cidr;
pub mod digest;
pub mod introspect;
pub mod jwt;

/// A verified caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The tenant the credential belongs to, when it names one.
    pub tenant: Option<String>,
    /// The user the credential belongs to, when it names one.
    pub user: Option<String>,
    /// Unix seconds after which the identity must be verified again (a JWT's `exp`).
    pub expires_at: Option<u64>,
}
