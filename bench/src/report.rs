//! `BENCHMARKS.md` and `benchmarks.json` from a [`Report`].

use std::{fmt::Write as _, fs, path::Path};

use anyhow::{Context, Result};

use crate::{Report, stats::Sample};

/// File name of the raw numbers, next to `BENCHMARKS.md`.
pub const JSON_FILE: &str = "benchmarks.json";
/// File name of the tables.
pub const MARKDOWN_FILE: &str = "BENCHMARKS.md";

/// Writes `BENCHMARKS.md`, [`JSON_FILE`] and the charts ([`crate::charts::DIR`]) into `dir`.
pub fn write(report: &Report, dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let json = serde_json::to_string_pretty(report)?;
    fs::write(dir.join(JSON_FILE), json + "\n")
        .with_context(|| format!("writing {}", dir.join(JSON_FILE).display()))?;
    fs::write(dir.join(MARKDOWN_FILE), markdown(report))
        .with_context(|| format!("writing {}", dir.join(MARKDOWN_FILE).display()))?;
    crate::charts::write(report, dir)
}

/// A ratio cell: `1.23x (1.10-1.30)`.
fn ratio(s: &Sample) -> String {
    if s.median.is_nan() {
        return "n/a".into();
    }
    if s.runs.len() < 2 {
        return format!("{:.2}x", s.median);
    }
    format!("{:.2}x ({:.2}-{:.2})", s.median, s.min, s.max)
}

fn met(ok: bool) -> &'static str {
    if ok { "met" } else { "missed" }
}

/// The report as Markdown.
pub fn markdown(r: &Report) -> String {
    let mut md = String::new();
    let env = &r.environment;
    let s = &r.settings;
    let _ = writeln!(md, "# Benchmarks\n");
    let _ = writeln!(
        md,
        "Written by `{}` on {} ({:.0} s{}). Nothing here is asserted: the targets are written \
         down next to what was measured.\n",
        env.command,
        env.date,
        env.seconds,
        if s.quick {
            "; **quick smoke mode: tiny sizes, numbers not meaningful**"
        } else {
            ""
        }
    );
    let _ = writeln!(md, "| | |\n| --- | --- |");
    let _ = writeln!(md, "| kernel | {} |", env.kernel);
    let _ = writeln!(md, "| CPU | {} |", env.cpu);
    let _ = writeln!(
        md,
        "| load average before / after | {:.2} {:.2} {:.2} / {:.2} {:.2} {:.2} |",
        env.loadavg_before[0],
        env.loadavg_before[1],
        env.loadavg_before[2],
        env.loadavg_after[0],
        env.loadavg_after[1],
        env.loadavg_after[2]
    );
    for (tool, version) in &env.tools {
        let _ = writeln!(md, "| {tool} | {version} |");
    }
    let _ = writeln!(
        md,
        "\nEvery number is the median of {} runs, with the smallest and largest run in \
         parentheses. Ratios are computed within each run (run *i* of one program against run \
         *i* of the other, measured seconds apart), then their median is taken. The raw numbers \
         of every run are in `{}`.\n",
        s.runs, JSON_FILE
    );
    targets(&mut md, r);
    cost(&mut md, r);
    pps(&mut md, r);
    scaling(&mut md, r);
    attack(&mut md, r);
    memory(&mut md, r);
    tcp(&mut md, r);
    md.push_str(&crate::dns::markdown(&r.dns, s.repeat));
    md.push('\n');
    let _ = writeln!(
        md,
        "## Analysis\n\nWhere gotofw misses a target, and why (profiles, per-path costs, hot \
         spots): `bench/ANALYSIS.md`, written by hand from a full run; it names the run it read."
    );
    md
}

fn row(r: &Report, receiver: crate::pps::Receiver) -> Option<&crate::pps::Row> {
    r.pps.iter().find(|row| row.receiver == receiver)
}

