//! Certificate credentials: a PEM certificate and its RSA private key, loaded once and checked
//! to belong together, sign the client-assertion JWT of the client-credentials grant (header
//! `x5t#S256`, claims aud/iss/sub/jti/nbf/iat/exp; PS256 by default, RS256 on request).

use std::fmt;
use std::path::Path;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::Serialize;

use crate::config::{AssertionAlgorithm, Secret};

/// How long a signed assertion is valid (the documented recommendation is at most 10 minutes).
pub const ASSERTION_LIFETIME_SECS: i64 = 600;

/// A loaded client certificate. `Debug` shows the thumbprint, never the key.
#[derive(Clone)]
pub struct ClientCertificate {
    key: jsonwebtoken::EncodingKey,
    algorithm: AssertionAlgorithm,
    /// base64url(SHA-256 of the DER certificate).
    x5t_s256: String,
    /// base64url(SHA-1 of the DER certificate): the legacy `x5t`, sent with RS256.
    x5t: String,
}

impl fmt::Debug for ClientCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCertificate")
            .field("algorithm", &self.algorithm)
            .field("x5t#S256", &self.x5t_s256)
            .field("key", &"[redacted]")
            .finish()
    }
}

/// base64url(SHA-256(der)): the `x5t#S256` thumbprint of a DER certificate.
pub fn thumbprint_s256(der: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(ring::digest::digest(&ring::digest::SHA256, der))
}

#[derive(Serialize)]
struct Claims<'a> {
    aud: &'a str,
    iss: &'a str,
    sub: &'a str,
    jti: String,
    nbf: i64,
    iat: i64,
    exp: i64,
}

/// A random RFC 4122 version-4 GUID, for `jti`.
pub fn random_guid() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// Why a client certificate cannot be used: what to fix, and the `[azure]` key it is about
/// (`certificate_file` or `certificate_key_file`), where `check` reports it.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct CertificateError {
    pub key: &'static str,
    pub message: String,
}

impl ClientCertificate {
    /// Reads the certificate (the first `CERTIFICATE` block of `cert_file`) and the RSA private
    /// key (from `key_file`, or else from `cert_file`), and checks that they belong together.
    /// Errors name the file and say what to fix.
    pub fn load(
        cert_file: &Path,
        key_file: Option<&Path>,
        algorithm: AssertionAlgorithm,
    ) -> Result<ClientCertificate, CertificateError> {
        const CERT: &str = "certificate_file";
        const KEY: &str = "certificate_key_file";
        let err = |key: &'static str| move |message: String| CertificateError { key, message };
        let cert_text = std::fs::read(cert_file)
            .map_err(|e| format!("cannot read certificate_file {}: {e}", cert_file.display()))
            .map_err(err(CERT))?;
        let cert = CertificateDer::pem_slice_iter(&cert_text)
            .next()
            .ok_or_else(|| format!("certificate_file {} holds no PEM CERTIFICATE block; write the certificate (and its key) in PEM", cert_file.display()))
            .map_err(err(CERT))?
            .map_err(|e| format!("certificate_file {}: {e}", cert_file.display()))
            .map_err(err(CERT))?;
        let key_path = key_file.unwrap_or(cert_file);
        let key_text = if key_file.is_some() {
            std::fs::read(key_path)
                .map_err(|e| {
                    format!(
                        "cannot read certificate_key_file {}: {e}",
                        key_path.display()
                    )
                })
                .map_err(err(KEY))?
        } else {
            cert_text.clone()
        };
        let which = if key_file.is_some() { KEY } else { CERT };
        let key = PrivateKeyDer::from_pem_slice(&key_text).map_err(|e| {
            format!(
                "{which} {} holds no usable PEM private key ({e}); put the RSA key (BEGIN PRIVATE KEY or BEGIN RSA PRIVATE KEY) in it{}",
                key_path.display(),
                if key_file.is_none() { ", or name its file in certificate_key_file" } else { "" }
            )
        })
        // About the key, wherever it was looked for: it belongs in certificate_key_file.
        .map_err(err(KEY))?;
        let label = match &key {
            PrivateKeyDer::Pkcs1(_) => "RSA PRIVATE KEY",
            PrivateKeyDer::Pkcs8(_) => "PRIVATE KEY",
            _ => {
                return Err(err(which)(format!(
                    "{which} {}: the private key is not an RSA key; Entra certificate credentials need RSA (2048 bits or more)",
                    key_path.display()
                )))
            }
        };
        let pem = pem_block(label, key.secret_der());
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(pem.expose().as_bytes())
            .map_err(|e| {
                format!(
                    "{which} {}: the private key is not a usable RSA key ({e})",
                    key_path.display()
                )
            })
            .map_err(err(which))?;
        let cert = ClientCertificate {
            key,
            algorithm,
            x5t_s256: thumbprint_s256(&cert),
            x5t: URL_SAFE_NO_PAD.encode(ring::digest::digest(
                &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
                &cert,
            )),
        }
        .checked_against(&cert)
        .map_err(|e| {
            format!(
                "{which} {} does not match certificate_file {}: {e}",
                key_path.display(),
                cert_file.display()
            )
        })
        .map_err(err(which))?;
        Ok(cert)
    }

