//! Byte-level JSON scanning shared by event identification (`event::ident`), the reading of
//! list answers (`sources::azure::listing`), rendering (`mapping::scan`) and the splitting of
//! documents into records (`span`): scans that keep only the values they need, never building
//! the whole tree.

pub(crate) mod capture;
pub(crate) mod span;
pub(crate) mod visit;
