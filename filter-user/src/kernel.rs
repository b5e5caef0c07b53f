//! Loading the XDP program, filling its maps, attaching and pinning it; and reading it back.
//!
//! Attach is all or nothing, even under `kill -9`: the programs are loaded unarmed (they hand
//! every packet to the programs they replace, or pass it), their maps filled, and everything is
//! put on the interface and pinned in a private staging directory before one write arms the new
//! rule set; then its pins move into place. A failure before the arming leaves the interface as
//! it was, and the next command settles what a killed one left behind (see [`recover`]).

use std::{
    fs, io,
    os::fd::AsFd as _,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, anyhow};
use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, LpmTrie, MapData, PerCpuArray, lpm_trie::Key},
    programs::{
        LinkOrder, ProgramError, SchedClassifier, TcAttachType, Xdp, XdpMode,
        links::{FdLink, LinkError, PinnedLink},
        tc::{NlOptions, SchedClassifierLink, TcAttachOptions, TcHandle},
        xdp::XdpLink,
    },
};
use filter_common::{COUNTER_ENTRIES, Counter, Direction, META_CHUNK, counter_index};
use serde::{Deserialize, Serialize};

use crate::{
    EBPF_OBJECT, bpf_sys,
    compile::Compiled,
    error::UsageError,
    system::{self, InterfaceLock},
};

/// Name of the XDP program in the object.
pub(crate) const PROGRAM: &str = "gotofw_ingress";
/// Name of the TC egress program in the object (every mode but ingress-only).
pub(crate) const EGRESS_PROGRAM: &str = "gotofw_egress";
/// The object's maps, pinned under these file names (lower case).
const MAPS: [&str; 11] = [
    "PORTS", "CONFIG", "NETS_V4", "NETS_V6", "COUNTERS", "FRAGS", "FLOWS", "META", "LOG",
    // Program arrays lose their entries when no user-space reference is left: pinned, they
    // keep the drop-log programs for as long as the filter is attached (and the programs a
    // killed `--replace` took the place of, for the next command to put back).
    "TAIL_XDP", "TAIL_TC",
];
/// Drop-log programs, tail-called by the main ones.
const LOG_XDP_PROGRAM: &str = "gotofw_log_xdp";
const LOG_TC_PROGRAM: &str = "gotofw_log_tc";
/// File name of the XDP link pin.
pub(crate) const LINK_PIN: &str = "link";
/// File name of the tcx egress link pin (tcx).
pub(crate) const TC_LINK_PIN: &str = "tc_link";
/// File name of the egress program's pin (clsact: a netlink filter has no link to pin, and the
/// program is what a roll-back puts back).
pub(crate) const EGRESS_PROG_PIN: &str = "egress_prog";
/// Priority and handle of gotofw's clsact egress filter: fixed, so that any later command finds
/// it without a record.
pub(crate) const CLSACT_PRIORITY: u16 = 0xc0f0;
pub(crate) const CLSACT_HANDLE: TcHandle = TcHandle::new(0, 0xf0);

/// Which hook carries the egress program (stateful and stateless mode).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum EgressHook {
    /// tcx where the kernel has it (Linux 6.6 and later), clsact otherwise.
    #[default]
    Auto,
    /// A tcx link (Linux 6.6 and later), pinned like the XDP link.
    Tcx,
    /// A direct-action filter on the clsact qdisc (older kernels; `tc filter show dev IFACE
    /// egress` lists it).
    Clsact,
}

impl EgressHook {
    /// `auto`, `tcx` or `clsact`, as typed and shown.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Tcx => "tcx",
            Self::Clsact => "clsact",
        }
    }
}

/// How to attach the XDP program.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum XdpModeArg {
    /// Native if the driver supports it, generic otherwise.
    #[default]
    Auto,
    /// In the driver (fastest); fails if the driver lacks XDP support.
    Native,
    /// In the kernel's generic path (any interface, slower).
    Generic,
}

impl XdpModeArg {
    const fn aya(self) -> XdpMode {
        match self {
            Self::Auto => XdpMode::Default,
            Self::Native => XdpMode::Driver,
            Self::Generic => XdpMode::Skb,
        }
    }

    /// `auto`, `native` or `generic`, as typed and shown.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Native => "native",
            Self::Generic => "generic",
        }
    }
}

/// A rule as stored with the filter and shown by `status` and `scenarios`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleInfo {
    /// Rule name.
    pub name: String,
    /// `scenario` or `allowance`.
    pub kind: String,
    /// `allow` or `block`.
    pub action: String,
    /// `tcp`, `udp` or `tcp+udp`.
    pub protocol: String,
    /// Remote ports, e.g. `3478` or `45000-49999`.
    pub ports: String,
    /// Local ports the rule is limited to, e.g. `68,546` or `22`; empty for any.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub local_ports: String,
    /// `"any"` or a list of CIDRs.
    pub networks: serde_json::Value,
    /// What it is for.
    pub description: String,
}

/// What gotofw stores next to the maps about an attached filter.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    /// Format version of this record ([`META_VERSION`]; checked on reading).
    pub version: u32,
    /// Interface name at attach time.
    pub interface: String,
    /// Interface index at attach time.
    pub ifindex: u32,
    /// Network namespace (nsfs inode) of the interface.
    #[serde(default)]
    pub netns: u64,
    /// Scenario name.
    pub scenario: String,
    /// `stateful`, `stateless` or `ingress-only`.
    pub mode: String,
    /// Flow table limits (stateful mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flows: Option<crate::compile::FlowLimits>,
    /// The operator's choices the rules were built from (for `set-scenario`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<crate::scenario::Options>,
    /// XDP mode the program runs in (`native` or `generic`; `auto` only before attach).
    pub xdp_mode: XdpModeArg,
    /// The hook the egress program runs in (`tcx` or `clsact`; none in ingress-only mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress_hook: Option<EgressHook>,
    /// gotofw added the interface's clsact qdisc for its egress filter (there was none): the
    /// filter's removal removes the qdisc too, unless it holds other filters by then.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub clsact_qdisc: bool,
    /// Unix time of the attach.
    pub attached_at: u64,
    /// The compiled rules, in match order (rule `i` counts in slot `FIXED_SLOTS + i`).
    pub rules: Vec<RuleInfo>,
    /// Enabled allowances that are not port rules.
    pub allowances: Vec<String>,
}

/// What `attach` needs.
#[derive(Clone, Debug)]
pub struct AttachPlan {
    /// Interface name.
    pub iface: String,
    /// Its index.
    pub ifindex: u32,
    /// Map contents.
    pub compiled: Compiled,
    /// Record to store.
    pub meta: Meta,
    /// Attach mode.
    pub xdp_mode: XdpModeArg,
    /// The egress hook to use (a swap keeps the one in use; none in ingress-only mode).
    pub egress_hook: EgressHook,
    /// Swap the rule set of an attached filter instead of attaching a new one.
    pub replace: bool,
}

/// Loads the programs (the egress one in every mode but ingress-only) with their maps filled
/// from `compiled`, not attached.
pub fn load(compiled: &Compiled, meta: &[u8]) -> anyhow::Result<Ebpf> {
    load_reusing(compiled, meta, None)
}

/// Like [`load`], but with the flow map pinned at `flows` (when given) instead of a new one:
/// a rule-set swap keeps the flows, which the new rules then recheck at their next packet. The
/// drop log pinned next to it (`log` in the same directory), if any, is kept too, so a running
/// `gotofw log` goes on reading.
pub fn load_reusing(
    compiled: &Compiled,
    meta: &[u8],
    flows: Option<&Path>,
) -> anyhow::Result<Ebpf> {
    load_with(compiled, meta, flows, filters_egress(compiled.config.mode))
}

/// Whether a rule set of config `mode` filters at the egress (every mode but ingress-only).
const fn filters_egress(mode: u32) -> bool {
    mode != filter_common::MODE_INGRESS_ONLY
}

