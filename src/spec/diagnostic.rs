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

    pub fn file(&self) -> &Path {
        &self.source.path
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
    pub label: Option<String>,
    pub help: Option<String>,
}

impl SpecError {
    pub fn at(at: &Location, message: impl Into<String>) -> SpecError {
        SpecError {
            message: message.into(),
            at: Some(at.clone()),
            file: None,
            label: None,
            help: None,
        }
    }

    pub fn in_file(file: &Path, message: impl Into<String>) -> SpecError {
        SpecError {
            message: message.into(),
            at: None,
            file: Some(file.to_path_buf()),
            label: None,
            help: None,
        }
    }

    pub fn label(mut self, label: impl Into<String>) -> SpecError {
        self.label = Some(label.into());
        self
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
            let mut annotation = AnnotationKind::Primary.span(span);
            if let Some(label) = &self.label {
                annotation = annotation.label(label);
            }
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
