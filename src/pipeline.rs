//! Wiring: turns the config's pipelines into consumer chains.
//!
//! This is the one place that knows how stages connect: receivers hand
//! requests to the pipelines of their signal, a pipeline runs its processors
//! in order and fans out to its exporters. Exporters are built once per id
//! and shared by every pipeline that lists them.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use bytes::Bytes;
use tokio::task::JoinHandle;
use tonic::{
    codec::CompressionEncoding,
    metadata::{MetadataKey, MetadataMap, MetadataValue},
    transport::{Certificate, Identity},
};

use crate::{
    config::{
        ComponentId, Config,
        exporters::{
            ClientTlsConfig, Compression, ExporterConfig, HttpEncoding,
            LoadBalancingExporterConfig, OtlpExporterConfig, OtlpHttpExporterConfig, QueueConfig,
            QueueSizer, Resolver, RetryConfig,
        },
    },
    consumer::{Ack, ConsumeFuture, Consumer},
    discovery::{self, Resolutions},
    exporter::{
        ClientSettings, Forwarder, PoolHandle, Routing,
        debug::{Debug, Verbosity},
        otlphttp::{self, BodyCompression, HttpSettings, OtlpHttp},
        queue::{Queue, QueueSettings, Sizer},
        retry::RetrySettings,
    },
    routing::{KeySpec, ring::DEFAULT_VNODES},
    signal::Signal,
    telemetry::Telemetry,
};

/// Why the config could not be turned into running stages.
#[derive(Debug, thiserror::Error)]
#[error("{component}: {message}")]
pub struct BuildError {
    /// The component id (or config path) at fault.
    pub component: String,
    /// What went wrong.
    pub message: String,
}

impl BuildError {
    fn new(component: impl ToString, message: impl ToString) -> BuildError {
        BuildError {
            component: component.to_string(),
            message: message.to_string(),
        }
    }
}

/// The built pipelines: what each receiver feeds, and the background tasks.
#[derive(Default)]
pub struct Pipelines {
    /// Per receiver id, the consumer of each signal.
    pub receivers: BTreeMap<ComponentId, [Option<Arc<dyn Consumer>>; 3]>,
    /// Resolver and reporting tasks; aborted on shutdown.
    pub background: Vec<JoinHandle<()>>,
    /// Sending-queue workers; awaited on shutdown so queued data is sent.
    pub drains: Vec<JoinHandle<()>>,
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
        let consumer = build_exporter(id, exporter, &signals, telemetry, &mut built).await?;
        exporters.insert(id.clone(), consumer);
    }

    let mut per_receiver: BTreeMap<ComponentId, [Vec<Arc<dyn Consumer>>; 3]> = BTreeMap::new();
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
            head = crate::processor::build(
                id,
                processor,
                head,
                telemetry,
                &mut built.background,
                &mut built.drains,
            )
            .map_err(|e| BuildError::new(id, e))?;
        }
        for rid in &pipeline.receivers {
            per_receiver.entry(rid.clone()).or_default()[pid.signal as usize].push(head.clone());
        }
    }
    for (rid, consumers) in per_receiver {
        let [t, m, l] = consumers;
        let wrap = |v: Vec<Arc<dyn Consumer>>| if v.is_empty() { None } else { Some(fan_out(v)) };
        built.receivers.insert(rid, [wrap(t), wrap(m), wrap(l)]);
    }
    Ok(built)
}

async fn build_exporter(
    id: &ComponentId,
    config: &ExporterConfig,
    signals: &std::collections::BTreeSet<Signal>,
    telemetry: &Arc<Telemetry>,
    built: &mut Pipelines,
) -> Result<Arc<dyn Consumer>, BuildError> {
    let name = id.as_str();
    let (forwarder, queue) = match config {
        ExporterConfig::Debug(debug) => {
            let verbosity = match debug.verbosity {
                crate::config::exporters::Verbosity::Basic => Verbosity::Basic,
                crate::config::exporters::Verbosity::Normal => Verbosity::Normal,
                crate::config::exporters::Verbosity::Detailed => Verbosity::Detailed,
            };
            let exporter = Debug::new(name, verbosity);
            if verbosity == Verbosity::Basic {
                built.background.push(tokio::spawn(
                    exporter.clone().report(Duration::from_secs(5)),
                ));
            }
            built.debug.insert(id.clone(), exporter.clone());
            return Ok(exporter);
        }
        ExporterConfig::LoadBalancing(lb) => (
            load_balancer(id, lb, signals, telemetry, built).await?,
            &lb.sending_queue,
        ),
        ExporterConfig::Otlp(otlp) => (
            otlp_exporter(id, otlp, telemetry, built).await?,
            &otlp.sending_queue,
        ),
        ExporterConfig::OtlpHttp(http) => {
            (otlphttp_exporter(id, http, telemetry)?, &http.sending_queue)
        }
    };
    Ok(with_queue(name, forwarder, queue, telemetry, built))
}

