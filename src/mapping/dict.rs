//! The key dictionaries: ArcSight CEF producer keys (rev 27, with types and lengths) and IBM's
//! predefined LEEF attributes. The compiler checks every mapped key against these tables, so
//! nothing outside them (or a declared custom key) can ever reach the wire.

/// What a key holds; decides which conversions apply and how long a value may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyType {
    /// Free text with a maximum length in characters (`None`: no dictionary limit).
    Str(Option<usize>),
    /// An IPv4 address in CEF; IPv6 goes to the matching `c6a*` key.
    Ipv4,
    /// An IPv6 address (`c6a1`..`c6a4`).
    Ipv6,
    /// Any IP address (LEEF `src`, `dst`, ...).
    Ip,
    Mac,
    Int,
    Port,
    Long,
    Double,
    Timestamp,
    /// LEEF `sev`, 1–10.
    Sev,
    /// LEEF `isLoginEvent` / `isLogoutEvent`.
    Bool,
    /// A `...Label` key: written only through `label = "..."` on its partner.
    Label(usize),
}

impl KeyType {
    /// Human words for diagnostics.
    pub(crate) fn describe(self) -> &'static str {
        match self {
            KeyType::Str(_) => "a string",
            KeyType::Ipv4 => "an IPv4 address",
            KeyType::Ipv6 => "an IPv6 address",
            KeyType::Ip => "an IP address",
            KeyType::Mac => "a MAC address",
            KeyType::Int => "an integer",
            KeyType::Port => "a port",
            KeyType::Long => "a 64-bit integer",
            KeyType::Double => "a floating-point number",
            KeyType::Timestamp => "a timestamp",
            KeyType::Sev => "a LEEF severity (1-10)",
            KeyType::Bool => "a boolean",
            KeyType::Label(_) => "a label",
        }
    }
}

use KeyType::*;

const S1023: KeyType = Str(Some(1023));
const S255: KeyType = Str(Some(255));
const S128: KeyType = Str(Some(128));
const L1023: KeyType = Label(1023);

