//! Maintainer scripts are never run; what they do that a running program needs is reproduced (`update-alternatives --install` links, the CA bundle of `update-ca-certificates`), and everything else they would do is returned as data, never silently dropped.
//!
//! - `update-alternatives --install LINK NAME PATH PRIORITY [--slave LINK
//!   NAME PATH]...` calls are read from each `postinst` statically (with
//!   continuation lines joined, words split as the shell splits plain
//!   words). Per NAME the highest priority wins, as in automatic mode
//!   (`update-alternatives(1)`: "the alternative with the highest priority
//!   is chosen"); between equal priorities the smallest PATH, so the choice
//!   never depends on the order of installation. An alternative whose PATH
//!   is not in the sysroot is not chosen (update-alternatives refuses it).
//!   For the choice, `etc/alternatives/NAME -> PATH` and
//!   `LINK -> /etc/alternatives/NAME`, and the same for each slave whose
//!   path exists; a LINK that a package ships as a file is left alone, as
//!   update-alternatives leaves it without `--force`. A call whose words
//!   hold shell expansions (`$i`, `` ` ``) cannot be read statically and is
//!   reported.
//! - `ldconfig` (and the `ldconfig` trigger): the resolver reads the
//!   sysroot's `etc/ld.so.conf` when it has no `ld.so.cache`
//!   (`crate::resolve::ldso::CacheSource`), and the build writes the tree's own
//!   cache, so nothing is needed.
//! - `update-ca-certificates` when `ca-certificates` is in the set:
//!   `etc/ssl/certs/ca-certificates.crt` is the concatenation of the
//!   certificates `etc/ca-certificates.conf` selects (lines not starting
//!   with `#` or `!`, relative to `usr/share/ca-certificates`), each
//!   certificate also linked as `etc/ssl/certs/NAME.pem`. The package's
//!   `postinst` writes that conf from debconf, whose default trusts every
//!   certificate shipped; without the file, all are taken, sorted. Then
//!   what `openssl rehash` adds: a `HASH.N` link to each `NAME.pem`
//!   (`subject_hash.rs`), for programs that look certificates up by
//!   directory, as OpenSSL's default `CApath` does.
//! - anything else a `preinst` or `postinst` runs, and every trigger a
//!   package declares other than `ldconfig`, is a [`NotReproduced`].

use std::collections::BTreeMap;
use std::fmt;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use sha1::{Digest, Sha1};

use super::status;
use super::unpack::{Generated, Installed, epoch, write_generated};
use crate::resolve::sysroot::Sysroot;

/// Something a package's maintainer script or trigger would have done that
/// the unpacked sysroot does not have.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NotReproduced {
    pub package: String,
    /// The control member: `preinst`, `postinst` or `triggers`.
    pub script: String,
    /// The command it runs (`adduser`, `systemctl`, ...), or the trigger.
    pub what: String,
}

impl fmt::Display for NotReproduced {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.package, self.script, self.what)
    }
}

/// One `update-alternatives --install` call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Alternative {
    pub link: PathBuf,
    pub name: String,
    pub path: PathBuf,
    pub priority: i64,
    /// `(link, name, path)` of each `--slave`.
    pub slaves: Vec<(PathBuf, String, PathBuf)>,
}

/// What a script's static reading gives: the alternatives it installs and
/// the commands it runs that are not reproduced.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reading {
    pub alternatives: Vec<Alternative>,
    pub others: Vec<String>,
}

/// Commands whose effect the sysroot has without them, or that only print
/// or test: shell keywords and builtins, and those the module reproduces.
const QUIET: &[&str] = &[
    "if",
    "then",
    "else",
    "elif",
    "fi",
    "case",
    "esac",
    "for",
    "while",
    "until",
    "do",
    "done",
    "in",
    "function",
    "return",
    "exit",
    "set",
    "echo",
    "printf",
    "test",
    "[",
    "[[",
    "]",
    "]]",
    "true",
    "false",
    "local",
    "export",
    "unset",
    "shift",
    "read",
    "break",
    "continue",
    ":",
    ".",
    "eval",
    "trap",
    "wait",
    "command",
    "{",
    "}",
    "!",
    "which",
    "type",
    "cat",
    "grep",
    "sed",
    "head",
    "tail",
    "cut",
    "tr",
    "sort",
    "uniq",
    "basename",
    "dirname",
    "readlink",
    "cmp",
    "dpkg",
    "dpkg-query",
    "ldconfig",
    "update-ca-certificates",
    "exec",
    "else:",
    "#DEBHELPER#",
    "command -v",
    "seq",
    "expr",
    "wc",
    "awk",
    "env",
];

