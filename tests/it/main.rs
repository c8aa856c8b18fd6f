//! The integration tests: one binary, one module per area, all driving the `rootfs` library.

mod build;
mod cli;
mod findings;
mod limits;
mod output;
mod parity;
mod presets;
mod resolve;
mod smoke;
mod spec_errors;
mod support;
mod tidy;
mod trace;
