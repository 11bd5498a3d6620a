//! Loading whole configs: the collector shapes users run, defaults, and the
//! exact path of every error.

use std::time::Duration;

use super::exporters::*;
use super::processors::*;
use super::receivers::*;
use super::service::*;
use super::*;

fn load(yaml: &str) -> Config {
    match Config::from_yaml(yaml) {
        Ok(c) => c,
        Err(e) => panic!("config did not load: {e}\n{yaml}"),
    }
}

fn err(yaml: &str) -> ConfigError {
    match Config::from_yaml(yaml) {
        Ok(_) => panic!("config loaded but should not:\n{yaml}"),
        Err(e) => e,
    }
}

/// Asserts the error's path exactly and its message's start (parse errors
/// end with the line and column).
fn assert_err(yaml: &str, path: &str, message: &str) {
    let e = err(yaml);
    assert_eq!(e.path, path, "wrong path for: {e}");
    assert!(
        e.message.starts_with(message),
        "message of {e:?} does not start with {message:?}"
    );
}

fn id(s: &str) -> ComponentId {
    ComponentId::parse(s).unwrap()
}

/// A traces pipeline `otlp -> loadbalancing` with the given exporter body
/// (flow-style YAML).
fn lb(exporter: &str) -> String {
    lb_in("traces", exporter)
}

fn lb_in(pipeline: &str, exporter: &str) -> String {
    format!(
        "receivers: {{otlp: {{protocols: {{grpc: }}}}}}\n\
         exporters:\n  loadbalancing: {exporter}\n\
         service:\n  pipelines:\n    {pipeline}: {{receivers: [otlp], exporters: [loadbalancing]}}\n"
    )
}

const STATIC: &str = "{resolver: {static: {hostnames: [a:4317]}}}";

fn lb_of(c: &Config, name: &str) -> LoadBalancingExporterConfig {
    match c.exporters.get(&id(name)) {
        Some(ExporterConfig::LoadBalancing(lb)) => (**lb).clone(),
        other => panic!("{name} is not a loadbalancing exporter: {other:?}"),
    }
}

// ------------------------------------------------------------ what users run

const STATIC_TRACES: &str = "
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 0.0.0.0:4317

exporters:
  loadbalancing:
    protocol:
      otlp:
        tls:
          insecure: true
    resolver:
      static:
        hostnames:
          - collector-1.example.com:4317
          - collector-2.example.com:5317
          - collector-3.example.com

service:
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [loadbalancing]
";

#[test]
fn static_first_tier_loads_with_collector_defaults() {
    let c = load(STATIC_TRACES);
    let lb = lb_of(&c, "loadbalancing");
    let Some(Resolver::Static(s)) = lb.resolver.selected() else {
        panic!("not static: {:?}", lb.resolver);
    };
    let endpoints: Vec<String> = s.endpoints().iter().map(|e| e.to_string()).collect();
    assert_eq!(
        endpoints,
        [
            "collector-1.example.com:4317",
            "collector-2.example.com:5317",
            "collector-3.example.com:4317"
        ]
    );
    assert_eq!(lb.routing_key, None);
    assert_eq!(lb.routing_key_for(Signal::Traces), RoutingKey::TraceId);
    assert_eq!(lb.routing_key_for(Signal::Metrics), RoutingKey::Service);
    assert_eq!(lb.routing_key_for(Signal::Logs), RoutingKey::TraceId);
    assert_eq!(lb.timeout, Duration::from_secs(5));
    assert!(!lb.retry_on_failure.enabled);
    assert!(!lb.sending_queue.enabled);
    let otlp = &lb.protocol.otlp;
    assert!(otlp.tls.insecure);
    assert!(otlp.plaintext());
    assert_eq!(otlp.compression, Compression::Gzip);
    assert_eq!(otlp.timeout, Duration::from_secs(5));
    assert_eq!(otlp.retry_on_failure, RetryConfig::default());
    assert_eq!(otlp.sending_queue, QueueConfig::default());
    assert_eq!(c.metrics_address().as_deref(), Some("0.0.0.0:8888"));
    assert_eq!(
        c.exporter_signals(&id("loadbalancing"))
            .into_iter()
            .collect::<Vec<_>>(),
        [Signal::Traces]
    );
    let ReceiverConfig::Otlp(r) = &c.receivers[&id("otlp")];
    assert_eq!(r.protocols.grpc.as_ref().unwrap().endpoint, "0.0.0.0:4317");
    assert_eq!(r.protocols.http, None);
}

const PER_SIGNAL_K8S: &str = "
extensions:
  health_check:
    endpoint: 0.0.0.0:13133

receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 0.0.0.0:4317
      http:
        endpoint: 0.0.0.0:4318

exporters:
  loadbalancing/traces:
    protocol:
      otlp:
    resolver:
      k8s:
        service: traces-receiver.default
        ports:
          - 4317
  loadbalancing/metrics:
    retry_on_failure:
      enabled: true
      initial_interval: 5s
      max_interval: 30s
      max_elapsed_time: 300s
    sending_queue:
      enabled: true
      num_consumers: 10
      queue_size: 1000
      sizer: requests
    protocol:
      otlp:
    resolver:
      k8s:
        service: metrics-receiver

service:
  extensions: [health_check]
  pipelines:
    metrics:
      receivers: [otlp]
      processors: []
      exporters:
        - loadbalancing/metrics
    traces:
      receivers: [otlp]
      processors: []
      exporters:
        - loadbalancing/traces
";

#[test]
fn per_signal_k8s_first_tier_loads() {
    let c = load(PER_SIGNAL_K8S);
    let traces = lb_of(&c, "loadbalancing/traces");
    assert_eq!(traces.protocol.otlp, OtlpExporterConfig::default());
    assert!(!traces.protocol.otlp.plaintext());
    let Some(Resolver::K8s(k)) = traces.resolver.selected() else {
        panic!("not k8s");
    };
    assert_eq!(
        (k.service_name(), k.namespace()),
        ("traces-receiver", Some("default"))
    );
    assert_eq!(k.ports, [4317]);
    assert_eq!(k.timeout, Duration::from_secs(1));
    assert!(!k.return_hostnames);

    let metrics = lb_of(&c, "loadbalancing/metrics");
    assert_eq!(metrics.retry_on_failure, RetryConfig::default());
    assert_eq!(metrics.sending_queue, QueueConfig::default());
    let Some(Resolver::K8s(k)) = metrics.resolver.selected() else {
        panic!("not k8s");
    };
    assert_eq!(
        (k.service_name(), k.namespace()),
        ("metrics-receiver", None)
    );
    assert_eq!(k.ports, [4317]);
    assert_eq!(c.service.extensions, [id("health_check")]);
    let pipeline = &c.service.pipelines[&PipelineId::parse("metrics").unwrap()];
    assert!(pipeline.processors.is_empty());
}

#[test]
fn dns_resolver_defaults_and_extensions() {
    let c = load(&lb("{resolver: {dns: {hostname: collectors.example.com}}}"));
    let first = lb_of(&c, "loadbalancing");
    let Some(Resolver::Dns(d)) = first.resolver.selected() else {
        panic!("not dns");
    };
    assert_eq!(d.hostname, "collectors.example.com");
    assert_eq!(d.effective_port(), 4317);
    assert_eq!(d.interval, Duration::from_secs(5));
    assert_eq!(d.timeout, Duration::from_secs(1));
    assert_eq!(d.record, DnsRecord::A);
    assert_eq!(d.nameserver_addr(), None);

    let c = load(&lb(
        "{resolver: {dns: {hostname: _otlp._tcp.c.local, record: SRV, nameserver: \"127.0.0.1:5353\", interval: 1m30s, timeout: 300ms}}}",
    ));
    let lb = lb_of(&c, "loadbalancing");
    let Some(Resolver::Dns(d)) = lb.resolver.selected() else {
        panic!("not dns");
    };
    assert_eq!(d.record, DnsRecord::Srv);
    assert_eq!(d.nameserver_addr().unwrap().to_string(), "127.0.0.1:5353");
    assert_eq!(d.interval, Duration::from_secs(90));
    assert_eq!(d.timeout, Duration::from_millis(300));
}

