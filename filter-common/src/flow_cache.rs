//! The flow path's two fast structures in front of the flow table (ARCHITECTURE.md, "The flow
//! path"): a per-CPU **flow cache** that admits the packets of a known flow without the table's
//! hash lookup, and the **remote summary** that tells, without one either, that no flow has an
//! inbound packet's remote address and port. Both are plain arrays, whose lookups the verifier
//! inlines into a few instructions; a kernel hash-table lookup costs about 30 ns, hit or miss
//! (bench/ANALYSIS.md).
//!
//! ## The flow cache
//!
//! Each CPU has [`CACHE_ENTRIES`] entries ([`CachedFlow`]), indexed by [`cache_index`] of the
//! flow key. An entry is filled when the table admits an inbound packet ([`FlowHit::Live`]) and
//! holds the flow's key, rule and rule-set generation and the `jiffies` tick of the fill. An
//! inbound packet is admitted from the entry when its key, the current generation and the
//! current tick match and it carries no SYN, FIN or RST ([`cache_admits`]). That is exactly what
//! the table would answer:
//!
//! - the program's clock ([`CLOCK_MONOTONIC_COARSE`](https://docs.kernel.org/core-api/timekeeping.html))
//!   moves only at ticks, so within the tick of the fill the flow's last-seen time is still the
//!   clock's reading and its idle timeout cannot have passed;
//! - an inbound packet without SYN, FIN or RST changes nothing in a live flow but its last-seen
//!   time (already this tick's reading) and its counters ([`flow_touch`](crate::flow_touch)),
//!   once the table has seen one inbound packet of the flow (the first answer to a flow picked
//!   up mid-stream establishes it; the fill comes after that visit);
//! - a rule-set swap changes the generation, so no entry of the old rules is used.
//!
//! The counters the entry skipped are kept in it ([`CachedFlow::packets`], `bytes`) and added to
//! the flow's table entry the next time the table is consulted for that key on this CPU
//! ([`cache_flush`]) or when another flow takes the entry; user space adds those still pending
//! when it lists flows ([`pending_of`]), so `gotofw flows` counts every packet. What the cache
//! can change, for at most one tick: a flow another CPU rebinds to another rule of the same
//! generation still counts in the old rule's slot, and a flow removed from the table (evicted,
//! or deleted by user space) is still admitted. The table's recency (for LRU eviction) is
//! refreshed once per tick per CPU instead of per packet.
//!
//! ## The remote summary
//!
//! An array of [`u32`] stamps sized by the loader (a power of two, [`Config::remote_mask`] + 1),
//! indexed by [`remote_index`] of (remote address, remote port, protocol, family). Every time a
//! flow's last-seen time is set (at egress, at an inbound packet the table admits) its slot is
//! stamped with the time, in units of 2^[`STAMP_SHIFT`] ns ([`stamp`]); it is written only when
//! the stamp changes, so a busy flow writes its slot about once a millisecond, not per packet.
//! An inbound packet whose slot is older than the longest idle timeout (plus a margin,
//! [`remote_window`]) cannot belong to a live flow: it is a [`FlowHit::Miss`] without the table
//! lookup ([`remote_may_have_flow`]). Flows sharing a slot only make a stamp newer: a false
//! "maybe" costs the table lookup (today's cost), a false "no" cannot happen. Stamps wrap every
//! 2^32 units (about 49.7 days) and are compared as signed distances, so a stamp in the future
//! (or more than 24.8 days old) reads as "maybe".

use core::ops::DerefMut;

use crate::{
    Config, Direction, FlowHit, FlowKey, FlowValue, flow_alive, flow_judge_ingress, flow_new,
    flow_rebind, tcp_flags,
};

/// Entries of the flow cache per CPU (a power of two).
pub const CACHE_ENTRIES: u32 = 2048;

/// One entry of the flow cache (this CPU's).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CachedFlow {
    /// The flow; all zero when the entry is empty (a real key has family 4 or 6).
    pub key: FlowKey,
    /// The flow's rule, as the table admitted it.
    pub rule: u32,
    /// The rule-set generation the rule refers to.
    pub generation: u32,
    /// The `jiffies` tick the entry was filled in.
    pub tick: u64,
    /// When the flow was opened ([`FlowValue::created_ns`]): the pending counts belong to
    /// that opening of the tuple only, not to a flow opened again after it expired.
    pub created_ns: u64,
    /// Inbound packets admitted from the entry and not yet added to the flow's table entry.
    pub packets: u64,
    /// Their bytes.
    pub bytes: u64,
}
const _: () = assert!(size_of::<CachedFlow>() == 80);

