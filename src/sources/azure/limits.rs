//! Request budgets per Microsoft API family (governor): the documented limits of ARM reads,
//! Graph security alerts, Entra identity reports and the Office 365 Management API, one limiter
//! per family and throttling scope (app and tenant, and for ARM the subscription), shared by
//! every source of the process, so several sources never add up to more than the service allows.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use crate::config::{RateLimitsConfig, RateText};
use crate::event::EventKind;

/// A family of Microsoft APIs that share one throttling budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ApiFamily {
    /// Azure Resource Manager reads: a token bucket per subscription and principal.
    ArmReads,
    /// Graph `security/alerts_v2` (and other `/security` alert operations), per app and tenant.
    GraphAlerts,
    /// Graph identity and access reports: directory audits and sign-ins, per app and tenant.
    EntraReports,
    /// Office 365 Management Activity API, per tenant.
    O365,
    /// Graph `security/incidents` (Defender XDR incidents), per app and tenant.
    GraphIncidents,
    /// Graph Identity Protection (risk detections, risky users), per tenant for all apps.
    IdentityProtection,
    /// The Blob service of one storage account (archived logs), whoever asks.
    Storage,
}

impl ApiFamily {
    pub const ALL: [ApiFamily; 7] = [
        ApiFamily::ArmReads,
        ApiFamily::GraphAlerts,
        ApiFamily::EntraReports,
        ApiFamily::O365,
        ApiFamily::GraphIncidents,
        ApiFamily::IdentityProtection,
        ApiFamily::Storage,
    ];

    /// The family a source kind's API belongs to; `None` for the kinds streamed from Event Hubs,
    /// which are read over Kafka, not a Microsoft REST API.
    pub fn of(kind: EventKind) -> Option<ApiFamily> {
        crate::config::SourceKind::ALL
            .iter()
            .map(|k| k.info())
            .find(|i| i.event_kind == Some(kind))
            .and_then(|i| i.api)
    }

    /// The key of `[azure.rate_limits]`.
    pub fn key(self) -> &'static str {
        match self {
            ApiFamily::ArmReads => "arm_reads",
            ApiFamily::GraphAlerts => "graph_alerts",
            ApiFamily::EntraReports => "entra_reports",
            ApiFamily::O365 => "o365",
            ApiFamily::GraphIncidents => "graph_incidents",
            ApiFamily::IdentityProtection => "identity_protection",
            ApiFamily::Storage => "storage",
        }
    }

    /// The documented limit (Microsoft Learn, "Microsoft Graph service-specific throttling
    /// limits", https://learn.microsoft.com/en-us/graph/throttling-limits, and each API's reference).
    pub fn documented(self) -> RateText {
        let (burst, secs) = match self {
            // 250 burst, refilled at 25/s.
            ApiFamily::ArmReads => (250, 10),
            // 150 per minute per app per tenant.
            ApiFamily::GraphAlerts => (150, 60),
            // 5 per 10 s per app per tenant.
            ApiFamily::EntraReports => (5, 10),
            // 2000 per minute per tenant (baseline).
            ApiFamily::O365 => (2000, 60),
            // Graph publishes no incident row; the Defender XDR incidents API allows 50 calls
            // per minute (Microsoft Learn, "Microsoft Defender XDR incidents API",
            // https://learn.microsoft.com/defender-xdr/api-incident; see docs/graph-incidents-and-risk.md).
            ApiFamily::GraphIncidents => (50, 60),
            // 1 request per second per tenant for all apps ("Identity protection and
            // conditional access service limits" on the Graph throttling page).
            ApiFamily::IdentityProtection => (1, 1),
            // 20,000 requests per second per storage account (Microsoft Learn, "Scalability and
            // performance targets for standard storage accounts",
            // https://learn.microsoft.com/azure/storage/common/scalability-targets-standard-account).
            ApiFamily::Storage => (20_000, 1),
        };
        RateText {
            burst,
            period: Duration::from_secs(secs),
        }
    }

    /// The rate in force: the `[azure.rate_limits]` override, else the documented one.
    pub fn rate(self, cfg: &RateLimitsConfig) -> RateText {
        let over = match self {
            ApiFamily::ArmReads => cfg.arm_reads,
            ApiFamily::GraphAlerts => cfg.graph_alerts,
            ApiFamily::EntraReports => cfg.entra_reports,
            ApiFamily::O365 => cfg.o365,
            ApiFamily::GraphIncidents => cfg.graph_incidents,
            ApiFamily::IdentityProtection => cfg.identity_protection,
            ApiFamily::Storage => cfg.storage,
        };
        over.unwrap_or_else(|| self.documented())
    }

    /// What shares one budget besides app and tenant: ARM's is per subscription (the path's
    /// `/subscriptions/{id}`; tenant-level calls share the tenant's), storage's per account
    /// (the host and port).
    fn subscope(self, url: &str) -> String {
        let parsed = || reqwest::Url::parse(url).ok();
        match self {
            ApiFamily::ArmReads => {
                let path = parsed()
                    .map(|u| u.path().to_ascii_lowercase())
                    .unwrap_or_default();
                let mut segments = path.split('/').skip_while(|s| *s != "subscriptions");
                segments.nth(1).unwrap_or("tenant").to_owned()
            }
            ApiFamily::Storage => parsed()
                .map(|u| {
                    let port = u.port_or_known_default().unwrap_or(0);
                    format!("{}:{port}", u.host_str().unwrap_or_default())
                })
                .unwrap_or_default(),
            _ => String::new(),
        }
    }
}

