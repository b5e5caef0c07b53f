//! Issue 10, liveness: a pinned filter whose interface was deleted and re-created, or whose link
//! was severed (`bpftool link detach`), does not filter. `status` says so (state, exit code 3,
//! in the table and in `--json`), and `reload`, `attach` (with and without `--replace`) and
//! `set-scenario` attach it anew; real packets show when it filters and when it does not.
//!
//! Root only. Each test builds its own [`WanLab`] (names start with `glv`); every attach has an
//! [`Attached`] guard, every wait is bounded.

use std::{
    fs,
    net::{SocketAddr, SocketAddrV4},
    path::Path,
    process::Output,
    time::Duration,
};

use gotofw_tests::{
    Attached, Gotofw, Netns, OUTSIDE, ServerHandle, TempDir, WanLab, exit_code, pin_dir,
    require_root_or_skip, udp_echo_server, udp_probe, xdp_prog_id,
};
use serde_json::Value;

const PROBE_TIMEOUT: Duration = Duration::from_millis(400);
/// UDP 3478 outside the TURN networks: blocked by every scenario but no-restrictions.
const BLOCKED: SocketAddr = SocketAddr::V4(SocketAddrV4::new(OUTSIDE, 3478));
/// `status` exit code when a filter it shows is not filtering.
const EXIT_NOT_FILTERING: i32 = 3;

struct Lab {
    net: WanLab,
    _server: ServerHandle,
    gotofw: Gotofw,
}

impl Lab {
    fn new() -> Self {
        let net = WanLab::with_prefix("glv").unwrap();
        let server = udp_echo_server(net.inet(), BLOCKED).unwrap();
        Self {
            net,
            _server: server,
            gotofw: Gotofw::default(),
        }
    }

    fn gw(&self) -> &Netns {
        self.net.gw()
    }

    fn wan(&self) -> String {
        self.net.wan().to_owned()
    }

    fn run(&self, args: &[&str]) -> Output {
        self.gotofw.run(self.gw(), args)
    }

