//! gotofw's own programs as the benchmarks load them: rule sets, in-process loading, a pre-filled
//! flow table, and the two floor programs (of the benchmark-only object).

use std::net::Ipv4Addr;

use anyhow::{Context, Result, anyhow};
use aya::{
    Ebpf, EbpfLoader,
    maps::HashMap,
    programs::{SchedClassifier, Xdp},
};
use filter_common::{FlowKey, FlowValue, flow_state, ipproto};
use filter_user::{
    compile::{Compiled, FlowLimits, Mode},
    loader,
    scenario::{Options, Rule, Scenario},
};
use ipnet::IpNet;

/// Index of the `https` rule in [`bench_rules`].
pub const HTTPS_RULE: u32 = 2;
/// Index of the `turn-udp` rule in [`bench_rules`].
pub const TURN_RULE: u32 = 0;

/// The benchmark's rule set: udp-turn's rules (TURN networks for UDP 3478, then https and the
/// DHCP, DNS and NTP allowances) with no-restrictions' media rule (UDP 45000-49999 from any
/// address) second, so every packet class has a rule to exercise. `turn` replaces the TURN
/// networks when given.
pub fn bench_rules(turn: Option<Vec<IpNet>>) -> Vec<Rule> {
    let mut udp_turn = Options::new(Scenario::UdpTurn);
    if let Some(nets) = turn {
        udp_turn.turn_networks = nets;
    }
    let mut rules = udp_turn.rules();
    let media = Options::new(Scenario::NoRestrictions).rules().remove(0);
    rules.insert(1, media);
    rules
}

/// The enabled fixed allowances (all of them, the default).
pub fn allowances() -> u32 {
    Options::new(Scenario::UdpTurn).allowance_bits()
}

/// The default flow limits with a table of `size` flows.
pub fn limits(size: u32) -> FlowLimits {
    FlowLimits {
        table_size: size,
        ..FlowLimits::default()
    }
}

/// Compiles `rules` for `mode` and loads the programs (unattached), with maps filled and the
/// drop log sampling at `attach`'s default rate, as an operator runs it.
pub fn load(rules: &[Rule], mode: &Mode) -> Result<Ebpf> {
    let mut compiled = Compiled::with_mode(rules, allowances(), mode)?;
    compiled.config.log_rate = filter_user::limits::LOG_RATE.default;
    loader::load(&compiled, b"{}")
}

/// The XDP program of a loaded gotofw object.
pub fn ingress(ebpf: &mut Ebpf) -> Result<&mut Xdp> {
    loader::program(ebpf)
}

/// The TC egress program of a loaded gotofw object (stateful mode).
pub fn egress(ebpf: &mut Ebpf) -> Result<&mut SchedClassifier> {
    loader::egress_program(ebpf)
}

/// The benchmark-only object (`filter_user::BENCH_EBPF_OBJECT`: the floors and the generator),
/// with no program loaded yet.
pub fn bench_object() -> Result<Ebpf> {
    EbpfLoader::new()
        .load(filter_user::BENCH_EBPF_OBJECT)
        .context("loading the benchmark-only eBPF object")
}

/// Loads program `name` of the benchmark-only object (`gotofw_floor`, `gotofw_parse_floor`) and
/// returns it.
pub fn extra<'a>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut Xdp> {
    let prog: &mut Xdp = ebpf
        .program_mut(name)
        .ok_or_else(|| anyhow!("the benchmark-only object has no program {name}"))?
        .try_into()?;
    if prog.fd().is_err() {
        prog.load().with_context(|| format!("loading {name}"))?;
    }
    Ok(prog)
}

/// A live flow opened by rule `rule` just now.
pub fn live_flow(rule: u32, proto: u8) -> FlowValue {
    let now = loader::monotonic_coarse_ns();
    FlowValue {
        rule,
        state: if proto == ipproto::TCP {
            flow_state::TCP_ESTABLISHED
        } else {
            flow_state::UDP
        },
        created_ns: now,
        last_seen_ns: now,
        ..FlowValue::default()
    }
}

/// The flow table of a loaded stateful object.
pub fn flows(ebpf: &mut Ebpf) -> Result<HashMap<&mut aya::maps::MapData, FlowKey, FlowValue>> {
    let map = ebpf
        .map_mut("FLOWS")
        .ok_or_else(|| anyhow!("the gotofw object has no map FLOWS"))?;
    Ok(HashMap::try_from(map)?)
}

/// Adds `count` flows with random remote ends in 198.18.0.0/15 (RFC 2544's benchmark network)
/// to the flow table, then `last` (so it is surely present).
pub fn fill_flows(ebpf: &mut Ebpf, count: usize, last: (&FlowKey, &FlowValue)) -> Result<()> {
    let mut rng = crate::rng::Rng::new(0x5eed_f10e);
    let value = live_flow(HTTPS_RULE, ipproto::TCP);
    let mut keys = Vec::with_capacity(count);
    {
        let mut map = flows(ebpf)?;
        for _ in 0..count.saturating_sub(1) {
            let r = rng.next();
            let addr = Ipv4Addr::from(0xc612_0000 | (r as u32 & 0x0001_ffff));
            let mut key = crate::frames::flow_key(addr, 443, ipproto::TCP);
            key.local_port = 1024 + ((r >> 32) as u16 % 60_000);
            map.insert(key, value, 0)
                .context("filling the flow table")?;
            keys.push((key, value.last_seen_ns));
        }
        map.insert(last.0, last.1, 0)
            .context("adding the probed flow")?;
        keys.push((*last.0, last.1.last_seen_ns));
    }
    // The programs stamp a flow's remote whenever they set its last-seen time; flows written
    // here need the same, or their replies would be taken for packets without a flow.
    let cfg = config(ebpf)?;
    for (key, seen) in keys {
        loader::flow_cache::stamp_remote(ebpf, &cfg, &key, seen)?;
    }
    Ok(())
}

/// Adds the flow `key` to the flow table with its remote stamped, as the programs do.
pub fn add_flow(ebpf: &mut Ebpf, key: &FlowKey, value: &FlowValue) -> Result<()> {
    flows(ebpf)?.insert(key, value, 0)?;
    let cfg = config(ebpf)?;
    loader::flow_cache::stamp_remote(ebpf, &cfg, key, value.last_seen_ns)
}

/// The config entry of a loaded object.
pub fn config(ebpf: &Ebpf) -> Result<filter_common::Config> {
    let map = ebpf
        .map("CONFIG")
        .ok_or_else(|| anyhow!("the gotofw object has no map CONFIG"))?;
    let config: aya::maps::Array<_, filter_common::Config> = aya::maps::Array::try_from(map)?;
    Ok(config.get(&0, 0)?)
}
