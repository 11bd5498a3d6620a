//! The `dns` resolver: backends from A/AAAA (or SRV) records, asked again
//! every `interval`.
//!
//! Every tick goes to the DNS server: the resolver's cache is cleared first,
//! so a record's TTL never hides a change for longer than one interval. A
//! tick that fails, times out or finds no record keeps the last good set
//! (and counts `success="false"`): one bad answer never empties the ring.
//! Only a set that differs from the last one is sent downstream.
//!
//! A/AAAA answers become `ip:port` backends (IPv6 bracketed). SRV answers
//! become `target:port`: the target stays a name, resolved when the backend
//! connects (by the system resolver), so TLS can verify it.

use std::{
    collections::BTreeSet,
    net::{IpAddr, SocketAddr},
    time::Duration,
};

use futures::StreamExt;
use hickory_resolver::{
    TokioResolver,
    config::{
        LookupIpStrategy, NameServerConfig, ResolveHosts, ResolverConfig as HickoryConfig,
        ResolverOpts,
    },
    net::runtime::TokioRuntimeProvider,
    proto::rr::RData,
};
use tokio::time::{Interval, MissedTickBehavior};

use super::{Resolutions, Update, Updates};
use crate::config::{
    endpoint::Endpoint,
    exporters::{DnsRecord, DnsResolverConfig},
};

/// Why one resolution produced no set.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    /// The resolver could not be set up (system config, nameserver address).
    #[error("cannot set up the DNS resolver: {0}")]
    Setup(String),
    /// The server answered with an error, or not at all.
    #[error("resolving {name}: {message}")]
    Lookup {
        /// The name asked for.
        name: String,
        /// What the resolver reported.
        message: String,
    },
    /// No answer within `timeout`.
    #[error("resolving {name}: no answer within {timeout:?}")]
    Timeout {
        /// The name asked for.
        name: String,
        /// The configured timeout.
        timeout: Duration,
    },
    /// The answer held no usable record.
    #[error("resolving {name}: no {record} record")]
    Empty {
        /// The name asked for.
        name: String,
        /// `A/AAAA` or `SRV`.
        record: &'static str,
    },
}

/// Resolves `config` now and then every `config.interval`; yields a
/// `Reset` whenever the resolved set differs from the last good one.
pub fn resolve(config: &DnsResolverConfig, resolutions: Resolutions) -> Updates {
    let mut ticks = tokio::time::interval(config.interval);
    // A slow answer delays the next question; it never causes a burst.
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let state = State {
        config: config.clone(),
        resolver: None,
        last: None,
        ticks,
        resolutions,
    };
    futures::stream::unfold(state, |mut state| async move {
        let set = state.next_change().await;
        Some((Update::Reset(set), state))
    })
    .boxed()
}

struct State {
    config: DnsResolverConfig,
    /// Built on the first tick (and again after a setup failure).
    resolver: Option<TokioResolver>,
    last: Option<BTreeSet<Endpoint>>,
    ticks: Interval,
    resolutions: Resolutions,
}

impl State {
    /// Resolves on every tick until the set differs from the last good one.
    async fn next_change(&mut self) -> BTreeSet<Endpoint> {
        loop {
            self.ticks.tick().await;
            match self.resolve_once().await {
                Ok(set) => {
                    self.resolutions.record_endpoints(set.len());
                    if self.last.as_ref() != Some(&set) {
                        tracing::info!(hostname = %self.config.hostname, backends = set.len(), "DNS resolution changed the backend set");
                        self.last = Some(set.clone());
                        return set;
                    }
                }
                Err(e) => {
                    self.resolutions.record(false);
                    let kept = self.last.as_ref().map_or(0, BTreeSet::len);
                    tracing::warn!(kept, "{e}; keeping the last good backend set");
                }
            }
        }
    }

