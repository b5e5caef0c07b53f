//! What the classifier asks of the outside world: the [`Tables`] it looks rules, fragments and
//! flows up in, and what the flow table answers ([`FlowHit`]).

use crate::{Config, FlowKey, FragKey, FragVerdict, Ipv4Key, Ipv6Key};

/// The lookups the classifier needs; implemented over BPF maps in the kernel and over in-memory
/// tables on the host.
pub trait Tables {
    /// Rule mask stored at `index` of the port map (see [`port_index`](crate::port_index)); zero
    /// when none.
    fn port_mask(&self, index: u32) -> u64;
    /// The rule set's configuration. The kernel's tables return the entry the program read
    /// once for the packet.
    fn config(&self) -> &Config;
    /// Mask of the rules whose networks contain this IPv4 address (longest prefix match).
    fn net_mask_v4(&self, addr: Ipv4Key) -> u64;
    /// Mask of the rules whose networks contain this IPv6 address (longest prefix match).
    fn net_mask_v6(&self, addr: Ipv6Key) -> u64;
    /// The verdict remembered for the first fragment of this datagram, if any.
    fn fragment(&self, key: &FragKey) -> Option<FragVerdict>;
    /// Stateful mode, inbound: when the flow `key` is alive and of the current rule-set
    /// generation, refreshes it for this packet (see [`flow_touch`](crate::flow_touch)) and
    /// returns its rule; tells a live flow of another generation apart, untouched.
    fn flow_ingress(&self, cfg: &Config, key: &FlowKey, tcp_flags: u8, len: u64) -> FlowHit;
    /// Stateful mode, inbound, after [`FlowHit::Stale`] and a recheck that the current rules
    /// allow the flow: rebinds the flow `key` to `rule` of the current generation and refreshes
    /// it. (A flow they do not allow is left alone: not admitted, it idles out.)
    fn flow_rebind(&self, cfg: &Config, key: &FlowKey, rule: u32, tcp_flags: u8, len: u64);
    /// Stateful mode, outbound and allowed by `rule` of rule-set `generation`: refreshes (and
    /// rebinds) the flow `key` when it is alive, opens it (see [`flow_new`](crate::flow_new))
    /// otherwise.
    fn flow_egress(
        &self,
        cfg: &Config,
        key: &FlowKey,
        rule: u32,
        generation: u32,
        tcp_flags: u8,
        len: u64,
    );
    /// Stateful mode: the rule of the live flow `key`, without touching it.
    fn flow_peek(&self, cfg: &Config, key: &FlowKey) -> Option<u32>;
    /// Stateful mode, outbound: the rule of the live flow `key` when it is of the current
    /// rule-set generation (so the rule index means what it meant when the flow opened),
    /// without touching it.
    fn flow_rule(&self, cfg: &Config, key: &FlowKey) -> Option<u32>;
    /// The domain sets (a mask) that the address `addr` of `family` is learned for and
    /// unexpired at the program's clock.
    fn learned_sets(&self, family: u8, addr: &[u8; 16]) -> u32;
}

/// What the flow table says of an inbound packet's flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlowHit {
    /// A live flow of the current rule set, refreshed; its rule.
    Live(u32),
    /// A live flow opened under an earlier rule set: to be checked against the current one.
    Stale,
    /// No live flow.
    Miss,
}
