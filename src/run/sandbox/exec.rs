//! The command line PID 1 executes, made into C strings and pointer arrays before any fork, and the `exec` itself, as `std` does it (`environ` set, then `execvp`).

use std::ffi::{CString, c_char};
use std::io;

use anyhow::{Context, Result};

/// A command line and its whole environment, ready for `execvp(3)`.
#[derive(Debug)]
pub(super) struct Exec {
    argv: Vec<CString>,
    /// Pointers into `argv`, then a null one.
    argv_ptrs: Vec<*const c_char>,
    /// Owns what `env_ptrs` points to.
    _env: Vec<CString>,
    /// Pointers into the environment (`NAME=value`), then a null one.
    env_ptrs: Vec<*const c_char>,
}

// SAFETY: the pointers point into the `CString`s this value owns, which it
// never changes; they are only read.
unsafe impl Send for Exec {}
// SAFETY: as above.
unsafe impl Sync for Exec {}

unsafe extern "C" {
    /// The process's environment (`environ(7)`).
    static mut environ: *const *const c_char;
}

impl Exec {
    pub(super) fn new(argv: &[String], env: &[(String, String)]) -> Result<Exec> {
        let c = |text: String| {
            CString::new(text).context("a NUL byte in the command line or environment")
        };
        let argv = argv.iter().map(|a| c(a.clone())).collect::<Result<Vec<_>>>()?;
        anyhow::ensure!(!argv.is_empty(), "empty command line");
        let env = env.iter().map(|(k, v)| c(format!("{k}={v}"))).collect::<Result<Vec<_>>>()?;
        let pointers = |strings: &[CString]| {
            strings.iter().map(|s| s.as_ptr()).chain(std::iter::once(std::ptr::null())).collect()
        };
        Ok(Exec { argv_ptrs: pointers(&argv), env_ptrs: pointers(&env), argv, _env: env })
    }

    /// Executes the command with its environment, the program looked up in
    /// that environment's `PATH` when its name has no slash; returns only
    /// the error when that fails. Async-signal-safe: no allocation.
    ///
    /// # Safety
    ///
    /// Only in a child about to execute: it replaces the process's
    /// `environ`.
    pub(super) unsafe fn run(&self) -> io::Error {
        // SAFETY: the arrays are null-terminated and outlive the call; the
        // caller is a child that executes or exits next.
        unsafe {
            environ = self.env_ptrs.as_ptr();
            libc::execvp(self.argv[0].as_ptr(), self.argv_ptrs.as_ptr());
        }
        io::Error::last_os_error()
    }
}
