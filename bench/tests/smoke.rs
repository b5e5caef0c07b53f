//! The benchmarks' smoke mode (`cargo xtask bench --quick`) as a test, so the benchmark never
//! rots: every item runs with tiny sizes and the report is written. No speed is asserted.

use std::fs;

use bench::{Settings, report};

#[test]
fn bench_quick_runs_every_item_and_writes_the_report() {
    if !gotofw_tests::require_root_or_skip("bench_quick_runs_every_item_and_writes_the_report") {
        return;
    }
    let gotofw = gotofw_tests::gotofw_bin();
    let report = bench::run(
        &Settings::quick(),
        &gotofw,
        "cargo test -p bench --test smoke",
    )
    .unwrap_or_else(|err| panic!("the quick benchmark failed: {err:#}"));
    let dir = std::env::temp_dir().join(format!("gotofw-bench-smoke-{}", std::process::id()));
    report::write(&report, &dir).unwrap();
    let markdown = fs::read_to_string(dir.join(report::MARKDOWN_FILE)).unwrap();
    let json: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(dir.join(report::JSON_FILE)).unwrap()).unwrap();
    // Every chart was drawn, as SVG with its lines or bars, and BENCHMARKS.md links it.
    for chart in &bench::charts::CHARTS {
        let path = dir.join(bench::charts::DIR).join(chart.file);
        let svg = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(svg.starts_with("<svg") && svg.contains("<text"), "{svg}");
        assert!(svg.contains("<polyline") || svg.contains("<rect"), "{svg}");
        let link = format!("]({}/{})", bench::charts::DIR, chart.file);
        assert!(markdown.contains(&link), "no {link} in\n{markdown}");
    }
    fs::remove_dir_all(&dir).unwrap();
    // The flow-path targets of issue 14, each with a verdict.
    for row in [
        "| known flow: TCP 443 reply, stateful |",
        "| UDP 3478 reply of a live TURN flow, stateful |",
        "| named port: blocked, from 53, 123, 443 or 3478 with no flow, stateful |",
        "| network set, blocked: outside the set, growth ",
        "| network set, allowed: inside the set, growth ",
        "| veth known flow: receiver CPU per packet of known-flow traffic, vs the blocked path |",
    ] {
        let line = markdown
            .lines()
            .find(|l| l.starts_with(row))
            .unwrap_or_else(|| panic!("no target row {row:?} in\n{markdown}"));
        assert!(
            line.ends_with("| met |") || line.ends_with("| missed |"),
            "{line}"
        );
    }
    for section in [
        "## Targets",
        "## 1. Program cost",
        "## 2. Packets per second",
        "## 3. Scaling",
        "## 4. Allowed traffic under attack",
        "## 5. Memory",
        "## 6. What XDP costs allowed TCP",
    ] {
        assert!(markdown.contains(section), "no {section:?} in\n{markdown}");
    }
    // Every item measured something (a measurement, not a speed).
    assert_eq!(json["cost"]["classes"].as_array().unwrap().len(), 13);
    assert_eq!(json["pps"].as_array().unwrap().len(), 14);
    // The stateful program passed both known flows and dropped every named port without a flow.
    for (class, verdict) in [
        ("known_flow", "pass"),
        ("turn_flow", "pass"),
        ("named_53", "drop"),
        ("named_123", "drop"),
        ("named_443", "drop"),
        ("blocked_net", "drop"),
    ] {
        assert_eq!(
            json["cost"]["cells"][class]["gotofw_stateful"]["verdict"], verdict,
            "{class}"
        );
    }
    assert!(report.pps.iter().all(|row| row.mpps.median > 0.0));
    // gotofw and nftables conntrack measured on the veth path at the quick fill.
    assert_eq!(report.scaling.veth_flows.len(), 1);
    assert!(
        report.scaling.veth_flows[0].nft_known_ns.median > 0.0,
        "{:?}",
        report.scaling.veth_flows
    );
    assert!(report.attack.iter().all(|row| row.tcp_mbps.median > 0.0));
    assert!(report.memory.attach_rss_kib > 0);
    // The TCP item measured every setup, and the WAN ran what each setup says.
    assert_eq!(report.tcp.rows.len(), 3);
    assert!(report.tcp.rows.iter().all(|row| row.gbps.median > 0.0));
    let xdp: Vec<&str> = report
        .tcp
        .rows
        .iter()
        .map(|row| row.runs[0].offloads.wan_xdp.as_str())
        .collect();
    assert_eq!(xdp, ["none", "native", "generic"]);
    // A native attach to the veth WAN says what it costs the peer's TCP; generic does not.
    let notes: Vec<bool> = report
        .tcp
        .rows
        .iter()
        .map(|row| row.runs[0].attach_notes.contains("is a veth"))
        .collect();
    assert_eq!(notes, [false, true, false]);
}
