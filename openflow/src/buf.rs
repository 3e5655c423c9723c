//! Bounds-checked cursor over untrusted bytes and a growable writer.
//!
//! Every read is checked against the remaining length and returns an [`Error`] instead of
//! panicking; this is what lets the whole decoder promise "no panic on any input".

use crate::error::{Error, OfpErr};

/// A read cursor over a byte slice. All getters fail with `err` (a context-specific
/// [`OfpErr`], e.g. `OFPBAC_BAD_LEN` inside actions) when the input is short.
#[derive(Clone, Copy)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    err: OfpErr,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8], err: OfpErr) -> Self {
        Reader { buf, pos: 0, err }
    }
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }
    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }
    pub fn rest(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }
    /// Consumes and returns everything left.
    pub fn take_rest(&mut self) -> &'a [u8] {
        let s = &self.buf[self.pos..];
        self.pos = self.buf.len();
        s
    }
    pub fn short(&self, what: &'static str) -> Error {
        Error::new(self.err, what)
    }
    pub fn bytes(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], Error> {
        if self.remaining() < n {
            return Err(self.short(what));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    pub fn skip(&mut self, n: usize, what: &'static str) -> Result<(), Error> {
        self.bytes(n, what).map(|_| ())
    }
    /// Skips `n` bytes that must be zero (OVS insists on zero padding in several places;
    /// we accept any padding but remember nothing, so encode writes zeros).
    pub fn pad(&mut self, n: usize, what: &'static str) -> Result<(), Error> {
        self.skip(n, what)
    }
    pub fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], Error> {
        let s = self.bytes(N, what)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }
    pub fn u8(&mut self, what: &'static str) -> Result<u8, Error> {
        Ok(self.array::<1>(what)?[0])
    }
    pub fn u16(&mut self, what: &'static str) -> Result<u16, Error> {
        Ok(u16::from_be_bytes(self.array(what)?))
    }
    pub fn u32(&mut self, what: &'static str) -> Result<u32, Error> {
        Ok(u32::from_be_bytes(self.array(what)?))
    }
    pub fn u64(&mut self, what: &'static str) -> Result<u64, Error> {
        Ok(u64::from_be_bytes(self.array(what)?))
    }
    pub fn u128(&mut self, what: &'static str) -> Result<u128, Error> {
        Ok(u128::from_be_bytes(self.array(what)?))
    }
    /// Peeks a big-endian u16 at `off` bytes from the cursor without consuming.
    pub fn peek_u16(&self, off: usize) -> Option<u16> {
        let s = self.buf.get(self.pos + off..self.pos + off + 2)?;
        Some(u16::from_be_bytes([s[0], s[1]]))
    }
    /// Splits off a sub-reader of `n` bytes (same error context unless changed).
    pub fn sub(&mut self, n: usize, what: &'static str) -> Result<Reader<'a>, Error> {
        let err = self.err;
        Ok(Reader::new(self.bytes(n, what)?, err))
    }
    pub fn with_err(mut self, err: OfpErr) -> Self {
        self.err = err;
        self
    }
}

/// Output buffer with big-endian helpers and length back-patching.
#[derive(Default)]
pub(crate) struct Writer {
    pub buf: Vec<u8>,
}

impl Writer {
    pub fn new() -> Self {
        Writer {
            buf: Vec::with_capacity(64),
        }
    }
    pub fn len(&self) -> usize {
        self.buf.len()
    }
    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    pub fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    pub fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    pub fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    pub fn u128(&mut self, v: u128) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    pub fn bytes(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
    }
    pub fn zeros(&mut self, n: usize) {
        self.buf.resize(self.buf.len() + n, 0);
    }
    /// Pads with zeros so that the length since `start` is a multiple of 8.
    pub fn pad8_from(&mut self, start: usize) {
        let n = self.buf.len() - start;
        self.zeros(pad8(n) - n);
    }
    /// Writes a u16 at absolute offset `at` (for lengths known only after the body).
    pub fn patch_u16(&mut self, at: usize, v: u16) {
        if let Some(s) = self.buf.get_mut(at..at + 2) {
            s.copy_from_slice(&v.to_be_bytes());
        }
    }
    /// Patches the u16 length at `at` with the number of bytes since `start`.
    pub fn patch_len(&mut self, at: usize, start: usize) {
        let n = self.buf.len() - start;
        self.patch_u16(at, n.min(u16::MAX as usize) as u16);
    }
}

/// Rounds up to a multiple of 8.
pub(crate) fn pad8(n: usize) -> usize {
    n.div_ceil(8) * 8
}