#[test]
fn null_protocols_enable_servers_with_defaults() {
    let c = load(&lb(STATIC).replace("{grpc: }", "{grpc: , http: }"));
    let ReceiverConfig::Otlp(r) = &c.receivers[&id("otlp")];
    let grpc = r.protocols.grpc.as_ref().unwrap();
    assert_eq!(grpc.endpoint, "0.0.0.0:4317");
    assert_eq!(grpc.max_recv_msg_size_mib, 4);
    assert_eq!(grpc.max_recv_msg_size_bytes(), 4 * 1024 * 1024);
    let http = r.protocols.http.as_ref().unwrap();
    assert_eq!(http.endpoint, "0.0.0.0:4318");
    assert_eq!(http.max_request_body_size, 20 * 1024 * 1024);
}

#[test]
fn env_references_expand_before_parsing() {
    let path = std::env::var("PATH").unwrap_or_default();
    assert!(!path.is_empty(), "the test needs PATH set");
    let yaml = lb(
        "{routing_key: attributes, routing_attributes: [\"${env:PATH}\", \"${PATH}\"], \
         resolver: {static: {hostnames: [\"${env:OTLP_LB_TEST_SURELY_UNSET:-10.1.2.3:4317}\"]}}}",
    );
    let c = load(&yaml);
    let lb = lb_of(&c, "loadbalancing");
    assert_eq!(lb.routing_attributes, [path.clone(), path]);
    let Some(Resolver::Static(s)) = lb.resolver.selected() else {
        panic!("not static");
    };
    assert_eq!(s.hostnames, ["10.1.2.3:4317"]);
    assert_eq!(
        err("a: ${yaml:x}").to_string(),
        "line 1: \"${yaml:x}\": config provider \"yaml\" is not supported by otlp-lb (only env and file)"
    );
}

#[test]
fn metrics_address_forms() {
    let with = |telemetry: &str| {
        load(&format!("{}  telemetry: {telemetry}\n", lb(STATIC))).metrics_address()
    };
    assert_eq!(with("{}").as_deref(), Some("0.0.0.0:8888"));
    assert_eq!(
        with("{metrics: {address: \"127.0.0.1:9999\"}}").as_deref(),
        Some("127.0.0.1:9999")
    );
    assert_eq!(
        with("{metrics: {level: normal, readers: [{pull: {exporter: {prometheus: {host: \"::1\", port: 8889}}}}]}}")
            .as_deref(),
        Some("[::1]:8889")
    );
    assert_eq!(with("{metrics: {level: none}}"), None);
    assert_eq!(
        load(&format!(
            "{}  telemetry: {{logs: {{level: debug, encoding: json}}}}\n",
            lb(STATIC)
        ))
        .service
        .telemetry
        .logs,
        LogsTelemetryConfig {
            level: LogLevel::Debug,
            encoding: LogEncoding::Json
        }
    );
}

#[test]
fn second_tier_exporters() {
    let c = load(
        "receivers: {otlp: {protocols: {http: }}}\n\
         exporters:\n  otlp: {endpoint: \"backend:4317\", compression: zstd, headers: {x-key: v}}\n  \
         otlphttp: {endpoint: \"http://backend:4318/\", logs_endpoint: \"https://logs/v1/l\"}\n  debug:\n\
         service:\n  pipelines:\n    traces: {receivers: [otlp], exporters: [otlp, otlphttp, debug]}\n    \
         logs: {receivers: [otlp], exporters: [otlphttp]}\n",
    );
    let Some(ExporterConfig::Otlp(o)) = c.exporters.get(&id("otlp")) else {
        panic!("otlp missing");
    };
    assert_eq!(o.target().unwrap().to_string(), "backend:4317");
    assert_eq!(o.compression, Compression::Zstd);
    assert_eq!(o.headers["x-key"].expose(), "v");
    let Some(ExporterConfig::OtlpHttp(h)) = c.exporters.get(&id("otlphttp")) else {
        panic!("otlphttp missing");
    };
    assert_eq!(
        h.signal_url(Signal::Traces).unwrap(),
        "http://backend:4318/v1/traces"
    );
    assert_eq!(h.signal_url(Signal::Logs).unwrap(), "https://logs/v1/l");
    assert_eq!(h.timeout, Duration::from_secs(30));
    assert_eq!(
        c.exporters.get(&id("debug")),
        Some(&ExporterConfig::Debug(DebugExporterConfig {
            verbosity: Verbosity::Basic
        }))
    );
}

// ------------------------------------------------------- parse-time errors

#[test]
fn unknown_keys_name_their_full_path() {
    assert_err(
        &lb("{protocol: {otlp: {tls: {foo: 1}}}, resolver: {static: {hostnames: [a]}}}"),
        "exporters.loadbalancing.protocol.otlp.tls.foo",
        "unknown field \"foo\", expected one of",
    );
    assert_err(
        &format!("{}extra: 1\n", lb(STATIC)),
        "extra",
        "unknown field \"extra\"",
    );
    assert_err(
        &format!("{}  pipelines2: {{}}\n", lb(STATIC)),
        "service.pipelines2",
        "unknown field \"pipelines2\"",
    );
}

#[test]
fn type_errors_name_their_path() {
    assert_err(
        &lb("{resolver: {dns: {hostname: a, port: abc}}}"),
        "exporters.loadbalancing.resolver.dns.port",
        "invalid value: expected an integer from 0 to 65535 (line 3, column 55)",
    );
    assert_err(
        &lb("{resolver: {dns: {hostname: a, port: 70000}}}"),
        "exporters.loadbalancing.resolver.dns.port",
        "invalid value: expected an integer from 0 to 65535",
    );
    assert_err(
        &lb("{resolver: {k8s: {service: a, return_hostnames: maybe}}}"),
        "exporters.loadbalancing.resolver.k8s.return_hostnames",
        "invalid value: expected true or false",
    );
    assert_err(
        &lb("{resolver: {static: {hostnames: [a, {b: 1}]}}}"),
        "exporters.loadbalancing.resolver.static.hostnames[1]",
        "",
    );
    assert_err(
        &lb("{timeout: 5, resolver: {static: {hostnames: [a]}}}"),
        "exporters.loadbalancing.timeout",
        "duration 5 has no unit; write it as e.g. 5s or 5ms",
    );
    assert_err(
        &lb("{timeout: 5parsecs, resolver: {static: {hostnames: [a]}}}"),
        "exporters.loadbalancing.timeout",
        "invalid duration \"5parsecs\": unknown unit \"parsecs\"",
    );
    assert_err(
        &lb("{routing_key: traceid, resolver: {static: {hostnames: [a]}}}"),
        "exporters.loadbalancing.routing_key",
        "unknown variant \"traceid\", expected one of",
    );
    assert_err(
        &lb("{protocol: {otlp: {compression: snappy}}, resolver: {static: {hostnames: [a]}}}"),
        "exporters.loadbalancing.protocol.otlp.compression",
        "unknown variant \"snappy\", expected one of none, gzip, zstd",
    );
}

#[test]
fn unknown_component_types_say_what_is_supported() {
    assert_err(
        &format!("{}processors: {{batch: }}\n", lb(STATIC)),
        "processors.batch",
        "unknown processor type \"batch\"; otlp-lb supports: tail_sampling, cumulative_to_delta",
    );
    assert_err(
        &format!(
            "{}processors:\n  memory_limiter/x: {{limit_mib: 1}}\n",
            lb(STATIC)
        ),
        "processors.memory_limiter/x",
        "unknown processor type \"memory_limiter\"; otlp-lb supports:",
    );
    assert_err(
        "receivers: {jaeger: }\n",
        "receivers.jaeger",
        "unknown receiver type \"jaeger\"; otlp-lb supports: otlp",
    );
    assert_err(
        "exporters: {kafka: }\n",
        "exporters.kafka",
        "unknown exporter type \"kafka\"; otlp-lb supports: load_balancing, otlp_grpc, otlp_http, debug",
    );
    assert_err(
        "extensions: {pprof: }\n",
        "extensions.pprof",
        "unknown extension type \"pprof\"; otlp-lb supports: health_check",
    );
    assert_err(
        "exporters: {\"otlp/\": }\n",
        "exporters.otlp/",
        "invalid component id \"otlp/\"",
    );
    assert_err(
        &lb(STATIC).replace("traces:", "profiles:"),
        "service.pipelines.profiles",
        "unknown pipeline type \"profiles\"; expected traces, metrics or logs",
    );
    assert_err(
        &lb(STATIC).replace("[otlp]", "[\"otlp/\"]"),
        "service.pipelines.traces.receivers[0]",
        "invalid component id",
    );
}

