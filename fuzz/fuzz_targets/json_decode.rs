//! OTLP/JSON to protobuf (`receiver::json::to_protobuf`): never panics, and
//! what it produces is a request the scanner reads and the debug exporter
//! can turn back into JSON. The first byte picks the signal.
#![no_main]

use libfuzzer_sys::fuzz_target;
use otlp_lb::{receiver::json, signal::Signal, wire::count_items};

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let signal = Signal::ALL[usize::from(pick) % Signal::ALL.len()];
    if let Ok(protobuf) = json::to_protobuf(signal, body) {
        if let Err(e) = count_items(signal, &protobuf) {
            panic!("{signal}: transcoded request does not scan: {e}");
        }
        if let Err(e) = json::to_json(signal, &protobuf) {
            panic!("{signal}: transcoded request does not go back to JSON: {e}");
        }
    }
});
