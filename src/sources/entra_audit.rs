//! The `entra_audit` source: Microsoft Entra directory audit logs from Graph
//! `auditLogs/directoryAudits`, in windows on `activityDateTime` with a 30-minute overlap,
//! deduplicated on `id`. Needs `AuditLog.Read.All` and `Directory.Read.All`.

use std::time::Duration;

use super::auth::Endpoints;
use super::poll::{filter_time, WindowApi};
use crate::event::EventKind;

/// `reference/azure-apis.md` §4: p99 latency 5 minutes, 30 days kept (7 on Free).
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
        graph_url(e, "auditLogs/directoryAudits", "activityDateTime", from, to)
    },
};

/// A Graph list URL with `{field} ge <from> and {field} le <to>` (no quotes).
pub fn graph_url(e: &Endpoints, path: &str, field: &str, from: i64, to: i64) -> String {
    let mut url = reqwest::Url::parse(&format!("{}/v1.0/{path}", e.graph))
        .expect("the graph endpoint was validated as a URL");
    url.query_pairs_mut().append_pair(
        "$filter",
        &format!(
            "{field} ge {} and {field} le {}",
            filter_time(from),
            filter_time(to)
        ),
    );
    url.to_string()
}