/// A row of the flow-path targets table: path, measured, target, met or missed.
fn target_row(md: &mut String, path: &str, measured: &str, want: f64, got: f64) {
    let _ = writeln!(
        md,
        "| {path} | {measured} | <= {want:.2}x | {} |",
        if got.is_nan() {
            "not measured"
        } else {
            met(got <= want)
        }
    );
}

/// The targets of issue 14 (the flow path), named as in the issue.
fn flow_targets(md: &mut String, r: &Report) {
    use crate::pps::Receiver;
    let _ = writeln!(
        md,
        "### The flow path (issue 14)\n\nCosts of section 1 are BPF_PROG_TEST_RUN against the \
         parse-only floor, per run, with the drop log at its default rate; growths are of section \
         3 (stateless XDP), per run against the smallest set; the veth row is section 2's \
         receiver CPU per packet.\n"
    );
    let _ = writeln!(
        md,
        "| path | measured | target | |\n| --- | --- | --- | --- |"
    );
    let c = &r.cost;
    let ns = |class: &str, prog: &str| {
        c.cells
            .get(class)
            .and_then(|row| row.get(prog))
            .map_or_else(|| "n/a".to_owned(), |cell| cell.ns.show_median(0))
    };
    for (class, path) in [
        ("known_flow", "known flow: TCP 443 reply, stateful"),
        ("turn_flow", "UDP 3478 reply of a live TURN flow, stateful"),
    ] {
        if let Some(sample) = c.stateful_vs_parse_floor.get(class) {
            target_row(
                md,
                path,
                &format!(
                    "{} ({} ns vs {} ns)",
                    ratio(sample),
                    ns(class, "gotofw_stateful"),
                    ns(class, "parse_floor")
                ),
                1.5,
                sample.median,
            );
        }
    }
    let named: Vec<(u16, &Sample)> = crate::frames::NAMED_PORTS
        .iter()
        .filter_map(|(class, port, _)| Some((*port, c.stateful_vs_parse_floor.get(*class)?)))
        .collect();
    if let Some((worst_port, worst)) = named
        .iter()
        .max_by(|a, b| a.1.median.total_cmp(&b.1.median))
    {
        let each: Vec<String> = named
            .iter()
            .map(|(port, s)| format!("{port}: {:.2}x", s.median))
            .collect();
        target_row(
            md,
            "named port: blocked, from 53, 123, 443 or 3478 with no flow, stateful",
            &format!("worst {worst_port}: {} ({})", ratio(worst), each.join(", ")),
            1.5,
            worst.median,
        );
    }
    let prefixes = &r.scaling.prefixes;
    if let (Some(first), Some(last)) = (prefixes.first(), prefixes.last()) {
        target_row(
            md,
            &format!(
                "network set, blocked: outside the set, growth {} -> {} prefixes",
                first.prefixes, last.prefixes
            ),
            &format!(
                "{} ({} -> {} ns)",
                ratio(&last.miss_growth),
                first.miss_ns.show_median(0),
                last.miss_ns.show_median(0)
            ),
            1.25,
            last.miss_growth.median,
        );
    }
    if let (Some(first), Some(upto)) = (
        prefixes.first(),
        prefixes.iter().rev().find(|p| p.prefixes <= 10_000),
    ) {
        target_row(
            md,
            &format!(
                "network set, allowed: inside the set, growth {} -> {} prefixes",
                first.prefixes, upto.prefixes
            ),
            &format!(
                "{} ({} -> {} ns)",
                ratio(&upto.hit_growth),
                first.hit_ns.show_median(0),
                upto.hit_ns.show_median(0)
            ),
            1.25,
            upto.hit_growth.median,
        );
    }
    if let Some(known) = row(r, Receiver::GotofwAllowed) {
        // gotofw's own share of each path: its receiver CPU less that of a program that only
        // returns the same verdict (bare XDP_PASS on the same packets; the empty XDP_DROP).
        let diff = |a: &Sample, b: &Sample| {
            Sample::of(a.runs.iter().zip(&b.runs).map(|(a, b)| a - b).collect())
        };
        let vs_pass = match (
            row(r, Receiver::XdpPassKnownFlow),
            row(r, Receiver::Floor),
            row(r, Receiver::GotofwBlocked),
        ) {
            (Some(pass), Some(floor), Some(blocked)) => format!(
                "; {} of a bare XDP_PASS on the same packets ({:.0} ns); gotofw's own share, \
                 known flow less XDP_PASS: {} ns, blocked less the empty XDP_DROP: {} ns",
                ratio(&known.ns_per_packet.ratio_to(&pass.ns_per_packet)),
                pass.ns_per_packet.median,
                diff(&known.ns_per_packet, &pass.ns_per_packet).show(0),
                diff(&blocked.ns_per_packet, &floor.ns_per_packet).show(0)
            ),
            _ => String::new(),
        };
        target_row(
            md,
            "veth known flow: receiver CPU per packet of known-flow traffic, vs the blocked path",
            &format!(
                "{} ({:.0} ns vs {:.0} ns; the passed packets go on into the stack{vs_pass})",
                ratio(&known.ns_vs_gotofw),
                known.ns_per_packet.median,
                row(r, Receiver::GotofwBlocked).map_or(f64::NAN, |b| b.ns_per_packet.median)
            ),
            1.3,
            known.ns_vs_gotofw.median,
        );
    }
    md.push('\n');
}

