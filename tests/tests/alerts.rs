//! Issue 15, item 2: the alert rules and the Grafana dashboard gotofw ships
//! (`packaging/prometheus/`, `packaging/grafana/`), checked with promtool and then on a real
//! Prometheus server.
//!
//! - `promtool check rules` and `promtool test rules` (the unit tests next to the rules) pass.
//! - The dashboard is Grafana JSON on gotofw's series, with its variables.
//! - Live (root): Debian's `prometheus`, on a temporary directory with a 1 s scrape and
//!   evaluation interval, listens inside the test's gateway namespace and scrapes `gotofw
//!   metrics` (a stateful filter on a veth) and `gotofw run` (a second veth), both on that
//!   namespace's loopback, with the shipped rules loaded as they are. A flood of dropped packets
//!   with no drop-log reader fills the ring, and nothing counts as lost; with a reader that
//!   stalls, the kernel counts the samples lost and GotofwDropLogSamplesLost fires. Every dashboard expression evaluates with series. Then the
//!   world breaks as an operator's does: the filter's XDP link detached behind gotofw's back
//!   (`bpftool link detach`) and a broken file reloaded into the service; GotofwNotFiltering
//!   (after its `for:`) and GotofwReloadFailed fire, and clear once `gotofw attach` and a
//!   good reload repair them. The times are measured and printed.
//!
//! Every daemon is a [`Daemon`] guard (killed on drop, and by the kernel should the test die),
//! every attach an [`Attached`] guard, every file in a [`TempDir`]; every wait is bounded.

use std::{
    fs,
    net::{SocketAddr, SocketAddrV4},
    path::{Path, PathBuf},
    process::Command,
    thread,
    time::{Duration, Instant},
};

use gotofw_tests::{
    Attached, Daemon, GW_ADDR, Gotofw, Netns, OUTSIDE, TempDir, VethPair, WanLab, find_program,
    require_root_or_skip, udp_send_from, unique_name, veth_pair,
};
use serde_json::Value;

/// The shipped files.
const RULES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../packaging/prometheus/gotofw.rules.yml"
);
const RULE_TESTS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../packaging/prometheus/gotofw.rules.test.yml"
);
const DASHBOARD: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../packaging/grafana/gotofw-dashboard.json"
);

/// Where each server listens, on the gateway namespace's loopback.
const PROMETHEUS: &str = "127.0.0.1:9090";
const METRICS: &str = "127.0.0.1:9469";
const SERVICE: &str = "127.0.0.1:9470";

/// Longest wait for a daemon to come up or a series to appear.
const STARTUP: Duration = Duration::from_secs(20);
/// How long past its `for:` an alert may take to fire, and a repaired one to clear: a few
/// scrape and evaluation intervals (1 s each here).
const SLACK: Duration = Duration::from_secs(10);
/// How often the test asks Prometheus.
const POLL: Duration = Duration::from_millis(250);

fn promtool() -> PathBuf {
    find_program("promtool", "prometheus").unwrap()
}

/// Runs promtool in the rules' directory; its exit status and output.
fn run_promtool(args: &[&str]) -> (bool, String) {
    let dir = Path::new(RULES).parent().unwrap();
    let out = Command::new(promtool())
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run promtool");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// `promtool check rules` accepts the shipped rules, every alert of them.
#[test]
fn promtool_checks_the_shipped_rules() {
    let (ok, text) = run_promtool(&["check", "rules", "gotofw.rules.yml"]);
    println!("{text}");
    assert!(ok, "promtool check rules failed:\n{text}");
    let alerts = fs::read_to_string(RULES)
        .unwrap()
        .lines()
        .filter(|l| l.trim_start().starts_with("- alert:"))
        .count();
    assert!(
        text.contains(&format!("SUCCESS: {alerts} rules found")),
        "{text}"
    );
}

/// `promtool test rules`: every alert shown firing and, on series that must not alert, not
/// firing.
#[test]
fn promtool_unit_tests_of_the_rules_pass() {
    let (ok, text) = run_promtool(&["test", "rules", "gotofw.rules.test.yml"]);
    println!("{text}");
    assert!(ok, "promtool test rules failed:\n{text}");
    // Each alert of the rules has a test that expects it to fire.
    let tests = fs::read_to_string(RULE_TESTS).unwrap();
    for alert in alert_names() {
        assert!(
            tests.contains(&format!(
                "alertname: {alert}\n        exp_alerts:\n          - "
            )),
            "no test expects {alert} to fire"
        );
    }
}

fn alert_names() -> Vec<String> {
    fs::read_to_string(RULES)
        .unwrap()
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("- alert: "))
        .map(|n| n.trim().to_owned())
        .collect()
}

