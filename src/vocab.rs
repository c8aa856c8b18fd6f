//! The values every stage shares: what a path of a tree is, a file's state on disk, a permission mode, a sha256 digest, the network a command gets, and the limits a check runs under.
//!
//! Each type here is named by several stages (the spec, the plan, the files
//! beside a tree, the sandbox, exports), so it lives with none of them: a
//! stage imports its vocabulary from here and its neighbours' data from
//! them. A value written to a file keeps the text it always had (a mode as
//! `"0755"`, a digest as 64 lowercase hex digits), so typing it changed no
//! byte of a manifest, lock, SBOM or cache.

use std::fmt;
use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Serde for a value through its text, so a file holds what people read:
/// `Display` writes it, `FromStr` reads it back, and a bad text is an
/// error with `FromStr`'s message (the reader names the file).
macro_rules! serde_as_text {
    ($type:ty) => {
        impl Serialize for $type {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $type {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

/// What a path of a tree is. The plan, the manifest and every reader of
/// either use this one type; in the manifest it is written in lowercase.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryType {
    Dir,
    File,
    Symlink,
}

/// What `lstat(2)` says about a path, enough to notice any change: equal
/// states mean an unchanged file. ctime is left out: it also moves when
/// anyone makes or removes a hard link to a file (`--link hard` does),
/// which would make every build look stale.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileState {
    pub dev: u64,
    pub ino: u64,
    pub mode: u32,
    pub size: u64,
    pub mtime_ns: i128,
}

impl FileState {
    pub fn of(meta: &Metadata) -> FileState {
        FileState {
            dev: meta.dev(),
            ino: meta.ino(),
            mode: meta.mode(),
            size: meta.size(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
        }
    }

    /// The state of `path` without following a final symlink; `None` when
    /// it does not exist.
    pub fn read(path: &Path) -> Option<FileState> {
        std::fs::symlink_metadata(path).ok().map(|m| FileState::of(&m))
    }

    /// Whether both states are of the same file (device and inode), whatever
    /// happened to its content.
    pub fn same_file(&self, other: &FileState) -> bool {
        self.dev == other.dev && self.ino == other.ino
    }
}

/// Permission bits (`0o7777` at most: setuid, setgid, sticky and the nine
/// read, write and execute bits), written as four octal digits (`"0755"`)
/// in the spec, the manifest and the lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Mode(u32);

impl Mode {
    /// The permission bits of `st_mode`, the file type left out.
    pub fn of_st_mode(st_mode: u32) -> Mode {
        Mode(st_mode & 0o7777)
    }

    /// The bits, as `chmod(2)` takes them.
    pub fn bits(self) -> u32 {
        self.0
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04o}", self.0)
    }
}

/// A text that is not a value of this module: what it should have been,
/// the text, and what was expected (empty when the name says it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub what: &'static str,
    pub text: String,
    pub expected: &'static str,
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid {} `{}`", self.what, self.text)?;
        match self.expected {
            "" => Ok(()),
            expected => write!(f, ": expected {expected}"),
        }
    }
}

impl std::error::Error for Invalid {}

impl FromStr for Mode {
    type Err = Invalid;

    /// Octal digits, with or without a leading `0o`, at most `7777`.
    fn from_str(text: &str) -> Result<Mode, Invalid> {
        let digits = text.strip_prefix("0o").unwrap_or(text);
        let octal = !digits.is_empty() && digits.bytes().all(|b| (b'0'..=b'7').contains(&b));
        match u32::from_str_radix(digits, 8) {
            Ok(bits) if octal && bits <= 0o7777 => Ok(Mode(bits)),
            _ => Err(Invalid { what: "mode", text: text.to_string(), expected: "" }),
        }
    }
}

serde_as_text!(Mode);

/// A SHA-256 digest, written as 64 lowercase hex digits wherever it is
/// stored (manifest, lock, SBOM, caches).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Sha256([u8; 32]);

impl Sha256 {
    /// The digest of some bytes.
    pub fn of(bytes: &[u8]) -> Sha256 {
        use sha2::Digest;
        Sha256::finish(sha2::Sha256::new_with_prefix(bytes))
    }