/// Like [`load_reusing`], with the egress program loaded if `egress` (it passes everything in
/// ingress-only mode, and takes a filter's egress link in a `--replace` to ingress-only).
fn load_with(
    compiled: &Compiled,
    meta: &[u8],
    flows: Option<&Path>,
    egress: bool,
) -> anyhow::Result<Ebpf> {
    let v4 = u32::try_from(compiled.nets_v4.len().max(1)).context("too many IPv4 networks")?;
    let v6 = u32::try_from(compiled.nets_v6.len().max(1)).context("too many IPv6 networks")?;
    let mut loader = EbpfLoader::new();
    loader
        .map_max_entries("NETS_V4", v4)
        .map_max_entries("NETS_V6", v6)
        .map_max_entries("FLOWS", compiled.flow_table_size.max(16))
        .map_max_entries("META", meta_entries(meta.len())?);
    let log = flows
        .and_then(Path::parent)
        .map(|dir| dir.join("log"))
        .filter(|p| p.exists());
    if let Some(path) = flows {
        loader.map_pin_path("FLOWS", path);
    }
    if let Some(path) = &log {
        loader.map_pin_path("LOG", path.as_path());
    }
    let mut ebpf = loader
        .load(EBPF_OBJECT)
        .context("loading the gotofw eBPF object (maps)")?;
    fault_point("loaded");
    fill(&mut ebpf, compiled, meta)?;
    fault_point("filled");
    let program: &mut Xdp = ebpf
        .program_mut(PROGRAM)
        .ok_or_else(|| anyhow!("the eBPF object has no program {PROGRAM}"))?
        .try_into()?;
    program
        .load()
        .context("the kernel refused the gotofw XDP program (verifier)")?;
    if egress {
        let egress: &mut SchedClassifier = ebpf
            .program_mut(EGRESS_PROGRAM)
            .ok_or_else(|| anyhow!("the eBPF object has no program {EGRESS_PROGRAM}"))?
            .try_into()?;
        egress
            .load()
            .context("the kernel refused the gotofw TC egress program (verifier)")?;
    }
    load_drop_log(&mut ebpf, filters_egress(compiled.config.mode))?;
    fault_point("verified");
    Ok(ebpf)
}

/// Loads the drop-log programs and puts them in the tail-call maps.
fn load_drop_log(ebpf: &mut Ebpf, egress: bool) -> anyhow::Result<()> {
    let xdp: &mut Xdp = ebpf
        .program_mut(LOG_XDP_PROGRAM)
        .ok_or_else(|| anyhow!("the eBPF object has no program {LOG_XDP_PROGRAM}"))?
        .try_into()?;
    xdp.load()
        .context("the kernel refused the drop-log XDP program (verifier)")?;
    let fd = xdp.fd()?.try_clone()?;
    let mut slots: aya::maps::ProgramArray<_> =
        aya::maps::ProgramArray::try_from(map_mut(ebpf, "TAIL_XDP")?)?;
    slots
        .set(filter_common::tail::LOG, &fd, 0)
        .context("filling the drop-log map")?;
    if egress {
        let tc: &mut SchedClassifier = ebpf
            .program_mut(LOG_TC_PROGRAM)
            .ok_or_else(|| anyhow!("the eBPF object has no program {LOG_TC_PROGRAM}"))?
            .try_into()?;
        tc.load()
            .context("the kernel refused the drop-log TC program (verifier)")?;
        let fd = tc.fd()?.try_clone()?;
        let mut slots: aya::maps::ProgramArray<_> =
            aya::maps::ProgramArray::try_from(map_mut(ebpf, "TAIL_TC")?)?;
        slots
            .set(filter_common::tail::LOG, &fd, 0)
            .context("filling the drop-log map")?;
    }
    Ok(())
}

/// The TC egress program of a loaded object (every mode but ingress-only).
pub fn egress_program(ebpf: &mut Ebpf) -> anyhow::Result<&mut SchedClassifier> {
    Ok(ebpf
        .program_mut(EGRESS_PROGRAM)
        .ok_or_else(|| anyhow!("the eBPF object has no program {EGRESS_PROGRAM}"))?
        .try_into()?)
}

fn map_mut<'a>(ebpf: &'a mut Ebpf, name: &str) -> anyhow::Result<&'a mut aya::maps::Map> {
    ebpf.map_mut(name)
        .ok_or_else(|| anyhow!("the eBPF object has no map {name}"))
}

fn fill(ebpf: &mut Ebpf, compiled: &Compiled, meta: &[u8]) -> anyhow::Result<()> {
    let mut ports: Array<_, u64> = Array::try_from(map_mut(ebpf, "PORTS")?)?;
    for (index, mask) in &compiled.ports {
        ports.set(*index, mask, 0).context("filling the port map")?;
    }
    let mut config: Array<_, filter_common::Config> = Array::try_from(map_mut(ebpf, "CONFIG")?)?;
    config
        .set(0, compiled.config, 0)
        .context("filling the config map")?;
    let mut v4: LpmTrie<_, [u8; 4], u64> = LpmTrie::try_from(map_mut(ebpf, "NETS_V4")?)?;
    for (net, mask) in &compiled.nets_v4 {
        v4.insert(
            &Key::new(u32::from(net.prefix_len()), net.network().octets()),
            mask,
            0,
        )
        .with_context(|| format!("adding {net} to the IPv4 network map"))?;
    }
    let mut v6: LpmTrie<_, [u8; 16], u64> = LpmTrie::try_from(map_mut(ebpf, "NETS_V6")?)?;
    for (net, mask) in &compiled.nets_v6 {
        v6.insert(
            &Key::new(u32::from(net.prefix_len()), net.network().octets()),
            mask,
            0,
        )
        .with_context(|| format!("adding {net} to the IPv6 network map"))?;
    }
    write_meta(ebpf, meta)
}

