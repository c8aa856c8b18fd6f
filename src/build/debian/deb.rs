//! One `.deb` read as `deb(5)` lays it out, streaming: the `ar` members `debian-binary`, `control.tar[.gz|.xz|.zst]` (its `control` stanza parsed, the other members kept) and `data.tar[.gz|.xz|.zst]` handed on as a tar stream.
//!
//! `deb(5)`: the first member is `debian-binary`, whose first line is the
//! format version (`2.0`; dpkg-deb accepts any `2.x`); then `control.tar`,
//! then `data.tar`, each optionally compressed. Members whose name starts
//! with `_` may come between them and are ignored, as dpkg-deb ignores them.
//! dpkg also accepts `bzip2` and `lzma` for `data.tar`; no package of a
//! current Debian suite uses them, and they are refused by name here.
//!
//! Every error names the `.deb` and the member it was reading.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use anyhow::{Context, Result, bail};

/// A `control` stanza (`deb-control(5)`): fields in the order shipped, each
/// value with its continuation lines (joined by `\n`, leading blank kept).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stanza {
    pub fields: Vec<(String, String)>,
}

impl Stanza {
    /// Parses one paragraph of `deb822(5)` text; comments (`#`) are left out.
    pub fn parse(text: &str) -> Result<Stanza> {
        let mut fields: Vec<(String, String)> = Vec::new();
        for line in text.lines() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            if line.starts_with([' ', '\t']) {
                let Some((_, value)) = fields.last_mut() else {
                    bail!("a continuation line before any field: `{line}`");
                };
                value.push('\n');
                value.push_str(line);
                continue;
            }
            let Some((name, value)) = line.split_once(':') else {
                bail!("a line that is not a field: `{line}`");
            };
            fields.push((name.trim().to_string(), value.trim().to_string()));
        }
        Ok(Stanza { fields })
    }

    /// A field's value (names compare without case, as `deb822(5)` says).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The stanza as text, one field a line, ending in a newline.
    pub fn to_text(&self) -> String {
        self.fields.iter().map(|(name, value)| format!("{name}: {value}\n")).collect()
    }
}

/// What `control.tar` holds: the parsed `control` file and every other
/// regular member (`postinst`, `conffiles`, `md5sums`, `triggers`, ...) by
/// name with its bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Control {
    pub stanza: Stanza,
    pub members: BTreeMap<String, Vec<u8>>,
}

impl Control {
    /// `Package:`; every `.deb` has one (checked when read).
    pub fn package(&self) -> &str {
        self.stanza.get("Package").unwrap_or_default()
    }

    /// A member as text (`conffiles`, `md5sums`, a script).
    pub fn text(&self, member: &str) -> Option<String> {
        self.members.get(member).map(|b| String::from_utf8_lossy(b).into_owned())
    }
}

/// Reads the `.deb` at `path`: its control archive, then its data archive,
/// whose decompressed tar stream is handed to `data` with the control.
pub fn read<T>(
    path: &Path,
    data: impl FnOnce(&Control, &mut dyn Read) -> Result<T>,
) -> Result<(Control, T)> {
    let file = std::fs::File::open(path)
        .with_context(|| format!("failed to open `{}`", path.display()))?;
    let mut archive = ar::Archive::new(std::io::BufReader::with_capacity(1 << 16, file));
    let mut step = Step::Version;
    let mut control = None;
    while let Some(member) = archive.next_entry() {
        let mut member =
            member.with_context(|| format!("reading the members of `{}`", path.display()))?;
        let name = String::from_utf8_lossy(member.header().identifier()).into_owned();
        // GNU ar ends names with `/`; dpkg-deb writes none, but accepts it.
        let name = name.trim_end_matches('/').to_string();
        let context = || format!("reading `{name}` of `{}`", path.display());
        if name.starts_with('_') && step != Step::Version {
            continue;
        }
        match step {
            Step::Version => {
                anyhow::ensure!(
                    name == "debian-binary",
                    "`{}` is not a Debian package: its first member is `{name}`, not `debian-binary`",
                    path.display()
                );
                let mut text = String::new();
                member.read_to_string(&mut text).with_context(context)?;
                let version = text.lines().next().unwrap_or("").trim();
                anyhow::ensure!(
                    version.split('.').next() == Some("2"),
                    "`{}` has format `{version}` in `debian-binary`: only 2.x is read",
                    path.display()
                );
                step = Step::Control;
            }
            Step::Control => {
                let stream = decompress(&name, "control.tar", &mut member).with_context(context)?;
                control = Some(read_control(stream).with_context(context)?);
                step = Step::Data;
            }
            Step::Data => {
                let control = control.take().context("no control")?;
                let mut stream =
                    decompress(&name, "data.tar", &mut member).with_context(context)?;
                let out = data(&control, &mut stream).with_context(context)?;
                return Ok((control, out));
            }
        }
    }
    bail!("`{}` ends before its {} member", path.display(), step.member())
}

