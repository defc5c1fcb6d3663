//! Syslog identity: the HOSTNAME and APP-NAME each event is sent under, set per source or as a
//! template on the destination (`{source}`, `{kind}`, `{tenant}`). Templates are checked when
//! the config is, and expanded once per (source, kind) when a destination starts, so sending
//! an event copies a prepared header and never formats one; no value can break the header.

use std::borrow::Cow;

use crate::config::{Config, DestinationConfig, SourceConfig};
use crate::event::EventKind;

/// Which header field a value is for, with its RFC 5424 limits (§6.2.4 and §6.2.5,
/// <https://www.rfc-editor.org/rfc/rfc5424#section-6.2>): printable US-ASCII without spaces,
/// at most 255 and 48 characters. RFC 3164's HOSTNAME is a subset (no spaces either).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Hostname,
    AppName,
}

impl Field {
    pub fn key(self) -> &'static str {
        match self {
            Field::Hostname => "hostname",
            Field::AppName => "app_name",
        }
    }

    fn header_name(self) -> &'static str {
        match self {
            Field::Hostname => "syslog HOSTNAME",
            Field::AppName => "syslog APP-NAME",
        }
    }

    pub fn max_len(self) -> usize {
        match self {
            Field::Hostname => 255,
            Field::AppName => 48,
        }
    }
}

/// The placeholders a template may use.
pub const PLACEHOLDERS: &str = "{source}, {kind}, {tenant}";

/// A problem with a `hostname` or `app_name` value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error("\"{{{name}}}\" is not a placeholder; the placeholders are {PLACEHOLDERS}")]
    UnknownPlaceholder { name: String },
    #[error("'{{' opens a placeholder that is not closed with '}}'; the placeholders are {PLACEHOLDERS}")]
    Unclosed,
    #[error("'}}' closes no placeholder; braces are only for the placeholders {PLACEHOLDERS}")]
    StrayBrace,
    #[error("{{tenant}} needs [azure] tenant_id, which is not set (or the tenant_id of the source's [azure.tenants.NAME])")]
    NoTenant,
    #[error("is empty; a {} has 1 to {} printable ASCII characters", .field.header_name(), .field.max_len())]
    Empty { field: Field },
    #[error("\"-\" alone means \"no value\" in syslog (the NILVALUE); write a name")]
    Nil,
    #[error("{} is not a valid {}: {reason}", describe(.value, .expanded_for.as_deref()), .field.header_name())]
    Invalid {
        field: Field,
        value: String,
        /// "source \"x\", kind \"y\"" when the value is a template's expansion.
        expanded_for: Option<String>,
        reason: String,
    },
}

fn describe(value: &str, expanded_for: Option<&str>) -> String {
    let shown: String = value.chars().flat_map(char::escape_default).collect();
    match expanded_for {
        Some(who) => format!("it expands to \"{shown}\" for {who}, which"),
        None => format!("\"{shown}\""),
    }
}

/// One piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Source,
    Kind,
    Tenant,
}

/// A parsed `hostname` / `app_name`: fixed text and placeholders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    field: Field,
    parts: Vec<Part>,
}