/// Reads a script: its `update-alternatives --install` calls and the other
/// commands it runs (first words of its simple commands).
pub fn read(text: &str) -> Reading {
    let mut reading = Reading::default();
    let uncommented: String = text
        .replace("\\\n", " ")
        .lines()
        .map(|line| format!("{}\n", strip_comment(line)))
        .collect();
    let joined = blank_multiline_quotes(&uncommented);
    let functions = functions(&joined);
    let mut heredoc: Option<String> = None;
    for line in joined.lines() {
        // The body of a here-document is data, up to its delimiter.
        if let Some(end) = &heredoc {
            if line.trim() == end {
                heredoc = None;
            }
            continue;
        }
        heredoc = heredoc_delimiter(line);
        let line = strip_case_pattern(line);
        for command in line.split([';', '|', '&', '(', ')', '`']) {
            let mut words = split_words(command);
            // `then cmd`, `do cmd`, `if cmd`: the command follows the keyword.
            let keywords = ["then", "do", "else", "elif", "if", "while", "until", "!"];
            let lead = words.iter().take_while(|w| keywords.contains(&w.as_str())).count();
            words.drain(..lead);
            let Some(first) = words.first() else { continue };
            if first == "update-alternatives" {
                match install_call(&words) {
                    Some(Ok(alternative)) => reading.alternatives.push(alternative),
                    Some(Err(())) => reading
                        .others
                        .push("update-alternatives with arguments set at run time".to_string()),
                    None => {}
                }
                continue;
            }
            if is_quiet(first) || functions.contains(first) {
                continue;
            }
            // debconf's shell library (`debconf-devel(7)`): questions asked
            // and answers read, one effect however many calls.
            let what = if first.starts_with("db_") { "debconf" } else { first };
            reading.others.push(what.to_string());
        }
    }
    reading.others.sort();
    reading.others.dedup();
    reading
}

/// The text with every quoted string that spans lines or holds a command
/// separator blanked (its newlines kept): a message printed over several
/// lines, or a regular expression with `|`, is not commands.
fn blank_multiline_quotes(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut quote: Option<(char, usize)> = None;
    let mut escaped = false;
    for c in text.chars() {
        if escaped {
            out.push(c);
            escaped = false;
            continue;
        }
        // `\"` outside single quotes is no quote (`sh(1)`, "Quoting").
        if c == '\\' && !matches!(quote, Some(('\'', _))) {
            escaped = true;
            out.push(c);
            continue;
        }
        match quote {
            None => {
                if c == '"' || c == '\'' {
                    quote = Some((c, out.len()));
                }
                out.push(c);
            }
            Some((q, start)) => {
                out.push(c);
                if c == q {
                    let inner = &out[start + 1..out.len() - 1];
                    // Text that would split into commands where it is not;
                    // a command substitution in double quotes runs, though.
                    let splits = inner.contains(['\n', ';', '|', '&', '(', ')', '`']);
                    let runs = q == '"' && (inner.contains("$(") || inner.contains('`'));
                    if splits && !runs {
                        let blank: String =
                            inner.chars().map(|c| if c == '\n' { '\n' } else { ' ' }).collect();
                        out.replace_range(start + 1..out.len() - 1, &blank);
                    }
                    quote = None;
                }
            }
        }
    }
    out
}

/// The names of the shell functions a script defines (`name() {`,
/// `function name`): calls to them are not commands of their own.
fn functions(text: &str) -> std::collections::HashSet<String> {
    text.lines()
        .filter_map(|line| {
            let line = line.trim();
            let name = match line.strip_prefix("function ") {
                Some(rest) => rest.split(|c: char| !is_name_char(c)).next()?,
                None => line.split_once("()")?.0.trim(),
            };
            let plain = !name.is_empty() && name.chars().all(is_name_char);
            plain.then(|| name.to_string())
        })
        .collect()
}

