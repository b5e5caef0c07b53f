//! Kernel tests of gotofw's long-running side and its configuration file (root only): `attach
//! --config` with operator rules, `status --watch`, `gotofw metrics` scraped with curl and
//! checked against `status --json`, and `gotofw run` through start, SIGHUP and SIGTERM.
//!
//! Each test builds its own [`WanLab`]; the daemons run in its gateway namespace (`nsenter
//! --net`), so their metrics port is on that namespace's loopback and the tests never share one.
//! Every daemon is a [`Daemon`] guard that kills it on drop, every attach has an [`Attached`]
//! guard, and every wait is bounded.

use std::{
    collections::BTreeMap,
    fs::{self, File},
    net::{SocketAddr, SocketAddrV4},
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    thread,
    time::{Duration, Instant},
};

use gotofw_tests::{
    Attached, EXIT_USAGE, Gotofw, Netns, OUTSIDE, ServerHandle, TURN_A, TempDir, WanLab,
    counter_in, require_root_or_skip, tcp_echo_server, tcp_probe, udp_echo_server, udp_probe,
    unique_name, xdp_prog_id,
};
use serde_json::Value;

const PROBE_TIMEOUT: Duration = Duration::from_millis(400);
/// How long a daemon may take to come up, or to act on a signal.
const DAEMON_WAIT: Duration = Duration::from_secs(15);
/// Where the daemons serve metrics, on the gateway namespace's loopback.
const METRICS: &str = "127.0.0.1:9469";

const UDP_TURN: SocketAddr = SocketAddr::V4(SocketAddrV4::new(TURN_A, 3478));
const UDP_OUTSIDE: SocketAddr = SocketAddr::V4(SocketAddrV4::new(OUTSIDE, 3478));
const HTTPS: SocketAddr = SocketAddr::V4(SocketAddrV4::new(OUTSIDE, 443));

/// A [`WanLab`] with echo servers for UDP 3478 inside and outside the TURN networks and for
/// TCP 443.
struct Lab {
    _servers: Vec<ServerHandle>,
    net: WanLab,
    gotofw: Gotofw,
    dir: TempDir,
}

impl Lab {
    fn new() -> Self {
        Self::with_prefix("")
    }

    /// A lab whose namespace and interface names start with `prefix`.
    fn with_prefix(prefix: &str) -> Self {
        let net = WanLab::with_prefix(prefix).unwrap();
        let servers = vec![
            udp_echo_server(net.inet(), UDP_TURN).unwrap(),
            udp_echo_server(net.inet(), UDP_OUTSIDE).unwrap(),
            tcp_echo_server(net.inet(), HTTPS).unwrap(),
        ];
        Self {
            _servers: servers,
            net,
            gotofw: Gotofw::default(),
            dir: TempDir::new("gotofw-service").unwrap(),
        }
    }

    fn gw(&self) -> &Netns {
        self.net.gw()
    }

    fn wan(&self) -> &str {
        self.net.wan()
    }

    fn udp(&self, dst: SocketAddr) -> bool {
        udp_probe(self.gw(), None, dst, PROBE_TIMEOUT)
    }

    fn tcp(&self, dst: SocketAddr) -> bool {
        tcp_probe(self.gw(), dst, PROBE_TIMEOUT)
    }

    /// Writes `text` to `name` in the test's directory and returns its path.
    fn file(&self, name: &str, text: &str) -> String {
        let path = self.dir.0.join(name);
        fs::write(&path, text).unwrap();
        path.to_string_lossy().into_owned()
    }

    /// A guard for the filter on the WAN interface, however it gets attached.
    fn guard(&self) -> Attached<'_> {
        Attached::new(self.gotofw.clone(), self.gw(), self.wan())
    }

    /// `gotofw status WAN --json`, or `None` while there is no filter.
    fn status(&self) -> Option<Value> {
        let out = self
            .gotofw
            .run(self.gw(), &["status", self.wan(), "--json"]);
        out.status
            .success()
            .then(|| serde_json::from_slice(&out.stdout).unwrap())
    }

    fn scenario(&self) -> Option<String> {
        self.status()
            .and_then(|s| s["interfaces"][0]["scenario"].as_str().map(str::to_owned))
    }

    /// Starts `gotofw args` in the gateway namespace.
    fn daemon(&self, args: &[&str]) -> Daemon {
        Daemon::start(self.gw(), self.gotofw.bin(), args, &self.dir.0)
    }
}

