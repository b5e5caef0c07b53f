//! Deciding whether a kernel test can run.

/// Whether the process runs as root (effective uid 0), which creating
/// namespaces, links and XDP programs needs.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions, touches no memory and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Call first in every kernel test: `if !require_root_or_skip("name") { return; }`.
///
/// Returns true when root. Otherwise a skip is allowed only outside CI: when
/// `CI` is `true` this panics (a CI run must not pass by skipping), else it
/// prints `skipping {test}: needs root` to stderr and returns false.
pub fn require_root_or_skip(test: &str) -> bool {
    if is_root() {
        return true;
    }
    let in_ci = std::env::var("CI").is_ok_and(|ci| ci == "true");
    assert!(!in_ci, "kernel test {test} needs root in CI");
    eprintln!("skipping {test}: needs root");
    false
}
