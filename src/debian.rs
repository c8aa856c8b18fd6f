//! Debian packages as a sysroot: an archive's signed indexes fetched and verified, a package set resolved and its `.deb`s fetched into a content-addressed cache, then unpacked into a folder the resolver uses like any directory sysroot.
//!
//! The flow, each step in its own module:
//! archive (`InRelease` checked against a keyring, indexes against its
//! hashes) -> package selection (the `Depends`/`Pre-Depends` closure, as apt
//! would choose) -> fetch (each `.deb` against its index `SHA256`, kept only
//! once verified) -> unpack (merged-`/usr` layout, every write confined to
//! the sysroot folder, the maintainer scripts' effects reproduced).
//! [`package::FetchedDeb`] is the record handed from fetching to unpacking.

pub mod cache;
pub mod control;
pub mod fetch;
pub mod index;
pub mod package;
pub mod package_set;
pub mod relation;
pub mod release;
pub mod select;
pub mod source;
pub mod sysroot;
pub mod version;

pub use self::fetch::Wanted;
pub use self::source::{ArchiveSource, DebianRequest};
pub use self::sysroot::{
    Options, PackageSysroot, Resolution, SuiteState, fetch, fetch_request, merge_request, prepare,
    resolve,
};
