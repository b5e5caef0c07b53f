//! Finding the gotofw binary and running it in a lab namespace, or outside any.

use std::{
    env,
    path::{Path, PathBuf},
    process::{Command, Output},
};

use serde_json::Value;

use super::{Attached, GOTOFW_BIN_ENV};
use crate::Netns;

/// The gotofw binary the tests drive: `$GOTOFW_BIN` when set, else `gotofw`
/// next to the running executable (`target/<profile>/gotofw`; test binaries
/// live in `target/<profile>/deps/`).
///
/// # Panics
/// When that file does not exist, with the message of [`find_gotofw_bin`].
pub fn gotofw_bin() -> PathBuf {
    find_gotofw_bin().unwrap_or_else(|message| panic!("{message}"))
}

/// [`gotofw_bin`], or why there is none: a message that says how to build it.
pub fn find_gotofw_bin() -> Result<PathBuf, String> {
    const BUILD: &str =
        "build it with `cargo build --release -p filter-user`, or run `cargo xtask test`";
    if let Some(bin) = env::var_os(GOTOFW_BIN_ENV).filter(|bin| !bin.is_empty()) {
        let bin = PathBuf::from(bin);
        if !bin.is_file() {
            return Err(format!(
                "{GOTOFW_BIN_ENV}={} is not a file: {BUILD}",
                bin.display()
            ));
        }
        return Ok(bin);
    }
    let exe = env::current_exe().map_err(|err| {
        format!("cannot find the running executable ({err}); set {GOTOFW_BIN_ENV}")
    })?;
    let mut dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    if dir.file_name().is_some_and(|name| name == "deps") {
        dir.pop();
    }
    let bin = dir.join("gotofw");
    if !bin.is_file() {
        return Err(format!(
            "no gotofw binary at {}: {BUILD} (same profile as this program), or set {GOTOFW_BIN_ENV}",
            bin.display()
        ));
    }
    Ok(bin)
}

/// A gotofw binary, run inside lab namespaces.
#[derive(Clone, Debug)]
pub struct Gotofw {
    bin: PathBuf,
}

impl Default for Gotofw {
    /// The binary [`gotofw_bin`] finds.
    fn default() -> Self {
        Self::at(gotofw_bin())
    }
}

impl Gotofw {
    /// The binary at `bin`.
    pub fn at(bin: impl Into<PathBuf>) -> Self {
        Self { bin: bin.into() }
    }

    /// Its path.
    pub fn bin(&self) -> &Path {
        &self.bin
    }

    /// Runs `gotofw args` in `ns` (`nsenter --net`, so the interfaces are the
    /// namespace's and bpffs is the host's) and returns its output, whatever
    /// its exit status.
    ///
    /// # Panics
    /// When nsenter cannot be started.
    pub fn run(&self, ns: &Netns, args: &[&str]) -> Output {
        let bin = self.bin.to_str().expect("the gotofw path is UTF-8");
        ns.exec(bin, args)
            .unwrap_or_else(|err| panic!("gotofw {}: {err:#}", args.join(" ")))
    }

    /// Runs `gotofw args` in `ns` through `ip netns exec` (a private mount namespace, whose
    /// `/sys` has no bpffs) and returns its output, whatever its exit status.
    ///
    /// # Panics
    /// When `ip` cannot be started.
    pub fn run_ip_netns_exec(&self, ns: &Netns, args: &[&str]) -> Output {
        let bin = self.bin.to_str().expect("the gotofw path is UTF-8");
        ns.ip_netns_exec(bin, args)
            .unwrap_or_else(|err| panic!("gotofw {}: {err:#}", args.join(" ")))
    }

    /// Runs `gotofw args` outside any lab namespace (for commands that do not
    /// look at interfaces, such as `explain`).
    ///
    /// # Panics
    /// When the binary cannot be started.
    pub fn run_here(&self, args: &[&str]) -> Output {
        Command::new(&self.bin)
            .args(args)
            .output()
            .unwrap_or_else(|err| panic!("cannot run {}: {err}", self.bin.display()))
    }

    /// Runs `gotofw args` in `ns` and returns its standard output.
    ///
    /// # Panics
    /// Unless it exits successfully; the message carries its standard error.
    pub fn run_ok(&self, ns: &Netns, args: &[&str]) -> String {
        let output = self.run(ns, args);
        expect_success(&output, &args.join(" "))
    }

    /// `gotofw status IFACE --json` in `ns`, parsed.
    ///
    /// # Panics
    /// Unless the command succeeds and prints JSON.
    pub fn status_json(&self, ns: &Netns, iface: &str) -> Value {
        let stdout = self.run_ok(ns, &["status", iface, "--json"]);
        serde_json::from_str(&stdout)
            .unwrap_or_else(|err| panic!("status --json is not JSON ({err}): {stdout}"))
    }

    /// Attaches gotofw to `iface` in `ns` (`gotofw attach IFACE args...`) and
    /// returns the guard that detaches it.
    ///
    /// # Panics
    /// Unless the attach succeeds (the guard is dropped first, so a failed
    /// attach that pinned anything is cleaned up too).
    pub fn attach<'ns>(&self, ns: &'ns Netns, iface: &str, args: &[&str]) -> Attached<'ns> {
        let guard = Attached::new(self.clone(), ns, iface);
        let mut line = vec!["attach", iface];
        line.extend_from_slice(args);
        expect_success(&self.run(ns, &line), &line.join(" "));
        guard
    }
}

/// Runs `gotofw args` in `ns` with the binary [`gotofw_bin`] finds.
pub fn gotofw(ns: &Netns, args: &[&str]) -> Output {
    Gotofw::default().run(ns, args)
}

/// `gotofw status IFACE --json` in `ns`, parsed.
pub fn status_json(ns: &Netns, iface: &str) -> Value {
    Gotofw::default().status_json(ns, iface)
}

/// The exit code of a finished command (`None` when a signal killed it).
pub fn exit_code(output: &Output) -> Option<i32> {
    output.status.code()
}

/// The standard output of `output`, after checking that the command succeeded.
///
/// # Panics
/// Unless it succeeded; the message shows `what` and the standard error.
pub fn expect_success(output: &Output, what: &str) -> String {
    assert!(
        output.status.success(),
        "`gotofw {what}` failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr).trim()
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}
