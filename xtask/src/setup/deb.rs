//! What `cargo xtask deb` and the package test (`tests/tests/package.rs`) need: cargo-deb at a
//! pinned version (from crates.io, `cargo install --locked`), and the Debian tools it and the
//! test run: dpkg-shlibdeps (the package's `Depends`), strip, gzip (the man pages), md5sum
//! (the package's md5sums), lintian,
//! man (the test renders a page), bash (the test sources the completion script) and
//! systemd-analyze (the test verifies the installed unit). The Debian packages are installed
//! only when their command is missing.

use anyhow::{Context, Result, bail};

use super::Status;
use crate::{exec, paths};

/// The cargo-deb release `cargo xtask deb` is written against (its `[package.metadata.deb]`
/// keys, `--no-build`, `target/release/` asset paths). 3.8.0 needs rustc 1.85 or later.
pub const CARGO_DEB_VERSION: &str = "3.8.0";

/// Each command, and the Debian package that provides it.
const PACKAGES: [(&str, &str); 8] = [
    ("dpkg-shlibdeps", "dpkg-dev"),
    ("strip", "binutils"),
    ("gzip", "gzip"),
    ("md5sum", "coreutils"),
    ("lintian", "lintian"),
    ("man", "man-db"),
    ("bash", "bash"),
    ("systemd-analyze", "systemd"),
];

/// Checks the Debian tools (installing the missing ones when root) and cargo-deb (installing
/// the pinned version when it is missing or another one). Returns one (item, status) each.
pub fn ensure(root: bool) -> Result<Vec<(String, Status)>> {
    let mut lines = super::packages::ensure_commands(root, &PACKAGES)?;
    lines.push(("cargo-deb".to_owned(), ensure_cargo_deb()?));
    Ok(lines)
}

/// The version `cargo-deb --version` reports (`cargo-deb 3.8.0`), if it runs.
fn cargo_deb_version() -> Option<String> {
    let path = paths::find("cargo-deb")?;
    let output = exec::probe(exec::command(path).arg("--version")).ok()?;
    if !output.status.success() {
        return None;
    }
    parse_version(&String::from_utf8_lossy(&output.stdout))
}

/// `3.8.0` from `cargo-deb 3.8.0`.
fn parse_version(text: &str) -> Option<String> {
    let line = text.lines().next()?.trim();
    let version = line.strip_prefix("cargo-deb ")?.trim();
    (!version.is_empty()).then(|| version.to_owned())
}

fn ensure_cargo_deb() -> Result<Status> {
    let found = cargo_deb_version();
    if found.as_deref() == Some(CARGO_DEB_VERSION) {
        return Ok(Status::Ok(Some(CARGO_DEB_VERSION.to_owned())));
    }
    // --force replaces another version; a neutral directory keeps this workspace's
    // .cargo/config.toml out of the build.
    exec::run(
        exec::cargo()
            .args(["install", "cargo-deb", "--locked", "--force", "--version"])
            .arg(CARGO_DEB_VERSION)
            .current_dir(std::env::temp_dir()),
    )
    .context("installing cargo-deb from crates.io failed; see the cargo output above")?;
    match cargo_deb_version() {
        Some(version) if version == CARGO_DEB_VERSION => {
            let was = found.map_or_else(String::new, |old| format!(", was {old}"));
            Ok(Status::Installed(Some(format!("{version}{was}"))))
        }
        other => bail!(
            "cargo-deb {CARGO_DEB_VERSION} was installed, but `cargo-deb --version` reports \
             {other:?}: is another cargo-deb earlier on PATH?"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_version_line() {
        assert_eq!(parse_version("cargo-deb 3.8.0\n").as_deref(), Some("3.8.0"));
        assert_eq!(parse_version("cargo 1.95.0\n"), None);
        assert_eq!(parse_version(""), None);
    }
}
