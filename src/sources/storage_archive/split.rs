//! Pure helpers of the `storage_archive` source: where the records are in bytes read from a
//! blob (JSON lines up to the last complete `\n`; the records of a flow log's growing
//! `{"records":[…]}` document, new bytes starting with `,`), the hour a blob name is filed
//! under (`y=/m=/d=/h=`), and the container a category name stands for
//! (docs/storage-archives.md, "Containers and blob names", "What a blob holds and how it grows").

/// The container of a `containers` entry: a container name as it is (`insights-…`), or a
/// category name (`AuditEvent`, `NetworkSecurityGroupFlowEvent`) as `insights-logs-<lower>`.
pub fn container_of(entry: &str) -> String {
    let e = entry.trim();
    if e.starts_with("insights-") {
        e.to_owned()
    } else {
        format!("insights-logs-{}", e.to_ascii_lowercase())
    }
}

/// Whether `name` can be a container name ("Naming and referencing containers": 3–63 lower-case
/// letters, digits and single hyphens, starting and ending with a letter or digit).
pub fn valid_container(name: &str) -> bool {
    (3..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
        && !name.contains("--")
}

/// The hour a blob name is filed under (`…/y=2026/m=12/d=06/h=17/…`), ms since the epoch.
pub fn blob_hour(name: &str) -> Option<i64> {
    let field = |key: &str| -> Option<i16> {
        let at = name.find(&format!("/{key}="))? + key.len() + 2;
        let digits: String = name[at..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().ok()
    };
    let date = jiff::civil::date(field("y")?, field("m")? as i8, field("d")? as i8);
    let hour = date.at(field("h")? as i8, 0, 0, 0);
    hour.to_zoned(jiff::tz::TimeZone::UTC)
        .ok()
        .map(|z| z.timestamp().as_millisecond())
}

/// The hour folders of hour `ms`: `y=2026/m=12/d=06/h=17/`.
pub fn hour_folder(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.strftime("y=%Y/m=%m/d=%d/h=%H/").to_string())
        .unwrap_or_default()
}

pub const HOUR_MS: i64 = 3_600_000;

/// Records found in bytes read from a blob (each with its blob offset), and how many of the
/// bytes they take.
pub type Found<'a> = (Vec<(u64, &'a [u8])>, usize);

/// The start of the hour of `ms`.
pub fn floor_hour(ms: i64) -> i64 {
    ms.div_euclid(HOUR_MS) * HOUR_MS
}

/// The complete lines of `chunk` (read from blob offset `base`): each line's blob offset and
/// bytes (without `\n`, `\r\n`), and how many bytes of `chunk` they take (up to and with the last
/// `\n`; a partial last line is left for later). Blank lines are skipped.
pub fn lines(chunk: &[u8], base: u64) -> Found<'_> {
    let Some(last) = chunk.iter().rposition(|&b| b == b'\n') else {
        return (Vec::new(), 0);
    };
    let mut out = Vec::new();
    let mut start = 0;
    for line in chunk[..=last].split_inclusive(|&b| b == b'\n') {
        let text = line.strip_suffix(b"\n").unwrap_or(line);
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        if text.iter().any(|b| !b.is_ascii_whitespace()) {
            out.push((base + start as u64, text));
        }
        start += line.len();
    }
    (out, last + 1)
}

/// The complete records of a `{"records":[…]}` document in `chunk`, read from blob offset
/// `base` (0: the document's start, whose `{"records":[` head is skipped): each record's
/// blob offset and bytes, and where the last complete record ends (bytes of `chunk` read; the
/// separating commas before a record are not part of it, so the next read starts with `,`).
/// A record cut by the end of the chunk is left for later; the closing `]}` ends the scan.
pub fn document_records(chunk: &[u8], base: u64) -> Result<Found<'_>, String> {
    let mut i = 0;
    if base == 0 {
        let head = chunk
            .iter()
            .position(|&b| b == b'[')
            .ok_or("the blob does not start with {\"records\":[")?;
        if !chunk[..head]
            .iter()
            .filter(|b| !b.is_ascii_whitespace())
            .copied()
            .eq(b"{\"records\":".iter().copied())
        {
            return Err("the blob does not start with {\"records\":[".into());
        }
        i = head + 1;
    }
    let mut out = Vec::new();
    let mut done = if base == 0 { i } else { 0 };
    loop {
        while i < chunk.len() && (chunk[i].is_ascii_whitespace() || chunk[i] == b',') {
            i += 1;
        }
        if i >= chunk.len() || chunk[i] == b']' {
            return Ok((out, done));
        }
        if chunk[i] != b'{' {
            return Err(format!(
                "byte {} of the document is '{}', not the start of a record",
                base + i as u64,
                chunk[i].escape_ascii()
            ));
        }
        match crate::json::span::value_end(&chunk[i..], 0) {
            Some(len) => {
                out.push((base + i as u64, &chunk[i..i + len]));
                i += len;
                done = i;
            }
            None => return Ok((out, done)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn categories_name_their_containers() {
        assert_eq!(container_of("AuditEvent"), "insights-logs-auditevent");
        assert_eq!(
            container_of("insights-activity-logs"),
            "insights-activity-logs"
        );
        assert!(valid_container(
            "insights-logs-networksecuritygroupflowevent"
        ));
        assert!(!valid_container("Insights"));
        assert!(!valid_container("a--b"));
        assert!(!valid_container("ab"));
    }

    #[test]
    fn hours_are_read_from_blob_names() {
        let name = "resourceId=/SUBSCRIPTIONS/X/y=2026/m=12/d=06/h=17/m=00/PT1H.json";
        let ms = blob_hour(name).unwrap();
        assert_eq!(hour_folder(ms), "y=2026/m=12/d=06/h=17/");
        assert_eq!(floor_hour(ms + 59 * 60_000), ms);
        assert_eq!(blob_hour("no/hours/here.json"), None);
        let flow = "resourceId=/S/y=2026/m=01/d=02/h=03/m=00/macAddress=000D3A/PT1H.json";
        assert_eq!(
            hour_folder(blob_hour(flow).unwrap()),
            "y=2026/m=01/d=02/h=03/"
        );
    }

    #[test]
    fn lines_stop_at_the_last_newline() {
        let chunk = b"{\"a\":1}\n\n { \"b\":2}\r\n{\"c\":";
        let (found, used) = lines(chunk, 100);
        assert_eq!(
            found,
            vec![(100, &b"{\"a\":1}"[..]), (109, &b" { \"b\":2}"[..])]
        );
        assert_eq!(used, chunk.len() - 5);
        assert_eq!(lines(b"{\"partial\":", 0), (Vec::new(), 0));
    }

    #[test]
    fn documents_yield_whole_records_and_resume_at_the_comma() {
        let doc = br#"{"records":[{"a":"}"},{"b":[1,{"c":2}]},{"d":"#;
        let (found, used) = document_records(doc, 0).unwrap();
        assert_eq!(found.len(), 2);
        assert_eq!(found[0], (12, &br#"{"a":"}"}"#[..]));
        assert_eq!(found[1].1, br#"{"b":[1,{"c":2}]}"#);
        assert_eq!(&doc[used..], br#",{"d":"#);
        // The next read starts at the comma and stops at the tail.
        let more = br#",{"d":3}]}"#;
        let (found, used) = document_records(more, used as u64).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(used, more.len() - 2);
        // Nothing new: only the tail.
        assert_eq!(document_records(b"]}", 40).unwrap(), (Vec::new(), 0));
        assert!(document_records(b"not json", 0).is_err());
        assert!(document_records(b",x", 10).is_err());
    }
}
