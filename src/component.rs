//! What every component's `build` gets and may fail with.
//!
//! Each config type builds its own running component (the way Vector's
//! `SinkConfig::build(&self, cx)` does): `config.build(&mut cx)` for an
//! exporter, `config.build(&mut cx, next)` for a processor. The pipeline only
//! wires what they return; it never copies a config field.

use std::{fmt, sync::Arc};

use tokio::task::JoinHandle;

use crate::{config::ComponentId, telemetry::Telemetry};

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
}

impl BuildContext<'_> {
    /// An error of this component.
    pub fn error(&self, message: impl fmt::Display) -> BuildError {
        BuildError::new(self.id, message)
    }
}
