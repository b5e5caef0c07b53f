//! Domain rules' learning (issue 13): the egress program records the DNS queries that leave for
//! names of the rule set's domain sets ([`record_query`]), and the ingress program learns the
//! addresses of the answers to them ([`learn_answer`]) before the stack forwards an answer to
//! the client, so no client can connect before the rule knows the address.
//!
//! An answer teaches only when it arrives from a DNS server the operator named (or any, when
//! none is named), on the 5-tuple of a live flow, with the id and question of a query recorded
//! on that tuple less than [`QUERY_TIMEOUT_NS`] ago; the query is then forgotten, so an answer
//! teaches once. Its question name, lowercased, is matched against the domain sets by the
//! longest prefix of its wire form reversed ([`dns::reversed_key`]); every A and AAAA record of its
//! answer section (the first [`dns::MAX_RECORDS`]) is learned for the sets the question is in,
//! until now + its TTL clamped to the rule set's bounds. Owner names are skipped and
//! compression pointers never followed: the match is on the question, so CNAME chains are fine.
//!
//! The domain rules' side of the classifier (the marks, which rules the learned sets admit) is
//! in [`crate::domain`]. Pure functions over [`Packet`] and the [`DnsTables`] they ask; the kernel runs them over a
//! copy of the message in a per-CPU buffer ([`dns::Message`]) and its maps, the host over bytes
//! and in-memory tables.

use crate::{
    Config, Direction, MAX_DOMAIN_SETS,
    classify::Payload,
    dns::{self, HEADER, MAX_NAME, MAX_RECORDS, Name, Refused},
    ipproto,
    packet::{Header as _, Packet, below, opaque},
};

/// How long a recorded query waits for its answer: an answer after it teaches nothing (stub
/// resolvers give up after five seconds).
pub const QUERY_TIMEOUT_NS: u64 = 10_000_000_000;

/// Entries of the query map: queries awaiting their answers (a full map forgets the oldest).
pub const QUERY_TABLE_ENTRIES: u32 = 8192;

/// Slots of the DNS statistics (a per-CPU array of `u64`, map `DNS_STATS`).
pub mod stat {
    /// Queries recorded by the egress program.
    pub const QUERIES: u32 = 0;
    /// Answers parsed and learned from (their records may still give no address).
    pub const ANSWERS: u32 = 1;
    /// Addresses learned (A and AAAA records of answers learned from).
    pub const LEARNED: u32 = 2;
    /// Answers refused: cut short.
    pub const REFUSED_CUT: u32 = 3;
    /// Answers refused: not a response to a standard query.
    pub const REFUSED_NOT_ANSWER: u32 = 4;
    /// Answers refused: truncated (TC set).
    pub const REFUSED_TRUNCATED: u32 = 5;
    /// Answers refused: not exactly one question.
    pub const REFUSED_QUESTION_COUNT: u32 = 6;
    /// Answers refused: a reserved label type or a pointer in the question.
    pub const REFUSED_BAD_LABEL: u32 = 7;
    /// Answers refused: a question name over 255 bytes.
    pub const REFUSED_NAME_TOO_LONG: u32 = 8;
    /// Answers refused: the question is not for A or AAAA of class IN.
    pub const REFUSED_NOT_ADDRESS_QUERY: u32 = 9;
    /// Answers refused: no recorded query has this tuple, id and question (spoofed,
    /// unsolicited, late, or a second answer).
    pub const REFUSED_UNSOLICITED: u32 = 10;
    /// Answers refused: from an address that is not one of the DNS servers named.
    pub const REFUSED_SERVER: u32 = 11;
    /// Answers refused: not readable as one UDP datagram (a fragment, IPv6 extension headers,
    /// an inconsistent length).
    pub const REFUSED_UNPARSED: u32 = 12;
    /// Answers refused: the question is in no domain set.
    pub const REFUSED_NO_SET: u32 = 13;
    /// Addresses not learned because the learned table refused the update.
    pub const LEARN_FAILED: u32 = 14;
    /// Answers the ingress program could not hand to the learning program (its tail call
    /// failed): nothing learned.
    pub const MISSED: u32 = 15;
    /// Slots.
    pub const ENTRIES: u32 = 16;
}

