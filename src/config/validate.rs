//! Semantic checks of a parsed configuration: names, required keys per source kind,
//! addresses, limits, and every mapping a destination will use. Each problem is recorded with
//! its location; nothing stops at the first one.

use std::collections::BTreeSet;

use super::tenants::{unknown_tenant, DEFAULT_TENANT, MAX_TENANTS};
use super::{
    split_host_port, AzureConfig, Config, DestinationConfig, Framing, KeyPath, Output, Problem,
    Problems, SourceConfig, SourceKind, TlsConfig, Transport,
};
use crate::destinations::identity;
use crate::destinations::route::{kind_pattern, Route};
use crate::destinations::tls::TlsSetup;
use crate::event::EventKind;
use crate::sources::registry::{kinds_text, Family, Scopes};

impl Config {
    /// Semantic checks, every problem recorded.
    pub(super) fn validate_into(&self, p: &mut Problems<'_>) {
        let root = KeyPath::root();
        if self.sources.is_empty() {
            p.add(&root, "no [[source]] is configured; add at least one");
        }
        if self.destinations.is_empty() {
            p.add(&root, "no [[destination]] is configured; add at least one");
        }
        if !self.metrics.address.is_empty()
            && self
                .metrics
                .address
                .parse::<std::net::SocketAddr>()
                .is_err()
        {
            p.add(
                &root.key("metrics").key("address"),
                format!(
                    "metrics: address \"{}\" is not an IP:port like 127.0.0.1:9464 (empty turns it off)",
                    self.metrics.address
                ),
            );
        }
        let mut names = BTreeSet::new();
        for (i, s) in self.sources.iter().enumerate() {
            let at = root.key("source").index(i);
            let who = if s.name.is_empty() {
                format!("source #{}", i + 1)
            } else {
                format!("source \"{}\"", s.name)
            };
            if s.name.is_empty() {
                p.add(&at, format!("{who}: name is missing"));
            } else if !valid_name(&s.name) {
                p.add(
                    &at.key("name"),
                    format!("{who}: name may use only letters, digits, '-' and '_'"),
                );
            } else if !names.insert(s.name.clone()) {
                p.add(
                    &at.key("name"),
                    format!("{who}: another source has the same name"),
                );
            }
            s.validate_into(&who, &at, p);
            s.validate_kafka_into(self, &who, &at, p);
            s.validate_archive_into(self, &who, &at, p);
            s.validate_discovery_into(self, &who, &at, p);
            if let Some(tenant) = &s.tenant {
                let api = s.kind.is_some_and(SourceKind::reads_azure_api);
                if s.kind.is_some() && !api {
                    p.add(
                        &at.key("tenant"),
                        format!(
                            "{who}: tenant applies only to the Microsoft API sources (kinds {})",
                            kinds_text(|k| k.reads_azure_api(), true)
                        ),
                    );
                } else if self.azure.tenant(tenant).is_none() {
                    p.add(
                        &at.key("tenant"),
                        format!("{who}: {}", unknown_tenant(tenant, &self.azure)),
                    );
                }
            }
            for (field, e) in identity::check_source(s, self) {
                p.add(&at.key(field.key()), format!("{who}: {}: {e}", field.key()));
            }
        }
        let mut names = BTreeSet::new();
        for (i, d) in self.destinations.iter().enumerate() {
            let at = root.key("destination").index(i);
            let who = if d.name.is_empty() {
                format!("destination #{}", i + 1)
            } else {
                format!("destination \"{}\"", d.name)
            };
            if d.name.is_empty() {
                p.add(&at, format!("{who}: name is missing"));
            } else if !valid_name(&d.name) {
                p.add(
                    &at.key("name"),
                    format!("{who}: name may use only letters, digits, '-' and '_'"),
                );
            } else if !names.insert(d.name.clone()) {
                p.add(
                    &at.key("name"),
                    format!("{who}: another destination has the same name"),
                );
            }
            d.validate_into(self, &who, &at, p);
        }
        self.azure.validate_into(self, p);
    }
}

