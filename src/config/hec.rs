//! The keys of a `transport = "hec"` destination (Splunk HTTP Event Collector), their defaults,
//! and their checks: the URL (https, or http on loopback), a readable token file, TLS settings,
//! sourcetype overrides naming real event kinds, batch bounds; syslog-only keys are refused on a
//! HEC destination and HEC keys on a syslog one, so a misplaced key never goes unnoticed.

use std::path::Path;
use std::time::Duration;

use super::{DestinationConfig, KeyPath, Output, Problems, Secret, TlsConfig, Transport};
use crate::destinations::hec::sourcetypes::default_sourcetype;
use crate::destinations::tls::TlsSetup;
use crate::event::EventKind;

/// Syslog destinations: how long sent bytes may stay unacknowledged by the peer's kernel.
const SYSLOG_ACK_TIMEOUT: Duration = Duration::from_secs(30);
/// HEC: how long an ackId may stay unconfirmed before its events are sent again (Splunk's own
/// default for dropping unanswered acknowledgements is 300 s).
const HEC_ACK_TIMEOUT: Duration = Duration::from_secs(300);
const HEC_BATCH_EVENTS: usize = 1000;
const HEC_BATCH_BYTES: usize = 4 << 20;
const HEC_MAX_IN_FLIGHT: usize = 4;

impl DestinationConfig {
    /// `ack_timeout`, or its default for the transport (30 s for syslog, 300 s for HEC).
    pub fn ack_timeout(&self) -> Duration {
        match (self.ack_timeout, self.transport) {
            (Some(t), _) => t.0,
            (None, Transport::Hec) => HEC_ACK_TIMEOUT,
            (None, _) => SYSLOG_ACK_TIMEOUT,
        }
    }

    /// HEC: gzip request bodies (default true).
    pub fn hec_gzip(&self) -> bool {
        self.gzip.unwrap_or(true)
    }

    /// HEC: most events per request.
    pub fn hec_batch_events(&self) -> usize {
        self.batch_events.unwrap_or(HEC_BATCH_EVENTS)
    }

    /// HEC: most bytes (before gzip) per request, about.
    pub fn hec_batch_bytes(&self) -> usize {
        self.batch_bytes.unwrap_or(HEC_BATCH_BYTES)
    }

    /// HEC: requests in flight at once.
    pub fn hec_max_in_flight(&self) -> usize {
        self.max_in_flight.unwrap_or(HEC_MAX_IN_FLIGHT)
    }

    /// HEC: the sourcetype of `kind`'s events: `[destination.sourcetypes]`, else the default
    /// of `docs/splunk.md`.
    pub fn sourcetype(&self, kind: EventKind) -> &str {
        self.sourcetypes
            .get(kind.as_str())
            .map_or_else(|| default_sourcetype(kind), String::as_str)
    }

