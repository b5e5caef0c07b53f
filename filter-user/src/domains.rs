//! The DNS domains GoTo needs, from the two domain tables of GoTo's "Minimal Firewall Settings"
//! (version 2.1): the essential ones, and those GoTo Training adds. Each carries what GoTo's document says
//! of it (use, transport protocols, whose addresses it resolves to); a cell the document leaves empty
//! is an empty list here, never a guess.
//!
//! Matching is by whole DNS labels: `*.goto.com` covers `goto.com` and every name under it, but
//! not `notgoto.com` nor `goto.com.example.net`; a name listed without a wildcard covers itself
//! only. Case and one trailing dot do not matter.

use std::fmt;

use serde::Serialize;

/// Which of the document's two tables a domain comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum List {
    /// Table 1: needed by every GoTo meeting.
    Essential,
    /// Table 2: needed by GoTo Training in addition.
    Training,
}

impl List {
    /// The name used in listings and JSON.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Essential => "essential",
            Self::Training => "training",
        }
    }
}

/// A transport protocol the document names for a domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl Transport {
    /// Lower-case name.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Udp => "udp",
        }
    }
}

/// Whose address space a domain's names resolve into, as the document says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Operator {
    /// GoTo's own networks.
    #[serde(rename = "GoTo")]
    GoTo,
    /// Amazon Web Services.
    #[serde(rename = "AWS")]
    Aws,
    /// Google.
    #[serde(rename = "Google")]
    Google,
}

impl Operator {
    /// The name as GoTo's document writes it.
    pub const fn name(self) -> &'static str {
        match self {
            Self::GoTo => "GoTo",
            Self::Aws => "AWS",
            Self::Google => "Google",
        }
    }
}

/// How a listed name covers host names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Match {
    /// `*.NAME`: NAME itself and every name below it.
    Suffix,
    /// `NAME`: that name only.
    Exact,
}

/// One domain of GoTo's document's tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Domain {
    /// The table it comes from.
    pub list: List,
    /// Its row in that table (one row of the Training table holds two domains).
    pub row: u8,
    /// The name without any wildcard, lower case.
    pub name: &'static str,
    /// How `name` covers host names.
    #[serde(rename = "match")]
    pub matching: Match,
    /// What GoTo uses it for.
    #[serde(rename = "use")]
    pub purpose: &'static str,
    /// Transport protocols to it; empty where GoTo's document does not say.
    pub protocols: &'static [Transport],
    /// Whose addresses it resolves to; empty where GoTo's document does not say.
    pub points_to: &'static [Operator],
}

impl Domain {
    /// The name as GoTo's document writes it: `*.goto.com`, `apis.google.com`.
    pub fn pattern(&self) -> String {
        self.to_string()
    }

    /// Whether `host` is covered (case-insensitive; one trailing dot ignored).
    pub fn matches(&self, host: &str) -> bool {
        let host = normalise(host);
        let host = host.as_bytes();
        let name = self.name.as_bytes();
        match self.matching {
            Match::Exact => host == name,
            Match::Suffix => {
                host == name
                    || (host.len() > name.len()
                        && host.ends_with(name)
                        && host[host.len() - name.len() - 1] == b'.')
            }
        }
    }
}

impl fmt::Display for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.matching {
            Match::Suffix => write!(f, "*.{}", self.name),
            Match::Exact => f.write_str(self.name),
        }
    }
}

/// `host` in lower case without one trailing dot.
fn normalise(host: &str) -> String {
    host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase()
}

const TCP: &[Transport] = &[Transport::Tcp];
const UDP_TCP: &[Transport] = &[Transport::Udp, Transport::Tcp];
const NOT_STATED_PROTOCOLS: &[Transport] = &[];
const NOT_STATED_OPERATORS: &[Operator] = &[];

const fn suffix(
    list: List,
    row: u8,
    name: &'static str,
    purpose: &'static str,
    protocols: &'static [Transport],
    points_to: &'static [Operator],
) -> Domain {
    Domain {
        list,
        row,
        name,
        matching: Match::Suffix,
        purpose,
        protocols,
        points_to,
    }
}

