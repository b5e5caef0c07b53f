//! `filter_common::dns` against hickory-proto: random answers that hickory builds (its encoder
//! compresses names, so owner names are pointers as real resolvers send them), with CNAME chains,
//! other record types, mixed case and records in the authority and additional sections. The
//! parser must give the question hickory wrote, lowercased, and exactly the A and AAAA records of
//! class IN among the first `MAX_RECORDS` of the answer section, in order, with their TTLs.

use std::net::{Ipv4Addr, Ipv6Addr};

use filter_common::dns::{self, Learned, MAX_RECORDS};
use hickory_proto::{
    op::{Message, MessageType, OpCode, Query},
    rr::{
        Name, RData, Record, RecordType,
        rdata::{A, AAAA, CNAME, TXT},
    },
};
use proptest::{collection::vec, prelude::*};

/// A record of the generated answer.
#[derive(Clone, Debug)]
enum Rec {
    A(Ipv4Addr, u32),
    Aaaa(Ipv6Addr, u32),
    Cname(u32),
    Txt(u32),
}

fn label() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9]{1,12}"
}

fn name() -> impl Strategy<Value = Vec<String>> {
    vec(label(), 1..=5)
}

fn rec() -> impl Strategy<Value = Rec> {
    let ttl = prop_oneof![Just(0u32), Just(u32::MAX), any::<u32>()];
    prop_oneof![
        4 => (any::<[u8; 4]>(), ttl.clone()).prop_map(|(a, t)| Rec::A(a.into(), t)),
        3 => (any::<[u8; 16]>(), ttl.clone()).prop_map(|(a, t)| Rec::Aaaa(a.into(), t)),
        1 => ttl.clone().prop_map(Rec::Cname),
        1 => ttl.prop_map(Rec::Txt),
    ]
}

fn to_name(labels: &[String]) -> Name {
    Name::from_ascii(format!("{}.", labels.join("."))).expect("a valid name")
}

fn record(owner: &Name, target: &Name, r: &Rec) -> Record {
    let (ttl, data) = match r {
        Rec::A(a, t) => (*t, RData::A(A(*a))),
        Rec::Aaaa(a, t) => (*t, RData::AAAA(AAAA(*a))),
        Rec::Cname(t) => (*t, RData::CNAME(CNAME(target.clone()))),
        Rec::Txt(t) => (*t, RData::TXT(TXT::new(vec!["v=gotofw".to_owned()]))),
    };
    Record::from_rdata(owner.clone(), ttl, data)
}

/// What the parser learns from `wire`: the question's wire name and type, every address, and
/// where what it read ends.
fn parse(wire: &[u8]) -> Result<(Vec<u8>, u16, Vec<Learned>, usize), dns::Refused> {
    let end = wire.len();
    let header = dns::answer_header(wire, 0, end)?;
    let q = dns::question(wire, dns::HEADER, end)?;
    let mut learned = Vec::new();
    let mut cur = q.next;
    for _ in 0..usize::from(header.answers).min(MAX_RECORDS) {
        let (got, next) = dns::record(wire, cur, end)?;
        learned.extend(got);
        cur = next;
    }
    Ok((q.name.wire().to_vec(), q.qtype, learned, cur))
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 2000,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn the_parser_learns_what_hickory_wrote(
        id in any::<u16>(),
        qname in name(),
        aaaa in any::<bool>(),
        cname in name(),
        answers in vec(rec(), 0..24),
        authority in vec(rec(), 0..3),
        additional in vec(rec(), 0..3),
        hostile in vec((any::<proptest::sample::Index>(), prop_oneof![Just(0u8), Just(0xc0), Just(0x3f), Just(0xff), any::<u8>()]), 0..16),
    ) {
        let question = to_name(&qname);
        let target = to_name(&cname);
        let mut msg = Message::new();
        msg.set_id(id);
        msg.set_message_type(MessageType::Response);
        msg.set_op_code(OpCode::Query);
        msg.set_recursion_desired(true);
        msg.set_recursion_available(true);
        let qtype = if aaaa { RecordType::AAAA } else { RecordType::A };
        msg.add_query(Query::query(question.clone(), qtype));
        // A CNAME chain: records after the first CNAME are owned by its target.
        let mut owner = question.clone();
        for r in &answers {
            msg.add_answer(record(&owner, &target, r));
            if matches!(r, Rec::Cname(_)) {
                owner = target.clone();
            }
        }
        for r in &authority {
            msg.add_name_server(record(&question, &target, r));
        }
        for r in &additional {
            msg.add_additional(record(&target, &target, r));
        }
        let wire = msg.to_vec().expect("hickory encodes the message");
        let (name, got_qtype, learned, read) = parse(&wire).expect("an honest answer parses");
        let mut want_name = Vec::new();
        for l in &qname {
            want_name.push(l.len() as u8);
            want_name.extend(l.to_ascii_lowercase().bytes());
        }
        want_name.push(0);
        prop_assert_eq!(name, want_name);
        prop_assert_eq!(got_qtype, u16::from(qtype));
        let want: Vec<Learned> = answers
            .iter()
            .take(MAX_RECORDS)
            .filter_map(|r| match r {
                Rec::A(a, ttl) => {
                    let mut addr = [0u8; 16];
                    addr[..4].copy_from_slice(&a.octets());
                    Some(Learned { family: 4, addr, ttl: *ttl })
                }
                Rec::Aaaa(a, ttl) => Some(Learned { family: 6, addr: a.octets(), ttl: *ttl }),
                Rec::Cname(_) | Rec::Txt(_) => None,
            })
            .collect();
        prop_assert_eq!(learned, want);
        // The same answer made hostile (bytes overwritten, pointers and lengths among them):
        // the parser's invariants hold (`gotofw_tests::fuzz::check_dns`).
        for (i, b) in &hostile {
            let mut bad = wire.clone();
            let at = i.index(bad.len());
            bad[at] = *b;
            gotofw_tests::fuzz::check_dns(&bad);
        }
        // A cut inside what the parser reads is refused, never misread as a shorter answer.
        for cut in [read - 1, read / 2, dns::HEADER + 1] {
            prop_assert_eq!(parse(&wire[..cut]).map(|_| ()), Err(dns::Refused::Cut), "cut at {}", cut);
        }
    }
}
