//! The k8s resolver's event handling, fed hand-made watcher event streams.

use std::collections::BTreeSet;

use futures::StreamExt;
use k8s_openapi::{
    api::discovery::v1::{Endpoint as SliceEndpoint, EndpointConditions, EndpointSlice},
    apimachinery::pkg::apis::meta::v1::ObjectMeta,
};
use kube::runtime::watcher::{self, Event};

use super::*;
use crate::telemetry::Telemetry;

/// One endpoint: (address, ready, terminating, hostname).
type Ep<'a> = (&'a str, Option<bool>, Option<bool>, Option<&'a str>);

fn slice(name: &str, endpoints: &[Ep]) -> EndpointSlice {
    EndpointSlice {
        address_type: "IPv4".into(),
        endpoints: Some(
            endpoints
                .iter()
                .map(|&(address, ready, terminating, hostname)| SliceEndpoint {
                    addresses: vec![address.to_string()],
                    conditions: Some(EndpointConditions {
                        ready,
                        serving: ready,
                        terminating,
                    }),
                    hostname: hostname.map(str::to_string),
                    ..Default::default()
                })
                .collect(),
        ),
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some("obs".into()),
            ..Default::default()
        },
        ports: None,
    }
}

fn ready(address: &str) -> Ep<'_> {
    (address, Some(true), Some(false), None)
}

fn config(service: &str, ports: &[u16]) -> K8sResolverConfig {
    K8sResolverConfig {
        service: service.into(),
        ports: ports.to_vec(),
        ..Default::default()
    }
}

fn set(items: &[&str]) -> BTreeSet<Endpoint> {
    items.iter().map(|s| Endpoint::parse(s).unwrap()).collect()
}

fn reset(items: &[&str]) -> Option<Update> {
    Some(Update::Reset(set(items)))
}

#[test]
fn a_list_replaces_the_whole_set_at_init_done() {
    let mut s = Slices::new(&config("collectors", &[4317]), "obs");
    assert_eq!(s.apply(Event::Init), None);
    assert_eq!(
        s.apply(Event::InitApply(slice("a", &[ready("10.0.0.1")]))),
        None
    );
    assert_eq!(
        s.apply(Event::InitApply(slice("b", &[ready("10.0.0.2")]))),
        None,
        "nothing is reported before the list is complete"
    );
    assert_eq!(
        s.apply(Event::InitDone),
        reset(&["10.0.0.1:4317", "10.0.0.2:4317"])
    );

    // A relist (after the watch was lost) that no longer has slice `a` and
    // has a changed `b`: the old set stays until InitDone, then is replaced.
    assert_eq!(s.apply(Event::Init), None);
    assert_eq!(
        s.apply(Event::InitApply(slice(
            "b",
            &[ready("10.0.0.2"), ready("10.0.0.3")]
        ))),
        None
    );
    assert_eq!(
        s.apply(Event::InitDone),
        reset(&["10.0.0.2:4317", "10.0.0.3:4317"])
    );

    // A relist with the same content reports nothing.
    s.apply(Event::Init);
    s.apply(Event::InitApply(slice(
        "b",
        &[ready("10.0.0.3"), ready("10.0.0.2")],
    )));
    assert_eq!(s.apply(Event::InitDone), None);
}

#[test]
fn apply_and_delete_merge_slices_of_one_service() {
    let mut s = Slices::new(&config("collectors", &[4317]), "obs");
    s.apply(Event::Init);
    assert_eq!(s.apply(Event::InitDone), reset(&[]));
    assert_eq!(
        s.apply(Event::Apply(slice("a", &[ready("10.0.0.1")]))),
        reset(&["10.0.0.1:4317"])
    );
    assert_eq!(
        s.apply(Event::Apply(slice("b", &[ready("10.0.0.2")]))),
        reset(&["10.0.0.1:4317", "10.0.0.2:4317"])
    );
    // The controller moves 10.0.0.2 from b to a: for a moment both list it.
    assert_eq!(
        s.apply(Event::Apply(slice(
            "a",
            &[ready("10.0.0.1"), ready("10.0.0.2")]
        ))),
        None
    );
    assert_eq!(
        s.apply(Event::Apply(slice("b", &[]))),
        None,
        "an endpoint still listed by another slice stays"
    );
    assert_eq!(
        s.apply(Event::Delete(slice("a", &[]))),
        reset(&[]),
        "deleting a slice removes its endpoints"
    );
}

#[test]
fn only_ready_endpoints_that_are_not_terminating_are_used() {
    let mut s = Slices::new(&config("collectors", &[4317]), "obs");
    s.apply(Event::Init);
    s.apply(Event::InitApply(slice(
        "a",
        &[
            ready("10.0.0.1"),
            ("10.0.0.2", Some(false), Some(false), None), // not ready
            ("10.0.0.3", Some(false), Some(true), None),  // terminating
            ("10.0.0.4", Some(true), Some(true), None),   // terminating, published as ready
            ("10.0.0.5", None, None, None),               // unset conditions mean ready
        ],
    )));
    assert_eq!(
        s.apply(Event::InitDone),
        reset(&["10.0.0.1:4317", "10.0.0.5:4317"])
    );

    // Readiness flips: 10.0.0.2 becomes ready, 10.0.0.1 starts terminating.
    assert_eq!(
        s.apply(Event::Apply(slice(
            "a",
            &[
                ("10.0.0.1", Some(false), Some(true), None),
                ready("10.0.0.2"),
                ("10.0.0.5", None, None, None),
            ]
        ))),
        reset(&["10.0.0.2:4317", "10.0.0.5:4317"])
    );
}

