//! TLS delivery: a real rsyslog TLS listener receives every event once; certificate and
//! handshake problems against a real `openssl s_server` give messages that say what to fix.

use crate::util;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use siemcast::config::{TlsConfig, Transport};
use siemcast::destinations::tls::TlsSetup;
use siemcast::destinations::transport::Connection;
use util::*;

#[test]
fn tls_to_rsyslog_delivers_every_event_exactly_once() {
    let certs = Certs::new();
    let rsyslog = Rsyslog::start(Listen::Tls(&certs));
    let scratch = Scratch::new();
    scratch.write_events(0..5000);
    scratch.write_config_for(
        &rsyslog.address(),
        "tls",
        "octet-counting",
        "rfc3164",
        &tls_section(&certs),
    );

    let mut child = spawn_run(&scratch.config());
    rsyslog.wait_for_lines_from(Some(&mut *child), 5000, Duration::from_secs(60));
    stop(&mut child);
    let lines = rsyslog.settled_lines();
    assert_eq!(lines.len(), 5000, "duplicates or extra lines arrived");
    let ids: BTreeSet<String> = lines
        .iter()
        .map(|l| {
            assert!(
                l.starts_with("<166>"),
                "octet-counted frame not split right: {l}"
            );
            cef_value(l, "externalId").unwrap().to_owned()
        })
        .collect();
    assert_eq!(ids.len(), 5000);
}

/// `openssl s_server` on a free loopback port; killed when dropped.
struct OpensslServer {
    child: Child,
    port: u16,
}

impl OpensslServer {
    fn start(cert: &Path, key: &Path, extra: &[&str]) -> OpensslServer {
        let port = free_port();
        let child = Command::new("openssl")
            .args(["s_server", "-quiet", "-accept"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("-cert")
            .arg(cert)
            .arg("-key")
            .arg(key)
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("openssl is installed");
        wait_until(
            Duration::from_secs(10),
            "openssl s_server to listen",
            || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(),
        );
        OpensslServer { child, port }
    }
}

impl Drop for OpensslServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Connects with `tls` settings to the server and returns the error message, if any.
fn handshake(server: &OpensslServer, tls: TlsConfig) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let setup = TlsSetup::from_config(&tls, "127.0.0.1", |p| p.to_owned())
            .map_err(|e| e.to_string())?;
        let address = format!("127.0.0.1:{}", server.port);
        let mut conn = Connection::connect(Transport::Tls, &address, Some(&setup))
            .await
            .map_err(|e| e.to_string())?;
        conn.send(b"hello\n", &[6])
            .await
            .map_err(|e| e.to_string())?;
        Ok(())
    })
}

fn trusting(certs: &Certs) -> TlsConfig {
    TlsConfig {
        ca_file: Some(certs.ca_file()),
        ..TlsConfig::default()
    }
}

#[test]
fn a_good_certificate_is_accepted() {
    let certs = Certs::new();
    let server = OpensslServer::start(&certs.server_cert_file(), &certs.server_key_file(), &[]);
    handshake(&server, trusting(&certs)).unwrap();
}

#[test]
fn unknown_ca_is_explained() {
    let certs = Certs::new();
    let other = Certs::new();
    let server = OpensslServer::start(&certs.server_cert_file(), &certs.server_key_file(), &[]);
    let err = handshake(&server, trusting(&other)).unwrap_err();
    assert!(err.contains("is not signed by a CA in ca_file"), "{err}");
    assert!(
        err.contains(&other.ca_file().display().to_string()),
        "{err}"
    );
}

#[test]
fn name_mismatch_is_explained() {
    let certs = Certs::with_server(|p| {
        p.subject_alt_names = vec![rcgen::SanType::DnsName(
            "siem.example.com".try_into().unwrap(),
        )];
    });
    let server = OpensslServer::start(&certs.server_cert_file(), &certs.server_key_file(), &[]);
    let err = handshake(&server, trusting(&certs)).unwrap_err();
    assert!(
        err.contains("not valid for the name \"127.0.0.1\""),
        "{err}"
    );
    assert!(err.contains("tls.server_name"), "{err}");
    // Naming the certificate's name fixes it.
    let fixed = TlsConfig {
        server_name: Some("siem.example.com".into()),
        ..trusting(&certs)
    };
    handshake(&server, fixed).unwrap();
}

