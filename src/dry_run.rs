//! `siemcast dry-run`: what one destination would do with a file of a source's events, decided
//! by the destination's own code (route, filter rules, mapping, syslog header and framing), so
//! an admin sees which events each rule drops and the bytes it saves before deploying it.

use std::collections::BTreeMap;

use crate::config::{Config, DestinationConfig, SourceConfig, SourceKind};
use crate::destinations::syslog::Stamp;
use crate::destinations::{Decision, Destination};
use crate::event::{self, Event};
use crate::sources::eventhubs::records::{self, Coordinates};
use crate::sources::storage_archive;

/// Why a dry run cannot start.
#[derive(Debug, thiserror::Error)]
pub enum DryRunError {
    #[error("no [[destination]] is named \"{name}\"; the destinations are {known}")]
    UnknownDestination { name: String, known: String },
    #[error("no [[source]] is named \"{name}\"; the sources are {known}")]
    UnknownSource { name: String, known: String },
    #[error("source \"{0}\" has no event kind (a files source needs source_kind)")]
    NoKind(String),
    #[error(transparent)]
    Destination(#[from] crate::destinations::DestinationError),
}

/// Events and bytes (framed messages as sent, header included).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Count {
    pub events: u64,
    pub bytes: u64,
}

impl Count {
    fn add(&mut self, bytes: usize) {
        self.events += 1;
        self.bytes += bytes as u64;
    }
}

/// What a dry run found.
#[derive(Debug, Default)]
pub struct Totals {
    /// Events the destination sends.
    pub kept: Count,
    /// Events outside its route (no bytes: they are never rendered for it).
    pub out_of_route: u64,
    /// Per rule, in the destination's order: its name, its action and what it filtered.
    pub by_rule: Vec<(String, String, Count)>,
    /// Items that could not be read or rendered (each reported).
    pub failed: u64,
    /// Events kept per event kind (Event Hubs input routes to several).
    pub kinds: BTreeMap<&'static str, u64>,
}

impl Totals {
    /// Events and bytes filtered by every rule together.
    pub fn filtered(&self) -> Count {
        self.by_rule
            .iter()
            .fold(Count::default(), |a, (_, _, c)| Count {
                events: a.events + c.events,
                bytes: a.bytes + c.bytes,
            })
    }

    /// The closing summary: kept and dropped events and bytes, then one line per rule.
    pub fn report(&self) -> String {
        let filtered = self.filtered();
        let all = self.kept.events + filtered.events + self.out_of_route;
        let all_bytes = self.kept.bytes + filtered.bytes;
        let share = |part: u64, whole: u64| {
            if whole == 0 {
                0.0
            } else {
                part as f64 * 100.0 / whole as f64
            }
        };
        let mut out = format!(
            "kept     {:>9} events {:>12} bytes ({:.1} % of events, {:.1} % of bytes)\n",
            self.kept.events,
            self.kept.bytes,
            share(self.kept.events, all),
            share(self.kept.bytes, all_bytes)
        );
        out.push_str(&format!(
            "filtered {:>9} events {:>12} bytes ({:.1} % of events, {:.1} % of bytes)\n",
            filtered.events,
            filtered.bytes,
            share(filtered.events, all),
            share(filtered.bytes, all_bytes)
        ));
        for (name, action, c) in &self.by_rule {
            out.push_str(&format!(
                "  rule \"{name}\" ({action}): {} events, {} bytes\n",
                c.events, c.bytes
            ));
        }
        if self.out_of_route > 0 {
            out.push_str(&format!(
                "outside the route {} events (the destination's sources/kinds do not take them)\n",
                self.out_of_route
            ));
        }
        if self.failed > 0 {
            out.push_str(&format!(
                "failed   {:>9} items (reported above; a destination dead-letters them)\n",
                self.failed
            ));
        }
        out
    }
}

/// One destination deciding on one source's events.
#[derive(Debug)]
pub struct DryRun {
    destination: Destination,
    rules: Vec<(String, String)>,
    source: SourceConfig,
    stamp: Stamp,
}