/// `"5 per 10s (burst 5)"`, for `siemcast check` and logs.
pub fn describe(rate: RateText) -> String {
    format!(
        "{} per {} (one every {} ms after a burst of {})",
        rate.burst,
        jiff::SignedDuration::try_from(rate.period)
            .map(|d| format!("{d:#}"))
            .unwrap_or_default(),
        (rate.period / rate.burst).as_millis(),
        rate.burst
    )
}

fn quota(rate: RateText) -> Quota {
    let burst = NonZeroU32::new(rate.burst).unwrap_or(NonZeroU32::MIN);
    let every = (rate.period / burst.get()).max(Duration::from_nanos(1));
    Quota::with_period(every)
        .expect("the period is not zero")
        .allow_burst(burst)
}

type Key = (ApiFamily, String, String);

/// Limiters by (family, app and tenant, subscope); one per process unless a test makes its own.
#[derive(Debug, Default)]
pub struct Limiters {
    map: Mutex<HashMap<Key, (RateText, Arc<DefaultDirectRateLimiter>)>>,
}

impl Limiters {
    /// The process-wide set shared by all sources.
    pub fn shared() -> Arc<Limiters> {
        static SHARED: OnceLock<Arc<Limiters>> = OnceLock::new();
        SHARED.get_or_init(Arc::default).clone()
    }

    /// The limiter of `family` for `principal` (tenant and app) and `url`; a changed rate (a
    /// reload) replaces it.
    fn get(
        &self,
        family: ApiFamily,
        principal: &str,
        url: &str,
        rate: RateText,
    ) -> Arc<DefaultDirectRateLimiter> {
        let key = (family, principal.to_owned(), family.subscope(url));
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let entry = map
            .entry(key)
            .or_insert_with(|| (rate, Arc::new(RateLimiter::direct(quota(rate)))));
        if entry.0 != rate {
            *entry = (rate, Arc::new(RateLimiter::direct(quota(rate))));
        }
        entry.1.clone()
    }
}

/// The budget one API client draws from.
#[derive(Debug, Clone)]
pub struct Limit {
    pub family: ApiFamily,
    pub rate: RateText,
    /// Tenant and app (or managed identity) whose budget this is.
    pub principal: String,
    pub limiters: Arc<Limiters>,
}

impl Limit {
    /// The process-wide budget of `kind`'s API family for this principal (`None` for a kind
    /// no REST API serves).
    pub fn for_kind(
        kind: EventKind,
        cfg: &RateLimitsConfig,
        tenant: &str,
        client: &str,
    ) -> Option<Limit> {
        let family = ApiFamily::of(kind)?;
        Some(Limit {
            family,
            rate: family.rate(cfg),
            principal: format!("{tenant}/{client}"),
            limiters: Limiters::shared(),
        })
    }

    /// The budget of the storage accounts a `storage_archive` source reads: one per account,
    /// shared by every source and principal reading it.
    pub fn for_storage(cfg: &RateLimitsConfig) -> Limit {
        Limit {
            family: ApiFamily::Storage,
            rate: ApiFamily::Storage.rate(cfg),
            principal: String::new(),
            limiters: Limiters::shared(),
        }
    }

    /// Waits until a request to `url` fits the budget.
    pub async fn until_ready(&self, url: &str) {
        let limiter = self
            .limiters
            .get(self.family, &self.principal, url, self.rate);
        limiter.until_ready().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_rates_and_scopes() {
        assert_eq!(
            ApiFamily::of(EventKind::EntraSignins).unwrap(),
            ApiFamily::EntraReports
        );
        let cfg = RateLimitsConfig {
            entra_reports: Some("50/1s".parse().unwrap()),
            ..RateLimitsConfig::default()
        };
        assert_eq!(ApiFamily::EntraReports.rate(&cfg).burst, 50);
        assert_eq!(ApiFamily::ArmReads.rate(&cfg).burst, 250);
        assert_eq!(
            ApiFamily::ArmReads.subscope("https://m/subscriptions/AB-1/providers/x?f=1"),
            "ab-1"
        );
        assert_eq!(
            ApiFamily::ArmReads.subscope("https://m/providers/x"),
            "tenant"
        );
        assert_eq!(ApiFamily::GraphAlerts.subscope("https://g/v1.0/x"), "");
        assert_eq!(
            ApiFamily::Storage.subscope("https://acct.blob.core.windows.net/c/b?x=1"),
            "acct.blob.core.windows.net:443"
        );
        assert_eq!(ApiFamily::Storage.rate(&cfg).burst, 20_000);
        assert_eq!(
            describe(ApiFamily::ArmReads.documented()),
            "250 per 10s (one every 40 ms after a burst of 250)"
        );
        assert!("0/1s".parse::<RateText>().is_err());
        assert!("5 per 10s".parse::<RateText>().is_err());
    }

    #[test]
    fn one_limiter_per_family_principal_and_subscription() {
        let l = Limiters::default();
        let r = ApiFamily::ArmReads.documented();
        let a = l.get(ApiFamily::ArmReads, "t/c", "https://m/subscriptions/a/x", r);
        let b = l.get(ApiFamily::ArmReads, "t/c", "https://m/subscriptions/a/y", r);
        let c = l.get(ApiFamily::ArmReads, "t/c", "https://m/subscriptions/b/x", r);
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &c));
        let slower = RateText {
            burst: 1,
            period: Duration::from_secs(1),
        };
        let d = l.get(
            ApiFamily::ArmReads,
            "t/c",
            "https://m/subscriptions/a/x",
            slower,
        );
        assert!(!Arc::ptr_eq(&a, &d), "a new rate replaces the limiter");
    }
}
