//! Training checkpoints: everything a killed run needs to continue bit-identically.
//!
//! Layout (little-endian, 4-byte aligned):
//!
//! ```text
//! magic  b"MIRGCKPT"          8
//! version u32 = 1             4
//! meta_len u32                4   then `meta_len` bytes of JSON ([`CheckpointMeta`]),
//!                                 zero-padded to a multiple of 4
//! step u64                    8   Adam steps taken = the RNG position (draws are keyed
//!                                 by step, see `draws`)
//! param_count u64             8
//! params, adam m, adam v      3 × param_count f32
//! crc32 u32                   4   IEEE CRC-32 of every byte before it
//! ```

use anyhow::{Context, Result, bail, ensure};
use serde::{Deserialize, Serialize};

use super::trainer::TrainConfig;
use mirage_core::crc32::crc32;

const MAGIC: &[u8; 8] = b"MIRGCKPT";
const VERSION: u32 = 1;

/// What the checkpoint was trained with: the config, and a fingerprint of the dataset.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckpointMeta {
    /// The training configuration (shape, schedule, optimiser, batch, seed, shuffling).
    pub config: TrainConfig,
    /// Number of training points.
    pub data_len: usize,
    /// CRC-32 of the training points' f32 bytes.
    pub data_crc: u32,
}

/// A decoded checkpoint.
#[derive(Clone, Debug, PartialEq)]
pub struct Checkpoint {
    /// Config and data fingerprint.
    pub meta: CheckpointMeta,
    /// Adam steps taken.
    pub step: u64,
    /// Parameters.
    pub params: Vec<f32>,
    /// Adam first moments.
    pub m: Vec<f32>,
    /// Adam second moments.
    pub v: Vec<f32>,
}

fn put_f32s(out: &mut Vec<u8>, v: &[f32]) {
    for x in v {
        out.extend_from_slice(&x.to_le_bytes());
    }
}

impl Checkpoint {
    /// Serialises the checkpoint (see the module docs).
    ///
    /// # Errors
    /// If the metadata cannot be serialised or the vectors differ in length.
    pub fn encode(&self) -> Result<Vec<u8>> {
        ensure!(
            self.params.len() == self.m.len() && self.m.len() == self.v.len(),
            "checkpoint vectors differ in length"
        );
        let meta =
            serde_json::to_vec(&self.meta).context("cannot serialise checkpoint metadata")?;
        let mut out = Vec::with_capacity(40 + meta.len() + 12 * self.params.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&(meta.len() as u32).to_le_bytes());
        out.extend_from_slice(&meta);
        out.resize(out.len().next_multiple_of(4), 0);
        out.extend_from_slice(&self.step.to_le_bytes());
        out.extend_from_slice(&(self.params.len() as u64).to_le_bytes());
        put_f32s(&mut out, &self.params);
        put_f32s(&mut out, &self.m);
        put_f32s(&mut out, &self.v);
        let crc = crc32(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        Ok(out)
    }

    /// Parses and verifies a checkpoint.
    ///
    /// # Errors
    /// A clear message for each problem: too short / truncated, wrong magic, unsupported
    /// version, CRC mismatch (corrupt), bad metadata, or inconsistent lengths.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        ensure!(
            bytes.len() >= 40,
            "truncated checkpoint: {} bytes, too short for the header",
            bytes.len()
        );
        ensure!(&bytes[..8] == MAGIC, "not a mirage checkpoint (bad magic)");
        let u32_at =
            |o: usize| u32::from_le_bytes([bytes[o], bytes[o + 1], bytes[o + 2], bytes[o + 3]]);
        let version = u32_at(8);
        ensure!(
            version == VERSION,
            "unsupported checkpoint version {version} (this build reads {VERSION})"
        );
        let body_len = bytes.len() - 4;
        let stored = u32_at(body_len);
        let actual = crc32(&bytes[..body_len]);
        if stored != actual {
            bail!(
                "checkpoint is corrupt or truncated: CRC-32 mismatch (stored {stored:#010x}, computed {actual:#010x})"
            );
        }
        let meta_len = u32_at(12) as usize;
        let meta_end = 16usize
            .checked_add(meta_len)
            .filter(|&e| e <= body_len)
            .context("truncated checkpoint metadata")?;
        let meta: CheckpointMeta = serde_json::from_slice(&bytes[16..meta_end])
            .context("checkpoint metadata is not valid")?;
        let mut o = meta_end.next_multiple_of(4);
        ensure!(
            o + 16 <= body_len,
            "truncated checkpoint: no step/parameter count"
        );
        let u64_at = |o: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&bytes[o..o + 8]);
            u64::from_le_bytes(b)
        };
        let step = u64_at(o);
        let count = usize::try_from(u64_at(o + 8)).context("parameter count overflows")?;
        o += 16;
        let need = count.checked_mul(12).context("parameter count overflows")?;
        ensure!(
            body_len - o == need,
            "checkpoint holds {} bytes of tensors, expected {need} for {count} parameters",
            body_len - o
        );
        let read = |start: usize| -> Vec<f32> {
            bytes[start..start + 4 * count]
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect()
        };
        Ok(Self {
            meta,
            step,
            params: read(o),
            m: read(o + 4 * count),
            v: read(o + 8 * count),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Checkpoint {
        Checkpoint {
            meta: CheckpointMeta {
                config: TrainConfig::paper(2),
                data_len: 7,
                data_crc: 0xdead_beef,
            },
            step: 42,
            params: vec![1.0, -2.5, 3.25],
            m: vec![0.1, 0.2, 0.3],
            v: vec![1e-3, 2e-3, 3e-3],
        }
    }

    #[test]
    fn round_trips() {
        let c = sample();
        assert_eq!(Checkpoint::decode(&c.encode().unwrap()).unwrap(), c);
    }

    #[test]
    fn every_truncation_and_bit_flip_is_a_clear_error() {
        let bytes = sample().encode().unwrap();
        for cut in 0..bytes.len() {
            let err = Checkpoint::decode(&bytes[..cut]).unwrap_err().to_string();
            assert!(
                err.contains("truncated") || err.contains("corrupt") || err.contains("magic"),
                "{cut}: {err}"
            );
        }
        for i in (0..bytes.len()).step_by(3) {
            let mut b = bytes.clone();
            b[i] ^= 0x10;
            assert!(Checkpoint::decode(&b).is_err(), "flip at {i} accepted");
        }
    }
}
