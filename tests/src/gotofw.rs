//! Driving the real `gotofw` binary from the lab: finding it, running it
//! inside a namespace, reading `status --json`, a guard that detaches what a
//! test attached, and [`WanLab`], the two-namespace network of the CLI tests
//! and the demo.
//!
//! gotofw pins its filters in the host's bpffs (`/sys/fs/bpf/gotofw/IFACE`),
//! not in the namespace: pins outlive the namespace of their interface. Every
//! attach therefore goes with an [`Attached`] guard, and every gateway
//! interface gets a [`unique_name`], so parallel tests never share a pin.

use std::{
    env,
    net::{IpAddr, Ipv4Addr},
    path::{Path, PathBuf},
    process::{Command, Output},
};

use anyhow::{Context, Result};
use serde_json::Value;

use crate::{Netns, VethPair, addr_add, route_add, unique_name, veth_pair};

/// Where gotofw pins its filters, one directory per interface.
pub const PIN_ROOT: &str = "/sys/fs/bpf/gotofw";
/// Where gotofw stages pin directories (`IFACE@...`) before renaming them.
pub const PIN_STAGING: &str = "/sys/fs/bpf/gotofw-staging";
/// The environment variable that names the gotofw binary to test.
pub const GOTOFW_BIN_ENV: &str = "GOTOFW_BIN";

/// Exit code of gotofw for bad input (nothing was changed).
pub const EXIT_USAGE: i32 = 2;

/// The gateway's WAN address (`203.0.113.2/24`).
pub const GW_ADDR: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 2);
/// The internet side's address on the shared link (`203.0.113.1/24`), the
/// gateway's next hop.
pub const INET_ADDR: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
/// A server inside the GoTo TURN network 68.64.0.0/19.
pub const TURN_A: Ipv4Addr = Ipv4Addr::new(68, 64, 0, 10);
/// A server inside the GoTo TURN network 23.239.224.0/19 (its last host).
pub const TURN_B: Ipv4Addr = Ipv4Addr::new(23, 239, 255, 254);
/// A server outside every TURN network.
pub const OUTSIDE: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 10);
/// The routes the gateway has towards the servers (via [`INET_ADDR`]).
pub const GW_ROUTES: [&str; 3] = ["68.64.0.0/19", "23.239.224.0/19", "198.51.100.0/24"];

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

/// The pin directory of `iface`: `/sys/fs/bpf/gotofw/IFACE` in the host's namespace,
/// `IFACE:NETNS` for an interface in another namespace (lab interface names are unique, so the
/// first entry that names `iface` is its own).
pub fn pin_dir(iface: &str) -> PathBuf {
    let prefix = format!("{iface}:");
    std::fs::read_dir(PIN_ROOT)
        .ok()
        .and_then(|entries| {
            entries.flatten().map(|e| e.path()).find(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with(&prefix))
            })
        })
        .unwrap_or_else(|| Path::new(PIN_ROOT).join(iface))
}

/// Staging directories gotofw left behind for `iface` (`IFACE@...`); a
/// finished command, successful or not, leaves none.
pub fn staging_leftovers(iface: &str) -> Vec<PathBuf> {
    let (bare, keyed) = (format!("{iface}@"), format!("{iface}:"));
    std::fs::read_dir(PIN_STAGING)
        .map(|entries| {
            entries
                .flatten()
                .filter(|entry| {
                    let name = entry.file_name().to_string_lossy().into_owned();
                    name.starts_with(&bare) || name.starts_with(&keyed)
                })
                .map(|entry| entry.path())
                .collect()
        })
        .unwrap_or_default()
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

/// The `(packets, bytes)` of the counter called `name` in a `status --json`
/// document of one interface.
///
/// # Panics
/// When the document has no such counter (the message lists those it has).
pub fn counter(status: &Value, name: &str) -> (u64, u64) {
    let counters = status["interfaces"][0]["counters"]
        .as_array()
        .unwrap_or_else(|| panic!("no interfaces[0].counters in {status}"));
    let found = counters
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| {
            let names: Vec<&str> = counters.iter().filter_map(|c| c["name"].as_str()).collect();
            panic!("no counter {name:?} in status; it has {names:?}")
        });
    let field = |key: &str| {
        found[key]
            .as_u64()
            .unwrap_or_else(|| panic!("counter {name:?} has no numeric {key:?}: {found}"))
    };
    (field("packets"), field("bytes"))
}

