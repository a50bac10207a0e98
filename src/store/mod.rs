//! Where cached responses live (to be written).
pub mod memory;