/// The XDP program of a loaded object.
pub fn program(ebpf: &mut Ebpf) -> anyhow::Result<&mut Xdp> {
    Ok(ebpf
        .program_mut(PROGRAM)
        .ok_or_else(|| anyhow!("the eBPF object has no program {PROGRAM}"))?
        .try_into()?)
}

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
fn fault_point(stage: &str) {
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

/// Staging pin directories of pin key `key` (`KEY@...`).
pub(crate) fn stale_dirs(key: &str) -> Vec<PathBuf> {
    let Ok(staging) = crate::hostfs::places().map(crate::hostfs::Places::pin_staging) else {
        return Vec::new();
    };
    let Ok(entries) = fs::read_dir(staging) else {
        return Vec::new();
    };
    let prefix = format!("{key}@");
    entries
        .flatten()
        .filter(|entry| entry.file_name().to_string_lossy().starts_with(&prefix))
        .map(|entry| entry.path())
        .collect()
}

/// The rule set's configuration pinned in `dir`.
pub(crate) fn pinned_config(dir: &Path) -> anyhow::Result<filter_common::Config> {
    let data = MapData::from_pin(dir.join("config"))
        .with_context(|| format!("opening {}/config", dir.display()))?;
    let map: Array<_, filter_common::Config> = Array::try_from(aya::maps::Map::Array(data))?;
    Ok(map.get(&0, 0)?)
}

/// Whether generation `a` came after `b` (generations wrap).
const fn newer(a: u32, b: u32) -> bool {
    let ahead = a.wrapping_sub(b);
    ahead != 0 && ahead < u32::MAX / 2
}

/// Settles what an attach killed midway left in staging for pin key `key`; the caller holds
/// the interface lock, so no attach is running.
///
/// An attach arms its rule set with one write, after everything is staged and before its pins
/// move into place. A staged rule set that is armed (and newer than the pinned one) is in force:
/// its pins move into place (roll forward). One that is not armed was never in force: the links
/// get back the programs of the pinned rule set, and the staged pins go, which detaches links
/// pinned only there (roll back). Either way the interface goes on doing what it did; only the
/// pins catch up. Then the pinned filter lets go of what only the switch needed.
fn recover(key: &str) -> anyhow::Result<()> {
    let final_dir = system::key_dir(key)?;
    for dir in stale_dirs(key) {
        let staged = pinned_config(&dir).ok();
        let pinned = if final_dir.exists() {
            Some(pinned_config(&final_dir)?)
        } else {
            None
        };
        let in_force = staged.is_some_and(|s| {
            s.armed == filter_common::ARMED
                && pinned.is_none_or(|p| newer(s.generation, p.generation))
        });
        // Our own staging (an attach that failed and undoes itself) needs no telling.
        let killed = !is_own(&dir);
        let note = |what: &str| {
            if killed {
                eprintln!("gotofw: note: {key}: a gotofw attach was killed midway; {what}");
            }
        };
        let out_of_force = match (in_force, pinned.is_some()) {
            (true, true) => {
                note("its rule set was armed and is in force: moved its pins into place");
                swap_into_place(&dir, &final_dir)
                    .with_context(|| format!("moving {} into place", dir.display()))?
            }
            (true, false) => {
                note("its rule set was armed and is in force: moved its pins into place");
                fs::rename(&dir, &final_dir)
                    .with_context(|| format!("moving {} into place", dir.display()))?;
                continue;
            }
            (false, true) => {
                note(if staged.is_some_and(|s| s.armed == filter_common::ARMED) {
                    "removed the pins of the rule set it replaced"
                } else {
                    "its rule set was never armed: removed it, the filter in force is unchanged"
                });
                restore_links(&final_dir, key)?;
                remove_stray_clsact(&dir, &final_dir, key);
                dir
            }
            (false, false) => {
                note("its rule set was never armed: removed it, the interface is unfiltered");
                remove_stray_clsact(&dir, &final_dir, key);
                dir
            }
        };
        // The rule set that is not in force; its links, if pinned only here, go with it.
        fs::remove_dir_all(&out_of_force)
            .with_context(|| format!("removing {}", out_of_force.display()))?;
    }
    if final_dir.exists() {
        settle(&final_dir, key)?;
    }
    Ok(())
}

/// Removes a clsact egress filter that the attach whose pins are in `staged` may have attached,
/// unless the filter pinned in `final_dir` uses it. (No committed gotofw filter of this pin key
/// uses it then, so a filter at gotofw's priority and handle can only be that attach's.)
fn remove_stray_clsact(staged: &Path, final_dir: &Path, key: &str) {
    if pinned_hook(final_dir) == Some(EgressHook::Clsact) {
        return;
    }
    if let Some(iface) = local_interface(staged, key).or_else(|| local_interface(final_dir, key)) {
        remove_clsact(&iface);
        if pinned_meta(staged).is_ok_and(|m| m.clsact_qdisc) {
            remove_clsact_qdisc(&iface);
        }
    }
}

/// Whether the staging directory `dir` is this process's (`KEY@new-PID...`).
fn is_own(dir: &Path) -> bool {
    let name = dir.file_name().unwrap_or_default().to_string_lossy();
    let ours = format!("new-{}", std::process::id());
    name.split_once('@')
        .is_some_and(|(_, rest)| rest.strip_suffix("-old").unwrap_or(rest) == ours)
}

/// [`recover`], unless another command holds the interface lock (it is the one at work, and
/// recovers itself if it fails), or there is nothing to recover. Read-only commands call it
/// before they read the pins, so that what they show is what the interface does.
///
/// Only for filters of this network namespace: what a killed attach left in another one is for
/// a command there (a clsact filter is reached by netlink from its own namespace only).
fn recover_if_idle(key: &str) -> anyhow::Result<()> {
    let name = key.split(':').next().unwrap_or(key);
    if system::pin_key(name) != key || stale_dirs(key).is_empty() {
        return Ok(());
    }
    match InterfaceLock::try_acquire(key)? {
        Some(_lock) => recover(key),
        None => Ok(()),
    }
}

/// Puts back into the links pinned in `dir` the programs of the rule set pinned there, where an
/// attach that did not arm its own left those in them (the programs are found by their config
/// map; a program the link still runs is left alone).
fn restore_links(dir: &Path, key: &str) -> anyhow::Result<()> {
    if dir.join(EGRESS_PROG_PIN).exists() {
        // A clsact filter has no link to ask what it runs: put the program back in any case.
        let iface = local_interface(dir, key).ok_or_else(|| {
            anyhow!(
                "the egress filter of {key} is a clsact filter of another network namespace: run gotofw there"
            )
        })?;
        let mut program = SchedClassifier::from_pin(dir.join(EGRESS_PROG_PIN))
            .context("opening the pinned egress program")?;
        let id = program
            .attach_to_link(clsact_link(&iface)?)
            .context("putting the egress program back into the clsact filter")?;
        std::mem::forget(program.take_link(id)?);
    }
    let config_id = MapData::from_pin(dir.join("config"))
        .with_context(|| format!("opening {}/config", dir.display()))?
        .info()?
        .id();
    for (pin, name) in [(LINK_PIN, PROGRAM), (TC_LINK_PIN, EGRESS_PROGRAM)] {
        let path = dir.join(pin);
        let Some(running) = link_program(&path) else {
            continue;
        };
        let uses_config = |p: &aya::programs::ProgramInfo| {
            p.map_ids()
                .ok()
                .flatten()
                .is_some_and(|ids| ids.contains(&config_id))
        };
        if uses_config(&running) {
            continue;
        }
        let program = aya::programs::loaded_programs()
            .flatten()
            .find(|p| p.name_as_str() == Some(name) && uses_config(p))
            .ok_or_else(|| {
                anyhow!(
                    "{} runs program {} and the program of the rule set pinned in {} is gone: detach and attach again",
                    path.display(),
                    running.id(),
                    dir.display()
                )
            })?;
        let link =
            bpf_sys::obj_get(&path).with_context(|| format!("opening {}", path.display()))?;
        bpf_sys::link_update(link.as_fd(), program.fd()?.as_fd()).with_context(|| {
            format!(
                "putting program {} back into {}",
                program.id(),
                path.display()
            )
        })?;
    }
    Ok(())
}

/// The program the link pinned at `path` runs, if there is such a link.
fn link_program(path: &Path) -> Option<aya::programs::ProgramInfo> {
    let link = PinnedLink::from_pin(path).ok()?;
    let id = FdLink::from(link).info().ok()?.program_id();
    aya::programs::loaded_programs()
        .flatten()
        .find(|p| p.id() == id)
}

/// Lets go of what only the switch to the rule set pinned in `dir` needed (each step changes
/// nothing a packet sees, and may be repeated): the programs it replaced, kept in the tail-call
/// tables for as long as it was not armed; and in ingress-only mode the egress link, which a
/// filter's replacement keeps passing everything until then (with the clsact qdisc, if gotofw
/// added it).
fn settle(dir: &Path, key: &str) -> anyhow::Result<()> {
    for table in ["tail_xdp", "tail_tc"] {
        let Ok(data) = MapData::from_pin(dir.join(table)) else {
            continue;
        };
        let mut slots = aya::maps::ProgramArray::try_from(aya::maps::Map::ProgramArray(data))?;
        // An empty slot (the usual case) is no error to speak of.
        let _ = slots.clear_index(&filter_common::tail::PREVIOUS);
    }
    if !filters_egress(pinned_config(dir)?.mode) {
        let tc_link = dir.join(TC_LINK_PIN);
        if tc_link.exists() {
            fs::remove_file(&tc_link).with_context(|| format!("removing {}", tc_link.display()))?;
        }
        let egress = dir.join(EGRESS_PROG_PIN);
        if egress.exists()
            && let Some(iface) = local_interface(dir, key)
        {
            remove_clsact(&iface);
            if pinned_meta(dir).is_ok_and(|m| m.clsact_qdisc) {
                remove_clsact_qdisc(&iface);
            }
            fs::remove_file(&egress).with_context(|| format!("removing {}", egress.display()))?;
        }
    }
    Ok(())
}

/// Attaches (or, with `replace`, swaps in) a filter as planned, holding the interface lock;
/// returns the record stored with it (with the XDP mode in use).
pub fn attach(plan: &AttachPlan) -> anyhow::Result<Meta> {
    attach_with(&plan.iface, || Ok(plan.clone()))
}

/// Like [`attach`], with the plan made by `plan` once the interface lock is held: a
/// read-modify-write of the attached filter (`set-scenario`) cannot lose a change another
/// command made meanwhile.
///
/// All or nothing, a SIGKILL included: the new rule set is loaded unarmed (its programs hand
/// packets to the ones they replace, or pass them), staged, swapped into the links, pinned in a
/// staging directory, and then armed by one write; only then do its pins move into place. A
/// failure or kill before the arming leaves the previous filter in force, after it the new one
/// ([`recover`] tidies the pins at the next command).
pub fn attach_with(
    iface: &str,
    plan: impl FnOnce() -> anyhow::Result<AttachPlan>,
) -> anyhow::Result<Meta> {
    // The name becomes a lock file's name: check it before anything is created.
    system::check_interface_name(iface)?;
    let places = system::ensure_bpffs()?;
    for dir in [places.pin_root(), places.pin_staging()] {
        system::create_private_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let key = system::pin_key(iface);
    let _lock = InterfaceLock::acquire(&key)?;
    fault_point("locked");
    let plan = &plan()?;
    recover(&key)?;
    let final_dir = system::key_dir(&key)?;
    // A filter that does not filter (severed, its interface re-created...) is repaired: it goes,
    // once the new rule set is loaded, and the new one is attached anew.
    let broken = if final_dir.exists() {
        broken_filter(&final_dir, &key)?
    } else {
        None
    };
    let exists = final_dir.exists() && broken.is_none();
    if exists && !plan.replace {
        return Err(UsageError::AlreadyAttached(plan.iface.clone()).into());
    }
    if !exists && plan.replace && broken.is_none() {
        return Err(UsageError::NothingToReplace(plan.iface.clone()).into());
    }
    let mut meta = plan.meta.clone();
    let mut compiled = plan.compiled.clone();
    compiled.config.generation = 1;
    let mut reuse_flows = None;
    let mut previous = Previous::default();
    if exists {
        if let Some(used) = pinned_hook(&final_dir)
            && plan.egress_hook != EgressHook::Auto
            && plan.egress_hook != used
            && filters_egress(plan.compiled.config.mode)
        {
            return Err(UsageError::EgressHookInUse {
                iface: plan.iface.clone(),
                asked: plan.egress_hook.name(),
                used: used.name(),
            }
            .into());
        }
        let old = read_pins(final_dir.clone())?;
        // A swap keeps the links, so the XDP mode they were attached in.
        meta.xdp_mode = old.meta.xdp_mode;
        // A new generation makes every kept flow be checked against the new rules.
        compiled.config.generation = old.config()?.generation.wrapping_add(1).max(1);
        // The qdisc gotofw added stays gotofw's.
        meta.clsact_qdisc = old.meta.clsact_qdisc;
        let flows = final_dir.join("flows");
        let same_table = old.meta.flows.map(|f| f.table_size) == meta.flows.map(|f| f.table_size);
        if old.meta.mode == "stateful" && meta.mode == "stateful" && same_table && flows.exists() {
            reuse_flows = Some(flows);
        } else if let (Some(was), Some(now)) = (old.meta.flows, meta.flows)
            && old.meta.mode == "stateful"
            && meta.mode == "stateful"
        {
            note_flows_dropped(&plan.iface, &old, was.table_size, now.table_size);
        }
        previous = Previous {
            xdp: link_program(&final_dir.join(LINK_PIN)),
            tc: link_program(&final_dir.join(TC_LINK_PIN)).or_else(|| {
                aya::programs::ProgramInfo::from_pin(final_dir.join(EGRESS_PROG_PIN)).ok()
            }),
        };
    }
    compiled.config.armed = 0;
    let mut ebpf = load_with(
        &compiled,
        &serde_json::to_vec(&meta)?,
        reuse_flows.as_deref(),
        filters_egress(compiled.config.mode) || previous.tc.is_some(),
    )?;
    previous.install(&mut ebpf)?;
    if let Some(health) = &broken {
        let clsact = (pinned_hook(&final_dir) == Some(EgressHook::Clsact))
            .then(|| local_interface(&final_dir, &key))
            .flatten();
        remove_pins(&final_dir, clsact.as_deref())
            .context("removing the filter that was not filtering")?;
        eprintln!(
            "gotofw: note: {}: its filter was not filtering ({}): removed it and attaching anew (counters and flows restart)",
            plan.iface,
            health.text()
        );
    }
    let pid = std::process::id();
    let tmp = places.pin_staging().join(format!("{key}@new-{pid}"));
    let result = stage_and_arm(&mut ebpf, plan, &mut meta, &tmp, &final_dir, exists);
    if let Err(e) = result {
        // Whatever was staged goes; links swapped before the arming get their programs back.
        // (The programs and links not pinned go when `ebpf` drops.)
        if let Err(undo) = recover(&key) {
            return Err(e.context(format!("and undoing the attach failed too: {undo:#}")));
        }
        return Err(e);
    }
    fault_point("renamed");
    // The new rule set is in force and in place; what is left is tidying.
    let tidy = || -> anyhow::Result<()> {
        for dir in stale_dirs(&key) {
            fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
        }
        settle(&final_dir, &key)
    };
    tidy().context(
        "the new rule set is in force, but letting go of the old one failed (the next gotofw command on the interface tries again)",
    )?;
    Ok(meta)
}

/// The programs a `--replace` takes the place of, which the new ones hand packets to until
/// they are armed.
#[derive(Default)]
struct Previous {
    xdp: Option<aya::programs::ProgramInfo>,
    tc: Option<aya::programs::ProgramInfo>,
}

impl Previous {
    /// Puts the programs in the new object's tail-call tables.
    fn install(&self, ebpf: &mut Ebpf) -> anyhow::Result<()> {
        for (program, table) in [(&self.xdp, "TAIL_XDP"), (&self.tc, "TAIL_TC")] {
            let Some(program) = program else { continue };
            let fd = program
                .fd()
                .context("opening the attached filter's program")?;
            let mut slots = aya::maps::ProgramArray::try_from(map_mut(ebpf, table)?)?;
            slots
                .set(filter_common::tail::PREVIOUS, &fd, 0)
                .context("handing the new programs the attached filter's")?;
        }
        Ok(())
    }
}

/// Stages the loaded, unarmed rule set in `tmp`, puts it on the interface (new links, or
/// swapped into the links pinned in `final_dir` with `replace`), arms it and moves its pins
/// into place.
fn stage_and_arm(
    ebpf: &mut Ebpf,
    plan: &AttachPlan,
    meta: &mut Meta,
    tmp: &Path,
    final_dir: &Path,
    replace: bool,
) -> anyhow::Result<()> {
    system::create_private_dir(tmp).with_context(|| format!("creating {}", tmp.display()))?;
    for name in MAPS {
        let map = ebpf
            .map(name)
            .ok_or_else(|| anyhow!("the eBPF object has no map {name}"))?;
        map.pin(tmp.join(name.to_lowercase()))
            .with_context(|| format!("pinning map {name} in {}", tmp.display()))?;
    }
    fault_point("maps-pinned");
    let program = program(ebpf)?;
    let link_id = if replace {
        let old = PinnedLink::from_pin(final_dir.join(LINK_PIN))
            .context("opening the attached filter's link")?;
        let old: XdpLink = FdLink::from(old)
            .try_into()
            .context("the pinned link is not an XDP link")?;
        program
            .attach_to_link(old)
            .context("swapping the new rule set into the attached link")?
    } else {
        let (id, mode) = attach_in_mode(program, plan)?;
        meta.xdp_mode = mode;
        id
    };
    fault_point("attached");
    let link: FdLink = program
        .take_link(link_id)?
        .try_into()
        .map_err(|e: LinkError| {
            anyhow!("the kernel gave no bpf_link for XDP ({e}); gotofw needs Linux 5.9 or later")
        })?;
    link.pin(tmp.join(LINK_PIN))
        .with_context(|| format!("pinning the link in {}", tmp.display()))?;
    fault_point("link-pinned");
    let old_hook = if replace {
        pinned_hook(final_dir)
    } else {
        None
    };
    let egress = filters_egress(plan.compiled.config.mode);
    if egress || old_hook.is_some() {
        let hook = attach_egress(ebpf, plan, meta, final_dir, tmp, old_hook)?;
        meta.egress_hook = egress.then_some(hook);
    }
    store_meta(ebpf, meta)?;
    fault_point("pinned");
    // The commit: both programs read this one entry.
    let mut config: Array<_, filter_common::Config> = Array::try_from(map_mut(ebpf, "CONFIG")?)?;
    let mut armed = config.get(&0, 0)?;
    armed.armed = filter_common::ARMED;
    config.set(0, armed, 0).context("arming the new rule set")?;
    fault_point("armed");
    if replace {
        swap_into_place(tmp, final_dir).context("swapping the new pins into place")?;
    } else {
        fs::rename(tmp, final_dir)
            .with_context(|| format!("moving the pins into {}", final_dir.display()))?;
    }
    Ok(())
}

/// Moves the staged pin directory `staged` into place at `final_dir`, and the pins there into
/// staging; returns where those are now. One atomic exchange where bpffs can (Linux 5.15 and
/// later), so there is no moment without a directory for the live links; else two renames, and
/// a command that runs after a kill between them finds the armed rule set in staging, no pin
/// directory, and moves it into place ([`recover`]).
fn swap_into_place(staged: &Path, final_dir: &Path) -> io::Result<PathBuf> {
    match exchange(staged, final_dir) {
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            let name = staged.file_name().unwrap_or_default().to_string_lossy();
            let aside = staged.with_file_name(format!("{name}-old"));
            fs::rename(final_dir, &aside)?;
            if let Err(e) = fs::rename(staged, final_dir) {
                let _ = fs::rename(&aside, final_dir);
                return Err(e);
            }
            Ok(aside)
        }
        Err(e) => Err(e),
        Ok(()) => Ok(staged.to_owned()),
    }
}

/// Swaps the directories `a` and `b` atomically (`renameat2` with `RENAME_EXCHANGE`, which bpffs
/// supports since Linux 5.15).
fn exchange(a: &Path, b: &Path) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt as _;
    let a = std::ffi::CString::new(a.as_os_str().as_bytes())?;
    let b = std::ffi::CString::new(b.as_os_str().as_bytes())?;
    // SAFETY: two valid NUL-terminated paths; nothing else is passed.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Attaches in the requested mode; `auto` tries native first and falls back to generic (as
/// xdp-loader does), so the record says which one the interface runs.
fn attach_in_mode(
    program: &mut Xdp,
    plan: &AttachPlan,
) -> anyhow::Result<(aya::programs::xdp::XdpLinkId, XdpModeArg)> {
    let try_mode =
        |program: &mut Xdp, mode: XdpModeArg| program.attach_to_if_index(plan.ifindex, mode.aya());
    match plan.xdp_mode {
        XdpModeArg::Auto => match try_mode(program, XdpModeArg::Native) {
            Ok(id) => Ok((id, XdpModeArg::Native)),
            Err(ProgramError::SyscallError(e))
                if matches!(
                    e.io_error.raw_os_error(),
                    Some(libc::EOPNOTSUPP | libc::EINVAL)
                ) =>
            {
                try_mode(program, XdpModeArg::Generic)
                    .map(|id| (id, XdpModeArg::Generic))
                    .map_err(|e| attach_error(&plan.iface, XdpModeArg::Generic, e))
            }
            Err(e) => Err(attach_error(&plan.iface, XdpModeArg::Native, e)),
        },
        mode => try_mode(program, mode)
            .map(|id| (id, mode))
            .map_err(|e| attach_error(&plan.iface, mode, e)),
    }
}

/// Puts the egress program on the interface: swapped into the filter pinned in `final_dir`
/// when that has an egress hook (`old`), else attached anew on the hook the plan asks for
/// (`auto`: tcx, or clsact where the kernel has no tcx). Pins what a later command needs in
/// `tmp`, and returns the hook in use.
fn attach_egress(
    ebpf: &mut Ebpf,
    plan: &AttachPlan,
    meta: &mut Meta,
    final_dir: &Path,
    tmp: &Path,
    old: Option<EgressHook>,
) -> anyhow::Result<EgressHook> {
    let iface = plan.iface.as_str();
    match old.unwrap_or(plan.egress_hook) {
        EgressHook::Tcx => {
            attach_tcx(ebpf, iface, old.map(|_| final_dir.join(TC_LINK_PIN)), tmp)?;
            Ok(EgressHook::Tcx)
        }
        EgressHook::Clsact => {
            attach_clsact(ebpf, iface, old.is_some(), meta, tmp)?;
            Ok(EgressHook::Clsact)
        }
        EgressHook::Auto => match attach_tcx(ebpf, iface, None, tmp) {
            Ok(()) => Ok(EgressHook::Tcx),
            Err(e) if tcx_missing(&e) => {
                attach_clsact(ebpf, iface, false, meta, tmp)?;
                Ok(EgressHook::Clsact)
            }
            Err(e) => Err(e),
        },
    }
}

/// Whether `err` says the kernel has no tcx (before Linux 6.6 the attach type is unknown).
fn tcx_missing(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause.downcast_ref::<ProgramError>().is_some_and(|e| {
            matches!(e, ProgramError::SyscallError(s)
                if matches!(s.io_error.raw_os_error(), Some(libc::EINVAL | libc::EOPNOTSUPP | libc::ENOSYS | 524)))
        })
    })
}

