//! The gotofw programs: XDP on the WAN interface's ingress, TC (tcx) on its egress.
//!
//! Thin shells around [`filter_common::classify`]: they give the classifier bounds-checked access
//! to the frame and the BPF maps as lookup tables, then count the packet in the slot the
//! classifier named and remember first-fragment verdicts. In stateful mode the egress program
//! opens flows for allowed outbound packets and the ingress program admits the packets of live
//! flows. All decisions live in `filter-common`, where the host runs the same code.
#![no_std]
#![no_main]
// `asm!` on BPF, for the optimisation barrier in `Frame::bytes`; the crate builds with nightly.
#![feature(asm_experimental_arch)]

use core::mem::MaybeUninit;

use aya_ebpf::{
    bindings::xdp_action,
    helpers::bpf_ktime_get_coarse_ns,
    macros::{classifier, map, xdp},
    maps::{Array, LpmTrie, LruHashMap, PerCpuArray, lpm_trie::Key},
    programs::{TcContext, XdpContext},
};
use filter_common::{
    ACTION_PASS, COUNTER_ENTRIES, Config, Counter, Direction, FlowKey, FlowValue, FragKey,
    FragVerdict, Ipv4Key, Ipv6Key, MAX_PACKET_OFFSET, META_SIZE, Outcome, PORT_MAP_ENTRIES, Packet,
    Tables, classify, counter_index, flow_alive, flow_new, flow_touch, packet::Header,
};

/// Rule masks by (table, protocol, port); see `filter_common::port_index`.
#[map]
static PORTS: Array<u64> = Array::with_max_entries(PORT_MAP_ENTRIES, 0);

/// The rule set's configuration, one entry.
#[map]
static CONFIG: Array<Config> = Array::with_max_entries(1, 0);

/// Rule masks by IPv4 prefix; the loader resizes it to the rule set.
#[map]
static NETS_V4: LpmTrie<Ipv4Key, u64> = LpmTrie::with_max_entries(1024, 0);

/// Rule masks by IPv6 prefix; the loader resizes it to the rule set.
#[map]
static NETS_V6: LpmTrie<Ipv6Key, u64> = LpmTrie::with_max_entries(1024, 0);

/// Packets and bytes per (direction, slot).
#[map]
static COUNTERS: PerCpuArray<Counter> = PerCpuArray::with_max_entries(COUNTER_ENTRIES, 0);

/// Verdicts of first fragments, for the fragments that follow.
#[map]
static FRAGS: LruHashMap<FragKey, FragVerdict> = LruHashMap::with_max_entries(8192, 0);

/// Flows opened by allowed outbound packets (stateful mode); the loader sizes it.
#[map]
static FLOWS: LruHashMap<FlowKey, FlowValue> = LruHashMap::with_max_entries(1024, 0);

/// What the loader attached (JSON), for `gotofw status`; never read here.
#[map]
static META: Array<[u8; META_SIZE]> = Array::with_max_entries(1, 0);

/// The frame between `data` and `data_end`.
struct Frame {
    start: usize,
    end: usize,
}

/// A header the verifier knows lies inside the packet: `at..at + len` was checked against
/// `data_end`, and every read is at a constant index below `len`.
struct Checked {
    at: usize,
}

impl Packet for Frame {
    type Header<'a> = Checked;

    #[inline(always)]
    fn len(&self) -> usize {
        self.end - self.start
    }

    #[inline(always)]
    fn header(&self, offset: usize, len: usize) -> Option<Checked> {
        // The bound gives the verifier a maximum for the variable offset; the comparison with
        // `end` proves the header is inside the packet.
        if offset > MAX_PACKET_OFFSET {
            return None;
        }
        let at = opaque(self.start + offset);
        if opaque(at + len) > self.end {
            return None;
        }
        Some(Checked { at })
    }
}

impl Header for Checked {
    #[inline(always)]
    fn u8(&self, i: usize) -> u8 {
        // SAFETY: the classifier reads only below the length `header` checked.
        unsafe { *((self.at + i) as *const u8) }
    }
}

/// Returns `x` unchanged, hiding from LLVM where it came from. Without it LLVM rewrites
/// `at + 1 > end` as `at >= end`, a form from which the verifier learns no packet range, and
/// folds pointer arithmetic into forms the verifier rejects.
#[inline(always)]
fn opaque(mut x: usize) -> usize {
    // SAFETY: a register move to itself.
    unsafe {
        core::arch::asm!("{0} = {0}", inout(reg) x, options(nomem, nostack, preserves_flags));
    }
    x
}

/// The maps as the classifier's lookup tables.
struct Maps;

impl Tables for Maps {
    #[inline(always)]
    fn port_mask(&self, index: u32) -> u64 {
        PORTS.get(index).copied().unwrap_or(0)
    }

    #[inline(always)]
    fn config(&self) -> Config {
        CONFIG.get(0).copied().unwrap_or_default()
    }

    #[inline(always)]
    fn net_mask_v4(&self, addr: Ipv4Key) -> u64 {
        NETS_V4.get(Key::new(32, addr)).copied().unwrap_or(0)
    }

