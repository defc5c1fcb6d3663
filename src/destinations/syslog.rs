//! Syslog headers (RFC 3164, RFC 5424, or none) and stream framing (LF or RFC 6587 octet
//! counting) around a rendered CEF/LEEF payload. Messages longer than the destination's
//! budget are cut at a character boundary, never inside an escape sequence.

use jiff::tz::TimeZone;

use super::identity::{sanitize, Field, Identity};
use crate::config::{DestinationConfig, Facility, Framing, SyslogFormat, Transport};

/// Syslog severity used in PRI: informational.
const SEVERITY_INFO: u8 = 6;

/// The send time, formatted once per batch for both header styles.
#[derive(Debug, Clone)]
pub struct Stamp {
    rfc3164: String,
    rfc5424: String,
}

impl Stamp {
    /// Now, in `zone` for RFC 3164 (which has no zone field) and in UTC for RFC 5424.
    pub fn now(zone: &TimeZone) -> Stamp {
        Self::at(jiff::Timestamp::now(), zone)
    }

    pub fn at(ts: jiff::Timestamp, zone: &TimeZone) -> Stamp {
        let local = ts.to_zoned(zone.clone());
        Stamp {
            // "Jan  5 09:03:07": the day is space-padded.
            rfc3164: local.strftime("%b %e %H:%M:%S").to_string(),
            rfc5424: ts.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
        }
    }
}

/// Writes header + payload + framing for one destination. The header is made of three
/// prepared pieces: `<PRI>` (and RFC 5424's version), the batch's time stamp, and the
/// identity's tail (`" HOST "`, or `" HOST APP - - - "`), so no event formats anything.
#[derive(Debug, Clone)]
pub struct SyslogWriter {
    format: SyslogFormat,
    framing: Option<Framing>,
    /// `<PRI>`, followed by `1 ` for RFC 5424.
    prefix: Box<[u8]>,
    /// The tail of the destination's default identity.
    tail: Box<[u8]>,
    max_message_bytes: usize,
}

impl SyslogWriter {
    /// The writer of a destination; its default identity is the destination's fixed hostname
    /// and app_name (this machine's name and `siemcast` where they are templates).
    pub fn new(cfg: &DestinationConfig) -> Self {
        let Facility(facility) = cfg.facility;
        let fixed = |field, value: Option<&str>, default: String| match value {
            Some(v) if !v.contains(['{', '}']) => sanitize(field, v),
            _ => default,
        };
        let identity = Identity {
            hostname: fixed(
                Field::Hostname,
                cfg.hostname.as_deref(),
                crate::config::local_hostname(),
            ),
            app_name: fixed(Field::AppName, Some(&cfg.app_name), "siemcast".to_owned()),
        };
        Self::with(
            cfg.syslog,
            (cfg.transport != Transport::Udp).then_some(cfg.framing),
            facility * 8 + SEVERITY_INFO,
            &identity,
            cfg.max_message_bytes,
        )
    }

    /// The writer of a `[[destination]]` that sets nothing but `syslog = format`: every other
    /// setting at its default (this machine's host name, facility local4, APP-NAME `siemcast`,
    /// TCP with LF framing, `max_message_bytes` 64 KiB). `siemcast render --syslog` previews
    /// with it, so what it prints is what such a destination sends.
    pub fn preview(format: SyslogFormat) -> Self {
        let mut cfg: DestinationConfig = toml::from_str("")
            .expect("every key of [[destination]] has a default, so an empty table is one");
        cfg.syslog = format;
        Self::new(&cfg)
    }

    fn with(
        format: SyslogFormat,
        framing: Option<Framing>,
        pri: u8,
        identity: &Identity,
        max_message_bytes: usize,
    ) -> Self {
        let prefix = match format {
            SyslogFormat::Rfc3164 => format!("<{pri}>"),
            SyslogFormat::Rfc5424 => format!("<{pri}>1 "),
            SyslogFormat::None => String::new(),
        };
        let mut writer = Self {
            format,
            framing,
            prefix: prefix.into_bytes().into(),
            tail: Box::default(),
            max_message_bytes,
        };
        writer.tail = writer.tail(identity);
        writer
    }

    /// The header bytes after the time stamp for `identity` (values already valid: see
    /// [`crate::destinations::identity`]).
    pub fn tail(&self, identity: &Identity) -> Box<[u8]> {
        let text = match self.format {
            SyslogFormat::Rfc3164 => format!(" {} ", identity.hostname),
            SyslogFormat::Rfc5424 => {
                format!(" {} {} - - - ", identity.hostname, identity.app_name)
            }
            SyslogFormat::None => String::new(),
        };
        text.into_bytes().into()
    }

    /// The header bytes after the time stamp for the destination's default identity.
    pub fn default_tail(&self) -> &[u8] {
        &self.tail
    }

    /// Appends one framed message with the default identity; see [`SyslogWriter::write_as`].
    pub fn write(&self, stamp: &Stamp, payload: &[u8], out: &mut Vec<u8>) -> bool {
        self.write_as(stamp, &self.tail, payload, out)
    }

