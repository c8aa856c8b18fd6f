//! Debian packages as a sysroot: an archive's signed indexes fetched and verified, a package set resolved and its `.deb`s fetched into a content-addressed cache, then unpacked into a folder the resolver uses like any directory sysroot.
//!
//! The flow, each step in its own module:
//! archive (`InRelease` checked against a keyring, indexes against its
//! hashes) -> package selection (the `Depends`/`Pre-Depends` closure, as apt
//! would choose) -> fetch (each `.deb` against its index `SHA256`, kept only
//! once verified) -> unpack (merged-`/usr` layout, every write confined to
//! the sysroot folder, the maintainer scripts' effects reproduced).
//! [`package::FetchedDeb`] is the record handed from fetching to unpacking.
//!
//! Unpacking: [`unpack::prepare`] takes the `FetchedDeb`s and a cache
//! root and gives the folder, reading each `.deb` with `deb.rs`, writing the
//! dpkg database with `status.rs` and the scripts' effects with `scripts.rs`
//! (the CA links' names with `subject_hash.rs`).

pub mod cache;
pub(crate) mod control;
pub mod deb;
pub mod fetch;
pub(crate) mod index;
pub mod package;
pub mod package_set;
pub(crate) mod relation;
pub mod release;
pub mod scripts;
pub mod select;
pub mod source;
pub(crate) mod status;
pub(crate) mod subject_hash;
pub mod sysroot;
pub mod unpack;
pub(crate) mod version;

pub use self::fetch::Wanted;
pub use self::source::{ArchiveSource, DebianRequest};
pub use self::sysroot::{
    Options, PackageSysroot, Resolution, SuiteState, fetch, fetch_request, merge_request, prepare,
    resolve,
};
pub use self::unpack::Unpacked;
