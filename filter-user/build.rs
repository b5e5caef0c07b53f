//! Builds the eBPF objects (`filter-ebpf`'s two binaries, for `bpfel-unknown-none` with the
//! nightly toolchain and bpf-linker: `gotofw-ebpf`, the one gotofw loads, and
//! `gotofw-bench-ebpf`, the benchmarks') and leaves them in `OUT_DIR` for
//! `include_bytes_aligned!`.

fn main() -> anyhow::Result<()> {
    let root_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../filter-ebpf");
    aya_build::build_ebpf(
        [aya_build::Package {
            name: "filter-ebpf",
            root_dir,
            ..Default::default()
        }],
        aya_build::Toolchain::default(),
    )
}
