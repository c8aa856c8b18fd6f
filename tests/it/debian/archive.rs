//! A small Debian archive made by the tests: tiny `.deb`s, `Packages` indexes and an `InRelease` signed with a key generated here, served over loopback HTTP by a thread that counts requests.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use pgp::composed::{
    CleartextSignedMessage, EncryptionCaps, KeyType, SecretKeyParamsBuilder, SignedPublicKey,
    SignedSecretKey, SubkeyParamsBuilder,
};
use pgp::packet::{SignatureConfig, SignatureType, Subpacket, SubpacketData};
use pgp::types::{Duration, KeyDetails, Password, Timestamp};
use sha2::{Digest, Sha256};

pub fn sha256(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

/// A test signing key (never used outside these tests): a certify-only
/// primary key with a signing subkey, as Debian's archive keys are made.
pub fn signing_key(name: &str) -> SignedSecretKey {
    let mut sign = SubkeyParamsBuilder::default();
    sign.key_type(KeyType::Ed25519Legacy).can_sign(true).can_encrypt(EncryptionCaps::None);
    let mut params = SecretKeyParamsBuilder::default();
    params
        .key_type(KeyType::Ed25519Legacy)
        .can_certify(true)
        .can_sign(false)
        .can_encrypt(EncryptionCaps::None)
        .primary_user_id(format!("{name} test archive key <test@invalid>"))
        .subkeys(vec![sign.build().unwrap()]);
    params.build().unwrap().generate(rand::thread_rng()).unwrap()
}

/// A signing key as [`signing_key`] makes it, but made at `created`
/// (seconds since the epoch), whose signing subkey's binding says it
/// expires `lifetime` seconds after that.
pub fn expiring_signing_key(name: &str, created: u32, lifetime: u32) -> SignedSecretKey {
    let at = Timestamp::from_secs(created);
    let mut sign = SubkeyParamsBuilder::default();
    sign.key_type(KeyType::Ed25519Legacy)
        .can_sign(true)
        .can_encrypt(EncryptionCaps::None)
        .created_at(at);
    let mut params = SecretKeyParamsBuilder::default();
    params
        .key_type(KeyType::Ed25519Legacy)
        .can_certify(true)
        .can_sign(false)
        .can_encrypt(EncryptionCaps::None)
        .created_at(at)
        .primary_user_id(format!("{name} test archive key <test@invalid>"))
        .subkeys(vec![sign.build().unwrap()]);
    let mut key = params.build().unwrap().generate(rand::thread_rng()).unwrap();
    let subkey = &key.secret_subkeys[0];
    let mut config = subkey.signatures[0].config().unwrap().clone();
    let expiry = SubpacketData::KeyExpirationTime(Duration::from_secs(lifetime));
    config.hashed_subpackets.push(Subpacket::regular(expiry).unwrap());
    let binding = config
        .sign_subkey_binding(
            &key.primary_key,
            key.primary_key.public_key(),
            &Password::empty(),
            subkey.key.public_key(),
        )
        .unwrap();
    key.secret_subkeys[0].signatures = vec![binding];
    key
}

/// `text` cleartext-signed by `key`'s subkey with `created` (seconds since
/// the epoch) as the signature's time, as a file signed then would be.
pub fn clearsign_at(text: &str, key: &SignedSecretKey, created: u32) -> String {
    let signer = &key.secret_subkeys[0].key;
    let mut config =
        SignatureConfig::from_key(rand::thread_rng(), signer, SignatureType::Text).unwrap();
    let time = SubpacketData::SignatureCreationTime(Timestamp::from_secs(created));
    config.hashed_subpackets = vec![
        Subpacket::regular(time).unwrap(),
        Subpacket::regular(SubpacketData::IssuerFingerprint(signer.fingerprint())).unwrap(),
    ];
    config.unhashed_subpackets =
        vec![Subpacket::regular(SubpacketData::IssuerKeyId(signer.legacy_key_id())).unwrap()];
    let message = CleartextSignedMessage::new(text, config, signer, &Password::empty()).unwrap();
    message.to_armored_string(Default::default()).unwrap()
}

/// The public half, armored, as a spec would ship it.
pub fn armored_public(key: &SignedSecretKey) -> String {
    SignedPublicKey::from(key.clone()).to_armored_string(Default::default()).unwrap()
}

/// `text` as a cleartext-signed `InRelease`, signed by `key`'s subkey.
pub fn clearsign(text: &str, key: &SignedSecretKey) -> String {
    let message = CleartextSignedMessage::sign(
        rand::thread_rng(),
        text,
        &key.secret_subkeys[0].key,
        &Password::empty(),
    )
    .unwrap();
    message.to_armored_string(Default::default()).unwrap()
}

/// A `.deb`: an `ar` archive of `debian-binary`, `control.tar.gz` (with
/// `control`) and `data.tar.gz` (with `files`, each a path and contents).
pub fn deb(control: &str, files: &[(&str, &[u8])]) -> Vec<u8> {
    let control_tar = tar_gz(&[("./control", control.as_bytes())]);
    let data_tar = tar_gz(files);
    let mut out = b"!<arch>\n".to_vec();
    for (name, bytes) in [
        ("debian-binary", &b"2.0\n"[..]),
        ("control.tar.gz", &control_tar[..]),
        ("data.tar.gz", &data_tar[..]),
    ] {
        // The ar member header: name/16, mtime/12, uid/6, gid/6,
        // mode/8, size/10, "`\n"; members are padded to an even size.
        let header =
            format!("{:<16}{:<12}{:<6}{:<6}{:<8}{:<10}`\n", name, 0, 0, 0, 100644, bytes.len());
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(bytes);
        if bytes.len() % 2 == 1 {
            out.push(b'\n');
        }
    }
    out
}

fn tar_gz(files: &[(&str, &[u8])]) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    for (path, bytes) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, path, *bytes).unwrap();
    }
    tar.into_inner().unwrap().finish().unwrap()
}

