//! Golden files: rendered output compared byte for byte with a file under `tests/golden/`, or
//! written there when `UPDATE_GOLDEN` is set (regenerate deliberately, then review the diff).

use std::path::Path;

/// Compares `got` with the golden file `path` (`what` names the output in failures, `test` is
/// the test filter to rerun with `UPDATE_GOLDEN=1`); with `UPDATE_GOLDEN` set, writes it instead.
pub fn check(path: &Path, got: &str, what: &str, test: &str) {
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run UPDATE_GOLDEN=1 cargo test --test it {test}",
            path.display()
        )
    });
    if got != want {
        for (i, (g, w)) in got.lines().zip(want.lines()).enumerate() {
            if g != w {
                panic!("{what} line {}:\n got: {g}\nwant: {w}", i + 1);
            }
        }
        panic!(
            "{what}: line count differs ({} vs {})",
            got.lines().count(),
            want.lines().count()
        );
    }
}
