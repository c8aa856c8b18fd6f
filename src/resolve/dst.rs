//! Dynamic string tokens (`$ORIGIN`, `$LIB`, `$PLATFORM`) and search path lists, expanded as the loader expands them.

use std::path::{Path, PathBuf};

use crate::resolve::ldso::LoaderConfig;

/// The tokens `_dl_dst_substitute` in glibc's `elf/dl-load.c` knows.
const TOKENS: [&str; 3] = ["ORIGIN", "PLATFORM", "LIB"];

/// Splits an `RPATH`/`RUNPATH`/`LD_LIBRARY_PATH` list into directories, as
/// `fillin_rpath` in `elf/dl-load.c` does: dynamic string tokens expanded, an
/// element whose `$ORIGIN` is unknown dropped, trailing slashes removed.
/// Empty and relative elements name the process's working directory, which a
/// static resolution cannot know; they are dropped.
pub fn expand_path_list(list: &str, origin: Option<&Path>, config: &LoaderConfig) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::new();
    for element in list.split(':') {
        let Some(expanded) = expand_dst(element, origin, config) else {
            continue;
        };
        let trimmed = expanded.trim_end_matches('/');
        let dir = if trimmed.is_empty() && expanded.starts_with('/') { "/" } else { trimmed };
        if !dir.starts_with('/') {
            continue;
        }
        let dir = PathBuf::from(dir);
        if !out.contains(&dir) {
            out.push(dir);
        }
    }
    out
}

/// Expands `$ORIGIN`, `$LIB`, `$PLATFORM` (also in `${...}` form), as
/// `_dl_dst_substitute` does. `None` when `$ORIGIN` is needed but unknown,
/// or `$PLATFORM` where the kernel passes no `AT_PLATFORM` (riscv64): the
/// loader then drops the element.
pub fn expand_dst(text: &str, origin: Option<&Path>, config: &LoaderConfig) -> Option<String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        match token(after) {
            Some((name, tail)) => {
                match name {
                    "ORIGIN" => out.push_str(origin?.to_str()?),
                    "PLATFORM" => out.push_str(config.platform.as_deref()?),
                    _ => out.push_str(&config.lib),
                }
                rest = tail;
            }
            None => {
                out.push('$');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    Some(out)
}

/// The token at the start of `after` (the text after a `$`) and the text
/// after it: `{NAME}`, or `NAME` not followed by a name character.
fn token(after: &str) -> Option<(&'static str, &str)> {
    TOKENS.into_iter().find_map(|name| {
        if let Some(tail) = after
            .strip_prefix('{')
            .and_then(|t| t.strip_prefix(name))
            .and_then(|t| t.strip_prefix('}'))
        {
            return Some((name, tail));
        }
        after
            .strip_prefix(name)
            .filter(|tail| !tail.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_'))
            .map(|tail| (name, tail))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> LoaderConfig {
        LoaderConfig {
            default_dirs: vec!["/lib".into()],
            lib: "lib/x86_64-linux-gnu".into(),
            platform: Some("haswell".into()),
            glibc_hwcaps: Vec::new(),
            subdirs: vec![String::new()],
            cache_flags: 0x303,
            cache_accepts: vec![0x303],
            cache_big_endian: false,
        }
    }

    #[test]
    fn dynamic_string_tokens_expand_like_the_loader() {
        let c = config();
        let o = Some(Path::new("/opt/app/bin"));
        assert_eq!(expand_dst("$ORIGIN/../lib", o, &c).unwrap(), "/opt/app/bin/../lib");
        assert_eq!(
            expand_dst("${ORIGIN}/x:/$LIB/$PLATFORM", o, &c).unwrap(),
            "/opt/app/bin/x:/lib/x86_64-linux-gnu/haswell"
        );
        assert_eq!(expand_dst("$ORIGINAL/$LIBS", o, &c).unwrap(), "$ORIGINAL/$LIBS");
        assert_eq!(expand_dst("$ORIGIN", None, &c), None);
        let riscv = LoaderConfig { platform: None, ..c.clone() };
        assert_eq!(expand_path_list("/a/$PLATFORM:/b", o, &riscv), [PathBuf::from("/b")]);
        assert_eq!(
            expand_path_list("$ORIGIN/a/::relative:/b/", o, &c),
            [PathBuf::from("/opt/app/bin/a"), PathBuf::from("/b")]
        );
    }
}
