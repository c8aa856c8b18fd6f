//! The spec as TOML gives it: serde types that mirror the file, strict about unknown keys, with the spans of the values that messages point at.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSpec {
    pub name: Option<Spanned<String>>,
    #[serde(default)]
    pub include: Vec<Spanned<String>>,
    #[serde(default)]
    pub commands: Vec<Spanned<String>>,
    #[serde(default)]
    pub libraries: Vec<Spanned<String>>,
    #[serde(default)]
    pub dirs: Vec<Spanned<RawDir>>,
    #[serde(default)]
    pub files: Vec<Spanned<RawFile>>,
    #[serde(default)]
    pub symlinks: Vec<Spanned<RawSymlink>>,
    #[serde(default)]
    pub users: Vec<Spanned<RawUser>>,
    #[serde(default)]
    pub groups: Vec<Spanned<RawGroup>>,
    #[serde(default)]
    pub trees: Vec<Spanned<RawTree>>,
    pub dlopen: Option<Spanned<String>>,
    pub cpu: Option<Spanned<String>>,
    pub keep_setuid: Option<bool>,
    pub smoke: Option<RawSmoke>,
    pub image: Option<super::image::RawImage>,
    pub shell: Option<super::shell::RawShell>,
    pub sysroot: Option<super::sysroot::RawSysroot>,
    #[serde(default)]
    pub debian_packages: Vec<Spanned<String>>,
}

pub(super) enum RawDir {
    Path(String),
    Table(RawDirTable),
}

/// A directory is a string or a table; a hand-written visitor keeps the
/// table's own errors (an unknown key) that `#[serde(untagged)]` would drop.
impl<'de> Deserialize<'de> for RawDir {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        super::text_or_table::deserialize(
            deserializer,
            "a path string, or a table with `path` and optional `mode`",
            RawDir::Path,
            RawDir::Table,
        )
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDirTable {
    pub path: String,
    pub mode: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFile {
    pub src: Option<Spanned<String>>,
    pub content: Option<String>,
    pub dest: Option<Spanned<String>>,
    pub mode: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSymlink {
    pub path: Spanned<String>,
    pub target: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTree {
    pub src: Spanned<String>,
    pub dest: Option<Spanned<String>>,
    #[serde(default)]
    pub exclude: Vec<Spanned<String>>,
    #[serde(default)]
    pub optional: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawUser {
    pub name: Spanned<String>,
    pub uid: u32,
    pub gid: u32,
    pub home: Option<Spanned<String>>,
    pub shell: Option<Spanned<String>>,
    pub gecos: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawGroup {
    pub name: Spanned<String>,
    pub gid: u32,
    #[serde(default)]
    pub members: Vec<Spanned<String>>,
}

/// A size in bytes: a whole number, or a string with a `K`, `M` or `G`
/// suffix.
pub(super) enum RawSize {
    Bytes(i64),
    Text(String),
}

impl<'de> Deserialize<'de> for RawSize {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = RawSize;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a number of bytes, or a string such as \"256M\"")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<RawSize, E> {
                Ok(RawSize::Bytes(v))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawSize, E> {
                Ok(RawSize::Text(v.to_string()))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSmoke {
    pub timeout: Option<Spanned<f64>>,
    pub reference: Option<Spanned<String>>,
    #[serde(default)]
    pub args: BTreeMap<String, Spanned<Vec<String>>>,
    #[serde(default)]
    pub skip: Vec<Spanned<String>>,
    #[serde(default)]
    pub checks: Vec<Spanned<RawCheck>>,
    pub pids: Option<Spanned<i64>>,
    pub memory: Option<Spanned<RawSize>>,
    pub tmp_size: Option<Spanned<RawSize>>,
    #[serde(default)]
    pub structure_tests: Vec<Spanned<String>>,
    #[serde(default)]
    pub cpus: Vec<Spanned<String>>,
    #[serde(default)]
    pub kernels: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCheck {
    pub run: Spanned<Vec<String>>,
    pub exit: Option<i32>,
    pub contains: Option<String>,
    #[serde(default)]
    pub same_as_host: bool,
    pub timeout: Option<Spanned<f64>>,
    pub pids: Option<Spanned<i64>>,
    pub memory: Option<Spanned<RawSize>>,
    pub tmp_size: Option<Spanned<RawSize>>,
    #[serde(default)]
    pub binds: Vec<Spanned<super::shell::RawBind>>,
    pub network: Option<Spanned<String>>,
    pub workdir: Option<Spanned<String>>,
    #[serde(default)]
    pub env: BTreeMap<String, Spanned<String>>,
}
