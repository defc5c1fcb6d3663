//! The manual page: `man/siemcast.1` (what the .deb ships) is exactly what `siemcast man`
//! renders from the command-line definition, it has a section for every command `--help`
//! lists, groff reads it without a warning, and every command's `--help` teaches: an example,
//! the exit status, the defaults.
//! Regenerate the page deliberately with `UPDATE_GOLDEN=1 cargo test --test it ops::manpage`.

use std::path::PathBuf;
use std::process::Command;

fn siemcast(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_siemcast"))
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "siemcast {args:?} failed: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

fn shipped_page() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("man/siemcast.1")
}

/// The names under "Commands:" in a `--help` text, without `help`.
fn listed_commands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| *l != "Commands:")
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        // A name is indented two spaces; a wrapped description further.
        .filter(|l| l.starts_with("  ") && !l[2..].starts_with(' '))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_owned)
        .collect()
}

/// Every command that does something, as its words: ["run"], ["spool", "status"], …
fn leaf_commands(prefix: &[String]) -> Vec<Vec<String>> {
    let mut args: Vec<&str> = prefix.iter().map(String::as_str).collect();
    args.push("--help");
    let mut leaves = Vec::new();
    for name in listed_commands(&siemcast(&args)) {
        let mut path = prefix.to_vec();
        path.push(name);
        let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
        args.push("--help");
        if listed_commands(&siemcast(&args)).is_empty() {
            leaves.push(path);
        } else {
            leaves.extend(leaf_commands(&path));
        }
    }
    leaves
}

#[test]
fn the_shipped_page_is_what_the_cli_renders() {
    let rendered = siemcast(&["man"]);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(shipped_page(), &rendered).unwrap();
    }
    let shipped = std::fs::read_to_string(shipped_page()).unwrap();
    assert!(
        shipped == rendered,
        "man/siemcast.1 is out of date with the command line; run UPDATE_GOLDEN=1 cargo test --test it ops::manpage"
    );
}

#[test]
fn the_page_has_a_section_for_every_command_and_help_teaches() {
    let page = siemcast(&["man"]);
    let leaves = leaf_commands(&[]);
    let names: Vec<String> = leaves.iter().map(|p| p.join(" ")).collect();
    for expected in [
        "run",
        "check",
        "render",
        "demo",
        "send-test",
        "spool status",
        "spool forget-destination",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "--help does not list {expected}: {names:?}"
        );
    }
    for path in &leaves {
        let name = path.join(" ");
        let heading = format!(".SS \"siemcast {name}\"");
        assert!(page.contains(&heading), "no section {heading} in the page");
        let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
        args.push("--help");
        let help = siemcast(&args);
        for needed in ["Example:", "Exit status:", &format!("siemcast {name}")] {
            assert!(
                help.contains(needed),
                "`siemcast {name} --help` lacks {needed:?}:\n{help}"
            );
        }
        if help.contains("--config <FILE>") {
            assert!(
                help.contains("[default: /etc/siemcast/siemcast.toml]")
                    && help.contains("[env: SIEMCAST_CONFIG="),
                "`siemcast {name} --help` does not show the config default:\n{help}"
            );
        }
    }
    assert_eq!(
        page.matches("Exit status:").count(),
        leaves.len(),
        "each command section states its exit status"
    );
    for section in [
        ".SH NAME",
        ".SH SYNOPSIS",
        ".SH COMMANDS",
        ".SH \"EXIT STATUS\"",
        ".SH ENVIRONMENT",
        ".SH FILES",
        ".SH SIGNALS",
    ] {
        assert!(page.contains(section), "no {section}");
    }
    assert!(
        !page.contains(".SS \"siemcast man\""),
        "the hidden man command is not documented"
    );
}

#[test]
fn groff_reads_the_page_without_a_warning() {
    let out = Command::new("groff")
        .args(["-man", "-ww", "-z"])
        .arg(shipped_page())
        .output()
        .expect("groff not found; install groff-base (scripts/test.sh does)");
    let warnings = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && warnings.is_empty(), "{warnings}");
}
