//! A forgiving byte cursor: every read succeeds, returning zeros once the input runs out.

/// Decodes fuzz bytes into sizes, floats and choices.
pub struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A cursor at the start of `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Self { data }
    }

    /// Whether every byte has been consumed.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The bytes not yet read.
    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.data)
    }

    /// The next `n` bytes (fewer at the end).
    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (head, tail) = self.data.split_at(n.min(self.data.len()));
        self.data = tail;
        head
    }

    /// The next byte (0 at the end).
    pub fn u8(&mut self) -> u8 {
        self.bytes(1).first().copied().unwrap_or(0)
    }

    /// A little-endian u16.
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes(pad::<2>(self.bytes(2)))
    }

    /// A little-endian u32.
    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes(pad::<4>(self.bytes(4)))
    }

    /// A little-endian u64.
    pub fn u64(&mut self) -> u64 {
        u64::from_le_bytes(pad::<8>(self.bytes(8)))
    }

    /// A value in `lo..=hi` (`lo` when `hi < lo`).
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        if hi <= lo {
            return lo;
        }
        let span = (hi - lo) as u64 + 1;
        lo + (u64::from(self.u32()) % span) as usize
    }

    /// Whether the next byte is odd.
    pub fn bool(&mut self) -> bool {
        self.u8() & 1 == 1
    }

    /// An f32 that is hostile one time in eight (raw bits: NaN, ±∞, subnormals, huge) and
    /// otherwise moderate (a 16-bit fixed-point value in about ±32).
    pub fn f32(&mut self) -> f32 {
        let tag = self.u8();
        if tag & 7 == 0 {
            f32::from_bits(self.u32())
        } else {
            f32::from(self.u16() as i16) / 1024.0
        }
    }

    /// A finite f32 in about ±32.
    pub fn f32_finite(&mut self) -> f32 {
        f32::from(self.u16() as i16) / 1024.0
    }

    /// An f64 that is hostile one time in eight and otherwise in [0, 1).
    pub fn f64(&mut self) -> f64 {
        let tag = self.u8();
        if tag & 7 == 0 {
            f64::from_bits(self.u64())
        } else {
            f64::from(self.u32()) / 4_294_967_296.0
        }
    }

    /// `n` values of [`Reader::f32`].
    pub fn f32s(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.f32()).collect()
    }
}

fn pad<const N: usize>(b: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    out[..b.len()].copy_from_slice(b);
    out
}
