//! What the classifier knows of domain rules (issue 13): the DNS port, the marks it gives the
//! programs for DNS packets, and which rules an address's learned domain sets admit. A leaf
//! module: the classifier and the learning code ([`crate::learn`]) both use it.

use crate::{Config, FlowKey, MAX_DOMAIN_SETS, ipproto, packet::opaque};

/// The DNS port.
pub const DNS_PORT: u16 = 53;

/// What the classifier asks the program to do with a packet besides its verdict
/// ([`Decision::dns`](crate::Decision::dns)).
pub mod mark {
    /// Nothing.
    pub const NONE: u32 = 0;
    /// An allowed outbound UDP packet to port 53 in stateful mode with domain sets: a query to
    /// record.
    pub const QUERY: u32 = 1;
    /// An inbound UDP packet from port 53 of a live flow in stateful mode with domain sets: an
    /// answer to learn from.
    pub const ANSWER: u32 = 2;
}

/// The rules of `cfg` that the domain sets of `sets` admit.
#[inline(always)]
pub fn rules_of_sets(cfg: &Config, sets: u32) -> u64 {
    let mut rules = 0;
    for i in 0..MAX_DOMAIN_SETS {
        // Without a branch, as `learn::learned_sets`.
        let all = opaque(u64::from((sets >> i) & 1)).wrapping_neg();
        rules |= cfg.set_rules[i] & all;
    }
    rules
}

/// Whether `flow`, the key of a flow, is the flow of a DNS answer (UDP from port 53).
#[inline(always)]
pub const fn is_dns_flow(flow: &FlowKey) -> bool {
    flow.proto == ipproto::UDP && flow.remote_port == DNS_PORT
}
