//! [`Running`]: a gotofw command started in the background, its standard error read as it
//! comes.

use std::process::{Command, Output};

use super::Gotofw;
use crate::Netns;

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
            .arg(self.bin())
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
