//! The config loader (`Config::from_yaml`: env expansion, parsing,
//! validation): never panics, whatever the text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use otlp_lb::config::Config;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Config::from_yaml(text);
    }
});
