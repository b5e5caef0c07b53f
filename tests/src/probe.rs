//! Probes: does traffic from a namespace reach an echo server and come back?
//!
//! A probe returns false when the echo does not arrive in time, whatever the
//! reason; pair every "blocked" assertion with an "allowed" one on the same
//! lab, so that a broken lab cannot pass for a working firewall. Mistakes in
//! the probe itself (an address that cannot be bound) panic instead.

use std::{
    io::{Read, Write},
    net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, UdpSocket},
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant},
};

use anyhow::{Context, Result};

use crate::netns::Netns;

static PROBES: AtomicU64 = AtomicU64::new(0);

/// Sends one datagram from `ns` to `dst` (from `local`, or from an ephemeral
/// port) and returns true if it comes back, echoed, within `timeout`.
pub fn udp_probe(
    ns: &Netns,
    local: Option<SocketAddr>,
    dst: SocketAddr,
    timeout: Duration,
) -> bool {
    let bind = local.unwrap_or_else(|| unspecified(dst));
    ns.run(|| {
        let socket = UdpSocket::bind(bind)
            .unwrap_or_else(|err| panic!("udp_probe: cannot bind {bind} in {}: {err}", ns.name()));
        let token = token();
        let deadline = Instant::now() + timeout;
        if let Err(err) = socket.send_to(&token, dst) {
            eprintln!("udp_probe {bind} -> {dst}: send failed: {err}");
            return false;
        }
        let mut buf = [0; 2048];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || socket.set_read_timeout(Some(left)).is_err() {
                return false;
            }
            match socket.recv_from(&mut buf) {
                Ok((len, _)) if buf[..len] == token[..] => return true,
                // Something else (a late echo of an earlier probe): keep waiting.
                Ok(_) => {}
                Err(_) => return false,
            }
        }
    })
}

/// Connects from `ns` to `dst`, sends a line and returns true if the same
/// bytes come back, all within `timeout`.
pub fn tcp_probe(ns: &Netns, dst: SocketAddr, timeout: Duration) -> bool {
    ns.run(|| {
        let deadline = Instant::now() + timeout;
        let left =
            || Some(deadline.saturating_duration_since(Instant::now())).filter(|d| !d.is_zero());
        let Some(connect_timeout) = left() else {
            return false;
        };
        let mut stream = match TcpStream::connect_timeout(&dst, connect_timeout) {
            Ok(stream) => stream,
            Err(err) => {
                // A timeout is what a blocked probe looks like; anything else is worth a line.
                if err.kind() != std::io::ErrorKind::TimedOut {
                    eprintln!("tcp_probe -> {dst}: {err}");
                }
                return false;
            }
        };
        let token = token();
        let Some(write_timeout) = left() else {
            return false;
        };
        if stream.set_write_timeout(Some(write_timeout)).is_err()
            || stream.write_all(&token).is_err()
        {
            return false;
        }
        let mut echo = vec![0; token.len()];
        let Some(read_timeout) = left() else {
            return false;
        };
        stream.set_read_timeout(Some(read_timeout)).is_ok()
            && stream.read_exact(&mut echo).is_ok()
            && echo == token
    })
}

/// Sends `count` datagrams from the bound source `src` in `ns` to `dst`,
/// without waiting for anything back: unsolicited traffic, such as a WAN
/// host sending to a client that never asked.
pub fn udp_send_from(ns: &Netns, src: SocketAddr, dst: SocketAddr, count: usize) -> Result<()> {
    ns.run(|| {
        let socket =
            UdpSocket::bind(src).with_context(|| format!("cannot bind {src} in {}", ns.name()))?;
        for index in 0..count {
            let payload = format!("gotofw unsolicited {index}");
            socket
                .send_to(payload.as_bytes(), dst)
                .with_context(|| format!("sending {src} -> {dst} in {}", ns.name()))?;
        }
        Ok(())
    })
}

/// The wildcard address of `dst`'s family, port 0.
fn unspecified(dst: SocketAddr) -> SocketAddr {
    match dst {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    }
}

/// A payload no other probe sends: process, sequence number, time.
fn token() -> Vec<u8> {
    let sequence = PROBES.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos());
    format!("gotofw-probe {} {sequence} {nanos}\n", std::process::id()).into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_differ() {
        assert_ne!(token(), token());
    }

    #[test]
    fn unspecified_matches_the_family() {
        let v4: SocketAddr = "192.0.2.1:9".parse().unwrap();
        let v6: SocketAddr = "[2001:db8::1]:9".parse().unwrap();
        assert_eq!(unspecified(v4), "0.0.0.0:0".parse().unwrap());
        assert_eq!(unspecified(v6), "[::]:0".parse().unwrap());
    }
}
