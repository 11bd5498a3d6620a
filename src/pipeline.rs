//! Wiring: turns the config's pipelines into consumer chains.
//!
//! This is the one place that knows how stages connect: receivers hand
//! requests to the pipelines of their signal, a pipeline runs its processors
//! in order and fans out to its exporters. Every component builds itself
//! from its own config type; this module only connects what they return.
//! Exporters are built once per id and shared by every pipeline that lists
//! them.

use std::{collections::BTreeMap, sync::Arc};

use crate::{
    component::{BuildContext, BuildError, Tasks},
    config::{ComponentId, Config},
    consumer::{Consumer, fan_out},
    exporter::{PoolHandle, debug::Debug},
    signal::PerSignal,
    telemetry::Telemetry,
};

/// The built pipelines: what each receiver feeds, and the tasks components
/// started.
#[derive(Default)]
pub struct Pipelines {
    /// Per receiver id, the consumer of each signal (`None`: no pipeline).
    pub receivers: BTreeMap<ComponentId, PerSignal<Option<Arc<dyn Consumer>>>>,
    /// Background and drain tasks.
    pub tasks: Tasks,
    /// The debug exporters by id, for tests and the demo's summaries.
    pub debug: BTreeMap<ComponentId, Arc<Debug>>,
    /// The backend pools of load-balancing and otlp exporters by id.
    pub pools: BTreeMap<ComponentId, Arc<PoolHandle>>,
}

/// Builds every pipeline of `config`. Must run inside a tokio runtime
/// (resolvers and queues start tasks); awaits what resolvers need before
/// they can start (the `k8s` resolver's client and first list).
pub async fn build(config: &Config, telemetry: &Arc<Telemetry>) -> Result<Pipelines, BuildError> {
    let mut built = Pipelines::default();
    let mut exporters: BTreeMap<ComponentId, Arc<dyn Consumer>> = BTreeMap::new();
    for (id, exporter) in &config.exporters {
        let signals = config.exporter_signals(id);
        if signals.is_empty() {
            continue; // configured but unused, as the collector allows
        }
        let mut cx = BuildContext {
            id,
            telemetry,
            tasks: &mut built.tasks,
            extensions: &config.extensions,
        };
        let exporter = exporter.build(&mut cx, &signals).await?;
        if let Some(pool) = exporter.pool {
            built.pools.insert(id.clone(), pool);
        }
        if let Some(debug) = exporter.debug {
            built.debug.insert(id.clone(), debug);
        }
        exporters.insert(id.clone(), exporter.consumer);
    }

    let mut per_receiver: BTreeMap<ComponentId, PerSignal<Vec<Arc<dyn Consumer>>>> =
        BTreeMap::new();
    for (pid, pipeline) in &config.service.pipelines {
        let outputs: Vec<Arc<dyn Consumer>> = pipeline
            .exporters
            .iter()
            .map(|id| {
                exporters
                    .get(id)
                    .cloned()
                    .ok_or_else(|| BuildError::new(id, "exporter is not configured"))
            })
            .collect::<Result<_, _>>()?;
        let mut head = fan_out(outputs);
        for id in pipeline.processors.iter().rev() {
            let processor = config
                .processors
                .get(id)
                .ok_or_else(|| BuildError::new(id, "processor is not configured"))?;
            let mut cx = BuildContext {
                id,
                telemetry,
                tasks: &mut built.tasks,
                extensions: &config.extensions,
            };
            head = processor.build(&mut cx, head)?;
        }
        for rid in &pipeline.receivers {
            per_receiver.entry(rid.clone()).or_default()[pid.signal].push(head.clone());
        }
    }
    for (rid, consumers) in per_receiver {
        let heads = consumers.map(|_, v| (!v.is_empty()).then(|| fan_out(v)));
        built.receivers.insert(rid, heads);
    }
    Ok(built)
}
