//! Real programs inside lab namespaces: servers that run until their guard
//! drops ([`Daemon`]), clients that run with a deadline ([`run_bounded`]),
//! and whether a namespace has a socket listening on an address
//! ([`listening`]).
//!
//! Programs start as `nsenter --net=/run/netns/NAME -- PROGRAM ARGS`, which
//! enters the namespace and then executes the program in place, so the child's
//! pid is the program's. Each child gets `PR_SET_PDEATHSIG` = `SIGKILL`: should
//! the thread that started it die without running destructors (a test binary
//! killed by a timeout), the kernel kills the child too, so no server outlives
//! its lab.

use std::{
    collections::BTreeSet,
    env, fs,
    io::{BufRead, BufReader, Read},
    net::{Ipv4Addr, SocketAddr, SocketAddrV4},
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};

use crate::netns::Netns;

/// How often readiness and exit are polled.
const POLL: Duration = Duration::from_millis(20);
/// Directories searched for programs after `PATH` (a non-login root `PATH`
/// may lack the sbin directories where `nginx` and `nft` live).
const SYSTEM_DIRS: [&str; 5] = [
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
];

/// A transport protocol, for sockets a daemon listens on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Transport {
    /// TCP: a listening socket.
    Tcp,
    /// UDP: a bound socket.
    Udp,
}

impl Transport {
    /// `tcp` or `udp`, as gotofw's command line and nftables spell it.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Udp => "udp",
        }
    }
}

/// The full path of `program`, searched in `PATH` and then in the system
/// directories; the error says which package to install.
pub fn find_program(program: &str, package: &str) -> Result<PathBuf> {
    let path = env::var_os("PATH").unwrap_or_default();
    env::split_paths(&path)
        .chain(SYSTEM_DIRS.iter().map(PathBuf::from))
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
        .with_context(|| {
            format!("`{program}` not found: install {package} (`cargo xtask setup` does)")
        })
}

/// A command that runs `program args` in `ns`, killed by the kernel when the
/// thread that spawns it dies.
fn ns_command(ns: &Netns, program: &Path, args: &[String]) -> Command {
    let mut command = Command::new("nsenter");
    command
        .arg(format!("--net={}", ns.path().display()))
        .arg("--")
        .arg(program)
        .args(args)
        .stdin(Stdio::null());
    // SAFETY: the closure runs in the forked child before exec and only calls
    // prctl, which is async-signal-safe and touches no memory of the parent.
    unsafe {
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    command
}

/// A server process in a namespace, killed (`SIGKILL`) and reaped on `Drop`,
/// also while a failing test unwinds. Its standard output and error go to a
/// log file, whose tail [`Daemon::log_tail`] returns for error messages.
#[derive(Debug)]
pub struct Daemon {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Daemon {
    /// Starts `program args` in `ns`, with its output appended to `log`.
    /// `name` names it in messages. Returns once the process runs; see
    /// [`Daemon::wait_listening`] for readiness.
    pub fn spawn(
        ns: &Netns,
        name: &str,
        program: &Path,
        args: &[String],
        log: &Path,
    ) -> Result<Self> {
        let out = fs::File::create(log)
            .with_context(|| format!("cannot create the log {}", log.display()))?;
        let err = out.try_clone()?;
        let child = ns_command(ns, program, args)
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("cannot start {name} (nsenter, from util-linux)"))?;
        Ok(Self {
            name: name.to_owned(),
            child,
            log: log.to_owned(),
        })
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends it `signal` (e.g. `libc::SIGTERM`, for a clean shutdown) and waits up to `timeout`
    /// for it to exit; returns its exit status, or `None` when it still runs.
    pub fn signal_and_wait(
        &mut self,
        signal: libc::c_int,
        timeout: Duration,
    ) -> Result<Option<ExitStatus>> {
        if let Some(status) = self.child.try_wait()? {
            return Ok(Some(status));
        }
        let pid = libc::pid_t::try_from(self.child.id()).context("pid out of range")?;
        // SAFETY: kill has no memory effects; the pid is our unreaped child, so it cannot have
        // been reused by another process.
        if unsafe { libc::kill(pid, signal) } != 0 {
            bail!(
                "cannot signal {} (pid {pid}): {}",
                self.name,
                std::io::Error::last_os_error()
            );
        }
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(Some(status));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            thread::sleep(POLL);
        }
    }

    /// The last lines of its log.
    pub fn log_tail(&self) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    /// Waits until every `(transport, address)` in `sockets` is bound in `ns`
    /// (TCP: listening), failing when `timeout` passes first or the process
    /// exits; the error carries the tail of its log.
    pub fn wait_listening(
        &mut self,
        ns: &Netns,
        sockets: &[(Transport, SocketAddr)],
        timeout: Duration,
    ) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "{} exited ({status}) before listening; its log:\n{}",
                    self.name,
                    self.log_tail()
                );
            }
            let bound = listening(ns)?;
            let missing: Vec<String> = sockets
                .iter()
                .filter(|socket| !bound.contains(socket))
                .map(|(transport, addr)| format!("{} {addr}", transport.name()))
                .collect();
            if missing.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!(
                    "{} does not listen on {} after {} ms; its log:\n{}",
                    self.name,
                    missing.join(", "),
                    timeout.as_millis(),
                    self.log_tail()
                );
            }
            thread::sleep(POLL);
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // Errors are ignored: the process may have exited already, and a
        // destructor has nothing better to do.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The IPv4 sockets bound in `ns`: TCP sockets listening and UDP sockets
