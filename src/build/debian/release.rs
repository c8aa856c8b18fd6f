//! A suite's `InRelease`: its OpenPGP cleartext signature checked against a keyring, then its fields (`Date`, `Valid-Until`, the `SHA256` list of index files) read from the signed text only.
//!
//! This follows the Debian repository format (wiki.debian.org/DebianRepository/Format)
//! and what apt's `gpgv` method and `metaIndex` enforce: an index without
//! a good signature from a key of the keyring is refused, as is one whose
//! `Valid-Until` has passed (apt's `Check-Valid-Until`, off for a snapshot
//! mirror as apt users turn it off for Debian's snapshot archive), and one
//! signed only by a key that has expired (gpgv's `EXPKEYSIG`, which apt
//! refuses; for a snapshot, a key that had expired when it signed). Only the
//! `SHA256` section is used: MD5 and SHA1 are not trusted, as apt no
//! longer trusts them.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use pgp::composed::{CleartextSignedMessage, Deserializable, SignedPublicKey};
use pgp::crypto::hash::HashAlgorithm;
use pgp::packet::Signature;
use pgp::types::KeyDetails;

use super::control;
use crate::vocab::Sha256;

/// The public keys an archive's signature is checked against.
#[derive(Clone, Debug)]
pub struct Keyring {
    pub path: PathBuf,
    keys: Vec<SignedPublicKey>,
}

impl Keyring {
    /// Reads an armored (`.asc`) or binary (`.gpg`, as in
    /// `/usr/share/keyrings`) keyring holding one or more keys.
    pub fn load(path: &Path) -> Result<Keyring> {
        let bytes = std::fs::read(path)
            .with_context(|| format!("failed to read the keyring `{}`", path.display()))?;
        Keyring::from_bytes(&bytes)
            .with_context(|| format!("failed to read the keyring `{}`", path.display()))
            .map(|mut keyring| {
                keyring.path = path.to_path_buf();
                keyring
            })
    }

    /// Parses a keyring from its bytes, armored or binary.
    pub fn from_bytes(bytes: &[u8]) -> Result<Keyring> {
        let armored = bytes.trim_ascii_start().starts_with(b"-----BEGIN PGP");
        let keys: Vec<SignedPublicKey> = if armored {
            SignedPublicKey::from_armor_many(bytes)?.0.collect::<Result<_, _>>()?
        } else {
            SignedPublicKey::from_bytes_many(bytes)?.collect::<Result<_, _>>()?
        };
        if keys.is_empty() {
            bail!("no public key in the keyring");
        }
        Ok(Keyring { path: PathBuf::new(), keys })
    }
}

/// A verified `InRelease`: the fields this tool uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Release {
    /// `Date:` as written, e.g. `Sat, 10 Aug 2024 09:50:58 UTC`.
    pub date: String,
    /// `Valid-Until:` in seconds since the epoch, when given.
    pub valid_until: Option<i64>,
    /// The `SHA256:` list: path below `dists/SUITE/` to its digest and size.
    pub files: BTreeMap<String, IndexFile>,
    /// `Origin:`, `Version:` and `Codename:`, when given.
    pub origin: Option<String>,
    pub version: Option<String>,
    pub codename: Option<String>,
}

impl Release {
    /// The distribution as purl's `distro` qualifier names it, as the
    /// release file itself states it: the first word of its `Origin` in
    /// lowercase (`Debian`, `Debian Backports`: `debian`), then the leading
    /// number of its `Version` (`12.7` for a point release, `12` for
    /// security, `12-updates`: `debian-12`), or, with no `Version`
    /// (testing, unstable, backports), its `Codename` up to the first `-`
    /// (`sid`, `bookworm-backports`: `debian-sid`, `debian-bookworm`).
    /// `None` without an `Origin`.
    pub fn distro(&self) -> Option<String> {
        let origin = self.origin.as_deref()?.split_whitespace().next()?.to_ascii_lowercase();
        let version = self.version.as_deref().unwrap_or_default();
        let major: String = version.chars().take_while(char::is_ascii_digit).collect();
        let codename = self.codename.as_deref().and_then(|c| c.split('-').next());
        let release = Some(major).filter(|m| !m.is_empty()).or(codename.map(str::to_string));
        Some(format!("{origin}-{}", release.filter(|r| !r.is_empty())?))
    }
}

/// One line of the `SHA256:` list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexFile {
    pub sha256: Sha256,
    pub size: u64,
}

