//! The packets the benchmarks send: one per packet class, as they arrive on the WAN interface
//! (from a remote server to the gateway's WAN address).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use filter_common::{FlowKey, ethertype, ipproto};
use filter_user::frame::{self, Ipv4};
use serde::Serialize;

/// The gateway's WAN address, where every benchmark frame goes.
pub const WAN_ADDR: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 2);
/// The generator's side of the WAN link.
pub const PEER_ADDR: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
/// A server outside every TURN network.
pub const OUTSIDE: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 10);
/// A server inside the TURN network 68.64.0.0/19.
pub const TURN: Ipv4Addr = Ipv4Addr::new(68, 64, 0, 10);
/// A TURN server (inside 68.64.0.0/19) whose UDP 3478 flow is live in the stateful program's
/// table: its replies are the "UDP 3478 reply of a live TURN flow".
pub const TURN_FLOW: Ipv4Addr = Ipv4Addr::new(68, 64, 0, 11);
/// A server outside every TURN network with no flow: the source of the named-port classes
/// (a reflection flood from DNS, NTP, https or TURN ports).
pub const NO_FLOW: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 20);
/// The gateway's WAN address (IPv6).
pub const WAN_ADDR6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2);
/// A server (IPv6).
pub const OUTSIDE6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 5, 0, 0, 0, 0, 0x10);
/// The local (post-NAT) port of the flows.
pub const LOCAL_PORT: u16 = 50_000;
/// A port no rule names.
pub const UNNAMED_PORT: u16 = 9;
/// Smallest Ethernet frame without its FCS: "64-byte frames" on the wire.
pub const MIN_FRAME: usize = 60;

/// TCP flags of the frames: an ACK, as in the middle of a connection.
const TCP_ACK: u8 = 0x10;

/// A packet class of the program-cost table.
#[derive(Clone, Debug, Serialize)]
pub struct Class {
    /// Short key (JSON).
    pub key: &'static str,
    /// What it is (tables).
    pub name: &'static str,
    /// The frame.
    #[serde(skip)]
    pub frame: Vec<u8>,
}

/// A TCP segment with `flags` from `src:sport` to `dst:dport`, padded to [`MIN_FRAME`].
pub fn tcp(src: IpAddr, sport: u16, dst: IpAddr, dport: u16, flags: u8) -> Vec<u8> {
    let mut l4 = frame::tcp(sport, dport, &[]);
    l4[13] = flags;
    pad(frame::ip_frame(src, dst, ipproto::TCP, &l4))
}

/// A UDP datagram from `src:sport` to `dst:dport` whose frame is at least [`MIN_FRAME`] bytes.
pub fn udp(src: IpAddr, sport: u16, dst: IpAddr, dport: u16) -> Vec<u8> {
    let header = match src {
        IpAddr::V4(_) => 14 + 20 + 8,
        IpAddr::V6(_) => 14 + 40 + 8,
    };
    let payload = vec![0u8; MIN_FRAME.saturating_sub(header)];
    frame::ip_frame(src, dst, ipproto::UDP, &frame::udp(sport, dport, &payload))
}

/// Pads an IP frame to [`MIN_FRAME`] with bytes after the IP packet (as a NIC pads a short
/// frame; the IP length stays that of the packet).
fn pad(mut frame: Vec<u8>) -> Vec<u8> {
    if frame.len() < MIN_FRAME {
        frame.resize(MIN_FRAME, 0);
    }
    frame
}

/// A UDP datagram from `src:sport` to the WAN address's [`LOCAL_PORT`].
pub fn udp_in(src: Ipv4Addr, sport: u16) -> Vec<u8> {
    udp(src.into(), sport, WAN_ADDR.into(), LOCAL_PORT)
}

/// The flow key of an inbound TCP or UDP packet from `remote:remote_port` to the WAN address.
pub fn flow_key(remote: Ipv4Addr, remote_port: u16, proto: u8) -> FlowKey {
    let widen = |a: Ipv4Addr| {
        let mut out = [0u8; 16];
        out[..4].copy_from_slice(&a.octets());
        out
    };
    FlowKey {
        remote: widen(remote),
        local: widen(WAN_ADDR),
        remote_port,
        local_port: LOCAL_PORT,
        proto,
        family: 4,
        _pad: [0; 2],
    }
}

/// The reply of the known flow: TCP from [`OUTSIDE`]:443, whose flow the stateful program has.
pub fn known_flow() -> (Vec<u8>, FlowKey) {
    (
        tcp(OUTSIDE.into(), 443, WAN_ADDR.into(), LOCAL_PORT, TCP_ACK),
        flow_key(OUTSIDE, 443, ipproto::TCP),
    )
}

