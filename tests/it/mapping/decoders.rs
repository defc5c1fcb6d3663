//! Strict CEF and LEEF decoders written from the specs (the ArcSight "Common Event Format (CEF)
//! Implementation Standard" and IBM's "Log Event Extended Format (LEEF)" documentation), independent of
//! the encoder. They reject everything a strict receiver would: unknown escapes, unescaped `=` in
//! CEF values, a missing 7th pipe, control characters, empty or duplicate keys, bad key alphabet.
//! Also compiled as its own test crate, which checks the decoders against hand-written vectors.

#![allow(dead_code)]

/// A decoded message: the header fields after the version, and the pairs in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    pub header: Vec<String>,
    pub pairs: Vec<(String, String)>,
}

fn check_line(line: &str, allow: Option<char>) -> Result<(), String> {
    for c in line.chars() {
        if (c < ' ' || c == '\u{7f}') && Some(c) != allow {
            return Err(format!("control character U+{:04X} on the wire", c as u32));
        }
    }
    Ok(())
}

fn valid_key(k: &str) -> bool {
    !k.is_empty() && k.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Decodes one CEF line (`CEF:0|...`), strictly.
pub fn decode_cef(line: &str) -> Result<Decoded, String> {
    check_line(line, None)?;
    let rest = line.strip_prefix("CEF:").ok_or("no CEF: prefix")?;
    let mut chars = rest.chars().peekable();
    let mut header = Vec::new();
    let mut cur = String::new();
    // Version + six fields, each terminated by an unescaped pipe.
    while header.len() < 7 {
        match chars.next() {
            None => return Err(format!("incomplete header: {} of 7 fields", header.len())),
            Some('\\') => match chars.next() {
                Some('\\') => cur.push('\\'),
                Some('|') => cur.push('|'),
                other => return Err(format!("invalid header escape \\{other:?}")),
            },
            Some('|') => header.push(std::mem::take(&mut cur)),
            Some(c) => cur.push(c),
        }
    }
    if header[0] != "0" && header[0] != "1" {
        return Err(format!("bad version {:?}", header[0]));
    }
    for (i, h) in header.iter().enumerate() {
        if h.is_empty() || h.starts_with(' ') || h.ends_with(' ') {
            return Err(format!("header field {i} empty or padded: {h:?}"));
        }
    }
    let sev = &header[6];
    let sev_ok = matches!(sev.parse::<u8>(), Ok(0..=10)) && !sev.starts_with('+')
        || ["Unknown", "Low", "Medium", "High", "Very-High"].contains(&sev.as_str());
    if !sev_ok {
        return Err(format!("bad severity {sev:?}"));
    }
    let ext: String = chars.collect();
    let pairs = decode_cef_extension(&ext)?;
    Ok(Decoded {
        header: header[1..].to_vec(),
        pairs,
    })
}

fn decode_cef_extension(ext: &str) -> Result<Vec<(String, String)>, String> {
    let mut pairs: Vec<(String, String)> = Vec::new();
    if ext.is_empty() {
        return Ok(pairs);
    }
    if ext.starts_with(' ') {
        return Err("space after the 7th pipe".into());
    }
    let b: Vec<char> = ext.chars().collect();
    let mut i = 0;
    // First key.
    let mut key = String::new();
    while i < b.len() && b[i] != '=' {
        key.push(b[i]);
        i += 1;
    }
    if i == b.len() {
        return Err("extension without '='".into());
    }
    i += 1;
    loop {
        if !valid_key(&key) {
            return Err(format!("invalid key {key:?}"));
        }
        // Value: decoded text plus the raw index of the last unescaped space.
        let mut val = String::new();
        let mut last_space: Option<(usize, usize)> = None; // (index in b, len of val at that point)
        let mut next_key: Option<String> = None;
        while i < b.len() {
            match b[i] {
                '\\' => {
                    let e = b.get(i + 1).copied();
                    match e {
                        Some('\\') => val.push('\\'),
                        Some('=') => val.push('='),
                        Some('n') => val.push('\n'),
                        Some('r') => val.push('\r'),
                        other => {
                            return Err(format!("invalid extension escape \\{other:?} in {key}"))
                        }
                    }
                    i += 2;
                }
                '=' => {
                    let Some((sp, vlen)) = last_space else {
                        return Err(format!("unescaped '=' in the value of {key}"));
                    };
                    let k: String = b[sp + 1..i].iter().collect();
                    if !valid_key(&k) {
                        return Err(format!(
                            "unescaped '=' in the value of {key} (bad next key {k:?})"
                        ));
                    }
                    val.truncate(vlen);
                    next_key = Some(k);
                    i += 1;
                    break;
                }
                ' ' => {
                    last_space = Some((i, val.len()));
                    val.push(' ');
                    i += 1;
                }
                c => {
                    val.push(c);
                    i += 1;
                }
            }
        }
        if next_key.is_none() && val.ends_with(' ') {
            return Err(format!("trailing space after the last value ({key})"));
        }
        if val.is_empty() {
            return Err(format!("empty value for {key}"));
        }
        if pairs.iter().any(|(k, _)| *k == key) {
            return Err(format!("duplicate key {key}"));
        }
        pairs.push((key, val));
        match next_key {
            Some(k) => key = k,
            None => return Ok(pairs),
        }
    }
}

/// Decodes one LEEF 1.0 or 2.0 line, strictly.
pub fn decode_leef(line: &str) -> Result<Decoded, String> {
    let (v2, rest) = if let Some(r) = line.strip_prefix("LEEF:2.0|") {
        (true, r)
    } else if let Some(r) = line.strip_prefix("LEEF:1.0|") {
        (false, r)
    } else {
        return Err("no LEEF:1.0| or LEEF:2.0| prefix".into());
    };
    let nfields = if v2 { 5 } else { 4 };
    let mut parts = rest.splitn(nfields + 1, '|');
    let mut header = Vec::new();
    for _ in 0..nfields {
        header.push(parts.next().ok_or("incomplete LEEF header")?.to_string());
    }
    let attrs = parts.next().ok_or("missing '|' after the LEEF header")?;
    let delim = if v2 {
        let d = header.pop().unwrap_or_default();
        let c = if d.chars().count() == 1 {
            d.chars().next().unwrap_or('\t')
        } else {
            let hex = d
                .strip_prefix("0x")
                .or_else(|| d.strip_prefix('x'))
                .ok_or(format!("bad delimiter {d:?}"))?;
            if hex.is_empty() || hex.len() > 4 {
                return Err(format!("bad delimiter {d:?}"));
            }
            char::from_u32(u32::from_str_radix(hex, 16).map_err(|e| e.to_string())?)
                .ok_or("bad delimiter")?
        };
        if c.is_ascii_alphanumeric() || c == '=' || c == '|' || c == ' ' {
            return Err(format!("unusable delimiter {c:?}"));
        }
        c
    } else {
        '\t'
    };
    for h in &header {
        check_line(h, None)?;
        if h.is_empty() || h.starts_with(' ') || h.ends_with(' ') {
            return Err(format!("LEEF header field empty or padded: {h:?}"));
        }
    }
    if header[3].chars().count() > 255 {
        return Err("EventID longer than 255 characters".into());
    }
    check_line(attrs, Some(delim))?;
    let mut pairs: Vec<(String, String)> = Vec::new();
    if attrs.is_empty() {
        return Ok(Decoded { header, pairs });
    }
    for attr in attrs.split(delim) {
        let (k, v) = attr
            .split_once('=')
            .ok_or(format!("attribute without '=': {attr:?}"))?;
        if !valid_key(k) {
            return Err(format!("invalid LEEF key {k:?}"));
        }
        if v.is_empty() || v.ends_with(' ') {
            return Err(format!("empty or padded value for {k}"));
        }
        if pairs.iter().any(|(p, _)| p == k) {
            return Err(format!("duplicate key {k}"));
        }
        if k == "sev" && !matches!(v.parse::<u8>(), Ok(1..=10)) {
            return Err(format!("sev out of 1-10: {v}"));
        }
        pairs.push((k.to_string(), v.to_string()));
    }
    Ok(Decoded { header, pairs })
}

#[test]
fn cef_decoder_accepts_spec_examples() {
    let d = decode_cef(
        r"CEF:0|Ven\|dor|Prod\\uct|1.0|100|a=b name|5|src=10.0.0.1 msg=hello world\=x\nz act=y",
    )
    .unwrap();
    assert_eq!(
        d.header,
        ["Ven|dor", r"Prod\uct", "1.0", "100", "a=b name", "5"]
    );
    assert_eq!(
        d.pairs,
        [
            ("src".into(), "10.0.0.1".into()),
            ("msg".into(), "hello world=x\nz".into()),
            ("act".into(), "y".into())
        ]
    );
    let d = decode_cef("CEF:0|a|b|c|d|e|Unknown|").unwrap();
    assert!(d.pairs.is_empty());
    let d = decode_cef("CEF:0|a|b|c|d|e|3|msg=  lead  src=1.2.3.4").unwrap();
    assert_eq!(d.pairs[0].1, "  lead ");
}

#[test]
fn cef_decoder_rejects_what_strict_receivers_reject() {
    for bad in [
        "CEF:0|a|b|c|d|e|5",              // no 7th pipe
        "CEF:0|a|b|c|d|e|5| src=1.2.3.4", // space after the pipe
        "CEF:0|a\\=|b|c|d|e|5|",          // \= in the header
        "CEF:0|a|b|c|d|e|5|msg=a\\|b",    // \| in the extension
        "CEF:0|a|b|c|d|e|5|msg=a=b",      // unescaped =
        "CEF:0|a|b|c|d|e|5|msg=a\\tb",    // unknown escape
        "CEF:0|a|b|c|d|e|5|msg=x msg=y",  // duplicate
        "CEF:0|a|b|c|d|e|5|src ip=x",     // bad key
        "CEF:0|a|b|c|d|e|5|msg=x ",       // trailing space
        "CEF:0|a|b|c|d|e|11|",            // severity range
        "CEF:0|a|b|c|d|e|5|msg=a\tb",     // raw control
        "CEF:0|a|b|c|d|e|5|msg=",         // empty value
        "CEF:0||b|c|d|e|5|",              // empty header field
    ] {
        assert!(decode_cef(bad).is_err(), "accepted {bad:?}");
    }
}

#[test]
fn leef_decoder_vectors() {
    let d = decode_leef("LEEF:2.0|Microsoft|P|1|E|^|cat=x^sev=5^msg=a=b|c").unwrap();
    assert_eq!(d.header, ["Microsoft", "P", "1", "E"]);
    assert_eq!(d.pairs[2], ("msg".into(), "a=b|c".into()));
    let d = decode_leef("LEEF:2.0|M|P|1|E|x09|a=1\tb=2").unwrap();
    assert_eq!(d.pairs.len(), 2);
    let d = decode_leef("LEEF:1.0|M|P|1|E|a=1\tb=2").unwrap();
    assert_eq!(d.pairs.len(), 2);
    for bad in [
        "LEEF:2.0|M|P|1|E|^|a=1^a=2",
        "LEEF:2.0|M|P|1|E|^|a b=1",
        "LEEF:2.0|M|P|1|E|^|a=1^novalue",
        "LEEF:2.0|M|P|1|E|^|sev=0",
        "LEEF:2.0|M|P|1|E|^|a=1\tb",
        "LEEF:1.0|M|P|1|E",
        "LEEF:2.0|M|P|1|E|ab|a=1",
    ] {
        assert!(decode_leef(bad).is_err(), "accepted {bad:?}");
    }
}
