//! DNS answers, read as the XDP program will read them to learn the addresses of domain rules
//! (issue 13): the header, the one question (its name lowercased, then its labels reversed into
//! the key of a longest-prefix match), and the answer section's records, every owner name skipped
//! and every compression pointer skipped, never followed.
//!
//! What is refused, and why, is in [`Refused`]. Everything is bounded: names up to
//! [`MAX_NAME`] bytes (RFC 1035), at most [`MAX_LABELS`] labels, the first [`MAX_RECORDS`]
//! records of the answer section. Like the classifier, every read goes through [`Packet`], and
//! nothing here panics, so the same functions run in the kernel and on the host.

use crate::packet::{Header as _, Packet};

/// Longest name in wire format, its final zero byte included (RFC 1035, 2.3.4).
pub const MAX_NAME: usize = 255;
/// Most labels of a name: each takes at least two bytes (length, one character).
pub const MAX_LABELS: usize = 127;
/// Most records of an answer section that are read; records past it are not learned (these are
/// allow rules: an address not learned stays blocked).
pub const MAX_RECORDS: usize = 16;
/// Length of the DNS header.
pub const HEADER: usize = 12;
/// Record type A.
pub const TYPE_A: u16 = 1;
/// Record type AAAA.
pub const TYPE_AAAA: u16 = 28;
/// Class IN.
pub const CLASS_IN: u16 = 1;

/// Why an answer teaches nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// A header, name, question or record is cut by the end of the message.
    Cut,
    /// Not a response (QR clear), or not a standard query (opcode not 0).
    NotAnswer,
    /// Truncated (TC set): the whole answer is only over TCP, which is not learned from.
    Truncated,
    /// Not exactly one question.
    QuestionCount,
    /// A label length with its top bits 01 or 10 (RFC 6891 reserved), a compression pointer
    /// in the question (the first name of a message has nothing before it to point to), or a
    /// byte of a question's label below 64 that is not a digit or `-` (see
    /// [`label_byte_ok`]).
    BadLabel,
    /// A question name over [`MAX_NAME`] bytes or [`MAX_LABELS`] labels.
    NameTooLong,
    /// The question is not class IN, or asks for neither A nor AAAA.
    NotAddressQuery,
}

/// The fixed header of a DNS message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MessageHeader {
    /// Query id.
    pub id: u16,
    /// Flags: QR, opcode, AA, TC, RD, RA, Z, AD, CD, RCODE.
    pub flags: u16,
    /// Question count.
    pub questions: u16,
    /// Answer-section record count.
    pub answers: u16,
}

/// The header of the message at `off`, checked for what an answer worth learning from must be:
/// a response to a standard query, not truncated, with one question.
#[inline(always)]
pub fn answer_header<P: Packet + ?Sized>(
    pkt: &P,
    off: usize,
    end: usize,
) -> Result<MessageHeader, Refused> {
    let header = message_header(pkt, off, end)?;
    // QR set, opcode 0 (QUERY).
    if header.flags & 0xf800 != 0x8000 {
        return Err(Refused::NotAnswer);
    }
    if header.flags & 0x0200 != 0 {
        return Err(Refused::Truncated);
    }
    if header.questions != 1 {
        return Err(Refused::QuestionCount);
    }
    Ok(header)
}

/// The fixed header of the message at `off`, which must end by `end`.
#[inline(always)]
fn message_header<P: Packet + ?Sized>(
    pkt: &P,
    off: usize,
    end: usize,
) -> Result<MessageHeader, Refused> {
    if off + HEADER > end {
        return Err(Refused::Cut);
    }
    let h = pkt.header(off, HEADER).ok_or(Refused::Cut)?;
    Ok(MessageHeader {
        id: h.be16(0),
        flags: h.be16(2),
        questions: h.be16(4),
        answers: h.be16(6),
    })
}

/// A question name in wire format (length-prefixed labels, then a zero byte), lowercased.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Name {
    /// The name's bytes; those past `len` are zero.
    pub bytes: [u8; MAX_NAME],
    /// Bytes used, the final zero included (1 for the root).
    pub len: usize,
    /// Labels (0 for the root).
    pub labels: usize,
}

