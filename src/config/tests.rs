use super::*;

/// A config file in a scratch dir that has a `mappings/arcsight/azure_activity.toml`.
pub(super) struct Scratch {
    pub(super) dir: tempfile::TempDir,
}

impl Scratch {
    pub(super) fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let maps = dir.path().join("mappings/arcsight");
        std::fs::create_dir_all(&maps).unwrap();
        let shipped = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/mappings/arcsight/azure_activity.toml"
        );
        std::fs::copy(shipped, maps.join("azure_activity.toml")).unwrap();
        Self { dir }
    }

    pub(super) fn path(&self) -> PathBuf {
        self.dir.path().join("siemcast.toml")
    }

    pub(super) fn load(&self, text: &str) -> Result<Config, ConfigErrors> {
        std::fs::write(self.path(), text).unwrap();
        Config::from_toml(&self.path(), text)
    }

    /// The problems as `LINE:COL: message` (file name stripped).
    pub(super) fn problems(&self, text: &str) -> Vec<String> {
        let errors = self.load(text).expect_err("config should be rejected");
        let prefix = format!("{}:", self.path().display());
        errors
            .0
            .iter()
            .map(|p| {
                p.to_string()
                    .strip_prefix(&prefix)
                    .unwrap_or(&p.to_string())
                    .to_owned()
            })
            .collect()
    }
}

pub(super) const GOOD: &str = r#"state_dir = "state"

[[source]]
name = "logs"
kind = "files"
path = "input"
source_kind = "azure_activity"
interval = "30s"

[[destination]]
name = "arcsight"
address = "127.0.0.1:514"
transport = "tcp"
mappings = "mappings/arcsight"
"#;

#[test]
fn good_config_loads_with_defaults() {
    let s = Scratch::new();
    let cfg = s.load(GOOD).unwrap();
    assert_eq!(
        cfg.sources[0].interval,
        HumanDuration(Duration::from_secs(30))
    );
    assert_eq!(
        cfg.sources[0].lookback,
        HumanDuration(Duration::from_secs(900))
    );
    assert_eq!(cfg.destinations[0].framing, Framing::Lf);
    assert_eq!(cfg.destinations[0].syslog, SyslogFormat::Rfc3164);
    assert_eq!(cfg.destinations[0].facility, Facility(20));
    assert_eq!(cfg.metrics.address, "127.0.0.1:9464");
    assert_eq!(cfg.spool_dir(), s.dir.path().join("state/spool"));
    assert_eq!(cfg.event_kinds(), vec![EventKind::AzureActivity]);
}

#[test]
fn bad_enum_value_names_the_destination_and_the_choices() {
    let s = Scratch::new();
    let text = GOOD.replace("transport = \"tcp\"", "transport = \"tpc\"");
    assert_eq!(
        s.problems(&text),
        ["13:1: destination \"arcsight\": transport \"tpc\" is not one of udp, tcp, tls, hec"]
    );
}

#[test]
fn three_mistakes_are_all_reported_with_locations() {
    let s = Scratch::new();
    let text = GOOD
        .replace("interval = \"30s\"", "interval = \"30 parsecs\"")
        .replace(
            "transport = \"tcp\"",
            "transport = \"tpc\"\nframing = \"crlf\"",
        )
        .replace("[[destination]]", "[[destination]]\nadress = \"x\"");
    let problems = s.problems(&text);
    assert_eq!(
        problems,
        [
            "8:1: source \"logs\": interval \"30 parsecs\" is not a duration; write it like \"60s\", \"15m\" or \"2h\"",
            "11:1: unknown key \"adress\" in destination[0]",
            "14:1: destination \"arcsight\": transport \"tpc\" is not one of udp, tcp, tls, hec",
            "15:1: destination \"arcsight\": framing \"crlf\" is not one of lf, octet-counting",
        ]
    );
}

#[test]
fn missing_required_keys_are_reported_per_entry() {
    let s = Scratch::new();
    let text = r#"
[[source]]
kind = "files"

[[destination]]
name = "q"
"#;
    assert_eq!(
        s.problems(text),
        [
            "2:1: source #1: name is missing",
            "2:1: source #1: path is missing; name the file or directory to read",
            "2:1: source #1: source_kind is missing; it names the kind of the events in the files, one of azure_activity, defender_alerts, graph_alerts, entra_audit, entra_signins, o365_management, eventhubs_activity, eventhubs_entra_audit, eventhubs_entra_signins, eventhubs_diagnostic, eventhubs_entra_provisioning, eventhubs_entra_risk, eventhubs_graph_activity, eventhubs_defender_alerts, eventhubs_defender_xdr, graph_incidents, entra_risk_detections, entra_risky_users, network_flow",
            "5:1: destination \"q\": address is missing; write it as host:port",
            "5:1: destination \"q\": mappings is missing; name the folder of mapping files (e.g. \"mappings/arcsight\"), or set output = \"json\" to send the source records as JSON",
        ]
    );
}