/// The reply of the live TURN flow: UDP from [`TURN_FLOW`]:3478, whose flow the stateful program
/// has.
pub fn turn_flow() -> (Vec<u8>, FlowKey) {
    (
        udp_in(TURN_FLOW, 3478),
        flow_key(TURN_FLOW, 3478, ipproto::UDP),
    )
}

/// Source ports that a rule names, as the named-port classes send them: (class key, port,
/// protocol). No flow has their source ([`NO_FLOW`], or [`OUTSIDE`] for 3478).
pub const NAMED_PORTS: [(&str, u16, u8); 4] = [
    ("named_53", 53, ipproto::UDP),
    ("named_123", 123, ipproto::UDP),
    ("named_443", 443, ipproto::TCP),
    ("blocked_net", 3478, ipproto::UDP),
];

/// The packet classes of the program-cost table, in table order.
pub fn classes() -> Vec<Class> {
    let wan: IpAddr = WAN_ADDR.into();
    let https = tcp(OUTSIDE.into(), 443, wan, LOCAL_PORT, TCP_ACK);
    let mut cut = https.clone();
    // Ethernet + IPv4 + 10 of the 20 bytes of the TCP header (the IP length says 40).
    cut.truncate(14 + 20 + 10);
    let ipv6 = tcp(OUTSIDE6.into(), 443, WAN_ADDR6.into(), LOCAL_PORT, TCP_ACK);
    let mut l4 = frame::tcp(443, LOCAL_PORT, &[]);
    l4[13] = TCP_ACK;
    let vlan = pad(frame::ethernet(
        &[(ethertype::VLAN, 7)],
        ethertype::IPV4,
        &Ipv4::new(OUTSIDE, WAN_ADDR, ipproto::TCP).build(&l4),
    ));
    vec![
        Class {
            key: "tcp443",
            name: "TCP from port 443 (https)",
            frame: https,
        },
        Class {
            key: "turn",
            name: "UDP 3478 from a TURN network",
            frame: udp_in(TURN, 3478),
        },
        Class {
            key: "media",
            name: "UDP from the media range (45000)",
            frame: udp_in(OUTSIDE, 45_000),
        },
        Class {
            key: "blocked_port",
            name: "blocked: UDP from a port no rule names",
            frame: udp_in(OUTSIDE, UNNAMED_PORT),
        },
        Class {
            key: "blocked_net",
            name: "blocked: UDP 3478 from outside the TURN networks",
            frame: udp_in(OUTSIDE, 3478),
        },
        Class {
            key: "known_flow",
            name: "known flow: TCP 443 reply of a live flow",
            frame: known_flow().0,
        },
        Class {
            key: "turn_flow",
            name: "known flow: UDP 3478 reply of a live TURN flow",
            frame: turn_flow().0,
        },
        Class {
            key: "named_53",
            name: "named port, no flow: UDP from port 53 (DNS)",
            frame: udp_in(NO_FLOW, 53),
        },
        Class {
            key: "named_123",
            name: "named port, no flow: UDP from port 123 (NTP)",
            frame: udp_in(NO_FLOW, 123),
        },
        Class {
            key: "named_443",
            name: "named port, no flow: TCP from port 443 (ACK)",
            frame: tcp(NO_FLOW.into(), 443, wan, LOCAL_PORT, TCP_ACK),
        },
        Class {
            key: "malformed",
            name: "malformed: TCP header cut",
            frame: cut,
        },
        Class {
            key: "ipv6",
            name: "IPv6: TCP from port 443",
            frame: ipv6,
        },
        Class {
            key: "vlan",
            name: "VLAN-tagged (802.1Q): TCP from port 443",
            frame: vlan,
        },
    ]
}

/// `frame` with its destination MAC set to `mac` (so the receiving stack takes it as its own).
pub fn to_mac(frame: &[u8], mac: [u8; 6]) -> Vec<u8> {
    let mut out = frame.to_vec();
    out[..6].copy_from_slice(&mac);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_at_least_64_bytes_on_the_wire() {
        for class in classes() {
            if class.key != "malformed" {
                assert!(class.frame.len() >= MIN_FRAME, "{}", class.key);
            }
        }
        assert_eq!(udp_in(OUTSIDE, 9).len(), MIN_FRAME);
        assert_eq!(known_flow().0.len(), MIN_FRAME);
    }
}