impl Name {
    /// The root name.
    pub const ROOT: Self = Self {
        bytes: [0; MAX_NAME],
        len: 1,
        labels: 0,
    };

    /// The name's bytes in wire format.
    pub fn wire(&self) -> &[u8] {
        self.bytes.get(..self.len).unwrap_or(&[])
    }

    /// The labels of the name in wire format.
    pub fn count_labels(&self) -> usize {
        let mut labels = 0;
        let mut cur = 0;
        for _ in 0..MAX_LABELS {
            let len = usize::from(self.bytes.get(cur).copied().unwrap_or(0));
            if len == 0 || cur >= self.len {
                break;
            }
            labels += 1;
            cur += 1 + len;
        }
        labels
    }
}

/// The question of an answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Question {
    /// Its name, lowercased.
    pub name: Name,
    /// A or AAAA.
    pub qtype: u16,
    /// Where the answer section starts.
    pub next: usize,
}

/// The question at `off` (right after the header), which must end by `end`: its name copied
/// lowercased (no compression pointer allowed), then type and class.
#[inline(always)]
pub fn question<P: Packet + ?Sized>(pkt: &P, off: usize, end: usize) -> Result<Question, Refused> {
    let mut name = Name::ROOT;
    let (qtype, next) = question_into(pkt, off, end, &mut name)?;
    name.labels = name.count_labels();
    Ok(Question { name, qtype, next })
}

/// [`question`] writing the name into `name` (the kernel's is in a map value: a name does not
/// fit the BPF stack beside everything else), returning the type and where the answer section
/// starts. `name.labels` is left zero ([`Name::count_labels`] counts them): a count carried
/// through the walk would keep the verifier from merging its paths. One flat walk over the name's bytes, at most [`MAX_NAME`] steps: at a label's length
/// byte the next length byte's place is known, every other byte is copied lowercased.
#[inline(always)]
pub fn question_into<P: Packet + ?Sized>(
    pkt: &P,
    off: usize,
    end: usize,
    name: &mut Name,
) -> Result<(u16, usize), Refused> {
    name.len = 0;
    name.labels = 0;
    // Bytes of the current label still to copy: 0 at a length byte. (A count down rather than
    // the place of the next length byte: the verifier then never knows which it is, and merges
    // the walk's paths.)
    let mut rem = 0u8;
    for i in 0..MAX_NAME {
        let b = label_len(pkt, off + i, end)?;
        if rem == 0 {
            if b == 0 {
                if let Some(slot) = name.bytes.get_mut(i) {
                    *slot = 0;
                }
                name.len = i + 1;
                break;
            }
            if b & 0xc0 != 0 {
                return Err(Refused::BadLabel);
            }
            rem = b;
            if let Some(slot) = name.bytes.get_mut(i) {
                *slot = b;
            }
        } else {
            if !label_byte_ok(b) {
                return Err(Refused::BadLabel);
            }
            rem -= 1;
            if let Some(slot) = name.bytes.get_mut(i) {
                *slot = b.to_ascii_lowercase();
            }
        }
    }
    // Read back: each way out of the walk knows its length exactly, and the verifier would
    // follow every one of them through all that comes after. (No final zero within MAX_NAME
    // bytes leaves it zero.)
    let len = reread(&name.len);
    if len == 0 || len > MAX_NAME {
        return Err(Refused::NameTooLong);
    }
    name.len = len;
    // (Bytes past the name are left as they were: nothing reads them.)
    let cur = off + len;
    if cur + 4 > end {
        return Err(Refused::Cut);
    }
    let q = pkt.header(cur, 4).ok_or(Refused::Cut)?;
    let (qtype, class) = (q.be16(0), q.be16(2));
    if class != CLASS_IN || (qtype != TYPE_A && qtype != TYPE_AAAA) {
        return Err(Refused::NotAddressQuery);
    }
    Ok((qtype, cur + 4))
}

/// `x` read from memory: in the kernel, where `x` lies in a map value, a value the verifier
/// knows nothing of, so that it does not follow each value separately.
#[inline(always)]
fn reread(x: &usize) -> usize {
    // SAFETY: a read of a valid reference.
    unsafe { core::ptr::read_volatile(x) }
}