    /// Checks the HEC keys. Returns true for a HEC destination (whose checks are all done
    /// here); for a syslog destination it only refuses HEC keys and returns false.
    pub(super) fn validate_hec_into(
        &self,
        cfg: &super::Config,
        who: &str,
        at: &KeyPath,
        p: &mut Problems<'_>,
    ) -> bool {
        let hec_keys = [
            ("url", self.url.is_some()),
            ("token_file", self.token_file.is_some()),
            ("index", self.index.is_some()),
            ("host", self.host.is_some()),
            ("source", self.source.is_some()),
            ("sourcetypes", !self.sourcetypes.is_empty()),
            ("gzip", self.gzip.is_some()),
            ("batch_events", self.batch_events.is_some()),
            ("batch_bytes", self.batch_bytes.is_some()),
            ("ack", self.ack.is_some()),
            ("max_in_flight", self.max_in_flight.is_some()),
        ];
        if self.transport != Transport::Hec {
            for (key, set) in hec_keys {
                if set {
                    p.add(
                        &at.key(key),
                        format!("{who}: {key} applies only to transport = \"hec\" (Splunk HTTP Event Collector)"),
                    );
                }
            }
            return false;
        }
        let syslog_keys = [
            ("address", !self.address.is_empty(), "url"),
            (
                "failover_addresses",
                !self.failover_addresses.is_empty(),
                "url",
            ),
            (
                "mappings",
                !self.mappings.as_os_str().is_empty(),
                "sourcetypes",
            ),
            ("hostname", self.hostname.is_some(), "host"),
            ("output", self.output != Output::Mappings, "sourcetypes"),
        ];
        for (key, set, instead) in syslog_keys {
            if set {
                p.add(
                    &at.key(key),
                    format!("{who}: {key} applies to syslog destinations; a HEC destination sends the source record as JSON (see {instead})"),
                );
            }
        }
        let url = match &self.url {
            None => {
                p.add(at, format!("{who}: url is missing; write the HTTP Event Collector's address, e.g. url = \"https://splunk.example.com:8088\""));
                None
            }
            Some(text) => match hec_url(text) {
                Ok(u) => Some(u),
                Err(e) => {
                    p.add(&at.key("url"), format!("{who}: url {e}"));
                    None
                }
            },
        };
        match &self.token_file {
            None => p.add(at, format!("{who}: token_file is missing; name the file holding the HEC token (e.g. \"/run/credentials/siemcast.service/hec-token\")")),
            Some(file) => {
                if let Err(e) = read_token(&cfg.resolve(file)) {
                    p.add(&at.key("token_file"), format!("{who}: {e}"));
                }
            }
        }
        if let Some(url) = &url {
            if url.scheme() == "https" {
                if self.tls.server_name.is_some() {
                    p.add(
                        &at.key("tls").key("server_name"),
                        format!("{who}: tls.server_name does not apply to HEC: the certificate is checked against the url's host"),
                    );
                } else if let Err(e) =
                    TlsSetup::from_config(&self.tls, url.host_str().unwrap_or(""), |p| {
                        cfg.resolve(p)
                    })
                {
                    p.add(&at.key("tls"), format!("{who}: {e}"));
                }
            } else if self.tls != TlsConfig::default() {
                p.add(
                    &at.key("tls"),
                    format!("{who}: [destination.tls] applies only to an https:// url"),
                );
            }
        }
        for (kind, sourcetype) in &self.sourcetypes {
            let place = at.key("sourcetypes").key(kind);
            if kind.parse::<EventKind>().is_err() {
                let names = EventKind::ALL.iter().map(|k| k.as_str());
                let hint = crate::mapping::closest(kind, names)
                    .map(|c| format!(" (did you mean \"{c}\"?)"))
                    .unwrap_or_default();
                p.add(
                    &place,
                    format!("{who}: sourcetypes: \"{kind}\" is not an event kind{hint}"),
                );
            } else if sourcetype.trim().is_empty() {
                p.add(&place, format!("{who}: sourcetypes: \"{kind}\" is empty"));
            }
        }
        for (key, value) in [
            ("index", &self.index),
            ("host", &self.host),
            ("source", &self.source),
        ] {
            if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
                p.add(
                    &at.key(key),
                    format!("{who}: {key} is empty; omit it for the default"),
                );
            }
        }
        let bounds: [(&str, Option<usize>, usize, usize); 3] = [
            ("batch_events", self.batch_events, 1, 100_000),
            ("batch_bytes", self.batch_bytes, 1024, 256 << 20),
            ("max_in_flight", self.max_in_flight, 1, 64),
        ];
        for (key, value, min, max) in bounds {
            if value.is_some_and(|v| v < min || v > max) {
                p.add(
                    &at.key(key),
                    format!("{who}: {key} must be between {min} and {max}"),
                );
            }
        }
        if self.ack_timeout() < Duration::from_secs(1) {
            p.add(
                &at.key("ack_timeout"),
                format!("{who}: ack_timeout must be at least 1s"),
            );
        }
        if self.max_eps == Some(0) {
            p.add(
                &at.key("max_eps"),
                format!("{who}: max_eps must be at least 1 (omit it for no limit)"),
            );
        }
        self.validate_route_into(cfg, who, at, p);
        true
    }
}

/// A HEC base URL: https (http only for loopback hosts, as for the Azure endpoints), no path
/// beyond `/`, no query.
pub fn hec_url(text: &str) -> Result<reqwest::Url, String> {
    crate::sources::azure::auth::check_endpoint(text)?;
    let url = reqwest::Url::parse(text).map_err(|e| format!("\"{text}\" is not a URL ({e})"))?;
    if url.path() != "/" || url.query().is_some() || !url.username().is_empty() {
        return Err(format!(
            "\"{text}\" must be the collector's base address alone (scheme, host, port), e.g. https://splunk.example.com:8088; siemcast adds /services/collector/event"
        ));
    }
    Ok(url)
}

