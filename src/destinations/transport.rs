//! Connections to a SIEM listener: TCP (and, later, TLS) streams that report how many of the
//! bytes written the peer's kernel has acknowledged, and UDP sockets where a successful send
//! counts as delivered. Every connect re-resolves DNS and tries each address in turn.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpStream, UdpSocket};

use crate::config::Transport;

/// How long one connection attempt to one address may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long unacknowledged data may sit before the kernel declares the peer dead.
const USER_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a connection could not be made or used.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("cannot resolve {address}: {error}")]
    Resolve { address: String, error: io::Error },
    #[error("{address} resolved to no addresses")]
    NoAddress { address: String },
    #[error("cannot connect to {address}: {error}")]
    Connect { address: String, error: io::Error },
    #[error("connection to {peer} failed: {error}")]
    Io { peer: SocketAddr, error: io::Error },
    #[error("{peer} closed the connection")]
    Closed { peer: SocketAddr },
}

/// An open connection.
#[derive(Debug)]
pub enum Connection {
    Tcp(TcpConnection),
    Udp(UdpConnection),
}

impl Connection {
    /// Resolves `address` and connects to the first address that answers.
    pub async fn connect(
        transport: Transport,
        address: &str,
    ) -> Result<Connection, TransportError> {
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host(address)
            .await
            .map_err(|error| TransportError::Resolve {
                address: address.to_owned(),
                error,
            })?
            .collect();
        if addrs.is_empty() {
            return Err(TransportError::NoAddress {
                address: address.to_owned(),
            });
        }
        let mut last = None;
        for addr in addrs {
            let attempt = match transport {
                Transport::Udp => UdpConnection::connect(addr).await.map(Connection::Udp),
                Transport::Tcp | Transport::Tls => {
                    TcpConnection::connect(addr).await.map(Connection::Tcp)
                }
            };
            match attempt {
                Ok(c) => return Ok(c),
                Err(e) => last = Some(e),
            }
        }
        Err(TransportError::Connect {
            address: address.to_owned(),
            error: last.unwrap_or_else(|| io::Error::other("no address tried")),
        })
    }

    pub fn peer(&self) -> SocketAddr {
        match self {
            Connection::Tcp(c) => c.peer,
            Connection::Udp(c) => c.peer,
        }
    }

    /// Sends a batch: `buf` holds framed messages, `ends[i]` is the end offset of message `i`.
    /// A stream writes it whole; UDP sends one datagram per message.
    pub async fn send(&mut self, buf: &[u8], ends: &[usize]) -> Result<(), TransportError> {
        match self {
            Connection::Tcp(c) => c.write_all(buf).await,
            Connection::Udp(c) => c.send_each(buf, ends).await,
        }
    }

    /// Total bytes handed to this connection.
    pub fn written(&self) -> u64 {
        match self {
            Connection::Tcp(c) => c.written,
            Connection::Udp(c) => c.written,
        }
    }

    /// Bytes of [`Connection::written`] that the peer has acknowledged (UDP: all of them).
    pub fn acknowledged(&self) -> Result<u64, TransportError> {
        match self {
            Connection::Tcp(c) => c.acknowledged(),
            Connection::Udp(c) => Ok(c.written),
        }
    }

    /// Detects a peer that has closed its side, before more data is sent into the void.
    pub fn probe(&self) -> Result<(), TransportError> {
        match self {
            Connection::Tcp(c) => c.probe(),
            Connection::Udp(_) => Ok(()),
        }
    }
}

/// A TCP stream with a count of bytes written.
#[derive(Debug)]
pub struct TcpConnection {
    stream: TcpStream,
    peer: SocketAddr,
    written: u64,
}

impl TcpConnection {
    async fn connect(addr: SocketAddr) -> io::Result<Self> {
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
        let sock = socket2::SockRef::from(&stream);
        sock.set_tcp_user_timeout(Some(USER_TIMEOUT))?;
        sock.set_tcp_keepalive(
            &socket2::TcpKeepalive::new()
                .with_time(Duration::from_secs(30))
                .with_interval(Duration::from_secs(10))
                .with_retries(3),
        )?;
        Ok(Self {
            stream,
            peer: addr,
            written: 0,
        })
    }

    async fn write_all(&mut self, buf: &[u8]) -> Result<(), TransportError> {
        self.stream
            .write_all(buf)
            .await
            .map_err(|error| TransportError::Io {
                peer: self.peer,
                error,
            })?;
        self.written += buf.len() as u64;
        Ok(())
    }

    fn acknowledged(&self) -> Result<u64, TransportError> {
        let queued = unacked_bytes(&self.stream).map_err(|error| TransportError::Io {
            peer: self.peer,
            error,
        })?;
        Ok(self.written.saturating_sub(queued))
    }

    fn probe(&self) -> Result<(), TransportError> {
        let mut byte = [0u8; 1];
        match self.stream.try_read(&mut byte) {
            Ok(0) => Err(TransportError::Closed { peer: self.peer }),
            // A listener has no business sending to us; whatever it sent is ignored.
            Ok(_) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
            Err(error) => Err(TransportError::Io {
                peer: self.peer,
                error,
            }),
        }
    }
}

/// Bytes written to `stream` that the peer's TCP has not acknowledged yet (Linux `SIOCOUTQ`).
///
/// No crate exposes this ioctl, hence the few lines of `unsafe` here.
#[allow(unsafe_code)]
fn unacked_bytes(stream: &TcpStream) -> io::Result<u64> {
    use std::os::fd::AsRawFd;
    let mut queued: libc::c_int = 0;
    // SAFETY: `fd` is an open TCP socket owned by `stream` for the duration of the call, and
    // TIOCOUTQ (== SIOCOUTQ) writes exactly one c_int through the pointer we pass.
    let rc = unsafe { libc::ioctl(stream.as_raw_fd(), libc::TIOCOUTQ, &mut queued) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(u64::try_from(queued).unwrap_or(0))
}

/// A connected UDP socket.
#[derive(Debug)]
pub struct UdpConnection {
    socket: UdpSocket,
    peer: SocketAddr,
    written: u64,
}

impl UdpConnection {
    async fn connect(addr: SocketAddr) -> io::Result<Self> {
        let local: SocketAddr = if addr.is_ipv4() {
            ([0, 0, 0, 0], 0).into()
        } else {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let socket = UdpSocket::bind(local).await?;
        socket.connect(addr).await?;
        Ok(Self {
            socket,
            peer: addr,
            written: 0,
        })
    }

    async fn send_each(&mut self, buf: &[u8], ends: &[usize]) -> Result<(), TransportError> {
        let mut start = 0;
        for &end in ends {
            self.socket
                .send(&buf[start..end])
                .await
                .map_err(|error| TransportError::Io {
                    peer: self.peer,
                    error,
                })?;
            self.written += (end - start) as u64;
            start = end;
        }
        Ok(())
    }
}
