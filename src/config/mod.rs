//! The configuration, in the OpenTelemetry Collector's YAML shape, so that a
//! first-tier collector config with the `loadbalancing` exporter runs
//! unchanged.
//!
//! Loading is three steps: expand `${env:VAR}` references ([`expand`]), parse
//! into the typed structs below, then [`Config::validate`]. Every error names
//! the key path it is about. Unknown keys and component types are errors, and
//! so are collector keys otlp-lb recognises but does not implement: nothing
//! in a config is ever silently ignored.
//!
//! This module only describes; it never opens a socket or starts a task.

pub mod auth;
mod component;
mod de;
pub mod duration;
pub mod endpoint;
mod error;
pub mod expand;
pub mod exporters;
pub mod extensions;
pub mod processors;
pub mod receivers;
pub mod service;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::Deserialize;

pub use component::{ComponentId, PipelineId};
pub use de::Unsupported;
pub use error::ConfigError;

use crate::signal::Signal;
use component::{ComponentKind, deserialize_components};
use endpoint::Endpoint;
use error::{child, item};
use exporters::{EndpointRule, ExporterConfig};
use extensions::ExtensionConfig;
use processors::ProcessorConfig;
use receivers::ReceiverConfig;
use service::ServiceConfig;

/// A whole configuration file.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Receivers by id: `otlp` or `otlp/NAME`.
    #[serde(deserialize_with = "deserialize_components")]
    pub receivers: BTreeMap<ComponentId, ReceiverConfig>,
    /// Processors by id: `tail_sampling[/NAME]`, `cumulativetodelta[/NAME]`.
    #[serde(deserialize_with = "deserialize_components")]
    pub processors: BTreeMap<ComponentId, ProcessorConfig>,
    /// Exporters by id: `load_balancing`, `otlp_grpc`, `otlp_http`, `debug`
    /// (or the deprecated `loadbalancing`, `otlp`, `otlphttp`), each
    /// optionally `/NAME`.
    #[serde(deserialize_with = "deserialize_components")]
    pub exporters: BTreeMap<ComponentId, ExporterConfig>,
    /// Extensions by id: `health_check[/NAME]`.
    #[serde(deserialize_with = "deserialize_components")]
    pub extensions: BTreeMap<ComponentId, ExtensionConfig>,
    /// Pipelines, extensions to run, and self-telemetry.
    #[serde(deserialize_with = "de::null_as_default")]
    pub service: ServiceConfig,
    /// Not supported by otlp-lb.
    pub connectors: Unsupported,
}

impl Config {
    /// Expands environment references in `text`, parses it and validates it.
    pub fn from_yaml(text: &str) -> Result<Config, ConfigError> {
        let expanded = expand::expand_env(text)?;
        let config: Config = de::from_yaml_str(&expanded)?;
        config.validate()?;
        Ok(config)
    }

    /// One note per component written under a deprecated type name (the
    /// collector's pre-2026 names, such as `loadbalancing`), saying what it
    /// is called now. The service logs them at start, as the collector does.
    pub fn deprecations(&self) -> Vec<String> {
        fn notes<T: ComponentKind, V>(
            section: &str,
            ids: &BTreeMap<ComponentId, V>,
            out: &mut Vec<String>,
        ) {
            for id in ids.keys() {
                if let (current, true) = T::current_name(id.type_name()) {
                    out.push(format!(
                        "{section}.{id}: \"{}\" is a deprecated name of \"{current}\"; \
                         use the new name",
                        id.type_name()
                    ));
                }
            }
        }
        let mut out = Vec::new();
        notes::<ReceiverConfig, _>("receivers", &self.receivers, &mut out);
        notes::<ProcessorConfig, _>("processors", &self.processors, &mut out);
        notes::<ExporterConfig, _>("exporters", &self.exporters, &mut out);
        notes::<ExtensionConfig, _>("extensions", &self.extensions, &mut out);
        out
    }

