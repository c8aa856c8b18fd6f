//! The integration tests: one binary, one module per area, all driving the `rootfs` library.

mod build;
mod cli;
mod devenv;
mod limits;
mod output;
mod parity;
mod resolve;
mod smoke;
mod spec_errors;
mod support;
mod terminal;
mod tidy;
mod trace;
