//! Compression of layers and archives: gzip as independent 128 KiB blocks deflated in parallel (the way pigz does it), zstd with its own workers; compressor and level are pinned, so the bytes never depend on the number of threads.
//!
//! gzip: the input is cut at fixed offsets into 128 KiB blocks. Each block
//! is deflated on its own, primed with the 32 KiB of input before it as
//! dictionary, and ended with a sync flush (an empty stored block, which
//! byte-aligns it), the last one with a final block; the pieces joined are
//! one deflate stream in one gzip member (RFC 1951, RFC 1952) with mtime 0
//! and no name. Every block's bytes depend only on the input, so the
//! output is the same with one thread or many. The CRC-32 is computed per
//! block and combined.
//!
//! zstd: one frame compressed by libzstd's multithreaded mode, whose output
//! does not depend on the number of workers (as long as there is at least
//! one, which is always the case here).
//!
//! The library versions are fixed by `Cargo.lock` (zlib-rs through flate2,
//! libzstd through zstd-sys); [`Compression::identity`] names them, and a
//! unit test pins the bytes of each compressor, so an update that changes
//! the output is noticed and the cache of layer digests is invalidated.

use std::io::Write;

use anyhow::{Context, Result};
use flate2::{Compress, FlushCompress, Status};
use rayon::prelude::*;

/// How an archive or a layer is compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

/// gzip level: pigz's and gzip's default.
pub const GZIP_LEVEL: u32 = 6;
/// Bytes of input per independently deflated block (pigz's default).
pub const GZIP_BLOCK: usize = 128 * 1024;
/// Input before a block used as its dictionary: deflate's whole window.
const DICTIONARY: usize = 32 * 1024;
/// Blocks compressed together in one parallel batch.
const BATCH_BLOCKS: usize = 32;
/// zstd level: the zstd command's default.
pub const ZSTD_LEVEL: i32 = 3;

impl Compression {
    /// The file name suffix: `""`, `".gz"`, `".zst"`.
    pub fn extension(self) -> &'static str {
        match self {
            Compression::None => "",
            Compression::Gzip => ".gz",
            Compression::Zstd => ".zst",
        }
    }

    /// The name used on the command line and in messages.
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        }
    }

    /// Everything that decides the compressed bytes, for cache keys.
    pub fn identity(self) -> String {
        match self {
            Compression::None => "none".to_string(),
            Compression::Gzip => {
                format!("gzip level {GZIP_LEVEL} blocks {GZIP_BLOCK} zlib-rs 0.6 (flate2 1.1)")
            }
            Compression::Zstd => {
                format!(
                    "zstd level {ZSTD_LEVEL} multithreaded libzstd {}",
                    zstd::zstd_safe::version_string()
                )
            }
        }
    }
}

/// A writer that compresses into `W`.
pub enum Encoder<W: Write> {
    Plain(W),
    Gzip(Box<Gzip<W>>),
    Zstd(zstd::stream::write::Encoder<'static, W>),
}

impl<W: Write> Encoder<W> {
    pub fn new(compression: Compression, inner: W) -> Result<Encoder<W>> {
        Ok(match compression {
            Compression::None => Encoder::Plain(inner),
            Compression::Gzip => Encoder::Gzip(Box::new(Gzip::new(inner)?)),
            Compression::Zstd => Encoder::Zstd(zstd_encoder(inner, threads())?),
        })
    }

    /// Ends the stream; returns the writer it wrote into.
    pub fn finish(self) -> Result<W> {
        match self {
            Encoder::Plain(w) => Ok(w),
            Encoder::Gzip(gzip) => gzip.finish(),
            Encoder::Zstd(zstd) => zstd.finish().context("finishing a zstd stream"),
        }
    }
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Encoder::Plain(w) => w.write(buf),
            Encoder::Gzip(g) => g.write(buf),
            Encoder::Zstd(z) => z.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Encoder::Plain(w) => w.flush(),
            Encoder::Gzip(g) => g.flush(),
            Encoder::Zstd(z) => z.flush(),
        }
    }
}