#[test]
fn wrong_types_and_bad_values_are_explained() {
    let s = Scratch::new();
    let text = GOOD
        .replace("interval = \"30s\"", "interval = 30")
        .replace(
            "address = \"127.0.0.1:514\"",
            "address = \"siem.example.com\"\nmax_eps = 0",
        )
        .replace(
            "mappings = \"mappings/arcsight\"",
            "mappings = \"mappings/nowhere\"",
        );
    let problems = s.problems(&text);
    assert_eq!(problems.len(), 4, "{problems:#?}");
    assert_eq!(
        problems[0],
        "8:1: source \"logs\": interval: invalid type: integer `30`, expected a string"
    );
    assert_eq!(
        problems[1],
        "12:1: destination \"arcsight\": address \"siem.example.com\" is not host:port (e.g. siem.example.com:514)"
    );
    assert_eq!(
        problems[2],
        "13:1: destination \"arcsight\": max_eps must be at least 1 (omit it for no limit)"
    );
    assert!(
        problems[3].starts_with("15:1: destination \"arcsight\": mappings folder ")
            && problems[3].ends_with("mappings/nowhere does not exist"),
        "{}",
        problems[3]
    );
}

#[test]
fn duplicate_names_and_misplaced_keys_are_errors() {
    let s = Scratch::new();
    let text = format!(
        "{GOOD}\n[[source]]\nname = \"logs\"\nkind = \"files\"\ntopic = \"x\"\ncontent_types = [\"DLP.All\"]\npath = \"p\"\nsource_kind = \"azure_activity\"\n"
    );
    assert_eq!(
        s.problems(&text),
        [
            "17:1: source \"logs\": another source has the same name",
            "19:1: source \"logs\": topic applies only to kind \"eventhubs\"",
            "20:1: source \"logs\": content_types applies only to kind \"o365_management\"",
        ]
    );
}

const POLLERS: &str = r#"state_dir = "state"

[azure]
tenant_id = "2c6e1f0a-4d3b-4a8c-9b7e-5f1d0c2a3b4e"
client_id = "6f1a2b3c-4d5e-4f60-8a7b-9c0d1e2f3a4b"
client_secret_file = "secret"
login_endpoint = "http://127.0.0.1:9001"
management_endpoint = "http://127.0.0.1:9002"
graph_endpoint = "https://graph.microsoft.us"

[[source]]
name = "activity"
kind = "azure_activity"
subscriptions = ["5f1c2a7e-8d3b-4c6a-9e21-0b7d4f3a9c11"]
start_at = "2h"
overlap = "30m"
settle_delay = "1m"

[[source]]
name = "alerts"
kind = "graph_alerts"
interval = "5m"

[[destination]]
name = "arcsight"
address = "127.0.0.1:514"
mappings = "mappings/arcsight"
"#;

fn poller_scratch() -> Scratch {
    let s = Scratch::new();
    let shipped = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/mappings/arcsight/graph_alerts.toml"
    );
    std::fs::copy(
        shipped,
        s.dir.path().join("mappings/arcsight/graph_alerts.toml"),
    )
    .unwrap();
    s
}

#[test]
fn poller_sources_load_with_their_keys() {
    let s = poller_scratch();
    std::fs::write(s.dir.path().join("secret"), "value\n").unwrap();
    let cfg = s.load(POLLERS).unwrap();
    assert_eq!(
        cfg.sources[0].overlap,
        Some(HumanDuration(Duration::from_secs(1800)))
    );
    assert_eq!(
        cfg.sources[0].settle_delay,
        Some(HumanDuration(Duration::from_secs(60)))
    );
    assert_eq!(
        cfg.event_kinds(),
        [EventKind::AzureActivity, EventKind::GraphAlerts]
    );
}

