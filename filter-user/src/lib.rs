//! The gotofw loader and operator CLI, as a library: scenarios and rule compilation, the host run
//! of the kernel's classifier, and attach/detach/status over bpffs pins.

mod bpf_sys;
pub mod cli;
pub mod cmd;
pub mod compile;
pub mod config;
pub mod direct;
pub mod domain_sets;
pub mod domains;
pub mod error;
pub mod frame;
pub mod hostfs;
pub mod learned_model;
pub mod limits;
pub mod link_type;
pub mod liveness;
pub mod loader;
pub mod metrics;
pub mod netlink;
pub mod operator;
pub mod output;
pub mod pinned;
pub mod plan;
mod qdisc;
pub mod reconcile;
pub mod rule;
pub mod scenario;
pub mod slots;
pub mod status_model;
pub mod system;

pub use loader::object::EBPF_OBJECT;

/// The benchmark-only object, built with [`EBPF_OBJECT`]: the floors (`gotofw_floor`,
/// `gotofw_parse_floor`) and the traffic generator (`gotofw_txgen`), for `bench` and the tests.
/// gotofw never loads it, and its binary does not carry it (nothing there refers to it).
pub static BENCH_EBPF_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/gotofw-bench-ebpf"));
