//! The knobs of the randomised tests (`differential`, `differential_flows`): how many cases, and
//! a seed to replay, from the environment.

/// The number in environment variable `var` (underscores allowed, as in `1_000_000`), or
/// `default` when it is unset; a value that is not a number stops the test, naming it.
pub fn cases_from_env(var: &str, default: u64) -> u64 {
    std::env::var(var).ok().map_or(default, |v| {
        v.replace('_', "")
            .parse()
            .unwrap_or_else(|e| panic!("{var}={v}: {e}"))
    })
}

/// A seed as the tests print it (`0x` and hex, or decimal; underscores allowed), given in
/// environment variable `var`; a value that is not one stops the test, naming it.
pub fn parse_seed(var: &str, text: &str) -> u64 {
    let t = text.trim().replace('_', "");
    let parsed = match t.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16),
        None => t.parse(),
    };
    parsed.unwrap_or_else(|e| panic!("{var}={text}: {e}"))
}
