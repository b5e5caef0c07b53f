//! Re-attach: a pinned rule set whose hooks went put back on the interface with new links.

use std::{fs, os::fd::AsFd as _};

use anyhow::{Context as _, anyhow};
use aya::programs::SchedClassifier;

use super::{
    egress::{attach_clsact_filter, remove_clsact},
    meta::{pinned_meta, store_pinned_meta},
    options::XdpModeArg,
    pins::{EGRESS_PROG_PIN, LINK_PIN, TC_LINK_PIN, pinned_config},
    recover::recover,
};
use crate::{
    bpf_sys,
    error::UsageError,
    system::{self, InterfaceLock},
};

/// Puts the rule set pinned for `iface` back on the interface when it is not filtering because
/// its hooks went (the interface re-created, a link severed): the pinned programs, already
/// verified, get new links on the interface's current index, so the rule set, its counters and
/// its flows go on, and no program is loaded (`gotofw run` re-attaches within a second). Returns
/// what was wrong, or `None` when it was filtering. A hook that runs another program, and an
/// interface whose frames are laid out otherwise than the pinned programs read (an Ethernet
/// where a tun was, or the other way round), are left to a full attach (an error here).
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
    // A new interface of the name may be of another kind (a tun where an Ethernet was): the
    // pinned programs read frames the way their configuration's link says, so they go on only
    // on an interface of that layout; another one needs a full attach (`gotofw run` does one).
    let link = crate::link_type::check(iface, ifindex)?;
    let pinned = pinned_config(&dir)?.link;
    if link != pinned {
        return Err(anyhow!(
            "{iface} came back with {} frames, and its pinned rule set reads {} frames",
            crate::link_type::link_name(link),
            crate::link_type::link_name(pinned)
        ));
    }
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
        // Fails when the qdisc is there already, which is fine; a real failure shows next. One
        // gotofw adds (a re-created interface has none) is gotofw's to remove at detach.
        if aya::programs::tc::qdisc_add_clsact(iface).is_ok() {
            meta.clsact_qdisc = true;
        }
        let id = attach_clsact_filter(&mut program, iface)?;
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
