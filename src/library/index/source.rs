//! A bounded reader: buffered `Read + Seek` that knows the file's length and enforces [`Limits`].

use std::io::{BufReader, Read, Seek, SeekFrom};
use std::time::Instant;

use super::{IndexError, Limits};

/// Buffer size: large enough for a header and the small boxes around it, small enough that skipping
/// a video frame's payload does not read much of it.
const BUFFER_BYTES: usize = 4096;
/// Bytes `peek_head` reads to recognise a container.
const HEAD_BYTES: usize = 16;

/// The reader every parser goes through: it counts headers read, checks the clock and refuses
/// reads past the end or larger than the limits allow.
pub(super) struct Source<R> {
    inner: BufReader<R>,
    /// Where the next read starts.
    pos: u64,
    /// The file's length.
    len: u64,
    deadline: Instant,
    elements: u64,
    pub limits: Limits,
}

impl<R: Read + Seek> Source<R> {
    pub fn new(mut reader: R, limits: &Limits) -> Result<Self, IndexError> {
        let len = reader.seek(SeekFrom::End(0))?;
        reader.seek(SeekFrom::Start(0))?;
        Ok(Source {
            inner: BufReader::with_capacity(BUFFER_BYTES, reader),
            pos: 0,
            len,
            deadline: Instant::now() + limits.max_time,
            elements: 0,
            limits: limits.clone(),
        })
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    /// When the time budget runs out.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    pub fn pos(&self) -> u64 {
        self.pos
    }

    /// The first bytes of the file (fewer if it is shorter), leaving the position at 0.
    pub fn peek_head(&mut self) -> Result<Vec<u8>, IndexError> {
        let n = self.len.min(HEAD_BYTES as u64) as usize;
        self.seek(0)?;
        let head = self.read_vec(n as u64)?;
        self.seek(0)?;
        Ok(head)
    }

    /// Counts one header read against the element limit and checks the clock every so often.
    pub fn tick(&mut self) -> Result<(), IndexError> {
        self.elements += 1;
        if self.elements > self.limits.max_elements {
            return Err(IndexError::Limit("too many boxes or elements"));
        }
        if self.elements.is_multiple_of(256) {
            self.check_time()?;
        }
        Ok(())
    }

    /// Fails once the time budget is spent.
    pub fn check_time(&self) -> Result<(), IndexError> {
        if Instant::now() > self.deadline {
            return Err(IndexError::Timeout(self.limits.max_time));
        }
        Ok(())
    }

    /// Moves to `pos` (which may be the end, not past it).
    pub fn seek(&mut self, pos: u64) -> Result<(), IndexError> {
        if pos > self.len {
            return Err(IndexError::Malformed("offset past the end of the file"));
        }
        if pos != self.pos {
            // Relative seeks keep the buffer when the target is inside it.
            let delta = i64::try_from(i128::from(pos) - i128::from(self.pos))
                .map_err(|_| IndexError::Malformed("offset"))?;
            self.inner.seek_relative(delta)?;
            self.pos = pos;
        }
        Ok(())
    }

    /// Fills `buf` exactly, or fails with `Malformed("truncated file")`.
    pub fn read_exact(&mut self, buf: &mut [u8]) -> Result<(), IndexError> {
        if self.len.saturating_sub(self.pos) < buf.len() as u64 {
            return Err(IndexError::Malformed("truncated file"));
        }
        self.inner.read_exact(buf)?;
        self.pos += buf.len() as u64;
        Ok(())
    }

    /// Reads up to `buf.len()` bytes (fewer at the end of the file), returning how many.
    pub fn read_some(&mut self, buf: &mut [u8]) -> Result<usize, IndexError> {
        let n = (self.len.saturating_sub(self.pos)).min(buf.len() as u64) as usize;
        self.read_exact(&mut buf[..n])?;
        Ok(n)
    }

    /// Reads `n` bytes into a new vector, within `max_box_bytes` and the file's length.
    pub fn read_vec(&mut self, n: u64) -> Result<Vec<u8>, IndexError> {
        if n > self.limits.max_box_bytes {
            return Err(IndexError::Limit("box or element too large to read"));
        }
        if self.len.saturating_sub(self.pos) < n {
            return Err(IndexError::Malformed("truncated file"));
        }
        let mut buf = vec![0; n as usize];
        self.read_exact(&mut buf)?;
        Ok(buf)
    }
}

/// A bounds-checked cursor over bytes already in memory (a box's body): every read is checked and
/// fails with `Malformed(what)` instead of panicking.
#[derive(Clone)]
pub(super) struct Slice<'a> {
    data: &'a [u8],
    what: &'static str,
}

impl<'a> Slice<'a> {
    pub fn new(data: &'a [u8], what: &'static str) -> Self {
        Slice { data, what }
    }

    pub fn rest(&self) -> &'a [u8] {
        self.data
    }

    pub fn remaining(&self) -> usize {
        self.data.len()
    }

    pub fn take(&mut self, n: usize) -> Result<&'a [u8], IndexError> {
        if n > self.data.len() {
            return Err(IndexError::Malformed(self.what));
        }
        let (head, tail) = self.data.split_at(n);
        self.data = tail;
        Ok(head)
    }

    pub fn skip(&mut self, n: usize) -> Result<(), IndexError> {
        self.take(n).map(|_| ())
    }

    pub fn u8(&mut self) -> Result<u8, IndexError> {
        Ok(self.take(1)?[0])
    }

    pub fn u16(&mut self) -> Result<u16, IndexError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    pub fn u32(&mut self) -> Result<u32, IndexError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn u64(&mut self) -> Result<u64, IndexError> {
        let hi = self.u32()?;
        let lo = self.u32()?;
        Ok(u64::from(hi) << 32 | u64::from(lo))
    }

    pub fn fourcc(&mut self) -> Result<[u8; 4], IndexError> {
        let b = self.take(4)?;
        Ok([b[0], b[1], b[2], b[3]])
    }
}
