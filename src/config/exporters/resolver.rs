//! `loadbalancing.resolver`: where the list of backends comes from.

use std::collections::BTreeSet;
use std::time::Duration;

use serde::Deserialize;

use crate::config::de::{Unsupported, present};
use crate::config::duration;
use crate::config::endpoint::Endpoint;
use crate::config::error::{ConfigError, child, item};

/// The port a backend gets when its address has none, as in the collector.
pub const DEFAULT_BACKEND_PORT: u16 = 4317;

/// The backend resolver: exactly one of `static`, `dns`, `k8s`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ResolverConfig {
    /// A fixed list of backends.
    #[serde(rename = "static", deserialize_with = "present")]
    pub static_: Option<StaticResolverConfig>,
    /// Backends from a DNS name, re-resolved every `interval`.
    #[serde(deserialize_with = "present")]
    pub dns: Option<DnsResolverConfig>,
    /// Backends from a Kubernetes service's EndpointSlices.
    #[serde(deserialize_with = "present")]
    pub k8s: Option<K8sResolverConfig>,
    /// Not supported by otlp-lb.
    pub aws_cloud_map: Unsupported,
}

/// The resolver a [`ResolverConfig`] selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolver<'a> {
    /// `static`.
    Static(&'a StaticResolverConfig),
    /// `dns`.
    Dns(&'a DnsResolverConfig),
    /// `k8s`.
    K8s(&'a K8sResolverConfig),
}

impl Resolver<'_> {
    /// The resolver's name in the collector's self-metrics (`static`, `dns`, `k8s`).
    pub fn name(&self) -> &'static str {
        match self {
            Resolver::Static(_) => "static",
            Resolver::Dns(_) => "dns",
            Resolver::K8s(_) => "k8s",
        }
    }
}

impl ResolverConfig {
    /// The one resolver that is set; `None` only before validation passes.
    pub fn selected(&self) -> Option<Resolver<'_>> {
        match (&self.static_, &self.dns, &self.k8s) {
            (Some(s), None, None) => Some(Resolver::Static(s)),
            (None, Some(d), None) => Some(Resolver::Dns(d)),
            (None, None, Some(k)) => Some(Resolver::K8s(k)),
            _ => None,
        }
    }

    pub(crate) fn validate(&self, path: &str) -> Result<(), ConfigError> {
        match self.selected() {
            Some(Resolver::Static(s)) => s.validate(&child(path, "static")),
            Some(Resolver::Dns(d)) => d.validate(&child(path, "dns")),
            Some(Resolver::K8s(k)) => k.validate(&child(path, "k8s")),
            None => Err(ConfigError::new(
                path,
                "exactly one of static, dns, k8s must be set",
            )),
        }
    }
}

/// A fixed list of backends.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StaticResolverConfig {
    /// Backends as `host:port` or `host` (port 4317).
    pub hostnames: Vec<String>,
}

impl StaticResolverConfig {
    /// The backends, each with its port, sorted as the collector sorts them.
    /// Entries that do not parse are left out (validation refuses them).
    pub fn endpoints(&self) -> Vec<Endpoint> {
        let mut out: Vec<Endpoint> = self
            .hostnames
            .iter()
            .filter_map(|h| Endpoint::parse_with_default_port(h, DEFAULT_BACKEND_PORT).ok())
            .collect();
        out.sort_by_key(|hp| hp.to_string());
        out
    }

    fn validate(&self, path: &str) -> Result<(), ConfigError> {
        let hostnames = child(path, "hostnames");
        if self.hostnames.is_empty() {
            return Err(ConfigError::new(
                hostnames,
                "must list at least one backend",
            ));
        }
        let mut seen = BTreeSet::new();
        for (i, h) in self.hostnames.iter().enumerate() {
            let hp = Endpoint::parse_with_default_port(h, DEFAULT_BACKEND_PORT)
                .map_err(|e| ConfigError::new(item(&hostnames, i), e))?;
            if !seen.insert(hp.to_string()) {
                return Err(ConfigError::new(
                    item(&hostnames, i),
                    format!("backend {hp} is listed twice"),
                ));
            }
        }
        Ok(())
    }
}

/// Which DNS records the `dns` resolver asks for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum DnsRecord {
    /// A and AAAA records, with `port` (default 4317) appended to each address. The default.
    #[default]
    #[serde(rename = "A", alias = "a")]
    A,
    /// SRV records (`_otlp._tcp.collectors.example.com`), each target with its own port.
    #[serde(rename = "SRV", alias = "srv")]
    Srv,
}

/// Backends from a DNS name.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DnsResolverConfig {
    /// The name to resolve (required): A/AAAA name, or SRV name with `record: SRV`.
    pub hostname: String,
    /// Port appended to every resolved address. Default 4317. Not used with SRV.
    pub port: Option<u16>,
    /// How often to resolve again. Default 5s.
    #[serde(deserialize_with = "duration::deserialize")]
    pub interval: Duration,
    /// Deadline of one resolution. Default 1s.
    #[serde(deserialize_with = "duration::deserialize")]
    pub timeout: Duration,
    /// (otlp-lb extension) DNS server as `host:port`; the system resolver when unset.
    pub nameserver: Option<String>,
    /// (otlp-lb extension) `A` (A and AAAA, the collector's behaviour) or `SRV`. Default A.
    pub record: DnsRecord,
}

