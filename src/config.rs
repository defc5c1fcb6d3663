//! The configuration: a TOML file plus `SIEMCAST_*` environment overrides (figment), read into
//! plain serde types with named defaults, then validated as a whole. Every problem is reported at
//! once with the file, line and column it comes from; secrets are typed so they never print.

pub mod hec;
mod locate;
mod proxy;
mod rates;
mod rules;
pub mod tenants;
mod validate;

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::de::{self, Deserializer};
use serde::Deserialize;

pub use locate::{KeyPath, Locator, Position};
pub use rates::{RateLimitsConfig, RateText};

use crate::event::EventKind;

/// Where `siemcast run` looks when neither `-c` nor `$SIEMCAST_CONFIG` is given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/siemcast/siemcast.toml";

// === the file's shape ===

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    /// Directory for the spool and checkpoints.
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
    #[serde(default)]
    pub metrics: MetricsConfig,
    #[serde(default)]
    pub spool: SpoolConfig,
    #[serde(default)]
    pub azure: AzureConfig,
    #[serde(default, rename = "source")]
    pub sources: Vec<SourceConfig>,
    #[serde(default, rename = "destination")]
    pub destinations: Vec<DestinationConfig>,
    /// The directory relative paths are resolved against (the config file's directory).
    #[serde(skip)]
    pub base_dir: PathBuf,
}

fn default_state_dir() -> PathBuf {
    PathBuf::from("/var/lib/siemcast")
}

/// `[metrics]`: the Prometheus listener.
#[derive(Debug, Clone, Deserialize)]
pub struct MetricsConfig {
    /// `host:port` for `/metrics` and `/healthz`; empty turns the listener off.
    #[serde(default = "default_metrics_address")]
    pub address: String,
    /// `/healthz` reports a polling source once its last successful poll is older than its
    /// interval plus this: room for request timeouts (60 s), retries with backoff (up to 60 s
    /// apart) and `Retry-After` waits within one poll.
    #[serde(default = "default_poll_grace")]
    pub poll_grace: HumanDuration,
}

fn default_poll_grace() -> HumanDuration {
    HumanDuration(Duration::from_secs(5 * 60))
}

fn default_metrics_address() -> String {
    "127.0.0.1:9464".to_owned()
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            address: default_metrics_address(),
            poll_grace: default_poll_grace(),
        }
    }
}

/// `[spool]`: the durable queue between sources and destinations.
#[derive(Debug, Clone, Deserialize)]
pub struct SpoolConfig {
    /// Size cap in bytes; when reached, sources pause (nothing is dropped).
    #[serde(default = "default_spool_max_bytes")]
    pub max_bytes: u64,
}

fn default_spool_max_bytes() -> u64 {
    1 << 30
}

impl Default for SpoolConfig {
    fn default() -> Self {
        Self {
            max_bytes: default_spool_max_bytes(),
        }
    }
}

/// `[azure]`: the app registration used by the Microsoft API pollers.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct AzureConfig {
    #[serde(default = "default_cloud")]
    pub cloud: Cloud,
    pub tenant_id: Option<String>,
    pub client_id: Option<String>,
    /// Normally supplied as `SIEMCAST_AZURE__CLIENT_SECRET` or through `client_secret_file`.
    pub client_secret: Option<Secret>,
    pub client_secret_file: Option<PathBuf>,
    /// PEM file with the app's certificate (and its RSA key unless `certificate_key_file`).
    pub certificate_file: Option<PathBuf>,
    /// PEM file with the certificate's private key, when it is not in `certificate_file`.
    pub certificate_key_file: Option<PathBuf>,
    /// Signature of the certificate client assertion: PS256 (current) or RS256 (legacy).
    #[serde(default)]
    pub assertion_algorithm: AssertionAlgorithm,
    /// Tokens from the Azure instance metadata service (IMDS) of the VM siemcast runs on.
    #[serde(default)]
    pub managed_identity: bool,
    /// IMDS base URL (default `http://169.254.169.254`); tests point it at the simulator.
    pub imds_endpoint: Option<String>,
    /// Request rates per API family; the documented limits unless overridden.
    #[serde(default)]
    pub rate_limits: RateLimitsConfig,
    /// The largest API answer read, in bytes after gzip decoding (default
    /// [`crate::sources::azure::client::DEFAULT_MAX_ANSWER_BYTES`]); a larger one is refused.
    pub max_answer_bytes: Option<u64>,
    pub login_endpoint: Option<String>,
    pub management_endpoint: Option<String>,
    pub graph_endpoint: Option<String>,
    pub office_endpoint: Option<String>,
    /// The HTTP proxy of every token and API request (`http://host:port`, CONNECT tunnels),
    /// or `"none"`; when absent, the environment's `HTTPS_PROXY`. Never used for IMDS.
    pub proxy: Option<String>,
    /// File whose first line is the proxy's `user:password` (Basic authentication).
    pub proxy_credentials_file: Option<PathBuf>,
    /// Hosts, `.suffixes`, IPs and networks reached without the proxy; when absent, the
    /// environment's `NO_PROXY`.
    pub no_proxy: Option<Vec<String>>,
    /// `[azure.tenants.NAME]`: other tenants, each taking the keys above it does not set
    /// (see [`tenants`]).
    #[serde(default)]
    pub tenants: std::collections::BTreeMap<String, tenants::TenantConfig>,
}

