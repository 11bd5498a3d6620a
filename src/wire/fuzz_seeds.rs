//! Writes the fuzz targets' seed corpus (`fuzz/seeds/<target>/`) from the
//! requests the property tests generate, so every fuzzer starts from real
//! OTLP: `fuzz/write-seeds` runs this ignored test with
//! `OTLP_LB_FUZZ_SEEDS` set to the directory. Deterministic: the same
//! generator seed gives the same files.

use std::{fs, io::Write as _, path::Path};

use proptest::{
    strategy::{Strategy, ValueTree},
    test_runner::TestRunner,
};
use prost::Message;

use super::testgen::{self, raw::*};
use crate::{receiver::json, signal::Signal};

/// A value of `strategy`, from the runner's deterministic stream.
fn sample<S: Strategy>(runner: &mut TestRunner, strategy: S) -> S::Value {
    match strategy.new_tree(runner) {
        Ok(tree) => tree.current(),
        Err(e) => panic!("generator: {e}"),
    }
}

fn write(dir: &Path, target: &str, name: &str, bytes: &[u8]) {
    let dir = dir.join(target);
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join(name), bytes).unwrap();
}

#[test]
#[ignore = "writes fuzz/seeds; run by fuzz/write-seeds"]
fn write_fuzz_seeds() {
    let dir =
        std::env::var_os("OTLP_LB_FUZZ_SEEDS").expect("OTLP_LB_FUZZ_SEEDS names the directory");
    let dir = Path::new(&dir);
    let mut runner = TestRunner::deterministic();
    for signal in Signal::ALL {
        let target = format!("split_{signal}");
        for i in 0..4u8 {
            // Requests with a few resources of items, not the empty ones.
            let request = loop {
                let request = match signal {
                    Signal::Traces => sample(&mut runner, testgen::traces()).encode_to_vec(),
                    Signal::Logs => sample(&mut runner, testgen::logs()).encode_to_vec(),
                    Signal::Metrics => sample(&mut runner, testgen::metrics()).encode_to_vec(),
                };
                if request.len() > 300 {
                    break request;
                }
            };
            // Key pick (spread over the signal's keys), three backends.
            let mut seed = vec![i * 3, 2];
            seed.extend(&request);
            write(dir, &target, &format!("{signal}-{i}"), &seed);
            let pick = signal as u8;
            if i == 0 {
                write(
                    dir,
                    "wire_scan",
                    &format!("{signal}"),
                    &[&[pick][..], &request].concat(),
                );
                let text = json::to_json(signal, &request).unwrap().to_string();
                write(
                    dir,
                    "json_decode",
                    &format!("{signal}"),
                    &[&[pick][..], text.as_bytes()].concat(),
                );
                // gzip (0) and zstd (1) with a limit of 64 KiB (255 << 8).
                let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                gz.write_all(&request).unwrap();
                let gz = gz.finish().unwrap();
                write(
                    dir,
                    "inflate",
                    &format!("{signal}.gz"),
                    &[&[0, 255][..], &gz].concat(),
                );
                let zst = zstd::encode_all(&request[..], 1).unwrap();
                write(
                    dir,
                    "inflate",
                    &format!("{signal}.zst"),
                    &[&[1, 255][..], &zst].concat(),
                );
            }
        }
        // A request whose attribute nests past prost's recursion limit
        // (100): the splitter routes it, prost refuses it.
        let deep = kv_any("k1", &deep_any_value(60, "leaf"));
        let request = match signal {
            Signal::Traces => ld(1, &ld(2, &ld(2, &cat(&[&ld(1, &[1; 16]), &ld(9, &deep)])))),
            Signal::Logs => ld(1, &ld(2, &ld(2, &ld(6, &deep)))),
            Signal::Metrics => ld(1, &ld(2, &ld(2, &ld(5, &ld(1, &ld(7, &deep)))))),
        };
        // The attributes key with k1 (`keys()` in fuzz/src/lib.rs).
        let k1 = if signal == Signal::Metrics { 5 } else { 4 };
        write(
            dir,
            &target,
            &format!("{signal}-deep"),
            &[&[k1, 2][..], &request].concat(),
        );
    }
}
