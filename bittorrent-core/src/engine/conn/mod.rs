//! One peer connection: the peer thread, its output queue, the request pipeline, the queue of requests a peer made, its waker and the block pool.

pub(crate) mod block_pool;
pub(crate) mod out_queue;
pub mod peer;
pub(crate) mod pipeline;
pub(crate) mod request_queue;
pub mod waker;
pub(crate) mod web_seed;
