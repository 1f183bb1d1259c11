//! The U-Net model file (`.mru`), a host-side sibling of core's `.mrg` (which holds only
//! the residual MLP). Little-endian, 4-byte aligned, CRC-32 (IEEE, `mirage_core::crc32`) of
//! everything before it, written atomically:
//!
//! | offset | field |
//! |---|---|
//! | 0 | magic `b"MIRUNET\0"` |
//! | 8 | u32 version = 1 |
//! | 12 | u32 side, c1, c2, temb_dim, time_width, groups |
//! | 36 | u32 train_steps T |
//! | 40 | f64 β_start, f64 β_end (linear schedule) |
//! | 56 | f32 Hal threshold τ (NaN = not calibrated) |
//! | 60 | u32 parameter count P |
//! | 64 | P × f32 parameters ([`super::UnetLayout`] order) |
//! | 64 + 4P | u32 CRC-32 |
//!
//! Every field is validated on load (sizes via [`super::UnetConfig::validate`], P against
//! the layout, finite β in (0, 1) and increasing, finite parameters); each problem is its
//! own error message.

use std::path::Path;

use anyhow::{Context, Result, bail, ensure};

use super::net::{UnetConfig, UnetLayout};
use crate::io::atomic::write_atomic;

const MAGIC: &[u8; 8] = b"MIRUNET\0";
const VERSION: u32 = 1;
const HEADER: usize = 64;

/// A trained U-Net with its training schedule.
#[derive(Clone, Debug, PartialEq)]
pub struct UnetModel {
    /// Shape.
    pub config: UnetConfig,
    /// Training steps T of the linear β schedule.
    pub train_steps: usize,
    /// (β_start, β_end) of the linear schedule.
    pub beta: (f64, f64),
    /// Calibrated Hal threshold, NaN if none.
    pub hal_threshold: f32,
    /// Parameters in layout order.
    pub params: Vec<f32>,
}

impl UnetModel {
    /// Serialises the model.
    ///
    /// # Errors
    /// If the parameter count disagrees with the config.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let layout = UnetLayout::new(self.config)?;
        ensure!(
            self.params.len() == layout.param_count(),
            "U-Net model: {} parameters for a layout of {}",
            self.params.len(),
            layout.param_count()
        );
        let mut out = Vec::with_capacity(HEADER + 4 * self.params.len() + 4);
        out.extend_from_slice(MAGIC);
        let c = self.config;
        for v in [
            VERSION,
            c.side as u32,
            c.c1 as u32,
            c.c2 as u32,
            c.temb_dim as u32,
            c.time_width as u32,
            c.groups as u32,
            self.train_steps as u32,
        ] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&self.beta.0.to_le_bytes());
        out.extend_from_slice(&self.beta.1.to_le_bytes());
        out.extend_from_slice(&self.hal_threshold.to_le_bytes());
        out.extend_from_slice(&(self.params.len() as u32).to_le_bytes());
        for p in &self.params {
            out.extend_from_slice(&p.to_le_bytes());
        }
        let crc = mirage_core::crc32::crc32(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        Ok(out)
    }

    /// Parses and validates a model file's bytes.
    ///
    /// # Errors
    /// Truncation, bad magic, unsupported version, CRC mismatch, invalid sizes or
    /// schedule, parameter count mismatch, non-finite parameters.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        ensure!(
            bytes.len() >= HEADER + 4,
            "U-Net model file truncated: {} bytes, the header alone needs {}",
            bytes.len(),
            HEADER + 4
        );
        ensure!(
            &bytes[..8] == MAGIC,
            "not a mirage U-Net model file (bad magic)"
        );
        let u32_at = |off: usize| {
            u32::from_le_bytes([bytes[off], bytes[off + 1], bytes[off + 2], bytes[off + 3]])
        };
        let f64_at = |off: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&bytes[off..off + 8]);
            f64::from_le_bytes(b)
        };
        let version = u32_at(8);
        ensure!(
            version == VERSION,
            "U-Net model file version {version} is not supported (this build reads {VERSION})"
        );
        let count = u32_at(60) as usize;
        let expected = HEADER + 4 * count + 4;
        ensure!(
            bytes.len() == expected,
            "U-Net model file has {} bytes; its header (P = {count}) implies {expected}",
            bytes.len()
        );
        let body = &bytes[..expected - 4];
        let stored = u32_at(expected - 4);
        ensure!(
            mirage_core::crc32::crc32(body) == stored,
            "U-Net model file is corrupt (CRC-32 mismatch)"
        );
        let f = |i: usize| u32_at(12 + 4 * i) as usize;
        let config = UnetConfig {
            side: f(0),
            c1: f(1),
            c2: f(2),
            temb_dim: f(3),
            time_width: f(4),
            groups: f(5),
        };
        let layout = UnetLayout::new(config).context("U-Net model file has an invalid shape")?;
        ensure!(
            count == layout.param_count(),
            "U-Net model file holds {count} parameters; its shape needs {}",
            layout.param_count()
        );
        let train_steps = u32_at(36) as usize;
        ensure!(
            (2..=100_000).contains(&train_steps),
            "U-Net model file: train steps {train_steps} outside 2..=100000"
        );
        let beta = (f64_at(40), f64_at(48));
        ensure!(
            beta.0.is_finite()
                && beta.1.is_finite()
                && 0.0 < beta.0
                && beta.0 < beta.1
                && beta.1 < 1.0,
            "U-Net model file: β schedule {beta:?} must satisfy 0 < start < end < 1"
        );
        let hal_threshold = f32::from_le_bytes([bytes[56], bytes[57], bytes[58], bytes[59]]);
        let params: Vec<f32> = bytes[HEADER..expected - 4]
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        if let Some(i) = params.iter().position(|p| !p.is_finite()) {
            bail!("U-Net model file: parameter {i} is not finite");
        }
        Ok(Self {
            config,
            train_steps,
            beta,
            hal_threshold,
            params,
        })
    }

    /// Writes the model atomically.
    ///
    /// # Errors
    /// As [`UnetModel::to_bytes`], or I/O.
    pub fn save(&self, path: &Path) -> Result<()> {
        write_atomic(path, &self.to_bytes()?)
    }

    /// Reads and validates a model file.
    ///
    /// # Errors
    /// I/O (naming the path) or any [`UnetModel::from_bytes`] error.
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path)
            .with_context(|| format!("cannot read U-Net model {}", path.display()))?;
        Self::from_bytes(&bytes).with_context(|| format!("in {}", path.display()))
    }
}