impl AzureConfig {
    /// The keys choosing the proxy (see [`crate::sources::azure::proxy`]).
    pub fn proxy_keys(&self) -> crate::sources::azure::proxy::ProxyKeys<'_> {
        crate::sources::azure::proxy::ProxyKeys {
            proxy: self.proxy.as_deref(),
            credentials_file: self.proxy_credentials_file.as_deref(),
            no_proxy: self.no_proxy.as_deref(),
        }
    }

    /// The proxy route of the Azure client, with the process's environment.
    ///
    /// # Errors
    /// The keys' problems, as `siemcast check` reports them.
    pub fn proxy_route(
        &self,
        resolve: impl Fn(&Path) -> PathBuf,
    ) -> Result<
        crate::sources::azure::proxy::ProxyRoute,
        Vec<crate::sources::azure::proxy::ProxyError>,
    > {
        crate::sources::azure::proxy::ProxyRoute::from_env(self.proxy_keys(), resolve)
    }

    /// `max_answer_bytes`, or its default.
    pub fn max_answer_bytes(&self) -> u64 {
        self.max_answer_bytes
            .unwrap_or(crate::sources::azure::client::DEFAULT_MAX_ANSWER_BYTES)
    }
}

fn default_cloud() -> Cloud {
    Cloud::Public
}