/// The header of the query at `off`, checked for what a query worth recording must be: a
/// standard query (QR clear, opcode 0) with one question.
#[inline(always)]
pub fn query_header<P: Packet + ?Sized>(
    pkt: &P,
    off: usize,
    end: usize,
) -> Result<MessageHeader, Refused> {
    let header = message_header(pkt, off, end)?;
    if header.flags & 0xf800 != 0 {
        return Err(Refused::NotAnswer);
    }
    if header.questions != 1 {
        return Err(Refused::QuestionCount);
    }
    Ok(header)
}

/// FNV-1a (64 bits) of a question: its lowercased name in wire format, then its type. What the
/// egress program keeps of a query, and compares an answer's question with.
#[inline(always)]
pub fn question_hash(name: &Name, qtype: u16) -> u64 {
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let len = name.len as u64;
    for i in 0..MAX_NAME {
        let step = (h ^ u64::from(name.bytes[i])).wrapping_mul(PRIME);
        // Bytes past the name leave the hash as it is; chosen without a branch, which would
        // have the verifier follow each length of name apart.
        let keep = crate::packet::opaque(crate::packet::below(i as u64, len));
        h = (step & keep) | (h & !keep);
    }
    for b in qtype.to_be_bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(PRIME);
    }
    h
}

/// The length byte of the label at `cur`, which must lie before `end`.
#[inline(always)]
fn label_len<P: Packet + ?Sized>(pkt: &P, cur: usize, end: usize) -> Result<u8, Refused> {
    if cur >= end {
        return Err(Refused::Cut);
    }
    Ok(pkt.header(cur, 1).ok_or(Refused::Cut)?.u8(0))
}

/// Skips the owner name at `cur`: its labels up to the zero byte or a compression pointer (two
/// bytes, not followed: the match is on the question, so where it points does not matter).
/// Returns where the record's fixed fields start.
#[inline(always)]
pub fn skip_name<P: Packet + ?Sized>(
    pkt: &P,
    mut cur: usize,
    end: usize,
) -> Result<usize, Refused> {
    for _ in 0..=MAX_LABELS {
        let len = label_len(pkt, cur, end)?;
        match len & 0xc0 {
            0xc0 => {
                if cur + 2 > end {
                    return Err(Refused::Cut);
                }
                return Ok(cur + 2);
            }
            0x00 if len == 0 => return Ok(cur + 1),
            0x00 => cur += 1 + usize::from(len),
            _ => return Err(Refused::BadLabel),
        }
    }
    Err(Refused::NameTooLong)
}

/// An address an answer record gives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Learned {
    /// 4 or 6.
    pub family: u8,
    /// The address; IPv4 in the first four bytes.
    pub addr: [u8; 16],
    /// The record's TTL, in seconds.
    pub ttl: u32,
}

/// One record of the answer section at `cur`: the address it gives when it is an A or AAAA
/// record of class IN with data of the right length (any other record, a CNAME among them, gives
/// none), and where the next record starts.
#[inline(always)]
pub fn record<P: Packet + ?Sized>(
    pkt: &P,
    cur: usize,
    end: usize,
) -> Result<(Option<Learned>, usize), Refused> {
    let fixed = skip_name(pkt, cur, end)?;
    if fixed + 10 > end {
        return Err(Refused::Cut);
    }
    let f = pkt.header(fixed, 10).ok_or(Refused::Cut)?;
    let (kind, class, ttl, rdlen) = (f.be16(0), f.be16(2), f.be32(4), usize::from(f.be16(8)));
    let data = fixed + 10;
    let next = data + rdlen;
    if next > end {
        return Err(Refused::Cut);
    }
    if class != CLASS_IN {
        return Ok((None, next));
    }
    let mut addr = [0u8; 16];
    let family = match (kind, rdlen) {
        (TYPE_A, 4) => {
            let a = pkt.header(data, 4).ok_or(Refused::Cut)?.array::<4>(0);
            addr[..4].copy_from_slice(&a);
            4
        }
        (TYPE_AAAA, 16) => {
            addr = pkt.header(data, 16).ok_or(Refused::Cut)?.array::<16>(0);
            6
        }
        _ => return Ok((None, next)),
    };
    Ok((Some(Learned { family, addr, ttl }), next))
}

