//! The traces splitter, by every key, on arbitrary bytes and against the
//! prost oracle (see `otlp_lb_fuzz::split`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use otlp_lb::signal::Signal;

fuzz_target!(|data: &[u8]| otlp_lb_fuzz::split(Signal::Traces, data));
