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
    /// A label length with its top bits 01 or 10 (RFC 6891 reserved), or a compression pointer
    /// in the question (the first name of a message has nothing before it to point to).
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
    if off + HEADER > end {
        return Err(Refused::Cut);
    }
    let h = pkt.header(off, HEADER).ok_or(Refused::Cut)?;
    let header = MessageHeader {
        id: h.be16(0),
        flags: h.be16(2),
        questions: h.be16(4),
        answers: h.be16(6),
    };
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
    let mut cur = off;
    let mut done = false;
    for _ in 0..=MAX_LABELS {
        let len = label_len(pkt, cur, end)?;
        if len == 0 {
            cur += 1;
            done = true;
            break;
        }
        if len & 0xc0 != 0 {
            return Err(Refused::BadLabel);
        }
        let len = usize::from(len);
        // The label, its length byte and the final zero must fit the name.
        if name.len + len + 1 > MAX_NAME {
            return Err(Refused::NameTooLong);
        }
        if cur + 1 + len > end {
            return Err(Refused::Cut);
        }
        let at = name.len - 1;
        if let Some(b) = name.bytes.get_mut(at) {
            *b = len as u8;
        }
        for i in 0..63 {
            if i >= len {
                break;
            }
            let c = pkt.header(cur + 1 + i, 1).ok_or(Refused::Cut)?.u8(0);
            if let Some(b) = name.bytes.get_mut(at + 1 + i) {
                *b = c.to_ascii_lowercase();
            }
        }
        name.len += len + 1;
        name.labels += 1;
        if let Some(b) = name.bytes.get_mut(name.len - 1) {
            *b = 0;
        }
        cur += 1 + len;
    }
    if !done {
        return Err(Refused::NameTooLong);
    }
    if cur + 4 > end {
        return Err(Refused::Cut);
    }
    let q = pkt.header(cur, 4).ok_or(Refused::Cut)?;
    let (qtype, class) = (q.be16(0), q.be16(2));
    if class != CLASS_IN || (qtype != TYPE_A && qtype != TYPE_AAAA) {
        return Err(Refused::NotAddressQuery);
    }
    Ok(Question {
        name,
        qtype,
        next: cur + 4,
    })
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

/// The key under which a name is matched against domain patterns by longest prefix: its labels in
/// reverse order, each still behind its length byte, then the final zero. `x.goto.com` becomes
/// `3 com 4 goto 1 x 0`: a pattern `*.goto.com` is the prefix `3 com 4 goto` (the apex and every
/// name below it, by whole labels, since every label keeps its length), and an exact name ends in
/// the zero byte. Returns the key's length.
#[inline(always)]
pub fn reversed_key(name: &Name, out: &mut [u8; MAX_NAME]) -> usize {
    // Where each label starts.
    let mut starts = [0u8; MAX_LABELS];
    let mut cur = 0usize;
    let mut count = 0usize;
    for slot in &mut starts {
        let len = usize::from(name.bytes.get(cur).copied().unwrap_or(0));
        if len == 0 || count >= name.labels {
            break;
        }
        *slot = cur as u8;
        count += 1;
        cur += 1 + len;
    }
    let mut at = 0usize;
    for k in 0..MAX_LABELS {
        if k >= count {
            break;
        }
        let start = usize::from(starts.get(count - 1 - k).copied().unwrap_or(0));
        let len = usize::from(name.bytes.get(start).copied().unwrap_or(0));
        for i in 0..64 {
            if i > len {
                break;
            }
            if let (Some(dst), Some(src)) = (out.get_mut(at + i), name.bytes.get(start + i)) {
                *dst = *src;
            }
        }
        at += len + 1;
    }
    if let Some(dst) = out.get_mut(at) {
        *dst = 0;
    }
    (at + 1).min(MAX_NAME)
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
        let mut key = [0u8; MAX_NAME];
        let n = reversed_key(&q.name, &mut key);
        assert_eq!(&key[..n], b"\x03com\x04goto\x06global\x00");
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
        let mut key = [0u8; MAX_NAME];
        assert_eq!(reversed_key(&q.name, &mut key), 255);
        assert_eq!(key[0], 61);
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
