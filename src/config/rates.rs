//! `[azure.rate_limits]`: request budgets per Microsoft API family written as `"N/PERIOD"`;
//! the defaults (Microsoft's documented limits) live with the limiters in `sources::azure::limits`.

use std::time::Duration;

use serde::de::{self, Deserializer};
use serde::Deserialize;

use super::HumanDuration;

/// `[azure.rate_limits]`: requests per API family as `"N/PERIOD"` (a burst of N, refilled
/// evenly over PERIOD), e.g. `"5/10s"`. Absent keys use the documented limits.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct RateLimitsConfig {
    /// ARM reads, per subscription (or tenant) and app: 250 burst, 25/s.
    pub arm_reads: Option<RateText>,
    /// Graph `security/alerts_v2`, per app and tenant: 150/min.
    pub graph_alerts: Option<RateText>,
    /// Graph identity reports (directory audits, sign-ins), per app and tenant: 5/10 s.
    pub entra_reports: Option<RateText>,
    /// Office 365 Management Activity API, per tenant: 2000/min.
    pub o365: Option<RateText>,
    /// Graph `security/incidents`, per app and tenant: 50/min.
    pub graph_incidents: Option<RateText>,
    /// Graph Identity Protection (risk detections, risky users), per tenant: 1/s.
    pub identity_protection: Option<RateText>,
    /// Blob service requests per storage account (archived logs): 20,000/s.
    pub storage: Option<RateText>,
}

/// A rate written as `"N/PERIOD"`: at most N requests at once, refilled evenly over PERIOD.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateText {
    pub burst: u32,
    pub period: Duration,
}

impl std::str::FromStr for RateText {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!("\"{s}\" is not a rate; write it like \"5/10s\" or \"150/1m\" (requests per period)")
        };
        let (n, period) = s.split_once('/').ok_or_else(bad)?;
        let burst: u32 = n.trim().parse().map_err(|_| bad())?;
        let period: HumanDuration = period.trim().parse().map_err(|_| bad())?;
        if burst == 0 || period.0.is_zero() {
            return Err(bad());
        }
        Ok(RateText {
            burst,
            period: period.0,
        })
    }
}

impl<'de> Deserialize<'de> for RateText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(de::Error::custom)
    }
}
