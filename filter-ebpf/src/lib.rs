//! Empty on purpose: `filter-user` depends on this package at build time so that cargo rebuilds the
//! embedded program when it (or `filter-common`) changes. The program is `src/main.rs`.
#![no_std]
