//! The IP layer: IPv4 (with options) and IPv6 (with its extension-header walk), fragments
//! (a first fragment's verdict is remembered, later ones take it), then the transport stage.

use core::mem::MaybeUninit;

use super::{
    addrs::{Addrs, widen},
    outcome::{Decision, Outcome},
    tables::Tables,
    transport::transport,
};
use crate::{
    Direction, FragKey, MAX_IPV6_EXT_HEADERS, ipproto,
    packet::{Header as _, Packet},
    slot,
};

/// The IPv4 header at `off` and what it carries; the packet must end by `limit` (the frame's
/// end, or the end of the PPPoE payload it travels in).
#[inline(always)]
pub(super) fn ipv4<P: Packet + ?Sized, T: Tables>(
    pkt: &P,
    tables: &T,
    direction: Direction,
    off: usize,
    limit: usize,
    frag: &mut MaybeUninit<FragKey>,
) -> Outcome {
    let Some(h) = pkt.header(off, 20) else {
        return Outcome::only(Decision::MALFORMED);
    };
    let vihl = h.u8(0);
    let ihl = usize::from(vihl & 0x0f) * 4;
    if vihl >> 4 != 4 || ihl < 20 {
        return Outcome::only(Decision::MALFORMED);
    }
    let (total, id, flags_frag, proto) = (h.be16(2), h.be16(4), h.be16(6), h.u8(9));
    let src = h.array::<4>(12);
    let dst = h.array::<4>(16);
    let total = usize::from(total);
    let end = off + total;
    if total < ihl || end > limit {
        return Outcome::only(Decision::MALFORMED);
    }
    let frag_offset = usize::from(flags_frag & 0x1fff) * 8;
    let more = flags_frag & 0x2000 != 0;
    if frag_offset != 0 || more {
        frag.write(FragKey {
            src: widen(src),
            dst: widen(dst),
            id: u32::from(id),
            proto,
            family: 4,
            direction: direction as u8,
            _pad: 0,
        });
    }
    if frag_offset != 0 {
        // SAFETY: written just above (frag_offset != 0).
        let key = unsafe { frag.assume_init_ref() };
        return Outcome::only(later_fragment(tables, key, proto, frag_offset));
    }
    let addrs = Addrs::V4 { src, dst };
    let l4 = off + ihl;
    let decision = transport(pkt, tables, direction, proto, l4, end, &addrs, 0, more);
    if more {
        Outcome::first_fragment(decision, l4, end)
    } else {
        Outcome::only(decision)
    }
}

/// A fragment with a non-zero offset: it takes the verdict of its first fragment.
#[inline(always)]
fn later_fragment<T: Tables>(tables: &T, key: &FragKey, proto: u8, offset: usize) -> Decision {
    // A later fragment that overlaps the transport header could rewrite the ports or flags the
    // first fragment was judged on (RFC 1858, RFC 3128).
    let min = match proto {
        ipproto::TCP => 20,
        ipproto::UDP | ipproto::ICMP | ipproto::ICMPV6 => 8,
        _ => 0,
    };
    if offset < min {
        return Decision::MALFORMED;
    }
    match tables.fragment(key) {
        // Starting inside what the first fragment was judged on: an overlap that could rewrite
        // it.
        Some(v) if offset < usize::from(v.guard) => Decision::MALFORMED,
        Some(v) => Decision {
            action: u32::from(v.action),
            slot: v.slot,
            dns: crate::domain::mark::NONE,
        },
        None => Decision::drop(slot::FRAGMENT_UNKNOWN),
    }
}

/// One step of an IPv6 extension-header walk.
enum Ext {
    /// `nh` is not an extension header: the transport header starts here.
    Upper,
    /// An extension header of `len` bytes followed by `next`.
    Skip { next: u8, len: usize },
    /// A fragment header.
    Fragment {
        next: u8,
        offset: usize,
        more: bool,
        id: u32,
    },
    /// The header does not fit before `end`.
    Truncated,
}

