//! TLS settings of a syslog destination: trust (a CA file, the system roots, or a pinned
//! SHA-256 fingerprint of the server certificate), an optional client certificate for mutual
//! TLS, the server name, TLS 1.2 and 1.3 only (rustls, ring provider). Handshake failures are
//! translated into messages that say what to fix.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::config::TlsConfig;

/// A destination's TLS client, built once from its configuration.
#[derive(Clone)]
pub struct TlsSetup {
    pub connector: tokio_rustls::TlsConnector,
    pub server_name: ServerName<'static>,
    /// What the server certificate is checked against, for error messages.
    trust: String,
}

impl std::fmt::Debug for TlsSetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsSetup")
            .field("server_name", &self.server_name)
            .field("trust", &self.trust)
            .finish_non_exhaustive()
    }
}

/// A problem with a destination's TLS settings (files, names, fingerprints).
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("cannot read {key} {path}: {error}")]
    Read {
        key: &'static str,
        path: PathBuf,
        error: String,
    },
    #[error("{key} {path} holds no PEM certificate")]
    NoCertificate { key: &'static str, path: PathBuf },
    #[error("server_name \"{0}\" is not a valid DNS name or IP address")]
    ServerName(String),
    #[error("pin_sha256 \"{0}\" is not a SHA-256 fingerprint (64 hex digits, colons allowed)")]
    Pin(String),
    #[error("cert_file and key_file must be given together (for mutual TLS)")]
    ClientPair,
    #[error("client certificate and key do not fit together: {0}")]
    ClientKey(String),
    #[error("cannot set up TLS: {0}")]
    Rustls(String),
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl TlsSetup {
    /// Builds the client from `[destination.tls]`; `host` is the address's host, used as the
    /// server name unless `server_name` is set; `resolve` makes config paths absolute.
    pub fn from_config(
        tls: &TlsConfig,
        host: &str,
        resolve: impl Fn(&Path) -> PathBuf,
    ) -> Result<TlsSetup, TlsSetupError> {
        let name = tls.server_name.clone().unwrap_or_else(|| host.to_owned());
        let server_name = ServerName::try_from(name.clone())
            .map_err(|_| TlsSetupError::ServerName(name.clone()))?;
        let versions = &[&rustls::version::TLS13, &rustls::version::TLS12];
        let builder = ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(versions)
            .map_err(|e| TlsSetupError::Rustls(e.to_string()))?;
        let (builder, trust) = if let Some(pin) = &tls.pin_sha256 {
            let verifier = PinVerifier::new(pin)?;
            let trust = format!("pin_sha256 {pin}");
            (
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(verifier)),
                trust,
            )
        } else if let Some(ca) = &tls.ca_file {
            let path = resolve(ca);
            let mut roots = RootCertStore::empty();
            for cert in read_certs("ca_file", &path)? {
                roots.add(cert).map_err(|e| TlsSetupError::Read {
                    key: "ca_file",
                    path: path.clone(),
                    error: e.to_string(),
                })?;
            }
            (
                builder.with_root_certificates(roots),
                format!("ca_file {}", path.display()),
            )
        } else {
            let mut roots = RootCertStore::empty();
            let native = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(native.certs);
            (
                builder.with_root_certificates(roots),
                "the system's trusted CAs".to_owned(),
            )
        };
        let config = match (&tls.cert_file, &tls.key_file) {
            (Some(cert), Some(key)) => {
                let certs = read_certs("cert_file", &resolve(cert))?;
                let key_path = resolve(key);
                let key =
                    PrivateKeyDer::from_pem_file(&key_path).map_err(|e| TlsSetupError::Read {
                        key: "key_file",
                        path: key_path.clone(),
                        error: e.to_string(),
                    })?;
                builder
                    .with_client_auth_cert(certs, key)
                    .map_err(|e| TlsSetupError::ClientKey(e.to_string()))?
            }
            (None, None) => builder.with_no_client_auth(),
            _ => return Err(TlsSetupError::ClientPair),
        };
        Ok(TlsSetup {
            connector: tokio_rustls::TlsConnector::from(Arc::new(config)),
            server_name,
            trust,
        })
    }

    /// Turns a failed handshake into a message that says what to fix.
    pub fn explain(&self, error: &std::io::Error) -> String {
        use rustls::{AlertDescription as A, CertificateError as C, Error as E};
        let Some(tls) = error.get_ref().and_then(|e| e.downcast_ref::<E>()) else {
            return format!("TLS handshake failed: {error}");
        };
        let name = self.server_name.to_str();
        match tls {
            E::InvalidCertificate(C::UnknownIssuer) => format!(
                "the server's certificate is not signed by a CA in {} (unknown issuer)",
                self.trust
            ),
            // Another CA of the same name: the issuer is found but its signature does not fit.
            E::InvalidCertificate(C::BadSignature) => format!(
                "the server's certificate is not signed by a CA in {} (its signature does not verify)",
                self.trust
            ),
            E::InvalidCertificate(C::NotValidForName | C::NotValidForNameContext { .. }) => format!(
                "the server's certificate is not valid for the name \"{name}\"; set tls.server_name to a name the certificate carries"
            ),
            E::InvalidCertificate(C::Expired | C::ExpiredContext { .. }) => {
                "the server's certificate has expired".to_owned()
            }
            E::InvalidCertificate(C::NotValidYet | C::NotValidYetContext { .. }) => {
                "the server's certificate is not valid yet (check the clocks)".to_owned()
            }
            E::InvalidCertificate(C::Other(other)) => format!("the server's certificate was refused: {other}"),
            E::PeerIncompatible(_) | E::AlertReceived(A::HandshakeFailure | A::ProtocolVersion | A::InsufficientSecurity) => {
                "the receiver shares no TLS version or cipher suite with siemcast, which offers TLS 1.3 and TLS 1.2 with ECDHE and AES-GCM or ChaCha20 (RFC 9662); enable one of them on the receiver".to_owned()
            }
            E::AlertReceived(A::BadCertificate | A::CertificateRequired | A::UnknownCA | A::CertificateUnknown) => {
                "the receiver refused siemcast's client certificate (check tls.cert_file and the receiver's CA)".to_owned()
            }
            E::InvalidMessage(_) => {
                "the receiver does not speak TLS on this port (it answered with something that is not a TLS record); check the port, or use transport = \"tcp\"".to_owned()
            }
            other => format!("TLS handshake failed: {other}"),
        }
    }
}

