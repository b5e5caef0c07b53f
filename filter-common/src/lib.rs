//! What the gotofw kernel programs and their loader share: map layouts, counter slots, and the
//! packet classifier itself.
//!
//! The classifier ([`classify::classify`]) is generic over how it reads the packet ([`Packet`]) and
//! how it looks rules up ([`Tables`]). The kernel's programs (XDP ingress, TC egress) instantiate
//! it over the packet buffer and their BPF maps; the `gotofw` binary over a byte slice and an
//! in-memory copy of the same map contents. Both therefore give the same verdict by construction,
//! and the tests check that the kernel agrees with the host on every crafted packet.
#![no_std]
// `asm!` on BPF, for the optimisation barrier `packet::opaque`; the BPF build uses nightly.
#![cfg_attr(target_arch = "bpf", feature(asm_experimental_arch))]
// The classifier must inline into one BPF program (no calls across the packet pointer), and the
// BPF backend has no count-trailing-zeros instruction.
#![expect(clippy::inline_always, reason = "see above")]

pub mod classify;
pub mod dns;
pub mod domain;
pub mod flow_cache;
pub mod learn;
pub mod names;
pub mod nets;
pub mod packet;

pub use classify::{
    Decision, FlowHit, Outcome, Payload, Tables, classify, ether_payload, link_payload, lowest_bit,
};
pub use packet::{MAX_PACKET_OFFSET, Packet};

/// Most rules one rule set may hold: a rule is one bit of a `u64` mask.
pub const MAX_RULES: usize = 64;

/// Most networks one rule set may name, counted over all its rules (a network two rules name
/// counts twice). Each is an entry of an LPM trie (and a few dozen bytes of the description).
pub const MAX_NETWORKS: usize = 262_144;

/// Number of IPv6 extension headers the parser walks before it gives up on a packet.
pub const MAX_IPV6_EXT_HEADERS: usize = 8;

/// Number of VLAN tags (802.1Q or 802.1ad) the parser accepts in front of the payload.
pub const MAX_VLAN_TAGS: usize = 2;

/// Ports per (table, protocol) block of the port map.
pub const PORTS_PER_PROTO: u32 = 65_536;

/// Port-map table of remote ports: the source port of an inbound packet, the destination port of
/// an outbound one. Every rule names its remote ports here.
pub const PORT_TABLE_REMOTE: u32 = 0;
/// Port-map table of local ports, for the few rules that also constrain them (DHCP replies go to
/// the client port 68 or 546). Only rules in [`Config::local_port_mask`] are checked against it.
pub const PORT_TABLE_LOCAL: u32 = 1;

/// Protocol index of TCP in the port map.
pub const PROTO_IDX_TCP: u32 = 0;
/// Protocol index of UDP in the port map.
pub const PROTO_IDX_UDP: u32 = 1;

/// Entries of the port map: two tables, two protocols, all ports.
pub const PORT_MAP_ENTRIES: u32 = 4 * PORTS_PER_PROTO;

/// Index of `(table, protocol index, port)` in the port map.
#[inline(always)]
pub const fn port_index(table: u32, proto_idx: u32, port: u16) -> u32 {
    (table * 2 + proto_idx) * PORTS_PER_PROTO + port as u32
}

/// IP protocol numbers the classifier knows.
pub mod ipproto {
    /// ICMP for IPv4.
    pub const ICMP: u8 = 1;
    /// TCP.
    pub const TCP: u8 = 6;
    /// UDP.
    pub const UDP: u8 = 17;
    /// ICMP for IPv6.
    pub const ICMPV6: u8 = 58;
}

/// Ethertypes the parser knows.
pub mod ethertype {
    /// IPv4.
    pub const IPV4: u16 = 0x0800;
    /// IPv6.
    pub const IPV6: u16 = 0x86dd;
    /// 802.1Q customer VLAN tag.
    pub const VLAN: u16 = 0x8100;
    /// 802.1ad service VLAN tag (QinQ outer tag).
    pub const QINQ: u16 = 0x88a8;
    /// PPPoE discovery stage (PADI, PADO, PADR, PADS, PADT): infrastructure, allowance
    /// `pppoe-control`.
    pub const PPPOE_DISCOVERY: u16 = 0x8863;
    /// PPPoE session stage: PPP frames, whose IP packets are classified by their IP header.
    pub const PPPOE_SESSION: u16 = 0x8864;
}