/// The statistics slot of a refusal.
#[inline(always)]
pub const fn refused_stat(refused: Refused) -> u32 {
    match refused {
        Refused::Cut => stat::REFUSED_CUT,
        Refused::NotAnswer => stat::REFUSED_NOT_ANSWER,
        Refused::Truncated => stat::REFUSED_TRUNCATED,
        Refused::QuestionCount => stat::REFUSED_QUESTION_COUNT,
        Refused::BadLabel => stat::REFUSED_BAD_LABEL,
        Refused::NameTooLong => stat::REFUSED_NAME_TOO_LONG,
        Refused::NotAddressQuery => stat::REFUSED_NOT_ADDRESS_QUERY,
    }
}

/// Key of the learned-address map and of the DNS server map: an address.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct AddrKey {
    /// The address; IPv4 in the first four bytes.
    pub addr: [u8; 16],
    /// 4 or 6.
    pub family: u8,
    /// Always zero.
    #[expect(clippy::pub_underscore_fields, reason = "explicit padding, never read")]
    pub _pad: [u8; 3],
}
const _: () = assert!(size_of::<AddrKey>() == 20);

/// Value of the learned-address map: until when the address holds for each domain set (0: it
/// does not), and what taught it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LearnedValue {
    /// Per domain set, when the address stops holding for it (CLOCK_MONOTONIC_COARSE, ns).
    pub expires_ns: [u64; MAX_DOMAIN_SETS],
    /// When it was last learned (CLOCK_MONOTONIC_COARSE, ns).
    pub learned_ns: u64,
    /// Per domain set, the index of the pattern the question matched (in the rule set's
    /// pattern list, which the filter's record keeps).
    pub patterns: [u16; MAX_DOMAIN_SETS],
    /// The TTL of the record that last taught it, as the answer gave it.
    pub ttl: u32,
    /// Always zero.
    #[expect(clippy::pub_underscore_fields, reason = "explicit padding, never read")]
    pub _pad: u32,
}
const _: () = assert!(size_of::<LearnedValue>() == 96);

/// Key of the query map: the query's flow as its answer carries it, and its DNS id.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct QueryKey {
    /// The DNS server's address; IPv4 in the first four bytes.
    pub remote: [u8; 16],
    /// The local (post-NAT) address.
    pub local: [u8; 16],
    /// The local port.
    pub local_port: u16,
    /// The DNS id.
    pub id: u16,
    /// 4 or 6.
    pub family: u8,
    /// Always zero.
    #[expect(clippy::pub_underscore_fields, reason = "explicit padding, never read")]
    pub _pad: [u8; 3],
}
const _: () = assert!(size_of::<QueryKey>() == 40);

/// Value of the query map.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueryValue {
    /// [`dns::question_hash`] of the question.
    pub question: u64,
    /// When the query left (CLOCK_MONOTONIC_COARSE, ns).
    pub sent_ns: u64,
}
const _: () = assert!(size_of::<QueryValue>() == 16);

/// Data of a domain-trie key: a name's [`dns::reversed_key`], zero-padded. (The trie's key is
/// this behind a prefix length in bits.)
pub type DomainKey = [u8; MAX_NAME + 1];

/// Value of the domain trie: the sets a pattern stands for (those of every shorter pattern it
/// extends folded in), and per set the index of the longest pattern of it that matches.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DomainEntry {
    /// Bit `i` for domain set `i`.
    pub sets: u32,
    /// Always zero.
    #[expect(clippy::pub_underscore_fields, reason = "explicit padding, never read")]
    pub _pad: u32,
    /// Per set in `sets`, the index of its pattern in the rule set's pattern list.
    pub patterns: [u16; MAX_DOMAIN_SETS],
}
const _: () = assert!(size_of::<DomainEntry>() == 24);

/// A domain-trie key, laid out as the kernel's LPM trie keys are (aya's `lpm_trie::Key`): a
/// prefix length in bits, then the data.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrieKey {
    /// The key's length in bits.
    pub prefix_len: u32,
    /// The name's reversed key, zero-padded.
    pub data: DomainKey,
}

/// How far learning from an answer has gone: its records are read one a step
/// ([`answer_record`]), the kernel's learning program tail-calling itself for the next (each
/// run of it verified once, where a loop of records, each a loop of labels, is more than the
/// verifier walks).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// Where the next record starts.
    pub cur: usize,
    /// Records of the answer section not read yet (at most [`MAX_RECORDS`] in all).
    pub left: u32,
    /// Addresses learned so far.
    pub learned: u32,
    /// The sets the question is in.
    pub entry: DomainEntry,
}

