//! Typed destination specs: the transport-specific keys of a validated `[[destination]]` in
//! the shape the build step needs (a syslog listener, or a Splunk HEC with its parsed URL), read
//! here once so the build step neither re-reads optional keys nor re-parses the URL.

use std::path::PathBuf;

use crate::config::hec::hec_url;
use crate::config::{split_host_port, Config, DestinationConfig, Transport};

/// What a destination of each transport is built from, beside the keys every one has.
#[derive(Debug, Clone)]
pub enum DestinationSpec {
    /// A syslog listener over udp, tcp or tls; with tls, the host its certificate must name.
    Syslog { tls_host: Option<String> },
    /// A Splunk HTTP Event Collector: its base URL and its token file (resolved).
    Hec {
        url: reqwest::Url,
        token_file: PathBuf,
    },
}

impl DestinationSpec {
    /// The spec of destination `cfg`; an error says what a configuration that did not pass
    /// validation lacks.
    pub fn of(cfg: &DestinationConfig, config: &Config) -> Result<DestinationSpec, String> {
        Ok(match cfg.transport {
            Transport::Hec => DestinationSpec::Hec {
                url: hec_url(cfg.url.as_deref().unwrap_or_default())
                    .map_err(|e| format!("url {e}"))?,
                token_file: config.resolve(
                    cfg.token_file
                        .as_deref()
                        .ok_or_else(|| "token_file is missing".to_owned())?,
                ),
            },
            Transport::Tls => DestinationSpec::Syslog {
                tls_host: Some(
                    split_host_port(&cfg.address)
                        .map_or("", |(h, _)| h)
                        .to_owned(),
                ),
            },
            Transport::Udp | Transport::Tcp => DestinationSpec::Syslog { tls_host: None },
        })
    }

    /// The host the receiver's certificate must name, when the connection is TLS (syslog over
    /// tls, or an `https://` HEC URL).
    pub fn tls_host(&self) -> Option<&str> {
        match self {
            DestinationSpec::Syslog { tls_host } => tls_host.as_deref(),
            DestinationSpec::Hec { url, .. } => url.host_str().filter(|_| url.scheme() == "https"),
        }
    }
}