/// When a signature is judged: `now`, seconds since the epoch, or for a
/// snapshot mirror, whose old files were signed by keys that may have
/// expired since, the time each signature was made.
#[derive(Clone, Copy, Debug)]
pub struct At {
    pub now: i64,
    pub snapshot: bool,
}

/// Checks the signature of `bytes` (an `InRelease` fetched from `url`)
/// against `keyring` and returns the signed text. An unsigned file, a bad
/// signature, a signature by a key not in the keyring, and one by a key
/// that has expired (at `at`) are each an error that says which; a good
/// signature by a key still valid wins over one by an expired key, as apt
/// accepts a file that one valid key of several signed.
pub fn verify(bytes: &[u8], keyring: &Keyring, url: &str, at: At) -> Result<String> {
    let text = std::str::from_utf8(bytes).with_context(|| format!("`{url}` is not text"))?;
    let (message, _) = CleartextSignedMessage::from_string(text)
        .map_err(|e| anyhow::anyhow!("`{url}` is not an OpenPGP cleartext-signed file: {e}"))?;
    let mut expired: Option<String> = None;
    for key in &keyring.keys {
        let Some((signature, expires, fingerprint)) = signed_by(&message, key) else { continue };
        let signed = signature.created().map_or(at.now, |t| i64::from(t.as_secs()));
        let when = if at.snapshot { signed } else { at.now };
        if let Some(until) = expires.filter(|until| *until <= when) {
            let until = crate::fsutil::rfc3339(until);
            expired.get_or_insert_with(|| match at.snapshot {
                true => format!("`{url}` is signed by key {fingerprint}, which had expired on {until}, before it signed on {}", crate::fsutil::rfc3339(signed)),
                false => format!("`{url}` is signed by key {fingerprint}, which expired on {until}; if the mirror is a snapshot, set `snapshot = true`"),
            });
            continue;
        }
        strong_digest(signature.hash_alg(), url)?;
        return Ok(message.signed_text());
    }
    if let Some(expired) = expired {
        bail!("{expired}");
    }
    let issuers: Vec<String> = message
        .signatures()
        .iter()
        .flat_map(|sig| {
            let ids = sig.issuer_key_id().into_iter().map(|id| format!("{id}"));
            let fingerprints = sig.issuer_fingerprint().into_iter().map(|fp| format!("{fp:X}"));
            ids.chain(fingerprints).collect::<Vec<_>>()
        })
        .collect();
    let known = keyring.keys.iter().any(|key| {
        std::iter::once((key.primary_key.legacy_key_id(), key.primary_key.fingerprint()))
            .chain(key.public_subkeys.iter().map(|s| (s.key.legacy_key_id(), s.key.fingerprint())))
            .any(|(id, fp)| {
                issuers.contains(&format!("{id}")) || issuers.contains(&format!("{fp:X}"))
            })
    });
    let keyring_name = keyring.path.display();
    if known {
        bail!(
            "`{url}` has a bad signature: its text does not match the signature of key {}",
            issuers.join(", ")
        )
    }
    bail!(
        "`{url}` is signed by key {}, which is not in the keyring `{keyring_name}`",
        if issuers.is_empty() { "(unnamed)".to_string() } else { issuers.join(", ") }
    )
}

/// The signature of `message` that `key` made, with its primary key or a
/// subkey the primary key bound, when the signing key expires (seconds
/// since the epoch), and its fingerprint.
fn signed_by<'m>(
    message: &'m CleartextSignedMessage,
    key: &SignedPublicKey,
) -> Option<(&'m Signature, Option<i64>, String)> {
    let primary = expires_at(key.primary_key.created_at(), self_signatures(key));
    if let Ok(signature) = message.verify(&key.primary_key) {
        return Some((signature, primary, format!("{:X}", key.primary_key.fingerprint())));
    }
    // A subkey counts only when the primary key bound it; it expires with
    // the primary key, or before it when its binding says so.
    let bound = key.public_subkeys.iter().filter(|s| s.verify_bindings(&key.primary_key).is_ok());
    for subkey in bound {
        if let Ok(signature) = message.verify(&subkey.key) {
            let own = expires_at(subkey.key.created_at(), subkey.signatures.iter());
            let expires = [primary, own].into_iter().flatten().min();
            return Some((signature, expires, format!("{:X}", subkey.key.fingerprint())));
        }
    }
    None
}

