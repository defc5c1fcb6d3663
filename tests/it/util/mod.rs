//! Shared helpers for whole-program tests: a real rsyslog receiver on a free loopback port,
//! scratch directories with a generated config, event generators and the siemcast binary.
#![allow(dead_code)]

pub mod golden;

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The rsyslogd binary: `$SIEMCAST_TEST_RSYSLOGD` or the Debian package's.
pub fn rsyslogd() -> PathBuf {
    std::env::var_os("SIEMCAST_TEST_RSYSLOGD")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/sbin/rsyslogd"))
}

/// The lines of a receiver's output file (none while it does not exist).
/// The complete lines of a receiver's output file. A last line without its newline is left
/// out: the receiver is still writing it (rsyslog's omfile writes a long transaction in
/// buffer-sized pieces, so a reader can catch the file in the middle of a line). Every message
/// a receiver takes in, a truncated one too, is written with its newline.
pub fn read_lines(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let complete = text.rfind('\n').map_or("", |end| &text[..end]);
    complete.lines().map(str::to_owned).collect()
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// How a test rsyslog listens.
#[derive(Clone, Copy)]
pub enum Listen<'a> {
    Tcp,
    Udp,
    /// TLS (rsyslog's OpenSSL driver) with the server certificate of `certs`.
    Tls(&'a Certs),
}

/// A real rsyslog daemon listening on 127.0.0.1, writing every message it receives, raw and
/// one per line, to a file. Stopped when dropped.
pub struct Rsyslog {
    child: Child,
    pub port: u16,
    pub out: PathBuf,
    /// (bytes, lines) of `out` already counted.
    seen: std::sync::Mutex<(u64, usize)>,
    _dir: tempfile::TempDir,
}

impl Rsyslog {
    pub fn start_tcp() -> Rsyslog {
        Self::start(Listen::Tcp)
    }

    pub fn start(listen: Listen<'_>) -> Rsyslog {
        let dir = tempfile::tempdir().unwrap();
        let port = match listen {
            Listen::Udp => std::net::UdpSocket::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port(),
            _ => free_port(),
        };
        let out = dir.path().join("received.log");
        let child = Self::spawn(dir.path(), port, listen);
        Rsyslog {
            child,
            port,
            out,
            seen: std::sync::Mutex::new((0, 0)),
            _dir: dir,
        }
    }

    /// Starts again on the same port and output file (a receiver restart).
    pub fn restart(&mut self, listen: Listen<'_>) {
        self.stop();
        self.child = Self::spawn(self._dir.path(), self.port, listen);
    }

    /// Creates the files and picks a port but does not start the daemon (a receiver that is
    /// down when siemcast starts); `restart` starts it.
    pub fn prepared(listen: Listen<'_>) -> Rsyslog {
        let mut rs = Self::start(listen);
        rs.stop();
        rs
    }

    /// Stops the daemon with SIGTERM (it drains what it has read), keeping its files.
    pub fn stop_gracefully(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }

    /// Kills the daemon but keeps its files; `restart` brings it back.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn spawn(dir: &Path, port: u16, listen: Listen<'_>) -> Child {
        let out = dir.join("received.log");
        let conf = dir.join("rsyslog.conf");
        let (global, input) = match listen {
            Listen::Tcp => (
                String::new(),
                format!(
                    "module(load=\"imtcp\")\ninput(type=\"imtcp\" address=\"127.0.0.1\" port=\"{port}\" ruleset=\"in\")"
                ),
            ),
            Listen::Udp => (
                String::new(),
                format!(
                    "module(load=\"imudp\")\ninput(type=\"imudp\" address=\"127.0.0.1\" port=\"{port}\" ruleset=\"in\" rcvbufSize=\"8m\")"
                ),
            ),
            Listen::Tls(certs) => (
                format!(
                    " defaultNetstreamDriver=\"ossl\" defaultNetstreamDriverCAFile=\"{}\" defaultNetstreamDriverCertFile=\"{}\" defaultNetstreamDriverKeyFile=\"{}\"",
                    certs.ca_file().display(),
                    certs.server_cert_file().display(),
                    certs.server_key_file().display()
                ),
                format!(
                    "module(load=\"imtcp\" streamDriver.name=\"ossl\" streamDriver.mode=\"1\" streamDriver.authMode=\"anon\")\ninput(type=\"imtcp\" address=\"127.0.0.1\" port=\"{port}\" ruleset=\"in\")"
                ),
            ),
        };
        std::fs::write(
            &conf,
            format!(
                r#"global(workDirectory="{work}" maxMessageSize="64k"{global})
template(name="raw" type="string" string="%rawmsg%\n")
ruleset(name="in") {{
  action(type="omfile" file="{out}" template="raw" flushOnTXEnd="on" asyncWriting="off")
}}
{input}
"#,
                work = dir.display(),
                out = out.display(),
            ),
        )
        .unwrap();
        let child = Command::new(rsyslogd())
            .arg("-n")
            .arg("-f")
            .arg(&conf)
            .arg("-i")
            .arg(dir.join("rsyslog.pid"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {}: {e} (install rsyslog)",
                    rsyslogd().display()
                )
            });
        match listen {
            Listen::Udp => wait_until(Duration::from_secs(10), "rsyslog to bind UDP", || {
                std::net::UdpSocket::bind(("127.0.0.1", port)).is_err()
            }),
            _ => wait_until(Duration::from_secs(10), "rsyslog to listen", || {
                TcpStream::connect(("127.0.0.1", port)).is_ok()
            }),
        }
        child
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Every line received so far.
    pub fn lines(&self) -> Vec<String> {
        read_lines(&self.out)
    }

    /// Every line received, after a moment for anything still in flight to land.
    pub fn settled_lines(&self) -> Vec<String> {
        pause(Duration::from_millis(300));
        self.lines()
    }

    /// Waits until at least `n` lines have arrived; panics after `timeout`.
    pub fn wait_for_lines(&self, n: usize, timeout: Duration) -> Vec<String> {
        self.wait_for_lines_from(None, n, timeout)
    }

    /// Like `wait_for_lines`, and panics at once if `sender` exits meanwhile.
    pub fn wait_for_lines_from(
        &self,
        mut sender: Option<&mut Child>,
        n: usize,
        timeout: Duration,
    ) -> Vec<String> {
        let start = Instant::now();
        loop {
            if let Some(child) = sender.as_mut() {
                if let Some(status) = child.try_wait().unwrap() {
                    panic!("siemcast exited with {status} before {n} lines arrived");
                }
            }
            let count = self.count_lines();
            if count >= n {
                return self.lines();
            }
            assert!(
                start.elapsed() < timeout,
                "rsyslog received {count} of {n} lines in {timeout:?}"
            );
            pause(Duration::from_millis(50));
        }
    }

    /// Lines received so far, counted incrementally (the file can be large).
    pub fn count_lines(&self) -> usize {
        use std::io::{Read, Seek, SeekFrom};
        let mut seen = self.seen.lock().unwrap();
        let Ok(mut file) = std::fs::File::open(&self.out) else {
            return 0;
        };
        if file.seek(SeekFrom::Start(seen.0)).is_err() {
            return seen.1;
        }
        let mut data = Vec::new();
        let _ = file.read_to_end(&mut data);
        seen.0 += data.len() as u64;
        seen.1 += data.iter().filter(|b| **b == b'\n').count();
        seen.1
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sleeps the calling thread: whole-program tests are synchronous and run no async runtime.
#[allow(clippy::disallowed_methods)]
pub fn pause(d: Duration) {
    std::thread::sleep(d);
}

pub fn wait_until(timeout: Duration, what: &str, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        pause(Duration::from_millis(20));
    }
}

/// The repository's shipped mappings folder for a vendor.
pub fn shipped_mappings(vendor: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("mappings")
        .join(vendor)
}

/// `n` realistic Azure Activity events with ids `ev-00000`…, as NDJSON.
pub fn activity_events(range: std::ops::Range<usize>) -> String {
    let mut out = String::new();
    for i in range {
        let v = serde_json::json!({
            "authorization": {
                "action": "Microsoft.Compute/virtualMachines/write",
                "scope": format!("/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-{}/providers/Microsoft.Compute/virtualMachines/vm-{i}", i % 7)
            },
            "caller": format!("user{}@contoso.com", i % 13),
            "channels": "Operation",
            "claims": {"ipaddr": format!("10.0.{}.{}", i % 250, i % 200), "appid": "04b07795-8ddb-461a-bbee-02f9e1bf7b46"},
            "correlationId": format!("c0ffee00-0000-0000-0000-{i:012}"),
            "description": "",
            "eventDataId": format!("ev-{i:05}"),
            "eventName": {"value": "EndRequest", "localizedValue": "End request"},
            "category": {"value": "Administrative", "localizedValue": "Administrative"},
            "eventTimestamp": "2026-11-01T10:00:00.1234567Z",
            "id": format!("/subscriptions/00000000-0000-0000-0000-000000000001/events/ev-{i:05}"),
            "level": if i % 10 == 0 { "Error" } else { "Informational" },
            "operationId": format!("op-{i}"),
            "operationName": {"value": "Microsoft.Compute/virtualMachines/write", "localizedValue": "Create or Update Virtual Machine"},
            "resourceGroupName": format!("rg-{}", i % 7),
            "resourceProviderName": {"value": "Microsoft.Compute", "localizedValue": "Microsoft.Compute"},
            "resourceType": {"value": "Microsoft.Compute/virtualMachines", "localizedValue": "Microsoft.Compute/virtualMachines"},
            "resourceId": format!("/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-{}/providers/Microsoft.Compute/virtualMachines/vm-{i}", i % 7),
            "status": {"value": "Succeeded", "localizedValue": "Succeeded"},
            "subStatus": {"value": "Created", "localizedValue": "Created (HTTP Status Code: 201)"},
            "submissionTimestamp": "2026-11-01T10:02:00.000Z",
            "subscriptionId": "00000000-0000-0000-0000-000000000001",
            "tenantId": "11111111-1111-1111-1111-111111111111",
            "properties": {"statusCode": "Created", "serviceRequestId": null}
        });
        out.push_str(&v.to_string());
        out.push('\n');
    }
    out
}

/// A scratch directory with an input folder and a config file for `siemcast run`.
pub struct Scratch {
    pub dir: tempfile::TempDir,
}

impl Scratch {
    pub fn new() -> Scratch {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("input")).unwrap();
        Scratch { dir }
    }

    /// Writes Azure Activity events with ids from `range` as `input/events.ndjson`.
    pub fn write_events(&self, range: std::ops::Range<usize>) {
        std::fs::write(self.input().join("events.ndjson"), activity_events(range)).unwrap();
    }

    pub fn input(&self) -> PathBuf {
        self.dir.path().join("input")
    }

    pub fn config(&self) -> PathBuf {
        self.dir.path().join("siemcast.toml")
    }

    /// Writes a config: files source on `input/` (azure_activity) → TCP destination `address`
    /// (LF framing, RFC 3164), with `extra` lines appended to the destination.
    pub fn write_config(&self, address: &str, extra: &str) {
        self.write_config_for(address, "tcp", "lf", "rfc3164", extra);
    }

    /// Like `write_config`, with the destination's transport, framing and syslog header.
    pub fn write_config_for(
        &self,
        address: &str,
        transport: &str,
        framing: &str,
        syslog: &str,
        extra: &str,
    ) {
        let text = format!(
            r#"state_dir = "state"

[metrics]
address = ""

[[source]]
name = "files"
kind = "files"
path = "input"
source_kind = "azure_activity"
interval = "200ms"
batch_size = 500

[[destination]]
name = "rsyslog"
address = "{address}"
transport = "{transport}"
framing = "{framing}"
syslog = "{syslog}"
hostname = "siemcast-test"
mappings = "{mappings}"
{extra}
"#,
            mappings = shipped_mappings("arcsight").display()
        );
        std::fs::write(self.config(), text).unwrap();
    }
}

