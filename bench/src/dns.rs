//! Item 7: what domain rules (issue 13) cost. The XDP cost of a DNS answer learned from (1, 8
//! and 16 records), that other packets pay nothing measurable for domain rules being in the rule
//! set (a TCP 443 reply and a non-DNS UDP reply, with and without domain rules), and the egress
//! cost of a domain rule's lookup (a TCP 443 SYN to a learned address, against a rule set whose
//! TCP 443 rule admits any address).
//!
//! An answer teaches once: the first run consumes its query, and the runs after it are refused
//! as unsolicited. So an answer cannot be timed with a large repeat. It is timed one run a
//! `BPF_PROG_TEST_RUN` call (repeat 1: the kernel's own clock around that one run, tail calls
//! included), its query put back into the query map from user space before each call, over
//! many calls; a run's figure is the median of its calls. The same method times a TCP 443 reply
//! of a live flow, so the difference between the two is what the learning adds over a packet
//! that is only classified (repeat 1 carries a fixed overhead of the clock reads, which the
//! difference removes). The other packets are timed with the large repeat of item 1.

use std::net::{IpAddr, Ipv4Addr};

use anyhow::{Context, Result, anyhow};
use aya::{
    maps::HashMap,
    programs::{SchedClassifier, TestRun, TestRunOptions, Xdp},
};
use filter_common::{
    Direction,
    learn::{QueryKey, QueryValue},
};
use filter_user::frame;
use gotofw_tests::harness::{
    Framing,
    dns::{DnsHarness, coarse_now},
};
use serde::Serialize;

use crate::{Settings, cost, stats::Sample};

const CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
const RESOLVER: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 53));
const NTP: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 123));

/// The learned address answers give (record `i` of an answer: 203.0.113.`i`).
fn addr(i: u8) -> Ipv4Addr {
    Ipv4Addr::new(203, 0, 113, i)
}

/// The query (`answer == false`) or answer for `www.goto.com` A, with `records` A records
/// owned by a pointer to the question.
fn message(answer: bool, records: u8) -> Vec<u8> {
    let mut m = vec![0x12, 0x34];
    m.extend(if answer { [0x81, 0x80] } else { [0x01, 0x00] });
    m.extend([0, 1, 0, if answer { records } else { 0 }, 0, 0, 0, 0]);
    m.extend(b"\x03www\x04goto\x03com\x00\x00\x01\x00\x01");
    if answer {
        for i in 1..=records {
            m.extend([0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0x0e, 0x10, 0, 4]);
            m.extend(addr(i).octets());
        }
    }
    m
}

fn udp(src: IpAddr, sport: u16, dst: IpAddr, dport: u16, payload: &[u8]) -> Vec<u8> {
    frame::ip_frame(
        src,
        dst,
        filter_common::ipproto::UDP,
        &frame::udp(sport, dport, payload),
    )
}

fn tcp(src: IpAddr, sport: u16, dst: IpAddr, dport: u16, flags: u8) -> Vec<u8> {
    let mut l4 = frame::tcp(sport, dport, &[]);
    l4[13] = flags;
    frame::ip_frame(src, dst, filter_common::ipproto::TCP, &l4)
}

/// One row of the answer table.
#[derive(Clone, Debug, Serialize)]
pub struct AnswerRow {
    /// A records in the answer.
    pub records: u8,
    /// ns per answer learned from (repeat 1, query re-armed), per run the median of its calls.
    pub answer_ns: Sample,
    /// The same answer once its query is consumed (refused as unsolicited), large repeat.
    pub refused_ns: Sample,
    /// What learning adds: `answer_ns` less the TCP 443 reply timed the same way, per run.
    pub learning_ns: Sample,
    /// The same answer timed the same way with its query re-inserted under another question
    /// (found, taken, refused as unsolicited before the trie and the records): what the method
    /// and the query's lookup and removal cost, without the learning itself.
    pub rearmed_refused_ns: Sample,
}

/// One row of the other-packets table: a packet class with and without domain rules.
#[derive(Clone, Debug, Serialize)]
pub struct OtherRow {
    /// The packet.
    pub class: &'static str,
    /// The program it runs through.
    pub hook: &'static str,
    /// ns per packet, the rule set with domain rules (large repeat).
    pub with_domain_rules: Sample,
    /// ns per packet, the same rule set with its TCP 443 rule to any address.
    pub without: Sample,
}