/// A gotofw process running in a namespace; killed (and reaped) on drop unless it has exited.
struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    fn start(ns: &Netns, bin: &Path, args: &[&str], dir: &Path) -> Self {
        let log = dir.join(unique_name("daemon-log"));
        let stderr = File::create(&log).unwrap();
        // nsenter enters the namespace and execs gotofw: the child's pid is gotofw's.
        let child = Command::new("nsenter")
            .arg(format!("--net={}", ns.path().display()))
            .arg("--")
            .arg(bin)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("start nsenter");
        Self { child, log }
    }

    fn signal(&self, signal: libc::c_int) {
        let pid = libc::pid_t::try_from(self.child.id()).unwrap();
        // SAFETY: a plain kill(2) of our own child, which has not been reaped.
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0, "kill {pid}");
    }

    /// Waits (bounded) for the process to exit.
    fn wait(&mut self) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                start.elapsed() < DAEMON_WAIT,
                "gotofw did not exit within {DAEMON_WAIT:?}; its log:\n{}",
                self.log()
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits (bounded) until the log has a line containing `needle`.
    fn wait_for_log(&mut self, needle: &str) {
        let start = Instant::now();
        while !self.log().contains(needle) {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "gotofw exited ({status}) before logging {needle:?}:\n{}",
                    self.log()
                );
            }
            assert!(
                start.elapsed() < DAEMON_WAIT,
                "no {needle:?} in the log within {DAEMON_WAIT:?}:\n{}",
                self.log()
            );
            thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Polls `f` every 100 ms until it returns `Some`, for at most [`DAEMON_WAIT`].
fn wait_until<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(value) = f() {
            return value;
        }
        assert!(
            start.elapsed() < DAEMON_WAIT,
            "timed out waiting for {what}"
        );
        thread::sleep(Duration::from_millis(100));
    }
}

/// `curl` in `ns`: the body, the status code and the content type of `GET url`, or `None` when
/// nothing answers.
fn curl(ns: &Netns, url: &str) -> Option<(String, u16, String)> {
    let out = ns
        .exec(
            "curl",
            [
                "--silent",
                "--max-time",
                "5",
                "--write-out",
                "\n%{http_code} %{content_type}",
                url,
            ],
        )
        .expect("run curl (installed by `cargo xtask setup`)");
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).unwrap();
    let (body, trailer) = text.rsplit_once('\n').unwrap();
    let (code, kind) = trailer.split_once(' ').unwrap();
    Some((body.to_owned(), code.parse().unwrap(), kind.to_owned()))
}

/// Scrapes `/metrics` and parses it, checking the status code and media type.
fn scrape(ns: &Netns) -> Exposition {
    let (body, code, kind) =
        curl(ns, &format!("http://{METRICS}/metrics")).expect("the metrics endpoint answers");
    assert_eq!(code, 200, "{body}");
    assert!(kind.starts_with("application/openmetrics-text"), "{kind}");
    Exposition::parse(&body).unwrap_or_else(|e| panic!("bad exposition ({e}):\n{body}"))
}

// ---------------------------------------------------------------------------------------------
// A strict reader of the OpenMetrics text format, as much of it as gotofw may emit.

type Series = (String, Vec<(String, String)>);

/// Samples by metric name and labels (in their order), with each family's type.
#[derive(Debug, Default, PartialEq)]
struct Exposition {
    types: BTreeMap<String, String>,
    samples: BTreeMap<Series, f64>,
}

impl Exposition {
    fn parse(text: &str) -> Result<Self, String> {
        let mut out = Self::default();
        let body = text
            .strip_suffix("# EOF\n")
            .ok_or("the exposition does not end with `# EOF`")?;
        let mut family: Option<String> = None;
        let mut helped = Vec::new();
        for (i, line) in body.lines().enumerate() {
            let at = |why: &str| format!("line {}: {why}: {line:?}", i + 1);
            if let Some(rest) = line.strip_prefix("# ") {
                let (keyword, rest) = rest.split_once(' ').ok_or_else(|| at("bare comment"))?;
                let (name, value) = rest.split_once(' ').ok_or_else(|| at("no value"))?;
                check_name(name).map_err(|e| at(&e))?;
                match keyword {
                    "HELP" if !value.is_empty() => helped.push(name.to_owned()),
                    "TYPE" => {
                        if !["counter", "gauge", "info", "stateset", "unknown"].contains(&value) {
                            return Err(at("unknown type"));
                        }
                        if out
                            .types
                            .insert(name.to_owned(), value.to_owned())
                            .is_some()
                        {
                            return Err(at("family typed twice"));
                        }
                        family = Some(name.to_owned());
                    }
                    _ => return Err(at("unknown descriptor")),
                }
                continue;
            }
            let (series, value) = parse_sample(line).map_err(|e| at(&e))?;
            let fam = family
                .as_deref()
                .ok_or_else(|| at("sample before any TYPE"))?;
            let allowed = match out.types[fam].as_str() {
                "counter" => {
                    series.0 == format!("{fam}_total") || series.0 == format!("{fam}_created")
                }
                _ => series.0 == fam,
            };
            if !allowed {
                return Err(at(&format!("sample outside its family {fam}")));
            }
            if out.samples.insert(series, value).is_some() {
                return Err(at("the same series twice"));
            }
        }
        if let Some(missing) = out.types.keys().find(|name| !helped.contains(name)) {
            return Err(format!("family {missing} has no HELP"));
        }
        Ok(out)
    }

