//! What the lab tries: the services its servers offer, their endpoints, and the probes (one
//! client against one server) of the full matrix.

use std::{
    fmt,
    net::{Ipv4Addr, SocketAddrV4},
    time::Duration,
};

use super::{MEDIA_PORTS, SERVERS};
use crate::daemon::Transport;

/// A service the lab's servers offer, with the client that uses it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Service {
    /// STUN binding on UDP 3478 (`turnutils_stunclient`).
    Stun,
    /// TURN allocation over UDP 3478, data relayed to the peer and back
    /// (`turnutils_uclient`).
    TurnUdp,
    /// TURN allocation over TCP 3478 (`turnutils_uclient -t`).
    TurnTcp,
    /// HTTPS on TCP 443 (`curl -k`).
    Https,
    /// Plain HTTP on TCP 80, which no scenario allows (`curl`).
    Http,
    /// A UDP echo on this port (the lab's UDP probe).
    UdpEcho(u16),
}

impl Service {
    /// Every service, in the order of the demo's table.
    pub const ALL: [Self; 9] = [
        Self::Stun,
        Self::TurnUdp,
        Self::TurnTcp,
        Self::Https,
        Self::Http,
        Self::UdpEcho(MEDIA_PORTS[0]),
        Self::UdpEcho(MEDIA_PORTS[1]),
        Self::UdpEcho(MEDIA_PORTS[2]),
        Self::UdpEcho(MEDIA_PORTS[3]),
    ];

    /// The transport the client uses.
    pub const fn transport(self) -> Transport {
        match self {
            Self::Stun | Self::TurnUdp | Self::UdpEcho(_) => Transport::Udp,
            Self::TurnTcp | Self::Https | Self::Http => Transport::Tcp,
        }
    }

    /// The server port.
    pub const fn port(self) -> u16 {
        match self {
            Self::Stun | Self::TurnUdp | Self::TurnTcp => 3478,
            Self::Https => 443,
            Self::Http => 80,
            Self::UdpEcho(port) => port,
        }
    }

    /// The client, as a short command line.
    pub const fn client(self) -> &'static str {
        match self {
            Self::Stun => "turnutils_stunclient",
            Self::TurnUdp => "turnutils_uclient",
            Self::TurnTcp => "turnutils_uclient -t",
            Self::Https => "curl -k https",
            Self::Http => "curl http",
            Self::UdpEcho(_) => "udp echo probe",
        }
    }
}

/// A server endpoint: transport, address and port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Endpoint {
    /// TCP or UDP.
    pub transport: Transport,
    /// The server's address and port.
    pub addr: SocketAddrV4,
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.transport.name(), self.addr)
    }
}

/// One client run against one server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Probe {
    /// What the client does.
    pub service: Service,
    /// Which server address it talks to.
    pub server: Ipv4Addr,
}

impl Probe {
    /// The server endpoint it talks to.
    pub const fn endpoint(self) -> Endpoint {
        Endpoint {
            transport: self.service.transport(),
            addr: SocketAddrV4::new(self.server, self.service.port()),
        }
    }
}

impl fmt::Display for Probe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} -> {}", self.service.client(), self.endpoint())
    }
}

/// Every service on every server address: the lab's full matrix.
pub fn matrix() -> Vec<Probe> {
    Service::ALL
        .iter()
        .flat_map(|&service| SERVERS.iter().map(move |&server| Probe { service, server }))
        .collect()
}

/// What a client run came to.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// The client completed: a binding, relayed data, a 200, an echo.
    pub ok: bool,
    /// What it got (`reflexive 203.0.113.2:40000`, `relayed 3/3`, `HTTP 200`,
    /// `echo`) or why it failed (`no answer in 2000 ms`).
    pub detail: String,
    /// How long it ran.
    pub elapsed: Duration,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gotofw::{OUTSIDE, TURN_A};

    #[test]
    fn the_matrix_covers_every_service_on_every_server() {
        let probes = matrix();
        assert_eq!(probes.len(), Service::ALL.len() * SERVERS.len());
        assert!(probes.contains(&Probe {
            service: Service::UdpEcho(49999),
            server: OUTSIDE
        }));
        assert_eq!(
            Probe {
                service: Service::TurnTcp,
                server: TURN_A
            }
            .endpoint()
            .to_string(),
            "tcp 68.64.0.10:3478"
        );
    }
}
