//! container-structure-test files (schema versions 1.0.0 and 2.0.0): the YAML read with every key checked, each regular expression compiled, and every mistake a spec-style report at its file, line and column.
//!
//! The keys and their defaults are container-structure-test's own
//! (`pkg/types/v2/*.go`): `exitCode` 0, `shouldExist` true, `uid` and
//! `gid` unchecked unless given. Unlike it, an unknown key is an error (it
//! ignores them, so that a misspelt `expectedOuput` silently tests nothing).
//! A command is a list (1.0.0) or a string with `args` (2.0.0); both are
//! accepted under either version.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use serde::de::{self, Deserializer, SeqAccess, Visitor};

use super::{Location, Source, SpecError};

/// The schema versions container-structure-test defines.
const VERSIONS: &[&str] = &["1.0.0", "2.0.0"];

/// One structure test file, read and checked.
#[derive(Clone, Debug)]
pub struct StructureTests {
    /// The file as read, to point into it.
    pub source: Arc<Source>,
    pub global_env: Vec<EnvVar>,
    pub commands: Vec<CommandTest>,
    pub file_existence: Vec<FileExistenceTest>,
    pub file_content: Vec<FileContentTest>,
    pub metadata: Option<MetadataTest>,
    pub licenses: Vec<LicenseTest>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawFile {
    #[allow(dead_code)]
    schema_version: SchemaVersion,
    #[serde(default)]
    global_env_vars: Vec<EnvVar>,
    #[serde(default)]
    command_tests: Vec<CommandTest>,
    #[serde(default)]
    file_existence_tests: Vec<FileExistenceTest>,
    #[serde(default)]
    file_content_tests: Vec<FileContentTest>,
    metadata_test: Option<MetadataTest>,
    #[serde(default)]
    license_tests: Vec<LicenseTest>,
}

/// A `key`/`value` pair: an environment variable or a label.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EnvVar {
    pub key: String,
    #[serde(default)]
    pub value: String,
    /// `value` is a regular expression (metadata tests only).
    #[serde(default)]
    pub is_regex: bool,
}

/// `commandTests`: a command run in the tree, judged by its exit status
/// and its standard output and error, each matched as a whole.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CommandTest {
    pub name: String,
    /// Commands run before, each in a fresh container of the tree.
    #[serde(default)]
    pub setup: Vec<NonEmptyArgv>,
    #[serde(default)]
    pub teardown: Vec<NonEmptyArgv>,
    #[serde(default)]
    pub env_vars: Vec<EnvVar>,
    #[serde(default)]
    pub exit_code: i32,
    pub command: NonEmptyArgv,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub expected_output: Vec<Pattern>,
    #[serde(default)]
    pub excluded_output: Vec<Pattern>,
    #[serde(default)]
    pub expected_error: Vec<Pattern>,
    #[serde(default)]
    pub excluded_error: Vec<Pattern>,
}

impl CommandTest {
    /// The command line: `command` (a string or a list) then `args`.
    pub fn argv(&self) -> Vec<String> {
        self.command.0.iter().chain(&self.args).cloned().collect()
    }
}

/// `fileExistenceTests`: a path of the tree (its last component not
/// followed), whether it is there, its mode, owner and executable bits.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FileExistenceTest {
    pub name: String,
    pub path: String,
    #[serde(default = "yes")]
    pub should_exist: bool,
    pub permissions: Option<Permissions>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub is_executable_by: Option<ExecutableBy>,
}

fn yes() -> bool {
    true
}

/// Who `isExecutableBy` asks about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExecutableBy {
    Any,
    Owner,
    Group,
    Other,
}

/// `fileContentTests`: patterns the file's whole content must and must
/// not match.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FileContentTest {
    pub name: String,
    pub path: String,
    #[serde(default)]
    pub expected_contents: Vec<Pattern>,
    #[serde(default)]
    pub excluded_contents: Vec<Pattern>,
}

/// `metadataTest`: the image configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MetadataTest {
    #[serde(default)]
    pub env_vars: Vec<EnvVar>,
    #[serde(default)]
    pub unbound_env_vars: Vec<EnvVar>,
    #[serde(default)]
    pub exposed_ports: Vec<String>,
    #[serde(default)]
    pub unexposed_ports: Vec<String>,
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    pub workdir: Option<String>,
    #[serde(default)]
    pub volumes: Vec<String>,
    #[serde(default)]
    pub unmounted_volumes: Vec<String>,
    #[serde(default)]
    pub labels: Vec<EnvVar>,
    pub user: Option<String>,
}