    /// The samples of metric `name` whose labels include every pair of `with`.
    fn find(&self, name: &str, with: &[(&str, &str)]) -> Vec<(&[(String, String)], f64)> {
        self.samples
            .iter()
            .filter(|((n, labels), _)| {
                n == name
                    && with
                        .iter()
                        .all(|(k, v)| labels.iter().any(|(lk, lv)| lk == k && lv == v))
            })
            .map(|((_, labels), value)| (labels.as_slice(), *value))
            .collect()
    }

    /// The one sample of `name` with labels `with`.
    fn one(&self, name: &str, with: &[(&str, &str)]) -> f64 {
        let found = self.find(name, with);
        assert_eq!(found.len(), 1, "{name} {with:?}: {found:?}");
        found[0].1
    }

    /// (direction, rule) -> (packets, bytes) of `iface`, with each rule's kind and action.
    fn rule_counters(&self, iface: &str) -> BTreeMap<(String, String), (u64, u64, String, String)> {
        let mut out = BTreeMap::new();
        for (labels, packets) in self.find("gotofw_rule_packets_total", &[("interface", iface)]) {
            let get = |key: &str| {
                labels.iter().find(|(k, _)| k == key).map_or_else(
                    || panic!("no label {key} in {labels:?}"),
                    |(_, v)| v.clone(),
                )
            };
            let (rule, direction) = (get("rule"), get("direction"));
            let with: Vec<(&str, &str)> = labels
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let bytes = self.one("gotofw_rule_bytes_total", &with);
            out.insert(
                (direction, rule),
                (
                    as_count(packets),
                    as_count(bytes),
                    get("kind"),
                    get("action"),
                ),
            );
        }
        out
    }
}

fn as_count(value: f64) -> u64 {
    assert!(
        value >= 0.0 && value.fract() == 0.0,
        "{value} is not a count"
    );
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "checked above"
    )]
    let count = value as u64;
    count
}

fn check_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':');
    if first_ok && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
        Ok(())
    } else {
        Err(format!("bad metric name {name:?}"))
    }
}

/// `name{key="value",...} value` (labels optional; no timestamps or exemplars).
fn parse_sample(line: &str) -> Result<(Series, f64), String> {
    let name_end = line.find(['{', ' ']).ok_or("a sample needs a value")?;
    let name = &line[..name_end];
    check_name(name)?;
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(inner) = rest.strip_prefix('{') {
        let mut chars = inner.char_indices().peekable();
        loop {
            // A label name up to '='.
            let start = chars.peek().map(|(i, _)| *i).ok_or("unterminated labels")?;
            let mut end = start;
            while let Some(&(i, c)) = chars.peek() {
                if c == '=' {
                    end = i;
                    break;
                }
                chars.next();
            }
            let key = &inner[start..end];
            if key.is_empty()
                || !key
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            {
                return Err(format!("bad label name {key:?}"));
            }
            chars.next(); // '='
            if chars.next().map(|(_, c)| c) != Some('"') {
                return Err("a label value must be quoted".into());
            }
            let mut value = String::new();
            loop {
                match chars.next().map(|(_, c)| c) {
                    Some('"') => break,
                    Some('\\') => match chars.next().map(|(_, c)| c) {
                        Some('\\') => value.push('\\'),
                        Some('"') => value.push('"'),
                        Some('n') => value.push('\n'),
                        other => return Err(format!("bad escape \\{other:?}")),
                    },
                    Some('\n') | None => return Err("unterminated label value".into()),
                    Some(c) => value.push(c),
                }
            }
            if labels.iter().any(|(k, _)| k == key) {
                return Err(format!("label {key} twice"));
            }
            labels.push((key.to_owned(), value));
            match chars.next() {
                Some((_, ',')) => {}
                Some((i, '}')) => {
                    rest = &inner[i + 1..];
                    break;
                }
                _ => return Err("labels are separated by ',' and closed by '}'".into()),
            }
        }
    }
    let value_text = rest.strip_prefix(' ').ok_or("one space before the value")?;
    if value_text.contains(' ') {
        return Err("timestamps and exemplars are not expected".into());
    }
    let value = match value_text {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        v => v.parse::<f64>().map_err(|_| format!("bad value {v:?}"))?,
    };
    Ok(((name.to_owned(), labels), value))
}

