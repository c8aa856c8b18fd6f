//! Downloads from a Debian mirror, each verified before it is kept: a suite's `InRelease` (signature, `Valid-Until`), its `Packages` indexes (against the `SHA256` the `InRelease` lists), and `.deb`s (against their index's `SHA256` and `Size`), several at a time.
//!
//! Index paths follow the repository format: `dists/SUITE/InRelease`,
//! `dists/SUITE/COMPONENT/binary-ARCH/Packages{.xz,.gz,}` (the first one
//! the `InRelease` lists, preferring the smallest download as apt does),
//! and each package's `Filename` below the mirror's base URL. Since
//! bullseye, `Architecture: all` packages are listed in every
//! `binary-ARCH` index, so no `binary-all` index is read.

use std::io::Read;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use rayon::prelude::*;

use super::cache::{Cache, Expected};
use super::index::{self, IndexPackage};
use super::package::{FetchedDeb, PackageId};
use super::release::{self, IndexFile, Keyring, Release};
use super::source::{ArchiveSource, SuiteSource};
use crate::vocab::Sha256;

/// The largest `InRelease` read into memory (bookworm's is about 150 KiB).
const INRELEASE_LIMIT: u64 = 64 << 20;

/// How many downloads run at once: enough to hide a mirror's latency,
/// few enough to be polite to it (apt opens up to 3 connections a host).
const PARALLEL_DOWNLOADS: usize = 4;

/// An HTTP client for plain http and https mirrors, with the proxy from
/// the environment (`http_proxy`, ...) as apt users expect.
pub struct Http {
    agent: ureq::Agent,
}

impl Http {
    pub fn new() -> Http {
        let config = ureq::Agent::config_builder()
            .timeout_connect(Some(Duration::from_secs(30)))
            .timeout_recv_response(Some(Duration::from_secs(60)))
            .timeout_recv_body(Some(Duration::from_secs(600)))
            .user_agent(concat!("rootfs/", env!("CARGO_PKG_VERSION")))
            .build();
        Http { agent: config.into() }
    }

    /// The body of `url`, or `None` when the server answers 404 or 410 (a
    /// file the mirror does not serve, which callers name precisely).
    fn get(&self, url: &str) -> Result<Option<impl Read + use<>>> {
        match self.agent.get(url).call() {
            Ok(response) => Ok(Some(response.into_body().into_reader())),
            Err(ureq::Error::StatusCode(404 | 410)) => Ok(None),
            Err(e) => Err(e).with_context(|| format!("failed to download `{url}`")),
        }
    }

    fn get_found(&self, url: &str) -> Result<impl Read + use<>> {
        self.get(url)?.with_context(|| format!("failed to download `{url}`: not found (404)"))
    }
}

impl Default for Http {
    fn default() -> Http {
        Http::new()
    }
}

/// One suite's verified indexes.
#[derive(Clone, Debug)]
pub struct SuiteIndex {
    pub source: SuiteSource,
    /// The SHA256 of the `InRelease` the indexes were checked against.
    pub inrelease_sha256: Sha256,
    /// Its `Date:`.
    pub date: String,
    /// Its distribution, as a purl's `distro` names it.
    pub distro: Option<String>,
    pub packages: Vec<IndexPackage>,
}

/// Fetches and verifies every suite's `InRelease` and `Packages` indexes
/// (the indexes from the cache when their digest is there), and parses
/// them.
pub fn fetch_indexes(
    source: &ArchiveSource,
    cache: &Cache,
    http: &Http,
) -> Result<Vec<SuiteIndex>> {
    let keyring = Keyring::load(&source.keyring)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default();
    // Every suite is fetched, then the first failure in the suites' order is
    // the one reported: the same one on every run, whichever finished first.
    let fetched: Vec<Result<SuiteIndex>> = source
        .suites
        .par_iter()
        .enumerate()
        .map(|(at, suite)| fetch_suite(at, suite, source, &keyring, now, cache, http))
        .collect();
    fetched.into_iter().collect()
}