/// A secret string: its `Debug` and `Display` never show the value, and neither does a
/// deserialization error (a number or table where the secret belongs is reported without it).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl Visit {
            fn refuse<E: de::Error>() -> E {
                E::custom("a secret must be a quoted string (its value is not shown)")
            }
        }
        impl<'de> de::Visitor<'de> for Visit {
            type Value = Secret;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a quoted string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Secret, E> {
                Ok(Secret(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Secret, E> {
                Ok(Secret(v))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Secret, E> {
                Err(Self::refuse())
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Secret, E> {
                Err(Self::refuse())
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Secret, E> {
                Err(Self::refuse())
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Secret, E> {
                Err(Self::refuse())
            }
            fn visit_unit<E: de::Error>(self) -> Result<Secret, E> {
                Err(Self::refuse())
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, _: A) -> Result<Secret, A::Error> {
                Err(Self::refuse())
            }
            fn visit_map<A: de::MapAccess<'de>>(self, _: A) -> Result<Secret, A::Error> {
                Err(Self::refuse())
            }
        }
        d.deserialize_any(Visit)
    }
}

/// Environment variables holding secrets: taken verbatim (figment would read `123` as a number
/// and `[x` as the start of an array), never parsed.
const SECRET_ENV: [(&str, &str); 1] = [("AZURE__CLIENT_SECRET", "azure.client_secret")];

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// One `[[source]]`. Kind-specific keys are optional here and checked per kind in `validate`.
#[derive(Debug, Clone, Deserialize)]
pub struct SourceConfig {
    #[serde(default)]
    pub name: String,
    pub kind: Option<SourceKind>,
    /// How often to poll.
    #[serde(default = "default_interval")]
    pub interval: HumanDuration,
    /// How far back the first poll reaches.
    #[serde(default = "default_lookback")]
    pub lookback: HumanDuration,
    /// Microsoft API sources: the `[azure.tenants.NAME]` whose credentials and budgets it uses;
    /// `[azure]`'s own tenant when absent.
    pub tenant: Option<String>,
    /// `azure_activity`, `defender_alerts`: subscription ids, or `["*"]` for every subscription
    /// the identity can read (discovered: `sources::discovery`).
    pub subscriptions: Option<Vec<String>>,
    /// `azure_activity`, `defender_alerts`: the subscriptions below these management groups
    /// (discovered), beside any listed in `subscriptions`.
    pub management_groups: Option<Vec<String>>,
    /// How often discovered subscriptions are listed again (default 1h, at least 1m).
    pub discovery_interval: Option<HumanDuration>,
    pub content_types: Option<Vec<String>>,
    pub start_at: Option<String>,
    /// Windowed API sources: how far each query reaches back before the cursor (late events).
    pub overlap: Option<HumanDuration>,
    /// Windowed API sources: how far behind now each query stops.
    pub settle_delay: Option<HumanDuration>,
    /// `files`: a file or a directory of files.
    pub path: Option<PathBuf>,
    /// `files`: the kind of the events in the files, which chooses the mapping.
    pub source_kind: Option<EventKind>,
    /// `files`: events per spool batch.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// `eventhubs`: `host:port[,host:port…]` of the Kafka endpoint.
    pub bootstrap_servers: Option<String>,
    /// `eventhubs`: the event hub (Kafka topic) to read.
    pub topic: Option<String>,
    /// `eventhubs`: the Kafka consumer group the instances share (default `siemcast`).
    pub group: Option<String>,
    /// `eventhubs`: `sasl_ssl` (Event Hubs, the default) or `plaintext` (self-hosted Kafka).
    pub security: Option<KafkaSecurity>,
    /// `eventhubs`: file holding the namespace or hub connection string (the SASL password).
    pub connection_string_file: Option<PathBuf>,
    /// `eventhubs`: how long the group waits for a silent member before handing its
    /// partitions to the others (Kafka `session.timeout.ms`, 6s–300s; default 30s).
    pub session_timeout: Option<HumanDuration>,
    /// `storage_archive`: the storage account's name (blob endpoint
    /// `https://{account}.blob.core.windows.net` in the public cloud).
    pub account: Option<String>,
    /// `storage_archive`: the Blob service endpoint instead of the cloud's (tests, other clouds).
    pub blob_endpoint: Option<String>,
    /// `storage_archive`: containers to read, or category names (`insights-logs-<lower>`).
    pub containers: Option<Vec<String>>,
    /// `storage_archive`: only blobs whose names start with this (`resourceId=/SUBSCRIPTIONS/…`).
    pub prefix: Option<String>,
    /// `storage_archive`: file holding a SAS (read and list) used instead of the `[azure]`
    /// identity.
    pub sas_token_file: Option<PathBuf>,
    /// Syslog HOSTNAME of this source's events at every destination (a template: `{source}`,
    /// `{kind}`, `{tenant}`); before the destination's own.
    pub hostname: Option<String>,
    /// RFC 5424 APP-NAME of this source's events at every destination (a template, as
    /// `hostname`); before the destination's own.
    pub app_name: Option<String>,
}

fn default_interval() -> HumanDuration {
    HumanDuration(Duration::from_secs(60))
}

fn default_lookback() -> HumanDuration {
    HumanDuration(Duration::from_secs(15 * 60))
}

fn default_batch_size() -> usize {
    1000
}

/// One `[[destination]]`: a SIEM syslog listener.
#[derive(Debug, Clone, Deserialize)]
pub struct DestinationConfig {
    #[serde(default)]
    pub name: String,
    /// `host:port`.
    #[serde(default)]
    pub address: String,
    /// Other `host:port` listeners of the same SIEM, tried in order when `address` fails.
    #[serde(default)]
    pub failover_addresses: Vec<String>,
    /// How long sent data may stay unacknowledged by the receiver before the connection is
    /// declared stalled and replaced (a listener that accepts but no longer reads); for HEC,
    /// how long an ackId may stay unconfirmed before its events are sent again. Read it with
    /// [`DestinationConfig::ack_timeout`] (the default depends on the transport).
    pub ack_timeout: Option<HumanDuration>,
    #[serde(default = "default_transport")]
    pub transport: Transport,
    #[serde(default = "default_framing")]
    pub framing: Framing,
    #[serde(default = "default_syslog")]
    pub syslog: SyslogFormat,
    /// Syslog HOSTNAME, fixed or a template (`{source}`, `{kind}`, `{tenant}`); a source's own
    /// `hostname` comes first; defaults to this machine's host name.
    pub hostname: Option<String>,
    /// RFC 5424 APP-NAME, fixed or a template as `hostname`; a source's own comes first.
    #[serde(default = "default_app_name")]
    pub app_name: String,
    /// Routing: the names of the sources whose events this destination takes (all if absent).
    pub sources: Option<Vec<String>>,
    /// Routing: the event kinds this destination takes (all if absent): kind names as the
    /// mapping files are named, or a prefix ending in `*` (`eventhubs_*`).
    pub kinds: Option<Vec<String>>,
    /// Filter rules (`[[destination.rule]]`), in order; those of `rules_file` follow them.
    #[serde(default, rename = "rule")]
    pub rules: Vec<crate::destinations::filter::RuleConfig>,
    /// A TOML file of `[[rule]]` entries; relative to the config file's directory.
    pub rules_file: Option<PathBuf>,
    /// The compiled rules (inline, then the file's), set when the configuration is loaded.
    #[serde(skip)]
    pub filter: std::sync::Arc<crate::destinations::filter::RuleSet>,
    #[serde(default = "default_facility")]
    pub facility: Facility,
    /// What follows the syslog header: the event rendered by its mapping file (CEF/LEEF), or
    /// the source record as one compact JSON line.
    #[serde(default = "default_output")]
    pub output: Output,
    /// Folder holding `<source kind>.toml`; relative to the config file's directory.
    #[serde(default)]
    pub mappings: PathBuf,
    /// Events per second at most (the SIEM's EPS licence); unlimited when absent.
    pub max_eps: Option<u32>,
    /// Longest message on the wire, header included; longer ones are truncated and counted.
    #[serde(default = "default_max_message_bytes")]
    pub max_message_bytes: usize,
    #[serde(default)]
    pub tls: TlsConfig,
    // `transport = "hec"` (Splunk HTTP Event Collector): checked in `config/hec.rs`.
    /// HEC base URL, `https://splunk.example.com:8088`.
    pub url: Option<String>,
    /// File whose first line is the HEC token (a systemd credential, typically).
    pub token_file: Option<PathBuf>,
    /// Splunk index; the token's default index when absent.
    pub index: Option<String>,
    /// Splunk `host` field; this machine's name when absent.
    pub host: Option<String>,
    /// Splunk `source` field; the `[[source]]`'s name when absent.
    pub source: Option<String>,
    /// Sourcetype per event kind, over the defaults of `docs/splunk.md`.
    #[serde(default)]
    pub sourcetypes: std::collections::BTreeMap<String, String>,
    /// Gzip request bodies (default true).
    pub gzip: Option<bool>,
    /// Most events per HEC request.
    pub batch_events: Option<usize>,
    /// Most bytes (before gzip) per HEC request, about.
    pub batch_bytes: Option<usize>,
    /// Indexer acknowledgement: `false` forces it off; absent, used when the token has it.
    pub ack: Option<bool>,
    /// HEC requests in flight at once.
    pub max_in_flight: Option<usize>,
}

fn default_output() -> Output {
    Output::Mappings
}

fn default_transport() -> Transport {
    Transport::Tcp
}

fn default_framing() -> Framing {
    Framing::Lf
}

fn default_syslog() -> SyslogFormat {
    SyslogFormat::Rfc3164
}

fn default_app_name() -> String {
    "siemcast".to_owned()
}

fn default_facility() -> Facility {
    Facility(20) // local4
}

fn default_max_message_bytes() -> usize {
    64 * 1024
}

/// `[destination.tls]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct TlsConfig {
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// Name checked against the server certificate; defaults to the address's host.
    pub server_name: Option<String>,
    /// Accept exactly the server certificate with this SHA-256 fingerprint (hex, colons allowed)
    /// instead of checking it against a CA.
    pub pin_sha256: Option<String>,
}

// === closed sets, with messages that list the choices ===

/// Declares a closed set of string values with a deserializer whose error lists the choices.
macro_rules! choice {
    ($(#[$meta:meta])* $name:ident { $($variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err(format!(
                        "\"{}\" is not one of {}",
                        other,
                        [$($text),+].join(", ")
                    )),
                }
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(de::Error::custom)
            }
        }
    };
}
pub(crate) use choice;

