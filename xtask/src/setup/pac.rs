//! Debian's `python3-pacparser`: the PAC engine `filter-user/tests/pac.rs` runs the generated
//! proxy.pac in. It installs into Debian's own Python, so the check runs `/usr/bin/python3`
//! (not whatever `python3` comes first on `PATH`, e.g. pyenv's).

use anyhow::{Context, Result, bail};

use super::Status;
use crate::{exec, paths};

/// The interpreter the package installs for.
const PYTHON: &str = "/usr/bin/python3";
/// The Debian package.
const PACKAGE: &str = "python3-pacparser";

/// `Some` when Debian's Python can import pacparser: the version it reports, if any (Debian's
/// build reports none), as a status detail.
fn importable() -> Option<Status> {
    let out = exec::probe(exec::command(PYTHON).args([
        "-W",
        "ignore",
        "-c",
        "import pacparser; print(pacparser.version())",
    ]))
    .ok()?;
    let version = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    out.status
        .success()
        .then(|| Status::Ok((!version.is_empty()).then_some(version)))
}

/// Checks that pacparser imports; installs the package with apt-get when root, or says how to.
pub fn ensure(root: bool) -> Result<Status> {
    if let Some(status) = importable() {
        return Ok(status);
    }
    if !root {
        return Ok(Status::Missing(format!(
            "as root run: apt-get install -y {PACKAGE}"
        )));
    }
    if paths::find("apt-get").is_none() {
        bail!("apt-get not found: install {PACKAGE} (pacparser for {PYTHON}) by hand");
    }
    exec::run(exec::command("apt-get").arg("update"))
        .context("`apt-get update` failed; check the network and /etc/apt/sources.list")?;
    exec::run(
        exec::command("apt-get")
            .args(["install", "-y", PACKAGE])
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
    .with_context(|| format!("installing {PACKAGE} failed; try `apt-get install -y {PACKAGE}`"))?;
    match importable() {
        Some(Status::Ok(version)) => Ok(Status::Installed(version)),
        _ => bail!("{PACKAGE} is installed but {PYTHON} cannot import pacparser"),
    }
}
