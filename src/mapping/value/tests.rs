//! Unit tests for value sources, tables, conditions and every conversion.

use super::*;
use serde_json::json;

fn conv(c: Convert, s: &str) -> Option<String> {
    convert(c, s).map(|v| v.as_str().to_string())
}

#[test]
fn timestamps() {
    assert_eq!(
        conv(Convert::EpochMs, "2025-03-04T09:15:22.1234567Z").as_deref(),
        Some("1741079722123")
    );
    assert_eq!(
        conv(Convert::EpochMs, "2025-03-04T09:10:41").as_deref(),
        Some("1741079441000")
    );
    assert_eq!(
        conv(Convert::EpochMs, "2025-03-04T10:10:41+01:00").as_deref(),
        Some("1741079441000")
    );
    assert_eq!(
        conv(Convert::EpochMs, "1741079441").as_deref(),
        Some("1741079441000")
    );
    assert_eq!(
        conv(Convert::EpochMs, "1741079441123").as_deref(),
        Some("1741079441123")
    );
    assert_eq!(conv(Convert::EpochMs, "yesterday"), None);
    assert_eq!(
        conv(Convert::LeefTime, "2025-03-04T09:15:22.1234567Z").as_deref(),
        Some("Mar 04 2025 09:15:22.123 GMT")
    );
}

#[test]
fn addresses() {
    assert_eq!(
        conv(Convert::Ip, " 203.0.113.42 ").as_deref(),
        Some("203.0.113.42")
    );
    assert_eq!(
        conv(Convert::Ip, "203.0.113.42:5050").as_deref(),
        Some("203.0.113.42")
    );
    assert!(matches!(
        convert(Convert::Ip, "2001:DB8::1"),
        Some(Converted::V6(_))
    ));
    assert_eq!(
        conv(Convert::Ip, "[2001:db8::1]:443").as_deref(),
        Some("2001:db8::1")
    );
    assert_eq!(
        conv(Convert::Ip, "::ffff:10.1.2.3").as_deref(),
        Some("10.1.2.3")
    );
    assert_eq!(conv(Convert::Ip, "10.0.0.XXX"), None);
    assert_eq!(
        conv(Convert::Mac, "00-0d-60-af-1b-61").as_deref(),
        Some("00:0D:60:AF:1B:61")
    );
    assert_eq!(
        conv(Convert::Mac, "000d60af1b61").as_deref(),
        Some("00:0D:60:AF:1B:61")
    );
    assert_eq!(conv(Convert::Mac, "00:0d:60:af:1b"), None);
    assert_eq!(conv(Convert::Mac, "000:d6:0a:f1:b6:1"), None);
}

#[test]
fn numbers() {
    assert_eq!(conv(Convert::Int, "0x1a2c").as_deref(), Some("6700"));
    assert_eq!(conv(Convert::Int, "-42").as_deref(), Some("-42"));
    assert_eq!(conv(Convert::Int, "4.5"), None);
    assert_eq!(conv(Convert::Port, "443").as_deref(), Some("443"));
    assert_eq!(conv(Convert::Port, "65536"), None);
    assert_eq!(conv(Convert::Number, "3.5").as_deref(), Some("3.5"));
    assert_eq!(conv(Convert::Number, "NaN"), None);
    assert_eq!(conv(Convert::Bool, "TRUE").as_deref(), Some("true"));
    assert_eq!(conv(Convert::Bool, "yes"), None);
}

#[test]
fn hashes_are_stable_40_hex_digit_ids() {
    // The first 20 bytes of SHA-256("Directory_x") (`sha256sum` agrees).
    assert_eq!(
        conv(Convert::Hash, " Directory_x ").as_deref(),
        Some("0b3f355c5192bca615846211351a755af93cd78a")
    );
    let a = conv(
        Convert::Hash,
        "Directory_7d1e2f30-aa41-4b52-9c63-d7e8f9a0b1c2_KZ1QX_41000001",
    );
    let b = conv(
        Convert::Hash,
        "Directory_7d1e2f30-aa41-4b52-9c63-d7e8f9a0b1c2_KZ1QX_41000002",
    );
    assert_ne!(a, b, "ids that share their first 40 characters stay apart");
    assert_eq!(a.map(|h| h.len()), Some(40));
    assert_eq!(conv(Convert::Hash, "  "), None);
}

#[test]
fn ids_pass_when_they_fit_and_are_hashed_when_longer() {
    let guid = "a1b2c3d4-0000-4000-8000-123456789abc";
    assert_eq!(
        conv(Convert::Id, &format!(" {guid} ")).as_deref(),
        Some(guid)
    );
    let forty = "x".repeat(40);
    assert_eq!(conv(Convert::Id, &forty).as_deref(), Some(forty.as_str()));
    // 41 characters and more: the hash, as `hash` computes it, never a cut id.
    let long = "Directory_7d1e2f30-aa41-4b52-9c63-d7e8f9a0b1c2_KZ1QX_41000001";
    assert_eq!(conv(Convert::Id, long), conv(Convert::Hash, long));
    assert_ne!(
        conv(Convert::Id, long),
        conv(
            Convert::Id,
            "Directory_7d1e2f30-aa41-4b52-9c63-d7e8f9a0b1c2_KZ1QX_41000002"
        )
    );
    let wide = "é".repeat(40);
    assert_eq!(
        conv(Convert::Id, &wide).as_deref(),
        Some(wide.as_str()),
        "characters, not bytes"
    );
    assert_eq!(conv(Convert::Id, "  "), None);
}

