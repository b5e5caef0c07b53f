//! Domain sets compiled to the table domain rules (issue 13) match a DNS question against: a
//! longest-prefix match over names' wire forms reversed byte by byte
//! ([`filter_common::dns::reversed_key`]: `x.goto.com` is `0 moc 3 otog 4 x 1`). A pattern
//! `*.goto.com` is the prefix `0 moc 3 otog 4`: the apex and every name below it, by whole
//! labels (`notgoto.com` is `0 moc 3 otogton 7`, not below it; see `reversed_key` for why a
//! `4` there is always a length byte); an exact name's pattern ends in one more zero and
//! matches itself only. These are the semantics of `gotofw domains` and the proxy.pac file
//! ([`Domain::matches`]), which the tests hold the table to.
//!
//! A longest-prefix lookup answers with one entry, the longest; so each entry's set mask also
//! holds the sets of every shorter entry that is a prefix of it (`api.goto.com` in one set and
//! `*.goto.com` in another: the name `api.goto.com` is in both).

use filter_common::dns::{MAX_LABELS, MAX_NAME, Name};

use crate::domains::{Domain, Match};

/// The key of `domain`'s pattern: its name's wire form reversed byte by byte
/// ([`filter_common::dns::reversed_key`]), then one more zero when it matches the name only.
pub fn pattern_key(domain: &Domain) -> Vec<u8> {
    let mut wire = Vec::new();
    for label in domain.name.split('.') {
        wire.push(u8::try_from(label.len()).expect("domain labels are short"));
        wire.extend(label.bytes().map(|b| b.to_ascii_lowercase()));
    }
    wire.push(0);
    wire.reverse();
    if domain.matching == Match::Exact {
        wire.push(0);
    }
    wire
}

/// Why a pattern cannot be matched at the packet level, if it cannot: a wildcard pattern whose
/// first label is 45 or 48 to 57 bytes long (its length byte could be a `-` or a digit inside
/// a longer label of a name; see [`filter_common::dns::reversed_key`]), or a name a question
/// cannot carry.
pub fn unsupported(domain: &Domain) -> Option<String> {
    if wire_name(domain.name).is_none() {
        return Some(format!(
            "'{}' is not a name a DNS question can carry (labels of 1 to 63 letters, digits or '-', 255 bytes in all)",
            domain.name
        ));
    }
    let first = domain.name.split('.').next().unwrap_or("").len();
    if domain.matching == Match::Suffix && (first == 45 || (48..=57).contains(&first)) {
        return Some(format!(
            "'*.{}': a wildcard pattern's first label may not be 45 or 48 to 57 characters long (this one is {first}); name the domains below it instead",
            domain.name
        ));
    }
    None
}

/// `host` as a question name in wire format, lowercased (one trailing dot ignored), or `None`
/// when it is not a name a DNS question can carry (an empty label, a label over 63 bytes, over
/// 255 bytes in all).
pub fn wire_name(host: &str) -> Option<Name> {
    let host = host.strip_suffix('.').unwrap_or(host);
    let mut name = Name::ROOT;
    if host.is_empty() {
        return Some(name);
    }
    for label in host.split('.') {
        let len = label.len();
        if len == 0
            || len > 63
            || name.len + len + 1 > MAX_NAME
            || name.labels == MAX_LABELS
            || !label.bytes().all(filter_common::dns::label_byte_ok)
        {
            return None;
        }
        let at = name.len - 1;
        name.bytes[at] = len as u8;
        for (i, b) in label.bytes().enumerate() {
            name.bytes[at + 1 + i] = b.to_ascii_lowercase();
        }
        name.len += len + 1;
        name.labels += 1;
        name.bytes[name.len - 1] = 0;
    }
    Some(name)
}

/// The compiled table: every pattern's key with the mask of the sets it stands for (bit `i` for
/// set `i`), shorter patterns' sets folded into the longer ones they are prefixes of.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Table {
    entries: Vec<(Vec<u8>, u64)>,
}

impl Table {
    /// Compiles `sets` (set `i` gets bit `i`; at most 64).
    ///
    /// # Panics
    /// With more than 64 sets.
    pub fn new(sets: &[&[Domain]]) -> Self {
        assert!(sets.len() <= 64, "at most 64 domain sets");
        let mut entries: Vec<(Vec<u8>, u64)> = Vec::new();
        for (i, set) in sets.iter().enumerate() {
            for domain in *set {
                let key = pattern_key(domain);
                match entries.iter_mut().find(|(k, _)| *k == key) {
                    Some((_, mask)) => *mask |= 1 << i,
                    None => entries.push((key, 1 << i)),
                }
            }
        }
        let folded = entries
            .iter()
            .map(|(key, _)| {
                let mask = entries
                    .iter()
                    .filter(|(shorter, _)| key.starts_with(shorter))
                    .fold(0, |m, (_, bits)| m | bits);
                (key.clone(), mask)
            })
            .collect();
        Self { entries: folded }
    }

