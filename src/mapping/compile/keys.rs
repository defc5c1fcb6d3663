//! Key checks for the compiler: a key against the CEF dictionary or IBM's LEEF list (with
//! "did you mean" hints), the conversion that fits its type, its length limit and its label.

use toml_edit::TableLike;

use super::super::dict::{self, KeyType};
use super::super::text::clip_header;
use super::super::value::Convert;
use super::super::Format;
use super::Cx;

impl Cx<'_> {
    pub(super) fn cef_key(&mut self, key: &str, custom: bool, at: usize) -> Option<KeyType> {
        let keys = || dict::CEF_KEYS.iter().map(|(k, _, _)| *k);
        let mean = |c: Option<&str>| c.map(|c| format!("did you mean '{c}'?"));
        if !dict::is_key_alphabet(key) {
            self.sink.at(
                at,
                format!("'{key}' is not a CEF key; keys are letters and digits"),
                mean(dict::closest(key, keys())),
            );
            return None;
        }
        if dict::CEF_CONSUMER_KEYS.contains(&key) {
            self.sink.at(
                at,
                format!("'{key}' is set by ArcSight on receipt; producers must not send it"),
                None,
            );
            return None;
        }
        match dict::cef_key(key) {
            Some(KeyType::Label(_)) => {
                let base = key.trim_end_matches("Label");
                self.sink.at(
                    at,
                    format!("'{key}' is written only with its value"),
                    Some(format!("put label = \"...\" on the '{base}' field")),
                );
                None
            }
            Some(_) if custom => {
                self.sink.at(
                    at,
                    format!("'{key}' is a CEF dictionary key, not a custom key"),
                    Some("remove custom = true".into()),
                );
                None
            }
            Some(t) => Some(t),
            None => {
                if let Some(short) = dict::cef_full_name(key) {
                    self.sink.at(
                        at,
                        format!("'{key}' is a full name; CEF sends the short key"),
                        mean(Some(short)),
                    );
                    return None;
                }
                if let Some(k) = keys().find(|k| k.eq_ignore_ascii_case(key)) {
                    self.sink.at(
                        at,
                        format!("'{key}' is not a CEF key; keys are case-sensitive"),
                        mean(Some(k)),
                    );
                    return None;
                }
                if custom {
                    return Some(KeyType::Str(Some(dict::CEF_CUSTOM_MAX)));
                }
                let hint = match dict::closest(key, keys()) {
                    Some(c) => {
                        format!("did you mean '{c}'? for a vendor-defined key set custom = true")
                    }
                    None => "for a vendor-defined key set custom = true".into(),
                };
                self.sink.at(
                    at,
                    format!("'{key}' is not a CEF dictionary key"),
                    Some(hint),
                );
                None
            }
        }
    }

    pub(super) fn leef_key(&mut self, key: &str, custom: bool, at: usize) -> Option<KeyType> {
        let keys = || dict::LEEF_KEYS.iter().map(|(k, _)| *k);
        let mean = |c: Option<&str>| c.map(|c| format!("did you mean '{c}'?"));
        if !dict::is_key_alphabet(key) {
            self.sink.at(
                at,
                format!("'{key}' is not a LEEF key: it is not in IBM's predefined list, and custom keys are letters and digits"),
                mean(dict::closest(key, keys())),
            );
            return None;
        }
        if key == "devTimeFormat" {
            self.sink.at(
                at,
                "'devTimeFormat' is written by convert = \"leef_time\" on devTime",
                None,
            );
            return None;
        }
        match dict::leef_key(key) {
            Some(_) if custom => {
                self.sink.at(
                    at,
                    format!("'{key}' is one of IBM's predefined LEEF keys, not a custom key"),
                    Some("remove custom = true".into()),
                );
                None
            }
            Some(t) => Some(t),
            None => {
                if let Some(k) = keys().find(|k| k.eq_ignore_ascii_case(key)) {
                    self.sink.at(
                        at,
                        format!("'{key}' is not a LEEF key; keys are case-sensitive"),
                        mean(Some(k)),
                    );
                    return None;
                }
                if custom {
                    return Some(KeyType::Str(None));
                }
                let hint = match dict::leef_synonym(key).or_else(|| dict::closest(key, keys())) {
                    Some(c) => format!("did you mean '{c}'? for a custom key set custom = true"),
                    None => "for a custom key set custom = true".into(),
                };
                self.sink.at(
                    at,
                    format!("'{key}' is not one of IBM's predefined LEEF keys"),
                    Some(hint),
                );
                None
            }
        }
    }

    pub(super) fn convert_for(
        &mut self,
        t: &dyn TableLike,
        key: &str,
        kt: KeyType,
        at: usize,
    ) -> Option<Convert> {
        let leef = self.format != Format::Cef;
        let natural = match kt {
            KeyType::Str(_) | KeyType::Label(_) => Convert::Text,
            KeyType::Ipv4 | KeyType::Ipv6 | KeyType::Ip => Convert::Ip,
            KeyType::Mac => Convert::Mac,
            KeyType::Int | KeyType::Long => Convert::Int,
            KeyType::Port => Convert::Port,
            KeyType::Double => Convert::Number,
            KeyType::Timestamp => Convert::EpochMs,
            KeyType::Sev => Convert::LeefSev,
            KeyType::Bool => Convert::Bool,
        };
        let Some(item) = t.get("convert") else {
            return Some(natural);
        };
        let Some(name) = item.as_str() else {
            self.err_item(item, at, "'convert' must be a string", None);
            return None;
        };
        let Some(c) = Convert::parse(name) else {
            let hint = dict::closest(name, Convert::NAMES.iter().copied())
                .map(|c| format!("did you mean '{c}'?"));
            self.err_item(
                item,
                at,
                format!(
                    "unknown conversion '{name}'; expected one of: {}",
                    Convert::NAMES.join(", ")
                ),
                hint,
            );
            return None;
        };
        let c = if c == Convert::Severity && kt == KeyType::Sev {
            Convert::LeefSev
        } else {
            c
        };
        let ok = match kt {
            KeyType::Str(_) | KeyType::Label(_) => {
                !matches!(c, Convert::LeefTime | Convert::Severity)
            }
            KeyType::Double => matches!(c, Convert::Number | Convert::Int),
            KeyType::Timestamp => c == Convert::EpochMs || (leef && c == Convert::LeefTime),
            _ => c == natural,
        };
        if !ok {
            let fix = if kt == KeyType::Timestamp && leef {
                "use \"epoch_ms\" or \"leef_time\"".to_string()
            } else if matches!(kt, KeyType::Str(_)) {
                format!(
                    "'{}' applies only to {}",
                    c.name(),
                    if c == Convert::LeefTime {
                        "the LEEF devTime key"
                    } else {
                        "the severity header"
                    }
                )
            } else {
                format!("use \"{}\" or leave convert out", natural.name())
            };
            self.err_item(
                item,
                at,
                format!(
                    "convert = \"{name}\" does not fit '{key}', which holds {}",
                    kt.describe()
                ),
                Some(fix),
            );
            return None;
        }
        Some(c)
    }

    pub(super) fn max_chars(
        &mut self,
        t: &dyn TableLike,
        key: &str,
        kt: KeyType,
        custom: bool,
        at: usize,
    ) -> Option<usize> {
        let leef = self.format != Format::Cef;
        let dict_max = match kt {
            KeyType::Str(Some(n)) => Some(n),
            KeyType::Str(None) if leef || custom => Some(dict::LEEF_DEFAULT_MAX),
            KeyType::Str(None) => Some(dict::CEF_CUSTOM_MAX),
            _ => None,
        };
        let Some(item) = t.get("max_len") else {
            return Some(dict_max.unwrap_or(usize::MAX));
        };
        let Some(limit) = dict_max else {
            self.err_item(
                item,
                at,
                format!(
                    "'max_len' applies to string keys; '{key}' holds {}",
                    kt.describe()
                ),
                None,
            );
            return None;
        };
        match item
            .as_integer()
            .and_then(|n| usize::try_from(n).ok())
            .filter(|n| *n > 0)
        {
            Some(n) if n <= limit => Some(n),
            Some(n) => {
                self.err_item(
                    item,
                    at,
                    format!("max_len {n} exceeds the {limit}-character limit of '{key}'"),
                    None,
                );
                None
            }
            None => {
                self.err_item(item, at, "'max_len' must be a positive integer", None);
                None
            }
        }
    }

    #[allow(clippy::type_complexity)]
    pub(super) fn label(
        &mut self,
        t: &dyn TableLike,
        key: &str,
        at: usize,
    ) -> Option<Option<(Box<str>, Box<str>)>> {
        let Some(item) = t.get("label") else {
            return Some(None);
        };
        if self.format != Format::Cef {
            self.err_item(
                item,
                at,
                "LEEF has no labels; name the key itself (custom = true)",
                None,
            );
            return None;
        }
        let label_key = format!("{key}Label");
        let Some(KeyType::Label(max)) = dict::cef_key(&label_key) else {
            self.err_item(item, at, format!("'{key}' has no label key; labels go with cs1-6, cn1-3, cfp1-4, c6a1-4, deviceCustomDate1-2, flexString1-2, flexDate1"), None);
            return None;
        };
        match item.as_str().map(|s| clip_header(s, max)) {
            Some(s) if !s.is_empty() => Some(Some((label_key.into(), s.into()))),
            _ => {
                self.err_item(item, at, "'label' must be a non-empty string", None);
                None
            }
        }
    }
}