/// The primary key's own signatures over itself and its user ids (RFC 9580
/// §5.2.3.10: its newest self-signature says when it expires).
fn self_signatures(key: &SignedPublicKey) -> impl Iterator<Item = &Signature> {
    let primary = &key.primary_key;
    let (id, fingerprint) = (primary.legacy_key_id(), primary.fingerprint());
    let users = key.details.users.iter().flat_map(|user| user.signatures.iter());
    key.details.direct_signatures.iter().chain(users).filter(move |signature| {
        signature.issuer_key_id().contains(&&id)
            || signature.issuer_fingerprint().contains(&&fingerprint)
    })
}

/// When a key made at `created` expires by the newest of its binding or
/// self-signatures (`Key Expiration Time`, RFC 9580 §5.2.3.13, counted
/// from the key's creation; none or zero: never).
fn expires_at<'a>(
    created: pgp::types::Timestamp,
    signatures: impl Iterator<Item = &'a Signature>,
) -> Option<i64> {
    let newest = signatures.max_by_key(|s| s.created().map(|t| t.as_secs()))?;
    let lifetime = newest.key_expiration_time()?.as_secs();
    (lifetime != 0).then(|| i64::from(created.as_secs()) + i64::from(lifetime))
}

/// Refuses a signature over a digest apt no longer trusts: MD5, SHA1 and
/// RIPEMD160 (apt's gpgv method treats them as weak since apt 1.x; apt 2.x
/// refuses them).
fn strong_digest(digest: Option<HashAlgorithm>, url: &str) -> Result<()> {
    match digest {
        Some(
            HashAlgorithm::Md5
            | HashAlgorithm::Sha1
            | HashAlgorithm::Ripemd160
            | HashAlgorithm::None,
        )
        | None => bail!(
            "`{url}` is signed over the weak digest {}, which apt refuses",
            digest.map(|d| d.to_string()).unwrap_or_else(|| "(unknown)".into())
        ),
        Some(_) => Ok(()),
    }
}

/// Reads the fields of a verified `InRelease` text.
pub fn parse(text: &str, url: &str) -> Result<Release> {
    let stanzas = control::parse(text).with_context(|| format!("failed to parse `{url}`"))?;
    let Some(stanza) = stanzas.first() else { bail!("`{url}` holds no fields") };
    let date = stanza.get("Date").with_context(|| format!("`{url}` has no `Date`"))?.to_string();
    parse_date(&date).with_context(|| format!("`{url}`: bad `Date`"))?;
    let valid_until = match stanza.get("Valid-Until") {
        Some(text) => {
            Some(parse_date(text).with_context(|| format!("`{url}`: bad `Valid-Until`"))?)
        }
        None => None,
    };
    let mut files = BTreeMap::new();
    for line in stanza.get("SHA256").unwrap_or_default().lines() {
        let mut words = line.split_whitespace();
        let (Some(sha256), Some(size), Some(path), None) =
            (words.next(), words.next(), words.next(), words.next())
        else {
            bail!("`{url}`: bad `SHA256` line `{line}`");
        };
        let size = size.parse().with_context(|| format!("`{url}`: bad size in `{line}`"))?;
        let Ok(sha256) = sha256.to_ascii_lowercase().parse::<Sha256>() else {
            bail!("`{url}`: bad digest in `{line}`");
        };
        files.insert(path.to_string(), IndexFile { sha256, size });
    }
    let field = |name: &str| stanza.get(name).map(str::to_string);
    Ok(Release {
        date,
        valid_until,
        files,
        origin: field("Origin"),
        version: field("Version"),
        codename: field("Codename"),
    })
}

/// Refuses a release whose `Valid-Until` is before `now` (seconds since
/// the epoch), unless the mirror is a snapshot, whose indexes expire by
/// design.
pub fn check_valid_until(release: &Release, now: i64, snapshot: bool, url: &str) -> Result<()> {
    match release.valid_until {
        Some(until) if !snapshot && until < now => bail!(
            "`{url}` expired on {} (`Valid-Until`); if the mirror is a snapshot, set `snapshot = true`",
            crate::fsutil::rfc3339(until)
        ),
        _ => Ok(()),
    }
}