/// PPP protocol numbers (RFC 1661, IANA's PPP DLL protocol numbers) the classifier tells apart.
pub mod ppp {
    /// IPv4.
    pub const IPV4: u16 = 0x0021;
    /// IPv6.
    pub const IPV6: u16 = 0x0057;
    /// Link Control Protocol: the first of the link-layer control protocols (`0xc000..`).
    pub const LCP: u16 = 0xc021;
    /// IP Control Protocol: the first network control protocols start at `0x8000`.
    pub const IPCP: u16 = 0x8021;
    /// IPv6 Control Protocol.
    pub const IPV6CP: u16 = 0x8057;
    /// Protocols from here on are control protocols (network control `0x8000..0xbfff`, link
    /// control `0xc000..`): infrastructure, allowance `pppoe-control`.
    pub const CONTROL_FROM: u16 = 0x8000;
}

/// The link layer in front of the IP header, as the classifier parses it ([`Config::link`]).
/// Known at attach from the interface's link type (`ARPHRD_*`).
pub mod link {
    /// An Ethernet header, VLAN tags and PPPoE (NICs, veth, bridges, macvlan, VLAN devices,
    /// loopback).
    pub const ETHERNET: u32 = 0;
    /// None: the frame starts with the IP header (tun, PPP, WireGuard, raw-IP modems).
    pub const IP: u32 = 1;
}

/// Switch bits of the allowances that are not port rules (see [`Config::allowances`]).
pub mod allow {
    /// Frames whose ethertype is not IP (ARP, LLDP, ...).
    pub const NON_IP: u32 = 1 << 0;
    /// ICMPv6 neighbour and router discovery (types 133-137) with hop limit 255.
    pub const ICMPV6_ND: u32 = 1 << 1;
    /// ICMP and ICMPv6 errors whose quoted packet is one the rules allow.
    pub const ICMP_ERRORS: u32 = 1 << 2;
    /// PPPoE discovery frames and PPP control protocols (LCP, IPCP, IPv6CP, authentication)
    /// in PPPoE sessions.
    pub const PPPOE_CONTROL: u32 = 1 << 3;
}

/// Direction of a packet through the WAN interface.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Arriving from the WAN (XDP): the remote end is the source.
    Ingress = 0,
    /// Leaving to the WAN (TC egress): the remote end is the destination.
    Egress = 1,
}

/// Per-direction counter slots that do not belong to a rule. Rule `i` counts in
/// [`FIXED_SLOTS`]` + i`. Every packet counts in exactly one slot, so the slots of a direction add
/// up to the packets that direction's program saw.
pub mod slot {
    /// No rule and no allowance matched: dropped by the default action.
    pub const DEFAULT_BLOCK: u32 = 0;
    /// Truncated or inconsistent headers: dropped.
    pub const MALFORMED: u32 = 1;
    /// Well formed but beyond what the parser walks (a third VLAN tag, an IPv6 extension chain
    /// longer than its bound, a compressed PPP protocol field, IPv6 jumbograms): dropped.
    pub const UNSUPPORTED: u32 = 2;
    /// A non-first fragment whose first fragment was not seen: dropped.
    pub const FRAGMENT_UNKNOWN: u32 = 3;
    /// Allowance `non-ip`: passed.
    pub const NON_IP: u32 = 4;
    /// Allowance `icmpv6-nd`: passed.
    pub const ICMPV6_ND: u32 = 5;
    /// Allowance `icmp-errors`: passed.
    pub const ICMP_ERRORS: u32 = 6;
    /// Allowance `pppoe-control`: passed.
    pub const PPPOE_CONTROL: u32 = 7;
    /// An outbound packet a domain rule would allow had its destination been learned from a
    /// DNS answer (or had it belonged to a live flow of that rule), and that no other rule
    /// decides: dropped.
    pub const NOT_LEARNED: u32 = 8;
}

/// Counter slots per direction that are not rules.
pub const FIXED_SLOTS: u32 = 9;
/// Counter slots per direction.
pub const SLOTS_PER_DIRECTION: u32 = FIXED_SLOTS + MAX_RULES as u32;
/// Entries of the counter map: both directions.
pub const COUNTER_ENTRIES: u32 = 2 * SLOTS_PER_DIRECTION;

/// Counter slot of rule `index`.
#[inline(always)]
pub const fn rule_slot(index: u32) -> u32 {
    FIXED_SLOTS + index
}

/// Index in the counter map of `slot` for `direction`.
#[inline(always)]
pub const fn counter_index(direction: Direction, slot: u32) -> u32 {
    direction as u32 * SLOTS_PER_DIRECTION + slot
}

