//! What the classifier answers: a [`Decision`] (verdict and counter slot) inside an [`Outcome`]
//! (with what the caller remembers of a first fragment).

use crate::{ACTION_DROP, ACTION_PASS, FragVerdict, domain::mark, slot};

/// What to do with a packet, and where to count it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    /// [`ACTION_PASS`] or [`ACTION_DROP`].
    pub action: u32,
    /// Counter slot within the packet's direction: one of [`slot`] or a
    /// [`rule_slot`](crate::rule_slot).
    pub slot: u32,
    /// What the program does with the packet besides the verdict: one of the
    /// [`mark`](crate::domain::mark) values (record a DNS query, learn from a DNS answer).
    pub dns: u32,
}

impl Decision {
    pub(super) const fn drop(slot: u32) -> Self {
        Self {
            action: ACTION_DROP,
            slot,
            dns: mark::NONE,
        }
    }

    pub(super) const fn pass(slot: u32) -> Self {
        Self {
            action: ACTION_PASS,
            slot,
            dns: mark::NONE,
        }
    }

    pub(super) const DEFAULT_BLOCK: Self = Self::drop(slot::DEFAULT_BLOCK);
    pub(super) const MALFORMED: Self = Self::drop(slot::MALFORMED);
    pub(super) const UNSUPPORTED: Self = Self::drop(slot::UNSUPPORTED);
    pub(super) const NOT_LEARNED: Self = Self::drop(slot::NOT_LEARNED);

    /// This decision with the DNS mark `dns`.
    pub(super) const fn marked(self, dns: u32) -> Self {
        Self { dns, ..self }
    }

    /// Whether the packet passes.
    pub const fn passes(&self) -> bool {
        self.action == ACTION_PASS
    }
}

/// The classifier's result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The verdict and counter slot.
    pub decision: Decision,
    /// The packet is the first fragment of a datagram: the caller stores
    /// [`Outcome::frag_verdict`] in the fragment map under the key the classifier wrote, so that
    /// later fragments take it.
    pub remember: bool,
    /// With `remember`: the length of the first fragment's fragmentable part, which later
    /// fragments may not overlap.
    pub guard: u16,
}

impl Outcome {
    pub(super) const fn only(decision: Decision) -> Self {
        Self {
            decision,
            remember: false,
            guard: 0,
        }
    }

    /// What the fragment map keeps for a first fragment.
    pub const fn frag_verdict(&self) -> FragVerdict {
        FragVerdict {
            slot: self.decision.slot,
            action: self.decision.action as u16,
            guard: self.guard,
        }
    }

    /// A first fragment's outcome: its fragmentable part runs from `frag_start` to `end`. No
    /// later fragment may overlap any of it: honest fragmentation never overlaps, and an
    /// overlap could rewrite what the verdict was based on (ports, flags, extension headers, an
    /// ICMP error's quote; RFC 1858, RFC 3128, RFC 5722).
    #[inline(always)]
    pub(super) fn first_fragment(decision: Decision, frag_start: usize, end: usize) -> Self {
        // `frag_start <= end` and the IP payload is under 64 KiB; no branch here, so the
        // verifier does not track one more value through the extension-header walk.
        Self {
            decision,
            remember: true,
            guard: end.wrapping_sub(frag_start) as u16,
        }
    }
}