#[test]
fn poller_problems_are_located() {
    let s = poller_scratch();
    let text = POLLERS
        .replace("2c6e1f0a-4d3b-4a8c-9b7e-5f1d0c2a3b4e", "contoso")
        .replace("client_id = \"6f1a2b3c-4d5e-4f60-8a7b-9c0d1e2f3a4b\"\n", "")
        .replace("http://127.0.0.1:9002", "http://management.example.com")
        .replace(
            "[\"5f1c2a7e-8d3b-4c6a-9e21-0b7d4f3a9c11\"]",
            "[\"5f1c2a7e-8d3b-4c6a-9e21-0b7d4f3a9c11\", \"prod\"]",
        )
        .replace("start_at = \"2h\"", "start_at = \"yesterday\"")
        .replace(
            "interval = \"5m\"",
            "interval = \"5m\"\nsubscriptions = []\ncontent_types = [\"Audit.General\"]",
        );
    let problems = s.problems(&text);
    let dir = s.dir.path().display().to_string();
    assert_eq!(
        problems,
        [
            "3:2: azure: client_id is missing; the Microsoft API sources need the app registration's client_id".to_owned(),
            "4:1: azure: tenant_id \"contoso\" is not a GUID like 2c6e1f0a-4d3b-4a8c-9b7e-5f1d0c2a3b4e".to_owned(),
            format!("5:1: azure: cannot read client_secret_file {dir}/secret: No such file or directory (os error 2)"),
            "7:1: azure: management_endpoint \"http://management.example.com\" uses http://, which is accepted only for loopback hosts (tests); use https://".to_owned(),
            "13:58: source \"activity\": subscription \"prod\" is not a subscription id (a GUID like 5f1c2a7e-8d3b-4c6a-9e21-0b7d4f3a9c11)".to_owned(),
            "14:1: source \"activity\": start_at \"yesterday\" is not \"now\", a duration back like \"2h\", or a time like \"2026-11-01T00:00:00Z\"".to_owned(),
            "22:1: source \"alerts\": subscriptions applies only to kinds \"azure_activity\" and \"defender_alerts\"".to_owned(),
            "23:1: source \"alerts\": content_types applies only to kind \"o365_management\"".to_owned(),
        ]
    );
}

#[test]
fn defender_needs_subscriptions_and_o365_known_content_types() {
    let s = Scratch::new();
    std::fs::write(s.dir.path().join("secret"), "x").unwrap();
    for kind in ["defender_alerts", "graph_alerts", "o365_management"] {
        let shipped = format!(
            "{}/mappings/arcsight/{kind}.toml",
            env!("CARGO_MANIFEST_DIR")
        );
        let to = s.dir.path().join(format!("mappings/arcsight/{kind}.toml"));
        std::fs::copy(shipped, to).unwrap();
    }
    let defender = POLLERS.replace("kind = \"azure_activity\"", "kind = \"defender_alerts\"");
    assert_eq!(
        s.problems(&defender),
        [
            "16:1: source \"activity\": overlap does not apply to kind \"defender_alerts\", which lists every alert at each poll",
            "17:1: source \"activity\": settle_delay does not apply to kind \"defender_alerts\", which lists every alert at each poll",
        ]
    );
    let defender = defender.replace("overlap = \"30m\"\nsettle_delay = \"1m\"\n", "");
    let text = defender.replace(
        "kind = \"graph_alerts\"",
        "kind = \"o365_management\"\ncontent_types = [\"Audit.General\", \"Audit.Teams\"]",
    );
    assert_eq!(
        s.problems(&text),
        ["20:35: source \"alerts\": content type \"Audit.Teams\" is not one of Audit.AzureActiveDirectory, Audit.Exchange, Audit.SharePoint, Audit.General, DLP.All"]
    );
    let text = defender
        .replace(
            "subscriptions = [\"5f1c2a7e-8d3b-4c6a-9e21-0b7d4f3a9c11\"]\n",
            "",
        )
        .replace("kind = \"graph_alerts\"", "kind = \"o365_management\"");
    assert_eq!(
        s.problems(&text),
        [
            "11:1: source \"activity\": subscriptions is missing; list the subscription ids to read, e.g. subscriptions = [\"00000000-0000-0000-0000-000000000000\"], or [\"*\"] for every subscription the identity can read",
            "16:1: source \"alerts\": content_types is missing; list the audit content types to read, e.g. content_types = [\"Audit.AzureActiveDirectory\", \"Audit.Exchange\", \"Audit.SharePoint\", \"Audit.General\", \"DLP.All\"]",
        ]
    );
}

#[test]
fn toml_syntax_errors_have_a_position() {
    let s = Scratch::new();
    let problems = s.problems("state_dir = \"x\"\n[[source]\nname = 1\n");
    assert_eq!(problems.len(), 1);
    assert!(problems[0].starts_with("2:"), "{problems:?}");
    assert!(problems[0].contains("invalid TOML"), "{problems:?}");
}

