//! Kernel tests of the lab itself (root only): namespaces, veth links,
//! servers and probes, and that everything is gone afterwards.

use std::{
    fs,
    net::SocketAddr,
    panic::{self, AssertUnwindSafe},
    path::PathBuf,
    process::Command,
    thread,
    time::{Duration, Instant},
};

use crate::{
    Netns, addr_add, require_root_or_skip, tcp_echo_server, tcp_probe, udp_echo_server, udp_probe,
    udp_send_from, veth_pair,
};

const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// Long enough for an answer on a veth, short enough to keep negative probes cheap.
const SHORT_TIMEOUT: Duration = Duration::from_millis(300);

fn addr(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

/// Whether `ip netns list` shows `name`.
fn listed(name: &str) -> bool {
    let output = Command::new("ip").args(["netns", "list"]).output().unwrap();
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .any(|line| line.split_whitespace().next() == Some(name))
}

#[test]
fn veth_lab_carries_udp_and_tcp_and_cleans_up() {
    if !require_root_or_skip("veth_lab_carries_udp_and_tcp_and_cleans_up") {
        return;
    }
    let names;
    {
        let a = Netns::new("lab-a").unwrap();
        let b = Netns::new("lab-b").unwrap();
        names = [a.name().to_owned(), b.name().to_owned()];
        assert!(listed(a.name()) && listed(b.name()));
        let veth = veth_pair(&a, "veth-a", &b, "veth-b").unwrap();
        assert_eq!((veth.a(), veth.b()), ("veth-a", "veth-b"));
        addr_add(&a, "veth-a", "198.51.100.1/24").unwrap();
        addr_add(&b, "veth-b", "198.51.100.2/24").unwrap();

        let udp = udp_echo_server(&b, addr("198.51.100.2:3478")).unwrap();
        let tcp = tcp_echo_server(&b, addr("198.51.100.2:443")).unwrap();
        assert!(udp_probe(&a, None, udp.local_addr(), PROBE_TIMEOUT));
        assert!(udp_probe(
            &a,
            Some(addr("198.51.100.1:45000")),
            udp.local_addr(),
            PROBE_TIMEOUT
        ));
        assert!(tcp_probe(&a, tcp.local_addr(), PROBE_TIMEOUT));
        assert!(
            tcp_probe(&a, tcp.local_addr(), PROBE_TIMEOUT),
            "a second connection"
        );
        assert_eq!(tcp.served(), 2);

        // Negative controls: nothing listens there.
        assert!(!udp_probe(&a, None, addr("198.51.100.2:9"), SHORT_TIMEOUT));
        assert!(!tcp_probe(&a, addr("198.51.100.2:9"), SHORT_TIMEOUT));

        let before = udp.served();
        udp_send_from(&a, addr("198.51.100.1:5000"), udp.local_addr(), 3).unwrap();
        assert!(
            wait_until(|| udp.served() == before + 3),
            "served {}",
            udp.served()
        );
    }
    for name in &names {
        assert!(!listed(name), "{name} still listed");
        assert!(
            !PathBuf::from("/run/netns").join(name).exists(),
            "{name} still in /run/netns"
        );
    }
}

#[test]
fn run_enters_the_namespace_and_exec_sees_it() {
    if !require_root_or_skip("run_enters_the_namespace_and_exec_sees_it") {
        return;
    }
    let ns = Netns::new("lab-run").unwrap();
    let here = fs::read_link("/proc/thread-self/ns/net").unwrap();
    let inside = ns.run(|| fs::read_link("/proc/thread-self/ns/net").unwrap());
    assert_ne!(here, inside);
    assert_eq!(
        fs::read_link("/proc/thread-self/ns/net").unwrap(),
        here,
        "caller unchanged"
    );

    let output = ns.exec("ip", ["-o", "link", "show"]).unwrap();
    assert!(output.status.success());
    let links = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        links.lines().count(),
        1,
        "only lo in a new namespace: {links}"
    );
    assert!(
        links.contains("lo:") && links.contains("UP"),
        "lo is up: {links}"
    );

    ns.set_sysctl("net.ipv4.ip_forward", "1").unwrap();
    let forward = ns.run(|| fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap());
    assert_eq!(forward.trim(), "1");
}

#[test]
fn run_propagates_panics_and_drop_still_cleans_up() {
    if !require_root_or_skip("run_propagates_panics_and_drop_still_cleans_up") {
        return;
    }
    let mut name = String::new();
    let result = panic::catch_unwind(AssertUnwindSafe(|| {
        let ns = Netns::new("lab-pan").unwrap();
        name = ns.name().to_owned();
        ns.run(|| panic!("boom in the namespace"));
    }));
    let payload = result.unwrap_err();
    assert_eq!(
        payload.downcast_ref::<&str>(),
        Some(&"boom in the namespace")
    );
    assert!(
        !name.is_empty() && !listed(&name),
        "{name} survived the panic"
    );
}

#[test]
fn ip_errors_carry_stderr() {
    if !require_root_or_skip("ip_errors_carry_stderr") {
        return;
    }
    let ns = Netns::new("lab-err").unwrap();
    let err = ns
        .ip(["link", "set", "dev", "nosuchif", "up"])
        .unwrap_err()
        .to_string();
    assert!(err.contains("nosuchif") && err.contains("failed:"), "{err}");
    assert!(veth_pair(&ns, "a-name-far-too-long", &ns, "b").is_err());
}

/// Polls `done` for up to two seconds.
fn wait_until(done: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        thread::sleep(Duration::from_millis(20));
    }
    done()
}
