//! The integration tests: one binary, one module per area, all driving the `rootfs` library.

mod build;
mod cli;
mod debian_unpack;
mod devenv;
mod export;
mod findings;
mod image_sysroot;
mod limits;
mod lock;
mod output;
mod parity;
mod presets;
mod resolve;
mod sbom;
mod smoke;
mod spec_errors;
mod support;
mod terminal;
mod tidy;
mod trace;
mod wholehost;
