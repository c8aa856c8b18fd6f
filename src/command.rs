//! The commands of `cargo xtask rootfs` as library calls, one per command, as cargo's `ops` are: each takes one options struct and a [`Console`], says what it has to say through the console as it goes, and returns one report.
//!
//! The command line only turns flags into these options structs, calls one
//! function, and turns the report into an exit status; another project's
//! xtask can call the same functions with its own defaults (the spec a
//! project builds by default and its output folder are fields of
//! [`Target`], not knowledge of this crate). Each command lives in a file of
//! its own; [`Target`] is what every command working on a tree shares.
//!
//! A command's text goes through the [`Console`] it is given, in the order
//! the command line prints it: notes while the sysroot is prepared, before
//! a build's progress, then summaries, tables and warnings. [`Terminal`]
//! writes to the standard streams; [`Captured`] keeps what was said, in
//! order, for tests and for callers that show it their own way.

mod build;
mod console;
mod deps;
mod enter;
mod export;
mod portability;
mod smoke;
mod target;
mod trace;
mod update;
mod why;

pub use self::build::{BuildOptions, BuildReport, build};
pub use self::console::{Captured, Console, Stream, Terminal};
pub use self::deps::{DepsOptions, deps};
pub use self::enter::{EnterOptions, Entered, enter};
pub use self::export::{ExportOptions, ExportReport, export};
pub use self::portability::{PortabilityOptions, portability};
pub use self::smoke::{SmokeOptions, SmokeReport, smoke};
pub use self::target::Target;
pub use self::trace::{TraceOptions, trace};
pub use self::update::{UpdateOptions, update};
pub use self::why::{WhyOptions, why};