/// The key under which a name is matched against domain patterns by longest prefix: its wire
/// form, final zero included, byte by byte in reverse. `x.goto.com` (`1 x 4 goto 3 com 0`)
/// becomes `0 moc 3 otog 4 x 1`: a pattern `*.goto.com` is the prefix `0 moc 3 otog 4` (the
/// reversed wire form of `goto.com`): the apex, and every name whose wire form ends in
/// `4 goto 3 com 0`. That `4` is a length byte of the name, so the match is by whole labels,
/// because a question's label bytes are never below 64 but for digits and `-`
/// ([`question_into`] refuses the others) and a wildcard pattern's first label is never 45 or
/// 48 to 57 bytes long (the compiler of domain sets refuses those). An exact name's pattern is
/// its key and one more zero, where the key of any longer name goes on with a label byte.
/// Writes the key to `out`, zero-padded, and returns the name's length.
pub fn reversed_key(name: &Name, out: &mut [u8; MAX_NAME + 1]) -> usize {
    let mut buf = [0u8; REVERSE_BUF];
    reversed_key_in(name, &mut buf, out)
}

/// Size of the buffer [`reversed_key_in`] builds a key in: the name reversed in the first half,
/// zeros in the second.
pub const REVERSE_BUF: usize = 512;

/// [`reversed_key`] with the buffer it builds the key in (the kernel's is in a map value, and
/// must be zero past its first half; nothing else writes there).
///
/// Two walks with no branch in them: every byte of the name's buffer goes to its mirror place
/// in the first half of `buf` (byte `p` to `MAX_NAME - p`), then the key is the name's length
/// worth of it, read from `MAX_NAME + 1 - len` on (past the name, the zeros of the second
/// half).
#[inline(always)]
pub fn reversed_key_in(
    name: &Name,
    buf: &mut [u8; REVERSE_BUF],
    out: &mut [u8; MAX_NAME + 1],
) -> usize {
    let len = if name.len == 0 || name.len > MAX_NAME {
        1
    } else {
        name.len
    };
    for p in 0..MAX_NAME {
        buf[MAX_NAME - p] = name.bytes[p];
    }
    let start = MAX_NAME + 1 - len;
    for (k, slot) in out.iter_mut().enumerate() {
        *slot = buf[(start + k) & (REVERSE_BUF - 1)];
    }
    len
}

/// Whether `b`, a byte of a label, may be one of a question's: any at or above 64 (no length
/// byte is), digits and `-` (no wildcard pattern's first label has those lengths). Hostnames
/// are letters, digits and `-`.
#[inline(always)]
pub const fn label_byte_ok(b: u8) -> bool {
    b >= 64 || b == b'-' || b.is_ascii_digit()
}

/// Size of the buffer a DNS message is copied into for parsing ([`Message`]): a power of two.
/// Bytes of a longer message past it are not read (its records there are cut).
pub const MESSAGE_BUF: usize = 2048;

/// A DNS message copied into a buffer of [`MESSAGE_BUF`] bytes (in the kernel, a per-CPU map
/// value: the packet's own pointers do not survive a loop the verifier cannot unroll), read
/// as a [`Packet`]: every read is checked against the message's length, and its index masked
/// into the buffer, which the verifier takes as the bound it is.
pub struct Message<'a> {
    bytes: &'a [u8; MESSAGE_BUF],
    len: usize,
}

impl<'a> Message<'a> {
    /// The first `len` bytes of `bytes` (at most [`MESSAGE_BUF`]).
    #[inline(always)]
    pub fn new(bytes: &'a [u8; MESSAGE_BUF], len: usize) -> Self {
        Self {
            bytes,
            len: if len > MESSAGE_BUF { MESSAGE_BUF } else { len },
        }
    }
}

/// A checked run of a [`Message`]'s bytes.
pub struct MessageBytes<'a> {
    bytes: &'a [u8; MESSAGE_BUF],
    at: usize,
}

