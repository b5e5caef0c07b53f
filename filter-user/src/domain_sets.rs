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

use std::collections::BTreeMap;

use filter_common::{
    MAX_DOMAIN_SETS,
    dns::{MAX_LABELS, MAX_NAME, Name},
    learn::DomainEntry,
};

use crate::domains::{ALL, Domain, List, Match};

/// The built-in set of GoTo's Table 1 (the essential domains `gotofw domains` lists).
pub const GOTO: &str = "goto";
/// The built-in set of GoTo's Table 2 (the domains GoTo Training adds).
pub const GOTO_TRAINING: &str = "goto-training";

/// One pattern of a domain set: `*.example.com` (the name and every name below it, by whole
/// labels) or `api.example.org` (that name only), as `gotofw domains` and the PAC file read
/// them. The name is kept lower case, without a trailing dot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pattern {
    /// The name without the wildcard.
    pub name: String,
    /// Whether it covers the names below it too.
    pub matching: Match,
}

impl Pattern {
    /// The pattern of one of GoTo's domains.
    pub fn of(domain: &Domain) -> Self {
        Self {
            name: domain.name.to_owned(),
            matching: domain.matching,
        }
    }

    /// Reads `text` (`*.example.com`, `api.example.org`; case and one trailing dot ignored);
    /// the error says what is wrong and what to write instead.
    pub fn parse(text: &str) -> Result<Self, String> {
        let lower = text.trim().to_ascii_lowercase();
        let (name, matching) = match lower.strip_prefix("*.") {
            Some(rest) => (rest, Match::Suffix),
            None => (lower.as_str(), Match::Exact),
        };
        let name = name.strip_suffix('.').unwrap_or(name);
        if name.is_empty() || name.contains('*') {
            return Err(format!(
                "'{text}' is not a domain pattern: write a name (\"api.example.org\", that name only) or \"*.\" and a name (\"*.example.com\", it and every name below it)"
            ));
        }
        let pattern = Self {
            name: name.to_owned(),
            matching,
        };
        match unsupported_pattern(&pattern) {
            Some(why) => Err(why),
            None => Ok(pattern),
        }
    }

    /// The pattern as operators write it: `*.example.com` or `api.example.org`.
    pub fn text(&self) -> String {
        match self.matching {
            Match::Suffix => format!("*.{}", self.name),
            Match::Exact => self.name.clone(),
        }
    }

    /// Its trie key: the name's wire form reversed byte by byte
    /// ([`filter_common::dns::reversed_key`]), then one more zero when it matches the name only.
    pub fn key(&self) -> Vec<u8> {
        key_of(&self.name, self.matching)
    }
}

/// The patterns of the built-in set `name` (`goto`: GoTo's Table 1, `goto-training`: Table
/// 2), the list `gotofw domains` prints; `None` for any other name.
pub fn builtin(name: &str) -> Option<Vec<Pattern>> {
    let list = match name {
        GOTO => List::Essential,
        GOTO_TRAINING => List::Training,
        _ => return None,
    };
    Some(
        ALL.iter()
            .filter(|d| d.list == list)
            .map(Pattern::of)
            .collect(),
    )
}

fn key_of(name: &str, matching: Match) -> Vec<u8> {
    let mut wire = Vec::new();
    for label in name.split('.') {
        wire.push(u8::try_from(label.len()).expect("domain labels are short"));
        wire.extend(label.bytes().map(|b| b.to_ascii_lowercase()));
    }
    wire.push(0);
    wire.reverse();
    if matching == Match::Exact {
        wire.push(0);
    }
    wire
}

/// The key of `domain`'s pattern: its name's wire form reversed byte by byte
/// ([`filter_common::dns::reversed_key`]), then one more zero when it matches the name only.
pub fn pattern_key(domain: &Domain) -> Vec<u8> {
    key_of(domain.name, domain.matching)
}

/// Why a pattern cannot be matched at the packet level, if it cannot: a wildcard pattern whose
/// first label is 45 or 48 to 57 bytes long (its length byte could be a `-` or a digit inside
/// a longer label of a name; see [`filter_common::dns::reversed_key`]), or a name a question
/// cannot carry.
pub fn unsupported(domain: &Domain) -> Option<String> {
    unsupported_pattern(&Pattern::of(domain))
}