/// Item 7.
#[derive(Clone, Debug, Serialize)]
pub struct DnsCost {
    /// Calls of repeat 1 per run (answers, and the TCP 443 reply they are compared with).
    pub calls: usize,
    /// The TCP 443 reply of a live flow, repeat 1, per run the median of its calls.
    pub reply_repeat1_ns: Sample,
    /// Answers learned from.
    pub answers: Vec<AnswerRow>,
    /// Other packets.
    pub others: Vec<OtherRow>,
}

fn xdp(h: &DnsHarness) -> Result<&Xdp> {
    Ok(h.ebpf()
        .program("gotofw_ingress")
        .ok_or_else(|| anyhow!("no XDP program"))?
        .try_into()?)
}

fn tc(h: &DnsHarness) -> Result<&SchedClassifier> {
    Ok(h.ebpf()
        .program("gotofw_egress")
        .ok_or_else(|| anyhow!("no egress program"))?
        .try_into()?)
}

/// The median ns of `calls` runs of `frame` at repeat 1, `before` run ahead of each call.
fn repeat1(
    h: &mut DnsHarness,
    frame: &[u8],
    calls: usize,
    mut before: impl FnMut(&mut DnsHarness) -> Result<()>,
) -> Result<f64> {
    let mut ns = Vec::with_capacity(calls);
    for _ in 0..calls {
        before(h)?;
        let r = xdp(h)?
            .test_run(TestRunOptions {
                data_in: Some(frame),
                repeat: 1,
                ..TestRunOptions::new()
            })
            .context("BPF_PROG_TEST_RUN")?;
        if r.return_value != 2 {
            return Err(anyhow!("the answer was not passed ({})", r.return_value));
        }
        ns.push(r.duration.as_secs_f64() * 1e9);
    }
    Ok(Sample::of(ns).median)
}

/// The one query the egress program recorded.
fn the_query(h: &DnsHarness) -> Result<(QueryKey, QueryValue)> {
    let map: HashMap<_, QueryKey, QueryValue> =
        HashMap::try_from(h.ebpf().map("QUERIES").context("QUERIES")?)?;
    let all: Vec<_> = map.iter().collect::<Result<_, _>>()?;
    match all[..] {
        [one] => Ok(one),
        _ => Err(anyhow!("{} queries recorded (want 1)", all.len())),
    }
}

/// Puts the query back, sent now.
fn rearm(h: &mut DnsHarness, key: &QueryKey, value: &QueryValue) -> Result<()> {
    let mut map: HashMap<_, QueryKey, QueryValue> =
        HashMap::try_from(h.ebpf_mut().map_mut("QUERIES").context("QUERIES")?)?;
    let value = QueryValue {
        sent_ns: coarse_now(),
        ..*value
    };
    map.insert(key, value, 0).context("re-arming the query")?;
    Ok(())
}

/// Opens the flows the other packets belong to: the DNS flow (a query), a TCP 443 flow to a
/// learned address (with domain rules, after an answer taught it), an NTP flow.
fn open_flows(h: &mut DnsHarness, domain_rules: bool) {
    h.step(
        "query",
        Direction::Egress,
        &udp(CLIENT, 50_000, RESOLVER, 53, &message(false, 0)),
    );
    if domain_rules {
        let (_, learned) = h.step(
            "answer",
            Direction::Ingress,
            &udp(RESOLVER, 53, CLIENT, 50_000, &message(true, 1)),
        );
        assert_eq!(learned, Some(Ok(1)), "the answer teaches its address");
    }
    let syn = tcp(CLIENT, 40_000, IpAddr::V4(addr(1)), 443, 0x02);
    let (v, _) = h.step("syn", Direction::Egress, &syn);
    assert_eq!(v.0, "allow", "the SYN to the learned address leaves");
    h.step(
        "ntp",
        Direction::Egress,
        &udp(CLIENT, 40_123, NTP, 123, b"ntp-query"),
    );
}

