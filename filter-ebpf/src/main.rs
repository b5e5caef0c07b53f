//! The gotofw programs: XDP on the WAN interface's ingress, TC (tcx or clsact) on its egress,
//! and the drop-log programs each of them tail-calls.
//!
//! Thin shells around [`filter_common::classify`]: they give the classifier bounds-checked access
//! to the frame and the BPF maps as lookup tables, then count the packet in the slot the
//! classifier named and remember first-fragment verdicts. The egress program enforces the rules
//! as written (except in ingress-only mode); in stateful mode it also opens flows for allowed
//! outbound packets, and the ingress program admits the packets of live flows. All decisions
//! live in `filter-common`, where the host runs the same code. Each entry point reads the config
//! entry once per packet and hands that one read to the classifier and to `account`.
//!
//! This is the object gotofw loads; the benchmarks' programs are another (`bench.rs`).
#![no_std]
#![no_main]
// `asm!` on BPF, for the optimisation barrier in `frame::opaque`; the crate builds with nightly.
#![feature(asm_experimental_arch)]

mod frame;

use core::mem::MaybeUninit;

use aya_ebpf::{
    bindings::{TC_ACT_SHOT, TC_ACT_UNSPEC, tcx_action_base, xdp_action},
    helpers::{
        bpf_jiffies64, bpf_ktime_get_coarse_ns,
        generated::{bpf_skb_load_bytes, bpf_xdp_load_bytes},
    },
    macros::{classifier, map, xdp},
    maps::{
        Array, HashMap, LpmTrie, LruHashMap, PerCpuArray, ProgramArray, RingBuf, lpm_trie::Key,
    },
    programs::{TcContext, XdpContext},
};
use filter_common::{
    ACTION_DROP, ACTION_PASS, ARMED, COUNTER_ENTRIES, Config, Counter, Direction, DropEvent,
    FlowHit, FlowKey, FlowValue, FragKey, FragVerdict, Ipv4Key, Ipv6Key, LogBucket, META_CHUNK,
    MODE_INGRESS_ONLY, Outcome, PORT_MAP_ENTRIES, Packet, Payload, Tables, classify, counter_index,
    dns::{MESSAGE_BUF, Message},
    domain::mark,
    flow_alive,
    flow_cache::{self, CACHE_ENTRIES, CachedFlow, FlowMaps},
    learn::{
        self, AddrKey, Datagram, DnsTables, DomainEntry, DomainKey, LearnedValue, QueryKey,
        QueryValue, Scratch, TrieKey, learned_merge, learned_sets, stat, udp_datagram,
    },
    link_payload, log_loss, log_token, nets,
    packet::Header,
    tail,
};

use crate::frame::Frame;

/// Rule masks by (table, protocol, port); see `filter_common::port_index`.
#[map]
static PORTS: Array<u64> = Array::with_max_entries(PORT_MAP_ENTRIES, 0);

/// The rule set's configuration, one entry.
#[map]
static CONFIG: Array<Config> = Array::with_max_entries(1, 0);

/// Rule masks by IPv4 prefix; the loader resizes it to the rule set.
#[map]
static NETS_V4: LpmTrie<Ipv4Key, u64> = LpmTrie::with_max_entries(1024, 0);

/// The direct first stage in front of `NETS_V4` (`filter_common::nets`); the loader sizes it to
/// one zeroed node (every address walks the trie) below the size that needs it.
#[map]
static NET_DIRECT_V4: Array<nets::Node> = Array::with_max_entries(1, 0);

/// The distinct masks the leaves of `NET_DIRECT_V4` index.
#[map]
static NET_MASKS_V4: Array<u64> = Array::with_max_entries(1, 0);

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

/// This CPU's flow cache (`filter_common::flow_cache`): known flows admitted without a FLOWS
/// lookup.
#[map]
static FLOW_CACHE: PerCpuArray<CachedFlow> = PerCpuArray::with_max_entries(CACHE_ENTRIES, 0);

/// The remote summary (`filter_common::flow_cache`): when a flow with each remote end was last
/// seen; the loader sizes it (`Config::remote_mask` + 1 entries).
#[map]
static REMOTES: Array<u32> = Array::with_max_entries(1, 0);

/// Samples of dropped packets for `gotofw log`.
#[map]
static LOG: RingBuf = RingBuf::with_byte_size(256 * 1024, 0);