#[test]
fn each_port_makes_a_backend_and_ipv6_is_bracketed() {
    let mut s = Slices::new(&config("collectors", &[4317, 5317]), "obs");
    s.apply(Event::Apply(slice(
        "a",
        &[ready("10.0.0.1"), ready("fd00::7")],
    )));
    assert_eq!(
        s.reported,
        Some(set(&[
            "10.0.0.1:4317",
            "10.0.0.1:5317",
            "[fd00::7]:4317",
            "[fd00::7]:5317"
        ]))
    );
}

#[test]
fn return_hostnames_names_backends_by_pod_hostname() {
    let mut cfg = config("collectors.obs", &[4317]);
    cfg.return_hostnames = true;
    let mut s = Slices::new(&cfg, "obs");
    assert_eq!(
        s.apply(Event::Apply(slice(
            "a",
            &[
                ("10.0.0.1", Some(true), None, Some("collector-0")),
                ("10.0.0.2", Some(true), None, Some("collector-1")),
                ("10.0.0.3", Some(true), None, None), // no hostname: left out
            ]
        ))),
        reset(&[
            "collector-0.collectors.obs:4317",
            "collector-1.collectors.obs:4317"
        ])
    );
}

#[test]
fn the_namespace_comes_from_the_service_then_the_pod_then_default() {
    assert_eq!(
        namespace(&config("collectors.obs", &[1]), Some("pod-ns".into())),
        "obs"
    );
    assert_eq!(
        namespace(&config("collectors", &[1]), Some("pod-ns\n".into())),
        "pod-ns"
    );
    assert_eq!(namespace(&config("collectors", &[1]), None), "default");
    assert_eq!(
        namespace(&config("collectors", &[1]), Some(" ".into())),
        "default"
    );
}

fn watch_error() -> watcher::Error {
    watcher::Error::NoResourceVersion
}

/// Every event kind and watch errors, through `updates` and the one ring
/// builder, into a pool; the ring and the resolver metrics follow.
#[tokio::test]
async fn the_update_stream_follows_a_watcher_event_stream() {
    let telemetry = Telemetry::new();
    let resolutions = Resolutions::new(&telemetry, "lb", "k8s");
    let (tx, rx) = futures::channel::mpsc::unbounded();
    let mut updates = updates(
        rx,
        Slices::new(&config("collectors", &[4317]), "obs"),
        resolutions,
    );
    let send = |e: Result<Event<EndpointSlice>, watcher::Error>| tx.unbounded_send(e).unwrap();

    send(Ok(Event::Init));
    send(Ok(Event::InitApply(slice("a", &[ready("127.0.0.21")]))));
    send(Ok(Event::InitApply(slice("b", &[ready("127.0.0.22")]))));
    send(Ok(Event::InitDone));
    assert_eq!(
        updates.next().await,
        reset(&["127.0.0.21:4317", "127.0.0.22:4317"])
    );

    send(Ok(Event::Apply(slice(
        "b",
        &[ready("127.0.0.22"), ready("127.0.0.23")],
    ))));
    assert_eq!(
        updates.next().await,
        reset(&["127.0.0.21:4317", "127.0.0.22:4317", "127.0.0.23:4317"])
    );

    // A watch error changes nothing.
    send(Err(watch_error()));
    send(Ok(Event::Delete(slice("a", &[]))));
    assert_eq!(
        updates.next().await,
        reset(&["127.0.0.22:4317", "127.0.0.23:4317"])
    );

    // Readiness flips off, then a relist drops slice b for a new slice c.
    send(Ok(Event::Apply(slice(
        "b",
        &[("127.0.0.22", Some(false), None, None), ready("127.0.0.23")],
    ))));
    assert_eq!(updates.next().await, reset(&["127.0.0.23:4317"]));
    send(Ok(Event::Init));
    send(Ok(Event::InitApply(slice("c", &[ready("127.0.0.24")]))));
    send(Ok(Event::InitDone));
    assert_eq!(updates.next().await, reset(&["127.0.0.24:4317"]));

    drop(tx);
    assert_eq!(updates.next().await, None);

    let text = telemetry.render();
    let value = |labels: &[(&str, &str)]| -> f64 {
        text.lines()
            .filter(|l| l.starts_with("otelcol_loadbalancer_num_resolutions_total{"))
            .filter(|l| {
                labels
                    .iter()
                    .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    let ok = [("exporter", "lb"), ("resolver", "k8s"), ("success", "true")];
    let failed = [
        ("exporter", "lb"),
        ("resolver", "k8s"),
        ("success", "false"),
    ];
    // InitDone, Apply, Delete, Apply, InitDone: 5 resolutions; 1 error.
    assert_eq!(value(&ok), 5.0);
    assert_eq!(value(&failed), 1.0);
}

/// The membership a stream of k8s updates leads to equals the last set.
#[tokio::test]
async fn updates_end_when_the_watch_ends() {
    let events = futures::stream::iter(vec![
        Ok(Event::Init),
        Ok(Event::InitApply(slice("a", &[ready("10.0.0.1")]))),
        Ok(Event::InitDone),
        Err(watch_error()),
        Ok(Event::Apply(slice("a", &[ready("10.0.0.2")]))),
    ]);
    let telemetry = Telemetry::new();
    let got: Vec<Update> = updates(
        events,
        Slices::new(&config("collectors", &[4317]), "obs"),
        Resolutions::new(&telemetry, "lb", "k8s"),
    )
    .collect()
    .await;
    let mut m = BTreeSet::new();
    for u in got.clone() {
        u.apply(&mut m);
    }
    assert_eq!(got.len(), 2);
    assert_eq!(m, set(&["10.0.0.2:4317"]));
}