impl Template {
    /// Parses `text`; its fixed text must already be valid header characters.
    ///
    /// # Errors
    /// An unknown or unclosed placeholder, a stray brace, a character that is not printable
    /// US-ASCII (a space, a control character, …), or an empty value.
    pub fn parse(field: Field, text: &str) -> Result<Template, IdentityError> {
        let mut parts = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            let brace = rest.find(['{', '}']).unwrap_or(rest.len());
            if brace > 0 {
                check_chars(field, &rest[..brace], None)?;
                parts.push(Part::Text(rest[..brace].to_owned()));
            }
            rest = &rest[brace..];
            if rest.starts_with('}') {
                return Err(IdentityError::StrayBrace);
            }
            if let Some(open) = rest.strip_prefix('{') {
                let close = open.find('}').ok_or(IdentityError::Unclosed)?;
                let name = &open[..close];
                parts.push(match name {
                    "source" => Part::Source,
                    "kind" => Part::Kind,
                    "tenant" => Part::Tenant,
                    _ if name.contains('{') => return Err(IdentityError::Unclosed),
                    _ => {
                        return Err(IdentityError::UnknownPlaceholder {
                            name: name.to_owned(),
                        })
                    }
                });
                rest = &open[close + 1..];
            }
        }
        let template = Template { field, parts };
        if template.parts.is_empty() {
            return Err(IdentityError::Empty { field });
        }
        if !template.has_placeholders() {
            check_value(field, text, None)?;
        }
        Ok(template)
    }

    pub fn has_placeholders(&self) -> bool {
        self.parts.iter().any(|p| !matches!(p, Part::Text(_)))
    }

    pub fn uses_tenant(&self) -> bool {
        self.parts.contains(&Part::Tenant)
    }

    /// The value for events of `kind` from `source`; `tenant` replaces `{tenant}` (empty when
    /// unknown: validation refuses such a template).
    pub fn expand(&self, source: &str, kind: EventKind, tenant: Option<&str>) -> String {
        let mut out = String::new();
        for part in &self.parts {
            out.push_str(match part {
                Part::Text(t) => t,
                Part::Source => source,
                Part::Kind => kind.as_str(),
                Part::Tenant => tenant.unwrap_or(""),
            });
        }
        out
    }

    /// [`Template::expand`], checked as a header value.
    ///
    /// # Errors
    /// When the expansion is not a valid header value (too long, a character a source name or
    /// tenant brought in).
    pub fn expand_checked(
        &self,
        source: &str,
        kind: EventKind,
        tenant: Option<&str>,
    ) -> Result<String, IdentityError> {
        let value = self.expand(source, kind, tenant);
        let who = self
            .has_placeholders()
            .then(|| format!("source \"{source}\", kind \"{kind}\""));
        check_value(self.field, &value, who)?;
        Ok(value)
    }
}

fn check_chars(field: Field, text: &str, who: Option<String>) -> Result<(), IdentityError> {
    let bad = text.chars().find(|c| !c.is_ascii_graphic());
    if let Some(c) = bad {
        let reason = match c {
            ' ' => "it contains a space".to_owned(),
            c if c.is_control() => format!("it contains the control character {:?}", c),
            c => format!("it contains '{c}', which is not printable US-ASCII"),
        };
        return Err(IdentityError::Invalid {
            field,
            value: text.to_owned(),
            expanded_for: who,
            reason,
        });
    }
    Ok(())
}

/// Checks a complete header value.
///
/// # Errors
/// Empty, `-`, longer than the field allows, or a character outside printable US-ASCII.
pub fn check_value(field: Field, value: &str, who: Option<String>) -> Result<(), IdentityError> {
    if value.is_empty() {
        return Err(IdentityError::Empty { field });
    }
    if value == "-" {
        return Err(IdentityError::Nil);
    }
    check_chars(field, value, who.clone())?;
    if value.len() > field.max_len() {
        return Err(IdentityError::Invalid {
            field,
            value: value.to_owned(),
            expanded_for: who,
            reason: format!(
                "it is {} characters long, more than {}",
                value.len(),
                field.max_len()
            ),
        });
    }
    Ok(())
}

/// Makes any text a valid header value: characters outside printable US-ASCII become `_`,
/// the value is cut to the field's length, and an empty or `-` value becomes `siemcast`. For
/// values validation could not see (a source name read back from the spool).
pub fn sanitize(field: Field, value: &str) -> String {
    let mut out: String = value
        .chars()
        .map(|c| if c.is_ascii_graphic() { c } else { '_' })
        .take(field.max_len())
        .collect();
    if out.is_empty() || out == "-" {
        out = "siemcast".to_owned();
    }
    out
}

/// The templates that apply to one source's events at one destination, by precedence: the
/// source's own, else the destination's, else this machine's name (HOSTNAME only).
#[derive(Debug, Clone)]
struct Choice {
    hostname: Option<Template>,
    app_name: Option<Template>,
}

/// Where a value came from, to locate a problem with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// `[[source]]` number (0-based).
    Source(usize),
    Destination,
}

