//! Domain rules' learning, kernel against host (issue 13): the egress program records a DNS
//! query (`BPF_PROG_TEST_RUN` of `gotofw_egress`, which tail-calls `gotofw_query_tc`), the
//! ingress program learns from its answer (`gotofw_ingress`, then `gotofw_learn_xdp` and
//! `gotofw_records_xdp`), and the host runs the same frames through the classifier and
//! `filter_common::learn` over `SoftTables`. After every frame both sides must agree on the
//! verdict and counter slot, on every learned address (sets, patterns, TTL, lifetime), on the
//! queries awaiting answers, the flows and every DNS statistic; and each case also says what
//! it wants learned. Honest answers (A and AAAA behind a CNAME chain, 1 to 17 records) and
//! hostile ones (pointer loops, pointers and labels past the end, question counts 0 and 2,
//! huge and zero TTLs, a question not asked, authority and additional records, a wrong id, a
//! server not named, no live flow, TC=1, fragments, bytes below 64 in labels, lookalike names,
//! the same answer twice), over IPv4 and IPv6, on an Ethernet and an L3 link; random answers
//! built by hickory with bytes overwritten; and egress enforcement of what was learned.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use filter_common::{Direction, learn::stat};
use filter_user::frame::{self, Ipv4};
use gotofw_tests::{
    harness::{
        Framing,
        dns::{self, DnsHarness, TTL_MAX, TTL_MIN},
    },
    require_root_or_skip,
};
use hickory_proto::{
    op::{Message, MessageType, OpCode, Query},
    rr::{
        Name, RData, Record, RecordType,
        rdata::{A, AAAA, CNAME},
    },
};
use proptest::{collection::vec, prelude::*, test_runner::TestRunner};

const CLIENT_PORT: u16 = 50_000;
const TYPE_A: u16 = 1;
const TYPE_AAAA: u16 = 28;

/// A name in wire format, as written (case kept).
fn wire(name: &str) -> Vec<u8> {
    let mut w = Vec::new();
    for label in name.split('.').filter(|l| !l.is_empty()) {
        w.push(u8::try_from(label.len()).unwrap());
        w.extend(label.bytes());
    }
    w.push(0);
    w
}

/// A DNS message: header (id, flags, section counts) and the sections' bytes.
fn message(id: u16, flags: u16, counts: [u16; 4], body: &[u8]) -> Vec<u8> {
    let mut m = Vec::new();
    m.extend(id.to_be_bytes());
    m.extend(flags.to_be_bytes());
    for c in counts {
        m.extend(c.to_be_bytes());
    }
    m.extend(body);
    m
}

/// A question section entry.
fn question(name: &str, qtype: u16) -> Vec<u8> {
    let mut q = wire(name);
    q.extend(qtype.to_be_bytes());
    q.extend(1u16.to_be_bytes());
    q
}

/// A resource record, owned by `owner` (wire bytes: a name or a pointer), class IN.
fn rr(owner: &[u8], rtype: u16, ttl: u32, rdata: &[u8]) -> Vec<u8> {
    let mut r = owner.to_vec();
    r.extend(rtype.to_be_bytes());
    r.extend(1u16.to_be_bytes());
    r.extend(ttl.to_be_bytes());
    r.extend(u16::try_from(rdata.len()).unwrap().to_be_bytes());
    r.extend(rdata);
    r
}

/// A pointer to the question name (offset 12), as resolvers own their answers.
const PTR_Q: [u8; 2] = [0xc0, 0x0c];

fn a(i: u8) -> Ipv4Addr {
    Ipv4Addr::new(203, 0, 113, i)
}

fn aaaa(i: u8) -> Ipv6Addr {
    Ipv6Addr::new(0x2001, 0xdb8, 0x443, 0, 0, 0, 0, u16::from(i))
}

fn rr_a(owner: &[u8], ttl: u32, i: u8) -> Vec<u8> {
    rr(owner, TYPE_A, ttl, &a(i).octets())
}

fn rr_aaaa(owner: &[u8], ttl: u32, i: u8) -> Vec<u8> {
    rr(owner, TYPE_AAAA, ttl, &aaaa(i).octets())
}

/// A standard query for `name`, recursion desired.
fn query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
    message(id, 0x0100, [1, 0, 0, 0], &question(name, qtype))
}

/// An answer (QR, RD, RA) for `name` with these answer records.
fn answer(id: u16, name: &str, qtype: u16, records: &[Vec<u8>]) -> Vec<u8> {
    let mut body = question(name, qtype);
    for r in records {
        body.extend(r);
    }
    message(
        id,
        0x8180,
        [1, u16::try_from(records.len()).unwrap(), 0, 0],
        &body,
    )
}

