//! The benchmark's and the tests' traffic generator: `gotofw_txgen` (returns XDP_TX) run with
//! BPF_PROG_TEST_RUN in live-frames mode (BPF_F_TEST_XDP_LIVE_FRAMES) on one end of a veth pair:
//! every frame is transmitted out of that end (`ndo_xdp_xmit`) into its peer's NAPI ring, where
//! the XDP program attached there (gotofw, in the tests) takes it as it would a received frame.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use aya::{
    Ebpf, EbpfLoader,
    programs::{TestRun, TestRunAttrs, TestRunOptions, Xdp},
};

/// Most frames per BPF_PROG_TEST_RUN call of the generator. Each live-frames call costs about
/// 25 ms of set-up and tear-down here (page pool and memory model, an RCU grace period), so
/// calls are made long: a quarter of the measurement, at an assumed 10 Mpps.
const MAX_CHUNK: u32 = 1 << 22;
/// Fewest frames per call.
const MIN_CHUNK: u32 = 1 << 16;
/// Frames per live-frames batch (the kernel's maximum is 256).
const BATCH: u32 = 256;
/// Frames per call when the generator is paced: bursts of a few milliseconds at full speed.
const PACED_CHUNK: u32 = 1 << 16;
/// Upper bound on generator calls in one measurement, whatever the clock says.
const MAX_CALLS: u32 = 100_000;

/// The generator: `gotofw_txgen`, loaded.
pub struct Generator {
    /// Holds the program (and the object's maps) alive.
    ebpf: Ebpf,
}

impl Generator {
    /// Loads `gotofw_txgen` from the benchmark-only object.
    ///
    /// # Errors
    /// When the kernel refuses it.
    pub fn load() -> Result<Self> {
        let mut ebpf = EbpfLoader::new()
            .load(filter_user::BENCH_EBPF_OBJECT)
            .context("loading the benchmark-only eBPF object for the generator")?;
        let prog: &mut Xdp = ebpf
            .program_mut("gotofw_txgen")
            .ok_or_else(|| anyhow!("the benchmark-only object has no gotofw_txgen"))?
            .try_into()?;
        prog.load().context("loading gotofw_txgen")?;
        Ok(Self { ebpf })
    }

    fn program(&self) -> Result<&Xdp> {
        Ok(self
            .ebpf
            .program("gotofw_txgen")
            .ok_or_else(|| anyhow!("no gotofw_txgen"))?
            .try_into()?)
    }

    /// Sends `frame` out of interface `ifindex` for about `duration` from the calling thread,
    /// which must be in the interface's namespace (the kernel resolves the index in the caller's
    /// namespace), as fast as it can. Returns the frames sent and the time it took.
    ///
    /// # Errors
    /// When the kernel refuses the run.
    pub fn send_here(&self, ifindex: u32, frame: &[u8], duration: Duration) -> Result<(u64, f64)> {
        self.send_paced(ifindex, frame, duration, None)
    }

    /// As [`Generator::send_here`], at about `pps` frames per second when given: chunks of
    /// [`PACED_CHUNK`] frames, each sent at full speed, with sleeps between them.
    ///
    /// # Errors
    /// When the kernel refuses the run.
    pub fn send_paced(
        &self,
        ifindex: u32,
        frame: &[u8],
        duration: Duration,
        pps: Option<f64>,
    ) -> Result<(u64, f64)> {
        let prog = self.program()?;
        let ctx = xdp_md(ifindex, frame.len());
        let chunk = if pps.is_some() {
            PACED_CHUNK
        } else {
            // A duration is never negative; `as` saturates at u32::MAX.
            #[expect(clippy::cast_sign_loss, reason = "see above")]
            let frames = (duration.as_secs_f64() * 10e6 / 4.0) as u32;
            frames.clamp(MIN_CHUNK, MAX_CHUNK)
        };
        let start = Instant::now();
        let mut sent = 0u64;
        for _ in 0..MAX_CALLS {
            if start.elapsed() >= duration {
                break;
            }
            prog.test_run(TestRunOptions {
                data_in: Some(frame),
                ctx_in: Some(&ctx),
                repeat: chunk,
                attrs: TestRunAttrs::new().xdp_live_frames(BATCH),
                ..TestRunOptions::new()
            })
            .context("BPF_PROG_TEST_RUN (live frames) of gotofw_txgen")?;
            sent += u64::from(chunk);
            if let Some(pps) = pps {
                #[expect(
                    clippy::cast_precision_loss,
                    reason = "frame counts stay far below 2^52"
                )]
                let due = Duration::from_secs_f64(sent as f64 / pps);
                if let Some(wait) = due.checked_sub(start.elapsed()) {
                    std::thread::sleep(wait.min(duration));
                }
            }
        }
        Ok((sent, start.elapsed().as_secs_f64()))
    }
}

/// The `struct xdp_md` a live-frames run takes: data 0, data_end the frame's length, the
/// interface index to run on (and transmit from), queue 0.
fn xdp_md(ifindex: u32, len: usize) -> [u8; 24] {
    let mut ctx = [0u8; 24];
    ctx[4..8].copy_from_slice(&(len as u32).to_ne_bytes());
    ctx[12..16].copy_from_slice(&ifindex.to_ne_bytes());
    ctx
}
