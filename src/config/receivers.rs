//! Receiver settings: the OTLP receiver (gRPC and HTTP), the only one.

use std::time::Duration;

use serde::{Deserialize, Deserializer};

use super::auth::AuthConfig;
use super::component::ComponentKind;
use super::de::{Unsupported, null_as_default, present};
use super::duration;
use super::endpoint::Endpoint;
use super::error::{ConfigError, child, item};

/// One configured receiver, by type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReceiverConfig {
    /// `otlp`.
    Otlp(OtlpReceiverConfig),
}

impl ComponentKind for ReceiverConfig {
    const KIND: &'static str = "receiver";
    const SUPPORTED: &'static [&'static str] = &["otlp"];

    fn deserialize_typed<'de, D: Deserializer<'de>>(
        type_name: &str,
        de: D,
    ) -> Option<Result<Self, D::Error>> {
        match type_name {
            "otlp" => Some(null_as_default(de).map(ReceiverConfig::Otlp)),
            _ => None,
        }
    }
}

impl ReceiverConfig {
    pub(crate) fn validate(&self, path: &str) -> Result<(), ConfigError> {
        match self {
            ReceiverConfig::Otlp(otlp) => otlp.validate(path),
        }
    }
}

/// The OTLP receiver.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OtlpReceiverConfig {
    /// The servers to run: at least one of `grpc` and `http`.
    #[serde(deserialize_with = "null_as_default")]
    pub protocols: OtlpProtocols,
}

/// `protocols`: a key that is present, even with no value, turns its server on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OtlpProtocols {
    /// OTLP/gRPC server.
    #[serde(deserialize_with = "present")]
    pub grpc: Option<GrpcServerConfig>,
    /// OTLP/HTTP server (protobuf and JSON).
    #[serde(deserialize_with = "present")]
    pub http: Option<HttpServerConfig>,
}

/// The OTLP/gRPC server.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GrpcServerConfig {
    /// Listen address, `host:port`. Default 0.0.0.0:4317.
    pub endpoint: String,
    /// Largest request accepted, in MiB. Default 4, as in the collector.
    pub max_recv_msg_size_mib: u64,
    /// Server TLS; plain text when absent.
    #[serde(deserialize_with = "present")]
    pub tls: Option<ServerTlsConfig>,
    /// Requires a credential of every request: `authenticator` names a
    /// `bearertokenauth` extension. Default none.
    pub auth: Option<AuthConfig>,
    /// Keepalive: only `server_parameters.max_connection_idle`.
    #[serde(deserialize_with = "null_as_default")]
    pub keepalive: KeepaliveConfig,
    /// Keep the request's gRPC metadata with it, for `headers_setter`'s
    /// `from_context` (only the keys those name are kept). Default false.
    pub include_metadata: bool,
    /// HTTP/2 streams (concurrent calls) per connection. Default 100.
    pub max_concurrent_streams: u32,
    /// otlp-lb's own: connections at once; the next waits in the listen
    /// backlog until one closes. 0 (the default): no cap.
    pub otlp_lb_max_connections: usize,
    /// otlp-lb's own: the largest HTTP/2 header list (metadata) of a call,
    /// in bytes. Default 16384.
    pub otlp_lb_max_header_list_size: u32,
    /// otlp-lb's own: the time a call's request message may take to arrive
    /// once its headers have; 0 turns it off. Default 2m.
    #[serde(deserialize_with = "duration::deserialize")]
    pub otlp_lb_request_body_timeout: Duration,
    /// Not supported by otlp-lb.
    pub read_buffer_size: Unsupported,
    /// Not supported by otlp-lb.
    pub write_buffer_size: Unsupported,
    /// Not supported by otlp-lb: TCP only.
    pub transport: Unsupported,
}

impl Default for GrpcServerConfig {
    fn default() -> GrpcServerConfig {
        GrpcServerConfig {
            endpoint: "0.0.0.0:4317".into(),
            max_recv_msg_size_mib: 4,
            tls: None,
            auth: None,
            keepalive: KeepaliveConfig::default(),
            include_metadata: false,
            max_concurrent_streams: 100,
            otlp_lb_max_connections: 0,
            otlp_lb_max_header_list_size: 16 * 1024,
            otlp_lb_request_body_timeout: Duration::from_secs(120),
            read_buffer_size: Unsupported,
            write_buffer_size: Unsupported,
            transport: Unsupported,
        }
    }
}

impl GrpcServerConfig {
    /// `max_recv_msg_size_mib` in bytes.
    pub fn max_recv_msg_size_bytes(&self) -> u64 {
        self.max_recv_msg_size_mib.saturating_mul(1024 * 1024)
    }
}

