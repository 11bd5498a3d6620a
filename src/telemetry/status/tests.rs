use std::collections::BTreeSet;

use super::*;
use crate::{
    config::endpoint::Endpoint, discovery::Resolutions, exporter::ClientSettings, routing::Ring,
};

const MS: Duration = Duration::from_millis(1);

// Nothing listens on port 1: the backends connect lazily, never.
const A: &str = "127.0.0.1:1";
const B: &str = "127.0.0.2:1";
const C: &str = "127.0.0.3:1";

/// A config with one `loadbalancing` exporter per (id, routing key, signal).
fn config(exporters: &[(&str, &str, &str)], queue: bool) -> Config {
    let mut yaml = String::from(
        "receivers: { otlp: { protocols: { grpc: { endpoint: \"127.0.0.1:0\" } } } }\nexporters:\n",
    );
    for (id, key, _) in exporters {
        yaml.push_str(&format!(
            "  {id:?}:\n    routing_key: {key}\n    resolver: {{ static: {{ hostnames: [{A}] }} }}\n"
        ));
        if queue {
            yaml.push_str("    sending_queue: { queue_size: 50 }\n");
        }
    }
    yaml.push_str("service:\n  pipelines:\n");
    for (i, (id, _, signal)) in exporters.iter().enumerate() {
        yaml.push_str(&format!(
            "    {signal}/{i}: {{ receivers: [otlp], exporters: [{id:?}] }}\n"
        ));
    }
    Config::from_yaml(&yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"))
}

/// The status of `config`'s exporters, each over a pool of `endpoints`.
async fn watch(config: &Config, endpoints: &[&str]) -> (Status, Arc<Telemetry>) {
    let telemetry = Telemetry::new();
    let set: BTreeSet<Endpoint> = endpoints
        .iter()
        .map(|e| Endpoint::parse(e).unwrap())
        .collect();
    let mut pools = BTreeMap::new();
    for id in config.exporters.keys() {
        let pool = PoolHandle::new(
            id.as_str(),
            "static",
            Arc::new(ClientSettings::default()),
            100,
            telemetry.clone(),
        );
        pool.update(&set).await;
        let resolutions = Resolutions::new(&telemetry, id.as_str(), "static");
        resolutions.record_endpoints(set.len());
        pool.share_resolutions(resolutions);
        pools.insert(id.clone(), pool);
    }
    (Status::new(config, &pools, telemetry.clone()), telemetry)
}

fn traces(key: &str) -> Config {
    config(&[("loadbalancing", key, "traces")], false)
}

#[tokio::test(start_paused = true)]
async fn the_snapshot_shows_shares_outcomes_and_the_last_resolution() {
    let (status, _) = watch(&traces("traceID"), &[A, B]).await;
    let pool = status.exporters[0].pool.load();
    let (a, b) = (pool.backend(0).unwrap(), pool.backend(1).unwrap());
    for _ in 0..3 {
        a.calls().record(true, 10, 2 * MS);
    }
    b.calls().record(true, 10, 2 * MS);
    b.calls().record(false, 0, 40 * MS);

    let json = serde_json::to_value(status.snapshot()).unwrap();
    assert_eq!(json["window_seconds"], 60);
    let exporter = &json["exporters"][0];
    assert_eq!(exporter["name"], "loadbalancing");
    assert_eq!(exporter["resolver"], "static");
    assert_eq!(
        exporter["routing_keys"],
        serde_json::json!({"traces": "traceID"})
    );
    assert_eq!(exporter["queue"], serde_json::Value::Null);
    assert_eq!(exporter["resolutions"]["successes"], 1);
    assert_eq!(exporter["resolutions"]["last"]["success"], true);
    assert_eq!(exporter["resolutions"]["last"]["endpoints"], 2);

    let backends = exporter["backends"].as_array().unwrap();
    assert_eq!(backends.len(), 2);
    assert_eq!(backends[0]["endpoint"], A);
    assert_eq!(backends[1]["endpoint"], B);
    let ring: f64 = backends
        .iter()
        .map(|b| b["ring_share"].as_f64().unwrap())
        .sum();
    assert!((ring - 1.0).abs() < 1e-9, "ring shares sum to {ring}");
    assert_eq!(backends[0]["traffic_share"], 0.75);
    assert_eq!(backends[1]["traffic_share"], 0.25);
    assert_eq!(backends[0]["items"], 30);
    assert_eq!(backends[0]["requests"], 3);
    assert_eq!(
        (&backends[1]["successes"], &backends[1]["failures"]),
        (&serde_json::json!(1), &serde_json::json!(1))
    );
    assert_eq!(backends[0]["p50_ms"], 2.0);
    assert_eq!(backends[1]["p99_ms"], 50.0);

    // A minute later the traffic has left the window; the ring has not.
    tokio::time::advance(Duration::from_secs(61)).await;
    let json = serde_json::to_value(status.snapshot()).unwrap();
    let backend = &json["exporters"][0]["backends"][0];
    assert_eq!(backend["traffic_share"], 0.0);
    assert_eq!(backend["requests"], 0);
    assert_eq!(backend["p50_ms"], serde_json::Value::Null);
    assert!(backend["ring_share"].as_f64().unwrap() > 0.2);
}

#[tokio::test(start_paused = true)]
async fn calls_without_items_share_traffic_by_request() {
    let (status, _) = watch(&traces("traceID"), &[A, B]).await;
    let pool = status.exporters[0].pool.load();
    pool.backend(1).unwrap().calls().record(false, 0, MS);
    let snapshot = status.snapshot();
    let shares: Vec<f64> = snapshot.exporters[0]
        .backends
        .iter()
        .map(|b| b.traffic_share)
        .collect();
    assert_eq!(shares, [0.0, 1.0]);
}

#[tokio::test]
async fn a_sending_queue_is_shown_from_the_self_metrics() {
    let config = config(&[("loadbalancing", "traceID", "traces")], true);
    let (status, telemetry) = watch(&config, &[A]).await;
    let labels = [("exporter", "loadbalancing")];
    telemetry
        .gauge(names::EXPORTER_QUEUE_SIZE, &labels)
        .set(7.0);
    telemetry
        .gauge(names::EXPORTER_QUEUE_CAPACITY, &labels)
        .set(50.0);
    let json = serde_json::to_value(status.snapshot()).unwrap();
    assert_eq!(
        json["exporters"][0]["queue"],
        serde_json::json!({"size": 7.0, "capacity": 50.0})
    );
}

#[tokio::test]
async fn route_answers_what_the_ring_says_for_each_key() {
    let id = [0x4bu8; 16];
    let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
    let config = config(
        &[
            ("loadbalancing/t", "traceID", "traces"),
            ("loadbalancing/l", "traceID", "logs"),
            ("loadbalancing/s", "service", "traces"),
            ("loadbalancing/m", "metric", "metrics"),
        ],
        false,
    );
    let (status, _) = watch(&config, &[A, B, C]).await;
    let ring = Ring::new([A, B, C], 100);
    let cases = [
        (
            "loadbalancing/t",
            format!("trace_id={hex}"),
            &id[..],
            "traces",
        ),
        (
            "loadbalancing/t",
            format!("trace_id={}", hex.to_uppercase()),
            &id[..],
            "traces",
        ),
        (
            "loadbalancing/l",
            format!("trace_id={hex}"),
            &id[..],
            "logs",
        ),
        (
            "loadbalancing/s",
            "service=check%20out".into(),
            b"check out",
            "traces",
        ),
        (
            "loadbalancing/m",
            "metric=http.server.duration".into(),
            b"http.server.duration",
            "metrics",
        ),
    ];
    for (exporter, key, bytes, signal) in cases {
        let answer = status
            .route(&format!("exporter={}&{key}", exporter.replace('/', "%2F")))
            .unwrap_or_else(|e| panic!("{exporter} {key}: {e}"));
        assert_eq!(answer.exporter, exporter);
        assert_eq!(answer.signal, signal);
        assert_eq!(
            answer.hash,
            format!("{:016x}", crate::routing::key_hash(bytes))
        );
        assert_eq!(
            &*answer.backend,
            &**ring.owner(bytes).unwrap(),
            "{exporter} {key}"
        );
    }
    // Many keys spread over all three backends, each as the ring says.
    let mut seen = BTreeSet::new();
    for n in 0..64u128 {
        let bytes = n
            .wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835)
            .to_be_bytes();
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let answer = status
            .route(&format!("exporter=loadbalancing/t&trace_id={hex}"))
            .unwrap();
        assert_eq!(&*answer.backend, &**ring.owner(&bytes).unwrap());
        seen.insert(answer.backend);
    }
    assert_eq!(seen.len(), 3);
}

