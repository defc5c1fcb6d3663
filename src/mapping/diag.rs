//! Mapping-file diagnostics ([`Diagnostic`], the one type config and mapping problems share):
//! every problem carries file, line and column (1-based) and an optional hint, and all of a
//! file's problems are reported together, never just the first.

use std::fmt;
use std::path::Path;

pub use crate::diag::{Diagnostic, Position};

/// Every problem found while loading one or more mapping files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappingErrors {
    pub diagnostics: Vec<Diagnostic>,
}

impl fmt::Display for MappingErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.diagnostics.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for MappingErrors {}

/// Turns byte offsets of one file's text into diagnostics.
#[derive(Debug)]
pub(crate) struct Sink<'t> {
    file: &'t Path,
    text: &'t str,
    pub(crate) diags: Vec<Diagnostic>,
}

impl<'t> Sink<'t> {
    pub(crate) fn new(file: &'t Path, text: &'t str) -> Sink<'t> {
        Sink {
            file,
            text,
            diags: Vec::new(),
        }
    }

    /// The file's text.
    pub(crate) fn text(&self) -> &'t str {
        self.text
    }

    /// Records a problem at byte `offset` of the file.
    pub(crate) fn at(&mut self, offset: usize, message: impl Into<String>, hint: Option<String>) {
        let (line, column) = line_col(self.text, offset);
        self.diags.push(Diagnostic {
            file: self.file.to_path_buf(),
            position: Some(Position { line, column }),
            message: message.into(),
            hint,
        });
    }
}

/// 1-based line and column (in characters) of byte `offset`; clamps offsets past the end.
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut line = 1;
    let mut col = 1;
    for (i, c) in text.char_indices() {
        if i >= offset {
            break;
        }
        if c == '\n' {
            line += 1;
            col = 1;
        } else {
            col += 1;
        }
    }
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions() {
        assert_eq!(line_col("ab\ncd", 0), (1, 1));
        assert_eq!(line_col("ab\ncd", 4), (2, 2));
        assert_eq!(line_col("é\nx", 3), (2, 1));
        assert_eq!(line_col("ab", 99), (1, 3));
        let d = Diagnostic {
            file: "m.toml".into(),
            position: Some(Position { line: 3, column: 7 }),
            message: "'src ip' is not a CEF key".into(),
            hint: Some("did you mean 'src'?".into()),
        };
        assert_eq!(
            d.to_string(),
            "m.toml:3:7: 'src ip' is not a CEF key (did you mean 'src'?)"
        );
    }
}