/// Value of the single entry of the config map.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Config {
    /// Rules that hold for any remote address (no network set).
    pub any_mask: u64,
    /// Rules whose action is allow; the others block.
    pub allow_mask: u64,
    /// Rules that also constrain the local port through [`PORT_TABLE_LOCAL`].
    pub local_port_mask: u64,
    /// Rules that may admit an inbound packet by its source port and network alone: all of them
    /// in stateless mode; in stateful mode only those whose replies cannot belong to a flow
    /// (DHCP offers go to an address the client does not have yet).
    pub ingress_mask: u64,
    /// [`allow`] bits of the enabled fixed allowances.
    pub allowances: u32,
    /// One of the `MODE_*` values.
    pub mode: u32,
    /// Idle seconds after which a UDP flow expires.
    pub udp_timeout: u32,
    /// Idle seconds after which an established TCP flow expires.
    pub tcp_established_timeout: u32,
    /// Idle seconds after which a half-open or closing TCP flow expires.
    pub tcp_transitory_timeout: u32,
    /// Rule-set generation: changes whenever the rule set of an attached filter is swapped. A
    /// flow stamped with another generation is checked against the current rules at its next
    /// packet (kept and rebound to the rule that now allows it, or dropped).
    pub generation: u32,
    /// Dropped packets sampled into the drop log, per second and CPU; 0 switches the log off.
    pub log_rate: u32,
    /// [`ARMED`] once the rule set is in force. Until then (while `attach` installs it) both
    /// programs hand every packet to the program they took the place of, in slot
    /// [`tail::PREVIOUS`] of their tail-call table, or pass it when there is none. So swapping
    /// the programs into the links, or attaching new links, changes nothing a packet sees, and
    /// one write of this field puts both hooks under the new rules at once.
    pub armed: u32,
    /// The link layer in front of the IP header: one of the [`link`] values, from the
    /// interface's link type at attach.
    pub link: u32,
    /// Domain sets the rule set names (at most [`MAX_DOMAIN_SETS`]); 0 when no rule has a
    /// domain destination, and then no DNS packet is recorded or learned from.
    pub domain_sets: u32,
    /// Rules whose destination is domain sets: they hold for an address learned for one of
    /// their sets ([`Config::set_rules`]), and for the packets of their live flows.
    pub domain_mask: u64,
    /// Per domain set, the rules that name it.
    pub set_rules: [u64; MAX_DOMAIN_SETS],
    /// Entries of the DNS server map: answers are learned only from those addresses; 0 for
    /// answers from any address.
    pub dns_servers: u32,
    /// Least seconds a learned address lives, whatever its record's TTL.
    pub dns_ttl_min: u32,
    /// Most seconds a learned address lives, whatever its record's TTL.
    pub dns_ttl_max: u32,
    /// Entries of the remote summary less one (a power of two less one; see
    /// [`flow_cache`]); 0 without a flow table.
    pub remote_mask: u32,
}
const _: () = assert!(size_of::<Config>() == 160);

/// Most domain sets one rule set may name (each is a bit of a learned address's entry).
pub const MAX_DOMAIN_SETS: usize = 8;

/// [`Config::armed`] of a rule set in force.
pub const ARMED: u32 = 1;

/// Slots of the programs' tail-call tables (`TAIL_XDP`, `TAIL_TC`: one per program type).
pub mod tail {
    /// The drop-log program.
    pub const LOG: u32 = 0;
    /// The program this one replaces, while its rule set is not [`ARMED`](super::ARMED) yet.
    pub const PREVIOUS: u32 = 1;
    /// The DNS program: learning from an answer (XDP), recording a query (TC).
    pub const DNS: u32 = 2;
    /// The learning program's next step: the next record of the answer (XDP only).
    pub const DNS_RECORDS: u32 = 3;
    /// Entries of a table.
    pub const ENTRIES: u32 = 4;
}

/// Most drop-log samples per second and CPU an operator may ask for.
pub const MAX_LOG_RATE: u32 = 10_000;

/// Credit a drop-log sample costs (see [`log_token`]): a bucket earns `rate` credit per
/// nanosecond, so at `rate` samples per second it earns one sample's worth every 1/`rate` s,
/// exactly, whatever the time between two drops.
pub const LOG_SAMPLE_COST: u64 = 1_000_000_000;