/// A config that reads `kind` from the API simulator `sim` as source `source` (polling every
/// 300 ms from 40 s back) into the TCP receiver at `address`; `metrics` is the `[metrics]`
/// body and `azure` extra lines of `[azure]` (e.g. a `client_secret_file`).
/// The Office 365 content types an `o365_management` source of [`api_config`] reads.
pub const O365_CONTENT_TYPES: [&str; 2] = ["Audit.SharePoint", "Audit.Exchange"];

pub fn api_config(
    sim: &siemcast::simulator::Simulator,
    source: &str,
    kind: &str,
    address: &str,
    metrics: &str,
    azure: &str,
) -> String {
    let subscriptions = match kind {
        "azure_activity" | "defender_alerts" => sim.config().subscriptions_line(),
        "o365_management" => format!("content_types = {O365_CONTENT_TYPES:?}"),
        _ => String::new(),
    };
    // defender_alerts and entra_risky_users list every object at each poll: no window to set.
    let window = if matches!(kind, "defender_alerts" | "entra_risky_users") {
        ""
    } else {
        "overlap = \"15s\"\nsettle_delay = \"500ms\"\n"
    };
    format!(
        r#"state_dir = "state"

[metrics]
{metrics}

{azure}
[azure.rate_limits]
entra_reports = "50/1s"
graph_incidents = "50/1s"
identity_protection = "50/1s"

[[source]]
name = "{source}"
kind = "{kind}"
{subscriptions}
interval = "300ms"
{window}start_at = "40s"

{destination}"#,
        azure = sim.azure_section(azure),
        destination = rsyslog_destination(address),
    )
}

