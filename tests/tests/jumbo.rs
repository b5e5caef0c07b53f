//! Jumbo frames: the frags-aware XDP program attaches natively to a veth WAN at MTU 9000, real
//! TCP moves through it (allowed traffic passes, blocked ports are dropped and counted), and
//! where a driver refuses native XDP, `auto` falls back to generic saying why while an explicit
//! `--xdp-mode native` fails in one line naming the interface and the fix.

use std::{
    io::{Read, Write},
    net::{SocketAddr, SocketAddrV4, TcpStream, UdpSocket},
    thread,
    time::{Duration, Instant},
};

use gotofw_tests::{
    Attached, GW_ADDR, Gotofw, Netns, OUTSIDE, WanLab, counter_in, exit_code, expect_success,
    require_root_or_skip, tcp_echo_server, tcp_probe, unique_name,
};

/// The jumbo MTU, on both ends of the WAN veth.
const MTU: &str = "9000";
/// What the TCP transfer sends and gets echoed back.
const TRANSFER: usize = 1 << 20;
/// Bound on the transfer (and each read or write in it).
const TRANSFER_TIMEOUT: Duration = Duration::from_secs(20);
/// Blocked jumbo datagrams sent at the gateway per attach.
const BLOCKED_DATAGRAMS: usize = 20;
/// Their payload: an IPv4 packet of 8028 bytes, three test_run buffers' worth.
const BLOCKED_PAYLOAD: usize = 8000;