/// Per-CPU state of the drop log's rate limit (a token bucket counted in nanoseconds).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LogBucket {
    /// Credit for samples, in units of 1/[`LOG_SAMPLE_COST`] sample; at most a second's worth.
    pub credit: u64,
    /// Time up to which credit has been earned (CLOCK_MONOTONIC_COARSE, ns).
    pub refilled_ns: u64,
    /// Counter slot of the drop being handed to the log program.
    pub slot: u32,
    /// Its direction, as a [`Direction`] value.
    pub direction: u32,
    /// Samples this CPU could not write into the ring buffer while a reader was following the
    /// log (the ring full although read within [`LOG_READER_WINDOW_NS`]: the reader does not
    /// keep up); the verdicts are not affected. A ring nobody reads fills too, and what it
    /// cannot take then is not counted: no one expected those samples. Read back summed over
    /// CPUs (`gotofw_log_samples_lost_total`). See [`log_loss`].
    pub lost: u64,
    /// The ring's consumer position this CPU saw at its last failed write.
    pub consumer: u64,
    /// When this CPU last saw the consumer position move (CLOCK_MONOTONIC_COARSE, ns; 0: never).
    pub read_ns: u64,
}
const _: () = assert!(size_of::<LogBucket>() == 48);

/// How recently the drop log's ring must have been read for a sample it cannot take to count as
/// lost: 10 s.
pub const LOG_READER_WINDOW_NS: u64 = 10_000_000_000;

/// A sample could not be written into the full ring at `now`, whose consumer position is
/// `consumer`: notes whether the consumer moved since this CPU's last failed write, and counts
/// the sample in [`LogBucket::lost`] when the ring was read within [`LOG_READER_WINDOW_NS`]
/// (a reader follows the log but does not keep up). Returns whether it counted.
#[inline(always)]
pub fn log_loss(bucket: &mut LogBucket, consumer: u64, now: u64) -> bool {
    if consumer != bucket.consumer {
        bucket.consumer = consumer;
        bucket.read_ns = now;
    }
    let read = bucket.read_ns != 0 && now.saturating_sub(bucket.read_ns) <= LOG_READER_WINDOW_NS;
    if read {
        bucket.lost += 1;
    }
    read
}

/// Takes a sample's worth of credit from `bucket` for a drop at `now`, after crediting the time
/// since the last drop at `rate` per second (holding at most one second's worth, `rate`
/// samples). Whether the drop may be logged. Every nanosecond is credited once and none is
/// rounded away, so under any flood the log gets `rate` samples a second; the first drops after
/// a quiet second get a burst of up to `rate`.
#[inline(always)]
pub fn log_token(bucket: &mut LogBucket, rate: u32, now: u64) -> bool {
    let rate = u64::from(rate);
    if now > bucket.refilled_ns {
        // More than a second fills the bucket anyway; the cap keeps the product in range.
        let elapsed = now - bucket.refilled_ns;
        let elapsed = if elapsed > 1_000_000_000 {
            1_000_000_000
        } else {
            elapsed
        };
        let credit = bucket.credit + elapsed * rate;
        let full = rate * LOG_SAMPLE_COST;
        bucket.credit = if credit > full { full } else { credit };
        bucket.refilled_ns = now;
    }
    if bucket.credit < LOG_SAMPLE_COST {
        return false;
    }
    bucket.credit -= LOG_SAMPLE_COST;
    true
}

/// One sample of the drop log, as the kernel writes it to the ring buffer.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DropEvent {
    /// When (CLOCK_MONOTONIC_COARSE, ns).
    pub time_ns: u64,
    /// Frame length in bytes.
    pub len: u32,
    /// Counter slot that dropped it (a fixed slot or a rule's).
    pub slot: u32,
    /// A [`Direction`] value.
    pub direction: u8,
    /// 4, 6, or 0 when the frame is not IP.
    pub family: u8,
    /// IP protocol (0 when not IP).
    pub proto: u8,
    /// Always zero.
    #[expect(clippy::pub_underscore_fields, reason = "explicit padding, never read")]
    pub _pad: u8,
    /// Source port (TCP and UDP; 0 otherwise).
    pub sport: u16,
    /// Destination port (TCP and UDP; 0 otherwise).
    pub dport: u16,
    /// Source address; IPv4 in the first four bytes.
    pub src: [u8; 16],
    /// Destination address; IPv4 in the first four bytes.
    pub dst: [u8; 16],
}
const _: () = assert!(size_of::<DropEvent>() == 56);

/// Stateless mode: outbound packets are matched against the rules as written, inbound ones
/// against their mirror; no flow is kept.
pub const MODE_STATELESS: u32 = 0;
/// Stateful mode: inbound packets must belong to a flow an allowed outbound packet opened.
pub const MODE_STATEFUL: u32 = 1;
/// Ingress-only mode: inbound packets are matched as in stateless mode; outbound ones are not
/// filtered (the egress program, if it runs, passes everything).
pub const MODE_INGRESS_ONLY: u32 = 2;

/// One per-CPU counter.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counter {
    /// Packets counted.
    pub packets: u64,
    /// Bytes counted: whole frames, link-layer header included.
    pub bytes: u64,
}
const _: () = assert!(size_of::<Counter>() == 16);