/// The ends of the flows: the client and the resolver, of a family.
#[derive(Clone, Copy)]
struct Ends {
    client: IpAddr,
    resolver: IpAddr,
}

const V4: Ends = Ends {
    client: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
    resolver: IpAddr::V4(Ipv4Addr::new(198, 51, 100, 53)),
};
const V6: Ends = Ends {
    client: IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)),
    resolver: IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x53)),
};

impl Ends {
    fn query_frame(self, dns: &[u8]) -> Vec<u8> {
        frame::ip_frame(
            self.client,
            self.resolver,
            filter_common::ipproto::UDP,
            &frame::udp(CLIENT_PORT, 53, dns),
        )
    }

    fn answer_frame(self, dns: &[u8]) -> Vec<u8> {
        self.answer_from(self.resolver, dns)
    }

    fn answer_from(self, from: IpAddr, dns: &[u8]) -> Vec<u8> {
        frame::ip_frame(
            from,
            self.client,
            filter_common::ipproto::UDP,
            &frame::udp(53, CLIENT_PORT, dns),
        )
    }

    fn syn_to(self, to: IpAddr, sport: u16) -> Vec<u8> {
        frame::ip_frame(
            self.client,
            to,
            filter_common::ipproto::TCP,
            &frame::tcp(sport, 443, &[]),
        )
    }
}

/// What a case wants learned: addresses with the sets (mask) they hold for and the clamped
/// lifetime in seconds.
type Want = Vec<(IpAddr, u32, u64)>;

fn clamp(ttl: u32) -> u64 {
    u64::from(ttl.clamp(TTL_MIN, TTL_MAX))
}

/// Checks the host's learned table against `want` (the kernel's was compared with it).
fn check_learned(h: &DnsHarness, case: &str, want: &Want) {
    let mut got: Vec<(IpAddr, u32, u64)> = h
        .host
        .learned
        .iter()
        .map(|(k, v)| {
            let addr = if k.family == 4 {
                IpAddr::V4(Ipv4Addr::new(k.addr[0], k.addr[1], k.addr[2], k.addr[3]))
            } else {
                IpAddr::V6(Ipv6Addr::from(k.addr))
            };
            let sets = filter_common::learn::learned_sets(v, v.learned_ns);
            let first = sets.trailing_zeros() as usize;
            let life = (v.expires_ns[first.min(7)] - v.learned_ns) / 1_000_000_000;
            (addr, sets, life)
        })
        .collect();
    got.sort_unstable();
    let mut want = want.clone();
    want.sort_unstable();
    assert_eq!(got, want, "[{}] {case}: learned", h.framing_name());
}

trait FramingName {
    fn framing_name(&self) -> &'static str;
}

impl FramingName for DnsHarness {
    fn framing_name(&self) -> &'static str {
        match self.framing() {
            Framing::Ip => "l3",
            _ => "ethernet",
        }
    }
}

/// One case: a fresh start, the query (when given) out through egress, the answer frame in
/// through ingress, then what it wants learned and the statistic it wants to move.
fn case(
    h: &mut DnsHarness,
    name: &str,
    query: Option<Vec<u8>>,
    answer: &[u8],
    want: &Want,
    moved: u32,
) {
    h.reset();
    if let Some(q) = query {
        let (v, _) = h.step(name, Direction::Egress, &q);
        assert_eq!(v.0, "allow", "{name}: the query leaves");
    }
    let before = h.host.dns_stats;
    h.step(name, Direction::Ingress, answer);
    check_learned(h, name, want);
    assert!(
        h.host.dns_stats[moved as usize] > before[moved as usize],
        "{name}: DNS statistic {moved} did not move: {:?} -> {:?}",
        before,
        h.host.dns_stats
    );
}

/// A CNAME chain then A records, as hickory (a real encoder, compressing names) writes it.
fn hickory_answer(id: u16, qname: &str, qtype: RecordType, records: &[(bool, u8, u32)]) -> Vec<u8> {
    let question = Name::from_ascii(qname).unwrap();
    let target = Name::from_ascii("edge.cdn.example.net.").unwrap();
    let mut msg = Message::new();
    msg.set_id(id);
    msg.set_message_type(MessageType::Response);
    msg.set_op_code(OpCode::Query);
    msg.set_recursion_desired(true);
    msg.set_recursion_available(true);
    msg.add_query(Query::query(question.clone(), qtype));
    msg.add_answer(Record::from_rdata(
        question,
        300,
        RData::CNAME(CNAME(target.clone())),
    ));
    for &(v6, i, ttl) in records {
        let data = if v6 {
            RData::AAAA(AAAA(aaaa(i)))
        } else {
            RData::A(A(a(i)))
        };
        msg.add_answer(Record::from_rdata(target.clone(), ttl, data));
    }
    msg.to_vec().unwrap()
}