#[test]
fn exposition_reader_is_strict() {
    let good = "# HELP a_b Help.\n# TYPE a_b counter\na_b_total{x=\"1\\\"\\\\\\n\",y=\"\"} 3\n# HELP g G.\n# TYPE g gauge\ng 1.5\n# EOF\n";
    let parsed = Exposition::parse(good).unwrap();
    assert_eq!(as_count(parsed.one("a_b_total", &[("x", "1\"\\\n")])), 3);
    assert!((parsed.one("g", &[]) - 1.5).abs() < f64::EPSILON);
    for bad in [
        good.replace("# EOF\n", ""),
        good.replace("a_b_total{", "a_c_total{"),
        good.replace("x=\"1", "x=1"),
        good.replace(",y=\"\"", ",x=\"\""),
        good.replace("} 3", "}  3"),
        good.replace("g 1.5", "g one"),
        good.replace("# HELP g G.\n", ""),
        good.replace("# TYPE g gauge", "# TYPE g histogramm"),
        good.replace("} 3", ",} 3"),
        format!("{good}x 1\n"),
    ] {
        assert!(Exposition::parse(&bad).is_err(), "accepted:\n{bad}");
    }
}

// ---------------------------------------------------------------------------------------------

/// Sends traffic through a stateful udp-turn filter, then checks that every counter `gotofw
/// metrics` serves equals the one `status --json` shows, and the flow gauges too.
#[test]
fn metrics_scrape_equals_status_json() {
    if !require_root_or_skip("metrics_scrape_equals_status_json") {
        return;
    }
    let lab = Lab::new();
    let _attached = lab
        .gotofw
        .attach(lab.gw(), lab.wan(), &["--scenario", "udp-turn"]);
    for _ in 0..3 {
        assert!(lab.udp(UDP_TURN), "udp to a TURN server");
    }
    assert!(lab.tcp(HTTPS), "https");
    assert!(!lab.udp(UDP_OUTSIDE), "udp 3478 outside the TURN networks");

    let mut daemon = lab.daemon(&["metrics", "--listen", METRICS, lab.wan()]);
    daemon.wait_for_log("serving metrics");
    let (text, code, _) = curl(lab.gw(), &format!("http://{METRICS}/nowhere")).unwrap();
    assert_eq!(code, 404, "{text}");

    // ARP or a late retransmission may move a counter between two reads: compare a status with
    // the scrapes around it, and retry until those two agree.
    let (scraped, status) = (0..10)
        .find_map(|_| {
            let before = scrape(lab.gw());
            let status = lab.status().expect("status --json");
            let after = scrape(lab.gw());
            (before.rule_counters(lab.wan()) == after.rule_counters(lab.wan()))
                .then_some((after, status))
        })
        .expect("two scrapes in a row agree");
    let iface = &status["interfaces"][0];
    let counters = scraped.rule_counters(lab.wan());
    let listed = iface["counters"].as_array().unwrap();
    assert_eq!(counters.len(), listed.len(), "{counters:?}\n{status}");
    for c in listed {
        let key = (
            c["direction"].as_str().unwrap().to_owned(),
            c["name"].as_str().unwrap().to_owned(),
        );
        let (packets, bytes, kind, action) = counters
            .get(&key)
            .unwrap_or_else(|| panic!("no series for {key:?}"));
        assert_eq!(Some(*packets), c["packets"].as_u64(), "{key:?}");
        assert_eq!(Some(*bytes), c["bytes"].as_u64(), "{key:?}");
        assert_eq!(Some(kind.as_str()), c["kind"].as_str(), "{key:?}");
        assert_eq!(Some(action.as_str()), c["action"].as_str(), "{key:?}");
    }
    let (turn, _) = counter_in(&status, "turn-udp", "ingress");
    assert!(turn >= 3, "{status}");
    assert!(counter_in(&status, "https", "ingress").0 >= 2, "{status}");
    assert!(
        counter_in(&status, "default-block", "egress").0 >= 1,
        "{status}"
    );
    let wan = [("interface", lab.wan())];
    for (gauge, field) in [
        ("gotofw_flow_table_entries", "entries"),
        ("gotofw_flow_table_live", "live"),
        ("gotofw_flow_table_size", "table_size"),
    ] {
        assert_eq!(
            Some(as_count(scraped.one(gauge, &wan))),
            iface["flows"][field].as_u64(),
            "{gauge}"
        );
    }
    assert_eq!(as_count(scraped.one("gotofw_filter_attached", &wan)), 1);
    assert_eq!(
        as_count(scraped.one(
            "gotofw_filter_info",
            &[
                ("interface", lab.wan()),
                ("scenario", "udp-turn"),
                ("mode", "stateful")
            ]
        )),
        1
    );
    assert_eq!(scraped.types["gotofw_rule_packets"], "counter");
    assert_eq!(scraped.types["gotofw_flow_table_live"], "gauge");
    daemon.signal(libc::SIGTERM);
    assert!(daemon.wait().success(), "{}", daemon.log());
}