/// The `(packets, bytes)` of the counter called `name` for `direction` (`ingress` or `egress`)
/// in a `status --json` document of one interface.
pub fn counter_in(status: &Value, name: &str, direction: &str) -> (u64, u64) {
    let counters = status["interfaces"][0]["counters"]
        .as_array()
        .unwrap_or_else(|| panic!("no interfaces[0].counters in {status}"));
    let found = counters
        .iter()
        .find(|c| c["name"] == name && c["direction"] == direction)
        .unwrap_or_else(|| panic!("no {direction} counter {name:?} in {status}"));
    (
        found["packets"].as_u64().unwrap_or(0),
        found["bytes"].as_u64().unwrap_or(0),
    )
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

/// A gotofw filter on an interface of a namespace; `Drop` runs `gotofw
/// detach` when the interface is still attached (its pin directory exists),
/// also while a failing test unwinds, so no test leaves pins behind.
///
/// It borrows the namespace, so it is dropped before the namespace is
/// deleted. Detach works from the pins alone and also cleans up after an
/// interface that is already gone.
#[derive(Debug)]
pub struct Attached<'ns> {
    gotofw: Gotofw,
    ns: &'ns Netns,
    iface: String,
}

impl<'ns> Attached<'ns> {
    /// A guard for whatever gets attached to `iface` in `ns` from now on;
    /// creating it runs nothing. Create it before running `gotofw attach`
    /// by hand (to check its exit code, say).
    pub fn new(gotofw: Gotofw, ns: &'ns Netns, iface: &str) -> Self {
        Self {
            gotofw,
            ns,
            iface: iface.to_owned(),
        }
    }

    /// The interface.
    pub fn iface(&self) -> &str {
        &self.iface
    }

    /// The namespace of the interface.
    pub fn ns(&self) -> &'ns Netns {
        self.ns
    }

    /// Its pin directory.
    pub fn pin_dir(&self) -> PathBuf {
        pin_dir(&self.iface)
    }

    /// Whether a gotofw filter is pinned for the interface.
    pub fn is_attached(&self) -> bool {
        self.pin_dir().exists()
    }

    /// `gotofw status IFACE --json`.
    pub fn status_json(&self) -> Value {
        self.gotofw.status_json(self.ns, &self.iface)
    }

    /// Runs `gotofw detach IFACE` now and returns its output.
    pub fn detach(&self) -> Output {
        self.gotofw.run(self.ns, &["detach", &self.iface])
    }
}

impl Drop for Attached<'_> {
    fn drop(&mut self) {
        if !self.is_attached() {
            return;
        }
        // Ignored errors: a destructor cannot do better than try, say so
        // and carry on (a panic here would abort an unwinding test).
        let bin = self.gotofw.bin().to_string_lossy().into_owned();
        let detached = self
            .ns
            .exec(&bin, ["detach", &self.iface])
            .is_ok_and(|output| output.status.success());
        if !detached {
            // Detach needs nothing from the namespace: try from here.
            let _ = Command::new(self.gotofw.bin())
                .args(["detach", &self.iface])
                .output();
        }
        if self.is_attached() {
            eprintln!(
                "warning: could not detach gotofw from {}; remove {} by hand",
                self.iface,
                self.pin_dir().display()
            );
        }
    }
}

/// The CLI tests' and the demo's network: a gateway namespace whose WAN
/// interface faces an "internet" namespace over a veth link.
///
/// ```text
/// gw (203.0.113.2/24) wan ==veth== isp inet (203.0.113.1/24, and
///                                      68.64.0.10, 23.239.255.254, 198.51.100.10 /32)
/// ```
///
/// The gateway routes [`GW_ROUTES`] via [`INET_ADDR`]; the internet side
/// answers for [`TURN_A`], [`TURN_B`] (inside the GoTo TURN networks) and
/// [`OUTSIDE`] itself, so echo servers bound there play the remote servers.
/// Those addresses exist only inside the two namespaces. Both interface
/// names are [`unique_name`]s; `Drop` deletes the link, then both namespaces.
#[derive(Debug)]
pub struct WanLab {
    // Fields drop in this order: the link first, then the namespaces.
    veth: VethPair,
    gw: Netns,
    inet: Netns,
}

impl WanLab {
    /// Builds the lab.
    pub fn new() -> Result<Self> {
        Self::named(["gw", "inet", "wan", "isp"])
    }

    /// Builds the lab with the name prefixes `[gateway, internet, wan, isp]` (namespaces, then
    /// interfaces; see [`unique_name`]).
    pub fn named([gw, inet, wan, isp]: [&str; 4]) -> Result<Self> {
        let gw = Netns::new(gw)?;
        let inet = Netns::new(inet)?;
        let (wan, isp) = (unique_name(wan), unique_name(isp));
        let veth = veth_pair(&gw, &wan, &inet, &isp)?;
        addr_add(&gw, &wan, &format!("{GW_ADDR}/24"))?;
        addr_add(&inet, &isp, &format!("{INET_ADDR}/24"))?;
        for server in [TURN_A, TURN_B, OUTSIDE] {
            addr_add(&inet, &isp, &format!("{server}/32"))?;
        }
        for cidr in GW_ROUTES {
            route_add(&gw, cidr, IpAddr::V4(INET_ADDR))
                .with_context(|| format!("routing {cidr} in {}", gw.name()))?;
        }
        Ok(Self { veth, gw, inet })
    }