/// The `[[destination]]` every API test uses: TCP to the rsyslog at `address`, RFC 3164,
/// the shipped ArcSight mappings.
pub fn rsyslog_destination(address: &str) -> String {
    format!(
        "[[destination]]\nname = \"rsyslog\"\naddress = \"{address}\"\ntransport = \"tcp\"\n\
         framing = \"lf\"\nsyslog = \"rfc3164\"\nhostname = \"siemcast-test\"\nmappings = \"{}\"\n",
        shipped_mappings("arcsight").display()
    )
}

/// The `[destination.tls]` lines that trust `certs` and check the name `localhost`.
pub fn tls_section(certs: &Certs) -> String {
    format!(
        "[destination.tls]\nca_file = \"{}\"\nserver_name = \"localhost\"",
        certs.ca_file().display()
    )
}

/// Stops a `siemcast run` with SIGTERM and asserts it exits 0 within 15 s.
pub fn stop(child: &mut Running) {
    signal(child, "TERM");
    let status = wait_exit(child, Duration::from_secs(15));
    assert!(status.success(), "siemcast exited with {status}");
}

/// A `siemcast run` child process, killed when dropped (so a failing test leaves none behind).
pub struct Running(Child);

impl Running {
    /// Takes charge of a child started some other way (custom environment, captured output).
    pub fn new(child: Child) -> Running {
        Running(child)
    }
}