/// Every domain, essential first, in the order of GoTo's document.
pub const ALL: [Domain; 12] = [
    suffix(
        List::Essential,
        1,
        "goto.com",
        "the main GoTo domain",
        TCP,
        NOT_STATED_OPERATORS,
    ),
    suffix(
        List::Essential,
        2,
        "goto-rtc.com",
        "audio and video servers (some connections over WebSocket)",
        UDP_TCP,
        &[Operator::GoTo, Operator::Aws],
    ),
    suffix(
        List::Essential,
        3,
        "jive.com",
        "GoToConnect's general connections",
        UDP_TCP,
        NOT_STATED_OPERATORS,
    ),
    suffix(
        List::Essential,
        4,
        "getgo.com",
        "assorted services",
        TCP,
        &[Operator::Aws],
    ),
    suffix(
        List::Essential,
        5,
        "gotomeeting.com",
        "assorted services",
        TCP,
        &[Operator::GoTo, Operator::Aws],
    ),
    suffix(
        List::Essential,
        6,
        "logmeininc.com",
        "sign-in and authentication (critical)",
        NOT_STATED_PROTOCOLS,
        &[Operator::Aws],
    ),
    suffix(
        List::Essential,
        7,
        "expertcity.com",
        "audio and screen-sharing servers",
        TCP,
        &[Operator::GoTo],
    ),
    suffix(
        List::Training,
        1,
        "gototraining.com",
        "GoTo Training's central domain (Training only)",
        TCP,
        &[Operator::GoTo],
    ),
    suffix(
        List::Training,
        2,
        "firebase.app",
        "the poll editor, which can be opened during a session",
        TCP,
        &[Operator::Google],
    ),
    Domain {
        list: List::Training,
        row: 3,
        name: "apis.google.com",
        matching: Match::Exact,
        purpose: "sharing from Google Drive",
        protocols: TCP,
        points_to: &[Operator::Google],
    },
    suffix(
        List::Training,
        4,
        "youtube.com",
        "sharing YouTube videos",
        TCP,
        &[Operator::Google],
    ),
    suffix(
        List::Training,
        4,
        "googlevideo.com",
        "sharing YouTube videos",
        TCP,
        &[Operator::Google],
    ),
];

/// The essential domains, plus the GoTo Training ones when `training`.
pub fn selected(training: bool) -> impl Iterator<Item = &'static Domain> {
    ALL.iter()
        .filter(move |d| training || d.list == List::Essential)
}