/// The five 8-byte words of a flow key (it is 8-byte aligned), for hashing and comparing
/// without a byte loop (the BPF backend turns a 40-byte comparison into a `memcmp` call).
#[inline(always)]
pub const fn key_words(key: &FlowKey) -> [u64; 5] {
    // SAFETY: `FlowKey` is `repr(C, align(8))`, 40 bytes without implicit padding.
    unsafe { *core::ptr::from_ref(key).cast::<[u64; 5]>() }
}

/// Whether two flow keys are equal, word by word.
#[inline(always)]
pub const fn same_key(a: &FlowKey, b: &FlowKey) -> bool {
    let (a, b) = (key_words(a), key_words(b));
    (a[0] ^ b[0]) | (a[1] ^ b[1]) | (a[2] ^ b[2]) | (a[3] ^ b[3]) | (a[4] ^ b[4]) == 0
}

/// Fibonacci hashing's multiplier (2^64 / the golden ratio).
const GOLDEN: u64 = 0x9e37_79b9_7f4a_7c15;

/// The flow cache entry of `key`.
#[inline(always)]
pub const fn cache_index(key: &FlowKey) -> u32 {
    let w = key_words(key);
    let h = (w[0] ^ w[1].rotate_left(17) ^ w[2].rotate_left(31) ^ w[3].rotate_left(47) ^ w[4])
        .wrapping_mul(GOLDEN);
    (h >> 40) as u32 & (CACHE_ENTRIES - 1)
}

/// TCP flags that change a flow's state: packets with any of them always go to the table.
const STATE_FLAGS: u8 = tcp_flags::SYN | tcp_flags::FIN | tcp_flags::RST;

/// Whether the cache entry `entry` admits an inbound packet of flow `key` with TCP flags
/// `tcp_flags` (zero for UDP), under rule-set `generation`, in tick `tick`.
#[inline(always)]
pub const fn cache_admits(
    entry: &CachedFlow,
    key: &FlowKey,
    generation: u32,
    tick: u64,
    tcp_flags: u8,
) -> bool {
    tcp_flags & STATE_FLAGS == 0
        && entry.tick == tick
        && entry.generation == generation
        && same_key(&entry.key, key)
}

/// Counts an inbound packet of `len` bytes that the entry admitted.
#[inline(always)]
pub const fn cache_count(entry: &mut CachedFlow, len: u64) {
    entry.packets += 1;
    entry.bytes += len;
}

/// Adds the entry's pending counts to `value`, the table entry of the entry's flow, when it is
/// the same opening of the flow, and clears them.
#[inline(always)]
pub fn cache_flush(entry: &mut CachedFlow, value: &mut FlowValue) {
    if entry.created_ns == value.created_ns {
        value.packets[0] += entry.packets;
        value.bytes[0] += entry.bytes;
    }
    clear_counts(entry);
}

/// Zeroes the entry's pending counts: two stores (written as volatile ones, since the BPF
/// backend otherwise turns two adjacent zero stores into a `memset` call, a byte loop).
#[inline(always)]
fn clear_counts(entry: &mut CachedFlow) {
    // SAFETY: pointers to two fields of a live exclusive reference.
    unsafe {
        core::ptr::write_volatile(&raw mut entry.packets, 0);
        core::ptr::write_volatile(&raw mut entry.bytes, 0);
    }
}

/// Fills the entry for flow `key` (opened at `created_ns`), which the table just admitted
/// under `rule` of `generation` in tick `tick`. The caller flushed what the entry held.
#[inline(always)]
pub fn cache_fill(
    entry: &mut CachedFlow,
    key: &FlowKey,
    created_ns: u64,
    rule: u32,
    generation: u32,
    tick: u64,
) {
    entry.key = *key;
    entry.rule = rule;
    entry.generation = generation;
    entry.tick = tick;
    entry.created_ns = created_ns;
    clear_counts(entry);
}

/// The pending inbound (packets, bytes) of flow `key`, opened at `created_ns`, in `entries`
/// (for listing flows with every packet counted).
pub fn pending_of<'a>(
    key: &FlowKey,
    created_ns: u64,
    entries: impl IntoIterator<Item = &'a CachedFlow>,
) -> (u64, u64) {
    entries
        .into_iter()
        .filter(|e| e.packets != 0 && e.created_ns == created_ns && same_key(&e.key, key))
        .fold((0, 0), |(p, b), e| (p + e.packets, b + e.bytes))
}

