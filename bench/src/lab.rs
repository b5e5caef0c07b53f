//! The veth path: a generator namespace and a receiver namespace joined by a veth pair.
//!
//! The generator is `gotofw_txgen` (returns XDP_TX) run with BPF_PROG_TEST_RUN in live-frames mode
//! (BPF_F_TEST_XDP_LIVE_FRAMES) on the generator's end: every frame is transmitted out of that
//! end (`ndo_xdp_xmit`) into the receiver end's NAPI ring, where the receiver under test (an XDP
//! program, or the stack with nftables or iptables) processes it. The generator thread is pinned
//! to [`GEN_CPU`]; the receiver end runs threaded NAPI and its NAPI thread is pinned to
//! [`RX_CPU`] with taskset, so generator and receiver each have a CPU of their own.
//!
//! The receiver's rate is what its NAPI thread took off the ring (`rx_queue_0_xdp_packets` of
//! `ethtool -S`: frames and packets the NAPI poll processed) per second; its cost per packet is
//! that thread's CPU time (`/proc/PID/schedstat`) divided by the same count, so it is meaningful
//! even when the receiver keeps up with the generator.

use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use aya::programs::{Xdp, XdpMode, xdp::XdpLinkId};
pub use gotofw_tests::txgen::Generator;
use gotofw_tests::{Netns, VethPair, addr_add, veth_pair};
use serde::Serialize;

use crate::sys::{self, GEN_CPU, RX_CPU};

/// One end of a veth pair: namespace, interface name, index and MAC address.
#[derive(Debug)]
pub struct End {
    /// The interface's name.
    pub name: String,
    /// Its index in its namespace.
    pub ifindex: u32,
    /// Its MAC address.
    pub mac: [u8; 6],
}

impl End {
    /// Reads index and MAC of `name` in `ns`.
    pub fn read(ns: &Netns, name: &str) -> Result<Self> {
        let json = ns.ip(["-j", "link", "show", "dev", name])?;
        let value: serde_json::Value = serde_json::from_str(&json)?;
        let link = &value[0];
        let ifindex = link["ifindex"]
            .as_u64()
            .ok_or_else(|| anyhow!("no ifindex for {name}"))? as u32;
        let text = link["address"]
            .as_str()
            .ok_or_else(|| anyhow!("no MAC address for {name}"))?;
        let mut mac = [0u8; 6];
        for (byte, part) in mac.iter_mut().zip(text.split(':')) {
            *byte = u8::from_str_radix(part, 16)?;
        }
        Ok(Self {
            name: name.to_owned(),
            ifindex,
            mac,
        })
    }
}

/// What a receiver did with the generator's traffic in one measurement.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Rate {
    /// Frames the generator sent.
    pub sent: u64,
    /// Frames the receiver processed.
    pub processed: u64,
    /// Seconds the generator ran.
    pub seconds: f64,
    /// Receiver: million packets per second processed.
    pub mpps: f64,
    /// Generator: million frames per second sent.
    pub gen_mpps: f64,
    /// The receiver's NAPI thread's CPU time per processed packet, in nanoseconds.
    pub ns_per_packet: f64,
    /// Share of the receiver CPU its NAPI thread used.
    pub rx_cpu_busy: f64,
}

/// Two namespaces joined by a veth pair, the generator's end and the receiver's end.
pub struct VethLab {
    /// The generator's namespace.
    pub gen_ns: Netns,
    /// The receiver's namespace.
    pub rx_ns: Netns,
    _pair: VethPair,
    /// The generator's end.
    pub gen_end: End,
    /// The receiver's end.
    pub rx_end: End,
    generator: Generator,
}

impl VethLab {
    /// Builds the lab: addresses 203.0.113.1/24 (generator) and 203.0.113.2/24 (receiver), GRO
    /// and threaded NAPI on the receiver's end.
    pub fn new() -> Result<Self> {
        let gen_ns = Netns::new("bgen")?;
        let rx_ns = Netns::new("brx")?;
        let (gen_if, rx_if) = (sys::short_ifname('g'), sys::short_ifname('r'));
        let pair = veth_pair(&gen_ns, &gen_if, &rx_ns, &rx_if)?;
        addr_add(
            &gen_ns,
            &gen_if,
            &format!("{}/24", crate::frames::PEER_ADDR),
        )?;
        addr_add(&rx_ns, &rx_if, &format!("{}/24", crate::frames::WAN_ADDR))?;
        prepare_rx(&rx_ns, &rx_if)?;
        let gen_end = End::read(&gen_ns, &gen_if)?;
        let rx_end = End::read(&rx_ns, &rx_if)?;
        Ok(Self {
            gen_ns,
            rx_ns,
            _pair: pair,
            gen_end,
            rx_end,
            generator: Generator::load()?,
        })
    }