    /// Appends one framed message to `out` under the identity whose header tail is `tail`
    /// (from [`SyslogWriter::tail`]); returns whether the message had to be truncated.
    pub fn write_as(&self, stamp: &Stamp, tail: &[u8], payload: &[u8], out: &mut Vec<u8>) -> bool {
        let start = out.len();
        // Room for an octet-counting prefix is reserved up front and the prefix written after.
        const PREFIX_ROOM: usize = 8;
        if self.framing == Some(Framing::OctetCounting) {
            out.extend_from_slice(&[b' '; PREFIX_ROOM]);
        }
        let msg_start = out.len();
        self.header(stamp, tail, out);
        out.extend_from_slice(payload);
        let truncated = truncate_message(out, msg_start, self.max_message_bytes);
        match self.framing {
            Some(Framing::Lf) => out.push(b'\n'),
            Some(Framing::OctetCounting) => {
                let len = (out.len() - msg_start).to_string();
                let prefix_end = msg_start - 1;
                // "<len> " right before the message; the unused room in front is removed.
                out[prefix_end - len.len()..prefix_end].copy_from_slice(len.as_bytes());
                let unused = PREFIX_ROOM - len.len() - 1;
                out.drain(start..start + unused);
            }
            None => {}
        }
        truncated
    }

    fn header(&self, stamp: &Stamp, tail: &[u8], out: &mut Vec<u8>) {
        let time = match self.format {
            SyslogFormat::Rfc3164 => &stamp.rfc3164,
            SyslogFormat::Rfc5424 => &stamp.rfc5424,
            SyslogFormat::None => return,
        };
        out.extend_from_slice(&self.prefix);
        out.extend_from_slice(time.as_bytes());
        out.extend_from_slice(tail);
    }
}

/// Cuts `out[msg_start..]` to at most `max` bytes at a UTF-8 boundary, dropping a dangling
/// escape backslash; returns whether anything was cut.
fn truncate_message(out: &mut Vec<u8>, msg_start: usize, max: usize) -> bool {
    if out.len() - msg_start <= max {
        return false;
    }
    let mut end = msg_start + max;
    // Step back over UTF-8 continuation bytes to the start of a character.
    while end > msg_start && (out[end] & 0xC0) == 0x80 {
        end -= 1;
    }
    // An odd run of trailing backslashes means the last one begins an escape that was cut.
    let backslashes = out[msg_start..end]
        .iter()
        .rev()
        .take_while(|b| **b == b'\\')
        .count();
    if backslashes % 2 == 1 {
        end -= 1;
    }
    out.truncate(end);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn writer(format: SyslogFormat, framing: Framing, max: usize) -> SyslogWriter {
        let identity = Identity {
            hostname: "host1".into(),
            app_name: "siemcast".into(),
        };
        SyslogWriter::with(format, Some(framing), 166, &identity, max)
    }

    fn stamp() -> Stamp {
        let ts: jiff::Timestamp = "2026-01-05T09:03:07.25Z".parse().unwrap();
        Stamp::at(ts, &TimeZone::UTC)
    }

    #[test]
    fn rfc3164_pads_the_day_and_ends_with_lf() {
        let mut out = Vec::new();
        writer(SyslogFormat::Rfc3164, Framing::Lf, 1000).write(&stamp(), b"CEF:0|a", &mut out);
        assert_eq!(out, b"<166>Jan  5 09:03:07 host1 CEF:0|a\n");
    }

    #[test]
    fn rfc5424_has_milliseconds_and_nil_fields() {
        let mut out = Vec::new();
        writer(SyslogFormat::Rfc5424, Framing::Lf, 1000).write(&stamp(), b"CEF:0|a", &mut out);
        assert_eq!(
            out,
            b"<166>1 2026-01-05T09:03:07.250Z host1 siemcast - - - CEF:0|a\n"
        );
    }

    #[test]
    fn octet_counting_prefixes_the_length() {
        let mut out = b"previous".to_vec();
        writer(SyslogFormat::None, Framing::OctetCounting, 1000).write(
            &stamp(),
            b"CEF:0|abc",
            &mut out,
        );
        assert_eq!(out, b"previous9 CEF:0|abc");
    }

    #[test]
    fn truncation_keeps_characters_and_escapes_whole() {
        let mut out = Vec::new();
        let w = writer(SyslogFormat::None, Framing::Lf, 6);
        assert!(w.write(&stamp(), "abcdé".as_bytes(), &mut out) || out.len() <= 7);
        assert_eq!(out, "abcdé\n".as_bytes());
        out.clear();
        assert!(w.write(&stamp(), "abcdeé".as_bytes(), &mut out));
        assert_eq!(out, b"abcde\n");
        out.clear();
        assert!(w.write(&stamp(), b"abcde\\=x", &mut out));
        assert_eq!(out, b"abcde\n", "a cut escape is dropped whole");
        out.clear();
        assert!(w.write(&stamp(), b"abcd\\\\x", &mut out));
        assert_eq!(out, b"abcd\\\\\n", "a complete escaped backslash stays");
    }
}