/// A stamp is the clock in units of 2^`STAMP_SHIFT` ns (about 1.05 ms).
pub const STAMP_SHIFT: u32 = 20;

/// Margin of [`remote_window`], in stamp units (about 67 ms): two CPUs' readings of the coarse
/// clock, written in either order, differ by much less.
const STAMP_MARGIN: u64 = 64;

/// The stamp of `now_ns` (wrapping).
#[inline(always)]
pub const fn stamp(now_ns: u64) -> u32 {
    (now_ns >> STAMP_SHIFT) as u32
}

/// How old, in stamp units, a remote's stamp may be while a flow of it can still be alive:
/// the longest idle timeout of `cfg`, rounded up, plus a margin (at most `i32::MAX`).
#[inline(always)]
pub const fn remote_window(cfg: &Config) -> i32 {
    let mut secs = cfg.udp_timeout;
    if cfg.tcp_established_timeout > secs {
        secs = cfg.tcp_established_timeout;
    }
    if cfg.tcp_transitory_timeout > secs {
        secs = cfg.tcp_transitory_timeout;
    }
    let units = ((secs as u64 * 1_000_000_000) >> STAMP_SHIFT) + 1 + STAMP_MARGIN;
    if units > i32::MAX as u64 {
        i32::MAX
    } else {
        units as i32
    }
}

/// Whether a flow with the remote whose summary slot holds `slot` may be alive at `now_ns`.
#[inline(always)]
pub const fn remote_may_have_flow(slot: u32, now_ns: u64, cfg: &Config) -> bool {
    // A signed distance: a stamp ahead of the clock (written by a CPU whose reading was a
    // little later) is recent.
    stamp(now_ns).wrapping_sub(slot).cast_signed() <= remote_window(cfg)
}

/// The remote summary's slot of `key`'s remote end (address, port, protocol, family), in a
/// summary of `mask` + 1 entries.
#[inline(always)]
pub const fn remote_index(key: &FlowKey, mask: u32) -> u32 {
    let w = key_words(key);
    // Word 4: remote port (bits 0-15), local port (16-31), protocol (32-39), family (40-47).
    let h = (w[0] ^ w[1].rotate_left(23) ^ (w[4] & 0x0000_ffff_0000_ffff).rotate_left(41))
        .wrapping_mul(GOLDEN);
    (h >> 32) as u32 & mask
}

/// Stamps `slot` with `now_ns` unless it already holds that stamp (a read is cheaper than a
/// write to a cache line other CPUs read).
#[inline(always)]
pub const fn remote_touch(slot: &mut u32, now_ns: u64) {
    let s = stamp(now_ns);
    if *slot != s {
        *slot = s;
    }
}

/// Entries of the remote summary for a flow table of `flows` entries: the power of two at or
/// above twice that (so a full table fills at most half the slots), between 1,024 and 2^24
/// (64 MiB).
pub const fn remote_entries(flows: u32) -> u32 {
    let want = flows as u64 * 2;
    let mut n: u64 = 1024;
    while n < want && n < (1 << 24) {
        n *= 2;
    }
    n as u32
}

/// The maps of the flow path, as the kernel (BPF maps: plain references to map values) and
/// the host model (cells) give them. (References rather than closures: the BPF backend does not
/// inline every closure, and a call boundary costs.)
pub trait FlowMaps {
    /// A cache entry, borrowed.
    type Cache<'a>: DerefMut<Target = CachedFlow>
    where
        Self: 'a;
    /// A flow table entry, borrowed.
    type Flow<'a>: DerefMut<Target = FlowValue>
    where
        Self: 'a;
    /// A remote summary slot, borrowed.
    type Remote<'a>: DerefMut<Target = u32>
    where
        Self: 'a;
    /// The current `jiffies` tick.
    fn tick(&self) -> u64;
    /// The program's clock (CLOCK_MONOTONIC_COARSE, ns) with the tick it was read in.
    fn clock(&self) -> (u64, u64);
    /// This CPU's flow cache entry `index`; `None` when there is no cache.
    fn cache(&self, index: u32) -> Option<Self::Cache<'_>>;
    /// The flow table's entry of `key`.
    fn flow(&self, key: &FlowKey) -> Option<Self::Flow<'_>>;
    /// Adds (or replaces) the flow `key` in the table; a full table evicts its least recently
    /// used flow.
    fn insert_flow(&self, key: &FlowKey, value: &FlowValue);
    /// The remote summary's slot `index`; `None` when there is no summary.
    fn remote(&self, index: u32) -> Option<Self::Remote<'_>>;
}