/// bound, from `/proc/thread-self/net/{tcp,udp}` read inside the namespace.
pub fn listening(ns: &Netns) -> Result<BTreeSet<(Transport, SocketAddr)>> {
    ns.run(|| {
        let mut bound = BTreeSet::new();
        for (transport, file, state) in [
            (Transport::Tcp, "/proc/thread-self/net/tcp", "0A"),
            (Transport::Udp, "/proc/thread-self/net/udp", "07"),
        ] {
            let table = fs::read_to_string(file).with_context(|| format!("cannot read {file}"))?;
            bound.extend(
                parse_proc_net(&table, state)
                    .into_iter()
                    .map(|addr| (transport, addr)),
            );
        }
        Ok(bound)
    })
}

/// The local addresses of the rows of a `/proc/net/{tcp,udp}` table in `state`
/// (`0A` listen, `07` close: a bound UDP socket). Addresses are printed as the
/// hex of the network-order word read as a native integer, ports in host order.
fn parse_proc_net(table: &str, state: &str) -> Vec<SocketAddr> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.get(3) != Some(&state) {
                return None;
            }
            let (ip, port) = fields.get(1)?.split_once(':')?;
            let ip = u32::from_str_radix(ip, 16).ok()?;
            let port = u16::from_str_radix(port, 16).ok()?;
            Some(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(ip.to_ne_bytes()),
                port,
            )))
        })
        .collect()
}

/// Limits for [`run_bounded`].
#[derive(Clone, Copy, Debug)]
pub struct Bounds<'a> {
    /// Kill the program when it has not exited after this long.
    pub deadline: Duration,
    /// Kill it earlier when no output line contains the text within the
    /// duration: a client that cannot reach its server at all should cost
    /// little, while one that got through may take its time to finish.
    pub progress: Option<(Duration, &'a str)>,
}

/// How a program run by [`run_bounded`] ended.
#[derive(Debug)]
pub struct Finished {
    /// Its exit status, `None` when it was killed at a limit.
    pub status: Option<ExitStatus>,
    /// Its standard output and error, interleaved by line.
    pub output: String,
    /// How long it ran.
    pub elapsed: Duration,
}

impl Finished {
    /// Whether it exited by itself with status 0.
    pub fn success(&self) -> bool {
        self.status.is_some_and(|status| status.success())
    }
}

/// Runs `program args` in `ns` and collects its output, killing it when it
/// outlives `bounds`. Call from the thread that should own the child (it dies
/// with that thread at the latest).
pub fn run_bounded(
    ns: &Netns,
    program: &Path,
    args: &[String],
    bounds: Bounds,
) -> Result<Finished> {
    let start = Instant::now();
    let mut child = ns_command(ns, program, args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start {} in {}", program.display(), ns.name()))?;
    let (lines, received) = mpsc::channel();
    let readers: Vec<_> = [
        child
            .stdout
            .take()
            .map(|out| Box::new(out) as Box<dyn Read + Send>),
        child
            .stderr
            .take()
            .map(|err| Box::new(err) as Box<dyn Read + Send>),
    ]
    .into_iter()
    .flatten()
    .map(|stream| {
        let lines = lines.clone();
        thread::spawn(move || {
            for line in BufReader::new(stream).lines() {
                let Ok(line) = line else { break };
                if lines.send(line).is_err() {
                    break;
                }
            }
        })
    })
    .collect();
    drop(lines);

    let mut output = String::new();
    let mut progressed = bounds.progress.is_none();
    let status = loop {
        // Wait for a line or the next poll, whichever comes first.
        match received.recv_timeout(POLL) {
            Ok(line) => {
                progressed |= bounds
                    .progress
                    .is_some_and(|(_, marker)| line.contains(marker));
                output.push_str(&line);
                output.push('\n');
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            // Both streams are closed: the program is exiting.
            Err(mpsc::RecvTimeoutError::Disconnected) => thread::sleep(POLL),
        }
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        let elapsed = start.elapsed();
        let stalled = bounds
            .progress
            .is_some_and(|(within, _)| !progressed && elapsed >= within);
        if stalled || elapsed >= bounds.deadline {
            // Ignored: it may have exited just now, which wait() reaps.
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
    };
    for reader in readers {
        // A reader ends at end of file, which the exit of the child brings.
        let _ = reader.join();
    }
    output.extend(received.try_iter().map(|line| line + "\n"));
    Ok(Finished {
        status,
        output,
        elapsed: start.elapsed(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(target_endian = "little")]
    fn proc_net_rows_are_decoded() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue\n\
            0: 0A004044:0D96 00000000:0000 0A 00000000:00000000 00:00000000 00000000\n\
            1: 0A004044:01BB 00000000:0000 01 00000000:00000000 00:00000000 00000000\n";
        let expected: SocketAddr = "68.64.0.10:3478".parse().unwrap();
        assert_eq!(parse_proc_net(table, "0A"), [expected]);
        assert!(parse_proc_net(table, "07").is_empty());
    }

    #[test]
    fn missing_programs_name_their_package() {
        let err = find_program("gotofw-no-such-program", "gotofw-pkg").unwrap_err();
        assert!(format!("{err}").contains("install gotofw-pkg"), "{err}");
        assert!(find_program("sh", "dash").is_ok());
    }
}