/// Whether `nh` names an IPv6 extension header the parser walks.
#[inline(always)]
const fn is_ipv6_ext(nh: u8) -> bool {
    matches!(nh, 0 | 43 | 44 | 51 | 60 | 135 | 139 | 140)
}

/// One step of the extension-header walk: the header `nh` at `cur`, which must end by `end`.
#[inline(always)]
fn ipv6_ext<P: Packet + ?Sized>(pkt: &P, nh: u8, cur: usize, end: usize) -> Ext {
    if !is_ipv6_ext(nh) {
        return Ext::Upper;
    }
    // Every extension header is a multiple of eight bytes; the fragment header is exactly eight.
    let Some(h) = pkt.header(cur, 8) else {
        return Ext::Truncated;
    };
    let (next, len_field) = (h.u8(0), h.u8(1));
    let len = match nh {
        44 => 8,
        51 => (usize::from(len_field) + 2) * 4,
        _ => (usize::from(len_field) + 1) * 8,
    };
    if cur + len > end {
        return Ext::Truncated;
    }
    if nh == 44 {
        let offset_flags = h.be16(2);
        let id = h.be32(4);
        return Ext::Fragment {
            next,
            offset: usize::from(offset_flags & 0xfff8),
            more: offset_flags & 1 != 0,
            id,
        };
    }
    Ext::Skip { next, len }
}

/// The IPv6 header at `off`, its extension headers and what they carry; the packet must end by
/// `limit` (as for [`ipv4`]).
#[inline(always)]
pub(super) fn ipv6<P: Packet + ?Sized, T: Tables>(
    pkt: &P,
    tables: &T,
    direction: Direction,
    off: usize,
    limit: usize,
    frag: &mut MaybeUninit<FragKey>,
) -> Outcome {
    let Some(h) = pkt.header(off, 40) else {
        return Outcome::only(Decision::MALFORMED);
    };
    let (vtc, payload, mut nh, hop_limit) = (h.u8(0), h.be16(4), h.u8(6), h.u8(7));
    let src = h.array::<16>(8);
    let dst = h.array::<16>(24);
    if vtc >> 4 != 6 {
        return Outcome::only(Decision::MALFORMED);
    }
    if payload == 0 {
        // Jumbogram (hop-by-hop jumbo option) or an empty packet: neither belongs on a WAN.
        return Outcome::only(Decision::UNSUPPORTED);
    }
    let end = off + 40 + usize::from(payload);
    if end > limit {
        return Outcome::only(Decision::MALFORMED);
    }
    let mut cur = off + 40;
    let mut seen_fragment = false;
    let mut first_fragment = false;
    let mut frag_start = 0;
    for _ in 0..MAX_IPV6_EXT_HEADERS {
        match ipv6_ext(pkt, nh, cur, end) {
            Ext::Upper => break,
            Ext::Truncated => return Outcome::only(Decision::MALFORMED),
            Ext::Skip { next, len } => {
                nh = next;
                cur += len;
            }
            Ext::Fragment {
                next,
                offset,
                more,
                id,
            } => {
                if seen_fragment {
                    return Outcome::only(Decision::MALFORMED);
                }
                seen_fragment = true;
                nh = next;
                cur += 8;
                frag_start = cur;
                if offset != 0 || more {
                    frag.write(FragKey {
                        src,
                        dst,
                        id,
                        proto: next,
                        family: 6,
                        direction: direction as u8,
                        _pad: 0,
                    });
                }
                if offset != 0 {
                    // SAFETY: written just above (offset != 0).
                    let key = unsafe { frag.assume_init_ref() };
                    return Outcome::only(later_fragment(tables, key, next, offset));
                }
                first_fragment = more;
            }
        }
    }
    if is_ipv6_ext(nh) {
        return Outcome::only(Decision::UNSUPPORTED);
    }
    let addrs = Addrs::V6 { src, dst };
    let decision = transport(
        pkt,
        tables,
        direction,
        nh,
        cur,
        end,
        &addrs,
        hop_limit,
        first_fragment,
    );
    if first_fragment {
        Outcome::first_fragment(decision, frag_start, end)
    } else {
        Outcome::only(decision)
    }
}
