//! Routing: which backend owns a key.
//!
//! [`ring`] is the consistent-hash ring. The keys themselves are found in the
//! wire format by [`crate::wire`]; this module only maps hashes to endpoints.

pub mod ring;

pub use ring::{Ring, key_hash};
