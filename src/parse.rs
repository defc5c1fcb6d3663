//! The time and IP address parsers shared by the sources (an event's time) and the mapping
//! engine (`epoch_ms`, `leef_time` and `ip` conversions), so both read every form Microsoft
//! writes the same way. RFC 3339 is tried first on a hand-written fast path (one per event).

use std::net::{IpAddr, Ipv6Addr};

/// Longest text taken as a time; anything longer is not one of the forms below.
const MAX_TIME_LEN: usize = 100;

/// Epoch milliseconds of a time written in any of the forms Microsoft's records use:
///
/// - RFC 3339 / ISO 8601: `2025-12-12T15:03:58.1234567Z`, `+01:00` / `+0100` / `+01` offsets,
///   `T`, `t` or a space between date and time, a `,` or `.` before 1–9 fraction digits,
///   `Z`/`UTC`/`GMT` or no zone at all (UTC, as Office 365 and many resource logs write it), a
///   date alone (midnight UTC); other ISO 8601 forms `jiff` reads (e.g. `[Etc/UTC]` suffixes).
/// - .NET's US form: `12/12/2025 3:03:58 PM`, `9/28/2016 8:40:06 PM +00:00`,
///   `12/12/2025 15:03:58`, with or without seconds, fraction, `AM`/`PM` and zone (no zone =
///   UTC). The date is month/day/year; when the first number is over 12 and the second is not,
///   it can only be day/month/year and is read so.
/// - Epoch numbers: 13 or more integer digits are milliseconds, fewer are seconds, optionally
///   with a fraction (`1765551838.123`).
///
/// `None` for anything else, for out-of-range fields (month 13, hour 25, 31 April, a 0 or
/// 13 o'clock with `PM`) and for instants outside years -9999..=9999. Sub-millisecond digits
/// are truncated toward zero.
pub fn time_ms(text: &str) -> Option<i64> {
    let t = text.trim();
    let b = t.as_bytes();
    if b.is_empty() || b.len() > MAX_TIME_LEN {
        return None;
    }
    let ms = if b.len() >= 10 && b[4] == b'-' {
        match iso(b) {
            Some(ms) => Some(ms),
            None => return jiff_fallback(t),
        }
    } else if b[0].is_ascii_digit() && b[1..b.len().min(3)].contains(&b'/') {
        us(b)
    } else if b[0].is_ascii_digit() {
        epoch(b)
    } else {
        return jiff_fallback(t);
    };
    ms.filter(|ms| (min_ms()..=max_ms()).contains(ms))
}

fn min_ms() -> i64 {
    jiff::Timestamp::MIN.as_millisecond()
}

fn max_ms() -> i64 {
    jiff::Timestamp::MAX.as_millisecond()
}

/// The ISO 8601 forms the fast path does not take (extended years, annotations, …).
fn jiff_fallback(t: &str) -> Option<i64> {
    if let Ok(ts) = t.parse::<jiff::Timestamp>() {
        return Some(ts.as_millisecond());
    }
    let civil: jiff::civil::DateTime = t.parse().ok()?;
    civil
        .to_zoned(jiff::tz::TimeZone::UTC)
        .ok()
        .map(|z| z.timestamp().as_millisecond())
}

/// A cursor over the bytes of a time.
struct Cur<'a> {
    b: &'a [u8],
    i: usize,
}

impl Cur<'_> {
    fn done(&self) -> bool {
        self.i == self.b.len()
    }
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }
    fn eat(&mut self, c: u8) -> bool {
        let hit = self.peek() == Some(c);
        self.i += usize::from(hit);
        hit
    }
    fn eat_word(&mut self, w: &str) -> bool {
        let end = self.i + w.len();
        let hit = self
            .b
            .get(self.i..end)
            .is_some_and(|s| s.eq_ignore_ascii_case(w.as_bytes()));
        if hit {
            self.i = end;
        }
        hit
    }
    /// `min..=max` ASCII digits as a number.
    fn num(&mut self, min: usize, max: usize) -> Option<u32> {
        let mut n = 0u32;
        let start = self.i;
        while self.i - start < max {
            match self.peek() {
                Some(d @ b'0'..=b'9') => n = n * 10 + u32::from(d - b'0'),
                _ => break,
            }
            self.i += 1;
        }
        (self.i - start >= min).then_some(n)
    }
}

