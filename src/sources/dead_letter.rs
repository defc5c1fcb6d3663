//! Dead-letter files: records a source cannot turn into events are appended, one JSON line
//! each, to `state_dir/dead-letter/source-<name>.ndjson` with where they were read and why they
//! were refused, the record itself kept whole (as text, or as hex when it is not UTF-8), and
//! the file synced, so nothing refused is lost.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::config::{Config, SourceConfig};

/// The dead-letter file of source `cfg`.
pub fn path(cfg: &SourceConfig, config: &Config) -> PathBuf {
    config
        .resolve(&config.state_dir)
        .join("dead-letter")
        .join(format!("source-{}.ndjson", cfg.name))
}

/// One dead-letter line: `fields` (where the record sits, what is wrong), then the record's
/// size and the record itself.
pub fn line(mut fields: serde_json::Value, payload: &[u8]) -> String {
    fields["bytes"] = payload.len().into();
    match std::str::from_utf8(payload) {
        Ok(text) => fields["payload"] = text.into(),
        Err(_) => {
            fields["payload_hex"] = payload
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
                .into()
        }
    }
    fields.to_string()
}

/// Appends `lines` to the file at `path` (made with its folder when missing) and syncs it.
///
/// # Errors
/// The folder or file cannot be made, written or synced.
pub fn append(path: &Path, lines: &[String]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    let mut text = String::new();
    for l in lines {
        text.push_str(l);
        text.push('\n');
    }
    f.write_all(text.as_bytes())?;
    f.sync_data()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_keeps_the_record_whole_as_text_or_hex() {
        let text = line(
            serde_json::json!({"source": "s", "offset": 7}),
            b"{\"a\":\n1",
        );
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["payload"], "{\"a\":\n1");
        assert_eq!(v["bytes"], 7);
        assert!(!text.contains('\n'), "one line: {text}");
        let v: serde_json::Value =
            serde_json::from_str(&line(serde_json::json!({}), &[0xff, 0x00])).unwrap();
        assert_eq!(v["payload_hex"], "ff00");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("dead-letter/source-x.ndjson");
        append(&file, &["a".into()]).unwrap();
        append(&file, &["b".into()]).unwrap();
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "a\nb\n");
    }
}
