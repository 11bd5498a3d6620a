//! The running service: binds every listener, serves, and shuts down in
//! order.
//!
//! Start-up binds all sockets first (so a port conflict fails fast and tests
//! can use port 0), then serves. Shutdown: health turns 503, receivers stop
//! accepting and finish their in-flight requests, sending queues drain, and
//! only then do the background tasks stop.

use std::{collections::BTreeMap, future::Future, net::SocketAddr, sync::Arc, time::Duration};

use tokio::{net::TcpListener, sync::watch, task::JoinSet};

use crate::{
    auth::{BearerTokenAuth, MetadataKeys, bearer},
    component::BuildError,
    config::{
        ComponentId, Config,
        auth::AuthConfig,
        extensions::ExtensionConfig,
        receivers::{GrpcServerConfig, HttpServerConfig, ReceiverConfig},
    },
    exporter::{PoolHandle, debug::Debug},
    pipeline,
    receiver::{self, Edge, Receiver, Transport},
    signal::PerSignal,
    telemetry::{
        Telemetry,
        health::{self, Health, State},
        status::{self, Status},
    },
};

/// How long shutdown waits for sending queues to drain.
const DRAIN_LIMIT: Duration = Duration::from_secs(30);

/// Why the service could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// A listener could not be bound.
    #[error("{what}: cannot listen on {address}: {source}")]
    Bind {
        /// The config key of the listener.
        what: String,
        /// The address.
        address: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The pipelines could not be built.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// A listener's address could not be read.
    #[error("reading a listener's address: {0}")]
    Address(#[source] std::io::Error),
    /// A server failed while running.
    #[error(transparent)]
    Serve(#[from] ServeError),
    /// A receiver's TLS could not be set up.
    #[error("{what}: {source}")]
    Tls {
        /// The config key of the `tls` block.
        what: String,
        /// What is wrong.
        source: receiver::tls::TlsError,
    },
}

/// Why one of the servers stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The gRPC server (tonic) failed.
    #[error("OTLP/gRPC server: {0}")]
    Grpc(#[from] tonic::transport::Error),
    /// An HTTP server (OTLP/HTTP, health, metrics) failed.
    #[error("HTTP server: {0}")]
    Http(#[from] std::io::Error),
    /// A server task panicked or was cancelled.
    #[error("server task: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// A started service: its bound addresses and a way to stop it.
pub struct Running {
    /// OTLP/gRPC address per receiver id.
    pub grpc: BTreeMap<String, SocketAddr>,
    /// OTLP/HTTP address per receiver id.
    pub http: BTreeMap<String, SocketAddr>,
    /// The Prometheus `/metrics` address, if enabled.
    pub metrics: Option<SocketAddr>,
    /// The health-check address, if enabled.
    pub health: Option<SocketAddr>,
    /// The status page's address, if enabled.
    pub status: Option<SocketAddr>,
    /// The service's self-metrics.
    pub telemetry: Arc<Telemetry>,
    /// Debug exporters by id.
    pub debug: BTreeMap<String, Arc<Debug>>,
    /// Backend pools by exporter id.
    pub pools: BTreeMap<String, Arc<PoolHandle>>,
    health_state: Health,
    drain_delay: Duration,
    stop: watch::Sender<bool>,
    servers: JoinSet<Result<(), ServeError>>,
    admin: JoinSet<Result<(), ServeError>>,
    background: Vec<tokio::task::JoinHandle<()>>,
    drains: Vec<tokio::task::JoinHandle<()>>,
}

/// A receiver's server and its settings.
enum Server {
    Grpc(GrpcServerConfig),
    Http(HttpServerConfig),
}

async fn bind(what: &str, address: &str) -> Result<TcpListener, ServiceError> {
    TcpListener::bind(address)
        .await
        .map_err(|source| ServiceError::Bind {
            what: what.to_string(),
            address: address.to_string(),
            source,
        })
}

fn local(listener: &TcpListener) -> Result<SocketAddr, ServiceError> {
    listener.local_addr().map_err(ServiceError::Address)
}

/// Builds and starts everything `config` describes.
pub async fn start(config: Config) -> Result<Running, ServiceError> {
    let telemetry = Telemetry::new();
    let health_state = Health::new();
    let (stop, stopped) = watch::channel(false);
    let until_stopped = move || {
        let mut rx = stopped.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };

    // Bind everything before serving anything.
    let mut admin = JoinSet::new();
    let mut metrics = None;
    if let Some(address) = config.metrics_address() {
        let listener = bind("service.telemetry.metrics", &address).await?;
        let addr = local(&listener)?;
        metrics = Some(addr);
        tracing::info!(%addr, "serving /metrics");
        let t = telemetry.clone();
        let done = until_stopped();
        admin.spawn(async move {
            crate::telemetry::metrics::serve(listener, t, done)
                .await
                .map_err(ServeError::from)
        });
    }
    let mut health_addr = None;
    let mut drain_delay = Duration::ZERO;
    let mut status_page = None;
    for id in &config.service.extensions {
        if let Some(ExtensionConfig::Status(sc)) = config.extensions.get(id) {
            // Served once the pipelines it shows are built.
            let listener = bind(&format!("extensions.{id}.endpoint"), &sc.endpoint).await?;
            let addr = local(&listener)?;
            tracing::info!(extension = %id, %addr, "serving the status page");
            status_page = Some((listener, addr));
        }
        if let Some(ExtensionConfig::HealthCheck(hc)) = config.extensions.get(id) {
            let listener = bind(&format!("extensions.{id}.endpoint"), &hc.endpoint).await?;
            let addr = local(&listener)?;
            health_addr = Some(addr);
            tracing::info!(extension = %id, %addr, "serving health checks");
            drain_delay = drain_delay.max(hc.drain_delay);
            let (h, path, done) = (health_state.clone(), hc.path.clone(), until_stopped());
            admin.spawn(async move {
                health::serve(listener, path, h, done)
                    .await
                    .map_err(ServeError::from)
            });
        }
    }
    let mut listeners = Vec::new();
    for (id, receiver) in &config.receivers {
        let ReceiverConfig::Otlp(otlp) = receiver;
        let tls_error = |protocol: &str| {
            let what = format!("receivers.{id}.protocols.{protocol}.tls");
            move |source| ServiceError::Tls { what, source }
        };
        if let Some(grpc) = &otlp.protocols.grpc {
            let l = bind(
                &format!("receivers.{id}.protocols.grpc.endpoint"),
                &grpc.endpoint,
            )
            .await?;
            let settings = grpc.listen_settings().map_err(tls_error("grpc"))?;
            listeners.push((id.clone(), Server::Grpc(grpc.clone()), l, settings));
        }
        if let Some(http) = &otlp.protocols.http {
            let l = bind(
                &format!("receivers.{id}.protocols.http.endpoint"),
                &http.endpoint,
            )
            .await?;
            let settings = http.listen_settings().map_err(tls_error("http"))?;
            listeners.push((id.clone(), Server::Http(http.clone()), l, settings));
        }
    }

    let mut built = pipeline::build(&config, &telemetry).await?;
    let authenticators = bearer::start_all(&config, &mut built.tasks)?;
    let keeps_metadata = config.receivers.values().any(|r| {
        let ReceiverConfig::Otlp(otlp) = r;
        otlp.protocols
            .grpc
            .as_ref()
            .is_some_and(|g| g.include_metadata)
            || otlp
                .protocols
                .http
                .as_ref()
                .is_some_and(|h| h.include_metadata)
    });
    if !config.metadata_keys().is_empty() && !keeps_metadata {
        tracing::warn!(
            "a headers_setter reads client headers (from_context), but no receiver has \
             include_metadata: true; only its value and default_value settings apply"
        );
    }
    let new_receiver = |id: &ComponentId, consumers| {
        Arc::new(edges(
            &config,
            id,
            &authenticators,
            Receiver::new(id.as_str(), consumers, &telemetry),
        ))
    };
    let status_addr = status_page.map(|(listener, addr)| {
        let page = Arc::new(Status::new(&config, &built.pools, telemetry.clone()));
        let done = until_stopped();
        admin.spawn(async move {
            status::serve(listener, page, done)
                .await
                .map_err(ServeError::from)
        });
        addr
    });
    let mut receivers: BTreeMap<ComponentId, Arc<Receiver>> = BTreeMap::new();
    for (id, consumers) in built.receivers {
        receivers.insert(id.clone(), new_receiver(&id, consumers));
    }

    let mut servers = JoinSet::new();
    let (mut grpc, mut http) = (BTreeMap::new(), BTreeMap::new());
    for (id, server, listener, settings) in listeners {
        // A receiver no pipeline uses still listens, as in the collector.
        let receiver = receivers
            .entry(id.clone())
            .or_insert_with(|| new_receiver(&id, PerSignal::default()))
            .clone();
        let addr = local(&listener)?;
        let done = until_stopped();
        let tls = if settings.tls.is_some() {
            "TLS"
        } else {
            "plain text"
        };
        let kind = match server {
            Server::Grpc(config) => {
                grpc.insert(id.to_string(), addr);
                servers.spawn(async move {
                    receiver::grpc::serve(listener, receiver, &config, settings, done)
                        .await
                        .map_err(ServeError::from)
                });
                "OTLP/gRPC"
            }
            Server::Http(config) => {
                http.insert(id.to_string(), addr);
                servers.spawn(async move {
                    receiver::http::serve(listener, receiver, &config, settings, done)
                        .await
                        .map_err(ServeError::from)
                });
                "OTLP/HTTP"
            }
        };
        tracing::info!(receiver = %id, %addr, "listening ({kind}, {tls})");
    }
    drop(receivers);

    let mut background = built.tasks.background;
    background.push(tokio::spawn(telemetry.clone().run_upkeep()));
    health_state.set(State::Ready);
    Ok(Running {
        grpc,
        http,
        metrics,
        health: health_addr,
        status: status_addr,
        telemetry,
        debug: built
            .debug
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
        pools: built
            .pools
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
        health_state,
        drain_delay,
        stop,
        servers,
        admin,
        background,
        drains: built.tasks.drains,
    })
}

impl Running {
    /// Turns health to 503, keeps accepting for the health check's
    /// `drain_delay` (so whatever routes by health stops sending first),
    /// then stops accepting, finishes in-flight requests, drains queues, and
    /// stops.
    pub async fn stop(mut self) -> Result<(), ServiceError> {
        self.health_state.set(State::Draining);
        if !self.drain_delay.is_zero() {
            tracing::info!(delay = ?self.drain_delay, "health is 503; still accepting until the drain delay ends");
            tokio::time::sleep(self.drain_delay).await;
        }
        let _ = self.stop.send(true);
        let mut first_error = None;
        while let Some(result) = self.servers.join_next().await {
            match result {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    first_error.get_or_insert(e);
                }
                Err(e) => {
                    first_error.get_or_insert(e.into());
                }
            }
        }
        // Reporting and resolver tasks go first: some hold a stage alive
        // (a processor's summary task holds the processor), and the pools
        // keep their last backend set without them.
        for task in self.background {
            task.abort();
        }
        // The receivers are gone, so every stage's last owner is a task that
        // holds data: the tail sampler decides and exports what it holds,
        // then the queues' senders drop and their workers send what is left.
        self.debug.clear();
        self.pools.clear();
        let drains = futures::future::join_all(self.drains);
        if tokio::time::timeout(DRAIN_LIMIT, drains).await.is_err() {
            tracing::warn!("pending data did not drain within {DRAIN_LIMIT:?}");
        }
        while self.admin.join_next().await.is_some() {}
        match first_error {
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
    }
}

/// `receiver` with the edges its config asks for: the bearer token its
/// `auth` names, and with `include_metadata` the client headers that
/// `headers_setter` rules read.
fn edges(
    config: &Config,
    id: &ComponentId,
    authenticators: &BTreeMap<ComponentId, Arc<BearerTokenAuth>>,
    receiver: Receiver,
) -> Receiver {
    let Some(ReceiverConfig::Otlp(otlp)) = config.receivers.get(id) else {
        return receiver;
    };
    let keys = MetadataKeys::new(config.metadata_keys());
    let edge = |auth: Option<&AuthConfig>, include_metadata: bool| Edge {
        auth: auth.and_then(|a| authenticators.get(&a.authenticator).cloned()),
        keep: if include_metadata {
            keys.clone()
        } else {
            MetadataKeys::default()
        },
    };
    let mut receiver = receiver;
    if let Some(grpc) = &otlp.protocols.grpc {
        receiver = receiver.with_edge(
            Transport::Grpc,
            edge(grpc.auth.as_ref(), grpc.include_metadata),
        );
    }
    if let Some(http) = &otlp.protocols.http {
        receiver = receiver.with_edge(
            Transport::Http,
            edge(http.auth.as_ref(), http.include_metadata),
        );
    }
    receiver
}

/// Starts the service and runs it until `shutdown` resolves.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), ServiceError> {
    let running = start(config).await?;
    shutdown.await;
    tracing::info!("shutting down");
    running.stop().await
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