/// Date, time and offset as written, before any check.
#[derive(Default)]
struct Civil {
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    milli: u32,
    /// Fraction digits past the millisecond were not all zero.
    sub_milli: bool,
    offset_s: i64,
}

impl Civil {
    /// Epoch milliseconds, truncated toward zero; `None` for an impossible field.
    fn to_ms(&self) -> Option<i64> {
        if !(1..=12).contains(&self.month)
            || self.day == 0
            || self.day > days_in_month(self.year, self.month)
            || self.hour > 23
            || self.minute > 59
            || self.second > 60
        {
            return None;
        }
        // A leap second is read as the second before it (as RFC 3339 parsers commonly do).
        let second = self.second.min(59);
        let days = days_from_civil(self.year, self.month, self.day);
        let secs =
            days * 86_400 + i64::from(self.hour * 3600 + self.minute * 60 + second) - self.offset_s;
        let ms = secs * 1000 + i64::from(self.milli);
        Some(if ms < 0 && self.sub_milli { ms + 1 } else { ms })
    }

    /// `[.,]digits` after the seconds.
    fn fraction(&mut self, c: &mut Cur<'_>) -> Option<()> {
        if !(c.eat(b'.') || c.eat(b',')) {
            return Some(());
        }
        let start = c.i;
        let mut milli = 0;
        while let Some(d @ b'0'..=b'9') = c.peek() {
            let k = c.i - start;
            if k < 3 {
                milli = milli * 10 + u32::from(d - b'0');
            } else if d != b'0' {
                self.sub_milli = true;
            }
            c.i += 1;
        }
        let n = c.i - start;
        if n == 0 || n > 9 {
            return None;
        }
        self.milli = milli * 10u32.pow(3u32.saturating_sub(n as u32));
        Some(())
    }

    /// What may end a time: nothing (UTC), `Z`, `UTC`, `GMT`, or `±hh[[:]mm]`, after at most
    /// one space.
    fn zone(&mut self, c: &mut Cur<'_>) -> Option<()> {
        if c.done() {
            return Some(());
        }
        c.eat(b' ');
        if c.eat(b'Z') || c.eat(b'z') || c.eat_word("UTC") || c.eat_word("GMT") {
            return c.done().then_some(());
        }
        let sign = match c.peek()? {
            b'+' => 1,
            b'-' => -1,
            _ => return None,
        };
        c.i += 1;
        let hours = c.num(2, 2)?;
        let minutes = if c.done() {
            0
        } else {
            c.eat(b':');
            c.num(2, 2)?
        };
        // Up to ±25:59, the range jiff (and so the ISO forms past the fast path) accepts.
        if hours > 25 || minutes > 59 || !c.done() {
            return None;
        }
        self.offset_s = sign * i64::from(hours * 3600 + minutes * 60);
        Some(())
    }
}

/// `yyyy-mm-dd[(T| )hh:mm[:ss[.f]]][zone]`.
fn iso(b: &[u8]) -> Option<i64> {
    let mut c = Cur { b, i: 0 };
    let mut t = Civil {
        year: i64::from(c.num(4, 4)?),
        ..Civil::default()
    };
    c.eat(b'-').then_some(())?;
    t.month = c.num(2, 2)?;
    c.eat(b'-').then_some(())?;
    t.day = c.num(2, 2)?;
    if !c.done() {
        matches!(c.peek()?, b'T' | b't' | b' ').then_some(())?;
        c.i += 1;
        t.hour = c.num(2, 2)?;
        c.eat(b':').then_some(())?;
        t.minute = c.num(2, 2)?;
        if c.eat(b':') {
            t.second = c.num(2, 2)?;
            t.fraction(&mut c)?;
        }
        t.zone(&mut c)?;
    }
    t.to_ms()
}