pub fn xz(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = liblzma::write::XzEncoder::new(Vec::new(), 1);
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// One binary package of the test archive: its control fields (without
/// the ones the archive adds) and the suite it is in.
#[derive(Clone)]
pub struct Pkg {
    pub suite: &'static str,
    pub name: &'static str,
    pub version: &'static str,
    pub arch: &'static str,
    /// Extra control lines, e.g. `Depends: a`.
    pub fields: &'static str,
}

/// Files of a mirror by path, e.g. `dists/s/InRelease`.
pub type Files = BTreeMap<String, Vec<u8>>;

/// Builds a mirror's files: one `.deb` per package, a `Packages.xz` per
/// suite, and an `InRelease` per suite signed by `key` with `release_extra`
/// added to its fields (e.g. a `Valid-Until`).
pub fn archive(packages: &[Pkg], key: &SignedSecretKey, release_extra: &str) -> Files {
    archive_signed(packages, release_extra, &|text| clearsign(text, key))
}

/// [`archive`] with each `InRelease` signed by `sign`.
pub fn archive_signed(
    packages: &[Pkg],
    release_extra: &str,
    sign: &dyn Fn(&str) -> String,
) -> Files {
    let mut files = Files::new();
    let mut indexes: BTreeMap<&str, String> = BTreeMap::new();
    for p in packages {
        let control = format!(
            "Package: {}\nVersion: {}\nArchitecture: {}\nMaintainer: test\nDescription: test package\n{}",
            p.name, p.version, p.arch, p.fields
        );
        let bytes = deb(
            &control,
            &[(&format!("./usr/share/doc/{}/version", p.name), p.version.as_bytes())],
        );
        let filename = format!(
            "pool/main/{}/{}_{}_{}.deb",
            p.name,
            p.name,
            p.version.replace(':', "%3a"),
            p.arch
        );
        let stanza = format!(
            "{control}Filename: {filename}\nSize: {}\nSHA256: {}\n\n",
            bytes.len(),
            sha256(&bytes)
        );
        indexes.entry(p.suite).or_default().push_str(&stanza);
        files.insert(filename, bytes);
    }
    for (suite, index) in indexes {
        let compressed = xz(index.as_bytes());
        let release = format!(
            "Origin: Test\nSuite: {suite}\nCodename: {suite}\nDate: Sat, 10 Aug 2024 09:50:58 UTC\n{release_extra}Architectures: amd64\nComponents: main\nSHA256:\n {} {} main/binary-amd64/Packages.xz\n {} {} main/binary-amd64/Packages\n",
            sha256(&compressed),
            compressed.len(),
            sha256(index.as_bytes()),
            index.len(),
        );
        files.insert(format!("dists/{suite}/InRelease"), sign(&release).into_bytes());
        files.insert(format!("dists/{suite}/main/binary-amd64/Packages.xz"), compressed);
        files.insert(format!("dists/{suite}/main/binary-amd64/Packages"), index.into_bytes());
    }
    files
}

/// A loopback HTTP/1.1 server of `files`, counting requests; it stops
/// accepting when dropped.
pub struct Server {
    pub url: String,
    pub files: Arc<Mutex<Files>>,
    requests: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    addr: std::net::SocketAddr,
}

impl Server {
    pub fn start(files: Files) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let files = Arc::new(Mutex::new(files));
        let requests = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (f, r, s) = (files.clone(), requests.clone(), stop.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let (f, r) = (f.clone(), r.clone());
                std::thread::spawn(move || serve(stream, &f, &r));
            }
        });
        Server { url: format!("http://{addr}/debian"), files, requests, stop, addr }
    }

    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    /// Replaces (or adds) a file.
    pub fn put(&self, path: &str, bytes: Vec<u8>) {
        self.files.lock().unwrap().insert(path.to_string(), bytes);
    }

    pub fn get(&self, path: &str) -> Vec<u8> {
        self.files.lock().unwrap()[path].clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so that it sees `stop`.
        let _ = TcpStream::connect(self.addr);
    }
}

/// Answers each request on one connection; 404 for unknown paths.
fn serve(stream: TcpStream, files: &Mutex<Files>, requests: &AtomicUsize) {
    stream.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut stream = stream;
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        // Skip the headers.
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" || line == "\n" {
                break;
            }
        }
        requests.fetch_add(1, Ordering::SeqCst);
        let path = request_line.split_whitespace().nth(1).unwrap_or("/").to_string();
        let path = path.strip_prefix("/debian/").unwrap_or(&path);
        let body = files.lock().unwrap().get(path).cloned();
        let response = match &body {
            Some(bytes) => format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", bytes.len()),
            None => "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_string(),
        };
        if stream.write_all(response.as_bytes()).is_err() {
            return;
        }
        if let Some(bytes) = body
            && stream.write_all(&bytes).is_err()
        {
            return;
        }
        let _ = stream.flush();
    }
}
