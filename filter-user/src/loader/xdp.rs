//! XDP attach: the program on the interface in the mode asked for.

use anyhow::anyhow;
use aya::programs::{ProgramError, Xdp};

use super::options::XdpModeArg;
use crate::error::UsageError;

/// Attaches `program` to `iface` (index `ifindex`) in mode `asked`; `auto` tries native first and falls back to generic (as
/// xdp-loader does), so the record says which one the interface runs.
pub(super) fn attach_in_mode(
    program: &mut Xdp,
    iface: &str,
    ifindex: u32,
    asked: XdpModeArg,
) -> anyhow::Result<(aya::programs::xdp::XdpLinkId, XdpModeArg)> {
    let try_mode =
        |program: &mut Xdp, mode: XdpModeArg| program.attach_to_if_index(ifindex, mode.aya());
    match asked {
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
                    .map_err(|e| attach_error(iface, XdpModeArg::Generic, e))
            }
            Err(e) => Err(attach_error(iface, XdpModeArg::Native, e)),
        },
        mode => try_mode(program, mode)
            .map(|id| (id, mode))
            .map_err(|e| attach_error(iface, mode, e)),
    }
}

pub(super) fn attach_error(iface: &str, mode: XdpModeArg, err: ProgramError) -> anyhow::Error {
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
