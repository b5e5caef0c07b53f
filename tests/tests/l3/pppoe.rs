//! PPPoE through a real veth: frames made by gotofw's frame builder, put on the link with a
//! packet socket at one end, and a packet socket at the other end sees which came through. No
//! PPPoE module here, so no PPPoE session of the kernel's: the frames are what a PPPoE client's
//! Ethernet carries. gotofw attaches to the gateway's end (`wan`) in native and generic XDP
//! mode; frames the gateway sends go through its TC egress program on their way out.

use std::{
    net::{IpAddr, SocketAddr},
    sync::Mutex,
    time::{Duration, Instant},
};

use filter_common::{ethertype, ipproto, ppp};
use filter_user::frame;
use gotofw_tests::{
    Attached, GW_ADDR, Gotofw, Netns, OUTSIDE, PacketSocket, TURN_A, VethPair, expect_success,
    unique_name, veth_pair,
};
use serde_json::Value;

use super::{DAEMON_WAIT, PREFIX, v4};

/// The PPPoE session of the frames.
const SESSION: u16 = 0x2a17;
/// How long a capture waits after the last frame.
const QUIET: Duration = Duration::from_millis(300);
/// Most time a capture takes.
const CAPTURE: Duration = Duration::from_secs(3);

/// The gateway's UDP port of the allowed flow.
const FLOW_PORT: u16 = 40_001;

/// A gateway namespace whose `wan` faces an internet namespace's `isp` over a veth, no
/// addresses, IPv6 off: the only frames on the link are the test's.
pub struct PppoeLab {
    veth: Mutex<Option<VethPair>>,
    gw: Netns,
    inet: Netns,
    wan: String,
    isp: String,
    pub gotofw: Gotofw,
}

impl PppoeLab {
    pub fn new() -> Self {
        let gw = Netns::new(PREFIX).unwrap();
        let inet = Netns::new(PREFIX).unwrap();
        for ns in [&gw, &inet] {
            for key in ["all", "default"] {
                ns.set_sysctl(&format!("net.ipv6.conf.{key}.disable_ipv6"), "1")
                    .unwrap();
            }
        }
        let (wan, isp) = (unique_name(PREFIX), unique_name(PREFIX));
        let veth = veth_pair(&gw, &wan, &inet, &isp).unwrap();
        wait_up(&gw, &wan);
        wait_up(&inet, &isp);
        Self {
            veth: Mutex::new(Some(veth)),
            gw,
            inet,
            wan,
            isp,
            gotofw: Gotofw::default(),
        }
    }

    pub fn gw(&self) -> &Netns {
        &self.gw
    }

    pub fn wan(&self) -> &str {
        &self.wan
    }

    pub fn guard(&self) -> Attached<'_> {
        Attached::new(self.gotofw.clone(), &self.gw, &self.wan)
    }

    pub fn status(&self) -> Value {
        self.gotofw.status_json(&self.gw, &self.wan)
    }

    /// Deletes the veth (both ends), as a DSL modem's Ethernet unplugged.
    pub fn delete_link(&self) {
        drop(self.veth.lock().unwrap().take());
        assert!(self.gw.ip(["link", "show", &self.wan]).is_err());
    }

    /// Creates the veth anew with the same names (new indexes).
    pub fn create_link(&self) {
        let mut veth = self.veth.lock().unwrap();
        assert!(veth.is_none(), "delete the link first");
        *veth = Some(veth_pair(&self.gw, &self.wan, &self.inet, &self.isp).unwrap());
        wait_up(&self.gw, &self.wan);
        wait_up(&self.inet, &self.isp);
    }

    /// Sends `out` from the gateway and `inbound` from the internet side, and returns which
    /// arrived at the other end: `(outbound that arrived, inbound that arrived)`, by name.
    pub fn exchange(
        &self,
        out: &[Frame],
        inbound: &[Frame],
    ) -> (Vec<&'static str>, Vec<&'static str>) {
        let at_wan = PacketSocket::bind(&self.gw, &self.wan).unwrap();
        let at_isp = PacketSocket::bind(&self.inet, &self.isp).unwrap();
        for f in out {
            // A frame the TC egress program drops fails to send; the capture says the rest.
            at_wan.send(&f.bytes).unwrap();
        }
        let seen_out = at_isp.received(QUIET, CAPTURE);
        for f in inbound {
            assert!(at_isp.send(&f.bytes).unwrap(), "{}: not sent", f.name);
        }
        let seen_in = at_wan.received(QUIET, CAPTURE);
        (arrived(out, &seen_out), arrived(inbound, &seen_in))
    }
}