#[test]
fn recognised_but_unimplemented_keys_are_refused() {
    let cases = [
        (
            "{resolver: {aws_cloud_map: {namespace: x}}}",
            "exporters.loadbalancing.resolver.aws_cloud_map",
        ),
        (
            "{sending_queue: {storage: file_storage}, resolver: {static: {hostnames: [a]}}}",
            "exporters.loadbalancing.sending_queue.storage",
        ),
        (
            "{protocol: {otlp: {sending_queue: {storage: x}}}, resolver: {static: {hostnames: [a]}}}",
            "exporters.loadbalancing.protocol.otlp.sending_queue.storage",
        ),
        (
            "{protocol: {otlp: {balancer_name: round_robin}}, resolver: {static: {hostnames: [a]}}}",
            "exporters.loadbalancing.protocol.otlp.balancer_name",
        ),
    ];
    for (exporter, path) in cases {
        assert_err(&lb(exporter), path, "not supported by otlp-lb");
    }
    let receiver = |protocols: &str| {
        format!(
            "receivers: {{otlp: {{protocols: {protocols}}}}}\n{}",
            lb(STATIC).split_once('\n').unwrap().1
        )
    };
    assert_err(
        &receiver("{http: {cors: {allowed_origins: [\"*\"]}}}"),
        "receivers.otlp.protocols.http.cors",
        "not supported by otlp-lb",
    );
    assert_err(
        &receiver("{grpc: {keepalive: {server_parameters: {time: 10s}}}}"),
        "receivers.otlp.protocols.grpc.keepalive.server_parameters.time",
        "not supported by otlp-lb",
    );
    assert_err(
        &receiver("{grpc: {tls: {cert_file: c.pem}}}"),
        "receivers.otlp.protocols.grpc.tls.key_file",
        "required",
    );
    assert_err(
        &receiver("{http: {tls: {cert_file: c.pem, key_file: k.pem, min_version: \"1.1\"}}}"),
        "receivers.otlp.protocols.http.tls.min_version",
        "TLS 1.0 and 1.1 are not supported by otlp-lb",
    );
    assert_err(
        &receiver(
            "{http: {tls: {cert_file: c, key_file: k, min_version: \"1.3\", max_version: \"1.2\"}}}",
        ),
        "receivers.otlp.protocols.http.tls.min_version",
        "must not be above max_version",
    );
    assert_err(
        &receiver(
            "{grpc: {tls: {cert_file: c, key_file: k, cipher_suites: [TLS_AES_128_GCM_SHA256, TLS_RSA_WITH_AES_128_CBC_SHA]}}}",
        ),
        "receivers.otlp.protocols.grpc.tls.cipher_suites[1]",
        "TLS_RSA_WITH_AES_128_CBC_SHA: not supported by otlp-lb",
    );
    assert_err(
        &receiver("{grpc: {tls: {cert_file: c, key_file: k, client_ca_file_reload: true}}}"),
        "receivers.otlp.protocols.grpc.tls.client_ca_file_reload",
        "not supported by otlp-lb",
    );
    assert_err(
        &receiver("{http: {write_timeout: 10s}}"),
        "receivers.otlp.protocols.http.write_timeout",
        "not supported by otlp-lb",
    );
    load(&receiver(
        "{grpc: {tls: {cert_file: c, key_file: k, client_ca_file: ca, min_version: \"1.3\", \
         reload_interval: 1m, cipher_suites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256]}, \
         max_concurrent_streams: 10, keepalive: {server_parameters: {max_connection_idle: 1m}}, \
         otlp_lb_max_connections: 5, otlp_lb_max_header_list_size: 8192, \
         otlp_lb_request_body_timeout: 5s}, \
         http: {endpoint: \"127.0.0.1:4318\", tls: {cert_file: c, key_file: k}, read_timeout: 5s, \
         read_header_timeout: 5s, idle_timeout: 30s, otlp_lb_max_connections: 5}}",
    ));
    assert_err(
        &format!("{}connectors: {{}}\n", lb(STATIC)),
        "connectors",
        "not supported by otlp-lb",
    );
}

#[test]
fn empty_and_malformed_documents() {
    assert_eq!(err("").to_string(), "the configuration is empty");
    assert_eq!(
        err("# only a comment\n").to_string(),
        "the configuration is empty"
    );
    let e = err("receivers: [\n");
    assert!(!e.message.is_empty());
    assert_eq!(
        err("exporters:\n  debug:\n  debug:\n").to_string(),
        "exporters: duplicate mapping key: debug (line 3, column 3)"
    );
}

// ------------------------------------------------------- validation errors

#[test]
fn resolver_needs_exactly_one_kind() {
    let message = "exactly one of static, dns, k8s must be set";
    assert_err(&lb("{}"), "exporters.loadbalancing.resolver", message);
    assert_err(
        &lb("{resolver: }"),
        "exporters.loadbalancing.resolver",
        message,
    );
    assert_err(
        &lb("{resolver: {static: {hostnames: [a]}, dns: {hostname: b}}}"),
        "exporters.loadbalancing.resolver",
        message,
    );
}

#[test]
fn static_resolver_rules() {
    assert_err(
        &lb("{resolver: {static: {hostnames: []}}}"),
        "exporters.loadbalancing.resolver.static.hostnames",
        "must list at least one backend",
    );
    assert_err(
        &lb("{resolver: {static: }}"),
        "exporters.loadbalancing.resolver.static.hostnames",
        "must list at least one backend",
    );
    assert_err(
        &lb("{resolver: {static: {hostnames: [a, \"b:x\"]}}}"),
        "exporters.loadbalancing.resolver.static.hostnames[1]",
        "\"b:x\": invalid port \"x\"",
    );
    assert_err(
        &lb("{resolver: {static: {hostnames: [a, \"a:4317\"]}}}"),
        "exporters.loadbalancing.resolver.static.hostnames[1]",
        "backend a:4317 is listed twice",
    );
}

#[test]
fn dns_resolver_rules() {
    let path = "exporters.loadbalancing.resolver.dns";
    let dns = |body: &str| lb(&format!("{{resolver: {{dns: {body}}}}}"));
    assert_err(&dns("{port: 1}"), &format!("{path}.hostname"), "required");
    assert_err(
        &dns("{hostname: \"a:4317\"}"),
        &format!("{path}.hostname"),
        "must be a name without a port; set the port with port",
    );
    assert_err(
        &dns("{hostname: a, record: SRV, port: 4317}"),
        &format!("{path}.port"),
        "not used with record: SRV",
    );
    assert_err(
        &dns("{hostname: a, nameserver: \"10.0.0.1\"}"),
        &format!("{path}.nameserver"),
        "\"10.0.0.1\": missing port",
    );
    assert_err(
        &dns("{hostname: a, interval: 0s}"),
        &format!("{path}.interval"),
        "must be positive",
    );
    assert_err(
        &dns("{hostname: a, record: MX}"),
        &format!("{path}.record"),
        "unknown variant",
    );
}

#[test]
fn k8s_resolver_rules() {
    let path = "exporters.loadbalancing.resolver.k8s";
    let k8s = |body: &str| lb(&format!("{{resolver: {{k8s: {body}}}}}"));
    assert_err(&k8s("{}"), &format!("{path}.service"), "required");
    assert_err(
        &k8s("{service: a.b.svc.cluster.local}"),
        &format!("{path}.service"),
        "\"a.b.svc.cluster.local\" is not NAME or NAME.NAMESPACE",
    );
    assert_err(
        &k8s("{service: a, ports: []}"),
        &format!("{path}.ports"),
        "must list at least one port",
    );
    assert_err(
        &k8s("{service: a, ports: [4317, 4317]}"),
        &format!("{path}.ports[1]"),
        "port 4317 is listed twice",
    );
}

