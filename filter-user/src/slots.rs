//! Names of the counter slots, as `status` and `explain` show them.

use filter_common::{FIXED_SLOTS, slot};

use crate::scenario::{Action, Allowance};

/// A counter slot that is not a rule.
#[derive(Clone, Copy, Debug)]
pub struct FixedSlot {
    /// Slot number.
    pub slot: u32,
    /// Name in reports.
    pub name: &'static str,
    /// What happens to its packets.
    pub action: Action,
    /// The allowance it counts, if it is one.
    pub allowance: Option<Allowance>,
    /// What it counts.
    pub description: &'static str,
}

/// Every fixed slot, in report order: the fixed-logic allowances, then the drops.
pub const FIXED: [FixedSlot; 9] = [
    FixedSlot {
        slot: slot::NON_IP,
        name: "non-ip",
        action: Action::Allow,
        allowance: Some(Allowance::NonIp),
        description: Allowance::NonIp.summary(),
    },
    FixedSlot {
        slot: slot::ICMPV6_ND,
        name: "icmpv6-nd",
        action: Action::Allow,
        allowance: Some(Allowance::Icmpv6Nd),
        description: Allowance::Icmpv6Nd.summary(),
    },
    FixedSlot {
        slot: slot::ICMP_ERRORS,
        name: "icmp-errors",
        action: Action::Allow,
        allowance: Some(Allowance::IcmpErrors),
        description: Allowance::IcmpErrors.summary(),
    },
    FixedSlot {
        slot: slot::PPPOE_CONTROL,
        name: "pppoe-control",
        action: Action::Allow,
        allowance: Some(Allowance::PppoeControl),
        description: Allowance::PppoeControl.summary(),
    },
    FixedSlot {
        slot: slot::DEFAULT_BLOCK,
        name: "default-block",
        action: Action::Block,
        allowance: None,
        description: "no rule or allowance matched",
    },
    FixedSlot {
        slot: slot::MALFORMED,
        name: "malformed",
        action: Action::Block,
        allowance: None,
        description: "truncated or inconsistent headers, or a fragment overlapping the transport header",
    },
    FixedSlot {
        slot: slot::UNSUPPORTED,
        name: "unsupported",
        action: Action::Block,
        allowance: None,
        description: "beyond what the parser walks: a third VLAN tag, too many IPv6 extension headers, a compressed PPP protocol field, jumbograms",
    },
    FixedSlot {
        slot: slot::FRAGMENT_UNKNOWN,
        name: "fragment-unknown",
        action: Action::Block,
        allowance: None,
        description: "a later fragment whose first fragment was not seen",
    },
    FixedSlot {
        slot: slot::NOT_LEARNED,
        name: "not-learned",
        action: Action::Block,
        allowance: None,
        description: "to the port of a domain rule, but to an address no DNS answer taught for its sets (and of no live flow of it)",
    },
];

/// The name of `slot` given the rule names in match order.
pub fn slot_name<S: AsRef<str>>(rules: &[S], slot: u32) -> String {
    if slot >= FIXED_SLOTS {
        return rules.get((slot - FIXED_SLOTS) as usize).map_or_else(
            || format!("rule-{}", slot - FIXED_SLOTS),
            |r| r.as_ref().to_owned(),
        );
    }
    FIXED
        .iter()
        .find(|f| f.slot == slot)
        .map_or_else(|| format!("slot-{slot}"), |f| f.name.to_owned())
}