/// What a `[[source]]` reads: the registry of source kinds.
pub use crate::sources::registry::SourceKind;

choice!(
    /// Which Microsoft cloud the Azure endpoints belong to.
    Cloud { Public = "public", UsGov = "usgov", China = "china" }
);

// The enum comes from `choice!`, so the default cannot be derived on it.
#[allow(clippy::derivable_impls)]
impl Default for Cloud {
    fn default() -> Self {
        Cloud::Public
    }
}

choice!(
    /// How the certificate client assertion is signed.
    AssertionAlgorithm { Ps256 = "PS256", Rs256 = "RS256" }
);

// The enum comes from `choice!`, so the default cannot be derived on it.
#[allow(clippy::derivable_impls)]
impl Default for AssertionAlgorithm {
    fn default() -> Self {
        AssertionAlgorithm::Ps256
    }
}

choice!(
    /// How an `eventhubs` source talks to its Kafka endpoint.
    KafkaSecurity { SaslSsl = "sasl_ssl", Plaintext = "plaintext" }
);

choice!(
    /// How bytes reach a destination.
    Transport { Udp = "udp", Tcp = "tcp", Tls = "tls", Hec = "hec" }
);

choice!(
    /// A destination's message body: CEF/LEEF through its mapping files, or the record's JSON.
    Output { Mappings = "mappings", Json = "json" }
);