fn v4(i: u8) -> IpAddr {
    IpAddr::V4(a(i))
}

fn v6(i: u8) -> IpAddr {
    IpAddr::V6(aaaa(i))
}

/// Every answer case of the brief, on one rule set and framing.
fn answer_cases(h: &mut DnsHarness, e: Ends) {
    let six = e.client.is_ipv6();
    let (qt, addr): (u16, fn(u8) -> IpAddr) = if six { (TYPE_AAAA, v6) } else { (TYPE_A, v4) };
    let rec = |owner: &[u8], ttl: u32, i: u8| {
        if six {
            rr_aaaa(owner, ttl, i)
        } else {
            rr_a(owner, ttl, i)
        }
    };
    let q = |id: u16, name: &str| Some(e.query_frame(&query(id, name, qt)));
    let both = 0b11;
    let goto = 0b01;

    // Honest answers: a CNAME chain first (hickory), then A and AAAA.
    let rtype = if six { RecordType::AAAA } else { RecordType::A };
    let good = hickory_answer(7, "www.goto.com.", rtype, &[(six, 1, 120), (six, 2, 60)]);
    case(
        h,
        "a good answer behind a CNAME",
        q(7, "www.goto.com"),
        &e.answer_frame(&good),
        &vec![(addr(1), goto, 120), (addr(2), goto, 60)],
        stat::ANSWERS,
    );
    // Both families in one answer for an AAAA question: every A and AAAA record is learned.
    let mixed = hickory_answer(
        8,
        "x.goto-rtc.com.",
        rtype,
        &[(false, 3, 100), (true, 3, 100)],
    );
    case(
        h,
        "A and AAAA records in one answer",
        q(8, "x.goto-rtc.com"),
        &e.answer_frame(&mixed),
        &vec![(v4(3), goto, 100), (v6(3), goto, 100)],
        stat::ANSWERS,
    );
    // Nested sets: eu.goto.com is in both; api.example.org exact only.
    let ans = answer(9, "media.eu.goto.com", qt, &[rec(&PTR_Q, 500, 4)]);
    case(
        h,
        "a name in both sets",
        q(9, "media.eu.goto.com"),
        &e.answer_frame(&ans),
        &vec![(addr(4), both, 500)],
        stat::ANSWERS,
    );
    let ans = answer(10, "api.example.org", qt, &[rec(&PTR_Q, 500, 5)]);
    case(
        h,
        "an exact name",
        q(10, "api.example.org"),
        &e.answer_frame(&ans),
        &vec![(addr(5), 0b10, 500)],
        stat::ANSWERS,
    );
    // 1, 8, 16 and 17 records: the 17th is not read.
    for n in [1u8, 8, 16, 17] {
        let recs: Vec<Vec<u8>> = (1..=n).map(|i| rec(&PTR_Q, 60 + u32::from(i), i)).collect();
        let want: Want = (1..=n.min(16))
            .map(|i| (addr(i), goto, clamp(60 + u32::from(i))))
            .collect();
        let ans = answer(11, "n.goto.com", qt, &recs);
        case(
            h,
            &format!("{n} records"),
            q(11, "n.goto.com"),
            &e.answer_frame(&ans),
            &want,
            stat::ANSWERS,
        );
    }
    // Huge and zero TTLs are clamped.
    let ans = answer(
        12,
        "t.goto.com",
        qt,
        &[rec(&PTR_Q, u32::MAX, 1), rec(&PTR_Q, 0, 2)],
    );
    case(
        h,
        "huge and zero TTLs",
        q(12, "t.goto.com"),
        &e.answer_frame(&ans),
        &vec![
            (addr(1), goto, u64::from(TTL_MAX)),
            (addr(2), goto, u64::from(TTL_MIN)),
        ],
        stat::ANSWERS,
    );
    // Uppercase questions match lowercased (and the answer's own case is not the query's).
    let ans = answer(13, "WWW.GoTo.COM", qt, &[rec(&PTR_Q, 90, 6)]);
    case(
        h,
        "an uppercase question",
        q(13, "www.GOTO.com"),
        &e.answer_frame(&ans),
        &vec![(addr(6), goto, 90)],
        stat::ANSWERS,
    );
    // Owner names with a pointer loop (to itself) and a pointer past the packet: skipped,
    // never followed; the records are read.
    let looped = {
        let mut body = question("l.goto.com", qt);
        let at = 12 + body.len();
        let ptr = [
            0xc0 | u8::try_from(at >> 8).unwrap(),
            u8::try_from(at & 0xff).unwrap(),
        ];
        body.extend(rec(&ptr, 70, 1));
        body.extend(rec(&[0xff, 0xff], 70, 2));
        message(14, 0x8180, [1, 2, 0, 0], &body)
    };
    case(
        h,
        "owner pointers looping and past the packet",
        q(14, "l.goto.com"),
        &e.answer_frame(&looped),
        &vec![(addr(1), goto, 70), (addr(2), goto, 70)],
        stat::ANSWERS,
    );
    // A pointer in the question: refused.
    let mut body = PTR_Q.to_vec();
    body.extend(qt.to_be_bytes());
    body.extend(1u16.to_be_bytes());
    body.extend(rec(&PTR_Q, 70, 1));
    let ans = message(15, 0x8180, [1, 1, 0, 0], &body);
    case(
        h,
        "a pointer (loop) in the question",
        q(15, "p.goto.com"),
        &e.answer_frame(&ans),
        &vec![],
        stat::REFUSED_BAD_LABEL,
    );
    // A label length past the end, in a record's owner: the record before it is learned,
    // the answer counts as cut.
    let mut ans = answer(16, "c.goto.com", qt, &[rec(&PTR_Q, 80, 1)]);
    ans[7] = 2;
    ans.extend([63, b'x', b'y']);
    case(
        h,
        "a label length past the end",
        q(16, "c.goto.com"),
        &e.answer_frame(&ans),
        &vec![(addr(1), goto, 80)],
        stat::REFUSED_CUT,
    );
    // ... and in the question.
    let mut ans = message(17, 0x8180, [1, 0, 0, 0], &[]);
    ans.extend([60, b'g', b'o']);
    case(
        h,
        "a question label past the end",
        q(17, "g.goto.com"),
        &e.answer_frame(&ans),
        &vec![],
        stat::REFUSED_CUT,
    );
    // Record data past the end.
    let mut ans = answer(18, "d.goto.com", qt, &[rec(&PTR_Q, 80, 1)]);
    ans.truncate(ans.len() - 2);
    case(
        h,
        "record data past the end",
        q(18, "d.goto.com"),
        &e.answer_frame(&ans),
        &vec![],
        stat::REFUSED_CUT,
    );
    // Question counts 0 and 2.
    let mut body = rec(&[0], 60, 1);
    let ans = message(19, 0x8180, [0, 1, 0, 0], &body);
    case(
        h,
        "question count 0",
        q(19, "z.goto.com"),
        &e.answer_frame(&ans),
        &vec![],
        stat::REFUSED_QUESTION_COUNT,
    );
    body = question("z.goto.com", qt);
    body.extend(question("z.goto.com", qt));
    body.extend(rec(&PTR_Q, 60, 1));
    let ans = message(20, 0x8180, [2, 1, 0, 0], &body);
    case(
        h,
        "question count 2",
        q(20, "z.goto.com"),
        &e.answer_frame(&ans),
        &vec![],
        stat::REFUSED_QUESTION_COUNT,
    );
    // An answer for a name that was not asked (the query is consumed all the same).
    let ans = answer(21, "other.goto.com", qt, &[rec(&PTR_Q, 60, 1)]);
    case(
        h,
        "a question not asked",
        q(21, "asked.goto.com"),
        &e.answer_frame(&ans),
        &vec![],
        stat::REFUSED_UNSOLICITED,
    );
    // The same name asked for A, answered for AAAA (or the other way round).
    let other = if six { TYPE_A } else { TYPE_AAAA };
    let ans = answer(22, "ty.goto.com", other, &[rec(&PTR_Q, 60, 1)]);
    case(
        h,
        "another question type than asked",
        q(22, "ty.goto.com"),
        &e.answer_frame(&ans),
        &vec![],
        stat::REFUSED_UNSOLICITED,
    );
    // Records in the authority and additional sections: never learned.
    let mut body = question("s.goto.com", qt);
    body.extend(rec(&PTR_Q, 60, 1));
    body.extend(rec(&PTR_Q, 60, 2));
    body.extend(rec(&PTR_Q, 60, 3));
    let ans = message(23, 0x8180, [1, 1, 1, 1], &body);
    case(
        h,
        "authority and additional records",
        q(23, "s.goto.com"),
        &e.answer_frame(&ans),
        &vec![(addr(1), goto, 60)],
        stat::ANSWERS,
    );
    // A mismatched id.
    let ans = answer(25, "id.goto.com", qt, &[rec(&PTR_Q, 60, 1)]);
    case(
        h,
        "a mismatched id",
        q(24, "id.goto.com"),
        &e.answer_frame(&ans),
        &vec![],
        stat::REFUSED_UNSOLICITED,
    );
    // TC=1.
    let mut ans = answer(26, "tc.goto.com", qt, &[rec(&PTR_Q, 60, 1)]);
    ans[2] |= 0x02;
    case(
        h,
        "TC=1",
        q(26, "tc.goto.com"),
        &e.answer_frame(&ans),
        &vec![],
        stat::REFUSED_TRUNCATED,
    );
    // Not a response (QR clear), and another opcode.
    let mut ans = answer(27, "qr.goto.com", qt, &[rec(&PTR_Q, 60, 1)]);
    ans[2] &= 0x7f;
    case(
        h,
        "QR clear",
        q(27, "qr.goto.com"),
        &e.answer_frame(&ans),
        &vec![],
        stat::REFUSED_NOT_ANSWER,
    );
    // A question for another type (MX): its query is not recorded, its answer refused.
    let ans = answer(28, "mx.goto.com", 15, &[rec(&PTR_Q, 60, 1)]);
    case(
        h,
        "an MX question",
        Some(e.query_frame(&query(28, "mx.goto.com", 15))),
        &e.answer_frame(&ans),
        &vec![],
        stat::REFUSED_NOT_ADDRESS_QUERY,
    );
    // Names in no set and lookalikes: never recorded, so their answers are unsolicited.
    for name in [
        "example.com",
        "evilgoto.com",
        "goto.com.example.net",
        "goto.co",
        "example.org",
        "x.api.example.org",
    ] {
        let ans = answer(29, name, qt, &[rec(&PTR_Q, 60, 1)]);
        case(
            h,
            &format!("{name} (in no set)"),
            q(29, name),
            &e.answer_frame(&ans),
            &vec![],
            stat::REFUSED_UNSOLICITED,
        );
    }
    // Labels with bytes below 64 other than digits and '-': refused.
    let ans = answer(30, "a!b.goto.com", qt, &[rec(&PTR_Q, 60, 1)]);
    case(
        h,
        "a label byte below 64",
        q(30, "a!b.goto.com"),
        &e.answer_frame(&ans),
        &vec![],
        stat::REFUSED_BAD_LABEL,
    );
    // Digits and '-' are fine.
    let ans = answer(31, "a-1.goto.com", qt, &[rec(&PTR_Q, 60, 1)]);
    case(
        h,
        "digits and a dash",
        q(31, "a-1.goto.com"),
        &e.answer_frame(&ans),
        &vec![(addr(1), goto, 60)],
        stat::ANSWERS,
    );
    // An answer with no live flow: not even handed to learning (blocked, no statistic).
    h.reset();
    let ans = answer(32, "nf.goto.com", qt, &[rec(&PTR_Q, 60, 1)]);
    let before = h.host.dns_stats;
    let (v, learned) = h.step("no live flow", Direction::Ingress, &e.answer_frame(&ans));
    assert_eq!(v.0, "block", "no live flow: {v:?}");
    assert!(
        learned.is_none() && h.host.dns_stats == before,
        "no live flow: learning ran"
    );
    check_learned(h, "no live flow", &vec![]);
    // The same answer twice: the second teaches nothing (the query is consumed).
    let ans = answer(33, "twice.goto.com", qt, &[rec(&PTR_Q, 60, 1)]);
    case(
        h,
        "the first of two",
        q(33, "twice.goto.com"),
        &e.answer_frame(&ans),
        &vec![(addr(1), goto, 60)],
        stat::ANSWERS,
    );
    let before = h.host.dns_stats;
    let (v, _) = h.step(
        "the second of two",
        Direction::Ingress,
        &e.answer_frame(&ans),
    );
    assert_eq!(v.0, "allow", "the second answer of a live flow passes");
    assert_eq!(
        h.host.dns_stats[stat::REFUSED_UNSOLICITED as usize],
        before[stat::REFUSED_UNSOLICITED as usize] + 1,
        "the second answer is unsolicited"
    );
    // A longer message than the copy buffer: records past 2048 bytes are cut.
    let mut body = question("big.goto.com", qt);
    body.extend(rr(&PTR_Q, 16, 60, &[b'x'; 2100]));
    body.extend(rec(&PTR_Q, 60, 1));
    let ans = message(34, 0x8180, [1, 2, 0, 0], &body);
    let frame = e.answer_frame(&ans);
    if frame.len() <= gotofw_tests::harness::MAX_TEST_RUN_FRAME {
        case(
            h,
            "a message longer than the copy buffer",
            q(34, "big.goto.com"),
            &frame,
            &vec![],
            stat::REFUSED_CUT,
        );
    }
}