    /// The digest of a file's content, read in large pieces.
    pub fn of_file(path: &Path) -> std::io::Result<Sha256> {
        use sha2::Digest;
        use std::io::Read;
        let mut file = std::fs::File::open(path)?;
        let mut hasher = sha2::Sha256::new();
        let mut buffer = vec![0u8; 256 * 1024];
        loop {
            let n = file.read(&mut buffer)?;
            if n == 0 {
                return Ok(Sha256::finish(hasher));
            }
            hasher.update(&buffer[..n]);
        }
    }

    /// A finished hasher's digest.
    pub fn finish(hasher: sha2::Sha256) -> Sha256 {
        use sha2::Digest;
        Sha256(hasher.finalize().into())
    }

    pub fn bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sha256({self})")
    }
}

impl FromStr for Sha256 {
    type Err = Invalid;

    /// Exactly 64 lowercase hex digits: the one spelling this tool writes,
    /// so a digest read and written again keeps its bytes.
    fn from_str(text: &str) -> Result<Sha256, Invalid> {
        let hex = |b: u8| match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            _ => None,
        };
        let bad = || Invalid {
            what: "sha256",
            text: text.to_string(),
            expected: "64 lowercase hex digits",
        };
        if text.len() != 64 {
            return Err(bad());
        }
        let mut bytes = [0u8; 32];
        for (byte, pair) in bytes.iter_mut().zip(text.as_bytes().chunks(2)) {
            *byte = hex(pair[0]).ok_or_else(bad)? << 4 | hex(pair[1]).ok_or_else(bad)?;
        }
        Ok(Sha256(bytes))
    }
}

serde_as_text!(Sha256);

/// Whether a command shares the caller's network.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Network {
    /// A network namespace of its own, with only `lo`.
    #[default]
    None,
    /// The caller's network namespace: what the host reaches, it reaches.
    Host,
}

impl Network {
    /// `none` or `host`, as the spec and the command line write it.
    pub fn parse(text: &str) -> Option<Network> {
        match text {
            "none" => Some(Network::None),
            "host" => Some(Network::Host),
            _ => None,
        }
    }
}

/// What one check (or `shell` and `run`) may use: processes at once,
/// memory, and the size of its `/tmp`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub pids: u64,
    /// Bytes.
    pub memory: u64,
    /// Bytes.
    pub tmp_size: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits { pids: 1024, memory: 2 << 30, tmp_size: 256 << 20 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_read_as_the_spec_writes_them_and_print_as_four_digits() {
        assert_eq!("0644".parse::<Mode>().unwrap().to_string(), "0644");
        assert_eq!("0o4755".parse::<Mode>().unwrap().bits(), 0o4755);
        assert_eq!("755".parse::<Mode>().unwrap().to_string(), "0755");
        assert_eq!(Mode::of_st_mode(0o100600).to_string(), "0600");
        for bad in ["", "0o", "0888", "17777", "rwx", "-1"] {
            assert_eq!(
                bad.parse::<Mode>().unwrap_err().to_string(),
                format!("invalid mode `{bad}`")
            );
        }
        let json = serde_json::to_string(&Mode::of_st_mode(0o755)).unwrap();
        assert_eq!(json, "\"0755\"");
        assert_eq!(serde_json::from_str::<Mode>(&json).unwrap().bits(), 0o755);
    }

    #[test]
    fn digests_round_trip_as_lowercase_hex_and_refuse_anything_else() {
        let hello = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";
        assert_eq!(Sha256::of(b"hello").to_string(), hello);
        assert_eq!(hello.parse::<Sha256>().unwrap(), Sha256::of(b"hello"));
        let json = serde_json::to_string(&Sha256::of(b"hello")).unwrap();
        assert_eq!(json, format!("\"{hello}\""));
        for bad in [&hello[1..], &hello.to_uppercase(), &format!("{}g", &hello[1..]), ""] {
            let err = bad.parse::<Sha256>().unwrap_err().to_string();
            assert_eq!(err, format!("invalid sha256 `{bad}`: expected 64 lowercase hex digits"));
        }
        let err = serde_json::from_str::<Sha256>("\"abc\"").unwrap_err().to_string();
        assert!(err.starts_with("invalid sha256 `abc`"), "{err}");
    }
}
