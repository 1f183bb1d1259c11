//! CRC-32 (IEEE 802.3, the zlib/PNG/Ethernet checksum), table-driven.
//!
//! Reflected polynomial 0xEDB88320, initial value 0xFFFF_FFFF, final XOR 0xFFFF_FFFF:
//! crc ← T[(crc ⊕ byte) & 0xFF] ⊕ (crc ≫ 8) with the 256-entry table T built at compile time
//! (Sarwate 1988). Used by the `.mrg` model file ([`crate::format`]) to detect corruption.

/// The reflected IEEE polynomial.
const POLY: u32 = 0xEDB8_8320;

/// T[n] = the CRC register after shifting the byte n through eight polynomial divisions.
const TABLE: [u32; 256] = build_table();

#[allow(clippy::indexing_slicing)] // const fn: `n < 256` is the loop bound, so `table[n]` is in bounds.
const fn build_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut n = 0;
    while n < 256 {
        let mut c = n as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 == 1 { POLY ^ (c >> 1) } else { c >> 1 };
            k += 1;
        }
        table[n] = c;
        n += 1;
    }
    table
}

/// An incremental CRC-32 computation: feed bytes with [`Crc32::update`], read the checksum
/// with [`Crc32::finish`]. Splitting the input anywhere gives the same result as one call.
#[derive(Clone, Copy, Debug)]
pub struct Crc32 {
    register: u32,
}

impl Default for Crc32 {
    fn default() -> Self {
        Self::new()
    }
}

impl Crc32 {
    /// A fresh computation (register 0xFFFF_FFFF).
    pub const fn new() -> Self {
        Self {
            register: 0xFFFF_FFFF,
        }
    }

    /// Feeds `bytes` into the checksum.
    pub fn update(&mut self, bytes: &[u8]) {
        let mut c = self.register;
        for &byte in bytes {
            // The index is masked to 0..=255, so `get` always succeeds.
            let entry = TABLE.get(((c ^ u32::from(byte)) & 0xFF) as usize).copied();
            c = entry.unwrap_or(0) ^ (c >> 8);
        }
        self.register = c;
    }

    /// The CRC-32 of every byte fed so far.
    pub const fn finish(&self) -> u32 {
        self.register ^ 0xFFFF_FFFF
    }
}

/// The CRC-32 (IEEE) of `bytes`.
pub fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = Crc32::new();
    crc.update(bytes);
    crc.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Published check values (the "123456789" check is in every CRC catalogue; the fox
    /// sentence is the zlib/Wikipedia example).
    const TEST_VECTORS: &[(&[u8], u32)] = &[
        (b"123456789", 0xCBF4_3926),
        (b"", 0x0000_0000),
        (b"The quick brown fox jumps over the lazy dog", 0x414F_A339),
        (b"a", 0xE8B7_BE43),
    ];

    #[test]
    fn matches_published_check_values() {
        for &(input, expected) in TEST_VECTORS {
            assert_eq!(crc32(input), expected, "input {input:?}");
        }
    }

    /// Bit-at-a-time reference straight from the definition (no table).
    fn crc32_bitwise(bytes: &[u8]) -> u32 {
        let mut c = 0xFFFF_FFFFu32;
        for &b in bytes {
            c ^= u32::from(b);
            for _ in 0..8 {
                let mask = (c & 1).wrapping_neg();
                c = (c >> 1) ^ (POLY & mask);
            }
        }
        !c
    }

    #[test]
    fn table_driven_equals_bitwise_and_is_split_invariant() {
        let data: std::vec::Vec<u8> = (0..1000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        assert_eq!(crc32(&data), crc32_bitwise(&data));
        for split in [0, 1, 7, 500, 999, 1000] {
            let (a, b) = data.split_at(split);
            let mut crc = Crc32::new();
            crc.update(a);
            crc.update(b);
            assert_eq!(crc.finish(), crc32_bitwise(&data), "split at {split}");
        }
    }

    #[test]
    fn detects_every_single_bit_flip() {
        let data = *b"mirage model file";
        let reference = crc32(&data);
        for byte in 0..data.len() {
            for bit in 0..8 {
                let mut flipped = data;
                flipped[byte] ^= 1 << bit;
                assert_ne!(crc32(&flipped), reference);
            }
        }
    }
}