/// The drop log's per-CPU rate limit, and the drop handed to the log program.
#[map]
static LOG_BUCKET: PerCpuArray<LogBucket> = PerCpuArray::with_max_entries(1, 0);

/// A reading of the coarse clock and the tick it was taken in.
#[repr(C)]
#[derive(Clone, Copy)]
struct Clock {
    tick: u64,
    ns: u64,
}

/// This CPU's last clock reading (see [`now`]).
#[map]
static CLOCK: PerCpuArray<Clock> = PerCpuArray::with_max_entries(1, 0);

/// Programs `gotofw_ingress` tail-calls (slots in `filter_common::tail`): the drop log
/// (`gotofw_log_xdp`), tail-called with a sampled drop, and the program it replaces, until its
/// rule set is armed. (A program array serves one program type, hence one per hook.)
#[map]
static TAIL_XDP: ProgramArray = ProgramArray::with_max_entries(tail::ENTRIES, 0);

/// The same for `gotofw_egress` (its drop log is `gotofw_log_tc`).
#[map]
static TAIL_TC: ProgramArray = ProgramArray::with_max_entries(tail::ENTRIES, 0);

/// Domain patterns by their reversed labels (`filter_common::learn`): the sets a question name
/// is in. The loader sizes it to the rule set's patterns.
#[map]
static DOMAINS: LpmTrie<DomainKey, DomainEntry> = LpmTrie::with_max_entries(1, 0);

/// Addresses learned from DNS answers, with until when each holds for each domain set; the
/// loader sizes it.
#[map]
static LEARNED: LruHashMap<AddrKey, LearnedValue> = LruHashMap::with_max_entries(1024, 0);

/// DNS queries the egress program saw leave for names of the domain sets, awaiting answers.
#[map]
static QUERIES: LruHashMap<QueryKey, QueryValue> =
    LruHashMap::with_max_entries(learn::QUERY_TABLE_ENTRIES, 0);

/// The DNS servers answers are learned from (`Config::dns_servers` entries; none: any).
#[map]
static DNS_SERVERS: HashMap<AddrKey, u32> = HashMap::with_max_entries(1, 0);

/// Per-CPU DNS statistics, by `filter_common::learn::stat` slot.
#[map]
static DNS_STATS: PerCpuArray<u64> = PerCpuArray::with_max_entries(stat::ENTRIES, 0);

/// Per-CPU scratch space of the DNS programs: entry 0 the egress program's, 1 the ingress's.
#[map]
static DNS_SCRATCH: PerCpuArray<Scratch> = PerCpuArray::with_max_entries(2, 0);

/// What the loader attached (JSON, over as many entries as it takes: the loader sizes the map),
/// for `gotofw status`; never read here.
#[map]
static META: Array<[u8; META_CHUNK]> = Array::with_max_entries(1, 0);

/// What the classifier sees if the config map were empty: no rule, no allowance.
static NO_CONFIG: Config = Config {
    any_mask: 0,
    allow_mask: 0,
    local_port_mask: 0,
    ingress_mask: 0,
    allowances: 0,
    mode: 0,
    udp_timeout: 0,
    tcp_established_timeout: 0,
    tcp_transitory_timeout: 0,
    generation: 0,
    log_rate: 0,
    armed: ARMED,
    link: 0,
    domain_sets: 0,
    domain_mask: 0,
    set_rules: [0; filter_common::MAX_DOMAIN_SETS],
    dns_servers: 0,
    dns_ttl_min: 0,
    dns_ttl_max: 0,
    remote_mask: 0,
};

/// The config map's entry; without one (never, once loaded) everything is blocked.
#[inline(always)]
fn config_entry() -> &'static Config {
    CONFIG.get(0).unwrap_or(&NO_CONFIG)
}

/// The maps as the classifier's lookup tables. `cfg` is the config entry the program read once
/// for this packet; the classifier and `account` take it from here.
struct Maps {
    cfg: &'static Config,
}

impl Tables for Maps {
    #[inline(always)]
    fn port_mask(&self, index: u32) -> u64 {
        PORTS.get(index).copied().unwrap_or(0)
    }

    #[inline(always)]
    fn config(&self) -> &Config {
        self.cfg
    }