    /// The gateway namespace.
    pub fn gw(&self) -> &Netns {
        &self.gw
    }

    /// The internet namespace.
    pub fn inet(&self) -> &Netns {
        &self.inet
    }

    /// The gateway's WAN interface, where gotofw attaches.
    pub fn wan(&self) -> &str {
        self.veth.a()
    }

    /// The internet side's end of the link.
    pub fn isp(&self) -> &str {
        self.veth.b()
    }

    /// Forgets the neighbour (ARP) entries on both ends, so the next packet
    /// needs a fresh ARP exchange, through the filter.
    pub fn flush_neighbours(&self) -> Result<()> {
        self.gw.ip(["neigh", "flush", "dev", self.wan()])?;
        self.inet.ip(["neigh", "flush", "dev", self.isp()])?;
        Ok(())
    }
}

/// A gotofw command started in a namespace by [`Gotofw::spawn`]. Its standard error is read
/// line by line as it comes; `Drop` kills it (SIGKILL) and reaps it if it still runs, also
/// while a failing test unwinds.
#[derive(Debug)]
pub struct Running {
    child: std::process::Child,
    stdout: Option<std::thread::JoinHandle<Vec<u8>>>,
    stderr: std::sync::mpsc::Receiver<String>,
    stderr_seen: Vec<String>,
    started: std::time::Instant,
}

impl Gotofw {
    /// Starts `gotofw args` in `ns` with the extra environment `env` (such as the testing hooks
    /// `GOTOFW_FAULT_STAGE` and `GOTOFW_PAUSE_STAGE`), and returns at once. The child gets
    /// `PR_SET_PDEATHSIG` = SIGKILL: it dies with the thread that started it at the latest.
    ///
    /// # Panics
    /// When nsenter cannot be started.
    pub fn spawn(&self, ns: &Netns, args: &[&str], env: &[(&str, &str)]) -> Running {
        use std::{io::BufRead as _, os::unix::process::CommandExt as _, process::Stdio};
        let mut command = Command::new("nsenter");
        command
            .arg(format!("--net={}", ns.path().display()))
            .arg("--")
            .arg(&self.bin)
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // SAFETY: the closure runs in the forked child before exec and only calls prctl, which
        // is async-signal-safe and touches no memory of the parent.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut child = command
            .spawn()
            .unwrap_or_else(|err| panic!("gotofw {}: cannot start nsenter: {err}", args.join(" ")));
        let mut out = child.stdout.take().expect("piped stdout");
        let stdout = std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = std::io::Read::read_to_end(&mut out, &mut bytes);
            bytes
        });
        let err = child.stderr.take().expect("piped stderr");
        let (send, stderr) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(err).lines() {
                let Ok(line) = line else { break };
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        Running {
            child,
            stdout: Some(stdout),
            stderr,
            stderr_seen: Vec::new(),
            started: std::time::Instant::now(),
        }
    }

    /// Runs `gotofw args` in `ns` with the extra environment `env` and returns its output; see
    /// [`Running::wait`] for `deadline`.
    pub fn run_env(
        &self,
        ns: &Netns,
        args: &[&str],
        env: &[(&str, &str)],
        deadline: std::time::Duration,
    ) -> Output {
        self.spawn(ns, args, env).wait(deadline)
    }
}