/// `licenseTests`: the licenses of the tree's Debian packages and of
/// named files.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LicenseTest {
    #[serde(default)]
    pub debian: bool,
    #[serde(default)]
    pub files: Vec<String>,
}

/// A Go regular expression (RE2), compiled by the `regex` crate, whose
/// syntax is RE2's but for a few escapes (`\C`, `\Q...\E`), which it
/// refuses here rather than matching otherwise; its `\d`, `\w`, `\s` and
/// `\b` are Unicode-aware where Go's are ASCII only.
#[derive(Clone, Debug)]
pub struct Pattern(pub regex::Regex);

impl PartialEq for Pattern {
    fn eq(&self, other: &Pattern) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

impl Eq for Pattern {}

impl Pattern {
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl<'de> Deserialize<'de> for Pattern {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Pattern, D::Error> {
        let text = String::deserialize(deserializer)?;
        regex::Regex::new(&text).map(Pattern).map_err(|e| {
            de::Error::custom(format!(
                "invalid regular expression `{text}`: {}",
                e.to_string().lines().last().unwrap_or("").trim_start_matches("error: ")
            ))
        })
    }
}

/// A mode as Go's `FileMode.String()` writes it: the type letters
/// (`dalTLDpSugct?`) or `-`, then `rwx` three times.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Permissions(pub String);

impl<'de> Deserialize<'de> for Permissions {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Permissions, D::Error> {
        let text = String::deserialize(deserializer)?;
        let bits = text.len().checked_sub(9).map(|n| text.split_at(n));
        let valid = text.is_ascii()
            && bits.is_some_and(|(kind, rwx)| {
                (kind == "-"
                    || (!kind.is_empty() && kind.chars().all(|c| "dalTLDpSugct?".contains(c))))
                    && rwx.chars().zip("rwxrwxrwx".chars()).all(|(c, want)| c == want || c == '-')
            });
        if valid {
            Ok(Permissions(text))
        } else {
            Err(de::Error::custom(format!(
                "invalid permissions `{text}`: expected Go's form, such as `-rwxr-xr-x`, `drwxr-xr-x` or `Lrwxrwxrwx`"
            )))
        }
    }
}

/// A command line with at least one word: a string, or a list of strings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NonEmptyArgv(pub Vec<String>);

impl<'de> Deserialize<'de> for NonEmptyArgv {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<NonEmptyArgv, D::Error> {
        struct Argv;
        impl<'de> Visitor<'de> for Argv {
            type Value = Vec<String>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a command: a string, or a list of strings")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Vec<String>, E> {
                Ok(vec![v.to_string()])
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<String>, A::Error> {
                let mut words = Vec::new();
                while let Some(word) = seq.next_element::<String>()? {
                    words.push(word);
                }
                Ok(words)
            }
        }
        let words = deserializer.deserialize_any(Argv)?;
        if words.is_empty() || words[0].is_empty() {
            return Err(de::Error::custom("an empty command"));
        }
        Ok(NonEmptyArgv(words))
    }
}

/// `schemaVersion`: one container-structure-test defines.
struct SchemaVersion;

impl<'de> Deserialize<'de> for SchemaVersion {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<SchemaVersion, D::Error> {
        let text = String::deserialize(deserializer)?;
        if VERSIONS.contains(&text.as_str()) {
            Ok(SchemaVersion)
        } else {
            Err(de::Error::custom(format!(
                "unsupported schemaVersion `{text}`: expected one of {}",
                VERSIONS.join(", ")
            )))
        }
    }
}

/// Reads the structure test file at `path` (as the user named it).
pub fn load(path: &Path) -> Result<StructureTests, SpecError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| SpecError::in_file(path, format!("cannot read structure test file: {e}")))?;
    let name = PathBuf::from(path.file_name().unwrap_or(path.as_os_str()));
    let source = Arc::new(Source { path: path.to_path_buf(), name, text });
    parse(source)
}

