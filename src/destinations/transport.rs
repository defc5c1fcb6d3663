//! Connections to a SIEM listener: TCP and TLS streams that report how many of the bytes
//! written the peer's kernel has acknowledged (counted below the TLS layer), and UDP sockets
//! where a successful send counts as delivered. Every connect re-resolves DNS and tries each
//! address in turn.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpStream, UdpSocket};

use super::tls::TlsSetup;
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
    #[error("{peer} acknowledged nothing of {unacknowledged} bytes for {waited:?}; the listener has stopped reading")]
    Stalled {
        peer: SocketAddr,
        unacknowledged: u64,
        waited: Duration,
    },
    #[error("TLS with {peer}: {message}")]
    Tls { peer: SocketAddr, message: String },
}

impl TransportError {
    /// Whether retrying the same thing cannot help until the configuration or the receiver's
    /// certificate changes (it is still retried, but logged as an error).
    pub fn is_tls_setup(&self) -> bool {
        matches!(self, TransportError::Tls { .. })
    }
}

/// An open connection.
#[derive(Debug)]
pub enum Connection {
    Tcp(TcpConnection),
    Tls(Box<TlsConnection>),
    Udp(UdpConnection),
}

impl Connection {
    /// Resolves `address` and connects to the first address that answers.
    pub async fn connect(
        transport: Transport,
        address: &str,
        tls: Option<&TlsSetup>,
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
                Transport::Tcp => TcpConnection::connect(addr).await.map(Connection::Tcp),
                Transport::Tls => match (TcpConnection::connect(addr).await, tls) {
                    // A TLS failure is about certificates or settings, not this address.
                    (Ok(tcp), Some(setup)) => {
                        return TlsConnection::handshake(tcp, setup)
                            .await
                            .map(|c| Connection::Tls(Box::new(c)))
                    }
                    (Ok(_), None) => Err(io::Error::other("TLS is not configured")),
                    (Err(e), _) => Err(e),
                },
                Transport::Hec => Err(io::Error::other(
                    "a HEC destination is reached over HTTP, not a syslog connection",
                )),
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
            Connection::Tls(c) => c.peer,
            Connection::Udp(c) => c.peer,
        }
    }

    /// Sends a batch: `buf` holds framed messages, `ends[i]` is the end offset of message `i`.
    /// A stream writes it whole; UDP sends one datagram per message.
    pub async fn send(&mut self, buf: &[u8], ends: &[usize]) -> Result<(), TransportError> {
        match self {
            Connection::Tcp(c) => c.write_all(buf).await,
            Connection::Tls(c) => c.write_all(buf).await,
            Connection::Udp(c) => c.send_each(buf, ends).await,
        }
    }

    /// Total bytes handed to the socket (for TLS: record bytes, below the TLS layer).
    pub fn written(&self) -> u64 {
        match self {
            Connection::Tcp(c) => c.written,
            Connection::Tls(c) => c.stream.get_ref().0.written,
            Connection::Udp(c) => c.written,
        }
    }

    /// Bytes of [`Connection::written`] that the peer has acknowledged (UDP: all of them).
    pub fn acknowledged(&self) -> Result<u64, TransportError> {
        match self {
            Connection::Tcp(c) => c.acknowledged(),
            Connection::Tls(c) => c.acknowledged(),
            Connection::Udp(c) => Ok(c.written),
        }
    }

    /// Detects a peer that has closed its side, before more data is sent into the void.
    pub fn probe(&mut self) -> Result<(), TransportError> {
        match self {
            Connection::Tcp(c) => c.probe(),
            Connection::Tls(c) => c.probe(),
            Connection::Udp(_) => Ok(()),
        }
    }

    /// Ends the connection politely (TLS `close_notify`, TCP FIN); errors are irrelevant then.
    pub async fn close(self) {
        match self {
            Connection::Tcp(mut c) => {
                let _ = c.stream.shutdown().await;
            }
            Connection::Tls(mut c) => {
                let _ = c.stream.shutdown().await;
            }
            Connection::Udp(_) => {}
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

/// A TCP stream that counts the bytes written into it: placed under TLS, it measures what
/// reached the socket, which is what `SIOCOUTQ` is compared with.
#[derive(Debug)]
pub struct Counted {
    inner: TcpStream,
    written: u64,
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = polled {
            self.written += n as u64;
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// How long a TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A TLS session over a counted TCP stream.
#[derive(Debug)]
pub struct TlsConnection {
    stream: tokio_rustls::client::TlsStream<Counted>,
    peer: SocketAddr,
}

impl TlsConnection {
    async fn handshake(tcp: TcpConnection, setup: &TlsSetup) -> Result<Self, TransportError> {
        let peer = tcp.peer;
        let counted = Counted {
            inner: tcp.stream,
            written: 0,
        };
        let connect = setup.connector.connect(setup.server_name.clone(), counted);
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, connect).await {
            Ok(Ok(stream)) => Ok(Self { stream, peer }),
            Ok(Err(error)) => Err(TransportError::Tls {
                peer,
                message: setup.explain(&error),
            }),
            Err(_) => Err(TransportError::Tls {
                peer,
                message: format!(
                    "no handshake within {HANDSHAKE_TIMEOUT:?}; is the receiver speaking TLS?"
                ),
            }),
        }
    }

    async fn write_all(&mut self, buf: &[u8]) -> Result<(), TransportError> {
        let peer = self.peer;
        let io = |error| TransportError::Io { peer, error };
        self.stream.write_all(buf).await.map_err(io)?;
        // rustls holds records until flushed; the batch must reach the socket to be counted.
        self.stream.flush().await.map_err(io)
    }

    fn acknowledged(&self) -> Result<u64, TransportError> {
        let counted = self.stream.get_ref().0;
        let queued = unacked_bytes(&counted.inner).map_err(|error| TransportError::Io {
            peer: self.peer,
            error,
        })?;
        Ok(counted.written.saturating_sub(queued))
    }

    /// Reads through the TLS layer without waiting: a raw read would eat TLS records
    /// (session tickets, alerts) and break the session.
    fn probe(&mut self) -> Result<(), TransportError> {
        let mut cx = Context::from_waker(Waker::noop());
        let mut byte = [0u8; 1];
        let mut buf = ReadBuf::new(&mut byte);
        match Pin::new(&mut self.stream).poll_read(&mut cx, &mut buf) {
            Poll::Ready(Ok(())) if buf.filled().is_empty() => {
                Err(TransportError::Closed { peer: self.peer })
            }
            Poll::Ready(Ok(())) | Poll::Pending => Ok(()),
            Poll::Ready(Err(error)) => Err(TransportError::Io {
                peer: self.peer,
                error,
            }),
        }
    }
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
