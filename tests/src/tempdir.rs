//! [`TempDir`]: a scratch directory (configuration files, sockets) that lives as long as its
//! guard.

use std::{
    env, fs,
    os::unix::fs::DirBuilderExt as _,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result};

use crate::names::unique_name;

/// A directory under the system's temporary directory, readable by its owner only, named
/// [`unique_name`]`(prefix)` and removed with everything in it on `Drop` (also while a failing
/// test unwinds).
#[derive(Debug)]
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// Creates the directory.
    pub fn new(prefix: &str) -> Result<Self> {
        let path = env::temp_dir().join(unique_name(prefix));
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        Ok(Self(path))
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        // Ignored: nothing better to do in a destructor.
        let _ = fs::remove_dir_all(&self.0);
    }
}
