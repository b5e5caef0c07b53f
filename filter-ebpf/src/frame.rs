//! The frame as the classifier reads it: [`Packet`] over the context's `data`..`data_end`, every
//! header bounds-checked in the form the verifier follows. Shared by both objects (`main.rs`, the
//! production programs; `bench.rs`, the benchmark-only ones).

use aya_ebpf::{
    helpers::generated::bpf_xdp_get_buff_len,
    programs::{TcContext, XdpContext},
};
use filter_common::{MAX_PACKET_OFFSET, Packet, packet::Header};

/// The frame between `data` and `data_end`.
pub struct Frame {
    start: usize,
    end: usize,
    /// Length of the whole packet. It can be more than `end - start`: the part past `end` (TC's
    /// paged data, XDP's further buffers of a multi-buffer frame) the classifier never reads,
    /// but the IP and UDP lengths it checks count it.
    pub len: usize,
}

impl Frame {
    /// An XDP frame: the first buffer between `data` and `data_end` holds the headers; the
    /// rest (the fragments of a multi-buffer frame, programs being frags-aware) counts in the
    /// lengths the classifier checks. A header cut at the end of the first buffer is missing.
    #[inline(always)]
    pub fn xdp(ctx: &XdpContext) -> Self {
        let (start, end) = (ctx.data(), ctx.data_end());
        // SAFETY: the helper only reads the context the kernel gave this program.
        let whole = unsafe { bpf_xdp_get_buff_len(ctx.ctx) };
        Self {
            start,
            end,
            len: usize::try_from(whole).unwrap_or(end - start),
        }
    }

    /// A TC frame: the linear part between `data` and `data_end` holds the headers; the rest
    /// (paged data of a large or GSO packet) counts in the lengths the classifier checks.
    #[inline(always)]
    pub fn tc(ctx: &TcContext) -> Self {
        Self {
            start: ctx.data(),
            end: ctx.data_end(),
            len: ctx.len() as usize,
        }
    }
}

/// A header the verifier knows lies inside the packet: `at..at + len` was checked against
/// `data_end`, and every read is at a constant index below `len`.
pub struct Checked {
    at: usize,
}

impl Packet for Frame {
    type Header<'a> = Checked;

    #[inline(always)]
    fn len(&self) -> usize {
        self.len
    }

    #[inline(always)]
    fn header(&self, offset: usize, len: usize) -> Option<Checked> {
        // The bound gives the verifier a maximum for the variable offset; the comparison with
        // `end` proves the header is inside the packet.
        if offset > MAX_PACKET_OFFSET {
            return None;
        }
        let at = opaque(self.start + offset);
        if opaque(at + len) > self.end {
            return None;
        }
        Some(Checked { at })
    }
}

impl Header for Checked {
    #[inline(always)]
    fn u8(&self, i: usize) -> u8 {
        // SAFETY: the classifier reads only below the length `header` checked.
        unsafe { *((self.at + i) as *const u8) }
    }

    /// Eight (or four) bytes a load (`load_u64`, `load_u32`), so that an address takes two or
    /// four registers rather than one for each byte: with the bytes read one by one, spills of an
    /// IPv6 address's sixteen bytes took most of the TC program's stack, and each byte cost a
    /// load.
    #[inline(always)]
    fn array<const N: usize>(&self, i: usize) -> [u8; N] {
        let mut out = [0u8; N];
        let mut k = 0;
        while k + 8 <= N {
            // SAFETY: as in `u8`, `i + k + 8 <= i + N` lies inside the checked length; the
            // write stays inside `out`.
            unsafe {
                let w = load_u64(self.at + i + k);
                core::ptr::write_unaligned(out.as_mut_ptr().add(k).cast::<u64>(), w);
            }
            k += 8;
        }
        while k + 4 <= N {
            // SAFETY: as above.
            unsafe {
                let w = load_u32(self.at + i + k);
                core::ptr::write_unaligned(out.as_mut_ptr().add(k).cast::<u32>(), w);
            }
            k += 4;
        }
        while k < N {
            out[k] = self.u8(i + k);
            k += 1;
        }
        out
    }
}

/// The eight bytes at `addr`, in memory order, in one load. LLVM splits a load it cannot prove
/// aligned into single bytes (header fields sit wherever the frame puts them: an IPv4 address
/// after a 14-byte Ethernet header is at offset 26), so the load is written out. The verifier
/// takes an unaligned packet load on architectures with efficient unaligned access (x86-64,
/// arm64; it refuses one only under strict alignment), and refuses the program at load
/// otherwise: attach then fails, nothing is attached.
///
/// # Safety
///
/// `addr..addr + 8` lies inside a header checked by [`Frame::header`].
#[inline(always)]
unsafe fn load_u64(addr: usize) -> u64 {
    let v: u64;
    // SAFETY: the caller's.
    unsafe {
        core::arch::asm!(
            "{0} = *(u64 *)({1} + 0)",
            out(reg) v,
            in(reg) addr,
            options(readonly, nostack, preserves_flags)
        );
    }
    v
}

/// As [`load_u64`], four bytes.
///
/// # Safety
///
/// `addr..addr + 4` lies inside a header checked by [`Frame::header`].
#[inline(always)]
unsafe fn load_u32(addr: usize) -> u32 {
    let v: u32;
    // SAFETY: the caller's.
    unsafe {
        core::arch::asm!(
            "{0} = *(u32 *)({1} + 0)",
            out(reg) v,
            in(reg) addr,
            options(readonly, nostack, preserves_flags)
        );
    }
    v
}

/// Returns `x` unchanged, hiding from LLVM where it came from. Without it LLVM rewrites
/// `at + 1 > end` as `at >= end`, a form from which the verifier learns no packet range, and
/// folds pointer arithmetic into forms the verifier rejects.
#[inline(always)]
fn opaque(mut x: usize) -> usize {
    // SAFETY: a register move to itself.
    unsafe {
        core::arch::asm!("{0} = {0}", inout(reg) x, options(nomem, nostack, preserves_flags));
    }
    x
}