#[test]
fn endpoint_in_the_backend_template_is_refused() {
    assert_eq!(
        err(&lb(
            "{protocol: {otlp: {endpoint: \"x:4317\"}}, resolver: {static: {hostnames: [a]}}}"
        ))
        .to_string(),
        "exporters.loadbalancing.protocol.otlp.endpoint: set per backend by the resolver; remove it"
    );
}

#[test]
fn routing_key_must_fit_every_pipeline_signal() {
    assert_eq!(
        err(&lb(
            "{routing_key: metric, resolver: {static: {hostnames: [a]}}}"
        ))
        .to_string(),
        "exporters.loadbalancing.routing_key: \"metric\" does not apply to traces (used by \
         service.pipelines.traces); traces can be routed by: traceID, service, resource, attributes"
    );
    assert_err(
        &lb_in(
            "metrics",
            "{routing_key: traceID, resolver: {static: {hostnames: [a]}}}",
        ),
        "exporters.loadbalancing.routing_key",
        "\"traceID\" does not apply to metrics (used by service.pipelines.metrics); metrics can \
         be routed by: service, resource, metric, streamID, attributes",
    );
    assert_err(
        &lb_in(
            "logs/2",
            "{routing_key: streamID, resolver: {static: {hostnames: [a]}}}",
        ),
        "exporters.loadbalancing.routing_key",
        "\"streamID\" does not apply to logs (used by service.pipelines.logs/2)",
    );
    for (signal, key) in [
        ("traces", "service"),
        ("traces", "resource"),
        ("metrics", "streamID"),
        ("metrics", "metric"),
        ("metrics", "resource"),
        ("logs", "traceID"),
        ("logs", "service"),
    ] {
        load(&lb_in(
            signal,
            &format!("{{routing_key: {key}, resolver: {{static: {{hostnames: [a]}}}}}}"),
        ));
    }
    // No routing_key: each signal takes its default, so one exporter serves all three.
    let yaml = format!(
        "{}    metrics: {{receivers: [otlp], exporters: [loadbalancing]}}\n    \
         logs: {{receivers: [otlp], exporters: [loadbalancing]}}\n",
        lb(STATIC)
    );
    assert_eq!(load(&yaml).exporter_signals(&id("loadbalancing")).len(), 3);
}

#[test]
fn routing_attributes_go_with_routing_key_attributes() {
    assert_err(
        &lb("{routing_attributes: [x], resolver: {static: {hostnames: [a]}}}"),
        "exporters.loadbalancing.routing_attributes",
        "only used with routing_key: attributes",
    );
    assert_err(
        &lb("{routing_key: attributes, resolver: {static: {hostnames: [a]}}}"),
        "exporters.loadbalancing.routing_attributes",
        "required with routing_key: attributes",
    );
    assert_err(
        &lb(
            "{routing_key: attributes, routing_attributes: [a, \"\"], resolver: {static: {hostnames: [a]}}}",
        ),
        "exporters.loadbalancing.routing_attributes[1]",
        "must not be empty",
    );
    let c = load(&lb(
        "{routing_key: attributes, routing_attributes: [span.name, tenant], resolver: {static: {hostnames: [a]}}}",
    ));
    assert_eq!(
        lb_of(&c, "loadbalancing").routing_attributes,
        ["span.name", "tenant"]
    );
}

#[test]
fn retry_queue_and_tls_rules() {
    let with = |body: &str| {
        lb(&format!(
            "{{{body}, resolver: {{static: {{hostnames: [a]}}}}}}"
        ))
    };
    assert_err(
        &with("retry_on_failure: {multiplier: 0.5}"),
        "exporters.loadbalancing.retry_on_failure.multiplier",
        "must be at least 1",
    );
    assert_err(
        &with("retry_on_failure: {randomization_factor: 2}"),
        "exporters.loadbalancing.retry_on_failure.randomization_factor",
        "must be between 0 and 1",
    );
    assert_err(
        &with("protocol: {otlp: {sending_queue: {num_consumers: 0}}}"),
        "exporters.loadbalancing.protocol.otlp.sending_queue.num_consumers",
        "must be at least 1",
    );
    assert_err(
        &with("sending_queue: {queue_size: 0}"),
        "exporters.loadbalancing.sending_queue.queue_size",
        "must be at least 1",
    );
    // Disabled blocks are not checked.
    load(&with("sending_queue: {enabled: false, queue_size: 0}"));
    assert_err(
        &with("protocol: {otlp: {tls: {cert_file: c.pem}}}"),
        "exporters.loadbalancing.protocol.otlp.tls.key_file",
        "required when cert_file is set",
    );
    let c = load(&with(
        "sending_queue: {sizer: items, block_on_overflow: true}, retry_on_failure: {max_elapsed_time: 0}",
    ));
    let lb = lb_of(&c, "loadbalancing");
    assert!(lb.sending_queue.enabled && lb.sending_queue.block_on_overflow);
    assert_eq!(lb.sending_queue.sizer, QueueSizer::Items);
    assert!(lb.retry_on_failure.enabled);
    assert_eq!(lb.retry_on_failure.max_elapsed_time, Duration::ZERO);
}

#[test]
fn pipelines_reference_configured_components() {
    let base = lb(STATIC);
    assert_err(
        &base.replace("receivers: [otlp]", "receivers: []"),
        "service.pipelines.traces.receivers",
        "at least one receiver is required",
    );
    assert_err(
        &base.replace("exporters: [loadbalancing]", "exporters: []"),
        "service.pipelines.traces.exporters",
        "at least one exporter is required",
    );
    assert_eq!(
        err(&base.replace("receivers: [otlp]", "receivers: [otlp, otlp/2]")).to_string(),
        "service.pipelines.traces.receivers[1]: receiver \"otlp/2\" is not configured under receivers"
    );
    assert_err(
        &base.replace(
            "exporters: [loadbalancing]",
            "exporters: [loadbalancing, loadbalancing]",
        ),
        "service.pipelines.traces.exporters[1]",
        "exporter \"loadbalancing\" is listed twice",
    );
    assert_err(
        &base.replace(
            "exporters: [loadbalancing]",
            "exporters: [loadbalancing], processors: [tail_sampling]",
        ),
        "service.pipelines.traces.processors[0]",
        "processor \"tail_sampling\" is not configured under processors",
    );
    let pipelines_only = base.split("  pipelines:").next().unwrap().to_owned();
    assert_err(
        &pipelines_only,
        "service.pipelines",
        "at least one pipeline is required",
    );
    assert_err(
        &format!("{base}  extensions: [health_check]\n"),
        "service.extensions[0]",
        "extension \"health_check\" is not configured under extensions",
    );
}

#[test]
fn processors_only_in_pipelines_of_their_signal() {
    let processors = "processors:\n  tail_sampling: {policies: [{name: all, type: always_sample}]}\n  \
                      cumulativetodelta:\n";
    let yaml = |pipeline: &str, processor: &str| {
        format!(
            "{processors}{}",
            lb_in(pipeline, STATIC).replace(
                "exporters: [loadbalancing]}",
                &format!("exporters: [loadbalancing], processors: [{processor}]}}"),
            )
        )
    };
    assert_eq!(
        err(&yaml("metrics", "tail_sampling")).to_string(),
        "service.pipelines.metrics.processors[0]: tail_sampling processes traces only; it \
         cannot be used in a metrics pipeline"
    );
    assert_err(
        &yaml("traces", "cumulativetodelta"),
        "service.pipelines.traces.processors[0]",
        "cumulativetodelta processes metrics only; it cannot be used in a traces pipeline",
    );
    load(&yaml("traces", "tail_sampling"));
    load(&yaml("metrics", "cumulativetodelta"));
}