/// Which member comes next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    Version,
    Control,
    Data,
}

impl Step {
    fn member(self) -> &'static str {
        match self {
            Step::Version => "`debian-binary`",
            Step::Control => "`control.tar`",
            Step::Data => "`data.tar`",
        }
    }
}

/// The decompressed stream of member `name`, which must be `base` with one
/// of the compressions dpkg-deb writes.
fn decompress<'a>(name: &str, base: &str, member: &'a mut dyn Read) -> Result<Box<dyn Read + 'a>> {
    let Some(suffix) = name.strip_prefix(base) else {
        bail!("the member `{name}` comes where `{base}` belongs");
    };
    Ok(match suffix {
        "" => Box::new(member),
        ".gz" => Box::new(flate2::read::GzDecoder::new(member)),
        ".xz" => Box::new(liblzma::read::XzDecoder::new_multi_decoder(member)),
        ".zst" => Box::new(zstd::stream::read::Decoder::new(member).context("starting zstd")?),
        ".bz2" | ".lzma" => bail!("`{name}` is compressed with {}: not read", &suffix[1..]),
        _ => bail!("`{name}` has an unknown compression"),
    })
}

/// The control archive: `control` parsed, other regular members kept.
fn read_control(stream: impl Read) -> Result<Control> {
    let mut archive = tar::Archive::new(stream);
    let mut control = Control::default();
    let mut found = false;
    for entry in archive.entries().context("reading the archive")? {
        let mut entry = entry.context("reading the archive")?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = entry.path().context("reading an entry's path")?.into_owned();
        let name =
            crate::build::unpacked::layer::relative_strict(&path)?.to_string_lossy().into_owned();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).with_context(|| format!("reading `{name}`"))?;
        if name == "control" {
            let text = String::from_utf8(bytes).context("`control` is not UTF-8")?;
            control.stanza = Stanza::parse(&text).context("parsing `control`")?;
            found = true;
        } else {
            control.members.insert(name, bytes);
        }
    }
    anyhow::ensure!(found, "no `control` file");
    anyhow::ensure!(control.stanza.get("Package").is_some(), "`control` has no `Package` field");
    Ok(control)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stanza_keeps_continuation_lines_and_field_order() {
        let text = "Package: a\nDescription: short\n more\n .\n end\nVersion: 1\n";
        let stanza = Stanza::parse(text).unwrap();
        assert_eq!(stanza.get("package"), Some("a"));
        assert_eq!(stanza.get("Description"), Some("short\n more\n .\n end"));
        assert_eq!(stanza.to_text(), text);
    }

    #[test]
    fn members_must_be_the_ones_deb5_names() {
        let mut empty: &[u8] = b"";
        assert!(decompress("control.tar.xz", "control.tar", &mut empty).is_ok());
        let err = decompress("data.tar.bz2", "data.tar", &mut empty).err().unwrap();
        assert_eq!(err.to_string(), "`data.tar.bz2` is compressed with bz2: not read");
        let err = decompress("data.tar.gz", "control.tar", &mut empty).err().unwrap();
        assert_eq!(err.to_string(), "the member `data.tar.gz` comes where `control.tar` belongs");
    }
}
