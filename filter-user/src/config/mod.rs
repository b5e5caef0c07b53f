//! The configuration file (`/etc/gotofw/gotofw.toml`, or `--config FILE`): what `attach
//! --config`, `check-config` and `run` read.
//!
//! Three steps, a file each. serde reads the TOML into raw tables (`raw.rs`: unknown keys
//! refused, each value keeping its place in the file); [`load()`] checks every value with that
//! place in hand (`load.rs`, `[[rules]]` in `rules.rs`, the value parsers in `values.rs`), so an
//! error names `FILE:LINE`, the key, the value and the fix; [`resolve()`] (`resolve.rs`) merges
//! the checked file, or the defaults when there is none, with the command line (an option given
//! there wins over the file's key of the same meaning) into the
//! [`Options`](crate::scenario::Options), [`Mode`](crate::compile::Mode) and interfaces an
//! attach needs: the one path every command takes. [`describe()`] renders the result for
//! `check-config`.

mod describe;
mod domains;
mod load;
mod raw;
mod resolve;
mod rules;
mod values;

pub use describe::describe;
pub use load::{Config, FlowSettings, MAX_FILE_BYTES, load, parse};
pub use raw::{ModeName, OnStop};
pub use resolve::{DomainSettings, Overrides, Resolved, resolve, training_note};

#[cfg(test)]
mod tests;