#[test]
#[allow(clippy::result_large_err)] // figment's Jail API
fn environment_overrides_file_values() {
    let s = Scratch::new();
    std::fs::write(s.path(), GOOD).unwrap();
    figment::Jail::expect_with(|jail| {
        jail.set_env("SIEMCAST_AZURE__TENANT_ID", "tenant-from-env");
        jail.set_env("SIEMCAST_STATE_DIR", "/var/tmp/elsewhere");
        jail.set_env("SIEMCAST_AZURE__CLIENT_SECRET", "s3cret");
        jail.set_env("SIEMCAST_CONFIG", "/ignored/by/the/loader.toml");
        let cfg = match Config::load(&s.path()) {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(cfg.azure.tenant_id.as_deref(), Some("tenant-from-env"));
        assert_eq!(cfg.state_dir, PathBuf::from("/var/tmp/elsewhere"));
        assert_eq!(
            cfg.azure.client_secret.as_ref().map(Secret::expose),
            Some("s3cret")
        );
        let printed = format!("{cfg:?}");
        assert!(
            !printed.contains("s3cret"),
            "secret leaked into Debug output"
        );
        Ok(())
    });
}

#[test]
fn secrets_never_print() {
    let s = Secret::new("hunter2");
    assert_eq!(format!("{s}"), "[redacted]");
    assert!(!format!("{s:?}").contains("hunter2"));
    assert_eq!(s.expose(), "hunter2");
}

#[test]
fn durations_read_human_strings() {
    let d = |s: &str| s.parse::<HumanDuration>().map(|d| d.0);
    assert_eq!(d("60s"), Ok(Duration::from_secs(60)));
    assert_eq!(d("15m"), Ok(Duration::from_secs(900)));
    assert_eq!(d("1h 30m"), Ok(Duration::from_secs(5400)));
    assert_eq!(d("500ms"), Ok(Duration::from_millis(500)));
    assert!(d("-5s").is_err());
    assert!(d("soon")
        .unwrap_err()
        .contains("\"soon\" is not a duration"));
}

#[test]
fn host_port_splitting() {
    assert_eq!(split_host_port("siem:514"), Some(("siem", 514)));
    assert_eq!(split_host_port("[::1]:6514"), Some(("::1", 6514)));
    assert_eq!(split_host_port("siem"), None);
    assert_eq!(split_host_port("siem:0"), None);
    assert_eq!(split_host_port(":514"), None);
}

#[test]
fn rate_limits_and_the_managed_identity_keys_are_checked_where_they_are() {
    let s = Scratch::new();
    let text = GOOD.replace(
        "[[destination]]",
        r#"[azure]
tenant_id = "2c6e1f0a-4d3b-4a8c-9b7e-5f1d0c2a3b4e"
managed_identity = true
imds_endpoint = "http://imds.example.com"

[azure.rate_limits]
entra_reports = "fast"
arm_reads = "100/10s"

[[destination]]"#,
    );
    let problems = s.problems(&text);
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(problems[0].starts_with("13:"), "{problems:?}");
    assert!(problems[0].contains("imds_endpoint"), "{problems:?}");
    assert!(problems[1].starts_with("16:"), "{problems:?}");
    assert!(
        problems[1].contains("\"fast\" is not a rate"),
        "{problems:?}"
    );
    // Fixed: a managed identity needs no client_id; the loopback IMDS of tests is accepted.
    let fixed = text
        .replace("http://imds.example.com", "http://127.0.0.1:9")
        .replace("\"fast\"", "\"5/10s\"");
    let cfg = s.load(&fixed).unwrap();
    assert!(cfg.azure.managed_identity);
    assert_eq!(cfg.azure.rate_limits.arm_reads.map(|r| r.burst), Some(100));
}

/// An `eventhubs` source with `keys`, in a config whose destination has every shipped mapping.
fn eventhubs_config(s: &Scratch, keys: &str) -> String {
    let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/mappings/arcsight");
    for kind in crate::event::EventKind::STREAMED {
        let name = format!("{kind}.toml");
        std::fs::copy(
            Path::new(shipped).join(&name),
            s.dir.path().join("mappings/arcsight").join(&name),
        )
        .unwrap();
    }
    format!(
        "state_dir = \"state\"\n\n[[source]]\nname = \"hub\"\nkind = \"eventhubs\"\n{keys}\n\n[[destination]]\nname = \"arcsight\"\naddress = \"127.0.0.1:514\"\nmappings = \"mappings/arcsight\"\n"
    )
}

#[test]
fn eventhubs_sources_load_with_every_streamed_kind() {
    let s = Scratch::new();
    let secret = "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=listen;SharedAccessKey=c2VjcmV0";
    std::fs::write(s.dir.path().join("cs.txt"), secret).unwrap();
    let text = eventhubs_config(
        &s,
        "bootstrap_servers = \"ns.servicebus.windows.net:9093\"\ntopic = \"insights-activity-logs\"\ngroup = \"siemcast\"\nconnection_string_file = \"cs.txt\"\nsession_timeout = \"45s\"",
    );
    let cfg = s.load(&text).unwrap_or_else(|e| panic!("{e}"));
    let src = &cfg.sources[0];
    assert_eq!(src.security, None);
    assert_eq!(src.session_timeout.map(|d| d.0.as_secs()), Some(45));
    assert_eq!(cfg.event_kinds().len(), 10);
    assert!(cfg.event_kinds().contains(&EventKind::EventHubsActivity));
    assert!(cfg.event_kinds().contains(&EventKind::DefenderAlerts));
}

#[test]
fn eventhubs_mistakes_are_located_and_never_show_the_secret() {
    let s = Scratch::new();
    std::fs::write(s.dir.path().join("cs.txt"), "SharedAccessKey=HUSH-HUSH").unwrap();
    let text = eventhubs_config(
        &s,
        "bootstrap_servers = \"ns.servicebus.windows.net\"\ntopic = \"bad topic!\"\nconnection_string_file = \"cs.txt\"\nsession_timeout = \"2s\"\nsubscriptions = []",
    );
    let problems = s.problems(&text);
    let cs = s.dir.path().join("cs.txt");
    assert_eq!(
        problems,
        [
            "6:1: source \"hub\": bootstrap_servers entry \"ns.servicebus.windows.net\" is not host:port (list several separated by commas)".to_owned(),
            "7:1: source \"hub\": topic \"bad topic!\" is not an event hub name (1-249 letters, digits, '.', '_' or '-')".to_owned(),
            format!("8:1: source \"hub\": connection_string_file {} does not hold an Event Hubs connection string (Endpoint=sb://…;SharedAccessKeyName=…;SharedAccessKey=…)", cs.display()),
            "9:1: source \"hub\": session_timeout must be between 6s and 300s (Event Hubs allows no other)".to_owned(),
            "10:1: source \"hub\": subscriptions does not apply to kind \"eventhubs\" (it reads a stream, not time windows)".to_owned(),
        ]
    );
    assert!(problems.iter().all(|p| !p.contains("HUSH")));

    let text = eventhubs_config(&s, "security = \"sasl\"");
    assert_eq!(
        s.problems(&text),
        [
            "3:1: source \"hub\": bootstrap_servers is missing; for Event Hubs it is \"NAMESPACE.servicebus.windows.net:9093\"",
            "3:1: source \"hub\": topic is missing; name the event hub, e.g. topic = \"insights-activity-logs\"",
            "3:1: source \"hub\": connection_string_file is missing; Event Hubs (security = \"sasl_ssl\") needs a file holding the connection string (Endpoint=sb://…;SharedAccessKeyName=…;SharedAccessKey=…)",
            "6:1: source \"hub\": security \"sasl\" is not one of sasl_ssl, plaintext",
        ]
    );
    let text = eventhubs_config(
        &s,
        "bootstrap_servers = \"127.0.0.1:9092\"\ntopic = \"t\"\nsecurity = \"plaintext\"\nconnection_string_file = \"cs.txt\"",
    );
    assert_eq!(
        s.problems(&text),
        ["9:1: source \"hub\": connection_string_file applies only to security = \"sasl_ssl\""]
    );
}

#[test]
fn max_answer_bytes_has_a_default_and_a_checked_range() {
    let s = Scratch::new();
    let cfg = s.load(GOOD).unwrap();
    assert_eq!(cfg.azure.max_answer_bytes(), 256 << 20);
    let with = |n: &str| {
        GOOD.replace(
            "[[destination]]",
            &format!("[azure]\nmax_answer_bytes = {n}\n\n[[destination]]"),
        )
    };
    let cfg = s.load(&with("33554432")).unwrap();
    assert_eq!(cfg.azure.max_answer_bytes(), 32 << 20);
    for bad in ["1000", "8589934592"] {
        let problems = s.problems(&with(bad));
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].contains("max_answer_bytes")
                && problems[0].contains("between 1048576 (1 MiB) and 4294967296 (4 GiB)"),
            "{problems:?}"
        );
        let line = GOOD
            .lines()
            .position(|l| l.starts_with("[[destination]]"))
            .unwrap()
            + 2;
        assert!(problems[0].starts_with(&format!("{line}:")), "{problems:?}");
    }
    let problems = s.problems(&with("\"256 MiB\""));
    assert!(!problems.is_empty(), "a string is not a byte count");
}

