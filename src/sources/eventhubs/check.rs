//! Checks of an `eventhubs` source, run by config validation: the Kafka endpoint, topic, group, security mode and the
//! connection-string file (read to check its shape; its content is never shown). Also refuses
//! the Kafka keys on every other kind, so a misplaced key is caught before start.

use std::time::Duration;

use crate::config::{
    split_host_port, Config, KafkaSecurity, KeyPath, Problems, SourceConfig, SourceKind,
};

/// Keys that only an `eventhubs` source reads.
const KAFKA_KEYS: [&str; 6] = [
    "bootstrap_servers",
    "topic",
    "group",
    "security",
    "connection_string_file",
    "session_timeout",
];

impl SourceConfig {
    fn has_kafka_key(&self, key: &str) -> bool {
        match key {
            "bootstrap_servers" => self.bootstrap_servers.is_some(),
            "topic" => self.topic.is_some(),
            "group" => self.group.is_some(),
            "security" => self.security.is_some(),
            "connection_string_file" => self.connection_string_file.is_some(),
            "session_timeout" => self.session_timeout.is_some(),
            _ => false,
        }
    }

    /// The Kafka keys, for any kind; `cfg` resolves the connection-string file.
    pub(crate) fn validate_kafka_into(
        &self,
        cfg: &Config,
        who: &str,
        at: &KeyPath,
        p: &mut Problems<'_>,
    ) {
        if self.kind != Some(SourceKind::EventHubs) {
            for key in KAFKA_KEYS {
                if self.has_kafka_key(key) {
                    p.add(
                        &at.key(key),
                        format!("{who}: {key} applies only to kind \"eventhubs\""),
                    );
                }
            }
            return;
        }
        for (key, present) in [
            ("subscriptions", self.subscriptions.is_some()),
            ("content_types", self.content_types.is_some()),
            ("start_at", self.start_at.is_some()),
            ("overlap", self.overlap.is_some()),
            ("settle_delay", self.settle_delay.is_some()),
        ] {
            if present {
                p.add(
                    &at.key(key),
                    format!("{who}: {key} does not apply to kind \"eventhubs\" (it reads a stream, not time windows)"),
                );
            }
        }
        match self.bootstrap_servers.as_deref() {
            None => p.add(
                at,
                format!("{who}: bootstrap_servers is missing; for Event Hubs it is \"NAMESPACE.servicebus.windows.net:9093\""),
            ),
            Some(list) => {
                let bad: Vec<&str> = list
                    .split(',')
                    .map(str::trim)
                    .filter(|a| split_host_port(a).is_none())
                    .collect();
                if let Some(first) = bad.first() {
                    p.add(
                        &at.key("bootstrap_servers"),
                        format!("{who}: bootstrap_servers entry \"{first}\" is not host:port (list several separated by commas)"),
                    );
                }
            }
        }
        match self.topic.as_deref() {
            None => p.add(
                at,
                format!("{who}: topic is missing; name the event hub, e.g. topic = \"insights-activity-logs\""),
            ),
            Some(t) if !valid_topic(t) => p.add(
                &at.key("topic"),
                format!("{who}: topic \"{t}\" is not an event hub name (1-249 letters, digits, '.', '_' or '-')"),
            ),
            Some(_) => {}
        }
        if let Some(g) = self.group.as_deref() {
            if g.is_empty() || g.len() > 255 || g.chars().any(char::is_control) {
                p.add(
                    &at.key("group"),
                    format!("{who}: group must be 1-255 printable characters"),
                );
            }
        }
        if let Some(t) = self.session_timeout {
            if t.0 < Duration::from_secs(6) || t.0 > Duration::from_secs(300) {
                p.add(
                    &at.key("session_timeout"),
                    format!("{who}: session_timeout must be between 6s and 300s (Event Hubs allows no other)"),
                );
            }
        }
        let security = self.security.unwrap_or(KafkaSecurity::SaslSsl);
        match (security, &self.connection_string_file) {
            (KafkaSecurity::SaslSsl, None) => p.add(
                at,
                format!("{who}: connection_string_file is missing; Event Hubs (security = \"sasl_ssl\") needs a file holding the connection string (Endpoint=sb://…;SharedAccessKeyName=…;SharedAccessKey=…)"),
            ),
            (KafkaSecurity::SaslSsl, Some(file)) => {
                let path = cfg.resolve(file);
                match std::fs::read_to_string(&path) {
                    Err(e) => p.add(
                        &at.key("connection_string_file"),
                        format!("{who}: cannot read connection_string_file {}: {e}", path.display()),
                    ),
                    // The content is a secret: say what is wrong with it, never what it is.
                    Ok(text) if !text.trim().starts_with("Endpoint=sb://") || !text.contains("SharedAccessKey=") => p.add(
                        &at.key("connection_string_file"),
                        format!("{who}: connection_string_file {} does not hold an Event Hubs connection string (Endpoint=sb://…;SharedAccessKeyName=…;SharedAccessKey=…)", path.display()),
                    ),
                    Ok(_) => {}
                }
            }
            (KafkaSecurity::Plaintext, Some(_)) => p.add(
                &at.key("connection_string_file"),
                format!("{who}: connection_string_file applies only to security = \"sasl_ssl\""),
            ),
            (KafkaSecurity::Plaintext, None) => {}
        }
    }
}

/// Kafka's rule for topic names, which Event Hubs names satisfy.
fn valid_topic(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 249
        && t.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}