/// The delimiter of a here-document a line opens (`<<EOF`, `<<-'EOF'`).
fn heredoc_delimiter(line: &str) -> Option<String> {
    let (_, rest) = line.split_once("<<")?;
    let rest = rest.strip_prefix('-').unwrap_or(rest).trim_start();
    let word = rest.split_whitespace().next()?;
    let word = word.trim_matches(|c| c == '\'' || c == '"');
    (!word.is_empty() && word.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        .then(|| word.to_string())
}

/// A line without the `pattern)` that opens a `case` branch.
fn strip_case_pattern(line: &str) -> &str {
    let trimmed = line.trim_start();
    if let Some(at) = trimmed.find(')') {
        // `a|b)`, or `a|\` continued as `a|    b)`: alternatives that are
        // single plain words.
        let pattern = &trimmed[..at];
        let plain = pattern.split('|').all(|alternative| {
            let alternative = alternative.trim();
            !alternative.is_empty()
                && !alternative.contains(['(', '$', '`', '='])
                && !alternative.contains(char::is_whitespace)
        });
        if plain {
            return &trimmed[at + 1..];
        }
    }
    line
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_'
}

fn is_quiet(word: &str) -> bool {
    QUIET.contains(&word)
        || word.contains('=')
        || word.starts_with(['$', '"', '\'', '-', '*', '/', '.', '<', '>', '#', '['])
        || word.chars().all(|c| c.is_ascii_digit())
        || !word.chars().all(|c| c.is_ascii_alphanumeric() || "-_.+".contains(c))
}

/// A line without its `#` comment (a `#` that starts a word).
fn strip_comment(line: &str) -> &str {
    let bytes = line.as_bytes();
    for (i, b) in bytes.iter().enumerate() {
        if *b == b'#' && (i == 0 || bytes[i - 1].is_ascii_whitespace()) {
            return &line[..i];
        }
    }
    line
}

/// The words of a simple command, quotes removed (no expansion).
fn split_words(command: &str) -> Vec<String> {
    command
        .split_whitespace()
        .map(|w| w.trim_matches(|c| c == '"' || c == '\'').to_string())
        .filter(|w| !w.is_empty())
        .collect()
}

/// `update-alternatives --install LINK NAME PATH PRIORITY [--slave ...]`:
/// `None` for another action (`--remove`, `--set`, `--query`), an error
/// for one whose words the shell would expand.
fn install_call(words: &[String]) -> Option<Result<Alternative, ()>> {
    let at = words.iter().position(|w| w == "--install")?;
    let rest = &words[at + 1..];
    if rest.iter().any(|w| w.contains(['$', '`', '*', '?'])) || rest.len() < 4 {
        return Some(Err(()));
    }
    let Ok(priority) = rest[3].parse::<i64>() else { return Some(Err(())) };
    let mut alternative = Alternative {
        link: PathBuf::from(&rest[0]),
        name: rest[1].clone(),
        path: PathBuf::from(&rest[2]),
        priority,
        slaves: Vec::new(),
    };
    let mut tail = rest[4..].iter();
    while let Some(word) = tail.next() {
        if word == "--slave" {
            let (Some(link), Some(name), Some(path)) = (tail.next(), tail.next(), tail.next())
            else {
                return Some(Err(()));
            };
            alternative.slaves.push((link.into(), name.clone(), path.into()));
        }
    }
    Some(Ok(alternative))
}

/// The alternative chosen for each name, as the module says.
pub fn choose(all: &[Alternative], exists: impl Fn(&Path) -> bool) -> Vec<&Alternative> {
    let mut chosen: BTreeMap<&str, &Alternative> = BTreeMap::new();
    for alternative in all.iter().filter(|a| exists(&a.path)) {
        let better = |old: &&Alternative| {
            (alternative.priority, std::cmp::Reverse(&alternative.path))
                > (old.priority, std::cmp::Reverse(&old.path))
        };
        match chosen.get(alternative.name.as_str()) {
            Some(old) if !better(old) => {}
            _ => {
                chosen.insert(&alternative.name, alternative);
            }
        }
    }
    chosen.into_values().collect()
}

/// Reproduces the scripts' effects in the root open at `root` (the folder
/// being filled, whose host path is not known yet: paths are checked
/// through `dir`, the same root as a path).
pub(crate) fn apply(root: &OwnedFd, dir: &Path, installed: &[Installed]) -> Result<()> {
    let mtime = epoch(installed);
    let sysroot = Sysroot::new(dir);
    let exists = |p: &Path| sysroot.locate(p).is_ok();
    let mut all = Vec::new();
    for package in installed {
        if let Some(text) = package.control.text("postinst") {
            all.extend(read(&text).alternatives);
        }
    }
    for alternative in choose(&all, exists) {
        let mut links = vec![(&alternative.link, &alternative.name, &alternative.path)];
        links.extend(alternative.slaves.iter().filter(|s| exists(&s.2)).map(|(l, n, p)| (l, n, p)));
        for (link, name, path) in links {
            let admin = PathBuf::from("etc/alternatives").join(name);
            write_generated(root, &admin, Generated::Symlink(path), mtime)?;
            let shipped = std::fs::symlink_metadata(sysroot.host(link))
                .is_ok_and(|m| !m.file_type().is_symlink());
            if !shipped {
                let rel = link.strip_prefix("/").unwrap_or(link);
                let target = Path::new("/etc/alternatives").join(name);
                write_generated(root, rel, Generated::Symlink(&target), mtime)?;
            }
        }
    }
    if installed.iter().any(|p| p.deb.id.name == "ca-certificates") {
        ca_bundle(root, dir, mtime)?;
    }
    Ok(())
}

const CA_SHARE: &str = "usr/share/ca-certificates";

/// `etc/ssl/certs/ca-certificates.crt` and the `NAME.pem` links, as
/// `update-ca-certificates` makes them.
fn ca_bundle(root: &OwnedFd, dir: &Path, mtime: i64) -> Result<()> {
    let share = dir.join(CA_SHARE);
    let conf = dir.join("etc/ca-certificates.conf");
    let selected: Vec<String> = match std::fs::read_to_string(&conf) {
        Ok(text) => text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with(['#', '!']))
            .map(str::to_string)
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => certificates_under(&share)?,
        Err(e) => return Err(e).with_context(|| format!("failed to read `{}`", conf.display())),
    };
    let mut bundle = Vec::new();
    // `openssl rehash` links each `.pem` of the folder, in the byte order
    // of their names, as `HASH.N`; the same certificate twice is linked
    // once (its SHA-1 fingerprint compared).
    let mut hashed: BTreeMap<String, (u32, Vec<u8>)> = BTreeMap::new();
    for name in &selected {
        let path = share.join(name);
        let mut pem =
            std::fs::read(&path).with_context(|| format!("failed to read `{}`", path.display()))?;
        if !pem.ends_with(b"\n") {
            pem.push(b'\n');
        }
        bundle.extend_from_slice(&pem);
        let hash = super::subject_hash::of_pem(&pem)
            .with_context(|| format!("reading the certificate `{}`", path.display()))?;
        hashed.insert(pem_name(name), (hash, Sha1::digest(&pem).to_vec()));
        let link = Path::new("etc/ssl/certs").join(pem_name(name));
        let target = Path::new("/").join(CA_SHARE).join(name);
        write_generated(root, &link, Generated::Symlink(&target), mtime)?;
    }
    let mut taken: BTreeMap<u32, Vec<&[u8]>> = BTreeMap::new();
    for (pem, (hash, fingerprint)) in &hashed {
        let same_hash = taken.entry(*hash).or_default();
        if same_hash.contains(&fingerprint.as_slice()) {
            continue;
        }
        let link = format!("etc/ssl/certs/{hash:08x}.{}", same_hash.len());
        same_hash.push(fingerprint);
        write_generated(root, Path::new(&link), Generated::Symlink(Path::new(pem)), mtime)?;
    }
    let file = Generated::File { bytes: &bundle, mode: 0o644 };
    write_generated(root, Path::new("etc/ssl/certs/ca-certificates.crt"), file, mtime)
}

