//! Unit tests for the compiler: one per diagnostic, with its exact message and position.

use super::*;

fn errs(text: &str) -> Vec<String> {
    match Mapping::compile(FsPath::new("m.toml"), text) {
        Ok(_) => Vec::new(),
        Err(e) => e.diagnostics.iter().map(ToString::to_string).collect(),
    }
}
