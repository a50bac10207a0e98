//! cachegate: a read-through caching reverse proxy for multi-tenant REST APIs.
//!
//! ARCHITECTURE.md is the map. Modules are declared in reading order: pure policy first,
//! then the stores, then the IO edges and the pipeline that joins them.

pub mod config;
pub mod policy;
pub mod store;
pub mod error;
pub mod single_flight;
pub mod body;
pub mod upstream;
pub mod server;
pub mod stats;
pub mod proxy;