/// The OTLP/HTTP server.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpServerConfig {
    /// Listen address, `host:port`. Default 0.0.0.0:4318.
    pub endpoint: String,
    /// Largest request body accepted, in bytes. Default 20971520 (20 MiB).
    pub max_request_body_size: u64,
    /// Server TLS; plain text when absent.
    #[serde(deserialize_with = "present")]
    pub tls: Option<ServerTlsConfig>,
    /// Time allowed for a request's headers (HTTP/1.1). Default 1m.
    #[serde(deserialize_with = "duration::deserialize")]
    pub read_header_timeout: Duration,
    /// Time allowed for a request's body once its headers have arrived; 0
    /// turns it off. Default 2m (the collector's default is none).
    #[serde(deserialize_with = "duration::deserialize")]
    pub read_timeout: Duration,
    /// Close a connection with no request in flight for this long; 0 turns
    /// it off. Default 1m.
    #[serde(deserialize_with = "duration::deserialize")]
    pub idle_timeout: Duration,
    /// otlp-lb's own: connections at once; the next waits in the listen
    /// backlog until one closes. 0 (the default): no cap.
    pub otlp_lb_max_connections: usize,
    /// otlp-lb's own: the largest HTTP/2 header list of a request, in
    /// bytes. Default 16384.
    pub otlp_lb_max_header_list_size: u32,
    /// Not supported by otlp-lb.
    pub write_timeout: Unsupported,
    /// Not supported by otlp-lb.
    pub cors: Unsupported,
    /// Requires a credential of every request: `authenticator` names a
    /// `bearertokenauth` extension. Default none.
    pub auth: Option<AuthConfig>,
    /// Keep the request's HTTP headers with it, for `headers_setter`'s
    /// `from_context` (only the keys those name are kept). Default false.
    pub include_metadata: bool,
    /// Not supported by otlp-lb.
    pub response_headers: Unsupported,
    /// Not supported by otlp-lb: the paths are /v1/traces, /v1/metrics, /v1/logs.
    pub traces_url_path: Unsupported,
    /// Not supported by otlp-lb: the paths are /v1/traces, /v1/metrics, /v1/logs.
    pub metrics_url_path: Unsupported,
    /// Not supported by otlp-lb: the paths are /v1/traces, /v1/metrics, /v1/logs.
    pub logs_url_path: Unsupported,
}

impl Default for HttpServerConfig {
    fn default() -> HttpServerConfig {
        HttpServerConfig {
            endpoint: "0.0.0.0:4318".into(),
            max_request_body_size: 20 * 1024 * 1024,
            tls: None,
            read_header_timeout: Duration::from_secs(60),
            read_timeout: Duration::from_secs(120),
            idle_timeout: Duration::from_secs(60),
            otlp_lb_max_connections: 0,
            otlp_lb_max_header_list_size: 16 * 1024,
            write_timeout: Unsupported,
            cors: Unsupported,
            auth: None,
            include_metadata: false,
            response_headers: Unsupported,
            traces_url_path: Unsupported,
            metrics_url_path: Unsupported,
            logs_url_path: Unsupported,
        }
    }
}

/// `keepalive` of the gRPC server.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KeepaliveConfig {
    /// Connection-level limits.
    #[serde(deserialize_with = "null_as_default")]
    pub server_parameters: KeepaliveServerParameters,
    /// Not supported by otlp-lb.
    pub enforcement_policy: Unsupported,
}

/// `keepalive.server_parameters`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KeepaliveServerParameters {
    /// Close a connection with no call in flight for this long; 0 (the
    /// default, as in the collector) never.
    #[serde(deserialize_with = "duration::deserialize")]
    pub max_connection_idle: Duration,
    /// Not supported by otlp-lb.
    pub max_connection_age: Unsupported,
    /// Not supported by otlp-lb.
    pub max_connection_age_grace: Unsupported,
    /// Not supported by otlp-lb.
    pub time: Unsupported,
    /// Not supported by otlp-lb.
    pub timeout: Unsupported,
}

/// Server TLS of a receiver, with the collector's keys.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerTlsConfig {
    /// PEM certificate chain the server presents. Required.
    pub cert_file: Option<String>,
    /// PEM private key of `cert_file`. Required.
    pub key_file: Option<String>,
    /// PEM CA(s): when set, a client must present a certificate they signed.
    pub client_ca_file: Option<String>,
    /// Lowest TLS version, `"1.2"` (the default) or `"1.3"`.
    pub min_version: Option<String>,
    /// Highest TLS version, `"1.2"` or `"1.3"` (the default).
    pub max_version: Option<String>,
    /// Read `cert_file` and `key_file` again this often; new connections
    /// get the new certificate. 0 (the default): never.
    #[serde(deserialize_with = "duration::deserialize")]
    pub reload_interval: Duration,
    /// IANA names of the cipher suites allowed. As in the collector, the
    /// list restricts TLS 1.2, and TLS 1.3 only when it names a TLS 1.3
    /// suite. Empty (the default): rustls' defaults.
    #[serde(deserialize_with = "null_as_default")]
    pub cipher_suites: Vec<String>,
    /// Not supported by otlp-lb: a server checks clients with `client_ca_file`.
    pub ca_file: Unsupported,
    /// Not supported by otlp-lb; use `client_ca_file`.
    pub ca_pem: Unsupported,
    /// Not supported by otlp-lb; use `cert_file`.
    pub cert_pem: Unsupported,
    /// Not supported by otlp-lb; use `key_file`.
    pub key_pem: Unsupported,
    /// Not supported by otlp-lb: `client_ca_file` is read once at start.
    pub client_ca_file_reload: Unsupported,
    /// Not supported by otlp-lb.
    pub include_system_ca_certs_pool: Unsupported,
    /// Not supported by otlp-lb.
    pub curve_preferences: Unsupported,
    /// Not supported by otlp-lb.
    pub tpm_config: Unsupported,
}

