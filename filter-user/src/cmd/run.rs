//! `gotofw run`: the service. Attaches what the configuration file says (adopting a filter that
//! is already attached with the same rule set), serves metrics when the file asks for them,
//! re-reads the file on SIGHUP, and on SIGTERM or SIGINT keeps or detaches the filters as the
//! file says. Every event is one line on standard error (the journal, under systemd).

use std::{
    env,
    net::SocketAddr,
    os::{
        linux::net::SocketAddrExt as _,
        unix::{ffi::OsStrExt as _, net::UnixDatagram},
    },
    path::{Path, PathBuf},
    sync::{Arc, RwLock},
};

use anyhow::Context as _;
use tokio::{
    signal::unix::{SignalKind, signal},
    task::JoinHandle,
};

use crate::{
    cli::RunArgs,
    config::{self, Config, OnStop, Overrides, Resolved},
    error::UsageError,
    liveness, loader,
    metrics::{self, ReloadState, Scope, SharedReload},
    netlink::{LinkEvent, LinkMonitor},
    reconcile, system,
};

/// Runs the command.
pub fn run(args: &RunArgs) -> anyhow::Result<()> {
    let (config, resolved) = read(&args.config)?;
    system::require_capabilities()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve(args.config.clone(), config, resolved))
}

fn log(line: &str) {
    eprintln!("gotofw: {line}");
}

/// Reads and checks the file, as `check-config` does.
fn read(path: &Path) -> anyhow::Result<(Config, Resolved)> {
    let config = config::load(path)?;
    let resolved = config::resolve(Some(&config), &Overrides::default())?;
    Ok((config, resolved))
}

