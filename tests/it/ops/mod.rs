//! The command line: help, check, render, dry-run, the operator commands, the man page and the
//! README's quotes.

mod cli;
mod dry_run;
mod manpage;
mod operator;
mod readme;
mod render_preview;
