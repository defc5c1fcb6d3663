//! The `eventhubs` source: reads Azure Event Hubs through its Kafka endpoint (or any Kafka
//! broker) as one member of a consumer group, so several siemcast instances split a hub's
//! partitions. Offsets are committed only after the records are durable in the spool
//! (at-least-once); Kafka's committed offsets are the checkpoint.

mod check;
mod consumer;
pub mod records;
pub mod stats;

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use rdkafka::ClientConfig;

use super::spec::{StreamSecurity, StreamSpec};
use super::{SourceContext, SourceError};
use crate::config::{Config, SourceConfig};

pub use stats::{PartitionCounters, PartitionTable};

/// The consumer group when the config names none.
pub const DEFAULT_GROUP: &str = "siemcast";

/// A configured `eventhubs` source.
pub struct EventHubsSource {
    name: String,
    topic: String,
    group: String,
    /// librdkafka settings; holds the connection string, so it is never printed.
    client: ClientConfig,
    batch_size: usize,
    dead_letter: PathBuf,
}

impl fmt::Debug for EventHubsSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventHubsSource")
            .field("name", &self.name)
            .field("topic", &self.topic)
            .field("group", &self.group)
            .field("batch_size", &self.batch_size)
            .finish_non_exhaustive()
    }
}

impl EventHubsSource {
    /// The source of `eventhubs` source `cfg` ([`StreamSpec::of`], then [`Self::from_spec`]).
    pub fn from_config(cfg: &SourceConfig, config: &Config) -> Result<Self, SourceError> {
        Self::from_spec(cfg, config, StreamSpec::of(cfg, config)?)
    }

    /// Sets up the consumer of `spec`; reads the connection-string file.
    pub fn from_spec(
        cfg: &SourceConfig,
        config: &Config,
        spec: StreamSpec,
    ) -> Result<Self, SourceError> {
        let StreamSpec {
            bootstrap,
            topic,
            group,
            session,
            security,
        } = spec;
        let mut client = client_settings(&bootstrap, &group, &cfg.name, session);
        match security {
            StreamSecurity::Plaintext => {
                client.set("security.protocol", "plaintext");
            }
            StreamSecurity::SaslSsl {
                connection_string_file: path,
            } => {
                let secret = std::fs::read_to_string(&path).map_err(|e| SourceError::Config {
                    source_name: cfg.name.clone(),
                    message: format!("cannot read connection_string_file {}: {e}", path.display()),
                })?;
                // Event Hubs' Kafka endpoint: SASL PLAIN, the literal user name
                // `$ConnectionString` and the connection string as the password.
                client
                    .set("security.protocol", "sasl_ssl")
                    .set("sasl.mechanism", "PLAIN")
                    .set("sasl.username", "$ConnectionString")
                    .set("sasl.password", secret.trim());
            }
        }
        Ok(Self {
            name: cfg.name.clone(),
            topic,
            group,
            client,
            batch_size: cfg.batch_size.max(1),
            dead_letter: crate::sources::dead_letter::path(cfg, config),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Consumes until cancelled; on cancel the batch in hand is spooled and committed first.
    pub async fn run(self, ctx: SourceContext) -> Result<(), SourceError> {
        let name = self.name.clone();
        // librdkafka's consumer API is blocking (poll, synchronous commit, rebalance callbacks
        // on the polling thread), so the source owns one blocking thread.
        tokio::task::spawn_blocking(move || consumer::consume(self, ctx))
            .await
            .unwrap_or_else(|e| {
                Err(SourceError::Config {
                    source_name: name,
                    message: format!("the consumer thread failed: {e}"),
                })
            })
    }
}

/// The client settings Event Hubs recommends for consumers (Microsoft Learn, "Recommended
/// configurations for Apache Kafka clients",
/// https://learn.microsoft.com/azure/event-hubs/apache-kafka-configurations), with offsets
/// committed by hand.
fn client_settings(bootstrap: &str, group: &str, source: &str, session: Duration) -> ClientConfig {
    let session_ms = session.as_millis();
    // Heartbeats well inside the session (Kafka wants at most a third of it).
    let heartbeat_ms = (session_ms / 3).min(3000);
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("client.id", format!("siemcast-{source}"))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", session_ms.to_string())
        .set("heartbeat.interval.ms", heartbeat_ms.to_string())
        .set("max.poll.interval.ms", "300000")
        // Below the 240 s after which Event Hubs closes idle connections.
        .set("metadata.max.age.ms", "180000")
        .set("socket.keepalive.enable", "true")
        // When the prefetched messages pass `queued.max.messages.kbytes` (64 MB), librdkafka
        // postpones the next fetch by `fetch.queue.backoff.ms`, 1 s by default, although the
        // queue drains in a fraction of that: a catch-up stalled for about half of each second
        // (`benches/README.md`). Fetching again 10 ms later keeps it going; the queue's bound
        // is unchanged (librdkafka's CONFIGURATION.md,
        // https://github.com/confluentinc/librdkafka/blob/master/CONFIGURATION.md).
        .set("fetch.queue.backoff.ms", FETCH_QUEUE_BACKOFF_MS)
        // Per-partition lag for /metrics.
        .set("statistics.interval.ms", "1000");
    c
}

/// How long librdkafka waits to fetch again once its local queue is full (see
/// [`client_settings`]).
const FETCH_QUEUE_BACKOFF_MS: &str = "10";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_follow_the_event_hubs_recommendations() {
        let c = client_settings(
            "ns.servicebus.windows.net:9093",
            "g",
            "hub",
            Duration::from_secs(30),
        );
        for (key, want) in [
            ("enable.auto.commit", "false"),
            ("auto.offset.reset", "earliest"),
            ("session.timeout.ms", "30000"),
            ("heartbeat.interval.ms", "3000"),
            ("max.poll.interval.ms", "300000"),
            ("metadata.max.age.ms", "180000"),
            ("socket.keepalive.enable", "true"),
            ("group.id", "g"),
            ("fetch.queue.backoff.ms", "10"),
        ] {
            assert_eq!(c.get(key), Some(want), "{key}");
        }
        let short = client_settings("h:1", "g", "hub", Duration::from_secs(6));
        assert_eq!(short.get("heartbeat.interval.ms"), Some("2000"));
    }

    #[test]
    fn the_connection_string_is_never_printed() {
        let dir = tempfile::tempdir().unwrap();
        let secret = "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=listen;SharedAccessKey=TOPSECRETKEY=";
        std::fs::write(dir.path().join("cs"), format!("{secret}\n")).unwrap();
        let toml = format!(
            "state_dir = \"state\"\n[[source]]\nname = \"hub\"\nkind = \"eventhubs\"\nbootstrap_servers = \"ns.servicebus.windows.net:9093\"\ntopic = \"insights-activity-logs\"\nconnection_string_file = \"{}\"\n",
            dir.path().join("cs").display()
        );
        let cfg: Config = toml::from_str(&toml).unwrap();
        let src = EventHubsSource::from_config(&cfg.sources[0], &cfg).unwrap();
        assert_eq!(src.client.get("sasl.password"), Some(secret));
        assert_eq!(src.client.get("sasl.username"), Some("$ConnectionString"));
        assert_eq!(src.client.get("security.protocol"), Some("sasl_ssl"));
        assert_eq!(src.group, DEFAULT_GROUP);
        let shown = format!("{src:?}");
        assert!(!shown.contains("TOPSECRET"), "{shown}");
    }
}