#[tokio::test]
async fn route_explains_what_is_wrong_with_a_question() {
    let config = config(&[("loadbalancing", "traceID", "traces")], false);
    let (status, _) = watch(&config, &[A]).await;
    let hex = "0123456789abcdef0123456789abcdef";
    let cases = [
        (format!("trace_id={hex}"), "missing parameter \"exporter\""),
        (
            format!("exporter=nope&trace_id={hex}"),
            "unknown exporter \"nope\"; load-balancing exporters: loadbalancing",
        ),
        ("exporter=loadbalancing".into(), "give exactly one of"),
        (
            format!("exporter=loadbalancing&trace_id={hex}&service=a"),
            "give exactly one of",
        ),
        (
            "exporter=loadbalancing&trace_id=0123".into(),
            "trace_id must be 32 hex digits",
        ),
        (
            format!("exporter=loadbalancing&trace_id={}zz", &hex[2..]),
            "trace_id must be 32 hex digits",
        ),
        (
            "exporter=loadbalancing&service=cart".into(),
            "does not route anything by service: it routes traces by traceID",
        ),
        (
            format!("exporter=loadbalancing&trace_id={hex}&signal=logs"),
            "does not route logs by traceID",
        ),
        (
            format!("exporter=loadbalancing&trace_id={hex}&signal=spans"),
            "signal \"spans\" is not one of",
        ),
        (
            format!("exporter=loadbalancing&trace_id={hex}&x=1"),
            "unknown parameter \"x\"",
        ),
        (
            format!("exporter=loadbalancing&exporter=loadbalancing&trace_id={hex}"),
            "given twice",
        ),
        ("exporter=%zz".into(), "malformed percent-encoding"),
    ];
    for (query, expected) in cases {
        match status.route(&query) {
            Err(RouteError::BadRequest(message)) => {
                assert!(message.contains(expected), "{query}: {message}")
            }
            other => panic!("{query}: {other:?}"),
        }
    }

    let (empty, _) = watch(&config, &[]).await;
    assert!(matches!(
        empty.route(&format!("exporter=loadbalancing&trace_id={hex}")),
        Err(RouteError::Unavailable(_))
    ));
}

