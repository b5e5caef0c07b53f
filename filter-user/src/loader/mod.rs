//! The loader: loading the eBPF object, filling its maps, attaching and pinning it; and reading
//! it back. One job a file, after cilium's `pkg/datapath/loader` and aya's `programs/`:
//!
//! Attach is all or nothing, even under `kill -9`: the programs are loaded unarmed (they hand
//! every packet to the programs they replace, or pass it), their maps filled, and everything is
//! put on the interface and pinned in a private staging directory before one write arms the new
//! rule set; then its pins move into place. A failure before the arming leaves the interface as
//! it was, and the next command settles what a killed one left behind (see [`recover`]).
//!
//! - [`options`]: the XDP mode and egress hook asked for (a leaf: others name them freely);
//! - [`object`]: the object loaded unarmed, its maps filled, its programs verified;
//! - [`meta`]: the attached filter's record, stored in its `META` map;
//! - [`xdp`], [`egress`]: the programs put on the interface (XDP; tcx or clsact);
//! - [`pins`]: the pin directory, staging and the move into place;
//! - [`recover`]: what a killed attach left, settled; [`fault`]: where tests kill one;
//! - [`read`]: a filter read back (record, counters, flows); [`learned`]: what its domain
//!   rules learned (the learned map, the DNS statistics); [`detach`], [`reattach`];
//! - this file: [`attach_with`], the order of it all.
//!
//! Modules of the crate use the files' paths (`loader::meta::Meta`); the re-exports below are
//! the library's surface.

pub mod detach;
pub mod egress;
pub mod fault;
pub mod flow_cache;
pub mod learned;
pub mod meta;
pub mod object;
pub mod options;
pub mod pins;
pub mod read;
pub mod reattach;
pub mod recover;
mod veth;
pub mod xdp;

use std::{fs, path::Path};

use anyhow::{Context as _, anyhow};
use aya::{
    Ebpf,
    maps::Array,
    programs::{
        links::{FdLink, LinkError, PinnedLink},
        xdp::XdpLink,
    },
};
use filter_common::names::{map, pin};

pub use self::{
    detach::detach,
    meta::{DomainSetInfo, FilterMode, META_VERSION, Meta, RuleInfo, networks_text},
    object::{egress_program, load, load_reusing, program},
    options::{EgressHook, XdpModeArg},
    read::{Attached, FlowEntry, attached_keys, monotonic_coarse_ns, read_attached},
    reattach::reattach,
};
use self::{
    detach::remove_pins,
    egress::attach_egress,
    fault::fault_point,
    meta::{pinned_meta, store_meta},
    object::{filters_egress, learned_entries, learns, load_with, map_mut},
    pins::{
        EGRESS_PROG_PIN, LINK_PIN, TC_LINK_PIN, local_interface, pinned_hook, stale_dirs,
        swap_into_place,
    },
    read::read_pins,
    recover::{link_program, recover, settle},
    xdp::attach_in_mode,
};
use crate::{
    compile::Compiled,
    error::UsageError,
    system::{self, InterfaceLock},
};

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
/// ([`recover`] tidies the pins at the next command). A new native attach to a veth ends with a
/// note on what that costs TCP from the veth's peer (`veth`).
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
    let mut reuse_learned = None;
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
        let flows = final_dir.join(pin::FLOWS);
        let same_table = old.meta.flows.map(|f| f.table_size) == meta.flows.map(|f| f.table_size);
        if old.meta.mode == FilterMode::Stateful
            && meta.mode == FilterMode::Stateful
            && same_table
            && flows.exists()
            && final_dir.join(pin::REMOTES).exists()
        {
            reuse_flows = Some(flows);
        } else if let (Some(was), Some(now)) = (old.meta.flows, meta.flows)
            && old.meta.mode == FilterMode::Stateful
            && meta.mode == FilterMode::Stateful
        {
            note_flows_dropped(&plan.iface, &old, was.table_size, now.table_size);
        }
        let learned = final_dir.join(pin::LEARNED);
        if learns(&compiled.config)
            && old.meta.domain_sets == meta.domain_sets
            && pinned_max_entries(&learned) == Some(learned_entries(&compiled))
        {
            reuse_learned = Some(learned);
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
        object::Reuse {
            flows: reuse_flows.as_deref(),
            learned: reuse_learned.as_deref(),
        },
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
    if !exists && meta.xdp_mode == XdpModeArg::Native {
        veth::note_native(&plan.iface);
    }
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
        for (program, table) in [(&self.xdp, map::TAIL_XDP), (&self.tc, map::TAIL_TC)] {
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
    for (name, file) in pin::MAPS {
        let map = ebpf
            .map(name)
            .ok_or_else(|| anyhow!("the eBPF object has no map {name}"))?;
        map.pin(tmp.join(file))
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
        let (id, mode) = attach_in_mode(program, &plan.iface, plan.ifindex, plan.xdp_mode)?;
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
        let hook = attach_egress(
            ebpf,
            &plan.iface,
            plan.egress_hook,
            meta,
            final_dir,
            tmp,
            old_hook,
        )?;
        meta.egress_hook = egress.then_some(hook);
    }
    store_meta(ebpf, meta)?;
    fault_point("pinned");
    // The commit: both programs read this one entry.
    let mut config: Array<_, filter_common::Config> = Array::try_from(map_mut(ebpf, map::CONFIG)?)?;
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

/// Entries of the map pinned at `path`, when it can be opened.
fn pinned_max_entries(path: &Path) -> Option<u32> {
    let data = aya::maps::MapData::from_pin(path).ok()?;
    data.info().ok().map(|info| info.max_entries())
}

/// Says on standard error that the flows of the stateful filter `old` are not kept: the new
/// rule set's flow table has another size (`from` to `to` entries), and starts empty.
fn note_flows_dropped(iface: &str, old: &Attached, from: u32, to: u32) {
    let alive = old
        .flows(monotonic_coarse_ns())
        .map(|flows| flows.iter().filter(|f| f.alive).count());
    let count = alive.map_or_else(|_| "its".to_owned(), |n| n.to_string());
    // The same size: the filter replaced has no remote summary for its flows (an earlier
    // gotofw attached it), and flows without their summary cannot be kept.
    let why = if from == to {
        "the filter it replaces has no remote summary (an earlier gotofw attached it), so the flow table starts empty".to_owned()
    } else {
        format!("the flow table changes size ({from} to {to} entries) and starts empty")
    };
    eprintln!(
        "gotofw: note: {iface}: {why}: {count} flows of the old one are dropped, and replies to them are blocked until their connections send again"
    );
}

/// The state of the filter pinned in `dir` (pin key `key`, of this network namespace) when it
/// is not filtering: an attach then treats it as absent, removes it and attaches anew.
fn broken_filter(dir: &Path, key: &str) -> anyhow::Result<Option<crate::liveness::Health>> {
    let health = crate::liveness::check(dir, key, &pinned_meta(dir)?);
    Ok((!health.filtering()).then_some(health))
}
