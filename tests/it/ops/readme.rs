//! The README's troubleshooting table quotes log lines the program really writes: every
//! quoted line (its parts around `…`) is found in the source, so a reworded message cannot
//! leave users searching their journal for a line that no longer exists.

use std::path::{Path, PathBuf};

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_log_line_in_the_troubleshooting_table_is_written_by_the_code() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let table = readme
        .split("### Logs and troubleshooting")
        .nth(1)
        .expect("README has a \"Logs and troubleshooting\" section");
    let table = table.split("\n#").next().unwrap();
    let quoted: Vec<&str> = table
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split_once("` |").map(|(q, _)| q))
        .collect();
    assert!(quoted.len() >= 10, "only {} rows: {quoted:?}", quoted.len());

    let mut files = Vec::new();
    sources(&root.join("src"), &mut files);
    let code: String = files
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect();
    for line in quoted {
        for part in line.split('…').map(str::trim).filter(|p| !p.is_empty()) {
            assert!(
                code.contains(part),
                "README quotes {line:?}, but no source file writes {part:?}"
            );
        }
    }
}