/// Fragments and a wrong UDP length: one whole datagram or nothing is learned.
fn datagram_cases(h: &mut DnsHarness) {
    let mut ans = answer(40, "f.goto.com", TYPE_A, &[rr_a(&PTR_Q, 60, 1)]);
    // A first fragment carries a multiple of 8 bytes (else it is malformed).
    while !(8 + ans.len()).is_multiple_of(8) {
        ans.push(0);
    }
    let udp = frame::udp(53, CLIENT_PORT, &ans);
    let (server, client) = (V4.resolver, V4.client);
    let (IpAddr::V4(s), IpAddr::V4(c)) = (server, client) else {
        unreachable!()
    };
    let mut ip = Ipv4::new(s, c, filter_common::ipproto::UDP);
    ip.flags_frag = 0x2000; // MF: a first fragment
    // whose UDP length covers the datagram, past this fragment
    let mut head = udp.clone();
    head[4..6].copy_from_slice(&u16::try_from(udp.len() + 8).unwrap().to_be_bytes());
    let first = frame::ethernet(&[], filter_common::ethertype::IPV4, &ip.build(&head));
    case(
        h,
        "a first fragment",
        Some(V4.query_frame(&query(40, "f.goto.com", TYPE_A))),
        &first,
        &vec![],
        stat::REFUSED_UNPARSED,
    );
    // A UDP length longer than the packet.
    let mut bad = udp.clone();
    bad[4..6].copy_from_slice(&u16::try_from(udp.len() + 9).unwrap().to_be_bytes());
    let frame = frame::ip_frame(server, client, filter_common::ipproto::UDP, &bad);
    h.reset();
    h.step(
        "the query",
        Direction::Egress,
        &V4.query_frame(&query(41, "u.goto.com", TYPE_A)),
    );
    h.step("a UDP length past the packet", Direction::Ingress, &frame);
    check_learned(h, "a UDP length past the packet", &vec![]);
    // IPv6 with an extension header before UDP.
    let ans = answer(42, "e.goto.com", TYPE_AAAA, &[rr_aaaa(&PTR_Q, 60, 1)]);
    let mut l4 = frame::ipv6_ext(filter_common::ipproto::UDP, 0);
    l4.extend(frame::udp(53, CLIENT_PORT, &ans));
    let frame = frame::ip_frame(V6.resolver, V6.client, 0, &l4);
    h.reset();
    h.step(
        "the query",
        Direction::Egress,
        &V6.query_frame(&query(42, "e.goto.com", TYPE_AAAA)),
    );
    h.step("an IPv6 extension header", Direction::Ingress, &frame);
    check_learned(h, "an IPv6 extension header", &vec![]);
}

