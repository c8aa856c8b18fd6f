//! Everything that runs a program in a tree: the sandbox that enters a root,
//! smoke checks and the reference they are judged against, the tracer and
//! what it finds, the dev environment's `shell` and `run`, and the runs on
//! other CPU levels and kernels.

pub mod cpu_smoke;
pub mod devenv;
pub mod elsewhere;
pub mod findings;
pub mod kernel_smoke;
pub mod sandbox;
pub mod smoke;
pub(crate) mod terminfo;
pub mod trace;
