//! The wire scanner (`count_items`, the field iterator under everything):
//! never panics, and counts what prost counts (see `otlp_lb_fuzz::scan`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| otlp_lb_fuzz::scan(data));