/// CEF producer keys: (key, full name, type).
pub(crate) const CEF_KEYS: &[(&str, &str, KeyType)] = &[
    ("act", "deviceAction", Str(Some(63))),
    ("app", "applicationProtocol", Str(Some(31))),
    ("c6a1", "deviceCustomIPv6Address1", Ipv6),
    ("c6a1Label", "deviceCustomIPv6Address1Label", L1023),
    ("c6a2", "deviceCustomIPv6Address2", Ipv6),
    ("c6a2Label", "deviceCustomIPv6Address2Label", L1023),
    ("c6a3", "deviceCustomIPv6Address3", Ipv6),
    ("c6a3Label", "deviceCustomIPv6Address3Label", L1023),
    ("c6a4", "deviceCustomIPv6Address4", Ipv6),
    ("c6a4Label", "deviceCustomIPv6Address4Label", L1023),
    ("cat", "deviceEventCategory", S1023),
    ("cfp1", "deviceCustomFloatingPoint1", Double),
    ("cfp1Label", "deviceCustomFloatingPoint1Label", L1023),
    ("cfp2", "deviceCustomFloatingPoint2", Double),
    ("cfp2Label", "deviceCustomFloatingPoint2Label", L1023),
    ("cfp3", "deviceCustomFloatingPoint3", Double),
    ("cfp3Label", "deviceCustomFloatingPoint3Label", L1023),
    ("cfp4", "deviceCustomFloatingPoint4", Double),
    ("cfp4Label", "deviceCustomFloatingPoint4Label", L1023),
    ("cn1", "deviceCustomNumber1", Long),
    ("cn1Label", "deviceCustomNumber1Label", L1023),
    ("cn2", "deviceCustomNumber2", Long),
    ("cn2Label", "deviceCustomNumber2Label", L1023),
    ("cn3", "deviceCustomNumber3", Long),
    ("cn3Label", "deviceCustomNumber3Label", L1023),
    ("cnt", "baseEventCount", Int),
    ("cs1", "deviceCustomString1", Str(Some(4000))),
    ("cs1Label", "deviceCustomString1Label", L1023),
    ("cs2", "deviceCustomString2", Str(Some(4000))),
    ("cs2Label", "deviceCustomString2Label", L1023),
    ("cs3", "deviceCustomString3", Str(Some(4000))),
    ("cs3Label", "deviceCustomString3Label", L1023),
    ("cs4", "deviceCustomString4", Str(Some(4000))),
    ("cs4Label", "deviceCustomString4Label", L1023),
    ("cs5", "deviceCustomString5", Str(Some(4000))),
    ("cs5Label", "deviceCustomString5Label", L1023),
    ("cs6", "deviceCustomString6", Str(Some(4000))),
    ("cs6Label", "deviceCustomString6Label", L1023),
    ("destinationDnsDomain", "destinationDnsDomain", S255),
    ("destinationServiceName", "destinationServiceName", S1023),
    (
        "destinationTranslatedAddress",
        "destinationTranslatedAddress",
        Ipv4,
    ),
    (
        "destinationTranslatedPort",
        "destinationTranslatedPort",
        Port,
    ),
    ("deviceCustomDate1", "deviceCustomDate1", Timestamp),
    ("deviceCustomDate1Label", "deviceCustomDate1Label", L1023),
    ("deviceCustomDate2", "deviceCustomDate2", Timestamp),
    ("deviceCustomDate2Label", "deviceCustomDate2Label", L1023),
    ("deviceDirection", "deviceDirection", Int),
    ("deviceDnsDomain", "deviceDnsDomain", S255),
    ("deviceExternalId", "deviceExternalId", S255),
    ("deviceFacility", "deviceFacility", S1023),
    ("deviceInboundInterface", "deviceInboundInterface", S128),
    ("deviceNtDomain", "deviceNtDomain", S255),
    ("deviceOutboundInterface", "deviceOutboundInterface", S128),
    ("devicePayloadId", "devicePayloadId", S128),
    ("deviceProcessName", "deviceProcessName", S1023),
    ("deviceTranslatedAddress", "deviceTranslatedAddress", Ipv4),
    ("dhost", "destinationHostName", S1023),
    ("dmac", "destinationMacAddress", Mac),
    ("dntdom", "destinationNtDomain", S255),
    ("dpid", "destinationProcessId", Int),
    ("dpriv", "destinationUserPrivileges", S1023),
    ("dproc", "destinationProcessName", S1023),
    ("dpt", "destinationPort", Port),
    ("dst", "destinationAddress", Ipv4),
    ("dtz", "deviceTimeZone", S255),
    ("duid", "destinationUserId", S1023),
    ("duser", "destinationUserName", S1023),
    ("dvc", "deviceAddress", Ipv4),
    ("dvchost", "deviceHostName", Str(Some(100))),
    ("dvcmac", "deviceMacAddress", Mac),
    ("dvcpid", "deviceProcessId", Int),
    ("end", "endTime", Timestamp),
    ("externalId", "externalId", Str(Some(40))),
    ("fileCreateTime", "fileCreateTime", Timestamp),
    ("fileHash", "fileHash", S255),
    ("fileId", "fileId", S1023),
    ("fileModificationTime", "fileModificationTime", Timestamp),
    ("filePath", "filePath", S1023),
    ("filePermission", "filePermission", S1023),
    ("fileType", "fileType", S1023),
    ("flexDate1", "flexDate1", Timestamp),
    ("flexDate1Label", "flexDate1Label", Label(128)),
    ("flexString1", "flexString1", S1023),
    ("flexString1Label", "flexString1Label", Label(128)),
    ("flexString2", "flexString2", S1023),
    ("flexString2Label", "flexString2Label", Label(128)),
    ("fname", "filename", S1023),
    ("fsize", "fileSize", Int),
    ("in", "bytesIn", Int),
    ("msg", "message", S1023),
    ("oldFileCreateTime", "oldFileCreateTime", Timestamp),
    ("oldFileHash", "oldFileHash", S255),
    ("oldFileId", "oldFileId", S1023),
    (
        "oldFileModificationTime",
        "oldFileModificationTime",
        Timestamp,
    ),
    ("oldFileName", "oldFileName", S1023),
    ("oldFilePath", "oldFilePath", S1023),
    ("oldFilePermission", "oldFilePermission", S1023),
    ("oldFileSize", "oldFileSize", Int),
    ("oldFileType", "oldFileType", S1023),
    ("out", "bytesOut", Int),
    ("outcome", "eventOutcome", Str(Some(63))),
    ("proto", "transportProtocol", Str(Some(31))),
    ("reason", "reason", S1023),
    ("request", "requestUrl", S1023),
    (
        "requestClientApplication",
        "requestClientApplication",
        S1023,
    ),
    ("requestContext", "requestContext", Str(Some(2048))),
    ("requestCookies", "requestCookies", S1023),
    ("requestMethod", "requestMethod", S1023),
    ("rt", "deviceReceiptTime", Timestamp),
    ("shost", "sourceHostName", S1023),
    ("smac", "sourceMacAddress", Mac),
    ("sntdom", "sourceNtDomain", S255),
    ("sourceDnsDomain", "sourceDnsDomain", S255),
    ("sourceServiceName", "sourceServiceName", S1023),
    ("sourceTranslatedAddress", "sourceTranslatedAddress", Ipv4),
    ("sourceTranslatedPort", "sourceTranslatedPort", Port),
    ("spid", "sourceProcessId", Int),
    ("spriv", "sourceUserPrivileges", S1023),
    ("sproc", "sourceProcessName", S1023),
    ("spt", "sourcePort", Port),
    ("src", "sourceAddress", Ipv4),
    ("start", "startTime", Timestamp),
    ("suid", "sourceUserId", S1023),
    ("suser", "sourceUserName", S1023),
    ("type", "type", Int),
];