/// Stateful inbound: what the flow path says of a packet of flow `key` (see
/// [`Tables::flow_ingress`](crate::Tables::flow_ingress)): from this CPU's cache entry when it
/// admits the packet, a miss when the remote summary rules a flow out, else the table's answer
/// ([`flow_judge_ingress`]), with the cache entry flushed before and filled after a live hit.
#[inline(always)]
pub fn ingress<M: FlowMaps>(
    maps: &M,
    cfg: &Config,
    key: &FlowKey,
    tcp_flags: u8,
    len: u64,
) -> FlowHit {
    let index = cache_index(key);
    let tick = maps.tick();
    if let Some(mut entry) = maps.cache(index)
        && cache_admits(&entry, key, cfg.generation, tick, tcp_flags)
    {
        cache_count(&mut entry, len);
        return FlowHit::Live(entry.rule);
    }
    let (tick, now) = maps.clock();
    let slot = remote_index(key, cfg.remote_mask);
    if let Some(stamp) = maps.remote(slot)
        && !remote_may_have_flow(*stamp, now, cfg)
    {
        return FlowHit::Miss;
    }
    let hit = {
        let Some(mut value) = maps.flow(key) else {
            return FlowHit::Miss;
        };
        // This CPU's pending counts of the flow first, so the table counts every packet.
        if let Some(mut entry) = maps.cache(index)
            && same_key(&entry.key, key)
        {
            cache_flush(&mut entry, &mut value);
        }
        (
            flow_judge_ingress(cfg, &mut value, now, tcp_flags, len),
            value.created_ns,
        )
    };
    if let (FlowHit::Live(rule), created_ns) = hit {
        if let Some(mut stamp) = maps.remote(slot) {
            remote_touch(&mut stamp, now);
        }
        refill(maps, index, key, created_ns, rule, cfg.generation, tick);
    }
    hit.0
}

/// Fills this CPU's cache entry `index` for flow `key` (opened at `created_ns`, admitted under
/// `rule` of `generation` in `tick`); another flow's pending counts there go to its table entry
/// first.
#[inline(always)]
fn refill<M: FlowMaps>(
    maps: &M,
    index: u32,
    key: &FlowKey,
    created_ns: u64,
    rule: u32,
    generation: u32,
    tick: u64,
) {
    let Some(mut entry) = maps.cache(index) else {
        return;
    };
    if entry.packets != 0
        && !same_key(&entry.key, key)
        && let Some(mut value) = maps.flow(&entry.key)
    {
        cache_flush(&mut entry, &mut value);
    }
    cache_fill(&mut entry, key, created_ns, rule, generation, tick);
}

/// Stateful inbound after [`FlowHit::Stale`]: rebinds the flow `key` to `rule` of the current
/// generation and refreshes it (see [`Tables::flow_rebind`](crate::Tables::flow_rebind)).
#[inline(always)]
pub fn rebind<M: FlowMaps>(
    maps: &M,
    cfg: &Config,
    key: &FlowKey,
    rule: u32,
    tcp_flags: u8,
    len: u64,
) {
    let (tick, now) = maps.clock();
    let created_ns = {
        let Some(mut value) = maps.flow(key) else {
            return;
        };
        flow_rebind(
            &mut value,
            rule,
            cfg.generation,
            Direction::Ingress,
            tcp_flags,
            now,
            len,
        );
        value.created_ns
    };
    if let Some(mut stamp) = maps.remote(remote_index(key, cfg.remote_mask)) {
        remote_touch(&mut stamp, now);
    }
    refill(
        maps,
        cache_index(key),
        key,
        created_ns,
        rule,
        cfg.generation,
        tick,
    );
}

