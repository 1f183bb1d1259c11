//! Shared helpers: aligned buffers and a small valid model.

use mirage_core::crc32::crc32;

/// A byte buffer whose start is 8-byte aligned (model files are borrowed as `&[f32]` and,
/// with a custom β list, `&[f64]`).
pub struct Aligned {
    buf: Vec<u8>,
    start: usize,
    len: usize,
}

impl Aligned {
    /// A copy of `bytes`, 8-byte aligned.
    pub fn from_bytes(bytes: &[u8]) -> Self {
        let mut a = Self::zeroed(bytes.len());
        a.bytes_mut().copy_from_slice(bytes);
        a
    }

    /// `len` zero bytes, 8-byte aligned.
    pub fn zeroed(len: usize) -> Self {
        let buf = vec![0u8; len + 16];
        let start = buf.as_ptr().align_offset(8);
        Self { buf, start, len }
    }

    /// The bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.buf[self.start..self.start + self.len]
    }

    /// The bytes, mutably.
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.start..self.start + self.len]
    }

    /// The bytes starting one byte in (misaligned), `len − 1` long.
    pub fn misaligned(&self) -> &[u8] {
        &self.buf[self.start + 1..self.start + self.len.max(1)]
    }
}

/// If the bytes hold a `.mrg` header, rewrites the CRC at `file_len − 4` so that it
/// matches (lets the fuzzer get past the checksum and into the section checks).
pub fn fix_mrg_crc(bytes: &mut [u8]) {
    let Some(field) = bytes.get(16..20) else {
        return;
    };
    let file_len = u32::from_le_bytes([field[0], field[1], field[2], field[3]]) as usize;
    if file_len < 4 || file_len > bytes.len() {
        return;
    }
    let crc = crc32(&bytes[..file_len - 4]);
    bytes[file_len - 4..file_len].copy_from_slice(&crc.to_le_bytes());
}
