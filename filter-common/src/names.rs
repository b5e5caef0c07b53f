//! Names both sides know: the maps and programs of the eBPF object, and the files an attached
//! filter is pinned under (as xdp-filter shares its `MAP_NAME_*` in a common header).
//!
//! The kernel's map statics and program functions carry these names (aya's `#[map]` takes the
//! static's name, so they are spelled there again); `filter-user`'s
//! `the_object_has_exactly_the_shared_names` test parses the built object and fails on any
//! difference.

/// Map names in the object (the kernel statics' names).
pub mod map {
    /// Port array: rule masks by (table, protocol, port).
    pub const PORTS: &str = "PORTS";
    /// The rule set's one configuration entry; its `armed` field is the attach's commit.
    pub const CONFIG: &str = "CONFIG";
    /// LPM trie of IPv4 networks.
    pub const NETS_V4: &str = "NETS_V4";
    /// LPM trie of IPv6 networks.
    pub const NETS_V6: &str = "NETS_V6";
    /// Per-CPU counters, one slot each outcome.
    pub const COUNTERS: &str = "COUNTERS";
    /// Verdicts of first fragments, for the later ones.
    pub const FRAGS: &str = "FRAGS";
    /// The flow table (stateful mode).
    pub const FLOWS: &str = "FLOWS";
    /// The drop log's ring buffer.
    pub const LOG: &str = "LOG";
    /// The drop log's per-CPU token bucket.
    pub const LOG_BUCKET: &str = "LOG_BUCKET";
    /// The per-CPU clock cache.
    pub const CLOCK: &str = "CLOCK";
    /// Tail-call table of the XDP ingress program (its drop log, the program it replaces).
    pub const TAIL_XDP: &str = "TAIL_XDP";
    /// Tail-call table of the TC egress program.
    pub const TAIL_TC: &str = "TAIL_TC";
    /// The attached filter's record (JSON, [`crate::META_CHUNK`] bytes an entry).
    pub const META: &str = "META";
    /// LPM trie of domain patterns by their reversed wire form (domain rules).
    pub const DOMAINS: &str = "DOMAINS";
    /// Addresses learned from DNS answers (domain rules).
    pub const LEARNED: &str = "LEARNED";
    /// DNS queries awaiting their answers.
    pub const QUERIES: &str = "QUERIES";
    /// The DNS servers answers are learned from.
    pub const DNS_SERVERS: &str = "DNS_SERVERS";
    /// Per-CPU DNS statistics (`filter_common::learn::stat`).
    pub const DNS_STATS: &str = "DNS_STATS";
    /// Per-CPU scratch space of the DNS programs.
    pub const DNS_SCRATCH: &str = "DNS_SCRATCH";
    /// The per-CPU flow cache (`filter_common::flow_cache`).
    pub const FLOW_CACHE: &str = "FLOW_CACHE";
    /// The remote summary (`filter_common::flow_cache`).
    pub const REMOTES: &str = "REMOTES";
    /// The direct first stage of the IPv4 network lookup (`crate::nets`).
    pub const NET_DIRECT_V4: &str = "NET_DIRECT_V4";
    /// The distinct rule masks the direct stage's leaves index.
    pub const NET_MASKS_V4: &str = "NET_MASKS_V4";

    /// Every map of the object.
    pub const ALL: [&str; 23] = [
        PORTS,
        CONFIG,
        NETS_V4,
        NETS_V6,
        COUNTERS,
        FRAGS,
        FLOWS,
        LOG,
        LOG_BUCKET,
        CLOCK,
        TAIL_XDP,
        TAIL_TC,
        META,
        DOMAINS,
        LEARNED,
        QUERIES,
        DNS_SERVERS,
        DNS_STATS,
        DNS_SCRATCH,
        FLOW_CACHE,
        REMOTES,
        NET_DIRECT_V4,
        NET_MASKS_V4,
    ];
}

