//! The invariants of the coverage-guided fuzz target `classify` (`fuzz/`), on the host
//! classifier: `filter_common::classify` over `SoftTables`. They live here, in the workspace, so
//! that every test run compiles them and runs them over the seed corpus
//! (`fuzz_invariants_hold_on_the_seed_corpus`); the fuzz target only calls [`check_input`].
//!
//! Input: the first byte picks a rule set of [`rule_sets`] (its low seven bits, modulo their
//! number) and the link (its top bit: set for an L3 link, whose frames are bare IP, clear for
//! Ethernet); the rest is one frame, classified in both directions. Invariants:
//!
//! - the classifier never panics (nor reads out of bounds: libFuzzer runs it under ASan);
//! - the decision is consistent with the rule set: a pass only in a pass slot (a passing
//!   allowance or an allow rule), a drop only in a drop slot, and the slot exists;
//! - the outcome does not depend on what the fragment-key buffer held before;
//! - whenever `remember` is set, or the frame is a later fragment whose first was not seen, the
//!   fragment key is fully written (the same whatever the buffer held) and names the frame's
//!   family and direction;
//! - remembering a first fragment's verdict does not change the verdict of that frame again; a
//!   later fragment whose first is remembered takes the remembered verdict.

use std::{mem::MaybeUninit, sync::OnceLock};

use filter_common::{
    Decision, Direction, FragKey, FragVerdict, Outcome, classify, learn::Work, slot,
};
use filter_user::compile::Compiled;

use crate::harness::{decision_consistent, rule_sets};

/// A compiled rule set and its number of rules.
struct Set {
    label: &'static str,
    /// For an Ethernet link.
    compiled: Compiled,
    /// The same for an L3 link.
    compiled_l3: Compiled,
    rules: usize,
}

fn sets() -> &'static [Set] {
    static SETS: OnceLock<Vec<Set>> = OnceLock::new();
    SETS.get_or_init(|| {
        rule_sets()
            .into_iter()
            .map(|(label, options)| {
                let rules = options.rules();
                let compiled =
                    Compiled::new(&rules, options.allowance_bits()).expect("the rule sets compile");
                let mut compiled_l3 = compiled.clone();
                compiled_l3.config.link = filter_common::link::IP;
                Set {
                    label,
                    compiled,
                    compiled_l3,
                    rules: rules.len(),
                }
            })
            .collect()
    })
}

/// Classifies `frame` with the key buffer filled with `fill` first; returns the outcome and the
/// buffer's bytes afterwards.
fn run(
    tables: &filter_user::compile::SoftTables<'_>,
    frame: &[u8],
    direction: Direction,
    fill: u8,
) -> (Outcome, [u8; size_of::<FragKey>()]) {
    let mut key = MaybeUninit::<FragKey>::uninit();
    // SAFETY: any byte pattern is a valid value for the integers FragKey is made of; the buffer
    // is fully written here.
    unsafe {
        key.as_mut_ptr()
            .cast::<u8>()
            .write_bytes(fill, size_of::<FragKey>());
    }
    let outcome = classify(frame, tables, direction, &mut key);
    // SAFETY: initialised above (and possibly rewritten by the classifier).
    let key = unsafe { key.assume_init() };
    // SAFETY: FragKey is `repr(C)` plain integers with no padding (40 bytes, asserted in
    // filter-common).
    let bytes = unsafe { std::mem::transmute::<FragKey, [u8; size_of::<FragKey>()]>(key) };
    (outcome, bytes)
}

fn key_of(bytes: [u8; size_of::<FragKey>()]) -> FragKey {
    // SAFETY: as in `run`.
    unsafe { std::mem::transmute::<[u8; size_of::<FragKey>()], FragKey>(bytes) }
}

