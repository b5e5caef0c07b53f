//! Empty on purpose: `filter-user` depends on this package at build time so that cargo rebuilds
//! the embedded programs when they (or `filter-common`) change. The programs are `src/main.rs`
//! (the object gotofw loads) and `src/bench.rs` (the benchmarks' object).
#![no_std]
