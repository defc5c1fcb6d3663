//! Whole-program and integration tests, one binary grouped by area (each folder's `mod.rs`
//! says what it covers). Run one area or test with a filter:
//!   cargo test --test it delivery::tls
//!   cargo test --test it mapping::golden
//! Helpers shared by all of them are in `util/`.

mod delivery;
mod mapping;
mod ops;
mod service;
mod sources;
mod spool;
mod util;