fn targets(md: &mut String, r: &Report) {
    use crate::pps::Receiver;
    let _ = writeln!(md, "## Targets\n");
    flow_targets(md, r);
    let _ = writeln!(md, "### Earlier targets\n");
    let _ = writeln!(md, "| target | measured | |\n| --- | --- | --- |");
    // Throughput: the receiver's capacity from its CPU time per packet (the generator, on its
    // own CPU, cannot saturate an XDP receiver here; see section 2).
    for (receiver, want, what) in [
        (Receiver::XdpFilter, 1.0, "xdp-filter"),
        (Receiver::NftNetdev, 3.0, "nftables netdev ingress"),
        (Receiver::NftPrerouting, 3.0, "nftables inet prerouting"),
        (Receiver::Iptables, 3.0, "iptables raw PREROUTING"),
    ] {
        if let Some(row) = row(r, receiver) {
            let _ = writeln!(
                md,
                "| gotofw drops blocked traffic at >= {want:.1}x the rate of {what} (receiver CPU per packet) | {} | {} |",
                ratio(&row.ns_vs_gotofw),
                met(row.ns_vs_gotofw.median >= want)
            );
        }
    }
    for (class, what) in [
        ("blocked_port", "blocked by port"),
        ("known_flow", "known flow"),
        ("tcp443", "TCP 443 (stateless)"),
    ] {
        let sample = if class == "tcp443" {
            r.cost.stateless_vs_parse_floor.get(class)
        } else {
            r.cost.stateful_vs_parse_floor.get(class)
        };
        if let Some(sample) = sample {
            let _ = writeln!(
                md,
                "| test_run cost <= 1.5x the parse-only floor, common path: {what} | {} | {} |",
                ratio(sample),
                met(sample.median <= 1.5)
            );
        }
    }
    if let Some(last) = r.scaling.prefixes.last() {
        let first = r.scaling.prefixes[0].prefixes;
        for (sample, what) in [
            (&last.miss_growth, "blocked by network"),
            (&last.hit_growth, "allowed by network"),
        ] {
            let _ = writeln!(
                md,
                "| <= 1.5x cost growth from {first} to {} prefixes ({what}, stateless XDP) | {} | {} |",
                last.prefixes,
                ratio(sample),
                met(sample.median <= 1.5)
            );
        }
    }
    md.push('\n');
}

