use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};

/// A body compression, identified on the wire by its id (the first byte of a compressed body).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Compression {
    /// LZ4 block format (lz4_flex): fast enough to pay off on loopback for large bodies.
    Lz4,
}

impl Compression {
    /// The wire id (bit `n` of the COMPRESSIONS setting; bit 0 is "none").
    pub const fn id(self) -> u8 {
        match self {
            Compression::Lz4 => 1,
        }
    }

    /// The compression with this wire id.
    pub const fn from_id(id: u8) -> Option<Compression> {
        match id {
            1 => Some(Compression::Lz4),
            _ => None,
        }
    }

    /// The bit for this compression in a COMPRESSIONS bitmask.
    pub const fn bit(self) -> u32 {
        1 << self.id()
    }

    /// Bitmask of every compression this crate can decompress, plus "none".
    pub const SUPPORTED_BITS: u32 = 1 | (1 << 1);

    /// Appends the compressed form of `src`: id (1 byte), uncompressed length (u32, big-endian),
    /// then the compressed block.
    pub fn compress(self, src: &[u8], dst: &mut BytesMut) {
        match self {
            Compression::Lz4 => {
                dst.reserve(5 + lz4_flex::block::get_maximum_output_size(src.len()));
                dst.put_u8(self.id());
                dst.put_u32(src.len() as u32);
                dst.extend_from_slice(&lz4_flex::block::compress(src));
            }
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Compression::Lz4 => f.write_str("lz4"),
        }
    }
}

/// Why a compressed body could not be read.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum DecompressError {
    /// Shorter than its 5-byte prefix.
    #[error("compressed body is shorter than its 5-byte prefix")]
    Truncated,
    /// An id this peer does not know.
    #[error("unknown compression id {0}")]
    UnknownCompression(u8),
    /// The announced size is over the receiver's limit (checked before allocating).
    #[error("compressed body would expand to {len} bytes, over the limit of {max}")]
    TooLarge {
        /// Announced uncompressed length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The data is corrupt or does not expand to the announced size.
    #[error("corrupt compressed body: {0}")]
    Corrupt(String),
}

/// Reads a body written by [`Compression::compress`], refusing to expand past `max_len`.
///
/// # Errors
/// [`DecompressError`] for a short, unknown, oversized or corrupt body.
pub fn decompress(src: &[u8], max_len: usize) -> Result<Bytes, DecompressError> {
    let [id, a, b, c, d, rest @ ..] = src else {
        return Err(DecompressError::Truncated);
    };
    let Some(compression) = Compression::from_id(*id) else {
        return Err(DecompressError::UnknownCompression(*id));
    };
    let len = u32::from_be_bytes([*a, *b, *c, *d]) as usize;
    if len > max_len {
        return Err(DecompressError::TooLarge { len, max: max_len });
    }
    match compression {
        Compression::Lz4 => {
            let out = lz4_flex::block::decompress(rest, len)
                .map_err(|e| DecompressError::Corrupt(e.to_string()))?;
            if out.len() != len {
                return Err(DecompressError::Corrupt(format!(
                    "expanded to {} bytes, announced {len}",
                    out.len()
                )));
            }
            Ok(Bytes::from(out))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 7) as u8).collect();
        let mut buf = BytesMut::new();
        Compression::Lz4.compress(&data, &mut buf);
        assert!(buf.len() < data.len() / 10);
        assert_eq!(&decompress(&buf, 10_000).unwrap()[..], &data[..]);
    }

    #[test]
    fn bad_bodies_are_errors() {
        let mut buf = BytesMut::new();
        Compression::Lz4.compress(&[1; 1000], &mut buf);
        assert!(matches!(
            decompress(&buf, 999),
            Err(DecompressError::TooLarge { .. })
        ));
        assert!(matches!(
            decompress(&buf[..3], 1000),
            Err(DecompressError::Truncated)
        ));
        let mut unknown = buf.clone();
        unknown[0] = 9;
        assert!(matches!(
            decompress(&unknown, 1000),
            Err(DecompressError::UnknownCompression(9))
        ));
        let mut lying = buf.clone();
        lying[4] = lying[4].wrapping_add(1); // announce one byte more than the data holds
        assert!(decompress(&lying, 2000).is_err());
        let mut rng = fastrand::Rng::with_seed(12345);
        for _ in 0..2000 {
            let junk: Vec<u8> = (0..rng.usize(0..64)).map(|_| rng.u8(..)).collect();
            let mut body = vec![1, 0, 0, 1, 0];
            body.extend_from_slice(&junk);
            let _ = decompress(&body, 1 << 20);
        }
    }
}
