//! Running programs: every child gets the same `PATH` (see
//! [`paths::child_path`]) and runs in the workspace root; commands that change
//! something are printed before they run.

use std::{
    ffi::OsStr,
    io,
    os::unix::process::ExitStatusExt,
    process::{Command, ExitCode, ExitStatus, Output, Stdio},
};

use crate::paths;

/// A program that could not be run, or that failed.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The program could not be started (not installed, or not executable).
    #[error("could not start `{command}`")]
    Spawn {
        /// The command line, as printed.
        command: String,
        /// Why `exec` failed.
        #[source]
        source: io::Error,
    },
    /// The program ran and exited unsuccessfully.
    #[error("`{command}` failed ({status})")]
    Failed {
        /// The command line, as printed.
        command: String,
        /// How it exited.
        status: ExitStatus,
    },
}

impl ExecError {
    /// The exit code `cargo xtask` should exit with: the child's own code, or
    /// 128 + the signal that killed it, as a shell would report it.
    fn code(&self) -> u8 {
        match self {
            Self::Spawn { .. } => 1,
            Self::Failed { status, .. } => {
                let code = status
                    .code()
                    .or_else(|| status.signal().map(|signal| 128 + signal))
                    .unwrap_or(1);
                u8::try_from(code)
                    .ok()
                    .filter(|&code| code != 0)
                    .unwrap_or(1)
            }
        }
    }
}

/// The exit code for `err`: that of the failed child program when the error
/// comes from one (so `cargo xtask test` exits as `cargo test` did), else 1.
pub fn exit_code(err: &anyhow::Error) -> ExitCode {
    let code = err
        .chain()
        .find_map(|cause| cause.downcast_ref::<ExecError>())
        .map_or(1, ExecError::code);
    ExitCode::from(code)
}

/// A command for `program` with the child `PATH`, run from the workspace root.
pub fn command(program: impl AsRef<OsStr>) -> Command {
    let mut cmd = Command::new(program);
    cmd.env("PATH", paths::child_path())
        .current_dir(paths::workspace_root());
    cmd
}

/// A `cargo` command (the rustup proxy, so `+nightly` works).
pub fn cargo() -> Command {
    command("cargo")
}

/// Prints `cmd`, runs it with the terminal as its stdio (output streams as it
/// comes) and fails unless it succeeds.
pub fn run(cmd: &mut Command) -> Result<(), ExecError> {
    let command = display(cmd);
    eprintln!("$ {command}");
    let status = cmd.status().map_err(|source| ExecError::Spawn {
        command: command.clone(),
        source,
    })?;
    if status.success() {
        Ok(())
    } else {
        Err(ExecError::Failed { command, status })
    }
}

/// Runs `cmd` quietly (a check, not an action) and returns what it printed,
/// whatever its exit status; fails only when it cannot be started.
pub fn probe(cmd: &mut Command) -> Result<Output, ExecError> {
    cmd.stdin(Stdio::null())
        .output()
        .map_err(|source| ExecError::Spawn {
            command: display(cmd),
            source,
        })
}

/// Runs `cmd` quietly and returns its standard output; fails, with its
/// standard error, unless it succeeds.
pub fn stdout(cmd: &mut Command) -> anyhow::Result<String> {
    let output = probe(cmd)?;
    if output.status.success() {
        return Ok(String::from_utf8_lossy(&output.stdout).into_owned());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    Err(anyhow::Error::new(ExecError::Failed {
        command: display(cmd),
        status: output.status,
    })
    .context(stderr.trim().to_owned()))
}

/// `cmd` as a shell line: the variables it sets (except `PATH`), then the
/// program and its arguments, quoted where needed.
pub fn display(cmd: &Command) -> String {
    let env = cmd.get_envs().filter_map(|(key, value)| {
        let value = value?;
        (key != "PATH").then(|| format!("{}={}", key.to_string_lossy(), quote(value)))
    });
    let program = std::iter::once(quote(cmd.get_program()));
    let args = cmd.get_args().map(quote);
    env.chain(program).chain(args).collect::<Vec<_>>().join(" ")
}

fn quote(word: &OsStr) -> String {
    let word = word.to_string_lossy();
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_=+.,/:@%".contains(c));
    if plain {
        word.into_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_quotes_env_and_arguments() {
        let mut cmd = Command::new("cargo");
        cmd.args(["install", "bpf-linker", "it's here"])
            .env("RUSTFLAGS", "-L /x -l dylib=LLVM-22")
            .env("PATH", "/nope");
        assert_eq!(
            display(&cmd),
            r"RUSTFLAGS='-L /x -l dylib=LLVM-22' cargo install bpf-linker 'it'\''s here'"
        );
    }

    #[test]
    fn failed_command_keeps_its_exit_code() {
        let err = run(Command::new("sh").args(["-c", "exit 7"])).unwrap_err();
        assert_eq!(err.code(), 7);
        let err = anyhow::Error::new(err).context("tests failed");
        assert_eq!(exit_code(&err), ExitCode::from(7));
    }

    #[test]
    fn missing_program_is_a_spawn_error() {
        let err = run(&mut Command::new("gotofw-no-such-program")).unwrap_err();
        assert!(matches!(err, ExecError::Spawn { .. }));
        assert_eq!(err.code(), 1);
    }

    #[test]
    fn stdout_reports_stderr_on_failure() {
        let err = stdout(Command::new("sh").args(["-c", "echo oops >&2; exit 3"])).unwrap_err();
        let message = format!("{err:#}");
        assert!(message.contains("oops"), "{message}");
        assert!(message.contains("exit status: 3"), "{message}");
    }
}
