//! Typed per-kind source specs: the kind-specific keys of a validated `[[source]]` in the shape
//! its build step needs, chosen by the registry entry (`SourceKind::info`). Read here once, so
//! no source re-reads optional keys or assumes that validation passed.

use std::path::PathBuf;
use std::time::Duration;

use super::diff::DiffApi;
use super::eventhubs::DEFAULT_GROUP;
use super::poll::WindowApi;
use super::registry::{Family, Scopes};
use super::SourceError;
use crate::config::{Config, KafkaSecurity, SourceConfig, SourceKind};
use crate::event::EventKind;

/// What a source of each family is built from, beside the keys every source has.
#[derive(Debug, Clone)]
pub enum SourceSpec {
    /// `files`: the file or directory (resolved against the config's directory) and the kind
    /// of the events in it.
    Files { path: PathBuf, kind: EventKind },
    /// A windowed API source: its API and its scopes (subscriptions, the tenant, its lists).
    Windowed {
        api: &'static WindowApi,
        scopes: Vec<String>,
    },
    /// A diffed API source: its API and its scopes (subscriptions, or the tenant).
    Diffed {
        api: &'static DiffApi,
        scopes: Vec<String>,
    },
    /// `o365_management`: the tenant and the content types to list.
    ContentBlobs {
        tenant: String,
        content_types: Vec<String>,
    },
    /// `eventhubs`: the Kafka endpoint, topic, group and security.
    Stream(StreamSpec),
    /// `storage_archive`: the Blob service endpoint, containers, prefix and SAS file.
    Archive(ArchiveSpec),
}

/// A `storage_archive` source's storage side.
#[derive(Debug, Clone)]
pub struct ArchiveSpec {
    /// `https://{account}.blob.core.windows.net` (per cloud), or `blob_endpoint`; no trailing `/`.
    pub endpoint: String,
    /// Container names (categories already turned into `insights-logs-<lower>`).
    pub containers: Vec<String>,
    /// Only blobs whose names start with this.
    pub prefix: String,
    /// The SAS file (resolved), when the source does not use the `[azure]` identity.
    pub sas_token_file: Option<PathBuf>,
}

impl ArchiveSpec {
    /// The storage side of `storage_archive` source `cfg`.
    pub fn of(cfg: &SourceConfig, config: &Config) -> Result<ArchiveSpec, SourceError> {
        let missing = |what: &str| SourceError::Config {
            source_name: cfg.name.clone(),
            message: format!("{what} is missing"),
        };
        let endpoint = match (&cfg.blob_endpoint, &cfg.account) {
            (Some(e), _) => e.trim_end_matches('/').to_owned(),
            (None, Some(account)) => {
                // The cloud of the source's tenant (`[azure]` or `[azure.tenants.NAME]`).
                let cloud = config
                    .azure_for(cfg)
                    .map_or(config.azure.cloud, |a| a.cloud);
                let suffix = match cloud {
                    crate::config::Cloud::Public => "blob.core.windows.net",
                    crate::config::Cloud::UsGov => "blob.core.usgovcloudapi.net",
                    crate::config::Cloud::China => "blob.core.chinacloudapi.cn",
                };
                format!("https://{account}.{suffix}")
            }
            (None, None) => return Err(missing("account")),
        };
        Ok(ArchiveSpec {
            endpoint,
            containers: cfg
                .containers
                .as_ref()
                .ok_or_else(|| missing("containers"))?
                .iter()
                .map(|c| super::storage_archive::split::container_of(c))
                .collect(),
            prefix: cfg.prefix.clone().unwrap_or_default(),
            sas_token_file: cfg.sas_token_file.as_deref().map(|f| config.resolve(f)),
        })
    }
}

/// An `eventhubs` source's Kafka side.
#[derive(Debug, Clone)]
pub struct StreamSpec {
    /// `host:port[,host:port…]`.
    pub bootstrap: String,
    pub topic: String,
    /// The consumer group (default [`DEFAULT_GROUP`]).
    pub group: String,
    /// Kafka `session.timeout.ms` (default 30s).
    pub session: Duration,
    pub security: StreamSecurity,
}

