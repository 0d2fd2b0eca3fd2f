//! The local control API of `peer daemon` (see `docs/API.md`), in four parts:
//!
//! - [`state`]: the state directory policy and `STATE/control.json` (port and token);
//! - [`http`]: requests and responses, and the one HTTP/1 head parser (`httparse`);
//! - [`server`]: the server (a blocking accept thread and a fixed pool of workers);
//! - [`client`]: the client the control commands (`peer add`, `peer list`...) use.
//!
//! Who may call it (the bearer token, or the web interface's session cookie) is
//! decided by the web module (`web/`), which wraps the daemon's handler.

pub mod client;
pub mod http;
pub mod labels;
pub mod queue;
pub mod server;
pub mod state;
pub mod transmission;

pub use client::{call, daemon_running};
pub use http::{Request, Response};
pub use server::Server;
pub use state::{new_token, remove_info, state_dir, write_info, ControlInfo};