#[test]
fn receiver_rules() {
    let tail = lb(STATIC).split_once('\n').unwrap().1.to_owned();
    let receiver = |body: &str| format!("receivers: {{otlp: {body}}}\n{tail}");
    assert_err(
        &receiver(""),
        "receivers.otlp.protocols",
        "at least one of grpc, http must be set",
    );
    assert_err(
        &receiver("{protocols: {grpc: {endpoint: \"4317\"}}}"),
        "receivers.otlp.protocols.grpc.endpoint",
        "\"4317\": missing port",
    );
    assert_err(
        &receiver("{protocols: {grpc: {max_recv_msg_size_mib: 0}}}"),
        "receivers.otlp.protocols.grpc.max_recv_msg_size_mib",
        "must be at least 1",
    );
    assert_err(
        &receiver("{protocols: {grpc: , http: {endpoint: \"127.0.0.1:4317\"}}}"),
        "receivers.otlp.protocols.http.endpoint",
        "port 4317 is also used by receivers.otlp.protocols.grpc.endpoint",
    );
    load(&receiver(
        "{protocols: {grpc: {endpoint: \":4317\"}, http: {endpoint: \"127.0.0.1:0\"}}}",
    ));
}

#[test]
fn second_tier_exporter_rules() {
    let with = |exporter: &str, pipeline: &str| {
        format!(
            "receivers: {{otlp: {{protocols: {{grpc: }}}}}}\nexporters:\n  {exporter}\n\
             service:\n  pipelines:\n    {pipeline}: {{receivers: [otlp], exporters: [x]}}\n"
        )
    };
    assert_err(
        &with("x: {}", "traces"),
        "exporters.x",
        "unknown exporter type \"x\"",
    );
    let with = |exporter: &str, pipeline: &str| with(exporter, pipeline).replace("[x]", "[e]");
    assert_err(
        &with("e: ", "traces"),
        "exporters.e",
        "unknown exporter type",
    );
    let otlp = |body: &str, pipeline: &str| {
        with(&format!("otlp/e: {body}"), pipeline).replace("[e]", "[otlp/e]")
    };
    assert_err(&otlp("", "traces"), "exporters.otlp/e.endpoint", "required");
    assert_err(
        &otlp("{endpoint: backend}", "traces"),
        "exporters.otlp/e.endpoint",
        "\"backend\": missing port",
    );
    load(&otlp("{endpoint: \"https://backend:443\"}", "logs"));
    let http = |body: &str, pipeline: &str| {
        with(&format!("otlphttp: {body}"), pipeline).replace("[e]", "[otlphttp]")
    };
    assert_err(
        &http("", "traces"),
        "exporters.otlphttp.endpoint",
        "required (or traces_endpoint, metrics_endpoint, logs_endpoint)",
    );
    assert_err(
        &http("{endpoint: \"backend:4318\"}", "traces"),
        "exporters.otlphttp.endpoint",
        "\"backend:4318\": expected an http:// or https:// URL",
    );
    assert_err(
        &http("{traces_endpoint: \"http://b/v1/traces\"}", "logs"),
        "exporters.otlphttp.logs_endpoint",
        "required: the exporter is used in a logs pipeline and endpoint is not set",
    );
    load(&http("{traces_endpoint: \"http://b/v1/traces\"}", "traces"));
    assert_err(
        &with("debug/e: {verbosity: loud}", "traces").replace("[e]", "[debug/e]"),
        "exporters.debug/e.verbosity",
        "unknown variant \"loud\"",
    );
}

#[test]
fn telemetry_and_extension_rules() {
    let base = lb(STATIC);
    let telemetry = |t: &str| format!("{base}  telemetry: {t}\n");
    assert_err(
        &telemetry(
            "{metrics: {address: \"0.0.0.0:8888\", readers: [{pull: {exporter: {prometheus: {host: a, port: 1}}}}]}}",
        ),
        "service.telemetry.metrics.address",
        "set either address or readers, not both",
    );
    assert_err(
        &telemetry("{metrics: {readers: [{pull: {exporter: {prometheus: {host: a}}}}]}}"),
        "service.telemetry.metrics.readers[0].pull.exporter.prometheus.port",
        "required",
    );
    assert_err(
        &telemetry("{metrics: {readers: [{periodic: {}}]}}"),
        "service.telemetry.metrics.readers[0].periodic",
        "not supported by otlp-lb",
    );
    assert_err(
        &telemetry("{metrics: {address: \"0.0.0.0:4317\"}}"),
        "service.telemetry.metrics",
        "port 4317 is also used by receivers.otlp.protocols.grpc.endpoint",
    );
    assert_err(
        &telemetry("{traces: {}}"),
        "service.telemetry.traces",
        "not supported",
    );
    let health = |h: &str| {
        format!("extensions: {{health_check: {h}}}\n{base}  extensions: [health_check]\n")
    };
    let c = load(&health(""));
    assert_eq!(
        c.extensions[&id("health_check")],
        extensions::ExtensionConfig::HealthCheck(extensions::HealthCheckConfig::default())
    );
    assert_err(
        &health("{path: health}"),
        "extensions.health_check.path",
        "must start with /",
    );
    assert_err(
        &health("{endpoint: \"0.0.0.0:8888\"}"),
        "service.telemetry.metrics",
        "port 8888 is also used by extensions.health_check.endpoint",
    );
}

// ------------------------------------------------------------ tail_sampling

fn with_processor(processor: &str) -> String {
    format!(
        "processors:\n  {processor}\n{}",
        lb(STATIC).replace(
            "exporters: [loadbalancing]}",
            "exporters: [loadbalancing], processors: [tail_sampling]}"
        )
    )
}

fn policies(list: &str) -> String {
    with_processor(&format!("tail_sampling: {{policies: {list}}}"))
}

#[test]
fn tail_sampling_loads_with_defaults_and_blocks() {
    let c = load(&policies(
        "[{name: errors, type: status_code, status_code: {status_codes: [ERROR]}},\
          {name: some, type: probabilistic, probabilistic: {sampling_percentage: 10}},\
          {name: slow, type: latency, latency: {threshold_ms: 500}},\
          {name: both, type: and, and: {and_sub_policy: [\
             {name: a, type: string_attribute, string_attribute: {key: k, values: [\"^x.*\"], enabled_regex_matching: true}},\
             {name: b, type: numeric_attribute, numeric_attribute: {key: n, min_value: 1}}]}},\
          {name: c, type: composite, composite: {max_total_spans_per_second: 100, policy_order: [p], \
             composite_sub_policy: [{name: p, type: always_sample}], rate_allocation: [{policy: p, percent: 50}]}},\
          {name: n, type: not, not: {not_sub_policy: {name: q, type: boolean_attribute, boolean_attribute: {key: b, value: true}}}},\
          {name: d, type: drop, drop: {drop_sub_policy: [{name: r, type: span_count, span_count: {min_spans: 2}}]}}]",
    ));
    let Some(ProcessorConfig::TailSampling(t)) = c.processors.get(&id("tail_sampling")) else {
        panic!("tail_sampling missing");
    };
    assert_eq!(t.decision_wait, Duration::from_secs(30));
    assert_eq!(t.num_traces, 50_000);
    assert_eq!(t.decision_cache, DecisionCacheConfig::default());
    assert_eq!(t.policies.len(), 7);
    assert_eq!(t.policies[0].name, "errors");
    let Policy::StatusCode(status) = &t.policies[0].policy else {
        panic!("{:?}", t.policies[0]);
    };
    assert_eq!(status.status_codes, [StatusCodeName::Error]);
    let Policy::Probabilistic(probabilistic) = &t.policies[1].policy else {
        panic!("{:?}", t.policies[1]);
    };
    assert_eq!(probabilistic.sampling_percentage, 10.0);
    assert_eq!(
        t.policies[2].policy,
        Policy::Latency(LatencyPolicy {
            threshold_ms: 500,
            upper_threshold_ms: 0
        })
    );
    let Policy::And(and) = &t.policies[3].policy else {
        panic!("{:?}", t.policies[3]);
    };
    let Policy::StringAttribute(string) = &and.and_sub_policy[0].policy else {
        panic!("{:?}", and.and_sub_policy[0]);
    };
    assert_eq!(string.cache_max_size, 128);
    let Policy::Not(not) = &t.policies[5].policy else {
        panic!("{:?}", t.policies[5]);
    };
    assert_eq!(
        not.not_sub_policy.as_deref(),
        Some(&PolicyConfig::new(
            "q",
            Policy::BooleanAttribute(BooleanAttributePolicy {
                key: "b".into(),
                value: true,
                invert_match: false
            })
        ))
    );
}

