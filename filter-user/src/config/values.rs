//! Parsers of the file's values (port ranges, port lists) and of serde's messages, in the
//! operator's words.

use crate::scenario::PortRange;

/// `FIRST-LAST` or `PORT`, ports 1-65535, first not above last.
pub(super) fn parse_range(text: &str) -> Option<PortRange> {
    let port = |p: &str| p.trim().parse::<u16>().ok().filter(|p| *p != 0);
    let range = match text.split_once('-') {
        Some((a, b)) => PortRange {
            first: port(a)?,
            last: port(b)?,
        },
        None => PortRange::one(port(text)?),
    };
    (range.first <= range.last).then_some(range)
}

/// A rule's `ports`: a number, a string of ports and ranges separated by commas, or a list of
/// numbers and such strings. The error says what is wrong.
pub(super) fn parse_ports(value: &toml::Value) -> Result<Vec<PortRange>, String> {
    let one = |v: &toml::Value| -> Result<Vec<PortRange>, String> {
        match v {
            toml::Value::Integer(n) => u16::try_from(*n)
                .ok()
                .filter(|p| *p != 0)
                .map(|p| vec![PortRange::one(p)])
                .ok_or_else(|| format!("holds {n}, which is not a port")),
            toml::Value::String(s) => s
                .split(',')
                .map(|part| {
                    parse_range(part).ok_or_else(|| {
                        format!("holds \"{}\", which is not a port or range", part.trim())
                    })
                })
                .collect(),
            other => Err(format!("holds {}, which is not a port", shown(other))),
        }
    };
    let ports = match value {
        toml::Value::Array(items) if items.is_empty() => return Err("is empty".to_owned()),
        toml::Value::Array(items) => {
            let mut all = Vec::new();
            for item in items {
                all.extend(one(item)?);
            }
            all
        }
        other => one(other)?,
    };
    Ok(ports)
}

/// A value as the file would write it (a list or table by its kind).
pub(super) fn shown(value: &toml::Value) -> String {
    match value {
        toml::Value::String(s) => format!("\"{s}\""),
        toml::Value::Integer(n) => n.to_string(),
        toml::Value::Float(x) => x.to_string(),
        toml::Value::Boolean(b) => b.to_string(),
        toml::Value::Datetime(d) => d.to_string(),
        toml::Value::Array(_) => "a list".to_owned(),
        toml::Value::Table(_) => "a table".to_owned(),
    }
}

pub(super) fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The setting (`key = value`) on the line of byte `offset` of `text`, as written; empty when
/// that line is not one.
pub(super) fn setting_at(text: &str, offset: usize) -> String {
    let offset = offset.min(text.len());
    let start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let end = text[offset..].find('\n').map_or(text.len(), |i| offset + i);
    let line = text[start..end].trim();
    let line = line.split(" #").next().unwrap_or(line).trim();
    if line.contains('=') && !line.starts_with('[') {
        line.to_owned()
    } else {
        String::new()
    }
}

/// serde's words for a value of the wrong type (`invalid type: floating point `1.5`, expected
/// i64`, which names Rust's types) in an operator's (`udp_timeout = 1.5: give a whole number,
/// not a decimal number`), for `setting`, the line as written.
pub(super) fn type_words(message: &str, setting: &str) -> String {
    let lead = if setting.is_empty() {
        String::new()
    } else {
        format!("{setting}: ")
    };
    if message == "wanted string or table" {
        return format!("{lead}give one of the names this key takes, in quotes");
    }
    let Some((found, expected)) = message
        .strip_prefix("invalid type: ")
        .and_then(|rest| rest.rsplit_once(", expected "))
    else {
        return message.to_owned();
    };
    let value = found
        .split_once(['`', '"'])
        .map(|(_, v)| v.trim_end_matches(['`', '"']));
    let kind = if found.contains(" as i128") || found.contains(" as u128") {
        "a number too large for any setting"
    } else if found.starts_with("floating point") {
        "a decimal number"
    } else if found.starts_with("integer") {
        "a number"
    } else if found.starts_with("string") {
        "a string"
    } else if found.starts_with("boolean") {
        "true or false"
    } else if found.starts_with("sequence") {
        "a list"
    } else if found.starts_with("map") {
        "a table"
    } else {
        found
    };
    let wanted = match expected {
        "i64" | "i32" | "u64" | "u32" | "u16" | "u8" | "usize" => "a whole number",
        "a sequence" => "a list in brackets, e.g. [\"...\"]",
        "a boolean" => "true or false",
        "a string" => "a quoted string",
        "a map" => "a table",
        other if other.starts_with("struct ") => "a table",
        other => other,
    };
    let shown = match (setting.is_empty(), value) {
        (true, Some(v)) if found.starts_with("string") => format!("\"{v}\": "),
        (true, Some(v)) => format!("{v}: "),
        _ => lead,
    };
    format!("{shown}give {wanted}, not {kind}")
}
