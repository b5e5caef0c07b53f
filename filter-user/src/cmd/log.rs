//! `gotofw log`: the drop log, live. The kernel samples dropped packets (at most `--log-rate`
//! per second and CPU, so a flood cannot hurt) into a ring buffer; this prints them.

use std::{
    fmt::Write as _,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    time::{Duration, Instant},
};

use anyhow::Context as _;
use aya::maps::{Map, MapData, RingBuf};
use filter_common::{Direction, DropEvent, ipproto};
use serde::Serialize;

use crate::{
    cli::LogArgs,
    cmd::print,
    error::UsageError,
    kernel::{self, monotonic_coarse_ns},
    slots::slot_name,
    system,
};

/// One sample, as `--json` prints it (one object per line).
#[derive(Debug, Serialize)]
pub struct Sample {
    /// Wall-clock time, UTC.
    pub time: String,
    /// The interface.
    pub interface: String,
    /// `ingress` (from the WAN) or `egress`.
    pub direction: &'static str,
    /// `tcp`, `udp`, `icmp`, `icmpv6`, another protocol number, or `non-ip`.
    pub protocol: String,
    /// Source address and port (port 0 when it has none).
    pub src: String,
    /// Destination address and port.
    pub dst: String,
    /// The rule or slot that dropped it.
    pub rule: String,
    /// Frame length.
    pub bytes: u32,
}

fn addr(bytes: [u8; 16], family: u8) -> Option<IpAddr> {
    match family {
        4 => Some(IpAddr::V4(Ipv4Addr::new(
            bytes[0], bytes[1], bytes[2], bytes[3],
        ))),
        6 => Some(IpAddr::V6(Ipv6Addr::from(bytes))),
        _ => None,
    }
}

fn sample(e: &DropEvent, iface: &str, rules: &[String], offset_ns: i128) -> Sample {
    let wall_ns = i128::from(e.time_ns) + offset_ns;
    let secs = u64::try_from(wall_ns / 1_000_000_000).unwrap_or(0);
    let millis = u64::try_from(wall_ns % 1_000_000_000 / 1_000_000).unwrap_or(0);
    let utc = system::format_utc(secs);
    let time = format!("{}.{millis:03} UTC", utc.trim_end_matches(" UTC"));
    let protocol = match (e.family, e.proto) {
        (0, _) => "non-ip".to_owned(),
        (_, ipproto::TCP) => "tcp".to_owned(),
        (_, ipproto::UDP) => "udp".to_owned(),
        (4, ipproto::ICMP) => "icmp".to_owned(),
        (6, ipproto::ICMPV6) => "icmpv6".to_owned(),
        (_, other) => format!("proto-{other}"),
    };
    let end = |a: [u8; 16], port: u16| {
        addr(a, e.family).map_or_else(
            || "-".to_owned(),
            |ip| SocketAddr::new(ip, port).to_string(),
        )
    };
    Sample {
        time,
        interface: iface.to_owned(),
        direction: if e.direction == Direction::Egress as u8 {
            "egress"
        } else {
            "ingress"
        },
        protocol,
        src: end(e.src, e.sport),
        dst: end(e.dst, e.dport),
        rule: slot_name(rules, e.slot),
        bytes: e.len,
    }
}

/// Runs the command.
pub fn run(args: &LogArgs) -> anyhow::Result<()> {
    system::require_capabilities()?;
    let iface = if let Some(name) = &args.iface {
        name.clone()
    } else {
        let mut own = system::own_interfaces(kernel::attached_keys()?);
        match own.len() {
            1 => own.remove(0),
            0 => return Err(UsageError::NoFilters.into()),
            _ => return Err(UsageError::WhichInterface(own.join(", ")).into()),
        }
    };
    let attached = kernel::read_attached(&iface)?;
    crate::liveness::note_if_broken(&attached);
    if attached.config()?.log_rate == 0 {
        return Err(UsageError::LogOff(iface).into());
    }
    let rules: Vec<String> = attached.meta.rules.iter().map(|r| r.name.clone()).collect();
    let data = MapData::from_pin(attached.dir.join("log"))
        .with_context(|| format!("opening {}/log", attached.dir.display()))?;
    let mut ring = RingBuf::try_from(Map::RingBuf(data))?;
    // Kernel times are CLOCK_MONOTONIC_COARSE; this maps them to wall-clock time.
    let wall = i128::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_nanos(),
    )?;
    let offset_ns = wall - i128::from(monotonic_coarse_ns());
    let deadline = args
        .timeout
        .map(|s| Instant::now() + Duration::from_secs_f64(s));
    let mut seen = 0u64;
    loop {
        let mut out = String::new();
        while let Some(item) = ring.next() {
            if item.len() < size_of::<DropEvent>() {
                continue;
            }
            // SAFETY: the kernel writes whole `DropEvent`s; read unaligned to be safe.
            let event = unsafe { std::ptr::read_unaligned(item.as_ptr().cast::<DropEvent>()) };
            let s = sample(&event, &iface, &rules, offset_ns);
            if args.json {
                let _ = writeln!(out, "{}", serde_json::to_string(&s)?);
            } else {
                let _ = writeln!(
                    out,
                    "{}  {:<3}  {:<6}  {} -> {}  {}  {} bytes",
                    s.time,
                    if s.direction == "egress" { "out" } else { "in" },
                    s.protocol,
                    s.src,
                    s.dst,
                    s.rule,
                    s.bytes
                );
            }
            seen += 1;
            if args.count.is_some_and(|n| seen >= n) {
                break;
            }
        }
        print(&out)?;
        if args.count.is_some_and(|n| seen >= n) || deadline.is_some_and(|d| Instant::now() >= d) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
