//! Client TLS towards backends, as rustls configs: for `otlp_http` (through
//! the hyper-rustls connector) and for gRPC backends with
//! `insecure_skip_verify` (through [`SkipVerifyConnector`], since tonic's
//! own TLS always verifies).
//!
//! `insecure_skip_verify` still encrypts, and still checks that the server
//! holds the key of the certificate it shows; it does not check who signed
//! the certificate or whose name is in it. The service logs a warning at
//! start for every exporter that sets it.

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use hyper_util::rt::TokioIo;
use rustls::{
    ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    crypto::WebPkiSupportedAlgorithms,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime, pem::PemObject};
use tokio::net::TcpStream;
use tokio_rustls::{TlsConnector, client::TlsStream};

use super::backend::SettingsError;
use crate::config::exporters::ClientTlsConfig;

fn read(key: &'static str, path: &str) -> Result<Vec<u8>, SettingsError> {
    std::fs::read(path).map_err(|source| SettingsError::TlsFile {
        key,
        path: path.to_owned(),
        source,
    })
}

fn pem_error(key: &'static str, path: &str, e: impl std::fmt::Display) -> SettingsError {
    SettingsError::Tls(format!("tls.{key} {path}: {e}"))
}

/// The rustls client config a `tls` block describes, offering `alpn`.
pub fn client_config(tls: &ClientTlsConfig, alpn: &[&[u8]]) -> Result<ClientConfig, SettingsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| SettingsError::Tls(e.to_string()))?;
    let builder = if tls.insecure_skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(SkipVerify(
                provider.signature_verification_algorithms,
            )))
    } else {
        let mut roots = RootCertStore::empty();
        match &tls.ca_file {
            Some(path) => {
                let pem = read("ca_file", path)?;
                for cert in CertificateDer::pem_slice_iter(&pem) {
                    let cert = cert.map_err(|e| pem_error("ca_file", path, e))?;
                    roots.add(cert).map_err(|e| pem_error("ca_file", path, e))?;
                }
                if roots.is_empty() {
                    return Err(pem_error("ca_file", path, "no PEM certificate in the file"));
                }
            }
            None => {
                return finish(
                    hyper_rustls::ConfigBuilderExt::with_native_roots(builder).map_err(|e| {
                        SettingsError::Tls(format!("system root certificates: {e}"))
                    })?,
                    tls,
                    alpn,
                );
            }
        }
        builder.with_root_certificates(roots)
    };
    finish(builder, tls, alpn)
}

/// Adds the client certificate, if any, and the ALPN protocols.
fn finish(
    builder: rustls::ConfigBuilder<ClientConfig, rustls::client::WantsClientCert>,
    tls: &ClientTlsConfig,
    alpn: &[&[u8]],
) -> Result<ClientConfig, SettingsError> {
    let mut config = match (&tls.cert_file, &tls.key_file) {
        (Some(cert), Some(key)) => {
            let pem = read("cert_file", cert)?;
            let chain = CertificateDer::pem_slice_iter(&pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| pem_error("cert_file", cert, e))?;
            let pem = read("key_file", key)?;
            let private =
                PrivateKeyDer::from_pem_slice(&pem).map_err(|e| pem_error("key_file", key, e))?;
            builder
                .with_client_auth_cert(chain, private)
                .map_err(|e| SettingsError::Tls(format!("tls.cert_file and tls.key_file: {e}")))?
        }
        _ => builder.with_no_client_auth(),
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

/// Accepts any certificate; still checks the handshake signatures, so the
/// peer must hold the key of the certificate it presents.
#[derive(Debug)]
struct SkipVerify(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for SkipVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

/// TLS for a gRPC backend whose certificate is not verified
/// (`insecure_skip_verify`): tonic is given an `http://` URI and this
/// connector, which opens TCP (`TCP_NODELAY`) and then TLS with ALPN `h2`.
#[derive(Clone)]
pub struct SkipVerifyConnector {
    connector: TlsConnector,
    server_name: Option<ServerName<'static>>,
}

impl std::fmt::Debug for SkipVerifyConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SkipVerifyConnector")
    }
}

impl SkipVerifyConnector {
    /// A connector for the settings of `tls` (which sets `insecure_skip_verify`).
    pub fn new(tls: &ClientTlsConfig) -> Result<SkipVerifyConnector, SettingsError> {
        let config = client_config(tls, &[b"h2"])?;
        let server_name = match &tls.server_name_override {
            Some(name) => Some(
                ServerName::try_from(name.clone())
                    .map_err(|e| SettingsError::Tls(format!("tls.server_name_override: {e}")))?,
            ),
            None => None,
        };
        Ok(SkipVerifyConnector {
            connector: TlsConnector::from(Arc::new(config)),
            server_name,
        })
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl tower::Service<http::Uri> for SkipVerifyConnector {
    type Response = TokioIo<TlsStream<TcpStream>>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let host = uri
                .host()
                .ok_or("the endpoint has no host")?
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string();
            let port = uri.port_u16().unwrap_or(443);
            let tcp = TcpStream::connect((host.as_str(), port)).await?;
            tcp.set_nodelay(true)?;
            let name = match this.server_name {
                Some(name) => name,
                None => ServerName::try_from(host)?,
            };
            let tls = this.connector.connect(name, tcp).await?;
            Ok(TokioIo::new(tls))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_ca_file_names_the_key() {
        let tls = ClientTlsConfig {
            ca_file: Some("/nonexistent/ca.pem".into()),
            ..ClientTlsConfig::default()
        };
        let e = client_config(&tls, &[]).unwrap_err().to_string();
        assert!(e.starts_with("tls.ca_file /nonexistent/ca.pem"), "{e}");
    }
}
