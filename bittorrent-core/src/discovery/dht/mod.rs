//! Mainline DHT (BEP 5): KRPC messages, routing table, tokens and a node.
//!
//! - KRPC messages (pure encoding/decoding, with limits) and node ids live in
//!   [`crate::proto::krpc`].
//! - [`routing`]: XOR distance and k-buckets.
//! - [`token`]: `announce_peer` tokens.
//! - [`bootstrap`]: the routers a new node joins through, and their resolution.
//! - [`node`]: the [`Dht`] node thread and its handle.
//! - `family`: IPv4 or IPv6 (BEP 32: one node and routing table per family).

pub mod bootstrap;
mod family;
pub mod node;
pub mod routing;
pub mod token;

#[cfg(test)]
mod amplification_tests;
#[cfg(test)]
mod net_tests;
#[cfg(test)]
mod router_tests;

pub(crate) use family::lookup_all;
pub use node::{Dht, DhtConfig};
