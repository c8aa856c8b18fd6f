//! A kernel `smoke` boots the tree under (`[smoke] kernels`, `--kernel`): a kernel image's path, or `debian:SUITE`.

use std::path::{Path, PathBuf};

/// Where a kernel comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KernelSource {
    /// A kernel image on this machine (a `bzImage`, as `/boot/vmlinuz-*`).
    Path(PathBuf),
    /// The kernel of Debian's `linux-image-<arch>` in this suite.
    Debian { suite: String },
}

/// What a spec or `--kernel` may say.
pub const KERNEL_HELP: &str = "give a kernel image's path (such as \"/boot/vmlinuz-6.1.0-18-amd64\") or \"debian:SUITE\" (such as \"debian:bookworm\")";

impl KernelSource {
    /// `debian:SUITE`, or a path taken relative to `base`.
    pub fn parse(text: &str, base: &Path) -> anyhow::Result<KernelSource> {
        match text.strip_prefix("debian:") {
            Some(suite) if !suite.is_empty() && !suite.contains(['/', ' ']) => {
                Ok(KernelSource::Debian { suite: suite.to_string() })
            }
            Some(_) => anyhow::bail!("invalid kernel `{text}`: no suite after `debian:`"),
            None if text.is_empty() => anyhow::bail!("the kernel is empty"),
            None => Ok(KernelSource::Path(base.join(text))),
        }
    }

    /// How a report names it.
    pub fn describe(&self) -> String {
        match self {
            KernelSource::Path(path) => path.display().to_string(),
            KernelSource::Debian { suite } => format!("debian:{suite}"),
        }
    }
}