/// Data of an IPv4 LPM-trie key: the address in network byte order.
pub type Ipv4Key = [u8; 4];
/// Data of an IPv6 LPM-trie key: the address in network byte order.
pub type Ipv6Key = [u8; 16];

/// Key of the fragment map: what identifies the fragments of one datagram.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FragKey {
    /// Source address; IPv4 in the first four bytes.
    pub src: [u8; 16],
    /// Destination address; IPv4 in the first four bytes.
    pub dst: [u8; 16],
    /// IPv4 identification (zero-extended) or IPv6 fragment identification.
    pub id: u32,
    /// IPv4 protocol, or the Next Header of the IPv6 fragment header.
    pub proto: u8,
    /// 4 or 6.
    pub family: u8,
    /// Direction the fragments travel, as a [`Direction`] value.
    pub direction: u8,
    /// Always zero.
    #[expect(clippy::pub_underscore_fields, reason = "explicit padding, never read")]
    pub _pad: u8,
}
const _: () = assert!(size_of::<FragKey>() == 40);

/// Value of the fragment map: the verdict of the first fragment, which later fragments take.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FragVerdict {
    /// Counter slot the first fragment counted in.
    pub slot: u32,
    /// [`ACTION_PASS`] or [`ACTION_DROP`].
    pub action: u16,
    /// Bytes from the start of the fragmentable part that the verdict was based on (extension
    /// headers, the transport header, an ICMP error's quote): a later fragment that starts
    /// before this could rewrite them (RFC 1858, RFC 3128, RFC 5722) and is malformed.
    pub guard: u16,
}
const _: () = assert!(size_of::<FragVerdict>() == 8);

/// Key of the flow map: a flow as its inbound packets carry it (after NAT, since TC egress sees
/// packets after source NAT). Eight-byte aligned, so that the flow cache reads it as five words
/// ([`flow_cache::key_words`]).
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FlowKey {
    /// Remote address; IPv4 in the first four bytes.
    pub remote: [u8; 16],
    /// Local (WAN-side, post-NAT) address; IPv4 in the first four bytes.
    pub local: [u8; 16],
    /// Remote port.
    pub remote_port: u16,
    /// Local port.
    pub local_port: u16,
    /// IP protocol (TCP or UDP).
    pub proto: u8,
    /// 4 or 6.
    pub family: u8,
    /// Always zero.
    #[expect(clippy::pub_underscore_fields, reason = "explicit padding, never read")]
    pub _pad: [u8; 2],
}
const _: () = assert!(size_of::<FlowKey>() == 40);

/// Value of the flow map.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowValue {
    /// Index of the rule that allowed the outbound packet that opened the flow.
    pub rule: u32,
    /// One of the [`flow_state`] values.
    pub state: u32,
    /// The [`Config::generation`] that `rule` refers to.
    pub generation: u32,
    /// How the flow was opened: one of the [`flow_opened`] values.
    pub opened: u32,
    /// When the flow was opened (CLOCK_MONOTONIC_COARSE, ns).
    pub created_ns: u64,
    /// When a packet of the flow was last seen (CLOCK_MONOTONIC_COARSE, ns).
    pub last_seen_ns: u64,
    /// Packets per [`Direction`] (approximate: updated without atomics from several CPUs).
    pub packets: [u64; 2],
    /// Bytes per [`Direction`], likewise.
    pub bytes: [u64; 2],
}
const _: () = assert!(size_of::<FlowValue>() == 64);

/// States of a flow, which choose its idle timeout.
pub mod flow_state {
    /// A UDP flow.
    pub const UDP: u32 = 0;
    /// TCP: a SYN went out, no SYN-ACK came back yet.
    pub const TCP_SYN_SENT: u32 = 1;
    /// TCP: established (the handshake seen, or a picked-up flow answered from outside).
    pub const TCP_ESTABLISHED: u32 = 2;
    /// TCP: a FIN or RST was seen.
    pub const TCP_CLOSING: u32 = 3;
    /// TCP: picked up mid-stream from an allowed outbound packet without SYN (a connection
    /// opened before the filter, or through another gateway before a failover) and not answered
    /// yet. It has the transitory timeout until an inbound packet (without FIN or RST) shows
    /// the far end takes part: a stray outbound segment does not hold an entry for
    /// the established timeout.
    pub const TCP_PICKED_UP: u32 = 4;
}

/// How a flow was opened ([`FlowValue::opened`]).
pub mod flow_opened {
    /// Not recorded: the flow was kept from a filter whose flows did not record it.
    pub const UNRECORDED: u32 = 0;
    /// TCP, by a SYN without ACK going out.
    pub const SYN: u32 = 1;
    /// TCP, picked up from an outbound packet without SYN (mid-stream).
    pub const MID_STREAM: u32 = 2;
    /// UDP, by its first outbound datagram.
    pub const FIRST_PACKET: u32 = 3;
}