/// Stateful outbound, allowed by `rule` of `generation`: refreshes (and rebinds) the flow `key`
/// when it is alive, opens it otherwise, and stamps its remote (see
/// [`Tables::flow_egress`](crate::Tables::flow_egress)).
#[inline(always)]
pub fn egress<M: FlowMaps>(
    maps: &M,
    cfg: &Config,
    key: &FlowKey,
    rule: u32,
    generation: u32,
    tcp_flags: u8,
    len: u64,
) {
    let (_, now) = maps.clock();
    let refreshed = match maps.flow(key) {
        Some(mut value) if flow_alive(cfg, &value, now) => {
            flow_rebind(
                &mut value,
                rule,
                generation,
                Direction::Egress,
                tcp_flags,
                now,
                len,
            );
            true
        }
        _ => false,
    };
    if !refreshed {
        maps.insert_flow(
            key,
            &flow_new(rule, generation, key.proto, tcp_flags, now, len),
        );
    }
    if let Some(mut stamp) = maps.remote(remote_index(key, cfg.remote_mask)) {
        remote_touch(&mut stamp, now);
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;
    use crate::{flow_touch, ipproto};

    fn key(remote: u8, port: u16) -> FlowKey {
        let mut k = FlowKey {
            remote_port: port,
            local_port: 40_000,
            proto: ipproto::UDP,
            family: 4,
            ..FlowKey::default()
        };
        k.remote[..4].copy_from_slice(&[203, 0, 113, remote]);
        k.local[..4].copy_from_slice(&[198, 51, 100, 2]);
        k
    }

    #[test]
    fn key_words_cover_every_field() {
        let base = key(1, 3478);
        let mut seen = std::collections::HashSet::new();
        seen.insert(key_words(&base));
        for i in 0..38 {
            let mut k = base;
            // SAFETY: FlowKey is plain bytes.
            let bytes = unsafe {
                core::slice::from_raw_parts_mut(core::ptr::from_mut(&mut k).cast::<u8>(), 40)
            };
            bytes[i] ^= 0x5a;
            assert!(!same_key(&k, &base), "byte {i}");
            assert!(seen.insert(key_words(&k)), "byte {i}");
        }
        assert!(same_key(&base, &key(1, 3478)));
    }

    #[test]
    fn the_cache_admits_only_its_flow_in_its_tick_and_generation_without_state_flags() {
        let k = key(1, 3478);
        let mut e = CachedFlow::default();
        assert!(
            !cache_admits(&e, &k, 0, 0, 0),
            "an empty entry admits nothing"
        );
        cache_fill(&mut e, &k, 1, 3, 7, 100);
        assert!(cache_admits(&e, &k, 7, 100, 0));
        assert!(cache_admits(&e, &k, 7, 100, tcp_flags::ACK));
        assert!(!cache_admits(&e, &k, 7, 101, 0), "next tick");
        assert!(!cache_admits(&e, &k, 8, 100, 0), "another generation");
        assert!(
            !cache_admits(&e, &key(2, 3478), 7, 100, 0),
            "another remote"
        );
        assert!(!cache_admits(&e, &key(1, 3479), 7, 100, 0), "another port");
        for f in [
            tcp_flags::SYN,
            tcp_flags::FIN,
            tcp_flags::RST,
            0x12,
            0x11,
            0x14,
        ] {
            assert!(!cache_admits(&e, &k, 7, 100, f), "flags {f:#x}");
        }
    }

    #[test]
    fn pending_counts_reach_the_table_once() {
        let k = key(1, 3478);
        let mut e = CachedFlow::default();
        cache_fill(&mut e, &k, 1, 3, 7, 100);
        cache_count(&mut e, 100);
        cache_count(&mut e, 50);
        let other = CachedFlow {
            packets: 5,
            bytes: 500,
            ..e
        };
        assert_eq!(pending_of(&k, 1, [&e, &other]), (7, 650));
        assert_eq!(pending_of(&k, 2, [&e, &other]), (0, 0), "another opening");
        assert_eq!(pending_of(&key(2, 1), 1, [&e, &other]), (0, 0));
        let mut v = flow_new(3, 7, ipproto::UDP, 0, 1, 10);
        cache_flush(&mut e, &mut v);
        assert_eq!((v.packets, v.bytes), ([2, 1], [150, 10]));
        cache_flush(&mut e, &mut v);
        assert_eq!((v.packets, v.bytes), ([2, 1], [150, 10]));
        assert_eq!(pending_of(&k, 1, [&e]), (0, 0));
        // Counts of an earlier opening of the tuple are dropped, not added.
        cache_count(&mut e, 70);
        let mut again = flow_new(3, 7, ipproto::UDP, 0, 2, 10);
        cache_flush(&mut e, &mut again);
        assert_eq!(again.packets, [0, 1]);
        assert_eq!(pending_of(&k, 1, [&e]), (0, 0));
    }

    /// The property the cache rests on: within one tick (one clock reading), an inbound packet
    /// without state flags finds a live flow of the current generation unchanged but for its
    /// counters, whatever its state.
    #[test]
    fn after_the_first_answer_an_inbound_packet_without_state_flags_changes_only_counters() {
        let cfg = Config {
            udp_timeout: 30,
            tcp_established_timeout: 300,
            tcp_transitory_timeout: 10,
            generation: 7,
            ..Config::default()
        };
        for proto in [ipproto::UDP, ipproto::TCP] {
            for open in [
                tcp_flags::SYN,
                tcp_flags::ACK,
                tcp_flags::FIN,
                tcp_flags::RST,
            ] {
                let mut v = flow_new(3, 7, proto, open, 1_000, 60);
                // The table's visit that fills the cache comes first: it may still change the
                // state (a flow picked up mid-stream is established by its first answer).
                assert_eq!(
                    flow_judge_ingress(&cfg, &mut v, 1_000, tcp_flags::ACK, 60),
                    FlowHit::Live(3)
                );
                for flags in [0, tcp_flags::ACK, 0x18, 0x20, 0x08] {
                    let before = v;
                    assert_eq!(
                        flow_judge_ingress(&cfg, &mut v, 1_000, flags, 60),
                        FlowHit::Live(3)
                    );
                    let mut expect = before;
                    flow_touch(&mut expect, Direction::Ingress, flags, 1_000, 60);
                    assert_eq!(v, expect);
                    assert_eq!(
                        (v.state, v.last_seen_ns, v.rule, v.generation),
                        (before.state, before.last_seen_ns, 3, 7),
                        "proto {proto} opened {open:#x} flags {flags:#x}"
                    );
                }
            }
        }
    }

    #[test]
    fn the_summary_says_no_only_past_the_longest_timeout() {
        let cfg = Config {
            udp_timeout: 30,
            tcp_established_timeout: 7_440,
            tcp_transitory_timeout: 120,
            ..Config::default()
        };
        let t0: u64 = 5_000_000_000_000;
        let mut slot = 0;
        remote_touch(&mut slot, t0);
        assert_eq!(slot, stamp(t0));
        for late in [0, 1, 30, 120, 7_440] {
            assert!(
                remote_may_have_flow(slot, t0 + late * 1_000_000_000, &cfg),
                "{late} s"
            );
        }
        assert!(!remote_may_have_flow(
            slot,
            t0 + 7_441 * 1_000_000_000,
            &cfg
        ));
        // A stamp a little ahead of the clock is recent.
        assert!(remote_may_have_flow(stamp(t0 + 50_000_000), t0, &cfg));
        // Wrapping: the same distance across 2^32 units.
        let wrap = (1u64 << (32 + STAMP_SHIFT)) - 1_000_000_000;
        let mut s = 0;
        remote_touch(&mut s, wrap);
        assert!(remote_may_have_flow(s, wrap + 2_000_000_000, &cfg));
        assert!(!remote_may_have_flow(s, wrap + 8_000 * 1_000_000_000, &cfg));
        // Timeouts beyond the stamp range make every slot "maybe".
        let long = Config {
            tcp_established_timeout: u32::MAX,
            ..cfg
        };
        assert_eq!(remote_window(&long), i32::MAX);
        assert!(remote_may_have_flow(0, t0, &long));
    }

    #[test]
    fn the_summary_key_is_the_remote_end() {
        let mask = remote_entries(262_144) - 1;
        assert_eq!(mask, (1 << 19) - 1);
        let k = key(1, 53);
        let mut other_local = k;
        other_local.local_port = 1;
        other_local.local[0] = 10;
        assert_eq!(remote_index(&k, mask), remote_index(&other_local, mask));
        // Different remotes spread: 4,096 remotes fill most of 8,192 slots' distinct values.
        let slots: std::collections::HashSet<u32> = (0..4096u32)
            .map(|i| {
                let mut r = k;
                r.remote[..4].copy_from_slice(&(0xc633_6400u32 + i * 7).to_be_bytes());
                r.remote_port = 53 + (i % 3) as u16;
                remote_index(&r, 8191)
            })
            .collect();
        assert!(slots.len() > 3000, "{} distinct slots", slots.len());
        assert_eq!(remote_entries(0), 1024);
        assert_eq!(remote_entries(16_777_216), 1 << 24);
    }

    #[test]
    fn cache_indexes_spread() {
        let slots: std::collections::HashSet<u32> = (0..1024u16)
            .map(|i| {
                let mut k = key(1, 443);
                k.local_port = 30_000 + i;
                cache_index(&k)
            })
            .collect();
        assert!(slots.len() > 700, "{} distinct entries", slots.len());
    }
}
