//! `cargo xtask deb`: the Debian package `gotofw_<version>_<arch>.deb`, made with cargo-deb.
//!
//! The package's contents are `[package.metadata.deb]` in filter-user/Cargo.toml. This command
//! builds the release binary, stages what the binary generates (its man pages, gzipped, and its
//! bash, zsh and fish completions) under `target/release/gotofw-deb/`, where those asset paths
//! point, runs `cargo deb --no-build`, adds the `md5sums` file cargo-deb leaves out, and runs
//! lintian on the package, which must report no error. The package's path is the last line on
//! standard output.

use std::{
    env,
    ffi::OsString,
    fs,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result, bail};

use crate::{exec, paths, setup, test::GOTOFW_BIN};

/// The staging directory under `target/release/` (the asset paths in filter-user/Cargo.toml
/// name it).
const STAGING: &str = "gotofw-deb";

/// The manual section of the pages, and the `usr/share/man/man8/` the assets put them in.
const MAN_SECTION: &str = "8";

/// Each shell, and the file name its completion script is staged (and installed) under.
const COMPLETIONS: [(&str, &str); 3] = [
    ("bash", "gotofw"),
    ("zsh", "_gotofw"),
    ("fish", "gotofw.fish"),
];

/// Files other parts of the project ship that the package installs: cargo-deb's own message
/// for a missing one is long, so they are checked first.
const SHIPPED: [&str; 5] = [
    "packaging/gotofw.toml",
    "packaging/gotofw.service",
    "packaging/prometheus/gotofw.rules.yml",
    "packaging/prometheus/gotofw.rules.test.yml",
    "packaging/grafana/gotofw-dashboard.json",
];

/// Runs set-up, builds gotofw, stages its generated files, makes the package, runs lintian
/// and prints the package's path.
pub fn run() -> Result<()> {
    setup::run()?;
    let root = paths::workspace_root();
    for file in SHIPPED {
        if !root.join(file).is_file() {
            bail!("{file} is missing: the package installs it; restore it (git status) first");
        }
    }
    if env::var_os(GOTOFW_BIN).is_some_and(|bin| !bin.is_empty()) {
        eprintln!("note: {GOTOFW_BIN} is not used: the package holds this tree's release build");
    }
    let target = target_dir(
        root,
        env::var_os("CARGO_TARGET_DIR").or_else(|| env::var_os("CARGO_BUILD_TARGET_DIR")),
    );
    exec::run(exec::cargo().args(["build", "--release", "-p", "filter-user", "--bin", "gotofw"]))
        .context("building gotofw failed; see the compiler output above")?;
    let gotofw = target.join("release").join("gotofw");
    if !gotofw.is_file() {
        bail!(
            "cargo built gotofw, but it is not at {}: is the target directory elsewhere?",
            gotofw.display()
        );
    }
    let staging = target.join("release").join(STAGING);
    stage(&gotofw, &staging)?;

    let arch = exec::stdout(exec::command("dpkg").arg("--print-architecture"))
        .context("`dpkg --print-architecture` failed; is this a Debian system?")?;
    let deb = target
        .join("debian")
        .join(package_file_name(env!("CARGO_PKG_VERSION"), arch.trim()));
    exec::run(
        exec::cargo()
            .args(["deb", "-p", "filter-user", "--no-build", "--output"])
            .arg(&deb),
    )
    .context("cargo deb failed; see its output above")?;
    if !deb.is_file() {
        bail!("cargo deb succeeded but wrote no {}", deb.display());
    }
    add_md5sums(&deb, &target.join("debian").join("gotofw-md5sums"))?;
    // --fail-on error: warnings are shown (and worth fixing) but only an error fails.
    exec::run(
        exec::command("lintian")
            .args([
                "--fail-on",
                "error",
                "--display-info",
                "--tag-display-limit",
                "0",
            ])
            .arg(&deb),
    )
    .context("lintian reports errors in the package (the E: lines above)")?;
    eprintln!("lintian: no error");
    println!("{}", deb.display());
    Ok(())
}

/// Adds the `md5sums` control file cargo-deb does not write (`dpkg --verify gotofw` checks the
/// installed files against it): unpacks `deb` into `work`, lists the digest of every file but
/// the conffiles (dpkg keeps theirs in its database), and packs it again as root:root.
fn add_md5sums(deb: &Path, work: &Path) -> Result<()> {
    if work.exists() {
        fs::remove_dir_all(work)
            .with_context(|| format!("removing the old {} failed", work.display()))?;
    }
    exec::run(exec::command("dpkg-deb").arg("-R").arg(deb).arg(work))
        .context("unpacking the package failed")?;
    let control = work.join("DEBIAN");
    let conffiles = fs::read_to_string(control.join("conffiles")).unwrap_or_default();
    let mut files = Vec::new();
    collect_files(work, Path::new(""), &mut files)?;
    files.retain(|file| {
        !file.starts_with("DEBIAN")
            && !conffiles
                .lines()
                .any(|conffile| Path::new(conffile.trim_start_matches('/')) == file.as_path())
    });
    files.sort();
    if files.is_empty() {
        bail!("{}: the package holds no file", deb.display());
    }
    // Run in the unpacked tree, md5sum prints `DIGEST  usr/sbin/gotofw`: md5sums' format.
    let sums = exec::stdout(exec::command("md5sum").args(&files).current_dir(work))
        .context("md5sum over the package's files failed")?;
    fs::write(control.join("md5sums"), sums)
        .with_context(|| format!("writing {} failed", control.join("md5sums").display()))?;
    exec::run(
        exec::command("dpkg-deb")
            .args(["--root-owner-group", "-Zxz", "--build"])
            .arg(work)
            .arg(deb),
    )
    .context("packing the package with its md5sums failed")?;
    fs::remove_dir_all(work).with_context(|| format!("removing {} failed", work.display()))?;
    Ok(())
}

