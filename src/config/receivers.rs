//! Receiver settings: the OTLP receiver (gRPC and HTTP), the only one.

use serde::{Deserialize, Deserializer};

use super::auth::AuthConfig;
use super::component::ComponentKind;
use super::de::{Unsupported, null_as_default, present};
use super::endpoint::Endpoint;
use super::error::{ConfigError, child};

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
    /// Not supported by otlp-lb: the receiver serves plain text.
    pub tls: Unsupported,
    /// Requires a credential of every request: `authenticator` names a
    /// `bearertokenauth` extension. Default none.
    pub auth: Option<AuthConfig>,
    /// Not supported by otlp-lb.
    pub keepalive: Unsupported,
    /// Keep the request's gRPC metadata with it, for `headers_setter`'s
    /// `from_context` (only the keys those name are kept). Default false.
    pub include_metadata: bool,
    /// Not supported by otlp-lb.
    pub max_concurrent_streams: Unsupported,
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
            tls: Unsupported,
            auth: None,
            keepalive: Unsupported,
            include_metadata: false,
            max_concurrent_streams: Unsupported,
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
    /// Not supported by otlp-lb: the receiver serves plain text.
    pub tls: Unsupported,
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
            tls: Unsupported,
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
        }
        Ok(())
    }
}