    /// The entries: each key (its prefix length is `8 * len` bits) and its mask, as the
    /// kernel's table will hold them.
    pub fn entries(&self) -> &[(Vec<u8>, u64)] {
        &self.entries
    }

    /// The sets that `name` is in: the mask of the longest entry that is a prefix of its
    /// reversed key, as a longest-prefix-match table answers; 0 when none is.
    pub fn lookup(&self, name: &Name) -> u64 {
        let mut key = [0u8; MAX_NAME + 1];
        let len = filter_common::dns::reversed_key(name, &mut key);
        // The key and the zero after it, which an exact name's pattern ends in.
        let key = &key[..(len + 1).min(MAX_NAME + 1)];
        self.entries
            .iter()
            .filter(|(k, _)| key.starts_with(k))
            .max_by_key(|(k, _)| k.len())
            .map_or(0, |(_, mask)| *mask)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domains::{ALL, List};

    fn exact(name: &'static str) -> Domain {
        Domain {
            matching: Match::Exact,
            name,
            ..ALL[0]
        }
    }

    fn suffix(name: &'static str) -> Domain {
        Domain {
            matching: Match::Suffix,
            name,
            ..ALL[0]
        }
    }

    fn sets_of(table: &Table, host: &str) -> u64 {
        table.lookup(&wire_name(host).unwrap())
    }

    #[test]
    fn patterns_match_by_whole_labels_as_the_pac_file_does() {
        let goto: Vec<Domain> = ALL
            .iter()
            .filter(|d| d.list == List::Essential)
            .copied()
            .collect();
        let training: Vec<Domain> = ALL
            .iter()
            .filter(|d| d.list == List::Training)
            .copied()
            .collect();
        let table = Table::new(&[&goto, &training]);
        // Names made of the tables' labels and lookalikes: every sequence of one to three.
        let mut labels: Vec<&str> = ALL.iter().flat_map(|d| d.name.split('.')).collect();
        labels.extend([
            "x", "notgoto", "gotox", "example", "net", "com", "GoTo", "Com",
        ]);
        labels.sort_unstable();
        labels.dedup();
        let mut names = vec![String::new()];
        let mut checked = 0;
        for _ in 0..3 {
            let mut longer = Vec::new();
            for n in &names {
                for l in &labels {
                    let name = if n.is_empty() {
                        (*l).to_owned()
                    } else {
                        format!("{l}.{n}")
                    };
                    longer.push(name);
                }
            }
            for host in &longer {
                let want = [&goto, &training]
                    .iter()
                    .enumerate()
                    .filter(|(_, set)| set.iter().any(|d| d.matches(host)))
                    .fold(0, |m, (i, _)| m | 1 << i);
                assert_eq!(sets_of(&table, host), want, "{host}");
                checked += 1;
            }
            names = longer;
        }
        eprintln!("{checked} names checked");
        assert!(checked > 10_000, "{checked} names");
        assert_eq!(sets_of(&table, "Global.GoTo.COM."), 1);
        assert_eq!(sets_of(&table, "goto.com.example.net"), 0);
    }

    #[test]
    fn nested_patterns_of_two_sets_fold_into_the_longer() {
        let wide = [suffix("example.com")];
        let narrow = [exact("api.example.com"), suffix("eu.example.com")];
        let table = Table::new(&[&wide, &narrow]);
        assert_eq!(sets_of(&table, "example.com"), 0b01);
        assert_eq!(sets_of(&table, "www.example.com"), 0b01);
        assert_eq!(sets_of(&table, "api.example.com"), 0b11);
        assert_eq!(sets_of(&table, "x.api.example.com"), 0b01);
        assert_eq!(sets_of(&table, "eu.example.com"), 0b11);
        assert_eq!(sets_of(&table, "a.b.eu.example.com"), 0b11);
        assert_eq!(sets_of(&table, "example.org"), 0);
        assert_eq!(sets_of(&table, ""), 0, "the root");
        assert_eq!(
            pattern_key(&exact("api.example.com")),
            b"\x00moc\x03elpmaxe\x07ipa\x03\x00"
        );
        assert_eq!(pattern_key(&suffix("goto.com")), b"\x00moc\x03otog\x04");
    }

    #[test]
    fn names_a_question_cannot_carry_are_none() {
        assert!(wire_name("a..b").is_none());
        assert!(wire_name(&"a".repeat(64)).is_none());
        let long = ["a"; 128].join(".");
        assert!(wire_name(&long).is_none(), "128 labels, 256 bytes");
        let most = ["a"; 127].join(".");
        assert_eq!(
            wire_name(&most).map(|n| (n.len, n.labels)),
            Some((255, 127))
        );
        assert_eq!(
            wire_name("GoTo.com.").unwrap().wire(),
            b"\x04goto\x03com\x00"
        );
    }
}