#[test]
fn tail_sampling_policy_rules() {
    let p = "processors.tail_sampling.policies";
    assert_err(
        &policies(
            "[{name: a, type: always_sample}, {name: b, type: always_sample}, {name: c, type: latency}]",
        ),
        &format!("{p}[2].latency"),
        "required for type latency",
    );
    assert_err(
        &policies(
            "[{name: a, type: latency, latency: {threshold_ms: 1}, probabilistic: {sampling_percentage: 1}}]",
        ),
        &format!("{p}[0].probabilistic"),
        "set, but the policy type is latency",
    );
    assert_err(
        &policies("[{name: a, type: ottl_condition}]"),
        &format!("{p}[0].type"),
        "policy type \"ottl_condition\" is not supported by otlp-lb; supported: always_sample,",
    );
    assert_err(
        &policies("[{name: a, type: bytes_limiting, bytes_limiting: {bytes_per_second: 1}}]"),
        &format!("{p}[0].type"),
        "policy type \"bytes_limiting\" is not supported by otlp-lb",
    );
    assert_err(
        &policies("[{name: a, type: sometimes}]"),
        &format!("{p}[0].type"),
        "unknown policy type \"sometimes\"",
    );
    assert_err(
        &policies("[{type: always_sample}]"),
        &format!("{p}[0]"),
        "missing field \"name\"",
    );
    assert_err(&policies("[]"), p, "at least one policy is required");
    assert_err(
        &with_processor("tail_sampling:"),
        p,
        "at least one policy is required",
    );
    assert_err(
        &policies("[{name: a, type: always_sample}, {name: a, type: always_sample}]"),
        &format!("{p}[1].name"),
        "duplicate policy name \"a\"",
    );
    assert_err(
        &policies("[{name: a, type: probabilistic, probabilistic: {sampling_percentage: 101}}]"),
        &format!("{p}[0].probabilistic.sampling_percentage"),
        "must be between 0 and 100",
    );
    assert_err(
        &policies("[{name: a, type: status_code, status_code: {status_codes: [FAIL]}}]"),
        &format!("{p}[0].status_code.status_codes[0]"),
        "unknown variant \"FAIL\"",
    );
    assert_err(
        &policies("[{name: a, type: status_code, status_code: {status_codes: []}}]"),
        &format!("{p}[0].status_code.status_codes"),
        "list at least one of OK, ERROR, UNSET",
    );
    assert_err(
        &policies(
            "[{name: a, type: string_attribute, string_attribute: {key: k, values: [\"(\"], enabled_regex_matching: true}}]",
        ),
        &format!("{p}[0].string_attribute.values[0]"),
        "invalid regular expression",
    );
    load(&policies(
        "[{name: a, type: string_attribute, string_attribute: {key: k, values: [\"(\"]}}]",
    ));
    assert_err(
        &policies("[{name: a, type: latency, latency: {threshold_ms: 10, upper_threshold_ms: 5}}]"),
        &format!("{p}[0].latency.upper_threshold_ms"),
        "must be 0 (no upper bound) or at least threshold_ms",
    );
    assert_err(
        &policies("[{name: a, type: numeric_attribute, numeric_attribute: {key: k}}]"),
        &format!("{p}[0].numeric_attribute.max_value"),
        "set min_value, max_value or both",
    );
    assert_err(
        &policies("[{name: a, type: rate_limiting, rate_limiting: {}}]"),
        &format!("{p}[0].rate_limiting.spans_per_second"),
        "must be at least 1",
    );
    assert_err(
        &policies(
            "[{name: a, type: and, and: {and_sub_policy: [{name: b, type: and, and: {and_sub_policy: []}}]}}]",
        ),
        &format!("{p}[0].and.and_sub_policy[0].type"),
        "a and policy cannot be nested here",
    );
    assert_err(
        &policies("[{name: a, type: not, not: {}}]"),
        &format!("{p}[0].not.not_sub_policy"),
        "required",
    );
    assert_err(
        &policies(
            "[{name: a, type: drop, drop: {drop_sub_policy: [{name: b, type: trace_state, trace_state: {key: k}}]}}]",
        ),
        &format!("{p}[0].drop.drop_sub_policy[0].trace_state.values"),
        "list at least one value",
    );
    assert_err(
        &policies("[{name: a, type: latency, latency: {threshold_ms: slow}}]"),
        &format!("{p}[0].latency.threshold_ms"),
        "invalid value: expected a non-negative integer",
    );
    assert_err(
        &policies(
            "[{latency: {threshold_ms: 1}, name: a, type: probabilistic, probabilistic: {sampling_percentage: 1}}]",
        ),
        &format!("{p}[0].latency"),
        "set, but the policy type is probabilistic",
    );
    assert_err(
        &policies("[{name: a, type: always_sample, span_count: {min_spans: 1}}]"),
        &format!("{p}[0].span_count"),
        "set, but the policy type is always_sample",
    );
    assert_err(
        &policies("[{name: a, type: always_sample, colour: red}]"),
        &format!("{p}[0].colour"),
        "unknown field \"colour\", expected one of name, type, latency,",
    );
    assert_err(
        &policies("[{name: a, type: always_sample, trace_flags: {}}]"),
        &format!("{p}[0].trace_flags"),
        "not supported by otlp-lb",
    );
    assert_err(
        &policies("[{name: a}]"),
        &format!("{p}[0]"),
        "missing field \"type\"",
    );
    let composite = |rest: &str| {
        policies(&format!(
            "[{{name: c, type: composite, composite: {{max_total_spans_per_second: 10, \
             composite_sub_policy: [{{name: x, type: always_sample}}], {rest}}}}}]"
        ))
    };
    assert_err(
        &composite("policy_order: [y]"),
        &format!("{p}[0].composite.policy_order[0]"),
        "\"y\" is not a composite_sub_policy name",
    );
    assert_err(
        &composite("rate_allocation: [{policy: x, percent: 70}, {policy: x, percent: 40}]"),
        &format!("{p}[0].composite.rate_allocation"),
        "percents add up to 110; at most 100",
    );
}

#[test]
fn tail_sampling_settings_rules() {
    assert_err(
        &with_processor(
            "tail_sampling: {num_traces: 0, policies: [{name: a, type: always_sample}]}",
        ),
        "processors.tail_sampling.num_traces",
        "must be at least 1",
    );
    assert_err(
        &with_processor(
            "tail_sampling: {block_on_overflow: true, policies: [{name: a, type: always_sample}]}",
        ),
        "processors.tail_sampling.block_on_overflow",
        "not supported by otlp-lb",
    );
}

// -------------------------------------------------------- cumulativetodelta

fn c2d(body: &str) -> String {
    format!(
        "processors:\n  cumulativetodelta: {body}\n{}",
        lb_in("metrics", STATIC).replace(
            "exporters: [loadbalancing]}",
            "exporters: [loadbalancing], processors: [cumulativetodelta]}"
        )
    )
}

#[test]
fn cumulativetodelta_settings() {
    let c = load(&c2d(""));
    assert_eq!(
        c.processors[&id("cumulativetodelta")],
        ProcessorConfig::CumulativeToDelta(CumulativeToDeltaConfig::default())
    );
    let c = load(&c2d(
        "{include: {metrics: [\"^http\\\\..*\"], match_type: regexp, metric_types: [sum, histogram]}, \
         exclude: {metrics: [a.b]}, max_staleness: 10m, initial_value: drop}",
    ));
    let ProcessorConfig::CumulativeToDelta(t) = &c.processors[&id("cumulativetodelta")] else {
        panic!("wrong type");
    };
    let include = t.include.as_ref().unwrap();
    assert_eq!(include.match_type, MatchType::Regexp);
    assert_eq!(
        include.metric_types,
        [MetricType::Sum, MetricType::Histogram]
    );
    assert_eq!(t.exclude.as_ref().unwrap().match_type, MatchType::Strict);
    assert_eq!(t.max_staleness, Duration::from_secs(600));
    assert_eq!(t.initial_value, InitialValue::Drop);
    assert_err(
        &c2d("{exclude: {metrics: [ok, \"a[\"], match_type: regexp}}"),
        "processors.cumulativetodelta.exclude.metrics[1]",
        "invalid regular expression",
    );
    load(&c2d("{exclude: {metrics: [\"a[\"], match_type: strict}}"));
    assert_err(
        &c2d("{initial_value: first}"),
        "processors.cumulativetodelta.initial_value",
        "unknown variant \"first\", expected one of auto, keep, drop",
    );
    assert_err(
        &c2d("{include: {metric_types: [gauge]}}"),
        "processors.cumulativetodelta.include.metric_types[0]",
        "unknown variant \"gauge\"",
    );
}

