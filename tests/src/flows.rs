//! Stateful rule sets on both sides, with rule-set swaps: the loaded programs (XDP
//! `gotofw_ingress`, TC `gotofw_egress`, through `BPF_PROG_TEST_RUN`) next to the host
//! classifier over `SoftTables`, for `tests/differential_flows.rs`.
//!
//! A [`FlowHarness`] loads one object per rule set of a swap pair, every object on ONE flow map
//! (pinned in a private bpffs directory and reused, as `set-scenario` keeps the flows), and the
//! host keeps one flow table. [`FlowHarness::swap`] puts another object (or the same) in force
//! under a new [`Config::generation`](filter_common::Config::generation), as a reload does.
//! [`FlowHarness::step`] runs one frame on both sides and compares the verdict and the counter
//! slot (the host keeps a twin of every object's counters: [`FlowHarness::compare_counters`]
//! compares all of them); [`FlowHarness::compare_flows`] compares the flow tables, entry by
//! entry. The kernel's flows are read in ONE place, [`FlowHarness::kernel_flow_values`].

use std::{collections::HashMap, mem::MaybeUninit, path::PathBuf};

use aya::{
    Ebpf,
    maps::{Array, HashMap as BpfHashMap, MapData, PerCpuArray},
    programs::{SchedClassifier, TestRun as _, TestRunOptions, Xdp},
};
use filter_common::{
    ACTION_DROP, ACTION_PASS, COUNTER_ENTRIES, Config, Counter, Decision, Direction, FlowKey,
    FlowValue, FragKey, classify, counter_index,
    flow_cache::CachedFlow,
    names::{map, program},
};
use filter_user::{
    compile::{Compiled, FlowLimits, Mode},
    loader,
    scenario::Options,
    slots,
};

use crate::{
    harness::{
        Framing, XDP_DROP, XDP_PASS,
        dns::{TCX_DROP, TCX_NEXT, coarse_now},
        verdict_word,
    },
    unique_name,
};

/// Flow limits of [`FlowHarness`] rule sets: timeouts of a day, so that no flow expires during
/// a test (the kernel's clock cannot be driven).
pub const LIMITS: FlowLimits = FlowLimits {
    table_size: 4096,
    udp_timeout: 86_400,
    tcp_established_timeout: 86_400,
    tcp_transitory_timeout: 86_400,
};

/// Most nanoseconds between the kernel's and the host's time stamps of one packet (two reads
/// of CLOCK_MONOTONIC_COARSE a moment apart, the kernel's up to a tick old).
pub const CLOCK_SLACK_NS: u64 = 500_000_000;

/// A private bpffs directory for the shared flow map's pin; removed on drop.
struct PinDir(PathBuf);

impl PinDir {
    fn new() -> Self {
        let dir = PathBuf::from(format!("/sys/fs/bpf/{}", unique_name("i14d")));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
        Self(dir)
    }
}

impl Drop for PinDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One loaded rule set.
struct Object {
    label: String,
    names: Vec<String>,
    compiled: Compiled,
    ebpf: Ebpf,
    /// The host's twin of this object's COUNTERS.
    counters: Vec<Counter>,
}

/// A swap pair of stateful rule sets, loaded on one flow map, and the host's twin.
pub struct FlowHarness {
    objects: Vec<Object>,
    active: usize,
    generation: u32,
    framing: Framing,
    host_flows: HashMap<FlowKey, FlowValue>,
    // Last: the objects (and their maps) go first.
    _pins: PinDir,
}

