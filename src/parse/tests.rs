//! Property tests (every documented form of generated instants and addresses parses back to
//! the same value) and unit tests (Microsoft's published samples, and what must be refused).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use jiff::tz::{Offset, TimeZone};
use jiff::Timestamp;
use proptest::prelude::*;

use super::{ip, time_ms};

/// 0001-01-01T00:00:00Z .. 9999-12-30T00:00:00Z: instants every 4-digit-year form can write.
const FIRST_MS: i64 = -62_135_596_800_000;
const LAST_MS: i64 = 253_402_128_000_000;

/// The local date and time of `ms` at `offset_min` minutes east of UTC.
fn civil(ms: i64, offset_min: i32) -> jiff::civil::DateTime {
    let off = Offset::from_seconds(offset_min * 60).unwrap();
    Timestamp::from_millisecond(ms)
        .unwrap()
        .to_zoned(TimeZone::fixed(off))
        .datetime()
}

fn offset_text(offset_min: i32, colon: bool) -> String {
    let sign = if offset_min < 0 { '-' } else { '+' };
    let (h, m) = (offset_min.abs() / 60, offset_min.abs() % 60);
    if colon {
        format!("{sign}{h:02}:{m:02}")
    } else {
        format!("{sign}{h:02}{m:02}")
    }
}

fn millis(dt: &jiff::civil::DateTime) -> i32 {
    dt.subsec_nanosecond() / 1_000_000
}

/// `yyyy-mm-dd` + `sep` + `hh:mm:ss`.
fn iso_base(dt: &jiff::civil::DateTime, sep: char) -> String {
    format!(
        "{:04}-{:02}-{:02}{sep}{:02}:{:02}:{:02}",
        dt.year(),
        dt.month(),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second()
    )
}