/// The cores to compress on.
fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn zstd_encoder<W: Write>(
    inner: W,
    workers: usize,
) -> Result<zstd::stream::write::Encoder<'static, W>> {
    let mut encoder =
        zstd::stream::write::Encoder::new(inner, ZSTD_LEVEL).context("starting a zstd stream")?;
    // At least one worker: the output of libzstd's multithreaded mode is the
    // same for any number of workers, but differs from the single-threaded one.
    encoder.multithread(workers.max(1) as u32).context("starting zstd workers")?;
    encoder.include_checksum(true).context("configuring zstd")?;
    Ok(encoder)
}

/// A gzip member written from blocks deflated in parallel (see the module
/// notes).
pub struct Gzip<W: Write> {
    inner: W,
    /// Input not compressed yet.
    pending: Vec<u8>,
    /// The last 32 KiB of input already compressed.
    dictionary: Vec<u8>,
    crc: crc32fast::Hasher,
    total: u64,
}

impl<W: Write> Gzip<W> {
    fn new(mut inner: W) -> Result<Gzip<W>> {
        // ID1 ID2 CM=deflate FLG=0 MTIME=0 XFL=0 OS=Unix (RFC 1952).
        inner.write_all(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3]).context("writing a gzip header")?;
        Ok(Gzip {
            inner,
            pending: Vec::with_capacity(BATCH_BLOCKS * GZIP_BLOCK + GZIP_BLOCK),
            dictionary: Vec::new(),
            crc: crc32fast::Hasher::new(),
            total: 0,
        })
    }

    /// Compresses the whole blocks pending (all of it, and ends the stream,
    /// when `last`) in parallel, and writes them in order.
    fn compress_pending(&mut self, last: bool) -> std::io::Result<()> {
        let whole =
            if last { self.pending.len() } else { self.pending.len() / GZIP_BLOCK * GZIP_BLOCK };
        let mut blocks: Vec<&[u8]> = self.pending[..whole].chunks(GZIP_BLOCK).collect();
        if blocks.is_empty() && last {
            blocks.push(&[]);
        }
        let count = blocks.len();
        let dictionary = &self.dictionary;
        let pieces: Vec<std::io::Result<(Vec<u8>, crc32fast::Hasher)>> = (0..count)
            .into_par_iter()
            .map(|i| {
                let before: &[u8] = if i == 0 { dictionary } else { blocks[i - 1] };
                let dict = &before[before.len().saturating_sub(DICTIONARY)..];
                let mut crc = crc32fast::Hasher::new();
                crc.update(blocks[i]);
                Ok((deflate_block(dict, blocks[i], last && i + 1 == count)?, crc))
            })
            .collect();
        for piece in pieces {
            let (bytes, crc) = piece?;
            self.inner.write_all(&bytes)?;
            self.crc.combine(&crc);
        }
        // Blocks before the last batch are whole, so each is longer than
        // the window: the next dictionary is the end of the last block.
        if let Some(tail) = blocks.last() {
            self.dictionary = tail[tail.len().saturating_sub(DICTIONARY)..].to_vec();
        }
        self.total += whole as u64;
        self.pending.drain(..whole);
        Ok(())
    }

    fn finish(mut self) -> Result<W> {
        self.compress_pending(true).context("compressing with gzip")?;
        let crc = self.crc.clone().finalize();
        let mut trailer = crc.to_le_bytes().to_vec();
        trailer.extend_from_slice(&(self.total as u32).to_le_bytes());
        self.inner.write_all(&trailer).context("writing a gzip trailer")?;
        Ok(self.inner)
    }
}

impl<W: Write> Write for Gzip<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.pending.extend_from_slice(buf);
        if self.pending.len() >= BATCH_BLOCKS * GZIP_BLOCK {
            self.compress_pending(false)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        // Blocks are cut at fixed offsets of the input, never at flushes.
        self.inner.flush()
    }
}