/// Two files sources (Activity Log and Entra audit) and a destination with `dest` lines.
fn routed(dest: &str) -> String {
    format!(
        r#"state_dir = "state"

[[source]]
name = "activity"
kind = "files"
path = "input"
source_kind = "azure_activity"

[[source]]
name = "audit"
kind = "files"
path = "input"
source_kind = "entra_audit"

[[destination]]
name = "arcsight"
address = "127.0.0.1:514"
mappings = "mappings/arcsight"
{dest}
"#
    )
}

#[test]
fn a_destination_needs_only_the_mappings_of_what_it_takes() {
    // The scratch folder has azure_activity.toml only.
    let s = Scratch::new();
    let problems = s.problems(&routed(""));
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].contains("entra_audit.toml"), "{problems:?}");
    for route in [
        "sources = [\"activity\"]",
        "kinds = [\"azure_activity\"]",
        "kinds = [\"azure_*\"]",
        "sources = [\"activity\", \"audit\"]\nkinds = [\"azure_activity\"]",
    ] {
        let cfg = s
            .load(&routed(route))
            .unwrap_or_else(|e| panic!("{route}: {e}"));
        let d = &cfg.destinations[0];
        assert_eq!(
            crate::destinations::route::Route::from_config(d).event_kinds(&cfg),
            vec![EventKind::AzureActivity],
            "{route}"
        );
    }
}

