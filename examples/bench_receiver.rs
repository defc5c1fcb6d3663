//! Counting syslog receiver for `benches/e2e.sh`: listens on loopback (TCP, or TLS with the given
//! certificate), reads each connection in 1 MiB buffers, counts LF-terminated lines and hashes the
//! value of one key (`externalId=` by default) into a set of distinct ids. It prints its port on
//! the first line of stdout, then, once `--expect` distinct ids arrived (or at `--timeout`) and
//! `--linger` seconds more (duplicates arriving later are counted too), `done=<unix seconds of
//! the last new id> first=<unix seconds of the first one> lines=<n> distinct=<n> bytes=<n>
//! cpu=<s>`.
//!
//! It is built to cost far less per line than the forwarders it measures: no per-line allocation,
//! word-at-a-time newline search, one lock per buffer.

// Plain OS threads, no async runtime: blocking sleeps are what this program wants.
#![allow(clippy::disallowed_methods)]

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use clap::Parser;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

#[derive(Parser, Debug)]
struct Args {
    /// Address to listen on (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: String,
    /// Serve TLS with this PEM certificate chain (needs --tls-key).
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    #[arg(long)]
    tls_key: Option<PathBuf>,
    /// Stop once this many distinct ids arrived.
    #[arg(long)]
    expect: u64,
    /// The id is the text after this key up to the next space.
    #[arg(long, default_value = "externalId=")]
    key: String,
    /// Give up after this many seconds (exit status 1).
    #[arg(long, default_value_t = 900)]
    timeout: u64,
    /// Once every id arrived, keep counting this many seconds (a poller's later polls must not
    /// send any again).
    #[arg(long, default_value_t = 0.3)]
    linger: f64,
}

/// The ids are already hashes: use them as they are.
#[derive(Default)]
struct Identity(u64);

impl Hasher for Identity {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, _: &[u8]) {
        unreachable!("only u64 keys")
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

#[derive(Default)]
struct Counts {
    lines: u64,
    bytes: u64,
    ids: HashSet<u64, BuildHasherDefault<Identity>>,
    last_new: Option<SystemTime>,
    first_new: Option<SystemTime>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(server_config(cert, key)?),
        _ => None,
    };
    let listener = TcpListener::bind(&args.listen).context("bind")?;
    println!("{}", listener.local_addr()?.port());
    std::io::stdout().flush()?;
    let counts = Arc::new(Mutex::new(Counts {
        ids: HashSet::with_capacity_and_hasher(args.expect as usize, Default::default()),
        ..Counts::default()
    }));
    let key: Arc<[u8]> = args.key.as_bytes().into();
    {
        let counts = counts.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (counts, key, tls) = (counts.clone(), key.clone(), tls.clone());
                std::thread::spawn(move || {
                    let _ = stream.set_nodelay(true);
                    let _ = match tls {
                        Some(cfg) => rustls::ServerConnection::new(cfg)
                            .map_err(std::io::Error::other)
                            .and_then(|conn| {
                                serve(rustls::StreamOwned::new(conn, stream), &counts, &key)
                            }),
                        None => serve::<TcpStream>(stream, &counts, &key),
                    };
                });
            }
        });
    }
    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    let mut complete = false;
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
        if counts.lock().unwrap().ids.len() as u64 >= args.expect {
            complete = true;
            break;
        }
    }
    // Let stragglers (duplicates) arrive so they are counted too.
    std::thread::sleep(Duration::from_secs_f64(args.linger.max(0.0)));
    let c = counts.lock().unwrap();
    let unix = |t: Option<SystemTime>| {
        t.and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0.0, |d| d.as_secs_f64())
    };
    let (done, first) = (unix(c.last_new), unix(c.first_new));
    println!(
        "done={done:.6} first={first:.6} lines={} distinct={} bytes={} cpu={:.3}",
        c.lines,
        c.ids.len(),
        c.bytes,
        own_cpu_seconds()
    );
    std::process::exit(if complete { 0 } else { 1 });
}

