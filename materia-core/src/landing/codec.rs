//! Streaming gzip in and out, hashing both sides on the way.
//!
//! Nothing here holds a whole file in memory: input flows through a fixed buffer
//! into the encoder (plain input) or straight to disk while a decoder checks it
//! (gzip input). Both the uncompressed content and the stored bytes are hashed in
//! the same pass, so landing reads its input exactly once.

use std::collections::BTreeMap;
use std::io::{self, BufReader, Read, Write};
use std::path::Path;

use flate2::Compression;
use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use sha2::{Digest, Sha256};

use super::key::Sha256Digest;
use crate::csv::HeaderCheck;
use crate::error::{Error, IoContext, Result};
use crate::guard::{Limited, TextCheck, refusal};

const BUF_SIZE: usize = 256 * 1024;
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// What one pass over a file measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Digests {
    pub content_sha256: Sha256Digest,
    pub content_bytes: u64,
    pub file_sha256: Sha256Digest,
    pub file_bytes: u64,
}

/// A writer that hashes and counts what passes through it.
struct Hashing<W> {
    inner: W,
    hasher: Sha256,
    bytes: u64,
}

impl<W> Hashing<W> {
    fn new(inner: W) -> Self {
        Hashing {
            inner,
            hasher: Sha256::new(),
            bytes: 0,
        }
    }

    fn finish(self) -> (W, Sha256Digest, u64) {
        (
            self.inner,
            Sha256Digest::from_hasher(self.hasher),
            self.bytes,
        )
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A reader that hashes and counts what is read through it, and copies it to
/// `copy` when there is one. Remembers which side failed, so the caller can tell
/// an input error from an output error from bad gzip.
struct Tee<R, W> {
    input: R,
    copy: Hashing<W>,
    input_err: bool,
    output_err: Option<io::Error>,
}

impl<R: Read, W: Write> Read for Tee<R, W> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self
            .input
            .read(buf)
            .inspect_err(|_| self.input_err = true)?;
        if let Err(e) = self.copy.write_all(&buf[..n]) {
            let msg = e.to_string();
            self.output_err = Some(e);
            return Err(io::Error::other(msg));
        }
        Ok(n)
    }
}

/// Reads up to four bytes (gzip magic, method, flags) to sniff the format;
/// returns them with the reader.
fn sniff(mut input: impl Read) -> Result<([u8; 4], usize, impl Read)> {
    let mut head = [0u8; 4];
    let mut got = 0;
    while got < head.len() {
        match input.read(&mut head[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(source) => return Err(Error::Input { source }),
        }
    }
    Ok((head, got, input))
}

/// Gzip header flags DuckDB's reader refuses ("Unsupported GZIP flags"): FTEXT,
/// FHCRC, FCOMMENT and the reserved bits. flate2 accepts them, so a file with
/// them would land and then fail every build.
const FLAGS_DUCKDB_REFUSES: u8 = 0x01 | 0x02 | 0x10 | 0xe0;

/// What the content must look like, checked as it streams.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Expect<'a> {
    /// CSV text with this header (any header when empty), when set (see
    /// [`crate::landing::NewRelease::with_csv_header`]).
    pub header: Option<&'a [String]>,
    /// The most bytes the content may have once decompressed (gzip bombs stop
    /// here).
    pub max_content_bytes: u64,
}

/// Wraps the content in the size limit and, when there is an expectation, the
/// text and header checks.
fn checked<'a>(content: impl Read + 'a, expect: Expect<'a>) -> Box<dyn Read + 'a> {
    let limited = Limited::new(content, expect.max_content_bytes, "content", None);
    match expect.header {
        Some(header) => Box::new(HeaderCheck::new(TextCheck::new(limited), header)),
        None => Box::new(limited),
    }
}

/// A guard's refusal inside an input error, as the bad input it is.
fn refused_input(source: io::Error) -> Error {
    match refusal(&source) {
        Some(r) => Error::InvalidInput {
            reason: r.to_string(),
        },
        None => Error::Input { source },
    }
}