/// Checks the invariants on one fuzz input: the first byte picks the rule set and the link, the
/// rest is the frame. Panics, naming the rule set, link and direction, where one does not hold.
pub fn check_input(data: &[u8]) {
    let Some((&pick, frame)) = data.split_first() else {
        return;
    };
    let sets = sets();
    let set = &sets[usize::from(pick & 0x7f) % sets.len()];
    let (compiled, link) = if pick & 0x80 == 0 {
        (&set.compiled, "Ethernet")
    } else {
        (&set.compiled_l3, "L3")
    };
    for direction in [Direction::Ingress, Direction::Egress] {
        let mut tables = compiled.tables();
        let (a, key_a) = run(&tables, frame, direction, 0x00);
        let (b, key_b) = run(&tables, frame, direction, 0xff);
        let ctx = format!("[{}, {link}] {direction:?}", set.label);
        assert_eq!(a, b, "{ctx}: the outcome depends on the key buffer");
        let d = a.decision;
        assert!(
            decision_consistent(compiled, set.rules, d),
            "{ctx}: inconsistent decision {d:?}"
        );
        let later_unknown = d.slot == slot::FRAGMENT_UNKNOWN;
        if !(a.remember || later_unknown) {
            continue;
        }
        assert_eq!(key_a, key_b, "{ctx}: fragment key not fully written");
        let key = key_of(key_a);
        assert!(matches!(key.family, 4 | 6), "{ctx}: key family {key:?}");
        assert_eq!(key.direction, direction as u8, "{ctx}: key direction");
        assert_eq!(key._pad, 0, "{ctx}: key padding");
        if a.remember {
            tables.fragments.insert(key, a.frag_verdict());
            let (again, _) = run(&tables, frame, direction, 0x00);
            assert_eq!(
                again, a,
                "{ctx}: a remembered first fragment changes its own verdict"
            );
        } else {
            // A later fragment whose first fragment is now known takes its verdict.
            let remembered = Decision {
                action: filter_common::ACTION_PASS,
                slot: slot::NON_IP,
                dns: filter_common::domain::mark::NONE,
            };
            tables.fragments.insert(
                key,
                FragVerdict {
                    slot: remembered.slot,
                    action: filter_common::ACTION_PASS as u16,
                    // The later fragment may start anywhere.
                    guard: 0,
                },
            );
            let (again, _) = run(&tables, frame, direction, 0x00);
            assert_eq!(
                again.decision, remembered,
                "{ctx}: a later fragment ignores its first fragment's verdict"
            );
            assert!(
                !again.remember,
                "{ctx}: a later fragment asks to be remembered"
            );
        }
    }
}

/// Checks the invariants of the DNS answer parser (`filter_common::dns`) on one input, a whole
/// UDP payload (fuzz target `dns`): it never panics nor reads past the end; a question it accepts
/// is lowercased, within the name bounds, and its reversed key reversed again gives it back;
/// every record it reads moves forward and ends by the end; at most `MAX_RECORDS` are read; an
/// address is of family 4 (its last 12 bytes zero) or 6.
pub fn check_dns(data: &[u8]) -> usize {
    use filter_common::dns::{self, MAX_LABELS, MAX_NAME, MAX_RECORDS, Name};
    let end = data.len();
    let Ok(header) = dns::answer_header(data, 0, end) else {
        return check_learning(data);
    };
    assert_eq!(
        header.questions, 1,
        "a header with {} questions",
        header.questions
    );
    let Ok(q) = dns::question(data, dns::HEADER, end) else {
        return check_learning(data);
    };
    let name = q.name.wire();
    assert!(
        q.name.len <= MAX_NAME && q.name.labels <= MAX_LABELS,
        "{:?}",
        q.name
    );
    assert!(q.next <= end, "the question ends at {} of {end}", q.next);
    assert!(
        !name.iter().any(u8::is_ascii_uppercase),
        "not lowercased: {name:?}"
    );
    let mut key = [0u8; MAX_NAME + 1];
    let len = dns::reversed_key(&q.name, &mut key);
    assert_eq!(len, q.name.len, "the key's length");
    let mut back = Name::ROOT;
    back.bytes[..len].copy_from_slice(&key[..len]);
    back.len = len;
    back.labels = q.name.labels;
    let mut again = [0u8; MAX_NAME + 1];
    let n = dns::reversed_key(&back, &mut again);
    assert_eq!(&again[..n], name, "reversed twice");
    let mut cur = q.next;
    let mut read = 0;
    for _ in 0..usize::from(header.answers).min(MAX_RECORDS) {
        let Ok((learned, next)) = dns::record(data, cur, end) else {
            break;
        };
        assert!(
            next > cur && next <= end,
            "a record from {cur} to {next} of {end}"
        );
        if let Some(l) = learned {
            match l.family {
                4 => assert!(l.addr[4..].iter().all(|&b| b == 0), "{l:?}"),
                6 => {}
                other => panic!("family {other}"),
            }
        }
        cur = next;
        read += 1;
    }
    assert!(read <= MAX_RECORDS);
    check_learning(data)
}

