//! Coverage-guided fuzzing of the host classifier: `filter_common::classify` over `SoftTables`.
//! The input and the invariants are those of `gotofw_tests::fuzz::check_input`, which the
//! workspace's tests compile and run over the seed corpus, so they cannot fall behind the code.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| gotofw_tests::fuzz::check_input(data));