    #[inline(always)]
    fn net_mask_v4(&self, addr: Ipv4Key) -> u64 {
        nets::lookup(
            u32::from_be_bytes(addr),
            |n| NET_DIRECT_V4.get(n),
            |i| NET_MASKS_V4.get(i).copied(),
        )
        .unwrap_or_else(|| NETS_V4.get(Key::new(32, addr)).copied().unwrap_or(0))
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
    fn flow_ingress(&self, cfg: &Config, key: &FlowKey, tcp_flags: u8, len: u64) -> FlowHit {
        flow_cache::ingress(self, cfg, key, tcp_flags, len)
    }

    #[inline(always)]
    fn flow_rebind(&self, cfg: &Config, key: &FlowKey, rule: u32, tcp_flags: u8, len: u64) {
        flow_cache::rebind(self, cfg, key, rule, tcp_flags, len);
    }

    #[inline(always)]
    fn flow_egress(
        &self,
        cfg: &Config,
        key: &FlowKey,
        rule: u32,
        generation: u32,
        tcp_flags: u8,
        len: u64,
    ) {
        flow_cache::egress(self, cfg, key, rule, generation, tcp_flags, len);
    }

    #[inline(always)]
    fn flow_peek(&self, cfg: &Config, key: &FlowKey) -> Option<u32> {
        // SAFETY: read at once.
        let value = unsafe { FLOWS.get(key) }?;
        flow_alive(cfg, value, now()).then_some(value.rule)
    }

    #[inline(always)]
    fn flow_rule(&self, cfg: &Config, key: &FlowKey) -> Option<u32> {
        // SAFETY: read at once.
        let value = unsafe { FLOWS.get(key) }?;
        (flow_alive(cfg, value, now()) && value.generation == cfg.generation).then_some(value.rule)
    }

    #[inline(always)]
    fn learned_sets(&self, family: u8, addr: &[u8; 16]) -> u32 {
        let key = AddrKey {
            addr: *addr,
            family,
            _pad: [0; 3],
        };
        // SAFETY: read at once; a concurrent update gives an expiry of either answer.
        match unsafe { LEARNED.get(&key) } {
            Some(value) => learned_sets(value, now()),
            None => 0,
        }
    }
}

impl FlowMaps for Maps {
    type Cache<'a> = &'a mut CachedFlow;
    type Flow<'a> = &'a mut FlowValue;
    type Remote<'a> = &'a mut u32;

    #[inline(always)]
    fn tick(&self) -> u64 {
        // SAFETY: a helper without arguments (inlined into a load of `jiffies`).
        unsafe { bpf_jiffies64() }
    }

    #[inline(always)]
    fn clock(&self) -> (u64, u64) {
        clock()
    }

    #[inline(always)]
    fn cache(&self, index: u32) -> Option<&mut CachedFlow> {
        let entry = FLOW_CACHE.get_ptr_mut(index)?;
        // SAFETY: this CPU's entry; programs do not nest on one CPU.
        Some(unsafe { &mut *entry })
    }

    #[inline(always)]
    fn flow(&self, key: &FlowKey) -> Option<&mut FlowValue> {
        let value = FLOWS.get_ptr_mut(key)?;
        // SAFETY: a valid map value; concurrent updates from other CPUs can at worst lose a
        // counter increment or a timestamp (documented as approximate).
        Some(unsafe { &mut *value })
    }

    #[inline(always)]
    fn insert_flow(&self, key: &FlowKey, value: &FlowValue) {
        // A full map evicts its least recently used flow.
        let _ = FLOWS.insert(key, value, 0);
    }

    #[inline(always)]
    fn remote(&self, index: u32) -> Option<&mut u32> {
        let slot = REMOTES.get_ptr_mut(index)?;
        // SAFETY: a valid map value; a racing write stores another CPU's reading of the same
        // clock (see `filter_common::flow_cache`).
        Some(unsafe { &mut *slot })
    }
}

/// The DNS maps, as the learning functions' tables.
struct DnsMaps;

impl DnsTables for DnsMaps {
    #[inline(always)]
    fn is_server(&self, addr: &AddrKey) -> bool {
        // SAFETY: only the presence is read.
        unsafe { DNS_SERVERS.get(addr) }.is_some()
    }