#[cfg(test)]
impl UnetModel {
    /// A randomly initialised 8×8 model (4 channels, T = 1000) for tests.
    pub(crate) fn tiny() -> Self {
        let config = UnetConfig {
            side: 8,
            c1: 4,
            c2: 4,
            temb_dim: 4,
            time_width: 4,
            groups: 2,
        };
        let layout = UnetLayout::new(config).unwrap();
        let params = layout.init(&mut mirage_core::noise::chacha_stream(5, 1));
        UnetModel {
            config,
            train_steps: 1000,
            beta: (1e-4, 0.02),
            hal_threshold: f32::NAN,
            params,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_every_prefix_is_refused() {
        let m = UnetModel::tiny();
        let bytes = m.to_bytes().unwrap();
        let back = UnetModel::from_bytes(&bytes).unwrap();
        assert_eq!(back.params, m.params);
        assert_eq!(
            (back.config, back.train_steps, back.beta),
            (m.config, m.train_steps, m.beta)
        );
        assert!(back.hal_threshold.is_nan());
        for len in (0..bytes.len()).step_by(97) {
            assert!(UnetModel::from_bytes(&bytes[..len]).is_err());
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.mru");
        m.save(&path).unwrap();
        assert_eq!(UnetModel::load(&path).unwrap().params, m.params);
    }

    #[test]
    fn corruption_is_named() {
        let bytes = UnetModel::tiny().to_bytes().unwrap();
        let err = |b: &[u8]| UnetModel::from_bytes(b).unwrap_err().to_string();
        let mut flip = bytes.clone();
        flip[100] ^= 1;
        assert!(err(&flip).contains("CRC"));
        let mut magic = bytes.clone();
        magic[0] = b'X';
        assert!(err(&magic).contains("magic"));
        let mut version = bytes.clone();
        version[8] = 9;
        assert!(err(&version).contains("version"));
        // A NaN parameter with a re-computed CRC: refused by value, not by checksum.
        let mut nan = bytes[..bytes.len() - 4].to_vec();
        nan[64..68].copy_from_slice(&f32::NAN.to_le_bytes());
        let crc = mirage_core::crc32::crc32(&nan);
        nan.extend_from_slice(&crc.to_le_bytes());
        assert!(err(&nan).contains("not finite"));
        let mut shape = bytes[..bytes.len() - 4].to_vec();
        shape[12..16].copy_from_slice(&6u32.to_le_bytes());
        let crc = mirage_core::crc32::crc32(&shape);
        shape.extend_from_slice(&crc.to_le_bytes());
        assert!(err(&shape).contains("invalid shape"));
    }
}