/// The `h:mm:ss AM` clock of .NET's US form (`pad`: `03:03:58 PM`).
fn twelve_hour(dt: &jiff::civil::DateTime, pad: bool) -> String {
    let h = match dt.hour() % 12 {
        0 => 12,
        h => h,
    };
    let mark = if dt.hour() < 12 { "AM" } else { "PM" };
    if pad {
        format!("{h:02}:{:02}:{:02} {mark}", dt.minute(), dt.second())
    } else {
        format!("{h}:{:02}:{:02} {mark}", dt.minute(), dt.second())
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Every RFC 3339 / ISO 8601 spelling of an instant reads back as that instant.
    #[test]
    fn iso_forms_read_back(
        ms in FIRST_MS..LAST_MS,
        offset_min in -(23 * 60 + 59)..=(23 * 60 + 59),
        sep in prop::sample::select(vec!['T', 't', ' ']),
        zulu in prop::sample::select(vec!["Z", "z", " UTC", " GMT", ""]),
    ) {
        let utc = civil(ms, 0);
        let frac = format!(".{:03}", millis(&utc));
        let whole = ms - i64::from(millis(&utc));
        prop_assert_eq!(time_ms(&format!("{}{frac}{zulu}", iso_base(&utc, sep))), Some(ms));
        // .NET's 7 fraction digits, a comma, no fraction.
        prop_assert_eq!(time_ms(&format!("{}{frac}0000{zulu}", iso_base(&utc, sep))), Some(ms));
        prop_assert_eq!(
            time_ms(&format!("{},{:03}{zulu}", iso_base(&utc, sep), millis(&utc))),
            Some(ms)
        );
        prop_assert_eq!(time_ms(&format!("{}{zulu}", iso_base(&utc, sep))), Some(whole));
        // The same instant at another offset, with and without the colon.
        let local = civil(ms, offset_min);
        for colon in [true, false] {
            let text = format!(
                "{}.{:03}{}",
                iso_base(&local, sep),
                millis(&local),
                offset_text(offset_min, colon)
            );
            prop_assert_eq!(time_ms(&text), Some(ms), "{}", text);
        }
        // Surrounding whitespace.
        prop_assert_eq!(time_ms(&format!(" \t{}{frac}Z\n", iso_base(&utc, 'T'))), Some(ms));
    }

    /// Sub-millisecond digits are cut toward zero, exactly as `jiff` does.
    #[test]
    fn fraction_digits_match_jiff(
        secs in (FIRST_MS / 1000)..(LAST_MS / 1000),
        digits in "[0-9]{1,9}",
        offset_min in -(23 * 60 + 59)..=(23 * 60 + 59),
    ) {
        let local = civil(secs * 1000, offset_min);
        let text = format!("{}.{digits}{}", iso_base(&local, 'T'), offset_text(offset_min, true));
        let want = text.parse::<Timestamp>().unwrap().as_millisecond();
        prop_assert_eq!(time_ms(&text), Some(want), "{}", text);
    }

    /// Every spelling of .NET's US form reads back as the instant; a day over 12 written
    /// first is read as day/month.
    #[test]
    fn us_forms_read_back(
        ms in -30_610_137_600_000i64..LAST_MS, // 1000-01-02 on: four-digit years at any offset
        offset_min in -(14 * 60)..=(14 * 60),
        pad in any::<bool>(),
    ) {
        let utc = civil(ms, 0);
        let whole = ms - i64::from(millis(&utc));
        let (m, d, y) = (utc.month(), utc.day(), utc.year());
        let date = if pad { format!("{m:02}/{d:02}/{y}") } else { format!("{m}/{d}/{y}") };
        let clock12 = twelve_hour(&utc, pad);
        let clock24 = format!("{:02}:{:02}:{:02}", utc.hour(), utc.minute(), utc.second());
        for text in [
            format!("{date} {clock12}"),
            format!("{date} {clock12} +00:00"),
            format!("{date} {clock12}Z"),
            format!("{date} {}", clock12.to_lowercase()),
            format!("{date} {clock24}"),
        ] {
            prop_assert_eq!(time_ms(&text), Some(whole), "{}", text);
        }
        prop_assert_eq!(
            time_ms(&format!("{date} {clock24}.{:03}", millis(&utc))),
            Some(ms)
        );
        // A local time with its offset, as `EventTimeString` carries it.
        let local = civil(whole, offset_min);
        let text = format!(
            "{}/{}/{} {} {}",
            local.month(),
            local.day(),
            local.year(),
            twelve_hour(&local, false),
            offset_text(offset_min, true)
        );
        prop_assert_eq!(time_ms(&text), Some(whole), "{}", text);
        if d > 12 {
            prop_assert_eq!(time_ms(&format!("{d}/{m}/{y} {clock24}")), Some(whole));
        }
    }

    /// Epoch seconds (with or without a fraction) and epoch milliseconds.
    #[test]
    fn epoch_forms_read_back(ms in 0..LAST_MS) {
        let (s, milli) = (ms / 1000, ms % 1000);
        prop_assert_eq!(time_ms(&s.to_string()), Some(s * 1000));
        prop_assert_eq!(time_ms(&format!("{s}.{milli:03}")), Some(ms));
        prop_assert_eq!(time_ms(&format!("{s}.{milli:03}4567")), Some(ms));
        if ms >= 1_000_000_000_000 {
            prop_assert_eq!(time_ms(&ms.to_string()), Some(ms));
        }
    }

    /// Every form of an IPv4 address reads back as it.
    #[test]
    fn ipv4_forms_read_back(
        bits in any::<u32>(),
        port in any::<u16>(),
        other in any::<u32>(),
    ) {
        let a = Ipv4Addr::from(bits);
        let want = Some(IpAddr::V4(a));
        for text in [
            format!("{a}"),
            format!("{a}:{port}"),
            format!("[{a}]"),
            format!("[{a}]:{port}"),
            format!("::ffff:{a}"),
            format!("[::ffff:{a}]:{port}"),
            format!("  {a}\t"),
            format!(" [{a}]:{port} "),
            format!("{a}, {}", Ipv4Addr::from(other)),
            format!("{a},{}", Ipv6Addr::from(u128::from(other) << 64)),
            format!("[{a}]:{port} , {}", Ipv4Addr::from(other)),
        ] {
            prop_assert_eq!(ip(&text), want, "{}", text);
        }
    }

    /// Every form of an IPv6 address reads back as it (IPv4-mapped ones as IPv4).
    #[test]
    fn ipv6_forms_read_back(
        bits in any::<u128>(),
        port in any::<u16>(),
        zone in "[a-z][a-z0-9_.-]{0,10}|[0-9]{1,3}",
    ) {
        let a = Ipv6Addr::from(bits);
        let want = Some(IpAddr::V6(a).to_canonical());
        let full = format!(
            "{:x}:{:x}:{:x}:{:x}:{:x}:{:x}:{:x}:{:x}",
            a.segments()[0], a.segments()[1], a.segments()[2], a.segments()[3],
            a.segments()[4], a.segments()[5], a.segments()[6], a.segments()[7]
        );
        for text in [
            format!("{a}"),
            full.clone(),
            format!("{a}").to_uppercase(),
            format!("[{a}]"),
            format!("[{a}]:{port}"),
            format!("{a}%{zone}"),
            format!("[{a}%{zone}]"),
            format!("[{a}%{zone}]:{port}"),
            format!(" [{full}]:{port}\n"),
            format!("{a}, 10.1.2.3"),
            format!("[{a}]:{port}, [2001:db8::2]:443"),
        ] {
            prop_assert_eq!(ip(&text), want, "{}", text);
        }
    }

    /// Whatever the text, an address comes out only when the text held one.
    #[test]
    fn ip_yields_only_addresses(text in "[0-9a-fA-F:.\\[\\]%, x]{0,40}") {
        if let Some(a) = ip(&text) {
            let shown = a.to_string();
            prop_assert_eq!(shown.parse::<IpAddr>().ok(), Some(a));
            // The first entry, stripped of brackets, port and zone, is that address.
            let first = text.split(',').next().unwrap_or_default().trim();
            let inner = first.trim_start_matches('[');
            let host = inner.split(['%', ']']).next().unwrap_or_default();
            let host = match host.split_once(':') {
                Some((h, p)) if !p.contains(':') => h,
                _ => host,
            };
            prop_assert_eq!(host.parse::<IpAddr>().ok().map(|h| h.to_canonical()), Some(a));
        }
    }

    /// Whatever the text, a time is either refused or an instant jiff can hold.
    #[test]
    fn time_yields_only_instants(text in "[0-9/:. APMZT+-]{0,32}") {
        if let Some(ms) = time_ms(&text) {
            prop_assert!(Timestamp::from_millisecond(ms).is_ok(), "{} -> {}", text, ms);
        }
    }
}

fn utc(text: &str) -> i64 {
    text.parse::<Timestamp>().unwrap().as_millisecond()
}

#[test]
fn microsoft_samples() {
    // Event Hubs / Service Bus operational logs (`EventTimeString`) and archive logs.
    assert_eq!(
        time_ms("9/28/2016 8:40:06 PM +00:00"),
        Some(utc("2016-09-28T20:40:06Z"))
    );
    assert_eq!(
        time_ms("5/18/2021 3:25:55 AM +00:00"),
        Some(utc("2021-05-18T03:25:55Z"))
    );
    assert_eq!(
        time_ms("9/22/2016 5:11:21 AM"),
        Some(utc("2016-09-22T05:11:21Z"))
    );
    assert_eq!(
        time_ms("12/12/2025 3:03:58 PM"),
        Some(utc("2025-12-12T15:03:58Z"))
    );
    assert_eq!(
        time_ms("12/12/2025 15:03:58"),
        Some(utc("2025-12-12T15:03:58Z"))
    );
    assert_eq!(
        time_ms("12/12/2025 12:00:00 AM"),
        Some(utc("2025-12-12T00:00:00Z"))
    );
    assert_eq!(
        time_ms("12/12/2025 12:30:00 PM"),
        Some(utc("2025-12-12T12:30:00Z"))
    );
    assert_eq!(
        time_ms("12/12/2025 3:03 PM"),
        Some(utc("2025-12-12T15:03:00Z"))
    );
    assert_eq!(time_ms("12/12/2025"), Some(utc("2025-12-12T00:00:00Z")));
    // Day first only when it cannot be a month.
    assert_eq!(
        time_ms("25/12/2025 10:00:00"),
        Some(utc("2025-12-25T10:00:00Z"))
    );
    assert_eq!(
        time_ms("3/4/2025 10:00:00"),
        Some(utc("2025-03-04T10:00:00Z"))
    );
    // RFC 3339 as the APIs write it, and its zone-less and space-separated variants.
    assert_eq!(
        time_ms("2025-12-12T15:03:58.1234567Z"),
        Some(utc("2025-12-12T15:03:58.123Z"))
    );
    assert_eq!(
        time_ms("2025-12-12 15:03:58Z"),
        Some(utc("2025-12-12T15:03:58Z"))
    );
    assert_eq!(
        time_ms("2025-12-12T15:03:58"),
        Some(utc("2025-12-12T15:03:58Z"))
    );
    assert_eq!(
        time_ms("2025-12-12T16:03:58+0100"),
        Some(utc("2025-12-12T15:03:58Z"))
    );
    assert_eq!(
        time_ms("2025-12-12T16:03:58+01"),
        Some(utc("2025-12-12T15:03:58Z"))
    );
    assert_eq!(time_ms("2025-12-12"), Some(utc("2025-12-12T00:00:00Z")));
    // A leap second is the second before it.
    assert_eq!(
        time_ms("2016-12-31T23:59:60Z"),
        Some(utc("2016-12-31T23:59:59Z"))
    );
    // What jiff reads past the fast path still reads.
    assert_eq!(
        time_ms("2025-12-12T15:03:58Z[Etc/UTC]"),
        Some(utc("2025-12-12T15:03:58Z"))
    );
    assert_eq!(time_ms("1765551838"), Some(1_765_551_838_000));
    assert_eq!(time_ms("1765551838123"), Some(1_765_551_838_123));
    assert_eq!(time_ms("1765551838.5"), Some(1_765_551_838_500));
}

#[test]
fn times_refused() {
    for bad in [
        "",
        "   ",
        "garbage",
        "yesterday",
        "PM",
        "2025-13-01T00:00:00Z",
        "2025-00-10T00:00:00Z",
        "2025-12-32T00:00:00Z",
        "2025-02-29T00:00:00Z",
        "2025-04-31",
        "2025-12-12T25:00:00Z",
        "2025-12-12T24:00:00Z",
        "2025-12-12T15:60:00Z",
        "2025-12-12T15:03:61Z",
        "2025-12-12T15:03:58.Z",
        "2025-12-12T15:03:58.1234567890Z",
        "2025-12-12T15:03:58+26:00",
        "2025-12-12T15:03:58+01:60",
        "2025-12-12T15:03:58Zjunk",
        "2025-12-12T15:03:58 PM",
        "2025-12-12X15:03:58Z",
        "13/13/2025 1:00:00 PM",
        "12/32/2025 1:00:00 PM",
        "2/30/2024 1:00:00 PM",
        "12/12/2025 13:03:58 PM",
        "12/12/2025 0:03:58 AM",
        "12/12/2025 25:03:58",
        "12/12/2025 3:60:58 PM",
        "12/12/2025 3:03:58 XM",
        "12/12/25 3:03:58 PM",
        "12/12/2025 3:03:58 PM +26:00",
        "12//2025",
        "1/2/3/4",
        // Years out of range, written every way.
        "99999-01-01T00:00:00Z",
        "10000-01-01T00:00:00Z",
        "+275760-09-13T00:00:00Z",
        "9999-12-31T23:59:59Z",
        "12/31/9999 11:59:59 PM",
        "99999999999999999999",
        "9999999999999999999",
        "999999999999",
        // Not epoch numbers.
        "1e12",
        "-1",
        "1765551838.",
        "1765551838.1234567890",
        "0x1234",
    ] {
        assert_eq!(time_ms(bad), None, "{bad:?} must be refused");
    }
}

#[test]
fn addresses_refused() {
    for bad in [
        "",
        " ",
        "garbage",
        "10.0.0.XXX",
        "256.1.2.3",
        "10.1.2",
        "010.1.2.3",
        "10.1.2.3:",
        "10.1.2.3:65536",
        "10.1.2.3:-1",
        "10.1.2.3:http",
        "[10.1.2.3",
        "10.1.2.3]",
        "[2001:db8::1]443",
        "[2001:db8::1]:",
        "[2001:db8::1]:99999",
        "[]",
        "[]:443",
        "10.1.2.3%eth0",
        "fe80::1%",
        "fe80::1%eth 0",
        "fe80::1%eth0:443",
        "2001:db8:::1",
        "host.example.com:443",
        "unknown, 10.1.2.3",
        ", 10.1.2.3",
        "10.1.2.3 10.1.2.4",
    ] {
        assert_eq!(ip(bad), None, "{bad:?} must be refused");
    }
}

#[test]
fn microsoft_address_forms() {
    let v4 = |s: &str| Some(IpAddr::V4(s.parse().unwrap()));
    let v6 = |s: &str| Some(IpAddr::V6(s.parse().unwrap()));
    assert_eq!(ip("[10.1.2.3]:12345"), v4("10.1.2.3"));
    assert_eq!(ip("[10.1.2.3]"), v4("10.1.2.3"));
    assert_eq!(ip("10.1.2.3:443"), v4("10.1.2.3"));
    assert_eq!(ip("[2001:db8::1]"), v6("2001:db8::1"));
    assert_eq!(ip("[2001:db8::1]:443"), v6("2001:db8::1"));
    assert_eq!(ip("2001:db8::1"), v6("2001:db8::1"));
    assert_eq!(ip("fe80::1%eth0"), v6("fe80::1"));
    assert_eq!(ip("fe80::1%12"), v6("fe80::1"));
    assert_eq!(ip("[fe80::1%12]:443"), v6("fe80::1"));
    assert_eq!(ip("::ffff:10.1.2.3"), v4("10.1.2.3"));
    assert_eq!(ip(" 10.1.2.3 "), v4("10.1.2.3"));
    assert_eq!(ip("10.1.2.3, 10.1.2.4"), v4("10.1.2.3"));
    assert_eq!(ip("2001:db8::1,10.1.2.4"), v6("2001:db8::1"));
    // A bare IPv6 with what looks like a port is an IPv6 address (Microsoft brackets ports).
    assert_eq!(ip("2001:db8::1:443"), v6("2001:db8::1:443"));
}