async fn load_balancer(
    id: &ComponentId,
    lb: &LoadBalancingExporterConfig,
    signals: &std::collections::BTreeSet<Signal>,
    telemetry: &Arc<Telemetry>,
    built: &mut Pipelines,
) -> Result<Arc<dyn Consumer>, BuildError> {
    let name = id.as_str();
    let resolver = lb.resolver.selected().ok_or_else(|| {
        BuildError::new(id, "resolver: exactly one of static, dns, k8s must be set")
    })?;
    let settings = Arc::new(client_settings(id, &lb.protocol.otlp)?);
    let pool = PoolHandle::new(
        name,
        resolver.name(),
        settings,
        DEFAULT_VNODES,
        telemetry.clone(),
    );
    let resolutions = Resolutions::new(telemetry, name, resolver.name());
    // How long start-up waits for the first set, so that the service starts
    // with a ring: the static list is there at once, and the k8s resolver
    // has already waited for its first list; a DNS answer takes up to the
    // resolver's timeout.
    let (updates, first_within) = match resolver {
        Resolver::Static(s) => (
            discovery::fixed::resolve(&s.endpoints(), resolutions),
            Duration::ZERO,
        ),
        Resolver::Dns(dns) => (discovery::dns::resolve(dns, resolutions), dns.timeout),
        Resolver::K8s(k8s) => (
            discovery::k8s::resolve(k8s, resolutions)
                .await
                .map_err(|e| BuildError::new(id, e))?,
            Duration::ZERO,
        ),
    };
    built
        .background
        .push(discovery::start(updates, pool.clone(), first_within).await);
    built.pools.insert(id.clone(), pool.clone());

    let mut keys: [Option<KeySpec>; 3] = [None, None, None];
    for &signal in signals {
        let key = KeySpec::new(lb.routing_key_for(signal), &lb.routing_attributes);
        keys[signal as usize] = Some(key);
    }
    let retry = retry_settings(&lb.retry_on_failure);
    Ok(Arc::new(Forwarder::new(
        name,
        pool,
        Forwarder::keyed(keys),
        retry,
        telemetry,
    )))
}

async fn otlp_exporter(
    id: &ComponentId,
    otlp: &OtlpExporterConfig,
    telemetry: &Arc<Telemetry>,
    built: &mut Pipelines,
) -> Result<Arc<dyn Consumer>, BuildError> {
    let name = id.as_str();
    let target = otlp
        .target()
        .ok_or_else(|| BuildError::new(id, "endpoint: required"))?;
    let settings = Arc::new(client_settings(id, otlp)?);
    let pool = PoolHandle::new(name, "static", settings, 1, telemetry.clone());
    let updates = discovery::fixed::resolve(&[target], Resolutions::new(telemetry, name, "static"));
    built
        .background
        .push(discovery::start(updates, pool.clone(), Duration::ZERO).await);
    built.pools.insert(id.clone(), pool.clone());
    let retry = retry_settings(&otlp.retry_on_failure);
    Ok(Arc::new(Forwarder::new(
        name,
        pool,
        Routing::Whole,
        retry,
        telemetry,
    )))
}

fn otlphttp_exporter(
    id: &ComponentId,
    http: &OtlpHttpExporterConfig,
    telemetry: &Arc<Telemetry>,
) -> Result<Arc<dyn Consumer>, BuildError> {
    if http.tls.ca_file.is_some() || http.tls.cert_file.is_some() {
        return Err(BuildError::new(
            id,
            "tls.ca_file / cert_file are not supported by the otlphttp exporter yet (system roots only)",
        ));
    }
    let settings = HttpSettings {
        urls: Signal::ALL.map(|s| http.signal_url(s)),
        json: http.encoding == HttpEncoding::Json,
        compression: match http.compression {
            Compression::None => BodyCompression::None,
            Compression::Gzip => BodyCompression::Gzip,
            Compression::Zstd => BodyCompression::Zstd,
        },
        headers: otlphttp::headers(&http.headers).map_err(|e| BuildError::new(id, e))?,
        timeout: http.timeout,
        retry: retry_settings(&http.retry_on_failure),
    };
    let exporter =
        OtlpHttp::new(id.as_str(), settings, telemetry).map_err(|e| BuildError::new(id, e))?;
    Ok(Arc::new(exporter))
}