/// TCP flag bits (byte 13 of the header).
pub mod tcp_flags {
    /// FIN.
    pub const FIN: u8 = 0x01;
    /// SYN.
    pub const SYN: u8 = 0x02;
    /// RST.
    pub const RST: u8 = 0x04;
    /// ACK.
    pub const ACK: u8 = 0x10;
}

/// A new flow opened by an allowed outbound packet, under `rule` of rule-set `generation`.
#[inline(always)]
pub const fn flow_new(
    rule: u32,
    generation: u32,
    proto: u8,
    flags: u8,
    now: u64,
    len: u64,
) -> FlowValue {
    let syn = flags & tcp_flags::SYN != 0 && flags & tcp_flags::ACK == 0;
    let (state, opened) = if proto != ipproto::TCP {
        (flow_state::UDP, flow_opened::FIRST_PACKET)
    } else if flags & (tcp_flags::FIN | tcp_flags::RST) != 0 {
        let opened = if syn {
            flow_opened::SYN
        } else {
            flow_opened::MID_STREAM
        };
        (flow_state::TCP_CLOSING, opened)
    } else if syn {
        (flow_state::TCP_SYN_SENT, flow_opened::SYN)
    } else {
        (flow_state::TCP_PICKED_UP, flow_opened::MID_STREAM)
    };
    FlowValue {
        rule,
        state,
        generation,
        opened,
        created_ns: now,
        last_seen_ns: now,
        packets: [0, 1],
        bytes: [0, len],
    }
}

/// Idle timeout of a flow in `state`, in nanoseconds.
#[inline(always)]
pub const fn flow_timeout_ns(cfg: &Config, state: u32) -> u64 {
    let secs = match state {
        flow_state::UDP => cfg.udp_timeout,
        flow_state::TCP_ESTABLISHED => cfg.tcp_established_timeout,
        _ => cfg.tcp_transitory_timeout,
    };
    secs as u64 * 1_000_000_000
}

/// Whether the flow `value` is still alive at `now`: seen within the idle timeout `cfg` sets for
/// its state.
#[inline(always)]
pub const fn flow_alive(cfg: &Config, value: &FlowValue, now: u64) -> bool {
    now.saturating_sub(value.last_seen_ns) <= flow_timeout_ns(cfg, value.state)
}

/// Stateful inbound: what the flow table says of a packet whose flow entry is `value`, at
/// `now`; a live flow of the current rule set is refreshed for the packet. The kernel's and the
/// host's [`Tables`] both answer with this.
#[inline(always)]
pub fn flow_judge_ingress(
    cfg: &Config,
    value: &mut FlowValue,
    now: u64,
    tcp_flags: u8,
    len: u64,
) -> FlowHit {
    if !flow_alive(cfg, value, now) {
        return FlowHit::Miss;
    }
    if value.generation != cfg.generation {
        return FlowHit::Stale;
    }
    flow_touch(value, Direction::Ingress, tcp_flags, now, len);
    FlowHit::Live(value.rule)
}

/// Binds the flow `value` to `rule` of `generation` and refreshes it for a packet seen in
/// `direction`.
#[inline(always)]
pub fn flow_rebind(
    value: &mut FlowValue,
    rule: u32,
    generation: u32,
    direction: Direction,
    tcp_flags: u8,
    now: u64,
    len: u64,
) {
    value.rule = rule;
    value.generation = generation;
    flow_touch(value, direction, tcp_flags, now, len);
}

/// Updates a live flow for a packet seen in `direction` with TCP `flags` (zero for UDP): state,
/// last-seen time and counters. The kernel and the host model both call this.
#[inline(always)]
pub fn flow_touch(value: &mut FlowValue, direction: Direction, flags: u8, now: u64, len: u64) {
    if value.state != flow_state::UDP {
        value.state = if flags & (tcp_flags::FIN | tcp_flags::RST) != 0 {
            flow_state::TCP_CLOSING
        } else if value.state == flow_state::TCP_SYN_SENT
            && flags & tcp_flags::ACK != 0
            && (direction as u32 == Direction::Egress as u32 || flags & tcp_flags::SYN != 0)
        {
            // The SYN-ACK came in, or the handshake's last ACK went out.
            flow_state::TCP_ESTABLISHED
        } else if value.state == flow_state::TCP_PICKED_UP
            && direction as u32 == Direction::Ingress as u32
        {
            // The far end answered a flow picked up mid-stream. Any inbound packet counts (not
            // only one with ACK): the flow cache is filled only after the table has seen an
            // inbound packet of the flow, and must then find a state no later inbound packet
            // without SYN/FIN/RST changes.
            flow_state::TCP_ESTABLISHED
        } else if value.state == flow_state::TCP_CLOSING
            && direction as u32 == Direction::Egress as u32
            && flags & tcp_flags::SYN != 0
            && flags & tcp_flags::ACK == 0
        {
            // The same tuple reused for a new connection.
            value.opened = flow_opened::SYN;
            flow_state::TCP_SYN_SENT
        } else {
            value.state
        };
    }
    value.last_seen_ns = now;
    let d = direction as usize & 1;
    value.packets[d] += 1;
    value.bytes[d] += len;
}