/// Program names in the object (the kernel functions' names).
pub mod program {
    /// The XDP ingress program: inbound packets.
    pub const INGRESS: &str = "gotofw_ingress";
    /// The TC program: outbound packets (every mode but ingress-only).
    pub const EGRESS: &str = "gotofw_egress";
    /// The drop-log program the ingress program tail-calls.
    pub const LOG_XDP: &str = "gotofw_log_xdp";
    /// The drop-log program the egress program tail-calls.
    pub const LOG_TC: &str = "gotofw_log_tc";
    /// The program the ingress program tail-calls with a DNS answer to learn from.
    pub const LEARN_XDP: &str = "gotofw_learn_xdp";
    /// The program the learning program tail-calls for each record of an answer.
    pub const RECORDS_XDP: &str = "gotofw_records_xdp";
    /// The program the egress program tail-calls with a DNS query to record.
    pub const QUERY_TC: &str = "gotofw_query_tc";

    /// Every program the loader loads.
    pub const ALL: [&str; 7] = [
        INGRESS,
        EGRESS,
        LOG_XDP,
        LOG_TC,
        LEARN_XDP,
        RECORDS_XDP,
        QUERY_TC,
    ];
}

/// File names in an attached filter's pin directory.
pub mod pin {
    use super::map;

    /// The XDP link.
    pub const LINK: &str = "link";
    /// The tcx egress link (tcx).
    pub const TC_LINK: &str = "tc_link";
    /// The egress program (clsact: a netlink filter has no link to pin, and the program is what a
    /// roll-back puts back).
    pub const EGRESS_PROG: &str = "egress_prog";

    /// The pin of map `PORTS`.
    pub const PORTS: &str = "ports";
    /// The pin of map `CONFIG`.
    pub const CONFIG: &str = "config";
    /// The pin of map `NETS_V4`.
    pub const NETS_V4: &str = "nets_v4";
    /// The pin of map `NETS_V6`.
    pub const NETS_V6: &str = "nets_v6";
    /// The pin of map `COUNTERS`.
    pub const COUNTERS: &str = "counters";
    /// The pin of map `FRAGS`.
    pub const FRAGS: &str = "frags";
    /// The pin of map `FLOWS`.
    pub const FLOWS: &str = "flows";
    /// The pin of map `META`.
    pub const META: &str = "meta";
    /// The pin of map `LOG`.
    pub const LOG: &str = "log";
    /// The pin of map `TAIL_XDP`.
    pub const TAIL_XDP: &str = "tail_xdp";
    /// The pin of map `TAIL_TC`.
    pub const TAIL_TC: &str = "tail_tc";
    /// The pin of map `LEARNED`.
    pub const LEARNED: &str = "learned";
    /// The pin of map `DNS_STATS`.
    pub const DNS_STATS: &str = "dns_stats";
    /// The pin of map `FLOW_CACHE`.
    pub const FLOW_CACHE: &str = "flow_cache";
    /// The pin of map `REMOTES`.
    pub const REMOTES: &str = "remotes";
    /// The pin of map `LOG_BUCKET` (its `lost` counts the drop-log samples lost).
    pub const LOG_BUCKET: &str = "log_bucket";

    /// The pinned maps, each with its file name (the map's name in lower case). Program arrays
    /// lose their entries when no user-space reference is left: pinned, they keep the drop-log
    /// programs for as long as the filter is attached (and the programs a killed `--replace` took
    /// the place of, for the next command to put back).
    pub const MAPS: [(&str, &str); 16] = [
        (map::PORTS, PORTS),
        (map::CONFIG, CONFIG),
        (map::NETS_V4, NETS_V4),
        (map::NETS_V6, NETS_V6),
        (map::COUNTERS, COUNTERS),
        (map::FRAGS, FRAGS),
        (map::FLOWS, FLOWS),
        (map::META, META),
        (map::LOG, LOG),
        (map::TAIL_XDP, TAIL_XDP),
        (map::TAIL_TC, TAIL_TC),
        (map::LEARNED, LEARNED),
        (map::DNS_STATS, DNS_STATS),
        (map::FLOW_CACHE, FLOW_CACHE),
        (map::REMOTES, REMOTES),
        (map::LOG_BUCKET, LOG_BUCKET),
    ];
}