#[test]
fn remaining_rules_each_name_their_path() {
    let exporter = |body: &str| lb(&format!("{{{body}}}"));
    let static_ = "resolver: {static: {hostnames: [a]}}";
    let receiver = |body: &str| {
        format!(
            "receivers: {{otlp: {{protocols: {body}}}}}\n{}",
            lb(STATIC).split_once('\n').unwrap().1
        )
    };
    let telemetry = |t: &str| format!("{}  telemetry: {{metrics: {t}}}\n", lb(STATIC));
    let policy = |p: &str| policies(&format!("[{p}]"));
    let p = "processors.tail_sampling.policies[0]";
    let cases: Vec<(String, String, &str)> = vec![
        (
            exporter(&format!("timeout: 0s, {static_}")),
            "exporters.loadbalancing.timeout".into(),
            "must be positive",
        ),
        (
            exporter(&format!(
                "retry_on_failure: {{initial_interval: 1m, max_interval: 30s}}, {static_}"
            )),
            "exporters.loadbalancing.retry_on_failure.initial_interval".into(),
            "must not exceed max_interval",
        ),
        (
            exporter("resolver: {dns: {hostname: a, port: 0}}"),
            "exporters.loadbalancing.resolver.dns.port".into(),
            "must not be 0",
        ),
        (
            exporter("resolver: {dns: {hostname: a, timeout: 0}}"),
            "exporters.loadbalancing.resolver.dns.timeout".into(),
            "must be positive",
        ),
        (
            exporter("resolver: {k8s: {service: a, ports: [0]}}"),
            "exporters.loadbalancing.resolver.k8s.ports[0]".into(),
            "must not be 0",
        ),
        (
            exporter("resolver: {k8s: {service: a, timeout: 0}}"),
            "exporters.loadbalancing.resolver.k8s.timeout".into(),
            "must be positive",
        ),
        (
            exporter("resolver: {k8s: {service: My_Service}}"),
            "exporters.loadbalancing.resolver.k8s.service".into(),
            "\"My_Service\" is not NAME or NAME.NAMESPACE",
        ),
        (
            receiver("{http: {max_request_body_size: 0}}"),
            "receivers.otlp.protocols.http.max_request_body_size".into(),
            "must be at least 1",
        ),
        (
            receiver("{http: {endpoint: \"http://0.0.0.0:4318\"}}"),
            "receivers.otlp.protocols.http.endpoint".into(),
            "\"http://0.0.0.0:4318\": a URL is not an endpoint",
        ),
        (
            telemetry("{address: \"localhost\"}"),
            "service.telemetry.metrics.address".into(),
            "\"localhost\": missing port",
        ),
        (
            telemetry("{readers: [{pull: }, {pull: }]}"),
            "service.telemetry.metrics.readers[1]".into(),
            "otlp-lb serves one Prometheus endpoint; list one reader",
        ),
        (
            telemetry("{readers: [{}]}"),
            "service.telemetry.metrics.readers[0].pull".into(),
            "required",
        ),
        (
            telemetry("{readers: [{pull: {exporter: {}}}]}"),
            "service.telemetry.metrics.readers[0].pull.exporter.prometheus".into(),
            "required",
        ),
        (
            telemetry("{readers: [{pull: {exporter: {prometheus: {port: 1}}}}]}"),
            "service.telemetry.metrics.readers[0].pull.exporter.prometheus.host".into(),
            "required",
        ),
        (
            telemetry("{level: verbose}"),
            "service.telemetry.metrics.level".into(),
            "unknown variant \"verbose\"",
        ),
        (
            format!(
                "extensions: {{health_check: {{endpoint: x}}}}\n{}  extensions: [health_check]\n",
                lb(STATIC)
            ),
            "extensions.health_check.endpoint".into(),
            "\"x\": missing port",
        ),
        (
            with_processor(
                "tail_sampling: {decision_wait: 0s, policies: [{name: a, type: always_sample}]}",
            ),
            "processors.tail_sampling.decision_wait".into(),
            "must be positive",
        ),
        (
            policy("{name: \"\", type: always_sample}"),
            format!("{p}.name"),
            "required",
        ),
        (
            policy(
                "{name: a, type: numeric_attribute, numeric_attribute: {key: k, min_value: 5, max_value: 1}}",
            ),
            format!("{p}.numeric_attribute.max_value"),
            "must be at least min_value",
        ),
        (
            policy("{name: a, type: numeric_attribute, numeric_attribute: {min_value: 5}}"),
            format!("{p}.numeric_attribute.key"),
            "required",
        ),
        (
            policy("{name: a, type: span_count, span_count: {min_spans: 5, max_spans: 2}}"),
            format!("{p}.span_count.max_spans"),
            "must be 0 (no upper bound) or at least min_spans",
        ),
        (
            policy("{name: a, type: boolean_attribute, boolean_attribute: {value: true}}"),
            format!("{p}.boolean_attribute.key"),
            "required",
        ),
        (
            policy("{name: a, type: string_attribute, string_attribute: {key: k}}"),
            format!("{p}.string_attribute.values"),
            "list at least one value",
        ),
        (
            policy("{name: a, type: and, and: {}}"),
            format!("{p}.and.and_sub_policy"),
            "list at least one policy",
        ),
        (
            policy("{name: a, type: drop, drop: {drop_sub_policy: []}}"),
            format!("{p}.drop.drop_sub_policy"),
            "list at least one policy",
        ),
        (
            policy(
                "{name: a, type: not, not: {not_sub_policy: {name: b, type: drop, drop: {drop_sub_policy: [{name: c, type: always_sample}]}}}}",
            ),
            format!("{p}.not.not_sub_policy.type"),
            "a drop policy cannot be nested here",
        ),
        (
            policy(
                "{name: a, type: composite, composite: {composite_sub_policy: [{name: b, type: always_sample}]}}",
            ),
            format!("{p}.composite.max_total_spans_per_second"),
            "must be at least 1",
        ),
        (
            policy("{name: a, type: composite, composite: {max_total_spans_per_second: 1}}"),
            format!("{p}.composite.composite_sub_policy"),
            "list at least one policy",
        ),
        (
            policy(
                "{name: a, type: composite, composite: {max_total_spans_per_second: 1, composite_sub_policy: [{name: b, type: composite, composite: {}}]}}",
            ),
            format!("{p}.composite.composite_sub_policy[0].type"),
            "a composite policy cannot be nested here",
        ),
        (
            policy(
                "{name: a, type: composite, composite: {max_total_spans_per_second: 1, composite_sub_policy: [{name: b, type: always_sample}], rate_allocation: [{policy: z, percent: 1}]}}",
            ),
            format!("{p}.composite.rate_allocation[0].policy"),
            "\"z\" is not a composite_sub_policy name",
        ),
    ];
    for (yaml, path, message) in cases {
        assert_err(&yaml, &path, message);
    }
    // `and` is allowed under composite, as in the collector.
    load(&policy(
        "{name: a, type: composite, composite: {max_total_spans_per_second: 1, \
         composite_sub_policy: [{name: b, type: and, and: {and_sub_policy: [{name: c, type: always_sample}]}}]}}",
    ));
}