/// The HOSTNAME and APP-NAME of one (source, kind) at a destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub hostname: String,
    pub app_name: String,
}

/// Every identity problem of a destination, each with where its value is written.
pub fn check_destination(
    d: &DestinationConfig,
    config: &Config,
) -> Vec<(Origin, Field, IdentityError)> {
    let mut problems = Vec::new();
    // No tenant at all: refused with the template itself; otherwise per source below.
    let no_tenant = config.azure.tenant_id.is_none() && config.azure.tenants.is_empty();
    let dest = |field, text: Option<&str>, problems: &mut Vec<_>| match text
        .map(|t| Template::parse(field, t))
    {
        Some(Ok(t)) if t.uses_tenant() && no_tenant => {
            problems.push((Origin::Destination, field, IdentityError::NoTenant));
            None
        }
        Some(Ok(t)) => Some(t),
        Some(Err(e)) => {
            problems.push((Origin::Destination, field, e));
            None
        }
        None => None,
    };
    let d_host = dest(Field::Hostname, d.hostname.as_deref(), &mut problems);
    let d_app = dest(Field::AppName, Some(&d.app_name), &mut problems);
    let route = super::route::Route::from_config(d);
    for (i, s) in config.sources.iter().enumerate() {
        if !route.takes_source(&s.name) {
            continue;
        }
        for (field, own, fallback) in [
            (Field::Hostname, s.hostname.as_deref(), &d_host),
            (Field::AppName, s.app_name.as_deref(), &d_app),
        ] {
            // The source's own values are checked once, with the source (config/validate.rs).
            let (template, origin) = match own.map(|t| Template::parse(field, t)) {
                Some(Ok(t)) => (t, Origin::Source(i)),
                Some(Err(_)) => continue,
                None => match fallback {
                    Some(t) => (t.clone(), Origin::Destination),
                    None => continue,
                },
            };
            let tenant = config.tenant_id_for(s);
            let tenant = tenant.as_deref();
            if template.uses_tenant() && tenant.is_none() {
                if !no_tenant && !problems.iter().any(|(o, f, _)| *o == origin && *f == field) {
                    problems.push((origin, field, IdentityError::NoTenant));
                }
                continue; // else reported with the template itself
            }
            let first_bad = s
                .event_kinds()
                .into_iter()
                .filter(|k| route.takes(&s.name, *k))
                .find_map(|k| template.expand_checked(&s.name, k, tenant).err());
            if let Some(e) = first_bad {
                if !problems.iter().any(|(o, f, _)| *o == origin && *f == field) {
                    problems.push((origin, field, e));
                }
            }
        }
    }
    problems
}

/// A source's own `hostname` / `app_name`, checked alone (placeholders, characters, tenant).
pub fn check_source(s: &SourceConfig, config: &Config) -> Vec<(Field, IdentityError)> {
    let mut problems = Vec::new();
    for (field, text) in [
        (Field::Hostname, s.hostname.as_deref()),
        (Field::AppName, s.app_name.as_deref()),
    ] {
        match text.map(|t| Template::parse(field, t)) {
            Some(Ok(t)) if t.uses_tenant() && config.tenant_id_for(s).is_none() => {
                problems.push((field, IdentityError::NoTenant))
            }
            Some(Err(e)) => problems.push((field, e)),
            _ => {}
        }
    }
    problems
}

const KINDS: usize = EventKind::ALL.len();

/// A destination's prepared identities: for each configured source and kind, the header bytes
/// that follow the time stamp (`" HOST "` or `" HOST APP - - - "`), made once.
#[derive(Debug, Clone)]
pub struct Identities {
    /// Per configured source: the index into `tails` per kind (`u16::MAX`: none prepared).
    by_source: Vec<(Box<str>, [u16; KINDS])>,
    tails: Vec<Box<[u8]>>,
    identities: Vec<Identity>,
    /// The destination's own templates, for sources the configuration no longer has.
    fallback: Choice,
    tenant: Option<String>,
    machine: String,
}