impl std::ops::Deref for Running {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Running {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl From<Child> for Running {
    fn from(child: Child) -> Running {
        Running(child)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// `siemcast run -c CONFIG` as a child process.
pub fn spawn_run(config: &Path) -> Running {
    Running(
        Command::new(env!("CARGO_BIN_EXE_siemcast"))
            .args(["run", "-c"])
            .arg(config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .env("RUST_LOG", "warn")
            .spawn()
            .unwrap(),
    )
}

/// `siemcast run -c CONFIG` with its log (at `info`) written to `log`.
pub fn spawn_run_logged(config: &Path, log: &Path) -> Running {
    let file = std::fs::File::create(log).unwrap();
    Running(
        Command::new(env!("CARGO_BIN_EXE_siemcast"))
            .args(["run", "-c"])
            .arg(config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .spawn()
            .unwrap(),
    )
}

/// Resident memory of a process in KiB (Linux `VmRSS`).
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Sends `signal` (e.g. "TERM", "KILL") to a child.
pub fn signal(child: &Child, signal: &str) {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success(), "kill -{signal} failed");
}

/// Waits for a child to exit, at most `timeout`.
pub fn wait_exit(child: &mut Child, timeout: Duration) -> ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            panic!("siemcast did not exit within {timeout:?}");
        }
        pause(Duration::from_millis(20));
    }
}

/// The value of CEF extension `key` in a line (up to the next unescaped ` key=`).
pub fn cef_value<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let needle = format!(" {key}=");
    let start = line.find(&needle).map(|i| i + needle.len()).or_else(|| {
        let bar = format!("|{key}=");
        line.find(&bar).map(|i| i + bar.len())
    })?;
    let rest = &line[start..];
    let bytes = rest.as_bytes();
    // The value ends before " k=" where k is a run of letters/digits and `=` is unescaped.
    let mut end = rest.len();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' {
            i += 2;
            continue;
        }
        if bytes[i] == b' ' {
            let key_len = bytes[i + 1..]
                .iter()
                .take_while(|b| b.is_ascii_alphanumeric())
                .count();
            if key_len > 0 && bytes.get(i + 1 + key_len) == Some(&b'=') {
                end = i;
                break;
            }
        }
        i += 1;
    }
    Some(&rest[..end])
}

/// A test PKI made with rcgen: a CA, and a server certificate for `localhost` / 127.0.0.1.
pub struct Certs {
    dir: tempfile::TempDir,
    pub ca_params: rcgen::CertificateParams,
    pub ca_key: rcgen::KeyPair,
    pub server_der: Vec<u8>,
}

impl Certs {
    pub fn new() -> Certs {
        Self::with_server(|_| {})
    }