fn dashboard() -> Value {
    serde_json::from_str(&fs::read_to_string(DASHBOARD).unwrap()).expect("the dashboard is JSON")
}

/// Every panel of `dash` (rows' nested panels included).
fn panels(dash: &Value) -> Vec<&Value> {
    fn walk<'a>(list: &'a Value, out: &mut Vec<&'a Value>) {
        for p in list.as_array().into_iter().flatten() {
            out.push(p);
            walk(&p["panels"], out);
        }
    }
    let mut out = Vec::new();
    walk(&dash["panels"], &mut out);
    out
}

/// Each panel's title with its targets' expressions.
fn panel_exprs(dash: &Value) -> Vec<(String, String)> {
    panels(dash)
        .into_iter()
        .flat_map(|p| {
            let title = p["title"].as_str().unwrap_or_default().to_owned();
            p["targets"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(move |t| t["expr"].as_str().map(|e| (title.clone(), e.to_owned())))
        })
        .collect()
}

/// The dashboard is Grafana JSON: schema version, a Prometheus data-source variable that every
/// panel and query uses, gateway and interface variables, and queries of gotofw's series only.
#[test]
fn the_dashboard_is_grafana_json_on_gotofw_series() {
    let dash = dashboard();
    assert!(dash["schemaVersion"].as_u64().unwrap() >= 36);
    assert_eq!(dash["uid"], "gotofw");
    let vars = dash["templating"]["list"].as_array().unwrap();
    let var = |name: &str| {
        vars.iter()
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("no variable {name}"))
    };
    assert_eq!(var("datasource")["type"], "datasource");
    assert_eq!(var("datasource")["query"], "prometheus");
    for name in ["instance", "interface"] {
        assert_eq!(var(name)["type"], "query");
        assert!(
            var(name)["definition"]
                .as_str()
                .unwrap()
                .starts_with("label_values(gotofw_")
        );
    }
    let all = panels(&dash);
    assert!(all.len() >= 10);
    for p in &all {
        assert_eq!(p["datasource"]["uid"], "${datasource}", "{}", p["title"]);
        for t in p["targets"].as_array().unwrap() {
            assert_eq!(t["datasource"]["uid"], "${datasource}", "{}", p["title"]);
        }
    }
    for (title, expr) in panel_exprs(&dash) {
        assert!(
            expr.contains("gotofw_") || expr.contains("up{job=\"gotofw\""),
            "{title}: {expr}"
        );
        assert!(expr.contains("$instance"), "{title}: {expr}");
    }
}

// ---------------------------------------------------------------------------------------------
// The live test.

/// Prometheus, gotofw's two endpoints and the two filtered interfaces.
struct Live<'a> {
    ns: &'a Netns,
    dir: &'a TempDir,
    service: Daemon,
    _metrics: Daemon,
    _prometheus: Daemon,
}