/// Every regular file under `root/rel`, as a path relative to `root`.
fn collect_files(root: &Path, rel: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let dir = root.join(rel);
    for entry in fs::read_dir(&dir).with_context(|| format!("listing {} failed", dir.display()))? {
        let entry = entry.with_context(|| format!("listing {} failed", dir.display()))?;
        let kind = entry.file_type()?;
        let path = rel.join(entry.file_name());
        if kind.is_dir() {
            collect_files(root, &path, out)?;
        } else if kind.is_file() {
            out.push(path);
        }
    }
    Ok(())
}

/// Cargo's target directory: `target_dir` (relative to `root` unless absolute), else
/// `root/target`.
fn target_dir(root: &Path, target_dir: Option<OsString>) -> PathBuf {
    target_dir
        .filter(|dir| !dir.is_empty())
        .map_or_else(|| root.join("target"), |dir| root.join(dir))
}

/// `gotofw_0.1.0_amd64.deb`: a native package, so no Debian revision.
fn package_file_name(version: &str, arch: &str) -> String {
    format!("gotofw_{version}_{arch}.deb")
}

/// Writes `staging/man/*.8.gz` and `staging/completions/*` from `gotofw`, replacing what an
/// earlier run left.
fn stage(gotofw: &Path, staging: &Path) -> Result<()> {
    if staging.exists() {
        fs::remove_dir_all(staging)
            .with_context(|| format!("removing the old {} failed", staging.display()))?;
    }
    let roff = staging.join("roff");
    exec::run(exec::command(gotofw).arg("man").arg("--out").arg(&roff))
        .context("`gotofw man` failed; see the output above")?;
    let man = staging.join("man");
    fs::create_dir_all(&man).with_context(|| format!("creating {} failed", man.display()))?;
    let mut pages = fs::read_dir(&roff)
        .with_context(|| format!("listing {} failed", roff.display()))?
        .map(|entry| entry.map(|entry| entry.path()))
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("listing {} failed", roff.display()))?;
    pages.sort();
    if pages.is_empty() {
        bail!("`gotofw man` wrote no page into {}", roff.display());
    }
    for page in &pages {
        let name = page
            .file_name()
            .and_then(|name| name.to_str())
            .with_context(|| format!("{}: not a UTF-8 file name", page.display()))?;
        if page.extension().and_then(|ext| ext.to_str()) != Some(MAN_SECTION) {
            bail!(
                "`gotofw man` wrote {name}, not a section {MAN_SECTION} page: the package puts \
                 every page in usr/share/man/man{MAN_SECTION}"
            );
        }
        // -n: no name or time stamp in the gzip header, so the same page packs the same.
        let gz = exec::probe(exec::command("gzip").args(["-9", "-n", "-c"]).arg(page))?;
        if !gz.status.success() {
            bail!("gzip {} failed ({})", page.display(), gz.status);
        }
        let out = man.join(format!("{name}.gz"));
        fs::write(&out, gz.stdout).with_context(|| format!("writing {} failed", out.display()))?;
    }
    let completions = staging.join("completions");
    fs::create_dir_all(&completions)
        .with_context(|| format!("creating {} failed", completions.display()))?;
    for (shell, file) in COMPLETIONS {
        let script = exec::stdout(exec::command(gotofw).args(["completions", shell]))
            .with_context(|| format!("`gotofw completions {shell}` failed"))?;
        let out = completions.join(file);
        fs::write(&out, script).with_context(|| format!("writing {} failed", out.display()))?;
    }
    eprintln!(
        "staged {} man pages and {} completion scripts in {}",
        pages.len(),
        COMPLETIONS.len(),
        staging.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_dir_follows_cargo() {
        let root = Path::new("/src/gotofw");
        assert_eq!(target_dir(root, None), Path::new("/src/gotofw/target"));
        assert_eq!(
            target_dir(root, Some("".into())),
            Path::new("/src/gotofw/target")
        );
        assert_eq!(target_dir(root, Some("/tmp/t".into())), Path::new("/tmp/t"));
    }

    #[test]
    fn the_file_name_has_no_debian_revision() {
        assert_eq!(
            package_file_name("0.1.0", "amd64"),
            "gotofw_0.1.0_amd64.deb"
        );
    }

    /// The staging paths and the man section here are the ones filter-user/Cargo.toml's
    /// assets name.
    #[test]
    fn the_manifest_names_the_staged_files() {
        let manifest =
            fs::read_to_string(paths::workspace_root().join("filter-user/Cargo.toml")).unwrap();
        let staged = format!("\"target/release/{STAGING}/");
        assert!(manifest.contains(&format!(
            "{staged}man/*\", \"usr/share/man/man{MAN_SECTION}/\""
        )));
        for (_, file) in COMPLETIONS {
            assert!(
                manifest.contains(&format!("{staged}completions/{file}\"")),
                "{file}"
            );
        }
        for file in SHIPPED {
            let file = file.strip_prefix("packaging/").unwrap();
            assert!(
                file == "gotofw.service" || manifest.contains(&format!("\"../packaging/{file}\"")),
                "{file}"
            );
        }
    }
}
