//! `[azure.tenants.NAME]`: named tenants beside the default one of `[azure]`. A named tenant
//! states its `tenant_id` and whatever differs from `[azure]`; every other key comes from
//! `[azure]`. Its credential (client id with secret file, certificate or managed identity) is
//! taken as a whole: from `[azure]` when the tenant names none of its keys (one multi-tenant
//! app registration consented in each tenant, its secret written once), else its own alone.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use super::{AssertionAlgorithm, AzureConfig, Cloud, Config, RateLimitsConfig, SourceConfig};

/// The name of the tenant of `[azure]` itself (a source without `tenant` uses it).
pub const DEFAULT_TENANT: &str = "default";

/// Most named tenants one process serves.
pub const MAX_TENANTS: usize = 1000;

/// One `[azure.tenants.NAME]`: the keys of `[azure]`, each optional.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct TenantConfig {
    pub cloud: Option<Cloud>,
    pub tenant_id: Option<String>,
    pub client_id: Option<String>,
    pub client_secret_file: Option<PathBuf>,
    pub certificate_file: Option<PathBuf>,
    pub certificate_key_file: Option<PathBuf>,
    pub assertion_algorithm: Option<AssertionAlgorithm>,
    pub managed_identity: Option<bool>,
    pub imds_endpoint: Option<String>,
    /// Each family set here replaces `[azure.rate_limits]`'s; the others are inherited.
    #[serde(default)]
    pub rate_limits: RateLimitsConfig,
    pub max_answer_bytes: Option<u64>,
    pub login_endpoint: Option<String>,
    pub management_endpoint: Option<String>,
    pub graph_endpoint: Option<String>,
    pub office_endpoint: Option<String>,
    pub proxy: Option<String>,
    pub proxy_credentials_file: Option<PathBuf>,
    pub no_proxy: Option<Vec<String>>,
}

impl TenantConfig {
    /// The credential keys this tenant sets itself (none: it uses `[azure]`'s credential).
    pub fn own_credential_keys(&self) -> Vec<&'static str> {
        [
            ("client_id", self.client_id.is_some()),
            ("client_secret_file", self.client_secret_file.is_some()),
            ("certificate_file", self.certificate_file.is_some()),
            ("certificate_key_file", self.certificate_key_file.is_some()),
            ("assertion_algorithm", self.assertion_algorithm.is_some()),
            ("managed_identity", self.managed_identity.is_some()),
        ]
        .into_iter()
        .filter_map(|(k, set)| set.then_some(k))
        .collect()
    }

    /// This tenant as a whole `[azure]`: its own keys over `base`'s.
    pub fn over(&self, base: &AzureConfig) -> AzureConfig {
        let mut out = base.clone();
        out.tenants = BTreeMap::new();
        out.tenant_id = self.tenant_id.clone();
        if !self.own_credential_keys().is_empty() {
            out.client_id = self.client_id.clone();
            out.client_secret = None;
            out.client_secret_file = self.client_secret_file.clone();
            out.certificate_file = self.certificate_file.clone();
            out.certificate_key_file = self.certificate_key_file.clone();
            out.assertion_algorithm = self.assertion_algorithm.unwrap_or_default();
            out.managed_identity = self.managed_identity.unwrap_or(false);
        }
        let pick = |own: &Option<String>, base: &mut Option<String>| {
            if own.is_some() {
                base.clone_from(own);
            }
        };
        pick(&self.imds_endpoint, &mut out.imds_endpoint);
        pick(&self.login_endpoint, &mut out.login_endpoint);
        pick(&self.management_endpoint, &mut out.management_endpoint);
        pick(&self.graph_endpoint, &mut out.graph_endpoint);
        pick(&self.office_endpoint, &mut out.office_endpoint);
        pick(&self.proxy, &mut out.proxy);
        if let Some(cloud) = self.cloud {
            out.cloud = cloud;
        }
        if self.max_answer_bytes.is_some() {
            out.max_answer_bytes = self.max_answer_bytes;
        }
        if self.proxy_credentials_file.is_some() {
            out.proxy_credentials_file
                .clone_from(&self.proxy_credentials_file);
        }
        if self.no_proxy.is_some() {
            out.no_proxy.clone_from(&self.no_proxy);
        }
        out.rate_limits = self.rate_limits.over(&base.rate_limits);
        out
    }
}

impl RateLimitsConfig {
    /// These rates, with `base`'s for the families not set here.
    pub fn over(&self, base: &RateLimitsConfig) -> RateLimitsConfig {
        RateLimitsConfig {
            arm_reads: self.arm_reads.or(base.arm_reads),
            graph_alerts: self.graph_alerts.or(base.graph_alerts),
            entra_reports: self.entra_reports.or(base.entra_reports),
            o365: self.o365.or(base.o365),
            graph_incidents: self.graph_incidents.or(base.graph_incidents),
            identity_protection: self.identity_protection.or(base.identity_protection),
            storage: self.storage.or(base.storage),
        }
    }
}

