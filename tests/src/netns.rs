//! [`Netns`]: a named network namespace that lives as long as its guard.

use std::{
    ffi::OsStr,
    fs::{self, File},
    os::fd::AsRawFd,
    panic,
    path::{Path, PathBuf},
    process::{Command, Output},
    thread,
};

use anyhow::{Context, Result, bail};

use crate::names::unique_name;

/// Where `ip netns` keeps its namespace files.
const NETNS_DIR: &str = "/run/netns";
/// Attempts at a fresh name when one is taken (a leftover of a killed run).
const NAME_ATTEMPTS: usize = 5;

/// A network namespace made with `ip netns add`, deleted on `Drop` (also
/// while a failing test unwinds). Its loopback interface is up.
///
/// Sockets live in the namespace of the thread that creates them, whichever
/// thread later uses them; [`Netns::run`] creates them in this one.
#[derive(Debug)]
pub struct Netns {
    name: String,
    path: PathBuf,
}

impl Netns {
    /// Creates a namespace named [`unique_name`]`(prefix)`, with `lo` up.
    pub fn new(prefix: &str) -> Result<Self> {
        for _ in 0..NAME_ATTEMPTS {
            let name = unique_name(prefix);
            let output = Command::new("ip")
                .args(["netns", "add", &name])
                .output()
                .context("cannot run `ip netns add` (install iproute2)")?;
            let stderr = String::from_utf8_lossy(&output.stderr);
            if output.status.success() {
                let netns = Self {
                    path: Path::new(NETNS_DIR).join(&name),
                    name,
                };
                netns.ip(["link", "set", "lo", "up"])?;
                return Ok(netns);
            }
            if !stderr.contains("File exists") {
                bail!("`ip netns add {name}` failed: {}", stderr.trim());
            }
        }
        bail!("`ip netns add` found {NAME_ATTEMPTS} fresh names for {prefix:?} already taken")
    }

    /// The namespace's name, as `ip netns list` shows it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The namespace file, `/run/netns/NAME`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `program args` in the namespace with `nsenter --net=PATH`, and
    /// returns its output whatever its exit status. Unlike `ip netns exec`,
    /// nsenter leaves the mount namespace alone, so `/sys/fs/bpf` stays visible.
    pub fn exec<I, S>(&self, program: &str, args: I) -> Result<Output>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        Command::new("nsenter")
            .arg(format!("--net={}", self.path.display()))
            .arg("--")
            .arg(program)
            .args(args)
            .output()
            .with_context(|| format!("cannot run nsenter for `{program}` (install util-linux)"))
    }

    /// Runs `program args` in the namespace with `ip netns exec NAME`, and returns its output
    /// whatever its exit status. Unlike [`Netns::exec`], the program gets a private mount
    /// namespace with a fresh `/sys` of the namespace, without the host's bpffs, as operators
    /// most often run commands in a namespace.
    pub fn ip_netns_exec<I, S>(&self, program: &str, args: I) -> Result<Output>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        Command::new("ip")
            .args(["netns", "exec", &self.name, program])
            .args(args)
            .output()
            .with_context(|| {
                format!("cannot run `ip netns exec` for `{program}` (install iproute2)")
            })
    }

    /// Runs `ip -n NAME args` and returns its standard output; fails with its
    /// standard error unless it succeeds.
    pub fn ip<I, S>(&self, args: I) -> Result<String>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args: Vec<S> = args.into_iter().collect();
        let output = Command::new("ip")
            .args(["-n", &self.name])
            .args(&args)
            .output()
            .context("cannot run `ip` (install iproute2)")?;
        if !output.status.success() {
            let line: Vec<_> = args
                .iter()
                .map(|arg| arg.as_ref().to_string_lossy())
                .collect();
            bail!(
                "`ip -n {} {}` failed: {}",
                self.name,
                line.join(" "),
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Runs `f` on a new thread that has entered the namespace (`setns`), and
    /// returns its result; a panic in `f` is resumed on the calling thread.
    /// Sockets `f` creates stay in the namespace after it returns.
    pub fn run<F, R>(&self, f: F) -> R
    where
        F: FnOnce() -> R + Send,
        R: Send,
    {
        let file = File::open(&self.path)
            .unwrap_or_else(|err| panic!("cannot open namespace {}: {err}", self.path.display()));
        thread::scope(|scope| {
            let worker = scope.spawn(move || {
                // SAFETY: `file` is an open namespace file that outlives the
                // call; setns changes only this thread's network namespace.
                let entered = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } == 0;
                assert!(
                    entered,
                    "setns into {}: {}",
                    self.name,
                    std::io::Error::last_os_error()
                );
                drop(file);
                f()
            });
            worker
                .join()
                .unwrap_or_else(|payload| panic::resume_unwind(payload))
        })
    }

    /// Sets a sysctl in the namespace, e.g. `("net.ipv4.ip_forward", "1")`,
    /// by writing `/proc/sys/...` from a thread inside it.
    pub fn set_sysctl(&self, key: &str, value: &str) -> Result<()> {
        let path = Path::new("/proc/sys").join(key.replace('.', "/"));
        self.run(|| fs::write(&path, value))
            .with_context(|| format!("cannot set {key}={value} in {}", self.name))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Errors are ignored: there is nothing better to do in a destructor,
        // and panicking here would abort a test that is already unwinding.
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}
