//! Routing: which events a destination takes, by the name of the `[[source]]` that produced
//! them and by their event kind (the kind that selects the mapping file). Evaluated per record
//! at send time; an event a destination does not take counts as handled for it (its cursor
//! moves on) and is counted as filtered by the rule [`ROUTE_RULE`].

use crate::config::{Config, DestinationConfig};
use crate::event::EventKind;

/// The `rule` label of `siemcast_destination_events_filtered_total` for events outside a
/// destination's route (filter rules, when they come, carry their own names).
pub const ROUTE_RULE: &str = "route";

const KINDS: usize = EventKind::ALL.len();

/// A bad entry of `kinds = [...]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KindPatternError {
    #[error("\"{pattern}\" is the source kind of a {what}; {hint}")]
    SourceKind {
        pattern: String,
        what: &'static str,
        hint: &'static str,
    },
    #[error("\"{pattern}\" matches no event kind; a kind is one of {all}, or a prefix ending in '*' (e.g. \"eventhubs_*\"){}", hint.as_deref().map(|h| format!(" (did you mean \"{h}\"?)")).unwrap_or_default())]
    Unknown {
        pattern: String,
        all: String,
        hint: Option<String>,
    },
}

/// The event kinds an entry of `kinds = [...]` names: an event kind (`azure_activity`,
/// `eventhubs_entra_signins`, …) or a prefix ending in `*` (`eventhubs_*`, `entra_*`).
///
/// # Errors
/// When it names no event kind; with a hint when it looks like a typo or a source kind.
pub fn kind_pattern(pattern: &str) -> Result<Vec<EventKind>, KindPatternError> {
    let matched: Vec<EventKind> = match pattern.strip_suffix('*') {
        Some(prefix) if !prefix.contains('*') => EventKind::ALL
            .iter()
            .copied()
            .filter(|k| k.as_str().starts_with(prefix))
            .collect(),
        _ => EventKind::ALL
            .iter()
            .copied()
            .filter(|k| k.as_str() == pattern)
            .collect(),
    };
    if !matched.is_empty() {
        return Ok(matched);
    }
    match pattern {
        "eventhubs" => Err(KindPatternError::SourceKind {
            pattern: pattern.to_owned(),
            what: "source that yields several event kinds",
            hint: "write \"eventhubs_*\" for all of them, or name the ones to take",
        }),
        "files" => Err(KindPatternError::SourceKind {
            pattern: pattern.to_owned(),
            what: "source whose events have the kind of its source_kind",
            hint: "name that kind, or route by source name with sources = [...]",
        }),
        _ => {
            let names = || EventKind::ALL.iter().map(|k| k.as_str());
            Err(KindPatternError::Unknown {
                pattern: pattern.to_owned(),
                all: names().collect::<Vec<_>>().join(", "),
                hint: crate::mapping::closest(pattern.trim_end_matches('*'), names())
                    .map(str::to_owned),
            })
        }
    }
}

/// A destination's route, compiled: what it takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// `None`: every source.
    sources: Option<Vec<Box<str>>>,
    /// Indexed by `EventKind as usize`; all true when the destination takes every kind.
    kinds: [bool; KINDS],
    kinds_set: bool,
}

impl Route {
    /// Every event.
    pub fn all() -> Route {
        Route {
            sources: None,
            kinds: [true; KINDS],
            kinds_set: false,
        }
    }

    /// The route of a validated destination (entries that name no kind are ignored here:
    /// validation reports them).
    pub fn from_config(d: &DestinationConfig) -> Route {
        let mut route = Route::all();
        route.sources = d
            .sources
            .as_ref()
            .map(|list| list.iter().map(|s| s.as_str().into()).collect());
        if let Some(patterns) = &d.kinds {
            route.kinds = [false; KINDS];
            route.kinds_set = true;
            for kind in patterns
                .iter()
                .filter_map(|p| kind_pattern(p).ok())
                .flatten()
            {
                route.kinds[kind as usize] = true;
            }
        }
        route
    }