/// Attaches the egress program with tcx (or swaps it into the link pinned at `old_pin`), and
/// pins the link in `tmp`.
fn attach_tcx(
    ebpf: &mut Ebpf,
    iface: &str,
    old_pin: Option<PathBuf>,
    tmp: &Path,
) -> anyhow::Result<()> {
    let program = egress_program(ebpf)?;
    let link_id = if let Some(old_pin) = old_pin {
        let old = PinnedLink::from_pin(old_pin).context("opening the attached egress link")?;
        let old: SchedClassifierLink = FdLink::from(old)
            .try_into()
            .context("the pinned egress link is not a tcx link")?;
        program
            .attach_to_link(old)
            .context("swapping the new rule set into the attached egress link")?
    } else {
        program
            .attach_with_options(
                iface,
                TcAttachType::Egress,
                TcAttachOptions::TcxOrder(LinkOrder::default()),
            )
            .map_err(|e| {
                anyhow::Error::new(e).context(format!(
                    "attaching the egress program to {iface} with tcx (Linux 6.6 or later; --egress-hook clsact works before, and --ingress-only needs no egress hook)"
                ))
            })?
    };
    fault_point("egress-attached");
    let link: FdLink = program
        .take_link(link_id)?
        .try_into()
        .map_err(|e: LinkError| anyhow!("the kernel gave no bpf_link for tcx ({e})"))?;
    let pin = tmp.join(TC_LINK_PIN);
    link.pin(&pin)
        .with_context(|| format!("pinning the egress link at {}", pin.display()))?;
    Ok(())
}