/// Parses a Release date, RFC 2822 as Debian writes it
/// (`Sat, 10 Aug 2024 09:50:58 UTC`, or with a `+0000` offset), to
/// seconds since the epoch.
pub fn parse_date(text: &str) -> Result<i64> {
    let words: Vec<&str> = text.split_whitespace().collect();
    // The weekday is optional in RFC 2822.
    let words =
        if words.first().is_some_and(|w| w.ends_with(',')) { &words[1..] } else { &words[..] };
    let [day, month, year, time, zone] = words else { bail!("`{text}` is not an RFC 2822 date") };
    const MONTHS: [&str; 12] =
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let month =
        MONTHS.iter().position(|m| m.eq_ignore_ascii_case(month)).context("unknown month")? as i64
            + 1;
    let day: i64 = day.parse().context("bad day")?;
    let year: i64 = year.parse().context("bad year")?;
    let mut hms = time.split(':').map(|p| p.parse::<i64>());
    let (Some(Ok(h)), Some(Ok(m)), Some(Ok(s))) = (hms.next(), hms.next(), hms.next()) else {
        bail!("bad time `{time}`");
    };
    let offset = match *zone {
        "UTC" | "GMT" | "Z" => 0,
        zone => {
            let (sign, digits) = zone.split_at(1);
            let value: i64 = digits.parse().with_context(|| format!("bad zone `{zone}`"))?;
            let seconds = (value / 100) * 3600 + (value % 100) * 60;
            match sign {
                "+" => seconds,
                "-" => -seconds,
                _ => bail!("bad zone `{zone}`"),
            }
        }
    };
    Ok(days_from_civil(year, month, day) * 86400 + h * 3600 + m * 60 + s - offset)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

/// Reads all of `reader` into memory, at most `limit` bytes.
pub(crate) fn read_limited(reader: impl Read, limit: u64, url: &str) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    reader
        .take(limit + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("failed to download `{url}`"))?;
    if bytes.len() as u64 > limit {
        bail!("`{url}` is larger than {limit} bytes");
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weak_signature_digests_are_refused() {
        assert!(strong_digest(Some(HashAlgorithm::Sha256), "u").is_ok());
        assert!(strong_digest(Some(HashAlgorithm::Sha512), "u").is_ok());
        let err = strong_digest(Some(HashAlgorithm::Sha1), "u").unwrap_err().to_string();
        assert_eq!(err, "`u` is signed over the weak digest SHA1, which apt refuses");
        assert!(strong_digest(Some(HashAlgorithm::Md5), "u").is_err());
    }

    #[test]
    fn dates_as_debian_writes_them() {
        assert_eq!(parse_date("Thu, 01 Jan 1970 00:00:00 UTC").unwrap(), 0);
        assert_eq!(parse_date("Sat, 10 Aug 2024 09:50:58 UTC").unwrap(), 1723283458);
        assert_eq!(parse_date("Sat, 10 Aug 2024 11:50:58 +0200").unwrap(), 1723283458);
        assert!(parse_date("yesterday").is_err());
    }

    #[test]
    fn sha256_list_and_valid_until() {
        let text = "Origin: Debian\nDate: Sat, 10 Aug 2024 09:50:58 UTC\nValid-Until: Sat, 17 Aug 2024 09:50:58 UTC\nSHA256:\n "
            .to_string()
            + &"a".repeat(64)
            + " 123 main/binary-amd64/Packages.xz\n";
        let release = parse(&text, "u").unwrap();
        assert_eq!(release.files["main/binary-amd64/Packages.xz"].size, 123);
        assert!(check_valid_until(&release, 1723283458, false, "u").is_ok());
        let err = check_valid_until(&release, 1723283458 + 8 * 86400, false, "u").unwrap_err();
        assert!(err.to_string().contains("expired on 2024-08-17"), "{err}");
        assert!(check_valid_until(&release, 1723283458 + 8 * 86400, true, "u").is_ok());
    }

    #[test]
    fn the_distro_comes_from_origin_and_version_else_codename() {
        let release = |fields: &str| {
            parse(&format!("{fields}Date: Sat, 10 Aug 2024 09:50:58 UTC\n"), "u").unwrap()
        };
        let stable = release("Origin: Debian\nSuite: stable\nVersion: 12.7\nCodename: bookworm\n");
        assert_eq!(stable.distro().as_deref(), Some("debian-12"));
        let security = release("Origin: Debian\nVersion: 13\nCodename: trixie-security\n");
        assert_eq!(security.distro().as_deref(), Some("debian-13"));
        let updates = release("Origin: Debian\nVersion: 12-updates\nCodename: bookworm-updates\n");
        assert_eq!(updates.distro().as_deref(), Some("debian-12"));
        let backports = release("Origin: Debian Backports\nCodename: bookworm-backports\n");
        assert_eq!(backports.distro().as_deref(), Some("debian-bookworm"));
        let sid = release("Origin: Debian\nSuite: unstable\nCodename: sid\n");
        assert_eq!(sid.distro().as_deref(), Some("debian-sid"));
        assert_eq!(release("Version: 12.7\n").distro(), None);
    }
}
