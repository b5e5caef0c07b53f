//! Where things are: the workspace, cargo's bin directory, programs on `PATH`.

use std::{
    env,
    ffi::OsString,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
};

/// Directories searched for system tools in addition to `PATH`: a non-root
/// `PATH` often lacks the sbin directories where `ip` and `bpftool` live.
const SYSTEM_DIRS: [&str; 4] = ["/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/bin"];

/// The workspace root (the parent of this crate's directory).
pub fn workspace_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the xtask crate lives inside the workspace")
}

/// `$CARGO_HOME/bin`, by default `~/.cargo/bin`: where `cargo install` puts
/// programs such as bpf-linker.
pub fn cargo_bin_dir() -> Option<PathBuf> {
    let cargo_home = env::var_os("CARGO_HOME")
        .filter(|home| !home.is_empty())
        .map(PathBuf::from)
        .or_else(|| env::home_dir().map(|home| home.join(".cargo")))?;
    Some(cargo_home.join("bin"))
}

/// The `PATH` given to every child process: the current one, with cargo's bin
/// directory prepended when it is not already there, so that cargo and the
/// build scripts it runs find a freshly installed bpf-linker.
pub fn child_path() -> OsString {
    let current = env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = env::split_paths(&current).collect();
    if let Some(bin) = cargo_bin_dir()
        && !dirs.contains(&bin)
    {
        dirs.insert(0, bin);
    }
    env::join_paths(dirs).unwrap_or(current)
}

/// Every executable file called `name` in the child `PATH` (cargo's bin
/// directory included) and then in the usual system directories, in that
/// order, without duplicates.
pub fn find_all(name: &str) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = env::split_paths(&child_path()).collect();
    dirs.extend(SYSTEM_DIRS.iter().map(PathBuf::from));
    let mut found: Vec<PathBuf> = Vec::new();
    for dir in dirs {
        let candidate = dir.join(name);
        if is_executable(&candidate) && !found.contains(&candidate) {
            found.push(candidate);
        }
    }
    found
}

/// The first executable file called `name`, as [`find_all`] orders them.
pub fn find(name: &str) -> Option<PathBuf> {
    find_all(name).into_iter().next()
}

fn is_executable(path: &Path) -> bool {
    path.metadata()
        .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn child_path_starts_with_or_contains_cargo_bin() {
        let bin = cargo_bin_dir().expect("HOME or CARGO_HOME is set in tests");
        let dirs: Vec<PathBuf> = env::split_paths(&child_path()).collect();
        assert!(dirs.contains(&bin), "{bin:?} missing from {dirs:?}");
    }

    #[test]
    fn finds_sh_but_not_nonsense() {
        assert!(find("sh").is_some());
        assert!(find("gotofw-no-such-program").is_none());
    }

    #[test]
    fn workspace_root_holds_the_workspace_manifest() {
        assert!(workspace_root().join("Cargo.toml").is_file());
        assert!(workspace_root().join("xtask").is_dir());
    }
}