fn harness(label: &str, framing: Framing) -> DnsHarness {
    DnsHarness::new(label, true, framing, |_| {})
}

#[test]
fn answers_teach_the_kernel_what_they_teach_the_host() {
    if !require_root_or_skip("answers_teach_the_kernel_what_they_teach_the_host") {
        return;
    }
    for framing in [Framing::Ethernet, Framing::Ip] {
        let mut h = harness("tcp-443 + domain rules", framing);
        answer_cases(&mut h, V4);
        answer_cases(&mut h, V6);
        if *h.framing() == Framing::Ethernet {
            datagram_cases(&mut h);
        }
        // Every refusal reason the cases meant to reach moved, on both sides alike.
        let stats = h.kernel_stats();
        for slot in [
            stat::QUERIES,
            stat::ANSWERS,
            stat::LEARNED,
            stat::REFUSED_CUT,
            stat::REFUSED_NOT_ANSWER,
            stat::REFUSED_TRUNCATED,
            stat::REFUSED_QUESTION_COUNT,
            stat::REFUSED_BAD_LABEL,
            stat::REFUSED_NOT_ADDRESS_QUERY,
            stat::REFUSED_UNSOLICITED,
        ] {
            assert!(
                stats[slot as usize] > 0,
                "DNS statistic {slot} never moved: {stats:?}"
            );
        }
        assert_eq!(
            stats[stat::MISSED as usize],
            0,
            "a tail call failed: {stats:?}"
        );
    }
}