/// Sends [`TRANSFER`] bytes from the gateway to the echo server at `server` and reads them back
/// (the echo crossing the gateway's XDP program); returns the seconds it took.
fn echo_transfer(gw: &Netns, server: SocketAddr) -> f64 {
    let mut stream = gw
        .run(|| TcpStream::connect_timeout(&server, TRANSFER_TIMEOUT))
        .unwrap_or_else(|e| panic!("connecting to {server}: {e}"));
    stream.set_read_timeout(Some(TRANSFER_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(TRANSFER_TIMEOUT)).unwrap();
    let data: Vec<u8> = (0..TRANSFER).map(|i| (i % 251) as u8).collect();
    let start = Instant::now();
    let mut writer = stream.try_clone().unwrap();
    let sent = data.clone();
    let echoed = thread::scope(|scope| {
        let send = scope.spawn(move || writer.write_all(&sent));
        let mut got = vec![0u8; TRANSFER];
        let read = stream.read_exact(&mut got);
        send.join().unwrap().expect("sending the transfer");
        read.map(|()| got)
    })
    .unwrap_or_else(|e| panic!("reading the echo from {server}: {e}"));
    let secs = start.elapsed().as_secs_f64();
    assert!(
        echoed == data,
        "the echo from {server} differs from what was sent"
    );
    secs
}

/// Sends [`BLOCKED_DATAGRAMS`] jumbo UDP datagrams from port 9 of [`OUTSIDE`] to the gateway.
fn send_blocked_jumbo(inet: &Netns) {
    let src = SocketAddr::V4(SocketAddrV4::new(OUTSIDE, 9));
    let dst = SocketAddr::V4(SocketAddrV4::new(GW_ADDR, 40_009));
    inet.run(|| {
        let socket = UdpSocket::bind(src).expect("binding UDP port 9");
        for _ in 0..BLOCKED_DATAGRAMS {
            socket
                .send_to(&[0x5a; BLOCKED_PAYLOAD], dst)
                .expect("sending a jumbo datagram");
        }
    });
}

#[test]
fn native_attach_at_mtu_9000_moves_tcp_and_drops_blocked_jumbo_frames() {
    if !require_root_or_skip("native_attach_at_mtu_9000_moves_tcp_and_drops_blocked_jumbo_frames") {
        return;
    }
    let lab = WanLab::with_prefix("hf").expect("building the lab");
    for (ns, iface) in [(lab.gw(), lab.wan()), (lab.inet(), lab.isp())] {
        ns.ip(["link", "set", iface, "mtu", MTU])
            .expect("setting MTU 9000");
    }
    let server = SocketAddr::V4(SocketAddrV4::new(OUTSIDE, 443));
    let _https = tcp_echo_server(lab.inet(), server).expect("echo server on 443");
    let blocked_tcp = SocketAddr::V4(SocketAddrV4::new(OUTSIDE, 80));
    let _http = tcp_echo_server(lab.inet(), blocked_tcp).expect("echo server on 80");
    // Without a filter, port 80 answers: its failure below is the filter's.
    assert!(
        tcp_probe(lab.gw(), blocked_tcp, Duration::from_secs(2)),
        "TCP 80 without a filter"
    );
    let gotofw = Gotofw::default();
    for mode in ["native", "auto"] {
        let attached = Attached::new(gotofw.clone(), lab.gw(), lab.wan());
        let out = gotofw.run(
            lab.gw(),
            &[
                "attach",
                lab.wan(),
                "--scenario",
                "udp-turn",
                "--xdp-mode",
                mode,
            ],
        );
        let report = expect_success(&out, &format!("attach --xdp-mode {mode} at MTU 9000"));
        assert!(report.contains("xdp native"), "--xdp-mode {mode}: {report}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("generic"), "--xdp-mode {mode}: {stderr}");
        let status = attached.status_json();
        assert_eq!(status["interfaces"][0]["xdp_mode"], "native", "{status}");

        let secs = echo_transfer(lab.gw(), server);
        #[allow(clippy::cast_precision_loss)]
        let gbit = (2 * TRANSFER * 8) as f64 / secs / 1e9;
        eprintln!(
            "--xdp-mode {mode}, MTU {MTU}: 1 MiB echoed through TCP 443 in {:.1} ms ({gbit:.2} Gbit/s both ways)",
            secs * 1e3
        );
        assert!(
            !tcp_probe(lab.gw(), blocked_tcp, Duration::from_millis(500)),
            "--xdp-mode {mode}: TCP 80 answered through the filter"
        );
        let before = counter_in(&attached.status_json(), "default-block", "ingress");
        send_blocked_jumbo(lab.inet());
        let after = counter_in(&attached.status_json(), "default-block", "ingress");
        let (packets, bytes) = (after.0 - before.0, after.1 - before.1);
        assert!(
            packets >= BLOCKED_DATAGRAMS as u64,
            "--xdp-mode {mode}: {packets} jumbo datagrams to UDP port 40009 blocked (want {BLOCKED_DATAGRAMS})"
        );
        assert!(
            bytes >= (BLOCKED_DATAGRAMS * BLOCKED_PAYLOAD) as u64,
            "--xdp-mode {mode}: blocked bytes {bytes} (the whole jumbo frames count)"
        );
        let https = counter_in(&attached.status_json(), "https", "ingress");
        assert!(
            https.1 >= TRANSFER as u64,
            "--xdp-mode {mode}: https counted {https:?}"
        );
        expect_success(&attached.detach(), "detach");
    }
}

#[test]
fn auto_falls_back_to_generic_saying_why_and_native_fails_in_one_line() {
    if !require_root_or_skip("auto_falls_back_to_generic_saying_why_and_native_fails_in_one_line") {
        return;
    }
    let ns = Netns::new("hfbr").expect("namespace");
    // A bridge: a device whose driver has no native XDP (the namespace's removal deletes it).
    let bridge = unique_name("hfbr");
    ns.ip(["link", "add", &bridge, "type", "bridge"])
        .expect("bridge");
    ns.ip(["link", "set", &bridge, "up"]).expect("bridge up");
    let gotofw = Gotofw::default();
    let attached = Attached::new(gotofw.clone(), &ns, &bridge);

    let native = gotofw.run(
        &ns,
        &[
            "attach",
            &bridge,
            "--scenario",
            "udp-turn",
            "--xdp-mode",
            "native",
        ],
    );
    let stderr = String::from_utf8_lossy(&native.stderr);
    assert_eq!(exit_code(&native), Some(1), "native on a bridge: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(
        stderr.contains(&bridge)
            && stderr.contains("native XDP")
            && stderr.contains("--xdp-mode generic"),
        "native on a bridge names the interface and the fix: {stderr}"
    );
    assert!(!attached.is_attached(), "a refused attach pinned something");

    let auto = gotofw.run(&ns, &["attach", &bridge, "--scenario", "udp-turn"]);
    let report = expect_success(&auto, "auto on a bridge");
    assert!(report.contains("xdp generic"), "{report}");
    let stderr = String::from_utf8_lossy(&auto.stderr);
    let note = stderr
        .lines()
        .find(|l| l.starts_with("gotofw: note:") && l.contains("generic"))
        .unwrap_or_else(|| panic!("auto says nothing of the fallback: {stderr:?}"));
    assert!(
        note.contains(&bridge) && note.contains("does not support native XDP"),
        "the note says why: {note}"
    );
    assert_eq!(
        attached.status_json()["interfaces"][0]["xdp_mode"],
        "generic"
    );
}
