//! Errors that point into a spec file: the file, line and column, the offending text underlined, and the fix.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use annotate_snippets::{AnnotationKind, Group, Level, Renderer, Snippet};

/// A spec file as read, kept to point into it later.
#[derive(Debug)]
pub struct Source {
    /// The path as the user would recognise it (as given, or relative to
    /// the including spec).
    pub path: PathBuf,
    /// The path relative to the top spec's folder, the same wherever the
    /// checkout is and however the spec was named: used in the manifest.
    pub name: PathBuf,
    pub text: String,
}

/// A place in a spec file.
#[derive(Clone, Debug)]
pub struct Location {
    pub source: Arc<Source>,
    pub span: Range<usize>,
}

impl Location {
    /// 1-based line and column of the start of the span.
    pub fn line_column(&self) -> (usize, usize) {
        let before = &self.source.text[..self.span.start.min(self.source.text.len())];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        (line, column)
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (line, column) = self.line_column();
        write!(f, "{}:{line}:{column}", self.source.path.display())
    }
}

/// A mistake in a spec, with where it is and how to fix it. Displayed as a
/// rustc-style report; its exit status is 2.
#[derive(Debug)]
pub struct SpecError {
    pub message: String,
    pub at: Option<Location>,
    /// The file, when there is no span to point at (it cannot be read).
    pub file: Option<PathBuf>,
    pub help: Option<String>,
}

impl SpecError {
    pub fn at(at: &Location, message: impl Into<String>) -> SpecError {
        SpecError { message: message.into(), at: Some(at.clone()), file: None, help: None }
    }

    pub fn in_file(file: &Path, message: impl Into<String>) -> SpecError {
        SpecError { message: message.into(), at: None, file: Some(file.to_path_buf()), help: None }
    }

    pub fn help(mut self, help: impl Into<String>) -> SpecError {
        self.help = Some(help.into());
        self
    }

    /// The report as plain text (no colours), starting with `error: `.
    pub fn render(&self) -> String {
        let title = match (&self.at, &self.file) {
            (None, Some(file)) => format!("{}: {}", file.display(), self.message),
            _ => self.message.clone(),
        };
        let mut report = Vec::new();
        if let Some(at) = &self.at {
            let text = &at.source.text;
            let mut span = at.span.start.min(text.len())..at.span.end.min(text.len());
            if span.is_empty() && span.end < text.len() {
                span.end += 1;
            }
            let path = at.source.path.display().to_string();
            let annotation = AnnotationKind::Primary.span(span);
            report.push(Level::ERROR.primary_title(&title).element(
                Snippet::source(text.as_str()).line_start(1).path(path).annotation(annotation),
            ));
        } else {
            // Without a snippet there is nothing to draw a gutter for.
            let mut text = format!("error: {title}");
            if let Some(help) = &self.help {
                text.push_str(&format!("\nhelp: {help}"));
            }
            return text;
        }
        if let Some(help) = &self.help {
            report.push(Group::with_title(Level::HELP.secondary_title(help)));
        }
        Renderer::plain().render(&report).to_string()
    }
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // One line for error chains and logs; `render` gives the full report.
        match (&self.at, &self.file) {
            (Some(at), _) => write!(f, "{at}: {}", self.message),
            (None, Some(file)) => write!(f, "{}: {}", file.display(), self.message),
            (None, None) => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for SpecError {}

/// A TOML or type error from the parser, in the words of the spec: Rust
/// type names replaced, and help that fits the kind of mistake.
pub(super) fn toml_error(e: &toml::de::Error, at: Location) -> SpecError {
    let message = e
        .message()
        .trim_end_matches('\n')
        .replace("expected f64", "expected a number of seconds")
        .replace("expected u32", "expected a whole number from 0 to 4294967295")
        .replace("expected i32", "expected a whole number");
    let line =
        at.source.text[at.span.start.min(at.source.text.len())..].lines().next().unwrap_or("");
    let line_start =
        at.source.text[..at.span.start.min(at.source.text.len())].rsplit('\n').next().unwrap_or("");
    let key = format!("{line_start}{line}");
    let key = key.trim_start();
    let help = if key.starts_with("mode") {
        "write the mode in octal, as a string: mode = \"0644\""
    } else if key.starts_with("timeout") {
        "write a number of seconds: timeout = 10"
    } else if message.contains("unknown field")
        || message.contains("missing field")
        || message.contains("invalid type")
    {
        "see rootfs-spec/README.md for every key and its type"
    } else {
        "this is not valid TOML; see https://toml.io for the syntax"
    };
    SpecError::at(&at, message).help(help)
}