    #[inline(always)]
    fn net_mask_v6(&self, addr: Ipv6Key) -> u64 {
        NETS_V6.get(Key::new(128, addr)).copied().unwrap_or(0)
    }

    #[inline(always)]
    fn fragment(&self, key: &FragKey) -> Option<FragVerdict> {
        // SAFETY: the value is copied out at once; a concurrent update can at worst give a
        // verdict of the same datagram's first fragment.
        unsafe { FRAGS.get(key).copied() }
    }

    #[inline(always)]
    fn flow_ingress(&self, key: &FlowKey, tcp_flags: u8, len: u64) -> Option<u32> {
        let value = FLOWS.get_ptr_mut(key)?;
        let cfg = self.config();
        let now = now();
        // SAFETY: a valid map value; concurrent updates from other CPUs can at worst lose a
        // counter increment or a timestamp (documented as approximate).
        let value = unsafe { &mut *value };
        if !flow_alive(&cfg, value, now) {
            return None;
        }
        flow_touch(value, Direction::Ingress, tcp_flags, now, len);
        Some(value.rule)
    }

    #[inline(always)]
    fn flow_egress(&self, key: &FlowKey, rule: u32, tcp_flags: u8, len: u64) {
        let cfg = self.config();
        let now = now();
        if let Some(value) = FLOWS.get_ptr_mut(key) {
            // SAFETY: as in `flow_ingress`.
            let value = unsafe { &mut *value };
            if flow_alive(&cfg, value, now) {
                flow_touch(value, Direction::Egress, tcp_flags, now, len);
                return;
            }
        }
        // A full map evicts its least recently used flow.
        let _ = FLOWS.insert(key, &flow_new(rule, key.proto, tcp_flags, now, len), 0);
    }

    #[inline(always)]
    fn flow_peek(&self, key: &FlowKey) -> Option<u32> {
        let cfg = self.config();
        // SAFETY: copied out at once.
        let value = unsafe { FLOWS.get(key) }?;
        flow_alive(&cfg, value, now()).then_some(value.rule)
    }
}

/// CLOCK_MONOTONIC_COARSE: cheap, and precise enough for timeouts in seconds.
#[inline(always)]
fn now() -> u64 {
    // SAFETY: a helper without arguments.
    unsafe { bpf_ktime_get_coarse_ns() }
}

/// Counts the packet and remembers a first fragment's verdict.
#[inline(always)]
fn account(direction: Direction, outcome: &Outcome, key: &MaybeUninit<FragKey>, len: u64) {
    let decision = outcome.decision;
    if let Some(counter) = COUNTERS.get_ptr_mut(counter_index(direction, decision.slot)) {
        // SAFETY: per-CPU slot of this CPU; programs do not nest on one CPU.
        unsafe {
            (*counter).packets += 1;
            (*counter).bytes += len;
        }
    }
    if outcome.remember {
        let verdict = FragVerdict {
            slot: decision.slot,
            action: decision.action,
        };
        // SAFETY: the classifier writes the key of every fragment it asks to remember.
        let key = unsafe { key.assume_init_ref() };
        // A full map evicts its oldest entry; a failed insert only means later fragments of
        // this datagram are dropped as unknown.
        let _ = FRAGS.insert(key, &verdict, 0);
    }
}

/// WAN ingress.
#[xdp]
pub fn gotofw_ingress(ctx: XdpContext) -> u32 {
    let frame = Frame {
        start: ctx.data(),
        end: ctx.data_end(),
    };
    let mut key = MaybeUninit::<FragKey>::uninit();
    let outcome = classify(&frame, &Maps, Direction::Ingress, &mut key);
    account(
        Direction::Ingress,
        &outcome,
        &key,
        (frame.end - frame.start) as u64,
    );
    if outcome.decision.action == ACTION_PASS {
        xdp_action::XDP_PASS
    } else {
        xdp_action::XDP_DROP
    }
}

/// tcx verdict: let the next program (or the stack) decide.
const TCX_NEXT: i32 = -1;
/// tcx verdict: drop.
const TCX_DROP: i32 = 2;
/// Headers the egress program wants in the linear part of the packet.
const EGRESS_HEADERS: u32 = 256;

/// WAN egress (stateful mode): enforces the rules as written and opens flows.
#[classifier]
pub fn gotofw_egress(ctx: TcContext) -> i32 {
    // Egress packets normally carry their headers in the linear part; make sure they do.
    let want = if ctx.len() < EGRESS_HEADERS {
        ctx.len()
    } else {
        EGRESS_HEADERS
    };
    if ((ctx.data_end() - ctx.data()) as u32) < want {
        let _ = ctx.pull_data(want);
    }
    let frame = Frame {
        start: ctx.data(),
        end: ctx.data_end(),
    };
    let mut key = MaybeUninit::<FragKey>::uninit();
    let outcome = classify(&frame, &Maps, Direction::Egress, &mut key);
    account(Direction::Egress, &outcome, &key, u64::from(ctx.len()));
    if outcome.decision.action == ACTION_PASS {
        TCX_NEXT
    } else {
        TCX_DROP
    }
}

/// The floor for measurements: drops everything, touches nothing. Never attached by gotofw.
#[xdp]
pub fn gotofw_floor(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_DROP
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