    /// Signs a probe with the key and verifies it with the certificate's public key.
    fn checked_against(self, der: &CertificateDer<'_>) -> Result<Self, String> {
        let ee = webpki::EndEntityCert::try_from(der)
            .map_err(|e| format!("the certificate cannot be parsed ({e})"))?;
        let probe = b"siemcast key check";
        let header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::PS256);
        let signature = jsonwebtoken::crypto::sign(probe, &self.key, header.alg)
            .map_err(|e| format!("signing failed ({e})"))?;
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|e| e.to_string())?;
        ee.verify_signature(
            webpki::ring::RSA_PSS_2048_8192_SHA256_LEGACY_KEY,
            probe,
            &signature,
        )
        .map_err(|_| {
            "the private key is not the certificate's key (or is shorter than 2048 bits)".to_owned()
        })?;
        Ok(self)
    }

    pub fn algorithm(&self) -> AssertionAlgorithm {
        self.algorithm
    }

    pub fn thumbprint(&self) -> &str {
        &self.x5t_s256
    }

    /// A signed client assertion for `client_id` at the token endpoint `audience`, valid from
    /// `now_s` (epoch seconds) for [`ASSERTION_LIFETIME_SECS`].
    pub fn assertion(&self, client_id: &str, audience: &str, now_s: i64) -> Result<Secret, String> {
        let alg = match self.algorithm {
            AssertionAlgorithm::Ps256 => jsonwebtoken::Algorithm::PS256,
            AssertionAlgorithm::Rs256 => jsonwebtoken::Algorithm::RS256,
        };
        let mut header = jsonwebtoken::Header::new(alg);
        header.typ = Some("JWT".into());
        header.x5t_s256 = Some(self.x5t_s256.clone());
        if self.algorithm == AssertionAlgorithm::Rs256 {
            header.x5t = Some(self.x5t.clone());
        }
        let claims = Claims {
            aud: audience,
            iss: client_id,
            sub: client_id,
            jti: random_guid(),
            nbf: now_s,
            iat: now_s,
            exp: now_s + ASSERTION_LIFETIME_SECS,
        };
        jsonwebtoken::encode(&header, &claims, &self.key)
            .map(Secret::new)
            .map_err(|e| format!("cannot sign the client assertion: {e}"))
    }
}