fn cost(md: &mut String, r: &Report) {
    let c = &r.cost;
    let _ = writeln!(
        md,
        "## 1. Program cost\n\nBPF_PROG_TEST_RUN, {} repetitions per run, ns per packet as the \
         kernel reports it, and what the program returned. The rule set is udp-turn's (TURN \
         networks for UDP 3478, https, DHCP, DNS, NTP) with no-restrictions' media rule (UDP \
         45000-49999) added, so every class has a rule, and the drop log samples at attach's \
         default rate (10 per second and CPU); the stateful program has two known flows \
         in its table, TCP from 198.51.100.10:443 and UDP from the TURN server 68.64.0.11:3478 \
         (without a flow, stateful mode drops every inbound TCP or UDP packet but DHCP's: the \
         *named port* rows come from 198.51.100.20, which has no flow, and UDP 3478 from \
         outside the TURN networks is the named-port row of port 3478). xdp-filter: deny policy, allowed source ports 443 and 53 (TCP), 53, 123, 67, \
         3478 and the media range (UDP); it cannot tie a port to a network, so it does less \
         work than gotofw on UDP 3478. Debian's xdp-filter 1.3.1 loads its `xdpfilt_dny_all` \
         program whatever `-f` says: six hash lookups per packet (source and destination MAC \
         and IP) besides the port array.\n",
        c.repeat
    );
    let _ = write!(md, "| packet |");
    for col in &c.columns {
        let _ = write!(md, " {} |", col.name);
    }
    let _ = writeln!(md, " stateful / parse floor | stateless / parse floor |");
    let _ = write!(md, "| --- |");
    for _ in 0..c.columns.len() + 2 {
        let _ = write!(md, " --- |");
    }
    md.push('\n');
    for class in &c.classes {
        let _ = write!(md, "| {} |", class.name);
        for col in &c.columns {
            let cell = &c.cells[class.key][col.key];
            let _ = write!(md, " {} {} |", cell.ns.show(1), cell.verdict);
        }
        let _ = writeln!(
            md,
            " {} | {} |",
            ratio(&c.stateful_vs_parse_floor[class.key]),
            ratio(&c.stateless_vs_parse_floor[class.key])
        );
    }
    let _ = writeln!(
        md,
        "\n| program | xlated instructions | JIT bytes | instructions verified |\n| --- | --- | --- | --- |"
    );
    for col in &c.columns {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} |",
            col.name, col.size.xlated_insns, col.size.jited_bytes, col.size.verified_insns
        );
    }
    md.push('\n');
}

fn pps(md: &mut String, r: &Report) {
    let _ = writeln!(
        md,
        "## 2. Packets per second on a veth path\n\n64-byte frames (60 bytes without the FCS) \
         from `gotofw_txgen` (XDP_TX) run with BPF_PROG_TEST_RUN in live-frames mode on one veth \
         end, into the other end in a receiver namespace; {:.2} s per run. *processed* is what \
         the receiver's NAPI thread took off its ring per second (`rx_queue_0_xdp_packets`); \
         *CPU ns/packet* is that thread's CPU time (`/proc/PID/schedstat`) per processed packet, \
         and *capacity* is 1000 / that. When *receiver CPU busy* is well below 100%, the \
         receiver kept up and *processed* is the generator's rate (minus ring overflows while \
         the NAPI thread wakes up), not the receiver's limit: compare capacities then. Ratios \
         are to gotofw on blocked traffic (port no rule names), per run; for ns, above 1 means \
         more CPU per packet than gotofw.\n\nKnown flows and named-port floods: gotofw runs \
         stateful with {} live flows in its table (random ones, and the TURN server \
         68.64.0.10:3478 whose replies are replayed); each gotofw frame is first checked with \
         BPF_PROG_TEST_RUN to get the verdict its row names. *Known flow* rows replay that \
         flow's UDP 3478 replies: gotofw passes them on into the receiver's stack (to a port \
         without a socket), a bare XDP_PASS program on the same frames measures what the \
         stack's part costs with no filter, and nftables (an inet prerouting chain after \
         conntrack: `ct state established,related accept`, DHCP replies, policy drop) gets them \
         after the flow was opened from the receiver side (one datagram from the WAN address's \
         port 50000 to 68.64.0.10:3478, so conntrack has the entry; the run fails unless the \
         established rule accepted at least 90% of the processed packets). For these three the \
         receiver has a route back to the remote networks, so the stack's rate-limited ICMP \
         reply is the same for all. *Named-port flood* rows are UDP from port 53 or 123 of \
         198.51.100.20, which has no flow: gotofw drops them after its flow-path checks, \
         nftables after conntrack found no entry (the run fails if the established rule \
         accepted any). The generator replays one frame, so every flood packet comes from the \
         same address and port.\n\n{}\n",
        r.settings.pps_duration.as_secs_f64(),
        crate::pps::FLOW_FILL,
        r.environment.pinning
    );
    let _ = writeln!(
        md,
        "| receiver | processed Mpps | CPU ns/packet | capacity Mpps | processed vs gotofw | CPU ns vs gotofw | generator Mpps | receiver CPU busy |\n| --- | --- | --- | --- | --- | --- | --- | --- |"
    );
    for row in &r.pps {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            row.name,
            row.mpps.show(2),
            row.ns_per_packet.show(0),
            row.capacity_mpps.show_median(1),
            ratio(&row.mpps_vs_gotofw),
            ratio(&row.ns_vs_gotofw),
            row.gen_mpps.show_median(2),
            row.rx_cpu_busy.map(|v| v * 100.0).show_median(0) + "%"
        );
    }
    md.push('\n');
    md.push_str(&crate::charts::link("peers.svg"));
}