/// Attaches the egress program as gotofw's direct-action filter on the clsact qdisc of `iface`
/// (created if missing, which `meta` then records at once, in the staged record too), or with
/// `replace` swaps it into that filter, and pins the program in `tmp`. The filter stays when
/// gotofw exits: netlink filters are not tied to a descriptor.
fn attach_clsact(
    ebpf: &mut Ebpf,
    iface: &str,
    replace: bool,
    meta: &mut Meta,
    tmp: &Path,
) -> anyhow::Result<()> {
    if !replace && aya::programs::tc::qdisc_add_clsact(iface).is_ok() {
        // Recorded before the filter exists, so that a kill from here on still finds it gotofw's.
        meta.clsact_qdisc = true;
        store_meta(ebpf, meta)?;
    }
    // (The add fails when the qdisc is there already, which is fine; a real failure shows next.)
    let program = egress_program(ebpf)?;
    let link_id = if replace {
        program
            .attach_to_link(clsact_link(iface)?)
            .context("swapping the new rule set into the clsact egress filter")?
    } else {
        program
            .attach_with_options(
                iface,
                TcAttachType::Egress,
                TcAttachOptions::Netlink(NlOptions {
                    priority: CLSACT_PRIORITY,
                    handle: CLSACT_HANDLE,
                    ..NlOptions::default()
                }),
            )
            .with_context(|| {
                format!("attaching the egress program to {iface} as a clsact filter")
            })?
    };
    fault_point("egress-attached");
    // Dropping the link would detach it.
    std::mem::forget(program.take_link(link_id)?);
    let pin = tmp.join(EGRESS_PROG_PIN);
    program
        .pin(&pin)
        .with_context(|| format!("pinning the egress program at {}", pin.display()))?;
    Ok(())
}