#[test]
fn expired_certificate_is_explained() {
    let certs = Certs::with_server(|p| {
        p.not_before = rcgen::date_time_ymd(2020, 1, 1);
        p.not_after = rcgen::date_time_ymd(2021, 1, 1);
    });
    let server = OpensslServer::start(&certs.server_cert_file(), &certs.server_key_file(), &[]);
    let err = handshake(&server, trusting(&certs)).unwrap_err();
    assert!(err.contains("has expired"), "{err}");
}

#[test]
fn no_shared_cipher_suite_is_explained() {
    let certs = Certs::new();
    // An old listener: TLS 1.2 with RSA key exchange and CBC only.
    let server = OpensslServer::start(
        &certs.server_cert_file(),
        &certs.server_key_file(),
        &["-tls1_2", "-cipher", "AES128-SHA:@SECLEVEL=0"],
    );
    let err = handshake(&server, trusting(&certs)).unwrap_err();
    assert!(
        err.contains("shares no TLS version or cipher suite"),
        "{err}"
    );
    assert!(err.contains("RFC 9662"), "{err}");
}

#[test]
fn pinned_fingerprint_accepts_only_that_certificate() {
    let certs = Certs::new();
    let server = OpensslServer::start(&certs.server_cert_file(), &certs.server_key_file(), &[]);
    let digest = ring_digest(&certs.server_der);
    let pinned = TlsConfig {
        pin_sha256: Some(digest.clone()),
        ..TlsConfig::default()
    };
    handshake(&server, pinned).unwrap();
    let wrong = TlsConfig {
        pin_sha256: Some("00".repeat(32)),
        ..TlsConfig::default()
    };
    let err = handshake(&server, wrong).unwrap_err();
    assert!(err.contains("does not match pin_sha256"), "{err}");
    assert!(
        err.contains(&digest),
        "the message shows the real fingerprint: {err}"
    );
}

#[test]
fn mutual_tls_sends_the_client_certificate() {
    let certs = Certs::new();
    let ca = certs.ca_file();
    let server = OpensslServer::start(
        &certs.server_cert_file(),
        &certs.server_key_file(),
        &[
            "-Verify",
            "1",
            "-CAfile",
            ca.to_str().unwrap(),
            "-verify_return_error",
        ],
    );
    let (cert, key) = certs.client("siemcast-client");
    let tls = TlsConfig {
        cert_file: Some(cert),
        key_file: Some(key),
        ..trusting(&certs)
    };
    handshake(&server, tls).unwrap();
}

#[test]
fn bad_tls_files_are_reported_by_check() {
    let scratch = Scratch::new();
    scratch.write_config_for(
        "127.0.0.1:6514",
        "tls",
        "lf",
        "rfc3164",
        "[destination.tls]\nca_file = \"/nonexistent/ca.pem\"\ncert_file = \"client.pem\"\n",
    );
    let out = Command::new(env!("CARGO_BIN_EXE_siemcast"))
        .args(["check", "-c"])
        .arg(scratch.config())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("destination \"rsyslog\": cannot read ca_file /nonexistent/ca.pem: No such file or directory"),
        "{stderr}"
    );
}

fn ring_digest(der: &[u8]) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, der);
    d.as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[test]
fn a_plaintext_listener_is_explained() {
    use std::io::{Read, Write};
    // A plain-text syslog listener that answers whatever it gets with a line of text.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut buf = [0u8; 512];
        let _ = stream.read(&mut buf);
        let _ = stream.write_all(b"hello, I am plain syslog\n");
        pause(Duration::from_millis(500));
    });
    let certs = Certs::new();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let err = rt.block_on(async {
        let setup =
            TlsSetup::from_config(&trusting(&certs), "127.0.0.1", |p| p.to_owned()).unwrap();
        Connection::connect(Transport::Tls, &format!("127.0.0.1:{port}"), Some(&setup))
            .await
            .map(|_| ())
            .unwrap_err()
            .to_string()
    });
    server.join().unwrap();
    assert!(err.contains("does not speak TLS on this port"), "{err}");
}