    /// Lets a test change the server certificate's parameters (names, validity).
    pub fn with_server(edit: impl FnOnce(&mut rcgen::CertificateParams)) -> Certs {
        let dir = tempfile::tempdir().unwrap();
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_name = format!("siemcast test CA {}", dir.path().display());
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, ca_name);
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let server_key = rcgen::KeyPair::generate().unwrap();
        let mut params =
            rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
                .unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "localhost");
        edit(&mut params);
        let issuer = rcgen::Issuer::new(ca_params.clone(), &ca_key);
        let server = params.signed_by(&server_key, &issuer).unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
        std::fs::write(dir.path().join("server.pem"), server.pem()).unwrap();
        std::fs::write(dir.path().join("server.key"), server_key.serialize_pem()).unwrap();
        Certs {
            server_der: server.der().to_vec(),
            dir,
            ca_params,
            ca_key,
        }
    }

    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    pub fn server_cert_file(&self) -> PathBuf {
        self.dir.path().join("server.pem")
    }

    pub fn server_key_file(&self) -> PathBuf {
        self.dir.path().join("server.key")
    }

    /// Writes a client certificate signed by the CA; returns (cert file, key file).
    pub fn client(&self, name: &str) -> (PathBuf, PathBuf) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec![name.to_owned()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let issuer = rcgen::Issuer::new(self.ca_params.clone(), &self.ca_key);
        let cert = params.signed_by(&key, &issuer).unwrap();
        let (c, k) = (
            self.dir.path().join(format!("{name}.pem")),
            self.dir.path().join(format!("{name}.key")),
        );
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        (c, k)
    }
}

/// Where `scripts/install-syslog-ng.sh` unpacked syslog-ng (`$SIEMCAST_TEST_SYSLOG_NG_ROOT`).
pub fn syslog_ng_root() -> PathBuf {
    std::env::var_os("SIEMCAST_TEST_SYSLOG_NG_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/peers/syslog-ng"))
}

/// How a test syslog-ng listens.
#[derive(Clone, Copy)]
pub enum NgListen<'a> {
    /// `network()` over TCP: one message per line.
    NetworkTcp,
    /// `syslog()` over TCP: RFC 6587 octet counting.
    SyslogTcp,
    /// `network()` over TLS with the server certificate of `certs`.
    NetworkTls(&'a Certs),
}

/// A real syslog-ng (Debian's, unpacked) on 127.0.0.1 writing each message's text, one per
/// line, to a file. Stopped when dropped.
pub struct SyslogNg {
    child: Child,
    pub port: u16,
    pub out: PathBuf,
    _dir: tempfile::TempDir,
}

