//! One module per subcommand.
pub mod create;
pub mod info;
pub mod demo;
pub mod run;