#[test]
fn answers_from_a_server_not_named_teach_nothing() {
    if !require_root_or_skip("answers_from_a_server_not_named_teach_nothing") {
        return;
    }
    let named: IpAddr = "203.0.113.53".parse().unwrap();
    let mut h = DnsHarness::new(
        "tcp-443 + domain rules, one server",
        true,
        Framing::Ethernet,
        |c| {
            c.dns_servers = vec![dns::addr_key(named)];
            c.config.dns_servers = 1;
        },
    );
    let ans = answer(1, "www.goto.com", TYPE_A, &[rr_a(&PTR_Q, 60, 1)]);
    case(
        &mut h,
        "from the resolver, not named",
        Some(V4.query_frame(&query(1, "www.goto.com", TYPE_A))),
        &V4.answer_frame(&ans),
        &vec![],
        stat::REFUSED_SERVER,
    );
    // The named server, on its own flow: learned.
    let ends = Ends {
        client: V4.client,
        resolver: named,
    };
    case(
        &mut h,
        "from the named server",
        Some(ends.query_frame(&query(2, "www.goto.com", TYPE_A))),
        &ends.answer_frame(&answer(2, "www.goto.com", TYPE_A, &[rr_a(&PTR_Q, 60, 1)])),
        &vec![(v4(1), 1, 60)],
        stat::ANSWERS,
    );
    // A spoofed answer from another address on the named server's query: no flow, blocked.
    h.reset();
    h.step(
        "the query",
        Direction::Egress,
        &ends.query_frame(&query(3, "www.goto.com", TYPE_A)),
    );
    let (v, learned) = h.step(
        "a spoofed source",
        Direction::Ingress,
        &ends.answer_from(
            V4.resolver,
            &answer(3, "www.goto.com", TYPE_A, &[rr_a(&PTR_Q, 60, 1)]),
        ),
    );
    assert_eq!((v.0, learned.is_none()), ("block", true), "{v:?}");
}

