//! The loader's own options: how to attach the XDP program and which hook carries the egress
//! one. A leaf module (it imports nothing of the crate), so that the scenario, the configuration
//! and the command line can name them without depending on the loader.

use aya::programs::XdpMode;
use serde::{Deserialize, Serialize};

/// Which hook carries the egress program (stateful and stateless mode).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum EgressHook {
    /// tcx where the kernel has it (Linux 6.6 and later), clsact otherwise.
    #[default]
    Auto,
    /// A tcx link (Linux 6.6 and later), pinned like the XDP link.
    Tcx,
    /// A direct-action filter on the clsact qdisc (older kernels; `tc filter show dev IFACE
    /// egress` lists it).
    Clsact,
}

impl EgressHook {
    /// `auto`, `tcx` or `clsact`, as typed and shown.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Tcx => "tcx",
            Self::Clsact => "clsact",
        }
    }
}

/// How to attach the XDP program.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum XdpModeArg {
    /// Native if the driver supports it, generic otherwise.
    #[default]
    Auto,
    /// In the driver (fastest); fails if the driver lacks XDP support.
    Native,
    /// In the kernel's generic path (any interface, slower).
    Generic,
}

impl XdpModeArg {
    pub(super) const fn aya(self) -> XdpMode {
        match self {
            Self::Auto => XdpMode::Default,
            Self::Native => XdpMode::Driver,
            Self::Generic => XdpMode::Skb,
        }
    }

    /// `auto`, `native` or `generic`, as typed and shown.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Native => "native",
            Self::Generic => "generic",
        }
    }
}