/// Verdict value: let the packet through.
pub const ACTION_PASS: u32 = 1;
/// Verdict value: drop the packet.
pub const ACTION_DROP: u32 = 0;

/// Size of one entry of the metadata map, where the loader stores a JSON description of what is
/// attached (so that `status` can name rules after the CLI that attached them has exited). The
/// record spans as many entries as it needs: the loader sizes the map when it loads the object.
pub const META_CHUNK: usize = 16 * 1024;

#[cfg(test)]
mod tests {
    use super::*;

    fn pickup_config() -> Config {
        Config {
            udp_timeout: 120,
            tcp_established_timeout: 7200,
            tcp_transitory_timeout: 30,
            ..Config::default()
        }
    }

    /// How each first outbound packet opens a flow, and the states a picked-up flow goes
    /// through: only an inbound packet makes it established; outbound segments keep it picked up
    /// on the transitory timeout; FIN or RST closes it either way.
    #[test]
    fn a_mid_stream_pickup_waits_for_an_answer() {
        use tcp_flags::{ACK, FIN, RST, SYN};
        let second = 1_000_000_000;
        let opened = |proto, flags| {
            let v = flow_new(1, 0, proto, flags, second, 60);
            (v.state, v.opened)
        };
        assert_eq!(
            opened(ipproto::UDP, 0),
            (flow_state::UDP, flow_opened::FIRST_PACKET)
        );
        assert_eq!(
            opened(ipproto::TCP, SYN),
            (flow_state::TCP_SYN_SENT, flow_opened::SYN)
        );
        for flags in [ACK, ACK | 0x08, SYN | ACK] {
            assert_eq!(
                opened(ipproto::TCP, flags),
                (flow_state::TCP_PICKED_UP, flow_opened::MID_STREAM),
                "flags {flags:#x}"
            );
        }
        for flags in [FIN | ACK, RST, RST | ACK] {
            assert_eq!(
                opened(ipproto::TCP, flags),
                (flow_state::TCP_CLOSING, flow_opened::MID_STREAM),
                "flags {flags:#x}"
            );
        }

        let cfg = pickup_config();
        let mut v = flow_new(1, 0, ipproto::TCP, ACK, second, 60);
        flow_touch(&mut v, Direction::Egress, ACK, 2 * second, 60);
        assert_eq!(v.state, flow_state::TCP_PICKED_UP, "an outbound segment");
        assert!(flow_alive(&cfg, &v, 32 * second));
        assert!(!flow_alive(&cfg, &v, 33 * second), "transitory timeout");
        flow_touch(&mut v, Direction::Ingress, ACK, 3 * second, 60);
        assert_eq!(v.state, flow_state::TCP_ESTABLISHED, "answered");
        assert_eq!(v.opened, flow_opened::MID_STREAM, "the origin stays");
        assert!(flow_alive(&cfg, &v, 3_000 * second));
        let mut closed = flow_new(1, 0, ipproto::TCP, ACK, second, 60);
        flow_touch(&mut closed, Direction::Ingress, RST | ACK, 2 * second, 60);
        assert_eq!(closed.state, flow_state::TCP_CLOSING);
        // A closed tuple reused by a new connection is SYN-opened from then on.
        flow_touch(&mut closed, Direction::Egress, SYN, 3 * second, 60);
        assert_eq!(
            (closed.state, closed.opened),
            (flow_state::TCP_SYN_SENT, flow_opened::SYN)
        );
    }