/// The collector's 2026 names and their deprecated aliases read the same
/// settings; only the old names earn a deprecation note.
#[test]
fn current_names_and_deprecated_aliases_are_the_same_components() {
    let config = |lb: &str, grpc: &str, http: &str| {
        format!(
            r#"
receivers: {{ otlp: {{ protocols: {{ grpc: {{ endpoint: "127.0.0.1:4317" }} }} }} }}
exporters:
  {lb}: {{ resolver: {{ static: {{ hostnames: [a, b] }} }} }}
  {grpc}/x: {{ endpoint: "c:4317" }}
  {http}/y: {{ endpoint: "http://d:4318" }}
service:
  pipelines:
    traces: {{ receivers: [otlp], exporters: [{lb}] }}
    metrics: {{ receivers: [otlp], exporters: [{grpc}/x] }}
    logs: {{ receivers: [otlp], exporters: [{http}/y] }}
"#
        )
    };
    let new = Config::from_yaml(&config("load_balancing", "otlp_grpc", "otlp_http")).unwrap();
    let old = Config::from_yaml(&config("loadbalancing", "otlp", "otlphttp")).unwrap();
    assert!(new.deprecations().is_empty(), "{:?}", new.deprecations());
    assert_eq!(
        new.exporters.values().collect::<Vec<_>>(),
        old.exporters.values().collect::<Vec<_>>()
    );
    assert_eq!(
        old.deprecations(),
        [
            "exporters.loadbalancing: \"loadbalancing\" is a deprecated name of \"load_balancing\"; use the new name",
            "exporters.otlp/x: \"otlp\" is a deprecated name of \"otlp_grpc\"; use the new name",
            "exporters.otlphttp/y: \"otlphttp\" is a deprecated name of \"otlp_http\"; use the new name",
        ]
    );
}

/// `level` has an effect for every value `validate` accepts: `none` turns
/// metrics off, `normal` publishes them; `basic` and `detailed` would change
/// nothing, so they are refused by name.
#[test]
fn metrics_levels_without_an_effect_are_refused() {
    for level in ["basic", "detailed"] {
        assert_err(
            &format!(
                "{}  telemetry: {{metrics: {{level: {level}}}}}\n",
                lb(STATIC)
            ),
            "service.telemetry.metrics.level",
            "not supported by otlp-lb: it publishes one set of metrics",
        );
    }
}

/// A first tier with tenant passthrough and receiver authentication:
/// `receivers.otlp` with `protocols` given, and `more` appended.
fn tenants(protocols: &str, lb_auth: &str, more: &str) -> String {
    format!(
        "receivers: {{otlp: {{protocols: {protocols}}}}}\n\
         exporters:\n  loadbalancing: {{protocol: {{otlp: {{auth: {lb_auth}}}}}, \
         resolver: {{static: {{hostnames: [a]}}}}}}\n\
         extensions:\n  headers_setter: {{headers: [{{key: X-Scope-OrgID, from_context: x-scope-orgid}}]}}\n  \
         bearertokenauth: {{token: s3cret}}\n{more}\
         service:\n  extensions: [headers_setter, bearertokenauth]\n  \
         pipelines:\n    traces: {{receivers: [otlp], exporters: [loadbalancing]}}\n"
    )
}

#[test]
fn tenant_headers_and_receiver_auth_load() {
    let c = load(&tenants(
        "{grpc: {include_metadata: true, auth: {authenticator: bearertokenauth}}, http: {include_metadata: true}}",
        "{authenticator: headers_setter}",
        "",
    ));
    let ReceiverConfig::Otlp(otlp) = &c.receivers[&id("otlp")];
    let grpc = otlp.protocols.grpc.as_ref().unwrap();
    assert!(grpc.include_metadata);
    assert_eq!(
        grpc.auth.as_ref().unwrap().authenticator,
        id("bearertokenauth")
    );
    assert_eq!(
        c.metadata_keys().into_iter().collect::<Vec<_>>(),
        ["x-scope-orgid"]
    );
    let lb = lb_of(&c, "loadbalancing");
    assert_eq!(
        lb.protocol.otlp.auth.unwrap().authenticator,
        id("headers_setter")
    );
    // Debug of the whole config never shows a credential.
    let shown = format!("{c:?}");
    assert!(!shown.contains("s3cret"), "{shown}");
}

#[test]
fn authenticator_references_are_checked() {
    let grpc_auth = |a: &str| format!("{{grpc: {{auth: {{authenticator: {a}}}}}}}");
    assert_err(
        &tenants(&grpc_auth("nope"), "{authenticator: headers_setter}", ""),
        "receivers.otlp.protocols.grpc.auth.authenticator",
        "extension \"nope\" is not configured under extensions",
    );
    assert_err(
        &tenants(
            &grpc_auth("headers_setter"),
            "{authenticator: headers_setter}",
            "",
        ),
        "receivers.otlp.protocols.grpc.auth.authenticator",
        "extension \"headers_setter\" cannot authenticate a receiver",
    );
    assert_err(
        &tenants("{grpc: }", "{authenticator: bearertokenauth}", ""),
        "exporters.loadbalancing.protocol.otlp.auth.authenticator",
        "extension \"bearertokenauth\" cannot authenticate an exporter",
    );
    let unlisted = tenants(
        &grpc_auth("bearertokenauth/2"),
        "{authenticator: headers_setter}",
        "  bearertokenauth/2: {token: t}\n",
    );
    assert_err(
        &unlisted,
        "receivers.otlp.protocols.grpc.auth.authenticator",
        "extension \"bearertokenauth/2\" must also be listed in service.extensions",
    );
}

#[test]
fn authenticator_settings_rules() {
    let with = |setter: &str, bearer: &str| {
        format!(
            "receivers: {{otlp: {{protocols: {{grpc: }}}}}}\n\
             exporters: {{debug: }}\n\
             extensions:\n  headers_setter: {setter}\n  bearertokenauth: {bearer}\n\
             service:\n  extensions: [headers_setter, bearertokenauth]\n  \
             pipelines:\n    traces: {{receivers: [otlp], exporters: [debug]}}\n"
        )
    };
    let ok_bearer = "{token: t}";
    let ok_setter = "{headers: [{key: a, value: b}]}";
    load(&with(ok_setter, "{filename: /run/token, scheme: Token}"));
    load(&with(
        "{headers: [{key: a, from_context: b, default_value: c, action: insert}, {key: d, action: delete}]}",
        "{tokens: [a, b]}",
    ));
    for (setter, path, message) in [
        (
            "{}",
            "extensions.headers_setter.headers",
            "must list at least one header",
        ),
        (
            "{headers: [{key: a}]}",
            "extensions.headers_setter.headers[0]",
            "exactly one of value, from_context must be set",
        ),
        (
            "{headers: [{key: a, value: b, from_context: c}]}",
            "extensions.headers_setter.headers[0]",
            "exactly one of value, from_context must be set",
        ),
        (
            "{headers: [{key: a, value: b, default_value: c}]}",
            "extensions.headers_setter.headers[0].default_value",
            "only used with from_context",
        ),
        (
            "{headers: [{key: a, action: delete, value: b}]}",
            "extensions.headers_setter.headers[0]",
            "action: delete takes no value",
        ),
        (
            "{headers: [{key: \"a b\", value: c}]}",
            "extensions.headers_setter.headers[0].key",
            "\"a b\" is not a valid header name",
        ),
        (
            "{headers: [{key: a, from_attribute: sub}]}",
            "extensions.headers_setter.headers[0].from_attribute",
            "not supported by otlp-lb",
        ),
        (
            "{headers: [{key: a, value: b, action: append}]}",
            "extensions.headers_setter.headers[0].action",
            "unknown variant",
        ),
    ] {
        assert_err(&with(setter, ok_bearer), path, message);
    }
    for (bearer, path, message) in [
        (
            "{}",
            "extensions.bearertokenauth",
            "exactly one of token, tokens, filename",
        ),
        (
            "{token: a, filename: /f}",
            "extensions.bearertokenauth",
            "exactly one of token, tokens, filename",
        ),
        (
            "{token: \" \"}",
            "extensions.bearertokenauth",
            "a token must not be empty",
        ),
        (
            "{token: a, header: \"a b\"}",
            "extensions.bearertokenauth.header",
            "\"a b\" is not",
        ),
    ] {
        assert_err(&with(ok_setter, bearer), path, message);
    }
    // A bad value is refused without being shown.
    let e = err(&with(
        "{headers: [{key: a, value: \"s3cret\\u0001\"}]}",
        ok_bearer,
    ));
    assert_eq!(e.path, "extensions.headers_setter.headers[0].value");
    assert!(!e.to_string().contains("s3cret"), "{e}");
}
