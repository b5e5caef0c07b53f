//! Unsolicited traffic: packets from `inet` to the gateway that nobody there asked for.

use std::{
    net::{SocketAddr, SocketAddrV4},
    thread,
    time::{Duration, Instant},
};

use anyhow::Result;

use super::{Lab3, ROGUE};
use crate::{
    daemon::{Bounds, Transport, run_bounded},
    gotofw::{GW_ADDR, INET_ADDR},
    tcp_echo_server, udp_echo_server, udp_send_from,
};

/// Unsolicited traffic from `inet` to the gateway's WAN address that the
/// tests and the demo send: transport and source. Stateless mode admits what
/// comes from an allowed rule's port (and network), asked for or not; stateful
/// mode admits none of it.
pub const UNSOLICITED: [(Transport, SocketAddrV4); 4] = [
    (Transport::Tcp, SocketAddrV4::new(INET_ADDR, 443)),
    (Transport::Udp, SocketAddrV4::new(ROGUE, 3478)),
    (Transport::Tcp, SocketAddrV4::new(ROGUE, 3478)),
    (Transport::Udp, SocketAddrV4::new(INET_ADDR, 45000)),
];

/// How long the unsolicited TCP connection may take.
const UNSOLICITED_TCP_DEADLINE: Duration = Duration::from_secs(2);
/// How long unsolicited traffic gets to reach its listener on the gateway.
const UNSOLICITED_WAIT: Duration = Duration::from_millis(1200);

impl Lab3 {
    /// Whether unsolicited traffic from `src` (an `inet` address, such as
    /// [`INET_ADDR`] or [`ROGUE`]) reaches a listener on the gateway's WAN
    /// address, port `gw_port`: a TCP connection attempt (socat, its source
    /// port bound; the listener sees it once the handshake completes) or three
    /// UDP datagrams. Takes up to about 1.2 s. Use a fresh port for every call
    /// (the listener lives for the call only; TIME_WAIT would refuse a second
    /// TCP connection from the same source).
    pub fn reaches_gateway(
        &self,
        transport: Transport,
        src: SocketAddrV4,
        gw_port: u16,
    ) -> Result<bool> {
        let dst = SocketAddrV4::new(GW_ADDR, gw_port);
        let listener = match transport {
            Transport::Tcp => tcp_echo_server(&self.gw, SocketAddr::V4(dst)),
            Transport::Udp => udp_echo_server(&self.gw, SocketAddr::V4(dst)),
        }?;
        match transport {
            Transport::Udp => {
                udp_send_from(&self.inet, SocketAddr::V4(src), SocketAddr::V4(dst), 3)?;
            }
            Transport::Tcp => {
                let args = [
                    "-u".to_owned(),
                    "/dev/null".to_owned(),
                    format!("TCP4:{dst},bind={src},reuseaddr,connect-timeout=1"),
                ];
                run_bounded(
                    &self.inet,
                    &self.programs.socat,
                    &args,
                    Bounds {
                        deadline: UNSOLICITED_TCP_DEADLINE,
                        progress: None,
                    },
                )?;
            }
        }
        let deadline = Instant::now() + UNSOLICITED_WAIT;
        while listener.served() == 0 && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(20));
        }
        Ok(listener.served() > 0)
    }
}
