use super::*;

fn host(text: &str) -> Result<Template, IdentityError> {
    Template::parse(Field::Hostname, text)
}

#[test]
fn templates_expand_their_placeholders() {
    let t = host("azure-{source}.{kind}@{tenant}").unwrap();
    assert_eq!(
        t.expand("activity", EventKind::AzureActivity, Some("t1")),
        "azure-activity.azure_activity@t1"
    );
    let fixed = host("siemcast-01").unwrap();
    assert!(!fixed.has_placeholders());
    assert_eq!(
        fixed.expand("x", EventKind::GraphAlerts, None),
        "siemcast-01"
    );
}

#[test]
fn bad_templates_are_refused_with_the_reason() {
    let unknown = host("az-{sorce}").unwrap_err();
    assert_eq!(
        unknown.to_string(),
        "\"{sorce}\" is not a placeholder; the placeholders are {source}, {kind}, {tenant}"
    );
    assert_eq!(host("az-{source").unwrap_err(), IdentityError::Unclosed);
    assert_eq!(host("az-{{source}").unwrap_err(), IdentityError::Unclosed);
    assert_eq!(host("az-source}").unwrap_err(), IdentityError::StrayBrace);
    assert_eq!(
        host("{}").unwrap_err().to_string(),
        "\"{}\" is not a placeholder; the placeholders are {source}, {kind}, {tenant}"
    );
    assert!(matches!(host("").unwrap_err(), IdentityError::Empty { .. }));
    assert_eq!(host("-").unwrap_err(), IdentityError::Nil);
    let space = host("azure {source}").unwrap_err().to_string();
    assert_eq!(
        space,
        "\"azure \" is not a valid syslog HOSTNAME: it contains a space"
    );
    let long = "h".repeat(256);
    assert!(host(&long)
        .unwrap_err()
        .to_string()
        .contains("256 characters long, more than 255"));
    assert!(host(&"h".repeat(255)).is_ok());
    let app = Template::parse(Field::AppName, &"a".repeat(49)).unwrap_err();
    assert!(app.to_string().contains("syslog APP-NAME"), "{app}");
}

#[test]
fn hostile_characters_never_reach_the_header() {
    // What a hostname or a source name could smuggle: a new line (a second syslog message),
    // a space (a new header field), NUL, DEL, non-ASCII.
    for bad in [
        "a\nb",
        "a b",
        "a\rb",
        "a\0b",
        "a\u{7f}b",
        "hôte",
        "a\tb",
        "a\u{2028}b",
    ] {
        assert!(host(bad).is_err(), "{bad:?} accepted");
        assert!(check_value(Field::Hostname, bad, None).is_err(), "{bad:?}");
        let clean = sanitize(Field::Hostname, bad);
        assert!(
            check_value(Field::Hostname, &clean, None).is_ok(),
            "{clean:?}"
        );
        assert!(
            clean.starts_with('a') && clean.ends_with('b') || clean == "h_te",
            "{clean:?}"
        );
    }
    // A template with valid text still expands a hostile source name into an invalid value,
    // which expand_checked refuses and sanitize repairs.
    let t = host("az-{source}").unwrap();
    let e = t
        .expand_checked("evil\nname", EventKind::AzureActivity, None)
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "it expands to \"az-evil\\nname\" for source \"evil\nname\", kind \"azure_activity\", which is not a valid syslog HOSTNAME: it contains the control character '\\n'"
    );
    assert_eq!(sanitize(Field::Hostname, "az-evil\nname"), "az-evil_name");
    assert_eq!(sanitize(Field::AppName, &"x".repeat(60)).len(), 48);
    assert_eq!(sanitize(Field::Hostname, ""), "siemcast");
    assert_eq!(sanitize(Field::Hostname, "-"), "siemcast");
    // The longest event kind fits APP-NAME with a short prefix.
    let longest = EventKind::ALL
        .iter()
        .map(|k| k.as_str().len())
        .max()
        .unwrap();
    assert!(longest + "siemcast-".len() <= 48);
}

fn config(text: &str) -> Config {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("siemcast.toml");
    Config::from_toml(&path, text).unwrap_or_else(|e| panic!("{e}"))
}

