//! siemcast: polls Microsoft cloud security data, renders each event as CEF or LEEF through
//! user-editable mapping files, and delivers it to SIEM syslog listeners without losing any of it.
//!
//! # Layout
//! - [`config`]: the TOML file plus `SIEMCAST_*` environment overrides, validated up front.
//! - [`diag`]: the one diagnostic (file, position, message, hint) of config and mapping problems.
//! - [`json`]: byte-level JSON scanning shared by event identification and rendering.
//! - [`event`]: the source-neutral event and the batch a source appends to the spool.
//! - [`sources`]: pollers (one per source kind); each owns its position and dedupe.
//! - [`spool`]: the one durable FIFO between sources and destinations.
//! - [`mapping`]: mapping files compiled into CEF/LEEF renderers.
//! - [`destinations`]: syslog headers, framing, transports and the sender loop.
//! - [`pipeline`]: wires sources → spool → destinations; shutdown.
//! - [`service`]: `siemcast run` under systemd: notifications, signals, reload.
//! - [`metrics`]: Prometheus `/metrics`, `/healthz` and `/spool`.
//! - [`ops`]: operator commands: `send-test`, `spool status`, `spool forget-destination`.
//! - [`manpage`]: `siemcast(1)` rendered from the command-line definition.
//! - [`replay`]: `siemcast replay`, a backfill of a past window with its own spool.
//! - [`parse`]: the time and IP address forms of Microsoft's records, read one way everywhere.
//! - [`simulator`]: a loopback fake of the Microsoft APIs (Entra tokens, IMDS, ARM, Graph, Office 365
//!   Management Activity) with faults and hostile answers, for tests, benches and `demo`.
//! - [`hec_simulator`]: a loopback Splunk HTTP Event Collector (indexer acknowledgement, faults)
//!   for tests, benches and `demo`.
//!
//! Data flows one way: poller → spool → destination (mapping, framing, transport).

pub mod config;
pub mod demo;
pub mod destinations;
pub mod diag;
pub mod dry_run;
pub mod event;
pub mod hec_simulator;
pub(crate) mod json;
pub mod manpage;
pub mod mapping;
pub mod metrics;
pub mod ops;
pub mod parse;
pub mod pipeline;
pub mod preview;
pub mod replay;
pub mod service;
pub mod simulator;
pub mod sources;
pub mod spool;