impl Identities {
    /// Prepares every (source, kind) of `config` the destination takes; `tail` makes the header
    /// bytes of an identity. Values are sanitized, so this cannot fail (validation has already
    /// refused the ones that would need it).
    pub fn build(
        d: &DestinationConfig,
        config: &Config,
        take: impl Fn(&str, EventKind) -> bool,
        tail: impl Fn(&Identity) -> Box<[u8]>,
    ) -> Identities {
        let parse = |field, t: Option<&str>| t.and_then(|t| Template::parse(field, t).ok());
        let mut out = Identities {
            by_source: Vec::new(),
            tails: Vec::new(),
            identities: Vec::new(),
            fallback: Choice {
                hostname: parse(Field::Hostname, d.hostname.as_deref()),
                app_name: parse(Field::AppName, Some(&d.app_name)),
            },
            tenant: config.azure.tenant_id.clone(),
            machine: crate::config::local_hostname(),
        };
        for s in &config.sources {
            let choice = Choice {
                hostname: parse(Field::Hostname, s.hostname.as_deref())
                    .or_else(|| out.fallback.hostname.clone()),
                app_name: parse(Field::AppName, s.app_name.as_deref())
                    .or_else(|| out.fallback.app_name.clone()),
            };
            let mut slots = [u16::MAX; KINDS];
            let tenant = config.tenant_id_for(s);
            for kind in s.event_kinds() {
                if !take(&s.name, kind) {
                    continue;
                }
                let identity = out.resolve(&choice, &s.name, kind, tenant.as_deref());
                let index = match out.identities.iter().position(|i| *i == identity) {
                    Some(i) => i,
                    None => {
                        out.tails.push(tail(&identity));
                        out.identities.push(identity);
                        out.identities.len() - 1
                    }
                };
                slots[kind as usize] = index as u16;
            }
            out.by_source.push((s.name.as_str().into(), slots));
        }
        out
    }

    /// `tenant`: the tenant id of the source's tenant.
    fn resolve(
        &self,
        choice: &Choice,
        source: &str,
        kind: EventKind,
        tenant: Option<&str>,
    ) -> Identity {
        let value = |field, t: &Option<Template>, default: &str| match t {
            Some(t) => sanitize(field, &t.expand(source, kind, tenant)),
            None => default.to_owned(),
        };
        Identity {
            hostname: value(Field::Hostname, &choice.hostname, &self.machine),
            app_name: value(Field::AppName, &choice.app_name, "siemcast"),
        }
    }

    /// The header bytes for an event of `kind` from `source`: prepared, or (a source the
    /// configuration no longer has) made now from the destination's templates.
    #[inline]
    pub fn tail<'a>(
        &'a self,
        source: &str,
        kind: EventKind,
        make: impl Fn(&Identity) -> Box<[u8]>,
    ) -> Cow<'a, [u8]> {
        let slot = self
            .by_source
            .iter()
            .find(|(name, _)| **name == *source)
            .map_or(u16::MAX, |(_, slots)| slots[kind as usize]);
        match self.tails.get(usize::from(slot)) {
            Some(t) => Cow::Borrowed(t),
            None => Cow::Owned(
                make(&self.resolve(&self.fallback, source, kind, self.tenant.as_deref()))
                    .into_vec(),
            ),
        }
    }

    /// Each configured source the destination takes, with its kinds and their identities
    /// (for `siemcast check`).
    pub fn describe(&self) -> Vec<(&str, Vec<(EventKind, &Identity)>)> {
        self.by_source
            .iter()
            .map(|(name, slots)| {
                let kinds = EventKind::ALL
                    .iter()
                    .filter_map(|k| {
                        let i = usize::from(slots[*k as usize]);
                        self.identities.get(i).map(|id| (*k, id))
                    })
                    .collect();
                (&**name, kinds)
            })
            .filter(|(_, kinds): &(_, Vec<_>)| !kinds.is_empty())
            .collect()
    }

    /// The identity of the first configured source that sends `kind` here (send-test).
    pub fn first_of_kind(&self, kind: EventKind) -> Option<&str> {
        self.by_source
            .iter()
            .find(|(_, slots)| usize::from(slots[kind as usize]) < self.tails.len())
            .map(|(name, _)| &**name)
    }
}

#[cfg(test)]
mod tests;