fn server_config(cert: &PathBuf, key: &PathBuf) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let chain = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("read {}", cert.display()))?
        .collect::<Result<Vec<_>, _>>()?;
    let key =
        PrivateKeyDer::from_pem_file(key).with_context(|| format!("read {}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    Ok(Arc::new(cfg))
}

/// Reads one connection to its end, counting whole lines and their ids.
fn serve<S: Read>(mut stream: S, counts: &Mutex<Counts>, key: &[u8]) -> std::io::Result<()> {
    let mut buf = vec![0u8; 1 << 20];
    let mut carry = 0;
    let mut ids = Vec::with_capacity(4096);
    loop {
        if carry == buf.len() {
            buf.resize(buf.len() * 2, 0); // one line longer than the buffer
        }
        let n = match stream.read(&mut buf[carry..]) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let end = carry + n;
        let mut start = 0;
        let mut lines = 0;
        while let Some(nl) = find_byte(&buf[start..end], b'\n') {
            let line = &buf[start..start + nl];
            if let Some(id) = id_of(line, key) {
                ids.push(fnv1a(id));
            }
            lines += 1;
            start += nl + 1;
        }
        buf.copy_within(start..end, 0);
        carry = end - start;
        let mut c = counts.lock().unwrap();
        c.lines += lines;
        c.bytes += n as u64;
        let before = c.ids.len();
        c.ids.extend(ids.drain(..));
        if c.ids.len() > before {
            let now = SystemTime::now();
            c.first_new.get_or_insert(now);
            c.last_new = Some(now);
        }
    }
}

/// The value after `key` up to the next space or end of line.
fn id_of<'a>(line: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    // Search for the key's rarest-looking byte (an upper-case letter if it has one).
    let anchor = key.iter().position(u8::is_ascii_uppercase).unwrap_or(0);
    let mut from = anchor;
    while from < line.len() {
        let at = from + find_byte(&line[from..], key[anchor])?;
        let start = at - anchor;
        if line[start..].starts_with(key) {
            let value = &line[start + key.len()..];
            let len = find_byte(value, b' ').unwrap_or(value.len());
            return Some(&value[..len]);
        }
        from = at + 1;
    }
    None
}

/// Position of the first `needle` in `hay`, eight bytes at a time.
// Hand-written because the crate has no direct dependency on a memchr crate; this is the
// classic "has zero byte" word trick.
fn find_byte(hay: &[u8], needle: u8) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let pattern = LO * u64::from(needle);
    let mut chunks = hay.chunks_exact(8);
    let mut base = 0;
    for chunk in &mut chunks {
        let x = u64::from_le_bytes(chunk.try_into().unwrap()) ^ pattern;
        let found = x.wrapping_sub(LO) & !x & HI;
        if found != 0 {
            return Some(base + (found.trailing_zeros() / 8) as usize);
        }
        base += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&b| b == needle)
        .map(|i| base + i)
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// user + system CPU seconds of this process, from /proc.
fn own_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(vec![], |(_, rest)| rest.split_whitespace().collect());
    let ticks: f64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i)?.parse::<f64>().ok())
        .sum();
    ticks / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_bytes_like_a_plain_scan() {
        let hay = b"abcdefghijklmnopqrstuvwxyz\nABC\n";
        for start in 0..hay.len() {
            for needle in [b'\n', b'a', b'z', b'C', b'#'] {
                let want = hay[start..].iter().position(|&b| b == needle);
                assert_eq!(find_byte(&hay[start..], needle), want);
            }
        }
    }

    #[test]
    fn takes_the_id_after_the_key() {
        let line = b"<14>1 x CEF:0|M|P|1|c|n|3|rt=1 externalId=ev-0000007 suser=a";
        assert_eq!(id_of(line, b"externalId="), Some(&b"ev-0000007"[..]));
        assert_eq!(id_of(b"Id=1 externalId=9", b"externalId="), Some(&b"9"[..]));
        assert_eq!(id_of(b"no key here", b"externalId="), None);
    }
}
