//! The nightly toolchain and its `rust-src` component, which building the
//! eBPF crate (`-Z build-std=core` for `bpfel-unknown-none`) needs.

use anyhow::{Context, Result, bail};

use super::Status;
use crate::exec;

/// Checks that rustup has a `nightly` toolchain; it cannot be downloaded here,
/// so a missing one is an error that says how to get it.
pub fn nightly() -> Result<Status> {
    let list = exec::stdout(exec::command("rustup").args(["toolchain", "list"]))
        .context("listing rustup toolchains failed; gotofw needs rustup (https://rustup.rs)")?;
    if has_nightly(&list) {
        return Ok(Status::Ok(None));
    }
    bail!(
        "rustup has no `nightly` toolchain (the eBPF crate needs it); install it with \
         `rustup toolchain install nightly --component rust-src` on a machine with access \
         to static.rust-lang.org"
    )
}

/// Checks that nightly has `rust-src`, adding it otherwise.
pub fn rust_src() -> Result<Status> {
    let installed = exec::stdout(exec::command("rustup").args([
        "component",
        "list",
        "--toolchain",
        "nightly",
        "--installed",
    ]))
    .context("listing the nightly toolchain's components failed")?;
    if installed
        .lines()
        .any(|line| line.trim().starts_with("rust-src"))
    {
        return Ok(Status::Ok(None));
    }
    exec::run(exec::command("rustup").args([
        "component",
        "add",
        "rust-src",
        "--toolchain",
        "nightly",
    ]))
    .context("adding rust-src to nightly failed; it needs access to static.rust-lang.org")?;
    Ok(Status::Installed(None))
}

/// Whether `rustup toolchain list` output names the toolchain that `+nightly`
/// selects (`nightly-<host>`, not a dated `nightly-YYYY-MM-DD-<host>`).
fn has_nightly(list: &str) -> bool {
    list.lines()
        .filter_map(|line| line.split_whitespace().next())
        .any(|name| match name.strip_prefix("nightly") {
            Some("") => true,
            Some(rest) => rest
                .strip_prefix('-')
                .is_some_and(|host| !host.starts_with(|c: char| c.is_ascii_digit())),
            None => false,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_undated_nightly() {
        let list = "stable-x86_64-unknown-linux-gnu (active, default)\n\
                    nightly-x86_64-unknown-linux-gnu\n1.95.0-x86_64-unknown-linux-gnu\n";
        assert!(has_nightly(list));
    }

    #[test]
    fn dated_nightly_is_not_nightly() {
        let list = "stable-x86_64-unknown-linux-gnu (default)\n\
                    nightly-2025-01-01-x86_64-unknown-linux-gnu\n";
        assert!(!has_nightly(list));
        assert!(!has_nightly("no installed toolchains\n"));
    }
}