/// Measures item 7.
pub fn dns_cost(settings: &Settings) -> Result<DnsCost> {
    let calls = if settings.quick { 200 } else { 5_000 };
    let repeat = settings.repeat;
    let mut with = DnsHarness::new("bench, domain rules", true, Framing::Ethernet, |_| {});
    let mut without = DnsHarness::new("bench, no domain rules", false, Framing::Ethernet, |_| {});
    open_flows(&mut with, true);
    open_flows(&mut without, false);
    let reply = tcp(IpAddr::V4(addr(1)), 443, CLIENT, 40_000, 0x12);
    let ntp_reply = udp(NTP, 123, CLIENT, 40_123, b"ntp-reply");
    let syn = tcp(CLIENT, 40_000, IpAddr::V4(addr(1)), 443, 0x10);
    let mut reply_runs = Vec::new();
    for _ in 0..settings.runs {
        reply_runs.push(repeat1(&mut with, &reply, calls, |_| Ok(()))?);
    }
    let reply_repeat1_ns = Sample::of(reply_runs);
    let mut answers = Vec::new();
    for records in [1u8, 8, 16] {
        let frame = udp(RESOLVER, 53, CLIENT, 50_000, &message(true, records));
        // The kernel alone from here: the host's twin has not seen the timed runs.
        let query = udp(CLIENT, 50_000, RESOLVER, 53, &message(false, 0));
        with.kernel_run(Direction::Egress, &query)
            .map_err(|e| anyhow!("the query: {e}"))?;
        let (key, value) = the_query(&with)?;
        let (mut answer, mut refused, mut rearmed) = (Vec::new(), Vec::new(), Vec::new());
        let wrong = QueryValue {
            question: value.question ^ 1,
            ..value
        };
        for _ in 0..settings.runs {
            answer.push(repeat1(&mut with, &frame, calls, |h| {
                rearm(h, &key, &value)
            })?);
            rearmed.push(repeat1(&mut with, &frame, calls, |h| {
                rearm(h, &key, &wrong)
            })?);
            refused.push(cost::xdp_cost(xdp(&with)?, &frame, repeat)?.0);
        }
        let answer_ns = Sample::of(answer);
        let learning_ns = Sample::of(
            answer_ns
                .runs
                .iter()
                .zip(&reply_repeat1_ns.runs)
                .map(|(a, r)| a - r)
                .collect(),
        );
        answers.push(AnswerRow {
            records,
            answer_ns,
            refused_ns: Sample::of(refused),
            learning_ns,
            rearmed_refused_ns: Sample::of(rearmed),
        });
    }
    let mut others = Vec::new();
    for (class, hook, frame) in [
        ("TCP 443 reply of a live flow", "XDP", &reply),
        ("UDP reply (NTP) of a live flow", "XDP", &ntp_reply),
        (
            "TCP 443 to a learned address (live flow)",
            "TC egress",
            &syn,
        ),
    ] {
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for _ in 0..settings.runs {
            for (h, out) in [(&with, &mut a), (&without, &mut b)] {
                let ns = if hook == "XDP" {
                    cost::xdp_cost(xdp(h)?, frame, repeat)?.0
                } else {
                    cost::tc_cost(tc(h)?, frame, repeat)?.0
                };
                out.push(ns);
            }
        }
        others.push(OtherRow {
            class,
            hook,
            with_domain_rules: Sample::of(a),
            without: Sample::of(b),
        });
    }
    Ok(DnsCost {
        calls,
        reply_repeat1_ns,
        answers,
        others,
    })
}

/// The report's section for item 7.
pub fn markdown(d: &DnsCost, repeat: u32) -> String {
    use std::fmt::Write as _;
    let mut md = String::new();
    let _ = writeln!(
        md,
        "## 7. Domain rules\n\nAn answer teaches once (its query is consumed), so it is timed \
         one run a BPF_PROG_TEST_RUN call, its query re-inserted from user space before each \
         of {} calls a run (median per run); a TCP 443 reply of a live flow timed the same way \
         ({} ns) is subtracted to give what learning adds. Other packets: {repeat} repetitions \
         a call. Median (min-max) over runs, ns.\n",
        d.calls,
        d.reply_repeat1_ns.show(0)
    );
    let _ = writeln!(
        md,
        "| A records | answer learned from (repeat 1) | learning adds | re-armed under another question (repeat 1) | answer refused (unsolicited) |\n|---|---|---|---|---|"
    );
    for r in &d.answers {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} |",
            r.records,
            r.answer_ns.show(0),
            r.learning_ns.show(0),
            r.rearmed_refused_ns.show(0),
            r.refused_ns.show(1)
        );
    }
    let _ = writeln!(
        md,
        "\n| packet | hook | with domain rules | without |\n|---|---|---|---|"
    );
    for r in &d.others {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} |",
            r.class,
            r.hook,
            r.with_domain_rules.show(1),
            r.without.show(1)
        );
    }
    md
}