/// Puts a sending queue in front of `inner` when the config enables one.
pub(crate) fn with_queue(
    name: &str,
    inner: Arc<dyn Consumer>,
    queue: &QueueConfig,
    telemetry: &Arc<Telemetry>,
    built: &mut Pipelines,
) -> Arc<dyn Consumer> {
    if !queue.enabled {
        return inner;
    }
    let settings = QueueSettings {
        num_consumers: queue.num_consumers,
        queue_size: queue.queue_size.min(u32::MAX as u64) as usize,
        sizer: match queue.sizer {
            QueueSizer::Requests => Sizer::Requests,
            QueueSizer::Items => Sizer::Items,
            QueueSizer::Bytes => Sizer::Bytes,
        },
        block_on_overflow: queue.block_on_overflow,
    };
    let (queue, drained) = Queue::start(name, settings, inner, telemetry);
    built.drains.push(drained);
    Arc::new(queue)
}

pub(crate) fn retry_settings(retry: &RetryConfig) -> RetrySettings {
    RetrySettings {
        enabled: retry.enabled,
        initial_interval: retry.initial_interval,
        max_interval: retry.max_interval,
        max_elapsed_time: retry.max_elapsed_time,
        multiplier: retry.multiplier,
        randomization_factor: retry.randomization_factor,
    }
}

/// The backend connection settings of an `otlp` block.
fn client_settings(
    id: &ComponentId,
    otlp: &OtlpExporterConfig,
) -> Result<ClientSettings, BuildError> {
    let mut headers = MetadataMap::new();
    for (k, v) in &otlp.headers {
        let key = MetadataKey::from_bytes(k.to_ascii_lowercase().as_bytes())
            .map_err(|e| BuildError::new(id, format!("headers.{k}: {e}")))?;
        let value = MetadataValue::try_from(v.as_str())
            .map_err(|e| BuildError::new(id, format!("headers.{k}: {e}")))?;
        headers.insert(key, value);
    }
    Ok(ClientSettings {
        timeout: otlp.timeout,
        compression: match otlp.compression {
            Compression::None => None,
            Compression::Gzip => Some(CompressionEncoding::Gzip),
            Compression::Zstd => Some(CompressionEncoding::Zstd),
        },
        headers,
        tls: tls(id, &otlp.tls)?,
    })
}

fn tls(
    id: &ComponentId,
    tls: &ClientTlsConfig,
) -> Result<Option<tonic::transport::ClientTlsConfig>, BuildError> {
    if tls.insecure {
        return Ok(None);
    }
    let read = |what: &str, path: &str| {
        std::fs::read(path).map_err(|e| BuildError::new(id, format!("tls.{what} {path}: {e}")))
    };
    let mut out = tonic::transport::ClientTlsConfig::new();
    out = match &tls.ca_file {
        Some(path) => out.ca_certificate(Certificate::from_pem(read("ca_file", path)?)),
        None => out.with_native_roots(),
    };
    if let (Some(cert), Some(key)) = (&tls.cert_file, &tls.key_file) {
        out = out.identity(Identity::from_pem(
            read("cert_file", cert)?,
            read("key_file", key)?,
        ));
    }
    if let Some(name) = &tls.server_name_override {
        out = out.domain_name(name.clone());
    }
    Ok(Some(out))
}

/// Sends each request to several consumers at once; fails if any fails.
struct FanOut(Vec<Arc<dyn Consumer>>);

/// One consumer for several: itself when there is one.
pub fn fan_out(mut consumers: Vec<Arc<dyn Consumer>>) -> Arc<dyn Consumer> {
    if consumers.len() == 1
        && let Some(only) = consumers.pop()
    {
        return only;
    }
    Arc::new(FanOut(consumers))
}

impl Consumer for FanOut {
    fn consume(&self, signal: Signal, request: Bytes) -> ConsumeFuture<'_> {
        Box::pin(async move {
            let results = futures::future::join_all(
                self.0.iter().map(|c| c.consume(signal, request.clone())),
            )
            .await;
            let mut ack = Ack::ok();
            for result in results {
                ack.merge(result?);
            }
            Ok(ack)
        })
    }
}