impl FlowHarness {
    /// Loads `sets` (`(label, options)`, compiled stateful with [`LIMITS`]) on one flow map;
    /// the first is in force, at generation 1. Panics (naming the label) when one does not load.
    pub fn new(sets: &[(&str, Options)]) -> Self {
        let pins = PinDir::new();
        let flows = pins.0.join("flows");
        let objects = sets
            .iter()
            .map(|(label, options)| {
                let rules = options.rules();
                let compiled =
                    Compiled::with_mode(&rules, options.allowance_bits(), &Mode::Stateful(LIMITS))
                        .unwrap_or_else(|e| panic!("{label}: {e}"));
                let ebpf = loader::load_reusing(&compiled, b"{}", Some(&flows))
                    .unwrap_or_else(|e| panic!("{label}: {e:#}"));
                Object {
                    label: (*label).to_owned(),
                    names: rules.iter().map(|r| r.name.clone()).collect(),
                    compiled,
                    ebpf,
                    counters: vec![Counter::default(); COUNTER_ENTRIES as usize],
                }
            })
            .collect();
        let mut h = Self {
            objects,
            active: 0,
            generation: 0,
            framing: Framing::Ethernet,
            host_flows: HashMap::new(),
            _pins: pins,
        };
        h.resync_counters();
        h.swap(0);
        h
    }

    /// Frames given to [`FlowHarness::step`] are framed by `framing` from now on, and every
    /// object (and its host twin) is told its link type.
    pub fn set_framing(&mut self, framing: Framing) {
        for i in 0..self.objects.len() {
            self.objects[i].compiled.config.link = framing.link();
            self.write_config(i);
        }
        self.framing = framing;
    }

    /// The rule-set generation in force.
    pub const fn generation(&self) -> u32 {
        self.generation
    }

    /// The label of the rule set in force.
    pub fn label(&self) -> &str {
        &self.objects[self.active].label
    }

    /// How many rule sets were loaded.
    pub fn objects(&self) -> usize {
        self.objects.len()
    }

    /// The name of counter slot `slot` under the rule set in force.
    pub fn slot_name(&self, slot: u32) -> String {
        slots::slot_name(&self.objects[self.active].names, slot)
    }

    fn write_config(&mut self, i: usize) {
        let object = &mut self.objects[i];
        let mut config: Array<_, Config> =
            Array::try_from(object.ebpf.map_mut(map::CONFIG).expect("the CONFIG map"))
                .expect("CONFIG is an array");
        config
            .set(0, object.compiled.config, 0)
            .expect("writing the config entry");
    }

    /// A rule-set swap: object `to` (modulo how many there are; the one in force, or the
    /// other) goes in force under the next generation, in the kernel's CONFIG and the host's
    /// compiled config. Flows stay; the new rules recheck them at their next packet.
    pub fn swap(&mut self, to: usize) {
        let to = to % self.objects.len();
        self.generation += 1;
        self.objects[to].compiled.config.generation = self.generation;
        self.write_config(to);
        self.active = to;
    }

    /// Runs `frame` (an untagged Ethernet frame, framed anew for the link) in `direction` on
    /// the host, then through the kernel program: the same verdict, and the kernel's counter of
    /// the host's slot moved by one packet and the frame's bytes. The verdict and slot name.
    pub fn step(&mut self, direction: Direction, frame: &[u8]) -> Result<(bool, String), String> {
        let frame = self.framing.apply(frame);
        let len = frame.len() as u64;
        let host = self.host_run(direction, &frame);
        let action = self.kernel_run(direction, &frame)?;
        let index = counter_index(direction, host.slot);
        let want = {
            let c = &mut self.objects[self.active].counters[index as usize];
            c.packets += 1;
            c.bytes += len;
            *c
        };
        let got = self.kernel_counter(index);
        let slot = self.slot_name(host.slot);
        if action != host.action {
            return Err(format!(
                "{direction:?} verdicts differ: kernel {}, host {} in {slot}",
                if action == ACTION_PASS {
                    "allow"
                } else {
                    "block"
                },
                verdict_word(host),
            ));
        }
        if got != want {
            return Err(format!(
                "{direction:?}: the host counted {} in {slot} (now {want:?}), the kernel's \
                 counter of that slot is {got:?}",
                verdict_word(host)
            ));
        }
        Ok((host.passes(), slot))
    }

    fn host_run(&mut self, direction: Direction, frame: &[u8]) -> Decision {
        let object = &self.objects[self.active];
        let tables = object.compiled.tables();
        *tables.flows.borrow_mut() = std::mem::take(&mut self.host_flows);
        tables.now.set(coarse_now());
        let mut key = MaybeUninit::<FragKey>::uninit();
        let outcome = classify(frame, &tables, direction, &mut key);
        self.host_flows = tables.flows.take();
        outcome.decision
    }