/// The name of a certificate's link in `etc/ssl/certs`, as
/// `update-ca-certificates` spells it: the file name without `.crt`, blanks
/// and commas made `_`, parentheses `=`, then `.pem`.
fn pem_name(certificate: &str) -> String {
    let file = certificate.rsplit('/').next().unwrap_or(certificate);
    let stem = file.strip_suffix(".crt").unwrap_or(file);
    let stem: String = stem
        .chars()
        .map(|c| match c {
            ' ' | ',' => '_',
            '(' | ')' => '=',
            c => c,
        })
        .collect();
    format!("{stem}.pem")
}

/// Every `.crt` under `usr/share/ca-certificates`, relative to it, sorted.
fn certificates_under(share: &Path) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut dirs = vec![share.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).with_context(|| format!("failed to list `{}`", dir.display())),
        };
        for entry in entries {
            let path = entry.with_context(|| format!("failed to list `{}`", dir.display()))?.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "crt")
                && let Ok(rel) = path.strip_prefix(share)
            {
                out.push(rel.to_string_lossy().into_owned());
            }
        }
    }
    out.sort();
    Ok(out)
}

/// What the scripts kept in the unpacked sysroot at `dir` would have done
/// that is not reproduced, sorted.
pub fn not_reproduced(dir: &Path) -> Result<Vec<NotReproduced>> {
    let mut out = Vec::new();
    for (package, member, text) in status::kept_scripts(dir)? {
        let found = match member.as_str() {
            "preinst" | "postinst" => read(&text).others,
            "triggers" => triggers(&text),
            _ => continue,
        };
        out.extend(found.into_iter().map(|what| NotReproduced {
            package: package.clone(),
            script: member.clone(),
            what,
        }));
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// Triggers whose effect the sysroot has: `ldconfig` (see the module), and
/// ca-certificates' own, whose work is the CA bundle made here.
const REPRODUCED_TRIGGERS: &[&str] =
    &["ldconfig", "update-ca-certificates", "update-ca-certificates-fresh"];

/// The triggers a `triggers` file declares (`deb-triggers(5)`), but
/// `ldconfig`, which the build's own cache stands for.
fn triggers(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| strip_comment(l).split_whitespace().collect::<Vec<_>>())
        .filter_map(|words| match words.as_slice() {
            [directive, name, ..] if !REPRODUCED_TRIGGERS.contains(name) => {
                Some(format!("trigger {directive} {name}"))
            }
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn install_calls_are_read_with_their_slaves_and_other_commands_listed() {
        let script = "#!/bin/sh\nset -e\nif [ \"$1\" = configure ]; then\n  update-alternatives --install /usr/bin/editor editor /usr/bin/vim.basic 30 \\\n    --slave /usr/share/man/man1/editor.1.gz editor.1.gz /usr/share/man/man1/vim.1.gz\n  adduser --system foo\n  for i in vi view; do update-alternatives --install /usr/bin/$i $i /usr/bin/vim.basic 30; done\nfi\n# systemctl in a comment\ndeb-systemd-helper enable foo.service >/dev/null || true\n";
        let reading = read(script);
        assert_eq!(
            reading.alternatives,
            [Alternative {
                link: "/usr/bin/editor".into(),
                name: "editor".into(),
                path: "/usr/bin/vim.basic".into(),
                priority: 30,
                slaves: vec![(
                    "/usr/share/man/man1/editor.1.gz".into(),
                    "editor.1.gz".into(),
                    "/usr/share/man/man1/vim.1.gz".into()
                )],
            }]
        );
        assert_eq!(
            reading.others,
            ["adduser", "deb-systemd-helper", "update-alternatives with arguments set at run time"]
        );
    }

    #[test]
    fn messages_heredocs_case_patterns_and_functions_are_not_commands() {
        let script = "#!/bin/sh\n# don't be fooled\nsetup() {\n  mkdir -p /x\n}\ncase \"$1\" in\n  configure|\\\n  abort-upgrade)\n    setup\n    echo \"a message\n  such words\n\"\n    cat <<EOF\nxlockmore here\nEOF\n    grep -E -q '(^|/)(xscreensaver|xlockmore)' /proc/x\n    systemctl daemon-reload\n    ;;\nesac\n";
        assert_eq!(read(script).others, ["mkdir", "systemctl"]);
        let substitution = "x=\"$(deb-systemd-invoke restart a)\"\n";
        assert_eq!(read(substitution).others, ["deb-systemd-invoke"]);
    }

    #[test]
    fn the_highest_priority_wins_and_a_missing_path_is_never_chosen() {
        let alt = |path: &str, priority| Alternative {
            link: "/usr/bin/awk".into(),
            name: "awk".into(),
            path: path.into(),
            priority,
            slaves: Vec::new(),
        };
        let all = [alt("/usr/bin/mawk", 5), alt("/usr/bin/gawk", 10), alt("/usr/bin/nawk", 50)];
        let chosen = choose(&all, |p| p != Path::new("/usr/bin/nawk"));
        assert_eq!(chosen, [&all[1]]);
    }

    #[test]
    fn certificate_links_are_named_as_update_ca_certificates_names_them() {
        assert_eq!(pem_name("mozilla/ACCVRAIZ1.crt"), "ACCVRAIZ1.pem");
        assert_eq!(pem_name("local/My CA (test), 2.crt"), "My_CA_=test=__2.pem");
    }

    #[test]
    fn triggers_other_than_ldconfig_are_listed() {
        let text = "interest-noawait /usr/share/mime/packages\nactivate-noawait ldconfig\n";
        assert_eq!(triggers(text), ["trigger interest-noawait /usr/share/mime/packages"]);
    }
}