/// Keys only ArcSight itself sets after ingestion; producers must not send them.
pub(crate) const CEF_CONSUMER_KEYS: &[&str] = &[
    "agt",
    "ahost",
    "aid",
    "amac",
    "art",
    "at",
    "atz",
    "av",
    "agentDnsDomain",
    "agentNtDomain",
    "agentTranslatedAddress",
    "customerExternalID",
    "customerURI",
    "dlat",
    "dlong",
    "slat",
    "slong",
    "eventId",
    "rawEvent",
    "catdt",
    "mrt",
];

/// Length applied to CEF custom (vendor-defined) keys, which have no dictionary entry.
pub(crate) const CEF_CUSTOM_MAX: usize = 1023;
/// Length applied to LEEF string keys IBM gives no limit for.
pub(crate) const LEEF_DEFAULT_MAX: usize = 4000;

/// IBM's predefined LEEF attributes (LEEF guide v2, 45 keys).
pub(crate) const LEEF_KEYS: &[(&str, KeyType)] = &[
    ("cat", Str(None)),
    ("devTime", Timestamp),
    ("devTimeFormat", Str(None)),
    ("proto", Str(None)),
    ("sev", Sev),
    ("src", Ip),
    ("dst", Ip),
    ("srcPort", Port),
    ("dstPort", Port),
    ("srcPreNAT", Ip),
    ("dstPreNAT", Ip),
    ("srcPostNAT", Ip),
    ("dstPostNAT", Ip),
    ("usrName", S255),
    ("srcMAC", Mac),
    ("dstMAC", Mac),
    ("srcPreNATPort", Port),
    ("dstPreNATPort", Port),
    ("srcPostNATPort", Port),
    ("dstPostNATPort", Port),
    ("identSrc", Ip),
    ("identHostName", S255),
    ("identNetBios", S255),
    ("identGrpName", S255),
    ("identMAC", Mac),
    ("vSrc", Ip),
    ("vSrcName", S255),
    ("accountName", S255),
    ("srcBytes", Long),
    ("dstBytes", Long),
    ("srcPackets", Long),
    ("dstPackets", Long),
    ("totalPackets", Long),
    ("role", Str(None)),
    ("realm", Str(None)),
    ("policy", Str(None)),
    ("resource", Str(None)),
    ("url", Str(None)),
    ("groupID", Str(None)),
    ("domain", Str(None)),
    ("isLoginEvent", Bool),
    ("isLogoutEvent", Bool),
    ("identSecondlp", Ip),
    ("calLanguage", Str(Some(2))),
    ("calCountryOrRegion", Str(Some(2))),
];

/// Looks a CEF key up; returns its type.
pub(crate) fn cef_key(key: &str) -> Option<KeyType> {
    CEF_KEYS
        .iter()
        .find(|(k, _, _)| *k == key)
        .map(|(_, _, t)| *t)
}

