//! Compiles the vendored OTLP protos with `protox` (pure Rust, no `protoc`).
//!
//! Two outputs: prost/tonic code for the typed test oracle, test sinks and the
//! JSON transcoder, and the encoded descriptor set that the OTLP/JSON receiver
//! loads into `prost-reflect`.

use std::{env, path::PathBuf};

use prost::Message;

const PROTOS: &[&str] = &[
    "opentelemetry/proto/collector/trace/v1/trace_service.proto",
    "opentelemetry/proto/collector/metrics/v1/metrics_service.proto",
    "opentelemetry/proto/collector/logs/v1/logs_service.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let fds = protox::compile(PROTOS, ["proto"])?;
    let out = PathBuf::from(env::var("OUT_DIR")?);
    std::fs::write(out.join("otlp_descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    Ok(())
}
