//! Names for namespaces and interfaces that do not collide, within a run or
//! between test binaries running at the same time.

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::{SystemTime, UNIX_EPOCH},
};

/// The longest interface name Linux accepts (`IFNAMSIZ` - 1).
pub const MAX_NAME_LEN: usize = 15;

/// Characters of base-36 encoding for the process id: Linux pids are below
/// 2^22 = 4194304 < 36^5.
const PID_LEN: usize = 5;
/// Characters of the per-process counter (46656 names before it wraps).
const COUNTER_LEN: usize = 3;
/// Characters of time-derived noise, against pid reuse across runs and pid
/// namespaces that share `/run/netns`.
const NOISE_LEN: usize = 2;
/// How much of the prefix is kept.
const PREFIX_LEN: usize = MAX_NAME_LEN - PID_LEN - COUNTER_LEN - NOISE_LEN;

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A name unique to this process and call, at most [`MAX_NAME_LEN`] (15)
/// bytes, so it works for interfaces as well as namespaces.
///
/// It is the first 5 bytes of `prefix` (characters other than ASCII
/// alphanumerics, `-`, `_` and `.` become `-`), then the process id, a
/// per-process counter and two characters derived from the clock, each in
/// fixed-width base 36. Two processes cannot produce the same name, since their
/// pids differ and every field has a fixed width.
pub fn unique_name(prefix: &str) -> String {
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.subsec_nanos());
    let noise = u64::from(nanos ^ (nanos >> 13)) ^ count.wrapping_mul(0x9e37_79b9);

    let mut name: String = prefix
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '-'
            }
        })
        .take(PREFIX_LEN)
        .collect();
    push_base36(&mut name, u64::from(std::process::id()), PID_LEN);
    push_base36(&mut name, count, COUNTER_LEN);
    push_base36(&mut name, noise, NOISE_LEN);
    name
}

/// Appends the lowest `width` base-36 digits of `value`, zero-padded.
fn push_base36(out: &mut String, mut value: u64, width: usize) {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let start = out.len();
    for _ in 0..width {
        out.insert(start, char::from(DIGITS[(value % 36) as usize]));
        value /= 36;
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn names_fit_an_interface_name() {
        for prefix in ["", "a", "gw", "very-long-prefix-indeed", "éàü", "x/y z"] {
            let name = unique_name(prefix);
            assert!(
                name.len() <= MAX_NAME_LEN,
                "{name:?} is {} bytes",
                name.len()
            );
            assert!(!name.contains(['/', ' ', ':']), "{name:?}");
        }
    }

    #[test]
    fn names_keep_a_short_prefix() {
        assert!(unique_name("lab").starts_with("lab"));
        assert!(unique_name("gateway").starts_with("gatew"));
        assert!(unique_name("x/y").starts_with("x-y"));
    }

    #[test]
    fn names_do_not_repeat() {
        let names: HashSet<String> = (0..5000).map(|_| unique_name("t")).collect();
        assert_eq!(names.len(), 5000);
    }

    #[test]
    fn names_carry_the_pid() {
        let mut pid = String::new();
        push_base36(&mut pid, u64::from(std::process::id()), PID_LEN);
        assert_eq!(&unique_name("ab")[2..2 + PID_LEN], pid);
    }

    #[test]
    fn base36_is_fixed_width() {
        let mut out = String::from(">");
        push_base36(&mut out, 35, 3);
        push_base36(&mut out, 36 * 36 * 36 + 1, 3);
        assert_eq!(out, ">00z001");
        let mut max = String::new();
        push_base36(&mut max, 4_194_304, PID_LEN);
        assert_eq!(max, "2hwcg");
    }
}