impl SyslogNg {
    pub fn start(listen: NgListen<'_>) -> SyslogNg {
        let root = syslog_ng_root();
        let bin = root.join("usr/sbin/syslog-ng");
        assert!(
            bin.exists(),
            "{} is missing: run scripts/install-syslog-ng.sh",
            bin.display()
        );
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let out = dir.path().join("received.log");
        let source = match listen {
            NgListen::NetworkTcp => format!(
                "network(transport(\"tcp\") ip(\"127.0.0.1\") port({port}) flags(no-parse) log-msg-size(65536))"
            ),
            NgListen::SyslogTcp => format!(
                "syslog(transport(\"tcp\") ip(\"127.0.0.1\") port({port}) flags(no-parse) log-msg-size(65536))"
            ),
            NgListen::NetworkTls(certs) => format!(
                "network(transport(\"tls\") ip(\"127.0.0.1\") port({port}) flags(no-parse) log-msg-size(65536) tls(key-file(\"{}\") cert-file(\"{}\") peer-verify(optional-untrusted)))",
                certs.server_key_file().display(),
                certs.server_cert_file().display()
            ),
        };
        let conf = dir.path().join("syslog-ng.conf");
        std::fs::write(
            &conf,
            format!(
                "@version: 3.38\noptions {{ keep-hostname(yes); }};\nsource s_in {{ {source}; }};\ndestination d_out {{ file(\"{}\" template(\"$MSG\\n\")); }};\nlog {{ source(s_in); destination(d_out); }};\n",
                out.display()
            ),
        )
        .unwrap();
        let libs = format!(
            "{}:{}",
            root.join("usr/lib/x86_64-linux-gnu").display(),
            root.join("usr/lib/syslog-ng").display()
        );
        let child = Command::new(&bin)
            .arg("-F")
            .arg("-f")
            .arg(&conf)
            .arg(format!(
                "--module-path={}",
                root.join("usr/lib/syslog-ng/3.38").display()
            ))
            .arg("-R")
            .arg(dir.path().join("persist"))
            .arg("-p")
            .arg(dir.path().join("syslog-ng.pid"))
            .arg("-c")
            .arg(dir.path().join("syslog-ng.ctl"))
            .env("LD_LIBRARY_PATH", libs)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let ng = SyslogNg {
            child,
            port,
            out,
            _dir: dir,
        };
        wait_until(Duration::from_secs(10), "syslog-ng to listen", || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        ng
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn lines(&self) -> Vec<String> {
        read_lines(&self.out)
    }
}

impl Drop for SyslogNg {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 GET to `127.0.0.1:port`: (status code, body).
pub fn http_get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    use std::io::{Read as _, Write as _};
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other(format!("no header end in {response:?}")))?;
    let code = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line in {head:?}")))?;
    Ok((code, body.to_owned()))
}

/// The CEF `externalId` of every line `rs` received (each line must hold a CEF message).
#[allow(dead_code)]
pub fn cef_ids(rs: &Rsyslog) -> Vec<String> {
    rs.lines()
        .iter()
        .map(|line| {
            let cef = &line[line
                .find("CEF:0|")
                .unwrap_or_else(|| panic!("no CEF: {line}"))..];
            cef_value(cef, "externalId")
                .unwrap_or_else(|| panic!("no id: {line}"))
                .to_owned()
        })
        .collect()
}

/// How often each CEF `externalId` arrived at `rsyslog`.
#[allow(dead_code)]
pub fn received_counts(rsyslog: &Rsyslog) -> std::collections::BTreeMap<String, usize> {
    let mut counts = std::collections::BTreeMap::new();
    for line in rsyslog.lines() {
        let id = cef_value(&line, "externalId")
            .expect("externalId")
            .to_owned();
        *counts.entry(id).or_insert(0) += 1;
    }
    counts
}

/// Waits until `ids()` (what a receiver holds) is exactly `want`: fails at once on an id
/// outside it (`outside` names why it should not be there), when `child` exits, or after 90 s
/// with some of the missing ids.
#[allow(dead_code)]
pub fn wait_for_ids(
    child: &mut Running,
    want: &std::collections::BTreeSet<String>,
    name: &str,
    outside: &str,
    mut ids: impl FnMut() -> std::collections::BTreeSet<String>,
) {
    let start = std::time::Instant::now();
    loop {
        let got = ids();
        let extra: Vec<&String> = got.difference(want).collect();
        assert!(
            extra.is_empty(),
            "{name} received ids {outside}: {:?}",
            &extra[..extra.len().min(10)]
        );
        if got.len() == want.len() {
            return;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("siemcast exited with {status}");
        }
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "{name} received {} of {} ids; missing e.g. {:?}",
            got.len(),
            want.len(),
            want.difference(&got).take(5).collect::<Vec<_>>()
        );
        pause(Duration::from_millis(50));
    }
}

/// What `siemcast check -c config` prints, after checking that it passed.
#[allow(dead_code)]
pub fn check_summary(config: &Path) -> String {
    let check = Command::new(env!("CARGO_BIN_EXE_siemcast"))
        .args(["check", "-c"])
        .arg(config)
        .output()
        .unwrap();
    let summary = String::from_utf8_lossy(&check.stdout).into_owned();
    assert!(
        check.status.success(),
        "{summary}{}",
        String::from_utf8_lossy(&check.stderr)
    );
    summary
}

/// What `siemcast send-test -c config` prints, after checking that it succeeded.
#[allow(dead_code)]
pub fn send_test_output(config: &Path) -> String {
    let sent = Command::new(env!("CARGO_BIN_EXE_siemcast"))
        .args(["send-test", "-c"])
        .arg(config)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&sent.stdout).into_owned();
    assert!(
        sent.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&sent.stderr)
    );
    stdout
}

/// A CA (written to `ca.pem` in `dir`; a child trusts it with `SSL_CERT_FILE`) and a
/// certificate for 127.0.0.1 signed by it: the simulator's HTTPS.
pub fn sim_tls(dir: &Path) -> siemcast::simulator::SimTls {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "siemcast simulator test CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    std::fs::write(dir.join("ca.pem"), ca_cert.pem()).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
    let cert = params
        .signed_by(&key, &rcgen::Issuer::new(ca, &ca_key))
        .unwrap();
    siemcast::simulator::SimTls {
        cert_chain: vec![cert.der().to_vec()],
        key: key.serialize_der(),
    }
}