fn scaling(md: &mut String, r: &Report) {
    let sc = &r.scaling;
    let _ = writeln!(
        md,
        "## 3. Scaling\n\n### Network set\n\nRandom, non-overlapping IPv4 prefixes (/20 to /28, \
         each in its own /20) as udp-turn's TURN networks. XDP costs are of the stateless \
         program (in stateful mode the XDP program does not consult the networks: inbound \
         packets need a flow); egress costs are of the stateful TC program, which enforces the \
         rules as written and opens the flows. *drop* is the stateless program on the veth path \
         dropping UDP 3478 from outside the set. Growth is per run against the smallest set.\n"
    );
    let _ = writeln!(
        md,
        "| prefixes | XDP allowed (inside) ns | XDP blocked (outside) ns | growth allowed | growth blocked | TC egress to inside ns | TC egress to outside ns | drop Mpps | drop CPU ns/packet |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    );
    for p in &sc.prefixes {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            p.prefixes,
            p.hit_ns.show(1),
            p.miss_ns.show(1),
            ratio(&p.hit_growth),
            ratio(&p.miss_growth),
            p.egress_hit_ns.show(1),
            p.egress_miss_ns.show(1),
            p.drop_mpps.show(2),
            p.drop_ns_per_packet.show(0)
        );
    }
    let _ = writeln!(
        md,
        "\nThe same growth for nftables (netdev ingress, TURN networks in an interval set) and \
         iptables (raw PREROUTING, one rule per network: a linear chain), on the veth path, \
         UDP 3478 from outside the set (the whole set or chain is consulted, then the packet \
         dropped):\n"
    );
    let _ = writeln!(
        md,
        "| filter | prefixes | processed Mpps | CPU ns/packet |\n| --- | --- | --- | --- |"
    );
    for (name, points) in [
        ("nftables set", &sc.nft_set),
        ("iptables chain", &sc.iptables_chain),
    ] {
        for p in points {
            let _ = writeln!(
                md,
                "| {name} | {} | {} | {} |",
                p.prefixes,
                p.mpps.show(3),
                p.ns_per_packet.show(0)
            );
        }
    }
    let _ = writeln!(
        md,
        "\n### Rules\n\nUp to the engine's maximum of 64 rules, every rule UDP 3478 for its own \
         /24 (stateless XDP): a packet from the last rule's network, and one from no rule's.\n"
    );
    let _ = writeln!(
        md,
        "| rules | last rule's network ns | no rule's network ns |\n| --- | --- | --- |"
    );
    for p in &sc.rules {
        let _ = writeln!(
            md,
            "| {} | {} | {} |",
            p.rules,
            p.last_rule_ns.show(1),
            p.no_rule_ns.show(1)
        );
    }
    let _ = writeln!(
        md,
        "\n### Flow table\n\nThe stateful program's LRU flow table pre-filled from user space \
         with random flows (table 25% larger than the fill): a packet of a live flow, and UDP \
         3478 from outside with no flow (a lookup miss, then the drop).\n"
    );
    let _ = writeln!(
        md,
        "| flows | table size | live flow ns | miss ns |\n| --- | --- | --- | --- |"
    );
    for p in &sc.flows {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} |",
            p.flows,
            p.table_size,
            p.hit_ns.show(1),
            p.miss_ns.show(1)
        );
    }
    let _ = writeln!(
        md,
        "\nThe same fills on the veth path: gotofw (stateful) with the flows in its table, and \
         nftables `ct state established` (item 2's ruleset) with as many conntrack entries, made \
         by real traffic (one datagram per flow from the receiver's namespace; the run checks \
         `nf_conntrack_count`). Receiver CPU per packet of the TURN flow's replies (passed into \
         the stack) and of UDP from port 53 with no flow (dropped). Fills of 90% of \
         `nf_conntrack_max` ({}) and more are left out.\n",
        sc.conntrack_max
    );
    let _ = writeln!(
        md,
        "| flows | gotofw known flow ns | gotofw port-53 flood ns | nftables ct known flow ns | nftables ct port-53 flood ns |\n| --- | --- | --- | --- | --- |"
    );
    for p in &sc.veth_flows {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} |",
            p.flows,
            p.gotofw_known_ns.show(0),
            p.gotofw_flood_ns.show(0),
            p.nft_known_ns.show(0),
            p.nft_flood_ns.show(0)
        );
    }
    md.push('\n');
    for file in [
        "prefixes.svg",
        "prefixes_test_run.svg",
        "flows.svg",
        "flows_veth.svg",
    ] {
        md.push_str(&crate::charts::link(file));
    }
}

