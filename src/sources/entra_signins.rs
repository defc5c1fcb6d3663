//! The `entra_signins` source: Microsoft Entra interactive sign-ins from Graph
//! `auditLogs/signIns`, in windows on `createdDateTime` with a 2-hour overlap (MFA details arrive
//! late), deduplicated on `id`. Needs `AuditLog.Read.All` and an Entra ID P1/P2 tenant.

use std::time::Duration;

use super::poll::{graph_url, WindowApi};
use crate::event::EventKind;

/// MFA aggregation up to 2 hours, 30 days kept (Microsoft Learn, "List signIns",
/// https://learn.microsoft.com/graph/api/signin-list, and "Microsoft Entra data retention",
/// https://learn.microsoft.com/entra/identity/monitoring-health/reference-reports-data-retention).
pub static API: WindowApi = WindowApi {
    kind: EventKind::EntraSignins,
    overlap: Duration::from_secs(2 * 3600),
    settle: Duration::from_secs(2 * 60),
    max_window: Duration::from_secs(24 * 3600),
    retention: Duration::from_secs(30 * 24 * 3600),
    next_link: "@odata.nextLink",
    headers: &[],
    base: |e| &e.graph,
    first_url: |e, _tenant, from, to| {
        graph_url(e, "auditLogs/signIns", "createdDateTime", from, "le", to)
    },
    licence: |_| "Microsoft Entra ID P1 or P2",
};
