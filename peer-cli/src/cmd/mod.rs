//! One module per subcommand.
pub mod control;
pub mod create;
pub mod daemon;
pub mod daemon_api;
pub mod demo;
pub mod details;
pub mod info;
pub mod run;
pub mod select;
pub mod watch;