#[test]
fn egress_enforces_what_was_learned_alike() {
    if !require_root_or_skip("egress_enforces_what_was_learned_alike") {
        return;
    }
    for (e, qt) in [(V4, TYPE_A), (V6, TYPE_AAAA)] {
        let mut h = harness("tcp-443 + domain rules, egress", Framing::Ethernet);
        let rec = |i| {
            if qt == TYPE_A {
                rr_a(&PTR_Q, 60, i)
            } else {
                rr_aaaa(&PTR_Q, 60, i)
            }
        };
        let addr = |i| if qt == TYPE_A { v4(i) } else { v6(i) };
        h.reset();
        let want = |h: &mut DnsHarness, what: &str, frame: &[u8], verdict: (&str, &str)| {
            let (v, _) = h.step(what, Direction::Egress, frame);
            assert_eq!((v.0, v.1.as_str()), verdict, "{what}");
        };
        want(
            &mut h,
            "unlearned",
            &e.syn_to(addr(1), 40_001),
            ("block", "not-learned"),
        );
        h.step(
            "query",
            Direction::Egress,
            &e.query_frame(&query(1, "www.goto.com", qt)),
        );
        h.step(
            "answer",
            Direction::Ingress,
            &e.answer_frame(&answer(1, "www.goto.com", qt, &[rec(1)])),
        );
        want(
            &mut h,
            "learned",
            &e.syn_to(addr(1), 40_002),
            ("allow", "https"),
        );
        want(
            &mut h,
            "another, unlearned",
            &e.syn_to(addr(2), 40_003),
            ("block", "not-learned"),
        );
        // Its TTL runs out: new connections are blocked, the open one goes on.
        h.set_expiry(&dns::addr_key(addr(1)), 1);
        want(
            &mut h,
            "expired, a new flow",
            &e.syn_to(addr(1), 40_004),
            ("block", "not-learned"),
        );
        want(
            &mut h,
            "expired, the live flow",
            &e.syn_to(addr(1), 40_002),
            ("allow", "https"),
        );
        // Port 80 is not a domain rule's: the default block, not not-learned.
        let mut p80 = e.syn_to(addr(1), 40_005);
        let l4 = if qt == TYPE_A { 14 + 20 } else { 14 + 40 };
        p80[l4 + 2..l4 + 4].copy_from_slice(&80u16.to_be_bytes());
        want(&mut h, "port 80", &p80, ("block", "default-block"));
    }
    // Without domain rules, TCP 443 goes anywhere and DNS is not even looked at.
    let mut h = DnsHarness::new("tcp-443", false, Framing::Ethernet, |_| {});
    let (v, _) = h.step(
        "no domain rules",
        Direction::Egress,
        &V4.syn_to(v4(9), 40_006),
    );
    assert_eq!((v.0, v.1.as_str()), ("allow", "https"));
    h.step(
        "query",
        Direction::Egress,
        &V4.query_frame(&query(1, "www.goto.com", TYPE_A)),
    );
    assert!(
        h.host.queries.is_empty(),
        "no domain rules, no query recorded"
    );
}

