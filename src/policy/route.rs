//! Route rules: which request paths are cached and how their tenant is found.

/// Where a route finds the tenant of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TenantSource {
    /// The route is not keyed by tenant: one entry serves every caller.
    None,
    /// A request header carries the tenant id.
    Header(http::HeaderName),
    /// A named capture of the route pattern carries the tenant id.
    Path(String),
    /// A query parameter carries the tenant id.
    Query(String),
    /// The first label of the Host header carries the tenant id (`acme.api.example.com` -> `acme`).
    Host,
}
