//! Server TLS of the receivers: the rustls config a `tls` block describes,
//! with a certificate that reloads from disk.
//!
//! The certificate and key are held behind `arc-swap` and picked per
//! handshake, so a reload changes what new connections see and never
//! touches a connection already established. A reload that fails (a file
//! half-written, a key that does not match) keeps the previous certificate
//! and logs why. This module never accepts a socket; [`super::listen`] does.

use std::{fmt, io, sync::Arc, time::Duration};

use arc_swap::ArcSwap;
use rustls::{
    RootCertStore, ServerConfig, SupportedCipherSuite,
    crypto::CryptoProvider,
    server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier},
    sign::CertifiedKey,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use tokio_rustls::TlsAcceptor;

use crate::config::receivers::ServerTlsConfig;

/// Why a receiver's TLS could not be set up (or reloaded).
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or holds no usable PEM.
    #[error("{key} {path}: {message}")]
    File {
        /// The config key (`cert_file`, ...).
        key: &'static str,
        /// The path configured.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// rustls refused the settings (a key that does not match, an empty CA
    /// file, versions and cipher suites with nothing in common).
    #[error("{0}")]
    Rustls(String),
}

/// The TLS versions of a `min_version`/`max_version` pair.
fn versions(
    min: Option<&str>,
    max: Option<&str>,
) -> Vec<&'static rustls::SupportedProtocolVersion> {
    let rank = |v: Option<&str>, default: u8| match v {
        Some("1.3") => 3,
        Some("1.2") => 2,
        _ => default,
    };
    let (lo, hi) = (rank(min, 2), rank(max, 3));
    let mut out = Vec::new();
    if lo <= 2 && hi >= 2 {
        out.push(&rustls::version::TLS12);
    }
    if lo <= 3 && hi >= 3 {
        out.push(&rustls::version::TLS13);
    }
    out
}

/// The rustls (ring) cipher suite a `cipher_suites` name stands for: the
/// IANA name (which Go and the collector use), or Go's short alias for the
/// ChaCha20 suites. `None` for suites rustls does not implement (CBC, RSA
/// key exchange, ...): those are refused rather than quietly dropped.
pub fn cipher_suite(name: &str) -> Option<SupportedCipherSuite> {
    let iana = match name {
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305" | "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305" => {
            format!("{name}_SHA256")
        }
        _ => name.to_string(),
    };
    // rustls spells the TLS 1.3 suites TLS13_*.
    let rustls_name = match iana.strip_prefix("TLS_") {
        Some(rest) if !rest.starts_with("ECDHE_") => format!("TLS13_{rest}"),
        _ => iana,
    };
    rustls::crypto::ring::ALL_CIPHER_SUITES
        .iter()
        .copied()
        .find(|s| s.suite().as_str() == Some(rustls_name.as_str()))
}

/// The suites of a `cipher_suites` list. As in Go, the list restricts
/// TLS 1.2; it restricts TLS 1.3 only when it names a TLS 1.3 suite.
fn suites(names: &[String]) -> Result<Vec<SupportedCipherSuite>, TlsError> {
    let all = rustls::crypto::ring::DEFAULT_CIPHER_SUITES.to_vec();
    if names.is_empty() {
        return Ok(all);
    }
    let mut chosen = Vec::new();
    for name in names {
        let suite = cipher_suite(name)
            .ok_or_else(|| TlsError::Rustls(format!("cipher suite {name}: not supported")))?;
        chosen.push(suite);
    }
    let is13 = |s: &SupportedCipherSuite| matches!(s, SupportedCipherSuite::Tls13(_));
    if !chosen.iter().any(is13) {
        chosen.extend(all.into_iter().filter(is13));
    }
    Ok(chosen)
}

fn read(key: &'static str, path: &str) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| TlsError::File {
        key,
        path: path.to_string(),
        message: e.to_string(),
    })
}

fn certificates(key: &'static str, path: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(key, path)?;
    let bad = |message: String| TlsError::File {
        key,
        path: path.to_string(),
        message,
    };
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(e.to_string()))?;
    if certs.is_empty() {
        return Err(bad("no PEM certificate in the file".into()));
    }
    Ok(certs)
}

/// Reads `cert_file` and `key_file` into a key rustls can sign with.
fn load_key(
    cert_file: &str,
    key_file: &str,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, TlsError> {
    let certs = certificates("cert_file", cert_file)?;
    let pem = read("key_file", key_file)?;
    let key = PrivateKeyDer::from_pem_slice(&pem).map_err(|e| TlsError::File {
        key: "key_file",
        path: key_file.to_string(),
        message: e.to_string(),
    })?;
    CertifiedKey::from_der(certs, key, provider)
        .map_err(|e| TlsError::Rustls(format!("cert_file and key_file: {e}")))
}

/// The current certificate, swapped in whole by [`TlsServer::reload`].
struct Reloadable(ArcSwap<CertifiedKey>);

impl fmt::Debug for Reloadable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Reloadable")
    }
}