choice!(
    /// How messages are delimited on a stream transport.
    Framing { Lf = "lf", OctetCounting = "octet-counting" }
);

choice!(
    /// The syslog header written before each CEF/LEEF payload.
    SyslogFormat { Rfc3164 = "rfc3164", Rfc5424 = "rfc5424", None = "none" }
);

/// A syslog facility, written by name (`local4`) or number (0–23).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Facility(pub u8);

const FACILITY_NAMES: [&str; 24] = [
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "authpriv",
    "ftp", "ntp", "audit", "alert", "clock", "local0", "local1", "local2", "local3", "local4",
    "local5", "local6", "local7",
];

impl<'de> Deserialize<'de> for Facility {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        FACILITY_NAMES
            .iter()
            .position(|n| *n == s)
            .map(|i| Facility(i as u8))
            .or_else(|| s.parse::<u8>().ok().filter(|n| *n < 24).map(Facility))
            .ok_or_else(|| {
                de::Error::custom(format!(
                    "\"{s}\" is not a syslog facility (kern, user, ..., local0 to local7, or 0 to 23)"
                ))
            })
    }
}

/// A duration written as a human string: `"60s"`, `"15m"`, `"1h 30m"`, `"500ms"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl std::str::FromStr for HumanDuration {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("\"{s}\" is not a duration; write it like \"60s\", \"15m\" or \"2h\"");
        let signed: jiff::SignedDuration = s.trim().parse().map_err(|_| bad())?;
        Duration::try_from(signed)
            .map(HumanDuration)
            .map_err(|_| bad())
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(de::Error::custom)
    }
}

// === loading ===

/// One problem found in the configuration, with where it is (and, for a mapping file, its
/// hint): the diagnostic `render` reports too.
pub type Problem = crate::diag::Diagnostic;

/// Every problem of a configuration; `Display` prints one `FILE:LINE:COL: message` per line.
#[derive(Debug, Clone, thiserror::Error)]
pub struct ConfigErrors(pub Vec<Problem>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

/// Collects problems with their locations.
pub(crate) struct Problems<'a> {
    file: &'a Path,
    locator: &'a Locator,
    list: Vec<Problem>,
}

