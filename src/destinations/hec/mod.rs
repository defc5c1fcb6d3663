//! Splunk HTTP Event Collector destinations (`transport = "hec"`): each source record goes as
//! its own JSON in a HEC event (`time` from the event time, `host`, `source`, the sourcetype of
//! its kind, `index`), batched, gzipped and sent by several requests in flight. With indexer
//! acknowledgement the spool cursor moves only over ranges whose ackId Splunk confirmed; an
//! ackId not confirmed within `ack_timeout` has its range sent again. Without it, a 200 counts.

pub mod client;
mod run;
pub mod sourcetypes;

use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::config::hec::read_token;
use crate::config::{Config, DestinationConfig};
use crate::event::{EventKind, EventView};
use client::HecClient;

use super::filter::Verdict;
use super::tls::TlsSetup;
use super::Destination;

/// The closing members of an event (`,"host":…}`), as JSON text.
type Tail = Box<[u8]>;

/// What a HEC destination needs besides what every destination has.
#[derive(Debug)]
pub struct HecSetup {
    pub client: HecClient,
    /// The channel GUID (`X-Splunk-Request-Channel`) that scopes this destination's ackIds.
    pub channel: String,
    /// Where the channel is kept, beside the spool, so it stays the same across restarts.
    channel_file: PathBuf,
    /// Per `[[source]]` name, per event kind: the event's closing members (host, source,
    /// sourcetype, index) as JSON text.
    tails: Vec<(Box<str>, Vec<Tail>)>,
    host: String,
    /// `ack` as configured: `Some(false)` forces acknowledgement off, `Some(true)` requires it.
    pub ack: Option<bool>,
}

impl HecSetup {
    /// Reads the token, picks the channel and prepares each source's event fields.
    pub fn from_config(
        cfg: &DestinationConfig,
        config: &Config,
        url: &reqwest::Url,
        token_file: &Path,
        tls: Option<&TlsSetup>,
    ) -> Result<HecSetup, String> {
        let token = read_token(token_file)?;
        let channel_file = config
            .resolve(&config.state_dir)
            .join("hec")
            .join(format!("{}.channel", cfg.name));
        let channel = read_channel(&channel_file)
            .unwrap_or_else(crate::sources::azure::assertion::random_guid);
        let client = HecClient::new(
            url,
            &token,
            &channel,
            cfg.hec_gzip(),
            tls,
            cfg.hec_max_in_flight(),
        )?;
        let host = cfg
            .host
            .clone()
            .unwrap_or_else(crate::config::local_hostname);
        let mut setup = HecSetup {
            client,
            channel,
            channel_file,
            tails: Vec::new(),
            host,
            ack: cfg.ack,
        };
        setup.tails = config
            .sources
            .iter()
            .map(|s| {
                let per_kind = EventKind::ALL
                    .iter()
                    .map(|k| setup.tail(cfg, &s.name, *k))
                    .collect();
                (s.name.as_str().into(), per_kind)
            })
            .collect();
        Ok(setup)
    }

    /// `,"host":…,"source":…,"sourcetype":…[,"index":…]}`: what closes an event of `kind` from
    /// the source named `source`.
    fn tail(&self, cfg: &DestinationConfig, source: &str, kind: EventKind) -> Box<[u8]> {
        let text = |s: &str| serde_json::Value::from(s).to_string();
        let mut out = format!(
            ",\"host\":{},\"source\":{},\"sourcetype\":{}",
            text(&self.host),
            text(cfg.source.as_deref().unwrap_or(source)),
            text(cfg.sourcetype(kind)),
        );
        if let Some(index) = &cfg.index {
            out.push_str(&format!(",\"index\":{}", text(index)));
        }
        out.push('}');
        out.into_bytes().into_boxed_slice()
    }

    /// Makes the channel durable, so that a restart keeps it (the ackIds of a channel are
    /// Splunk's; a new channel per start would leave the old one's pending on the indexers).
    pub fn persist_channel(&self) -> std::io::Result<()> {
        if read_channel(&self.channel_file).as_deref() == Some(self.channel.as_str()) {
            return Ok(());
        }
        if let Some(dir) = self.channel_file.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = self.channel_file.with_extension("tmp");
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(format!("{}\n", self.channel).as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, &self.channel_file)
    }