/// Writes `input` to `out` as gzip: compresses plain input at `level`; validates
/// already-gzipped input end to end (every member's CRC and length) and copies it
/// byte for byte. With `expect`, the content must be CSV text with that header.
/// `path` names `out` in errors.
pub(crate) fn write_gzip(
    input: &mut dyn Read,
    out: &mut dyn Write,
    level: Compression,
    threads: usize,
    path: &Path,
    expect: Expect<'_>,
) -> Result<Digests> {
    let (head, got, rest) = sniff(input)?;
    let mut input = io::Cursor::new(head).take(got as u64).chain(rest);
    let digests = if got >= 2 && head[..2] == GZIP_MAGIC {
        if got == 4 && head[3] & FLAGS_DUCKDB_REFUSES != 0 {
            return Err(Error::InvalidInput {
                reason: format!(
                    "the gzip header sets flags 0x{:02x} (FTEXT, FHCRC, FCOMMENT or reserved) that DuckDB \
                     cannot read; land the plain CSV instead (e.g. `zcat FILE | materia land … -`)",
                    head[3]
                ),
            });
        }
        copy_gzip(&mut input, out, path, expect)?
    } else {
        let mut content = checked(input, expect);
        compress(&mut content, out, level, threads, path).map_err(|e| match e {
            Error::Input { source } => refused_input(source),
            other => other,
        })?
    };
    if digests.content_bytes == 0 {
        return Err(Error::InvalidInput {
            reason: "the input is empty: there is nothing to land".into(),
        });
    }
    Ok(digests)
}

/// Plain input is cut into chunks of this size; each becomes one gzip member.
/// Members are compressed in parallel and written in order: valid gzip (RFC 1952
/// allows any number of members), the same bytes whatever the thread count, and
/// at most `min(2 × threads, 8)` chunks in memory.
pub(crate) const CHUNK: usize = 2 << 20;

/// Chunks in flight at most, whatever the thread count (16 MiB of input).
const MAX_IN_FLIGHT: usize = 8;

/// Compression threads at most: each adds an encoder and an allocator arena
/// (a few MiB), and 4 already compress faster than most sources deliver.
pub(crate) const MAX_THREADS: usize = 4;