impl Default for DnsResolverConfig {
    fn default() -> DnsResolverConfig {
        DnsResolverConfig {
            hostname: String::new(),
            port: None,
            interval: Duration::from_secs(5),
            timeout: Duration::from_secs(1),
            nameserver: None,
            record: DnsRecord::A,
        }
    }
}

impl DnsResolverConfig {
    /// The port appended to A/AAAA results: `port`, or 4317.
    pub fn effective_port(&self) -> u16 {
        self.port.unwrap_or(DEFAULT_BACKEND_PORT)
    }

    /// The parsed `nameserver`, if set (and valid).
    pub fn nameserver_addr(&self) -> Option<Endpoint> {
        Endpoint::parse(self.nameserver.as_deref()?).ok()
    }

    fn validate(&self, path: &str) -> Result<(), ConfigError> {
        let hostname = child(path, "hostname");
        if self.hostname.is_empty() {
            return Err(ConfigError::new(hostname, "required"));
        }
        if self.hostname.contains(':') {
            return Err(ConfigError::new(
                hostname,
                "must be a name without a port; set the port with port",
            ));
        }
        if self.record == DnsRecord::Srv && self.port.is_some() {
            return Err(ConfigError::new(
                child(path, "port"),
                "not used with record: SRV (each SRV record carries its port); remove it",
            ));
        }
        if self.port == Some(0) {
            return Err(ConfigError::new(child(path, "port"), "must not be 0"));
        }
        if self.interval.is_zero() {
            return Err(ConfigError::new(
                child(path, "interval"),
                "must be positive",
            ));
        }
        if self.timeout.is_zero() {
            return Err(ConfigError::new(child(path, "timeout"), "must be positive"));
        }
        if let Some(ns) = &self.nameserver {
            Endpoint::parse(ns).map_err(|e| ConfigError::new(child(path, "nameserver"), e))?;
        }
        Ok(())
    }
}

/// Backends from a Kubernetes service: one backend per ready endpoint and port.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct K8sResolverConfig {
    /// `NAME` or `NAME.NAMESPACE` (required); without a namespace, the pod's own.
    pub service: String,
    /// Ports to send to; each endpoint gets one backend per port. Default `[4317]`.
    pub ports: Vec<u16>,
    /// Deadline for connecting and sending a request to the Kubernetes API
    /// server, and how long start-up waits for the first list of endpoints
    /// (after that the watch goes on and the ring fills when the list
    /// arrives). Default 1s.
    #[serde(deserialize_with = "duration::deserialize")]
    pub timeout: Duration,
    /// Address backends as `<pod-hostname>.<service>.<namespace>` instead of
    /// by IP (for a headless StatefulSet, e.g. for TLS). Default false.
    pub return_hostnames: bool,
}

impl Default for K8sResolverConfig {
    fn default() -> K8sResolverConfig {
        K8sResolverConfig {
            service: String::new(),
            ports: vec![DEFAULT_BACKEND_PORT],
            timeout: Duration::from_secs(1),
            return_hostnames: false,
        }
    }
}

impl K8sResolverConfig {
    /// The service name, before any `.`.
    pub fn service_name(&self) -> &str {
        self.service
            .split_once('.')
            .map_or(self.service.as_str(), |(name, _)| name)
    }

    /// The namespace after the `.`, if given.
    pub fn namespace(&self) -> Option<&str> {
        self.service.split_once('.').map(|(_, ns)| ns)
    }

    fn validate(&self, path: &str) -> Result<(), ConfigError> {
        let service = child(path, "service");
        if self.service.is_empty() {
            return Err(ConfigError::new(service, "required"));
        }
        let name_ok = |s: &str| {
            !s.is_empty()
                && s.len() <= 63
                && s.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !s.starts_with('-')
                && !s.ends_with('-')
        };
        if !name_ok(self.service_name()) || !self.namespace().is_none_or(name_ok) {
            return Err(ConfigError::new(
                service,
                format!(
                    "\"{}\" is not NAME or NAME.NAMESPACE (lowercase letters, digits and -)",
                    self.service
                ),
            ));
        }
        let ports = child(path, "ports");
        if self.ports.is_empty() {
            return Err(ConfigError::new(ports, "must list at least one port"));
        }
        for (i, port) in self.ports.iter().enumerate() {
            if *port == 0 {
                return Err(ConfigError::new(item(&ports, i), "must not be 0"));
            }
            if self.ports[..i].contains(port) {
                return Err(ConfigError::new(
                    item(&ports, i),
                    format!("port {port} is listed twice"),
                ));
            }
        }
        if self.timeout.is_zero() {
            return Err(ConfigError::new(child(path, "timeout"), "must be positive"));
        }
        Ok(())
    }
}