fn read_certs(
    key: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsSetupError> {
    let read_err = |error: String| TlsSetupError::Read {
        key,
        path: path.to_owned(),
        error,
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|e| read_err(pem_error(e)))?
        .collect::<Result<_, _>>()
        .map_err(|e| read_err(pem_error(e)))?;
    if certs.is_empty() {
        return Err(TlsSetupError::NoCertificate {
            key,
            path: path.to_owned(),
        });
    }
    Ok(certs)
}

fn pem_error(e: rustls::pki_types::pem::Error) -> String {
    match e {
        rustls::pki_types::pem::Error::Io(io) => io.to_string(),
        other => format!("not valid PEM: {other:?}"),
    }
}

/// Accepts exactly the server certificate whose SHA-256 is pinned (RFC 5425 fingerprint
/// mode, self-signed SIEM listeners); signatures are still verified.
#[derive(Debug)]
struct PinVerifier {
    pin: [u8; 32],
    provider: Arc<CryptoProvider>,
}

impl PinVerifier {
    fn new(text: &str) -> Result<Self, TlsSetupError> {
        let hex: String = text.chars().filter(|c| *c != ':').collect();
        let bad = || TlsSetupError::Pin(text.to_owned());
        if hex.len() != 64 {
            return Err(bad());
        }
        let mut pin = [0u8; 32];
        for (i, byte) in pin.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        Ok(Self {
            pin,
            provider: provider(),
        })
    }
}

impl ServerCertVerifier for PinVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let digest = ring::digest::digest(&ring::digest::SHA256, end_entity.as_ref());
        if digest.as_ref() == self.pin {
            Ok(ServerCertVerified::assertion())
        } else {
            let got: Vec<String> = digest.as_ref().iter().map(|b| format!("{b:02X}")).collect();
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::Other(rustls::OtherError(Arc::new(PinMismatch(
                    got.join(":"),
                )))),
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[derive(Debug)]
struct PinMismatch(String);

impl std::fmt::Display for PinMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "its SHA-256 fingerprint {} does not match pin_sha256",
            self.0
        )
    }
}

impl std::error::Error for PinMismatch {}
