//! `deb_fixture`: a `.deb` assembled in memory from entries (`ar` with `debian-binary`, `control.tar.gz`, `data.tar.xz`, as dpkg-deb lays it out), hostile entries included, for the tests of the Debian package sysroot.

use std::io::Write;
use std::path::Path;

use rootfs::build::debian::package::{FetchedDeb, PackageId};

/// What an entry of the data archive is.
#[derive(Clone, Debug)]
pub enum Kind {
    Dir,
    File(Vec<u8>),
    Symlink(String),
    HardLink(String),
}

/// One entry of the data archive. Its path is written as given, byte for
/// byte (`./usr/bin/x`, or a hostile `../x` or `/etc/x`): no checks.
#[derive(Clone, Debug)]
pub struct Entry {
    pub path: String,
    pub kind: Kind,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: u64,
}

/// A fixed time for entries, so a test can check it is kept.
pub const MTIME: u64 = 1_700_000_000;

impl Entry {
    fn new(path: &str, kind: Kind, mode: u32) -> Entry {
        Entry { path: path.to_string(), kind, mode, uid: 0, gid: 0, mtime: MTIME }
    }
    pub fn dir(path: &str) -> Entry {
        Entry::new(path, Kind::Dir, 0o755)
    }
    pub fn file(path: &str, bytes: &[u8]) -> Entry {
        Entry::new(path, Kind::File(bytes.to_vec()), 0o644)
    }
    pub fn symlink(path: &str, target: &str) -> Entry {
        Entry::new(path, Kind::Symlink(target.to_string()), 0o777)
    }
    pub fn hard_link(path: &str, target: &str) -> Entry {
        Entry::new(path, Kind::HardLink(target.to_string()), 0o644)
    }
    pub fn mode(mut self, mode: u32) -> Entry {
        self.mode = mode;
        self
    }
    pub fn owner(mut self, uid: u64, gid: u64) -> Entry {
        self.uid = uid;
        self.gid = gid;
        self
    }
}

/// A package to assemble: its control fields, control members (scripts,
/// `conffiles`) and data entries.
#[derive(Clone, Debug)]
pub struct DebFixture {
    pub name: String,
    pub version: String,
    pub architecture: String,
    pub fields: Vec<(String, String)>,
    pub members: Vec<(String, Vec<u8>)>,
    pub entries: Vec<Entry>,
}

/// A package named `name`, version `1.0`, for amd64, with no entries.
pub fn deb_fixture(name: &str) -> DebFixture {
    DebFixture {
        name: name.to_string(),
        version: "1.0".to_string(),
        architecture: "amd64".to_string(),
        fields: Vec::new(),
        members: Vec::new(),
        entries: Vec::new(),
    }
}

impl DebFixture {
    pub fn arch(mut self, architecture: &str) -> DebFixture {
        self.architecture = architecture.to_string();
        self
    }
    pub fn field(mut self, name: &str, value: &str) -> DebFixture {
        self.fields.push((name.to_string(), value.to_string()));
        self
    }
    /// A control member: `postinst`, `conffiles`, `triggers`, ...
    pub fn member(mut self, name: &str, text: &str) -> DebFixture {
        self.members.push((name.to_string(), text.as_bytes().to_vec()));
        self
    }
    pub fn entry(mut self, entry: Entry) -> DebFixture {
        self.entries.push(entry);
        self
    }

    /// The `control` file.
    pub fn control(&self) -> String {
        let mut text = format!(
            "Package: {}\nVersion: {}\nArchitecture: {}\nMaintainer: Tests <tests@example.org>\n",
            self.name, self.version, self.architecture
        );
        for (name, value) in &self.fields {
            text.push_str(&format!("{name}: {value}\n"));
        }
        text.push_str("Description: a test package\n built by deb_fixture\n");
        text
    }