    /// Reads the file at `path`, then [`Config::from_yaml`].
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::new(path.display().to_string(), e.to_string()))?;
        Config::from_yaml(&text)
    }

    /// Checks everything the types cannot: required settings, value ranges,
    /// references between sections, and that each component fits the signal
    /// of every pipeline that uses it. Returns the first problem found.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (id, receiver) in &self.receivers {
            receiver.validate(&format!("receivers.{id}"))?;
        }
        for (id, processor) in &self.processors {
            processor.validate(&format!("processors.{id}"))?;
        }
        for (id, exporter) in &self.exporters {
            let path = format!("exporters.{id}");
            match exporter {
                ExporterConfig::LoadBalancing(c) => c.validate(&path)?,
                ExporterConfig::Otlp(c) => c.validate(&path, EndpointRule::Required)?,
                ExporterConfig::OtlpHttp(c) => c.validate(&path)?,
                ExporterConfig::Debug(_) => {}
            }
        }
        for (id, extension) in &self.extensions {
            extension.validate(&format!("extensions.{id}"))?;
        }
        self.service.validate_own()?;
        check_references(
            "service.extensions",
            &self.service.extensions,
            &self.extensions,
            "extension",
            "extensions",
        )?;
        for (id, pipeline) in &self.service.pipelines {
            let path = format!("service.pipelines.{id}");
            self.validate_pipeline(&path, id, pipeline)?;
        }
        self.validate_authenticators()?;
        self.validate_listen_addresses()
    }

    /// Every `auth.authenticator` names an extension of the right kind that
    /// runs: a `bearertokenauth` on receivers, a `headers_setter` on
    /// exporters, listed in `service.extensions` as the collector requires.
    fn validate_authenticators(&self) -> Result<(), ConfigError> {
        let mut uses: Vec<(String, &auth::AuthConfig, bool)> = Vec::new();
        for (id, receiver) in &self.receivers {
            let ReceiverConfig::Otlp(otlp) = receiver;
            let path = format!("receivers.{id}.protocols");
            if let Some(a) = otlp.protocols.grpc.as_ref().and_then(|g| g.auth.as_ref()) {
                uses.push((format!("{path}.grpc.auth.authenticator"), a, true));
            }
            if let Some(a) = otlp.protocols.http.as_ref().and_then(|h| h.auth.as_ref()) {
                uses.push((format!("{path}.http.auth.authenticator"), a, true));
            }
        }
        for (id, exporter) in &self.exporters {
            let (key, auth) = match exporter {
                ExporterConfig::LoadBalancing(c) => ("protocol.otlp.auth", &c.protocol.otlp.auth),
                ExporterConfig::Otlp(c) => ("auth", &c.auth),
                ExporterConfig::OtlpHttp(c) => ("auth", &c.auth),
                ExporterConfig::Debug(_) => continue,
            };
            if let Some(a) = auth {
                uses.push((format!("exporters.{id}.{key}.authenticator"), a, false));
            }
        }
        for (path, auth, server) in uses {
            let id = &auth.authenticator;
            let (want, other) = if server {
                ("bearertokenauth", "a receiver")
            } else {
                ("headers_setter", "an exporter")
            };
            match (self.extensions.get(id), server) {
                (None, _) => {
                    return Err(ConfigError::new(
                        path,
                        format!("extension \"{id}\" is not configured under extensions"),
                    ));
                }
                (Some(ExtensionConfig::BearerTokenAuth(_)), true)
                | (Some(ExtensionConfig::HeadersSetter(_)), false) => {}
                (Some(_), _) => {
                    return Err(ConfigError::new(
                        path,
                        format!(
                            "extension \"{id}\" cannot authenticate {other}; otlp-lb supports \
                             {want} there"
                        ),
                    ));
                }
            }
            if !self.service.extensions.contains(id) {
                return Err(ConfigError::new(
                    path,
                    format!("extension \"{id}\" must also be listed in service.extensions"),
                ));
            }
        }
        Ok(())
    }

    /// The incoming header names that receivers with `include_metadata`
    /// keep with each request: those the `headers_setter` extensions read
    /// (`from_context`), lower case, sorted. Nothing else of a client's
    /// headers travels with its data.
    pub fn metadata_keys(&self) -> BTreeSet<String> {
        self.extensions
            .values()
            .filter_map(|e| match e {
                ExtensionConfig::HeadersSetter(h) => Some(h.context_keys()),
                _ => None,
            })
            .flatten()
            .collect()
    }

    fn validate_pipeline(
        &self,
        path: &str,
        id: &PipelineId,
        pipeline: &service::PipelineConfig,
    ) -> Result<(), ConfigError> {
        let signal = id.signal;
        let receivers = child(path, "receivers");
        if pipeline.receivers.is_empty() {
            return Err(ConfigError::new(
                receivers,
                "at least one receiver is required",
            ));
        }
        check_references(
            &receivers,
            &pipeline.receivers,
            &self.receivers,
            "receiver",
            "receivers",
        )?;

        let processors = child(path, "processors");
        check_references(
            &processors,
            &pipeline.processors,
            &self.processors,
            "processor",
            "processors",
        )?;
        for (i, pid) in pipeline.processors.iter().enumerate() {
            if let Some(processor) = self.processors.get(pid)
                && processor.signal() != signal
            {
                return Err(ConfigError::new(
                    item(&processors, i),
                    format!(
                        "{pid} processes {} only; it cannot be used in a {signal} pipeline",
                        processor.signal()
                    ),
                ));
            }
        }

        let exporters = child(path, "exporters");
        if pipeline.exporters.is_empty() {
            return Err(ConfigError::new(
                exporters,
                "at least one exporter is required",
            ));
        }
        check_references(
            &exporters,
            &pipeline.exporters,
            &self.exporters,
            "exporter",
            "exporters",
        )?;
        for eid in &pipeline.exporters {
            let epath = format!("exporters.{eid}");
            match self.exporters.get(eid) {
                Some(ExporterConfig::LoadBalancing(c)) => {
                    c.validate_signal(&epath, signal, &id.to_string())?;
                }
                Some(ExporterConfig::OtlpHttp(c)) => c.validate_signal(&epath, signal)?,
                _ => {}
            }
        }
        Ok(())
    }

    /// Two servers of the running set (receivers used by a pipeline, extensions
    /// listed in `service.extensions`, the metrics endpoint) may not share a port.
    fn validate_listen_addresses(&self) -> Result<(), ConfigError> {
        let mut servers: Vec<(String, String)> = Vec::new();
        let used: BTreeSet<&ComponentId> = self
            .service
            .pipelines
            .values()
            .flat_map(|p| &p.receivers)
            .collect();
        for (id, receiver) in &self.receivers {
            if !used.contains(id) {
                continue;
            }
            let ReceiverConfig::Otlp(otlp) = receiver;
            let path = format!("receivers.{id}.protocols");
            if let Some(grpc) = &otlp.protocols.grpc {
                servers.push((format!("{path}.grpc.endpoint"), grpc.endpoint.clone()));
            }
            if let Some(http) = &otlp.protocols.http {
                servers.push((format!("{path}.http.endpoint"), http.endpoint.clone()));
            }
        }
        for id in &self.service.extensions {
            if let Some(endpoint) = self.extensions.get(id).and_then(|e| e.endpoint()) {
                servers.push((format!("extensions.{id}.endpoint"), endpoint.into()));
            }
        }
        if let Some(address) = self.metrics_address() {
            servers.push(("service.telemetry.metrics".into(), address));
        }
        let parsed: Vec<(String, Endpoint)> = servers
            .into_iter()
            .filter_map(|(path, text)| Endpoint::parse_listen(&text).ok().map(|hp| (path, hp)))
            .collect();
        for (i, (path, a)) in parsed.iter().enumerate() {
            for (other, b) in &parsed[..i] {
                if a.port() != 0 && a.port() == b.port() && hosts_overlap(a.host(), b.host()) {
                    return Err(ConfigError::new(
                        path.clone(),
                        format!("port {} is also used by {other}", a.port()),
                    ));
                }
            }
        }
        Ok(())
    }

    /// The signals of the pipelines that use exporter `id`.
    pub fn exporter_signals(&self, id: &ComponentId) -> BTreeSet<Signal> {
        self.service
            .pipelines
            .iter()
            .filter(|(_, p)| p.exporters.contains(id))
            .map(|(pid, _)| pid.signal)
            .collect()
    }

    /// Where to serve Prometheus self-metrics (`host:port`), or `None` when
    /// `service.telemetry.metrics.level` is `none`. Default 0.0.0.0:8888.
    pub fn metrics_address(&self) -> Option<String> {
        self.service.telemetry.metrics.effective_address()
    }
}

fn hosts_overlap(a: &str, b: &str) -> bool {
    let wildcard = |h: &str| matches!(h, "" | "0.0.0.0" | "::");
    a == b || wildcard(a) || wildcard(b)
}

/// Checks that every id in `ids` (at `path`) is configured under `section`,
/// once.
fn check_references<T>(
    path: &str,
    ids: &[ComponentId],
    configured: &BTreeMap<ComponentId, T>,
    kind: &str,
    section: &str,
) -> Result<(), ConfigError> {
    for (i, id) in ids.iter().enumerate() {
        if !configured.contains_key(id) {
            return Err(ConfigError::new(
                item(path, i),
                format!("{kind} \"{id}\" is not configured under {section}"),
            ));
        }
        if ids[..i].contains(id) {
            return Err(ConfigError::new(
                item(path, i),
                format!("{kind} \"{id}\" is listed twice"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
