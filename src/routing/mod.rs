//! Routing: which backend owns an item.
//!
//! [`key`] says what a request is routed on ([`RoutingKey`], [`KeySpec`]) and
//! owns the key text each key produces, which must be the same on every
//! replica; [`ring`] is the consistent-hash ring that maps a key's hash to an
//! endpoint. Finding the key fields in a request is the wire scanner's job
//! ([`crate::wire::split`]).

pub mod key;
pub mod ring;

pub use key::{KeyError, KeySpec, RoutingKey, SPAN_KIND, SPAN_NAME};
pub use ring::{Ring, key_hash};
