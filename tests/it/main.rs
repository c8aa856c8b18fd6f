//! The integration tests: one binary, one module per area, all driving the `rootfs` library.

mod build;
mod cli;
mod debian;
mod devenv;
mod embed;
mod export;
mod findings;
mod image_sysroot;
mod limits;
mod lock;
mod output;
mod parity;
mod portability;
mod presets;
mod resolve;
mod sameview;
mod sbom;
mod signals;
mod smoke;
mod spec_errors;
mod support;
mod terminal;
mod tidy;
mod toolchains;
mod trace;
mod wholehost;
