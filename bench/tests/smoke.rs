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
    fs::remove_dir_all(&dir).unwrap();
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
    assert_eq!(json["cost"]["classes"].as_array().unwrap().len(), 9);
    assert_eq!(json["pps"].as_array().unwrap().len(), 8);
    assert!(report.pps.iter().all(|row| row.mpps.median > 0.0));
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
