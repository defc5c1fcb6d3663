//! Logging under systemd: when stderr is the journal stream `JOURNAL_STREAM` names, `siemcast
//! run` sends structured entries (MESSAGE, DESTINATION, ERROR, SYSLOG_IDENTIFIER=siemcast) to
//! a real systemd-journald, writes no plain lines to the stream, and never a secret (logs at
//! debug level). journald runs in a private mount namespace (tmpfs over its socket and journal
//! folders), so the test touches no journal of the machine; it needs root (CI runs as root).

use crate::util;

use std::process::Command;

use util::*;

const JOURNALD: &str = "/lib/systemd/systemd-journald";

/// Runs in a private mount namespace: journald on tmpfs folders, `siemcast run` for 3 s with
/// stderr connected to a journal stream (systemd-cat) and JOURNAL_STREAM naming it, then the
/// journal as JSON into `$DIR/journal.json`. Exits with siemcast's status.
const SCRIPT: &str = r#"
set -eu
mkdir -p /run/systemd/journal /run/log
mount -t tmpfs none /run/systemd/journal
mount -t tmpfs none /run/log
if [ -d /var/log/journal ]; then mount -t tmpfs none /var/log/journal; fi
"$JOURNALD" >"$DIR/journald.log" 2>&1 &
journald=$!
trap 'kill $journald; wait $journald || true' EXIT
i=0
until [ -S /run/systemd/journal/socket ] && [ -S /run/systemd/journal/stdout ]; do
  i=$((i + 1)); [ $i -lt 100 ] || { echo "journald did not start" >&2; exit 90; }
  sleep 0.05
done
status=0
systemd-cat -t siemcast-stream sh -c \
  'JOURNAL_STREAM=$(stat -L -c %d:%i /proc/self/fd/2) exec timeout --preserve-status -s TERM 3 "$0" run -c "$1"' \
  "$BIN" "$CONFIG" || status=$?
sleep 0.3
journalctl -D /run/log/journal -o json >"$DIR/journal.json"
exit $status
"#;

#[test]
fn under_systemd_logs_are_structured_journal_entries_without_secrets() {
    let scratch = Scratch::new();
    scratch.write_events(0..10);
    // Nothing listens there: the destination logs its connection failure with fields.
    scratch.write_config(&format!("127.0.0.1:{}", free_port()), "");
    let secret = "Jr~n4l.s3cr3t-VALUE-never-logged";
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", SCRIPT])
        .env("JOURNALD", JOURNALD)
        .env("DIR", scratch.dir.path())
        .env("BIN", env!("CARGO_BIN_EXE_siemcast"))
        .env("CONFIG", scratch.config())
        .env("RUST_LOG", "debug")
        .env("SIEMCAST_AZURE__CLIENT_SECRET", secret)
        .output()
        .expect("unshare (util-linux) is needed");
    assert!(
        out.status.success(),
        "siemcast under a journal stream failed (this test needs root for a private mount namespace and systemd-journald): {out:?}\njournald: {}",
        std::fs::read_to_string(scratch.dir.path().join("journald.log")).unwrap_or_default()
    );
    let text = std::fs::read_to_string(scratch.dir.path().join("journal.json")).unwrap();
    let entries: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let field = |e: &serde_json::Value, k: &str| e[k].as_str().unwrap_or_default().to_owned();
    let ours: Vec<&serde_json::Value> = entries
        .iter()
        .filter(|e| field(e, "SYSLOG_IDENTIFIER") == "siemcast")
        .collect();
    let connect = ours
        .iter()
        .find(|e| field(e, "MESSAGE") == "Cannot connect to destination; retrying.")
        .unwrap_or_else(|| panic!("no connection failure entry in:\n{text}"));
    assert_eq!(field(connect, "DESTINATION"), "rsyslog");
    assert!(field(connect, "ERROR").contains("127.0.0.1"), "{connect}");
    assert_eq!(field(connect, "PRIORITY"), "4", "a warning: {connect}");
    for message in ["siemcast started.", "Shutting down.", "Pipeline stopped."] {
        assert!(
            ours.iter().any(|e| field(e, "MESSAGE") == message),
            "no {message:?} entry"
        );
    }
    // Nothing went to the stream as plain text.
    let plain: Vec<String> = entries
        .iter()
        .filter(|e| field(e, "SYSLOG_IDENTIFIER") == "siemcast-stream")
        .map(|e| field(e, "MESSAGE"))
        .collect();
    assert!(
        plain.is_empty(),
        "plain lines on the journal stream: {plain:?}"
    );
    assert!(
        !text.contains(secret),
        "the client secret reached the journal"
    );
}
