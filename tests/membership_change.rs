//! Changing the pool under continuous traffic loses nothing.
//!
//! Four senders push traces through the load-balancing forwarder while a
//! hand-made update stream, fed through a channel into the one ring
//! builder, adds and removes backends every 250 ms. Backends leave as pods
//! do: most are removed from the endpoint set and then shut down
//! gracefully (they finish what they accepted); one shuts down first and
//! is removed from the set only afterwards, as a crashed pod is.
//!
//! What the design guarantees, and so what is asserted:
//! - every request succeeds: a part whose backend has gone is retried and
//!   re-split against the ring as it is then, so it reaches the key's new
//!   owner;
//! - every span arrives exactly once: a retry re-sends only parts that were
//!   refused, and a graceful shutdown answers every call it accepted, so
//!   nothing a backend processed is sent again (with a backend that dies
//!   between processing a call and answering it, a duplicate would be
//!   inherent to at-least-once delivery; this test does not kill backends
//!   that way);
//! - after the last change, every trace lands on its owner under the final
//!   ring.

// A panic is how a test fails: test code may unwrap.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use futures::channel::mpsc::{UnboundedSender, unbounded};
use otlp_lb::{
    config::{endpoint::Endpoint, exporters::RetryConfig},
    consumer::Metadata,
    discovery::Update,
    exporter::{ClientSettings, Forwarder, PoolHandle, Routing, backend::Backend},
    routing::{Ring, RoutingKey, ring::DEFAULT_VNODES},
    signal::{PerSignal, Signal},
    telemetry::Telemetry,
    wire::Splitter,
};
use prost::Message;
use support::{requests, sink::Sink};

const SENDERS: u64 = 4;
const SPANS_PER_REQUEST: u64 = 20;
const CHANGE_EVERY: Duration = Duration::from_millis(250);

fn endpoint(sink: &Sink) -> String {
    sink.addr.to_string()
}

fn forwarder(telemetry: &Arc<Telemetry>) -> (Arc<PoolHandle>, Arc<Forwarder>) {
    let pool = PoolHandle::new(
        "loadbalancing",
        "static",
        Arc::new(ClientSettings {
            timeout: Duration::from_secs(5),
            ..Default::default()
        }),
        DEFAULT_VNODES,
        telemetry.clone(),
    );
    let retry = RetryConfig {
        enabled: true,
        initial_interval: Duration::from_millis(10),
        max_interval: Duration::from_millis(50),
        max_elapsed_time: Duration::from_secs(20),
        multiplier: 1.5,
        randomization_factor: 0.2,
    };
    let forwarder = Forwarder::new(
        "loadbalancing",
        pool.clone(),
        Routing::Keyed(PerSignal::new(
            Some(Splitter::new(Signal::Traces, RoutingKey::TraceId)),
            None,
            None,
        )),
        retry,
        None,
        telemetry,
    );
    (pool, Arc::new(forwarder))
}

/// One request of 5 traces of 4 spans; `seed` makes its trace ids unique.
fn request(seed: u64) -> Bytes {
    let mut reqs = requests::traces(seed, 5, 4, SPANS_PER_REQUEST as usize);
    assert_eq!(reqs.len(), 1);
    Bytes::from(reqs.remove(0).encode_to_vec())
}