/// Not a terminal: `--count` frames, one per interval, separated by blank lines, with rates
/// from the second frame on.
#[test]
fn status_watch_prints_frames_with_rates() {
    if !require_root_or_skip("status_watch_prints_frames_with_rates") {
        return;
    }
    let lab = Lab::new();
    let _attached = lab.gotofw.attach(
        lab.gw(),
        lab.wan(),
        &["--scenario", "udp-turn", "--stateless"],
    );
    let bin = lab.gotofw.bin().to_string_lossy().into_owned();
    let watch = thread::scope(|scope| {
        let watch = scope.spawn(|| {
            lab.gw()
                .exec(
                    &bin,
                    [
                        "status",
                        lab.wan(),
                        "--watch",
                        "--interval",
                        "0.5",
                        "--count",
                        "4",
                    ],
                )
                .unwrap()
        });
        let start = Instant::now();
        while start.elapsed() < Duration::from_millis(1800) {
            lab.udp(UDP_TURN);
            thread::sleep(Duration::from_millis(50));
        }
        watch.join().unwrap()
    });
    assert!(
        watch.status.success(),
        "{}",
        String::from_utf8_lossy(&watch.stderr)
    );
    let text = String::from_utf8(watch.stdout).unwrap();
    assert!(
        !text.contains('\x1b'),
        "escape codes when not a terminal:\n{text}"
    );
    let frames: Vec<&str> = text.split("\n\n").collect();
    assert_eq!(frames.len(), 4, "{text}");
    let mut rates = Vec::new();
    for (i, frame) in frames.iter().enumerate() {
        assert!(
            frame.starts_with("gotofw status --watch: every 0.5s, ")
                && frame
                    .lines()
                    .next()
                    .unwrap()
                    .ends_with(&format!("frame {}", i + 1)),
            "{frame}"
        );
        let header = frame
            .lines()
            .find(|l| l.trim_start().starts_with("RULE"))
            .unwrap();
        assert!(
            header.contains("PKT/S") && header.contains("BYTES/S"),
            "{header}"
        );
        let row = frame
            .lines()
            .find(|l| l.trim_start().starts_with("turn-udp "))
            .unwrap_or_else(|| panic!("no turn-udp row:\n{frame}"));
        let cells: Vec<&str> = row.split_whitespace().collect();
        rates.push(cells[cells.len() - 2].to_owned());
    }
    assert_eq!(rates[0], "-", "the first frame has no rate");
    assert!(
        rates[1..]
            .iter()
            .any(|r| r.parse::<f64>().is_ok_and(|r| r > 0.0)),
        "no packet rate while sending: {rates:?}\n{text}"
    );
}

