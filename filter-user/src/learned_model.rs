//! The learned-address model: the rows `gotofw learned` and `explain --domain` show of what a
//! filter's domain rules learned (a learned map's entries named by the filter's record, with
//! the live flows to each address). Below `cmd/`, which both commands are in.

use std::{collections::HashMap, net::IpAddr};

use serde::Serialize;

use crate::loader::{
    Attached, Meta,
    learned::{LearnedSet, key_addr},
};

/// An address learned for a domain set.
#[derive(Debug, Serialize, PartialEq)]
pub struct LearnedAddress {
    /// The address (an A or AAAA record of an answer).
    pub address: String,
    /// The domain set it was learned for.
    pub set: String,
    /// The set's pattern the question matched (`*.goto.com`, `api.example.org`).
    pub pattern: String,
    /// Seconds until it stops admitting new connections for this set (0 once expired).
    pub expires_in: f64,
    /// Whether it has expired for this set (listed with `--all` only).
    pub expired: bool,
    /// The TTL of the record that last taught it, in seconds, as the answer gave it (its
    /// expiry is the TTL clamped to the filter's bounds).
    pub ttl: u32,
    /// Seconds since an answer last taught it.
    pub learned_ago: f64,
    /// Live flows to it (connections outlive the TTL: a flow stays usable after expiry).
    pub flows: usize,
}

/// Seconds between two CLOCK_MONOTONIC_COARSE readings, at millisecond precision.
fn seconds(later: u64, earlier: u64) -> f64 {
    let ms = later.saturating_sub(earlier) / 1_000_000;
    f64::from(u32::try_from(ms).unwrap_or(u32::MAX)) / 1000.0
}

/// The name of set `set` of `meta`, and of its pattern `pattern` (a placeholder for an index
/// the record does not hold, which a record of the filter's own attach always does).
fn names(meta: &Meta, set: usize, pattern: u16) -> (String, String) {
    match meta.domain_sets.get(set) {
        Some(info) => (
            info.name.clone(),
            info.patterns
                .get(usize::from(pattern))
                .cloned()
                .unwrap_or_else(|| format!("pattern-{pattern}")),
        ),
        None => (format!("set-{set}"), format!("pattern-{pattern}")),
    }
}

/// The rows of `sets` at `now`, naming sets and patterns by `meta`, with the live flows to each
/// address from `flows`; expired ones only with `all`.
pub fn rows<S: std::hash::BuildHasher>(
    meta: &Meta,
    sets: &[LearnedSet],
    flows: &HashMap<IpAddr, usize, S>,
    now: u64,
    all: bool,
) -> Vec<LearnedAddress> {
    sets.iter()
        .filter(|s| all || s.expires_ns > now)
        .map(|s| {
            let (set, pattern) = names(meta, s.set, s.pattern);
            LearnedAddress {
                address: s.addr.to_string(),
                set,
                pattern,
                expires_in: seconds(s.expires_ns, now),
                expired: s.expires_ns <= now,
                ttl: s.ttl,
                learned_ago: seconds(now, s.learned_ns),
                flows: flows.get(&s.addr).copied().unwrap_or(0),
            }
        })
        .collect()
}

/// The live flows of `attached` by remote address.
pub fn live_flows(attached: &Attached, now: u64) -> anyhow::Result<HashMap<IpAddr, usize>> {
    let mut out = HashMap::new();
    for flow in attached.flows(now)?.iter().filter(|f| f.alive) {
        let key = filter_common::learn::AddrKey {
            addr: flow.key.remote,
            family: flow.key.family,
            _pad: [0; 3],
        };
        *out.entry(key_addr(&key)).or_insert(0) += 1;
    }
    Ok(out)
}
