//! Bounds-checked access to a packet, the only way the classifier reads one.

/// Largest offset the classifier reads at. The BPF verifier needs a bound on every offset it adds
/// to the packet pointer; the host applies the same bound so both agree on every frame.
pub const MAX_PACKET_OFFSET: usize = 0x3fff;

/// A packet the classifier can read. Every read names an offset from the start of the frame and
/// returns `None` when the bytes are not all inside it (or the offset is past
/// [`MAX_PACKET_OFFSET`]); the classifier treats that as a truncated header.
pub trait Packet {
    /// Length of the whole frame in bytes.
    fn len(&self) -> usize;

    /// Whether the frame is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The `N` bytes at `offset`, or `None` if any of them lies past the end of the frame.
    fn bytes<const N: usize>(&self, offset: usize) -> Option<[u8; N]>;
}

impl Packet for [u8] {
    fn len(&self) -> usize {
        <[u8]>::len(self)
    }

    fn bytes<const N: usize>(&self, offset: usize) -> Option<[u8; N]> {
        if offset > MAX_PACKET_OFFSET {
            return None;
        }
        let end = offset.checked_add(N)?;
        let slice = self.get(offset..end)?;
        let mut out = [0u8; N];
        out.copy_from_slice(slice);
        Some(out)
    }
}