/// [`unsupported`] for any pattern.
pub fn unsupported_pattern(pattern: &Pattern) -> Option<String> {
    if pattern.name.is_empty() || wire_name(&pattern.name).is_none() {
        return Some(format!(
            "'{}' is not a name a DNS question can carry (labels of 1 to 63 letters, digits or '-', 255 bytes in all)",
            pattern.text()
        ));
    }
    let first = pattern.name.split('.').next().unwrap_or("").len();
    if pattern.matching == Match::Suffix && (first == 45 || (48..=57).contains(&first)) {
        return Some(format!(
            "'*.{}': a wildcard pattern's first label may not be 45 or 48 to 57 characters long (this one is {first}); name the domains below it instead",
            pattern.name
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
/// set `i`), shorter patterns' sets folded into the longer ones they are prefixes of, and per
/// set the index of the longest pattern of that set that matches the key.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Table {
    entries: Vec<(Vec<u8>, u64)>,
    /// Per entry, per set of its mask, the index of that set's longest matching pattern.
    patterns: Vec<Vec<u16>>,
}

impl Table {
    /// Compiles `sets` of GoTo's domains (set `i` gets bit `i`; at most 64).
    ///
    /// # Panics
    /// With more than 64 sets.
    pub fn new(sets: &[&[Domain]]) -> Self {
        let sets: Vec<Vec<Pattern>> = sets
            .iter()
            .map(|set| set.iter().map(Pattern::of).collect())
            .collect();
        Self::of_patterns(&sets)
    }

    /// Compiles `sets` (set `i` gets bit `i`; at most 64).
    ///
    /// # Panics
    /// With more than 64 sets, or a set of more than 65,536 patterns.
    pub fn of_patterns(sets: &[Vec<Pattern>]) -> Self {
        assert!(sets.len() <= 64, "at most 64 domain sets");
        // Each set's patterns with their keys and indices.
        let keyed: Vec<Vec<(Vec<u8>, u16)>> = sets
            .iter()
            .map(|set| {
                set.iter()
                    .enumerate()
                    .map(|(i, p)| (p.key(), u16::try_from(i).expect("at most 65,536 patterns")))
                    .collect()
            })
            .collect();
        let mut keys: Vec<Vec<u8>> = keyed.iter().flatten().map(|(k, _)| k.clone()).collect();
        keys.sort();
        keys.dedup();
        let mut entries = Vec::new();
        let mut patterns = Vec::new();
        for key in keys {
            let mut mask = 0u64;
            let mut indices = vec![0u16; sets.len()];
            for (set, list) in keyed.iter().enumerate() {
                // The longest pattern of this set that is a prefix of the key (the first of
                // equal ones).
                let best = list
                    .iter()
                    .filter(|(k, _)| key.starts_with(k))
                    .max_by(|(a, ia), (b, ib)| a.len().cmp(&b.len()).then(ib.cmp(ia)));
                if let Some((_, index)) = best {
                    mask |= 1 << set;
                    indices[set] = *index;
                }
            }
            entries.push((key, mask));
            patterns.push(indices);
        }
        Self { entries, patterns }
    }

    /// The entries: each key (its prefix length is `8 * len` bits) and its mask, as the
    /// kernel's table will hold them.
    pub fn entries(&self) -> &[(Vec<u8>, u64)] {
        &self.entries
    }

    /// The kernel's trie entries: each key with its sets and, per set, the index of the
    /// longest pattern of that set matching it.
    ///
    /// # Panics
    /// With more than [`MAX_DOMAIN_SETS`] sets.
    pub fn domain_entries(&self) -> BTreeMap<Vec<u8>, DomainEntry> {
        self.entries
            .iter()
            .zip(&self.patterns)
            .map(|((key, mask), indices)| {
                assert!(indices.len() <= MAX_DOMAIN_SETS, "too many domain sets");
                let mut entry = DomainEntry {
                    sets: u32::try_from(*mask).expect("at most 8 sets"),
                    ..DomainEntry::default()
                };
                for (slot, index) in entry.patterns.iter_mut().zip(indices) {
                    *slot = *index;
                }
                (key.clone(), entry)
            })
            .collect()
    }

    /// The sets that `name` is in: the mask of the longest entry that is a prefix of its
    /// reversed key, as a longest-prefix-match table answers; 0 when none is.
    pub fn lookup(&self, name: &Name) -> u64 {
        self.lookup_entry(name).map_or(0, |(mask, _)| mask)
    }

    /// The longest entry that is a prefix of `name`'s reversed key: its mask and per-set
    /// pattern indices.
    pub fn lookup_entry(&self, name: &Name) -> Option<(u64, &[u16])> {
        let mut key = [0u8; MAX_NAME + 1];
        let len = filter_common::dns::reversed_key(name, &mut key);
        // The key and the zero after it, which an exact name's pattern ends in.
        let key = &key[..(len + 1).min(MAX_NAME + 1)];
        self.entries
            .iter()
            .zip(&self.patterns)
            .filter(|((k, _), _)| key.starts_with(k))
            .max_by_key(|((k, _), _)| k.len())
            .map(|((_, mask), indices)| (*mask, indices.as_slice()))
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