/// The domain-rule rule set learning runs under in [`check_learning`]
/// (`harness::dns::compiled`: `tcp-443`, its `https` rule a domain rule of two sets).
fn learning_set() -> &'static Compiled {
    static SET: OnceLock<Compiled> = OnceLock::new();
    SET.get_or_init(|| crate::harness::dns::compiled(true).0)
}

/// Learning (returns the addresses learned; `filter_common::learn::learn_answer`, as the kernel's shells run it:
/// `harness::dns::host_answer`) over `SoftTables` from the answer `data`, sent by the resolver
/// to the client. Invariants:
///
/// - with no query recorded, or one of another id, nothing is learned;
/// - with the query of its own id and question recorded: at most `MAX_RECORDS` addresses
///   learned, each one the parser reads in the answer section (never the authority or additional
///   sections), each until now plus its TTL clamped to the rule set's bounds, and only when the
///   question's name is in a domain set; the query is consumed, so the same answer again teaches
///   nothing.
pub fn check_learning(data: &[u8]) -> usize {
    use filter_common::{
        dns::{self, MAX_RECORDS},
        learn::{self, DnsTables as _, QueryValue},
    };

    use crate::harness::dns::{V4_CLIENT, V4_RESOLVER, host_answer};
    let compiled = learning_set();
    let Ok(udp_len) = u16::try_from(data.len() + 8) else {
        return 0;
    };
    let mut udp = Vec::with_capacity(usize::from(udp_len));
    udp.extend(53u16.to_be_bytes());
    udp.extend(50_000u16.to_be_bytes());
    udp.extend(udp_len.to_be_bytes());
    udp.extend([0, 0]);
    udp.extend(data);
    if udp.len() + 20 > usize::from(u16::MAX) {
        return 0;
    }
    let frame = filter_user::frame::ip_frame(
        V4_RESOLVER.into(),
        V4_CLIENT.into(),
        filter_common::ipproto::UDP,
        &udp,
    );
    let dgram =
        learn::udp_datagram(&frame[..], filter_common::link::ETHERNET).expect("a whole datagram");
    let now = 1_000_000_000_000;
    let learn = |query: Option<(u16, u64)>| {
        let tables = compiled.tables();
        tables.now.set(now);
        if let Some((id, question)) = query {
            tables.record_query(
                &dgram.query_key(Direction::Ingress, id),
                &QueryValue {
                    question,
                    sent_ns: now,
                },
            );
        }
        let first = host_answer(&frame, &tables, now);
        let again = host_answer(&frame, &tables, now);
        (first, again, tables.learned.take())
    };
    // No query: nothing learned.
    let (first, again, learned) = learn(None);
    assert!(
        first.is_err() && again.is_err() && learned.is_empty(),
        "learned with no query: {first:?} {learned:?}"
    );
    let end = data.len();
    let (Ok(header), Ok(q)) = (
        dns::answer_header(data, 0, end),
        dns::question(data, dns::HEADER, end),
    ) else {
        return 0;
    };
    let question = dns::question_hash(&q.name, q.qtype);
    // A query of another id: nothing learned.
    let (first, _, learned) = learn(Some((header.id ^ 1, question)));
    assert!(
        first.is_err() && learned.is_empty(),
        "learned with another id: {first:?} {learned:?}"
    );
    // Its own query.
    let (first, again, learned) = learn(Some((header.id, question)));
    assert!(again.is_err(), "a second answer learned: {again:?}");
    assert!(learned.len() <= MAX_RECORDS, "{} learned", learned.len());
    if let Ok(n) = first {
        assert!(n as usize <= MAX_RECORDS && n as usize >= learned.len());
    }
    if learned.is_empty() {
        return 0;
    }
    let mut key = Work::EMPTY;
    key.name = q.name;
    learn::make_key(&mut key);
    assert!(
        learn::DnsTables::domain(&compiled.tables(), &key.key).is_some(),
        "learned for a name in no set"
    );
    // What the parser reads of the answer section (within the copy of the message).
    let msg = &data[..end.min(dns::MESSAGE_BUF)];
    let mut records = Vec::new();
    let mut cur = q.next;
    for _ in 0..usize::from(header.answers).min(MAX_RECORDS) {
        let Ok((got, next)) = dns::record(msg, cur, msg.len()) else {
            break;
        };
        records.extend(got);
        cur = next;
    }
    let cfg = &compiled.config;
    for (addr, value) in &learned {
        let from: Vec<_> = records
            .iter()
            .filter(|r| r.family == addr.family && r.addr == addr.addr)
            .collect();
        assert!(
            !from.is_empty(),
            "learned {addr:?}, not in the answer section"
        );
        for (i, &expires) in value.expires_ns.iter().enumerate() {
            if expires == 0 {
                continue;
            }
            assert!(
                from.iter().any(|r| {
                    dns::expiry(now, r.ttl, cfg.dns_ttl_min, cfg.dns_ttl_max) == expires
                }),
                "set {i} of {addr:?} expires at {expires}, no record's clamped TTL"
            );
        }
    }
    learned.len()
}