    /// Whether the destination takes every event.
    pub fn takes_all(&self) -> bool {
        self.sources.is_none() && !self.kinds_set
    }

    /// Whether the destination takes events from the source named `source` (of some kind).
    pub fn takes_source(&self, source: &str) -> bool {
        self.sources
            .as_ref()
            .is_none_or(|list| list.iter().any(|s| **s == *source))
    }

    /// Whether the destination takes an event of `kind` from the source named `source`.
    #[inline]
    pub fn takes(&self, source: &str, kind: EventKind) -> bool {
        self.kinds[kind as usize] && self.takes_source(source)
    }

    /// The event kinds the destination needs mappings for: those the configured sources it
    /// takes produce, among the kinds it takes.
    pub fn event_kinds(&self, config: &Config) -> Vec<EventKind> {
        let kinds: std::collections::BTreeSet<EventKind> = config
            .sources
            .iter()
            .filter(|s| {
                self.sources
                    .as_ref()
                    .is_none_or(|list| list.iter().any(|n| **n == *s.name))
            })
            .flat_map(|s| s.event_kinds())
            .filter(|k| self.kinds[*k as usize])
            .collect();
        kinds.into_iter().collect()
    }

    /// What the destination takes, for `siemcast check`: "everything", or the sources and
    /// kinds.
    pub fn describe(&self, config: &Config) -> String {
        if self.takes_all() {
            return "everything".to_owned();
        }
        let sources = match &self.sources {
            Some(list) => format!(
                "sources {}",
                list.iter().map(|s| &**s).collect::<Vec<_>>().join(", ")
            ),
            None => "every source".to_owned(),
        };
        let kinds: Vec<&str> = self
            .event_kinds(config)
            .iter()
            .map(|k| k.as_str())
            .collect();
        format!("{sources}; kinds {}", kinds.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_patterns_name_event_kinds_or_prefixes() {
        assert_eq!(
            kind_pattern("azure_activity").unwrap(),
            vec![EventKind::AzureActivity]
        );
        let streamed = kind_pattern("eventhubs_*").unwrap();
        assert_eq!(streamed.len(), 9);
        assert!(streamed
            .iter()
            .all(|k| k.as_str().starts_with("eventhubs_")));
        assert_eq!(
            kind_pattern("eventhubs_entra_*").unwrap(),
            vec![
                EventKind::EventHubsEntraAudit,
                EventKind::EventHubsEntraSignins,
                EventKind::EventHubsEntraProvisioning,
                EventKind::EventHubsEntraRisk,
            ]
        );
        assert_eq!(kind_pattern("*").unwrap().len(), EventKind::ALL.len());
    }

    #[test]
    fn bad_kind_patterns_say_what_to_write() {
        let typo = kind_pattern("azure_activty").unwrap_err().to_string();
        assert!(typo.contains("did you mean \"azure_activity\"?"), "{typo}");
        let hub = kind_pattern("eventhubs").unwrap_err().to_string();
        assert!(hub.contains("\"eventhubs_*\""), "{hub}");
        let files = kind_pattern("files").unwrap_err().to_string();
        assert!(files.contains("source_kind"), "{files}");
        assert!(kind_pattern("eventhubs_*_audit").is_err());
        assert!(kind_pattern("**").is_err());
        assert!(kind_pattern("").is_err());
    }

    #[test]
    fn a_route_takes_by_source_and_kind() {
        let mut route = Route::all();
        assert!(route.takes("any", EventKind::GraphAlerts));
        route.sources = Some(vec!["alerts".into(), "entra".into()]);
        assert!(route.takes("alerts", EventKind::GraphAlerts));
        assert!(!route.takes("alert", EventKind::GraphAlerts));
        assert!(!route.takes("alertsx", EventKind::GraphAlerts));
        route.kinds = [false; KINDS];
        route.kinds_set = true;
        route.kinds[EventKind::EntraAudit as usize] = true;
        assert!(route.takes("entra", EventKind::EntraAudit));
        assert!(!route.takes("entra", EventKind::EntraSignins));
        assert!(!route.takes("activity", EventKind::EntraAudit));
    }
}
