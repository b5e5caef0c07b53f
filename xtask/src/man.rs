//! `cargo xtask man`: gotofw's man pages, generated from its clap definitions.
//!
//! xtask does not link filter-user (its build script needs bpf-linker, which `setup` may not
//! have installed yet); it builds the gotofw binary after set-up and runs its hidden
//! `gotofw man --out DIR`, which renders the pages with clap_mangen.

use std::{
    env,
    ffi::OsString,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result};

use crate::{exec, paths, setup, test};

/// Options of `cargo xtask man`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Directory for the pages [default: target/man in the workspace].
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
}

/// `target/man` under cargo's target directory: `target_dir` (relative to `root` unless
/// absolute), else `root/target`.
fn default_dir(root: &Path, target_dir: Option<OsString>) -> PathBuf {
    target_dir
        .filter(|dir| !dir.is_empty())
        .map_or_else(|| root.join("target"), |dir| root.join(dir))
        .join("man")
}

/// Runs set-up, builds gotofw, and has it write `gotofw.8` and `gotofw-COMMAND.8` into the
/// directory.
pub fn run(args: &Args) -> Result<()> {
    setup::run()?;
    let gotofw = test::build_gotofw()?;
    // Children run in the workspace root: a relative --out means the caller's directory.
    let out = match &args.out {
        Some(dir) => std::path::absolute(dir)
            .with_context(|| format!("--out {}: cannot make it absolute", dir.display()))?,
        None => default_dir(paths::workspace_root(), env::var_os("CARGO_TARGET_DIR")),
    };
    exec::run(exec::command(&gotofw).arg("man").arg("--out").arg(&out))
        .context("writing the man pages failed; see the output above")?;
    eprintln!(
        "man pages in {}; read one with `man -l {}`",
        out.display(),
        out.join("gotofw.8").display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_dir_follows_the_target_dir() {
        let root = Path::new("/src/gotofw");
        assert_eq!(default_dir(root, None), Path::new("/src/gotofw/target/man"));
        assert_eq!(
            default_dir(root, Some("".into())),
            Path::new("/src/gotofw/target/man")
        );
        assert_eq!(
            default_dir(root, Some("out".into())),
            Path::new("/src/gotofw/out/man")
        );
        assert_eq!(
            default_dir(root, Some("/tmp/t".into())),
            Path::new("/tmp/t/man")
        );
    }
}
