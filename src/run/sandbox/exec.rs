//! The command line PID 1 executes, made into C strings and pointer arrays before any fork, and the `exec` itself, looking the program up in the command's own `PATH` as `execvp(3)` does, without touching the tool's environment.

use std::ffi::{CString, c_char};
use std::io;

use anyhow::{Context, Result};

/// A command line and its whole environment, ready for `execve(2)`.
#[derive(Debug)]
pub(super) struct Exec {
    /// Owns what the pointers below point to.
    _strings: Vec<CString>,
    /// The paths to try, in order: the program itself when its name holds
    /// a slash, else the name under each folder of `PATH`.
    candidates: Vec<Candidate>,
    /// Pointers to the arguments, then a null one.
    argv: Vec<*const c_char>,
    /// Pointers to `NAME=value` strings, then a null one.
    envp: Vec<*const c_char>,
}

/// One path to execute, and the command line that runs it with `/bin/sh`
/// when it is a script without `#!` (`ENOEXEC`), as `execvp(3)` does.
#[derive(Debug)]
struct Candidate {
    path: *const c_char,
    sh_argv: Vec<*const c_char>,
}

// SAFETY: the pointers point into the `CString`s this value owns, which it
// never changes; they are only read.
unsafe impl Send for Exec {}
// SAFETY: as above.
unsafe impl Sync for Exec {}

/// `PATH` when the environment has none (glibc's `_CS_PATH`).
const DEFAULT_PATH: &str = "/bin:/usr/bin";

impl Exec {
    pub(super) fn new(argv: &[String], env: &[(String, String)]) -> Result<Exec> {
        let c = |text: &str| {
            CString::new(text).context("a NUL byte in the command line or environment")
        };
        let program = argv.first().context("empty command line")?;
        let args = argv.iter().map(|a| c(a)).collect::<Result<Vec<_>>>()?;
        let vars = env.iter().map(|(k, v)| c(&format!("{k}={v}"))).collect::<Result<Vec<_>>>()?;
        let paths = if program.contains('/') {
            vec![c(program)?]
        } else {
            let path = env.iter().rev().find(|(k, _)| k == "PATH").map_or(DEFAULT_PATH, |(_, v)| v);
            let under = |dir: &str| {
                if dir.is_empty() { program.clone() } else { format!("{dir}/{program}") }
            };
            path.split(':').map(|dir| c(&under(dir))).collect::<Result<Vec<_>>>()?
        };
        let sh = c("/bin/sh")?;
        let null = std::iter::once(std::ptr::null());
        let pointers =
            |strings: &[CString]| strings.iter().map(|s| s.as_ptr()).chain(null.clone()).collect();
        let candidates = paths
            .iter()
            .map(|path| Candidate {
                path: path.as_ptr(),
                sh_argv: [sh.as_ptr(), path.as_ptr()]
                    .into_iter()
                    .chain(args[1..].iter().map(|a| a.as_ptr()))
                    .chain(null.clone())
                    .collect(),
            })
            .collect();
        let (argv, envp) = (pointers(&args), pointers(&vars));
        let strings = args.into_iter().chain(vars).chain(paths).chain([sh]).collect();
        Ok(Exec { _strings: strings, candidates, argv, envp })
    }

    /// Executes the command with its environment; returns only the error
    /// when no candidate could be executed, chosen as `execvp(3)` does: a
    /// path that exists but may not be executed is reported over one that
    /// does not exist, and an error other than those stops the search.
    /// Async-signal-safe: no allocation, and the process's own `environ` is
    /// not changed (PID 1 may share the tool's memory).
    pub(super) fn run(&self) -> io::Error {
        let mut denied = false;
        let mut last = io::Error::from_raw_os_error(libc::ENOENT);
        for candidate in &self.candidates {
            // SAFETY: null-terminated arrays of C strings this value owns.
            unsafe { libc::execve(candidate.path, self.argv.as_ptr(), self.envp.as_ptr()) };
            let error = io::Error::last_os_error();
            match error.raw_os_error().unwrap_or(0) {
                libc::ENOEXEC => {
                    // SAFETY: as above.
                    unsafe {
                        libc::execve(
                            candidate.sh_argv[0],
                            candidate.sh_argv.as_ptr(),
                            self.envp.as_ptr(),
                        )
                    };
                    return io::Error::last_os_error();
                }
                libc::EACCES => denied = true,
                libc::ENOENT | libc::ESTALE | libc::ENOTDIR | libc::ENODEV | libc::ETIMEDOUT => {}
                _ => return error,
            }
            last = error;
        }
        if denied { io::Error::from_raw_os_error(libc::EACCES) } else { last }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(pointers: &[*const c_char]) -> Vec<String> {
        pointers
            .iter()
            .take_while(|p| !p.is_null())
            // SAFETY: pointers into C strings the tested value owns.
            .map(|&p| unsafe { std::ffi::CStr::from_ptr(p) }.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn a_bare_name_is_looked_up_in_the_commands_own_path_and_scripts_go_to_sh() {
        let argv = ["ls".to_string(), "-l".to_string()];
        let env = [
            ("PATH".to_string(), "/usr/bin::/bin".to_string()),
            ("A".to_string(), "1".to_string()),
        ];
        let exec = Exec::new(&argv, &env).unwrap();
        let paths: Vec<String> =
            exec.candidates.iter().map(|c| strings(&[c.path])[0].clone()).collect();
        assert_eq!(paths, ["/usr/bin/ls", "ls", "/bin/ls"]);
        assert_eq!(strings(&exec.candidates[0].sh_argv), ["/bin/sh", "/usr/bin/ls", "-l"]);
        assert_eq!(strings(&exec.argv), ["ls", "-l"]);
        assert_eq!(strings(&exec.envp), ["PATH=/usr/bin::/bin", "A=1"]);
        let exec = Exec::new(&["./x".to_string()], &[]).unwrap();
        assert_eq!(exec.candidates.len(), 1);
        let exec = Exec::new(&["x".to_string()], &[]).unwrap();
        assert_eq!(exec.candidates.len(), 2, "{DEFAULT_PATH}");
        assert!(Exec::new(&[], &[]).is_err());
    }
}
