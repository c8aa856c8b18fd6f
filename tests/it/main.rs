//! The integration tests: one binary, one module per area, all driving the `rootfs` library.

mod parity;
mod resolve;
mod support;