impl DryRun {
    /// The destination and source of `config` named `destination` and `source`.
    pub fn new(config: &Config, destination: &str, source: &str) -> Result<DryRun, DryRunError> {
        let names = |it: &mut dyn Iterator<Item = &str>| it.collect::<Vec<_>>().join(", ");
        let d: &DestinationConfig = config
            .destinations
            .iter()
            .find(|d| d.name == destination)
            .ok_or_else(|| DryRunError::UnknownDestination {
                name: destination.to_owned(),
                known: names(&mut config.destinations.iter().map(|d| d.name.as_str())),
            })?;
        let s = config
            .sources
            .iter()
            .find(|s| s.name == source)
            .ok_or_else(|| DryRunError::UnknownSource {
                name: source.to_owned(),
                known: names(&mut config.sources.iter().map(|s| s.name.as_str())),
            })?;
        if s.event_kinds().is_empty() {
            return Err(DryRunError::NoKind(s.name.clone()));
        }
        let rules = d
            .filter
            .rules()
            .iter()
            .map(|r| (r.name().to_owned(), r.action().to_string()))
            .collect();
        let zone = jiff::tz::TimeZone::try_system().unwrap_or(jiff::tz::TimeZone::UTC);
        Ok(DryRun {
            destination: Destination::from_config(d, config)?,
            rules,
            source: s.clone(),
            stamp: Stamp::now(&zone),
        })
    }

    /// Decides on every event of `input` (events as the source reads them: for an `eventhubs`
    /// source Event Hubs message bodies, routed and stamped as it does; otherwise the shapes a
    /// `files` source reads), telling `each` one line per item: `INDEX ID KIND: decision`.
    pub fn run(&self, input: &[u8], each: &mut dyn FnMut(&str)) -> Totals {
        let mut totals = Totals {
            by_rule: self
                .rules
                .iter()
                .map(|(n, a)| (n.clone(), a.clone(), Count::default()))
                .collect(),
            ..Totals::default()
        };
        let mut index = 0u64;
        let mut decide = |item: Result<Event, String>, totals: &mut Totals| {
            let i = index;
            index += 1;
            let ev = match item {
                Ok(ev) => ev,
                Err(reason) => {
                    totals.failed += 1;
                    return each(&format!("{i} - -: cannot be read: {reason}"));
                }
            };
            let mut record = Vec::with_capacity(ev.json.len() + 64);
            ev.encode(&mut record);
            let (mut payload, mut buf) = (Vec::new(), Vec::new());
            let what = match self
                .destination
                .decide(&record, &self.stamp, &mut payload, &mut buf)
            {
                Ok(Decision::Sent { bytes }) => {
                    totals.kept.add(bytes);
                    *totals.kinds.entry(ev.kind.as_str()).or_default() += 1;
                    format!("sent ({bytes} bytes)")
                }
                Ok(Decision::OutOfRoute) => {
                    totals.out_of_route += 1;
                    "outside the route".to_owned()
                }
                Ok(Decision::Filtered { rule, bytes }) => {
                    let (name, action, count) = &mut totals.by_rule[rule];
                    count.add(bytes);
                    let verb = if action.starts_with("sample") {
                        "sampled out"
                    } else {
                        "dropped"
                    };
                    format!("{verb} by rule \"{name}\" ({action}; {bytes} bytes saved)")
                }
                Err(reason) => {
                    totals.failed += 1;
                    format!("cannot be rendered: {reason}")
                }
            };
            each(&format!("{i} {} {}: {what}", ev.id, ev.kind.as_str()));
        };
        if self.source.kind == Some(SourceKind::EventHubs) {
            let mut offset = 0i64;
            crate::preview::documents::for_each_message(input, |piece| {
                let (json, line) = match piece {
                    Ok(p) => p,
                    Err(e) => return decide(Err(e.to_string()), &mut totals),
                };
                let at = Coordinates {
                    topic: "dry-run",
                    partition: 0,
                    offset,
                };
                offset += 1;
                let decoded = records::decode(&self.source.name, at, Some(json));
                for bad in decoded.bad {
                    decide(Err(format!("line {line}: {bad}")), &mut totals);
                }
                for ev in decoded.events {
                    decide(Ok(ev), &mut totals);
                }
            });
        } else if self.source.kind == Some(SourceKind::StorageArchive) {
            // The lines of a PT1H.json blob (or any of the shapes below), each record routed
            // and, for flow logs, split into tuples as the source does.
            for (at, item) in event::read_documents(input).into_iter().enumerate() {
                match item {
                    Ok(v) => {
                        let bytes = v.to_string();
                        let name = &self.source.name;
                        match storage_archive::record_events(
                            name,
                            "dry-run",
                            "input",
                            at as u64,
                            bytes.as_bytes(),
                        ) {
                            Ok(events) => events
                                .into_iter()
                                .for_each(|ev| decide(Ok(ev), &mut totals)),
                            Err(why) => decide(Err(why), &mut totals),
                        }
                    }
                    Err(e) => decide(Err(e.to_string()), &mut totals),
                }
            }
        } else {
            let kind = self.source.event_kind().expect("checked in new");
            for item in event::read_documents(input) {
                let ev = item
                    .map(|v| Event::from_json(kind, &self.source.name, &v))
                    .map_err(|e| e.to_string());
                decide(ev, &mut totals);
            }
        }
        totals
    }
}
