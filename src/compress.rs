//! Compressing a body at fill time, for routes with `compress` (see docs/compression.md).
//!
//! Decisions (whether, which coding) are `policy::encoding`'s; this module only runs the
//! encoders. A fill compresses once per bucket and stores the result, so hits never compress.

use crate::policy::encoding::Coding;
use bytes::Bytes;
use std::io::Write;

/// gzip level of fill-time compression: level 6 (zlib's default) costs about twice level 1 per
/// byte and saves a few percent more; paid once per fill (figures in docs/compression.md).
pub const GZIP_LEVEL: u32 = 6;

/// Brotli quality of fill-time compression: 5 is smaller than gzip 6 at a similar cost; higher
/// qualities cost many times more per fill for a few percent.
pub const BROTLI_QUALITY: u32 = 5;

/// Brotli window (log2 of bytes): 4 MiB is past any stored body; decoders take up to 16 MiB.
const BROTLI_WINDOW: u32 = 22;

/// Compresses the chunks of a body with `coding` at the fill-time levels.
pub fn encode<'a>(coding: Coding, chunks: impl IntoIterator<Item = &'a [u8]>) -> Bytes {
    match coding {
        Coding::Gzip => gzip(chunks, GZIP_LEVEL),
        Coding::Br => brotli(chunks, BROTLI_QUALITY),
    }
}

/// gzip at a given level (1 fastest, 9 smallest).
pub fn gzip<'a>(chunks: impl IntoIterator<Item = &'a [u8]>, level: u32) -> Bytes {
    let mut encoder =
        flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(level.min(9)));
    for chunk in chunks {
        // Writing to a Vec cannot fail.
        let _ = encoder.write_all(chunk);
    }
    Bytes::from(encoder.finish().unwrap_or_default())
}

/// Brotli at a given quality (0 fastest, 11 smallest).
pub fn brotli<'a>(chunks: impl IntoIterator<Item = &'a [u8]>, quality: u32) -> Bytes {
    let mut out = Vec::new();
    {
        let mut encoder = brotli::CompressorWriter::new(&mut out, 4096, quality, BROTLI_WINDOW);
        for chunk in chunks {
            let _ = encoder.write_all(chunk);
        }
        let _ = encoder.flush();
    }
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn body() -> Vec<u8> {
        let mut body = Vec::new();
        for i in 0..200 {
            body.extend_from_slice(format!("{{\"id\":{i},\"name\":\"member {i}\"}},").as_bytes());
        }
        body
    }

    #[test]
    fn gzip_round_trips_and_shrinks() {
        let body = body();
        let (a, b) = body.split_at(1000);
        let encoded = encode(Coding::Gzip, [a, b]);
        assert!(encoded.len() < body.len() / 3, "{}", encoded.len());
        let mut decoded = Vec::new();
        flate2::read::GzDecoder::new(&encoded[..])
            .read_to_end(&mut decoded)
            .unwrap();
        assert_eq!(decoded, body);
    }

    #[test]
    fn brotli_round_trips_and_shrinks() {
        let body = body();
        let (a, b) = body.split_at(1000);
        let encoded = encode(Coding::Br, [a, b]);
        assert!(encoded.len() < body.len() / 3, "{}", encoded.len());
        let mut decoded = Vec::new();
        brotli::Decompressor::new(&encoded[..], 4096)
            .read_to_end(&mut decoded)
            .unwrap();
        assert_eq!(decoded, body);
    }
}
