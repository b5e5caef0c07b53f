//! [`WanLab`]: the two-namespace network of the CLI tests and the demo.

use std::net::IpAddr;

use anyhow::{Context, Result};

use super::{GW_ADDR, GW_ROUTES, INET_ADDR, OUTSIDE, TURN_A, TURN_B};
use crate::{Netns, VethPair, addr_add, route_add, unique_name, veth_pair};

/// The CLI tests' and the demo's network: a gateway namespace whose WAN
/// interface faces an "internet" namespace over a veth link.
///
/// ```text
/// gw (203.0.113.2/24) wan ==veth== isp inet (203.0.113.1/24, and
///                                      68.64.0.10, 23.239.255.254, 198.51.100.10 /32)
/// ```
///
/// The gateway routes [`GW_ROUTES`] via [`INET_ADDR`]; the internet side
/// answers for [`TURN_A`], [`TURN_B`] (inside the GoTo TURN networks) and
/// [`OUTSIDE`] itself, so echo servers bound there play the remote servers.
/// Those addresses exist only inside the two namespaces. Both interface
/// names are [`unique_name`]s; `Drop` deletes the link, then both namespaces.
#[derive(Debug)]
pub struct WanLab {
    // Fields drop in this order: the link first, then the namespaces.
    veth: VethPair,
    gw: Netns,
    inet: Netns,
}

impl WanLab {
    /// Builds the lab.
    pub fn new() -> Result<Self> {
        Self::named(["gw", "inet", "wan", "isp"])
    }

    /// Builds the lab, its namespace and interface names starting with `prefix` (at most two
    /// characters of it are kept, so that the names still tell the ends apart).
    pub fn with_prefix(prefix: &str) -> Result<Self> {
        let p: String = prefix.chars().take(2).collect();
        Self::named([
            &format!("{p}gw"),
            &format!("{p}inet"),
            &format!("{p}wan"),
            &format!("{p}isp"),
        ])
    }

    /// Builds the lab with the name prefixes `[gateway, internet, wan, isp]` (namespaces, then
    /// interfaces; see [`unique_name`]).
    pub fn named([gw, inet, wan, isp]: [&str; 4]) -> Result<Self> {
        let gw = Netns::new(gw)?;
        let inet = Netns::new(inet)?;
        let (wan, isp) = (unique_name(wan), unique_name(isp));
        let veth = veth_pair(&gw, &wan, &inet, &isp)?;
        Self::configure(&gw, &inet, &wan, &isp)?;
        Ok(Self { veth, gw, inet })
    }

    fn configure(gw: &Netns, inet: &Netns, wan: &str, isp: &str) -> Result<()> {
        addr_add(gw, wan, &format!("{GW_ADDR}/24"))?;
        addr_add(inet, isp, &format!("{INET_ADDR}/24"))?;
        for server in [TURN_A, TURN_B, OUTSIDE] {
            addr_add(inet, isp, &format!("{server}/32"))?;
        }
        for cidr in GW_ROUTES {
            route_add(gw, cidr, IpAddr::V4(INET_ADDR))
                .with_context(|| format!("routing {cidr} in {}", gw.name()))?;
        }
        Ok(())
    }

    /// Deletes the WAN link, as a NIC unplugged or a PPP link hung up.
    pub fn delete_wan(&self) -> Result<()> {
        self.gw.ip(["link", "del", self.wan()])?;
        Ok(())
    }

    /// Creates the WAN link anew with the same names and addresses (a new interface, with a
    /// new index): a NIC plugged back in, a PPP link dialled again. The old one is deleted
    /// first if it is still there.
    pub fn recreate_wan(&self) -> Result<()> {
        let (wan, isp) = (self.wan(), self.isp());
        let _ = self.gw.ip(["link", "del", wan]);
        // Same names as the guard in `self.veth`, which deletes the new link when it drops.
        std::mem::forget(veth_pair(&self.gw, wan, &self.inet, isp)?);
        Self::configure(&self.gw, &self.inet, wan, isp)
    }

    /// The gateway namespace.
    pub fn gw(&self) -> &Netns {
        &self.gw
    }

    /// The internet namespace.
    pub fn inet(&self) -> &Netns {
        &self.inet
    }

    /// The gateway's WAN interface, where gotofw attaches.
    pub fn wan(&self) -> &str {
        self.veth.a()
    }

    /// The internet side's end of the link.
    pub fn isp(&self) -> &str {
        self.veth.b()
    }

    /// Forgets the neighbour (ARP) entries on both ends, so the next packet
    /// needs a fresh ARP exchange, through the filter.
    pub fn flush_neighbours(&self) -> Result<()> {
        self.gw.ip(["neigh", "flush", "dev", self.wan()])?;
        self.inet.ip(["neigh", "flush", "dev", self.isp()])?;
        Ok(())
    }
}