impl Problems<'_> {
    pub(crate) fn add(&mut self, path: &KeyPath, message: impl Into<String>) {
        self.list.push(Problem {
            file: self.file.to_owned(),
            position: self.locator.find(path),
            message: message.into(),
            hint: None,
        });
    }
}

/// Environment variables read by the program itself rather than mapped onto config keys.
const RESERVED_ENV: [&str; 2] = ["config", "log"];

impl Config {
    /// Reads `path` with `SIEMCAST_*` overrides and validates it. Does no network I/O.
    ///
    /// # Errors
    /// Every problem found, each with its location.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let single = |message: String| {
            ConfigErrors(vec![Problem {
                file: path.to_owned(),
                position: None,
                message,
                hint: None,
            }])
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| single(format!("cannot read the configuration file: {e}")))?;
        let env = Env::prefixed("SIEMCAST_").split("__").filter(|k| {
            !RESERVED_ENV
                .iter()
                .chain(SECRET_ENV.iter().map(|(_, key)| key))
                .any(|r| k.as_str().eq_ignore_ascii_case(r))
        });
        let secrets = SECRET_ENV
            .iter()
            .filter_map(|(var, key)| Some((*key, std::env::var(format!("SIEMCAST_{var}")).ok()?)))
            .collect();
        Self::from_parts(path, &text, env, secrets)
    }

    /// Parses configuration text without environment overrides (tests, `demo`).
    pub fn from_toml(path: &Path, text: &str) -> Result<Config, ConfigErrors> {
        Self::from_parts(
            path,
            text,
            Env::prefixed("SIEMCAST_UNUSED_NEVER_SET_"),
            Vec::new(),
        )
    }

    fn from_parts(
        path: &Path,
        text: &str,
        env: Env,
        secrets: Vec<(&str, String)>,
    ) -> Result<Config, ConfigErrors> {
        let locator = match Locator::parse(text) {
            Ok(l) => l,
            Err((pos, message)) => {
                return Err(ConfigErrors(vec![Problem {
                    file: path.to_owned(),
                    position: Some(pos),
                    message: format!("invalid TOML: {message}"),
                    hint: None,
                }]))
            }
        };
        let mut problems = Problems {
            file: path,
            locator: &locator,
            list: Vec::new(),
        };
        let mut figment = Figment::new().merge(Toml::string(text)).merge(env);
        for (key, value) in secrets {
            figment = figment.merge(Serialized::default(key, value));
        }
        let merged: figment::value::Value = figment.extract().map_err(|e| {
            ConfigErrors(vec![Problem {
                file: path.to_owned(),
                position: None,
                message: e.to_string(),
                hint: None,
            }])
        })?;
        let mut tree = serde_json::to_value(&merged).map_err(|e| {
            ConfigErrors(vec![Problem {
                file: path.to_owned(),
                position: None,
                message: e.to_string(),
                hint: None,
            }])
        })?;
        let mut config = deserialize_all::<Config>(&mut tree, &mut problems);
        if let Some(cfg) = &mut config {
            cfg.base_dir = path
                .parent()
                .map(Path::to_owned)
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or_else(|| PathBuf::from("."));
            cfg.validate_into(&mut problems);
            cfg.compile_rules_into(&mut problems);
        }
        match config {
            Some(cfg) if problems.list.is_empty() => Ok(cfg),
            _ => {
                // In file order: this file first, then mapping files; positions ascending.
                let mut list = problems.list;
                list.sort_by_key(|p| {
                    let pos = p.position.map(|p| (p.line, p.column));
                    (p.file != path, p.file.clone(), pos.is_none(), pos)
                });
                Err(ConfigErrors(list))
            }
        }
    }

    /// Resolves a path from the config against the config file's directory.
    pub fn resolve(&self, path: &Path) -> PathBuf {
        if path.is_absolute() {
            path.to_owned()
        } else {
            self.base_dir.join(path)
        }
    }

    /// Directory of the durable spool.
    pub fn spool_dir(&self) -> PathBuf {
        self.resolve(&self.state_dir).join("spool")
    }

    /// The event kinds that the configured sources produce (the mappings each destination needs).
    pub fn event_kinds(&self) -> Vec<EventKind> {
        let kinds: BTreeSet<EventKind> =
            self.sources.iter().flat_map(|s| s.event_kinds()).collect();
        kinds.into_iter().collect()
    }
}