fn fetch_suite(
    at: usize,
    suite: &SuiteSource,
    source: &ArchiveSource,
    keyring: &Keyring,
    now: i64,
    cache: &Cache,
    http: &Http,
) -> Result<SuiteIndex> {
    let url = suite.dists_url("InRelease");
    let bytes = release::read_limited(http.get_found(&url)?, INRELEASE_LIMIT, &url)?;
    let when = release::At { now, snapshot: source.snapshot };
    let text = release::verify(&bytes, keyring, &url, when)?;
    let parsed = release::parse(&text, &url)?;
    release::check_valid_until(&parsed, now, source.snapshot, &url)?;
    let (inrelease_sha256, _) = cache.store_verified(&bytes, &url)?;
    let mut packages = Vec::new();
    for component in &suite.components {
        let base = format!("{component}/binary-{}/Packages", source.architecture);
        let Some((name, file)) = pick_index(&parsed, &base) else {
            bail!(
                "`{url}` lists no `{base}` index: is `{component}` a component of `{}` for {}?",
                suite.suite,
                source.architecture
            );
        };
        let index_url = suite.dists_url(&name);
        let expected = Expected { sha256: file.sha256, size: Some(file.size) };
        let path = if cache.has(&expected) {
            cache.path(&expected.sha256)
        } else {
            cache.store(http.get_found(&index_url)?, &expected, &index_url)?
        };
        let text =
            decompress(&path, &name).with_context(|| format!("failed to read `{index_url}`"))?;
        packages.extend(index::parse(&text, at, &index_url)?);
    }
    let distro = parsed.distro();
    Ok(SuiteIndex { source: suite.clone(), inrelease_sha256, date: parsed.date, distro, packages })
}

/// The `Packages` index to read: `.xz`, else `.gz`, else plain, whichever
/// the `InRelease` lists first in that order (the smallest download).
fn pick_index<'r>(release: &'r Release, base: &str) -> Option<(String, &'r IndexFile)> {
    ["xz", "gz", ""].iter().find_map(|ext| {
        let name = if ext.is_empty() { base.to_string() } else { format!("{base}.{ext}") };
        release.files.get(&name).map(|file| (name, file))
    })
}

/// Reads a cached index, decompressing by its archive name's extension.
fn decompress(path: &std::path::Path, name: &str) -> Result<String> {
    let file = std::fs::File::open(path)
        .with_context(|| format!("failed to open `{}`", path.display()))?;
    let mut reader: Box<dyn Read> = if name.ends_with(".xz") {
        Box::new(liblzma::read::XzDecoder::new(std::io::BufReader::new(file)))
    } else if name.ends_with(".gz") {
        Box::new(flate2::read::GzDecoder::new(std::io::BufReader::new(file)))
    } else {
        Box::new(file)
    };
    let mut text = String::new();
    reader
        .read_to_string(&mut text)
        .with_context(|| format!("failed to decompress `{}`", path.display()))?;
    Ok(text)
}

/// A `.deb` to have in the cache: what an index (or a lock) says of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Wanted {
    pub id: PackageId,
    /// The mirror's base URL, without a trailing `/`.
    pub mirror: String,
    /// The suite whose index listed it.
    pub suite: String,
    /// `Filename:`, below the mirror.
    pub filename: String,
    pub sha256: Sha256,
    pub size: Option<u64>,
}

impl Wanted {
    /// `package`, as an index of `source` listed it.
    pub fn listed(package: &IndexPackage, source: &ArchiveSource) -> Wanted {
        let suite = &source.suites[package.suite];
        Wanted {
            id: package.id.clone(),
            mirror: suite.mirror.clone(),
            suite: suite.suite.clone(),
            filename: package.filename.clone(),
            sha256: package.sha256,
            size: Some(package.size),
        }
    }

    pub fn url(&self) -> String {
        format!("{}/{}", self.mirror, self.filename)
    }
}