impl Live<'_> {
    /// `GET path` of the Prometheus API, parsed, with its `status` checked.
    fn api(&self, path: &str, form: &[(&str, &str)]) -> Value {
        let url = format!("http://{PROMETHEUS}{path}");
        let mut args = vec!["--silent".to_owned(), "--max-time".into(), "5".into()];
        for (k, v) in form {
            args.extend(["--data-urlencode".to_owned(), format!("{k}={v}")]);
        }
        args.push(url);
        let out = self.ns.exec("curl", &args).expect("run curl");
        let body = String::from_utf8_lossy(&out.stdout);
        let v: Value = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("{path} {form:?}: not JSON ({e}): {body}"));
        assert_eq!(v["status"], "success", "{path} {form:?}: {v}");
        v
    }

    /// The result of an instant query.
    fn query(&self, expr: &str) -> Vec<Value> {
        self.api("/api/v1/query", &[("query", expr)])["data"]["result"]
            .as_array()
            .unwrap()
            .clone()
    }

    /// The active alerts (pending or firing).
    fn alerts(&self) -> Vec<Value> {
        self.api("/api/v1/alerts", &[])["data"]["alerts"]
            .as_array()
            .unwrap()
            .clone()
    }

    /// The state (`pending`, `firing`) of alert `name` with labels `labels`, if active.
    fn alert(&self, name: &str, labels: &[(&str, &str)]) -> Option<(String, Value)> {
        self.alerts()
            .into_iter()
            .find(|a| {
                a["labels"]["alertname"] == name
                    && labels.iter().all(|(k, v)| a["labels"][*k] == *v)
            })
            .map(|a| (a["state"].as_str().unwrap().to_owned(), a))
    }

    /// Seconds of `for:` of alert `name`, as Prometheus loaded it.
    fn for_of(&self, name: &str) -> Duration {
        let rules = self.api("/api/v1/rules", &[]);
        let rule = rules["data"]["groups"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|g| g["rules"].as_array().unwrap())
            .find(|r| r["name"] == name)
            .unwrap_or_else(|| panic!("Prometheus has no rule {name}: {rules}"));
        Duration::from_secs_f64(rule["duration"].as_f64().unwrap())
    }

    fn service_log(&self) -> String {
        self.service.log_tail()
    }

    /// Writes the service's file (`scenario`, which may be one gotofw does not know) and sends
    /// it SIGHUP.
    fn reload(&self, iface: &str, scenario: &str) {
        fs::write(service_config(self.dir), service_toml(iface, scenario)).unwrap();
        let pid = libc::pid_t::try_from(self.service.pid()).unwrap();
        // SAFETY: a plain kill(2) of our own child, which has not been reaped.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGHUP) }, 0);
    }
}

fn service_config(dir: &TempDir) -> PathBuf {
    dir.path().join("gotofw.toml")
}

fn service_toml(iface: &str, scenario: &str) -> String {
    format!(
        "interfaces = [\"{iface}\"]\nscenario = \"{scenario}\"\nmode = \"stateless\"\n\n[metrics]\nlisten = \"{SERVICE}\"\n"
    )
}

/// Polls `f` every [`POLL`] until it returns `Some`, for at most `limit`.
fn wait_for<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            start.elapsed() < limit,
            "timed out ({limit:?}) waiting for {what}"
        );
        thread::sleep(POLL);
    }
}

fn spawn(ns: &Netns, dir: &TempDir, name: &str, program: &Path, args: &[&str]) -> Daemon {
    let args: Vec<String> = args.iter().map(|&a| a.to_owned()).collect();
    Daemon::spawn(
        ns,
        name,
        program,
        &args,
        &dir.path().join(format!("{name}.log")),
    )
    .unwrap()
}

/// Detaches the XDP link pinned for `iface` behind gotofw's back, as an operator's tool would.
fn sever_xdp_link(iface: &str) {
    let pin = gotofw_tests::pin_dir(iface).join("link");
    let out = Command::new("bpftool")
        .args(["-j", "link", "show", "pinned"])
        .arg(&pin)
        .output()
        .expect("run bpftool (installed by `cargo xtask setup`)");
    let link: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("bpftool link show: {e}: {out:?}"));
    let id = link["id"].as_u64().unwrap().to_string();
    let out = Command::new("bpftool")
        .args(["link", "detach", "id", &id])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
}

/// Substitutes the dashboard's variables as Grafana would with the gateway set to All and the
/// interface to `iface`.
fn substitute(expr: &str, iface: &str) -> String {
    let out = expr
        .replace("$__rate_interval", "10s")
        .replace("$interface", iface)
        .replace("$instance", ".+");
    assert!(!out.contains('$'), "a variable left in {out}");
    out
}

