//! XDP attach: the program on the interface in the mode asked for.

use anyhow::anyhow;
use aya::programs::{ProgramError, Xdp};

use super::options::XdpModeArg;
use crate::error::UsageError;

/// Attaches `program` to `iface` (index `ifindex`) in mode `asked`; `auto` tries native first and falls back to generic (as
/// xdp-loader does), so the record says which one the interface runs, and says why on standard
/// error (a `gotofw: note:` line naming the driver's refusal).
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
                    Some(libc::EOPNOTSUPP | libc::EINVAL | libc::ERANGE)
                ) =>
            {
                let why = refusal(iface, e.io_error.raw_os_error());
                let attached = try_mode(program, XdpModeArg::Generic)
                    .map(|id| (id, XdpModeArg::Generic))
                    .map_err(|e| attach_error(iface, XdpModeArg::Generic, e))?;
                eprintln!(
                    "gotofw: note: {why}: attached in generic XDP mode instead (it filters the same, at more cost per packet)"
                );
                Ok(attached)
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
        Some(libc::EOPNOTSUPP | libc::ERANGE) if mode == XdpModeArg::Native => anyhow!(
            "{}: use --xdp-mode generic (or auto){}",
            refusal(iface, os),
            if os == Some(libc::ERANGE) {
                format!(", or lower the MTU (`ip link set {iface} mtu 1500`)")
            } else {
                String::new()
            }
        ),
        _ => anyhow::Error::new(err).context(format!("attaching XDP to {iface}")),
    }
}

/// Why the driver of `iface` refused native XDP with `errno`, in words.
fn refusal(iface: &str, errno: Option<i32>) -> String {
    match errno {
        Some(libc::EOPNOTSUPP) => format!("the driver of {iface} does not support native XDP"),
        Some(libc::ERANGE) => match mtu(iface) {
            Some(mtu) => format!(
                "the driver of {iface} refuses native XDP at MTU {mtu} (too large for its XDP buffers)"
            ),
            None => format!(
                "the driver of {iface} refuses native XDP at its MTU (too large for its XDP buffers)"
            ),
        },
        other => format!(
            "the driver of {iface} refused native XDP ({})",
            other.map_or_else(
                || "no error code".to_owned(),
                |e| std::io::Error::from_raw_os_error(e).to_string()
            )
        ),
    }
}

/// The MTU of `iface` (`SIOCGIFMTU`), if the kernel tells it.
fn mtu(iface: &str) -> Option<u32> {
    let name = iface.as_bytes();
    // SAFETY: an all-zero `ifreq` is valid (an empty name, a zero union).
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    if name.len() >= req.ifr_name.len() {
        return None;
    }
    for (dst, &src) in req.ifr_name.iter_mut().zip(name) {
        *dst = libc::c_char::from_ne_bytes([src]);
    }
    // SAFETY: a plain datagram socket, closed below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return None;
    }
    // SAFETY: SIOCGIFMTU reads the name and writes the MTU into `req`, which outlives the call.
    let rc = unsafe { libc::ioctl(fd, libc::SIOCGIFMTU, &raw mut req) };
    // SAFETY: `fd` is ours and not used after.
    unsafe { libc::close(fd) };
    if rc < 0 {
        return None;
    }
    // SAFETY: SIOCGIFMTU filled the union's `ifru_mtu`.
    u32::try_from(unsafe { req.ifr_ifru.ifru_mtu }).ok()
}