/// gotofw's clsact egress filter on `iface` (in this network namespace).
fn clsact_link(iface: &str) -> io::Result<SchedClassifierLink> {
    SchedClassifierLink::attached(
        iface,
        TcAttachType::Egress,
        CLSACT_PRIORITY,
        CLSACT_HANDLE,
        None,
    )
}

/// Removes gotofw's clsact egress filter from `iface`, if it has one.
fn remove_clsact(iface: &str) {
    if let Ok(link) = clsact_link(iface) {
        // Fails when there is no such filter: nothing to remove.
        let _ = aya::programs::Link::detach(link);
    }
}

/// Removes the clsact qdisc of `iface`, which gotofw added, unless it holds other filters by now
/// (an operator's): those keep it.
fn remove_clsact_qdisc(iface: &str) {
    let Ok(ifindex) = system::ifindex(iface) else {
        // The interface is gone, and its qdisc with it.
        return;
    };
    match crate::qdisc::remove_clsact_if_empty(ifindex) {
        Ok(true) => {}
        Ok(false) => eprintln!(
            "gotofw: note: {iface}: kept the clsact qdisc gotofw added, since other filters use it now (`tc filter show dev {iface}`)"
        ),
        Err(e) => eprintln!(
            "gotofw: note: {iface}: could not remove the clsact qdisc gotofw added ({e}); `tc qdisc del dev {iface} clsact` removes it"
        ),
    }
}

/// Says on standard error that the flows of the stateful filter `old` are not kept: the new
/// rule set's flow table has another size (`from` to `to` entries), and starts empty.
fn note_flows_dropped(iface: &str, old: &Attached, from: u32, to: u32) {
    let alive = old
        .flows(monotonic_coarse_ns())
        .map(|flows| flows.iter().filter(|f| f.alive).count());
    let count = alive.map_or_else(|_| "its".to_owned(), |n| n.to_string());
    eprintln!(
        "gotofw: note: {iface}: the flow table changes size ({from} to {to} entries) and starts empty: {count} flows of the old one are dropped, and replies to them are blocked until their connections send again"
    );
}

/// The egress hook of the filter pinned in `dir`, by its pins.
fn pinned_hook(dir: &Path) -> Option<EgressHook> {
    if dir.join(TC_LINK_PIN).exists() {
        Some(EgressHook::Tcx)
    } else if dir.join(EGRESS_PROG_PIN).exists() {
        Some(EgressHook::Clsact)
    } else {
        None
    }
}

/// The interface of the filter pinned (or staged) in `dir` for pin key `key`, when it is in this
/// network namespace: netlink reaches only those.
fn local_interface(dir: &Path, key: &str) -> Option<String> {
    let meta = pinned_meta(dir).ok()?;
    (system::pin_key(&meta.interface) == key).then_some(meta.interface)
}

/// Rewrites the stored record (after attach, when the mode in use is known).
fn store_meta(ebpf: &mut Ebpf, meta: &Meta) -> anyhow::Result<()> {
    write_meta(ebpf, &serde_json::to_vec(meta)?)
}

/// Room the record may gain between the load and [`store_meta`] (the XDP mode in use, the
/// egress hook): the map is sized when the object loads, from the record as planned.
const META_SLACK: usize = 1024;

/// Entries of the `META` map for a record of `len` bytes, with [`META_SLACK`] to spare.
fn meta_entries(len: usize) -> anyhow::Result<u32> {
    u32::try_from((len + META_SLACK).div_ceil(META_CHUNK))
        .context("the rule set's description is too large to store")
}

/// Stores the JSON record `bytes` in the `META` map, [`META_CHUNK`] bytes an entry, the rest of
/// the map zeroed (a record ends at its first zero byte, or at the end of the map: JSON text
/// holds no zero byte).
fn write_meta(ebpf: &mut Ebpf, bytes: &[u8]) -> anyhow::Result<()> {
    write_meta_to(Array::try_from(map_mut(ebpf, "META")?)?, bytes)
}

/// [`write_meta`] into an opened `META` map.
fn write_meta_to<T: std::borrow::BorrowMut<MapData>>(
    mut map: Array<T, [u8; META_CHUNK]>,
    bytes: &[u8],
) -> anyhow::Result<()> {
    let entries = map.len();
    let room = usize::try_from(entries)? * META_CHUNK;
    if bytes.len() > room {
        return Err(anyhow!(
            "the rule set's description takes {} bytes, more than the {room} its map was sized for",
            bytes.len()
        ));
    }
    let mut parts = bytes.chunks(META_CHUNK);
    for index in 0..entries {
        let mut value = [0u8; META_CHUNK];
        if let Some(part) = parts.next() {
            value[..part.len()].copy_from_slice(part);
        }
        map.set(index, value, 0)
            .context("storing the rule set's description")?;
    }
    Ok(())
}

fn attach_error(iface: &str, mode: XdpModeArg, err: ProgramError) -> anyhow::Error {
    let os = match &err {
        ProgramError::SyscallError(e) => e.io_error.raw_os_error(),
        _ => None,
    };
    match os {
        Some(libc::EBUSY | libc::EEXIST) => UsageError::ForeignXdp {
            iface: iface.to_owned(),
            detail: err.to_string(),
        }
        .into(),
        Some(libc::EOPNOTSUPP) if mode == XdpModeArg::Native => anyhow!(
            "the driver of {iface} does not support native XDP: use --xdp-mode generic (or auto)"
        ),
        _ => anyhow::Error::new(err).context(format!("attaching XDP to {iface}")),
    }
}

/// Removes the filter of `iface` (an interface name, or a `NAME:NETNS` pin key): link first (the
/// interface stops filtering), then the maps. What a killed attach left is settled first, so
/// that its links go too.
pub fn detach(iface: &str) -> anyhow::Result<()> {
    let key = system::key_for(iface)?;
    let dir = system::key_dir(&key)?;
    let nothing = !dir.exists() && stale_dirs(&key).is_empty();
    if !system::bpffs_mounted() || nothing {
        return Err(UsageError::NotAttached(iface.to_owned()).into());
    }
    let _lock = InterfaceLock::acquire(&key)?;
    let staged = !stale_dirs(&key).is_empty();
    recover(&key)?;
    if !dir.exists() {
        // A killed attach that had not armed its rule set: what it staged is gone now.
        if staged {
            return Ok(());
        }
        return Err(UsageError::NotAttached(iface.to_owned()).into());
    }
    // A clsact filter is reached by netlink, in the interface's namespace only: check that
    // before anything goes.
    let clsact = match pinned_hook(&dir) {
        Some(EgressHook::Clsact) => Some(local_interface(&dir, &key).ok_or_else(|| {
            anyhow!(
                "the egress filter of {iface} is a clsact filter, which only its own network namespace reaches: run `gotofw detach` there (nsenter --net=...)"
            )
        })?),
        _ => None,
    };
    remove_pins(&dir, clsact.as_deref())
}

