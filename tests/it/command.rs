//! The command layer called as a library, as another project's xtask would: each command says its text through the console it is given, in the order the command line shows it, and returns its report.

use rootfs::command::{BuildOptions, PortabilityOptions, SmokeOptions, Stream, WhyOptions};
use rootfs::{Captured, Target};

/// A spec with an entry the sandbox hides, so its build warns.
const SPEC: &str = "name = \"tiny\"\ncommands = [\"cat\"]\ndirs = [\"/tmp/cache\"]\n";

#[test]
fn build_says_its_warning_and_lock_before_its_summary_and_why_answers_on_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("tiny.toml");
    std::fs::write(&spec, SPEC).unwrap();
    let target = Target::new(&spec, dir.path());
    let out = dir.path().join("tiny");

    let mut console = Captured::default();
    let options = BuildOptions { target: target.clone(), force: false };
    let report = rootfs::command::build(&options, &mut console).unwrap();
    assert_eq!(report.built.len(), 1);
    let built = &report.built[0];
    let portability = built.manifest.portability.as_ref().expect("a portability report");
    let said: Vec<(Stream, String)> = vec![
        (
            Stream::Err,
            "warning: `/tmp/cache` lie under /tmp, which the sandbox covers with its own filesystem: \
             commands inside do not see them; put them elsewhere (a `[[files]]` dest, or a program \
             outside /tmp)\n"
                .to_string(),
        ),
        (Stream::Err, format!("wrote the lock `{}`\n", dir.path().join("tiny.lock").display())),
        (Stream::Out, format!("{}\n", built.summary())),
        (Stream::Out, format!("{}\n", portability.summary())),
    ];
    assert_eq!(console.said, said);
    assert!(built.summary().starts_with(&format!("built {}: ", out.display())));

    // Again: nothing to build, so the notes before the answer are the
    // build's warning (kept in the stamp's tree) and its summary, on stderr.
    let mut console = Captured::default();
    let options = PortabilityOptions { target: target.clone(), json: false };
    let needs = rootfs::command::portability(&options, &mut console).unwrap();
    let streams: Vec<Stream> = console.said.iter().map(|(stream, _)| *stream).collect();
    let first_out = streams.iter().position(|s| *s == Stream::Out).unwrap();
    assert!(streams[..first_out].iter().all(|s| *s == Stream::Err), "{:?}", console.said);
    assert!(console.said[first_out - 1].1.contains(" is up to date ("), "{:?}", console.said);
    assert_eq!(console.text(Stream::Out), format!("{}\n{}", needs.summary(), needs.render(10)));

    let mut console = Captured::default();
    let options = WhyOptions { target, path: "/tmp/cache".into() };
    let text = rootfs::command::why(&options, &mut console).unwrap();
    assert_eq!(console.said, vec![(Stream::Out, text.clone())]);
    assert!(text.contains("/tmp/cache"), "{text}");
}

#[test]
fn smoke_says_the_build_before_the_table_and_counts_what_failed() {
    if !crate::support::can_enter() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("tiny.toml");
    std::fs::write(&spec, "name = \"tiny\"\ncommands = [\"cat\", \"ls\"]\n").unwrap();
    let mut options = SmokeOptions::new(Target::new(&spec, dir.path()));
    options.jobs = Some(2);
    let mut console = Captured::default();
    let report = rootfs::command::smoke(&options, &mut console).unwrap();
    assert_eq!(report.failed(), 0, "{:?}", console.said);
    let smoked = &report.smoked[0];
    // The build's summary on stderr, then how the reference runs, then the
    // table alone on stdout, as `cargo xtask rootfs smoke` shows them.
    let (last, notes) = console.said.split_last().unwrap();
    assert_eq!(*last, (Stream::Out, smoked.report.table()));
    assert!(notes.iter().all(|(stream, _)| *stream == Stream::Err), "{notes:?}");
    let built = format!("built {}: ", dir.path().join("tiny").display());
    let first_built = notes.iter().position(|(_, text)| text.starts_with(&built)).unwrap();
    let note_at = |text: &str| notes.iter().position(|(_, said)| said == &format!("{text}\n"));
    assert!(!smoked.notes.is_empty(), "the reference's note");
    for note in &smoked.notes {
        assert!(note_at(note).unwrap() > first_built, "{note}: {notes:?}");
    }
}