/// A record of a random answer.
#[derive(Clone, Debug)]
enum Rec {
    A(u8, u32),
    Aaaa(u8, u32),
    Cname,
}

fn rec() -> impl Strategy<Value = Rec> {
    let ttl = prop_oneof![Just(0u32), Just(u32::MAX), any::<u32>()];
    prop_oneof![
        4 => (any::<u8>(), ttl.clone()).prop_map(|(a, t)| Rec::A(a, t)),
        3 => (any::<u8>(), ttl).prop_map(|(a, t)| Rec::Aaaa(a, t)),
        1 => Just(Rec::Cname),
    ]
}

/// Random answers from hickory, bytes overwritten, on both sides: they must agree on every
/// map after every frame (whatever each answer teaches).
#[test]
fn random_hostile_answers_teach_both_sides_alike() {
    if !require_root_or_skip("random_hostile_answers_teach_both_sides_alike") {
        return;
    }
    let h = std::cell::RefCell::new(harness("tcp-443 + domain rules, random", Framing::Ethernet));
    let mut runner = TestRunner::new(ProptestConfig {
        cases: 400,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let names = [
        "www.goto.com.",
        "a.b.goto-rtc.com.",
        "api.example.org.",
        "x.eu.goto.com.",
    ];
    let strategy = (
        any::<u16>(),
        0..names.len(),
        any::<bool>(),
        vec(rec(), 0..20),
        vec(rec(), 0..3),
        vec(
            (
                any::<proptest::sample::Index>(),
                prop_oneof![Just(0u8), Just(0xc0), Just(0x3f), Just(0xff), any::<u8>()],
            ),
            0..6,
        ),
    );
    let learned_some = std::cell::Cell::new(0u32);
    runner
        .run(&strategy, |(id, n, six, answers, extra, hostile)| {
            let qname = Name::from_ascii(names[n]).unwrap();
            let target = Name::from_ascii("t.cdn.example.net.").unwrap();
            let qtype = if six { RecordType::AAAA } else { RecordType::A };
            let mut msg = Message::new();
            msg.set_id(id);
            msg.set_message_type(MessageType::Response);
            msg.set_op_code(OpCode::Query);
            msg.add_query(Query::query(qname.clone(), qtype));
            let mut owner = qname.clone();
            let record = |owner: &Name, r: &Rec| match r {
                Rec::A(i, t) => Record::from_rdata(owner.clone(), *t, RData::A(A(a(*i)))),
                Rec::Aaaa(i, t) => {
                    Record::from_rdata(owner.clone(), *t, RData::AAAA(AAAA(aaaa(*i))))
                }
                Rec::Cname => {
                    Record::from_rdata(owner.clone(), 60, RData::CNAME(CNAME(target.clone())))
                }
            };
            for r in &answers {
                msg.add_answer(record(&owner, r));
                if matches!(r, Rec::Cname) {
                    owner = target.clone();
                }
            }
            for r in &extra {
                msg.add_additional(record(&target, r));
            }
            let mut wire = msg.to_vec().unwrap();
            for (i, b) in &hostile {
                let at = i.index(wire.len());
                wire[at] = *b;
            }
            let qt = if six { TYPE_AAAA } else { TYPE_A };
            let mut h = h.borrow_mut();
            h.reset();
            h.step(
                "random: query",
                Direction::Egress,
                &V4.query_frame(&query(id, names[n], qt)),
            );
            let (_, learned) = h.step(
                "random: answer",
                Direction::Ingress,
                &V4.answer_frame(&wire),
            );
            if let Some(Ok(n)) = learned {
                learned_some.set(learned_some.get() + u32::from(n > 0));
                prop_assert!(n as usize <= filter_common::dns::MAX_RECORDS);
            }
            Ok(())
        })
        .unwrap();
    // The random answers are not all refused: the comparison covered learning.
    assert!(
        learned_some.get() > 50,
        "only {} answers taught something",
        learned_some.get()
    );
}