impl crate::packet::Header for MessageBytes<'_> {
    #[inline(always)]
    fn u8(&self, i: usize) -> u8 {
        self.bytes[(self.at + i) & (MESSAGE_BUF - 1)]
    }
}

impl Packet for Message<'_> {
    type Header<'b>
        = MessageBytes<'b>
    where
        Self: 'b;

    #[inline(always)]
    fn len(&self) -> usize {
        self.len
    }

    #[inline(always)]
    fn header(&self, offset: usize, len: usize) -> Option<MessageBytes<'_>> {
        if offset >= MESSAGE_BUF || len > MESSAGE_BUF || offset + len > self.len {
            return None;
        }
        Some(MessageBytes {
            bytes: self.bytes,
            at: offset,
        })
    }
}

/// When a learned address expires: `now` (nanoseconds) plus the record's TTL clamped to
/// `min_secs..=max_secs`.
#[inline(always)]
pub const fn expiry(now: u64, ttl: u32, min_secs: u32, max_secs: u32) -> u64 {
    let secs = if ttl < min_secs {
        min_secs
    } else if ttl > max_secs {
        max_secs
    } else {
        ttl
    };
    now.saturating_add(secs as u64 * 1_000_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A message buffer: bytes and length.
    struct Msg {
        buf: [u8; 600],
        len: usize,
    }

    impl Msg {
        fn new() -> Self {
            Self {
                buf: [0; 600],
                len: 0,
            }
        }
        fn put(&mut self, bytes: &[u8]) -> &mut Self {
            self.buf[self.len..self.len + bytes.len()].copy_from_slice(bytes);
            self.len += bytes.len();
            self
        }
        fn u16(&mut self, v: u16) -> &mut Self {
            self.put(&v.to_be_bytes())
        }
        fn name(&mut self, dotted: &str) -> &mut Self {
            for label in dotted.split('.').filter(|l| !l.is_empty()) {
                self.put(&[label.len() as u8]).put(label.as_bytes());
            }
            self.put(&[0])
        }
        fn header(&mut self, id: u16, flags: u16, qd: u16, an: u16) -> &mut Self {
            self.u16(id).u16(flags).u16(qd).u16(an).u16(0).u16(0)
        }
        fn a(&mut self, owner: &[u8], ttl: u32, addr: [u8; 4]) -> &mut Self {
            self.put(owner)
                .u16(TYPE_A)
                .u16(CLASS_IN)
                .put(&ttl.to_be_bytes());
            self.u16(4).put(&addr)
        }
        fn bytes(&self) -> &[u8] {
            &self.buf[..self.len]
        }
    }

    /// Header, question and every record: the addresses learned, or the refusal.
    fn parse(m: &[u8]) -> Result<([Option<Learned>; MAX_RECORDS], Question), Refused> {
        let end = m.len();
        let h = answer_header(m, 0, end)?;
        let q = question(m, HEADER, end)?;
        let mut out = [None; MAX_RECORDS];
        let mut cur = q.next;
        for (i, slot) in out.iter_mut().enumerate() {
            if i >= usize::from(h.answers) {
                break;
            }
            let (learned, next) = record(m, cur, end)?;
            *slot = learned;
            cur = next;
        }
        Ok((out, q))
    }

    const POINTER: [u8; 2] = [0xc0, 12];

    fn answer_for(name: &str) -> Msg {
        let mut m = Msg::new();
        m.header(0x1234, 0x8180, 1, 2)
            .name(name)
            .u16(TYPE_A)
            .u16(CLASS_IN);
        m.a(&POINTER, 60, [68, 64, 0, 10])
            .a(&POINTER, 0, [68, 64, 0, 11]);
        m
    }

    #[test]
    fn an_answer_gives_its_question_lowercased_and_its_addresses() {
        let m = answer_for("Global.GoTo.com");
        let (records, q) = parse(m.bytes()).unwrap();
        assert_eq!(q.name.wire(), b"\x06global\x04goto\x03com\x00");
        assert_eq!((q.qtype, q.name.labels), (TYPE_A, 3));
        let addrs: [[u8; 4]; 2] = [[68, 64, 0, 10], [68, 64, 0, 11]];
        for (r, (want, ttl)) in records.iter().zip(addrs.iter().zip([60, 0])) {
            let r = r.unwrap();
            assert_eq!((r.family, &r.addr[..4], r.ttl), (4, &want[..], ttl));
        }
        let mut key = [0u8; MAX_NAME + 1];
        let n = reversed_key(&q.name, &mut key);
        assert_eq!(&key[..n], b"\x00moc\x03otog\x04labolg\x06");
    }

    #[test]
    fn owner_names_and_pointers_are_skipped_never_followed() {
        // A pointer to itself, one past the message, and a full owner name: all skipped.
        let mut m = Msg::new();
        m.header(1, 0x8180, 1, 3)
            .name("goto.com")
            .u16(TYPE_A)
            .u16(CLASS_IN);
        let here = m.len as u16;
        m.a(&(0xc000 | here).to_be_bytes(), 5, [1, 2, 3, 4]);
        m.a(&[0xff, 0xff], 5, [1, 2, 3, 5]);
        m.a(b"\x01x\x00", 5, [1, 2, 3, 6]);
        let (records, _) = parse(m.bytes()).unwrap();
        let got: [u8; 3] = core::array::from_fn(|i| records[i].unwrap().addr[3]);
        assert_eq!(got, [4, 5, 6]);
    }

    #[test]
    fn other_records_give_nothing_and_the_authority_section_is_not_read() {
        let mut m = Msg::new();
        // One answer (a CNAME), then an authority record (an A) that must not be learned.
        m.header(1, 0x8180, 1, 1)
            .name("goto.com")
            .u16(TYPE_A)
            .u16(CLASS_IN);
        m.put(&POINTER)
            .u16(5)
            .u16(CLASS_IN)
            .put(&[0, 0, 0, 9])
            .u16(2)
            .put(&POINTER);
        m.a(&POINTER, 5, [9, 9, 9, 9]);
        let (records, _) = parse(m.bytes()).unwrap();
        assert!(records.iter().all(Option::is_none), "{records:?}");
        // An A record of another class, an A of the wrong length: nothing.
        let mut m = Msg::new();
        m.header(1, 0x8180, 1, 2)
            .name("goto.com")
            .u16(TYPE_A)
            .u16(CLASS_IN);
        m.put(&POINTER)
            .u16(TYPE_A)
            .u16(3)
            .put(&[0, 0, 0, 9])
            .u16(4)
            .put(&[1, 1, 1, 1]);
        m.put(&POINTER)
            .u16(TYPE_A)
            .u16(CLASS_IN)
            .put(&[0, 0, 0, 9])
            .u16(5)
            .put(&[1; 5]);
        let (records, _) = parse(m.bytes()).unwrap();
        assert!(records.iter().all(Option::is_none), "{records:?}");
    }

    #[test]
    fn hostile_headers_and_questions_are_refused() {
        let flags = |f: u16| {
            let mut m = answer_for("goto.com");
            m.buf[2..4].copy_from_slice(&f.to_be_bytes());
            parse(m.bytes()).map(|_| ())
        };
        assert_eq!(flags(0x0100), Err(Refused::NotAnswer), "a query");
        assert_eq!(flags(0x8900), Err(Refused::NotAnswer), "opcode 1");
        assert_eq!(flags(0x8380), Err(Refused::Truncated));
        assert_eq!(
            flags(0x8183),
            Ok(()),
            "NXDOMAIN parses (and learns what it has)"
        );
        for count in [0u16, 2] {
            let mut m = answer_for("goto.com");
            m.buf[4..6].copy_from_slice(&count.to_be_bytes());
            assert_eq!(parse(m.bytes()).map(|_| ()), Err(Refused::QuestionCount));
        }
        // A pointer in the question, a reserved label type.
        let mut m = Msg::new();
        m.header(1, 0x8180, 1, 0)
            .put(&POINTER)
            .u16(TYPE_A)
            .u16(CLASS_IN);
        assert_eq!(parse(m.bytes()).map(|_| ()), Err(Refused::BadLabel));
        let mut m = Msg::new();
        m.header(1, 0x8180, 1, 0)
            .put(&[0x41, b'x', 0])
            .u16(TYPE_A)
            .u16(CLASS_IN);
        assert_eq!(parse(m.bytes()).map(|_| ()), Err(Refused::BadLabel));
        // Class CH, type MX.
        let mut m = Msg::new();
        m.header(1, 0x8180, 1, 0)
            .name("goto.com")
            .u16(TYPE_A)
            .u16(3);
        assert_eq!(parse(m.bytes()).map(|_| ()), Err(Refused::NotAddressQuery));
        let mut m = Msg::new();
        m.header(1, 0x8180, 1, 0)
            .name("goto.com")
            .u16(15)
            .u16(CLASS_IN);
        assert_eq!(parse(m.bytes()).map(|_| ()), Err(Refused::NotAddressQuery));
    }

    #[test]
    fn names_past_their_bounds_are_refused() {
        // 4 labels of 63: 4 * 64 + 1 = 257 bytes, over 255.
        let long = "a".repeat(63);
        let mut m = Msg::new();
        m.header(1, 0x8180, 1, 0);
        for _ in 0..4 {
            m.put(&[63]).put(long.as_bytes());
        }
        m.put(&[0]).u16(TYPE_A).u16(CLASS_IN);
        assert_eq!(parse(m.bytes()).map(|_| ()), Err(Refused::NameTooLong));
        // 3 labels of 63 and one of 61: 255 bytes exactly, accepted.
        let mut m = Msg::new();
        m.header(1, 0x8180, 1, 0);
        for _ in 0..3 {
            m.put(&[63]).put(long.as_bytes());
        }
        m.put(&[61]).put(&long.as_bytes()[..61]).put(&[0]);
        m.u16(TYPE_A).u16(CLASS_IN);
        let (_, q) = parse(m.bytes()).unwrap();
        assert_eq!((q.name.len, q.name.labels), (255, 4));
        let mut key = [0u8; MAX_NAME + 1];
        assert_eq!(reversed_key(&q.name, &mut key), 255);
        assert_eq!((key[0], key[62], key[254]), (0, 61, 63));
        // 127 one-character labels: 255 bytes, accepted; its reversed key too.
        let mut m = Msg::new();
        m.header(1, 0x8180, 1, 0);
        for i in 0..127u8 {
            m.put(&[1, b'a' + i % 26]);
        }
        m.put(&[0]).u16(TYPE_A).u16(CLASS_IN);
        let (_, q) = parse(m.bytes()).unwrap();
        assert_eq!((q.name.len, q.name.labels), (255, 127));
        let n = reversed_key(&q.name, &mut key);
        assert_eq!((n, key[1], key[253]), (255, b'a' + 126 % 26, b'a'));
    }

    #[test]
    fn every_cut_is_refused_not_misread() {
        let m = answer_for("global.goto.com");
        let full = m.bytes();
        for cut in 0..full.len() {
            let got = parse(&full[..cut]).map(|_| ());
            assert_eq!(got, Err(Refused::Cut), "cut at {cut}");
        }
        // A label length past the end, a record's data length past the end.
        let mut m = Msg::new();
        m.header(1, 0x8180, 1, 0).put(&[40, b'x']);
        assert_eq!(parse(m.bytes()).map(|_| ()), Err(Refused::Cut));
        let mut m = answer_for("goto.com");
        let rdlen_at = m.len - 4 - 2;
        m.buf[rdlen_at..rdlen_at + 2].copy_from_slice(&5u16.to_be_bytes());
        assert_eq!(parse(m.bytes()).map(|_| ()), Err(Refused::Cut));
    }

    #[test]
    fn ttls_are_clamped() {
        let now = 1_000_000_000;
        assert_eq!(expiry(now, 0, 30, 3600), now + 30_000_000_000);
        assert_eq!(expiry(now, 300, 30, 3600), now + 300_000_000_000);
        assert_eq!(expiry(now, u32::MAX, 30, 3600), now + 3_600_000_000_000);
        assert_eq!(expiry(u64::MAX - 1, 60, 30, 3600), u64::MAX);
    }
}
