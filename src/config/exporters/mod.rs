//! Exporter settings: `loadbalancing` (first tier), `otlp` and `otlphttp`
//! (second tier), `debug`.

mod debug;
mod loadbalancing;
mod otlp;
mod otlphttp;
mod resolver;
mod settings;

use serde::Deserializer;

pub use debug::{DebugExporterConfig, Verbosity};
pub use loadbalancing::{LoadBalancingExporterConfig, ProtocolConfig, RoutingKey};
pub(crate) use otlp::EndpointRule;
pub use otlp::OtlpExporterConfig;
pub use otlphttp::{HttpEncoding, OtlpHttpExporterConfig};
pub use resolver::{
    DEFAULT_BACKEND_PORT, DnsRecord, DnsResolverConfig, K8sResolverConfig, Resolver,
    ResolverConfig, StaticResolverConfig,
};
pub use settings::{ClientTlsConfig, Compression, QueueConfig, QueueSizer, RetryConfig};

use super::component::ComponentKind;
use super::de::null_as_default;

/// One configured exporter, by type.
#[derive(Debug, Clone, PartialEq)]
pub enum ExporterConfig {
    /// `load_balancing` (deprecated alias `loadbalancing`).
    LoadBalancing(Box<LoadBalancingExporterConfig>),
    /// `otlp_grpc` (deprecated alias `otlp`).
    Otlp(Box<OtlpExporterConfig>),
    /// `otlp_http` (deprecated alias `otlphttp`).
    OtlpHttp(Box<OtlpHttpExporterConfig>),
    /// `debug`.
    Debug(DebugExporterConfig),
}

impl ComponentKind for ExporterConfig {
    const KIND: &'static str = "exporter";
    const SUPPORTED: &'static [&'static str] =
        &["load_balancing", "otlp_grpc", "otlp_http", "debug"];
    const ALIASES: &'static [(&'static str, &'static str)] = &[
        ("loadbalancing", "load_balancing"),
        ("otlp", "otlp_grpc"),
        ("otlphttp", "otlp_http"),
    ];

    fn deserialize_typed<'de, D: Deserializer<'de>>(
        type_name: &str,
        de: D,
    ) -> Option<Result<Self, D::Error>> {
        Some(match type_name {
            "load_balancing" => {
                null_as_default(de).map(|c| ExporterConfig::LoadBalancing(Box::new(c)))
            }
            "otlp_grpc" => null_as_default(de).map(|c| ExporterConfig::Otlp(Box::new(c))),
            "otlp_http" => null_as_default(de).map(|c| ExporterConfig::OtlpHttp(Box::new(c))),
            "debug" => null_as_default(de).map(ExporterConfig::Debug),
            _ => return None,
        })
    }
}