/// Looks a LEEF key up; returns its type.
pub(crate) fn leef_key(key: &str) -> Option<KeyType> {
    LEEF_KEYS.iter().find(|(k, _)| *k == key).map(|(_, t)| *t)
}

/// The CEF short key for a full dictionary name (`sourceAddress` → `src`), any case.
pub(crate) fn cef_full_name(name: &str) -> Option<&'static str> {
    CEF_KEYS
        .iter()
        .find(|(k, full, _)| full.eq_ignore_ascii_case(name) && k != full)
        .map(|(k, _, _)| *k)
}

/// Where an IPv6 value of an IPv4 CEF key goes, with the label the CEF specification documents
/// (ArcSight "Common Event Format (CEF) Implementation Standard", version 25, cited in `cef.rs`).
pub(crate) fn cef_ipv6_route(key: &str) -> Option<(&'static str, &'static str)> {
    match key {
        "dvc" => Some(("c6a1", "Device IPv6 Address")),
        "src" => Some(("c6a2", "Source IPv6 Address")),
        "dst" => Some(("c6a3", "Destination IPv6 Address")),
        _ => None,
    }
}

/// CEF habits in a LEEF file: the CEF key → the IBM key that means the same.
pub(crate) fn leef_synonym(key: &str) -> Option<&'static str> {
    Some(match key {
        "suser" | "duser" | "user" => "usrName",
        "spt" => "srcPort",
        "dpt" => "dstPort",
        "smac" => "srcMAC",
        "dmac" => "dstMAC",
        "rt" | "start" => "devTime",
        "request" => "url",
        "severity" => "sev",
        _ => return None,
    })
}

/// True for `[A-Za-z0-9]+`, the only key alphabet siemcast emits.
pub(crate) fn is_key_alphabet(key: &str) -> bool {
    !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Edit distance (Levenshtein, case-insensitive) for "did you mean" hints.
pub(crate) fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().map(|c| c.to_ascii_lowercase()).collect();
    let b: Vec<char> = b.chars().map(|c| c.to_ascii_lowercase()).collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// The closest candidate to `input`, if it is close enough to be a plausible typo.
pub(crate) fn closest<'a>(
    input: &str,
    candidates: impl Iterator<Item = &'a str>,
) -> Option<&'a str> {
    let squashed: String = input
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect();
    let mut best: Option<(usize, &str)> = None;
    for cand in candidates {
        let d = distance(input, cand).min(distance(&squashed, cand));
        // A prefix match ("src ip" → "src") counts as close.
        let (sq, cl) = (squashed.to_ascii_lowercase(), cand.to_ascii_lowercase());
        let d = if (!sq.is_empty() && sq.len() > cl.len() && sq.starts_with(&cl))
            || (sq.len() >= 3 && cl.len() > sq.len() && cl.starts_with(&sq))
        {
            d.min(1)
        } else {
            d
        };
        if best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, cand));
        }
    }
    let limit = (input.chars().count() / 3).max(2);
    best.filter(|(d, _)| *d <= limit).map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dictionary_keys_are_alphanumeric_and_unique() {
        let mut seen = std::collections::HashSet::new();
        for (k, _, _) in CEF_KEYS {
            assert!(is_key_alphabet(k), "{k}");
            assert!(seen.insert(*k), "duplicate {k}");
        }
        for (k, _) in LEEF_KEYS {
            assert!(is_key_alphabet(k), "{k}");
        }
        assert_eq!(LEEF_KEYS.len(), 45);
    }

    #[test]
    fn labels_have_partners() {
        for (k, _, t) in CEF_KEYS {
            if let Label(_) = t {
                let base = k.strip_suffix("Label").unwrap();
                assert!(cef_key(base).is_some(), "{k}");
            }
        }
    }

    #[test]
    fn closest_finds_typos() {
        let keys = || CEF_KEYS.iter().map(|(k, _, _)| *k);
        assert_eq!(closest("src ip", keys()), Some("src"));
        assert_eq!(closest("suer", keys()), Some("suser"));
        assert_eq!(closest("externalID", keys()), Some("externalId"));
        assert_eq!(closest("zzzzzzzzzz", keys()), None);
        assert_eq!(cef_full_name("sourceAddress"), Some("src"));
        assert_eq!(distance("kitten", "sitting"), 3);
    }
}