    fn kernel_run(&self, direction: Direction, frame: &[u8]) -> Result<u32, String> {
        let ebpf = &self.objects[self.active].ebpf;
        let opts = TestRunOptions {
            data_in: Some(frame),
            ..TestRunOptions::new()
        };
        let ret = match direction {
            Direction::Ingress => {
                let xdp: &Xdp = ebpf
                    .program(program::INGRESS)
                    .ok_or("no XDP program")?
                    .try_into()
                    .map_err(|e| format!("{e}"))?;
                xdp.test_run(opts)
            }
            Direction::Egress => {
                let tc: &SchedClassifier = ebpf
                    .program(program::EGRESS)
                    .ok_or("no egress program")?
                    .try_into()
                    .map_err(|e| format!("{e}"))?;
                tc.test_run(opts)
            }
        }
        .map_err(|e| format!("BPF_PROG_TEST_RUN of a {}-byte frame: {e}", frame.len()))?
        .return_value;
        match (direction, ret) {
            (Direction::Ingress, XDP_PASS) | (Direction::Egress, TCX_NEXT) => Ok(ACTION_PASS),
            (Direction::Ingress, XDP_DROP) | (Direction::Egress, TCX_DROP) => Ok(ACTION_DROP),
            (_, other) => Err(format!("{direction:?}: return value {other}")),
        }
    }

    fn counter_map(object: &Object) -> PerCpuArray<&MapData, Counter> {
        PerCpuArray::try_from(object.ebpf.map(map::COUNTERS).expect("the COUNTERS map"))
            .expect("COUNTERS is a per-CPU array")
    }

    fn read_counter(object: &Object, index: u32) -> Counter {
        Self::counter_map(object)
            .get(&index, 0)
            .expect("reading a counter")
            .iter()
            .fold(Counter::default(), |a, c| Counter {
                packets: a.packets + c.packets,
                bytes: a.bytes + c.bytes,
            })
    }

    fn kernel_counter(&self, index: u32) -> Counter {
        Self::read_counter(&self.objects[self.active], index)
    }

    /// Takes every object's kernel counters as the host's (after a failed sequence, whose
    /// counts the two sides no longer agree on).
    pub fn resync_counters(&mut self) {
        for object in &mut self.objects {
            let counters = (0..COUNTER_ENTRIES)
                .map(|i| Self::read_counter(object, i))
                .collect();
            object.counters = counters;
        }
    }

    /// Every counter of every object, kernel against the host's twin.
    pub fn compare_counters(&self) -> Result<(), String> {
        for object in &self.objects {
            for i in 0..COUNTER_ENTRIES {
                let kernel = Self::read_counter(object, i);
                let host = object.counters[i as usize];
                if kernel != host {
                    return Err(format!(
                        "[{}] counter {i} differs: kernel {kernel:?}, host {host:?}",
                        object.label
                    ));
                }
            }
        }
        Ok(())
    }

    fn flow_map(&self) -> BpfHashMap<&MapData, FlowKey, FlowValue> {
        BpfHashMap::try_from(self.objects[0].ebpf.map(map::FLOWS).expect("the FLOWS map"))
            .expect("FLOWS is a hash map")
    }

    /// The kernel's flows as user space reports them: the FLOWS entries (shared by every
    /// object) with the inbound counts every object's flow cache holds for them, on every CPU,
    /// added (as `gotofw flows` does). Everything that reads the kernel's flows reads them here.
    pub fn kernel_flow_values(&self) -> HashMap<FlowKey, FlowValue> {
        let mut pending = loader::flow_cache::Pending::new();
        for object in &self.objects {
            let cache: PerCpuArray<&MapData, CachedFlow> = PerCpuArray::try_from(
                object
                    .ebpf
                    .map(map::FLOW_CACHE)
                    .expect("the FLOW_CACHE map"),
            )
            .expect("FLOW_CACHE is a per-CPU array");
            for (flow, (packets, bytes)) in loader::flow_cache::pending(&cache) {
                let sum = pending.entry(flow).or_default();
                sum.0 += packets;
                sum.1 += bytes;
            }
        }
        self.flow_map()
            .iter()
            .map(|e| {
                let (key, value) = e.expect("reading FLOWS");
                (key, loader::flow_cache::with_pending(&key, value, &pending))
            })
            .collect()
    }