/// What the DNS programs work on beside the message: the question's name, the trie key made
/// of it, how far the records have been read.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Work {
    /// The question's name, lowercased.
    pub name: Name,
    /// Where its trie key is built.
    pub rev: [u8; dns::REVERSE_BUF],
    /// Its trie key.
    pub key: TrieKey,
    /// The records' progress.
    pub progress: Progress,
}

impl Work {
    /// Nothing yet.
    pub const EMPTY: Self = Self {
        name: Name::ROOT,
        rev: [0; dns::REVERSE_BUF],
        key: TrieKey {
            prefix_len: 0,
            data: [0; MAX_NAME + 1],
        },
        progress: Progress {
            cur: 0,
            left: 0,
            learned: 0,
            entry: DomainEntry {
                sets: 0,
                _pad: 0,
                patterns: [0; MAX_DOMAIN_SETS],
            },
        },
    };
}

/// The per-CPU scratch space of the DNS programs (one map value): the message copied out of the
/// packet, and the [`Work`]. None of it fits the BPF stack.
#[repr(C)]
pub struct Scratch {
    /// The message.
    pub msg: [u8; dns::MESSAGE_BUF],
    /// Its length.
    pub len: usize,
    /// The name and key.
    pub work: Work,
}

/// A UDP datagram as the DNS programs read it: addresses, ports, where its payload starts in
/// the frame and how long it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Datagram {
    /// 4 or 6.
    pub family: u8,
    /// Source address; IPv4 in the first four bytes.
    pub src: [u8; 16],
    /// Destination address; IPv4 in the first four bytes.
    pub dst: [u8; 16],
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// Offset of the UDP payload in the frame.
    pub payload: usize,
    /// Its length (from the UDP header, checked against the IP packet).
    pub len: usize,
}

/// The UDP datagram a frame on a link of type `link` carries, when it is one whole datagram:
/// not a fragment, IPv4 with or without options, IPv6 with no extension header. `None`
/// otherwise (an answer that teaches nothing: these are allow rules).
#[inline(always)]
pub fn udp_datagram<P: Packet + ?Sized>(pkt: &P, link: u32) -> Option<Datagram> {
    let (family, src, dst, l4, end) = match crate::link_payload(pkt, link) {
        Payload::Ipv4 { off, end } => {
            let ip = pkt.header(off, 20)?;
            let ihl = usize::from(ip.u8(0) & 0x0f) * 4;
            let total = usize::from(ip.be16(2));
            if ip.u8(0) >> 4 != 4
                || ihl < 20
                || ip.u8(9) != ipproto::UDP
                || ip.be16(6) & 0x3fff != 0
                || total < ihl
                || off + total > end
            {
                return None;
            }
            let mut src = [0u8; 16];
            let mut dst = [0u8; 16];
            src[..4].copy_from_slice(&ip.array::<4>(12));
            dst[..4].copy_from_slice(&ip.array::<4>(16));
            (4, src, dst, off + ihl, off + total)
        }
        Payload::Ipv6 { off, end } => {
            let ip = pkt.header(off, 40)?;
            let plen = usize::from(ip.be16(4));
            if ip.u8(0) >> 4 != 6 || ip.u8(6) != ipproto::UDP || off + 40 + plen > end {
                return None;
            }
            (
                6,
                ip.array::<16>(8),
                ip.array::<16>(24),
                off + 40,
                off + 40 + plen,
            )
        }
        _ => return None,
    };
    let udp = pkt.header(l4, 8)?;
    let ulen = usize::from(udp.be16(4));
    if ulen < 8 || l4 + ulen > end {
        return None;
    }
    Some(Datagram {
        family,
        src,
        dst,
        sport: udp.be16(0),
        dport: udp.be16(2),
        payload: l4 + 8,
        len: ulen - 8,
    })
}

impl Datagram {
    /// The query key of this datagram's DNS message with `id`, travelling in `direction`.
    #[inline(always)]
    pub const fn query_key(&self, direction: Direction, id: u16) -> QueryKey {
        let (remote, local, local_port) = match direction {
            Direction::Ingress => (self.src, self.dst, self.dport),
            Direction::Egress => (self.dst, self.src, self.sport),
        };
        QueryKey {
            remote,
            local,
            local_port,
            id,
            family: self.family,
            _pad: [0; 3],
        }
    }
}

