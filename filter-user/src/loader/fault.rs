//! Fault points: where the kill and pause tests stop an attach.

/// Testing hook, called at each stage of `attach`; it does nothing unless one of these
/// environment variables names `stage`:
///
/// - `GOTOFW_FAULT_STAGE=STAGE`: gotofw raises SIGKILL on itself there, as `kill -9`, a crash or
///   the OOM killer would, so tests can check what each stage leaves behind
///   (`tests/tests/faults.rs`);
/// - `GOTOFW_PAUSE_STAGE=STAGE`: gotofw prints `gotofw: paused at stage STAGE` on standard error
///   and sleeps `GOTOFW_PAUSE_SECS` seconds (default 2, at most 30) holding the interface lock,
///   so tests can run a second command meanwhile.
///
/// The stages, in order: `locked` (lock held, nothing done), `loaded` (maps created), `filled`,
/// `verified` (programs loaded, not armed), `maps-pinned` (maps pinned in the staging
/// directory), `attached` (XDP link created, or with `--replace` the new program swapped into the
/// pinned link), `link-pinned` (XDP link pinned in staging), `egress-attached` (every mode but
/// ingress-only, or a filter with an egress hook replaced: the tcx link or clsact filter created
/// or swapped, its pin not made yet), `pinned`
/// (everything pinned and described in staging), `armed` (the new rule set in force), `renamed`
/// (the new directory in place; with `--replace` the old one not yet removed).
pub(super) fn fault_point(stage: &str) {
    if std::env::var_os("GOTOFW_PAUSE_STAGE").is_some_and(|s| s == stage) {
        let secs = std::env::var("GOTOFW_PAUSE_SECS")
            .ok()
            .and_then(|s| s.parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map_or(2.0, |s| s.min(30.0));
        eprintln!("gotofw: paused at stage {stage} for {secs}s (GOTOFW_PAUSE_STAGE)");
        std::thread::sleep(std::time::Duration::from_secs_f64(secs));
    }
    if std::env::var_os("GOTOFW_FAULT_STAGE").is_some_and(|s| s == stage) {
        // SAFETY: sends a signal to this process; no memory is involved.
        unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
    }
}
