//! The Azure client through a real HTTP proxy: tinyproxy (Debian's package), started by each
//! test on a free loopback port with its own config, in front of the simulator's HTTPS APIs.
//! Token and API requests go through it as CONNECT tunnels (from `[azure] proxy`, with Basic
//! credentials from a file, or from `HTTPS_PROXY`), `no_proxy` / `NO_PROXY` bypass it, IMDS
//! never uses it, and its refusals (407, nobody listening) are told in words in the log and in
//! `/healthz` without a password ever shown.

use crate::util;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use siemcast::simulator::{BackgroundSimulator, Service, SimConfig};
use util::*;

/// A tinyproxy in the foreground on 127.0.0.1, logging each request it is asked to forward.
struct Tinyproxy {
    child: Child,
    port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Tinyproxy {
    /// With `BasicAuth user password` when `auth` is given.
    fn start(auth: Option<(&str, &str)>) -> Tinyproxy {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let log = dir.path().join("tinyproxy.log");
        let conf = dir.path().join("tinyproxy.conf");
        // No ConnectPort line: CONNECT is allowed to every port (the simulator's are not 443).
        let mut text = format!(
            "Port {port}\nListen 127.0.0.1\nTimeout 30\nLogFile \"{}\"\nLogLevel Connect\nMaxClients 50\nAllow 127.0.0.1\n",
            log.display()
        );
        if let Some((user, password)) = auth {
            text.push_str(&format!("BasicAuth {user} {password}\n"));
        }
        std::fs::write(&conf, text).unwrap();
        let child = Command::new("/usr/bin/tinyproxy")
            .arg("-d")
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("tinyproxy (Debian package tinyproxy) is installed");
        wait_until(Duration::from_secs(10), "tinyproxy listening", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        Tinyproxy {
            child,
            port,
            log,
            _dir: dir,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The request line of every request it was asked to forward (`CONNECT host:port HTTP/1.1`).
    fn requests(&self) -> Vec<String> {
        read_lines(&self.log)
            .iter()
            .filter_map(|l| {
                Some(
                    l.split_once("Request (file descriptor ")?
                        .1
                        .split_once("): ")?
                        .1
                        .to_owned(),
                )
            })
            .collect()
    }
}

impl Drop for Tinyproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `CONNECT 127.0.0.1:PORT` of a service of the simulator.
fn connect_line(sim: &BackgroundSimulator, service: Service) -> String {
    let endpoint = sim.endpoint(service);
    let host_port = endpoint
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    format!("CONNECT {host_port} HTTP/1.1")
}

/// The proxy variables a test must not inherit.
const PROXY_VARS: [&str; 8] = [
    "HTTPS_PROXY",
    "https_proxy",
    "ALL_PROXY",
    "all_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "NO_PROXY",
    "no_proxy",
];

/// A simulator of 30 activity records per subscription over HTTPS, its CA in `dir/ca.pem`.
fn simulator(dir: &Path) -> BackgroundSimulator {
    let mut cfg = SimConfig::around_now(Duration::from_secs(20), Duration::ZERO, 30);
    cfg.tls = Some(sim_tls(dir));
    BackgroundSimulator::start(cfg).unwrap()
}

/// `siemcast run` of an `azure_activity` source reading `sim` into `rsyslog`, with `azure`
/// lines in `[azure]` (after the client secret's file, unless they set a managed identity) and `env` on top of an environment
/// without proxy variables; `/healthz` names a source late by 1 s. (child, metrics port, log)
fn run(
    scratch: &Scratch,
    sim: &BackgroundSimulator,
    rsyslog: &Rsyslog,
    azure: &str,
    env: &[(&str, &str)],
) -> (Running, u16, PathBuf) {
    let dir = scratch.dir.path();
    std::fs::write(dir.join("client-secret"), &sim.config().client_secret).unwrap();
    let metrics = free_port();
    let mut config = api_config(
        sim,
        "activity",
        "azure_activity",
        &rsyslog.address(),
        &format!("address = \"127.0.0.1:{metrics}\"\npoll_grace = \"1s\""),
        &format!("client_secret_file = \"client-secret\"\n{azure}"),
    );
    if azure.contains("managed_identity = true") {
        // The identity's own client_id replaces the app's, and its token comes from IMDS.
        config = config
            .replace(&format!("client_id = \"{}\"\n", sim.config().client_id), "")
            .replace("client_secret_file = \"client-secret\"\n", "");
    }
    std::fs::write(scratch.config(), config).unwrap();
    let log = dir.join("siemcast.log");
    let mut command = Command::new(env!("CARGO_BIN_EXE_siemcast"));
    command
        .args(["run", "-c"])
        .arg(scratch.config())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .env("RUST_LOG", "siemcast=info")
        .env("NO_COLOR", "1")
        .env("SSL_CERT_FILE", dir.join("ca.pem"))
        .env_remove("SSL_CERT_DIR")
        .env_remove("SIEMCAST_AZURE__CLIENT_SECRET");
    for var in PROXY_VARS {
        command.env_remove(var);
    }
    command.envs(env.iter().copied());
    (Running::new(command.spawn().unwrap()), metrics, log)
}

/// Every activity record's id arrives at `rsyslog`, once.
fn every_record_arrives(sim: &BackgroundSimulator, rsyslog: &Rsyslog, child: &mut Running) {
    let want: BTreeSet<String> = sim
        .activity_records()
        .iter()
        .map(|r| r["eventDataId"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(want.len(), 30);
    wait_for_ids(child, &want, "rsyslog", "the simulator never had", || {
        cef_ids(rsyslog).into_iter().collect()
    });
}

/// What `siemcast check` prints for the current config, with `env` (and no other proxy).
fn check_output(scratch: &Scratch, env: &[(&str, &str)]) -> String {
    let mut command = Command::new(env!("CARGO_BIN_EXE_siemcast"));
    command.args(["check", "-c"]).arg(scratch.config());
    for var in PROXY_VARS {
        command.env_remove(var);
    }
    let out = command.envs(env.iter().copied()).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// Waits until `/healthz` answers 503 with `words`; returns its body.
fn healthz_says(port: u16, words: &str, child: &mut Running, log: &Path) -> String {
    let start = std::time::Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "siemcast exited ({status}); its log:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        let answer = http_get(port, "/healthz");
        if let Ok((503, body)) = &answer {
            if body.contains(words) {
                return body.clone();
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "/healthz does not say {words:?}: {answer:?}; the log:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        pause(Duration::from_millis(100));
    }
}

#[test]
fn token_and_api_requests_tunnel_through_the_configured_proxy_with_its_credentials() {
    let proxy = Tinyproxy::start(Some(("siemcast", "pr0xy-s3cret")));
    let scratch = Scratch::new();
    let sim = simulator(scratch.dir.path());
    let rsyslog = Rsyslog::start_tcp();
    std::fs::write(
        scratch.dir.path().join("proxy-credentials"),
        "siemcast:pr0xy-s3cret\n",
    )
    .unwrap();
    let azure = format!(
        "proxy = \"{}\"\nproxy_credentials_file = \"proxy-credentials\"",
        proxy.url()
    );
    // HTTPS_PROXY in the environment is ignored: the file names the proxy.
    let env = [("HTTPS_PROXY", "http://127.0.0.1:9")];
    let (mut child, _, log) = run(&scratch, &sim, &rsyslog, &azure, &env);
    let summary = check_output(&scratch, &env);
    assert!(
        summary.contains(&format!(
            "proxy: {} (from [azure] proxy), Basic authentication from proxy_credentials_file, for every https:// request",
            proxy.url()
        )),
        "{summary}"
    );
    every_record_arrives(&sim, &rsyslog, &mut child);
    stop(&mut child);
    let requests = proxy.requests();
    for service in [Service::Login, Service::Management] {
        let line = connect_line(&sim, service);
        assert!(requests.contains(&line), "no {line} in {requests:?}");
    }
    // Every request went through it: one tunnel per connection, none direct (the simulator's
    // token and activity requests are all on the two tunnelled ports).
    assert!(
        requests.iter().all(|r| r.starts_with("CONNECT 127.0.0.1:")),
        "{requests:?}"
    );
    let text = std::fs::read_to_string(&log).unwrap();
    // The log says which proxy the client uses, as check does.
    assert!(
        text.lines().any(|l| l.contains("Azure HTTP client ready.")
            && l.contains(&format!("proxy={} (from [azure] proxy)", proxy.url()))),
        "{text}"
    );
    assert!(!text.contains("pr0xy-s3cret") && !summary.contains("pr0xy-s3cret"));
    eprintln!(
        "tinyproxy forwarded {} tunnels: {requests:?}",
        requests.len()
    );
}

#[test]
fn missing_or_wrong_proxy_credentials_are_told_in_words_and_never_shown() {
    let proxy = Tinyproxy::start(Some(("siemcast", "right-one")));
    let scratch = Scratch::new();
    let sim = simulator(scratch.dir.path());
    let rsyslog = Rsyslog::start_tcp();
    // No credentials: tinyproxy answers CONNECT with 407.
    let keys = format!("proxy = \"{}\"", proxy.url());
    let (mut child, metrics, log) = run(&scratch, &sim, &rsyslog, &keys, &[]);
    let words = format!(
        "the proxy at {} answered 407 Proxy Authentication Required; it wants a user and password: put user:password in a file and name it with [azure] proxy_credentials_file",
        proxy.url()
    );
    let body = healthz_says(metrics, &words, &mut child, &log);
    assert!(body.contains("source \"activity\""), "{body}");
    stop(&mut child);
    assert!(std::fs::read_to_string(&log).unwrap().contains(&words));

    // A wrong password: tinyproxy answers 401, which reqwest reports without its status.
    std::fs::write(
        scratch.dir.path().join("proxy-credentials"),
        "siemcast:wr0ng-pa55\n",
    )
    .unwrap();
    let keys = format!("{keys}\nproxy_credentials_file = \"proxy-credentials\"");
    let (mut child, metrics, log) = run(&scratch, &sim, &rsyslog, &keys, &[]);
    let words = "if it is a wrong user or password (some proxies, e.g. tinyproxy, answer 401 then), check proxy_credentials_file";
    let body = healthz_says(metrics, words, &mut child, &log);
    assert!(
        body.contains(&format!(
            "the proxy at {} refused to tunnel to",
            proxy.url()
        )),
        "{body}"
    );
    stop(&mut child);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains(words), "{text}");
    assert!(
        !text.contains("wr0ng-pa55") && !body.contains("wr0ng-pa55"),
        "the password is shown"
    );
    // Nothing got past the proxy.
    assert_eq!(sim.tokens_issued(), 0);
    assert!(rsyslog.lines().is_empty());
}

#[test]
fn https_proxy_from_the_environment_is_used_and_no_proxy_bypasses_it() {
    let proxy = Tinyproxy::start(None);
    let scratch = Scratch::new();
    let sim = simulator(scratch.dir.path());
    let rsyslog = Rsyslog::start_tcp();
    let env = [("HTTPS_PROXY", proxy.url())];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (mut child, _, _) = run(&scratch, &sim, &rsyslog, "", &env);
    let summary = check_output(&scratch, &env);
    assert!(
        summary.contains(&format!("proxy: {} (from HTTPS_PROXY)", proxy.url())),
        "{summary}"
    );
    every_record_arrives(&sim, &rsyslog, &mut child);
    stop(&mut child);
    let through = proxy.requests();
    assert!(
        through.contains(&connect_line(&sim, Service::Login)),
        "{through:?}"
    );
    assert!(
        through.contains(&connect_line(&sim, Service::Management)),
        "{through:?}"
    );

    // The same with NO_PROXY naming the simulator's host: nothing more through the proxy.
    let scratch = Scratch::new();
    let sim = simulator(scratch.dir.path());
    let rsyslog = Rsyslog::start_tcp();
    let mut env = env.clone();
    env.push(("NO_PROXY", "localhost, 127.0.0.0/8"));
    let (mut child, _, _) = run(&scratch, &sim, &rsyslog, "", &env);
    let summary = check_output(&scratch, &env);
    assert!(
        summary.contains("except for localhost, 127.0.0.0/8 (NO_PROXY)"),
        "{summary}"
    );
    every_record_arrives(&sim, &rsyslog, &mut child);
    stop(&mut child);
    assert_eq!(
        proxy.requests(),
        through,
        "a request went through the proxy despite NO_PROXY"
    );
}

#[test]
fn managed_identity_requests_never_go_through_a_proxy() {
    let proxy = Tinyproxy::start(None);
    let scratch = Scratch::new();
    let sim = simulator(scratch.dir.path());
    let rsyslog = Rsyslog::start_tcp();
    let url = proxy.url();
    // Every variable a client could take a proxy from.
    let env: Vec<(&str, &str)> = PROXY_VARS[..6].iter().map(|v| (*v, url.as_str())).collect();
    let azure = format!(
        "managed_identity = true\nclient_id = \"{}\"\nimds_endpoint = \"{}\"",
        sim.config().user_assigned_client_id,
        sim.endpoint(Service::Imds),
    );
    let (mut child, _, _) = run(&scratch, &sim, &rsyslog, &azure, &env);
    let summary = check_output(&scratch, &env);
    assert!(
        summary.contains("managed identity (user-assigned"),
        "{summary}"
    );
    assert!(
        summary.contains("IMDS is always reached directly, never through a proxy"),
        "{summary}"
    );
    every_record_arrives(&sim, &rsyslog, &mut child);
    stop(&mut child);
    let imds = sim.endpoint(Service::Imds);
    let imds = imds.trim_start_matches("http://");
    let requests = proxy.requests();
    assert!(
        requests.iter().all(|r| !r.contains(imds)),
        "IMDS through the proxy: {requests:?}"
    );
    // The API requests did go through it, and IMDS did issue the tokens.
    assert!(
        requests.contains(&connect_line(&sim, Service::Management)),
        "{requests:?}"
    );
    assert!(sim
        .requests()
        .iter()
        .any(|r| r.service == Service::Imds && r.status == 200));
}

#[test]
fn an_unreachable_proxy_is_named_in_the_log_and_healthz_and_nothing_crashes() {
    let scratch = Scratch::new();
    let sim = simulator(scratch.dir.path());
    let rsyslog = Rsyslog::start_tcp();
    let nobody = format!("127.0.0.1:{}", free_port());
    let (mut child, metrics, log) = run(
        &scratch,
        &sim,
        &rsyslog,
        &format!("proxy = \"http://{nobody}\""),
        &[],
    );
    let words =
        format!("cannot connect to the proxy at {nobody} (http://{nobody}, from [azure] proxy)");
    let body = healthz_says(metrics, &words, &mut child, &log);
    assert!(body.contains("Connection refused"), "{body}");
    stop(&mut child);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.lines()
            .any(|l| l.contains("Cannot get a token; retrying.") && l.contains(&words)),
        "{text}"
    );
}