/// How an `eventhubs` source authenticates.
#[derive(Debug, Clone)]
pub enum StreamSecurity {
    /// Self-hosted Kafka without TLS.
    Plaintext,
    /// Event Hubs: SASL PLAIN over TLS with the connection string in this file (resolved).
    SaslSsl { connection_string_file: PathBuf },
}

impl StreamSpec {
    /// The Kafka side of `eventhubs` source `cfg`.
    pub fn of(cfg: &SourceConfig, config: &Config) -> Result<StreamSpec, SourceError> {
        let missing = |what: &str| SourceError::Config {
            source_name: cfg.name.clone(),
            message: format!("{what} is missing"),
        };
        Ok(StreamSpec {
            bootstrap: cfg
                .bootstrap_servers
                .clone()
                .ok_or_else(|| missing("bootstrap_servers"))?,
            topic: cfg.topic.clone().ok_or_else(|| missing("topic"))?,
            group: cfg
                .group
                .clone()
                .unwrap_or_else(|| DEFAULT_GROUP.to_owned()),
            session: cfg.session_timeout.map_or(Duration::from_secs(30), |d| d.0),
            security: match cfg.security.unwrap_or(KafkaSecurity::SaslSsl) {
                KafkaSecurity::Plaintext => StreamSecurity::Plaintext,
                KafkaSecurity::SaslSsl => StreamSecurity::SaslSsl {
                    connection_string_file: config.resolve(
                        cfg.connection_string_file
                            .as_deref()
                            .ok_or_else(|| missing("connection_string_file"))?,
                    ),
                },
            },
        })
    }
}

impl SourceSpec {
    /// The spec of source `cfg`; an error names the key a configuration that did not pass
    /// validation lacks.
    pub fn of(cfg: &SourceConfig, config: &Config) -> Result<SourceSpec, SourceError> {
        let missing = |what: &str| SourceError::Config {
            source_name: cfg.name.clone(),
            message: format!("{what} is missing"),
        };
        let kind: SourceKind = cfg.kind.ok_or_else(|| missing("kind"))?;
        let info = kind.info();
        let scopes = || match info.scopes {
            // Discovered subscriptions (`"*"`, `management_groups`) are added as the source
            // runs (`sources::discovery`); the ids listed are its fixed scopes.
            Scopes::Subscriptions => match (&cfg.subscriptions, &cfg.management_groups) {
                (None, None) => Err(missing("subscriptions")),
                (subs, _) => Ok(subs
                    .iter()
                    .flatten()
                    .filter(|s| *s != super::discovery::EVERY)
                    .cloned()
                    .collect()),
            },
            Scopes::Tenant => config
                .tenant_id_for(cfg)
                .map(|t| vec![t])
                .ok_or_else(|| missing("the tenant's tenant_id")),
            Scopes::Fixed(lists) => Ok(lists.iter().map(|l| (*l).to_owned()).collect()),
            Scopes::ContentTypes => cfg
                .content_types
                .clone()
                .ok_or_else(|| missing("content_types")),
            Scopes::Containers | Scopes::None => Ok(Vec::new()),
        };
        Ok(match info.family {
            Family::Files => SourceSpec::Files {
                path: config.resolve(cfg.path.as_deref().ok_or_else(|| missing("path"))?),
                kind: cfg.source_kind.ok_or_else(|| missing("source_kind"))?,
            },
            Family::Windowed(api) => SourceSpec::Windowed {
                api,
                scopes: scopes()?,
            },
            Family::Diffed(api) => SourceSpec::Diffed {
                api,
                scopes: scopes()?,
            },
            Family::ContentBlobs => SourceSpec::ContentBlobs {
                tenant: config
                    .tenant_id_for(cfg)
                    .ok_or_else(|| missing("the tenant's tenant_id"))?,
                content_types: scopes()?,
            },
            Family::Stream => SourceSpec::Stream(StreamSpec::of(cfg, config)?),
            Family::Archive => SourceSpec::Archive(ArchiveSpec::of(cfg, config)?),
        })
    }
}