fn attack(md: &mut String, r: &Report) {
    let _ = writeln!(
        md,
        "## 4. Allowed traffic under attack\n\nThree namespaces built by the benchmark: lan \
         (192.0.2.1), gw (masquerade with nftables, WAN 203.0.113.2), inet (203.0.113.1, TURN \
         server 68.64.0.10). iperf3 TCP lan -> 68.64.0.10:443 for {} s, with UDP echo round \
         trips (port 3478, every 10 ms) at the same time. The flood is 64-byte blocked UDP (from \
         port 9 to the WAN address) sent by the generator into gw's WAN interface from the inet \
         end of the WAN link, for the whole test: either paced to about 1 Mpps (bursts of \
         65,536 frames at the generator's full speed, then a pause), or as fast as the \
         generator goes. gw's WAN NAPI thread is pinned to CPU 1, the generator to CPU 0; \
         iperf3 (10 Gbit/s and more through veths) takes what is left of both CPUs. Every \
         blocker sees the same receive path: an XDP program is attached to the WAN interface in \
         every case (a bare XDP_PASS in front of nftables), so flood and allowed traffic share \
         the veth's one receive ring, as they share a NIC's; without one, a veth would hand \
         ordinary packets to the backlog and only the generator's frames to the ring. UDP echo \
         instead of ping: the scenarios admit no ICMP echo replies. Both ends of the WAN link \
         have permanent neighbour entries, so no ARP exchange has to get through the flood. \
         *WAN processed* is what \
         gw's WAN NAPI thread took off the ring (flood and allowed); the rest of the offered \
         flood overflowed the ring. {} run(s).\n",
        r.settings.attack_secs, r.settings.attack_runs
    );
    let _ = writeln!(
        md,
        "| blocker | TCP Mbit/s | echo RTT median ms | echo RTT p99 ms | echo loss | flood offered Mpps | WAN processed Mpps |\n| --- | --- | --- | --- | --- | --- | --- |"
    );
    for row in &r.attack {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} |",
            row.name,
            row.tcp_mbps.show(0),
            row.rtt_median_ms.show(3),
            row.rtt_p99_ms.show(3),
            row.echo_loss.map(|v| v * 100.0).show_median(1) + "%",
            row.flood_offered_mpps.show_median(2),
            row.wan_processed_mpps.show_median(2)
        );
    }
    md.push('\n');
}

