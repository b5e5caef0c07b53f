//! Driving the real `gotofw` binary from the lab: finding it, running it
//! inside a namespace, reading `status --json`, a guard that detaches what a
//! test attached, and [`WanLab`], the two-namespace network of the CLI tests
//! and the demo.
//!
//! gotofw pins its filters in the host's bpffs (`/sys/fs/bpf/gotofw/IFACE`),
//! not in the namespace: pins outlive the namespace of their interface. Every
//! attach therefore goes with an [`Attached`] guard, and every gateway
//! interface gets a [`unique_name`](crate::unique_name), so parallel tests never share a pin.
//!
//! One job a file: [`run`] finds the binary and runs it, [`running`] runs it in the
//! background, [`status`] reads counters out of `status --json`, [`attached`] is the guard
//! that detaches, [`pins`] reads what a filter holds in bpffs and the kernel, [`wan_lab`] is
//! the two-namespace network.

mod attached;
mod pins;
mod run;
mod running;
mod status;
mod wan_lab;

use std::net::Ipv4Addr;

pub use self::{
    attached::Attached,
    pins::{
        FilterObjects, Pinned, filter_objects, pin_dir, pins, prog_map_ids, staging_leftovers,
        tcx_egress_prog_ids,
    },
    run::{Gotofw, exit_code, expect_success, find_gotofw_bin, gotofw, gotofw_bin, status_json},
    running::Running,
    status::{counter, counter_in},
    wan_lab::WanLab,
};

/// Where gotofw pins its filters, one directory per interface.
pub const PIN_ROOT: &str = "/sys/fs/bpf/gotofw";
/// Where gotofw stages pin directories (`IFACE@...`) before renaming them.
pub const PIN_STAGING: &str = "/sys/fs/bpf/gotofw-staging";
/// The environment variable that names the gotofw binary to test.
pub const GOTOFW_BIN_ENV: &str = "GOTOFW_BIN";

/// Exit code of gotofw for bad input (nothing was changed).
pub const EXIT_USAGE: i32 = 2;

/// The gateway's WAN address (`203.0.113.2/24`).
pub const GW_ADDR: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 2);
/// The internet side's address on the shared link (`203.0.113.1/24`), the
/// gateway's next hop.
pub const INET_ADDR: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
/// A server inside the GoTo TURN network 68.64.0.0/19.
pub const TURN_A: Ipv4Addr = Ipv4Addr::new(68, 64, 0, 10);
/// A server inside the GoTo TURN network 23.239.224.0/19 (its last host).
pub const TURN_B: Ipv4Addr = Ipv4Addr::new(23, 239, 255, 254);
/// A server outside every TURN network.
pub const OUTSIDE: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 10);
/// The routes the gateway has towards the servers (via [`INET_ADDR`]).
pub const GW_ROUTES: [&str; 3] = ["68.64.0.0/19", "23.239.224.0/19", "198.51.100.0/24"];