    async fn resolve_once(&mut self) -> Result<BTreeSet<Endpoint>, DnsError> {
        let resolver = match &self.resolver {
            Some(resolver) => resolver,
            None => self.resolver.insert(build(&self.config).await?),
        };
        // No caching between ticks: every resolution asks the server.
        resolver.clear_cache();
        let name = self.config.hostname.as_str();
        let timeout = self.config.timeout;
        let answer = tokio::time::timeout(timeout, lookup(resolver, &self.config))
            .await
            .map_err(|_| DnsError::Timeout {
                name: name.to_string(),
                timeout,
            })?;
        let set = answer.map_err(|message| DnsError::Lookup {
            name: name.to_string(),
            message,
        })?;
        if set.is_empty() {
            return Err(DnsError::Empty {
                name: name.to_string(),
                record: match self.config.record {
                    DnsRecord::A => "A/AAAA",
                    DnsRecord::Srv => "SRV",
                },
            });
        }
        Ok(set)
    }
}

/// One lookup: `ip:port` per A/AAAA address (IPv6 bracketed), or
/// `target:port` per SRV record.
async fn lookup(
    resolver: &TokioResolver,
    config: &DnsResolverConfig,
) -> Result<BTreeSet<Endpoint>, String> {
    match config.record {
        DnsRecord::A => {
            let port = config.effective_port();
            let ips = resolver
                .lookup_ip(config.hostname.as_str())
                .await
                .map_err(|e| e.to_string())?;
            Ok(ips
                .iter()
                .map(|ip| Endpoint::from_socket_addr(SocketAddr::new(ip, port)))
                .collect())
        }
        DnsRecord::Srv => {
            let answer = resolver
                .srv_lookup(config.hostname.as_str())
                .await
                .map_err(|e| e.to_string())?;
            Ok(answer
                .answers()
                .iter()
                .filter_map(|record| match &record.data {
                    RData::SRV(srv) => srv_endpoint(&srv.target.to_utf8(), srv.port),
                    _ => None,
                })
                .collect())
        }
    }
}

/// `target:port` for one SRV record; `None` for the "no service" target
/// `.` and for port 0.
fn srv_endpoint(target: &str, port: u16) -> Option<Endpoint> {
    let host = target.strip_suffix('.').unwrap_or(target);
    if host.is_empty() || port == 0 {
        return None;
    }
    Some(Endpoint::new(host, port))
}

/// The resolver for `config`: the system's, or one that asks only
/// `nameserver` (over UDP, and TCP for truncated answers).
async fn build(config: &DnsResolverConfig) -> Result<TokioResolver, DnsError> {
    let setup = DnsError::Setup;
    let mut builder = match &config.nameserver {
        None => TokioResolver::builder_tokio().map_err(|e| setup(e.to_string()))?,
        Some(text) => {
            let ns = config
                .nameserver_addr()
                .ok_or_else(|| setup(format!("nameserver \"{text}\" is not host:port")))?;
            let addr = match ns.host().parse::<IpAddr>() {
                Ok(ip) => SocketAddr::new(ip, ns.port()),
                // A nameserver given by name is looked up by the system.
                Err(_) => tokio::net::lookup_host((ns.host(), ns.port()))
                    .await
                    .map_err(|e| setup(format!("nameserver {text}: {e}")))?
                    .next()
                    .ok_or_else(|| setup(format!("nameserver {text}: no address")))?,
            };
            let mut server = NameServerConfig::udp_and_tcp(addr.ip());
            for connection in &mut server.connections {
                connection.port = addr.port();
            }
            let mut builder = TokioResolver::builder_with_config(
                HickoryConfig::from_name_servers(vec![server]),
                TokioRuntimeProvider::default(),
            );
            // The named server is the only source of truth.
            builder.options_mut().use_hosts_file = ResolveHosts::Never;
            builder
        }
    };
    let options: &mut ResolverOpts = builder.options_mut();
    options.timeout = config.timeout;
    options.attempts = 1;
    options.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
    builder.build().map_err(|e| setup(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn srv_targets_become_host_port() {
        let text = |target, port| srv_endpoint(target, port).map(|e| e.to_string());
        assert_eq!(
            text("Collector-0.collectors.example.com.", 4317).as_deref(),
            Some("collector-0.collectors.example.com:4317")
        );
        assert_eq!(text("10.0.0.7.", 5317).as_deref(), Some("10.0.0.7:5317"));
        assert_eq!(srv_endpoint(".", 4317), None);
        assert_eq!(srv_endpoint("a.example.com.", 0), None);
    }
}