/// `attach --config` with the file's interface and two operator rules (one opening what the
/// scenario blocks, one blocking what it allows), `check-config` on the same file, and the
/// command line overriding the file.
#[test]
fn attach_config_with_operator_rules() {
    if !require_root_or_skip("attach_config_with_operator_rules") {
        return;
    }
    let lab = Lab::new();
    let config = lab.file(
        "gotofw.toml",
        &format!(
            r#"interfaces = ["{wan}"]
scenario = "udp-turn"

[[rules]]
name = "lab-udp"
direction = "outbound"
protocol = "udp"
ports = 3478
networks = ["{OUTSIDE}"]
action = "allow"
position = "after"

[[rules]]
name = "no-https-here"
direction = "outbound"
protocol = "tcp"
ports = [443]
networks = ["{OUTSIDE}/32"]
action = "block"
position = "before"

[log]
rate = 0
"#,
            wan = lab.wan()
        ),
    );
    let checked = lab
        .gotofw
        .run_ok(lab.gw(), &["check-config", "--config", &config]);
    assert!(checked.contains(": ok"), "{checked}");
    let order: Vec<&str> = checked
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .filter(|w| ["no-https-here", "turn-udp", "ntp", "lab-udp"].contains(w))
        .collect();
    assert_eq!(
        order,
        ["no-https-here", "turn-udp", "ntp", "lab-udp"],
        "{checked}"
    );

    let guard = lab.guard();
    let out = lab
        .gotofw
        .run_ok(lab.gw(), &["attach", "--config", &config]);
    assert!(
        out.contains(&format!("attached gotofw to {}", lab.wan())),
        "{out}"
    );
    assert!(lab.udp(UDP_OUTSIDE), "the operator's allow rule");
    assert!(lab.udp(UDP_TURN), "the scenario's rule");
    assert!(!lab.tcp(HTTPS), "the operator's block rule, before https");
    let status = guard.status_json();
    assert!(counter_in(&status, "lab-udp", "ingress").0 >= 1, "{status}");
    assert!(
        counter_in(&status, "no-https-here", "egress").0 >= 1,
        "{status}"
    );
    let kinds: Vec<&str> = status["interfaces"][0]["counters"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["name"] == "lab-udp")
        .map(|c| c["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["operator", "operator"]);

    // The command line wins: another scenario, the file's rules still around it.
    lab.gotofw.run_ok(
        lab.gw(),
        &[
            "attach",
            "--config",
            &config,
            lab.wan(),
            "--scenario",
            "tcp-443",
            "--replace",
        ],
    );
    assert_eq!(lab.scenario().as_deref(), Some("tcp-443"));
    assert!(!lab.udp(UDP_TURN), "tcp-443 has no UDP rule");
    assert!(lab.udp(UDP_OUTSIDE), "the operator's rule stays");
    // [log] rate = 0: no drop log, and status says so.
    let status = lab.gotofw.run_ok(lab.gw(), &["status", lab.wan()]);
    assert!(status.contains("drop log off"), "{status}");
    let log = lab.gotofw.run(
        lab.gw(),
        &["log", lab.wan(), "--count", "1", "--timeout", "1"],
    );
    let stderr = String::from_utf8_lossy(&log.stderr);
    assert_eq!(log.status.code(), Some(EXIT_USAGE), "{stderr}");
    assert!(
        stderr.contains("drop log of") && stderr.contains("is off"),
        "{stderr}"
    );
}

fn run_config(lab: &Lab, scenario: &str, extra: &str) -> String {
    lab.file(
        "run.toml",
        &format!(
            "interfaces = [\"{}\"]\nscenario = \"{scenario}\"\nmode = \"stateless\"\n\n[metrics]\nlisten = \"{METRICS}\"\n{extra}",
            lab.wan()
        ),
    )
}

/// `gotofw run`: attaches, serves metrics, swaps the rule set on SIGHUP, refuses a broken file,
/// leaves the filter attached on SIGTERM (on_stop = "keep"), and a second start adopts it.
#[test]
fn run_attaches_reloads_on_sighup_and_keeps_the_filter_on_sigterm() {
    if !require_root_or_skip("run_attaches_reloads_on_sighup_and_keeps_the_filter_on_sigterm") {
        return;
    }
    let lab = Lab::new();
    let guard = lab.guard();
    let config = run_config(&lab, "udp-turn", "");
    let mut daemon = lab.daemon(&["run", "--config", &config]);
    daemon.wait_for_log("running: udp-turn");
    assert_eq!(lab.scenario().as_deref(), Some("udp-turn"));
    assert!(xdp_prog_id(lab.gw(), lab.wan()).is_some());
    assert!(lab.udp(UDP_TURN));
    assert!(!lab.udp(UDP_OUTSIDE));
    let scraped = scrape(lab.gw());
    assert_eq!(
        as_count(scraped.one(
            "gotofw_filter_info",
            &[("interface", lab.wan()), ("scenario", "udp-turn")]
        )),
        1
    );

    run_config(&lab, "tcp-443", "");
    daemon.signal(libc::SIGHUP);
    daemon.wait_for_log("reloaded: tcp-443");
    assert!(
        daemon.log().contains("swapped in the new rule set"),
        "{}",
        daemon.log()
    );
    assert_eq!(lab.scenario().as_deref(), Some("tcp-443"));
    assert!(!lab.udp(UDP_TURN), "udp-turn's rule is gone");
    assert!(lab.tcp(HTTPS));
    wait_until("the metrics to show tcp-443", || {
        let s = scrape(lab.gw());
        (!s.find("gotofw_filter_info", &[("scenario", "tcp-443")])
            .is_empty())
        .then_some(())
    });

    fs::write(&config, "scenario = \"tcp-444\"\n").unwrap();
    daemon.signal(libc::SIGHUP);
    daemon.wait_for_log("reload refused");
    assert!(
        daemon.log().contains("run.toml:1: scenario = \"tcp-444\""),
        "{}",
        daemon.log()
    );
    assert_eq!(
        lab.scenario().as_deref(),
        Some("tcp-443"),
        "a broken file changed the filter"
    );

    daemon.signal(libc::SIGTERM);
    assert!(daemon.wait().success(), "{}", daemon.log());
    assert!(daemon.log().contains("stay attached"), "{}", daemon.log());
    assert!(guard.is_attached(), "on_stop = keep detached the filter");
    assert!(xdp_prog_id(lab.gw(), lab.wan()).is_some());
    assert!(
        lab.tcp(HTTPS) && !lab.udp(UDP_TURN),
        "the kept filter still filters"
    );

    // A new start with the same settings adopts the filter: the counters go on.
    run_config(&lab, "tcp-443", "");
    let https_before = counter_in(&guard.status_json(), "https", "ingress").0;
    assert!(https_before > 0);
    let mut again = lab.daemon(&["run", "--config", &config]);
    again.wait_for_log("running: tcp-443");
    assert!(
        again.log().contains("already has this rule set"),
        "{}",
        again.log()
    );
    assert!(counter_in(&guard.status_json(), "https", "ingress").0 >= https_before);
    again.signal(libc::SIGINT);
    assert!(again.wait().success(), "{}", again.log());
    assert!(guard.is_attached());
}

/// `[service] on_stop = "detach"`: SIGTERM removes the filter.
#[test]
fn run_with_on_stop_detach_detaches_on_sigterm() {
    if !require_root_or_skip("run_with_on_stop_detach_detaches_on_sigterm") {
        return;
    }
    let lab = Lab::new();
    let guard = lab.guard();
    let config = run_config(&lab, "tcp-turn", "\n[service]\non_stop = \"detach\"\n");
    let mut daemon = lab.daemon(&["run", "--config", &config]);
    daemon.wait_for_log("running: tcp-turn");
    assert!(guard.is_attached());
    daemon.signal(libc::SIGTERM);
    assert!(daemon.wait().success(), "{}", daemon.log());
    assert!(daemon.log().contains("detached"), "{}", daemon.log());
    assert!(!guard.is_attached(), "pins left");
    assert_eq!(xdp_prog_id(lab.gw(), lab.wan()), None, "XDP left");
    assert!(lab.udp(UDP_OUTSIDE), "the interface is unfiltered again");
}

/// A file `run` cannot use stops it at once with exit code 2, attaching nothing.
#[test]
fn run_with_a_bad_file_exits_2_and_attaches_nothing() {
    if !require_root_or_skip("run_with_a_bad_file_exits_2_and_attaches_nothing") {
        return;
    }
    let lab = Lab::new();
    let guard = lab.guard();
    let config = run_config(&lab, "udp-turn", "\n[flows]\nudp_timeout = 0\n");
    let mut daemon = lab.daemon(&["run", "--config", &config]);
    assert_eq!(daemon.wait().code(), Some(2), "{}", daemon.log());
    let log = daemon.log();
    assert!(log.contains("run.toml:9: [flows] udp_timeout = 0"), "{log}");
    assert_eq!(log.lines().count(), 1, "{log}");
    assert!(!guard.is_attached());
}

/// Issue 10: `gotofw run` watches its interfaces through link events. The WAN interface deleted:
/// it logs so and its metrics say it is not filtering; re-created (a NIC plugged back in, a PPP
/// link dialled again: a new interface with the same name), the filter is attached anew within
/// a second, blocked traffic is blocked again and the metrics say 1.
#[test]
fn issue10_run_reattaches_within_a_second_when_its_interface_comes_back() {
    if !require_root_or_skip("issue10_run_reattaches_within_a_second_when_its_interface_comes_back")
    {
        return;
    }
    let lab = Lab::with_prefix("glv");
    let guard = lab.guard();
    let config = run_config(&lab, "udp-turn", "");
    let mut daemon = lab.daemon(&["run", "--config", &config]);
    daemon.wait_for_log("running: udp-turn");
    assert!(!lab.udp(UDP_OUTSIDE), "not filtering at start");
    let filtering =
        || as_count(scrape(lab.gw()).one("gotofw_filtering", &[("interface", lab.wan())]));
    assert_eq!(filtering(), 1);

    lab.net.delete_wan().unwrap();
    daemon.wait_for_log("interface gone");
    assert_eq!(filtering(), 0, "metrics of a gone interface");
    assert!(guard.is_attached());

    let start = Instant::now();
    lab.net.recreate_wan().unwrap();
    let filtering_again = || {
        let out = lab.gotofw.run(lab.gw(), &["status", lab.wan(), "--json"]);
        let v: Value = serde_json::from_slice(&out.stdout).ok()?;
        (v["interfaces"][0]["state"] == "filtering").then_some(())
    };
    // Bounded: DAEMON_WAIT, then the assertion below says how long it took.
    while filtering_again().is_none() && start.elapsed() < DAEMON_WAIT {
        thread::sleep(Duration::from_millis(20));
    }
    let took = start.elapsed();
    assert!(
        took < Duration::from_secs(1),
        "filtering again after {took:?}; the log:\n{}",
        daemon.log()
    );
    daemon.wait_for_log("attached anew");
    assert!(
        !lab.udp(UDP_OUTSIDE),
        "blocked traffic passes the re-created interface"
    );
    assert!(lab.udp(UDP_TURN), "allowed traffic is blocked");
    assert_eq!(filtering(), 1);

    daemon.signal(libc::SIGTERM);
    assert!(daemon.wait().success(), "{}", daemon.log());
}

/// Issue 10: a link of a running service's filter severed with `bpftool link detach` (which
/// sends no link event) is found by the service's sweep and attached anew: blocked traffic is
/// blocked again, and the metrics say filtering.
#[test]
fn issue10_run_repairs_a_severed_link() {
    if !require_root_or_skip("issue10_run_repairs_a_severed_link") {
        return;
    }
    let lab = Lab::with_prefix("glv");
    let guard = lab.guard();
    let config = run_config(&lab, "udp-turn", "");
    let mut daemon = lab.daemon(&["run", "--config", &config]);
    daemon.wait_for_log("running: udp-turn");
    assert!(!lab.udp(UDP_OUTSIDE), "not filtering at start");
    for pin in ["link", "tc_link"] {
        let path = guard.pin_dir().join(pin);
        let shown = Command::new("bpftool")
            .args(["-j", "link", "show", "pinned"])
            .arg(&path)
            .output()
            .expect("run bpftool (installed by `cargo xtask setup`)");
        let id = serde_json::from_slice::<Value>(&shown.stdout)
            .ok()
            .and_then(|v| v["id"].as_u64())
            .unwrap_or_else(|| panic!("bpftool link show pinned {}: {shown:?}", path.display()));
        let detached = Command::new("bpftool")
            .args(["link", "detach", "id", &id.to_string()])
            .output()
            .expect("run bpftool");
        assert!(detached.status.success(), "{detached:?}");
    }
    let start = Instant::now();
    daemon.wait_for_log("attached anew");
    let took = start.elapsed();
    assert!(
        took < DAEMON_WAIT,
        "repaired after {took:?}; the log:\n{}",
        daemon.log()
    );
    assert!(
        !lab.udp(UDP_OUTSIDE),
        "blocked traffic passes after the repair; the log:\n{}",
        daemon.log()
    );
    assert!(lab.udp(UDP_TURN), "allowed traffic is blocked");
    let filtering = as_count(scrape(lab.gw()).one("gotofw_filtering", &[("interface", lab.wan())]));
    assert_eq!(filtering, 1);
    eprintln!("severed links repaired {took:?} after the detach");
    daemon.signal(libc::SIGTERM);
    assert!(daemon.wait().success(), "{}", daemon.log());
}

/// Issue 10: `gotofw metrics IFACE` for an interface without a filter serves
/// `gotofw_filtering 0` (a service scraping it sees the gap) instead of refusing to start.
#[test]
fn issue10_metrics_of_an_interface_without_a_filter_serve_filtering_0() {
    if !require_root_or_skip("issue10_metrics_of_an_interface_without_a_filter_serve_filtering_0") {
        return;
    }
    let lab = Lab::with_prefix("glv");
    let _guard = lab.guard();
    let mut daemon = lab.daemon(&["metrics", "--listen", METRICS, lab.wan()]);
    daemon.wait_for_log("serving metrics");
    let scraped = scrape(lab.gw());
    let wan = [("interface", lab.wan())];
    assert_eq!(as_count(scraped.one("gotofw_filtering", &wan)), 0);
    assert_eq!(as_count(scraped.one("gotofw_filter_attached", &wan)), 0);
    lab.gotofw.run_ok(
        lab.gw(),
        &["attach", lab.wan(), "--scenario", "tcp-443", "--stateless"],
    );
    assert_eq!(as_count(scrape(lab.gw()).one("gotofw_filtering", &wan)), 1);
    daemon.signal(libc::SIGTERM);
    assert!(daemon.wait().success(), "{}", daemon.log());
}