#[test]
fn a_real_prometheus_alerts_when_a_filter_stops_filtering_and_clears_when_repaired() {
    if !require_root_or_skip(
        "a_real_prometheus_alerts_when_a_filter_stops_filtering_and_clears_when_repaired",
    ) {
        return;
    }
    let prometheus = find_program("prometheus", "prometheus").unwrap();
    let gotofw = Gotofw::default();
    let lab = WanLab::named(["gfpmg", "gfpmi", "gfpmw", "gfpmp"]).unwrap();
    let ns = lab.gw();
    let wan = lab.wan().to_owned();
    // The service's interface: a second veth to the internet namespace.
    let svc_if = unique_name("gfpms");
    let _svc_link: VethPair = veth_pair(ns, &svc_if, lab.inet(), &unique_name("gfpmq")).unwrap();
    // A third veth, whose filter `gotofw metrics` reports too: it gets re-plugged.
    let (plug_if, plug_peer) = (unique_name("gfpmx"), unique_name("gfpmy"));
    let _plug_link: VethPair = veth_pair(ns, &plug_if, lab.inet(), &plug_peer).unwrap();
    let dir = TempDir::new("gfpm-prom").unwrap();

    // The guards, dropped before the links and namespaces (declared after them).
    let _svc_guard = Attached::new(gotofw.clone(), ns, &svc_if);
    let _plug_guard = gotofw.attach(ns, &plug_if, &["--scenario", "udp-turn"]);
    let _wan_guard = gotofw.attach(ns, &wan, &["--scenario", "udp-turn", "--log-rate", "10000"]);

    fs::write(service_config(&dir), service_toml(&svc_if, "tcp-443")).unwrap();
    let config = service_config(&dir).to_string_lossy().into_owned();
    let mut service = spawn(
        ns,
        &dir,
        "gotofw-run",
        gotofw.bin(),
        &["run", "--config", &config],
    );
    let metrics = spawn(
        ns,
        &dir,
        "gotofw-metrics",
        gotofw.bin(),
        &["metrics", "--listen", METRICS],
    );
    let targets = |t: &str| t.parse::<SocketAddr>().unwrap();
    fs::write(
        dir.path().join("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             rule_files:\n  - {RULES}\n\
             scrape_configs:\n  - job_name: gotofw\n    static_configs:\n      - targets: [\"{METRICS}\", \"{SERVICE}\"]\n"
        ),
    )
    .unwrap();
    let data = dir.path().join("data");
    let mut server = spawn(
        ns,
        &dir,
        "prometheus",
        &prometheus,
        &[
            &format!(
                "--config.file={}",
                dir.path().join("prometheus.yml").display()
            ),
            &format!("--storage.tsdb.path={}", data.display()),
            &format!("--web.listen-address={PROMETHEUS}"),
            "--log.level=warn",
        ],
    );
    let tcp = gotofw_tests::Transport::Tcp;
    server
        .wait_listening(ns, &[(tcp, targets(PROMETHEUS))], STARTUP)
        .unwrap();
    service
        .wait_listening(ns, &[(tcp, targets(SERVICE))], STARTUP)
        .unwrap();
    let live = Live {
        ns,
        dir: &dir,
        service,
        _metrics: metrics,
        _prometheus: server,
    };
    let started = Instant::now();
    wait_for("both gotofw targets up", STARTUP, || {
        (live.query("up{job=\"gotofw\"} == 1").len() == 2).then_some(())
    });
    // Every rule loaded and evaluates.
    let rules = live.api("/api/v1/rules", &[]);
    let loaded: Vec<&Value> = rules["data"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap())
        .collect();
    assert_eq!(loaded.len(), alert_names().len(), "{rules}");

    // Drops with nobody reading the drop log: the ring fills (it holds about 4,000 samples),
    // and what it cannot take is not counted as lost: nobody expected those samples.
    let flood = || {
        udp_send_from(
            lab.inet(),
            SocketAddr::V4(SocketAddrV4::new(OUTSIDE, 40_000)),
            SocketAddr::V4(SocketAddrV4::new(GW_ADDR, 9)),
            5000,
        )
        .unwrap();
    };
    let lost_now = || {
        gotofw.status_json(ns, &wan)["interfaces"][0]["log_samples_lost"]
            .as_u64()
            .expect("status --json has log_samples_lost")
    };
    for _ in 0..3 {
        flood();
    }
    assert_eq!(
        lost_now(),
        0,
        "samples of a ring nobody reads counted as lost"
    );
    // A reader that follows the log and then stalls (stopped): the ring it read fills again,
    // and now the samples it cannot take are lost.
    let reader = spawn(ns, &dir, "gotofw-log", gotofw.bin(), &["log", &wan]);
    let reader_log = dir.path().join("gotofw-log.log");
    wait_for("the drop-log reader to read the full ring", STARTUP, || {
        (fs::read_to_string(&reader_log)
            .unwrap_or_default()
            .lines()
            .count()
            >= 3000)
            .then_some(())
    });
    let reader_pid = libc::pid_t::try_from(reader.pid()).unwrap();
    // SAFETY: kill(2) on our own child; no memory is involved.
    assert_eq!(unsafe { libc::kill(reader_pid, libc::SIGSTOP) }, 0);
    let lost = wait_for("drop-log samples lost", STARTUP, || {
        flood();
        Some(lost_now()).filter(|&n| n > 0)
    });
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(reader_pid, libc::SIGCONT) }, 0);
    drop(reader);
    println!("alerts: {lost} drop-log samples lost (status --json)");
    let samples_lost = wait_for("GotofwDropLogSamplesLost to fire", STARTUP, || {
        live.alert("GotofwDropLogSamplesLost", &[("interface", &wan)])
            .filter(|(state, _)| state == "firing")
    });
    println!(
        "alerts: GotofwDropLogSamplesLost firing: {}",
        samples_lost.1["annotations"]["summary"]
    );
    for rule in &loaded {
        assert_eq!(rule["health"], "ok", "{rule}");
    }

    // Every dashboard expression evaluates, with series.
    let dash = dashboard();
    let exprs = panel_exprs(&dash);
    for (title, expr) in &exprs {
        let expr = substitute(expr, &wan);
        let result = wait_for(
            &format!("series of panel {title:?}: {expr}"),
            STARTUP,
            || Some(live.query(&expr)).filter(|r| !r.is_empty()),
        );
        assert!(!result.is_empty());
    }
    for var in dash["templating"]["list"].as_array().unwrap() {
        let Some(def) = var["definition"].as_str() else {
            continue;
        };
        let (selector, label) = def
            .strip_prefix("label_values(")
            .and_then(|d| d.strip_suffix(')'))
            .and_then(|d| d.rsplit_once(", "))
            .unwrap();
        let values: Vec<String> = live
            .query(&substitute(selector, &wan))
            .iter()
            .filter_map(|s| s["metric"][label].as_str().map(str::to_owned))
            .collect();
        assert!(!values.is_empty(), "variable {}: no values", var["name"]);
    }
    println!(
        "alerts: {} dashboard expressions of {} panels evaluated with series",
        exprs.len(),
        panels(&dash).len()
    );

    // Nothing else alerts before the break.
    for name in [
        "GotofwNotFiltering",
        "GotofwFilterMissing",
        "GotofwFilterVanished",
        "GotofwMetricsDown",
        "GotofwReloadFailed",
    ] {
        assert!(live.alert(name, &[]).is_none(), "{name} before the break");
    }

    // The break: the XDP link detached behind gotofw's back, and a reload of a broken file.
    let not_filtering = [
        ("interface", wan.as_str()),
        ("state", "severed"),
        ("severity", "critical"),
    ];
    let wait_for_not_filtering = live.for_of("GotofwNotFiltering");
    assert!(
        wait_for_not_filtering >= Duration::from_secs(10)
            && wait_for_not_filtering <= Duration::from_mins(1),
        "GotofwNotFiltering's for: {wait_for_not_filtering:?}"
    );
    sever_xdp_link(&wan);
    let broken = Instant::now();
    // The interface re-plugged: deleted and created anew with the same names (a new index).
    ns.ip(["link", "del", &plug_if]).unwrap();
    // Same names as `_plug_link`, which deletes the new link when it drops.
    std::mem::forget(veth_pair(ns, &plug_if, lab.inet(), &plug_peer).unwrap());
    let replugged = [
        ("interface", plug_if.as_str()),
        ("state", "interface-recreated"),
    ];
    let mut replug_fired = None;
    live.reload(&svc_if, "tcp-444");
    let limit = wait_for_not_filtering + SLACK;
    let (mut pending, mut reload_fired) = (None, None);
    let fired = wait_for("GotofwNotFiltering to fire", limit, || {
        if reload_fired.is_none()
            && live
                .alert("GotofwReloadFailed", &[])
                .is_some_and(|(state, _)| state == "firing")
        {
            reload_fired = Some(broken.elapsed());
        }
        if replug_fired.is_none()
            && live
                .alert("GotofwNotFiltering", &replugged)
                .is_some_and(|(state, _)| state == "firing")
        {
            replug_fired = Some(broken.elapsed());
        }
        match live.alert("GotofwNotFiltering", &not_filtering) {
            Some((state, alert)) if state == "firing" => Some((broken.elapsed(), alert)),
            Some(_) => {
                pending.get_or_insert(broken.elapsed());
                None
            }
            None => None,
        }
    });
    let (fire_after, alert) = fired;
    let pending = pending.expect("GotofwNotFiltering was pending before it fired");
    assert!(
        fire_after >= wait_for_not_filtering,
        "fired after {fire_after:?}, before its for: {wait_for_not_filtering:?}"
    );
    let summary = alert["annotations"]["summary"].as_str().unwrap();
    assert!(
        summary.contains(&wan) && summary.contains("severed"),
        "{alert}"
    );
    assert!(
        alert["annotations"]["description"]
            .as_str()
            .unwrap()
            .contains(&format!("gotofw attach {wan}")),
        "{alert}"
    );
    let replug_fired = match replug_fired {
        Some(t) => t,
        None => wait_for(
            "GotofwNotFiltering of the re-plugged interface",
            SLACK,
            || {
                live.alert("GotofwNotFiltering", &replugged)
                    .filter(|(state, _)| state == "firing")
                    .map(|_| broken.elapsed())
            },
        ),
    };
    assert!(replug_fired >= wait_for_not_filtering, "{replug_fired:?}");
    let reload_fired = match reload_fired {
        Some(t) => t,
        None => wait_for("GotofwReloadFailed to fire", SLACK, || {
            live.alert("GotofwReloadFailed", &[("instance", SERVICE)])
                .filter(|(state, _)| state == "firing")
                .map(|_| broken.elapsed())
        }),
    };
    assert!(
        live.service_log().contains("reload refused"),
        "{}",
        live.service_log()
    );
    assert_eq!(
        live.query("gotofw_config_last_reload_successful == 0")
            .len(),
        1
    );

    // The repair: attach again, and a good file reloaded.
    gotofw.run_ok(
        ns,
        &[
            "attach",
            &wan,
            "--scenario",
            "udp-turn",
            "--log-rate",
            "10000",
        ],
    );
    gotofw.run_ok(ns, &["attach", &plug_if, "--scenario", "udp-turn"]);
    let repaired = Instant::now();
    live.reload(&svc_if, "tcp-443");
    let (mut filter_cleared, mut reload_cleared) = (None, None);
    wait_for("both alerts to clear", SLACK, || {
        if filter_cleared.is_none() && live.alert("GotofwNotFiltering", &[]).is_none() {
            filter_cleared = Some(repaired.elapsed());
        }
        if reload_cleared.is_none() && live.alert("GotofwReloadFailed", &[]).is_none() {
            reload_cleared = Some(repaired.elapsed());
        }
        (filter_cleared.is_some() && reload_cleared.is_some()).then_some(())
    });
    assert_eq!(
        live.query("gotofw_filtering{interface=~\"gfpm.*\"} == 0")
            .len(),
        0
    );
    assert_eq!(
        live.query("gotofw_config_last_reload_successful == 1")
            .len(),
        1
    );
    println!(
        "alerts: link severed -> GotofwNotFiltering pending after {:.1} s, firing after {:.1} s (for: {} s); \
         interface re-plugged -> firing after {:.1} s; both cleared {:.1} s after `gotofw attach`",
        pending.as_secs_f64(),
        fire_after.as_secs_f64(),
        wait_for_not_filtering.as_secs(),
        replug_fired.as_secs_f64(),
        filter_cleared.unwrap().as_secs_f64()
    );
    println!(
        "alerts: broken file reloaded -> GotofwReloadFailed firing after {:.1} s; cleared {:.1} s after a good reload",
        reload_fired.as_secs_f64(),
        reload_cleared.unwrap().as_secs_f64()
    );
    println!(
        "alerts: live part took {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
