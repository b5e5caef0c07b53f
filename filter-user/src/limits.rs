//! Bounds and defaults of the operator's settings, in one place: clap's value parsers and
//! `--help` texts (`cli`), the configuration file's checks (`config`), the flow limits a rule set
//! is compiled with (`compile`) and the size of the kernel's flow map all take them from here.
//! A leaf: it names nothing of the crate.

use std::{fmt, ops::RangeInclusive};

/// A whole-number setting: the values it takes and the one it has when not given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bound {
    /// The smallest value taken.
    pub min: u32,
    /// The largest value taken.
    pub max: u32,
    /// The value when neither the command line nor the file gives one.
    pub default: u32,
}

impl Bound {
    /// The range, for clap's `value_parser!(u32).range(...)`.
    pub fn range(self) -> RangeInclusive<i64> {
        i64::from(self.min)..=i64::from(self.max)
    }

    /// Whether `n` is taken.
    pub const fn contains(self, n: u32) -> bool {
        self.min <= n && n <= self.max
    }
}

/// `--flow-table-size`, `[flows] table_size`: most flows the table holds.
pub const FLOW_TABLE_SIZE: Bound = Bound {
    min: 1024,
    max: 16_777_216,
    default: 262_144,
};

/// `--udp-timeout`, `[flows] udp_timeout`: idle seconds before a UDP flow expires.
pub const UDP_TIMEOUT: Bound = Bound {
    min: 1,
    max: 86_400,
    default: 120,
};

/// `--tcp-timeout`, `[flows] tcp_timeout`: idle seconds before an established TCP flow expires.
pub const TCP_TIMEOUT: Bound = Bound {
    min: 1,
    max: 1_209_600,
    default: 7_200,
};

/// `--tcp-transitory-timeout`, `[flows] tcp_transitory_timeout`: idle seconds before a
/// half-open or closing TCP flow expires.
pub const TCP_TRANSITORY_TIMEOUT: Bound = Bound {
    min: 1,
    max: 3_600,
    default: 30,
};

/// `--log-rate`, `[log] rate`: dropped packets sampled into the drop log per second and CPU
/// (0: off); the kernel's token bucket takes at most [`filter_common::MAX_LOG_RATE`].
pub const LOG_RATE: Bound = Bound {
    min: 0,
    max: filter_common::MAX_LOG_RATE,
    default: 10,
};

/// `--dns-ttl-min`, `[domains] ttl_min`: least seconds an address a DNS answer taught stays
/// learned, whatever its record's TTL (a TTL of 0 would otherwise let no connection open).
pub const DNS_TTL_MIN: Bound = Bound {
    min: 0,
    max: 3_600,
    default: 60,
};

/// `--dns-ttl-max`, `[domains] ttl_max`: most seconds an address a DNS answer taught stays
/// learned, whatever its record's TTL; at least the minimum.
pub const DNS_TTL_MAX: Bound = Bound {
    min: 1,
    max: 604_800,
    default: 86_400,
};

/// `--learned-table-size`, `[domains] table_size`: most learned addresses the kernel holds;
/// when full, the least recently used go.
pub const LEARNED_TABLE_SIZE: Bound = Bound {
    min: 1024,
    max: 1_048_576,
    default: 16_384,
};

/// Entries of the kernel's flow map when the rule set keeps no flow table (stateless and
/// ingress-only mode): the map must exist, so it takes this token size.
pub const FLOW_MAP_MIN_ENTRIES: u32 = 16;

/// The configuration file `check-config`, `reload` and `run` read when no `--config` is given.
pub const CONFIG_PATH: &str = "/etc/gotofw/gotofw.toml";

/// A `--help` line ending in its default as clap shows one: `TEXT [default: DEFAULT]`, for the
/// options whose value stays unset when not given (so that the file's value can apply).
pub fn with_default(text: &str, default: impl fmt::Display) -> String {
    format!("{text} [default: {default}]")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each flow option's and the log rate's `--help` line shows the default of its [`Bound`]
    /// (`config`'s tests check that clap and the file take the bound's range).
    #[test]
    fn help_lines_show_the_defaults_of_the_bounds() {
        let cli = crate::cli::command();
        let attach = cli.find_subcommand("attach").expect("attach");
        for (id, flag, bound) in [
            ("table_size", "--flow-table-size", FLOW_TABLE_SIZE),
            ("udp_timeout", "--udp-timeout", UDP_TIMEOUT),
            ("tcp_timeout", "--tcp-timeout", TCP_TIMEOUT),
            (
                "tcp_transitory_timeout",
                "--tcp-transitory-timeout",
                TCP_TRANSITORY_TIMEOUT,
            ),
            ("log_rate", "--log-rate", LOG_RATE),
            ("dns_ttl_min", "--dns-ttl-min", DNS_TTL_MIN),
            ("dns_ttl_max", "--dns-ttl-max", DNS_TTL_MAX),
            (
                "learned_table_size",
                "--learned-table-size",
                LEARNED_TABLE_SIZE,
            ),
        ] {
            let arg = attach
                .get_arguments()
                .find(|a| a.get_id() == id)
                .unwrap_or_else(|| panic!("{id}"));
            assert_eq!(arg.get_long(), flag.strip_prefix("--"));
            let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
            assert!(
                help.ends_with(&format!("[default: {}]", bound.default)),
                "{flag}: {help}"
            );
            assert!(bound.contains(bound.default), "{flag}");
        }
    }
}
