//! Coverage-guided fuzzing of the DNS answer parser (`filter_common::dns`): the input is one UDP
//! payload. The invariants are those of `gotofw_tests::fuzz::check_dns`, which the workspace's
//! tests compile and run over the seed corpus (`fuzz/corpus/dns`), so they cannot fall behind
//! the code.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    gotofw_tests::fuzz::check_dns(data);
});
