//! bpf-linker, the linker rustc uses for `bpfel-unknown-none`.
//!
//! It is installed from crates.io and linked against the nightly toolchain's
//! own libLLVM (`$SYSROOT/lib/libLLVM-<MAJOR>-rust-<version>.so`), so no
//! system LLVM is needed and the LLVM versions of rustc and the linker match.

use std::{fs, path::Path, time::Instant};

use anyhow::{Context, Result, bail};

use super::Status;
use crate::{exec, paths};

/// Checks that a working bpf-linker is on `PATH` or in cargo's bin
/// directory, installing it otherwise.
pub fn ensure() -> Result<Status> {
    if let Some(version) = working_version() {
        return Ok(Status::Ok(Some(version)));
    }
    let started = Instant::now();
    install()?;
    let Some(version) = working_version() else {
        bail!(
            "bpf-linker was installed but `bpf-linker --version` still fails; is {} on PATH?",
            paths::cargo_bin_dir()
                .map_or_else(|| "~/.cargo/bin".into(), |dir| dir.display().to_string())
        );
    };
    let seconds = started.elapsed().as_secs();
    Ok(Status::Installed(Some(format!(
        "{version}, in {seconds} s"
    ))))
}

/// The first line of `bpf-linker --version` of the first candidate that runs.
/// A binary built against a nightly that has since been updated fails to load
/// its libLLVM, and does not count.
fn working_version() -> Option<String> {
    paths::find_all("bpf-linker").into_iter().find_map(|path| {
        let output = exec::probe(exec::command(&path).arg("--version")).ok()?;
        output.status.success().then(|| {
            let version = String::from_utf8_lossy(&output.stdout);
            version.lines().next().unwrap_or_default().trim().to_owned()
        })
    })
}

fn install() -> Result<()> {
    let sysroot = exec::stdout(exec::command("rustc").args(["+nightly", "--print", "sysroot"]))
        .context("`rustc +nightly --print sysroot` failed; is the nightly toolchain installed?")?;
    let lib_dir = Path::new(sysroot.trim()).join("lib");
    let llvm = find_llvm(&lib_dir)?;
    let lib_dir = lib_dir
        .to_str()
        .filter(|dir| !dir.contains(char::is_whitespace))
        .with_context(|| {
            format!(
                "the nightly sysroot {} cannot be passed in RUSTFLAGS (whitespace or non-UTF-8)",
                lib_dir.display()
            )
        })?;
    let rustflags = format!(
        "-L {lib_dir} -l dylib={} -C link-arg=-Wl,-rpath,{lib_dir}",
        llvm.link_name
    );
    let features = format!("llvm-{},no-llvm-linking", llvm.major);
    // --force replaces a binary that no longer loads (nightly was updated and
    // its libLLVM file renamed); the build directory is a neutral one so this
    // workspace's .cargo/config.toml does not apply.
    exec::run(
        exec::cargo()
            .args([
                "+nightly",
                "install",
                "bpf-linker",
                "--force",
                "--no-default-features",
            ])
            .args(["--features", &features])
            .env("RUSTFLAGS", rustflags)
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .current_dir(std::env::temp_dir()),
    )
    .context(
        "installing bpf-linker from crates.io failed; check access to crates.io and that the \
         nightly toolchain is complete (see the cargo output above)",
    )
}

/// The nightly toolchain's libLLVM.
#[derive(Debug, PartialEq, Eq)]
struct Llvm {
    /// The LLVM major version, for bpf-linker's `llvm-<MAJOR>` feature.
    major: u32,
    /// The name for `-l dylib=`: the file name without `lib` and `.so`.
    link_name: String,
}

/// Finds `libLLVM-<MAJOR>-rust-<...>.so` in `lib_dir`; the newest major wins
/// if, oddly, there are several.
fn find_llvm(lib_dir: &Path) -> Result<Llvm> {
    let entries = fs::read_dir(lib_dir)
        .with_context(|| format!("cannot list the nightly sysroot's {}", lib_dir.display()))?;
    entries
        .filter_map(|entry| parse_llvm_file_name(entry.ok()?.file_name().to_str()?))
        .max_by_key(|llvm| llvm.major)
        .with_context(|| {
            format!(
                "no libLLVM-<MAJOR>-rust-<version>.so in {}; the nightly toolchain should ship \
                 one (reinstall it with `rustup toolchain install nightly --force`)",
                lib_dir.display()
            )
        })
}

/// Parses `libLLVM-22-rust-1.97.0-nightly.so` into major 22 and link name
/// `LLVM-22-rust-1.97.0-nightly`.
fn parse_llvm_file_name(file_name: &str) -> Option<Llvm> {
    let link_name = file_name.strip_prefix("lib")?.strip_suffix(".so")?;
    let (major, _) = link_name.strip_prefix("LLVM-")?.split_once("-rust-")?;
    let major = major.parse().ok()?;
    Some(Llvm {
        major,
        link_name: link_name.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_rust_libllvm_name() {
        assert_eq!(
            parse_llvm_file_name("libLLVM-22-rust-1.97.0-nightly.so"),
            Some(Llvm {
                major: 22,
                link_name: "LLVM-22-rust-1.97.0-nightly".to_owned()
            })
        );
        assert_eq!(
            parse_llvm_file_name("libLLVM-19-rust-1.84.0-nightly.so").map(|llvm| llvm.major),
            Some(19)
        );
    }

    #[test]
    fn ignores_other_libraries() {
        for name in [
            "libLLVM.so.22.1-rust-1.97.0-nightly",
            "librustc_driver-b5a965480ee51f9a.so",
            "libLLVM-x-rust-1.97.0-nightly.so",
            "libLLVM-22.so",
            "rustlib",
        ] {
            assert_eq!(parse_llvm_file_name(name), None, "{name}");
        }
    }

    #[test]
    fn finds_llvm_in_a_directory() {
        let dir = std::env::temp_dir().join(format!("xtask-llvm-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("libLLVM-21-rust-1.96.0-nightly.so"), "").unwrap();
        fs::write(dir.join("libLLVM.so.21.1-rust-1.96.0-nightly"), "").unwrap();
        let found = find_llvm(&dir);
        fs::remove_dir_all(&dir).unwrap();
        assert_eq!(found.unwrap().link_name, "LLVM-21-rust-1.96.0-nightly");
    }

    #[test]
    fn no_llvm_is_a_clear_error() {
        let err = find_llvm(Path::new("/proc/self")).unwrap_err();
        assert!(format!("{err:#}").contains("no libLLVM"), "{err:#}");
    }
}
