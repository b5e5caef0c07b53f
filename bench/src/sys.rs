//! Small system helpers: running tools inside a lab namespace, CPU pinning, counters of
//! interfaces and threads.

use std::{
    collections::BTreeMap,
    ffi::OsStr,
    fs,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    sync::atomic::{AtomicU32, Ordering},
};

use anyhow::{Context, Result, bail};
use gotofw_tests::Netns;

/// The CPU the traffic generator (and the processes under test that are not the receiver) run
/// on.
pub const GEN_CPU: usize = 0;
/// The CPU the receiving interface's NAPI thread is pinned to.
pub const RX_CPU: usize = 1;

/// Output of a finished command, or an error that names it and carries its standard error.
pub fn check(output: &Output, what: &str) -> Result<String> {
    if output.status.success() {
        return Ok(String::from_utf8_lossy(&output.stdout).into_owned());
    }
    bail!(
        "`{what}` failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr).trim()
    )
}

/// Runs `program args` in `ns` (nsenter: the host's mount namespace and bpffs) and returns its
/// standard output; fails unless it succeeds.
pub fn ns_run<I, S>(ns: &Netns, program: &str, args: I) -> Result<String>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let args: Vec<S> = args.into_iter().collect();
    let line = std::iter::once(program.to_owned())
        .chain(
            args.iter()
                .map(|a| a.as_ref().to_string_lossy().into_owned()),
        )
        .collect::<Vec<_>>()
        .join(" ");
    check(&ns.exec(program, &args)?, &line)
}

/// Runs `program` in `ns` with `input` on its standard input (`nft -f -`, `iptables-restore`).
pub fn ns_run_stdin(ns: &Netns, program: &str, args: &[&str], input: &str) -> Result<String> {
    use std::io::Write as _;
    let mut child = Command::new("nsenter")
        .arg(format!("--net={}", ns.path().display()))
        .arg("--")
        .arg(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {program}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(input.as_bytes())
            .with_context(|| format!("writing to {program}"))?;
    }
    check(
        &child.wait_with_output()?,
        &format!("{program} {}", args.join(" ")),
    )
}

/// Writes a file of the namespace's sysfs (`/sys/class/net/...` shows only the namespace's own
/// interfaces, so this goes through `ip netns exec`, which mounts the namespace's sysfs).
pub fn ns_sysfs_write(ns: &Netns, path: &str, value: &str) -> Result<()> {
    let output = Command::new("ip")
        .args(["netns", "exec", ns.name(), "sh", "-c"])
        .arg(format!("echo {value} > {path}"))
        .output()
        .context("cannot run `ip netns exec`")?;
    check(&output, &format!("echo {value} > {path} in {}", ns.name())).map(drop)
}

/// `ethtool -S IFACE` in `ns`, as name → value.
pub fn ethtool_stats(ns: &Netns, iface: &str) -> Result<BTreeMap<String, u64>> {
    let text = ns_run(ns, "ethtool", ["-S", iface])?;
    Ok(text
        .lines()
        .filter_map(|line| {
            let (name, value) = line.split_once(':')?;
            Some((name.trim().to_owned(), value.trim().parse().ok()?))
        })
        .collect())
}

/// Pins the calling thread to `cpu` (what `taskset -c CPU` does to a process).
pub fn pin_current_thread(cpu: usize) -> Result<()> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET writes inside it.
    let rc = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &raw const set)
    };
    if rc != 0 {
        bail!(
            "sched_setaffinity to CPU {cpu}: {}",
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}

/// `taskset -p -c CPU PID`.
pub fn taskset(pid: u32, cpu: usize) -> Result<()> {
    let output = Command::new("taskset")
        .args(["-p", "-c", &cpu.to_string(), &pid.to_string()])
        .output()
        .context("cannot run taskset (util-linux)")?;
    check(&output, &format!("taskset -p -c {cpu} {pid}")).map(drop)
}

/// The kernel thread that polls `iface`'s NAPI instances in threaded mode (`napi/IFACE-ID`).
/// Thread names are cut at 15 bytes, so `iface` must be short enough to stay unique.
pub fn napi_thread(iface: &str) -> Option<u32> {
    let prefix = format!("napi/{iface}-");
    let prefix = &prefix[..prefix.len().min(15)];
    fs::read_dir("/proc").ok()?.flatten().find_map(|entry| {
        let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
        let comm = fs::read_to_string(entry.path().join("comm")).ok()?;
        comm.trim_end().starts_with(prefix).then_some(pid)
    })
}

/// Nanoseconds thread or process `pid` has run on a CPU (`/proc/PID/schedstat`).
pub fn cpu_ns(pid: u32) -> Option<u64> {
    let text = fs::read_to_string(format!("/proc/{pid}/schedstat")).ok()?;
    text.split_whitespace().next()?.parse().ok()
}

/// An interface name of at most 9 bytes, unique in this process and unlikely to collide with
/// other processes (the pid is part of it), so `napi/NAME-ID` stays recognisable.
pub fn short_ifname(tag: char) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let pid = std::process::id() & 0xfffff;
    format!("{tag}{pid:05x}{:03x}", n & 0xfff)
}

/// The load averages of `/proc/loadavg` (1, 5 and 15 minutes).
pub fn loadavg() -> [f64; 3] {
    let text = fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut out = [0.0; 3];
    for (slot, field) in out.iter_mut().zip(text.split_whitespace()) {
        *slot = field.parse().unwrap_or(0.0);
    }
    out
}

/// The running kernel (`uname -r` and `-v`).
pub fn kernel() -> String {
    let release = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let version = fs::read_to_string("/proc/sys/kernel/version").unwrap_or_default();
    format!("Linux {} {}", release.trim(), version.trim())
}

/// The first line of `/proc/cpuinfo`'s model name, and the number of CPUs.
pub fn cpu() -> String {
    let info = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = info
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map_or_else(
            || "unknown CPU".into(),
            |l| l.trim_start_matches([' ', '\t', ':']).to_owned(),
        );
    let cpus = std::thread::available_parallelism().map_or(0, usize::from);
    format!("{cpus} x {model}")
}

/// Where a program is, looked up in `PATH` and the sbin directories.
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/bin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// A file on bpffs that is removed on drop (a program pinned only to be opened by path).
#[derive(Debug)]
pub struct PinFile(pub PathBuf);

impl Drop for PinFile {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

impl PinFile {
    /// The path.
    pub fn path(&self) -> &Path {
        &self.0
    }
}