    #[inline(always)]
    fn domain(&self, key: &TrieKey) -> Option<DomainEntry> {
        // SAFETY: `TrieKey` has the layout of `Key<DomainKey>` (both `repr(C)`: a `u32` prefix
        // length, then the data), and lives in a map value for the whole call.
        let key = unsafe { &*(key as *const TrieKey).cast::<Key<DomainKey>>() };
        DOMAINS.get(key).copied()
    }

    #[inline(always)]
    fn record_query(&self, key: &QueryKey, value: &QueryValue) {
        // A full map evicts its least recently used query.
        let _ = QUERIES.insert(key, value, 0);
    }

    #[inline(always)]
    fn take_query(&self, key: &QueryKey) -> Option<QueryValue> {
        // SAFETY: copied out at once.
        let value = unsafe { QUERIES.get(key) }.copied()?;
        let _ = QUERIES.remove(key);
        Some(value)
    }

    #[inline(always)]
    fn learn(
        &self,
        addr: &AddrKey,
        entry: &DomainEntry,
        expires_ns: u64,
        ttl: u32,
        now: u64,
    ) -> bool {
        if let Some(value) = LEARNED.get_ptr_mut(addr) {
            // SAFETY: a valid map value; a concurrent update of the same address can at worst
            // keep the other answer's time for a set.
            learned_merge(unsafe { &mut *value }, entry, expires_ns, ttl, now);
            return true;
        }
        let mut value = LearnedValue::default();
        learned_merge(&mut value, entry, expires_ns, ttl, now);
        LEARNED.insert(addr, &value, 0).is_ok()
    }

