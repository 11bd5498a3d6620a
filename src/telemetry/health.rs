//! The `health_check` extension: `GET <path>` answers 200 while the service
//! is ready and 503 while it is starting or draining, so a load balancer or
//! a Kubernetes readiness probe stops sending before shutdown.

use std::{
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicU8, Ordering},
    },
};

use axum::{Router, http::StatusCode, response::IntoResponse, routing::get};
use tokio::net::TcpListener;

/// The service's lifecycle as health checks see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum State {
    /// Listeners are being bound, backends resolved.
    Starting = 0,
    /// Serving.
    Ready = 1,
    /// Shutting down: finishing in-flight requests.
    Draining = 2,
}

/// Shared health state, cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Health(Arc<AtomicU8>);

impl Health {
    /// A new state, `Starting`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Moves to `state`.
    pub fn set(&self, state: State) {
        self.0.store(state as u8, Ordering::Release);
    }

    /// The current state.
    pub fn get(&self) -> State {
        match self.0.load(Ordering::Acquire) {
            1 => State::Ready,
            2 => State::Draining,
            _ => State::Starting,
        }
    }
}

/// Serves the health endpoint on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    path: String,
    health: Health,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let path = if path.starts_with('/') {
        path
    } else {
        format!("/{path}")
    };
    let app = Router::new().route(
        &path,
        get(move || {
            let health = health.clone();
            async move { respond(health.get()) }
        }),
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

fn respond(state: State) -> impl IntoResponse {
    let (code, status) = match state {
        State::Ready => (StatusCode::OK, "Server available"),
        State::Starting => (StatusCode::SERVICE_UNAVAILABLE, "Server not available"),
        State::Draining => (StatusCode::SERVICE_UNAVAILABLE, "Server is shutting down"),
    };
    (
        code,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        format!("{{\"status\":\"{status}\"}}"),
    )
}
