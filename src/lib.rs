//! cachegate: a read-through caching reverse proxy for multi-tenant REST APIs.
//!
//! ARCHITECTURE.md is the map. Modules are declared in reading order: configuration and pure
//! policy first, then the stores and coalescing, then the IO edges and the pipeline that joins
//! them, then the operator surfaces, and last the composition root that builds them all.

pub mod auth;
pub mod clock;
pub mod config;
pub mod error;
pub mod notation;
pub mod policy;

pub mod admin_api;
pub mod invalidation;
pub mod single_flight;
pub mod store;
pub mod webhook;

pub mod access;
pub mod answer;
pub mod body;
pub mod compress;
pub mod metrics;
pub mod server;
pub mod stats;
pub mod tls;
pub mod upstream;

pub mod proxy;

pub mod secrets;

pub mod admin;
pub mod admin_client;
pub mod ui;

pub mod app;
pub mod reload;