impl AzureConfig {
    /// The whole configuration of tenant `name` (`"default"`: `[azure]` itself); `None` when
    /// there is no such tenant.
    pub fn tenant(&self, name: &str) -> Option<Cow<'_, AzureConfig>> {
        if name == DEFAULT_TENANT {
            return Some(Cow::Borrowed(self));
        }
        self.tenants.get(name).map(|t| Cow::Owned(t.over(self)))
    }

    /// Every tenant's name and whole configuration, the default first when `with_default`.
    pub fn all_tenants(&self, with_default: bool) -> Vec<(&str, Cow<'_, AzureConfig>)> {
        let default = with_default.then_some((DEFAULT_TENANT, Cow::Borrowed(self)));
        default
            .into_iter()
            .chain(
                self.tenants
                    .iter()
                    .map(|(n, t)| (n.as_str(), Cow::Owned(t.over(self)))),
            )
            .collect()
    }
}

impl SourceConfig {
    /// The name of the tenant this source reads (`"default"` unless it says).
    pub fn tenant_name(&self) -> &str {
        self.tenant.as_deref().unwrap_or(DEFAULT_TENANT)
    }
}

impl Config {
    /// The whole `[azure]` configuration of the tenant source `cfg` reads.
    ///
    /// # Errors
    /// The source names a tenant the configuration does not have (validation reports it
    /// with its location first).
    pub fn azure_for(&self, cfg: &SourceConfig) -> Result<Cow<'_, AzureConfig>, String> {
        let name = cfg.tenant_name();
        self.azure
            .tenant(name)
            .ok_or_else(|| unknown_tenant(name, &self.azure))
    }

    /// The tenant id of the tenant source `cfg` reads, when it is known.
    pub fn tenant_id_for(&self, cfg: &SourceConfig) -> Option<String> {
        self.azure_for(cfg).ok().and_then(|a| a.tenant_id.clone())
    }
}

/// "tenant \"x\" is not configured; …", naming the tenants there are.
pub fn unknown_tenant(name: &str, azure: &AzureConfig) -> String {
    let mut known: Vec<String> = vec![format!("\"{DEFAULT_TENANT}\" ([azure])")];
    known.extend(azure.tenants.keys().map(|k| format!("\"{k}\"")));
    format!(
        "tenant \"{name}\" is not configured; add [azure.tenants.{name}] or use one of {}",
        known.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn azure(text: &str) -> AzureConfig {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn a_tenant_without_credential_keys_uses_the_default_app_registration() {
        let a = azure(
            r#"
            tenant_id = "11111111-1111-1111-1111-111111111111"
            client_id = "22222222-2222-2222-2222-222222222222"
            client_secret_file = "secret"
            graph_endpoint = "http://127.0.0.1:1"
            rate_limits = { arm_reads = "10/1s", entra_reports = "2/10s" }
            proxy = "http://proxy.example:3128"
            [tenants.fabrikam]
            tenant_id = "33333333-3333-3333-3333-333333333333"
            rate_limits = { entra_reports = "1/10s" }
            [tenants.direct]
            tenant_id = "44444444-4444-4444-4444-444444444444"
            proxy = "none"
            "#,
        );
        let t = a.tenant("fabrikam").unwrap();
        assert_eq!(
            t.tenant_id.as_deref(),
            Some("33333333-3333-3333-3333-333333333333")
        );
        assert_eq!(t.client_id, a.client_id);
        assert_eq!(t.client_secret_file, a.client_secret_file);
        assert_eq!(t.graph_endpoint, a.graph_endpoint);
        assert_eq!(t.rate_limits.arm_reads, a.rate_limits.arm_reads);
        assert_eq!(t.rate_limits.entra_reports.map(|r| r.burst), Some(1));
        assert!(t.tenants.is_empty());
        assert_eq!(t.proxy.as_deref(), Some("http://proxy.example:3128"));
        assert_eq!(a.tenant("direct").unwrap().proxy.as_deref(), Some("none"));
        assert!(matches!(a.tenant(DEFAULT_TENANT), Some(Cow::Borrowed(_))));
        assert!(a.tenant("nope").is_none());
    }

    #[test]
    fn a_tenant_with_its_own_credential_takes_none_of_the_defaults() {
        let a = azure(
            r#"
            tenant_id = "11111111-1111-1111-1111-111111111111"
            client_id = "22222222-2222-2222-2222-222222222222"
            client_secret_file = "secret"
            [tenants.own]
            tenant_id = "33333333-3333-3333-3333-333333333333"
            certificate_file = "cert.pem"
            "#,
        );
        let t = a.tenant("own").unwrap();
        assert_eq!(t.client_id, None, "the default app's id is not mixed in");
        assert_eq!(t.client_secret_file, None);
        assert_eq!(t.certificate_file, Some(PathBuf::from("cert.pem")));
        assert_eq!(
            a.tenants["own"].own_credential_keys(),
            vec!["certificate_file"]
        );
    }

    #[test]
    fn an_unknown_tenant_is_named_with_the_ones_there_are() {
        let a = azure("[tenants.contoso]\ntenant_id = \"x\"\n");
        assert_eq!(
            unknown_tenant("fabrikam", &a),
            "tenant \"fabrikam\" is not configured; add [azure.tenants.fabrikam] or use one of \"default\" ([azure]), \"contoso\""
        );
    }
}