/// Waits (at most five seconds) until `iface` in `ns` is operationally up: until then its
/// queueing discipline drops what a packet socket sends.
fn wait_up(ns: &Netns, iface: &str) {
    let start = Instant::now();
    let up = || {
        let state = ns
            .ip(["-j", "link", "show", "dev", iface])
            .unwrap_or_default();
        state.contains("\"operstate\":\"UP\"")
    };
    while !up() {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{iface} did not come up"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A test frame: its name, bytes, and the bytes that find it in a capture (the kernel may take
/// a VLAN tag out of the frame it hands a packet socket).
pub struct Frame {
    pub name: &'static str,
    pub bytes: Vec<u8>,
    marker: Vec<u8>,
}

/// The names of `sent` whose marker is in one of `seen`.
fn arrived(sent: &[Frame], seen: &[Vec<u8>]) -> Vec<&'static str> {
    sent.iter()
        .filter(|f| {
            seen.iter()
                .any(|s| s.windows(f.marker.len()).any(|w| w == f.marker))
        })
        .map(|f| f.name)
        .collect()
}

/// A marker for frame `name` of run `run`: `gfwl3 RUN NAME`.
fn marker(run: &str, name: &str) -> Vec<u8> {
    format!("{PREFIX} {run} {name}").into_bytes()
}

/// UDP from `src` to `dst` in PPPoE session [`SESSION`] behind VLAN tags `tags`, its payload the
/// marker.
fn udp_frame(
    run: &str,
    name: &'static str,
    tags: &[(u16, u16)],
    src: SocketAddr,
    dst: SocketAddr,
) -> Frame {
    let marker = marker(run, name);
    let ip = frame::ip_packet(
        src.ip(),
        dst.ip(),
        ipproto::UDP,
        &frame::udp(src.port(), dst.port(), &marker),
    );
    Frame {
        name,
        bytes: frame::pppoe_ip(tags, SESSION, &ip),
        marker,
    }
}

/// An LCP Echo-Request in the session, the marker as its data.
fn lcp_echo(run: &str, name: &'static str) -> Frame {
    let marker = marker(run, name);
    let mut lcp = vec![0x09, 0x01];
    lcp.extend_from_slice(&u16::try_from(8 + marker.len()).unwrap().to_be_bytes());
    lcp.extend_from_slice(&[0x5e, 0x1f, 0x0a, 0x77]);
    lcp.extend_from_slice(&marker);
    Frame {
        name,
        bytes: frame::ethernet(
            &[],
            ethertype::PPPOE_SESSION,
            &frame::pppoe_session(SESSION, ppp::LCP, &lcp),
        ),
        marker,
    }
}

/// An IPCP Configure-Request in the session (option 3, the address 0.0.0.0), the marker after
/// it.
fn ipcp_request(run: &str, name: &'static str) -> Frame {
    let marker = marker(run, name);
    let mut ipcp = vec![0x01, 0x01];
    ipcp.extend_from_slice(&u16::try_from(10 + marker.len()).unwrap().to_be_bytes());
    ipcp.extend_from_slice(&[0x03, 0x06, 0, 0, 0, 0]);
    ipcp.extend_from_slice(&marker);
    Frame {
        name,
        bytes: frame::ethernet(
            &[],
            ethertype::PPPOE_SESSION,
            &frame::pppoe_session(SESSION, ppp::IPCP, &ipcp),
        ),
        marker,
    }
}

/// A PADO (discovery offer) with an empty Service-Name tag and the marker as its AC-Name.
fn pado(run: &str, name: &'static str) -> Frame {
    let marker = marker(run, name);
    let mut tags = vec![0x01, 0x01, 0x00, 0x00, 0x01, 0x02];
    tags.extend_from_slice(&u16::try_from(marker.len()).unwrap().to_be_bytes());
    tags.extend_from_slice(&marker);
    Frame {
        name,
        bytes: frame::ethernet(
            &[],
            ethertype::PPPOE_DISCOVERY,
            &frame::pppoe_discovery(0x07, 0, &tags),
        ),
        marker,
    }
}

/// The frames of one exchange (`run` tells its markers apart from another's): outbound, then
/// inbound.
pub fn frames(run: &str) -> (Vec<Frame>, Vec<Frame>) {
    let gw = |port| SocketAddr::new(IpAddr::V4(GW_ADDR), port);
    let turn = v4(TURN_A, 3478);
    let out = vec![
        udp_frame(run, "out udp to TURN", &[], gw(FLOW_PORT), turn),
        udp_frame(
            run,
            "out udp outside",
            &[],
            gw(FLOW_PORT),
            v4(OUTSIDE, 3478),
        ),
        lcp_echo(run, "out LCP echo"),
        ipcp_request(run, "out IPCP request"),
    ];
    let mut lying = udp_frame(run, "in length lies", &[], turn, gw(FLOW_PORT));
    // The PPPoE length field (after 14 bytes of Ethernet, 4 of PPPoE) says 20 bytes more.
    let len = u16::from_be_bytes([lying.bytes[18], lying.bytes[19]]) + 20;
    lying.bytes[18..20].copy_from_slice(&len.to_be_bytes());
    // A session frame cut short: its header says the whole packet follows, the frame ends
    // inside the IP header. Its IP identification, in the bytes left, finds it.
    let mut ip = frame::Ipv4::new(TURN_A, GW_ADDR, ipproto::UDP);
    ip.id = 0x7e57;
    let whole = frame::pppoe_ip(
        &[],
        SESSION,
        &ip.build(&frame::udp(3478, FLOW_PORT, &marker(run, "cut"))),
    );
    let cut = Frame {
        name: "in cut short",
        bytes: whole[..14 + 8 + 12].to_vec(),
        marker: whole[14..14 + 8 + 12].to_vec(),
    };
    let inbound = vec![
        udp_frame(run, "in reply", &[], turn, gw(FLOW_PORT)),
        udp_frame(run, "in reply VLAN", &[(0x8100, 7)], turn, gw(FLOW_PORT)),
        udp_frame(run, "in unsolicited", &[], turn, gw(FLOW_PORT + 1)),
        pado(run, "in PADO"),
        lcp_echo(run, "in LCP echo"),
        lying,
        cut,
    ];
    (out, inbound)
}

/// Packets of `direction` in all counters of `action` (`allow`, `block`) in `status`.
pub fn total(status: &Value, action: &str, direction: &str) -> u64 {
    status["interfaces"][0]["counters"]
        .as_array()
        .unwrap_or_else(|| panic!("no counters: {status}"))
        .iter()
        .filter(|c| c["action"] == action && c["direction"] == direction)
        .map(|c| c["packets"].as_u64().unwrap_or(0))
        .sum()
}

/// Whether `flows` (of `gotofw flows --json`) has the flow the allowed outbound UDP made, with
/// `(out, in)` packets.
pub fn turn_flow(lab: &PppoeLab) -> Option<(u64, u64)> {
    let out = lab.gotofw.run(lab.gw(), &["flows", lab.wan(), "--json"]);
    let flows: Value = serde_json::from_str(&expect_success(&out, "flows --json")).unwrap();
    let remote = v4(TURN_A, 3478).to_string();
    let local = SocketAddr::new(IpAddr::V4(GW_ADDR), FLOW_PORT).to_string();
    flows["interfaces"][0]["flows"]
        .as_array()?
        .iter()
        .find(|f| f["remote"] == remote.as_str() && f["local"] == local.as_str())
        .map(|f| {
            assert_eq!(f["rule"], "turn-udp", "{f}");
            (
                f["packets_out"].as_u64().unwrap_or(0),
                f["packets_in"].as_u64().unwrap_or(0),
            )
        })
}

/// What an exchange of [`frames`] must show with `pppoe-control` on (`control`) or off.
fn expected(control: bool) -> (Vec<&'static str>, Vec<&'static str>) {
    let mut out = vec!["out udp to TURN"];
    let mut inbound = vec!["in reply", "in reply VLAN"];
    if control {
        out.extend(["out LCP echo", "out IPCP request"]);
        inbound.extend(["in PADO", "in LCP echo"]);
    }
    (out, inbound)
}

/// Attaches udp-turn (stateful) in XDP mode `xdp_mode`, with `pppoe-control` on or off, sends
/// the frames of [`frames`] both ways and checks which arrived against the counters and the flow
/// table.
fn pppoe_through_a_veth(xdp_mode: &str, control: bool) {
    let lab = PppoeLab::new();
    let run = format!("{xdp_mode}-{control}");
    let (out, inbound) = frames(&run);
    // Without a filter, every frame crosses.
    let (all_out, all_in) = lab.exchange(&out, &inbound);
    assert_eq!(all_out.len(), out.len(), "without a filter: {all_out:?}");
    assert_eq!(all_in.len(), inbound.len(), "without a filter: {all_in:?}");

    let guard = lab.guard();
    let mut args = vec![
        "attach",
        lab.wan(),
        "--scenario",
        "udp-turn",
        "--xdp-mode",
        xdp_mode,
    ];
    if !control {
        args.extend(["--no-allow", "pppoe-control"]);
    }
    expect_success(&lab.gotofw.run(lab.gw(), &args), &args.join(" "));
    let before = lab.status();
    assert_eq!(before["interfaces"][0]["xdp_mode"], xdp_mode, "{before}");

    let (out, inbound) = frames(&format!("{run}-filtered"));
    let seen = lab.exchange(&out, &inbound);
    assert_eq!(
        seen,
        expected(control),
        "{xdp_mode}, pppoe-control {control}"
    );
    let after = lab.status();
    let count = |s: &Value, name: &str, direction: &str| {
        s["interfaces"][0]["counters"]
            .as_array()
            .and_then(|cs| {
                cs.iter()
                    .find(|c| c["name"] == name && c["direction"] == direction)
            })
            .map(|c| c["packets"].as_u64().unwrap_or(0))
    };
    let grew = |name: &str, direction: &str| {
        let get = |s| {
            count(s, name, direction)
                .unwrap_or_else(|| panic!("no {direction} counter {name}: {s}"))
        };
        get(&after) - get(&before)
    };
    let what = format!("{xdp_mode}, pppoe-control {control}: {after}");
    assert_eq!(grew("turn-udp", "egress"), 1, "{what}");
    assert_eq!(grew("turn-udp", "ingress"), 2, "{what}");
    assert_eq!(grew("malformed", "ingress"), 2, "{what}");
    assert_eq!(
        grew("non-ip", "ingress") + grew("non-ip", "egress"),
        0,
        "{what}"
    );
    if control {
        assert_eq!(
            (
                grew("pppoe-control", "ingress"),
                grew("pppoe-control", "egress")
            ),
            (2, 2),
            "{what}"
        );
    } else {
        // Switched off, the allowance has no counter: its frames are the rules' to judge.
        for direction in ["ingress", "egress"] {
            assert_eq!(count(&after, "pppoe-control", direction), None, "{what}");
        }
        assert_eq!(grew("default-block", "ingress"), 1 + 2, "{what}");
        assert_eq!(grew("default-block", "egress"), 1 + 2, "{what}");
    }
    let drops = |direction| total(&after, "block", direction) - total(&before, "block", direction);
    let passes = |direction| total(&after, "allow", direction) - total(&before, "allow", direction);
    // In: the unsolicited datagram and the two broken frames, and the control frames when
    // switched off. Out: the UDP outside the TURN networks, and the control frames when off.
    let off = u64::from(!control) * 2;
    assert_eq!(
        (drops("ingress"), drops("egress")),
        (3 + off, 1 + off),
        "{what}"
    );
    assert_eq!(
        (passes("ingress"), passes("egress")),
        (2 + 2 - off, 1 + 2 - off),
        "{what}"
    );
    // The flow the allowed UDP made at egress, from the inner packet, with both replies on it.
    assert_eq!(turn_flow(&lab), Some((1, 2)), "{what}");
    drop(guard);
}

#[test]
fn issue12_pppoe_through_a_veth_native_xdp() {
    if !gotofw_tests::require_root_or_skip("issue12_pppoe_through_a_veth_native_xdp") {
        return;
    }
    pppoe_through_a_veth("native", true);
}

#[test]
fn issue12_pppoe_through_a_veth_generic_xdp() {
    if !gotofw_tests::require_root_or_skip("issue12_pppoe_through_a_veth_generic_xdp") {
        return;
    }
    pppoe_through_a_veth("generic", true);
}

#[test]
fn issue12_pppoe_control_switched_off_through_a_veth() {
    if !gotofw_tests::require_root_or_skip("issue12_pppoe_control_switched_off_through_a_veth") {
        return;
    }
    pppoe_through_a_veth("native", false);
    pppoe_through_a_veth("generic", false);
}

/// Item 3 on a veth that carries PPPoE: `gotofw run` attaches anew when the link is re-created
/// (new indexes), and the new link's PPPoE frames are classified by their inner packets again.
#[test]
fn issue12_run_reattaches_a_recreated_veth_that_carries_pppoe() {
    if !gotofw_tests::require_root_or_skip(
        "issue12_run_reattaches_a_recreated_veth_that_carries_pppoe",
    ) {
        return;
    }
    let lab = PppoeLab::new();
    let guard = lab.guard();
    let (_dir, mut daemon) = super::start_run(&lab.gotofw, lab.gw(), lab.wan());
    let (out, inbound) = frames("run-before");
    assert_eq!(
        lab.exchange(&out, &inbound),
        expected(true),
        "before the re-dial"
    );
    let ifindex = lab.status()["interfaces"][0]["ifindex"].clone();

    lab.delete_link();
    assert!(
        daemon
            .wait_for_stderr("interface gone", DAEMON_WAIT)
            .is_some(),
        "the service did not see the link go"
    );
    let start = Instant::now();
    lab.create_link();
    let filtering = || {
        let out = lab.gotofw.run(lab.gw(), &["status", lab.wan(), "--json"]);
        let v: Value = serde_json::from_slice(&out.stdout).ok()?;
        (v["interfaces"][0]["state"] == "filtering").then_some(v)
    };
    let mut status = filtering();
    // Bounded: DAEMON_WAIT.
    while status.is_none() && start.elapsed() < DAEMON_WAIT {
        std::thread::sleep(Duration::from_millis(20));
        status = filtering();
    }
    let status = status.expect("not filtering again after the link came back");
    eprintln!("filtering again after {:?}", start.elapsed());
    assert_ne!(status["interfaces"][0]["ifindex"], ifindex, "{status}");
    assert!(
        daemon
            .wait_for_stderr("attached anew", DAEMON_WAIT)
            .is_some()
    );

    let before = lab.status();
    let (out, inbound) = frames("run-after");
    assert_eq!(
        lab.exchange(&out, &inbound),
        expected(true),
        "after the re-dial"
    );
    let after = lab.status();
    let drops = total(&after, "block", "ingress") - total(&before, "block", "ingress");
    assert_eq!(drops, 3, "{after}");
    super::stop_run(daemon);
    drop(guard);
}
