//! The gotofw network-namespace lab: helpers that build small networks out of
//! namespaces and veth links, run echo servers in them and probe across them.
//!
//! Everything that creates kernel state returns a guard whose `Drop` removes
//! it, also while a failing test unwinds: [`Netns`] deletes its namespace,
//! [`VethPair`] its link, [`ServerHandle`] stops its server thread, [`TunLab`] stops its
//! relay (which deletes its tun devices) and deletes its namespaces.
//!
//! Kernel tests start with [`require_root_or_skip`]. Lab traffic stays inside
//! the namespaces a test creates and uses only the documentation ranges
//! `192.0.2.0/24`, `198.51.100.0/24` and `203.0.113.0/24` (and `2001:db8::/32`).
//!
//! ```no_run
//! use std::time::Duration;
//!
//! use gotofw_tests::{Netns, addr_add, udp_echo_server, udp_probe, veth_pair};
//!
//! let client = Netns::new("cli").unwrap();
//! let server = Netns::new("srv").unwrap();
//! let _link = veth_pair(&client, "eth0", &server, "eth0").unwrap();
//! addr_add(&client, "eth0", "198.51.100.1/24").unwrap();
//! addr_add(&server, "eth0", "198.51.100.2/24").unwrap();
//! let echo = udp_echo_server(&server, "198.51.100.2:3478".parse().unwrap()).unwrap();
//! assert!(udp_probe(&client, None, echo.local_addr(), Duration::from_secs(1)));
//! ```

mod daemon;
pub mod dlab;
pub mod flows;
pub mod fuzz;
mod gotofw;
pub mod halab;
pub mod harness;
mod lab3;
mod link;
mod names;
mod netns;
mod packet;
mod probe;
mod root;
pub mod seeds;
mod server;
mod tempdir;
mod tun;
pub mod txgen;
mod xdp;

#[cfg(test)]
mod lab_tests;

pub use daemon::{Bounds, Daemon, Finished, Transport, find_program, listening, run_bounded};
pub use gotofw::{
    Attached, EXIT_USAGE, FilterObjects, GOTOFW_BIN_ENV, GW_ADDR, GW_ROUTES, Gotofw, INET_ADDR,
    OUTSIDE, PIN_ROOT, PIN_STAGING, Pinned, Running, TURN_A, TURN_B, WanLab, counter, counter_in,
    exit_code, expect_success, filter_objects, find_gotofw_bin, gotofw, gotofw_bin, pin_dir, pins,
    prog_map_ids, staging_leftovers, status_json, tcx_egress_prog_ids,
};
pub use lab3::{
    Endpoint, EndpointCounts, Explained, LAN_ADDR, LAN_GW_ADDR, Lab3, MEDIA_PORTS, Mode, Outcome,
    Probe, ROGUE, SERVERS, Service, TURN_PASSWORD, TURN_PEER, TURN_REALM, TURN_USER, UNSOLICITED,
    counter_packets, explain, matrix, stateful_support,
};
pub use link::{VethPair, addr_add, link_up, route_add, veth_pair};
pub use names::{MAX_NAME_LEN, unique_name};
pub use netns::Netns;
pub use packet::PacketSocket;
pub use probe::{tcp_probe, udp_probe, udp_send_from};
pub use root::{is_root, require_root_or_skip};
pub use server::{ServerHandle, tcp_echo_server, udp_echo_server};
pub use tempdir::TempDir;
pub use tun::{
    ARPHRD_IPGRE, ARPHRD_NONE, ARPHRD_PPP, ARPHRD_RAWIP, ARPHRD_TUNNEL, SERVER6, Tun, TunLab,
    link_kind,
};
pub use xdp::xdp_prog_id;
