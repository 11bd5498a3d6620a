//! An HTTP server on 127.0.0.1 that plays the Kubernetes API server for
//! the EndpointSlices of one service: list, watch (newline-delimited JSON
//! events, resumable from a resource version, 410 Gone once a version has
//! expired), and a test-only `POST /test/slices` so a child process can
//! change slices too.

use std::{
    collections::BTreeMap,
    convert::Infallible,
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use axum::{
    Router,
    body::Body,
    extract::{Path, State},
    http::{StatusCode, Uri, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use bytes::Bytes;
use futures::channel::mpsc::{UnboundedSender, unbounded};
use serde_json::{Value, json};

/// The service whose slices are served.
pub const SERVICE: &str = "collectors";
/// Its namespace.
pub const NAMESPACE: &str = "obs";

#[derive(Default)]
struct State_ {
    version: u64,
    slices: BTreeMap<String, Value>,
    history: Vec<(u64, &'static str, Value)>,
    oldest: u64,
    watches: Vec<UnboundedSender<Result<Bytes, Infallible>>>,
    requests: Vec<String>,
}

/// A running fake API server.
#[derive(Clone)]
pub struct FakeApi {
    /// Where it listens (plain HTTP).
    pub addr: SocketAddr,
    state: Arc<Mutex<State_>>,
}

/// One endpoint of a slice.
pub fn endpoint(address: &str, ready: bool, terminating: bool) -> Value {
    json!({
        "addresses": [address],
        "conditions": { "ready": ready, "serving": ready, "terminating": terminating },
        "targetRef": { "kind": "Pod", "name": format!("pod-{address}"), "namespace": NAMESPACE },
    })
}

/// An EndpointSlice of [`SERVICE`] named `name`.
pub fn slice(name: &str, endpoints: Vec<Value>) -> Value {
    json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": name,
            "namespace": NAMESPACE,
            "labels": { "kubernetes.io/service-name": SERVICE },
        },
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": [{ "name": "otlp-grpc", "port": 4317, "protocol": "TCP" }],
    })
}

impl State_ {
    fn record(&mut self, kind: &'static str, mut object: Value) {
        self.version += 1;
        object["metadata"]["resourceVersion"] = json!(self.version.to_string());
        let event = json!({ "type": kind, "object": object });
        self.history.push((self.version, kind, object));
        let line = Bytes::from(format!("{event}\n"));
        self.watches
            .retain(|w| w.unbounded_send(Ok(line.clone())).is_ok());
    }

    fn apply(&mut self, slice: Value) {
        let name = slice["metadata"]["name"]
            .as_str()
            .expect("slice name")
            .to_string();
        let kind = if self.slices.contains_key(&name) {
            "MODIFIED"
        } else {
            "ADDED"
        };
        self.record(kind, slice);
        let stored = self.history.last().map(|(_, _, s)| s.clone());
        self.slices.insert(name, stored.unwrap_or_default());
    }
}

impl FakeApi {
    /// Starts serving no slice.
    pub async fn start() -> FakeApi {
        let state: Arc<Mutex<State_>> = Arc::default();
        let app = Router::new()
            .route(
                "/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices",
                get(endpointslices),
            )
            .route("/test/slices", post(apply_posted))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        FakeApi { addr, state }
    }

    /// Creates or replaces a slice (ADDED or MODIFIED to watchers).
    pub fn apply(&self, slice: Value) {
        self.state.lock().unwrap().apply(slice);
    }

    /// Deletes a slice (DELETED to watchers).
    pub fn delete(&self, name: &str) {
        let mut state = self.state.lock().unwrap();
        let slice = state.slices.remove(name).expect("slice exists");
        state.record("DELETED", slice);
    }

    /// Ends every open watch, as a dropped connection would.
    pub fn drop_watches(&self) {
        self.state.lock().unwrap().watches.clear();
    }

    /// Forgets history: watches from any older version get 410 Gone.
    pub fn expire_history(&self) {
        let mut state = self.state.lock().unwrap();
        state.oldest = state.version;
    }

    /// The current resource version.
    pub fn version(&self) -> u64 {
        self.state.lock().unwrap().version
    }

    /// The requests so far: `list` or `watch <version>`.
    pub fn requests(&self) -> Vec<String> {
        self.state.lock().unwrap().requests.clone()
    }

    /// A kubeconfig that points at this server.
    pub fn kubeconfig(&self) -> String {
        format!(
            "apiVersion: v1
kind: Config
clusters:
- name: fake
  cluster: {{ server: \"http://{}\" }}
users:
- name: test
  user: {{ token: test }}
contexts:
- name: fake
  context: {{ cluster: fake, user: test }}
current-context: fake
",
            self.addr
        )
    }

    /// A `kube::Client` for this server.
    pub fn client(&self) -> kube::Client {
        let config = kube::Config::new(format!("http://{}", self.addr).parse().expect("url"));
        kube::Client::try_from(config).expect("client")
    }
}

/// Applies a slice through the test-only route of a server at `addr`.
pub async fn post_slice(addr: SocketAddr, slice: &Value) {
    let body = slice.to_string();
    let (status, _, reply) = super::http_post(
        addr,
        "/test/slices",
        &[("Content-Type", "application/json")],
        body.as_bytes(),
        false,
    )
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&reply));
}

async fn apply_posted(State(state): State<Arc<Mutex<State_>>>, body: Bytes) -> StatusCode {
    match serde_json::from_slice::<Value>(&body) {
        Ok(slice) => {
            state.lock().unwrap().apply(slice);
            StatusCode::OK
        }
        Err(_) => StatusCode::BAD_REQUEST,
    }
}

fn query(uri: &Uri) -> BTreeMap<String, String> {
    uri.query()
        .unwrap_or_default()
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.replace("%2F", "/").replace("%3D", "=")))
        .collect()
}

async fn endpointslices(
    State(state): State<Arc<Mutex<State_>>>,
    Path(namespace): Path<String>,
    uri: Uri,
) -> Response {
    let q = query(&uri);
    let selector = format!("kubernetes.io/service-name={SERVICE}");
    if namespace != NAMESPACE || q.get("labelSelector") != Some(&selector) {
        return (StatusCode::BAD_REQUEST, format!("unexpected request {uri}")).into_response();
    }
    let mut state = state.lock().unwrap();
    if q.get("watch").map(String::as_str) != Some("true") {
        state.requests.push("list".into());
        let version = state.version.to_string();
        let list = json!({
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSliceList",
            "metadata": { "resourceVersion": version },
            "items": state.slices.values().collect::<Vec<_>>(),
        });
        return (
            [(header::CONTENT_TYPE, "application/json")],
            list.to_string(),
        )
            .into_response();
    }
    let from: u64 = q
        .get("resourceVersion")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    state.requests.push(format!("watch {from}"));
    let (tx, rx) = unbounded();
    if from < state.oldest {
        let gone = json!({ "type": "ERROR", "object": {
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "too old resource version", "reason": "Expired", "code": 410 } });
        let _ = tx.unbounded_send(Ok(Bytes::from(format!("{gone}\n"))));
        // Dropping `tx` ends the stream after the error, as the server does.
    } else {
        for (version, kind, object) in &state.history {
            if *version > from {
                let event = json!({ "type": kind, "object": object });
                let _ = tx.unbounded_send(Ok(Bytes::from(format!("{event}\n"))));
            }
        }
        state.watches.push(tx);
    }
    (
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(rx),
    )
        .into_response()
}