impl SourceConfig {
    /// The kind of event this source produces, which selects the mapping file.
    pub fn event_kind(&self) -> Option<EventKind> {
        match self.kind? {
            SourceKind::Files => self.source_kind,
            kind => kind.info().event_kind,
        }
    }

    /// Every kind of event this source can produce: one, or for `eventhubs` each kind its
    /// streamed records are sorted into.
    pub fn event_kinds(&self) -> Vec<EventKind> {
        match self.kind {
            Some(SourceKind::EventHubs) => crate::event::EventKind::STREAMED.to_vec(),
            // The streamed records archived to blobs, and flow-log tuples.
            Some(SourceKind::StorageArchive) => {
                let mut kinds = crate::event::EventKind::STREAMED.to_vec();
                kinds.push(crate::event::EventKind::NetworkFlow);
                kinds
            }
            _ => self.event_kind().into_iter().collect(),
        }
    }
}

impl DestinationConfig {
    /// The primary address, then the failover addresses, in the order they are tried.
    pub fn addresses(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.address.as_str())
            .chain(self.failover_addresses.iter().map(String::as_str))
    }
}

/// This machine's host name, or `siemcast` when it cannot be read.
pub fn local_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "siemcast".to_owned())
}

/// Splits `host:port` (`[v6]:port` for IPv6).
pub fn split_host_port(address: &str) -> Option<(&str, u16)> {
    let (host, port) = address.rsplit_once(':')?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let port: u16 = port.parse().ok()?;
    (!host.is_empty() && port != 0).then_some((host, port))
}

/// Deserializes the merged tree into [`Config`], recording every unknown key and every bad value
/// (each bad value is removed and deserialization retried, so all of them are found in one run).
fn deserialize_all<T: serde::de::DeserializeOwned>(
    tree: &mut serde_json::Value,
    p: &mut Problems<'_>,
) -> Option<T> {
    // Each round removes one offending key; a config cannot have more keys than this.
    for _ in 0..256 {
        let mut unknown = Vec::new();
        let result: Result<T, _> = {
            let mut record = |path: serde_ignored::Path<'_>| {
                unknown.push(locate::from_ignored_path(&path));
            };
            let de = serde_ignored::Deserializer::new(&*tree, &mut record);
            serde_path_to_error::deserialize(de)
        };
        match result {
            Ok(cfg) => {
                for path in unknown {
                    let key = path.last_key().unwrap_or("?").to_owned();
                    p.add(&path, unknown_key_message(&path, &key));
                }
                return Some(cfg);
            }
            Err(err) => {
                let path = locate::from_serde_path(err.path());
                let message = err.inner().to_string();
                let key = path.last_key().unwrap_or("").to_owned();
                let who = describe_owner(tree, &path);
                let text = if message.starts_with('"') {
                    format!("{who}{key} {message}")
                } else {
                    format!("{who}{key}: {message}")
                };
                p.add(&path, text);
                if !path.remove_from(tree) {
                    return None;
                }
            }
        }
    }
    None
}

fn unknown_key_message(path: &KeyPath, key: &str) -> String {
    let parent = KeyPath(path.0[..path.0.len().saturating_sub(1)].to_vec());
    if parent.0.is_empty() {
        format!("unknown key \"{key}\"")
    } else {
        format!("unknown key \"{key}\" in {parent}")
    }
}

/// `destination "qradar": ` for a key inside a named destination or source.
fn describe_owner(tree: &serde_json::Value, path: &KeyPath) -> String {
    use locate::Seg;
    match path.0.as_slice() {
        [Seg::Key(section), Seg::Index(i), ..]
            if section == "source" || section == "destination" || section == "rule" =>
        {
            let name = tree
                .get(section)
                .and_then(|v| v.get(*i))
                .and_then(|v| v.get("name"))
                .and_then(|v| v.as_str());
            match name {
                Some(n) => format!("{section} \"{n}\": "),
                None => format!("{section} #{}: ", i + 1),
            }
        }
        [Seg::Key(section), _, ..] => format!("{section}: "),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests;