/// Raw deflate of one block primed with `dictionary`; ends with a sync
/// flush, or with the final block when `last`. Each block gets a fresh
/// deflate state: a state reused after `reset` gives other bytes than a
/// fresh one (zlib-rs 0.6 keeps some of the previous block's state), so
/// reuse would make the output depend on which thread compressed which
/// block before.
fn deflate_block(dictionary: &[u8], data: &[u8], last: bool) -> std::io::Result<Vec<u8>> {
    let mut compress = Compress::new(flate2::Compression::new(GZIP_LEVEL), false);
    if !dictionary.is_empty() {
        compress.set_dictionary(dictionary).map_err(std::io::Error::other)?;
    }
    let flush = if last { FlushCompress::Finish } else { FlushCompress::Sync };
    let mut out = Vec::with_capacity(data.len() + data.len() / 8 + 64);
    loop {
        let consumed = compress.total_in() as usize;
        let status = compress
            .compress_vec(&data[consumed..], &mut out, flush)
            .map_err(std::io::Error::other)?;
        let done = compress.total_in() as usize == data.len();
        match status {
            Status::StreamEnd => break,
            _ if !last && done && out.len() < out.capacity() => break,
            _ => out.reserve(out.capacity().max(4096)),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    /// Input that compresses neither too well nor too badly, the same on
    /// every run.
    fn sample(len: usize) -> Vec<u8> {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let words = ["usr", "lib", "x86_64", "libc.so.6", "\0\0\0\0", "ELF", "bash", "/"];
        let mut out = Vec::with_capacity(len);
        while out.len() < len {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            if state.is_multiple_of(3) {
                out.push((state >> 24) as u8);
            } else {
                out.extend_from_slice(words[(state >> 40) as usize % words.len()].as_bytes());
            }
        }
        out.truncate(len);
        out
    }

    fn compress(compression: Compression, input: &[u8], threads: usize) -> Vec<u8> {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| {
            let mut encoder = match compression {
                Compression::Zstd => Encoder::Zstd(zstd_encoder(Vec::new(), threads).unwrap()),
                _ => Encoder::new(compression, Vec::new()).unwrap(),
            };
            // Uneven writes, as a tar writer makes them.
            for chunk in input.chunks(70_001) {
                encoder.write_all(chunk).unwrap();
            }
            encoder.finish().unwrap()
        })
    }

    #[test]
    fn the_bytes_do_not_depend_on_the_number_of_threads() {
        let input = sample(5 * BATCH_BLOCKS * GZIP_BLOCK / 2 + 12_345);
        for compression in [Compression::Gzip, Compression::Zstd] {
            let one = compress(compression, &input, 1);
            assert_eq!(one, compress(compression, &input, 2), "{compression:?}");
            assert_eq!(one, compress(compression, &input, 5), "{compression:?}");
        }
    }

    #[test]
    fn gzip_output_is_one_member_that_decodes_to_the_input() {
        for len in [0, 1, GZIP_BLOCK, GZIP_BLOCK + 1, BATCH_BLOCKS * GZIP_BLOCK * 2 + 7] {
            let input = sample(len);
            let gz = compress(Compression::Gzip, &input, 2);
            assert_eq!(&gz[..10], &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3]);
            let mut decoder = flate2::read::GzDecoder::new(&gz[..]);
            let mut out = Vec::new();
            decoder.read_to_end(&mut out).unwrap();
            assert_eq!(out, input, "{len} bytes");
            // Nothing after the member: MultiGzDecoder would find no other.
            let mut rest = Vec::new();
            decoder.into_inner().read_to_end(&mut rest).unwrap();
            assert!(rest.is_empty(), "{len} bytes");
        }
    }

    /// The bytes of each compressor, pinned: a dependency update that
    /// changes them must also change `Compression::identity`.
    #[test]
    fn the_compressors_are_pinned() {
        let input = sample(3 * GZIP_BLOCK + 99);
        let digest = |c| crate::fsutil::sha256_hex(&compress(c, &input, 2));
        assert_eq!(
            digest(Compression::Gzip),
            "ad8a0ca874238b9db7cde19ada77d44905e8a6a75c2849b1abc17178e40587e1"
        );
        assert_eq!(
            digest(Compression::Zstd),
            "3a618c5257390065528a5cc9dfb4e97a4c32b2571bbdbda1bb80af724b6728ef"
        );
    }
}