/// What learning asks of the maps.
pub trait DnsTables {
    /// Whether `addr` is one of the DNS servers named (asked only when some are).
    fn is_server(&self, addr: &AddrKey) -> bool;
    /// The domain trie's entry for the name whose trie key is `key`: the longest pattern that
    /// is a prefix of it.
    fn domain(&self, key: &TrieKey) -> Option<DomainEntry>;
    /// Records a query (an LRU table: a full one forgets its oldest).
    fn record_query(&self, key: &QueryKey, value: &QueryValue);
    /// Takes (looks up and removes) the query recorded under `key`.
    fn take_query(&self, key: &QueryKey) -> Option<QueryValue>;
    /// Learns `addr` for the sets of `entry` until `expires_ns` (for a set it already holds
    /// for until later, the later time stays; see [`learned_merge`]). Whether the table took
    /// it.
    fn learn(
        &self,
        addr: &AddrKey,
        entry: &DomainEntry,
        expires_ns: u64,
        ttl: u32,
        now: u64,
    ) -> bool;
    /// Adds one to statistics slot `stat`.
    fn count(&self, stat: u32);
}

/// The learned value `old` (zeroed when new) updated for the sets of `entry` until
/// `expires_ns`: a set's time only moves later.
#[inline(always)]
pub fn learned_merge(
    old: &mut LearnedValue,
    entry: &DomainEntry,
    expires_ns: u64,
    ttl: u32,
    now: u64,
) {
    for i in 0..MAX_DOMAIN_SETS {
        if entry.sets & (1 << i) != 0 {
            if old.expires_ns[i] < expires_ns {
                old.expires_ns[i] = expires_ns;
            }
            old.patterns[i] = entry.patterns[i];
        }
    }
    old.learned_ns = now;
    old.ttl = ttl;
}

/// The domain sets `value` holds for at `now`, as a mask.
#[inline(always)]
pub fn learned_sets(value: &LearnedValue, now: u64) -> u32 {
    let mut sets = 0;
    for i in 0..MAX_DOMAIN_SETS {
        // Without a branch: eight of them on the egress path had the verifier walk it twice as
        // long.
        let live = opaque(below(now, value.expires_ns[i])) & 1;
        sets |= (live as u32) << i;
    }
    sets
}

/// Writes the trie key of `work.name` into `work.key`: its reversed key, zero-padded, and its
/// length in bits, counting the zero after it, which an exact name's pattern ends in.
#[inline(always)]
pub fn make_key(work: &mut Work) {
    let n = dns::reversed_key_in(&work.name, &mut work.rev, &mut work.key.data);
    work.key.prefix_len = ((n + 1) * 8) as u32;
}

/// The egress program's part: records the query `msg` (the payload of `dgram`, an allowed
/// outbound UDP datagram to port 53) when it asks for A or AAAA of a name in a domain set.
/// Queries for other names, or that are not standard queries, are not recorded (their answers
/// teach nothing).
#[inline(always)]
pub fn record_query<P: Packet + ?Sized, D: DnsTables>(
    msg: &P,
    dgram: &Datagram,
    work: &mut Work,
    tables: &D,
    now: u64,
) -> Result<(), Refused> {
    let end = msg.len();
    let header = dns::query_header(msg, 0, end)?;
    let (qtype, _) = dns::question_into(msg, HEADER, end, &mut work.name)?;
    make_key(work);
    if tables.domain(&work.key).is_none() {
        return Ok(());
    }
    let key = dgram.query_key(Direction::Egress, header.id);
    let value = QueryValue {
        question: dns::question_hash(&work.name, qtype),
        sent_ns: now,
    };
    tables.record_query(&key, &value);
    tables.count(stat::QUERIES);
    Ok(())
}

/// Why an answer taught nothing, beyond a parse refusal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotLearned {
    /// The message was refused by the parser.
    Refused(Refused),
    /// From an address that is not a DNS server named.
    Server,
    /// No recorded query matches it.
    Unsolicited,
    /// Its question is in no domain set.
    NoSet,
}

