//! cachegate: a read-through caching reverse proxy for multi-tenant REST APIs.
//!
//! ARCHITECTURE.md is the map. Modules are declared in reading order: pure policy first,
//! then the stores, then the IO edges and the pipeline that joins them.

pub mod body;
pub mod config;
pub mod error;
pub mod invalidation;
pub mod policy;
pub mod proxy;
pub mod server;
pub mod single_flight;
pub mod stats;
pub mod store;
pub mod upstream;
pub mod webhook;
