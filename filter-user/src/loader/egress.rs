//! Egress attach: the TC program on a tcx link (Linux 6.6 and later) or as a direct-action
//! filter on the clsact qdisc, and the removal of that filter.

use std::{
    io,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, anyhow};
use aya::{
    Ebpf,
    programs::{
        LinkOrder, ProgramError, SchedClassifier, TcAttachType,
        links::{FdLink, LinkError, PinnedLink},
        tc::{NlOptions, SchedClassifierLink, SchedClassifierLinkId, TcAttachOptions, TcHandle},
    },
};

use super::{
    fault::fault_point,
    meta::{Meta, store_meta},
    object::egress_program,
    options::EgressHook,
    pins::{EGRESS_PROG_PIN, TC_LINK_PIN},
};
use crate::system;

/// Priority and handle of gotofw's clsact egress filter: fixed, so that any later command finds
/// it without a record.
pub(crate) const CLSACT_PRIORITY: u16 = 0xc0f0;
pub(crate) const CLSACT_HANDLE: TcHandle = TcHandle::new(0, 0xf0);

/// Puts the egress program on the interface: swapped into the filter pinned in `final_dir`
/// when that has an egress hook (`old`), else attached anew on the hook `asked`
/// (`auto`: tcx, or clsact where the kernel has no tcx). Pins what a later command needs in
/// `tmp`, and returns the hook in use.
pub(super) fn attach_egress(
    ebpf: &mut Ebpf,
    iface: &str,
    asked: EgressHook,
    meta: &mut Meta,
    final_dir: &Path,
    tmp: &Path,
    old: Option<EgressHook>,
) -> anyhow::Result<EgressHook> {
    match old.unwrap_or(asked) {
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
pub(super) fn tcx_missing(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause.downcast_ref::<ProgramError>().is_some_and(|e| {
            matches!(e, ProgramError::SyscallError(s)
                if matches!(s.io_error.raw_os_error(), Some(libc::EINVAL | libc::EOPNOTSUPP | libc::ENOSYS | 524)))
        })
    })
}

/// Attaches the egress program with tcx (or swaps it into the link pinned at `old_pin`), and
/// pins the link in `tmp`.
pub(super) fn attach_tcx(
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
pub(super) fn attach_clsact(
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
        attach_clsact_filter(program, iface)?
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

/// Attaches `program` as gotofw's direct-action filter (priority [`CLSACT_PRIORITY`], handle
/// [`CLSACT_HANDLE`]) on the clsact qdisc of `iface`, which must be there.
pub(super) fn attach_clsact_filter(
    program: &mut SchedClassifier,
    iface: &str,
) -> anyhow::Result<SchedClassifierLinkId> {
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
        .with_context(|| format!("attaching the egress program to {iface} as a clsact filter"))
}

/// gotofw's clsact egress filter on `iface` (in this network namespace).
pub(super) fn clsact_link(iface: &str) -> io::Result<SchedClassifierLink> {
    SchedClassifierLink::attached(
        iface,
        TcAttachType::Egress,
        CLSACT_PRIORITY,
        CLSACT_HANDLE,
        None,
    )
}

/// Removes gotofw's clsact egress filter from `iface`, if it has one.
pub(super) fn remove_clsact(iface: &str) {
    if let Ok(link) = clsact_link(iface) {
        // Fails when there is no such filter: nothing to remove.
        let _ = aya::programs::Link::detach(link);
    }
}

/// Removes the clsact qdisc of `iface`, which gotofw added, unless it holds other filters by now
/// (an operator's): those keep it.
pub(super) fn remove_clsact_qdisc(iface: &str) {
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
