//! `gotofw domains`: the DNS domains GoTo needs, as the two tables of GoTo's document give them.

use std::fmt::Write as _;

use serde::Serialize;

use crate::{
    cli::{DomainsArgs, Format},
    domains::{self, Domain, List, Operator, Transport},
    output::{json, print, table},
};

/// Version of the JSON layout; fields are only ever added.
const JSON_VERSION: u32 = 1;

#[derive(Serialize)]
struct Listing {
    version: u32,
    training: bool,
    domains: Vec<DomainInfo>,
}

#[derive(Serialize)]
struct DomainInfo {
    /// As GoTo's document writes it, e.g. `*.goto.com`.
    pattern: String,
    #[serde(flatten)]
    domain: &'static Domain,
}

fn listing(training: bool) -> Listing {
    Listing {
        version: JSON_VERSION,
        training,
        domains: domains::selected(training)
            .map(|domain| DomainInfo {
                pattern: domain.pattern(),
                domain,
            })
            .collect(),
    }
}

fn joined<T: Copy>(items: &[T], name: fn(T) -> &'static str) -> String {
    if items.is_empty() {
        return "-".to_owned();
    }
    items
        .iter()
        .map(|&i| name(i))
        .collect::<Vec<_>>()
        .join(", ")
}

fn section(out: &mut String, title: &str, list: List, training: bool) {
    let _ = writeln!(out, "{title}");
    let mut rows = vec![
        ["#", "DOMAIN", "USE", "PROTOCOLS", "POINTS TO"]
            .map(String::from)
            .to_vec(),
    ];
    for d in domains::selected(training).filter(|d| d.list == list) {
        rows.push(vec![
            d.row.to_string(),
            d.pattern(),
            d.purpose.to_owned(),
            joined(d.protocols, Transport::name),
            joined(d.points_to, Operator::name),
        ]);
    }
    out.push_str(&table(&rows));
}

/// The plain-text listing.
pub fn plain(training: bool) -> String {
    let mut out = String::new();
    section(
        &mut out,
        "Essential domains (every GoTo meeting needs them):",
        List::Essential,
        training,
    );
    out.push('\n');
    if training {
        section(
            &mut out,
            "GoTo Training needs these as well:",
            List::Training,
            training,
        );
        out.push('\n');
    } else {
        let more = domains::ALL
            .iter()
            .filter(|d| d.list == List::Training)
            .count();
        let _ = writeln!(
            out,
            "GoTo Training needs {more} more domains: add --training.\n"
        );
    }
    out.push_str(
        "*.NAME covers NAME and every name below it; a name without * covers itself only.\n\
         -: GoTo's document does not say.\n\
         Keep these domains out of TLS interception: signaling always runs over TCP 443.\n\
         `gotofw pac` writes a proxy.pac that routes them.\n",
    );
    out
}

/// Runs the command.
pub fn run(args: &DomainsArgs) -> anyhow::Result<()> {
    let text = match args.format {
        Format::Json => json(&listing(args.training))?,
        Format::Plain => plain(args.training),
    };
    Ok(print(&text)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lists_patterns_and_document_cells() {
        let v = serde_json::to_value(listing(true)).unwrap();
        let domains = v["domains"].as_array().unwrap();
        assert_eq!(domains.len(), 12);
        let rtc = &domains[1];
        assert_eq!(rtc["pattern"], "*.goto-rtc.com");
        assert_eq!(rtc["name"], "goto-rtc.com");
        assert_eq!(rtc["match"], "suffix");
        assert_eq!(rtc["list"], "essential");
        assert_eq!(rtc["protocols"], serde_json::json!(["udp", "tcp"]));
        assert_eq!(rtc["points_to"], serde_json::json!(["GoTo", "AWS"]));
        let apis = &domains[9];
        assert_eq!(apis["pattern"], "apis.google.com");
        assert_eq!(apis["match"], "exact");
        assert_eq!(apis["list"], "training");
        assert_eq!(listing(false).domains.len(), 7);
    }

    #[test]
    fn plain_marks_unstated_cells_and_training() {
        let text = plain(false);
        assert!(text.contains("*.logmeininc.com"), "{text}");
        assert!(!text.contains("youtube"), "{text}");
        assert!(text.contains("add --training"), "{text}");
        let auth = text.lines().find(|l| l.contains("logmeininc")).unwrap();
        assert!(auth.contains(" -  "), "{auth}");
        let text = plain(true);
        assert!(text.contains("*.googlevideo.com") && text.contains("apis.google.com"));
    }
}