#[test]
fn route_mistakes_are_located_with_a_hint() {
    let s = Scratch::new();
    let problems = s.problems(&routed(
        "sources = [\"activity\", \"activty\", \"nope\"]\nkinds = [\"azure_activity\", \"eventhubs\", \"entra_adit\", \"graph_alerts\", \"files\"]",
    ));
    assert_eq!(
        problems,
        vec![
            "19:24: destination \"arcsight\": sources names \"activty\", which is not a [[source]] of this configuration (did you mean \"activity\"?); the sources are activity, audit",
            "19:35: destination \"arcsight\": sources names \"nope\", which is not a [[source]] of this configuration; the sources are activity, audit",
            "20:28: destination \"arcsight\": kinds: \"eventhubs\" is the source kind of a source that yields several event kinds; write \"eventhubs_*\" for all of them, or name the ones to take",
            "20:41: destination \"arcsight\": kinds: \"entra_adit\" matches no event kind; a kind is one of azure_activity, defender_alerts, graph_alerts, entra_audit, entra_signins, o365_management, eventhubs_activity, eventhubs_entra_audit, eventhubs_entra_signins, eventhubs_diagnostic, eventhubs_entra_provisioning, eventhubs_entra_risk, eventhubs_graph_activity, eventhubs_defender_alerts, eventhubs_defender_xdr, graph_incidents, entra_risk_detections, entra_risky_users, network_flow, or a prefix ending in '*' (e.g. \"eventhubs_*\") (did you mean \"entra_audit\"?)",
            "20:55: destination \"arcsight\": kinds: \"graph_alerts\" matches no event of the sources it takes, which produce azure_activity",
            "20:71: destination \"arcsight\": kinds: \"files\" is the source kind of a source whose events have the kind of its source_kind; name that kind, or route by source name with sources = [...]",
        ]
    );
    let empty = s.problems(&routed("sources = []\nkinds = []"));
    assert_eq!(
        empty,
        vec![
            "19:1: destination \"arcsight\": sources is empty; omit it to take every source",
            "20:1: destination \"arcsight\": kinds is empty; omit it to take every kind",
        ]
    );
}

#[test]
fn identity_mistakes_are_located() {
    let s = Scratch::new();
    let text = routed("sources = [\"activity\"]\nhostname = \"azure {source}\"\napp_name = \"sc-{kindd}\"")
        .replace(
            "source_kind = \"azure_activity\"\n",
            "source_kind = \"azure_activity\"\nhostname = \"{tenant}\"\napp_name = \"siemcast-{source}-{kind}-with-a-long-suffix\"\n",
        );
    assert_eq!(
        s.problems(&text),
        vec![
            "8:1: source \"activity\": hostname: {tenant} needs [azure] tenant_id, which is not set (or the tenant_id of the source's [azure.tenants.NAME])",
            "9:1: source \"activity\" (sent to destination \"arcsight\"): app_name: it expands to \"siemcast-activity-azure_activity-with-a-long-suffix\" for source \"activity\", kind \"azure_activity\", which is not a valid syslog APP-NAME: it is 51 characters long, more than 48",
            "22:1: destination \"arcsight\": hostname: \"azure \" is not a valid syslog HOSTNAME: it contains a space",
            "23:1: destination \"arcsight\": app_name: \"{kindd}\" is not a placeholder; the placeholders are {source}, {kind}, {tenant}",
        ]
    );
    // A fixed hostname is checked too; "-" is syslog's "no value".
    assert_eq!(
        s.problems(&routed("sources = [\"activity\"]\nhostname = \"-\"")),
        vec!["20:1: destination \"arcsight\": hostname: \"-\" alone means \"no value\" in syslog (the NILVALUE); write a name"]
    );
}