/// Parses a structure test file already read.
pub fn parse(source: Arc<Source>) -> Result<StructureTests, SpecError> {
    let raw: RawFile =
        serde_yaml_ng::from_str(&source.text).map_err(|e| yaml_error(&e, &source))?;
    Ok(StructureTests {
        source,
        global_env: raw.global_env_vars,
        commands: raw.command_tests,
        file_existence: raw.file_existence_tests,
        file_content: raw.file_content_tests,
        metadata: raw.metadata_test.filter(|m| *m != MetadataTest::default()),
        licenses: raw.license_tests,
    })
}

/// A YAML or type error as a spec error at its place, without the
/// parser's own ` at line L column C`, which the report shows instead.
fn yaml_error(e: &serde_yaml_ng::Error, source: &Arc<Source>) -> SpecError {
    let text = e.to_string();
    let message = match text.rfind(" at line ") {
        Some(cut) => text[..cut].to_string(),
        None => text,
    };
    let help = if message.contains("unknown field") || message.contains("missing field") {
        "see container-structure-test's keys in README.md (Structure tests)"
    } else if message.contains("regular expression") {
        "write a Go (RE2) regular expression; a literal `(`, `[`, `.` or `\\` needs a backslash"
    } else {
        "this must be a container-structure-test file (YAML, schemaVersion \"2.0.0\")"
    };
    match e.location() {
        Some(at) => {
            // The value or key the parser stopped at, to the end of its line
            // (a key to its colon).
            let start = at.index().min(source.text.len());
            let line = source.text[start..].lines().next().unwrap_or("");
            let end = match line.find(':') {
                Some(colon) if message.contains("unknown field") => colon,
                _ => line.trim_end().len(),
            };
            let at = Location { source: source.clone(), span: start..start + end };
            SpecError::at(&at, message).help(help)
        }
        None => SpecError::in_file(&source.path, message).help(help),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_text(text: &str) -> Result<StructureTests, String> {
        let source = Arc::new(Source {
            path: PathBuf::from("t.yaml"),
            name: PathBuf::from("t.yaml"),
            text: text.to_string(),
        });
        parse(source).map_err(|e| e.to_string())
    }

    #[test]
    fn both_command_forms_and_the_defaults_are_read() {
        let tests = parse_text(
            "schemaVersion: '2.0.0'\ncommandTests:\n  - name: a\n    command: [\"/bin/x\", \"-v\"]\n  - name: b\n    command: /bin/y\n    args: [\"-q\"]\n    exitCode: 3\nfileExistenceTests:\n  - name: c\n    path: /etc\n",
        )
        .unwrap();
        assert_eq!(tests.commands[0].argv(), ["/bin/x", "-v"]);
        assert_eq!(tests.commands[0].exit_code, 0);
        assert_eq!(tests.commands[1].argv(), ["/bin/y", "-q"]);
        assert_eq!(tests.commands[1].exit_code, 3);
        assert!(tests.file_existence[0].should_exist);
        assert_eq!(tests.file_existence[0].uid, None);
        assert!(tests.metadata.is_none());
    }

    #[test]
    fn mistakes_point_at_their_line_and_column() {
        let unknown = parse_text("schemaVersion: '2.0.0'\ncommandTests:\n  - name: a\n    command: x\n    expectedOuput: ['y']\n").unwrap_err();
        assert!(
            unknown.starts_with("t.yaml:5:5: commandTests[0]: unknown field `expectedOuput`"),
            "{unknown}"
        );
        let regex = parse_text("schemaVersion: '2.0.0'\ncommandTests:\n  - name: a\n    command: x\n    expectedOutput: ['(']\n").unwrap_err();
        assert!(regex.starts_with("t.yaml:5:21: commandTests[0].expectedOutput: "), "{regex}");
        assert!(regex.contains("invalid regular expression `(`"), "{regex}");
        let mode = parse_text("schemaVersion: '2.0.0'\nfileExistenceTests:\n  - name: a\n    path: /x\n    permissions: '0755'\n").unwrap_err();
        assert!(mode.contains("invalid permissions `0755`"), "{mode}");
        let version = parse_text("schemaVersion: '3.0.0'\n").unwrap_err();
        assert!(version.contains("unsupported schemaVersion `3.0.0`"), "{version}");
        let empty =
            parse_text("schemaVersion: '1.0.0'\ncommandTests:\n  - name: a\n    command: []\n")
                .unwrap_err();
        assert!(empty.contains("an empty command"), "{empty}");
    }
}