    /// The host's flow table.
    pub const fn host_flows(&self) -> &HashMap<FlowKey, FlowValue> {
        &self.host_flows
    }

    /// Deletes the flow `key` from both tables, as a flush does; an error when the kernel has
    /// no such flow and the host has.
    pub fn delete_flow(&mut self, key: &FlowKey) -> Result<(), String> {
        let host = self.host_flows.remove(key).is_some();
        let mut flows: BpfHashMap<&mut MapData, FlowKey, FlowValue> = BpfHashMap::try_from(
            self.objects[0]
                .ebpf
                .map_mut(map::FLOWS)
                .expect("the FLOWS map"),
        )
        .expect("FLOWS is a hash map");
        let kernel = flows.remove(key).is_ok();
        // As a flush does: no CPU's flow cache may admit the flow for the rest of its tick.
        for object in &mut self.objects {
            let mut cache: PerCpuArray<&mut MapData, CachedFlow> = PerCpuArray::try_from(
                object
                    .ebpf
                    .map_mut(map::FLOW_CACHE)
                    .expect("the FLOW_CACHE map"),
            )
            .expect("FLOW_CACHE is a per-CPU array");
            loader::flow_cache::forget(&mut cache, key)
                .map_err(|e| format!("emptying the flow cache of {key:?}: {e:#}"))?;
        }
        if host && !kernel {
            return Err(format!("deleting {key:?}: the kernel has no such flow"));
        }
        Ok(())
    }

    /// Deletes every flow of both tables (see [`FlowHarness::delete_flow`]).
    pub fn clear_flows(&mut self) {
        let mut keys: Vec<FlowKey> = self.kernel_flow_values().into_keys().collect();
        keys.extend(self.host_flows.keys());
        for key in keys {
            let _ = self.delete_flow(&key);
        }
    }

    /// The flow tables, entry by entry: the same keys; per flow the same rule, state,
    /// generation, packets and bytes per direction, and times within [`CLOCK_SLACK_NS`].
    pub fn compare_flows(&self) -> Result<(), String> {
        let kernel = self.kernel_flow_values();
        let mut problems = Vec::new();
        for (key, h) in &self.host_flows {
            match kernel.get(key) {
                None => problems.push(format!("only the host has {}: {h:?}", show(key))),
                Some(k) => {
                    let exact = |v: &FlowValue| (v.rule, v.state, v.generation, v.packets, v.bytes);
                    if exact(k) != exact(h)
                        || k.created_ns.abs_diff(h.created_ns) > CLOCK_SLACK_NS
                        || k.last_seen_ns.abs_diff(h.last_seen_ns) > CLOCK_SLACK_NS
                    {
                        problems.push(format!("{} differs: kernel {k:?}, host {h:?}", show(key)));
                    }
                }
            }
        }
        for (key, k) in &kernel {
            if !self.host_flows.contains_key(key) {
                problems.push(format!("only the kernel has {}: {k:?}", show(key)));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            problems.sort();
            Err(format!("flow tables differ:\n  {}", problems.join("\n  ")))
        }
    }
}

/// A flow key as `proto remote:port -> local:port`.
pub fn show(key: &FlowKey) -> String {
    let addr = |b: &[u8; 16]| -> std::net::IpAddr {
        if key.family == 4 {
            std::net::Ipv4Addr::new(b[0], b[1], b[2], b[3]).into()
        } else {
            std::net::Ipv6Addr::from(*b).into()
        }
    };
    format!(
        "proto {} {} port {} -> {} port {}",
        key.proto,
        addr(&key.remote),
        key.remote_port,
        addr(&key.local),
        key.local_port
    )
}
