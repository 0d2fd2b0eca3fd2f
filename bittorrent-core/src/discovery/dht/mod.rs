//! Mainline DHT (BEP 5): KRPC messages, routing table, tokens and a node.
//!
//! - [`krpc`]: pure encoding/decoding of KRPC messages, with limits.
//! - [`routing`]: node ids, XOR distance and k-buckets.
//! - [`token`]: `announce_peer` tokens.
//! - [`bootstrap`]: the routers a new node joins through, and their resolution.
//! - [`node`]: the [`Dht`] node thread and its handle.

pub mod bootstrap;
pub mod krpc;
pub mod node;
pub mod routing;
pub mod token;

#[cfg(test)]
mod amplification_tests;
#[cfg(test)]
mod net_tests;
#[cfg(test)]
mod router_tests;

pub use node::{Dht, DhtConfig};
pub use routing::NodeId;
