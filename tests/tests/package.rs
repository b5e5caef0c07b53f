//! The Debian package (root only): `cargo xtask deb` makes it (lintian must report no error),
//! `dpkg -i` installs it on this machine, the installed files work, and `dpkg --purge` leaves
//! nothing behind.
//!
//! The package under test is `GOTOFW_DEB` when set (a package built before, or a broken one to
//! see this test fail), else the one `cargo xtask deb` builds from this tree (about 30 s when
//! the release binary is built already, as under `cargo xtask test`).
//!
//! It installs into the real file system, so it refuses to run where a `gotofw` package is
//! installed already (it would replace and then purge it), except in CI (`CI=true`), and a
//! guard purges the package when the test fails half-way. Nothing is started: the package's
//! unit is installed disabled, and nothing here attaches a filter.

use std::{
    collections::BTreeSet,
    env, fs,
    path::{Path, PathBuf},
    process::{Command, Output},
    time::Instant,
};

use gotofw_tests::require_root_or_skip;

/// The Debian package's name.
const PACKAGE: &str = "gotofw";
/// A package to test instead of building one.
const DEB_ENV: &str = "GOTOFW_DEB";
/// The workspace's version, which the package and the installed binary must carry.
const VERSION: &str = env!("CARGO_PKG_VERSION");
/// Where the package installs the binary (the unit's ExecStart names it).
const BIN: &str = "/usr/sbin/gotofw";
/// The conffile: the example configuration.
const CONFFILE: &str = "/etc/gotofw/gotofw.toml";
/// Files other parts of the tree ship, and where the package puts them.
const SHIPPED: [(&str, &str); 4] = [
    ("packaging/gotofw.toml", CONFFILE),
    (
        "packaging/prometheus/gotofw.rules.yml",
        "/usr/share/gotofw/prometheus/gotofw.rules.yml",
    ),
    (
        "packaging/prometheus/gotofw.rules.test.yml",
        "/usr/share/gotofw/prometheus/gotofw.rules.test.yml",
    ),
    (
        "packaging/grafana/gotofw-dashboard.json",
        "/usr/share/gotofw/grafana/gotofw-dashboard.json",
    ),
];
/// Each completion script the package installs, and a line it must contain.
const COMPLETIONS: [(&str, &str); 3] = [
    ("/usr/share/bash-completion/completions/gotofw", "_gotofw()"),
    (
        "/usr/share/zsh/vendor-completions/_gotofw",
        "#compdef gotofw",
    ),
    (
        "/usr/share/fish/vendor_completions.d/gotofw.fish",
        "complete -c gotofw",
    ),
];

fn workspace() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate lives in the workspace")
}

/// Runs `cmd` and returns its output, whatever its exit status.
fn output(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|err| panic!("cannot run {cmd:?}: {err}"))
}