    /// The `.deb`'s bytes.
    pub fn bytes(&self) -> Vec<u8> {
        let mut control =
            vec![Entry::dir("./"), Entry::file("./control", self.control().as_bytes())];
        for (name, bytes) in &self.members {
            let mode = if name.ends_with("inst") || name.ends_with("rm") { 0o755 } else { 0o644 };
            control.push(Entry::file(&format!("./{name}"), bytes).mode(mode));
        }
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&tar_of(&control)).unwrap();
        let control_tar = gz.finish().unwrap();
        let mut xz = liblzma::write::XzEncoder::new(Vec::new(), 1);
        xz.write_all(&tar_of(&self.entries)).unwrap();
        let data_tar = xz.finish().unwrap();
        ar_of(&[
            ("debian-binary", b"2.0\n".to_vec()),
            ("control.tar.gz", control_tar),
            ("data.tar.xz", data_tar),
        ])
    }

    /// The `.deb`'s members by name, for a test that alters one.
    pub fn members(&self) -> Vec<(String, Vec<u8>)> {
        let bytes = self.bytes();
        let mut archive = ar::Archive::new(bytes.as_slice());
        let mut out = Vec::new();
        while let Some(member) = archive.next_entry() {
            let mut member = member.unwrap();
            let name = String::from_utf8(member.header().identifier().to_vec()).unwrap();
            let mut content = Vec::new();
            std::io::Read::read_to_end(&mut member, &mut content).unwrap();
            out.push((name, content));
        }
        out
    }

    /// Writes the `.deb` in `dir` and returns it as the fetcher would.
    pub fn write(&self, dir: &Path) -> FetchedDeb {
        std::fs::create_dir_all(dir).unwrap();
        let file = format!("{}_{}_{}.deb", self.name, self.version, self.architecture);
        let path = dir.join(&file);
        let bytes = self.bytes();
        std::fs::write(&path, &bytes).unwrap();
        FetchedDeb {
            id: PackageId {
                name: self.name.clone(),
                version: self.version.clone(),
                architecture: self.architecture.clone(),
            },
            filename: format!("pool/main/t/{}/{file}", self.name),
            sha256: rootfs::vocab::Sha256::of(&bytes),
            path,
        }
    }
}

/// An `ar` archive of `members` in order, as a `.deb` is one.
pub fn ar_of(members: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut ar = ar::Builder::new(Vec::new());
    for (name, bytes) in members {
        let header = ar::Header::new(name.as_bytes().to_vec(), bytes.len() as u64);
        ar.append(&header, bytes.as_slice()).unwrap();
    }
    ar.into_inner().unwrap()
}

/// A tar stream of `entries`, names and link names written raw (GNU
/// headers), so that hostile names get through as they are.
fn tar_of(entries: &[Entry]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for entry in entries {
        let mut header = tar::Header::new_gnu();
        let (kind, data, link): (tar::EntryType, &[u8], Option<&str>) = match &entry.kind {
            Kind::Dir => (tar::EntryType::Directory, &[], None),
            Kind::File(bytes) => (tar::EntryType::Regular, bytes, None),
            Kind::Symlink(target) => (tar::EntryType::Symlink, &[], Some(target)),
            Kind::HardLink(target) => (tar::EntryType::Link, &[], Some(target)),
        };
        header.set_entry_type(kind);
        raw_name(&mut header.as_old_mut().name, &entry.path);
        if let Some(link) = link {
            raw_name(&mut header.as_old_mut().linkname, link);
        }
        header.set_size(data.len() as u64);
        header.set_mode(entry.mode);
        header.set_uid(entry.uid);
        header.set_gid(entry.gid);
        header.set_mtime(entry.mtime);
        header.set_cksum();
        builder.append(&header, data).unwrap();
    }
    builder.into_inner().unwrap()
}

fn raw_name(field: &mut [u8; 100], name: &str) {
    assert!(name.len() < 100, "fixture names are short: `{name}`");
    field.fill(0);
    field[..name.len()].copy_from_slice(name.as_bytes());
}