/// Sends requests until `stop`; returns how many were sent (all succeeded).
async fn send_until(forwarder: Arc<Forwarder>, sender: u64, stop: Arc<AtomicBool>) -> u64 {
    let mut sent = 0u64;
    while !stop.load(Ordering::SeqCst) {
        let ack = forwarder
            .deliver(
                Signal::Traces,
                request((sender << 32) | sent),
                Metadata::NONE,
            )
            .await
            .unwrap_or_else(|e| panic!("sender {sender}, request {sent} failed: {e}"));
        assert_eq!(ack.rejected, 0, "{}", ack.message);
        sent += 1;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    sent
}

fn set(sinks: &[&Sink]) -> Vec<Endpoint> {
    sinks
        .iter()
        .map(|s| Endpoint::from_socket_addr(s.addr))
        .collect()
}

fn ring_of(pool: &PoolHandle) -> BTreeSet<String> {
    pool.load()
        .ring()
        .endpoints()
        .iter()
        .map(|e| e.to_string())
        .collect()
}

async fn change(tx: &UnboundedSender<Update>, update: Update) {
    tx.unbounded_send(update).unwrap();
    tokio::time::sleep(CHANGE_EVERY).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_survives_backends_coming_and_going() {
    let mut sinks = Vec::new();
    for _ in 0..8 {
        sinks.push(Sink::start().await);
    }
    let s = &sinks;
    let telemetry = Telemetry::new();
    let (pool, forwarder) = forwarder(&telemetry);
    let (tx, rx) = unbounded();
    let builder = pool.follow(Box::pin(rx), Duration::ZERO).await;

    tx.unbounded_send(Update::Reset(
        set(&[&s[0], &s[1], &s[2]]).into_iter().collect(),
    ))
    .unwrap();
    support::wait_until("the first ring is in", || ring_of(&pool).len() == 3).await;

    let stop = Arc::new(AtomicBool::new(false));
    let senders: Vec<_> = (0..SENDERS)
        .map(|i| tokio::spawn(send_until(forwarder.clone(), i, stop.clone())))
        .collect();
    tokio::time::sleep(CHANGE_EVERY).await;

    // Scale up.
    change(&tx, Update::Add(set(&[&s[3]]))).await;
    // s0 is removed, then shuts down gracefully, as a terminating pod.
    tx.unbounded_send(Update::Remove(set(&[&s[0]]))).unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    s[0].stop();
    tokio::time::sleep(CHANGE_EVERY).await;
    change(&tx, Update::Add(set(&[&s[4], &s[5]]))).await;
    // s1 goes away first and leaves the endpoint set only later, as a
    // crashed pod: meanwhile its parts fail and are retried.
    s[1].stop();
    tokio::time::sleep(Duration::from_millis(150)).await;
    change(&tx, Update::Remove(set(&[&s[1]]))).await;
    change(&tx, Update::Add(set(&[&s[6]]))).await;
    // Scale down by two, then a full reset to the final set.
    tx.unbounded_send(Update::Remove(set(&[&s[2], &s[3]])))
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    s[2].stop();
    s[3].stop();
    tokio::time::sleep(CHANGE_EVERY).await;
    let last = set(&[&s[4], &s[5], &s[6], &s[7]]);
    change(&tx, Update::Reset(last.iter().cloned().collect())).await;
    support::wait_until("the final ring is in", || {
        ring_of(&pool) == last.iter().map(Endpoint::to_string).collect()
    })
    .await;

    stop.store(true, Ordering::SeqCst);
    let mut sent = 0;
    for sender in senders {
        sent += sender.await.unwrap();
    }

    // Every span of the continuous phase arrived exactly once.
    let mut seen = BTreeSet::new();
    for sink in s {
        for span in sink.snapshot().spans {
            assert!(seen.insert(span), "a span arrived twice");
        }
    }
    assert_eq!(
        seen.len() as u64,
        sent * SPANS_PER_REQUEST,
        "every span arrives once ({sent} requests)"
    );
    println!("{sent} requests of {SPANS_PER_REQUEST} spans sent during 7 membership changes");

    // After the last change, every trace lands on its owner under the final
    // ring.
    let before: Vec<usize> = s.iter().map(|x| x.snapshot().spans.len()).collect();
    let final_ring = Ring::new(last.iter().map(Endpoint::to_string), DEFAULT_VNODES);
    for i in 0..100u64 {
        let ack = forwarder
            .deliver(Signal::Traces, request((99 << 32) | i), Metadata::NONE)
            .await
            .unwrap();
        assert_eq!(ack.rejected, 0);
    }
    let mut per_sink: BTreeMap<String, u64> = BTreeMap::new();
    for (sink, skip) in s.iter().zip(before) {
        for (trace, _) in sink.snapshot().spans.into_iter().skip(skip) {
            assert_eq!(
                final_ring.owner(&trace).map(|e| e.to_string()),
                Some(endpoint(sink)),
                "a trace sent after the last change is off its owner"
            );
            *per_sink.entry(endpoint(sink)).or_default() += 1;
        }
    }
    assert_eq!(per_sink.values().sum::<u64>(), 100 * SPANS_PER_REQUEST);
    assert_eq!(
        per_sink.keys().cloned().collect::<Vec<_>>(),
        {
            let mut l: Vec<String> = last.iter().map(Endpoint::to_string).collect();
            l.sort();
            l
        },
        "every final backend gets a share"
    );

    // One swap per change: the first set and seven changes.
    let text = telemetry.render();
    assert_eq!(
        support::metric_value(
            &text,
            "otelcol_loadbalancer_num_backend_updates_total",
            &[("exporter", "loadbalancing")]
        ),
        8.0
    );
    assert_eq!(
        support::metric_value(
            &text,
            "otelcol_loadbalancer_num_backends",
            &[("exporter", "loadbalancing")]
        ),
        4.0
    );
    drop(tx);
    builder.await.unwrap();
}

/// A backend that shuts down gracefully under load: every call either
/// succeeds or fails retryably (the ones it refused by HTTP/2 GOAWAY were
/// never processed), so none of its data is dropped as rejected. Which
/// calls race the GOAWAY varies from run to run; the rule holds for all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_going_away_never_rejects_data() {
    let body = request(7);
    for _ in 0..10 {
        let sink = Sink::start().await;
        let telemetry = Telemetry::new();
        let backend = Arc::new(
            Backend::connect(
                endpoint(&sink).into(),
                Arc::new(ClientSettings::default()),
                "loadbalancing",
                &telemetry,
                Duration::from_secs(1),
            )
            .await
            .unwrap(),
        );
        let callers: Vec<_> = (0..16)
            .map(|_| {
                let (backend, body) = (backend.clone(), body.clone());
                tokio::spawn(async move {
                    let mut ok = 0u64;
                    for _ in 0..200 {
                        match backend
                            .export(Signal::Traces, body.clone(), 1, None, &Metadata::NONE)
                            .await
                        {
                            Ok(_) => ok += 1,
                            Err(e) => {
                                assert!(e.retryable, "a refusal was final: {e}");
                                break;
                            }
                        }
                    }
                    ok
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(30)).await;
        sink.stop();
        let mut ok = 0;
        for caller in callers {
            ok += caller.await.unwrap();
        }
        // What succeeded arrived, once.
        assert_eq!(sink.snapshot().requests[0], ok);
    }
}
