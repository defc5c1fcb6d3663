//! The durable spool: kill -9 of an appending process, a model-based test, a full disk.

mod disk_full;
mod kill;
mod model;
