//! The benchmark-only programs, a second object (`gotofw-bench-ebpf`) next to the one gotofw
//! loads: the floors that measurements compare gotofw against, and the traffic generator the
//! benchmarks and the tests send with. gotofw neither carries nor loads them; `bench` and
//! `gotofw-tests` load this object through `filter_user::BENCH_EBPF_OBJECT`.
#![no_std]
#![no_main]
// `asm!` on BPF, for the optimisation barrier in `frame::opaque`; the crate builds with nightly.
#![feature(asm_experimental_arch)]

#[expect(
    dead_code,
    reason = "the TC constructor serves only the production object"
)]
mod frame;

use aya_ebpf::{bindings::xdp_action, macros::xdp, programs::XdpContext};
use filter_common::{Packet, Payload, link, link_payload, packet::Header};

use crate::frame::Frame;

/// The floor for measurements: drops everything, touches nothing.
#[xdp]
pub fn gotofw_floor(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_DROP
}

/// The parse-only floor for measurements: walks the link layer (Ethernet, up to two VLAN tags,
/// PPPoE), reads the IPv4 or IPv6 header and the transport ports as `gotofw_ingress` does, then
/// drops; no map is touched.
#[xdp]
pub fn gotofw_parse_floor(ctx: XdpContext) -> u32 {
    let frame = Frame::xdp(&ctx);
    let (proto, l4) = match link_payload(&frame, link::ETHERNET) {
        Payload::Ipv4 { off, .. } => {
            let Some(ip) = frame.header(off, 20) else {
                return xdp_action::XDP_DROP;
            };
            (ip.u8(9), off + usize::from(ip.u8(0) & 0x0f) * 4)
        }
        Payload::Ipv6 { off, .. } => {
            let Some(ip) = frame.header(off, 40) else {
                return xdp_action::XDP_DROP;
            };
            (ip.u8(6), off + 40)
        }
        _ => return xdp_action::XDP_DROP,
    };
    if proto != filter_common::ipproto::TCP && proto != filter_common::ipproto::UDP {
        return xdp_action::XDP_DROP;
    }
    let Some(ports) = frame.header(l4, 4) else {
        return xdp_action::XDP_DROP;
    };
    // Depends on what was read, so nothing above is optimised away; no real frame has both zero.
    if ports.be16(0) == 0 && ports.be16(2) == 0 {
        xdp_action::XDP_PASS
    } else {
        xdp_action::XDP_DROP
    }
}

/// The benchmark's traffic generator: run with BPF_PROG_TEST_RUN in live-frames mode on a veth
/// end, it sends every frame out of that end to its peer.
#[xdp]
pub fn gotofw_txgen(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_TX
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
