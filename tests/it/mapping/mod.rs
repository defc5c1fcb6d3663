//! Mapping files: golden renderings, strict CEF/LEEF decoding, ids, times, outcomes, real
//! records published by Microsoft, and the one-scan renderer against the `Value` path.

mod decoders;
mod golden;
mod ids;
mod json;
mod outcomes;
mod real_record_fields;
mod real_records;
mod roundtrip;
mod times_ips;