impl ResolvesServerCert for Reloadable {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.load_full())
    }
}

/// A receiver's TLS: the acceptor for new connections and what reloads its
/// certificate.
pub struct TlsServer {
    acceptor: TlsAcceptor,
    current: Arc<Reloadable>,
    provider: Arc<CryptoProvider>,
    cert_file: String,
    key_file: String,
    reload_interval: Option<Duration>,
}

impl ServerTlsConfig {
    /// Reads the files and builds the server side of TLS. `alpn` lists the
    /// protocols offered (`h2` for gRPC; `h2` and `http/1.1` for HTTP).
    pub fn build(&self, alpn: &[&[u8]]) -> Result<TlsServer, TlsError> {
        let (Some(cert_file), Some(key_file)) = (&self.cert_file, &self.key_file) else {
            return Err(TlsError::Rustls(
                "cert_file and key_file are required".into(),
            ));
        };
        let provider = Arc::new(CryptoProvider {
            cipher_suites: suites(&self.cipher_suites)?,
            ..rustls::crypto::ring::default_provider()
        });
        let key = load_key(cert_file, key_file, &provider)?;
        let current = Arc::new(Reloadable(ArcSwap::from_pointee(key)));
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&versions(
                self.min_version.as_deref(),
                self.max_version.as_deref(),
            ))
            .map_err(|e| TlsError::Rustls(format!("versions and cipher_suites: {e}")))?;
        let builder = match &self.client_ca_file {
            None => builder.with_no_client_auth(),
            Some(path) => {
                let mut roots = RootCertStore::empty();
                for cert in certificates("client_ca_file", path)? {
                    roots.add(cert).map_err(|e| TlsError::File {
                        key: "client_ca_file",
                        path: path.clone(),
                        message: e.to_string(),
                    })?;
                }
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                        .build()
                        .map_err(|e| TlsError::Rustls(format!("client_ca_file: {e}")))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config = builder.with_cert_resolver(current.clone());
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(TlsServer {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            current,
            provider,
            cert_file: cert_file.clone(),
            key_file: key_file.clone(),
            reload_interval: Some(self.reload_interval).filter(|d| !d.is_zero()),
        })
    }
}

impl TlsServer {
    /// The acceptor for the next connection.
    pub fn acceptor(&self) -> TlsAcceptor {
        self.acceptor.clone()
    }

    /// How often the certificate is read again; `None` for never.
    pub fn reload_interval(&self) -> Option<Duration> {
        self.reload_interval
    }

    /// Reads the certificate and key again; new handshakes use them. On
    /// error the previous certificate stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let key = load_key(&self.cert_file, &self.key_file, &self.provider)?;
        let changed = self.current.0.load().cert != key.cert;
        self.current.0.store(Arc::new(key));
        if changed {
            tracing::info!(cert_file = %self.cert_file, "receiver certificate reloaded");
        }
        Ok(())
    }
}

impl From<TlsError> for io::Error {
    fn from(e: TlsError) -> io::Error {
        io::Error::other(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collector_cipher_suite_names_map_to_rustls_suites() {
        for name in [
            "TLS_AES_128_GCM_SHA256",
            "TLS_AES_256_GCM_SHA384",
            "TLS_CHACHA20_POLY1305_SHA256",
            "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
            "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
            "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305",
            "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
            "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
            "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
            "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305",
            "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        ] {
            assert!(cipher_suite(name).is_some(), "{name}");
        }
        for name in [
            "TLS_RSA_WITH_AES_128_GCM_SHA256",
            "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
            "nonsense",
        ] {
            assert!(cipher_suite(name).is_none(), "{name}");
        }
    }

    #[test]
    fn a_tls12_list_keeps_the_tls13_suites_as_go_does() {
        let only12 = suites(&["TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384".into()]).unwrap();
        assert_eq!(only12.len(), 1 + 3);
        let with13 = suites(&[
            "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384".into(),
            "TLS_AES_256_GCM_SHA384".into(),
        ])
        .unwrap();
        assert_eq!(with13.len(), 2);
    }

    #[test]
    fn versions_follow_min_and_max() {
        assert_eq!(versions(None, None).len(), 2);
        assert_eq!(versions(Some("1.3"), None), vec![&rustls::version::TLS13]);
        assert_eq!(versions(None, Some("1.2")), vec![&rustls::version::TLS12]);
    }
}
