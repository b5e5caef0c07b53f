//! DNS messages made by hand, for the answers a forger sends: a query, and an answer with A
//! records for its question (each record's owner a compression pointer to the question).

use std::net::Ipv4Addr;

/// QTYPE A.
const TYPE_A: u16 = 1;
/// QCLASS IN.
const CLASS_IN: u16 = 1;

/// `name` in wire form: length-prefixed labels and the root's zero byte.
fn wire_name(name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for label in name.trim_end_matches('.').split('.') {
        out.push(u8::try_from(label.len()).expect("a label of at most 63 bytes"));
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    out
}

/// A standard query (RD set) with id `id` for the A records of `name`.
pub fn query(id: u16, name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&0x0100_u16.to_be_bytes()); // RD
    out.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]); // QD 1, AN 0, NS 0, AR 0
    out.extend_from_slice(&wire_name(name));
    out.extend_from_slice(&TYPE_A.to_be_bytes());
    out.extend_from_slice(&CLASS_IN.to_be_bytes());
    out
}

/// The id of a DNS message, and its question name in lowercase dotted form (None when the
/// message is too short or its name is compressed, which a query's is not).
pub fn id_and_name(message: &[u8]) -> Option<(u16, String)> {
    let id = u16::from_be_bytes([*message.first()?, *message.get(1)?]);
    let mut at = 12;
    let mut labels = Vec::new();
    loop {
        let len = usize::from(*message.get(at)?);
        if len == 0 {
            break;
        }
        if len > 63 {
            return None;
        }
        let label = message.get(at + 1..at + 1 + len)?;
        labels.push(String::from_utf8_lossy(label).to_ascii_lowercase());
        at += 1 + len;
    }
    Some((id, labels.join(".")))
}

/// A response (QR, RD, RA, NOERROR) with id `id` to the A query for `name`, with one A record
/// of `ttl` seconds for each of `addrs`.
pub fn answer(id: u16, name: &str, addrs: &[Ipv4Addr], ttl: u32) -> Vec<u8> {
    let count = u16::try_from(addrs.len()).expect("a few records");
    let mut out = Vec::new();
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&0x8180_u16.to_be_bytes()); // QR RD RA, NOERROR
    out.extend_from_slice(&1_u16.to_be_bytes());
    out.extend_from_slice(&count.to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(&wire_name(name));
    out.extend_from_slice(&TYPE_A.to_be_bytes());
    out.extend_from_slice(&CLASS_IN.to_be_bytes());
    for addr in addrs {
        out.extend_from_slice(&[0xc0, 12]); // the owner: the question's name
        out.extend_from_slice(&TYPE_A.to_be_bytes());
        out.extend_from_slice(&CLASS_IN.to_be_bytes());
        out.extend_from_slice(&ttl.to_be_bytes());
        out.extend_from_slice(&4_u16.to_be_bytes());
        out.extend_from_slice(&addr.octets());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_gives_back_its_id_and_name() {
        let message = query(0xbeef, "Forged.GoTo.com");
        assert_eq!(message.len(), 12 + 17 + 4);
        assert_eq!(
            id_and_name(&message),
            Some((0xbeef, "forged.goto.com".to_owned()))
        );
        assert_eq!(id_and_name(&message[..20]), None);
    }

    #[test]
    fn an_answer_carries_its_records() {
        let addrs = [Ipv4Addr::new(68, 64, 8, 9), Ipv4Addr::new(68, 64, 8, 7)];
        let message = answer(7, "a.goto.com", &addrs, 60);
        assert_eq!(&message[..12], &[0, 7, 0x81, 0x80, 0, 1, 0, 2, 0, 0, 0, 0]);
        let records = &message[12 + 12 + 4..];
        assert_eq!(records.len(), 2 * 16);
        assert_eq!(&records[..2], &[0xc0, 12]);
        assert_eq!(&records[6..10], &60_u32.to_be_bytes());
        assert_eq!(&records[12..16], &[68, 64, 8, 9]);
        assert_eq!(&records[28..32], &[68, 64, 8, 7]);
    }
}