/// Runs `cmd`, which must succeed, and returns its standard output.
fn stdout(cmd: &mut Command) -> String {
    let out = output(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// dpkg's status of the package (`install ok installed`, `deinstall ok config-files`), or
/// `None` when dpkg does not know it (never installed, or purged).
fn dpkg_status() -> Option<String> {
    let out = output(Command::new("dpkg-query").args(["-W", "-f=${Status}", PACKAGE]));
    let status = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    (out.status.success() && !status.is_empty() && !status.ends_with("not-installed"))
        .then_some(status)
}

/// Purges the package on drop unless dpkg no longer knows it: a failed check leaves no
/// package behind.
struct Purge;

impl Drop for Purge {
    fn drop(&mut self) {
        if dpkg_status().is_some() {
            eprintln!("purging {PACKAGE} after a failure");
            let _ = Command::new("dpkg").args(["--purge", PACKAGE]).status();
        }
    }
}

/// The package to test: `GOTOFW_DEB`, or the one `cargo xtask deb` builds and prints.
fn package() -> PathBuf {
    if let Some(deb) = env::var_os(DEB_ENV).filter(|deb| !deb.is_empty()) {
        let deb = PathBuf::from(deb);
        assert!(deb.is_file(), "{DEB_ENV}={} is not a file", deb.display());
        return deb;
    }
    let started = Instant::now();
    let out = output(
        Command::new("cargo")
            .args(["xtask", "deb"])
            .current_dir(workspace()),
    );
    // The build's and cargo-deb's output, then lintian's and the package's path: shown with
    // the test's.
    eprintln!(
        "{}{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        out.status.success(),
        "cargo xtask deb failed ({})",
        out.status
    );
    let path = String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap_or_default()
        .trim()
        .to_owned();
    eprintln!(
        "cargo xtask deb: {path} in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let deb = PathBuf::from(path);
    assert!(deb.is_file(), "cargo xtask deb printed no package path");
    deb
}

/// The paths in the package (`dpkg-deb -c`), absolute, without `/.`.
fn contents(deb: &Path) -> Vec<PathBuf> {
    stdout(Command::new("dpkg-deb").arg("-c").arg(deb))
        .lines()
        .filter_map(|line| {
            // `drwxr-xr-x root/root 0 2026-12-01 23:30 ./usr/share/gotofw/`, or for a symbolic
            // link `... ./a -> b`.
            let name = line.split_whitespace().nth(5)?;
            let name = name.strip_prefix('.')?.trim_end_matches('/');
            (!name.is_empty()).then(|| PathBuf::from(name))
        })
        .collect()
}

/// The first `.TH` line of a gzipped man page.
fn man_header(page: &Path) -> String {
    stdout(Command::new("zcat").arg(page))
        .lines()
        .find(|line| line.starts_with(".TH "))
        .unwrap_or_default()
        .to_owned()
}

/// Every command with a man page: `gotofw` and each visible subcommand, as `gotofw-NAME`.
fn man_page_names() -> Vec<String> {
    let cmd = filter_user::cli::command();
    std::iter::once("gotofw".to_owned())
        .chain(
            cmd.get_subcommands()
                .filter(|sub| !sub.is_hide_set())
                .map(|sub| format!("gotofw-{}", sub.get_name())),
        )
        .collect()
}

/// `md5sum`'s digest of a file.
fn md5(path: &Path) -> String {
    stdout(Command::new("md5sum").arg(path))
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn the_package_installs_works_and_purges_without_a_trace() {
    if !require_root_or_skip("the_package_installs_works_and_purges_without_a_trace") {
        return;
    }
    if let Some(status) = dpkg_status() {
        let in_ci = env::var("CI").is_ok_and(|ci| ci == "true");
        assert!(
            in_ci,
            "a {PACKAGE} package is on this machine ({status}): this test would replace and purge \
             it; remove it first with `dpkg --purge {PACKAGE}` (CI=true runs anyway)"
        );
        eprintln!("CI: a {PACKAGE} package is installed ({status}); it is replaced, then purged");
    }
    // A purge must remove /etc/gotofw: one that no package made (a hand install, a left-over
    // of an earlier failure) would fail that check for a reason that is not the package's.
    if dpkg_status().is_none() {
        assert!(
            !Path::new("/etc/gotofw").exists(),
            "/etc/gotofw exists but no {PACKAGE} package is installed: move it away first (this \
             test checks that a purge removes it)"
        );
    }
    let deb = package();
    let started = Instant::now();

    // What the package holds, and which of its directories exist before it: those must
    // survive the purge, the others must go.
    let packaged = contents(&deb);
    assert!(!packaged.is_empty(), "{}: no contents", deb.display());
    let existed: BTreeSet<PathBuf> = packaged.iter().filter(|p| p.is_dir()).cloned().collect();

    let _purge = Purge;
    stdout(
        Command::new("dpkg")
            .arg("-i")
            .arg(&deb)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    );
    assert!(
        dpkg_status().is_some_and(|s| s == "install ok installed"),
        "{:?}",
        dpkg_status()
    );
    let listed: Vec<PathBuf> = stdout(Command::new("dpkg").args(["-L", PACKAGE]))
        .lines()
        .filter(|line| line.starts_with('/') && *line != "/.")
        .map(PathBuf::from)
        .collect();
    for path in &packaged {
        assert!(listed.contains(path), "dpkg -L does not list {path:?}");
    }
    // Every installed file is as built: dpkg checks them against the package's md5sums (it
    // would make its own at unpacking from a package without them).
    let sums = stdout(
        Command::new("dpkg-deb")
            .arg("--info")
            .arg(&deb)
            .arg("md5sums"),
    );
    assert!(
        sums.lines().any(|line| line.ends_with("  usr/sbin/gotofw")),
        "the package's md5sums do not cover the binary:\n{sums}"
    );
    let verify = stdout(Command::new("dpkg").args(["--verify", PACKAGE]));
    assert_eq!(verify, "", "dpkg --verify {PACKAGE}");

    // The binary, by its installed path, is this tree's version; so is the package.
    let version = stdout(Command::new(BIN).arg("--version"));
    assert_eq!(version.trim(), format!("gotofw {VERSION}"));
    let deb_version = stdout(Command::new("dpkg-query").args(["-W", "-f=${Version}", PACKAGE]));
    assert_eq!(deb_version, VERSION);

    // A man page for every command, of the section of the directory it is in, and `man`
    // renders one.
    for name in man_page_names() {
        let page = PathBuf::from(format!("/usr/share/man/man8/{name}.8.gz"));
        assert!(listed.contains(&page), "no man page {}", page.display());
        let header = man_header(&page);
        assert!(
            header.starts_with(&format!(".TH {name} 8 ")),
            "{}: header {header:?}",
            page.display()
        );
    }
    let page = stdout(
        Command::new("man")
            .args(["-P", "cat", "gotofw-attach"])
            .env_remove("MANPAGER")
            .env("MANWIDTH", "100"),
    );
    for needle in ["gotofw-attach", "SYNOPSIS", "--scenario", "EXAMPLES:"] {
        assert!(
            page.contains(needle),
            "{needle:?} not in `man gotofw-attach`:\n{page}"
        );
    }

    // The completion scripts, and bash sources its one and completes a command with it.
    for (path, line) in COMPLETIONS {
        let text = fs::read_to_string(path).unwrap_or_else(|err| panic!("{path}: {err}"));
        assert!(text.contains(line), "{path}: no {line:?}");
    }
    let probe = r#"
        source "$1"
        complete -p gotofw
        COMP_WORDS=(gotofw set-sc); COMP_CWORD=1; COMP_LINE="gotofw set-sc"
        COMP_POINT=${#COMP_LINE}; COMPREPLY=()
        _gotofw gotofw set-sc gotofw
        echo "replies: ${COMPREPLY[*]}"
    "#;
    let completed =
        stdout(Command::new("bash").args(["--norc", "-c", probe, "probe", COMPLETIONS[0].0]));
    assert!(completed.contains("_gotofw"), "{completed}");
    assert!(
        completed.contains("replies: set-scenario"),
        "bash did not complete `gotofw set-sc`: {completed}"
    );

    // The unit: where the package put it, verified by systemd with the installed binary, and
    // neither enabled nor started.
    let unit = listed
        .iter()
        .find(|p| p.ends_with("systemd/system/gotofw.service"))
        .expect("no gotofw.service in the package");
    let text = fs::read_to_string(unit).unwrap();
    let exec_start = text
        .lines()
        .find_map(|line| line.strip_prefix("ExecStart="))
        .expect("no ExecStart=");
    assert_eq!(exec_start, format!("{BIN} run --config {CONFFILE}"));
    let verify = output(Command::new("systemd-analyze").arg("verify").arg(unit));
    assert!(
        verify.status.success(),
        "systemd-analyze verify {} failed:\n{}{}",
        unit.display(),
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );
    eprintln!(
        "systemd-analyze verify: passed{}",
        String::from_utf8_lossy(&verify.stderr)
    );
    assert!(
        !Path::new("/etc/systemd/system/multi-user.target.wants/gotofw.service").exists(),
        "the package enabled its unit"
    );

    // The example configuration is a conffile, as shipped, and a valid configuration.
    let conffiles = stdout(Command::new("dpkg-query").args(["-W", "-f=${Conffiles}", PACKAGE]));
    let entry: Vec<&str> = conffiles
        .lines()
        .map(str::split_whitespace)
        .find_map(|mut fields| (fields.next() == Some(CONFFILE)).then(|| fields.collect()))
        .unwrap_or_else(|| panic!("{CONFFILE} is not a conffile: {conffiles:?}"));
    assert_eq!(entry, [md5(Path::new(CONFFILE))], "{conffiles:?}");
    for (source, installed) in SHIPPED {
        let want = fs::read(workspace().join(source)).unwrap();
        let got = fs::read(installed).unwrap_or_else(|err| panic!("{installed}: {err}"));
        assert!(got == want, "{installed} is not {source}");
    }
    let dashboard = fs::read_to_string(SHIPPED[3].1).unwrap();
    serde_json::from_str::<serde_json::Value>(&dashboard).expect("the dashboard is JSON");
    stdout(Command::new(BIN).args(["check-config", "--config", CONFFILE]));
    for doc in ["copyright", "changelog.gz"] {
        let path = Path::new("/usr/share/doc/gotofw").join(doc);
        assert!(listed.contains(&path), "no {}", path.display());
    }

    // Purge: every file the package had is gone, and every directory it made.
    stdout(
        Command::new("dpkg")
            .args(["--purge", PACKAGE])
            .env("DEBIAN_FRONTEND", "noninteractive"),
    );
    assert_eq!(dpkg_status(), None, "dpkg still knows {PACKAGE}");
    let left: Vec<&PathBuf> = listed
        .iter()
        .filter(|path| !existed.contains(*path) && path.symlink_metadata().is_ok())
        .collect();
    assert!(left.is_empty(), "left after the purge: {left:?}");
    for path in ["/etc/gotofw", "/usr/share/gotofw", "/usr/share/doc/gotofw"] {
        assert!(!Path::new(path).exists(), "{path} is left after the purge");
    }
    // deb-systemd-helper's state (written by the postinst, a mask by a removal) goes too.
    for path in [
        "/var/lib/systemd/deb-systemd-helper-enabled/gotofw.service.dsh-also",
        "/var/lib/systemd/deb-systemd-helper-masked/gotofw.service",
        "/etc/systemd/system/gotofw.service",
    ] {
        assert!(
            Path::new(path).symlink_metadata().is_err(),
            "{path} is left after the purge"
        );
    }
    let info = fs::read_dir("/var/lib/dpkg/info")
        .unwrap()
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| name.starts_with("gotofw."))
        .collect::<Vec<_>>();
    assert!(info.is_empty(), "dpkg's files left: {info:?}");
    eprintln!(
        "installed, checked and purged {} paths in {:.1} s",
        listed.len(),
        started.elapsed().as_secs_f64()
    );
}