#[cfg(test)]
mod tests {
    use std::{fs, path::Path};

    use super::check_input;

    /// Every seed of the fuzz target, and every truncation of it, meets the invariants.
    #[test]
    fn fuzz_invariants_hold_on_the_seed_corpus() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/classify");
        let mut seeds = 0;
        for entry in fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let data = fs::read(entry.unwrap().path()).unwrap();
            for end in 0..=data.len() {
                check_input(&data[..end]);
            }
            seeds += 1;
        }
        assert!(seeds >= 40, "only {seeds} seeds in {}", dir.display());
    }

    /// Every seed of the fuzz target `dns`, every truncation of it, and every byte of it set to
    /// 0x00, 0xff and 0xc0 (a compression pointer) meet the invariants.
    #[test]
    fn dns_fuzz_invariants_hold_on_the_seed_corpus() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/dns");
        let mut seeds = 0;
        let mut learned = 0;
        for entry in fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let data = fs::read(entry.unwrap().path()).unwrap();
            for end in 0..=data.len() {
                learned += super::check_dns(&data[..end]);
            }
            for i in 0..data.len() {
                for b in [0x00, 0xff, 0xc0] {
                    let mut flipped = data.clone();
                    flipped[i] = b;
                    learned += super::check_dns(&flipped);
                }
            }
            seeds += 1;
        }
        assert!(seeds >= 6, "only {seeds} seeds in {}", dir.display());
        // The seeds ask for names of the domain sets: learning ran, not only refusals.
        assert!(
            learned > 100,
            "only {learned} addresses learned over the corpus"
        );
    }
}
