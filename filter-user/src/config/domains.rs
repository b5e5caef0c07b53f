//! The file's domain rules (issue 13): `https_to`, the `[domains]` table (how long learned
//! addresses live, how many are held, the operator's sets) and the sets `[[rules]]` name,
//! checked with their places in hand.

use super::{
    load::Locator,
    raw::{ModeName, RawConfig},
    resolve::DomainSettings,
    rules::set_name_ok,
};
use crate::{
    domain_sets::{GOTO, GOTO_TRAINING, Pattern, builtin},
    error::UsageError,
    limits,
    operator::OperatorRule,
    scenario::{DomainSet, HttpsDst, TurnDst},
};

/// What the file says of domain rules.
pub(super) struct FileDomains {
    /// `https_to`.
    pub(super) https_to: Option<HttpsDst>,
    /// `[domains] ttl_min`, `ttl_max`, `table_size`.
    pub(super) settings: DomainSettings,
    /// `[domains.sets]`, then the sets of the rules' patterns.
    pub(super) sets: Vec<DomainSet>,
}

impl Locator<'_> {
    /// Checks the file's domain settings; `rules` are the checked `[[rules]]`, `rule_sets` the
    /// sets their patterns make (each with its rule's line), and `turn_dst` the checked `[turn]
    /// destination`.
    pub(super) fn domains(
        &self,
        raw: &RawConfig,
        rules: &[(OperatorRule, usize)],
        rule_sets: Vec<(DomainSet, usize)>,
        turn_dst: Option<TurnDst>,
    ) -> Result<FileDomains, UsageError> {
        let https_to = raw
            .https_to
            .as_ref()
            .map(|h| match h.get_ref().as_str() {
                "any" => Ok(HttpsDst::Any),
                "domains" => Ok(HttpsDst::Domains),
                other => Err(self.error(
                    &h.span(),
                    format!("https_to = \"{other}\": use \"any\" (TCP 443 to any address) or \"domains\" (only to addresses learned from DNS answers for the GoTo domains)"),
                )),
            })
            .transpose()?;
        let d = &raw.domains;
        let settings = DomainSettings {
            ttl_min: self.bounded(
                d.ttl_min.as_ref(),
                "[domains] ttl_min",
                limits::DNS_TTL_MIN,
                "seconds",
            )?,
            ttl_max: self.bounded(
                d.ttl_max.as_ref(),
                "[domains] ttl_max",
                limits::DNS_TTL_MAX,
                "seconds",
            )?,
            table_size: self.bounded(
                d.table_size.as_ref(),
                "[domains] table_size",
                limits::LEARNED_TABLE_SIZE,
                "addresses",
            )?,
        };
        if let (Some(min), Some(max), Some(at)) = (settings.ttl_min, settings.ttl_max, &d.ttl_min)
            && min > max
        {
            return Err(self.error(
                &at.span(),
                format!("[domains] ttl_min = {min} is above ttl_max = {max}: give a minimum at most the maximum"),
            ));
        }
        let mut sets: Vec<DomainSet> = Vec::new();
        if let Some(table) = &d.sets {
            for (name, list) in table.get_ref() {
                if !set_name_ok(name) {
                    return Err(self.error(
                        &list.span(),
                        format!("[domains.sets] '{name}': a set name is 1 to 40 lowercase letters, digits and '-', e.g. office"),
                    ));
                }
                if builtin(name).is_some() {
                    return Err(self.error(
                        &list.span(),
                        format!("[domains.sets] '{name}' is a built-in set (GoTo's domains, as `gotofw domains` lists them): choose another name"),
                    ));
                }
                if list.get_ref().is_empty() {
                    return Err(self.error(
                        &list.span(),
                        format!("[domains.sets] {name} = [] holds no pattern: list names such as \"*.example.com\" or \"api.example.org\", or remove it"),
                    ));
                }
                let mut patterns = Vec::new();
                for item in list.get_ref() {
                    let pattern = Pattern::parse(item.get_ref()).map_err(|why| {
                        self.error(&item.span(), format!("[domains.sets] {name}: {why}"))
                    })?;
                    if !patterns.contains(&pattern.text()) {
                        patterns.push(pattern.text());
                    }
                }
                sets.push(DomainSet {
                    name: name.clone(),
                    patterns,
                });
            }
        }
        for (set, line) in rule_sets {
            if sets.iter().any(|s| s.name == set.name) {
                return Err(self.at_line(
                    line,
                    format!("[[rules]] '{}': its patterns make a domain set named after it, and [domains.sets] defines '{}' too: rename one of them", set.name, set.name),
                ));
            }
            sets.push(set);
        }
        let mut named: Vec<&str> = Vec::new();
        for (rule, line) in rules {
            for set in &rule.domains {
                let known = builtin(set).is_some() || sets.iter().any(|s| s.name == *set);
                if !known {
                    return Err(self.at_line(
                        *line,
                        format!("[[rules]] '{}': domains: '{set}' is not a domain set: define it under [domains.sets] (e.g. {set} = [\"*.example.com\"]), or use {GOTO} or {GOTO_TRAINING}", rule.name),
                    ));
                }
                if !named.contains(&set.as_str()) {
                    named.push(set);
                }
                if named.len() > filter_common::MAX_DOMAIN_SETS {
                    return Err(self.at_line(
                        *line,
                        format!("[[rules]] '{}' names a domain set past the {} a filter holds: merge sets, or name fewer", rule.name, filter_common::MAX_DOMAIN_SETS),
                    ));
                }
            }
        }
        self.domains_take_effect(raw, rules, https_to, turn_dst)?;
        Ok(FileDomains {
            https_to,
            settings,
            sets,
        })
    }

    /// Refuses domain rules under the file's own stateless or ingress-only `mode`, at the line
    /// that asks for one.
    fn domains_take_effect(
        &self,
        raw: &RawConfig,
        rules: &[(OperatorRule, usize)],
        https_to: Option<HttpsDst>,
        turn_dst: Option<TurnDst>,
    ) -> Result<(), UsageError> {
        let Some(mode) = raw.mode.as_ref() else {
            return Ok(());
        };
        let name = *mode.get_ref();
        if name == ModeName::Stateful {
            return Ok(());
        }
        let why = format!(
            "needs stateful mode, and the file says mode = \"{}\" (domain rules learn from the answers to DNS queries the egress program saw leave, which only stateful mode tracks): set mode = \"stateful\", or",
            name.text()
        );
        if let (Some(HttpsDst::Domains), Some(h)) = (https_to, &raw.https_to) {
            return Err(self.error(
                &h.span(),
                format!("https_to = \"domains\" {why} use https_to = \"any\""),
            ));
        }
        if let (Some(TurnDst::Domains), Some(t)) = (turn_dst, &raw.turn.destination) {
            return Err(self.error(
                &t.span(),
                format!("[turn] destination = \"domains\" {why} remove it"),
            ));
        }
        if let Some((rule, line)) = rules.iter().find(|(r, _)| !r.domains.is_empty()) {
            return Err(self.at_line(
                *line,
                format!(
                    "[[rules]] '{}': domains {why} give the rule networks",
                    rule.name
                ),
            ));
        }
        Ok(())
    }
}