impl NotLearned {
    /// The statistics slot it counts in.
    #[inline(always)]
    pub const fn stat(self) -> u32 {
        match self {
            Self::Refused(r) => refused_stat(r),
            Self::Server => stat::REFUSED_SERVER,
            Self::Unsolicited => stat::REFUSED_UNSOLICITED,
            Self::NoSet => stat::REFUSED_NO_SET,
        }
    }
}

/// The ingress program's part: learns from the answer `msg` (the payload of `dgram`, an inbound
/// UDP datagram from port 53 of a live flow): [`answer_question`], then [`answer_record`] until
/// it says there is no more. Returns the addresses learned. Records before a cut are learned
/// (the answer then counts as refused, cut); records past [`MAX_RECORDS`] are not read.
pub fn learn_answer<P: Packet + ?Sized, D: DnsTables>(
    msg: &P,
    dgram: &Datagram,
    cfg: &Config,
    work: &mut Work,
    tables: &D,
    now: u64,
) -> Result<u32, NotLearned> {
    answer_question(msg, dgram, cfg, work, tables, now)?;
    for _ in 0..MAX_RECORDS {
        if !answer_record(msg, cfg, &mut work.progress, tables, now) {
            break;
        }
    }
    Ok(work.progress.learned)
}

/// The first step of learning from an answer: the server, the header and the question, the
/// query it answers (taken: an answer teaches once), the sets its name is in. Leaves the
/// records to read in `work.progress`.
#[inline(always)]
pub fn answer_question<P: Packet + ?Sized, D: DnsTables>(
    msg: &P,
    dgram: &Datagram,
    cfg: &Config,
    work: &mut Work,
    tables: &D,
    now: u64,
) -> Result<(), NotLearned> {
    if cfg.dns_servers != 0 {
        let server = AddrKey {
            addr: dgram.src,
            family: dgram.family,
            _pad: [0; 3],
        };
        if !tables.is_server(&server) {
            return Err(NotLearned::Server);
        }
    }
    let end = msg.len();
    let header = dns::answer_header(msg, 0, end).map_err(NotLearned::Refused)?;
    let (qtype, first) =
        dns::question_into(msg, HEADER, end, &mut work.name).map_err(NotLearned::Refused)?;
    let key = dgram.query_key(Direction::Ingress, header.id);
    let query = tables.take_query(&key).ok_or(NotLearned::Unsolicited)?;
    if query.question != dns::question_hash(&work.name, qtype)
        || now.saturating_sub(query.sent_ns) > QUERY_TIMEOUT_NS
    {
        return Err(NotLearned::Unsolicited);
    }
    make_key(work);
    let entry = tables.domain(&work.key).ok_or(NotLearned::NoSet)?;
    let answers = u32::from(header.answers);
    work.progress = Progress {
        cur: first,
        left: if answers > MAX_RECORDS as u32 {
            MAX_RECORDS as u32
        } else {
            answers
        },
        learned: 0,
        entry,
    };
    Ok(())
}

/// One step of learning from an answer: reads the record at `progress.cur` and learns its
/// address, if it gives one. Whether there is another record to read. Counts the answer when
/// its records are done (or refused when one is cut).
#[inline(always)]
pub fn answer_record<P: Packet + ?Sized, D: DnsTables>(
    msg: &P,
    cfg: &Config,
    progress: &mut Progress,
    tables: &D,
    now: u64,
) -> bool {
    if progress.left == 0 {
        tables.count(stat::ANSWERS);
        return false;
    }
    let (address, next) = match dns::record(msg, progress.cur, msg.len()) {
        Ok(r) => r,
        Err(refused) => {
            tables.count(refused_stat(refused));
            progress.left = 0;
            return false;
        }
    };
    progress.cur = next;
    progress.left -= 1;
    if let Some(a) = address {
        let addr = AddrKey {
            addr: a.addr,
            family: a.family,
            _pad: [0; 3],
        };
        let expires = dns::expiry(now, a.ttl, cfg.dns_ttl_min, cfg.dns_ttl_max);
        if tables.learn(&addr, &progress.entry, expires, a.ttl, now) {
            progress.learned += 1;
            tables.count(stat::LEARNED);
        } else {
            tables.count(stat::LEARN_FAILED);
        }
    }
    if progress.left == 0 {
        tables.count(stat::ANSWERS);
        return false;
    }
    true
}
