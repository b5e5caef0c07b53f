//! [`Attached`]: the guard that detaches what a test attached.

use std::{
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
    process::{Command, Output},
};

use serde_json::Value;

use super::{Gotofw, PIN_ROOT, pin_dir};
use crate::Netns;

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

    /// Its pin directory: `IFACE:NETNS` (the namespace's nsfs inode), so that two namespaces
    /// with an interface of the same name each find their own; a guard made with such a key
    /// (a filter named from another namespace) uses it as it is.
    pub fn pin_dir(&self) -> PathBuf {
        if self.iface.contains(':') {
            return Path::new(PIN_ROOT).join(&self.iface);
        }
        match std::fs::metadata(self.ns.path()) {
            Ok(meta) => Path::new(PIN_ROOT).join(format!("{}:{}", self.iface, meta.ino())),
            Err(_) => pin_dir(&self.iface),
        }
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