fn memory(md: &mut String, r: &Report) {
    let m = &r.memory;
    let _ = writeln!(
        md,
        "## 5. Memory\n\nKernel memory of every map as `bpftool map show` reports it \
         (`memlock`), and the peak resident size of the gotofw binary (`/usr/bin/time -v`): \
         `gotofw attach` {} KiB, `gotofw status IFACE` {} KiB (it exits after attaching; the \
         filter then lives in the kernel).\n",
        m.attach_rss_kib, m.status_rss_kib
    );
    for config in &m.configs {
        let _ = writeln!(
            md,
            "{}: **{:.1} MiB**\n\n| map | type | entries | memlock bytes |\n| --- | --- | --- | --- |",
            config.name,
            config.total as f64 / 1_048_576.0
        );
        for map in &config.maps {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} |",
                map.name, map.map_type, map.max_entries, map.memlock
            );
        }
        md.push('\n');
    }
}

fn tcp(md: &mut String, r: &Report) {
    let t = &r.tcp;
    let loads: Vec<f64> = t
        .rows
        .iter()
        .flat_map(|row| row.runs.iter().map(|run| run.load1))
        .collect();
    let load = Sample::of(loads);
    let _ = writeln!(
        md,
        "## 6. What XDP costs allowed TCP\n\niperf3 TCP through a routing gateway (client \
         namespace -> gw -> server namespace over two veth pairs, no NAT), {} s per transfer, \
         {} round(s), every setup once per round in the order of the table. On gw's WAN \
         interface: no XDP program at all (the baseline), or gotofw attached with its CLI \
         (`gotofw attach WAN --scenario udp-turn --xdp-mode native|generic`: stateful, the \
         client opens the connection, port 443). *Download* (iperf3 `-R`: the server on the \
         WAN side sends) is the direction whose data goes through the XDP program; in *upload* \
         the data leaves through the TC egress program and XDP sees only the ACKs. *vs no XDP* \
         is per round, against the no-XDP transfer of the same MTU and direction. The offload \
         columns are `ethtool -k` just before each transfer: TSO (`tx-tcp-segmentation`) and \
         GSO of the WAN's peer (the server's end, which sends the download), GRO of the WAN, \
         and the XDP mode `ip -d link` shows on the WAN. Rows marked *diagnostic* are not the \
         comparison, they tell where the cost is. The 1-minute load average during the item \
         was {} (this machine's 2 CPUs are shared; iperf3's sender, gw's forwarding and the \
         receiver all run on them). Why, and what to expect on a NIC: `bench/ANALYSIS.md`.\n",
        t.secs,
        t.rounds,
        load.show(2)
    );
    let _ = writeln!(
        md,
        "| MTU | direction | on the WAN | Gbit/s | vs no XDP | retransmits | peer TSO | peer GSO | WAN GRO | WAN XDP |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    );
    for row in &t.rows {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            row.mtu,
            row.direction_name(),
            row.name(),
            row.gbps.show(2),
            ratio(&row.vs_no_xdp),
            row.retransmits.show(0),
            crate::tcp::summarise(&row.runs, |o| &o.peer_tso),
            crate::tcp::summarise(&row.runs, |o| &o.peer_gso),
            crate::tcp::summarise(&row.runs, |o| &o.wan_gro),
            crate::tcp::summarise(&row.runs, |o| &o.wan_xdp)
        );
    }
    let notes: std::collections::BTreeSet<&str> = t
        .rows
        .iter()
        .flat_map(|row| row.runs.iter().map(|run| run.attach_notes.as_str()))
        .filter(|n| !n.is_empty())
        .collect();
    if !notes.is_empty() {
        let _ = writeln!(md, "\n`gotofw attach` said, on standard error:\n");
        for note in notes {
            for line in note.lines() {
                let _ = writeln!(md, "    {line}");
            }
        }
    }
    md.push('\n');
}
