//! What every component's `build` gets and may fail with.
//!
//! Each config type builds its own running component (the way Vector's
//! `SinkConfig::build(&self, cx)` does): `config.build(&mut cx)` for an
//! exporter, `config.build(&mut cx, next)` for a processor. The pipeline only
//! wires what they return; it never copies a config field.

use std::{collections::BTreeMap, fmt, sync::Arc};

use tokio::task::JoinHandle;

use crate::{
    auth::HeadersSetter,
    config::{ComponentId, auth::AuthConfig, extensions::ExtensionConfig},
    telemetry::Telemetry,
};

/// Why a component could not be built from its config.
#[derive(Debug, thiserror::Error)]
#[error("{component}: {message}")]
pub struct BuildError {
    /// The component id (or config path) at fault.
    pub component: String,
    /// What went wrong.
    pub message: String,
}

impl BuildError {
    /// An error of `component` saying `message`.
    pub fn new(component: impl fmt::Display, message: impl fmt::Display) -> BuildError {
        BuildError {
            component: component.to_string(),
            message: message.to_string(),
        }
    }
}

/// The tasks components start.
#[derive(Default)]
pub struct Tasks {
    /// Tasks that only report or resolve; aborted at shutdown.
    pub background: Vec<JoinHandle<()>>,
    /// Tasks that hold data (queue workers, the tail sampler): the service
    /// awaits them at shutdown, and they end by themselves once the
    /// receivers are gone and they have passed on what they held.
    pub drains: Vec<JoinHandle<()>>,
}

/// What a component's `build` gets besides its own config.
pub struct BuildContext<'a> {
    /// The component's id (`loadbalancing/traces`), its name in metrics and logs.
    pub id: &'a ComponentId,
    /// The process's self-metrics.
    pub telemetry: &'a Arc<Telemetry>,
    /// Where the component puts the tasks it starts.
    pub tasks: &'a mut Tasks,
    /// The configured extensions, for the authenticators components name.
    pub extensions: &'a BTreeMap<ComponentId, ExtensionConfig>,
}

impl BuildContext<'_> {
    /// An error of this component.
    pub fn error(&self, message: impl fmt::Display) -> BuildError {
        BuildError::new(self.id, message)
    }

    /// The `headers_setter` an exporter's `auth` names (`key` is the config
    /// key, for errors), or `None` without `auth`.
    pub fn headers_setter(
        &self,
        key: &str,
        auth: Option<&AuthConfig>,
    ) -> Result<Option<Arc<HeadersSetter>>, BuildError> {
        let Some(auth) = auth else {
            return Ok(None);
        };
        match self.extensions.get(&auth.authenticator) {
            Some(ExtensionConfig::HeadersSetter(config)) => HeadersSetter::from_config(config)
                .map(|s| Some(Arc::new(s)))
                .map_err(|e| self.error(format!("{key}: extension {}: {e}", auth.authenticator))),
            _ => Err(self.error(format!(
                "{key}.authenticator: \"{}\" is not a headers_setter extension",
                auth.authenticator
            ))),
        }
    }
}