    /// Appends one HEC event for `event` to `out`: `{"time":…,"event":<the record>,…}`. On
    /// error (the record is not JSON) `out` is left as it was.
    pub fn write_event(
        &self,
        cfg: &DestinationConfig,
        event: &EventView<'_>,
        out: &mut Vec<u8>,
    ) -> Result<(), String> {
        let start = out.len();
        out.push(b'{');
        if let Some(ms) = event.time_ms {
            write!(
                out,
                "\"time\":{}.{:03},",
                ms.div_euclid(1000),
                ms.rem_euclid(1000)
            )
            .map_err(|e| e.to_string())?;
        }
        out.extend_from_slice(b"\"event\":");
        if let Err(e) = super::body::compact_json(event.json, out) {
            out.truncate(start);
            return Err(e.to_string());
        }
        let known = self
            .tails
            .iter()
            .find(|(name, _)| **name == *event.source)
            .map(|(_, kinds)| &kinds[event.kind as usize]);
        match known {
            Some(tail) => out.extend_from_slice(tail),
            // A source no longer configured (its events still queued).
            None => out.extend_from_slice(&self.tail(cfg, event.source, event.kind)),
        }
        Ok(())
    }
}

/// A channel kept in `path`, when there is a valid one.
fn read_channel(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let line = text.lines().next()?.trim();
    is_guid(line).then(|| line.to_owned())
}

fn is_guid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.iter().map(|p| p.len()).eq([8, 4, 4, 4, 12])
        && parts
            .iter()
            .all(|p| p.bytes().all(|c| c.is_ascii_hexdigit()))
}

/// What the HEC sender does with one spooled record.
pub(super) enum HecRendered {
    /// Appended to the batch.
    Event,
    /// Not sent: outside the route (`None`) or filtered by the rule at this index.
    Skipped(Option<usize>),
}

impl Destination {
    /// Appends the HEC event of `record` to `out`, unless the route or a filter rule leaves it
    /// out (decided here, at send time, as for syslog destinations).
    pub(super) fn render_hec(
        &self,
        hec: &HecSetup,
        record: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<HecRendered, String> {
        let event = EventView::decode(record).map_err(|e| e.to_string())?;
        if !self.route.takes(event.source, event.kind) {
            return Ok(HecRendered::Skipped(None));
        }
        let rules = &self.rules[event.kind as usize];
        let verdict = if rules.is_empty() {
            Verdict::Keep
        } else {
            match rules.decide_early(event.source, event.id) {
                Some(v) => v,
                None => {
                    let doc: serde_json::Value =
                        serde_json::from_slice(event.json).map_err(|e| e.to_string())?;
                    rules.decide(event.source, event.id, &doc)
                }
            }
        };
        if let Verdict::Filtered(rule) = verdict {
            return Ok(HecRendered::Skipped(Some(rule)));
        }
        hec.write_event(&self.cfg, &event, out)?;
        Ok(HecRendered::Event)
    }
}

impl Destination {
    /// `dry-run` for HEC: the event as it would be sent (its HEC event JSON, left in `buf`),
    /// outside the route, or filtered by a rule (with the bytes its event would have taken).
    pub(super) fn decide_hec(
        &self,
        hec: &HecSetup,
        record: &[u8],
        buf: &mut Vec<u8>,
    ) -> Result<super::Decision, String> {
        match self.render_hec(hec, record, buf)? {
            HecRendered::Event => Ok(super::Decision::Sent { bytes: buf.len() }),
            HecRendered::Skipped(None) => Ok(super::Decision::OutOfRoute),
            HecRendered::Skipped(Some(rule)) => {
                let event = EventView::decode(record).map_err(|e| e.to_string())?;
                hec.write_event(&self.cfg, &event, buf)?;
                Ok(super::Decision::Filtered {
                    rule,
                    bytes: buf.len(),
                })
            }
        }
    }