/// The metrics endpoint, while it runs.
struct Endpoint {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

async fn serve(path: PathBuf, mut config: Config, resolved: Resolved) -> anyhow::Result<()> {
    // Handlers first: a SIGHUP or SIGTERM during the first attach waits for it.
    let mut hup = signal(SignalKind::hangup()).context("handling SIGHUP")?;
    let mut term = signal(SignalKind::terminate()).context("handling SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("handling SIGINT")?;

    for note in &resolved.notes {
        log(&format!("note: {note}"));
    }
    // Bound before anything is attached: an address in use stops the start with nothing changed.
    let listener = match config.metrics_listen {
        Some(addr) => Some((addr, metrics::bind(addr).await?)),
        None => None,
    };
    // Subscribed before the first attach, so that no event after it is missed.
    let monitor = LinkMonitor::new().context("subscribing to link events (netlink)")?;
    // SAFETY: the monitor owns its socket and always returns that one descriptor; it is only
    // closed when the AsyncFd drops it.
    let links = unsafe { tokio::io::unix::AsyncFd::register(monitor) }
        .map_err(std::io::Error::from)
        .context("watching link events")?;
    let mut current = resolved.clone();
    let first = resolved.clone();
    let (mut managed, _) = tokio::task::spawn_blocking(move || apply(&first, &[], true))
        .await
        .context("the attach task failed")?
        .map_err(|e| {
            if matches!(e.downcast_ref(), Some(UsageError::UnknownInterface(_))) {
                // At boot the interface may not exist yet: a failure (exit 1), which systemd
                // retries, rather than bad input (exit 2), which it does not.
                anyhow::anyhow!("{e:#} (if it is still coming up, the service is retried)")
            } else {
                e
            }
        })?;
    let scope = Arc::new(RwLock::new(Scope::Only(managed.clone())));
    // The file was loaded whole (a failure at start stops the service).
    let reload: SharedReload = Arc::new(RwLock::new(Some(ReloadState::succeeded())));
    let mut endpoint = listener.map(|(addr, listener)| {
        log(&format!("metrics: serving on http://{addr}/metrics"));
        Endpoint {
            addr,
            task: tokio::spawn(metrics::serve_with(
                listener,
                Arc::clone(&scope),
                Arc::clone(&reload),
            )),
        }
    });
    notify(&format!("READY=1\nSTATUS={}", summary(&resolved)));
    log(&format!(
        "running: {}; SIGHUP re-reads {}, SIGTERM stops (on_stop = {})",
        summary(&resolved),
        path.display(),
        on_stop_name(config.on_stop)
    ));

    // Severing a link (`bpftool link detach`) sends no link event: a sweep finds it.
    let mut sweep = tokio::time::interval(SEVERED_SWEEP);
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    sweep.tick().await;

    let signal_name = loop {
        tokio::select! {
            _ = sweep.tick() => {
                let broken: Vec<String> = managed.iter().filter(|i| severed(i)).cloned().collect();
                repair_all(broken, &current).await;
            }
            _ = hup.recv() => {
                notify(&format!("RELOADING=1\nMONOTONIC_USEC={}", monotonic_usec()));
                log(&format!("SIGHUP: re-reading {}", path.display()));
                match read(&path) {
                    Err(e) => {
                        log(&format!("reload refused, the filters stay as they are: {e:#}"));
                        set_reload(&reload, false);
                    }
                    Ok((new_config, new_resolved)) => {
                        for note in &new_resolved.notes {
                            log(&format!("note: {note}"));
                        }
                        let previous = managed.clone();
                        let next = new_resolved.clone();
                        let (now_managed, whole) =
                            tokio::task::spawn_blocking(move || apply(&next, &previous, false))
                                .await
                                .context("the reload task failed")??;
                        managed = now_managed;
                        set_reload(&reload, whole);
                        if let Ok(mut s) = scope.write() {
                            *s = Scope::Only(managed.clone());
                        }
                        if let Err(e) = update_endpoint(&mut endpoint, new_config.metrics_listen, &scope, &reload).await {
                            log(&format!("metrics: {e:#}"));
                        }
                        config = new_config;
                        current = new_resolved.clone();
                        log(&format!("reloaded: {}", summary(&new_resolved)));
                        notify(&format!("STATUS={}", summary(&new_resolved)));
                    }
                }
                notify("READY=1");
            }
            ready = links.readable() => {
                let touched = match ready {
                    Ok(mut guard) => {
                        let events = guard.get_inner().drain();
                        guard.clear_ready();
                        link_events(events, &managed)
                    }
                    Err(e) => {
                        log(&format!("link events: {e}; checking every interface"));
                        managed.clone()
                    }
                };
                repair_all(touched, &current).await;
            }
            _ = term.recv() => break "SIGTERM",
            _ = int.recv() => break "SIGINT",
        }
    };
    notify("STOPPING=1");
    if let Some(old) = endpoint.take() {
        old.task.abort();
    }
    match config.on_stop {
        OnStop::Keep => log(&format!(
            "{signal_name}: stopping; the filters on {} stay attached (on_stop = \"keep\"); remove them with `gotofw detach IFACE`",
            managed.join(", ")
        )),
        OnStop::Detach => {
            for iface in &managed {
                match loader::detach(iface) {
                    Ok(()) => log(&format!(
                        "{signal_name}: detached {iface} (on_stop = \"detach\")"
                    )),
                    Err(e) => log(&format!("{signal_name}: detaching {iface} failed: {e:#}")),
                }
            }
        }
    }
    Ok(())
}

/// Logs the link events of the interfaces in `managed` that matter (one went: it is not
/// filtering until it comes back) and returns those to check. An overrun (events lost) checks
/// them all.
fn link_events(events: std::io::Result<Vec<LinkEvent>>, managed: &[String]) -> Vec<String> {
    let events = match events {
        Ok(events) => events,
        Err(e) => {
            log(&format!(
                "link events: {e} (some were lost); checking every interface"
            ));
            return managed.to_vec();
        }
    };
    let mut touched = Vec::new();
    for event in events {
        let name = event.name();
        if !managed.iter().any(|m| m == name) {
            continue;
        }
        match &event {
            LinkEvent::Gone { ifindex, .. } => log(&format!(
                "{name}: interface gone (ifindex {ifindex}): not filtering until it comes back"
            )),
            LinkEvent::New { .. } => {
                if !touched.iter().any(|t| t == name) {
                    touched.push(name.to_owned());
                }
            }
        }
    }
    touched
}

/// [`repair`] of each of `ifaces`, off the event loop, one after the other; failures are logged.
async fn repair_all(ifaces: Vec<String>, current: &Resolved) {
    for iface in ifaces {
        let resolved = current.clone();
        let name = iface.clone();
        match tokio::task::spawn_blocking(move || repair(&resolved, &name)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => log(&format!("{iface}: attaching anew failed: {e:#}")),
            Err(e) => log(&format!("{iface}: the repair task failed: {e}")),
        }
    }
}

/// How often `gotofw run` looks for severed links of its filters.
const SEVERED_SWEEP: std::time::Duration = std::time::Duration::from_secs(2);

/// Whether the filter pinned for `iface` (of this namespace) has a severed link.
fn severed(iface: &str) -> bool {
    system::key_for(iface)
        .ok()
        .and_then(|key| system::key_dir(&key).ok())
        .is_some_and(|dir| liveness::severed(&dir))
}

/// After a link event on `iface`, or a sweep that found a severed link: when it is there and its
/// pinned filter is not filtering (a re-created interface, a severed link), attaches it anew. An
/// interface without a filter (a `gotofw detach` meanwhile) is left alone.
fn repair(resolved: &Resolved, iface: &str) -> anyhow::Result<()> {
    let Ok(ifindex) = system::ifindex(iface) else {
        return Ok(());
    };
    if !system::key_dir(&system::key_for(iface)?)?.exists() {
        return Ok(());
    }
    let health = liveness::of(&loader::read_attached(iface)?);
    if health.filtering() {
        return Ok(());
    }
    log(&format!(
        "{iface}: interface is here (ifindex {ifindex}), its filter is {}: attaching anew",
        health.text()
    ));
    // The pinned rule set's programs are verified already: new links for them take
    // milliseconds. When that cannot be done, a full attach of the file's rule set.
    match loader::reattach(iface) {
        Ok(_) => {
            log(&format!(
                "{iface}: attached anew (the pinned rule set on ifindex {ifindex}; counters and flows go on)"
            ));
            Ok(())
        }
        Err(e) => {
            log(&format!(
                "{iface}: re-linking the pinned rule set failed ({e:#}): attaching the file's anew"
            ));
            apply_one(resolved, iface)
        }
    }
}

/// Records the outcome of a reload for the metrics (`gotofw_config_last_reload_*`).
fn set_reload(reload: &SharedReload, successful: bool) {
    if let Ok(mut state) = reload.write() {
        let success_at = state.map_or(0, |s| s.success_at);
        *state = Some(if successful {
            ReloadState::succeeded()
        } else {
            ReloadState {
                successful,
                success_at,
            }
        });
    }
}

/// Starts, moves or stops the metrics endpoint to match `listen`.
async fn update_endpoint(
    endpoint: &mut Option<Endpoint>,
    listen: Option<SocketAddr>,
    scope: &Arc<RwLock<Scope>>,
    reload: &SharedReload,
) -> anyhow::Result<()> {
    if endpoint.as_ref().map(|e| e.addr) == listen {
        return Ok(());
    }
    if let Some(old) = endpoint.take() {
        old.task.abort();
        // Let the aborted task drop its socket before the address is bound again.
        tokio::task::yield_now().await;
        log(&format!("metrics: stopped serving on {}", old.addr));
    }
    if let Some(addr) = listen {
        let listener = metrics::bind(addr).await?;
        let task = tokio::spawn(metrics::serve_with(
            listener,
            Arc::clone(scope),
            Arc::clone(reload),
        ));
        log(&format!("metrics: serving on http://{addr}/metrics"));
        *endpoint = Some(Endpoint { addr, task });
    }
    Ok(())
}

/// Makes the kernel match `resolved`: attaches where there is no filter, swaps the rule set in
/// (as `attach --replace`) where the attached one differs, leaves an equal one alone (its
/// counters and flows go on), and detaches the interfaces of `previous` the file no longer
/// names. At start (`first`) any failure stops the service; on a reload a failing interface is
/// reported and keeps its filter. Returns the interfaces now managed, and whether every one
/// got the file's rule set and every one dropped was detached.
fn apply(
    resolved: &Resolved,
    previous: &[String],
    first: bool,
) -> anyhow::Result<(Vec<String>, bool)> {
    let mut managed = Vec::new();
    let mut whole = true;
    for iface in &resolved.interfaces {
        match apply_one(resolved, iface) {
            Ok(()) => managed.push(iface.clone()),
            Err(e) if first => return Err(e.context(format!("attaching to {iface}"))),
            Err(e) => {
                log(&format!("{iface}: {e:#}"));
                whole = false;
                if previous.contains(iface) {
                    managed.push(iface.clone());
                }
            }
        }
    }
    for iface in previous.iter().filter(|i| !resolved.interfaces.contains(i)) {
        match loader::detach(iface) {
            Ok(()) => log(&format!("{iface}: detached (the file no longer names it)")),
            Err(e) => {
                log(&format!("{iface}: detaching failed: {e:#}"));
                whole = false;
            }
        }
    }
    Ok((managed, whole))
}

/// [`reconcile::interface`], its lines logged.
fn apply_one(resolved: &Resolved, iface: &str) -> anyhow::Result<()> {
    for line in reconcile::interface(resolved, iface)? {
        log(&line);
    }
    Ok(())
}

fn summary(resolved: &Resolved) -> String {
    format!(
        "{} ({} mode) on {}",
        resolved.options.scenario,
        resolved.mode.name(),
        resolved.interfaces.join(", ")
    )
}

const fn on_stop_name(on_stop: OnStop) -> &'static str {
    match on_stop {
        OnStop::Keep => "keep",
        OnStop::Detach => "detach",
    }
}

/// Tells systemd (`Type=notify`) how the service is doing; nothing without `$NOTIFY_SOCKET`.
fn notify(state: &str) {
    let Some(path) = env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    if let Err(e) = notify_to(&path, state) {
        log(&format!("telling systemd {state:?} failed: {e}"));
    }
}

/// Sends `state` to the notification socket `path` (`@NAME` for an abstract one).
fn notify_to(path: &std::ffi::OsStr, state: &str) -> std::io::Result<()> {
    let socket = UnixDatagram::unbound()?;
    if let Some(name) = path.as_bytes().strip_prefix(b"@") {
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
        socket.send_to_addr(state.as_bytes(), &addr)?;
    } else {
        socket.send_to(state.as_bytes(), path)?;
    }
    Ok(())
}

/// CLOCK_MONOTONIC in microseconds, as systemd's `MONOTONIC_USEC=` wants it.
fn monotonic_usec() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid timespec to write.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &raw mut ts) };
    u64::try_from(ts.tv_sec).unwrap_or(0) * 1_000_000
        + u64::try_from(ts.tv_nsec).unwrap_or(0) / 1_000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notifications_reach_path_and_abstract_sockets() {
        let dir = env::temp_dir().join(format!("gotofw-notify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify");
        let _ = std::fs::remove_file(&path);
        let listener = UnixDatagram::bind(&path).unwrap();
        notify_to(path.as_os_str(), "READY=1\nSTATUS=ok").unwrap();
        let mut buf = [0u8; 64];
        let n = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1\nSTATUS=ok");
        std::fs::remove_dir_all(&dir).unwrap();

        let name = format!("gotofw-notify-test-{}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let listener = UnixDatagram::bind_addr(&addr).unwrap();
        notify_to(std::ffi::OsStr::new(&format!("@{name}")), "STOPPING=1").unwrap();
        let n = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"STOPPING=1");
    }
}