    /// A full ring nobody reads loses nothing that counts; one whose consumer moved within the
    /// window does, until the window passes without the consumer moving again.
    #[test]
    fn only_a_ring_someone_reads_loses_samples() {
        let second = 1_000_000_000;
        let mut b = LogBucket::default();
        // Never read: the consumer stays at 0.
        for t in 1..=30 {
            assert!(!log_loss(&mut b, 0, t * second), "{t} s, never read");
        }
        assert_eq!(b.lost, 0);
        // A reader took some samples and stopped: counted for the window after the move seen.
        assert!(log_loss(&mut b, 4096, 40 * second));
        assert!(log_loss(&mut b, 4096, 45 * second));
        assert!(log_loss(&mut b, 4096, 50 * second));
        assert!(!log_loss(&mut b, 4096, 50 * second + 1));
        assert_eq!(b.lost, 3);
        // It reads again (too slowly): counted again.
        assert!(log_loss(&mut b, 8192, 70 * second));
        assert_eq!(b.lost, 4);
    }

    #[test]
    fn log_tokens_follow_the_rate() {
        let mut b = LogBucket::default();
        let second = 1_000_000_000;
        let t0 = 100 * second;
        // A full bucket: `rate` samples at once, then none until time passes.
        assert_eq!((0..10).filter(|_| log_token(&mut b, 3, t0)).count(), 3);
        assert!(!log_token(&mut b, 3, t0 + second / 10));
        // One second earns `rate` more, never more than the bucket holds.
        assert_eq!(
            (0..10)
                .filter(|_| log_token(&mut b, 3, t0 + 5 * second))
                .count(),
            3
        );
        // Rate 0 never logs.
        assert!(!log_token(&mut LogBucket::default(), 0, t0));
    }

    /// Samples `log_token` grants over the five seconds after one second of a flood of
    /// `drops_per_sec` drops (evenly spaced, their times rounded down to a multiple of `tick`
    /// as CLOCK_MONOTONIC_COARSE does; 1 for the exact times).
    fn flood(rate: u32, drops_per_sec: u64, tick: u64) -> u64 {
        let second = 1_000_000_000u64;
        let t0 = 1000 * second;
        let mut b = LogBucket::default();
        let mut sampled = 0;
        for i in 0..6 * drops_per_sec {
            let now = (t0
                + u64::try_from(u128::from(i) * u128::from(second) / u128::from(drops_per_sec))
                    .unwrap())
                / tick
                * tick;
            if log_token(&mut b, rate, now) && now >= t0 + second {
                sampled += 1;
            }
        }
        sampled
    }

    /// Under a flood the log gets `rate` samples a second, not its first burst and then silence
    /// (as when the refill rounded each step's credit down to whole samples and dropped the
    /// rest): sub-second steps at 1k and 100k drops/s, exact and on the coarse clock's ticks
    /// (HZ 1000, 250, 100).
    #[test]
    fn log_tokens_keep_the_rate_under_a_flood() {
        for rate in [1, 10, 1000, MAX_LOG_RATE] {
            for drops in [1_000, 100_000] {
                for tick in [1, 1_000_000, 4_000_000, 10_000_000] {
                    let got = flood(rate, drops, tick);
                    let want = 5 * u64::from(rate).min(drops);
                    assert!(
                        (want - 1..=want).contains(&got),
                        "rate {rate}/s, {drops} drops/s, tick {tick} ns: {got} samples in 5 s, want {want}"
                    );
                }
            }
        }
    }

    /// The same at the highest drop rate one CPU reaches with the benchmark's generator
    /// (`BPF_PROG_TEST_RUN` of the filter: about 30 M/s), on the coarse clock.
    #[test]
    fn log_tokens_keep_the_rate_at_the_generators_highest_drop_rate() {
        for rate in [10, MAX_LOG_RATE] {
            let got = flood(rate, 30_000_000, 4_000_000);
            let want = 5 * u64::from(rate);
            assert!(
                (want - 1..=want).contains(&got),
                "rate {rate}/s: {got} samples in 5 s, want {want}"
            );
        }
    }
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: all are `#[repr(C)]`, made of integers only, with no implicit padding (see the size
    // assertions next to each type).
    unsafe impl aya::Pod for super::Config {}
    unsafe impl aya::Pod for super::Counter {}
    unsafe impl aya::Pod for super::FragKey {}
    unsafe impl aya::Pod for super::FragVerdict {}
    unsafe impl aya::Pod for super::FlowKey {}
    unsafe impl aya::Pod for super::LogBucket {}
    unsafe impl aya::Pod for super::DropEvent {}
    unsafe impl aya::Pod for super::FlowValue {}
    unsafe impl aya::Pod for super::learn::AddrKey {}
    unsafe impl aya::Pod for super::learn::LearnedValue {}
    unsafe impl aya::Pod for super::learn::QueryKey {}
    unsafe impl aya::Pod for super::learn::QueryValue {}
    unsafe impl aya::Pod for super::learn::DomainEntry {}
    unsafe impl aya::Pod for super::flow_cache::CachedFlow {}
}