    /// `send-test` for HEC: one marked test event POSTed to the collector; with indexer
    /// acknowledgement, confirmed only when its ackId turns true within `timeout`.
    pub(super) async fn send_test_hec(
        &self,
        hec: &HecSetup,
        kind: Option<&str>,
        timeout: std::time::Duration,
    ) -> Result<super::send_test::SendTestReport, String> {
        let started = std::time::Instant::now();
        let kind = match kind {
            Some(k) => k.to_owned(),
            None => self
                .mappings
                .kinds()
                .next()
                .map(str::to_owned)
                .ok_or_else(|| {
                    "no source sends events here: configure at least one [[source]]".to_owned()
                })?,
        };
        let event_kind: EventKind = kind.parse()?;
        let now = jiff::Timestamp::now();
        let event_id = format!("siemcast-send-test-{}", now.as_millisecond());
        let event = super::send_test::test_event(&kind, &event_id, now)
            .ok_or_else(|| format!("no bundled test event for source kind \"{kind}\""))?;
        let json = serde_json::to_vec(&event).map_err(|e| e.to_string())?;
        let source = self
            .identities
            .first_of_kind(event_kind)
            .unwrap_or("siemcast-send-test")
            .to_owned();
        let view = EventView {
            kind: event_kind,
            source: &source,
            id: &event_id,
            time_ms: Some(now.as_millisecond()),
            json: &json,
            checked: true,
        };
        let mut raw = Vec::new();
        hec.write_event(&self.cfg, &view, &mut raw)?;
        let message = String::from_utf8_lossy(&raw).into_owned();
        let body = if self.cfg.hec_gzip() {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(&raw).map_err(|e| e.to_string())?;
            gz.finish().map_err(|e| e.to_string())?
        } else {
            raw.clone()
        };
        let deadline = tokio::time::Instant::now() + timeout;
        let within = |what: &'static str| {
            move |_| {
                format!("{what}: no answer within {timeout:?}; check the url, the port and any firewall")
            }
        };
        let ack_id = tokio::time::timeout_at(deadline, hec.client.post(body.into()))
            .await
            .map_err(within("sending the test event"))?
            .map_err(|e| e.to_string())?;
        let acknowledged = match ack_id.filter(|_| hec.ack != Some(false)) {
            None => false,
            Some(id) => loop {
                let confirmed = tokio::time::timeout_at(deadline, hec.client.poll_acks(&[id]))
                    .await
                    .map_err(within("waiting for the indexer acknowledgement"))?
                    .map_err(|e| e.to_string())?;
                if confirmed.contains(&id) {
                    break true;
                }
                if tokio::time::Instant::now() >= deadline {
                    return Err(format!(
                        "Splunk accepted the test event (ackId {id}) but did not confirm it indexed within {timeout:?}"
                    ));
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            },
        };
        Ok(super::send_test::SendTestReport {
            kind,
            event_id,
            message,
            peer: hec.client.base.clone(),
            bytes: raw.len(),
            acknowledged,
            elapsed: started.elapsed(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_channel_is_read_back_when_it_is_a_guid() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("d.channel");
        assert_eq!(read_channel(&file), None);
        let a = crate::sources::azure::assertion::random_guid();
        assert!(is_guid(&a), "{a}");
        std::fs::write(&file, format!("{a}\n")).unwrap();
        assert_eq!(read_channel(&file), Some(a));
        std::fs::write(&file, "not-a-guid\n").unwrap();
        assert_eq!(read_channel(&file), None);
    }

    #[test]
    fn an_event_carries_the_record_its_time_and_fields() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("token"), "secret-token\n").unwrap();
        let text = r#"state_dir = "state"
[metrics]
address = ""
[[source]]
name = "act"
kind = "files"
path = "in"
source_kind = "azure_activity"
[[destination]]
name = "splunk"
transport = "hec"
url = "http://127.0.0.1:8088"
token_file = "token"
host = "sc-01"
index = "azure"
[destination.sourcetypes]
entra_audit = "my:audit"
"#;
        let path = dir.path().join("siemcast.toml");
        std::fs::write(&path, text).unwrap();
        let config = Config::from_toml(&path, text).unwrap_or_else(|e| panic!("{e}"));
        let cfg = &config.destinations[0];
        let spec = crate::destinations::spec::DestinationSpec::of(cfg, &config).unwrap();
        let crate::destinations::spec::DestinationSpec::Hec { url, token_file } = spec else {
            panic!("a hec destination has a hec spec: {spec:?}");
        };
        let hec = HecSetup::from_config(cfg, &config, &url, &token_file, None).unwrap();
        assert!(!format!("{hec:?}").contains("secret-token"));
        let json = b"{ \"eventDataId\" : \"a\",\n \"n\": [1, 2] }";
        let event = |source, kind, time_ms| EventView {
            kind,
            source,
            id: "a",
            time_ms,
            json,
            checked: false,
        };
        let mut out = Vec::new();
        hec.write_event(
            cfg,
            &event("act", EventKind::AzureActivity, Some(1_764_000_000_123)),
            &mut out,
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"time":1764000000.123,"event":{"eventDataId":"a","n":[1,2]},"host":"sc-01","source":"act","sourcetype":"mscs:azure:audit","index":"azure"}"#
        );
        let mut out = Vec::new();
        hec.write_event(cfg, &event("gone", EventKind::EntraAudit, None), &mut out)
            .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"event":{"eventDataId":"a","n":[1,2]},"host":"sc-01","source":"gone","sourcetype":"my:audit","index":"azure"}"#
        );
        let mut out = b"x".to_vec();
        let bad = EventView {
            json: b"{\"a\":",
            ..event("act", EventKind::AzureActivity, None)
        };
        assert!(hec.write_event(cfg, &bad, &mut out).is_err());
        assert_eq!(out, b"x");
    }
}