impl Running {
    /// The process id (gotofw's: nsenter executes it in place).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits up to `timeout` for a line of standard error that contains `needle`, and returns
    /// it (`None` when none came; the process goes on).
    pub fn wait_for_stderr(
        &mut self,
        needle: &str,
        timeout: std::time::Duration,
    ) -> Option<String> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(line) = self.stderr_seen.iter().find(|l| l.contains(needle)) {
                return Some(line.clone());
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.stderr.recv_timeout(left) {
                Ok(line) => self.stderr_seen.push(line),
                Err(_) => return None,
            }
        }
    }

    /// Waits for the command to exit, at most until `deadline` after it started, and returns its
    /// status, standard output and standard error.
    ///
    /// # Panics
    /// When it still runs at the deadline (it is killed first).
    pub fn wait(mut self, deadline: std::time::Duration) -> Output {
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("waiting for gotofw") {
                break status;
            }
            assert!(
                self.started.elapsed() < deadline,
                "gotofw (pid {}) still ran after {deadline:?}; killed it",
                self.child.id()
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        };
        let stdout = self
            .stdout
            .take()
            .map(|reader| reader.join().unwrap_or_default())
            .unwrap_or_default();
        // The writer is gone: the rest of standard error is in the channel or on its way.
        while let Ok(line) = self.stderr.recv_timeout(std::time::Duration::from_secs(5)) {
            self.stderr_seen.push(line);
        }
        let mut stderr = self.stderr_seen.join("\n");
        if !stderr.is_empty() {
            stderr.push('\n');
        }
        Output {
            status,
            stdout,
            stderr: stderr.into_bytes(),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            // Ignored: it may have exited just now, which wait() reaps.
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A kernel object a pin names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pinned {
    /// A map, by id.
    Map(u32),
    /// A program, by id.
    Program(u32),
    /// A link, by id, and the program it runs.
    Link {
        /// The link's id.
        id: u32,
        /// The id of its program.
        prog: u32,
    },
    /// Neither could be opened (it went while it was looked at).
    Gone,
}

/// The pins of directory `dir` by file name, with the objects they name; empty when `dir` does
/// not exist. Pins whose name ends in `link` (`link`, `tc_link`) are links, those ending in
/// `_prog` (`egress_prog`) programs, the others maps (the kernel answers an info query on any
/// kind of file, so the name is what tells them apart).
pub fn pins(dir: &Path) -> std::collections::BTreeMap<String, Pinned> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return std::collections::BTreeMap::new();
    };
    entries
        .flatten()
        .map(|entry| {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            let object = if name.ends_with("link") {
                aya::programs::links::PinnedLink::from_pin(&path)
                    .ok()
                    .and_then(|link| aya::programs::links::FdLink::from(link).info().ok())
                    .map_or(Pinned::Gone, |info| Pinned::Link {
                        id: info.id(),
                        prog: info.program_id(),
                    })
            } else if name.ends_with("_prog") {
                aya::programs::ProgramInfo::from_pin(&path)
                    .map_or(Pinned::Gone, |prog| Pinned::Program(prog.id()))
            } else {
                aya::maps::MapInfo::from_pin(&path)
                    .map_or(Pinned::Gone, |map| Pinned::Map(map.id()))
            };
            (name, object)
        })
        .collect()
}

/// The tcx egress programs of `iface` in `ns`, by id (empty: none, or no such interface).
pub fn tcx_egress_prog_ids(ns: &Netns, iface: &str) -> Vec<u32> {
    use aya::programs::{SchedClassifier, TcAttachType};
    ns.run(|| SchedClassifier::query_tcx(iface, TcAttachType::Egress))
        .map(|(_, programs)| {
            programs
                .iter()
                .map(aya::programs::ProgramInfo::id)
                .collect()
        })
        .unwrap_or_default()
}

/// The programs of the clsact egress filters of `iface` in `ns` (`tc filter show dev IFACE
/// egress`), by id (empty: none, or no such interface).
pub fn clsact_egress_prog_ids(ns: &Netns, iface: &str) -> Vec<u32> {
    let out = ns
        .exec("tc", ["-j", "filter", "show", "dev", iface, "egress"])
        .map(|out| out.stdout)
        .unwrap_or_default();
    let filters: Value = serde_json::from_slice(&out).unwrap_or_default();
    filters
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|f| f["options"]["prog"]["id"].as_u64())
                .filter_map(|id| u32::try_from(id).ok())
                .collect()
        })
        .unwrap_or_default()
}

/// The ids of the maps program `prog` uses (empty when there is no such program).
pub fn prog_map_ids(prog: u32) -> Vec<u32> {
    aya::programs::loaded_programs()
        .flatten()
        .find(|info| info.id() == prog)
        .and_then(|info| info.map_ids().ok().flatten())
        .unwrap_or_default()
}

/// What the filter of one interface holds in bpffs and the kernel. Two equal values are the
/// same pins naming the same maps, links and programs, with the same programs attached: a
/// command that changed nothing leaves it equal (other tests' programs do not enter it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FilterObjects {
    /// Its pin directory's pins (empty: no directory).
    pub pins: std::collections::BTreeMap<String, Pinned>,
    /// The XDP program attached to the interface.
    pub xdp: Option<u32>,
    /// The tcx egress programs of the interface.
    pub tcx_egress: Vec<u32>,
    /// The programs of its clsact egress filters.
    pub clsact_egress: Vec<u32>,
    /// Its entries in the staging directory.
    pub staging: Vec<PathBuf>,
}

/// [`FilterObjects`] of `iface` in `ns` now.
pub fn filter_objects(ns: &Netns, iface: &str) -> FilterObjects {
    FilterObjects {
        pins: pins(&pin_dir(iface)),
        xdp: crate::xdp_prog_id(ns, iface),
        tcx_egress: tcx_egress_prog_ids(ns, iface),
        clsact_egress: clsact_egress_prog_ids(ns, iface),
        staging: staging_leftovers(iface),
    }
}
