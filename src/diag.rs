//! One diagnostic for every problem `check` and `render` report, in the configuration and in
//! its mapping files alike: the file, the 1-based line and column (none for a value that came
//! from the environment), the message and an optional hint such as "did you mean 'suser'?".
//! Printed as `FILE:LINE:COL: message (hint)`.

use std::fmt;
use std::path::PathBuf;

/// A 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

/// One problem, with where it is and what might fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: PathBuf,
    /// `None` when the value came from the environment or has no place in the file.
    pub position: Option<Position>,
    pub message: String,
    /// A suggestion, e.g. `did you mean 'src'?`.
    pub hint: Option<String>,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.position {
            Some(p) => write!(f, "{}:{}:{}: ", self.file.display(), p.line, p.column)?,
            None => write!(f, "{}: ", self.file.display())?,
        }
        f.write_str(&self.message)?;
        if let Some(h) = &self.hint {
            write!(f, " ({h})")?;
        }
        Ok(())
    }
}
