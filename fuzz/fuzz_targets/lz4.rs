//! LZ4 bodies: decompressing arbitrary bytes never panics and never yields more than the limit;
//! compressing arbitrary bytes decompresses to the same bytes.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use rpc_codec::{decompress, Compression};

/// The limit a receiver passes: its max frame size.
const MAX: usize = 64 * 1024;

fuzz_target!(|data: &[u8]| {
    if let Ok(out) = decompress(data, MAX) {
        assert!(out.len() <= MAX, "{} bytes past the {MAX} limit", out.len());
    }
    let mut compressed = BytesMut::new();
    Compression::Lz4.compress(data, &mut compressed);
    let back = decompress(&compressed, data.len()).expect("our own compression decompresses");
    assert_eq!(&back[..], data);
});