    /// Sends `frame` for `duration` and measures what the receiver processed.
    pub fn measure(&self, frame: &[u8], duration: Duration) -> Result<Rate> {
        measure(
            &self.generator,
            (&self.gen_ns, &self.gen_end),
            (&self.rx_ns, &self.rx_end),
            frame,
            duration,
        )
    }

    /// Attaches `prog` (loaded) to the receiver's end in native mode.
    pub fn attach(&self, prog: &mut Xdp) -> Result<XdpLinkId> {
        attach_native(&self.rx_ns, self.rx_end.ifindex, prog)
    }
}

/// GRO on (so the veth end runs NAPI and takes XDP frames without an XDP program of its own) and
/// threaded NAPI, on `iface` in `ns`.
pub fn prepare_rx(ns: &Netns, iface: &str) -> Result<()> {
    sys::ns_run(ns, "ethtool", ["-K", iface, "gro", "on"])?;
    sys::ns_sysfs_write(ns, &format!("/sys/class/net/{iface}/threaded"), "1")
}

/// Attaches `prog` to interface `ifindex` of `ns` in native (driver) mode.
pub fn attach_native(ns: &Netns, ifindex: u32, prog: &mut Xdp) -> Result<XdpLinkId> {
    ns.run(|| prog.attach_to_if_index(ifindex, XdpMode::Driver))
        .context("attaching an XDP program to the receiver")
}

/// Finds the NAPI thread of `iface` and pins it to [`RX_CPU`].
pub fn pin_napi(iface: &str) -> Result<u32> {
    let pid =
        sys::napi_thread(iface).ok_or_else(|| anyhow!("no threaded NAPI thread for {iface}"))?;
    sys::taskset(pid, RX_CPU)?;
    Ok(pid)
}

/// Sends `frame` from `gen` for `duration` and measures what `rx` processed (see the module
/// documentation).
pub fn measure(
    generator: &Generator,
    (gen_ns, gen_end): (&Netns, &End),
    (rx_ns, rx_end): (&Netns, &End),
    frame: &[u8],
    duration: Duration,
) -> Result<Rate> {
    let pid = pin_napi(&rx_end.name)?;
    let processed = |ns: &Netns| -> Result<u64> {
        let stats = sys::ethtool_stats(ns, &rx_end.name)?;
        stats
            .get("rx_queue_0_xdp_packets")
            .copied()
            .ok_or_else(|| anyhow!("ethtool -S {} has no rx_queue_0_xdp_packets", rx_end.name))
    };
    let before = processed(rx_ns)?;
    let cpu_before = sys::cpu_ns(pid).unwrap_or(0);
    let (sent, seconds) = gen_ns.run(|| -> Result<(u64, f64)> {
        sys::pin_current_thread(GEN_CPU)?;
        generator.send_here(gen_end.ifindex, frame, duration)
    })?;
    // Let the receiver drain its ring (256 frames) before reading its counters.
    std::thread::sleep(Duration::from_millis(20));
    let cpu_after = sys::cpu_ns(pid).unwrap_or(0);
    let processed = processed(rx_ns)?.saturating_sub(before);
    if processed == 0 {
        bail!("the receiver {} processed no frame", rx_end.name);
    }
    let cpu = cpu_after.saturating_sub(cpu_before) as f64;
    Ok(Rate {
        sent,
        processed,
        seconds,
        mpps: processed as f64 / seconds / 1e6,
        gen_mpps: sent as f64 / seconds / 1e6,
        ns_per_packet: cpu / processed as f64,
        rx_cpu_busy: cpu / (seconds * 1e9),
    })
}

/// `bpf_attr` of `BPF_PROG_LOAD`, up to `expected_attach_type`.
#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// `bpf_attr` of `BPF_OBJ_PIN`.
#[repr(C)]
struct PinAttr {
    pathname: u64,
    bpf_fd: u32,
    file_flags: u32,
}

