//! `siemcast run` as a service: systemd notifications, the journal, SIGHUP reload, /metrics.

mod journald;
mod metrics;
mod reload;
mod systemd;