/// Removes the filter pinned in `dir`: its links first (the interface stops filtering), the
/// clsact egress filter of interface `clsact` if given, then the maps.
fn remove_pins(dir: &Path, clsact: Option<&str>) -> anyhow::Result<()> {
    for pin in [LINK_PIN, TC_LINK_PIN] {
        let link_path = dir.join(pin);
        if link_path.exists() {
            let link = PinnedLink::from_pin(&link_path)
                .with_context(|| format!("opening the pinned link {}", link_path.display()))?;
            // Dropping the last reference detaches the program from the interface.
            drop(link.unpin().context("unpinning the link")?);
        }
    }
    if let Some(name) = clsact {
        remove_clsact(name);
        if pinned_meta(dir).is_ok_and(|m| m.clsact_qdisc) {
            remove_clsact_qdisc(name);
        }
    }
    fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
    Ok(())
}

/// The state of the filter pinned in `dir` (pin key `key`, of this network namespace) when it
/// is not filtering: an attach then treats it as absent, removes it and attaches anew.
fn broken_filter(dir: &Path, key: &str) -> anyhow::Result<Option<crate::liveness::Health>> {
    let health = crate::liveness::check(dir, key, &pinned_meta(dir)?);
    Ok((!health.filtering()).then_some(health))
}

/// Puts the rule set pinned for `iface` back on the interface when it is not filtering because
/// its hooks went (the interface re-created, a link severed): the pinned programs, already
/// verified, get new links on the interface's current index, so the rule set, its counters and
/// its flows go on, and no program is loaded (`gotofw run` re-attaches within a second). Returns
/// what was wrong, or `None` when it was filtering. A hook that runs another program is left to
/// a full attach (an error here).
pub fn reattach(iface: &str) -> anyhow::Result<Option<crate::liveness::Health>> {
    let key = system::pin_key(iface);
    let _lock = InterfaceLock::acquire(&key)?;
    recover(&key)?;
    let dir = system::key_dir(&key)?;
    if !dir.exists() {
        return Err(UsageError::NotAttached(iface.to_owned()).into());
    }
    let mut meta = pinned_meta(&dir)?;
    let health = crate::liveness::check(&dir, &key, &meta);
    if health.filtering() {
        return Ok(None);
    }
    if health.state == crate::liveness::State::Replaced {
        return Err(anyhow!(
            "{iface}: a hook runs another program ({})",
            health.detail
        ));
    }
    let ifindex = system::ifindex(iface)?;
    // A new interface of the name may be of another kind (a tun where an Ethernet was).
    crate::link_type::check(iface, ifindex)?;
    let xdp_flags = match meta.xdp_mode {
        XdpModeArg::Generic => aya_obj::generated::XDP_FLAGS_SKB_MODE,
        _ => aya_obj::generated::XDP_FLAGS_DRV_MODE,
    };
    let relink = |pin: &str, attach_type, flags| -> anyhow::Result<()> {
        let path = dir.join(pin);
        let old = bpf_sys::obj_get(&path).with_context(|| format!("opening {}", path.display()))?;
        let target = bpf_sys::link_info(old.as_fd())?;
        if target.ifindex == ifindex && target.ifindex == meta.ifindex {
            return Ok(());
        }
        let program = aya::programs::loaded_programs()
            .flatten()
            .find(|p| p.id() == target.prog_id)
            .ok_or_else(|| anyhow!("program {} of {} is gone", target.prog_id, path.display()))?;
        let link = bpf_sys::link_create(program.fd()?.as_fd(), ifindex, attach_type, flags)
            .with_context(|| format!("attaching program {} to {iface}", program.id()))?;
        // bpffs refuses names with a dot.
        let fresh = dir.join(format!("{pin}_new"));
        let _ = fs::remove_file(&fresh);
        bpf_sys::obj_pin(link.as_fd(), &fresh)
            .with_context(|| format!("pinning {}", fresh.display()))?;
        // The severed link goes with its pin.
        fs::rename(&fresh, &path).with_context(|| format!("replacing {}", path.display()))?;
        Ok(())
    };
    relink(LINK_PIN, bpf_sys::ATTACH_XDP, xdp_flags)?;
    if dir.join(TC_LINK_PIN).exists() {
        relink(TC_LINK_PIN, bpf_sys::ATTACH_TCX_EGRESS, 0)?;
    }
    if dir.join(EGRESS_PROG_PIN).exists() {
        let mut program = SchedClassifier::from_pin(dir.join(EGRESS_PROG_PIN))
            .context("opening the pinned egress program")?;
        remove_clsact(iface);
        // Fails when the qdisc is there already, which is fine; a real failure shows next.
        let _ = aya::programs::tc::qdisc_add_clsact(iface);
        let id = program
            .attach_with_options(
                iface,
                TcAttachType::Egress,
                TcAttachOptions::Netlink(NlOptions {
                    priority: CLSACT_PRIORITY,
                    handle: CLSACT_HANDLE,
                    ..NlOptions::default()
                }),
            )
            .with_context(|| {
                format!("attaching the egress program to {iface} as a clsact filter")
            })?;
        std::mem::forget(program.take_link(id)?);
    }
    meta.ifindex = ifindex;
    store_pinned_meta(&dir, &meta)?;
    let now = crate::liveness::check(&dir, &key, &meta);
    if !now.filtering() {
        return Err(anyhow!(
            "{iface}: still not filtering after re-attaching: {}",
            now.text()
        ));
    }
    Ok(Some(health))
}

/// Rewrites the record stored with the filter pinned in `dir`.
fn store_pinned_meta(dir: &Path, meta: &Meta) -> anyhow::Result<()> {
    let data = MapData::from_pin(dir.join("meta"))
        .with_context(|| format!("opening {}/meta", dir.display()))?;
    write_meta_to(
        Array::try_from(aya::maps::Map::Array(data))?,
        &serde_json::to_vec(meta)?,
    )
}

/// Pin keys of every gotofw filter on this bpffs, any namespace.
/// What attaches killed midway left is settled first (see [`recover`]).
pub fn attached_keys() -> anyhow::Result<Vec<String>> {
    let places = crate::hostfs::places()?;
    let mut staged: Vec<String> = fs::read_dir(places.pin_staging())
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    name.split_once('@').map(|(key, _)| key.to_owned())
                })
                .collect()
        })
        .unwrap_or_default();
    staged.sort();
    staged.dedup();
    for key in staged {
        recover_if_idle(&key)?;
    }
    let mut keys = Vec::new();
    let root = places.pin_root();
    match fs::read_dir(&root) {
        Ok(entries) => {
            for entry in entries {
                keys.push(entry?.file_name().to_string_lossy().into_owned());
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("reading {}", root.display())),
    }
    Ok(keys)
}

/// An attached filter, read back from its pins.
#[derive(Debug)]
pub struct Attached {
    /// Pin directory.
    pub dir: PathBuf,
    /// The stored record.
    pub meta: Meta,
    /// Per-CPU sums by counter index.
    pub counters: Vec<Counter>,
}

/// Reads the filter of `iface` (an interface name, or a `NAME:NETNS` pin key) from its pins.
/// What an attach killed midway left is settled first (see [`recover`]).
pub fn read_attached(iface: &str) -> anyhow::Result<Attached> {
    let key = system::key_for(iface)?;
    recover_if_idle(&key)?;
    let dir = system::key_dir(&key)?;
    if !dir.exists() {
        return Err(UsageError::NotAttached(iface.to_owned()).into());
    }
    read_pins(dir)
}

/// The record stored with the filter pinned (or staged) in `dir`, read entry by entry up to its
/// end; a record of another format version than [`META_VERSION`] is refused.
fn pinned_meta(dir: &Path) -> anyhow::Result<Meta> {
    let meta_data = MapData::from_pin(dir.join("meta"))
        .with_context(|| format!("opening {}/meta", dir.display()))?;
    let meta_map: Array<_, [u8; META_CHUNK]> = Array::try_from(aya::maps::Map::Array(meta_data))?;
    let mut bytes = Vec::new();
    for index in 0..meta_map.len() {
        let chunk = meta_map.get(&index, 0)?;
        match chunk.iter().position(|b| *b == 0) {
            Some(end) => {
                bytes.extend_from_slice(&chunk[..end]);
                break;
            }
            None => bytes.extend_from_slice(&chunk),
        }
    }
    parse_meta(&bytes)
        .with_context(|| format!("reading the filter description in {}/meta", dir.display()))
}

