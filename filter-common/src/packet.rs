//! Bounds-checked access to a packet, the only way the classifier reads one.
//!
//! The classifier asks for a whole header at once ([`Packet::header`]): one bounds check, then
//! field reads at constant offsets inside it. In the kernel that is the shape the BPF verifier
//! follows best (one packet-range check, then loads at fixed offsets from the checked pointer),
//! and it keeps the per-packet instruction count low.

/// Largest offset the classifier reads at. The BPF verifier needs a bound on every offset it adds
/// to the packet pointer; the host applies the same bound so both agree on every frame.
pub const MAX_PACKET_OFFSET: usize = 0x3fff;

/// A packet the classifier can read.
pub trait Packet {
    /// A checked header: `len` bytes known to lie inside the frame.
    type Header<'a>: Header
    where
        Self: 'a;

    /// Length of the whole frame in bytes.
    fn len(&self) -> usize;

    /// Whether the frame is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The `len` bytes at `offset`, or `None` if any of them lies past the end of the frame (or
    /// `offset` is past [`MAX_PACKET_OFFSET`]). The classifier treats `None` as a truncated
    /// header.
    fn header(&self, offset: usize, len: usize) -> Option<Self::Header<'_>>;
}

/// Field reads inside a checked header. Indices must lie inside the length the header was checked
/// for; the classifier only reads at constant indices below it.
pub trait Header {
    /// The byte at `i`.
    fn u8(&self, i: usize) -> u8;

    /// The big-endian `u16` at `i`.
    #[inline(always)]
    fn be16(&self, i: usize) -> u16 {
        u16::from_be_bytes([self.u8(i), self.u8(i + 1)])
    }

    /// The big-endian `u32` at `i`.
    #[inline(always)]
    fn be32(&self, i: usize) -> u32 {
        u32::from_be_bytes([self.u8(i), self.u8(i + 1), self.u8(i + 2), self.u8(i + 3)])
    }

    /// The `N` bytes at `i`.
    #[inline(always)]
    fn array<const N: usize>(&self, i: usize) -> [u8; N] {
        let mut out = [0u8; N];
        let mut k = 0;
        while k < N {
            out[k] = self.u8(i + k);
            k += 1;
        }
        out
    }
}

impl Packet for [u8] {
    type Header<'a> = &'a [u8];

    fn len(&self) -> usize {
        <[u8]>::len(self)
    }

    fn header(&self, offset: usize, len: usize) -> Option<&[u8]> {
        if offset > MAX_PACKET_OFFSET {
            return None;
        }
        self.get(offset..offset.checked_add(len)?)
    }
}

impl Header for &[u8] {
    fn u8(&self, i: usize) -> u8 {
        self.get(i).copied().unwrap_or(0)
    }
}

/// Returns `x` unchanged, hiding from LLVM where it came from: in the kernel a register move it
/// cannot see through (elsewhere the identity). Where LLVM knows a value's range it turns
/// arithmetic chosen to be branch-free (a mask from a comparison) back into a branch, and the
/// verifier then follows each side, and each length of a name, apart.
#[inline(always)]
pub fn opaque(x: u64) -> u64 {
    #[cfg(target_arch = "bpf")]
    {
        let mut x = x;
        // SAFETY: a register move to itself.
        unsafe {
            core::arch::asm!("{0} = {0}", inout(reg) x, options(nomem, nostack, preserves_flags));
        }
        x
    }
    #[cfg(not(target_arch = "bpf"))]
    {
        x
    }
}

/// All ones when `a < b`, else zero (both below 2^63), computed without a branch (hide the
/// result from LLVM with [`opaque`], or it may make one).
#[inline(always)]
pub const fn below(a: u64, b: u64) -> u64 {
    (a.wrapping_sub(b) >> 63).wrapping_neg()
}