impl ServerTlsConfig {
    fn validate(&self, path: &str) -> Result<(), ConfigError> {
        for (key, value) in [("cert_file", &self.cert_file), ("key_file", &self.key_file)] {
            if value.as_deref().is_none_or(str::is_empty) {
                return Err(ConfigError::new(child(path, key), "required"));
            }
        }
        let rank = |key: &str, v: &Option<String>| match v.as_deref() {
            None => Ok(None),
            Some("1.2") => Ok(Some(2)),
            Some("1.3") => Ok(Some(3)),
            Some("1.0" | "1.1") => Err(ConfigError::new(
                child(path, key),
                "TLS 1.0 and 1.1 are not supported by otlp-lb; use \"1.2\" or \"1.3\"",
            )),
            Some(other) => Err(ConfigError::new(
                child(path, key),
                format!("unknown TLS version {other:?}; use \"1.2\" or \"1.3\""),
            )),
        };
        let min = rank("min_version", &self.min_version)?;
        let max = rank("max_version", &self.max_version)?;
        if let (Some(min), Some(max)) = (min, max)
            && min > max
        {
            return Err(ConfigError::new(
                child(path, "min_version"),
                "must not be above max_version",
            ));
        }
        for (i, name) in self.cipher_suites.iter().enumerate() {
            if crate::receiver::tls::cipher_suite(name).is_none() {
                return Err(ConfigError::new(
                    item(&child(path, "cipher_suites"), i),
                    format!(
                        "{name}: not supported by otlp-lb (rustls implements the AES-GCM and \
                         ChaCha20-Poly1305 suites with ECDHE, and the TLS 1.3 suites)"
                    ),
                ));
            }
        }
        Ok(())
    }
}

impl OtlpReceiverConfig {
    fn validate(&self, path: &str) -> Result<(), ConfigError> {
        let protocols = child(path, "protocols");
        let p = &self.protocols;
        if p.grpc.is_none() && p.http.is_none() {
            return Err(ConfigError::new(
                protocols,
                "at least one of grpc, http must be set",
            ));
        }
        if let Some(grpc) = &p.grpc {
            let path = child(&protocols, "grpc");
            Endpoint::parse_listen(&grpc.endpoint)
                .map_err(|e| ConfigError::new(child(&path, "endpoint"), e))?;
            if grpc.max_recv_msg_size_mib == 0 {
                return Err(ConfigError::new(
                    child(&path, "max_recv_msg_size_mib"),
                    "must be at least 1",
                ));
            }
            if grpc.max_concurrent_streams == 0 {
                return Err(ConfigError::new(
                    child(&path, "max_concurrent_streams"),
                    "must be at least 1",
                ));
            }
            header_list_size(&path, grpc.otlp_lb_max_header_list_size)?;
            if let Some(tls) = &grpc.tls {
                tls.validate(&child(&path, "tls"))?;
            }
        }
        if let Some(http) = &p.http {
            let path = child(&protocols, "http");
            Endpoint::parse_listen(&http.endpoint)
                .map_err(|e| ConfigError::new(child(&path, "endpoint"), e))?;
            if http.max_request_body_size == 0 {
                return Err(ConfigError::new(
                    child(&path, "max_request_body_size"),
                    "must be at least 1",
                ));
            }
            if http.read_header_timeout.is_zero() {
                return Err(ConfigError::new(
                    child(&path, "read_header_timeout"),
                    "must be above 0",
                ));
            }
            header_list_size(&path, http.otlp_lb_max_header_list_size)?;
            if let Some(tls) = &http.tls {
                tls.validate(&child(&path, "tls"))?;
            }
        }
        Ok(())
    }
}

fn header_list_size(path: &str, size: u32) -> Result<(), ConfigError> {
    if size < 1024 {
        return Err(ConfigError::new(
            child(path, "otlp_lb_max_header_list_size"),
            "must be at least 1024",
        ));
    }
    Ok(())
}