#[test]
fn severities() {
    assert_eq!(conv(Convert::Severity, "8").as_deref(), Some("8"));
    assert_eq!(conv(Convert::Severity, "42").as_deref(), Some("10"));
    assert_eq!(conv(Convert::Severity, "-3").as_deref(), Some("0"));
    assert_eq!(
        conv(Convert::Severity, "very-high").as_deref(),
        Some("Very-High")
    );
    assert_eq!(conv(Convert::Severity, "bogus").as_deref(), Some("Unknown"));
    assert_eq!(conv(Convert::LeefSev, "0").as_deref(), Some("1"));
    assert_eq!(conv(Convert::LeefSev, "11").as_deref(), Some("10"));
    assert_eq!(conv(Convert::LeefSev, "1e300").as_deref(), Some("10"));
    assert_eq!(conv(Convert::LeefSev, "High"), None);
}

#[test]
fn sources_and_tables() {
    let ev = json!({"a": "x", "n": 5, "arr": ["T1", null, "T2"], "e": [
        {"type": "host", "name": "h"}, {"type": "IP", "address": ""}, {"type": "ip", "address": "1.2.3.4"}]});
    let p = |s: &str| Path::parse(s).unwrap();
    let spec = |source| ValueSpec {
        source,
        map: Box::new([]),
        otherwise: None,
        default: Some("dflt".into()),
        join: ",".into(),
        pattern: None,
        describe: "t".into(),
    };
    let mut sc = String::new();
    assert_eq!(spec(Source::Path(p("n"))).resolve(&ev, &mut sc), Some("5"));
    assert_eq!(
        spec(Source::Path(p("arr"))).resolve(&ev, &mut sc),
        Some("T1,T2")
    );
    assert_eq!(
        spec(Source::Path(p("zz"))).resolve(&ev, &mut sc),
        Some("dflt")
    );
    let first = spec(Source::First(vec![p("zz"), p("a")].into()));
    assert_eq!(first.resolve(&ev, &mut sc), Some("x"));
    let sel = Select {
        from: p("e"),
        by: p("type"),
        is: vec!["ip".into()].into(),
        get: Some(p("address")),
    };
    assert_eq!(
        spec(Source::Select(Box::new(sel))).resolve(&ev, &mut sc),
        Some("1.2.3.4")
    );
    let tpl = crate::mapping::path::parse_template("{a}-{zz}-{n}").unwrap();
    assert_eq!(
        spec(Source::Template(tpl.into())).resolve(&ev, &mut sc),
        Some("x--5")
    );
    let mut tab = spec(Source::Path(p("a")));
    tab.map = vec![("X".into(), "mapped".into())].into();
    assert_eq!(tab.resolve(&ev, &mut sc), Some("mapped"));
    tab.map = vec![("other".into(), "mapped".into())].into();
    assert_eq!(tab.resolve(&ev, &mut sc), Some("x"));
    tab.otherwise = Some("else".into());
    assert_eq!(tab.resolve(&ev, &mut sc), Some("else"));
}

#[test]
fn conditions() {
    let ev = json!({"c": "Security", "n": 0});
    let c = |t| Cond {
        path: Path::parse("c").unwrap(),
        test: t,
    };
    assert!(c(Test::Is(vec!["security".into()].into())).matches(&ev));
    assert!(!c(Test::Not(vec!["SECURITY".into()].into())).matches(&ev));
    assert!(c(Test::Exists(true)).matches(&ev));
    let n = Cond {
        path: Path::parse("n").unwrap(),
        test: Test::Not(vec!["0".into()].into()),
    };
    assert!(!n.matches(&ev));
    let m = Cond {
        path: Path::parse("missing").unwrap(),
        test: Test::Not(vec!["0".into()].into()),
    };
    assert!(m.matches(&ev));
}

#[test]
fn a_dotted_quad_written_as_given_is_the_canonical_form() {
    let mut cases: Vec<String> = [
        "0.0.0.0",
        "255.255.255.255",
        "10.0.177.12",
        " 10.0.0.1 ",
        "010.0.0.1",
        "1.2.3.04",
        "1.2.3",
        "1.2.3.4.5",
        "256.1.1.1",
        "+1.2.3.4",
        "1.2.3.4:80",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut x = 0x9E37_79B9u32;
    for _ in 0..2000 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        cases.push(std::net::Ipv4Addr::from(x).to_string());
        cases.push(format!(
            "{}.{}.{}.{:03}",
            x >> 24,
            (x >> 16) & 255,
            (x >> 8) & 255,
            x & 255
        ));
    }
    for s in &cases {
        let want = crate::parse::ip(s).map(|ip| ip.to_string());
        assert_eq!(conv(Convert::Ip, s), want, "{s:?}");
    }
}
