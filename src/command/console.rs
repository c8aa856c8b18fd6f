//! Where a command's text goes: the [`Console`] every command is given (as cargo's `Shell`), the [`Terminal`] that prints it, and the [`Captured`] text a test reads back in order.

/// The sink of a command's text: the standard output (what the command
/// answers: tables, summaries, reports) and the standard error (notes for
/// people: how a sysroot was prepared, warnings, what changed in a lock).
/// A command writes nothing anywhere else; a build's progress bars are
/// drawn only when its options ask for them.
pub trait Console {
    /// `text` for the standard output, as it is.
    fn out(&mut self, text: &str);
    /// `text` for the standard error, as it is.
    fn err(&mut self, text: &str);
    /// One line for the standard output.
    fn line(&mut self, line: &str) {
        self.out(&format!("{line}\n"));
    }
    /// One line for people, on the standard error.
    fn note(&mut self, line: &str) {
        self.err(&format!("{line}\n"));
    }
}

/// The process's own standard output and error, as the command line uses
/// them.
#[derive(Clone, Copy, Debug, Default)]
pub struct Terminal;

impl Console for Terminal {
    fn out(&mut self, text: &str) {
        print!("{text}");
    }

    fn err(&mut self, text: &str) {
        eprint!("{text}");
    }
}

/// Which stream a piece of text was for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Out,
    Err,
}

/// Everything a command said, in the order it said it.
#[derive(Clone, Debug, Default)]
pub struct Captured {
    pub said: Vec<(Stream, String)>,
}

impl Captured {
    /// All the text said on `stream`, joined.
    pub fn text(&self, stream: Stream) -> String {
        self.said.iter().filter(|(s, _)| *s == stream).map(|(_, text)| text.as_str()).collect()
    }
}

impl Console for Captured {
    fn out(&mut self, text: &str) {
        self.said.push((Stream::Out, text.to_string()));
    }

    fn err(&mut self, text: &str) {
        self.said.push((Stream::Err, text.to_string()));
    }
}