/// Format version of the stored record ([`Meta::version`]).
pub const META_VERSION: u32 = 1;

/// Parses a stored record, after checking its format version.
fn parse_meta(bytes: &[u8]) -> anyhow::Result<Meta> {
    #[derive(Deserialize)]
    struct Head {
        version: u32,
    }
    let head: Head = serde_json::from_slice(bytes)?;
    if head.version != META_VERSION {
        return Err(anyhow!(
            "its record has format version {}, and this gotofw reads version {META_VERSION}: run the gotofw that attached the filter, or detach it and attach it again with this one",
            head.version
        ));
    }
    Ok(serde_json::from_slice(bytes)?)
}

#[cfg(test)]
mod meta_tests {
    use super::*;

    /// A record reads back as stored; one of another format version is refused, naming both.
    #[test]
    fn records_of_another_version_are_refused() {
        let meta = Meta {
            version: META_VERSION,
            interface: "wan0".into(),
            ifindex: 7,
            netns: 1,
            scenario: "udp-turn".into(),
            mode: "stateless".into(),
            flows: None,
            options: None,
            xdp_mode: XdpModeArg::Generic,
            egress_hook: None,
            clsact_qdisc: false,
            attached_at: 0,
            rules: Vec::new(),
            allowances: Vec::new(),
        };
        let bytes = serde_json::to_vec(&meta).unwrap();
        assert_eq!(parse_meta(&bytes).unwrap(), meta);
        let other = serde_json::to_vec(&Meta {
            version: META_VERSION + 1,
            ..meta
        })
        .unwrap();
        let err = parse_meta(&other).unwrap_err().to_string();
        assert!(
            err.contains(&format!("format version {}", META_VERSION + 1))
                && err.contains(&format!("reads version {META_VERSION}")),
            "{err}"
        );
        assert!(parse_meta(b"{\"interface\": \"wan0\"}").is_err());
    }

    /// The map holds the record with room to spare, in whole entries.
    #[test]
    fn the_map_is_sized_from_the_record() {
        assert_eq!(meta_entries(0).unwrap(), 1);
        assert_eq!(meta_entries(META_CHUNK - META_SLACK).unwrap(), 1);
        assert_eq!(meta_entries(META_CHUNK - META_SLACK + 1).unwrap(), 2);
        let big = 9_000_000;
        let entries = usize::try_from(meta_entries(big).unwrap()).unwrap();
        assert!(entries * META_CHUNK >= big + META_SLACK);
        assert!((entries - 1) * META_CHUNK < big + META_SLACK);
    }
}

/// Reads the filter pinned in `dir`.
fn read_pins(dir: PathBuf) -> anyhow::Result<Attached> {
    let meta = pinned_meta(&dir)?;
    let counter_data = MapData::from_pin(dir.join("counters"))
        .with_context(|| format!("opening {}/counters", dir.display()))?;
    let counter_map: PerCpuArray<_, Counter> =
        PerCpuArray::try_from(aya::maps::Map::PerCpuArray(counter_data))?;
    let mut counters = Vec::with_capacity(COUNTER_ENTRIES as usize);
    for index in 0..COUNTER_ENTRIES {
        let values = counter_map.get(&index, 0)?;
        let sum = values.iter().fold(Counter::default(), |acc, c| Counter {
            packets: acc.packets + c.packets,
            bytes: acc.bytes + c.bytes,
        });
        counters.push(sum);
    }
    Ok(Attached {
        dir,
        meta,
        counters,
    })
}

/// A flow read back from the flow map.
#[derive(Clone, Copy, Debug)]
pub struct FlowEntry {
    /// The key.
    pub key: filter_common::FlowKey,
    /// The value.
    pub value: filter_common::FlowValue,
    /// Whether it is still alive (not idle past its timeout).
    pub alive: bool,
    /// Whether it was last judged by the current rule set (otherwise its next packet is
    /// rechecked, and `value.rule` names a rule of an earlier one).
    pub current: bool,
}

/// CLOCK_MONOTONIC_COARSE, the clock the kernel stamps flows with, in nanoseconds.
pub fn monotonic_coarse_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid timespec to write.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &raw mut ts) };
    u64::try_from(ts.tv_sec).unwrap_or(0) * 1_000_000_000 + u64::try_from(ts.tv_nsec).unwrap_or(0)
}

impl Attached {
    /// The rule set's configuration, read back from the config map.
    pub fn config(&self) -> anyhow::Result<filter_common::Config> {
        pinned_config(&self.dir)
    }

    /// Every entry of the flow map, with its liveness at `now` (see [`monotonic_coarse_ns`]).
    pub fn flows(&self, now: u64) -> anyhow::Result<Vec<FlowEntry>> {
        let cfg = self.config()?;
        let data = MapData::from_pin(self.dir.join("flows"))
            .with_context(|| format!("opening {}/flows", self.dir.display()))?;
        let map: aya::maps::HashMap<_, filter_common::FlowKey, filter_common::FlowValue> =
            aya::maps::HashMap::try_from(aya::maps::Map::LruHashMap(data))?;
        let mut out = Vec::new();
        for entry in &map {
            // An entry evicted between two steps of the walk is simply not listed.
            let Ok((key, value)) = entry else { continue };
            out.push(FlowEntry {
                key,
                value,
                alive: filter_common::flow_alive(&cfg, &value, now),
                current: value.generation == cfg.generation,
            });
        }
        Ok(out)
    }

    /// The counter of `slot` in `direction`.
    pub fn counter(&self, direction: Direction, slot: u32) -> Counter {
        self.counters
            .get(counter_index(direction, slot) as usize)
            .copied()
            .unwrap_or_default()
    }
}

impl From<&crate::scenario::Rule> for RuleInfo {
    fn from(rule: &crate::scenario::Rule) -> Self {
        Self {
            name: rule.name.clone(),
            kind: serde_json::to_value(rule.kind)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
            action: rule.action.to_string(),
            protocol: rule.protocols_text(),
            ports: rule.ports_text(),
            local_ports: rule
                .local_ports
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(","),
            networks: serde_json::to_value(&rule.networks).unwrap_or_default(),
            description: rule.description.clone(),
        }
    }
}

impl RuleInfo {
    /// Networks as operators read them: `any`, one or two CIDRs, or a count.
    pub fn networks_text(&self) -> String {
        networks_text(&self.networks)
    }
}

/// Stored networks (`"any"` or a list of CIDRs) as operators read them.
pub fn networks_text(networks: &serde_json::Value) -> String {
    {
        match networks {
            serde_json::Value::Array(list) if list.len() <= 2 => list
                .iter()
                .filter_map(|v| v.as_str())
                .collect::<Vec<_>>()
                .join(","),
            serde_json::Value::Array(list) => format!("{} networks", list.len()),
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `--egress-hook auto` falls back to clsact only when tcx itself is missing.
    #[test]
    fn only_a_missing_tcx_falls_back_to_clsact() {
        let failed = |errno| {
            anyhow::Error::new(ProgramError::SyscallError(aya::sys::SyscallError {
                call: "bpf_mprog_attach",
                io_error: io::Error::from_raw_os_error(errno),
            }))
            .context("attaching the egress program to wan0 with tcx")
        };
        for errno in [libc::EINVAL, libc::EOPNOTSUPP, libc::ENOSYS, 524] {
            assert!(tcx_missing(&failed(errno)), "errno {errno}");
        }
        for errno in [libc::EPERM, libc::ENODEV, libc::EBUSY, libc::ENOMEM] {
            assert!(!tcx_missing(&failed(errno)), "errno {errno}");
        }
        assert!(!tcx_missing(&anyhow!("no such interface")));
    }
}
