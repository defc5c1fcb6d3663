//! The `entra_audit` source: Microsoft Entra directory audit logs from Graph
//! `auditLogs/directoryAudits`, in windows on `activityDateTime` with a 30-minute overlap,
//! deduplicated on `id`. Needs `AuditLog.Read.All` and `Directory.Read.All`.

use std::time::Duration;

use super::poll::{graph_url, WindowApi};
use crate::event::EventKind;

/// p99 latency 5 minutes, 30 days kept (7 on Free) (Microsoft Learn, "Log latency in Microsoft
/// Entra ID", https://learn.microsoft.com/entra/identity/monitoring-health/reference-log-latency,
/// and "Microsoft Entra data retention",
/// https://learn.microsoft.com/entra/identity/monitoring-health/reference-reports-data-retention;
/// the API: "List directoryAudits", https://learn.microsoft.com/graph/api/directoryaudit-list).
pub static API: WindowApi = WindowApi {
    kind: EventKind::EntraAudit,
    overlap: Duration::from_secs(30 * 60),
    settle: Duration::from_secs(2 * 60),
    max_window: Duration::from_secs(24 * 3600),
    retention: Duration::from_secs(30 * 24 * 3600),
    next_link: "@odata.nextLink",
    headers: &[],
    base: |e| &e.graph,
    first_url: |e, _tenant, from, to| {
        graph_url(
            e,
            "auditLogs/directoryAudits",
            "activityDateTime",
            from,
            "le",
            to,
        )
    },
    licence: |_| "any Microsoft Entra ID edition",
};
