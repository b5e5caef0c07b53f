//! `cargo xtask setup`: bring a fresh machine to the point where the workspace
//! builds and the kernel tests run. Every step checks first and only acts
//! when something is missing, so a second run takes well under a second.
//!
//! Checks are quiet; actions print their command before running it. Each item
//! ends as one line: `ok`, `installed`, or `missing` with what to do (when the
//! fix needs root and we are not root).

mod bench;
mod bpf_linker;
mod bpffs;
pub mod deb;
mod ha;
mod ops;
mod pac;
mod packages;
mod prometheus;
mod toolchain;

use std::fmt;

use anyhow::Result;

/// What a set-up step found or did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Already present; optionally with a detail such as a version.
    Ok(Option<String>),
    /// Was missing and has been installed (or mounted) now.
    Installed(Option<String>),
    /// Missing, and we could not fix it; the text says how to.
    Missing(String),
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (word, detail) = match self {
            Self::Ok(detail) => ("ok", detail.as_deref()),
            Self::Installed(detail) => ("installed", detail.as_deref()),
            Self::Missing(hint) => ("missing", Some(hint.as_str())),
        };
        match detail {
            Some(detail) => write!(f, "{word} ({detail})"),
            None => f.write_str(word),
        }
    }
}

/// Runs every set-up step, printing one line per item.
pub fn run() -> Result<()> {
    let root = is_root();
    let mut missing = 0;
    let mut report = |item: &str, status: Status| {
        missing += usize::from(matches!(status, Status::Missing(_)));
        println!("{item:<22} {status}");
    };
    report("nightly toolchain", toolchain::nightly()?);
    report("rust-src (nightly)", toolchain::rust_src()?);
    report("bpf-linker", bpf_linker::ensure()?);
    for (item, status) in packages::ensure(root)? {
        report(&item, status);
    }
    report("python3-pacparser", pac::ensure(root)?);
    bench::ensure(root)?
        .into_iter()
        .for_each(|(item, status)| report(&item, status));
    report("curl", ops::ensure(root)?);
    deb::ensure(root)?
        .into_iter()
        .for_each(|(item, status)| report(&item, status));
    ha::ensure(root)?
        .into_iter()
        .for_each(|(item, status)| report(&item, status));
    prometheus::ensure(root)?
        .into_iter()
        .for_each(|(item, status)| report(&item, status));
    report("bpffs /sys/fs/bpf", bpffs::ensure(root)?);
    if missing > 0 {
        eprintln!(
            "warning: {missing} item(s) need root to fix; builds work, but kernel tests will be \
             skipped (or fail when CI=true) until they are fixed"
        );
    }
    Ok(())
}

/// Whether we run as root (effective uid 0).
fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions, touches no memory and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines() {
        assert_eq!(Status::Ok(None).to_string(), "ok");
        assert_eq!(Status::Ok(Some("v1".into())).to_string(), "ok (v1)");
        assert_eq!(Status::Installed(None).to_string(), "installed");
        assert_eq!(
            Status::Missing("run x".into()).to_string(),
            "missing (run x)"
        );
    }
}
