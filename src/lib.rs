//! cachegate: a read-through caching reverse proxy for multi-tenant REST APIs.
//!
//! ARCHITECTURE.md is the map. Modules are declared in reading order: pure policy first,
//! then the stores, then the IO edges and the pipeline that joins them.

pub mod config;
pub mod policy;
pub mod store;
