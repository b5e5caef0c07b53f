//! Rebuilds the program when the BPF linker changes: a new bpf-linker (or LLVM) can change the
//! object even when no source did.

use which::which;

fn main() {
    let bpf_linker = which("bpf-linker").expect(
        "bpf-linker is not on PATH; run `cargo xtask setup` (it builds it against the nightly \
         toolchain's LLVM)",
    );
    println!("cargo:rerun-if-changed={}", bpf_linker.display());
}