/// A two-instruction XDP program that passes every frame (`r0 = XDP_PASS; exit`), loaded with
/// the raw syscall and opened through a short-lived pin (the gotofw object has no such program,
/// and aya opens foreign programs only from a pin). Attached in front of the stack for the
/// nftables runs of item 4, so every blocker sees the same receive path (see there).
pub fn xdp_pass() -> Result<Xdp> {
    use std::os::fd::{FromRawFd, OwnedFd};
    const BPF_PROG_LOAD: libc::c_long = 5;
    const BPF_OBJ_PIN: libc::c_long = 6;
    const BPF_PROG_TYPE_XDP: u32 = 6;
    // BPF_ALU64 | BPF_MOV | BPF_K into r0, imm 2 (XDP_PASS); BPF_JMP | BPF_EXIT.
    let insns: [u64; 2] = [0xb7 | (2 << 32), 0x95];
    let license = c"GPL";
    let mut load = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_XDP,
        insn_cnt: 2,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        ..ProgLoadAttr::default()
    };
    load.prog_name[..10].copy_from_slice(b"bench_pass");
    // SAFETY: a valid `bpf_attr` prefix of the size passed; the buffers it points to outlive
    // the call.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_LOAD,
            (&raw mut load).cast::<libc::c_void>(),
            size_of::<ProgLoadAttr>(),
        )
    };
    if fd < 0 {
        bail!(
            "BPF_PROG_LOAD (XDP_PASS): {}",
            std::io::Error::last_os_error()
        );
    }
    // SAFETY: a new fd the kernel just returned, owned by nobody else.
    let prog = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let pin = sys::PinFile(std::path::PathBuf::from(format!(
        "/sys/fs/bpf/gotofw-bench-{}-pass",
        std::process::id()
    )));
    let path = std::ffi::CString::new(pin.path().to_string_lossy().as_bytes())?;
    let mut attr = PinAttr {
        pathname: path.as_ptr() as u64,
        bpf_fd: std::os::fd::AsRawFd::as_raw_fd(&prog).cast_unsigned(),
        file_flags: 0,
    };
    // SAFETY: as above.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_OBJ_PIN,
            (&raw mut attr).cast::<libc::c_void>(),
            size_of::<PinAttr>(),
        )
    };
    if rc != 0 {
        bail!(
            "BPF_OBJ_PIN (XDP_PASS): {}",
            std::io::Error::last_os_error()
        );
    }
    Xdp::from_pin(pin.path(), aya_obj::programs::XdpAttachType::Interface)
        .context("opening the XDP_PASS program")
}

/// Routes from the receiver's namespace back to the remote ends of the replayed flows (the TURN
/// networks' 68.64.0.0/19, 198.51.100.0/24 and 198.18.0.0/15, via the generator's end, with a permanent
/// neighbour entry so nothing waits on ARP), for the known-flow receivers of item 2: the flows
/// are opened by sending from the receiver side ([`open_udp_flow`]), and the stack's reply to a
/// passed packet (ICMP port unreachable, rate-limited) takes the same route for every receiver.
/// Removed on drop.
pub struct ReplyRoutes<'a> {
    lab: &'a VethLab,
}

/// The networks [`ReplyRoutes`] routes (the filler flows of item 3 are in RFC 2544's
/// 198.18.0.0/15).
const REPLY_NETS: [&str; 3] = ["68.64.0.0/19", "198.51.100.0/24", "198.18.0.0/15"];

impl<'a> ReplyRoutes<'a> {
    /// Adds the neighbour entry and the routes.
    pub fn add(lab: &'a VethLab) -> Result<Self> {
        let mac = lab
            .gen_end
            .mac
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":");
        let peer = crate::frames::PEER_ADDR.to_string();
        lab.rx_ns.ip([
            "neigh",
            "replace",
            &peer,
            "lladdr",
            &mac,
            "dev",
            &lab.rx_end.name,
            "nud",
            "permanent",
        ])?;
        let guard = Self { lab };
        for net in REPLY_NETS {
            lab.rx_ns.ip([
                "route",
                "replace",
                net,
                "via",
                &peer,
                "dev",
                &lab.rx_end.name,
            ])?;
        }
        Ok(guard)
    }
}

impl Drop for ReplyRoutes<'_> {
    fn drop(&mut self) {
        for net in REPLY_NETS {
            let _ = self.lab.rx_ns.ip(["route", "del", net]);
        }
        let peer = crate::frames::PEER_ADDR.to_string();
        let _ = self
            .lab
            .rx_ns
            .ip(["neigh", "del", &peer, "dev", &self.lab.rx_end.name]);
    }
}

/// Opens a UDP flow from the receiver side, as a LAN host would: one datagram from the WAN
/// address's [`crate::frames::LOCAL_PORT`] to `remote:port` (conntrack, when a ruleset in the
/// namespace uses it, records the flow; its replies are then `established`). The socket is
/// closed again, so the replies reach no socket, as for every other receiver.
pub fn open_udp_flow(lab: &VethLab, remote: std::net::Ipv4Addr, port: u16) -> Result<()> {
    lab.rx_ns.run(|| -> Result<()> {
        let socket =
            std::net::UdpSocket::bind((crate::frames::WAN_ADDR, crate::frames::LOCAL_PORT))
                .context("binding the flow's local end")?;
        socket
            .send_to(b"gotofw-bench", (remote, port))
            .context("sending the flow's first datagram")?;
        Ok(())
    })
}
