//! What native XDP costs on a veth, said at attach.
//!
//! While a veth has an XDP program in native mode, the kernel's veth driver clears TSO and the
//! other software segmentation offloads (`NETIF_F_GSO_SOFTWARE`) on its peer (`veth_xdp_set`,
//! `veth_fix_features` in `drivers/net/veth.c`; `ethtool -k PEER` shows `tx-tcp-segmentation:
//! off [fixed]`), so every TCP segment the peer's side sends is cut to the MTU before the veth
//! and crosses the XDP program, the stack and the forwarding one MTU-size packet at a time. The
//! bench (item 6, run of 2026-12-01) measured a TCP download through a veth gateway at 0.12x its
//! speed without XDP at MTU 1500, and about the same (0.17x) with no XDP program and the peer's
//! TSO switched off by hand. Generic mode does not touch the peer. A physical NIC receives
//! MTU-size frames anyway, so none of this applies there; gotofw says so only for veth.

/// The `gotofw: note:` line for a native attach to `iface`, whose driver is `driver` (`None`
/// when the kernel did not say): only veth gets one.
pub(super) fn native_note(iface: &str, driver: Option<&str>) -> Option<String> {
    (driver == Some("veth")).then(|| {
        format!(
            "gotofw: note: {iface} is a veth: while it has a native XDP program the kernel turns \
             TSO off on its peer, so TCP sent from the peer's side crosses it in MTU-size \
             packets, at a fraction of its speed without XDP; the skb XDP mode keeps the \
             peer's offloads, at more cost per dropped packet (README, \"XDP on a veth\")"
        )
    })
}

/// Prints [`native_note`] for `iface` on standard error, if it has one.
pub(super) fn note_native(iface: &str) {
    if let Some(note) = native_note(iface, driver(iface).as_deref()) {
        eprintln!("{note}");
    }
}

/// `struct ethtool_drvinfo` of `<linux/ethtool.h>`.
#[repr(C)]
struct DrvInfo {
    cmd: u32,
    driver: [u8; 32],
    version: [u8; 32],
    fw_version: [u8; 32],
    bus_info: [u8; 32],
    erom_version: [u8; 32],
    reserved2: [u8; 12],
    n_priv_flags: u32,
    n_stats: u32,
    testinfo_len: u32,
    eedump_len: u32,
    regdump_len: u32,
}

/// The driver of `iface` in this network namespace (`ETHTOOL_GDRVINFO`, what `ethtool -i`
/// shows), if the kernel tells it.
pub(super) fn driver(iface: &str) -> Option<String> {
    const SIOCETHTOOL: libc::c_ulong = 0x8946;
    const ETHTOOL_GDRVINFO: u32 = 0x0000_0003;
    let name = iface.as_bytes();
    // SAFETY: an all-zero `ifreq` is valid (an empty name, a zero union).
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    if name.is_empty() || name.len() >= req.ifr_name.len() {
        return None;
    }
    for (dst, &src) in req.ifr_name.iter_mut().zip(name) {
        *dst = libc::c_char::from_ne_bytes([src]);
    }
    let mut info = DrvInfo {
        cmd: ETHTOOL_GDRVINFO,
        driver: [0; 32],
        version: [0; 32],
        fw_version: [0; 32],
        bus_info: [0; 32],
        erom_version: [0; 32],
        reserved2: [0; 12],
        n_priv_flags: 0,
        n_stats: 0,
        testinfo_len: 0,
        eedump_len: 0,
        regdump_len: 0,
    };
    req.ifr_ifru.ifru_data = (&raw mut info).cast::<libc::c_char>();
    // SAFETY: a plain datagram socket, closed below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return None;
    }
    // SAFETY: SIOCETHTOOL with ETHTOOL_GDRVINFO reads the name from `req` and writes at most
    // `size_of::<DrvInfo>()` bytes into `info`; both outlive the call.
    let rc = unsafe { libc::ioctl(fd, SIOCETHTOOL, &raw mut req) };
    // SAFETY: `fd` is ours and not used after.
    unsafe { libc::close(fd) };
    if rc < 0 {
        return None;
    }
    let end = info.driver.iter().position(|&b| b == 0).unwrap_or(32);
    let driver = std::str::from_utf8(&info.driver[..end]).ok()?;
    (!driver.is_empty()).then(|| driver.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_veth_gets_the_native_note() {
        let note = native_note("wan0", Some("veth")).expect("a veth gets the note");
        assert!(note.starts_with("gotofw: note: wan0 is a veth:"), "{note}");
        assert!(note.contains("TSO off on its peer"), "{note}");
        assert!(note.contains("the skb XDP mode keeps"), "{note}");
        // Not the word of auto's fallback note: a native attach must not read as one
        // (tests/tests/jumbo.rs checks that a native attach says nothing of "generic").
        assert!(!note.contains("generic"), "{note}");
        assert!(!note.contains('\n'), "one line: {note}");
        for other in [Some("mlx5_core"), Some("virtio_net"), Some(""), None] {
            assert_eq!(native_note("eth0", other), None, "{other:?}");
        }
    }

    #[test]
    fn the_loopback_device_is_not_a_veth() {
        // `lo` exists in every namespace; whatever its driver reads as, it is not veth.
        assert_ne!(driver("lo").as_deref(), Some("veth"));
        assert_eq!(driver(""), None);
        assert_eq!(driver("a-name-far-too-long-for-linux"), None);
    }
}