#[tokio::test(start_paused = true)]
async fn the_page_escapes_names_and_marks_backends() {
    let config = config(&[("loadbalancing/<b>&\"x'", "traceID", "traces")], false);
    let (status, _) = watch(&config, &[A, B]).await;
    status.exporters[0]
        .pool
        .load()
        .backend(0)
        .unwrap()
        .calls()
        .record(true, 4, MS);
    let html = render_html(&status.snapshot());
    assert!(!html.contains("<b>&"), "an unescaped name: {html}");
    assert!(html.contains("data-exporter=\"loadbalancing/&lt;b&gt;&amp;&quot;x&#39;\""));
    assert!(html.contains("id=\"exporter-loadbalancing--b---x-\""));
    assert!(html.contains(&format!(
        "data-endpoint=\"{A}\" data-ring-share=\"{:.6}\" data-traffic-share=\"1.000000\" data-items=\"4\"",
        status.snapshot().exporters[0].backends[0].ring_share
    )));
    assert!(html.contains(&format!("data-endpoint=\"{B}\"")));
    assert!(html.contains("http-equiv=\"refresh\""));
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "no external assets"
    );
}

#[test]
fn the_extension_is_configured_like_the_collectors() {
    let yaml = |ext: &str| {
        format!(
            "receivers: {{ otlp: {{ protocols: {{ grpc: {{ endpoint: \"127.0.0.1:0\" }} }} }} }}\n\
             exporters: {{ debug: {{}} }}\n\
             extensions: {{ otlp_lb_status: {ext} }}\n\
             service:\n  extensions: [otlp_lb_status]\n  \
             pipelines: {{ traces: {{ receivers: [otlp], exporters: [debug] }} }}\n"
        )
    };
    let config = Config::from_yaml(&yaml("")).unwrap();
    let id = ComponentId::parse("otlp_lb_status").unwrap();
    assert_eq!(
        config.extensions[&id],
        crate::config::extensions::ExtensionConfig::Status(Default::default())
    );
    assert_eq!(config.extensions[&id].endpoint(), Some("127.0.0.1:55679"));
    let config = Config::from_yaml(&yaml("{ endpoint: \"127.0.0.1:0\" }")).unwrap();
    assert_eq!(config.extensions[&id].endpoint(), Some("127.0.0.1:0"));
    for (bad, expected) in [
        (
            "{ endpoint: \"nope\" }",
            "extensions.otlp_lb_status.endpoint",
        ),
        (
            "{ path: / }",
            "extensions.otlp_lb_status.path: unknown field \"path\"",
        ),
    ] {
        let error = Config::from_yaml(&yaml(bad)).unwrap_err().to_string();
        assert!(error.contains(expected), "{bad}: {error}");
    }
}

#[test]
fn helpers() {
    assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
    assert_eq!(utc(1_700_000_000_123), "2023-11-14 22:13:20 UTC");
    assert_eq!(utc(951_782_400_000), "2000-02-29 00:00:00 UTC");
    assert_eq!(percent_decode("a+b%2Fc%C3%A9").unwrap(), "a b/cé");
    assert!(percent_decode("%4").is_err());
    assert!(percent_decode("%ff").is_err());
    let text = "# TYPE x gauge\nx{exporter=\"a\"} 1\nx{exporter=\"ab\"} 2\nxy{exporter=\"a\"} 3\n";
    assert_eq!(gauge(text, "x", "a"), Some(1.0));
    assert_eq!(gauge(text, "x", "ab"), Some(2.0));
    assert_eq!(gauge(text, "x", "b"), None);
}