    fn ok(&self, args: &[&str]) -> Output {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "gotofw {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Whether blocked traffic crosses (a few tries: the first packet after a link change may
    /// wait for ARP).
    fn blocked_passes(&self) -> bool {
        (0..3).any(|_| udp_probe(self.gw(), None, BLOCKED, PROBE_TIMEOUT))
    }

    /// `status WAN`: (exit code, table).
    fn status_table(&self) -> (Option<i32>, String) {
        let out = self.run(&["status", &self.wan()]);
        (
            exit_code(&out),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }

    /// `status WAN --json`: (exit code, the interface's entry).
    fn status_json(&self) -> (Option<i32>, Value) {
        let out = self.run(&["status", &self.wan(), "--json"]);
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "status --json: {e}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (exit_code(&out), v["interfaces"][0].clone())
    }

    /// Asserts that `status` (table and `--json`) shows the filter in `state`, with the exit
    /// code that goes with it.
    fn assert_state(&self, state: &str) {
        let filtering = state == "filtering";
        let code = Some(if filtering { 0 } else { EXIT_NOT_FILTERING });
        let (table_code, table) = self.status_table();
        assert_eq!(table_code, code, "{table}");
        let first = table.lines().next().unwrap_or_default();
        if filtering {
            assert!(first.contains(": filtering,"), "{table}");
        } else {
            assert!(
                first.contains(&format!("NOT FILTERING: {state}")),
                "{table}"
            );
        }
        let (json_code, entry) = self.status_json();
        assert_eq!(json_code, code, "{entry}");
        assert_eq!(entry["state"], state, "{entry}");
        assert_eq!(entry["filtering"], filtering, "{entry}");
    }

    /// Severs the filter's XDP link as an operator would (`bpftool link detach id N`).
    /// Severs the filter's links with `bpftool link detach`: the XDP link, and the egress
    /// link too where there is one (stateless mode filters outbound as well, so blocked traffic
    /// flows only once both are gone).
    fn sever(&self) {
        for pin in ["link", "tc_link"] {
            let link = pin_dir(&self.wan()).join(pin);
            if pin == "tc_link" && !link.exists() {
                continue;
            }
            let id = link_id(&link);
            let out = std::process::Command::new("bpftool")
                .args(["link", "detach", "id", &id.to_string()])
                .output()
                .expect("run bpftool (installed by `cargo xtask setup`)");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        assert_eq!(xdp_prog_id(self.gw(), &self.wan()), None);
    }

    fn config(&self, dir: &Path, scenario: &str) -> String {
        let path = dir.join("gotofw.toml");
        fs::write(
            &path,
            format!(
                "interfaces = [\"{}\"]\nscenario = \"{scenario}\"\nmode = \"stateless\"\n",
                self.wan()
            ),
        )
        .unwrap();
        path.to_string_lossy().into_owned()
    }
}

/// The id of the link pinned at `pin`.
fn link_id(pin: &Path) -> u64 {
    let out = std::process::Command::new("bpftool")
        .args(["-j", "link", "show", "pinned"])
        .arg(pin)
        .output()
        .expect("run bpftool");
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("bpftool link show: {e}: {out:?}"));
    v["id"].as_u64().unwrap()
}

/// A severed XDP link: `status` says `severed` (exit 3) and blocked traffic flows; `reload`,
/// `attach --replace` and `set-scenario` each attach the filter anew, and it blocks again.
#[test]
fn issue10_a_severed_link_is_reported_and_repaired_by_reload_replace_and_set_scenario() {
    if !require_root_or_skip(
        "issue10_a_severed_link_is_reported_and_repaired_by_reload_replace_and_set_scenario",
    ) {
        return;
    }
    let lab = Lab::new();
    let dir = TempDir::new("glv-live").unwrap();
    let wan = lab.wan();
    let _guard = Attached::new(lab.gotofw.clone(), lab.gw(), &wan);
    lab.ok(&["attach", &wan, "--scenario", "udp-turn", "--stateless"]);
    lab.assert_state("filtering");
    assert!(!lab.blocked_passes(), "the filter does not block");

    let config = lab.config(&dir.0, "udp-turn");
    let repairs: [(&str, Vec<&str>); 3] = [
        ("reload", vec!["reload", "--config", &config]),
        (
            "attach --replace",
            vec![
                "attach",
                &wan,
                "--scenario",
                "udp-turn",
                "--stateless",
                "--replace",
            ],
        ),
        ("set-scenario", vec!["set-scenario", &wan, "udp-turn"]),
    ];
    for (what, args) in repairs {
        lab.sever();
        lab.assert_state("severed");
        assert!(
            lab.blocked_passes(),
            "{what}: severed, yet traffic is blocked"
        );
        let out = lab.ok(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("attaching anew"), "{what}: {stderr}");
        lab.assert_state("filtering");
        assert!(xdp_prog_id(lab.gw(), &wan).is_some(), "{what}");
        assert!(!lab.blocked_passes(), "{what} left the interface open");
    }
}

/// The WAN interface deleted (`interface-gone`) and re-created (`interface-recreated`, a new
/// index): not filtering, exit 3; a plain `attach` and then `set-scenario` attach it anew.
#[test]
fn issue10_a_recreated_interface_is_reported_and_repaired_by_attach_and_set_scenario() {
    if !require_root_or_skip(
        "issue10_a_recreated_interface_is_reported_and_repaired_by_attach_and_set_scenario",
    ) {
        return;
    }
    let lab = Lab::new();
    let wan = lab.wan();
    let guard = Attached::new(lab.gotofw.clone(), lab.gw(), &wan);
    lab.ok(&["attach", &wan, "--scenario", "tcp-443"]);
    lab.assert_state("filtering");
    assert!(!lab.blocked_passes());

    for repair in [
        vec!["attach", wan.as_str(), "--scenario", "tcp-443"],
        vec!["set-scenario", wan.as_str(), "udp-turn"],
    ] {
        lab.net.delete_wan().unwrap();
        lab.assert_state("interface-gone");
        lab.net.recreate_wan().unwrap();
        lab.assert_state("interface-recreated");
        assert!(guard.is_attached());
        // Commands that show what the pins hold say that it is not in force.
        let flows = lab.run(&["flows", &wan]);
        assert!(
            String::from_utf8_lossy(&flows.stderr)
                .contains("is not filtering (interface-recreated"),
            "{flows:?}"
        );
        assert!(
            lab.blocked_passes(),
            "a new interface, yet traffic is blocked"
        );
        let out = lab.ok(&repair);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("attaching anew"), "{repair:?}: {stderr}");
        lab.assert_state("filtering");
        assert!(!lab.blocked_passes(), "{repair:?} left the interface open");
    }
}

/// `status KEY` of a filter of another namespace checks its links from here: `filtering` while
/// it is (not `interface gone` because the name is not here), `severed` once its link is.
#[test]
fn issue10_status_key_of_a_filter_elsewhere_checks_its_links() {
    if !require_root_or_skip("issue10_status_key_of_a_filter_elsewhere_checks_its_links") {
        return;
    }
    let lab = Lab::new();
    let elsewhere = Netns::new("glvctl").unwrap();
    let wan = lab.wan();
    let _guard = Attached::new(lab.gotofw.clone(), lab.gw(), &wan);
    lab.ok(&["attach", &wan, "--scenario", "udp-turn", "--stateless"]);
    let key = pin_dir(&wan)
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert!(key.starts_with(&format!("{wan}:")), "{key}");
    let status = |expect: i32| -> Value {
        let out = lab.gotofw.run(&elsewhere, &["status", &key, "--json"]);
        assert_eq!(
            exit_code(&out),
            Some(expect),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        v["interfaces"][0].clone()
    };
    let entry = status(0);
    assert_eq!(entry["state"], "filtering", "{entry}");
    assert_eq!(entry["present"], true, "{entry}");
    lab.sever();
    let entry = status(EXIT_NOT_FILTERING);
    assert_eq!(entry["state"], "severed", "{entry}");
    assert_eq!(entry["filtering"], false, "{entry}");
}