/// The HEC token: the first line of `path`, trimmed (a file or a systemd credential).
pub fn read_token(path: &Path) -> Result<Secret, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read token_file {}: {e}", path.display()))?;
    let line = text.lines().next().unwrap_or("").trim();
    if line.is_empty() {
        return Err(format!(
            "token_file {} is empty; write the HEC token on its first line",
            path.display()
        ));
    }
    Ok(Secret::new(line))
}

#[cfg(test)]
mod tests {
    use super::super::Config;

    /// Every problem of `destination` (TOML lines after `[[destination]]`), as `LINE: message`.
    fn problems(destination: &str) -> Vec<String> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("token"), "t0ken\n").unwrap();
        std::fs::write(dir.path().join("empty"), "\n").unwrap();
        let text = format!(
            "state_dir = \"state\"\n[[source]]\nname = \"act\"\nkind = \"files\"\npath = \"in\"\nsource_kind = \"azure_activity\"\n[[destination]]\nname = \"splunk\"\n{destination}\n"
        );
        let path = dir.path().join("siemcast.toml");
        std::fs::write(&path, &text).unwrap();
        match Config::from_toml(&path, &text) {
            Ok(_) => Vec::new(),
            Err(e) => {
                e.0.iter()
                    .map(|p| {
                        let line = p.position.map_or(0, |p| p.line);
                        let dir = dir.path().display().to_string();
                        format!("{line}: {}", p.message.replace(&dir, "DIR"))
                    })
                    .collect()
            }
        }
    }

    #[test]
    fn a_hec_destination_needs_a_url_and_a_readable_token() {
        assert_eq!(
            problems("transport = \"hec\"\nurl = \"https://splunk.example.com:8088\"\ntoken_file = \"token\""),
            Vec::<String>::new()
        );
        assert_eq!(
            problems("transport = \"hec\""),
            [
                "7: destination \"splunk\": url is missing; write the HTTP Event Collector's address, e.g. url = \"https://splunk.example.com:8088\"",
                "7: destination \"splunk\": token_file is missing; name the file holding the HEC token (e.g. \"/run/credentials/siemcast.service/hec-token\")",
            ]
        );
        assert_eq!(
            problems("transport = \"hec\"\nurl = \"http://splunk.example.com:8088\"\ntoken_file = \"nope\""),
            [
                "10: destination \"splunk\": url \"http://splunk.example.com:8088\" uses http://, which is accepted only for loopback hosts (tests); use https://",
                "11: destination \"splunk\": cannot read token_file DIR/nope: No such file or directory (os error 2)",
            ]
        );
        assert_eq!(
            problems("transport = \"hec\"\nurl = \"https://splunk:8088/services/collector\"\ntoken_file = \"empty\""),
            [
                "10: destination \"splunk\": url \"https://splunk:8088/services/collector\" must be the collector's base address alone (scheme, host, port), e.g. https://splunk.example.com:8088; siemcast adds /services/collector/event",
                "11: destination \"splunk\": token_file DIR/empty is empty; write the HEC token on its first line",
            ]
        );
    }

    #[test]
    fn keys_of_the_other_kind_of_destination_are_refused() {
        assert_eq!(
            problems("transport = \"hec\"\nurl = \"https://s:8088\"\ntoken_file = \"token\"\naddress = \"s:514\"\nhostname = \"x\"\nbatch_events = 0\n[destination.sourcetypes]\nazure_activty = \"a\"\nentra_audit = \" \""),
            [
                "12: destination \"splunk\": address applies to syslog destinations; a HEC destination sends the source record as JSON (see url)",
                "13: destination \"splunk\": hostname applies to syslog destinations; a HEC destination sends the source record as JSON (see host)",
                "14: destination \"splunk\": batch_events must be between 1 and 100000",
                "16: destination \"splunk\": sourcetypes: \"azure_activty\" is not an event kind (did you mean \"azure_activity\"?)",
                "17: destination \"splunk\": sourcetypes: \"entra_audit\" is empty",
            ]
        );
        assert_eq!(
            problems("address = \"s:514\"\noutput = \"json\"\ntoken_file = \"token\"\nack = false"),
            [
                "11: destination \"splunk\": token_file applies only to transport = \"hec\" (Splunk HTTP Event Collector)",
                "12: destination \"splunk\": ack applies only to transport = \"hec\" (Splunk HTTP Event Collector)",
            ]
        );
    }
}