/// `m/d/yyyy[ h:mm[:ss[.f]][ AM|PM]][zone]` (day first when the first number is over 12).
fn us(b: &[u8]) -> Option<i64> {
    let mut c = Cur { b, i: 0 };
    let first = c.num(1, 2)?;
    c.eat(b'/').then_some(())?;
    let second = c.num(1, 2)?;
    c.eat(b'/').then_some(())?;
    let (month, day) = if first > 12 && second <= 12 {
        (second, first)
    } else {
        (first, second)
    };
    let mut t = Civil {
        year: i64::from(c.num(4, 4)?),
        month,
        day,
        ..Civil::default()
    };
    if !c.done() {
        c.eat(b' ').then_some(())?;
        t.hour = c.num(1, 2)?;
        c.eat(b':').then_some(())?;
        t.minute = c.num(2, 2)?;
        if c.eat(b':') {
            t.second = c.num(2, 2)?;
            t.fraction(&mut c)?;
        }
        let mark = c.i;
        c.eat(b' ');
        if c.eat_word("AM") {
            (1..=12).contains(&t.hour).then_some(())?;
            t.hour %= 12;
        } else if c.eat_word("PM") {
            (1..=12).contains(&t.hour).then_some(())?;
            t.hour = t.hour % 12 + 12;
        } else {
            c.i = mark;
        }
        t.zone(&mut c)?;
    }
    t.to_ms()
}

/// Integer digits (13+ = milliseconds, else seconds), optionally `.` and a fraction.
fn epoch(b: &[u8]) -> Option<i64> {
    let (int, frac) = match b.iter().position(|&x| x == b'.') {
        Some(p) => (&b[..p], Some(&b[p + 1..])),
        None => (b, None),
    };
    if int.is_empty() || int.len() > 19 || !int.iter().all(u8::is_ascii_digit) {
        return None;
    }
    if let Some(f) = frac {
        if f.is_empty() || f.len() > 9 || !f.iter().all(u8::is_ascii_digit) {
            return None;
        }
    }
    // At most 19 digits: fits in an i128 without checks, then the range check applies.
    let n = std::str::from_utf8(int).ok()?.parse::<i128>().ok()?;
    let ms = if int.len() >= 13 {
        n
    } else {
        let mut milli = 0i128;
        for (k, d) in frac.unwrap_or_default().iter().take(3).enumerate() {
            milli += i128::from(d - b'0') * [100, 10, 1][k];
        }
        n * 1000 + milli
    };
    i64::try_from(ms).ok()
}

fn is_leap(y: i64) -> bool {
    y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to the proleptic Gregorian date `y-m-d` (`m` 1–12).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// An IP address in any form Microsoft writes a client address: bare IPv4 or IPv6,
/// `10.1.2.3:443`, `[10.1.2.3]`, `[10.1.2.3]:12345`, `[2001:db8::1]`, `[2001:db8::1]:443`,
/// IPv6 with a zone (`fe80::1%eth0`, `fe80::1%12`, also in brackets; the zone is dropped),
/// with spaces around it. A list (`10.1.2.3, 10.1.2.4`, as in `X-Forwarded-For`) gives its
/// first entry, the client, or nothing when that entry is not an address. IPv4-mapped IPv6
/// (`::ffff:10.1.2.3`) becomes IPv4. A bare IPv6 is never read as `address:port` (that form is
/// ambiguous; Microsoft brackets it). The port, when present, must be 0–65535.
pub fn ip(text: &str) -> Option<IpAddr> {
    let mut t = text.trim();
    if let Ok(ip) = t.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    if let Some((first, _)) = t.split_once(',') {
        t = first.trim_end();
    }
    let host = if let Some(rest) = t.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        if !after.is_empty() {
            port(after.strip_prefix(':')?)?;
        }
        host
    } else {
        match t.split_once(':') {
            // One colon: IPv4 and a port (IPv6 has at least two).
            Some((host, p)) if !p.contains(':') => {
                port(p)?;
                host
            }
            _ => t,
        }
    };
    let (host, zone) = match host.split_once('%') {
        Some((h, z)) => (h, Some(z)),
        None => (host, None),
    };
    let ip = match zone {
        None => host.parse::<IpAddr>().ok()?,
        Some(z) if is_zone(z) => IpAddr::V6(host.parse::<Ipv6Addr>().ok()?),
        Some(_) => return None,
    };
    Some(ip.to_canonical())
}

/// 1–5 digits, 0–65535.
fn port(p: &str) -> Option<u16> {
    if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    p.parse().ok()
}

/// An IPv6 zone: an interface name or index.
fn is_zone(z: &str) -> bool {
    !z.is_empty()
        && z.len() <= 64
        && z.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

#[cfg(test)]
mod tests;
