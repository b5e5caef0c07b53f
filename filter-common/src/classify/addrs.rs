//! The addresses of a parsed IP header, and the keys made of them.

use crate::{Direction, FlowKey, Ipv4Key, Ipv6Key};

/// The remote end's address as the lookups want it.
#[derive(Clone, Copy)]
pub(super) enum Remote {
    V4(Ipv4Key),
    V6(Ipv6Key),
}

/// Source and destination of an IP header.
#[derive(Clone, Copy)]
pub(super) enum Addrs {
    V4 { src: Ipv4Key, dst: Ipv4Key },
    V6 { src: Ipv6Key, dst: Ipv6Key },
}

impl Addrs {
    /// The flow key of a TCP or UDP packet travelling in `direction` with these ports.
    #[inline(always)]
    pub(super) fn flow_key(
        &self,
        direction: Direction,
        proto: u8,
        remote_port: u16,
        local_port: u16,
    ) -> FlowKey {
        let (src, dst, family) = match self {
            Self::V4 { src, dst } => (widen(*src), widen(*dst), 4),
            Self::V6 { src, dst } => (*src, *dst, 6),
        };
        let (remote, local) = match direction {
            Direction::Ingress => (src, dst),
            Direction::Egress => (dst, src),
        };
        FlowKey {
            remote,
            local,
            remote_port,
            local_port,
            proto,
            family,
            _pad: [0; 2],
        }
    }

    /// The remote address of a packet travelling in `direction`.
    #[inline(always)]
    pub(super) fn remote(&self, direction: Direction) -> Remote {
        match (self, direction) {
            (Self::V4 { src, .. }, Direction::Ingress) => Remote::V4(*src),
            (Self::V4 { dst, .. }, Direction::Egress) => Remote::V4(*dst),
            (Self::V6 { src, .. }, Direction::Ingress) => Remote::V6(*src),
            (Self::V6 { dst, .. }, Direction::Egress) => Remote::V6(*dst),
        }
    }
}

/// An IPv4 address in the 16 bytes of a flow or fragment key (zero-extended).
#[inline(always)]
pub(super) fn widen(addr: Ipv4Key) -> [u8; 16] {
    // Through a u128 (two 8-byte stores) rather than a zeroed array, which the BPF backend
    // turns into a byte-wise memset call (about 5 ns per flow packet).
    u128::from(u32::from_le_bytes(addr)).to_le_bytes()
}