fn two_sources(dest: &str, tenant: &str) -> String {
    format!(
        r#"state_dir = "state"
{tenant}
[[source]]
name = "activity"
kind = "files"
path = "in"
source_kind = "azure_activity"
hostname = "azure-activity"
[[source]]
name = "hub"
kind = "files"
path = "in"
source_kind = "eventhubs_entra_signins"
[[destination]]
name = "d"
address = "127.0.0.1:514"
syslog = "rfc5424"
mappings = "{maps}"
{dest}
"#,
        maps = concat!(env!("CARGO_MANIFEST_DIR"), "/mappings/arcsight"),
    )
}

#[test]
fn precedence_is_source_then_destination_then_machine() {
    let tail = |i: &Identity| {
        format!(" {} {} ", i.hostname, i.app_name)
            .into_bytes()
            .into()
    };
    let all = |_: &str, _: EventKind| true;
    let text = |c: &Config| {
        let ids = Identities::build(&c.destinations[0], c, all, tail);
        let get = |s: &str, k| String::from_utf8(ids.tail(s, k, tail).into_owned()).unwrap();
        (
            get("activity", EventKind::AzureActivity),
            get("hub", EventKind::EventHubsEntraSignins),
            get("gone", EventKind::GraphAlerts),
            get("bad name\n", EventKind::GraphAlerts),
        )
    };
    let c = config(&two_sources(
        "hostname = \"{kind}.{source}\"\napp_name = \"sc-{source}\"",
        "",
    ));
    assert_eq!(
        text(&c),
        (
            " azure-activity sc-activity ".to_owned(),
            " eventhubs_entra_signins.hub sc-hub ".to_owned(),
            " graph_alerts.gone sc-gone ".to_owned(),
            " graph_alerts.bad_name_ sc-bad_name_ ".to_owned(),
        )
    );
    let c = config(&two_sources("", ""));
    let machine = crate::config::local_hostname();
    assert_eq!(text(&c).1, format!(" {machine} siemcast "));
    assert_eq!(text(&c).0, " azure-activity siemcast ");
}

#[test]
fn prepared_identities_are_shared_and_only_for_what_the_destination_takes() {
    let c = config(&two_sources("hostname = \"siem\"", ""));
    let tail = |i: &Identity| i.hostname.clone().into_bytes().into();
    let ids = Identities::build(&c.destinations[0], &c, |s, _| s == "hub", tail);
    assert_eq!(ids.describe().len(), 1);
    assert_eq!(ids.describe()[0].0, "hub");
    assert_eq!(ids.tails.len(), 1);
    // Not prepared for activity: made from the destination's template on demand.
    assert!(matches!(
        ids.tail("activity", EventKind::AzureActivity, tail),
        Cow::Owned(_)
    ));
    assert!(matches!(
        ids.tail("hub", EventKind::EventHubsEntraSignins, tail),
        Cow::Borrowed(b"siem")
    ));
}

#[test]
fn tenant_is_the_configured_tenant_id_and_refused_without_one() {
    let with = config(&two_sources(
        "hostname = \"{tenant}-{source}\"",
        "[azure]\ntenant_id = \"2c6e1f0a-4d3b-4a8c-9b7e-5f1d0c2a3b4e\"",
    ));
    let ids = Identities::build(
        &with.destinations[0],
        &with,
        |_, _| true,
        |i| i.hostname.clone().into_bytes().into(),
    );
    assert_eq!(
        &*ids.tail("hub", EventKind::EventHubsEntraSignins, |_| unreachable!()),
        b"2c6e1f0a-4d3b-4a8c-9b7e-5f1d0c2a3b4e-hub"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("siemcast.toml");
    let text = two_sources("hostname = \"{tenant}-{source}\"", "");
    let err = Config::from_toml(&path, &text).unwrap_err().to_string();
    assert!(
        err.contains(":19:1: destination \"d\": hostname: {tenant} needs [azure] tenant_id, which is not set (or the tenant_id of the source's [azure.tenants.NAME])"),
        "{err}"
    );
}
