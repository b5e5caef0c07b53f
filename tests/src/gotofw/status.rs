//! Counters read out of a `status --json` document.

use serde_json::Value;

/// The `(packets, bytes)` of the counter called `name` in a `status --json`
/// document of one interface.
///
/// # Panics
/// When the document has no such counter (the message lists those it has).
pub fn counter(status: &Value, name: &str) -> (u64, u64) {
    let counters = status["interfaces"][0]["counters"]
        .as_array()
        .unwrap_or_else(|| panic!("no interfaces[0].counters in {status}"));
    let found = counters
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| {
            let names: Vec<&str> = counters.iter().filter_map(|c| c["name"].as_str()).collect();
            panic!("no counter {name:?} in status; it has {names:?}")
        });
    let field = |key: &str| {
        found[key]
            .as_u64()
            .unwrap_or_else(|| panic!("counter {name:?} has no numeric {key:?}: {found}"))
    };
    (field("packets"), field("bytes"))
}

/// The `(packets, bytes)` of the counter called `name` for `direction` (`ingress` or `egress`)
/// in a `status --json` document of one interface.
pub fn counter_in(status: &Value, name: &str, direction: &str) -> (u64, u64) {
    let counters = status["interfaces"][0]["counters"]
        .as_array()
        .unwrap_or_else(|| panic!("no interfaces[0].counters in {status}"));
    let found = counters
        .iter()
        .find(|c| c["name"] == name && c["direction"] == direction)
        .unwrap_or_else(|| panic!("no {direction} counter {name:?} in {status}"));
    (
        found["packets"].as_u64().unwrap_or(0),
        found["bytes"].as_u64().unwrap_or(0),
    )
}