/// The first domain among [`selected`] that covers `host`.
pub fn find(host: &str, training: bool) -> Option<&'static Domain> {
    selected(training).find(|d| d.matches(host))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn by_pattern(pattern: &str) -> &'static Domain {
        ALL.iter()
            .find(|d| d.pattern() == pattern)
            .unwrap_or_else(|| panic!("{pattern} is not listed"))
    }

    #[test]
    fn every_domain_of_the_document_is_listed_once_in_its_table() {
        let essential = [
            "*.goto.com",
            "*.goto-rtc.com",
            "*.jive.com",
            "*.getgo.com",
            "*.gotomeeting.com",
            "*.logmeininc.com",
            "*.expertcity.com",
        ];
        let training = [
            "*.gototraining.com",
            "*.firebase.app",
            "apis.google.com",
            "*.youtube.com",
            "*.googlevideo.com",
        ];
        let listed = |list: List| -> Vec<String> {
            ALL.iter()
                .filter(|d| d.list == list)
                .map(Domain::pattern)
                .collect()
        };
        assert_eq!(listed(List::Essential), essential);
        assert_eq!(listed(List::Training), training);
        assert_eq!(selected(false).count(), 7);
        assert_eq!(selected(true).count(), 12);
    }

    #[test]
    fn rows_follow_gotos_document() {
        let rows: Vec<(List, u8)> = ALL.iter().map(|d| (d.list, d.row)).collect();
        let mut expected: Vec<(List, u8)> = (1..=7).map(|r| (List::Essential, r)).collect();
        expected.extend([1, 2, 3, 4, 4].map(|r| (List::Training, r)));
        assert_eq!(rows, expected);
    }

    #[test]
    fn protocols_are_as_gotos_document_says() {
        use Transport::{Tcp, Udp};
        for (pattern, protocols) in [
            ("*.goto.com", &[Tcp][..]),
            ("*.goto-rtc.com", &[Udp, Tcp]),
            ("*.jive.com", &[Udp, Tcp]),
            ("*.getgo.com", &[Tcp]),
            ("*.gotomeeting.com", &[Tcp]),
            // GoTo's document gives no protocol for the authentication domain.
            ("*.logmeininc.com", &[]),
            ("*.expertcity.com", &[Tcp]),
            ("*.gototraining.com", &[Tcp]),
            ("*.firebase.app", &[Tcp]),
            ("apis.google.com", &[Tcp]),
            ("*.youtube.com", &[Tcp]),
            ("*.googlevideo.com", &[Tcp]),
        ] {
            assert_eq!(by_pattern(pattern).protocols, protocols, "{pattern}");
        }
    }

    #[test]
    fn address_owners_are_as_the_seed_says() {
        use Operator::{Aws, GoTo, Google};
        for (pattern, owners) in [
            // The seed leaves these two cells empty.
            ("*.goto.com", &[][..]),
            ("*.jive.com", &[]),
            ("*.goto-rtc.com", &[GoTo, Aws]),
            ("*.getgo.com", &[Aws]),
            ("*.gotomeeting.com", &[GoTo, Aws]),
            ("*.logmeininc.com", &[Aws]),
            ("*.expertcity.com", &[GoTo]),
            ("*.gototraining.com", &[GoTo]),
            ("*.firebase.app", &[Google]),
            ("apis.google.com", &[Google]),
            ("*.youtube.com", &[Google]),
            ("*.googlevideo.com", &[Google]),
        ] {
            assert_eq!(by_pattern(pattern).points_to, owners, "{pattern}");
        }
    }

    #[test]
    fn uses_carry_the_seed_facts() {
        for (pattern, words) in [
            ("*.goto.com", &["main"][..]),
            ("*.goto-rtc.com", &["audio", "video", "WebSocket"]),
            ("*.jive.com", &["GoToConnect"]),
            ("*.getgo.com", &["services"]),
            ("*.gotomeeting.com", &["services"]),
            ("*.logmeininc.com", &["authentication", "critical"]),
            ("*.expertcity.com", &["audio", "screen-sharing"]),
            ("*.gototraining.com", &["central", "Training only"]),
            ("*.firebase.app", &["poll", "session"]),
            ("apis.google.com", &["Google Drive"]),
            ("*.youtube.com", &["YouTube"]),
            ("*.googlevideo.com", &["YouTube"]),
        ] {
            let purpose = by_pattern(pattern).purpose;
            for word in words {
                assert!(
                    purpose.contains(word),
                    "{pattern}: {word:?} not in {purpose:?}"
                );
            }
        }
    }

    #[test]
    fn names_are_lower_case_without_wildcards() {
        for d in &ALL {
            assert_eq!(d.name, d.name.to_ascii_lowercase());
            assert!(!d.name.contains('*') && !d.name.starts_with('.') && !d.name.ends_with('.'));
        }
    }

    #[test]
    fn wildcard_covers_the_apex_and_names_below_it_only() {
        let goto = by_pattern("*.goto.com");
        for host in [
            "goto.com",
            "x.goto.com",
            "a.b.goto.com",
            "GoTo.COM",
            "X.Goto.Com.",
        ] {
            assert!(goto.matches(host), "{host}");
        }
        for host in [
            "notgoto.com",
            "xgoto.com",
            "goto.com.example.net",
            "goto.co",
            "oto.com",
            "goto.com..",
            ".com",
            "",
        ] {
            assert!(!goto.matches(host), "{host}");
        }
    }

    #[test]
    fn a_name_without_wildcard_covers_itself_only() {
        let apis = by_pattern("apis.google.com");
        assert!(apis.matches("apis.google.com"));
        assert!(apis.matches("APIS.Google.com."));
        for host in [
            "x.apis.google.com",
            "google.com",
            "www.google.com",
            "xapis.google.com",
        ] {
            assert!(!apis.matches(host), "{host}");
        }
    }

    #[test]
    fn training_domains_only_when_asked() {
        assert!(find("www.youtube.com", false).is_none());
        assert_eq!(
            find("rr1.googlevideo.com", true).map(Domain::pattern),
            Some("*.googlevideo.com".to_owned())
        );
        assert_eq!(
            find("global.gotomeeting.com", false).map(Domain::pattern),
            Some("*.gotomeeting.com".to_owned())
        );
        assert!(find("example.com", true).is_none());
    }
}