fn compress(
    input: &mut dyn Read,
    out: &mut dyn Write,
    level: Compression,
    threads: usize,
    path: &Path,
) -> Result<Digests> {
    let mut out = Hashing::new(out);
    let mut content = Sha256::new();
    let mut content_bytes = 0u64;
    // At most 2 chunks per thread, and never more than MAX_IN_FLIGHT in all:
    // memory stays bounded on a machine with many cores.
    let threads = threads.clamp(1, MAX_THREADS);
    let max_in_flight = (2 * threads).min(MAX_IN_FLIGHT);
    let (job_tx, job_rx) = std::sync::mpsc::channel::<(u64, Vec<u8>)>();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<(u64, io::Result<Vec<u8>>)>();
    let job_rx = std::sync::Mutex::new(job_rx);
    std::thread::scope(|scope| -> Result<()> {
        for _ in 0..threads {
            let (job_rx, done_tx) = (&job_rx, done_tx.clone());
            scope.spawn(move || {
                loop {
                    let job = job_rx.lock().map(|rx| rx.recv());
                    let Ok(Ok((seq, chunk))) = job else { break };
                    let mut enc = GzEncoder::new(Vec::with_capacity(chunk.len() / 4), level);
                    let member = enc.write_all(&chunk).and_then(|()| enc.finish());
                    if done_tx.send((seq, member)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(done_tx);
        // Sent and written sequence numbers; finished members waiting for their turn.
        let (mut sent, mut written) = (0u64, 0u64);
        let mut ready = BTreeMap::new();
        let mut write_ready = |ready: &mut BTreeMap<u64, Vec<u8>>, written: &mut u64| {
            while let Some(member) = ready.remove(written) {
                out.write_all(&member).at(path)?;
                *written += 1;
            }
            Ok::<(), Error>(())
        };
        let mut at_end = false;
        while !at_end || written < sent {
            if !at_end && sent - written < max_in_flight as u64 {
                let chunk = read_chunk(input)?;
                at_end = chunk.len() < CHUNK;
                if !chunk.is_empty() {
                    content.update(&chunk);
                    content_bytes += chunk.len() as u64;
                    job_tx.send((sent, chunk)).map_err(|_| worker_gone(path))?;
                    sent += 1;
                }
                continue;
            }
            let (seq, member) = done_rx.recv().map_err(|_| worker_gone(path))?;
            ready.insert(seq, member.at(path)?);
            write_ready(&mut ready, &mut written)?;
        }
        drop(job_tx);
        Ok(())
    })?;
    if content_bytes == 0 {
        // Still a valid (empty) gzip file; the caller rejects empty input.
        GzEncoder::new(&mut out, level).finish().at(path)?;
    }
    out.flush().at(path)?;
    let (_, file_sha256, file_bytes) = out.finish();
    Ok(Digests {
        content_sha256: Sha256Digest::from_hasher(content),
        content_bytes,
        file_sha256,
        file_bytes,
    })
}

fn worker_gone(path: &Path) -> Error {
    Error::Io {
        path: path.to_path_buf(),
        source: io::Error::other("a compression thread stopped"),
    }
}

/// Reads up to [`CHUNK`] bytes; fewer only at the end of the input.
fn read_chunk(input: &mut dyn Read) -> Result<Vec<u8>> {
    let mut chunk = Vec::with_capacity(CHUNK);
    match input.take(CHUNK as u64).read_to_end(&mut chunk) {
        Ok(_) => Ok(chunk),
        Err(source) => Err(Error::Input { source }),
    }
}

fn copy_gzip(
    input: &mut dyn Read,
    out: &mut dyn Write,
    path: &Path,
    expect: Expect<'_>,
) -> Result<Digests> {
    let mut tee = Tee {
        input,
        copy: Hashing::new(out),
        input_err: false,
        output_err: None,
    };
    let decoded = decode_all(&mut tee, expect);
    if let Some(e) = tee.output_err.take() {
        return Err(e).at(path);
    }
    let (content_sha256, content_bytes) = match decoded {
        Ok(ok) => ok,
        Err(source) if tee.input_err => return Err(Error::Input { source }),
        Err(e) if refusal(&e).is_some() => return Err(refused_input(e)),
        Err(e) => {
            return Err(Error::InvalidInput {
                reason: format!("the input starts like gzip but is not valid gzip: {e}"),
            });
        }
    };
    tee.copy.flush().at(path)?;
    let (_, file_sha256, file_bytes) = tee.copy.finish();
    Ok(Digests {
        content_sha256,
        content_bytes,
        file_sha256,
        file_bytes,
    })
}

/// Decompresses every gzip member of `input` to its end, checking each member's
/// CRC-32 and length, and hashes the content.
fn decode_all(input: impl Read, expect: Expect<'_>) -> io::Result<(Sha256Digest, u64)> {
    let decoder = MultiGzDecoder::new(BufReader::with_capacity(BUF_SIZE, input));
    let mut sink = Hashing::new(io::sink());
    io::copy(&mut checked(decoder, expect), &mut sink)?;
    let (_, digest, bytes) = sink.finish();
    Ok((digest, bytes))
}

/// Reads a landed file end to end and measures it: the stored bytes' hash and
/// the content's, with every gzip member's CRC and length checked on the way.
/// A problem with the file's bytes is an `Err(reason)`; failing to open or read
/// it is an I/O error.
pub(crate) fn measure_file(path: &Path) -> Result<Result<Digests, String>> {
    let file = super::durable::open_regular(path).at(path)?;
    let mut tee = Tee {
        input: file,
        copy: Hashing::new(io::sink()),
        input_err: false,
        output_err: None,
    };
    let decoded = decode_all(
        &mut tee,
        Expect {
            header: None,
            max_content_bytes: u64::MAX,
        },
    );
    Ok(match decoded {
        Ok((content_sha256, content_bytes)) => {
            let (_, file_sha256, file_bytes) = tee.copy.finish();
            Ok(Digests {
                content_sha256,
                content_bytes,
                file_sha256,
                file_bytes,
            })
        }
        Err(e) if tee.input_err => return Err(e).at(path),
        Err(e) => Err(format!("not valid gzip: {e}")),
    })
}