/// Makes sure every wanted `.deb` is in the cache, downloading (a few at a
/// time) only those it lacks; with everything cached no request is made.
/// A `.deb` the mirror no longer serves is an error naming it and its
/// version. The result is in the order of `wanted`.
pub fn fetch_debs(
    wanted: &[Wanted],
    cache: &Cache,
    http: &Http,
    progress: bool,
) -> Result<Vec<FetchedDeb>> {
    let missing: Vec<&Wanted> = wanted
        .iter()
        .filter(|w| !cache.has(&Expected { sha256: w.sha256, size: w.size }))
        .collect();
    if !missing.is_empty() {
        let bar = progress_bar(&missing, progress);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(PARALLEL_DOWNLOADS)
            .build()
            .context("failed to start the download threads")?;
        // The first failure in the packages' order is reported, whichever
        // download ended first.
        let downloaded: Vec<Result<()>> = pool.install(|| {
            missing
                .par_iter()
                .map(|w| {
                    download(w, cache, http)?;
                    bar.inc(w.size.unwrap_or(0));
                    Ok(())
                })
                .collect()
        });
        downloaded.into_iter().collect::<Result<()>>()?;
        bar.finish_and_clear();
    }
    Ok(wanted
        .iter()
        .map(|w| FetchedDeb {
            id: w.id.clone(),
            filename: w.filename.clone(),
            sha256: w.sha256,
            path: cache.path(&w.sha256),
        })
        .collect())
}

fn download(wanted: &Wanted, cache: &Cache, http: &Http) -> Result<()> {
    let url = wanted.url();
    let Some(body) = http.get(&url)? else {
        bail!(
            "the mirror no longer serves `{}` {} ({}): `{url}` is not found",
            wanted.id.name,
            wanted.id.version,
            wanted.id.architecture
        );
    };
    cache.store(body, &Expected { sha256: wanted.sha256, size: wanted.size }, &url)?;
    Ok(())
}

/// A bar counting bytes, drawn only when stderr is a terminal.
fn progress_bar(missing: &[&Wanted], enabled: bool) -> indicatif::ProgressBar {
    if !enabled {
        return indicatif::ProgressBar::hidden();
    }
    let total = missing.iter().map(|w| w.size.unwrap_or(0)).sum();
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(total),
        indicatif::ProgressDrawTarget::stderr(),
    );
    bar.set_style(
        indicatif::ProgressStyle::with_template(&format!(
            "{{spinner}} fetching {} packages {{wide_bar}} {{bytes}}/{{total_bytes}} {{elapsed}}",
            missing.len()
        ))
        .expect("valid template"),
    );
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexes_prefer_xz_then_gz_then_plain_and_decompress_by_name() {
        let file = |sha: &str| IndexFile { sha256: sha.repeat(64).parse().unwrap(), size: 1 };
        let mut release = Release {
            date: String::new(),
            valid_until: None,
            files: Default::default(),
            origin: None,
            version: None,
            codename: None,
        };
        let base = "main/binary-amd64/Packages";
        release.files.insert(base.into(), file("a"));
        assert_eq!(pick_index(&release, base).unwrap().0, base);
        release.files.insert(format!("{base}.gz"), file("b"));
        assert_eq!(pick_index(&release, base).unwrap().0, format!("{base}.gz"));
        release.files.insert(format!("{base}.xz"), file("c"));
        assert_eq!(pick_index(&release, base).unwrap().0, format!("{base}.xz"));
        assert!(pick_index(&release, "contrib/binary-amd64/Packages").is_none());

        let dir = tempfile::tempdir().unwrap();
        let text = "Package: a\n";
        let gz = dir.path().join("gz");
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut encoder, text.as_bytes()).unwrap();
        std::fs::write(&gz, encoder.finish().unwrap()).unwrap();
        assert_eq!(decompress(&gz, "Packages.gz").unwrap(), text);
        let xz = dir.path().join("xz");
        let mut encoder = liblzma::write::XzEncoder::new(Vec::new(), 1);
        std::io::Write::write_all(&mut encoder, text.as_bytes()).unwrap();
        std::fs::write(&xz, encoder.finish().unwrap()).unwrap();
        assert_eq!(decompress(&xz, "Packages.xz").unwrap(), text);
        let plain = dir.path().join("plain");
        std::fs::write(&plain, text).unwrap();
        assert_eq!(decompress(&plain, "Packages").unwrap(), text);
    }
}
