//! What the tests of gotofw's long-running side need (`tests/tests/service.rs`): curl, which
//! scrapes `gotofw metrics` and `gotofw run` the way a Prometheus server would. Installed with
//! apt-get only when the command is missing.

use anyhow::{Context, Result, bail};

use super::Status;
use crate::{exec, paths};

/// The command and the Debian package that provides it.
const TOOL: (&str, &str) = ("curl", "curl");

/// Checks for curl; installs it when root, or says how to.
pub fn ensure(root: bool) -> Result<Status> {
    let (command, package) = TOOL;
    if paths::find(command).is_some() {
        return Ok(Status::Ok(None));
    }
    if !root {
        return Ok(Status::Missing(format!(
            "as root run: apt-get install -y {package}"
        )));
    }
    if paths::find("apt-get").is_none() {
        bail!("apt-get not found: install {package} with your package manager");
    }
    exec::run(exec::command("apt-get").arg("update"))
        .context("`apt-get update` failed; check the network and /etc/apt/sources.list")?;
    exec::run(
        exec::command("apt-get")
            .args(["install", "-y", package])
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
    .with_context(|| format!("installing {package} failed; try `apt-get install -y {package}`"))?;
    if paths::find(command).is_none() {
        bail!("package {package} is installed but `{command}` is still not found");
    }
    Ok(Status::Installed(None))
}