/// A PEM block (64-character lines) around `der`; a `Secret` because it holds a private key.
fn pem_block(label: &str, der: &[u8]) -> Secret {
    let b64 = STANDARD.encode(der);
    let mut text = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        text.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        text.push('\n');
    }
    text.push_str(&format!("-----END {label}-----\n"));
    Secret::new(text)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A self-signed RSA-2048 certificate and its PKCS#8 key in one PEM file, minted by the
    /// `openssl` command (ring cannot generate RSA keys); returns the path and the DER.
    pub(crate) fn mint(dir: &Path, name: &str) -> (std::path::PathBuf, Vec<u8>) {
        let (cert, key) = (
            dir.join(format!("{name}.crt")),
            dir.join(format!("{name}.key")),
        );
        let status = std::process::Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            ])
            .args(["-subj", "/CN=siemcast-test", "-keyout"])
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .stderr(std::process::Stdio::null())
            .status()
            .expect("openssl runs");
        assert!(status.success(), "openssl req failed");
        let path = dir.join(name);
        let pem = std::fs::read_to_string(&cert).unwrap() + &std::fs::read_to_string(&key).unwrap();
        std::fs::write(&path, pem).unwrap();
        let der = CertificateDer::from_pem_file(&cert).unwrap().to_vec();
        (path, der)
    }

    fn parts(jwt: &str) -> (serde_json::Value, serde_json::Value) {
        let mut it = jwt.split('.');
        let mut next = || -> serde_json::Value {
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(it.next().unwrap()).unwrap()).unwrap()
        };
        (next(), next())
    }

    #[test]
    fn assertion_carries_the_documented_header_and_claims() {
        let dir = tempfile::tempdir().unwrap();
        let (path, der) = mint(dir.path(), "c.pem");
        let c = ClientCertificate::load(&path, None, AssertionAlgorithm::Ps256).unwrap();
        let aud = "https://login.example/t/oauth2/v2.0/token";
        let jwt = c.assertion("app", aud, 1_000).unwrap();
        let (h, claims) = parts(jwt.expose());
        assert_eq!(h["alg"], "PS256");
        assert_eq!(h["typ"], "JWT");
        assert_eq!(h["x5t#S256"], thumbprint_s256(&der));
        assert!(h.get("x5t").is_none());
        assert_eq!(claims["aud"], aud);
        assert_eq!(
            (claims["iss"].as_str(), claims["sub"].as_str()),
            (Some("app"), Some("app"))
        );
        assert_eq!(claims["nbf"], 1_000);
        assert_eq!(claims["exp"], 1_600);
        let again = c.assertion("app", aud, 1_000).unwrap();
        assert_ne!(parts(again.expose()).1["jti"], claims["jti"], "fresh jti");
        let rs = ClientCertificate::load(&path, None, AssertionAlgorithm::Rs256).unwrap();
        let (h, _) = parts(rs.assertion("app", aud, 1_000).unwrap().expose());
        assert_eq!(h["alg"], "RS256");
        assert_eq!(
            h["x5t"].as_str().map(str::len),
            Some(27),
            "SHA-1, base64url"
        );
        // Debug never shows the key or an assertion.
        assert!(format!("{c:?}").contains("[redacted]"));
        assert!(!format!("{jwt:?}").contains(&jwt.expose()[..20]));
    }

    #[test]
    fn key_in_its_own_file_and_mismatches_are_explained() {
        let dir = tempfile::tempdir().unwrap();
        let (a, _) = mint(dir.path(), "a.pem");
        let (b, _) = mint(dir.path(), "b.pem");
        // b's key with a's certificate.
        let e = ClientCertificate::load(&a, Some(&b), AssertionAlgorithm::Ps256)
            .unwrap_err()
            .to_string();
        assert!(e.contains("does not match certificate_file"), "{e}");
        assert!(e.contains("certificate_key_file"), "{e}");
        let only_cert = dir.path().join("only-cert.pem");
        let text = std::fs::read_to_string(&a).unwrap();
        let cert_part = &text[..text.find("-----BEGIN PRIVATE KEY").unwrap()];
        std::fs::write(&only_cert, cert_part).unwrap();
        let e = ClientCertificate::load(&only_cert, None, AssertionAlgorithm::Ps256)
            .unwrap_err()
            .to_string();
        assert!(e.contains("no usable PEM private key"), "{e}");
        assert!(e.contains("certificate_key_file"), "{e}");
        assert!(ClientCertificate::load(&only_cert, Some(&a), AssertionAlgorithm::Rs256).is_ok());
        let e = ClientCertificate::load(&dir.path().join("nope"), None, AssertionAlgorithm::Ps256)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("cannot read certificate_file"), "{e}");
    }

    #[test]
    fn guids_are_version_4() {
        let g = random_guid();
        assert_eq!(g.len(), 36);
        assert_eq!(&g[14..15], "4");
        assert_ne!(g, random_guid());
    }
}