/// `output = "json"` needs no mappings folder (the config's dir has none for it), refuses one,
/// and a wrong value lists the choices, each at its line and column.
#[test]
fn json_output_needs_no_mappings_and_is_checked() {
    let s = Scratch::new();
    let json = GOOD.replace(
        "mappings = \"mappings/arcsight\"",
        "output = \"json\"\nsyslog = \"rfc5424\"",
    );
    let config = s.load(&json).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.destinations[0].output, Output::Json);
    assert_eq!(
        s.load(GOOD).unwrap().destinations[0].output,
        Output::Mappings
    );
    let both = GOOD.replace(
        "mappings = \"mappings/arcsight\"",
        "output = \"json\"\nmappings = \"mappings/arcsight\"",
    );
    assert_eq!(
        s.problems(&both),
        ["15:1: destination \"arcsight\": mappings applies only to output = \"mappings\" (CEF/LEEF); with output = \"json\" the source record is sent as it is: remove mappings"]
    );
    let wrong = GOOD.replace(
        "mappings = \"mappings/arcsight\"",
        "output = \"cef\"\nmappings = \"mappings/arcsight\"",
    );
    let problems = s.problems(&wrong);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].starts_with("14:")
            && problems[0].contains("output")
            && problems[0].contains("\"cef\" is not one of mappings, json"),
        "{problems:?}"
    );
}

#[test]
fn storage_archive_keys_are_checked_with_locations() {
    let s = Scratch::new();
    std::fs::write(
        s.dir.path().join("sas"),
        "sv=2022-11-02&ss=b&srt=co&sp=r&se=2030-01-01T00%3A00%3A00Z&sig=c2VjcmV0\n",
    )
    .unwrap();
    let text = r#"state_dir = "state"

[[source]]
name = "archive"
kind = "storage_archive"
account = "Contoso_Logs"
containers = ["AuditEvent", "Bad--Name"]
sas_token_file = "sas"
overlap = "1h"

[[source]]
name = "files"
kind = "files"
path = "in"
source_kind = "azure_activity"
prefix = "resourceId=/"

[[destination]]
name = "d"
address = "127.0.0.1:514"
mappings = "MAPPINGS"
"#
    .replace(
        "MAPPINGS",
        concat!(env!("CARGO_MANIFEST_DIR"), "/mappings/arcsight"),
    );
    let problems = s.problems(&text);
    let sas = s.dir.path().join("sas");
    assert_eq!(
        problems,
        [
            "6:1: source \"archive\": account \"Contoso_Logs\" is not a storage account name (3 to 24 lower-case letters and digits)".to_owned(),
            "7:29: source \"archive\": container \"insights-logs-bad--name\" (from \"Bad--Name\") is not a container name (3 to 63 lower-case letters, digits and single hyphens)".to_owned(),
            format!("8:1: source \"archive\": sas_token_file {}: the SAS allows \"r\"; reading archives needs read and list (sp=rl)", sas.display()),
            "9:1: source \"archive\": overlap does not apply to kind \"storage_archive\" (it reads blobs as they grow, not time windows)".to_owned(),
            "16:1: source \"files\": prefix applies only to kind \"storage_archive\"".to_owned(),
        ]
    );
    // With a SAS that reads and lists, no [azure] section is needed.
    std::fs::write(&sas, "?sv=2022-11-02&sp=rl&sig=c2VjcmV0").unwrap();
    let good = text
        .replace("Contoso_Logs", "contosologs")
        .replace(", \"Bad--Name\"", "")
        .replace("overlap = \"1h\"\n", "")
        .replace("prefix = \"resourceId=/\"\n", "");
    let cfg = s.load(&good).unwrap();
    assert_eq!(
        cfg.sources[0].event_kinds().last(),
        Some(&crate::event::EventKind::NetworkFlow)
    );
}

/// `POLLERS` with the alerts source reading tenant `fabrikam`, declared with `tenant_lines`.
fn with_tenant(tenant_lines: &str) -> String {
    POLLERS
        .replace(
            "kind = \"graph_alerts\"\n",
            "kind = \"graph_alerts\"\ntenant = \"fabrikam\"\n",
        )
        .replace(
            "\n[[source]]\nname = \"activity\"",
            &format!("\n{tenant_lines}\n[[source]]\nname = \"activity\""),
        )
}

