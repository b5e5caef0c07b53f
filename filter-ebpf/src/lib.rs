//! Empty on purpose: `filter-user` depends on this package at build time so that cargo rebuilds the
//! embedded program when it (or `filter-common`) changes. The programs are `src/main.rs` (the object gotofw loads) and
//! `src/bench.rs` (the benchmarks' object).
#![no_std]