    #[inline(always)]
    fn count(&self, slot: u32) {
        dns_count(slot);
    }
}

/// Adds one to DNS statistics slot `slot`.
#[inline(always)]
fn dns_count(slot: u32) {
    if let Some(counter) = DNS_STATS.get_ptr_mut(slot) {
        // SAFETY: this CPU's slot; programs do not nest on one CPU.
        unsafe { *counter += 1 };
    }
}

/// CLOCK_MONOTONIC_COARSE: precise enough for timeouts in seconds and the drop log's rate. It
/// moves only at timer ticks, when `jiffies` does; so each CPU keeps the last reading with the
/// tick it was taken in ([`CLOCK`]), and pays for the helper (a call of about 16 ns, which the
/// verifier does not inline) once per tick instead of once per packet. `bpf_jiffies64` is
/// inlined into a load of `jiffies`. A reading can be a tick old, as the coarse clock itself is.
#[inline(always)]
fn now() -> u64 {
    clock().1
}

/// The tick and [`now`]'s reading for it (the flow cache keys its entries by the tick).
#[inline(always)]
fn clock() -> (u64, u64) {
    // SAFETY: helpers without arguments.
    let tick = unsafe { bpf_jiffies64() };
    let Some(clock) = CLOCK.get_ptr_mut(0) else {
        // SAFETY: as above.
        return (tick, unsafe { bpf_ktime_get_coarse_ns() });
    };
    // SAFETY: this CPU's entry; programs do not nest on one CPU.
    let clock = unsafe { &mut *clock };
    if clock.tick != tick || clock.ns == 0 {
        clock.tick = tick;
        // SAFETY: as above.
        clock.ns = unsafe { bpf_ktime_get_coarse_ns() };
    }
    (tick, clock.ns)
}

/// Counts the packet and remembers a first fragment's verdict. Whether the packet is a drop the
/// log should sample at `cfg`'s rate (the slot and direction are then left in `LOG_BUCKET` for
/// the log program).
#[inline(always)]
fn account(
    cfg: &Config,
    direction: Direction,
    outcome: &Outcome,
    key: &MaybeUninit<FragKey>,
    len: u64,
) -> bool {
    let decision = outcome.decision;
    if let Some(counter) = COUNTERS.get_ptr_mut(counter_index(direction, decision.slot)) {
        // SAFETY: per-CPU slot of this CPU; programs do not nest on one CPU.
        unsafe {
            (*counter).packets += 1;
            (*counter).bytes += len;
        }
    }
    if outcome.remember {
        let verdict = outcome.frag_verdict();
        // SAFETY: the classifier writes the key of every fragment it asks to remember.
        let key = unsafe { key.assume_init_ref() };
        // A full map evicts its oldest entry; a failed insert only means later fragments of
        // this datagram are dropped as unknown.
        let _ = FRAGS.insert(key, &verdict, 0);
    }
    if decision.action != ACTION_DROP {
        return false;
    }
    let rate = cfg.log_rate;
    if rate == 0 {
        return false;
    }
    let Some(bucket) = LOG_BUCKET.get_ptr_mut(0) else {
        return false;
    };
    // SAFETY: this CPU's entry; programs do not nest on one CPU.
    let bucket = unsafe { &mut *bucket };
    if !log_token(bucket, rate, now()) {
        return false;
    }
    bucket.slot = decision.slot;
    bucket.direction = direction as u32;
    true
}

/// WAN ingress, frags-aware (multi-buffer frames of jumbo MTUs: the classifier reads only the
/// first buffer's headers; the drop-log program it tail-calls must carry the same flag).
/// (`inline(always)` applies to the body the macro wraps: the verifier must see
/// one function, since a call boundary turns the packet pointers into plain 32-bit values.)
#[xdp(frags)]
#[inline(always)]
pub fn gotofw_ingress(ctx: XdpContext) -> u32 {
    // The one read of the config entry for this packet.
    let cfg = config_entry();
    if cfg.armed != ARMED {
        // SAFETY: a valid context; with no program in the slot (a first attach) we pass.
        unsafe { TAIL_XDP.tail_call(&ctx, tail::PREVIOUS) };
        return xdp_action::XDP_PASS;
    }
    let frame = Frame::xdp(&ctx);
    let mut key = MaybeUninit::<FragKey>::uninit();
    let outcome = classify(&frame, &Maps { cfg }, Direction::Ingress, &mut key);
    if account(cfg, Direction::Ingress, &outcome, &key, frame.len as u64) {
        // SAFETY: a valid context; on failure (no program in the slot) we just drop.
        unsafe { TAIL_XDP.tail_call(&ctx, tail::LOG) };
    }
    if outcome.decision.action != ACTION_PASS {
        return xdp_action::XDP_DROP;
    }
    if outcome.decision.dns == mark::ANSWER {
        // SAFETY: a valid context. The learning program passes the answer once it has learned
        // from it; on failure the answer passes unlearned (its addresses stay blocked).
        unsafe { TAIL_XDP.tail_call(&ctx, tail::DNS) };
        dns_count(stat::MISSED);
    }
    xdp_action::XDP_PASS
}

/// TC verdict: let the next program or filter (or the stack) decide; the same value under tcx
/// (`TCX_NEXT`) and clsact (`TC_ACT_UNSPEC`).
const TC_NEXT: i32 = tcx_action_base::TCX_NEXT;
/// TC verdict: drop; the same value under tcx (`TCX_DROP`) and clsact (`TC_ACT_SHOT`).
const TC_DROP: i32 = tcx_action_base::TCX_DROP;
const _: () = assert!(TC_NEXT == TC_ACT_UNSPEC && TC_DROP == TC_ACT_SHOT);
/// Headers the egress program wants in the linear part of the packet.
const EGRESS_HEADERS: u32 = 256;

/// WAN egress: enforces the rules as written, and in stateful mode opens flows. An ingress-only
/// rule set passes everything here: its program takes a filter's egress link only for the
/// moment a `--replace` to ingress-only mode needs to switch both hooks at once.
#[classifier]
#[inline(always)]
pub fn gotofw_egress(ctx: TcContext) -> i32 {
    // The one read of the config entry for this packet, as at XDP.
    let cfg = config_entry();
    if cfg.armed != ARMED {
        // SAFETY: a valid context; with no program in the slot (a first attach) we pass.
        unsafe { TAIL_TC.tail_call(&ctx, tail::PREVIOUS) };
        return TC_NEXT;
    }
    if cfg.mode == MODE_INGRESS_ONLY {
        return TC_NEXT;
    }
    // Egress packets normally carry their headers in the linear part; make sure they do.
    let want = if ctx.len() < EGRESS_HEADERS {
        ctx.len()
    } else {
        EGRESS_HEADERS
    };
    if ((ctx.data_end() - ctx.data()) as u32) < want {
        let _ = ctx.pull_data(want);
    }
    let frame = Frame::tc(&ctx);
    let mut key = MaybeUninit::<FragKey>::uninit();
    let outcome = classify(&frame, &Maps { cfg }, Direction::Egress, &mut key);
    if account(cfg, Direction::Egress, &outcome, &key, frame.len as u64) {
        // SAFETY: a valid context; on failure (no program in the slot) we just drop.
        unsafe { TAIL_TC.tail_call(&ctx, tail::LOG) };
    }
    if outcome.decision.action != ACTION_PASS {
        return TC_DROP;
    }
    if outcome.decision.dns == mark::QUERY {
        // SAFETY: a valid context. The recording program passes the query once recorded; on
        // failure it leaves unrecorded (its answer will teach nothing).
        unsafe { TAIL_TC.tail_call(&ctx, tail::DNS) };
        dns_count(stat::MISSED);
    }
    TC_NEXT
}

/// Writes a drop-log sample of the frame, whose slot and direction `account` left in
/// `LOG_BUCKET`. Addresses and ports come from a short parse (the classifier's link-layer walk,
/// `link_payload`, then the fixed IP header and the ports right after it); what it cannot see
/// stays zero.
#[inline(always)]
fn log_drop(frame: &Frame) {
    let Some(bucket) = LOG_BUCKET.get(0) else {
        return;
    };
    let mut event = DropEvent {
        time_ns: now(),
        len: frame.len as u32,
        slot: bucket.slot,
        direction: bucket.direction as u8,
        ..DropEvent::default()
    };
    let l4 = match link_payload(frame, config_entry().link) {
        Payload::Ipv4 { off, .. } => frame.header(off, 20).map(|ip| {
            event.family = 4;
            event.proto = ip.u8(9);
            event.src[..4].copy_from_slice(&ip.array::<4>(12));
            event.dst[..4].copy_from_slice(&ip.array::<4>(16));
            let first = ip.be16(6) & 0x1fff == 0;
            (first, off + usize::from(ip.u8(0) & 0x0f) * 4)
        }),
        Payload::Ipv6 { off, .. } => frame.header(off, 40).map(|ip| {
            event.family = 6;
            event.proto = ip.u8(6);
            event.src = ip.array::<16>(8);
            event.dst = ip.array::<16>(24);
            (true, off + 40)
        }),
        _ => None,
    };
    if let Some((true, l4)) = l4
        && (event.proto == filter_common::ipproto::TCP
            || event.proto == filter_common::ipproto::UDP)
        && let Some(ports) = frame.header(l4, 4)
    {
        event.sport = ports.be16(0);
        event.dport = ports.be16(2);
    }
    // A full ring drops the sample, never the verdict; the sample counts as lost when a reader
    // follows the ring (its consumer position moved lately), see `log_loss`.
    if LOG.output::<DropEvent>(&event, 0).is_err()
        && let Some(bucket) = LOG_BUCKET.get_ptr_mut(0)
    {
        let consumer = LOG.query(u64::from(aya_ebpf::bindings::BPF_RB_CONS_POS));
        // SAFETY: this CPU's entry; programs do not nest on one CPU.
        let _ = log_loss(unsafe { &mut *bucket }, consumer, event.time_ns);
    }
}

/// Drop log, XDP side (tail-called from `gotofw_ingress`): logs, then drops.
#[xdp(frags)]
#[inline(always)]
pub fn gotofw_log_xdp(ctx: XdpContext) -> u32 {
    log_drop(&Frame::xdp(&ctx));
    xdp_action::XDP_DROP
}

/// Drop log, TC side (tail-called from `gotofw_egress`): logs, then drops.
#[classifier]
#[inline(always)]
pub fn gotofw_log_tc(ctx: TcContext) -> i32 {
    log_drop(&Frame::tc(&ctx));
    TC_DROP
}

/// The DNS message of `dgram` copied into `scratch.msg` by `load` (`bpf_xdp_load_bytes` or
/// `bpf_skb_load_bytes`: offset, destination, length); its length, at most [`MESSAGE_BUF`], or
/// `None` when it is empty or the copy failed.
#[inline(always)]
fn copy_message(
    dgram: &Datagram,
    scratch: &mut Scratch,
    load: impl FnOnce(u32, *mut u8, u32) -> i64,
) -> Option<usize> {
    let len = if dgram.len > MESSAGE_BUF {
        MESSAGE_BUF
    } else {
        dgram.len
    };
    if len == 0 || dgram.payload > filter_common::MAX_PACKET_OFFSET {
        return None;
    }
    (load(dgram.payload as u32, scratch.msg.as_mut_ptr(), len as u32) == 0).then_some(len)
}

/// Learns from the DNS answer in the frame (tail-called from `gotofw_ingress` for an inbound
/// UDP packet from port 53 of a live flow), then passes it. What it refuses counts in
/// `DNS_STATS` by reason; the answer passes either way (the flow admits it), only its addresses
/// are not learned.
#[xdp(frags)]
#[inline(always)]
pub fn gotofw_learn_xdp(ctx: XdpContext) -> u32 {
    let cfg = config_entry();
    let frame = Frame::xdp(&ctx);
    let Some(dgram) = udp_datagram(&frame, cfg.link) else {
        dns_count(stat::REFUSED_UNPARSED);
        return xdp_action::XDP_PASS;
    };
    let Some(scratch) = DNS_SCRATCH.get_ptr_mut(1) else {
        return xdp_action::XDP_PASS;
    };
    // SAFETY: this CPU's entry; programs do not nest on one CPU.
    let scratch = unsafe { &mut *scratch };
    let copied = copy_message(&dgram, scratch, |off, to, len| {
        // SAFETY: `to` is the scratch buffer of at least `len` bytes.
        unsafe { bpf_xdp_load_bytes(ctx.ctx, off, to.cast(), len) }
    });
    let Some(len) = copied else {
        dns_count(stat::REFUSED_UNPARSED);
        return xdp_action::XDP_PASS;
    };
    scratch.len = len;
    let Scratch { msg, work, .. } = scratch;
    let msg = Message::new(msg, len);
    if let Err(why) = learn::answer_question(&msg, &dgram, cfg, work, &DnsMaps, now()) {
        dns_count(why.stat());
        return xdp_action::XDP_PASS;
    }
    // SAFETY: a valid context; the records program passes the answer when it is done.
    unsafe { TAIL_XDP.tail_call(&ctx, tail::DNS_RECORDS) };
    dns_count(stat::MISSED);
    xdp_action::XDP_PASS
}

/// Learns the next record of the answer `gotofw_learn_xdp` began (its message and progress in
/// `DNS_SCRATCH`), then tail-calls itself for the one after, or passes the answer when done.
#[xdp(frags)]
#[inline(always)]
pub fn gotofw_records_xdp(ctx: XdpContext) -> u32 {
    let cfg = config_entry();
    let Some(scratch) = DNS_SCRATCH.get_ptr_mut(1) else {
        return xdp_action::XDP_PASS;
    };
    // SAFETY: this CPU's entry; a tail call runs on the CPU of its caller.
    let scratch = unsafe { &mut *scratch };
    let len = scratch.len;
    let Scratch { msg, work, .. } = scratch;
    let msg = Message::new(msg, len);
    if learn::answer_record(&msg, cfg, &mut work.progress, &DnsMaps, now()) {
        // SAFETY: a valid context; at most `MAX_RECORDS` calls, within the kernel's limit of
        // 33 tail calls a packet.
        unsafe { TAIL_XDP.tail_call(&ctx, tail::DNS_RECORDS) };
        dns_count(stat::MISSED);
    }
    xdp_action::XDP_PASS
}

/// Records the DNS query in the frame (tail-called from `gotofw_egress` for an allowed outbound
/// UDP packet to port 53), then lets it go.
#[classifier]
#[inline(always)]
pub fn gotofw_query_tc(ctx: TcContext) -> i32 {
    let cfg = config_entry();
    let frame = Frame::tc(&ctx);
    let Some(dgram) = udp_datagram(&frame, cfg.link) else {
        return TC_NEXT;
    };
    let Some(scratch) = DNS_SCRATCH.get_ptr_mut(0) else {
        return TC_NEXT;
    };
    // SAFETY: this CPU's entry; programs do not nest on one CPU.
    let scratch = unsafe { &mut *scratch };
    let copied = copy_message(&dgram, scratch, |off, to, len| {
        // SAFETY: `to` is the scratch buffer of at least `len` bytes.
        unsafe { bpf_skb_load_bytes(ctx.skb.skb.cast(), off, to.cast(), len) }
    });
    let Some(len) = copied else {
        return TC_NEXT;
    };
    let Scratch { msg, work, .. } = scratch;
    let msg = Message::new(msg, len);
    let _ = learn::record_query(&msg, &dgram, work, &DnsMaps, now());
    TC_NEXT
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