#[test]
fn a_named_tenant_borrows_the_default_app_registration() {
    let s = poller_scratch();
    std::fs::write(s.dir.path().join("secret"), "value\n").unwrap();
    let cfg = s
        .load(&with_tenant(
            "[azure.tenants.fabrikam]\ntenant_id = \"7d3e2a1b-0c9f-4e8d-a7b6-c5d4e3f2a1b0\"\nrate_limits = { graph_alerts = \"10/1m\" }\n",
        ))
        .unwrap();
    let alerts = &cfg.sources[1];
    assert_eq!(alerts.tenant_name(), "fabrikam");
    let azure = cfg.azure_for(alerts).unwrap();
    assert_eq!(
        azure.tenant_id.as_deref(),
        Some("7d3e2a1b-0c9f-4e8d-a7b6-c5d4e3f2a1b0")
    );
    assert_eq!(azure.client_id, cfg.azure.client_id);
    assert_eq!(
        azure.graph_endpoint.as_deref(),
        Some("https://graph.microsoft.us")
    );
    assert_eq!(azure.rate_limits.graph_alerts.map(|r| r.burst), Some(10));
    assert_eq!(
        cfg.tenant_id_for(&cfg.sources[0]).as_deref(),
        Some("2c6e1f0a-4d3b-4a8c-9b7e-5f1d0c2a3b4e")
    );
}

#[test]
fn tenant_problems_are_located() {
    let s = poller_scratch();
    std::fs::write(s.dir.path().join("secret"), "value\n").unwrap();
    // An unknown tenant, named where the source names it.
    let text = with_tenant("").replace("tenant = \"fabrikam\"", "tenant = \"fabrikan\"");
    assert_eq!(
        s.problems(&text),
        ["23:1: source \"alerts\": tenant \"fabrikan\" is not configured; add [azure.tenants.fabrikan] or use one of \"default\" ([azure])"]
    );
    // A tenant without its id, one with a bad name, one whose own credential lacks the
    // client id, and "default" taken.
    let text = with_tenant(
        "[azure.tenants.fabrikam]\ncloud = \"public\"\n\n[azure.tenants.\"a b\"]\ntenant_id = \"7d3e2a1b-0c9f-4e8d-a7b6-c5d4e3f2a1b0\"\n\n[azure.tenants.own]\ntenant_id = \"7d3e2a1b-0c9f-4e8d-a7b6-c5d4e3f2a1b0\"\nclient_secret_file = \"secret\"\n\n[azure.tenants.default]\ntenant_id = \"7d3e2a1b-0c9f-4e8d-a7b6-c5d4e3f2a1b0\"\n",
    );
    assert_eq!(
        s.problems(&text),
        [
            "11:16: azure.tenants.fabrikam: tenant_id is missing; the Microsoft API sources need the app registration's tenant_id",
            "14:16: azure.tenants.a b: a tenant name may use only letters, digits, '-' and '_' (at most 64)",
            "17:16: azure.tenants.own: client_id is missing; the Microsoft API sources need the app registration's client_id",
            "21:16: azure.tenants.default: \"default\" is the name of the [azure] tenant itself; choose another name",
        ]
    );
    // Two tables of one name: TOML itself refuses the second, at its line.
    let text = with_tenant(
        "[azure.tenants.fabrikam]\ntenant_id = \"7d3e2a1b-0c9f-4e8d-a7b6-c5d4e3f2a1b0\"\n\n[azure.tenants.fabrikam]\ntenant_id = \"8d3e2a1b-0c9f-4e8d-a7b6-c5d4e3f2a1b0\"\n",
    );
    let problems = s.problems(&text);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].starts_with("14:") && problems[0].contains("fabrikam"),
        "{problems:?}"
    );
    // tenant on a source that reads no Microsoft API.
    let text = GOOD.replace("interval = \"30s\"", "interval = \"30s\"\ntenant = \"x\"");
    assert_eq!(
        s.problems(&text),
        ["9:1: source \"logs\": tenant applies only to the Microsoft API sources (kinds \"azure_activity\", \"defender_alerts\", \"graph_alerts\", \"entra_audit\", \"entra_signins\", \"o365_management\", \"graph_incidents\", \"entra_risk_detections\", \"entra_risky_users\" and \"storage_archive\")"]
    );
}

#[test]
fn the_default_tenant_is_not_needed_when_every_source_names_another() {
    let s = poller_scratch();
    std::fs::write(s.dir.path().join("secret"), "value\n").unwrap();
    // [azure] keeps only the app registration (a multi-tenant app); both sources name tenants.
    let text = with_tenant(
        "[azure.tenants.fabrikam]\ntenant_id = \"7d3e2a1b-0c9f-4e8d-a7b6-c5d4e3f2a1b0\"\n",
    )
    .replace("tenant_id = \"2c6e1f0a-4d3b-4a8c-9b7e-5f1d0c2a3b4e\"\n", "")
    .replace(
        "kind = \"azure_activity\"\n",
        "kind = \"azure_activity\"\ntenant = \"fabrikam\"\n",
    );
    let cfg = s.load(&text).unwrap();
    assert!(cfg.azure.tenant_id.is_none());
    assert!(cfg.sources.iter().all(|s| s.tenant_name() == "fabrikam"));
}