/// The kinds whose scopes are `scopes`, quoted, as messages name them.
fn scoped_kinds(scopes: Scopes) -> String {
    kinds_text(|k| k.info().scopes == scopes, true)
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

impl SourceConfig {
    pub(super) fn validate_into(&self, who: &str, at: &KeyPath, p: &mut Problems<'_>) {
        let Some(kind) = self.kind else {
            p.add(
                at,
                format!(
                    "{who}: kind is missing; it is one of {}",
                    SourceKind::ALL
                        .iter()
                        .map(|k| k.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
            return;
        };
        if self.interval.0.is_zero() {
            p.add(
                &at.key("interval"),
                format!("{who}: interval must be longer than 0s"),
            );
        }
        if self.batch_size == 0 || self.batch_size > 100_000 {
            p.add(
                &at.key("batch_size"),
                format!("{who}: batch_size must be between 1 and 100000"),
            );
        }
        let only_files = [
            ("path", self.path.is_some()),
            ("source_kind", self.source_kind.is_some()),
        ];
        if kind != SourceKind::Files {
            for (key, present) in only_files {
                if present {
                    p.add(
                        &at.key(key),
                        format!("{who}: {key} applies only to kind \"files\""),
                    );
                }
            }
        }
        match kind {
            SourceKind::Files => {
                // The poller keys are checked in validate_poller; on a files source they would
                // be silently ignored, so they are pointed out here.
                if self.subscriptions.is_some() {
                    p.add(
                        &at.key("subscriptions"),
                        format!(
                            "{who}: subscriptions applies only to kinds {}",
                            scoped_kinds(Scopes::Subscriptions)
                        ),
                    );
                }
                if self.content_types.is_some() {
                    p.add(
                        &at.key("content_types"),
                        format!(
                            "{who}: content_types applies only to kind {}",
                            scoped_kinds(Scopes::ContentTypes)
                        ),
                    );
                }
                if self.path.is_none() {
                    p.add(
                        at,
                        format!("{who}: path is missing; name the file or directory to read"),
                    );
                }
                if self.source_kind.is_none() {
                    p.add(
                        at,
                        format!(
                            "{who}: source_kind is missing; it names the kind of the events in the files, one of {}",
                            EventKind::ALL.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(", ")
                        ),
                    );
                }
            }
            kind if kind.polls() => self.validate_poller(kind, who, at, p),
            // Checked with the whole config at hand (the secret file's path): sources/eventhubs/check.rs.
            _ => {}
        }
    }

    /// Keys of the windowed Microsoft API sources.
    fn validate_poller(&self, kind: SourceKind, who: &str, at: &KeyPath, p: &mut Problems<'_>) {
        let scopes = kind.info().scopes;
        match (&self.subscriptions, scopes) {
            (None, Scopes::Subscriptions) if self.management_groups.is_none() => p.add(
                at,
                format!("{who}: subscriptions is missing; list the subscription ids to read, e.g. subscriptions = [\"00000000-0000-0000-0000-000000000000\"], or [\"*\"] for every subscription the identity can read"),
            ),
            (Some(subs), Scopes::Subscriptions) => {
                if subs.is_empty() {
                    p.add(
                        &at.key("subscriptions"),
                        format!("{who}: subscriptions is empty; list at least one subscription id"),
                    );
                }
                for (i, sub) in subs.iter().enumerate() {
                    // "*": checked with the discovery keys (sources/discovery/check.rs).
                    if sub != crate::sources::discovery::EVERY && !is_guid(sub) {
                        p.add(
                            &at.key("subscriptions").index(i),
                            format!("{who}: subscription \"{sub}\" is not a subscription id (a GUID like 5f1c2a7e-8d3b-4c6a-9e21-0b7d4f3a9c11)"),
                        );
                    }
                }
            }
            (Some(_), _) => p.add(
                &at.key("subscriptions"),
                format!("{who}: subscriptions applies only to kinds {}", scoped_kinds(Scopes::Subscriptions)),
            ),
            (None, _) => {}
        }
        let known = crate::sources::o365_management::CONTENT_TYPES;
        match (&self.content_types, scopes) {
            (None, Scopes::ContentTypes) => p.add(
                at,
                format!("{who}: content_types is missing; list the audit content types to read, e.g. content_types = [\"Audit.AzureActiveDirectory\", \"Audit.Exchange\", \"Audit.SharePoint\", \"Audit.General\", \"DLP.All\"]"),
            ),
            (Some(types), Scopes::ContentTypes) => {
                if types.is_empty() {
                    p.add(
                        &at.key("content_types"),
                        format!("{who}: content_types is empty; list at least one content type"),
                    );
                }
                for (i, t) in types.iter().enumerate() {
                    if !known.contains(&t.as_str()) {
                        p.add(
                            &at.key("content_types").index(i),
                            format!("{who}: content type \"{t}\" is not one of {}", known.join(", ")),
                        );
                    }
                }
            }
            (Some(_), _) => p.add(
                &at.key("content_types"),
                format!("{who}: content_types applies only to kind {}", scoped_kinds(Scopes::ContentTypes)),
            ),
            (None, _) => {}
        }
        if let Family::Diffed(api) = kind.info().family {
            self.no_window_keys(at, p, |key| {
                format!("{who}: {key} does not apply to kind \"{kind}\", which lists every {} at each poll", api.objects)
            });
        }
        if let Some(start) = &self.start_at {
            if let Err(e) = crate::sources::poll::StartAt::parse(start) {
                p.add(&at.key("start_at"), format!("{who}: {e}"));
            }
        }
        if self
            .overlap
            .is_some_and(|d| d.0 > std::time::Duration::from_secs(7 * 24 * 3600))
        {
            p.add(
                &at.key("overlap"),
                format!("{who}: overlap must be at most 7d"),
            );
        }
        if self
            .settle_delay
            .is_some_and(|d| d.0 > std::time::Duration::from_secs(24 * 3600))
        {
            p.add(
                &at.key("settle_delay"),
                format!("{who}: settle_delay must be at most 24h"),
            );
        }
    }
}

impl SourceConfig {
    /// Whether this source authenticates with an `[azure]` identity: every Microsoft API
    /// source but a `storage_archive` source with a SAS.
    pub fn uses_azure_identity(&self) -> bool {
        self.kind.is_some_and(SourceKind::reads_azure_api)
            && !(self.kind == Some(SourceKind::StorageArchive) && self.sas_token_file.is_some())
    }
}

/// Keys that only a `storage_archive` source reads.
const ARCHIVE_KEYS: [&str; 5] = [
    "account",
    "blob_endpoint",
    "containers",
    "prefix",
    "sas_token_file",
];

impl SourceConfig {
    /// The `storage_archive` keys, for any kind; `cfg` resolves the SAS file (read to check its
    /// permissions and expiry; its content is never shown).
    pub(crate) fn validate_archive_into(
        &self,
        cfg: &Config,
        who: &str,
        at: &KeyPath,
        p: &mut Problems<'_>,
    ) {
        let present = [
            self.account.is_some(),
            self.blob_endpoint.is_some(),
            self.containers.is_some(),
            self.prefix.is_some(),
            self.sas_token_file.is_some(),
        ];
        if self.kind != Some(SourceKind::StorageArchive) {
            for (key, set) in ARCHIVE_KEYS.iter().zip(present) {
                if set {
                    p.add(
                        &at.key(key),
                        format!("{who}: {key} applies only to kind \"storage_archive\""),
                    );
                }
            }
            return;
        }
        self.no_window_keys(at, p, |key| {
            format!("{who}: {key} does not apply to kind \"storage_archive\" (it reads blobs as they grow, not time windows)")
        });
        match (&self.account, &self.blob_endpoint) {
            (None, None) => p.add(
                at,
                format!("{who}: account is missing; name the storage account the diagnostic settings write to, e.g. account = \"contosologarchive\""),
            ),
            (Some(a), _) if !valid_account(a) => p.add(
                &at.key("account"),
                format!("{who}: account \"{a}\" is not a storage account name (3 to 24 lower-case letters and digits)"),
            ),
            _ => {}
        }
        if let Some(url) = &self.blob_endpoint {
            if let Err(e) = crate::sources::azure::auth::check_endpoint(url) {
                p.add(
                    &at.key("blob_endpoint"),
                    format!("{who}: blob_endpoint {e}"),
                );
            }
        }
        use crate::sources::storage_archive::split::{container_of, valid_container};
        match &self.containers {
            None => p.add(
                at,
                format!("{who}: containers is missing; list the containers or log categories to read, e.g. containers = [\"insights-activity-logs\", \"AuditEvent\"]"),
            ),
            Some(list) if list.is_empty() => p.add(
                &at.key("containers"),
                format!("{who}: containers is empty; list at least one container or log category"),
            ),
            Some(list) => {
                for (i, c) in list.iter().enumerate() {
                    let name = container_of(c);
                    if !valid_container(&name) {
                        p.add(
                            &at.key("containers").index(i),
                            format!("{who}: container \"{name}\" (from \"{c}\") is not a container name (3 to 63 lower-case letters, digits and single hyphens)"),
                        );
                    }
                }
            }
        }
        if self
            .prefix
            .as_deref()
            .is_some_and(|x| x.contains(['?', '#']))
        {
            p.add(
                &at.key("prefix"),
                format!("{who}: prefix is the start of blob names, like \"resourceId=/SUBSCRIPTIONS/<id>\"; it holds no '?' or '#'"),
            );
        }
        if let Some(file) = &self.sas_token_file {
            let path = cfg.resolve(file);
            let checked = std::fs::read_to_string(&path)
                .map_err(|e| format!("cannot be read: {e}"))
                .and_then(|text| {
                    crate::sources::storage_archive::check_sas(
                        &text,
                        jiff::Timestamp::now().as_millisecond(),
                    )
                });
            if let Err(e) = checked {
                p.add(
                    &at.key("sas_token_file"),
                    format!("{who}: sas_token_file {}: {e}", path.display()),
                );
            }
        }
    }
}

impl SourceConfig {
    /// Tells `overlap` and `settle_delay`, when set, with `message(key)`: for kinds that read
    /// no time windows.
    fn no_window_keys(&self, at: &KeyPath, p: &mut Problems<'_>, message: impl Fn(&str) -> String) {
        for (key, set) in [
            ("overlap", self.overlap.is_some()),
            ("settle_delay", self.settle_delay.is_some()),
        ] {
            if set {
                p.add(&at.key(key), message(key));
            }
        }
    }
}

/// A storage account name: 3 to 24 lower-case letters and digits.
fn valid_account(name: &str) -> bool {
    (3..=24).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

fn is_guid(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.chars().all(|c| c.is_ascii_hexdigit()))
}

impl AzureConfig {
    /// `[azure]` and its `[azure.tenants.NAME]` as the Microsoft API sources need them: the
    /// default tenant's keys when a source reads it, its credential also when a named tenant
    /// borrows it, and every named tenant's own keys.
    fn validate_into(&self, cfg: &Config, p: &mut Problems<'_>) {
        let at = KeyPath::root().key("azure");
        // A storage_archive source with a SAS needs no identity.
        let api = |s: &&SourceConfig| s.uses_azure_identity();
        let uses_default = cfg
            .sources
            .iter()
            .filter(api)
            .any(|s| s.tenant_name() == DEFAULT_TENANT);
        let borrowed = self
            .tenants
            .values()
            .any(|t| t.own_credential_keys().is_empty());
        self.validate_keys_into(
            cfg,
            &at,
            "azure",
            uses_default || !self.tenants.is_empty(),
            p,
        );
        if uses_default {
            self.validate_tenant_id_into(&at, "azure", p);
        }
        if uses_default || borrowed {
            self.validate_credential_into(cfg, &at, "azure", p);
        }
        if self.tenants.len() > MAX_TENANTS {
            p.add(
                &at.key("tenants"),
                format!("azure: {} tenants are configured; at most {MAX_TENANTS} are served by one process", self.tenants.len()),
            );
        }
        for (name, t) in &self.tenants {
            let at = at.key("tenants").key(name);
            let who = format!("azure.tenants.{name}");
            if name == DEFAULT_TENANT {
                p.add(&at, format!("{who}: \"{DEFAULT_TENANT}\" is the name of the [azure] tenant itself; choose another name"));
            } else if !valid_name(name) {
                p.add(&at, format!("{who}: a tenant name may use only letters, digits, '-' and '_' (at most 64)"));
            }
            // Only what the tenant writes itself: what it takes from [azure] is checked there.
            let own = t.over(&AzureConfig::default());
            own.validate_keys_into(cfg, &at, &who, false, p);
            own.validate_tenant_id_into(&at, &who, p);
            if !t.own_credential_keys().is_empty() {
                own.validate_credential_into(cfg, &at, &who, p);
            }
        }
    }

    /// Endpoints, IMDS, the answer cap and the proxy keys; `needed` when a source uses them.
    fn validate_keys_into(
        &self,
        cfg: &Config,
        at: &KeyPath,
        who: &str,
        needed: bool,
        p: &mut Problems<'_>,
    ) {
        for (key, value) in [
            ("login_endpoint", &self.login_endpoint),
            ("management_endpoint", &self.management_endpoint),
            ("graph_endpoint", &self.graph_endpoint),
            ("office_endpoint", &self.office_endpoint),
        ] {
            if let Some(url) = value {
                if let Err(e) = crate::sources::azure::auth::check_endpoint(url) {
                    p.add(&at.key(key), format!("{who}: {key} {e}"));
                }
            }
        }
        if let Some(url) = &self.imds_endpoint {
            if let Err(e) = check_imds_endpoint(url) {
                p.add(
                    &at.key("imds_endpoint"),
                    format!("{who}: imds_endpoint {e}"),
                );
            }
        }
        if let Some(n) = self.max_answer_bytes {
            if !(MIN_ANSWER_BYTES..=MAX_ANSWER_BYTES).contains(&n) {
                p.add(
                    &at.key("max_answer_bytes"),
                    format!(
                        "{who}: max_answer_bytes = {n} is out of range; it is between {MIN_ANSWER_BYTES} (1 MiB) and {MAX_ANSWER_BYTES} (4 GiB), default {} (256 MiB)",
                        crate::sources::azure::client::DEFAULT_MAX_ANSWER_BYTES
                    ),
                );
            }
        }
        self.validate_proxy_into(cfg, at, needed, p);
    }

    /// `tenant_id`: present, a GUID.
    fn validate_tenant_id_into(&self, at: &KeyPath, who: &str, p: &mut Problems<'_>) {
        match &self.tenant_id {
            None => p.add(
                at,
                format!("{who}: tenant_id is missing; the Microsoft API sources need the app registration's tenant_id"),
            ),
            Some(v) if !is_guid(v) => p.add(
                &at.key("tenant_id"),
                format!("{who}: tenant_id \"{v}\" is not a GUID like 2c6e1f0a-4d3b-4a8c-9b7e-5f1d0c2a3b4e"),
            ),
            _ => {}
        }
    }

    /// One way to authenticate, with what it needs (client id, a readable file, a loadable
    /// certificate).
    fn validate_credential_into(
        &self,
        cfg: &Config,
        at: &KeyPath,
        who: &str,
        p: &mut Problems<'_>,
    ) {
        let has_secret = self
            .client_secret
            .as_ref()
            .is_some_and(|s| !s.expose().is_empty());
        let methods: Vec<&str> = [
            ("client_secret_file", self.client_secret_file.is_some()),
            ("SIEMCAST_AZURE__CLIENT_SECRET", has_secret),
            ("certificate_file", self.certificate_file.is_some()),
            ("managed_identity", self.managed_identity),
        ]
        .into_iter()
        .filter_map(|(k, on)| on.then_some(k))
        .collect();
        if methods.len() > 1
            && !(methods.len() == 2 && has_secret && self.client_secret_file.is_some())
        {
            p.add(
                at,
                format!(
                    "{who}: choose one way to authenticate; {} are all set",
                    methods.join(", ")
                ),
            );
        }
        match &self.client_id {
            None if !self.managed_identity => p.add(
                at,
                format!("{who}: client_id is missing; the Microsoft API sources need the app registration's client_id"),
            ),
            Some(v) if !is_guid(v) => p.add(
                &at.key("client_id"),
                format!("{who}: client_id \"{v}\" is not a GUID like 2c6e1f0a-4d3b-4a8c-9b7e-5f1d0c2a3b4e"),
            ),
            _ => {}
        }
        if self.certificate_key_file.is_some() && self.certificate_file.is_none() {
            p.add(
                &at.key("certificate_key_file"),
                format!("{who}: certificate_key_file needs certificate_file (the certificate it belongs to)"),
            );
        }
        if let Some(cert) = &self.certificate_file {
            let key = self.certificate_key_file.as_deref().map(|k| cfg.resolve(k));
            if let Err(e) = crate::sources::azure::assertion::ClientCertificate::load(
                &cfg.resolve(cert),
                key.as_deref(),
                self.assertion_algorithm,
            ) {
                p.add(&at.key(e.key), format!("{who}: {e}"));
            }
        }
        match &self.client_secret_file {
            Some(file) if !has_secret => {
                let path = cfg.resolve(file);
                if let Err(e) = std::fs::metadata(&path) {
                    p.add(
                        &at.key("client_secret_file"),
                        format!("{who}: cannot read client_secret_file {}: {e}", path.display()),
                    );
                }
            }
            None if methods.is_empty() => p.add(
                at,
                if who == "azure" {
                    "azure: no credential; set client_secret_file (or the environment variable SIEMCAST_AZURE__CLIENT_SECRET), certificate_file, or managed_identity = true".to_owned()
                } else {
                    format!("{who}: no credential; set client_secret_file, certificate_file or managed_identity = true, or none of the credential keys to use [azure]'s app registration")
                },
            ),
            _ => {}
        }
    }
}

/// Bounds of `[azure] max_answer_bytes`: below 1 MiB ordinary pages would be refused; above
/// 4 GiB it no longer bounds anything this machine could hold.
const MIN_ANSWER_BYTES: u64 = 1 << 20;
const MAX_ANSWER_BYTES: u64 = 4 << 30;

/// IMDS is plain HTTP on the link-local 169.254.169.254; an override must be that or loopback.
fn check_imds_endpoint(text: &str) -> Result<(), String> {
    let url = reqwest::Url::parse(text).map_err(|e| format!("\"{text}\" is not a URL ({e})"))?;
    let imds = url.host() == Some(url::Host::Ipv4(std::net::Ipv4Addr::new(169, 254, 169, 254)));
    if url.scheme() == "http" && imds {
        return Ok(());
    }
    match crate::sources::azure::auth::check_endpoint(text) {
        Ok(()) if url.scheme() == "http" => Ok(()),
        _ => Err(format!(
            "\"{text}\" must be http://169.254.169.254 (the default) or an http:// loopback address (tests)"
        )),
    }
}

impl DestinationConfig {
    pub(super) fn validate_into(
        &self,
        cfg: &Config,
        who: &str,
        at: &KeyPath,
        p: &mut Problems<'_>,
    ) {
        if self.validate_hec_into(cfg, who, at, p) {
            return;
        }
        if self.address.is_empty() {
            p.add(
                at,
                format!("{who}: address is missing; write it as host:port"),
            );
        } else if split_host_port(&self.address).is_none() {
            p.add(
                &at.key("address"),
                format!(
                    "{who}: address \"{}\" is not host:port (e.g. siem.example.com:514)",
                    self.address
                ),
            );
        }
        for (i, a) in self.failover_addresses.iter().enumerate() {
            if split_host_port(a).is_none() {
                p.add(
                    &at.key("failover_addresses"),
                    format!(
                        "{who}: failover address #{} \"{a}\" is not host:port",
                        i + 1
                    ),
                );
            }
        }
        if self.ack_timeout() < std::time::Duration::from_secs(1) {
            p.add(
                &at.key("ack_timeout"),
                format!("{who}: ack_timeout must be at least 1s"),
            );
        }
        if self.transport == Transport::Tls {
            let host = split_host_port(&self.address).map_or("", |(h, _)| h);
            if let Err(e) = TlsSetup::from_config(&self.tls, host, |p| cfg.resolve(p)) {
                p.add(&at.key("tls"), format!("{who}: {e}"));
            }
        } else if self.tls != TlsConfig::default() {
            p.add(
                &at.key("tls"),
                format!("{who}: [destination.tls] applies only to transport \"tls\""),
            );
        }
        if self.transport == Transport::Udp && self.framing == Framing::OctetCounting {
            p.add(
                &at.key("framing"),
                format!("{who}: framing applies only to tcp and tls"),
            );
        }
        if self.max_eps == Some(0) {
            p.add(
                &at.key("max_eps"),
                format!("{who}: max_eps must be at least 1 (omit it for no limit)"),
            );
        }
        if self.max_message_bytes < 480 {
            p.add(
                &at.key("max_message_bytes"),
                format!("{who}: max_message_bytes must be at least 480 (RFC 5426's minimum)"),
            );
        }
        self.validate_route_into(cfg, who, at, p);
        for (origin, field, e) in identity::check_destination(self, cfg) {
            let (place, owner) = match origin {
                identity::Origin::Destination => (at.key(field.key()), who.to_owned()),
                identity::Origin::Source(i) => (
                    KeyPath::root().key("source").index(i).key(field.key()),
                    format!("source \"{}\" (sent to {who})", cfg.sources[i].name),
                ),
            };
            p.add(&place, format!("{owner}: {}: {e}", field.key()));
        }
        if self.output == Output::Json {
            if !self.mappings.as_os_str().is_empty() {
                p.add(
                    &at.key("mappings"),
                    format!("{who}: mappings applies only to output = \"mappings\" (CEF/LEEF); with output = \"json\" the source record is sent as it is: remove mappings"),
                );
            }
            return;
        }
        if self.mappings.as_os_str().is_empty() {
            p.add(at, format!("{who}: mappings is missing; name the folder of mapping files (e.g. \"mappings/arcsight\"), or set output = \"json\" to send the source records as JSON"));
            return;
        }
        let dir = cfg.resolve(&self.mappings);
        if !dir.is_dir() {
            p.add(
                &at.key("mappings"),
                format!("{who}: mappings folder {} does not exist", dir.display()),
            );
            return;
        }
        // Only the kinds routed here: a destination that takes alerts needs no Entra mapping.
        let kinds = Route::from_config(self).event_kinds(cfg);
        let kinds: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
        if let Err(errors) = crate::mapping::MappingSet::load(&dir, &kinds) {
            for d in errors.diagnostics {
                // Mapping problems carry their own file, position and hint.
                let message = format!("{who}: {}", d.message);
                p.list.push(Problem { message, ..d });
            }
        }
    }
}

impl DestinationConfig {
    /// `sources = [...]` and `kinds = [...]`: every name known, every kind pattern matching an
    /// event kind that a source routed here produces.
    pub(super) fn validate_route_into(
        &self,
        cfg: &Config,
        who: &str,
        at: &KeyPath,
        p: &mut Problems<'_>,
    ) {
        if let Some(list) = &self.sources {
            if list.is_empty() {
                p.add(
                    &at.key("sources"),
                    format!("{who}: sources is empty; omit it to take every source"),
                );
            }
            let names = || cfg.sources.iter().map(|s| s.name.as_str());
            for (i, name) in list.iter().enumerate() {
                if names().any(|n| n == name) {
                    continue;
                }
                let hint = crate::mapping::closest(name, names())
                    .map(|c| format!(" (did you mean \"{c}\"?)"))
                    .unwrap_or_default();
                p.add(
                    &at.key("sources").index(i),
                    format!(
                        "{who}: sources names \"{name}\", which is not a [[source]] of this configuration{hint}; the sources are {}",
                        names().collect::<Vec<_>>().join(", ")
                    ),
                );
            }
        }
        let Some(patterns) = &self.kinds else { return };
        if patterns.is_empty() {
            p.add(
                &at.key("kinds"),
                format!("{who}: kinds is empty; omit it to take every kind"),
            );
        }
        // The kinds the sources routed here produce, whatever `kinds` says.
        let mut by_source = self.clone();
        by_source.kinds = None;
        let produced = Route::from_config(&by_source).event_kinds(cfg);
        for (i, pattern) in patterns.iter().enumerate() {
            match kind_pattern(pattern) {
                Err(e) => p.add(&at.key("kinds").index(i), format!("{who}: kinds: {e}")),
                Ok(kinds)
                    if !kinds.iter().any(|k| produced.contains(k)) && !produced.is_empty() =>
                {
                    p.add(
                        &at.key("kinds").index(i),
                        format!(
                            "{who}: kinds: \"{pattern}\" matches no event of the sources it takes, which produce {}",
                            produced.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(", ")
                        ),
                    );
                }
                Ok(_) => {}
            }
        }
    }
}
